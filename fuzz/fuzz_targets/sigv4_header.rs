//! SigV4 with the Authorization header: parsing of the header, the credential scope, the
//! signed-header list and the date, then signature verification.
//!
//! Input, by its first byte:
//! - `!` and structured bytes: a request generated from them is signed as aws-sdk-s3 signs it
//!   and must be accepted; altered afterwards in a way the signature covers, it must be refused.
//! - anything else: a request head as text (see `hansa_fuzz::parse_head`), authenticated at
//!   the AWS examples' date with their credential.
//!
//! Invariants: every outcome is an S3 error of status 400 or 403, or an acceptance for the one
//! known key; a parsed header and scope say what the text said.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use aws_sigv4::http_request::{SignableBody, SignatureLocation};
use hansa::s3::auth::sigv4::{AuthorizationHeader, CredentialScope, SignedHeaders};
use hansa_fuzz::{authenticate, check_outcome, sdk_settings, sdk_sign, SignedRequest};
use libfuzzer_sys::fuzz_target;

fn check_parsers(authorization: &str) {
    let Ok(header) = AuthorizationHeader::parse(authorization) else {
        return;
    };
    let rebuilt = format!(
        "AWS4-HMAC-SHA256 Credential={}, SignedHeaders={}, Signature={}",
        header.credential, header.signed_headers, header.signature
    );
    assert_eq!(AuthorizationHeader::parse(&rebuilt).as_ref(), Ok(&header));
    if let Ok(scope) = CredentialScope::parse(header.credential, "us-east-1") {
        assert_eq!(scope.region, "us-east-1");
        assert!(scope.day.len() == 8 && scope.day.bytes().all(|b| b.is_ascii_digit()));
        assert!(!scope.access_key_id.is_empty());
        assert_eq!(
            format!("{}/{}", scope.access_key_id, scope.string()),
            header.credential
        );
    }
    if let Some(signed) = SignedHeaders::parse(header.signed_headers) {
        for name in signed.names() {
            assert!(!name.is_empty());
            assert!(!name
                .chars()
                .any(|c| c.is_whitespace() || c.is_ascii_uppercase()));
            assert!(signed.contains(name));
        }
    }
}

fn signed_round_trip(request: &SignedRequest) {
    let settings = sdk_settings(SignatureLocation::Headers, None);
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
        if let Some(altered) = request.tampered(&parts, tamper, false) {
            let outcome = authenticate(&altered);
            check_outcome(&outcome);
            assert!(outcome.is_err(), "{tamper:?} accepted: {altered:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(structured) = data.strip_prefix(b"!") {
        if let Ok(request) = SignedRequest::arbitrary(&mut Unstructured::new(structured)) {
            signed_round_trip(&request);
        }
        return;
    }
    let Some(head) = hansa_fuzz::parse_head(data) else {
        return;
    };
    for (name, value) in &head.headers {
        if name.eq_ignore_ascii_case("authorization") {
            if let Ok(text) = std::str::from_utf8(value) {
                check_parsers(text);
            }
        }
    }
    if let Some(parts) = head.parts() {
        check_outcome(&authenticate(&parts));
    }
});
