//! SigV4 presigned URLs: the `X-Amz-*` query parameters (each exactly once, expiry window,
//! credential scope, signed headers), then signature verification.
//!
//! Input, by its first byte:
//! - `!` and structured bytes: a request generated from them is presigned as aws-sdk-s3
//!   presigns and must be accepted; altered afterwards in a way the signature covers, it must
//!   be refused.
//! - anything else: a request head as text (see `hansa_fuzz::parse_head`) whose target carries
//!   the query, authenticated at the AWS examples' date with their credential.
//!
//! Invariants: every outcome is an S3 error of status 400 or 403, or an acceptance for the one
//! known key; a query without presigned parameters and without an Authorization header is
//! anonymous, never malformed or accepted.

#![no_main]

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use aws_sigv4::http_request::{SignableBody, SignatureLocation};
use hansa::s3::auth::presigned::{is_presigned_v2, is_presigned_v4};
use hansa::s3::auth::AuthError;
use hansa_fuzz::{authenticate, check_outcome, sdk_settings, sdk_sign, SignedRequest};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Presigned {
    request: SignedRequest,
    expires: u32,
}

fn signed_round_trip(input: &Presigned) {
    let request = &input.request;
    // SDKs refuse more than a week; zero is refused by S3 and by the gateway.
    let expires = Duration::from_secs(1 + u64::from(input.expires) % (7 * 24 * 3600));
    let settings = sdk_settings(SignatureLocation::QueryParams, Some(expires));
    // The generated query must not carry presigned parameters of its own.
    if request
        .query
        .iter()
        .any(|(name, _)| name.starts_with("X-Amz-") || name == "AWSAccessKeyId")
    {
        return;
    }
    let Some(parts) = sdk_sign(
        request.method(),
        &request.uri(),
        &request.headers(),
        SignableBody::UnsignedPayload,
        settings,
    ) else {
        return;
    };
    let outcome = authenticate(&parts);
    assert!(outcome.is_ok(), "{outcome:?} for {parts:?}");
    if let Some(tamper) = request.tamper {
        if let Some(altered) = request.tampered(&parts, tamper, true) {
            let outcome = authenticate(&altered);
            check_outcome(&outcome);
            assert!(outcome.is_err(), "{tamper:?} accepted: {altered:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(structured) = data.strip_prefix(b"!") {
        if let Ok(input) = Presigned::arbitrary(&mut Unstructured::new(structured)) {
            signed_round_trip(&input);
        }
        return;
    }
    let Some(parts) = hansa_fuzz::parse_head(data).and_then(|head| head.parts()) else {
        return;
    };
    let outcome = authenticate(&parts);
    check_outcome(&outcome);
    let query = parts.uri.query().unwrap_or("");
    if !parts.headers.contains_key("authorization")
        && !is_presigned_v4(query)
        && !is_presigned_v2(query)
    {
        assert_eq!(outcome.unwrap_err(), AuthError::Anonymous);
    }
});
