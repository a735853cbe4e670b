//! Bucket CORS: Put/Get/DeleteBucketCors, the unauthenticated preflight (`OPTIONS`), and the
//! CORS headers on every other answer to a request with an `Origin`. The rules and their
//! matching live in `crate::access::cors`; this file reads and stores them and speaks HTTP.

use http::{HeaderMap, HeaderValue, StatusCode};

use super::support::{existing_bucket, has_body_digest, read_small_body};
use crate::access::cors::{self, ConfigError, CorsConfiguration, CorsHeaders, PreflightRefusal};
use crate::meta::BucketSetting;
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, S3Response};
use crate::s3::router::Route;
use crate::store::{self, Store};

/// S3 limits the configuration document to 64 KB.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

pub async fn put_bucket_cors(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    existing_bucket(ctx, &bucket)?;
    if !has_body_digest(&ctx.headers) {
        return Err(S3Error::invalid_request(
            "Missing required header for this request: Content-MD5",
        ));
    }
    let body = read_small_body(ctx).await?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(S3Error::new(
            "MaxMessageLengthExceeded",
            StatusCode::BAD_REQUEST,
            format!("Your request was too big (at most {MAX_DOCUMENT_BYTES} bytes)."),
        ));
    }
    let config = CorsConfiguration::parse(&body).map_err(|e| match e {
        ConfigError::Malformed => S3Error::malformed_xml(),
        ConfigError::Invalid(message) => S3Error::invalid_request(message),
    })?;
    store::set_bucket_setting(
        &ctx.gw.store,
        &bucket,
        BucketSetting::Cors,
        Some(&config.to_json()),
    )
    .await?;
    Ok(response::empty(StatusCode::OK))
}

pub async fn get_bucket_cors(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let config = stored(&ctx.gw.store, bucket)?.ok_or_else(|| {
        S3Error::new(
            "NoSuchCORSConfiguration",
            StatusCode::NOT_FOUND,
            "The CORS configuration does not exist",
        )
        .with("BucketName", bucket)
    })?;
    Ok(response::xml(StatusCode::OK, config.to_xml()))
}

pub async fn delete_bucket_cors(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    store::set_bucket_setting(&ctx.gw.store, bucket, BucketSetting::Cors, None).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

/// The bucket's configuration; NoSuchBucket when the bucket is missing. A stored document
/// this gateway cannot read counts as none (it only ever stores what it parsed).
fn stored(store: &Store, bucket: &str) -> S3Result<Option<CorsConfiguration>> {
    Ok(store::bucket_setting(store, bucket, BucketSetting::Cors)?
        .and_then(|json| CorsConfiguration::from_json(&json)))
}

/// Answers `OPTIONS /bucket[/key]` from the bucket's rules, without authentication: a
/// browser's preflight carries no credentials.
pub fn preflight(store: &Store, route: &Route, headers: &HeaderMap) -> S3Result<S3Response> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let method = text("access-control-request-method");
    // A missing bucket is answered like one without rules: a preflight learns nothing more.
    let config = match &route.bucket {
        Some(bucket) => stored(store, bucket).unwrap_or(None),
        None => None,
    };
    let allowed = cors::preflight(
        config.as_ref(),
        text("origin"),
        method,
        text("access-control-request-headers"),
    )
    .map_err(|refusal| {
        let message = refusal.message();
        match refusal {
            PreflightRefusal::NoOrigin | PreflightRefusal::BadMethod(_) => {
                S3Error::new("BadRequest", StatusCode::BAD_REQUEST, message)
            }
            PreflightRefusal::NotEnabled | PreflightRefusal::NotAllowed => {
                let resource_type = if route.key.is_some() {
                    "OBJECT"
                } else {
                    "BUCKET"
                };
                S3Error::new("AccessForbidden", StatusCode::FORBIDDEN, message)
                    .with("Method", method.unwrap_or_default())
                    .with("ResourceType", resource_type)
            }
        }
    })?;
    let mut r = response::empty(StatusCode::OK);
    set_headers(&mut r, allowed);
    Ok(r)
}

/// Adds the CORS headers of the first rule allowing `origin` and `method` to any answer on
/// `bucket`, success or error. Called only for requests with an `Origin`, so others pay
/// nothing; a bucket that is missing or unreadable adds nothing.
pub fn decorate(store: &Store, bucket: &str, origin: &str, method: &str, r: &mut S3Response) {
    let Ok(Some(config)) = stored(store, bucket) else {
        return;
    };
    if let Some(headers) = cors::actual(&config, origin, method) {
        set_headers(r, headers);
    }
}

fn set_headers(r: &mut S3Response, headers: CorsHeaders) {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(name, v);
        }
    }
}
