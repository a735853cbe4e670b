//! ACLs and object ownership: Get/PutBucketAcl, Get/PutObjectAcl, the ACL a new bucket or
//! object gets from its request's headers, and Get/Put/DeleteBucketOwnershipControls. The
//! model and its parsing are `crate::access::acl`; this file stores it (bucket: the
//! `BucketSetting::Acl` setting; object: `ObjectRecord::acl`) and speaks S3's XML and errors.
//!
//! A bucket created without `x-amz-object-ownership` has no ownership controls: it behaves as
//! `ObjectWriter` (ACLs enabled), as S3 buckets did before April 2023, so that
//! `put-bucket-acl --acl public-read` works on a gateway's buckets without a prior step.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::policy::{public_access_block, PublicAccessBlock};
use super::support::{existing_bucket, read_small_body};
use crate::access::acl::{Acl, AclError, Grantee, ObjectOwnership, ANONYMOUS_ID};
use crate::access::Principal;
use crate::meta::{BucketRecord, BucketSetting, ObjectRecord};
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, S3Response};
use crate::s3::xml::{self, S3_NS};
use crate::store::{self, Store};

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

pub fn acl_error(e: AclError) -> S3Error {
    match e {
        AclError::Malformed => S3Error::new(
            "MalformedACLError",
            StatusCode::BAD_REQUEST,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ),
        AclError::UnknownCanned(value) => S3Error::invalid_argument(format!(
            "The canned ACL {value} is not valid"
        ))
        .with("ArgumentName", "x-amz-acl")
        .with("ArgumentValue", value),
        AclError::CannedAndGrants => S3Error::invalid_request(
            "Specifying both Canned ACLs and Header Grants is not allowed",
        ),
        AclError::BadGrantHeader(value) => {
            S3Error::invalid_argument("Invalid grant header").with("ArgumentValue", value)
        }
        AclError::EmailGrantee(email) => S3Error::new(
            "UnresolvableGrantByEmailAddress",
            StatusCode::BAD_REQUEST,
            "The e-mail address you provided does not match any account on record.",
        )
        .with("EmailAddressProvided", email),
        AclError::OwnerMismatch => S3Error::access_denied(),
    }
}

fn acls_not_supported() -> S3Error {
    S3Error::new(
        "AccessControlListNotSupported",
        StatusCode::BAD_REQUEST,
        "The bucket does not allow ACLs",
    )
}

fn acl_with_enforced_ownership() -> S3Error {
    S3Error::new(
        "InvalidBucketAclWithObjectOwnership",
        StatusCode::BAD_REQUEST,
        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
    )
}

fn corrupt(what: &str) -> S3Error {
    S3Error::internal(format!("stored {what} does not parse"))
}

fn to_json(acl: &Acl) -> S3Result<String> {
    serde_json::to_string(acl).map_err(|e| S3Error::internal(format!("acl: {e}")))
}

/// The bucket's ownership controls, if any were set.
pub fn stored_ownership(store: &Store, bucket: &str) -> S3Result<Option<ObjectOwnership>> {
    match store::bucket_setting(store, bucket, BucketSetting::OwnershipControls)? {
        None => Ok(None),
        Some(text) => {
            let name: String =
                serde_json::from_str(&text).map_err(|_| corrupt("ownership controls"))?;
            ObjectOwnership::parse(&name)
                .map(Some)
                .ok_or_else(|| corrupt("ownership controls"))
        }
    }
}

/// What governs the bucket: its controls, or `ObjectWriter` when none were set.
pub fn ownership(store: &Store, bucket: &str) -> S3Result<ObjectOwnership> {
    Ok(stored_ownership(store, bucket)?.unwrap_or(ObjectOwnership::ObjectWriter))
}

/// The bucket's ACL as it counts: owner-only under `BucketOwnerEnforced` (ACLs disabled).
pub fn effective_bucket_acl(store: &Store, bucket: &BucketRecord) -> S3Result<Acl> {
    if !ownership(store, &bucket.name)?.acls_enabled() {
        return Ok(Acl::private(&bucket.owner));
    }
    let acl = match store::bucket_setting(store, &bucket.name, BucketSetting::Acl)? {
        Some(text) => serde_json::from_str(&text).map_err(|_| corrupt("bucket ACL"))?,
        None => Acl::private(&bucket.owner),
    };
    Ok(acl)
}

/// Under the bucket's `IgnorePublicAcls`, public grants count for nothing when access is
/// decided (they stay stored and listed, as on S3).
pub fn ignoring_public_grants(store: &Store, bucket: &str, acl: Acl) -> S3Result<Acl> {
    if acl.is_public() && block(store, bucket)?.ignore_public_acls {
        return Ok(acl.without_public_grants());
    }
    Ok(acl)
}

fn block(store: &Store, bucket: &str) -> S3Result<PublicAccessBlock> {
    Ok(public_access_block(store, bucket)?.unwrap_or_default())
}

/// Under the bucket's `BlockPublicAcls`, a request that sets a public ACL is refused.
fn check_not_blocked(store: &Store, bucket: &str, acl: &Acl) -> S3Result<()> {
    if acl.is_public() && block(store, bucket)?.block_public_acls {
        return Err(S3Error::access_denied());
    }
    Ok(())
}

/// The object's ACL as it counts: under `BucketOwnerEnforced` the bucket owner has
/// FULL_CONTROL and nobody else anything, whatever ACL the object was written with.
pub fn effective_object_acl(
    store: &Store,
    bucket: &BucketRecord,
    object: &ObjectRecord,
) -> S3Result<Acl> {
    if !ownership(store, &bucket.name)?.acls_enabled() {
        return Ok(Acl::private(&bucket.owner));
    }
    let acl = match &object.acl {
        Some(text) => serde_json::from_str(text).map_err(|_| corrupt("object ACL"))?,
        None => Acl::private(&object.owner),
    };
    Ok(acl)
}

/// Who owns what a request writes, and the ACL it gets (`None`: private).
pub struct NewObjectAcl {
    pub owner: String,
    pub acl: Option<String>,
}

/// The canonical id of the request's sender.
fn writer(ctx: &Ctx) -> String {
    match &ctx.principal {
        Principal::Anonymous => ANONYMOUS_ID.to_string(),
        Principal::Key(id) => id.clone(),
    }
}

fn request_acl(ctx: &Ctx, owner: &str, bucket_owner: Option<&str>) -> S3Result<Option<Acl>> {
    let acl = Acl::from_headers(|name| ctx.header(name), owner, bucket_owner).map_err(acl_error)?;
    if let Some(acl) = &acl {
        check_grantees(ctx, acl, bucket_owner)?;
    }
    Ok(acl)
}

/// S3 refuses a grant to a canonical id it does not know (`InvalidArgument` "Invalid id").
/// Hansa's canonical ids are access key ids: the configured ones, the owners at hand (which
/// may belong to a key since removed) and the anonymous principal's.
fn check_grantees(ctx: &Ctx, acl: &Acl, bucket_owner: Option<&str>) -> S3Result<()> {
    for grant in &acl.grants {
        let Grantee::CanonicalUser(id) = &grant.grantee else {
            continue;
        };
        let known = *id == acl.owner
            || Some(id.as_str()) == bucket_owner
            || id == ANONYMOUS_ID
            || ctx.live.credentials.get(id).is_some();
        if !known {
            return Err(S3Error::invalid_argument("Invalid id")
                .with("ArgumentName", "CanonicalUser/ID")
                .with("ArgumentValue", id));
        }
    }
    Ok(())
}

/// The owner and ACL of an object PutObject, CopyObject (S3 does not copy the source's ACL)
/// or CreateMultipartUpload writes, from the request's `x-amz-acl` / `x-amz-grant-*` and the
/// bucket's ownership controls, as S3 decides them: under `BucketOwnerEnforced` the bucket
/// owner owns it and only an ACL that gives it full control alone is accepted; under
/// `BucketOwnerPreferred` the bucket owner owns what is written with
/// `bucket-owner-full-control`; otherwise the writer (for unsigned requests the anonymous
/// principal) owns it.
pub fn new_object_acl(ctx: &Ctx, bucket: &BucketRecord) -> S3Result<NewObjectAcl> {
    let writer = writer(ctx);
    let owner = match ownership(&ctx.gw.store, &bucket.name)? {
        ObjectOwnership::BucketOwnerEnforced => {
            let asked = request_acl(ctx, &bucket.owner, Some(&bucket.owner))?;
            if asked.is_some_and(|a| !a.is_private()) {
                return Err(acls_not_supported());
            }
            return Ok(NewObjectAcl {
                owner: bucket.owner.clone(),
                acl: None,
            });
        }
        ObjectOwnership::BucketOwnerPreferred
            if ctx.header("x-amz-acl") == Some("bucket-owner-full-control") =>
        {
            bucket.owner.clone()
        }
        _ => writer,
    };
    let acl = request_acl(ctx, &owner, Some(&bucket.owner))?.filter(|a| !a.is_private());
    if let Some(acl) = &acl {
        check_not_blocked(&ctx.gw.store, &bucket.name, acl)?;
    }
    let acl = acl.map(|a| to_json(&a)).transpose()?;
    Ok(NewObjectAcl { owner, acl })
}

/// What CreateBucket asks for besides the bucket: its ACL and ownership controls.
pub struct NewBucketAccess {
    acl: Option<String>,
    ownership: Option<ObjectOwnership>,
}

/// Checked before the bucket is created, so that a refused request creates nothing.
pub fn new_bucket_access(ctx: &Ctx, owner: &str) -> S3Result<NewBucketAccess> {
    let ownership = match ctx.header("x-amz-object-ownership") {
        None => None,
        Some(value) => Some(ObjectOwnership::parse(value).ok_or_else(|| {
            S3Error::invalid_argument("Invalid x-amz-object-ownership header")
                .with("ArgumentName", "x-amz-object-ownership")
                .with("ArgumentValue", value)
        })?),
    };
    let acl = request_acl(ctx, owner, None)?.filter(|a| !a.is_private());
    if acl.is_some() && ownership == Some(ObjectOwnership::BucketOwnerEnforced) {
        return Err(acl_with_enforced_ownership());
    }
    Ok(NewBucketAccess {
        acl: acl.map(|a| to_json(&a)).transpose()?,
        ownership,
    })
}

pub async fn apply_bucket_access(ctx: &Ctx, bucket: &str, access: NewBucketAccess) -> S3Result<()> {
    if let Some(ownership) = access.ownership {
        let text = serde_json::to_string(ownership.name())
            .map_err(|e| S3Error::internal(format!("ownership: {e}")))?;
        store::set_bucket_setting(
            &ctx.gw.store,
            bucket,
            BucketSetting::OwnershipControls,
            Some(&text),
        )
        .await?;
    }
    if let Some(acl) = access.acl {
        store::set_bucket_setting(&ctx.gw.store, bucket, BucketSetting::Acl, Some(&acl)).await?;
    }
    Ok(())
}

fn policy_response(acl: &Acl) -> S3Result<S3Response> {
    let grant = acl
        .grants
        .iter()
        .map(|g| xml::Grant {
            grantee: match &g.grantee {
                Grantee::CanonicalUser(id) => xml::Grantee {
                    xmlns_xsi: XSI,
                    xsi_type: "CanonicalUser",
                    id: Some(id.clone()),
                    display_name: Some(id.clone()),
                    uri: None,
                },
                Grantee::Group(group) => xml::Grantee {
                    xmlns_xsi: XSI,
                    xsi_type: "Group",
                    id: None,
                    display_name: None,
                    uri: Some(group.uri().to_string()),
                },
            },
            permission: g.permission.name(),
        })
        .collect();
    let doc = xml::AccessControlPolicy {
        xmlns: S3_NS,
        owner: xml::owner(&acl.owner),
        access_control_list: xml::AccessControlList { grant },
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("AccessControlPolicy", &doc)?,
    ))
}

pub async fn get_bucket_acl(ctx: &Ctx) -> S3Result<S3Response> {
    let record = existing_bucket(ctx, ctx.bucket()?)?;
    policy_response(&effective_bucket_acl(&ctx.gw.store, &record)?)
}

pub async fn get_object_acl(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = existing_bucket(ctx, ctx.bucket()?)?;
    let key = ctx.key()?;
    let record = store::object(&ctx.gw.store, &bucket.name, key)?
        .ok_or_else(|| S3Error::no_such_key(key))?;
    policy_response(&effective_object_acl(&ctx.gw.store, &bucket, &record)?)
}

/// A Put*Acl request's new ACL: from its document, its canned ACL or its grant headers —
/// exactly one of them. `bucket_owner` is `None` for a bucket's own ACL.
async fn requested_acl(
    ctx: &mut Ctx,
    owner: &str,
    bucket: &BucketRecord,
    for_object: bool,
) -> S3Result<Acl> {
    let body = read_small_body(ctx).await?;
    let has_body = !body.iter().all(u8::is_ascii_whitespace);
    let bucket_owner = for_object.then_some(bucket.owner.as_str());
    let from_headers = request_acl(ctx, owner, bucket_owner)?;
    let acl = match (from_headers, has_body) {
        (Some(_), true) => {
            return Err(S3Error::new(
                "UnexpectedContent",
                StatusCode::BAD_REQUEST,
                "This request does not support content",
            ))
        }
        (Some(acl), false) => acl,
        (None, true) => {
            let acl = Acl::from_xml(&body, owner).map_err(acl_error)?;
            check_grantees(ctx, &acl, Some(&bucket.owner))?;
            acl
        }
        (None, false) => {
            return Err(S3Error::new(
                "MissingSecurityHeader",
                StatusCode::BAD_REQUEST,
                "Your request was missing a required header",
            )
            .with("MissingHeaderName", "x-amz-acl"))
        }
    };
    check_not_blocked(&ctx.gw.store, &bucket.name, &acl)?;
    if !ownership(&ctx.gw.store, &bucket.name)?.acls_enabled() && !acl.is_private() {
        return Err(acls_not_supported());
    }
    Ok(acl)
}

pub async fn put_bucket_acl(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = existing_bucket(ctx, ctx.bucket()?)?;
    let owner = bucket.owner.clone();
    let acl = requested_acl(ctx, &owner, &bucket, false).await?;
    let stored = (!acl.is_private()).then(|| to_json(&acl)).transpose()?;
    store::set_bucket_setting(
        &ctx.gw.store,
        &bucket.name,
        BucketSetting::Acl,
        stored.as_deref(),
    )
    .await?;
    Ok(response::empty(StatusCode::OK))
}

pub async fn put_object_acl(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = existing_bucket(ctx, ctx.bucket()?)?;
    let key = ctx.key()?.to_string();
    let record = store::object(&ctx.gw.store, &bucket.name, &key)?
        .ok_or_else(|| S3Error::no_such_key(&key))?;
    let acl = requested_acl(ctx, &record.owner, &bucket, true).await?;
    let stored = (!acl.is_private()).then(|| to_json(&acl)).transpose()?;
    store::set_object_acl(&ctx.gw.store, &bucket.name, &key, stored).await?;
    Ok(response::empty(StatusCode::OK))
}

#[derive(Serialize, Deserialize)]
struct OwnershipControls {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    xmlns: &'static str,
    #[serde(rename = "Rule", default)]
    rule: Vec<OwnershipRule>,
}

#[derive(Serialize, Deserialize)]
struct OwnershipRule {
    #[serde(rename = "ObjectOwnership")]
    object_ownership: String,
}

pub async fn get_ownership_controls(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let ownership = stored_ownership(&ctx.gw.store, bucket)?.ok_or_else(|| {
        S3Error::new(
            "OwnershipControlsNotFoundError",
            StatusCode::NOT_FOUND,
            "The bucket ownership controls were not found",
        )
        .with("BucketName", bucket)
    })?;
    let doc = OwnershipControls {
        xmlns: S3_NS,
        rule: vec![OwnershipRule {
            object_ownership: ownership.name().to_string(),
        }],
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("OwnershipControls", &doc)?,
    ))
}

pub async fn put_ownership_controls(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = existing_bucket(ctx, ctx.bucket()?)?;
    let body = read_small_body(ctx).await?;
    let doc: OwnershipControls = xml::from_xml("OwnershipControls", &body)?;
    let [rule] = doc.rule.as_slice() else {
        return Err(S3Error::malformed_xml());
    };
    let ownership =
        ObjectOwnership::parse(rule.object_ownership.trim()).ok_or_else(S3Error::malformed_xml)?;
    // Disabling ACLs while the bucket's ACL grants others access would silently take that
    // access away; S3 refuses it.
    if !ownership.acls_enabled() {
        let current = match store::bucket_setting(&ctx.gw.store, &bucket.name, BucketSetting::Acl)?
        {
            Some(text) => serde_json::from_str::<Acl>(&text).map_err(|_| corrupt("bucket ACL"))?,
            None => Acl::private(&bucket.owner),
        };
        if !current.is_private() {
            return Err(acl_with_enforced_ownership());
        }
    }
    let text = serde_json::to_string(ownership.name())
        .map_err(|e| S3Error::internal(format!("ownership: {e}")))?;
    store::set_bucket_setting(
        &ctx.gw.store,
        &bucket.name,
        BucketSetting::OwnershipControls,
        Some(&text),
    )
    .await?;
    Ok(response::empty(StatusCode::OK))
}

pub async fn delete_ownership_controls(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = existing_bucket(ctx, ctx.bucket()?)?;
    store::set_bucket_setting(
        &ctx.gw.store,
        &bucket.name,
        BucketSetting::OwnershipControls,
        None,
    )
    .await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}
