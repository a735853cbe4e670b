//! PostObject: a browser's HTML form upload (`POST /bucket`, multipart/form-data). The form
//! authenticates itself: its fields carry a base64 policy document and a signature over it
//! (SigV4 or SigV2), and the policy's conditions bind every other field. The fields before
//! the `file` field are read into memory (bounded); the file streams into the same write path
//! as PutObject; whatever follows the file is ignored, as S3 does.

use std::sync::Arc;
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use subtle::ConstantTimeEq;

use super::acl::new_object_acl;
use super::object::{attributes_from_headers, check_key, MAX_PUT_SIZE};
use super::support::existing_bucket;
use crate::access::post_policy::{PolicyError, PostPolicy};
use crate::access::Principal;
use crate::gateway::{Gateway, LiveSettings};
use crate::s3::access_log;
use crate::s3::auth::sigv4::{hmac_sha256, signing_key, CredentialScope, RequestDate};
use crate::s3::auth::{self, sigv2, Credential, PayloadCheck, Verified};
use crate::s3::authorize;
use crate::s3::body::{checksum_from_headers, verified_body, BodyRules};
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::host::virtual_host_bucket;
use crate::s3::pace::RawBody;
use crate::s3::response::{self, S3Response};
use crate::s3::router::Route;
use crate::s3::xml::escape;
use crate::store::{self, BodyFacts, BodyFailure, NewObject, StoreError, WriteCondition};

/// S3 limits the form fields before the file (names and values) to 20 KB.
const MAX_FIELDS_BYTES: usize = 20 * 1024;
const ANONYMOUS_TENANT: &str = "anonymous";
const V4_ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Form fields copied onto the object as the headers of the same names.
const ATTRIBUTE_FIELDS: [&str; 5] = [
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "expires",
];

/// The form's fields before the file: lower-case names, values as sent.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Who the form says it comes from, once its signature holds.
struct Signer {
    credential: Option<Credential>,
    /// The policy's content-length-range.
    range: Option<(u64, u64)>,
}

pub async fn post_object(
    gw: Arc<Gateway>,
    live: Arc<LiveSettings>,
    route: Route,
    parts: http::request::Parts,
    body: RawBody,
    request_id: String,
    signed_by: &mut Option<String>,
) -> S3Result<S3Response> {
    let bucket = route
        .bucket
        .clone()
        .ok_or_else(|| S3Error::invalid_request("missing bucket"))?;
    let boundary = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(not_multipart)?;
    let location = object_url(&parts, &live, &bucket);
    // Until the form names its signer, the body is read as the anonymous tenant's.
    let stand_in = Credential {
        access_key_id: ANONYMOUS_TENANT.to_string(),
        secret_access_key: String::new(),
        buckets: Some(Vec::new()),
        read_only: false,
    };
    let verified = Verified {
        access_key_id: ANONYMOUS_TENANT.to_string(),
        payload: PayloadCheck::Unsigned,
    };
    let mut ctx = Ctx::new(
        gw,
        live.clone(),
        route.clone(),
        parts.clone(),
        verified,
        stand_in,
        Principal::Anonymous,
        request_id,
        body,
    );
    let raw = ctx.take_body()?;
    let mut multipart = multer::Multipart::new(raw.into_data_stream(), boundary);
    let (form, file) = read_fields(&mut multipart).await?;

    let key_template = form.get("key").ok_or_else(|| missing_field("key"))?;
    let key = key_template.replace("${filename}", file.file_name().unwrap_or(""));
    if key.is_empty() {
        return Err(
            S3Error::invalid_argument("User key must have a length greater than 0.")
                .with("ArgumentName", "key")
                .with("ArgumentValue", ""),
        );
    }
    check_key(&key)?;
    // The policy sees the key as it will be stored, and the bucket as S3 adds it.
    let mut checked = form.0.clone();
    if let Some(entry) = checked.iter_mut().find(|(n, _)| n == "key") {
        entry.1 = key.clone();
    }
    // The bucket is the one posted to, whatever a form field of that name says.
    checked.retain(|(n, _)| n != "bucket");
    checked.push(("bucket".to_string(), bucket.clone()));
    let signer = verify(&form, &checked, &live, SystemTime::now())?;

    let principal = match &signer.credential {
        Some(c) => Principal::Key(c.access_key_id.clone()),
        None => Principal::Anonymous,
    };
    *signed_by = signer.credential.as_ref().map(|c| c.access_key_id.clone());
    let headers = object_headers(&form)?;
    // Authorized as PutObject of this key would be: scope, read-only, bucket policy, ACLs.
    let mut put_route = route;
    put_route.key = Some(key.clone());
    let mut put_parts = parts;
    put_parts.headers = headers.clone();
    authorize::authorize(
        &ctx.gw.store,
        &principal,
        signer.credential.as_ref(),
        &put_route,
        &put_parts,
    )?;
    if let Some(c) = &signer.credential {
        if !live.rates.admit(&c.access_key_id) {
            return Err(S3Error::slow_down());
        }
        ctx.verified.access_key_id = c.access_key_id.clone();
        ctx.credential = c.clone();
    }
    ctx.principal = principal;
    ctx.route = put_route;
    ctx.headers = headers;

    let bucket_record = existing_bucket(&ctx, &bucket)?;
    let access = new_object_acl(&ctx, &bucket_record)?;
    let attributes = attributes_from_headers(&ctx.headers)?;
    let (min, max) = signer.range.unwrap_or((0, MAX_PUT_SIZE));
    let rules = BodyRules {
        declared_len: None,
        max_len: max.min(MAX_PUT_SIZE),
        content_md5: None,
        checksum: checksum_from_headers(&ctx.headers)?,
        trailer_checksum: None,
        compute_checksum: None,
    };
    let file_body = http_body_util::StreamBody::new(file.map(|piece| {
        piece
            .map(http_body::Frame::data)
            .map_err(|e| Box::new(e) as BodyFailure)
    }));
    let (body, outcome) = verified_body(file_body, PayloadCheck::Unsigned, rules, &live.auth);
    let object = NewObject {
        bucket: bucket.clone(),
        key: key.clone(),
        attributes,
        size: None,
        known_etag: None,
        owner: access.owner,
        condition: WriteCondition::Always,
        acl: access.acl,
        tags: super::tagging::tags_from_headers(&ctx.headers)?,
        lock: super::lock::new_object_lock(&ctx, &bucket, false)?,
    };
    let record = store::put_object(&ctx.gw.store, object, at_least(body, min), move || {
        outcome.get().map(|s| BodyFacts {
            etag: hex::encode(s.md5),
            checksum: s.checksum,
        })
    })
    .await
    .map_err(|e| match e {
        StoreError::Body(failure) if failure.is::<TooSmall>() => entity_too_small(),
        e => S3Error::from(e),
    })?;
    let etag = format!("\"{}\"", record.etag);
    let location = location(&key);
    let mut r = success_response(&form, &bucket, &key, &etag, &location);
    response::set_header(&mut r, "etag", &etag);
    if let Some(c) = &record.checksum {
        response::set_header(&mut r, c.algorithm.header_name(), &c.value);
    }
    access_log::note_written(&mut r, &record);
    Ok(r)
}

/// Reads the fields up to the `file` field, within S3's bound on their size.
async fn read_fields(
    multipart: &mut multer::Multipart<'static>,
) -> S3Result<(Form, multer::Field<'static>)> {
    let mut fields = Vec::new();
    let mut total = 0usize;
    loop {
        let Some(mut field) = multipart.next_field().await.map_err(malformed)? else {
            return Err(no_file());
        };
        let name = field.name().unwrap_or("").to_ascii_lowercase();
        if name == "file" {
            return Ok((Form(fields), field));
        }
        total += name.len();
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            total += chunk.len();
            if total > MAX_FIELDS_BYTES {
                return Err(S3Error::new(
                    "MaxPostPreDataLengthExceededError",
                    StatusCode::BAD_REQUEST,
                    "Your POST request fields preceding the upload file were too large.",
                ));
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value).map_err(malformed)?;
        fields.push((name, value));
    }
}

/// Checks the form's signature and policy. No signature and no policy: an anonymous upload,
/// which the bucket's ACL or policy must allow.
fn verify(
    form: &Form,
    checked: &[(String, String)],
    live: &LiveSettings,
    now: SystemTime,
) -> S3Result<Signer> {
    let v4 = ["x-amz-algorithm", "x-amz-credential", "x-amz-signature"]
        .iter()
        .any(|f| form.get(f).is_some());
    let v2 = ["awsaccesskeyid", "signature"]
        .iter()
        .any(|f| form.get(f).is_some());
    let Some(policy_b64) = form.get("policy") else {
        if v4 || v2 {
            return Err(missing_field("policy"));
        }
        return Ok(Signer {
            credential: None,
            range: None,
        });
    };
    let credential = if v4 {
        verify_v4(form, policy_b64, live)?
    } else {
        verify_v2(form, policy_b64, live)?
    };
    let document = BASE64
        .decode(policy_b64.trim())
        .map_err(|_| invalid_policy("Invalid Policy: Invalid 'Policy' value: must be base64."))?;
    let range = PostPolicy::parse(&document)
        .and_then(|policy| policy.check(checked, now))
        .map_err(policy_error)?;
    if let Some((min, max)) = range {
        if min > max {
            return Err(invalid_policy(
                "Invalid Policy: content-length-range minimum exceeds its maximum.",
            ));
        }
    }
    Ok(Signer {
        credential: Some(credential),
        range,
    })
}

fn verify_v4(form: &Form, policy_b64: &str, live: &LiveSettings) -> S3Result<Credential> {
    let algorithm = form
        .get("x-amz-algorithm")
        .ok_or_else(|| missing_field("x-amz-algorithm"))?;
    if algorithm != V4_ALGORITHM {
        return Err(S3Error::invalid_argument(
            "Only AWS4-HMAC-SHA256 is supported for x-amz-algorithm.",
        )
        .with("ArgumentName", "x-amz-algorithm")
        .with("ArgumentValue", algorithm));
    }
    let scope_text = form
        .get("x-amz-credential")
        .ok_or_else(|| missing_field("x-amz-credential"))?;
    let region = &live.config.server.region;
    let scope = CredentialScope::parse(scope_text, region).map_err(|why| {
        S3Error::invalid_argument(format!("Invalid x-amz-credential: {why}"))
            .with("ArgumentName", "x-amz-credential")
            .with("ArgumentValue", scope_text)
    })?;
    let date_text = form
        .get("x-amz-date")
        .ok_or_else(|| missing_field("x-amz-date"))?;
    let date = RequestDate::parse_amz(date_text).ok_or_else(|| {
        S3Error::invalid_argument("Invalid x-amz-date: must be yyyyMMddTHHmmssZ.")
            .with("ArgumentName", "x-amz-date")
            .with("ArgumentValue", date_text)
    })?;
    scope.check_day(&date).map_err(|why| {
        S3Error::invalid_argument(format!("Invalid x-amz-credential: {why}"))
            .with("ArgumentName", "x-amz-credential")
    })?;
    let signature = form
        .get("x-amz-signature")
        .ok_or_else(|| missing_field("x-amz-signature"))?;
    let credential = known_key(live, &scope.access_key_id)?;
    let key = signing_key(&credential.secret_access_key, &date, &scope.region);
    let expected = hex::encode(hmac_sha256(&key, policy_b64.as_bytes()));
    if !bool::from(
        expected
            .as_bytes()
            .ct_eq(signature.trim().to_ascii_lowercase().as_bytes()),
    ) {
        return Err(signature_mismatch());
    }
    Ok(credential)
}

fn verify_v2(form: &Form, policy_b64: &str, live: &LiveSettings) -> S3Result<Credential> {
    let access_key_id = form
        .get("awsaccesskeyid")
        .ok_or_else(|| missing_field("AWSAccessKeyId"))?;
    let signature = form
        .get("signature")
        .ok_or_else(|| missing_field("Signature"))?;
    let credential = known_key(live, access_key_id)?;
    let expected = sigv2::sign(&credential.secret_access_key, policy_b64.as_bytes());
    if !bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes())) {
        return Err(signature_mismatch());
    }
    Ok(credential)
}

fn known_key(live: &LiveSettings, access_key_id: &str) -> S3Result<Credential> {
    live.credentials
        .get(access_key_id)
        .cloned()
        .ok_or_else(|| S3Error::from(auth::AuthError::InvalidAccessKeyId))
}

/// The headers a PutObject of the same object would carry: the ACL, the stored attributes
/// and a checksum, from their form fields.
fn object_headers(form: &Form) -> S3Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in &form.0 {
        let header = match name.as_str() {
            "acl" => "x-amz-acl",
            // The form gives the tag set as a Tagging document; PutObject's header form lets
            // it be authorized (s3:PutObjectTagging) and checked as that header is.
            "tagging" if !headers.contains_key("x-amz-tagging") => {
                let tags = super::tagging::parse_document(value.as_bytes())?;
                super::tagging::validate(&tags, super::tagging::TagOwner::Object)?;
                let value = HeaderValue::from_str(&super::tagging::to_header(&tags))
                    .map_err(|_| S3Error::malformed_xml())?;
                headers.insert("x-amz-tagging", value);
                continue;
            }
            "tagging" => continue,
            n if ATTRIBUTE_FIELDS.contains(&n)
                || n.starts_with("x-amz-meta-")
                || n.starts_with("x-amz-checksum-") =>
            {
                n
            }
            _ => continue,
        };
        let header = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| S3Error::invalid_argument(format!("Invalid form field name: {name}")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            S3Error::invalid_argument(format!("Invalid value of the form field {name}"))
                .with("ArgumentName", name.clone())
        })?;
        // A repeated field counts once, with its first value: the one the policy checked.
        if !headers.contains_key(&header) {
            headers.insert(header, value);
        }
    }
    Ok(headers)
}

/// The stored object's address as the client reached the gateway (path-style or on the
/// bucket's virtual host), given its key.
fn object_url(
    parts: &http::request::Parts,
    live: &LiveSettings,
    bucket: &str,
) -> impl Fn(&str) -> String {
    let secure = parts
        .extensions
        .get::<crate::access::Connection>()
        .is_some_and(|c| c.secure);
    let scheme = if secure { "https" } else { "http" };
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let virtual_host =
        virtual_host_bucket(&parts.headers, &parts.uri, &live.config.server.base_domains).is_some();
    let base = if virtual_host {
        format!("{scheme}://{host}/")
    } else {
        format!(
            "{scheme}://{host}/{}/",
            auth::sigv4::uri_encode(bucket.as_bytes())
        )
    };
    move |key: &str| {
        let path: Vec<String> = key
            .split('/')
            .map(|s| auth::sigv4::uri_encode(s.as_bytes()))
            .collect();
        format!("{base}{}", path.join("/"))
    }
}

/// `success_action_redirect` (or the older `redirect`) wins; else `success_action_status`
/// picks 200, 201 with a PostResponse document, or S3's default 204.
fn success_response(
    form: &Form,
    bucket: &str,
    key: &str,
    etag: &str,
    location: &str,
) -> S3Response {
    let redirect = form
        .get("success_action_redirect")
        .or_else(|| form.get("redirect"))
        .filter(|url| url.starts_with("http://") || url.starts_with("https://"));
    if let Some(url) = redirect {
        let enc = |s: &str| auth::sigv4::uri_encode(s.as_bytes());
        let separator = if url.contains('?') { '&' } else { '?' };
        let target = format!(
            "{url}{separator}bucket={}&key={}&etag={}",
            enc(bucket),
            enc(key),
            enc(etag)
        );
        let mut r = response::empty(StatusCode::SEE_OTHER);
        response::set_header(&mut r, "location", &target);
        return r;
    }
    let mut r = match form.get("success_action_status") {
        Some("200") => response::empty(StatusCode::OK),
        Some("201") => response::xml(
            StatusCode::CREATED,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                escape(location),
                escape(bucket),
                escape(key),
                escape(etag)
            ),
        ),
        _ => response::empty(StatusCode::NO_CONTENT),
    };
    response::set_header(&mut r, "location", location);
    r
}

/// The file ended shorter than the policy's content-length-range allows.
#[derive(thiserror::Error, Debug)]
#[error("the upload is smaller than the policy's minimum")]
struct TooSmall;

/// Fails the stream at its end, before the store commits, when fewer than `min` bytes came.
fn at_least(
    body: crate::s3::body::BodyStream,
    min: u64,
) -> impl Stream<Item = Result<Bytes, BodyFailure>> + Send + 'static {
    futures::stream::unfold(
        (body, 0u64, false),
        move |(mut body, seen, done)| async move {
            if done {
                return None;
            }
            match body.next().await {
                Some(Ok(piece)) => {
                    let seen = seen + piece.len() as u64;
                    Some((Ok(piece), (body, seen, false)))
                }
                Some(Err(e)) => Some((Err(Box::new(e) as BodyFailure), (body, seen, true))),
                None if seen < min => {
                    Some((Err(Box::new(TooSmall) as BodyFailure), (body, seen, true)))
                }
                None => None,
            }
        },
    )
}

fn policy_error(e: PolicyError) -> S3Error {
    match e {
        PolicyError::Malformed(_) => invalid_policy(&e.message()),
        _ => S3Error::new("AccessDenied", StatusCode::FORBIDDEN, e.message()),
    }
}

fn invalid_policy(message: &str) -> S3Error {
    S3Error::new("InvalidPolicyDocument", StatusCode::BAD_REQUEST, message)
}

fn missing_field(name: &str) -> S3Error {
    S3Error::invalid_argument(format!(
        "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."
    ))
    .with("ArgumentName", name)
    .with("ArgumentValue", "")
}

fn no_file() -> S3Error {
    S3Error::invalid_argument("POST requires exactly one file upload per request.")
        .with("ArgumentName", "file")
        .with("ArgumentValue", "0")
}

fn malformed(_: impl std::fmt::Display) -> S3Error {
    S3Error::new(
        "MalformedPOSTRequest",
        StatusCode::BAD_REQUEST,
        "The body of your POST request is not well-formed multipart/form-data.",
    )
}

fn not_multipart() -> S3Error {
    S3Error::new(
        "PreconditionFailed",
        StatusCode::PRECONDITION_FAILED,
        "At least one of the pre-conditions you specified did not hold",
    )
    .with(
        "Condition",
        "Bucket POST must be of the enclosure-type multipart/form-data",
    )
}

fn signature_mismatch() -> S3Error {
    S3Error::new(
        "SignatureDoesNotMatch",
        StatusCode::FORBIDDEN,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    )
}

fn entity_too_small() -> S3Error {
    S3Error::new(
        "EntityTooSmall",
        StatusCode::BAD_REQUEST,
        "Your proposed upload is smaller than the minimum allowed size",
    )
}
