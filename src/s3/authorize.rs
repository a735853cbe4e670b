//! Whether a request may do what it asks, decided once, before the operation runs: the
//! credential's scope, the bucket policy's verdict and the ACLs. Every refusal is
//! `AccessDenied`.
//!
//! The bucket policy speaks first: an explicit Deny refuses (except the administrators'
//! management of the policy itself, see `ops::policy::manages_policy`), an Allow lets the
//! request in (a read-only credential still never writes), and without either the scope and
//! the ACLs decide. As within one AWS account, the key's scope (its identity policy) or the
//! bucket policy suffices.
//!
//! Hansa's credentials are users of the one account that owns every bucket. A credential whose
//! scope (`buckets`, `read_only`) allows the bucket may do everything it did before ACLs
//! existed: the owner's rights do not depend on grants. ACL grants matter for requests the
//! scope does not let in: unsigned requests (`Principal::Anonymous`), and credentials scoped
//! to other buckets, which get what a grant to `AuthenticatedUsers`, to `AllUsers` or to their
//! access key id (their canonical id) gives them. A read-only credential never writes,
//! whatever a grant says.

use http::request::Parts;

use super::auth::Credential;
use super::copy_source::parse_copy_source;
use super::error::{S3Error, S3Result};
use super::ops::acl::{effective_bucket_acl, effective_object_acl, ignoring_public_grants};
use super::ops::policy::{bucket_policy_decision, manages_policy, request_facts};
use super::router::{Operation, Route};
use crate::access::acl::{Permission, Requester};
use crate::access::{Decision, Principal, RequestFacts};
use crate::store::{self, Store};

/// What an ACL has to grant for an operation.
enum Need {
    Bucket(Permission),
    Object(Permission),
    /// Only the owner may: no grant lets anyone else in.
    OwnerOnly,
}

fn need(operation: &Operation) -> Need {
    use Operation::*;
    match operation {
        // READ on a bucket is S3's s3:ListBucket, s3:ListBucketMultipartUploads.
        HeadBucket | ListObjectsV1 | ListObjectsV2 | ListMultipartUploads | ListObjectVersions => {
            Need::Bucket(Permission::Read)
        }
        // WRITE on a bucket is s3:PutObject and s3:DeleteObject, multipart included.
        PutObject
        | PostObject
        | CopyObject
        | DeleteObject
        | DeleteObjects
        | CreateMultipartUpload
        | UploadPart
        | UploadPartCopy
        | CompleteMultipartUpload
        | AbortMultipartUpload
        | ListParts => Need::Bucket(Permission::Write),
        GetBucketAcl => Need::Bucket(Permission::ReadAcp),
        PutBucketAcl => Need::Bucket(Permission::WriteAcp),
        GetObject | HeadObject | GetObjectAttributes => Need::Object(Permission::Read),
        GetObjectAcl => Need::Object(Permission::ReadAcp),
        PutObjectAcl => Need::Object(Permission::WriteAcp),
        // S3's ACLs grant nothing of object lock.
        PutObjectLockConfiguration
        | GetObjectLockConfiguration
        | PutObjectRetention
        | GetObjectRetention
        | PutObjectLegalHold
        | GetObjectLegalHold => Need::OwnerOnly,
        ListBuckets
        | CreateBucket
        | DeleteBucket
        | GetBucketLocation
        | GetBucketVersioning
        | PutBucketVersioning
        | GetBucketOwnershipControls
        | PutBucketOwnershipControls
        | DeleteBucketOwnershipControls
        | GetBucketCors
        | PutBucketCors
        | DeleteBucketCors
        | CorsPreflight
        | PutBucketPolicy
        | GetBucketPolicy
        | DeleteBucketPolicy
        | GetBucketPolicyStatus
        | PutPublicAccessBlock
        | GetPublicAccessBlock
        | DeletePublicAccessBlock
        // No ACL permission covers tags (S3 maps READ and WRITE to object reads and writes
        // only): tagging is for the owner, or whom a bucket policy allows.
        | PutObjectTagging
        | GetObjectTagging
        | DeleteObjectTagging
        | PutBucketTagging
        | GetBucketTagging
        | DeleteBucketTagging
        | PutBucketLifecycleConfiguration
        | GetBucketLifecycleConfiguration
        | DeleteBucketLifecycle
        | NotImplemented(_) => Need::OwnerOnly,
    }
}

/// The one authorization decision the dispatcher asks for. `credential` is `None` exactly
/// when the request carried no signature at all.
pub fn authorize(
    store: &Store,
    principal: &Principal,
    credential: Option<&Credential>,
    route: &Route,
    parts: &Parts,
) -> S3Result<()> {
    let is_write = route.operation.is_write();
    if credential.is_some_and(|c| c.read_only) && is_write {
        return Err(S3Error::access_denied());
    }
    let Some(bucket) = route.bucket.as_deref() else {
        // ListBuckets: any credential (it lists what its scope allows), never anonymous.
        return match principal {
            Principal::Anonymous => Err(S3Error::access_denied()),
            Principal::Key(_) => Ok(()),
        };
    };
    let policy = match request_facts(principal.clone(), route, parts) {
        Some(facts) => bucket_policy_decision(store, &facts)?,
        None => Decision::NoOpinion,
    };
    if policy == Decision::Deny && !credential.is_some_and(|c| manages_policy(c, &route.operation))
    {
        return Err(S3Error::access_denied());
    }
    let allowed_by_policy = policy == Decision::Allow;
    let requester = match principal {
        Principal::Anonymous => Requester::Anonymous,
        Principal::Key(id) => Requester::Key(id),
    };
    let in_scope = |b: &str| credential.is_some_and(|c| c.may_access(b));
    if !allowed_by_policy && !in_scope(bucket) {
        acl_allows(store, requester, route, bucket)?;
    }
    // A write that tags what it creates also needs s3:PutObjectTagging, as on S3; no ACL
    // grants that, so the scope or the bucket policy must.
    if sets_tags(&route.operation, parts) {
        let tag = RequestFacts {
            action: "s3:PutObjectTagging",
            ..request_facts(principal.clone(), route, parts).ok_or_else(S3Error::access_denied)?
        };
        match bucket_policy_decision(store, &tag)? {
            Decision::Deny => return Err(S3Error::access_denied()),
            Decision::Allow => {}
            Decision::NoOpinion if in_scope(bucket) => {}
            Decision::NoOpinion => return Err(S3Error::access_denied()),
        }
    }
    // A copy also reads its source: the scope or the source object's ACL must allow that.
    if matches!(
        route.operation,
        Operation::CopyObject | Operation::UploadPartCopy
    ) {
        let header = parts
            .headers
            .get("x-amz-copy-source")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (src_bucket, src_key) = parse_copy_source(header)?;
        let read_source = RequestFacts {
            principal: principal.clone(),
            action: "s3:GetObject",
            bucket: src_bucket.clone(),
            key: Some(src_key.clone()),
            conditions: Vec::new(),
            ..request_facts(principal.clone(), route, parts).ok_or_else(S3Error::access_denied)?
        };
        match bucket_policy_decision(store, &read_source)? {
            Decision::Deny => return Err(S3Error::access_denied()),
            Decision::Allow => {}
            Decision::NoOpinion if in_scope(&src_bucket) => {}
            Decision::NoOpinion => {
                object_allows(store, requester, &src_bucket, &src_key, Permission::Read)?
            }
        }
    }
    Ok(())
}

/// Whether a write asks to tag what it creates: a non-empty `x-amz-tagging` (a form upload's
/// `tagging` field arrives as one), which a copy applies only with the REPLACE directive.
fn sets_tags(operation: &Operation, parts: &Parts) -> bool {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let tagging = parts
        .headers
        .get("x-amz-tagging")
        .is_some_and(|v| !v.is_empty());
    match operation {
        Operation::PutObject | Operation::PostObject | Operation::CreateMultipartUpload => tagging,
        Operation::CopyObject => tagging && header("x-amz-tagging-directive") == Some("REPLACE"),
        _ => false,
    }
}

/// Whether the requester holds `s3:BypassGovernanceRetention` on `bucket/key`. A bucket
/// policy's Deny refuses it and its Allow grants it; otherwise only an administrator key (every
/// bucket, not read-only: the account's root, as for `manages_policy`) has it. A key scoped
/// to some buckets does not, whatever its scope, unless the bucket policy allows it: scoped
/// keys stand for users whose identity policy does not name this action.
pub fn may_bypass_governance(
    store: &Store,
    principal: &Principal,
    credential: &Credential,
    connection: Option<crate::access::Connection>,
    bucket: &str,
    key: &str,
) -> S3Result<bool> {
    let facts = RequestFacts {
        principal: principal.clone(),
        action: "s3:BypassGovernanceRetention",
        bucket: bucket.to_string(),
        key: Some(key.to_string()),
        source_ip: connection.map(|c| c.peer.ip()),
        secure_transport: connection.is_some_and(|c| c.secure),
        conditions: Vec::new(),
    };
    Ok(match bucket_policy_decision(store, &facts)? {
        Decision::Deny => false,
        Decision::Allow => !credential.read_only,
        Decision::NoOpinion => {
            *principal != Principal::Anonymous
                && credential.buckets.is_none()
                && !credential.read_only
        }
    })
}

/// Outside a credential's scope a bucket's existence is not told: a missing bucket (or
/// object source bucket) is AccessDenied like a refused one, as scoped keys always had it.
fn existing(store: &Store, bucket: &str) -> S3Result<crate::meta::BucketRecord> {
    match store::bucket(store, bucket) {
        Ok(record) => Ok(record),
        Err(store::StoreError::NoSuchBucket(_)) => Err(S3Error::access_denied()),
        Err(e) => Err(e.into()),
    }
}

fn acl_allows(store: &Store, who: Requester<'_>, route: &Route, bucket: &str) -> S3Result<()> {
    match need(&route.operation) {
        Need::OwnerOnly => Err(S3Error::access_denied()),
        Need::Bucket(permission) => bucket_allows(store, who, bucket, permission),
        Need::Object(permission) => {
            let key = route.key.as_deref().ok_or_else(S3Error::access_denied)?;
            object_allows(store, who, bucket, key, permission)
        }
    }
}

fn bucket_allows(
    store: &Store,
    who: Requester<'_>,
    bucket: &str,
    permission: Permission,
) -> S3Result<()> {
    let record = existing(store, bucket)?;
    let acl = ignoring_public_grants(store, bucket, effective_bucket_acl(store, &record)?)?;
    if acl.allows(who, permission) {
        Ok(())
    } else {
        Err(S3Error::access_denied())
    }
}

/// A missing object is NoSuchKey for whoever may list the bucket (S3 tells them nothing they
/// could not list), AccessDenied for anyone else.
fn object_allows(
    store: &Store,
    who: Requester<'_>,
    bucket: &str,
    key: &str,
    permission: Permission,
) -> S3Result<()> {
    let record = existing(store, bucket)?;
    match store::object(store, bucket, key)? {
        Some(object) => {
            let acl = effective_object_acl(store, &record, &object)?;
            if ignoring_public_grants(store, bucket, acl)?.allows(who, permission) {
                Ok(())
            } else {
                Err(S3Error::access_denied())
            }
        }
        None => bucket_allows(store, who, bucket, Permission::Read),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_an_iam_action() {
        use Operation::*;
        for op in [
            ListBuckets,
            HeadBucket,
            GetObject,
            PutObjectAcl,
            ListParts,
            GetBucketOwnershipControls,
            NotImplemented("X"),
        ] {
            assert!(op.iam_action().starts_with("s3:"), "{op:?}");
        }
        assert_eq!(ListObjectsV2.iam_action(), "s3:ListBucket");
        assert!(matches!(need(&GetBucketLocation), Need::OwnerOnly));
        assert!(matches!(need(&PutObject), Need::Bucket(Permission::Write)));
    }

    #[test]
    fn lifecycle_operations_are_the_owners_under_s3s_actions() {
        use Operation::*;
        // S3 governs deleting the configuration with the permission to put it.
        for (op, action, write) in [
            (
                PutBucketLifecycleConfiguration,
                "s3:PutLifecycleConfiguration",
                true,
            ),
            (DeleteBucketLifecycle, "s3:PutLifecycleConfiguration", true),
            (
                GetBucketLifecycleConfiguration,
                "s3:GetLifecycleConfiguration",
                false,
            ),
        ] {
            assert_eq!(op.iam_action(), action, "{op:?}");
            assert_eq!(op.is_write(), write, "{op:?}");
            assert!(matches!(need(&op), Need::OwnerOnly), "{op:?}");
        }
        assert!(PutBucketLifecycleConfiguration.takes_xml_body());
    }
}
