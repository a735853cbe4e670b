//! Put/Get/DeleteBucketLifecycleConfiguration. The rules and their validation live in
//! `crate::lifecycle`; the worker that applies them in `store::lifecycle`.

use http::StatusCode;

use super::support::{existing_bucket, read_small_body};
use crate::lifecycle::{ConfigError, LifecycleConfiguration};
use crate::meta::BucketSetting;
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, S3Response};
use crate::store;

pub async fn put_bucket_lifecycle(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    existing_bucket(ctx, &bucket)?;
    // As for CORS, S3 requires the body's integrity to be provable: Content-MD5 or a flexible
    // checksum, which the body reader verifies.
    let has_digest = ctx.headers.contains_key("content-md5")
        || ctx.headers.contains_key("x-amz-sdk-checksum-algorithm")
        || ctx.headers.contains_key("x-amz-trailer")
        || ctx
            .headers
            .keys()
            .any(|h| h.as_str().starts_with("x-amz-checksum-"));
    if !has_digest {
        return Err(S3Error::invalid_request(
            "Missing required header for this request: Content-MD5",
        ));
    }
    // Bounded by `limits.max_xml_bytes`.
    let body = read_small_body(ctx).await?;
    let config = LifecycleConfiguration::parse(&body).map_err(|e| match e {
        ConfigError::Malformed => S3Error::malformed_xml(),
        ConfigError::InvalidArgument(message) => S3Error::invalid_argument(message),
        ConfigError::InvalidRequest(message) => S3Error::invalid_request(message),
        ConfigError::Unsupported(message) => {
            S3Error::new("NotImplemented", StatusCode::NOT_IMPLEMENTED, message)
        }
    })?;
    store::set_bucket_setting(
        &ctx.gw.store,
        &bucket,
        BucketSetting::Lifecycle,
        Some(&config.to_json()),
    )
    .await?;
    Ok(response::empty(StatusCode::OK))
}

pub async fn get_bucket_lifecycle(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let config = store::lifecycle::bucket_rules(&ctx.gw.store, bucket)?.ok_or_else(|| {
        S3Error::new(
            "NoSuchLifecycleConfiguration",
            StatusCode::NOT_FOUND,
            "The lifecycle configuration does not exist",
        )
        .with("BucketName", bucket)
    })?;
    Ok(response::xml(StatusCode::OK, config.to_xml()))
}

pub async fn delete_bucket_lifecycle(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    store::set_bucket_setting(&ctx.gw.store, bucket, BucketSetting::Lifecycle, None).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}
