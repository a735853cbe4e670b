//! AWS Signature Version 2: `Authorization: AWS <AccessKeyId>:<Signature>` and the query form
//! (`AWSAccessKeyId`, `Signature`, `Expires`), as S3 documents it in "Signing and
//! authenticating REST requests".
//!
//! The signature is the Base64 HMAC-SHA1 of
//! `VERB \n Content-MD5 \n Content-Type \n Date-or-Expires \n CanonicalizedAmzHeaders
//! CanonicalizedResource`. It covers neither the payload nor, for the query form, a replay
//! window other than `Expires`: the body is checked only against a `Content-MD5` the client
//! sends (by the body path, as for any request).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderValue;
use percent_encoding::percent_decode;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::sigv4;
use super::{AuthError, AuthSettings, CredentialStore, PayloadCheck, Verified};

/// The scheme prefix of a SigV2 Authorization header (`AWS4-HMAC-SHA256` does not match it).
const SCHEME: &[u8] = b"AWS ";

pub const ACCESS_KEY_PARAM: &str = "AWSAccessKeyId";
pub const SIGNATURE_PARAM: &str = "Signature";
pub const EXPIRES_PARAM: &str = "Expires";

const X_AMZ_DATE: &str = "x-amz-date";

/// Query parameters that are part of the CanonicalizedResource: the sub-resources S3's
/// documentation lists, the `response-*` overrides, `delete`, and the further sub-resources
/// the SDKs sign (botocore's list, the most complete one a client uses). Every other parameter
/// (`prefix`, `marker`, `max-keys`, `list-type`…) is not signed in V2, as in S3.
const SIGNED_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// The Authorization value uses the SigV2 scheme.
pub fn is_v2_authorization(value: &HeaderValue) -> bool {
    value.as_bytes().starts_with(SCHEME)
}

/// The query carries SigV2 query-authentication parameters. Either one is enough: a URL with
/// only some of them is a broken presigned URL, not an anonymous request.
pub fn is_presigned_v2(raw_query: &str) -> bool {
    sigv4::query_pairs(raw_query).iter().any(|(name, _)| {
        name.as_slice() == ACCESS_KEY_PARAM.as_bytes()
            || name.as_slice() == SIGNATURE_PARAM.as_bytes()
    })
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    // HMAC takes keys of any length; the fallback only keeps this total.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return [0; 20];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The Base64 signature of `string_to_sign` with `secret`, as a client computes it.
pub fn sign(secret: &str, string_to_sign: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha1(secret.as_bytes(), string_to_sign))
}

/// Parses a V2 date: the RFC 2616 forms (`Tue, 27 Mar 2007 19:36:42 GMT`, RFC 850, asctime)
/// and the numeric zone the S3 documentation and s3cmd use (`… 19:36:42 +0000`).
pub fn parse_date(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(time) = httpdate::parse_http_date(text) {
        return Some(time);
    }
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc2822).ok()?;
    Some(parsed.into())
}

// ---------------------------------------------------------------------------------------------
// StringToSign

/// The first value of a positional header (`Content-MD5`, `Content-Type`), trimmed; empty when
/// absent.
fn positional(headers: &http::HeaderMap, name: &str) -> Vec<u8> {
    headers
        .get(name)
        .map(|value| value.as_bytes().trim_ascii().to_vec())
        .unwrap_or_default()
}

/// `name:value\n` for every `x-amz-*` header, names lower-case (as `http` keeps them) and
/// sorted, values of a repeated header joined by `,` in the order sent, each value trimmed.
/// `skip` leaves one header out (the docs' x-amz-date form, see [`date_forms`]).
fn canonical_amz_headers(headers: &http::HeaderMap, skip: Option<&str>) -> Vec<u8> {
    let mut sorted: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        if name.starts_with("x-amz-") && Some(name) != skip {
            sorted
                .entry(name)
                .or_default()
                .push(value.as_bytes().trim_ascii());
        }
    }
    let mut out = Vec::new();
    for (name, values) in sorted {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (index, value) in values.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(value);
        }
        out.push(b'\n');
    }
    out
}

/// The signed sub-resources, `?name[=value]&…`, sorted by name (stable, so repeated names keep
/// their order). Values are signed decoded, as S3 documents. `empty_without_equals` writes a
/// parameter sent as `name=` as `name`, the form some signers use.
fn canonical_subresources(raw_query: &str, empty_without_equals: bool) -> Vec<u8> {
    let mut pairs: Vec<(&str, Option<Vec<u8>>)> = raw_query
        .split('&')
        .filter_map(|piece| {
            let (name, value) = match piece.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (piece, None),
            };
            SIGNED_SUBRESOURCES
                .contains(&name)
                .then(|| (name, value.map(|v| percent_decode(v.as_bytes()).collect())))
        })
        .collect();
    if pairs.is_empty() {
        return Vec::new();
    }
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = vec![b'?'];
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name.as_bytes());
        match value {
            Some(value) if !(empty_without_equals && value.is_empty()) => {
                out.push(b'=');
                out.extend_from_slice(value);
            }
            _ => {}
        }
    }
    out
}

/// CanonicalizedResource candidates: `/bucket` for a virtual-host request, then the path as
/// sent (S3 signs it literally, encoding included), then the sub-resources. As for SigV4, the
/// path decoded and re-encoded is accepted too (clients differ in what they escape; both name
/// the same key), and an empty sub-resource value with or without its `=`.
fn canonical_resources(parts: &http::request::Parts, base_domains: &[String]) -> Vec<Vec<u8>> {
    let bucket = crate::s3::host::virtual_host_bucket(&parts.headers, &parts.uri, base_domains);
    let query = parts.uri.query().unwrap_or("");
    let mut subresources = vec![canonical_subresources(query, false)];
    let alternative = canonical_subresources(query, true);
    if alternative != subresources[0] {
        subresources.push(alternative);
    }
    let mut out = Vec::new();
    for path in sigv4::canonical_uri_candidates(parts.uri.path()) {
        for sub in &subresources {
            let mut resource = Vec::new();
            if let Some(bucket) = &bucket {
                resource.push(b'/');
                resource.extend_from_slice(bucket.as_bytes());
            }
            resource.extend_from_slice(path.as_bytes());
            resource.extend_from_slice(sub);
            out.push(resource);
        }
    }
    out
}

/// What goes into the Date position and which `x-amz-*` headers are listed.
struct DateForm {
    date: Vec<u8>,
    skip_amz: Option<&'static str>,
}

/// The Date position. The query form signs `Expires` there. With an `x-amz-date` header, S3's
/// documentation gives two forms, and both are accepted (each covers the x-amz-date value
/// once): its text says the Date position is empty and `x-amz-date` is listed among the
/// `x-amz-*` headers (the AWS SDKs and boto sign so); its worked DELETE example puts the
/// x-amz-date value in the Date position and does not list it again. Without x-amz-date, the
/// `Date` header.
fn date_forms(headers: &http::HeaderMap, expires: Option<&str>) -> Vec<DateForm> {
    if let Some(expires) = expires {
        return vec![DateForm {
            date: expires.as_bytes().to_vec(),
            skip_amz: None,
        }];
    }
    if let Some(amz_date) = headers.get(X_AMZ_DATE) {
        return vec![
            DateForm {
                date: Vec::new(),
                skip_amz: None,
            },
            DateForm {
                date: amz_date.as_bytes().trim_ascii().to_vec(),
                skip_amz: Some(X_AMZ_DATE),
            },
        ];
    }
    vec![DateForm {
        date: positional(headers, "date"),
        skip_amz: None,
    }]
}

/// Every StringToSign this request may have been signed with, the documented form first.
pub fn strings_to_sign(
    parts: &http::request::Parts,
    expires: Option<&str>,
    base_domains: &[String],
) -> Vec<Vec<u8>> {
    let mut head = Vec::new();
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.push(b'\n');
    head.extend_from_slice(&positional(&parts.headers, "content-md5"));
    head.push(b'\n');
    head.extend_from_slice(&positional(&parts.headers, "content-type"));
    head.push(b'\n');
    let resources = canonical_resources(parts, base_domains);
    let mut out = Vec::new();
    for form in date_forms(&parts.headers, expires) {
        let amz = canonical_amz_headers(&parts.headers, form.skip_amz);
        for resource in &resources {
            let mut string = head.clone();
            string.extend_from_slice(&form.date);
            string.push(b'\n');
            string.extend_from_slice(&amz);
            string.extend_from_slice(resource);
            out.push(string);
        }
    }
    out
}

/// Checks `provided` (Base64) against every candidate in constant time.
fn verify(
    candidates: &[Vec<u8>],
    provided: &str,
    secret: &str,
    access_key_id: &str,
) -> Result<(), AuthError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(provided.trim())
        .ok()
        .filter(|bytes| bytes.len() == 20);
    let claim = decoded.as_deref().unwrap_or(&[0; 20]);
    let mut matched = subtle::Choice::from(0u8);
    for candidate in candidates {
        matched |= hmac_sha1(secret.as_bytes(), candidate)[..].ct_eq(claim);
    }
    if decoded.is_some() && bool::from(matched) {
        return Ok(());
    }
    let string_to_sign = candidates.first().cloned().unwrap_or_default();
    Err(AuthError::SignatureDoesNotMatchV2(Box::new(V2Mismatch {
        access_key_id: access_key_id.to_owned(),
        string_to_sign,
        signature_provided: provided.to_owned(),
    })))
}

/// What a SigV2 `SignatureDoesNotMatch` reports, as S3 does, so that a client can compare its
/// StringToSign with ours. Nothing in it is secret: the client sent or can compute all of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Mismatch {
    pub access_key_id: String,
    pub string_to_sign: Vec<u8>,
    pub signature_provided: String,
}

impl V2Mismatch {
    /// The XML elements S3 adds to the error document.
    pub fn elements(&self) -> Vec<(&'static str, String)> {
        let bytes = self
            .string_to_sign
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        vec![
            ("AWSAccessKeyId", self.access_key_id.clone()),
            (
                "StringToSign",
                String::from_utf8_lossy(&self.string_to_sign).into_owned(),
            ),
            ("SignatureProvided", self.signature_provided.clone()),
            ("StringToSignBytes", bytes),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Authorization header

/// `AWS <AccessKeyId>:<Signature>`, with exactly one space, as S3 parses it.
pub fn parse_authorization(value: &str) -> Result<(&str, &str), AuthError> {
    let rest = value
        .strip_prefix("AWS ")
        .ok_or(AuthError::MalformedV2Header(V2HeaderProblem::Shape))?;
    if rest.contains(char::is_whitespace) {
        return Err(AuthError::MalformedV2Header(V2HeaderProblem::Spaces));
    }
    match rest.split_once(':') {
        Some((key, signature)) if !key.is_empty() && !signature.is_empty() => Ok((key, signature)),
        _ => Err(AuthError::MalformedV2Header(V2HeaderProblem::Shape)),
    }
}

/// Why a SigV2 Authorization header could not be read (InvalidArgument, as in S3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V2HeaderProblem {
    /// Not `AWS key:signature`.
    Shape,
    /// More than the one space after `AWS`.
    Spaces,
}

impl V2HeaderProblem {
    pub fn message(self) -> &'static str {
        match self {
            V2HeaderProblem::Shape => {
                "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature"
            }
            V2HeaderProblem::Spaces => {
                "Authorization header is invalid -- one and only one ' ' (space) required"
            }
        }
    }
}

/// The request's time for the skew check: `x-amz-date` if present (then `Date` is ignored, as
/// S3 documents), else `Date`.
fn request_time(headers: &http::HeaderMap) -> Result<SystemTime, AuthError> {
    let value = headers
        .get(X_AMZ_DATE)
        .or_else(|| headers.get(http::header::DATE))
        .ok_or(AuthError::MissingDate)?;
    let text = value.to_str().map_err(|_| AuthError::MissingDate)?;
    parse_date(text).ok_or(AuthError::MissingDate)
}

/// Header-based SigV2.
pub fn authenticate_header(
    parts: &http::request::Parts,
    authorization: &HeaderValue,
    store: &CredentialStore,
    settings: &AuthSettings,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let text = authorization
        .to_str()
        .map_err(|_| AuthError::MalformedV2Header(V2HeaderProblem::Shape))?
        .trim();
    let (access_key_id, signature) = parse_authorization(text)?;
    let time = request_time(&parts.headers)?;
    let credential = store
        .get(access_key_id)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    if sigv4::is_skewed(time, now, settings.max_clock_skew) {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    let candidates = strings_to_sign(parts, None, &settings.base_domains);
    verify(
        &candidates,
        signature,
        &credential.secret_access_key,
        access_key_id,
    )?;
    Ok(Verified {
        access_key_id: credential.access_key_id.clone(),
        payload: PayloadCheck::Unsigned,
    })
}

// ---------------------------------------------------------------------------------------------
// Query string

const QUERY_REQUIRED: &str =
    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters";

/// Query-string SigV2 (`AWSAccessKeyId`, `Signature`, `Expires`).
pub fn authenticate_query(
    parts: &http::request::Parts,
    store: &CredentialStore,
    settings: &AuthSettings,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let pairs = sigv4::query_pairs(parts.uri.query().unwrap_or(""));
    let access_key_id = sigv4::single_param(&pairs, ACCESS_KEY_PARAM)?;
    let signature = sigv4::single_param(&pairs, SIGNATURE_PARAM)?;
    let expires = sigv4::single_param(&pairs, EXPIRES_PARAM)?;
    let (Some(access_key_id), Some(signature), Some(expires)) = (access_key_id, signature, expires)
    else {
        return Err(AuthError::V2QueryDenied(QUERY_REQUIRED.to_owned()));
    };
    // Base64 never holds a space: a `+` sent unescaped decoded to one.
    let signature = signature.replace(' ', "+");
    let expires_at: u64 = expires.trim().parse().map_err(|_| {
        AuthError::V2QueryDenied(format!(
            "Invalid date (should be seconds since epoch): {expires}"
        ))
    })?;
    let credential = store
        .get(&access_key_id)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    let deadline = UNIX_EPOCH.checked_add(Duration::from_secs(expires_at));
    match deadline {
        Some(deadline) if now <= deadline => {
            // V2 URLs carry no issue time; a deadline further out than a V4 URL may live
            // would outlast what the operator allows for presigned URLs.
            let latest = now
                .checked_add(settings.max_presigned_expiry + settings.max_clock_skew)
                .unwrap_or(now);
            if deadline > latest {
                return Err(AuthError::MalformedQuery(format!(
                    "Expires must be at most {} seconds from now",
                    settings.max_presigned_expiry.as_secs()
                )));
            }
        }
        _ => return Err(AuthError::Expired),
    }
    let candidates = strings_to_sign(parts, Some(&expires), &settings.base_domains);
    verify(
        &candidates,
        &signature,
        &credential.secret_access_key,
        &access_key_id,
    )?;
    Ok(Verified {
        access_key_id: credential.access_key_id.clone(),
        payload: PayloadCheck::Unsigned,
    })
}

#[cfg(test)]
mod tests {
    use super::super::sigv4::tests::{doc_settings, doc_store, DOC_AKID, DOC_SECRET};
    use super::super::{authenticate, Credential};
    use super::*;

    fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    /// The S3 examples address `awsexamplebucket1.s3.us-west-1.amazonaws.com` and
    /// `awsexamplebucket1.us-west-1.s3.amazonaws.com`.
    fn settings() -> AuthSettings {
        AuthSettings {
            base_domains: vec![
                "s3.us-west-1.amazonaws.com".into(),
                "us-west-1.s3.amazonaws.com".into(),
            ],
            ..doc_settings()
        }
    }

    fn at(http_date: &str) -> SystemTime {
        parse_date(http_date).unwrap()
    }

    fn first_string(parts: &http::request::Parts) -> String {
        String::from_utf8(strings_to_sign(parts, None, &settings().base_domains)[0].clone())
            .unwrap()
    }

    fn run(parts: &http::request::Parts, now: SystemTime) -> Result<Verified, AuthError> {
        authenticate(parts, &doc_store(), &settings(), now)
    }

    /// Method, URI, headers, the documented StringToSign and signature.
    type DocExample = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
    );

    /// The worked examples of "Signing and authenticating REST requests": each request, its
    /// StringToSign and its signature, verbatim from the S3 documentation.
    #[test]
    fn aws_doc_examples() {
        let cases: &[DocExample] = &[
            (
                "GET",
                "/photos/puppy.jpg",
                &[
                    ("host", "awsexamplebucket1.us-west-1.s3.amazonaws.com"),
                    ("date", "Tue, 27 Mar 2007 19:36:42 +0000"),
                ],
                "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg",
                "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
            ),
            (
                "PUT",
                "/photos/puppy.jpg",
                &[
                    ("content-type", "image/jpeg"),
                    ("content-length", "94328"),
                    ("host", "awsexamplebucket1.s3.us-west-1.amazonaws.com"),
                    ("date", "Tue, 27 Mar 2007 21:15:45 +0000"),
                ],
                "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/awsexamplebucket1/photos/puppy.jpg",
                "iqRzw+ileNPu1fhspnRs8nOjjIA=",
            ),
            (
                "GET",
                "/?prefix=photos&max-keys=50&marker=puppy",
                &[
                    ("user-agent", "Mozilla/5.0"),
                    ("host", "awsexamplebucket1.s3.us-west-1.amazonaws.com"),
                    ("date", "Tue, 27 Mar 2007 19:42:41 +0000"),
                ],
                "GET\n\n\nTue, 27 Mar 2007 19:42:41 +0000\n/awsexamplebucket1/",
                "m0WP8eCtspQl5Ahe6L1SozdX9YA=",
            ),
            (
                "GET",
                "/?acl",
                &[
                    ("host", "awsexamplebucket1.s3.us-west-1.amazonaws.com"),
                    ("date", "Tue, 27 Mar 2007 19:44:46 +0000"),
                ],
                "GET\n\n\nTue, 27 Mar 2007 19:44:46 +0000\n/awsexamplebucket1/?acl",
                "82ZHiFIjc+WbcwFKGUVEQspPn+0=",
            ),
            (
                "GET",
                "/",
                &[
                    ("host", "s3.us-west-1.amazonaws.com"),
                    ("date", "Wed, 28 Mar 2007 01:29:59 +0000"),
                ],
                "GET\n\n\nWed, 28 Mar 2007 01:29:59 +0000\n/",
                "qGdzdERIC03wnaRNKh6OqZehG9s=",
            ),
            (
                "GET",
                "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
                &[
                    ("host", "s3.us-west-1.amazonaws.com"),
                    ("date", "Wed, 28 Mar 2007 01:49:49 +0000"),
                ],
                "GET\n\n\nWed, 28 Mar 2007 01:49:49 +0000\n/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
                "DNEZGsoieTZ92F3bUfSPQcbGmlM=",
            ),
        ];
        for (method, uri, headers, string_to_sign, signature) in cases {
            let date = headers.iter().find(|(name, _)| *name == "date").unwrap().1;
            let mut all = headers.to_vec();
            let authorization = format!("AWS {DOC_AKID}:{signature}");
            all.push(("authorization", &authorization));
            let parts = request(method, uri, &all);
            assert_eq!(first_string(&parts), *string_to_sign, "{uri}");
            assert_eq!(sign(DOC_SECRET, string_to_sign.as_bytes()), *signature);
            let verified = run(&parts, at(date)).unwrap_or_else(|e| panic!("{uri}: {e:?}"));
            assert_eq!(verified.access_key_id, DOC_AKID);
            assert_eq!(verified.payload, PayloadCheck::Unsigned);
        }
    }

    /// The docs' DELETE example: path style, `Date` and `x-amz-date` both sent; the
    /// documented StringToSign carries the x-amz-date value in the Date position.
    #[test]
    fn aws_doc_delete_with_x_amz_date() {
        let parts = request(
            "DELETE",
            "/awsexamplebucket1/photos/puppy.jpg",
            &[
                ("user-agent", "dotnet"),
                ("host", "s3.us-west-1.amazonaws.com"),
                ("date", "Tue, 27 Mar 2007 21:20:27 +0000"),
                ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
                (
                    "authorization",
                    "AWS AKIAIOSFODNN7EXAMPLE:XbyTlbQdu9Xw5o8P4iMwPktxQd8=",
                ),
            ],
        );
        let strings = strings_to_sign(&parts, None, &settings().base_domains);
        let documented =
            b"DELETE\n\n\nTue, 27 Mar 2007 21:20:26 +0000\n/awsexamplebucket1/photos/puppy.jpg";
        assert!(strings.iter().any(|s| s == documented));
        // The documented rule's form: empty Date position, x-amz-date among the amz headers.
        assert_eq!(
            strings[0],
            b"DELETE\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:20:26 +0000\n/awsexamplebucket1/photos/puppy.jpg"
        );
        assert!(run(&parts, at("Tue, 27 Mar 2007 21:20:26 +0000")).is_ok());
        // The clock is checked against x-amz-date, not Date.
        let mut skewed = parts.clone();
        skewed.headers.insert(
            "x-amz-date",
            "Tue, 27 Mar 2007 22:20:26 +0000".parse().unwrap(),
        );
        assert_eq!(
            run(&skewed, at("Tue, 27 Mar 2007 21:20:27 +0000")).unwrap_err(),
            AuthError::RequestTimeTooSkewed
        );
        // The first form signed by a client works as well.
        let mut sdk_form = parts.clone();
        let signature = sign(DOC_SECRET, &strings[0]);
        sdk_form.headers.insert(
            "authorization",
            format!("AWS {DOC_AKID}:{signature}").parse().unwrap(),
        );
        assert!(run(&sdk_form, at("Tue, 27 Mar 2007 21:20:26 +0000")).is_ok());
        // Neither form lets Date alone stand in once x-amz-date is sent.
        let date_only =
            b"DELETE\n\n\nTue, 27 Mar 2007 21:20:27 +0000\n/awsexamplebucket1/photos/puppy.jpg";
        assert!(!strings.iter().any(|s| s == date_only));
    }

    /// The docs' upload example (its CanonicalizedAmzHeaders): names lower-cased and sorted,
    /// repeated headers comma-joined, values trimmed, other Content-* headers not signed.
    #[test]
    fn aws_doc_amz_headers_and_content_md5() {
        let parts = request(
            "PUT",
            "/static.example.com/db-backup.dat.gz",
            &[
                ("user-agent", "curl/7.15.5"),
                ("host", "localhost:8080"),
                ("date", "Tue, 27 Mar 2007 21:06:08 +0000"),
                ("x-amz-acl", "public-read"),
                ("content-type", "application/x-download"),
                ("content-md5", "4gJE4saaMU4BqNR0kLY+lw=="),
                ("X-Amz-Meta-ReviewedBy", "joe@example.com"),
                ("X-Amz-Meta-ReviewedBy", "  jane@example.com "),
                ("X-Amz-Meta-FileChecksum", "0x02661779"),
                ("X-Amz-Meta-ChecksumAlgorithm", "crc32"),
                ("content-disposition", "attachment; filename=database.dat"),
                ("content-encoding", "gzip"),
                ("content-length", "5913339"),
            ],
        );
        assert_eq!(
            first_string(&parts),
            "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\nTue, 27 Mar 2007 21:06:08 +0000\nx-amz-acl:public-read\nx-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\nx-amz-meta-reviewedby:joe@example.com,jane@example.com\n/static.example.com/db-backup.dat.gz"
        );
    }

    #[test]
    fn canonical_resource_sub_resources() {
        let string = |uri: &str, host: &str| {
            first_string(&request(
                "GET",
                uri,
                &[("host", host), ("date", "Tue, 27 Mar 2007 19:36:42 GMT")],
            ))
        };
        let tail = |s: String| s.rsplit('\n').next().unwrap().to_owned();
        let path_host = "s3.us-west-1.amazonaws.com";
        let vhost = "bucket.s3.us-west-1.amazonaws.com";
        // Sorted by name, values decoded, unsigned parameters dropped, order on the wire moot.
        assert_eq!(
            tail(string(
                "/b/k?versionId=3%2F4&response-content-type=text%2Fplain&x-id=GetObject&acl",
                path_host
            )),
            "/b/k?acl&response-content-type=text/plain&versionId=3/4"
        );
        assert_eq!(
            tail(string("/k?uploadId=abc&partNumber=2", vhost)),
            "/bucket/k?partNumber=2&uploadId=abc"
        );
        assert_eq!(tail(string("/?uploads", vhost)), "/bucket/?uploads");
        assert_eq!(tail(string("/?delete", vhost)), "/bucket/?delete");
        assert_eq!(
            tail(string("/?list-type=2&prefix=a&tagging", vhost)),
            "/bucket/?tagging"
        );
        // Virtual host with a port; path style under a base domain's bare host.
        assert_eq!(
            tail(string("/a%20b/c", "bucket.s3.us-west-1.amazonaws.com:9000")),
            "/bucket/a%20b/c"
        );
        assert_eq!(tail(string("/b/", path_host)), "/b/");
        // `acl=` is accepted as signed with or without its `=`.
        let parts = request(
            "GET",
            "/b/k?acl=",
            &[
                ("host", path_host),
                ("date", "Tue, 27 Mar 2007 19:36:42 GMT"),
            ],
        );
        let all: Vec<String> = strings_to_sign(&parts, None, &settings().base_domains)
            .into_iter()
            .map(|s| tail(String::from_utf8(s).unwrap()))
            .collect();
        assert_eq!(all, ["/b/k?acl=", "/b/k?acl"]);
    }

    #[test]
    fn query_auth() {
        let uri = |expires: u64, signature: &str| {
            format!(
                "/photos/puppy.jpg?AWSAccessKeyId={DOC_AKID}&Expires={expires}&Signature={}",
                signature
                    .replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D")
            )
        };
        let host = ("host", "awsexamplebucket1.s3.us-west-1.amazonaws.com");
        let expires = 1_175_139_620u64;
        let string = format!("GET\n\n\n{expires}\n/awsexamplebucket1/photos/puppy.jpg");
        let signature = sign(DOC_SECRET, string.as_bytes());
        let parts = request("GET", &uri(expires, &signature), &[host]);
        assert_eq!(
            strings_to_sign(&parts, Some(&expires.to_string()), &settings().base_domains)[0],
            string.as_bytes()
        );
        let before = UNIX_EPOCH + Duration::from_secs(expires - 60);
        let verified = run(&parts, before).unwrap();
        assert_eq!(verified.access_key_id, DOC_AKID);
        assert_eq!(verified.payload, PayloadCheck::Unsigned);
        // A Date header plays no part in the query form.
        let mut dated = parts.clone();
        dated
            .headers
            .insert("date", "Mon, 26 Mar 2007 19:37:58 +0000".parse().unwrap());
        assert!(run(&dated, before).is_ok());
        // Expiry, and the cap on how far out a URL may reach.
        assert!(run(&parts, UNIX_EPOCH + Duration::from_secs(expires)).is_ok());
        assert_eq!(
            run(&parts, UNIX_EPOCH + Duration::from_secs(expires + 1)).unwrap_err(),
            AuthError::Expired
        );
        let far = UNIX_EPOCH + Duration::from_secs(expires - 8 * 24 * 3600);
        assert_eq!(
            run(&parts, far).unwrap_err().s3_code(),
            "AuthorizationQueryParametersError"
        );
        // An unescaped `+` in the signature reads as a space, and is taken back.
        let raw = format!(
            "/photos/puppy.jpg?AWSAccessKeyId={DOC_AKID}&Expires={expires}&Signature={}",
            signature.replace('/', "%2F").replace('=', "%3D")
        );
        assert!(run(&request("GET", &raw, &[host]), before).is_ok());
        // Tampering with the method, the expiry, the key, the resource.
        let tampered = [
            request("PUT", &uri(expires, &signature), &[host]),
            request("GET", &uri(expires + 1, &signature), &[host]),
            request(
                "GET",
                &uri(expires, &signature).replace("puppy", "kitten"),
                &[host],
            ),
            request("GET", &format!("{}&acl", uri(expires, &signature)), &[host]),
            request(
                "GET",
                &uri(expires, &signature),
                &[host, ("x-amz-acl", "public-read")],
            ),
            request(
                "GET",
                &uri(expires, &signature),
                &[host, ("content-type", "text/html")],
            ),
        ];
        for parts in tampered {
            let error = run(&parts, before).unwrap_err();
            assert_eq!(error.s3_code(), "SignatureDoesNotMatch", "{}", parts.uri);
            assert_eq!(error.http_status(), 403);
        }
    }

    #[test]
    fn query_errors() {
        let host = ("host", "awsexamplebucket1.s3.us-west-1.amazonaws.com");
        let now = UNIX_EPOCH + Duration::from_secs(1_175_139_000);
        let cases = [
            ("Signature=x&Expires=1175139620", "AccessDenied", 403),
            (
                "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x",
                "AccessDenied",
                403,
            ),
            (
                "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x&Expires=soon",
                "AccessDenied",
                403,
            ),
            (
                "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x&Expires=1175139620&Expires=1",
                "AuthorizationQueryParametersError",
                400,
            ),
            (
                "AWSAccessKeyId=NOSUCHKEY&Signature=x&Expires=1175139620",
                "InvalidAccessKeyId",
                403,
            ),
            (
                "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x&Expires=1175139000",
                "SignatureDoesNotMatch",
                403,
            ),
            (
                "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x&Expires=1",
                "AccessDenied",
                403,
            ),
            (
                "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x&Expires=99999999999999999999999",
                "AccessDenied",
                403,
            ),
        ];
        for (query, code, status) in cases {
            let parts = request("GET", &format!("/k?{query}"), &[host]);
            let error = run(&parts, now).unwrap_err();
            assert_eq!(
                (error.s3_code(), error.http_status()),
                (code, status),
                "{query}"
            );
        }
        let expired = request(
            "GET",
            "/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x&Expires=1",
            &[host],
        );
        assert_eq!(
            run(&expired, now).unwrap_err().to_string(),
            "Request has expired"
        );
    }

    #[test]
    fn header_errors() {
        let host = ("host", "s3.us-west-1.amazonaws.com");
        let date = "Wed, 28 Mar 2007 01:29:59 +0000";
        let now = at(date);
        let with = |authorization: &str, date: Option<&str>| {
            let mut headers = vec![host, ("authorization", authorization)];
            if let Some(date) = date {
                headers.push(("date", date));
            }
            run(&request("GET", "/", &headers), now).unwrap_err()
        };
        let good = "AWS AKIAIOSFODNN7EXAMPLE:qGdzdERIC03wnaRNKh6OqZehG9s=";
        for malformed in [
            "AWS HAHAHA",
            "AWS :sig",
            "AWS AKIAIOSFODNN7EXAMPLE:",
            "AWS  AKIAIOSFODNN7EXAMPLE:qGdzdERIC03wnaRNKh6OqZehG9s=",
            "AWS AKIAIOSFODNN7EXAMPLE: qGdzdERIC03wnaRNKh6OqZehG9s=",
        ] {
            let error = with(malformed, Some(date));
            assert_eq!(
                (error.s3_code(), error.http_status()),
                ("InvalidArgument", 400),
                "{malformed}"
            );
        }
        assert_eq!(with(good, None), AuthError::MissingDate);
        assert_eq!(with(good, Some("yesterday")), AuthError::MissingDate);
        assert_eq!(
            with("AWS NOSUCHKEY:qGdzdERIC03wnaRNKh6OqZehG9s=", Some(date)),
            AuthError::InvalidAccessKeyId
        );
        assert_eq!(
            with(good, Some("Wed, 28 Mar 2007 01:45:00 +0000")),
            AuthError::RequestTimeTooSkewed
        );
        // The same moment written with GMT is another StringToSign.
        let error = with(good, Some("Wed, 28 Mar 2007 01:29:59 GMT"));
        let AuthError::SignatureDoesNotMatchV2(mismatch) = &error else {
            panic!("{error:?}");
        };
        assert_eq!(
            mismatch.string_to_sign,
            b"GET\n\n\nWed, 28 Mar 2007 01:29:59 GMT\n/"
        );
        let elements = mismatch.elements();
        assert!(elements.contains(&(
            "StringToSign",
            "GET\n\n\nWed, 28 Mar 2007 01:29:59 GMT\n/".into()
        )));
        assert!(elements.contains(&("AWSAccessKeyId", DOC_AKID.into())));
        assert!(elements
            .iter()
            .any(|(name, value)| *name == "StringToSignBytes" && value.starts_with("47 45 54 0a")));
        // Both mechanisms at once.
        let both = request(
            "GET",
            "/?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x&Expires=1",
            &[host, ("authorization", good), ("date", date)],
        );
        assert_eq!(run(&both, now).unwrap_err(), AuthError::MultipleMechanisms);
    }

    #[test]
    fn switched_off_keeps_the_v4_only_answer() {
        let off = AuthSettings {
            signature_v2: false,
            ..settings()
        };
        let header = request(
            "GET",
            "/",
            &[
                ("host", "s3.us-west-1.amazonaws.com"),
                ("date", "Wed, 28 Mar 2007 01:29:59 +0000"),
                (
                    "authorization",
                    "AWS AKIAIOSFODNN7EXAMPLE:qGdzdERIC03wnaRNKh6OqZehG9s=",
                ),
            ],
        );
        let now = at("Wed, 28 Mar 2007 01:29:59 +0000");
        assert!(authenticate(&header, &doc_store(), &settings(), now).is_ok());
        assert_eq!(
            authenticate(&header, &doc_store(), &off, now).unwrap_err(),
            AuthError::UnsupportedMechanism
        );
        let query = request(
            "GET",
            "/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=x&Expires=1",
            &[("host", "s3.us-west-1.amazonaws.com")],
        );
        assert_eq!(
            authenticate(&query, &doc_store(), &off, now).unwrap_err(),
            AuthError::UnsupportedMechanism
        );
    }

    #[test]
    fn credential_identity_is_passed_on() {
        // A read-only or bucket-scoped key verifies like any other; the handler applies its
        // scope to the same Verified a V4 request yields.
        let store = CredentialStore::new(vec![Credential {
            access_key_id: "READER".into(),
            secret_access_key: "reader-secret".into(),
            buckets: Some(vec!["b".into()]),
            read_only: true,
        }]);
        let date = "Wed, 28 Mar 2007 01:29:59 GMT";
        let string = format!("GET\n\n\n{date}\n/b/k");
        let authorization = format!("AWS READER:{}", sign("reader-secret", string.as_bytes()));
        let parts = request(
            "GET",
            "/b/k",
            &[
                ("host", "localhost"),
                ("date", date),
                ("authorization", &authorization),
            ],
        );
        let verified = authenticate(&parts, &store, &settings(), at(date)).unwrap();
        assert_eq!(verified.access_key_id, "READER");
    }

    #[test]
    fn dates() {
        let gmt = parse_date("Tue, 27 Mar 2007 19:36:42 GMT").unwrap();
        assert_eq!(parse_date("Tue, 27 Mar 2007 19:36:42 +0000"), Some(gmt));
        assert_eq!(
            parse_date("Tue, 27 Mar 2007 21:36:42 +0200"),
            Some(gmt),
            "numeric zones are honoured"
        );
        assert_eq!(parse_date("Tuesday, 27-Mar-07 19:36:42 GMT"), Some(gmt));
        assert_eq!(parse_date("Tue Mar 27 19:36:42 2007"), Some(gmt));
        assert_eq!(parse_date("20070327T193642Z"), None);
        assert_eq!(parse_date(""), None);
    }
}
