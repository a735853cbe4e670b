//! Presigned URLs: SigV4 with the signature in the query (`X-Amz-Signature` & co).

use std::time::{Duration, SystemTime};

use super::sigv4::{
    self, CredentialScope, PayloadKind, RequestDate, SignatureClaim, SignedHeaders,
    UNSIGNED_PAYLOAD,
};
use super::{AuthError, AuthSettings, ChunkSigning, CredentialStore, Verified};

const ALGORITHM: &str = "X-Amz-Algorithm";
const CREDENTIAL: &str = "X-Amz-Credential";
const DATE: &str = "X-Amz-Date";
const EXPIRES: &str = "X-Amz-Expires";
const SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
const SIGNATURE: &str = "X-Amz-Signature";
const CONTENT_SHA256: &str = "X-Amz-Content-Sha256";

const REQUIRED_MESSAGE: &str = "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.";

fn has_param(raw_query: &str, wanted: &str) -> bool {
    sigv4::query_pairs(raw_query)
        .iter()
        .any(|(name, _)| name.as_slice() == wanted.as_bytes())
}

/// The query carries SigV4 presigned parameters.
pub fn is_presigned_v4(raw_query: &str) -> bool {
    [ALGORITHM, CREDENTIAL, SIGNATURE]
        .iter()
        .any(|name| has_param(raw_query, name))
}

/// The query carries SigV2 query-authentication parameters (see [`super::sigv2`]).
pub fn is_presigned_v2(raw_query: &str) -> bool {
    super::sigv2::is_presigned_v2(raw_query)
}

/// The presigned parameters, each present exactly once.
struct PresignedParams {
    algorithm: String,
    credential: String,
    date: String,
    expires: String,
    signed_headers: String,
    signature: String,
    content_sha256: Option<String>,
}

impl PresignedParams {
    fn parse(raw_query: &str) -> Result<Self, AuthError> {
        let pairs = sigv4::query_pairs(raw_query);
        let single = |name: &str| sigv4::single_param(&pairs, name);
        let required = |name: &str| -> Result<String, AuthError> {
            single(name)?.ok_or_else(|| AuthError::MalformedQuery(REQUIRED_MESSAGE.to_owned()))
        };
        Ok(PresignedParams {
            algorithm: required(ALGORITHM)?,
            credential: required(CREDENTIAL)?,
            date: required(DATE)?,
            expires: required(EXPIRES)?,
            signed_headers: required(SIGNED_HEADERS)?,
            signature: required(SIGNATURE)?,
            content_sha256: single(CONTENT_SHA256)?,
        })
    }
}

fn malformed(message: impl Into<String>) -> AuthError {
    AuthError::MalformedQuery(message.into())
}

fn parse_expires(text: &str, max: Duration) -> Result<Duration, AuthError> {
    let seconds: u64 = text
        .trim()
        .parse()
        .map_err(|_| malformed("X-Amz-Expires should be a number"))?;
    if seconds == 0 {
        return Err(malformed("X-Amz-Expires must be non-negative"));
    }
    let expires = Duration::from_secs(seconds);
    if expires > max {
        return Err(malformed(format!(
            "X-Amz-Expires must be less than a week (in seconds) that is {}",
            max.as_secs()
        )));
    }
    Ok(expires)
}

/// Presigned URLs sign `UNSIGNED-PAYLOAD` unless the URL itself fixes the body's hash.
fn payload_hash(params: &PresignedParams) -> Result<(String, PayloadKind), AuthError> {
    let Some(value) = &params.content_sha256 else {
        return Ok((UNSIGNED_PAYLOAD.to_owned(), PayloadKind::Unsigned));
    };
    match PayloadKind::parse(value)? {
        kind @ (PayloadKind::Unsigned | PayloadKind::Sha256(_)) => Ok((value.clone(), kind)),
        // Streaming bodies chain from a seed signature a presigned URL cannot carry per request.
        _ => Err(AuthError::InvalidContentSha256),
    }
}

fn check_validity_window(
    date: &RequestDate,
    expires: Duration,
    settings: &AuthSettings,
    now: SystemTime,
) -> Result<(), AuthError> {
    // Checked arithmetic: the date is the client's and the limits come from configuration.
    let latest_start = now.checked_add(settings.max_clock_skew).unwrap_or(now);
    if date.time > latest_start {
        return Err(AuthError::NotYetValid);
    }
    match date.time.checked_add(expires) {
        Some(end) if now <= end => {}
        _ => return Err(AuthError::Expired),
    }
    Ok(())
}

/// Query-string SigV4.
pub fn authenticate_presigned(
    parts: &http::request::Parts,
    store: &CredentialStore,
    settings: &AuthSettings,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let params = PresignedParams::parse(parts.uri.query().unwrap_or(""))?;
    if params.algorithm != sigv4::ALGORITHM {
        return Err(malformed(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let scope =
        CredentialScope::parse(&params.credential, &settings.region).map_err(|message| {
            malformed(format!(
                "Error parsing the X-Amz-Credential parameter; {message}"
            ))
        })?;
    let date = RequestDate::parse_amz(params.date.trim()).ok_or_else(|| {
        malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    })?;
    scope.check_day(&date).map_err(|message| {
        malformed(format!(
            "Error parsing the X-Amz-Credential parameter; {message}"
        ))
    })?;
    let expires = parse_expires(&params.expires, settings.max_presigned_expiry)?;
    let signed_headers = SignedHeaders::parse(&params.signed_headers)
        .ok_or_else(|| malformed("The X-Amz-SignedHeaders parameter is malformed."))?;
    if !signed_headers.contains("host") {
        return Err(AuthError::HeadersNotSigned("host".into()));
    }
    let (hash, kind) = payload_hash(&params)?;
    let credential = store
        .get(&scope.access_key_id)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    check_validity_window(&date, expires, settings, now)?;
    let signature =
        sigv4::parse_hex32(&params.signature).filter(|_| params.signature.trim().len() == 64);
    let claim = SignatureClaim {
        scope: &scope,
        date: &date,
        signed_headers: &signed_headers,
        signature,
        payload_hash: &hash,
        presigned: true,
    };
    let key = sigv4::verify_signature(parts, &claim, &credential.secret_access_key)?;
    sigv4::check_amz_headers_signed(&parts.headers, &signed_headers, true)?;
    let seed = signature.ok_or(AuthError::SignatureDoesNotMatch)?;
    Ok(Verified {
        access_key_id: credential.access_key_id.clone(),
        payload: kind.into_check(ChunkSigning::new(
            seed,
            key,
            scope.string(),
            date.amz.clone(),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::super::sigv4::tests::{
        doc_settings, doc_store, doc_time, sdk_settings, sdk_sign, DOC_AKID, DOC_HOST,
    };
    use super::super::{authenticate, PayloadCheck};
    use super::*;
    use aws_sigv4::http_request::{SignableBody, SignatureLocation};

    const DOC_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

    fn doc_request(query: &str) -> http::request::Parts {
        http::Request::builder()
            .method("GET")
            .uri(format!("/test.txt?{query}"))
            .header("host", DOC_HOST)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn run_at(query: &str, now: SystemTime) -> Result<Verified, AuthError> {
        authenticate(&doc_request(query), &doc_store(), &doc_settings(), now)
    }

    #[test]
    fn aws_doc_presigned_get() {
        let verified = run_at(DOC_QUERY, doc_time() + Duration::from_secs(3600)).unwrap();
        assert_eq!(verified.access_key_id, DOC_AKID);
        assert_eq!(verified.payload, PayloadCheck::Unsigned);
        // Parameter order on the wire does not matter.
        let mut params: Vec<&str> = DOC_QUERY.split('&').collect();
        params.reverse();
        assert!(run_at(&params.join("&"), doc_time()).is_ok());
    }

    #[test]
    fn expiry_window() {
        assert_eq!(
            run_at(DOC_QUERY, doc_time() + Duration::from_secs(86_401)).unwrap_err(),
            AuthError::Expired
        );
        assert!(run_at(DOC_QUERY, doc_time() + Duration::from_secs(86_400)).is_ok());
        assert_eq!(
            run_at(DOC_QUERY, doc_time() - Duration::from_secs(3600)).unwrap_err(),
            AuthError::NotYetValid
        );
    }

    #[test]
    fn malformed_parameters() {
        let cases = [
            DOC_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=604801"),
            DOC_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=0"),
            DOC_QUERY.replace("X-Amz-Expires=86400", "X-Amz-Expires=-5"),
            DOC_QUERY.replace("X-Amz-Expires=86400&", ""),
            DOC_QUERY.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
            DOC_QUERY.replace("us-east-1", "eu-west-1"),
            DOC_QUERY.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=2013-05-24"),
            DOC_QUERY.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=20130525T000000Z"),
            format!("{DOC_QUERY}&X-Amz-Date=20130524T000000Z"),
        ];
        for query in cases {
            let error = run_at(&query, doc_time()).unwrap_err();
            assert_eq!(
                error.s3_code(),
                "AuthorizationQueryParametersError",
                "{query}: {error}"
            );
            assert_eq!(error.http_status(), 400);
        }
        let no_host = DOC_QUERY.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=range");
        assert_eq!(
            run_at(&no_host, doc_time()).unwrap_err(),
            AuthError::HeadersNotSigned("host".into())
        );
    }

    #[test]
    fn tampered_and_mixed() {
        let tampered = DOC_QUERY.replace("aeeed9bb", "aeeed9bc");
        assert_eq!(
            run_at(&tampered, doc_time()).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        let extra = format!("{DOC_QUERY}&response-content-type=text%2Fplain");
        assert_eq!(
            run_at(&extra, doc_time()).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        let mut parts = doc_request(DOC_QUERY);
        parts.headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=x".parse().unwrap(),
        );
        assert_eq!(
            authenticate(&parts, &doc_store(), &doc_settings(), doc_time()).unwrap_err(),
            AuthError::MultipleMechanisms
        );
        // A SigV2 query goes to sigv2.rs (on by default): this one expired in 2006.
        let v2 = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D";
        assert_eq!(run_at(v2, doc_time()).unwrap_err(), AuthError::Expired);
        let v4_only = AuthSettings {
            signature_v2: false,
            ..doc_settings()
        };
        assert_eq!(
            authenticate(&doc_request(v2), &doc_store(), &v4_only, doc_time()).unwrap_err(),
            AuthError::UnsupportedMechanism
        );
    }

    #[test]
    fn round_trip_with_sdk_presigner() {
        let now = SystemTime::now();
        let parts = sdk_sign(
            "PUT",
            "https://bucket.example.com/a%20b/c%2Bd?partNumber=1&uploadId=xy%2Bz",
            &[
                ("host", "bucket.example.com"),
                ("content-type", "image/png"),
            ],
            SignableBody::UnsignedPayload,
            sdk_settings(
                SignatureLocation::QueryParams,
                Some(Duration::from_secs(900)),
            ),
            now,
        );
        let verified = authenticate(&parts, &doc_store(), &doc_settings(), now).unwrap();
        assert_eq!(verified.payload, PayloadCheck::Unsigned);
        assert_eq!(
            authenticate(
                &parts,
                &doc_store(),
                &doc_settings(),
                now + Duration::from_secs(901)
            )
            .unwrap_err(),
            AuthError::Expired
        );
        let mut tampered = parts.clone();
        tampered
            .headers
            .insert("content-type", "text/html".parse().unwrap());
        assert_eq!(
            authenticate(&tampered, &doc_store(), &doc_settings(), now).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
    }
}
