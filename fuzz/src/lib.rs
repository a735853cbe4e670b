//! What the auth and chunked targets share: the AWS documentation's example credential, a
//! signer that works as aws-sdk-s3's does, and request builders that skip (rather than panic
//! on) inputs `http` itself refuses.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use hansa::s3::auth::sigv4::RequestDate;
use hansa::s3::auth::{AuthError, AuthSettings, Credential, CredentialStore, Verified};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

pub const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const HOST: &str = "examplebucket.s3.amazonaws.com";
pub const AMZ_DATE: &str = "20130524T000000Z";

/// SigV4's unreserved set: everything else is percent-encoded.
pub const SIGV4_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn doc_time() -> SystemTime {
    RequestDate::parse_amz(AMZ_DATE).unwrap().time
}

pub fn store() -> CredentialStore {
    CredentialStore::new(vec![Credential {
        access_key_id: AKID.into(),
        secret_access_key: SECRET.into(),
        buckets: None,
        read_only: false,
    }])
}

pub fn authenticate(parts: &http::request::Parts) -> Result<Verified, AuthError> {
    hansa::s3::auth::authenticate(parts, &store(), &AuthSettings::default(), doc_time())
}

/// Whatever the outcome, it must be one the S3 layer can answer with.
pub fn check_outcome(outcome: &Result<Verified, AuthError>) {
    match outcome {
        Ok(verified) => assert_eq!(verified.access_key_id, AKID),
        Err(error) => {
            assert!(matches!(error.http_status(), 400 | 403), "{error:?}");
            assert!(!error.s3_code().is_empty());
            assert!(!error.to_string().is_empty());
        }
    }
}

/// Request parts from raw pieces; `None` where `http` refuses them (the server never sees
/// such a request).
pub fn parts(method: &str, uri: &str, headers: &[(&str, &[u8])]) -> Option<http::request::Parts> {
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(method.as_bytes()).ok()?)
        .uri(uri.parse::<http::Uri>().ok()?);
    for (name, value) in headers {
        builder = builder.header(
            http::HeaderName::from_bytes(name.as_bytes()).ok()?,
            http::HeaderValue::from_bytes(value).ok()?,
        );
    }
    Some(builder.body(()).ok()?.into_parts().0)
}

pub fn sdk_settings(location: SignatureLocation, expires: Option<Duration>) -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.signature_location = location;
    settings.expires_in = expires;
    settings
}

/// Signs like aws-sdk-s3 and returns the request parts as the server would see them; `None`
/// where the signer or `http` refuses the input.
pub fn sdk_sign(
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    body: SignableBody<'_>,
    settings: SigningSettings,
) -> Option<http::request::Parts> {
    let credentials = aws_credential_types::Credentials::new(AKID, SECRET, None, None, "fuzz");
    let identity = credentials.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(doc_time())
        .settings(settings)
        .build()
        .ok()?
        .into();
    let mut request = http::Request::builder()
        .method(http::Method::from_bytes(method.as_bytes()).ok()?)
        .uri(uri.parse::<http::Uri>().ok()?);
    for (name, value) in headers {
        request = request.header(
            http::HeaderName::from_bytes(name.as_bytes()).ok()?,
            http::HeaderValue::from_str(value).ok()?,
        );
    }
    let mut request = request.body(()).ok()?;
    let signable = SignableRequest::new(
        method,
        uri,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
    )
    .ok()?;
    let (instructions, _signature) = sign(signable, &params).ok()?.into_parts();
    instructions.apply_to_request_http1x(&mut request);
    Some(request.into_parts().0)
}

/// A request head as text, the form the seed corpora are written in:
/// `METHOD target` on the first line, then `name: value` lines (`\n` or `\r\n`).
pub struct Head<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub headers: Vec<(&'a str, &'a [u8])>,
}

pub fn parse_head(data: &[u8]) -> Option<Head<'_>> {
    let mut lines = data
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = std::str::from_utf8(lines.next()?).ok()?;
    let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
    let mut headers = Vec::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = std::str::from_utf8(&line[..colon]).ok()?;
        headers.push((name.trim(), line[colon + 1..].trim_ascii()));
    }
    Some(Head {
        method,
        target,
        headers,
    })
}

impl Head<'_> {
    pub fn parts(&self) -> Option<http::request::Parts> {
        parts(self.method, self.target, &self.headers)
    }
}

/// A request generated from fuzz input, to be signed correctly and then, optionally, altered
/// in one way that the signature covers.
#[derive(arbitrary::Arbitrary, Debug)]
pub struct SignedRequest {
    pub method: u8,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(u8, String)>,
    pub tamper: Option<Tamper>,
}

#[derive(arbitrary::Arbitrary, Debug, Clone, Copy)]
pub enum Tamper {
    /// One hex digit of the signature changed to another value.
    Signature(u8),
    Method,
    /// A byte appended to the path.
    Path,
    /// A query parameter added.
    Query,
    /// A byte appended to a signed header's value.
    Header(u8),
}

pub const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];
/// Headers a client signs; `host` is always sent.
pub const SIGNED_HEADER_NAMES: [&str; 6] = [
    "range",
    "content-type",
    "x-amz-meta-a",
    "x-amz-meta-b",
    "x-amz-copy-source",
    "content-md5",
];

impl SignedRequest {
    pub fn method(&self) -> &'static str {
        METHODS[usize::from(self.method) % METHODS.len()]
    }

    pub fn uri(&self) -> String {
        let mut uri = String::new();
        for segment in &self.segments {
            uri.push('/');
            uri.extend(percent_encoding::utf8_percent_encode(segment, SIGV4_SET));
        }
        if uri.is_empty() {
            uri.push('/');
        }
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(name, value)| {
                format!(
                    "{}={}",
                    percent_encoding::utf8_percent_encode(name, SIGV4_SET),
                    percent_encoding::utf8_percent_encode(value, SIGV4_SET)
                )
            })
            .collect();
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&query.join("&"));
        }
        uri
    }

    /// Header values are visible ASCII with single inner spaces, which every signer and server
    /// canonicalises alike; one value per name.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut out = vec![("host".to_owned(), HOST.to_owned())];
        for (index, value) in &self.headers {
            let name = SIGNED_HEADER_NAMES[usize::from(*index) % SIGNED_HEADER_NAMES.len()];
            let value: String = value
                .chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .collect::<String>()
                .split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            if value.is_empty() || out.iter().any(|(n, _)| n == name) {
                continue;
            }
            out.push((name.to_owned(), value));
        }
        out
    }

    /// Rebuilds the parts with one alteration; the new request must not pass as signed.
    pub fn tampered(
        &self,
        signed: &http::request::Parts,
        tamper: Tamper,
        signature_in_query: bool,
    ) -> Option<http::request::Parts> {
        let mut method = signed.method.as_str().to_owned();
        let mut uri = signed.uri.to_string();
        let mut headers: Vec<(String, Vec<u8>)> = signed
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        match tamper {
            Tamper::Signature(at) => {
                let offset = usize::from(at) % 64;
                if signature_in_query {
                    let start = uri.find("X-Amz-Signature=")? + "X-Amz-Signature=".len();
                    flip_hex(&mut uri, start + offset)?;
                } else {
                    let (_, value) = headers.iter_mut().find(|(n, _)| n == "authorization")?;
                    let mut text = String::from_utf8(value.clone()).ok()?;
                    let start = text.find("Signature=")? + "Signature=".len();
                    flip_hex(&mut text, start + offset)?;
                    *value = text.into_bytes();
                }
            }
            Tamper::Method => {
                method = METHODS
                    .iter()
                    .find(|m| **m != method)
                    .map(|m| (*m).to_owned())?;
            }
            Tamper::Path => {
                let at = uri.find('?').unwrap_or(uri.len());
                uri.insert(at, 'x');
            }
            Tamper::Query => {
                uri.push(if uri.contains('?') { '&' } else { '?' });
                uri.push_str("tampered=1");
            }
            Tamper::Header(index) => {
                let names = signed_header_names(signed);
                let name = names.get(usize::from(index) % names.len().max(1))?;
                let (_, value) = headers.iter_mut().find(|(n, _)| n == name)?;
                value.push(b'x');
            }
        }
        parts_from(&method, &uri, &headers)
    }
}

/// The names the request's signature covers (Authorization header or presigned query).
pub fn signed_header_names(parts: &http::request::Parts) -> Vec<String> {
    let from_header = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|text| text.split("SignedHeaders=").nth(1))
        .and_then(|rest| rest.split(',').next())
        .map(str::to_owned);
    let from_query = || {
        parts.uri.query().and_then(|query| {
            query.split('&').find_map(|pair| {
                let value = pair.strip_prefix("X-Amz-SignedHeaders=")?;
                percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .ok()
                    .map(|v| v.into_owned())
            })
        })
    };
    from_header
        .or_else(from_query)
        .map(|list| list.split(';').map(str::to_owned).collect())
        .unwrap_or_default()
}

fn flip_hex(text: &mut String, index: usize) -> Option<()> {
    let digit = text.get(index..index + 1)?;
    let value = u8::from_str_radix(digit, 16).ok()?;
    let replacement = format!("{:x}", (value + 1) % 16);
    text.replace_range(index..index + 1, &replacement);
    Some(())
}

fn parts_from(
    method: &str,
    uri: &str,
    headers: &[(String, Vec<u8>)],
) -> Option<http::request::Parts> {
    let borrowed: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    parts(method, uri, &borrowed)
}
