//! One request's way through: route → authenticate → authorize → dispatch → respond, with a
//! request id and one log line per request.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::BodyExt;

use super::access_log::{self, CountedBody};
use super::auth::{self, Credential};
use super::authorize;
use super::ctx::Ctx;
use super::error::{S3Error, S3Result};
use super::ops;
use super::pace::RawBody;
use super::response::{self, S3Response};
use super::router::{self, Operation, Route};
use crate::access::Principal;
use crate::gateway::{Gateway, LiveSettings};

pub async fn handle<B>(gw: Arc<Gateway>, req: Request<B>) -> S3Response
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let request_id = new_request_id();
    let (parts, body) = req.into_parts();
    let (body, received) = CountedBody::wrap(body.map_err(Into::into).boxed_unsync());
    let body: RawBody = body.boxed_unsync();
    let is_head = parts.method == http::Method::HEAD;
    let close_after = expects_continue_without_body(&parts.headers);
    // Read once: the whole request sees one version of the configuration, whatever a
    // reload does meanwhile.
    let live = gw.live();

    let routed = router::route(
        &parts.method,
        &parts.uri,
        &parts.headers,
        &live.config.server.base_domains,
    );
    let (resource, op_name, bucket) = match &routed {
        Ok(r) => (r.resource(), r.operation.name(), r.bucket.clone()),
        Err(_) => (parts.uri.path().to_string(), "Unknown", None),
    };
    let body: RawBody = crate::metrics::count_request_body(op_name, body).boxed_unsync();
    // Cross-origin requests get their CORS headers after the answer is built (below).
    let cors_origin = cors_origin(&routed, &parts);
    // The access key that signed the request, once verified.
    let mut credential = None;
    let outcome = match routed {
        Ok(route) => {
            dispatch(
                gw.clone(),
                live,
                route,
                parts,
                body,
                request_id.clone(),
                &mut credential,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let mut error_code = None;
    let mut response = match outcome {
        Ok(r) => r,
        Err(e) => {
            error_code = Some(e.code);
            response::error(&e, &resource, &request_id, is_head)
        }
    };
    if let (Some((origin, method)), Some(bucket)) = (&cors_origin, &bucket) {
        ops::cors::decorate(&gw.store, bucket, origin, method, &mut response);
    }
    let replicas = access_log::take_replicas(&mut response);
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amz-request-id", v.clone());
        headers.insert("x-amz-id-2", v);
    }
    headers.insert("server", HeaderValue::from_static("Hansa"));
    if close_after {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    // The body's length as answered: its Content-Length when it streams (a response cut
    // short sends less), nothing for HEAD.
    let bytes = if is_head {
        0
    } else {
        http_body::Body::size_hint(response.body())
            .exact()
            .or_else(|| {
                response
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    };
    let bytes_in = received.load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        request_id = %request_id,
        credential = credential.as_deref().unwrap_or("-"),
        operation = op_name,
        bucket = bucket.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        bytes_in,
        bytes_out = bytes,
        duration_ms = started.elapsed().as_millis() as u64,
        replicas = replicas.as_ref().map_or("-", |r| r.0.as_str()),
        error = error_code.unwrap_or("-"),
        "request"
    );
    crate::metrics::record_request(op_name, response.status().as_u16(), started.elapsed());
    response.map(|body| crate::metrics::count_response_body(op_name, body).boxed_unsync())
}

async fn dispatch(
    gw: Arc<Gateway>,
    live: Arc<LiveSettings>,
    route: Route,
    parts: http::request::Parts,
    body: RawBody,
    request_id: String,
    signed_by: &mut Option<String>,
) -> S3Result<S3Response> {
    // A browser's preflight carries no credentials: answered from the bucket's CORS rules.
    if route.operation == Operation::CorsPreflight {
        return ops::cors::preflight(&gw.store, &route, &parts.headers);
    }
    // A form upload signs its policy in the form's fields, not in its headers: the operation
    // authenticates and authorizes once it has read them.
    if route.operation == Operation::PostObject {
        return ops::post::post_object(gw, live, route, parts, body, request_id, signed_by).await;
    }
    let verified = match auth::authenticate(
        &parts,
        &live.credentials,
        &live.auth,
        std::time::SystemTime::now(),
    ) {
        Ok(verified) => Some(verified),
        // No signature at all (never a bad one): an anonymous request, which only ACL grants
        // can let in.
        Err(auth::AuthError::Anonymous) => None,
        Err(e) => {
            let e = S3Error::from(e);
            // S3 names the region it expects; SDKs read it to redirect.
            return Err(if e.code == "AuthorizationHeaderMalformed" {
                e.with("Region", &live.config.server.region)
            } else {
                e
            });
        }
    };
    let credential = match &verified {
        Some(v) => Some(
            live.credentials
                .get(&v.access_key_id)
                .cloned()
                .ok_or_else(S3Error::access_denied)?,
        ),
        None => None,
    };
    let principal = match &credential {
        Some(c) => Principal::Key(c.access_key_id.clone()),
        None => Principal::Anonymous,
    };
    *signed_by = credential.as_ref().map(|c| c.access_key_id.clone());
    authorize::authorize(&gw.store, &principal, credential.as_ref(), &route, &parts)?;
    let (verified, credential) = match (verified, credential) {
        (Some(v), Some(c)) => (v, c),
        _ => anonymous_stand_ins(&parts)?,
    };
    if !live.rates.admit(&credential.access_key_id) {
        return Err(S3Error::slow_down());
    }
    let mut ctx = Ctx::new(
        gw, live, route, parts, verified, credential, principal, request_id, body,
    );
    match ctx.route.operation.clone() {
        Operation::ListBuckets => ops::bucket::list_buckets(&ctx).await,
        Operation::CreateBucket => ops::bucket::create_bucket(&mut ctx).await,
        Operation::HeadBucket => ops::bucket::head_bucket(&ctx).await,
        Operation::DeleteBucket => ops::bucket::delete_bucket(&ctx).await,
        Operation::GetBucketLocation => ops::bucket::get_location(&ctx).await,
        Operation::GetBucketVersioning => ops::versioning::get_versioning(&ctx).await,
        Operation::PutBucketVersioning => ops::versioning::put_versioning(&mut ctx).await,
        Operation::ListObjectVersions => ops::versioning::list_object_versions(&ctx).await,
        Operation::GetBucketAcl => ops::acl::get_bucket_acl(&ctx).await,
        Operation::PutBucketAcl => ops::acl::put_bucket_acl(&mut ctx).await,
        Operation::GetObjectAcl => ops::acl::get_object_acl(&ctx).await,
        Operation::PutObjectAcl => ops::acl::put_object_acl(&mut ctx).await,
        Operation::ListObjectsV1 => ops::list::list_objects_v1(&ctx).await,
        Operation::ListObjectsV2 => ops::list::list_objects_v2(&ctx).await,
        Operation::DeleteObjects => ops::delete::delete_objects(&mut ctx).await,
        Operation::PutObject => ops::object::put_object(&mut ctx).await,
        Operation::PostObject => Err(S3Error::internal("form upload reached dispatch")),
        Operation::CopyObject => ops::copy::copy_object(&mut ctx).await,
        Operation::GetObject => ops::object::get_object(&ctx, false).await,
        Operation::HeadObject => ops::object::get_object(&ctx, true).await,
        Operation::DeleteObject => ops::object::delete_object(&ctx).await,
        Operation::CreateMultipartUpload => ops::multipart::create_multipart_upload(&mut ctx).await,
        Operation::UploadPart => ops::multipart::upload_part(&mut ctx).await,
        Operation::UploadPartCopy => ops::multipart::upload_part_copy(&mut ctx).await,
        Operation::CompleteMultipartUpload => {
            ops::multipart_complete::complete_multipart_upload(&mut ctx).await
        }
        Operation::AbortMultipartUpload => ops::multipart::abort_multipart_upload(&ctx).await,
        Operation::ListParts => ops::multipart_list::list_parts(&ctx).await,
        Operation::ListMultipartUploads => ops::multipart_list::list_multipart_uploads(&ctx).await,
        Operation::GetObjectAttributes => ops::attributes::get_object_attributes(&ctx).await,
        Operation::PutBucketCors => ops::cors::put_bucket_cors(&mut ctx).await,
        Operation::GetBucketCors => ops::cors::get_bucket_cors(&ctx).await,
        Operation::DeleteBucketCors => ops::cors::delete_bucket_cors(&ctx).await,
        Operation::CorsPreflight => Err(S3Error::internal("preflight reached dispatch")),
        Operation::GetBucketOwnershipControls => ops::acl::get_ownership_controls(&ctx).await,
        Operation::PutBucketOwnershipControls => ops::acl::put_ownership_controls(&mut ctx).await,
        Operation::DeleteBucketOwnershipControls => ops::acl::delete_ownership_controls(&ctx).await,
        Operation::PutBucketPolicy => ops::policy::put_bucket_policy(&mut ctx).await,
        Operation::GetBucketPolicy => ops::policy::get_bucket_policy(&ctx).await,
        Operation::DeleteBucketPolicy => ops::policy::delete_bucket_policy(&ctx).await,
        Operation::GetBucketPolicyStatus => ops::policy::get_bucket_policy_status(&ctx).await,
        Operation::PutPublicAccessBlock => ops::policy::put_public_access_block(&mut ctx).await,
        Operation::GetPublicAccessBlock => ops::policy::get_public_access_block(&ctx).await,
        Operation::DeletePublicAccessBlock => ops::policy::delete_public_access_block(&ctx).await,
        Operation::PutObjectTagging => ops::tagging::put_object_tagging(&mut ctx).await,
        Operation::GetObjectTagging => ops::tagging::get_object_tagging(&ctx).await,
        Operation::DeleteObjectTagging => ops::tagging::delete_object_tagging(&ctx).await,
        Operation::PutBucketTagging => ops::tagging::put_bucket_tagging(&mut ctx).await,
        Operation::GetBucketTagging => ops::tagging::get_bucket_tagging(&ctx).await,
        Operation::DeleteBucketTagging => ops::tagging::delete_bucket_tagging(&ctx).await,
        Operation::PutObjectLockConfiguration => {
            ops::lock::put_object_lock_configuration(&mut ctx).await
        }
        Operation::GetObjectLockConfiguration => {
            ops::lock::get_object_lock_configuration(&ctx).await
        }
        Operation::PutObjectRetention => ops::lock::put_object_retention(&mut ctx).await,
        Operation::GetObjectRetention => ops::lock::get_object_retention(&ctx).await,
        Operation::PutObjectLegalHold => ops::lock::put_object_legal_hold(&mut ctx).await,
        Operation::GetObjectLegalHold => ops::lock::get_object_legal_hold(&ctx).await,
        Operation::PutBucketLifecycleConfiguration => {
            ops::lifecycle::put_bucket_lifecycle(&mut ctx).await
        }
        Operation::GetBucketLifecycleConfiguration => {
            ops::lifecycle::get_bucket_lifecycle(&ctx).await
        }
        Operation::DeleteBucketLifecycle => ops::lifecycle::delete_bucket_lifecycle(&ctx).await,
        Operation::NotImplemented(name) => Err(S3Error::not_implemented(name)),
    }
}

/// The tenant unsigned requests share for rate limits, pacing and the in-flight budget.
const ANONYMOUS_TENANT: &str = "anonymous";

/// What an unsigned request's `Ctx` carries where a signed one has its credential: a stand-in
/// credential of the shared anonymous tenant with no bucket in its scope, and the body's
/// framing from `x-amz-content-sha256` — a hash is still checked, unsigned aws-chunked still
/// decoded (else its framing would be stored as data); signed chunks cannot be without a key.
fn anonymous_stand_ins(parts: &http::request::Parts) -> S3Result<(auth::Verified, Credential)> {
    let declared = parts
        .headers
        .get("x-amz-content-sha256")
        .map(|v| v.to_str().unwrap_or(""));
    let payload = match declared {
        None | Some("UNSIGNED-PAYLOAD") => auth::PayloadCheck::Unsigned,
        Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER") => auth::PayloadCheck::StreamingUnsignedTrailer,
        Some(v) if v.starts_with("STREAMING-") => return Err(S3Error::access_denied()),
        Some(v) => {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(v, &mut hash)
                .map_err(|_| S3Error::from(auth::AuthError::InvalidContentSha256))?;
            auth::PayloadCheck::Sha256(hash)
        }
    };
    Ok((
        auth::Verified {
            access_key_id: ANONYMOUS_TENANT.to_string(),
            payload,
        },
        Credential {
            access_key_id: ANONYMOUS_TENANT.to_string(),
            secret_access_key: String::new(),
            buckets: Some(Vec::new()),
            read_only: false,
        },
    ))
}

/// The `Origin` and method of a cross-origin request on a bucket (not a preflight, which
/// answers with its own CORS headers).
fn cors_origin(routed: &S3Result<Route>, parts: &http::request::Parts) -> Option<(String, String)> {
    let origin = parts.headers.get(http::header::ORIGIN)?.to_str().ok()?;
    match routed {
        Ok(r) if r.operation != Operation::CorsPreflight => {
            Some((origin.to_string(), parts.method.to_string()))
        }
        _ => None,
    }
}

/// `Expect: 100-continue` with an empty body gets its final answer without a 100. Some
/// botocore versions then misread the next response on the same connection, so such a
/// connection is closed after the reply.
fn expects_continue_without_body(headers: &http::HeaderMap) -> bool {
    let expects = headers
        .get(http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let empty = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        == Some("0");
    expects && empty
}

fn new_request_id() -> String {
    let id = uuid::Uuid::new_v4();
    hex::encode_upper(&id.as_bytes()[..8])
}
