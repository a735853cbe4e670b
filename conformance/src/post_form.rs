//! Browser form uploads (S3 POST object) by hand: policy documents and their signatures, as a
//! web application's server makes them for its HTML forms.

use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

use crate::{Key, REGION};

/// A policy document expiring at `expiration` with these conditions.
pub fn policy(expiration: SystemTime, conditions: &[Value]) -> String {
    let expiration = time::OffsetDateTime::from(expiration)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({ "expiration": expiration, "conditions": conditions }).to_string()
}

/// The SigV4 form fields (`x-amz-algorithm`, `x-amz-credential`, `x-amz-date`, `policy`,
/// `x-amz-signature`) for `key` signing at `time`: the credential fields are added to the
/// policy's conditions, as S3 requires.
pub fn v4_fields(
    key: Key,
    time: SystemTime,
    expiration: SystemTime,
    conditions: &[Value],
) -> Vec<(String, String)> {
    v4_fields_with_secret(
        key.access_key_id,
        key.secret_access_key,
        time,
        expiration,
        conditions,
    )
}

pub fn v4_fields_with_secret(
    access_key_id: &str,
    secret: &str,
    time: SystemTime,
    expiration: SystemTime,
    conditions: &[Value],
) -> Vec<(String, String)> {
    let at = time::OffsetDateTime::from(time);
    let amz_date = at
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let day = amz_date.get(..8).unwrap_or_default().to_string();
    let credential = format!("{access_key_id}/{day}/{REGION}/s3/aws4_request");
    let mut all = conditions.to_vec();
    all.push(json!({ "x-amz-algorithm": "AWS4-HMAC-SHA256" }));
    all.push(json!({ "x-amz-credential": credential }));
    all.push(json!({ "x-amz-date": amz_date }));
    let policy_b64 = BASE64.encode(policy(expiration, &all));
    let signing_key = aws_sigv4::sign::v4::generate_signing_key(secret, time, REGION, "s3");
    let signature =
        aws_sigv4::sign::v4::calculate_signature(signing_key.as_ref(), policy_b64.as_bytes());
    vec![
        ("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()),
        ("x-amz-credential".into(), credential),
        ("x-amz-date".into(), amz_date),
        ("policy".into(), policy_b64),
        ("x-amz-signature".into(), signature),
    ]
}

/// The SigV2 form fields (`AWSAccessKeyId`, `policy`, `signature`).
pub fn v2_fields(key: Key, expiration: SystemTime, conditions: &[Value]) -> Vec<(String, String)> {
    let policy_b64 = BASE64.encode(policy(expiration, conditions));
    let mut mac = Hmac::<Sha1>::new_from_slice(key.secret_access_key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(policy_b64.as_bytes());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    vec![
        ("AWSAccessKeyId".into(), key.access_key_id.into()),
        ("policy".into(), policy_b64),
        ("signature".into(), signature),
    ]
}
