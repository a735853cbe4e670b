//! ACLs: Hansa has no ACLs beyond its credentials; it answers truthfully that the owner has
//! FULL_CONTROL, and accepts setting the `private` canned ACL (which changes nothing).

use http::StatusCode;

use super::bucket::{check_canned_acl, owner};
use super::support::{existing_bucket, read_small_body};
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, S3Response};
use crate::s3::xml::{self, S3_NS};
use crate::store;

fn policy(owner_id: &str) -> S3Result<S3Response> {
    let doc = xml::AccessControlPolicy {
        xmlns: S3_NS,
        owner: owner(owner_id),
        access_control_list: xml::AccessControlList {
            grant: vec![xml::Grant {
                grantee: xml::Grantee {
                    xmlns_xsi: "http://www.w3.org/2001/XMLSchema-instance",
                    xsi_type: "CanonicalUser",
                    id: owner_id.to_string(),
                    display_name: owner_id.to_string(),
                },
                permission: "FULL_CONTROL",
            }],
        },
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("AccessControlPolicy", &doc)?,
    ))
}

pub async fn get_bucket_acl(ctx: &Ctx) -> S3Result<S3Response> {
    let record = existing_bucket(ctx, ctx.bucket()?)?;
    policy(&record.owner)
}

pub async fn get_object_acl(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    existing_bucket(ctx, bucket)?;
    let key = ctx.key()?;
    let record =
        store::object(&ctx.gw.store, bucket, key)?.ok_or_else(|| S3Error::no_such_key(key))?;
    policy(&record.owner)
}

/// Only `x-amz-acl: private` (or no ACL at all) with an empty body is accepted.
async fn put_acl(ctx: &mut Ctx) -> S3Result<()> {
    check_canned_acl(ctx)?;
    let body = read_small_body(ctx).await?;
    if !body.iter().all(u8::is_ascii_whitespace)
        || ctx
            .headers
            .keys()
            .any(|h| h.as_str().starts_with("x-amz-grant-"))
    {
        return Err(S3Error::not_implemented("ACL documents and grants"));
    }
    Ok(())
}

pub async fn put_bucket_acl(ctx: &mut Ctx) -> S3Result<S3Response> {
    existing_bucket(ctx, ctx.bucket()?)?;
    put_acl(ctx).await?;
    Ok(response::empty(StatusCode::OK))
}

pub async fn put_object_acl(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    existing_bucket(ctx, &bucket)?;
    let key = ctx.key()?.to_string();
    if store::object(&ctx.gw.store, &bucket, &key)?.is_none() {
        return Err(S3Error::no_such_key(&key));
    }
    put_acl(ctx).await?;
    Ok(response::empty(StatusCode::OK))
}
