//! The handles of staged writes (what `prepare`, `stage` and `stage_upload` return) and of
//! client multipart uploads: what `publish`, `discard` and `collect_staged` need to find a
//! staged copy again, also in another process after a restart.
//!
//! A staged write's handle is printable ASCII; its first letter says where the copy waits:
//!
//! * `m<token>`: a small body held in this process's memory, published with one PUT.
//! * `o<token>` (prepared) / `o<token>:<size>` (staged): the object (blob)
//!   `.hansa/staging/<token>`.
//! * `s<upload>` (prepared) / `s<upload>:<size>:<etag>,…` (staged): an S3 multipart upload at
//!   the object's own key, with parts 1..N whose ETags are listed in order.
//! * `c<upload id>:<upload>:<size>:<number>=<etag>,…`: a client multipart upload's completion
//!   on S3's protocol: the chosen parts of the gateway's upload `<upload id>:<upload>`.
//! * `a<upload id>`: an Azure upload whose chosen blocks are committed on its staging blob.
//!
//! `<upload>` (the provider's upload id) and ETags are percent-encoded (all but letters,
//! digits, `-` and `_`), so `:`, `,` and `=` only ever separate. Tokens and the gateway's upload
//! ids are letters and digits ([`is_safe_token`]).
//!
//! A client upload's handle on S3's protocol is `<upload id>:<provider upload id>`, unencoded
//! ([`split_s3_handle`]).

use crate::error::{BackendError, Result};
use crate::naming::is_safe_token;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::HashSet;
use std::fmt;

/// Everything but letters, digits, `-` and `_`.
const FIELD: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// The parts of a staged S3 completion and the object's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct S3Parts {
    pub size: u64,
    /// Part numbers (ascending) and the parts' ETags, without quotes.
    pub parts: Vec<(u32, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Handle {
    Held {
        token: String,
    },
    /// `size` is `None` while only prepared.
    Object {
        token: String,
        size: Option<u64>,
    },
    /// A write's own multipart upload at the key; `staged` is `None` while only prepared.
    S3Put {
        upload: String,
        staged: Option<S3Parts>,
    },
    S3Completion {
        upload_id: String,
        upload: String,
        parts: S3Parts,
    },
    AzureCompletion {
        upload_id: String,
    },
}

fn invalid(handle: &str) -> BackendError {
    BackendError::other(format!("invalid staged handle {handle:?}"))
}

fn decode(field: &str) -> Option<String> {
    let decoded = percent_decode_str(field).decode_utf8().ok()?;
    (!decoded.is_empty()).then(|| decoded.into_owned())
}

fn token(text: &str) -> Option<String> {
    is_safe_token(text).then(|| text.to_string())
}

fn parse_parts(text: &str, numbered: bool) -> Option<Vec<(u32, String)>> {
    let mut parts = Vec::new();
    for (i, item) in text.split(',').enumerate() {
        let (number, etag) = if numbered {
            let (n, etag) = item.split_once('=')?;
            (n.parse::<u32>().ok()?, etag)
        } else {
            (u32::try_from(i + 1).ok()?, item)
        };
        parts.push((number, decode(etag)?));
    }
    let ascending = parts.windows(2).all(|w| w[0].0 < w[1].0);
    (ascending && !parts.is_empty()).then_some(parts)
}

impl Handle {
    pub fn parse(handle: &str) -> Result<Self> {
        Self::try_parse(handle).ok_or_else(|| invalid(handle))
    }

    fn try_parse(handle: &str) -> Option<Self> {
        let kind = handle.chars().next()?;
        let rest = &handle[kind.len_utf8()..];
        let fields: Vec<&str> = rest.split(':').collect();
        Some(match (kind, fields.as_slice()) {
            ('m', [t]) => Self::Held { token: token(t)? },
            ('o', [t]) => Self::Object {
                token: token(t)?,
                size: None,
            },
            ('o', [t, size]) => Self::Object {
                token: token(t)?,
                size: Some(size.parse().ok()?),
            },
            ('s', [upload]) => Self::S3Put {
                upload: decode(upload)?,
                staged: None,
            },
            ('s', [upload, size, etags]) => Self::S3Put {
                upload: decode(upload)?,
                staged: Some(S3Parts {
                    size: size.parse().ok()?,
                    parts: parse_parts(etags, false)?,
                }),
            },
            ('c', [upload_id, upload, size, parts]) => Self::S3Completion {
                upload_id: token(upload_id)?,
                upload: decode(upload)?,
                parts: S3Parts {
                    size: size.parse().ok()?,
                    parts: parse_parts(parts, true)?,
                },
            },
            ('a', [upload_id]) => Self::AzureCompletion {
                upload_id: token(upload_id)?,
            },
            _ => return None,
        })
    }

    /// The provider upload a handle names, if any.
    fn provider_upload(&self) -> Option<&str> {
        match self {
            Self::S3Put { upload, .. } | Self::S3Completion { upload, .. } => Some(upload),
            _ => None,
        }
    }

    /// The staging token a handle names, if any.
    fn token(&self) -> Option<&str> {
        match self {
            Self::Held { token } | Self::Object { token, .. } => Some(token),
            _ => None,
        }
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |s: &str| utf8_percent_encode(s, FIELD).to_string();
        match self {
            Self::Held { token } => write!(f, "m{token}"),
            Self::Object { token, size: None } => write!(f, "o{token}"),
            Self::Object {
                token,
                size: Some(size),
            } => write!(f, "o{token}:{size}"),
            Self::S3Put {
                upload,
                staged: None,
            } => write!(f, "s{}", enc(upload)),
            Self::S3Put {
                upload,
                staged: Some(staged),
            } => {
                let etags: Vec<String> = staged.parts.iter().map(|(_, e)| enc(e)).collect();
                write!(f, "s{}:{}:{}", enc(upload), staged.size, etags.join(","))
            }
            Self::S3Completion {
                upload_id,
                upload,
                parts,
            } => {
                let listed: Vec<String> = parts
                    .parts
                    .iter()
                    .map(|(n, e)| format!("{n}={}", enc(e)))
                    .collect();
                write!(
                    f,
                    "c{upload_id}:{}:{}:{}",
                    enc(upload),
                    parts.size,
                    listed.join(",")
                )
            }
            Self::AzureCompletion { upload_id } => write!(f, "a{upload_id}"),
        }
    }
}

/// Splits a client upload's S3 handle `<upload id>:<provider upload id>`.
pub(super) fn split_s3_handle(handle: &str) -> Result<(&str, &str)> {
    match handle.split_once(':') {
        Some((id, provider)) if is_safe_token(id) && !provider.is_empty() => Ok((id, provider)),
        _ => Err(BackendError::other(format!(
            "invalid S3 upload handle {handle:?}"
        ))),
    }
}

/// What the handles the gateway still holds (`collect_staged`'s `live`) protect: staging
/// tokens and provider uploads, read from every handle form, client uploads' included.
/// A string that could be read two ways protects both: sparing too much is safe, removing a
/// live copy is not.
#[derive(Debug, Default)]
pub(super) struct Live {
    tokens: HashSet<String>,
    provider_uploads: HashSet<String>,
}

impl Live {
    pub fn new(live: &HashSet<String>) -> Self {
        let mut out = Self::default();
        for handle in live {
            if let Some(parsed) = Handle::try_parse(handle) {
                if let Some(token) = parsed.token() {
                    out.tokens.insert(token.to_string());
                }
                if let Some(upload) = parsed.provider_upload() {
                    out.provider_uploads.insert(upload.to_string());
                }
            }
            if let Ok((_, provider)) = split_s3_handle(handle) {
                out.provider_uploads.insert(provider.to_string());
            }
        }
        out
    }

    pub fn has_token(&self, token: &str) -> bool {
        self.tokens.contains(token)
    }

    pub fn has_provider_upload(&self, upload: &str) -> bool {
        self.provider_uploads.contains(upload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(h: Handle) {
        let text = h.to_string();
        assert!(
            text.bytes().all(|b| (0x21..0x7f).contains(&b)),
            "not printable: {text:?}"
        );
        assert_eq!(Handle::parse(&text).expect("parse"), h, "{text}");
    }

    #[test]
    fn every_form_round_trips() {
        round_trip(Handle::Held {
            token: "v1x0123".into(),
        });
        round_trip(Handle::Object {
            token: "abc".into(),
            size: None,
        });
        round_trip(Handle::Object {
            token: "abc".into(),
            size: Some(17),
        });
        round_trip(Handle::S3Put {
            upload: "a:b,c=d%e f/ü".into(),
            staged: None,
        });
        round_trip(Handle::S3Put {
            upload: "id".into(),
            staged: Some(S3Parts {
                size: 20 << 20,
                parts: vec![(1, "e1".into()), (2, "e,2:x".into()), (3, "e3".into())],
            }),
        });
        round_trip(Handle::S3Completion {
            upload_id: "up1".into(),
            upload: "prov:id".into(),
            parts: S3Parts {
                size: 9,
                parts: vec![(2, "a".into()), (9, "b=c".into())],
            },
        });
        round_trip(Handle::AzureCompletion {
            upload_id: "up1".into(),
        });
    }

    #[test]
    fn malformed_handles_are_refused() {
        for bad in [
            "",
            "m",
            "m../x",
            "x123",
            "o12:notasize",
            "s",
            "sid:1",
            "sid:1:",
            "cup:id:3:2=a,1=b",
            "cup:id:3:a",
            "a",
            "aup-1",
            "published",
        ] {
            assert!(Handle::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn live_handles_protect_tokens_and_provider_uploads() {
        let staged = Handle::S3Put {
            upload: "p:1".into(),
            staged: Some(S3Parts {
                size: 1,
                parts: vec![(1, "e".into())],
            }),
        };
        let completion = Handle::S3Completion {
            upload_id: "u".into(),
            upload: "p2".into(),
            parts: S3Parts {
                size: 1,
                parts: vec![(4, "e".into())],
            },
        };
        let live: HashSet<String> = [
            "mtok1".to_string(),
            "otok2:5".to_string(),
            staged.to_string(),
            completion.to_string(),
            // A client upload's handle, with an unencoded provider id.
            "up9:raw/id:with:colons".to_string(),
        ]
        .into();
        let l = Live::new(&live);
        assert!(l.has_token("tok1") && l.has_token("tok2"));
        assert!(!l.has_token("tok3"));
        for upload in ["p:1", "p2", "raw/id:with:colons"] {
            assert!(l.has_provider_upload(upload), "{upload}");
        }
        assert!(!l.has_provider_upload("p3"));
    }

    proptest! {
        #[test]
        fn staged_s3_handles_round_trip(
            upload in "\\PC{1,40}",
            etags in proptest::collection::vec("\\PC{1,20}", 1..20),
            size in any::<u64>(),
        ) {
            let parts = etags.into_iter().enumerate().map(|(i, e)| (i as u32 + 1, e)).collect();
            let h = Handle::S3Put { upload, staged: Some(S3Parts { size, parts }) };
            prop_assert_eq!(Handle::parse(&h.to_string()).ok(), Some(h));
        }
    }
}
