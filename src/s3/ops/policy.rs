//! Bucket policies and the public access block: storing and answering the documents
//! (Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus, Put/Get/DeletePublicAccessBlock), and
//! the policy's verdict on a request ([`bucket_policy_decision`]), which authorization asks.
//!
//! The policy is kept as the client sent it (GetBucketPolicy returns it verbatim) and parsed
//! again when a request is judged; the public access block as a small canonical JSON.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::support::{existing_bucket, read_small_body};
use crate::access::policy::{evaluate, is_public, Policy};
use crate::access::{Connection, Decision, Principal, RequestFacts};
use crate::meta::BucketSetting;
use crate::s3::auth::Credential;
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, S3Response};
use crate::s3::router::{Operation, Route};
use crate::s3::xml::{self, S3_NS};
use crate::store::{self, Store, StoreError};

fn malformed_policy(message: impl Into<String>) -> S3Error {
    S3Error::new("MalformedPolicy", StatusCode::BAD_REQUEST, message)
}

fn no_such_policy(bucket: &str) -> S3Error {
    S3Error::new(
        "NoSuchBucketPolicy",
        StatusCode::NOT_FOUND,
        "The bucket policy does not exist",
    )
    .with("BucketName", bucket)
}

fn no_such_public_access_block(bucket: &str) -> S3Error {
    S3Error::new(
        "NoSuchPublicAccessBlockConfiguration",
        StatusCode::NOT_FOUND,
        "The public access block configuration was not found",
    )
    .with("BucketName", bucket)
}

/// The four switches of a bucket's public access block; absent ones are off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublicAccessBlock {
    #[serde(default)]
    pub block_public_acls: bool,
    #[serde(default)]
    pub ignore_public_acls: bool,
    #[serde(default)]
    pub block_public_policy: bool,
    #[serde(default)]
    pub restrict_public_buckets: bool,
}

/// The request document: each element optional.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublicAccessBlockRequest {
    block_public_acls: Option<bool>,
    ignore_public_acls: Option<bool>,
    block_public_policy: Option<bool>,
    restrict_public_buckets: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PublicAccessBlockConfiguration {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    block_public_acls: bool,
    ignore_public_acls: bool,
    block_public_policy: bool,
    restrict_public_buckets: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyStatus {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    is_public: bool,
}

/// The bucket's public access block, if one is set.
pub fn public_access_block(store: &Store, bucket: &str) -> S3Result<Option<PublicAccessBlock>> {
    match store::bucket_setting(store, bucket, BucketSetting::PublicAccessBlock)? {
        None => Ok(None),
        Some(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| S3Error::internal(format!("stored public access block: {e}"))),
    }
}

/// The bucket's policy as stored (the client's document), if one is set.
fn stored_policy(store: &Store, bucket: &str) -> S3Result<Option<String>> {
    Ok(store::bucket_setting(store, bucket, BucketSetting::Policy)?)
}

pub async fn put_bucket_policy(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    existing_bucket(ctx, &bucket)?;
    // `x-amz-confirm-remove-self-bucket-access` is accepted and changes nothing: the keys
    // that may always manage the policy are not locked out by it (see `manages_policy`).
    let body = read_small_body(ctx).await?;
    let doc = String::from_utf8(body)
        .map_err(|_| malformed_policy("This policy contains invalid Json"))?;
    let policy = Policy::parse(&doc, &bucket).map_err(|e| malformed_policy(e.0))?;
    // As S3 checks that the principals exist, Hansa checks that the keys are configured.
    if policy
        .named_keys()
        .any(|key| ctx.live.credentials.get(key).is_none())
    {
        return Err(malformed_policy("Invalid principal in policy"));
    }
    if is_public(&policy)
        && public_access_block(&ctx.gw.store, &bucket)?.is_some_and(|b| b.block_public_policy)
    {
        return Err(S3Error::access_denied());
    }
    store::set_bucket_setting(&ctx.gw.store, &bucket, BucketSetting::Policy, Some(&doc)).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

pub async fn get_bucket_policy(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let doc = stored_policy(&ctx.gw.store, bucket)?.ok_or_else(|| no_such_policy(bucket))?;
    let mut r = http::Response::new(response::full_body(doc));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

pub async fn delete_bucket_policy(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    existing_bucket(ctx, bucket)?;
    store::set_bucket_setting(&ctx.gw.store, bucket, BucketSetting::Policy, None).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

pub async fn get_bucket_policy_status(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let doc = stored_policy(&ctx.gw.store, bucket)?.ok_or_else(|| no_such_policy(bucket))?;
    let policy = parse_stored(&doc, bucket)?;
    let status = PolicyStatus {
        xmlns: S3_NS,
        is_public: is_public(&policy),
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("PolicyStatus", &status)?,
    ))
}

pub async fn put_public_access_block(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    existing_bucket(ctx, &bucket)?;
    let body = read_small_body(ctx).await?;
    let request: PublicAccessBlockRequest = xml::from_xml("PublicAccessBlockConfiguration", &body)?;
    if request.block_public_acls.is_none()
        && request.ignore_public_acls.is_none()
        && request.block_public_policy.is_none()
        && request.restrict_public_buckets.is_none()
    {
        return Err(S3Error::invalid_request(
            "Must specify at least one configuration.",
        ));
    }
    let block = PublicAccessBlock {
        block_public_acls: request.block_public_acls.unwrap_or(false),
        ignore_public_acls: request.ignore_public_acls.unwrap_or(false),
        block_public_policy: request.block_public_policy.unwrap_or(false),
        restrict_public_buckets: request.restrict_public_buckets.unwrap_or(false),
    };
    let json = serde_json::to_string(&block)
        .map_err(|e| S3Error::internal(format!("public access block: {e}")))?;
    store::set_bucket_setting(
        &ctx.gw.store,
        &bucket,
        BucketSetting::PublicAccessBlock,
        Some(&json),
    )
    .await?;
    Ok(response::empty(StatusCode::OK))
}

pub async fn get_public_access_block(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let block = public_access_block(&ctx.gw.store, bucket)?
        .ok_or_else(|| no_such_public_access_block(bucket))?;
    let doc = PublicAccessBlockConfiguration {
        xmlns: S3_NS,
        block_public_acls: block.block_public_acls,
        ignore_public_acls: block.ignore_public_acls,
        block_public_policy: block.block_public_policy,
        restrict_public_buckets: block.restrict_public_buckets,
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("PublicAccessBlockConfiguration", &doc)?,
    ))
}

pub async fn delete_public_access_block(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    existing_bucket(ctx, bucket)?;
    store::set_bucket_setting(
        &ctx.gw.store,
        bucket,
        BucketSetting::PublicAccessBlock,
        None,
    )
    .await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

/// A stored policy was validated when it was put; one that no longer parses (a document from
/// a later version) refuses rather than grants.
fn parse_stored(doc: &str, bucket: &str) -> S3Result<Policy> {
    Policy::parse(doc, bucket)
        .map_err(|e| S3Error::internal(format!("stored bucket policy of {bucket}: {e}")))
}

/// A bucket's policy, parsed, with what its public access block changes about it.
struct LoadedPolicy {
    policy: Policy,
    /// `RestrictPublicBuckets` on and the policy public: it grants anonymous requests nothing.
    restrict_anonymous: bool,
}

fn load_policy(store: &Store, bucket: &str) -> S3Result<Option<LoadedPolicy>> {
    let doc = match store::bucket_setting(store, bucket, BucketSetting::Policy) {
        Ok(Some(doc)) => doc,
        Ok(None) | Err(StoreError::NoSuchBucket(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let policy = parse_stored(&doc, bucket)?;
    let restrict_anonymous = is_public(&policy)
        && public_access_block(store, bucket)?.is_some_and(|b| b.restrict_public_buckets);
    Ok(Some(LoadedPolicy {
        policy,
        restrict_anonymous,
    }))
}

impl LoadedPolicy {
    fn decide(&self, facts: &RequestFacts) -> Decision {
        match evaluate(&self.policy, facts) {
            Decision::Allow
                if self.restrict_anonymous && facts.principal == Principal::Anonymous =>
            {
                Decision::NoOpinion
            }
            decision => decision,
        }
    }
}

/// The bucket policy's verdict on a request: its explicit Deny, its Allow, or no opinion (no
/// policy, or no such bucket — the operation reports that itself). With the bucket's
/// `RestrictPublicBuckets` on, a public policy grants nothing to anonymous requests: every
/// access key is of the bucket owner's "account", which S3 still lets in.
pub fn bucket_policy_decision(store: &Store, facts: &RequestFacts) -> S3Result<Decision> {
    Ok(load_policy(store, &facts.bucket)?
        .map_or(Decision::NoOpinion, |loaded| loaded.decide(facts)))
}

/// DeleteObjects names its keys in the body, so S3 judges each as `s3:DeleteObject` on its
/// object: a Deny on some keys fails just those. The policy is parsed once per request.
pub struct DeleteVerdicts {
    loaded: Option<LoadedPolicy>,
    facts: RequestFacts,
}

impl DeleteVerdicts {
    pub fn load(ctx: &Ctx, bucket: &str) -> S3Result<DeleteVerdicts> {
        Ok(DeleteVerdicts {
            loaded: load_policy(&ctx.gw.store, bucket)?,
            facts: RequestFacts {
                principal: ctx.principal.clone(),
                action: "s3:DeleteObject",
                bucket: bucket.to_string(),
                key: None,
                source_ip: ctx.connection.map(|c| c.peer.ip()),
                secure_transport: ctx.connection.is_some_and(|c| c.secure),
                conditions: Vec::new(),
            },
        })
    }

    /// `AccessDenied` when the policy denies deleting `key`.
    pub fn check(&self, key: &str) -> S3Result<()> {
        let Some(loaded) = &self.loaded else {
            return Ok(());
        };
        let mut facts = self.facts.clone();
        facts.key = Some(key.to_string());
        match loaded.decide(&facts) {
            Decision::Deny => Err(S3Error::access_denied()),
            _ => Ok(()),
        }
    }
}

/// The facts a policy judges a request by; `None` for requests outside any bucket
/// (ListBuckets), which no bucket policy speaks of.
pub fn request_facts(
    principal: Principal,
    route: &Route,
    parts: &http::request::Parts,
) -> Option<RequestFacts> {
    let bucket = route.bucket.clone()?;
    let connection = parts.extensions.get::<Connection>();
    let mut conditions = Vec::new();
    if matches!(
        route.operation,
        Operation::ListObjectsV1 | Operation::ListObjectsV2
    ) {
        for (param, key) in [
            ("prefix", "s3:prefix"),
            ("delimiter", "s3:delimiter"),
            ("max-keys", "s3:max-keys"),
        ] {
            if let Some(value) = route.query(param) {
                conditions.push((key.to_string(), value.to_string()));
            }
        }
    }
    if let Some(acl) = parts.headers.get("x-amz-acl").and_then(|v| v.to_str().ok()) {
        conditions.push(("s3:x-amz-acl".to_string(), acl.to_string()));
    }
    Some(RequestFacts {
        principal,
        action: route.iam_action(),
        bucket,
        key: route.key.clone(),
        source_ip: connection.map(|c| c.peer.ip()),
        secure_transport: connection.is_some_and(|c| c.secure),
        conditions,
    })
}

/// Keys with every bucket and write access stand for the bucket owner's root user, whom S3
/// always lets read, replace and delete a bucket policy however it denies: a policy cannot
/// lock the gateway's administrators out of fixing it.
pub fn manages_policy(credential: &Credential, operation: &Operation) -> bool {
    credential.buckets.is_none()
        && !credential.read_only
        && matches!(
            operation,
            Operation::GetBucketPolicy | Operation::PutBucketPolicy | Operation::DeleteBucketPolicy
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::router::route;

    fn parts(
        method: &str,
        uri: &str,
        acl: Option<&str>,
        conn: Option<Connection>,
    ) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        if let Some(acl) = acl {
            b = b.header("x-amz-acl", acl);
        }
        let (mut parts, ()) = b.body(()).unwrap().into_parts();
        if let Some(c) = conn {
            parts.extensions.insert(c);
        }
        parts
    }

    #[test]
    fn facts_from_a_listing_request() {
        let conn = Connection {
            peer: "[::ffff:10.0.0.7]:5000".parse().unwrap(),
            secure: true,
        };
        let p = parts(
            "GET",
            "/photos?list-type=2&prefix=home%2F&delimiter=%2F&max-keys=10",
            None,
            Some(conn),
        );
        let r = route(&p.method, &p.uri, &p.headers, &[]).unwrap();
        let f = request_facts(Principal::Key("K".into()), &r, &p).unwrap();
        assert_eq!(f.action, "s3:ListBucket");
        assert_eq!(f.bucket, "photos");
        assert_eq!(f.key, None);
        assert!(f.secure_transport);
        assert!(f.source_ip.is_some());
        let mut c = f.conditions.clone();
        c.sort();
        assert_eq!(
            c,
            [
                ("s3:delimiter".to_string(), "/".to_string()),
                ("s3:max-keys".to_string(), "10".to_string()),
                ("s3:prefix".to_string(), "home/".to_string()),
            ]
        );
    }

    #[test]
    fn facts_from_an_upload_without_connection() {
        let p = parts("PUT", "/photos/a/b.jpg", Some("public-read"), None);
        let r = route(&p.method, &p.uri, &p.headers, &[]).unwrap();
        let f = request_facts(Principal::Anonymous, &r, &p).unwrap();
        assert_eq!(f.action, "s3:PutObject");
        assert_eq!(f.key.as_deref(), Some("a/b.jpg"));
        assert_eq!(f.source_ip, None);
        assert!(!f.secure_transport);
        assert_eq!(
            f.conditions,
            [("s3:x-amz-acl".to_string(), "public-read".to_string())]
        );
        let p = parts("GET", "/", None, None);
        let r = route(&p.method, &p.uri, &p.headers, &[]).unwrap();
        assert!(request_facts(Principal::Anonymous, &r, &p).is_none());
    }

    #[test]
    fn only_unrestricted_writers_manage_a_denying_policy() {
        let mut c = Credential {
            access_key_id: "A".into(),
            secret_access_key: "s".into(),
            buckets: None,
            read_only: false,
        };
        assert!(manages_policy(&c, &Operation::DeleteBucketPolicy));
        assert!(!manages_policy(&c, &Operation::PutObject));
        c.read_only = true;
        assert!(!manages_policy(&c, &Operation::DeleteBucketPolicy));
        c.read_only = false;
        c.buckets = Some(vec!["photos".into()]);
        assert!(!manages_policy(&c, &Operation::PutBucketPolicy));
    }
}
