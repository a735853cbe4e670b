//! One request's way through: route → authenticate → authorize → dispatch → respond, with a
//! request id and one log line per request.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::BodyExt;

use super::access_log::{self, CountedBody};
use super::auth::{self, Credential};
use super::ctx::Ctx;
use super::error::{S3Error, S3Result};
use super::ops;
use super::pace::RawBody;
use super::response::{self, S3Response};
use super::router::{self, Operation, Route};
use crate::access::{Decision, Principal};
use crate::gateway::{Gateway, LiveSettings};
use crate::store::Store;

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
    let verified = auth::authenticate(
        &parts,
        &live.credentials,
        &live.auth,
        std::time::SystemTime::now(),
    )
    .map_err(|e| {
        let e = S3Error::from(e);
        // S3 names the region it expects; SDKs read it to redirect.
        if e.code == "AuthorizationHeaderMalformed" {
            e.with("Region", &live.config.server.region)
        } else {
            e
        }
    })?;
    let credential = live
        .credentials
        .get(&verified.access_key_id)
        .cloned()
        .ok_or_else(S3Error::access_denied)?;
    *signed_by = Some(credential.access_key_id.clone());
    authorize(&gw.store, &credential, &route, &parts)?;
    if !live.rates.admit(&credential.access_key_id) {
        return Err(S3Error::slow_down());
    }
    let mut ctx = Ctx::new(
        gw, live, route, parts, verified, credential, request_id, body,
    );
    match ctx.route.operation.clone() {
        Operation::ListBuckets => ops::bucket::list_buckets(&ctx).await,
        Operation::CreateBucket => ops::bucket::create_bucket(&mut ctx).await,
        Operation::HeadBucket => ops::bucket::head_bucket(&ctx).await,
        Operation::DeleteBucket => ops::bucket::delete_bucket(&ctx).await,
        Operation::GetBucketLocation => ops::bucket::get_location(&ctx).await,
        Operation::GetBucketVersioning => ops::bucket::get_versioning(&ctx).await,
        Operation::GetBucketAcl => ops::acl::get_bucket_acl(&ctx).await,
        Operation::PutBucketAcl => ops::acl::put_bucket_acl(&mut ctx).await,
        Operation::GetObjectAcl => ops::acl::get_object_acl(&ctx).await,
        Operation::PutObjectAcl => ops::acl::put_object_acl(&mut ctx).await,
        Operation::ListObjectsV1 => ops::list::list_objects_v1(&ctx).await,
        Operation::ListObjectsV2 => ops::list::list_objects_v2(&ctx).await,
        Operation::DeleteObjects => ops::delete::delete_objects(&mut ctx).await,
        Operation::PutObject => ops::object::put_object(&mut ctx).await,
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
        Operation::PutBucketPolicy => ops::policy::put_bucket_policy(&mut ctx).await,
        Operation::GetBucketPolicy => ops::policy::get_bucket_policy(&ctx).await,
        Operation::DeleteBucketPolicy => ops::policy::delete_bucket_policy(&ctx).await,
        Operation::GetBucketPolicyStatus => ops::policy::get_bucket_policy_status(&ctx).await,
        Operation::PutPublicAccessBlock => ops::policy::put_public_access_block(&mut ctx).await,
        Operation::GetPublicAccessBlock => ops::policy::get_public_access_block(&ctx).await,
        Operation::DeletePublicAccessBlock => ops::policy::delete_public_access_block(&ctx).await,
        Operation::NotImplemented(name) => Err(S3Error::not_implemented(name)),
    }
}

/// The bucket policy, then the credential's scope (allowed buckets, read-only flag). A
/// policy's explicit Deny refuses whatever the scope grants (except the administrators'
/// management of the policy itself, see `ops::policy::manages_policy`). Every key belongs to
/// the bucket owner's one "account", so, as S3 does within an account, a request is let in
/// when either the key's scope (its identity policy) or the bucket policy allows it.
fn authorize(
    store: &Store,
    credential: &Credential,
    route: &Route,
    parts: &http::request::Parts,
) -> S3Result<()> {
    let principal = Principal::Key(credential.access_key_id.clone());
    let policy = match ops::policy::request_facts(principal, route, parts) {
        Some(facts) => ops::policy::bucket_policy_decision(store, &facts)?,
        None => Decision::NoOpinion,
    };
    if policy == Decision::Deny && !ops::policy::manages_policy(credential, &route.operation) {
        return Err(S3Error::access_denied());
    }
    let allowed_by_policy = policy == Decision::Allow;
    if let Some(bucket) = &route.bucket {
        if !credential.may_access(bucket) && !allowed_by_policy {
            return Err(S3Error::access_denied());
        }
    }
    if credential.read_only && route.operation.is_write() && !allowed_by_policy {
        return Err(S3Error::access_denied());
    }
    Ok(())
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
