//! Bucket operations: list, create, head, delete, location, versioning.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use base64::Engine as _;
use http::StatusCode;

use super::support::{existing_bucket, read_small_body};
use crate::meta::BucketRecord;
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, iso8601, now_ms, S3Response};
use crate::s3::xml::{self, S3_NS};
use crate::store::{self, StoreError};

/// S3's page size when the client names none.
const MAX_BUCKETS: usize = 10_000;

pub async fn list_buckets(ctx: &Ctx) -> S3Result<S3Response> {
    let page = bucket_page(ctx)?;
    let mut buckets = store::buckets(&ctx.gw.store)?
        .into_iter()
        .filter(|b| ctx.credential.may_access(&b.name))
        .filter(|b| b.name.starts_with(page.prefix.as_deref().unwrap_or("")))
        .filter(|b| page.region.as_ref().is_none_or(|r| &b.region == r))
        .filter(|b| page.after.as_ref().is_none_or(|after| &b.name > after))
        .take(page.max + 1)
        .collect::<Vec<_>>();
    // The index keeps buckets in name order; one more than a page tells whether more follow.
    let more = buckets.len() > page.max;
    buckets.truncate(page.max);
    let continuation_token = more
        .then(|| buckets.last().map(|b| BASE64.encode(&b.name)))
        .flatten();
    let doc = xml::ListAllMyBucketsResult {
        xmlns: S3_NS,
        buckets: xml::Buckets {
            bucket: buckets
                .into_iter()
                .map(|b| xml::BucketEntry {
                    name: b.name,
                    creation_date: iso8601(b.created_ms),
                    bucket_region: b.region,
                })
                .collect(),
        },
        owner: xml::owner(&ctx.credential.access_key_id),
        continuation_token,
        prefix: page.prefix,
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("ListAllMyBucketsResult", &doc)?,
    ))
}

/// A ListBuckets request's page: `max-buckets`, `continuation-token`, `prefix`,
/// `bucket-region`.
struct BucketPage {
    max: usize,
    /// The last bucket of the previous page.
    after: Option<String>,
    prefix: Option<String>,
    region: Option<String>,
}

fn bucket_page(ctx: &Ctx) -> S3Result<BucketPage> {
    let max = match ctx.route.query("max-buckets") {
        None => MAX_BUCKETS,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_BUCKETS).contains(n))
            .ok_or_else(|| {
                S3Error::invalid_argument(
                    "Argument max-buckets must be an integer between 1 and 10000",
                )
                .with("ArgumentName", "max-buckets")
                .with("ArgumentValue", text)
            })?,
    };
    // Tokens are opaque to clients; ours carry the last bucket name of the previous page.
    let after = match ctx.route.query("continuation-token") {
        None => None,
        Some(token) => Some(
            BASE64
                .decode(token)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .filter(|name| !name.is_empty())
                .ok_or_else(|| {
                    S3Error::invalid_argument("The continuation token provided is incorrect")
                        .with("ArgumentName", "continuation-token")
                        .with("ArgumentValue", token)
                })?,
        ),
    };
    Ok(BucketPage {
        max,
        after,
        prefix: ctx.route.query("prefix").map(str::to_string),
        region: ctx
            .route
            .query("bucket-region")
            .filter(|r| !r.is_empty())
            .map(str::to_string),
    })
}

pub async fn create_bucket(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    if !bucket_name_allowed(&bucket) {
        return Err(S3Error::new(
            "InvalidBucketName",
            StatusCode::BAD_REQUEST,
            "The specified bucket is not valid.",
        )
        .with("BucketName", &bucket));
    }
    let access = super::acl::new_bucket_access(ctx, &ctx.credential.access_key_id)?;
    let lock = super::lock::lock_requested_at_creation(ctx)?;
    let body = read_small_body(ctx).await?;
    let region = &ctx.live.config.server.region;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let conf: xml::CreateBucketConfiguration =
            xml::from_xml("CreateBucketConfiguration", &body)?;
        if let Some(constraint) = conf.location_constraint.filter(|c| !c.is_empty()) {
            if &constraint != region {
                return Err(S3Error::new(
                    "IllegalLocationConstraintException",
                    StatusCode::BAD_REQUEST,
                    format!(
                        "The {constraint} location constraint is incompatible for the region specific endpoint this request was sent to ({region})."
                    ),
                ));
            }
        }
    }
    let record = BucketRecord {
        name: bucket.clone(),
        created_ms: now_ms(),
        region: region.clone(),
        owner: ctx.credential.access_key_id.clone(),
    };
    match store::create_bucket(&ctx.gw.store, &record).await {
        Ok(()) => {}
        Err(StoreError::BucketExists(_)) => {
            let existing = store::bucket(&ctx.gw.store, &bucket).ok();
            let mine = existing.is_some_and(|b| b.owner == ctx.credential.access_key_id);
            return Err(if mine {
                S3Error::new(
                    "BucketAlreadyOwnedByYou",
                    StatusCode::CONFLICT,
                    "Your previous request to create the named bucket succeeded and you already own it.",
                )
            } else {
                S3Error::new(
                    "BucketAlreadyExists",
                    StatusCode::CONFLICT,
                    "The requested bucket name is not available.",
                )
            }
            .with("BucketName", &bucket));
        }
        Err(e) => return Err(e.into()),
    }
    super::acl::apply_bucket_access(ctx, &bucket, access).await?;
    if lock {
        super::lock::enable_at_creation(ctx, &bucket).await?;
    }
    let mut r = response::empty(StatusCode::OK);
    response::set_header(&mut r, "location", &format!("/{bucket}"));
    Ok(r)
}

/// S3's naming rules for new buckets: the character rules every backend relies on, plus the
/// reserved forms (IP addresses, `xn--`, `sthree-`, `-s3alias`, `--ol-s3`, `--x-s3`).
pub fn bucket_name_allowed(name: &str) -> bool {
    hansa_backends::naming::is_valid_bucket_name(name)
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !["xn--", "sthree-", "amzn-s3-demo-"]
            .iter()
            .any(|p| name.starts_with(p))
        && !["-s3alias", "--ol-s3", "--x-s3", ".mrap"]
            .iter()
            .any(|s| name.ends_with(s))
}

pub async fn head_bucket(ctx: &Ctx) -> S3Result<S3Response> {
    let record = existing_bucket(ctx, ctx.bucket()?)?;
    let mut r = response::empty(StatusCode::OK);
    response::set_header(&mut r, "x-amz-bucket-region", &record.region);
    Ok(r)
}

pub async fn delete_bucket(ctx: &Ctx) -> S3Result<S3Response> {
    store::delete_bucket(&ctx.gw.store, ctx.bucket()?).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

pub async fn get_location(ctx: &Ctx) -> S3Result<S3Response> {
    let record = existing_bucket(ctx, ctx.bucket()?)?;
    // S3 reports us-east-1 as an empty constraint.
    let region = if record.region == "us-east-1" {
        String::new()
    } else {
        record.region
    };
    let doc = xml::LocationConstraint {
        xmlns: S3_NS,
        region,
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("LocationConstraint", &doc)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::bucket_name_allowed;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "my-bucket.photos", "a1b", "0-9"] {
            assert!(bucket_name_allowed(ok), "{ok}");
        }
        for bad in [
            "ab",
            "Abc",
            "a_b",
            "-ab",
            "ab-",
            "a..b",
            "192.168.5.4",
            "xn--abc",
            "sthree-x",
            "x-s3alias",
            "x--ol-s3",
            &"a".repeat(64),
        ] {
            assert!(!bucket_name_allowed(bad), "{bad}");
        }
    }
}
