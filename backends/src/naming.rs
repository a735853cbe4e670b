//! S3 (bucket, key) → physical name on a backend.
//!
//! A *plain* name is `<bucket>/<key>`, so a provider's own tools show the objects as the user
//! named them. A key gets a plain name only if every backend kind can hold it unchanged:
//! object_store's `Path` must neither reject nor re-encode it, a Linux file system must be able
//! to create it, and it must fit under the providers' 1024-byte name limit together with a
//! backend prefix. Every other key gets the *fallback* name
//! `.hansa/k/<bucket>/<hex sha256(key)>`; the real key travels in the replica's stamp.
//!
//! Bucket names never start with `.` (S3 rules), so nothing under `.hansa/` collides with a
//! bucket. Buckets that break the S3 rules (the gateway should never pass one) are hashed as
//! well: `.hansa/x/<hex sha256(bucket)>/<hex sha256(key)>`, so even they cannot escape the root.
//!
//! The user-facing description of these rules is `docs/LAYOUT.md`; keep both in step.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Longest `<bucket>/<key>` that stays plain, in bytes. S3, GCS and Azure cap object names at
/// 1024 bytes; the remaining 124 bytes are left for the backend's configured prefix.
pub const MAX_PLAIN_NAME_BYTES: usize = 900;

/// Longest path segment that stays plain, in bytes (`NAME_MAX` of ext4, XFS, btrfs).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Directory (relative to the backend root) that holds everything Hansa names itself.
pub const HANSA_DIR: &str = ".hansa";

/// Prefix of fallback names of keys in valid buckets.
pub const FALLBACK_PREFIX: &str = ".hansa/k/";

/// Prefix of fallback names of keys in buckets that break the S3 naming rules.
pub const HASHED_BUCKET_PREFIX: &str = ".hansa/x/";

/// Where backends that stage multipart parts themselves keep them: `.hansa/mpu/<upload>/`.
pub const UPLOADS_PREFIX: &str = ".hansa/mpu/";

/// Where backends keep bodies staged for publication: `.hansa/staging/<token>`.
pub const STAGING_PREFIX: &str = ".hansa/staging/";

/// Prefix of bucket markers: `.hansa/b/<bucket>`, one small stamped object per bucket and
/// backend, so that an index rebuild finds buckets that hold no object.
pub const BUCKET_MARKER_PREFIX: &str = ".hansa/b/";

/// Prefix of tombstones: `.hansa/t/<bucket>/<hex sha256(key)>`, left where a delete reached a
/// backend while another backend still owes its removal.
pub const TOMBSTONE_PREFIX: &str = ".hansa/t/";

/// Prefix of noncurrent versions: `.hansa/v/<bucket>/<hex sha256(key)>/<version id>`. Fixed
/// length whatever the key, so a version never conflicts with another name on a file system;
/// the key is in the copy's stamp. Listed only when asked for by this prefix (like records), so
/// nothing that lists objects takes an old version for the current one.
pub const VERSIONS_PREFIX: &str = ".hansa/v/";

/// Where the noncurrent version `version_id` (an ASCII alphanumeric token) of `(bucket, key)`
/// lives on every backend that holds it.
pub fn version_name(bucket: &str, key: &str, version_id: &str) -> Option<PhysicalName> {
    let key_hash = hex::encode(Sha256::digest(key.as_bytes()));
    (is_valid_bucket_name(bucket) && is_safe_token(version_id))
        .then(|| PhysicalName(format!("{VERSIONS_PREFIX}{bucket}/{key_hash}/{version_id}")))
}

/// True for names of noncurrent versions ([`version_name`]).
pub fn is_version_name(name: &str) -> bool {
    name.starts_with(VERSIONS_PREFIX)
}

/// The marker of `bucket` (a valid bucket name; Hansa creates no other).
pub fn bucket_marker_name(bucket: &str) -> Option<PhysicalName> {
    is_valid_bucket_name(bucket).then(|| PhysicalName(format!("{BUCKET_MARKER_PREFIX}{bucket}")))
}

/// The tombstone of `(bucket, key)` (a valid bucket name).
pub fn tombstone_name(bucket: &str, key: &str) -> Option<PhysicalName> {
    let key_hash = hex::encode(Sha256::digest(key.as_bytes()));
    is_valid_bucket_name(bucket)
        .then(|| PhysicalName(format!("{TOMBSTONE_PREFIX}{bucket}/{key_hash}")))
}

/// True for the names of Hansa's own records (bucket markers, tombstones): never objects,
/// never leftovers of a write.
pub fn is_record_name(name: &str) -> bool {
    name.starts_with(BUCKET_MARKER_PREFIX) || name.starts_with(TOMBSTONE_PREFIX)
}

/// A fresh token naming one staged body of `version`: the version (when it is a short safe
/// token, so a staged file shows whose it is) and a random suffix, so a version staged twice
/// (a retried completion) gets two names.
pub fn staging_token(version: &str) -> String {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    if is_safe_token(version) && version.len() <= 40 {
        format!("{version}x{}", &nonce[..16])
    } else {
        nonce
    }
}

/// Upload ids and part receipts become path segments: only ASCII letters and digits, so they
/// can never escape the upload's directory.
pub fn is_safe_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 64 && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The staged name of one uploaded part, relative to the backend root. Each upload of a part
/// gets its own `receipt`, so a part sent again never overwrites the copy an earlier
/// receipt names.
pub fn staged_part_name(upload: &str, part_number: u32, receipt: &str) -> String {
    format!("{UPLOADS_PREFIX}{upload}/{part_number:05}.{receipt}")
}

/// Bytes object_store's `PathPart` percent-encodes (its `INVALID` set, minus the controls which
/// are rejected separately). A plain name must contain none of them, so that `Path::parse` and
/// `Path::from` agree on it and the name reaches the provider byte for byte.
const PATH_ESCAPED: &[char] = &[
    '/', '\\', '{', '^', '}', '%', '`', ']', '"', '>', '[', '~', '<', '#', '|', '*', '?',
];

/// A name relative to a backend's root (directory or prefix).
///
/// Only [`plain_name`], [`fallback_name`], [`physical_name`] and [`PhysicalName::parse`] make
/// one, so every `PhysicalName` stays under the root: no empty, `.` or `..` segments, no leading
/// `/`, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhysicalName(String);

/// Error from [`PhysicalName::parse`].
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("not a valid physical name: {0:?}")]
pub struct InvalidPhysicalName(pub String);

impl PhysicalName {
    /// Accepts exactly the names this module produces (e.g. a name read back from the index).
    pub fn parse(name: &str) -> Result<Self, InvalidPhysicalName> {
        let invalid = || InvalidPhysicalName(name.to_string());
        if let Some(rest) = name.strip_prefix(FALLBACK_PREFIX) {
            let (bucket, hash) = rest.split_once('/').ok_or_else(invalid)?;
            if is_valid_bucket_name(bucket) && is_hex_digest(hash) {
                return Ok(Self(name.to_string()));
            }
            return Err(invalid());
        }
        if let Some(bucket) = name.strip_prefix(BUCKET_MARKER_PREFIX) {
            return bucket_marker_name(bucket).ok_or_else(invalid);
        }
        if let Some(rest) = name.strip_prefix(TOMBSTONE_PREFIX) {
            let (bucket, hash) = rest.split_once('/').ok_or_else(invalid)?;
            if is_valid_bucket_name(bucket) && is_hex_digest(hash) {
                return Ok(Self(name.to_string()));
            }
            return Err(invalid());
        }
        if let Some(rest) = name.strip_prefix(VERSIONS_PREFIX) {
            let mut parts = rest.splitn(3, '/');
            let (Some(bucket), Some(hash), Some(version)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(invalid());
            };
            if is_valid_bucket_name(bucket) && is_hex_digest(hash) && is_safe_token(version) {
                return Ok(Self(name.to_string()));
            }
            return Err(invalid());
        }
        if let Some(rest) = name.strip_prefix(HASHED_BUCKET_PREFIX) {
            let (bucket_hash, hash) = rest.split_once('/').ok_or_else(invalid)?;
            if is_hex_digest(bucket_hash) && is_hex_digest(hash) {
                return Ok(Self(name.to_string()));
            }
            return Err(invalid());
        }
        let (bucket, key) = name.split_once('/').ok_or_else(invalid)?;
        plain_name(bucket, key).ok_or_else(invalid)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// True for names under `.hansa/` (the key is not readable from the name).
    pub fn is_fallback(&self) -> bool {
        self.0.starts_with(".hansa/")
    }

    /// The segments of the name (never empty, never `.` or `..`).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The bucket and, for plain names, the key this name was made from.
    ///
    /// `None` bucket for names of hashed (invalid) buckets; `None` key for fallback names, whose
    /// key is only in the replica's stamp.
    pub fn origin(&self) -> (Option<&str>, Option<&str>) {
        if let Some(rest) = self
            .0
            .strip_prefix(FALLBACK_PREFIX)
            .or_else(|| self.0.strip_prefix(VERSIONS_PREFIX))
        {
            return (rest.split('/').next(), None);
        }
        if self.0.starts_with(HASHED_BUCKET_PREFIX) {
            return (None, None);
        }
        match self.0.split_once('/') {
            Some((bucket, key)) => (Some(bucket), Some(key)),
            None => (None, None),
        }
    }
}

impl fmt::Display for PhysicalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PhysicalName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PhysicalName {
    type Error = InvalidPhysicalName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<PhysicalName> for String {
    fn from(n: PhysicalName) -> String {
        n.0
    }
}

/// S3 bucket naming rules: 3–63 bytes of `a-z`, `0-9`, `-`, `.`, beginning and ending with a
/// letter or digit, no `..`. (The IP-address rule is irrelevant for naming and not checked.)
pub fn is_valid_bucket_name(bucket: &str) -> bool {
    let b = bucket.as_bytes();
    let edge_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.iter().all(|&c| edge_ok(c) || c == b'-' || c == b'.')
        && b.first().is_some_and(|&c| edge_ok(c))
        && b.last().is_some_and(|&c| edge_ok(c))
        && !bucket.contains("..")
}

/// True if `segment` can be one segment of a plain name.
pub fn is_plain_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment.len() <= MAX_SEGMENT_BYTES
        // `char::is_control` covers C0, DEL and C1; NUL is the one byte a file system rejects.
        && !segment
            .chars()
            .any(|c| c.is_control() || PATH_ESCAPED.contains(&c))
}

/// `<bucket>/<key>` if every backend kind can hold it unchanged, else `None`.
pub fn plain_name(bucket: &str, key: &str) -> Option<PhysicalName> {
    if !is_valid_bucket_name(bucket) || bucket.len() + 1 + key.len() > MAX_PLAIN_NAME_BYTES {
        return None;
    }
    if !key.split('/').all(is_plain_segment) {
        return None;
    }
    Some(PhysicalName(format!("{bucket}/{key}")))
}

/// The hashed name of `(bucket, key)`; always valid, deterministic, and distinct from every
/// plain name.
pub fn fallback_name(bucket: &str, key: &str) -> PhysicalName {
    let key_hash = hex::encode(Sha256::digest(key.as_bytes()));
    if is_valid_bucket_name(bucket) {
        PhysicalName(format!("{FALLBACK_PREFIX}{bucket}/{key_hash}"))
    } else {
        let bucket_hash = hex::encode(Sha256::digest(bucket.as_bytes()));
        PhysicalName(format!("{HASHED_BUCKET_PREFIX}{bucket_hash}/{key_hash}"))
    }
}

/// The plain name when possible, else the fallback name. (A backend may still refuse a plain
/// name with `NameConflict`; the gateway then uses [`fallback_name`].)
pub fn physical_name(bucket: &str, key: &str) -> PhysicalName {
    plain_name(bucket, key).unwrap_or_else(|| fallback_name(bucket, key))
}

fn is_hex_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_under_root(name: &PhysicalName) {
        let s = name.as_str();
        assert!(!s.starts_with('/'), "{s}");
        assert!(!s.ends_with('/'), "{s}");
        for seg in s.split('/') {
            assert!(!seg.is_empty() && seg != "." && seg != "..", "{s}");
            assert!(seg.len() <= MAX_SEGMENT_BYTES, "{s}");
            assert!(!seg.chars().any(|c| c.is_control()), "{s}");
        }
        assert!(s.len() <= MAX_PLAIN_NAME_BYTES.max(9 + 64 + 1 + 64), "{s}");
        // object_store must take the name as-is.
        let p = object_store::path::Path::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(p.as_ref(), s);
        // `Path::from` percent-encodes every non-ASCII byte (it never has to: `Path::parse`
        // keeps them), so only the ASCII part of its escaping matters.
        if s.is_ascii() {
            let rebuilt: object_store::path::Path = s.split('/').collect();
            assert_eq!(rebuilt.as_ref(), s, "Path::from_iter would re-encode {s}");
        }
        assert_eq!(PhysicalName::parse(s).as_ref(), Ok(name));
    }

    #[test]
    fn ordinary_keys_are_plain() {
        for key in [
            "a",
            "photos/2024/img 1.jpg",
            "x.tar.gz",
            "a/.hidden",
            "...",
            "a+b=c&d@e$f,g;h'i(j)k!l",
            "über/日本語/😀",
        ] {
            let n = physical_name("bucket", key);
            assert_eq!(n.as_str(), format!("bucket/{key}"));
            assert!(!n.is_fallback());
            assert_eq!(n.origin(), (Some("bucket"), Some(key)));
            assert_under_root(&n);
        }
    }

    #[test]
    fn traversal_goes_to_fallback() {
        for key in [
            "../../etc/passwd",
            "..",
            ".",
            "./x",
            "a/./b",
            "a/../b",
            "/etc/passwd",
        ] {
            assert!(plain_name("bucket", key).is_none(), "{key}");
            let n = physical_name("bucket", key);
            assert!(n.as_str().starts_with(".hansa/k/bucket/"), "{n}");
            assert_under_root(&n);
        }
    }

    #[test]
    fn empty_segments_go_to_fallback_and_stay_distinct() {
        let pairs = [("a//b", "a/b"), ("dir/", "dir"), ("/a", "a"), ("", "x")];
        for (odd, normal) in pairs {
            assert!(plain_name("bucket", odd).is_none(), "{odd:?}");
            assert_ne!(
                physical_name("bucket", odd),
                physical_name("bucket", normal)
            );
        }
        assert_eq!(physical_name("bucket", "a/b").as_str(), "bucket/a/b");
        assert_eq!(physical_name("bucket", "dir").as_str(), "bucket/dir");
    }

    #[test]
    fn escaped_and_control_characters_go_to_fallback() {
        for key in [
            "a%20b",
            "a~",
            "x?y",
            "a\\b",
            "tab\there",
            "nl\n",
            "nul\0",
            "c1\u{85}",
            "del\u{7f}",
        ] {
            assert!(plain_name("bucket", key).is_none(), "{key:?}");
            assert_under_root(&physical_name("bucket", key));
        }
    }

    #[test]
    fn length_limits() {
        let seg255 = "a".repeat(255);
        assert!(plain_name("bucket", &seg255).is_some());
        assert!(plain_name("bucket", &"a".repeat(256)).is_none());
        let key_1024 = format!("{}/{}", "b".repeat(200), "c".repeat(823));
        assert_eq!(key_1024.len(), 1024);
        assert!(plain_name("bucket", &key_1024).is_none());
        assert_under_root(&physical_name("bucket", &key_1024));
        // Exactly at the limit: "bucket/" + 3 × (255 + 1) + rest.
        let mut key = format!("{0}/{0}/{0}/", "s".repeat(255));
        key.push_str(&"t".repeat(MAX_PLAIN_NAME_BYTES - 7 - key.len()));
        let name = plain_name("bucket", &key);
        assert_eq!(name.map(|n| n.as_str().len()), Some(MAX_PLAIN_NAME_BYTES));
        key.push('t');
        assert!(plain_name("bucket", &key).is_none());
    }

    #[test]
    fn invalid_buckets_are_hashed() {
        for bucket in ["..", ".", "", "a/b", "../x", "UPPER", ".hansa", "ab"] {
            assert!(plain_name(bucket, "k").is_none(), "{bucket}");
            let n = physical_name(bucket, "k");
            assert!(n.as_str().starts_with(HASHED_BUCKET_PREFIX), "{n}");
            assert_under_root(&n);
            assert_eq!(n.origin(), (None, None));
        }
    }

    #[test]
    fn parse_rejects_foreign_names() {
        for s in [
            "",
            "bucket",
            "bucket/",
            "/bucket/a",
            "bucket/../x",
            "bucket//x",
            ".hansa/k/bucket/xyz",
            ".hansa/tmp/abc",
            ".hansa/k/../0000000000000000000000000000000000000000000000000000000000000000",
            "bucket/a%2Fb",
        ] {
            assert!(PhysicalName::parse(s).is_err(), "{s:?}");
        }
        let n = fallback_name("bucket", "a//b");
        assert_eq!(PhysicalName::parse(n.as_str()), Ok(n.clone()));
        assert_eq!(n.origin(), (Some("bucket"), None));
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(serde_json::from_str::<PhysicalName>(&json).unwrap(), n);
        assert!(serde_json::from_str::<PhysicalName>("\"../x\"").is_err());
    }

    #[test]
    fn record_names() {
        let marker = bucket_marker_name("photos").unwrap();
        assert_eq!(marker.as_str(), ".hansa/b/photos");
        assert_under_root(&marker);
        assert!(is_record_name(marker.as_str()));
        let tomb = tombstone_name("photos", "a//b").unwrap();
        assert_eq!(
            tomb.as_str(),
            format!(".hansa/t/photos/{}", hex::encode(Sha256::digest(b"a//b")))
        );
        assert_under_root(&tomb);
        assert!(is_record_name(tomb.as_str()));
        // Distinct from the key's own names, plain or fallback.
        assert_ne!(tomb, physical_name("photos", "a//b"));
        assert_ne!(tomb, fallback_name("photos", "a//b"));
        assert!(!is_record_name(fallback_name("photos", "a//b").as_str()));
        assert!(!is_record_name("photos/x"));
        for bad in ["..", "UPPER", "a/b", ""] {
            assert!(bucket_marker_name(bad).is_none(), "{bad}");
            assert!(tombstone_name(bad, "k").is_none(), "{bad}");
        }
        for s in [
            ".hansa/b/ab",
            ".hansa/b/photos/x",
            ".hansa/t/photos/xyz",
            ".hansa/t/photos",
        ] {
            assert!(PhysicalName::parse(s).is_err(), "{s:?}");
        }
    }

    fn bucket_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]",
            Just("bucket".to_string()),
            // Invalid buckets must also stay under the root.
            "[./a-zA-Z_]{0,6}",
        ]
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            // Mostly-plain keys.
            "[a-zA-Z0-9 ._-]{1,12}(/[a-zA-Z0-9 ._é日-]{1,12}){0,4}",
            // Hostile keys: separators, dots, escapes, controls, unicode.
            "[/.a%~\\\\?#\\x00\\n\\t é😀]{0,24}",
            // Long keys around the limits.
            "[a-z/]{200,1100}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_name_stays_under_root(bucket in bucket_strategy(), key in key_strategy()) {
            assert_under_root(&physical_name(&bucket, &key));
            assert_under_root(&fallback_name(&bucket, &key));
        }

        #[test]
        fn plain_keys_map_to_bucket_slash_key(bucket in "[a-z0-9][a-z0-9-]{1,20}[a-z0-9]",
                                             key in "[a-zA-Z0-9 ._-]{1,12}(/[a-zA-Z0-9 ._é日-]{1,12}){0,4}") {
            prop_assume!(key.split('/').all(|s| s != "." && s != ".."));
            let n = plain_name(&bucket, &key);
            prop_assert_eq!(n.as_ref().map(|n| n.as_str().to_string()), Some(format!("{bucket}/{key}")));
            let name = physical_name(&bucket, &key);
            prop_assert_eq!(name.as_str(), format!("{bucket}/{key}"));
        }

        #[test]
        fn distinct_inputs_get_distinct_names(b1 in bucket_strategy(), k1 in key_strategy(),
                                              b2 in bucket_strategy(), k2 in key_strategy()) {
            prop_assume!((&b1, &k1) != (&b2, &k2));
            prop_assert_ne!(physical_name(&b1, &k1), physical_name(&b2, &k2));
            prop_assert_ne!(fallback_name(&b1, &k1), fallback_name(&b2, &k2));
            // A plain name never equals any fallback name.
            prop_assert_ne!(physical_name(&b1, &k1), fallback_name(&b2, &k2));
        }

        #[test]
        fn near_collisions_stay_distinct(bucket in bucket_strategy(), key in "[a/.]{0,8}") {
            for variant in [format!("{key}/"), format!("/{key}"), key.replace('/', "//"), format!("{key}/.")] {
                if variant != key {
                    prop_assert_ne!(physical_name(&bucket, &key), physical_name(&bucket, &variant));
                }
            }
        }

        #[test]
        fn fallback_is_deterministic(bucket in bucket_strategy(), key in key_strategy()) {
            prop_assert_eq!(fallback_name(&bucket, &key), fallback_name(&bucket, &key));
            prop_assert_eq!(physical_name(&bucket, &key), physical_name(&bucket, &key));
            let n = fallback_name(&bucket, &key);
            prop_assert!(n.is_fallback());
        }
    }
}
