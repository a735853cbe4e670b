//! `x-amz-copy-source` → (bucket, key).
//!
//! Input: the header's value as text, or `!` and structured bytes for the round trip.
//!
//! Invariants: an accepted source names a non-empty bucket without `/` and a non-empty key;
//! any bucket and key, percent-encoded as SDKs do, parse back to themselves.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use hansa::s3::ops::copy::parse_copy_source;
use libfuzzer_sys::fuzz_target;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What SDKs leave unencoded in a copy source (`/` between key segments included).
const SDK_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

#[derive(Arbitrary, Debug)]
struct RoundTrip {
    bucket: String,
    key: String,
    leading_slash: bool,
    null_version: bool,
}

fn raw(value: &str) {
    if let Ok((bucket, key)) = parse_copy_source(value) {
        assert!(!bucket.is_empty() && !bucket.contains('/'), "{bucket:?}");
        assert!(!key.is_empty(), "{value:?}");
    }
}

fn round_trip(input: RoundTrip) {
    let RoundTrip {
        bucket,
        key,
        leading_slash,
        null_version,
    } = input;
    {
        if bucket.is_empty() || bucket.contains('/') || key.is_empty() {
            return;
        }
        let value = format!(
            "{}{}/{}{}",
            if leading_slash { "/" } else { "" },
            utf8_percent_encode(&bucket, SDK_SET),
            utf8_percent_encode(&key, SDK_SET),
            if null_version { "?versionId=null" } else { "" },
        );
        let parsed = parse_copy_source(&value).unwrap();
        assert_eq!(parsed, (bucket, key), "{value}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(structured) = data.strip_prefix(b"!") {
        if let Ok(input) = RoundTrip::arbitrary(&mut Unstructured::new(structured)) {
            round_trip(input);
        }
    } else if let Ok(text) = std::str::from_utf8(data) {
        raw(text);
    }
});
