//! Addressing (path-style and virtual-host) and operation detection.

use http::{HeaderMap, Method, Uri};

use super::error::{S3Error, S3Result};

/// What the client asked for. Every request maps to exactly one; unknown ones are
/// `NotImplemented(name)` so that nothing ever gets a silent 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    ListBuckets,
    CreateBucket,
    HeadBucket,
    DeleteBucket,
    GetBucketLocation,
    GetBucketVersioning,
    PutBucketVersioning,
    ListObjectVersions,
    GetBucketAcl,
    PutBucketAcl,
    ListObjectsV1,
    ListObjectsV2,
    DeleteObjects,
    PutObject,
    /// `POST /bucket` with a multipart/form-data body: a browser form upload, authenticated
    /// by the signed policy in its fields rather than by an Authorization header.
    PostObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    GetObjectAcl,
    PutObjectAcl,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    ListMultipartUploads,
    GetObjectAttributes,
    PutBucketCors,
    GetBucketCors,
    DeleteBucketCors,
    /// `OPTIONS` on a bucket or object: a browser's CORS preflight, answered unauthenticated.
    CorsPreflight,
    GetBucketOwnershipControls,
    PutBucketOwnershipControls,
    DeleteBucketOwnershipControls,
    PutBucketPolicy,
    GetBucketPolicy,
    DeleteBucketPolicy,
    GetBucketPolicyStatus,
    PutPublicAccessBlock,
    GetPublicAccessBlock,
    DeletePublicAccessBlock,
    PutObjectTagging,
    GetObjectTagging,
    DeleteObjectTagging,
    PutBucketTagging,
    GetBucketTagging,
    DeleteBucketTagging,
    PutObjectLockConfiguration,
    GetObjectLockConfiguration,
    PutObjectRetention,
    GetObjectRetention,
    PutObjectLegalHold,
    GetObjectLegalHold,
    PutBucketLifecycleConfiguration,
    GetBucketLifecycleConfiguration,
    DeleteBucketLifecycle,
    NotImplemented(&'static str),
}

impl Operation {
    pub fn name(&self) -> &'static str {
        match self {
            Operation::ListBuckets => "ListBuckets",
            Operation::CreateBucket => "CreateBucket",
            Operation::HeadBucket => "HeadBucket",
            Operation::DeleteBucket => "DeleteBucket",
            Operation::GetBucketLocation => "GetBucketLocation",
            Operation::GetBucketVersioning => "GetBucketVersioning",
            Operation::PutBucketVersioning => "PutBucketVersioning",
            Operation::ListObjectVersions => "ListObjectVersions",
            Operation::GetBucketAcl => "GetBucketAcl",
            Operation::PutBucketAcl => "PutBucketAcl",
            Operation::ListObjectsV1 => "ListObjects",
            Operation::ListObjectsV2 => "ListObjectsV2",
            Operation::DeleteObjects => "DeleteObjects",
            Operation::PutObject => "PutObject",
            Operation::PostObject => "PostObject",
            Operation::CopyObject => "CopyObject",
            Operation::GetObject => "GetObject",
            Operation::HeadObject => "HeadObject",
            Operation::DeleteObject => "DeleteObject",
            Operation::GetObjectAcl => "GetObjectAcl",
            Operation::PutObjectAcl => "PutObjectAcl",
            Operation::CreateMultipartUpload => "CreateMultipartUpload",
            Operation::UploadPart => "UploadPart",
            Operation::UploadPartCopy => "UploadPartCopy",
            Operation::CompleteMultipartUpload => "CompleteMultipartUpload",
            Operation::AbortMultipartUpload => "AbortMultipartUpload",
            Operation::ListParts => "ListParts",
            Operation::ListMultipartUploads => "ListMultipartUploads",
            Operation::GetObjectAttributes => "GetObjectAttributes",
            Operation::PutBucketCors => "PutBucketCors",
            Operation::GetBucketCors => "GetBucketCors",
            Operation::DeleteBucketCors => "DeleteBucketCors",
            Operation::CorsPreflight => "PreflightRequest",
            Operation::GetBucketOwnershipControls => "GetBucketOwnershipControls",
            Operation::PutBucketOwnershipControls => "PutBucketOwnershipControls",
            Operation::DeleteBucketOwnershipControls => "DeleteBucketOwnershipControls",
            Operation::PutBucketPolicy => "PutBucketPolicy",
            Operation::GetBucketPolicy => "GetBucketPolicy",
            Operation::DeleteBucketPolicy => "DeleteBucketPolicy",
            Operation::GetBucketPolicyStatus => "GetBucketPolicyStatus",
            Operation::PutPublicAccessBlock => "PutPublicAccessBlock",
            Operation::GetPublicAccessBlock => "GetPublicAccessBlock",
            Operation::DeletePublicAccessBlock => "DeletePublicAccessBlock",
            Operation::PutObjectTagging => "PutObjectTagging",
            Operation::GetObjectTagging => "GetObjectTagging",
            Operation::DeleteObjectTagging => "DeleteObjectTagging",
            Operation::PutBucketTagging => "PutBucketTagging",
            Operation::GetBucketTagging => "GetBucketTagging",
            Operation::DeleteBucketTagging => "DeleteBucketTagging",
            Operation::PutObjectLockConfiguration => "PutObjectLockConfiguration",
            Operation::GetObjectLockConfiguration => "GetObjectLockConfiguration",
            Operation::PutObjectRetention => "PutObjectRetention",
            Operation::GetObjectRetention => "GetObjectRetention",
            Operation::PutObjectLegalHold => "PutObjectLegalHold",
            Operation::GetObjectLegalHold => "GetObjectLegalHold",
            Operation::PutBucketLifecycleConfiguration => "PutBucketLifecycleConfiguration",
            Operation::GetBucketLifecycleConfiguration => "GetBucketLifecycleConfiguration",
            Operation::DeleteBucketLifecycle => "DeleteBucketLifecycle",
            Operation::NotImplemented(name) => name,
        }
    }

    /// The IAM action bucket policies name the operation by (S3's authorization reference).
    /// Operations Hansa does not serve get an action no policy can grant.
    pub fn iam_action(&self) -> &'static str {
        match self {
            Operation::ListBuckets => "s3:ListAllMyBuckets",
            Operation::CreateBucket => "s3:CreateBucket",
            Operation::HeadBucket | Operation::ListObjectsV1 | Operation::ListObjectsV2 => {
                "s3:ListBucket"
            }
            Operation::DeleteBucket => "s3:DeleteBucket",
            Operation::GetBucketLocation => "s3:GetBucketLocation",
            Operation::GetBucketVersioning => "s3:GetBucketVersioning",
            Operation::PutBucketVersioning => "s3:PutBucketVersioning",
            Operation::ListObjectVersions => "s3:ListBucketVersions",
            Operation::GetBucketAcl => "s3:GetBucketAcl",
            Operation::PutBucketAcl => "s3:PutBucketAcl",
            Operation::DeleteObjects | Operation::DeleteObject => "s3:DeleteObject",
            Operation::PutObject
            | Operation::PostObject
            | Operation::CopyObject
            | Operation::CreateMultipartUpload
            | Operation::UploadPart
            | Operation::UploadPartCopy
            | Operation::CompleteMultipartUpload => "s3:PutObject",
            Operation::GetObject | Operation::HeadObject => "s3:GetObject",
            Operation::GetObjectAcl => "s3:GetObjectAcl",
            Operation::PutObjectAcl => "s3:PutObjectAcl",
            Operation::AbortMultipartUpload => "s3:AbortMultipartUpload",
            Operation::ListParts => "s3:ListMultipartUploadParts",
            Operation::ListMultipartUploads => "s3:ListBucketMultipartUploads",
            Operation::GetBucketOwnershipControls => "s3:GetBucketOwnershipControls",
            Operation::PutBucketOwnershipControls | Operation::DeleteBucketOwnershipControls => {
                "s3:PutBucketOwnershipControls"
            }
            Operation::PutBucketPolicy => "s3:PutBucketPolicy",
            Operation::GetBucketPolicy => "s3:GetBucketPolicy",
            Operation::DeleteBucketPolicy => "s3:DeleteBucketPolicy",
            Operation::GetBucketPolicyStatus => "s3:GetBucketPolicyStatus",
            // S3 governs deleting the block with the permission to put it.
            Operation::PutPublicAccessBlock | Operation::DeletePublicAccessBlock => {
                "s3:PutBucketPublicAccessBlock"
            }
            Operation::GetPublicAccessBlock => "s3:GetBucketPublicAccessBlock",
            Operation::PutObjectLockConfiguration => "s3:PutBucketObjectLockConfiguration",
            Operation::GetObjectLockConfiguration => "s3:GetBucketObjectLockConfiguration",
            Operation::PutObjectRetention => "s3:PutObjectRetention",
            Operation::GetObjectRetention => "s3:GetObjectRetention",
            Operation::PutObjectLegalHold => "s3:PutObjectLegalHold",
            Operation::GetObjectLegalHold => "s3:GetObjectLegalHold",
            Operation::GetObjectAttributes => "s3:GetObjectAttributes",
            // S3 governs deleting the configuration with the permission to put it.
            Operation::PutBucketLifecycleConfiguration | Operation::DeleteBucketLifecycle => {
                "s3:PutLifecycleConfiguration"
            }
            Operation::GetBucketLifecycleConfiguration => "s3:GetLifecycleConfiguration",
            Operation::GetBucketCors => "s3:GetBucketCORS",
            Operation::PutBucketCors | Operation::DeleteBucketCors => "s3:PutBucketCORS",
            Operation::PutObjectTagging => "s3:PutObjectTagging",
            Operation::GetObjectTagging => "s3:GetObjectTagging",
            Operation::DeleteObjectTagging => "s3:DeleteObjectTagging",
            // S3 governs deleting a bucket's tags with the permission to put them.
            Operation::PutBucketTagging | Operation::DeleteBucketTagging => "s3:PutBucketTagging",
            Operation::GetBucketTagging => "s3:GetBucketTagging",
            // Answered before authentication from the CORS rules; no IAM action covers it.
            Operation::CorsPreflight | Operation::NotImplemented(_) => "s3:NotImplemented",
        }
    }

    /// Operations that change state; refused for read-only credentials.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Operation::CreateBucket
                | Operation::DeleteBucket
                | Operation::PutBucketVersioning
                | Operation::PutBucketAcl
                | Operation::DeleteObjects
                | Operation::PutObject
                | Operation::PostObject
                | Operation::CopyObject
                | Operation::DeleteObject
                | Operation::PutObjectAcl
                | Operation::CreateMultipartUpload
                | Operation::UploadPart
                | Operation::UploadPartCopy
                | Operation::CompleteMultipartUpload
                | Operation::AbortMultipartUpload
                | Operation::PutBucketCors
                | Operation::DeleteBucketCors
                | Operation::PutBucketOwnershipControls
                | Operation::DeleteBucketOwnershipControls
                | Operation::PutBucketPolicy
                | Operation::DeleteBucketPolicy
                | Operation::PutPublicAccessBlock
                | Operation::DeletePublicAccessBlock
                | Operation::PutObjectTagging
                | Operation::DeleteObjectTagging
                | Operation::PutBucketTagging
                | Operation::DeleteBucketTagging
                | Operation::PutObjectLockConfiguration
                | Operation::PutObjectRetention
                | Operation::PutObjectLegalHold
                | Operation::PutBucketLifecycleConfiguration
                | Operation::DeleteBucketLifecycle
        )
    }

    /// Operations whose request body is an XML document rather than object data.
    pub fn takes_xml_body(&self) -> bool {
        matches!(
            self,
            Operation::CreateBucket
                | Operation::DeleteObjects
                | Operation::PutBucketVersioning
                | Operation::PutBucketAcl
                | Operation::PutObjectAcl
                | Operation::CompleteMultipartUpload
                | Operation::PutBucketCors
                | Operation::PutBucketOwnershipControls
                | Operation::PutPublicAccessBlock
                | Operation::PutObjectTagging
                | Operation::PutBucketTagging
                | Operation::PutObjectLockConfiguration
                | Operation::PutObjectRetention
                | Operation::PutObjectLegalHold
                | Operation::PutBucketLifecycleConfiguration
        )
    }
}

/// A routed request: the operation, its bucket and key, and the decoded query.
#[derive(Debug, Clone)]
pub struct Route {
    pub operation: Operation,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub query: Vec<(String, String)>,
}

impl Route {
    /// The IAM action of this request: the operation's, or its version-specific one when the
    /// request names a version (`versionId`).
    pub fn iam_action(&self) -> &'static str {
        if !self.has_query("versionId") {
            return self.operation.iam_action();
        }
        match self.operation {
            Operation::GetObject | Operation::HeadObject => "s3:GetObjectVersion",
            Operation::DeleteObject => "s3:DeleteObjectVersion",
            Operation::GetObjectAcl => "s3:GetObjectVersionAcl",
            Operation::PutObjectAcl => "s3:PutObjectVersionAcl",
            Operation::GetObjectAttributes => "s3:GetObjectVersionAttributes",
            _ => self.operation.iam_action(),
        }
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_query(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    /// The resource string for error documents: `/bucket/key`.
    pub fn resource(&self) -> String {
        match (&self.bucket, &self.key) {
            (Some(b), Some(k)) => format!("/{b}/{k}"),
            (Some(b), None) => format!("/{b}"),
            _ => "/".to_string(),
        }
    }
}

/// Sub-resources that name an operation of their own; any we don't serve is NotImplemented.
const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "delete",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "partNumber",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versioning",
    "versions",
    "website",
];

pub fn route(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    base_domains: &[String],
) -> S3Result<Route> {
    let query = parse_query(uri.query().unwrap_or(""))?;
    let path = uri.path();
    let host_bucket = super::host::virtual_host_bucket(headers, uri, base_domains);
    let (bucket, key) = match host_bucket {
        Some(bucket) => {
            let key = path.strip_prefix('/').unwrap_or(path);
            (Some(bucket), non_empty(decode_path(key)?))
        }
        None => {
            let rest = path.strip_prefix('/').unwrap_or(path);
            match rest.split_once('/') {
                // `//key`: a key under an empty bucket name, which no operation can serve.
                Some(("", k)) if !k.is_empty() => return Err(invalid_uri()),
                Some((b, k)) => (non_empty(decode_path(b)?), non_empty(decode_path(k)?)),
                None => (non_empty(decode_path(rest)?), None),
            }
        }
    };
    let sub = query
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| SUBRESOURCES.contains(k));
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    let operation = match (&bucket, &key) {
        (None, _) => match *method {
            Method::GET => Operation::ListBuckets,
            _ => Operation::NotImplemented("ServiceOperation"),
        },
        (Some(_), None) => bucket_operation(method, sub, has("list-type")),
        (Some(_), Some(_)) => object_operation(method, sub, headers),
    };
    Ok(Route {
        operation,
        bucket,
        key,
        query,
    })
}

fn bucket_operation(method: &Method, sub: Option<&str>, list_v2: bool) -> Operation {
    use Operation::*;
    match (method.as_str(), sub) {
        ("OPTIONS", _) => CorsPreflight,
        ("PUT", Some("cors")) => PutBucketCors,
        ("GET", Some("cors")) => GetBucketCors,
        ("DELETE", Some("cors")) => DeleteBucketCors,
        ("PUT", None) => CreateBucket,
        ("PUT", Some("acl")) => PutBucketAcl,
        ("HEAD", None) => HeadBucket,
        ("DELETE", None) => DeleteBucket,
        ("GET", Some("location")) => GetBucketLocation,
        ("GET", Some("versioning")) => GetBucketVersioning,
        ("GET", Some("acl")) => GetBucketAcl,
        ("GET", None) if list_v2 => ListObjectsV2,
        ("GET", None) => ListObjectsV1,
        ("POST", Some("delete")) => DeleteObjects,
        ("POST", None) => PostObject,
        ("GET", Some("uploads")) => ListMultipartUploads,
        ("GET", Some("ownershipControls")) => GetBucketOwnershipControls,
        ("PUT", Some("ownershipControls")) => PutBucketOwnershipControls,
        ("DELETE", Some("ownershipControls")) => DeleteBucketOwnershipControls,
        ("GET", Some("versions")) => ListObjectVersions,
        ("PUT", Some("versioning")) => PutBucketVersioning,
        ("PUT", Some("policy")) => PutBucketPolicy,
        ("GET", Some("policy")) => GetBucketPolicy,
        ("DELETE", Some("policy")) => DeleteBucketPolicy,
        ("GET", Some("policyStatus")) => GetBucketPolicyStatus,
        ("PUT", Some("publicAccessBlock")) => PutPublicAccessBlock,
        ("GET", Some("publicAccessBlock")) => GetPublicAccessBlock,
        ("DELETE", Some("publicAccessBlock")) => DeletePublicAccessBlock,
        ("PUT", Some("tagging")) => PutBucketTagging,
        ("GET", Some("tagging")) => GetBucketTagging,
        ("DELETE", Some("tagging")) => DeleteBucketTagging,
        ("PUT", Some("object-lock")) => PutObjectLockConfiguration,
        ("GET", Some("object-lock")) => GetObjectLockConfiguration,
        ("PUT", Some("lifecycle")) => PutBucketLifecycleConfiguration,
        ("GET", Some("lifecycle")) => GetBucketLifecycleConfiguration,
        ("DELETE", Some("lifecycle")) => DeleteBucketLifecycle,
        (_, Some(s)) => NotImplemented(bucket_subresource_name(s)),
        _ => NotImplemented("BucketOperation"),
    }
}

fn object_operation(method: &Method, sub: Option<&str>, headers: &HeaderMap) -> Operation {
    use Operation::*;
    match (method.as_str(), sub) {
        ("OPTIONS", _) => CorsPreflight,
        ("PUT", None) if headers.contains_key("x-amz-copy-source") => CopyObject,
        ("PUT", None) => PutObject,
        ("PUT", Some("acl")) => PutObjectAcl,
        ("GET", None) => GetObject,
        ("GET", Some("acl")) => GetObjectAcl,
        ("GET", Some("attributes")) => GetObjectAttributes,
        ("HEAD", None) => HeadObject,
        ("DELETE", None) => DeleteObject,
        ("PUT", Some("partNumber" | "uploadId")) if headers.contains_key("x-amz-copy-source") => {
            UploadPartCopy
        }
        ("PUT", Some("partNumber" | "uploadId")) => UploadPart,
        ("POST", Some("uploads")) => CreateMultipartUpload,
        ("POST", Some("uploadId")) => CompleteMultipartUpload,
        ("DELETE", Some("uploadId")) => AbortMultipartUpload,
        ("GET", Some("uploadId")) => ListParts,
        ("GET", Some("partNumber")) => GetObject,
        ("HEAD", Some("partNumber")) => HeadObject,
        ("PUT", Some("tagging")) => PutObjectTagging,
        ("GET", Some("tagging")) => GetObjectTagging,
        ("DELETE", Some("tagging")) => DeleteObjectTagging,
        ("PUT", Some("retention")) => PutObjectRetention,
        ("GET", Some("retention")) => GetObjectRetention,
        ("PUT", Some("legal-hold")) => PutObjectLegalHold,
        ("GET", Some("legal-hold")) => GetObjectLegalHold,
        (_, Some(s)) => NotImplemented(object_subresource_name(s)),
        _ => NotImplemented("ObjectOperation"),
    }
}

fn bucket_subresource_name(sub: &str) -> &'static str {
    SUBRESOURCES
        .iter()
        .find(|s| **s == sub)
        .map(|_| "BucketSubresource")
        .unwrap_or("BucketOperation")
}

fn object_subresource_name(sub: &str) -> &'static str {
    SUBRESOURCES
        .iter()
        .find(|s| **s == sub)
        .map(|_| "ObjectSubresource")
        .unwrap_or("ObjectOperation")
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

fn invalid_uri() -> S3Error {
    S3Error::new(
        "InvalidURI",
        http::StatusCode::BAD_REQUEST,
        "Couldn't parse the specified URI.",
    )
}

/// Percent-decodes a path segment into UTF-8; `+` stays `+` in paths.
fn decode_path(s: &str) -> S3Result<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| invalid_uri())
}

/// Decodes a query string; in queries `+` means a space, as form encoding has it.
pub fn parse_query(q: &str) -> S3Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            percent_encoding::percent_decode_str(&s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid_uri())
        };
        out.push((decode(k)?, decode(v)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: &str, uri: &str, host: &str) -> Route {
        let mut headers = HeaderMap::new();
        headers.insert("host", host.parse().unwrap());
        route(
            &method.parse().unwrap(),
            &uri.parse().unwrap(),
            &headers,
            &["s3.example.test".to_string()],
        )
        .unwrap()
    }

    #[test]
    fn path_style() {
        let x = r("GET", "/", "localhost:9000");
        assert_eq!(x.operation, Operation::ListBuckets);
        let x = r("PUT", "/b1", "localhost");
        assert_eq!(
            (x.operation, x.bucket.as_deref()),
            (Operation::CreateBucket, Some("b1"))
        );
        let x = r("GET", "/b1/?list-type=2&prefix=a%2Fb", "localhost");
        assert_eq!(x.operation, Operation::ListObjectsV2);
        assert_eq!(x.query("prefix"), Some("a/b"));
        let x = r("PUT", "/b1/a//b/../c%20d+e", "localhost");
        assert_eq!(x.operation, Operation::PutObject);
        assert_eq!(x.key.as_deref(), Some("a//b/../c d+e"));
        let x = r("POST", "/b1?delete", "localhost");
        assert_eq!(x.operation, Operation::DeleteObjects);
        // A browser form upload, path-style and virtual-host.
        let x = r("POST", "/b1", "localhost");
        assert_eq!((x.operation, x.key), (Operation::PostObject, None));
        let x = r("POST", "/", "b1.s3.example.test");
        assert_eq!(x.operation, Operation::PostObject);
        assert_eq!(x.bucket.as_deref(), Some("b1"));
        assert!(Operation::PostObject.is_write());
        assert_eq!(Operation::PostObject.iam_action(), "s3:PutObject");
        let x = r("GET", "/b1?location", "localhost");
        assert_eq!(x.operation, Operation::GetBucketLocation);
    }

    #[test]
    fn virtual_host() {
        let x = r("GET", "/dir/file.txt", "photos.s3.example.test:9000");
        assert_eq!(x.operation, Operation::GetObject);
        assert_eq!(x.bucket.as_deref(), Some("photos"));
        assert_eq!(x.key.as_deref(), Some("dir/file.txt"));
        let x = r("GET", "/", "photos.s3.example.test");
        assert_eq!(x.operation, Operation::ListObjectsV1);
        let x = r("GET", "/", "s3.example.test");
        assert_eq!(x.operation, Operation::ListBuckets);
    }

    #[test]
    fn unknown_operations_are_not_implemented() {
        assert!(matches!(
            r("GET", "/b1?website", "h").operation,
            Operation::NotImplemented(_)
        ));
        assert!(matches!(
            r("POST", "/b1/k?tagging", "h").operation,
            Operation::NotImplemented(_)
        ));
        assert!(matches!(
            r("PATCH", "/b1/k", "h").operation,
            Operation::NotImplemented(_)
        ));
    }

    #[test]
    fn policy_operations() {
        use Operation::*;
        for (method, uri, op) in [
            ("PUT", "/b1?policy", PutBucketPolicy),
            ("GET", "/b1?policy", GetBucketPolicy),
            ("DELETE", "/b1?policy", DeleteBucketPolicy),
            ("GET", "/b1?policyStatus", GetBucketPolicyStatus),
            ("PUT", "/b1?publicAccessBlock", PutPublicAccessBlock),
            ("GET", "/b1?publicAccessBlock", GetPublicAccessBlock),
            ("DELETE", "/b1?publicAccessBlock", DeletePublicAccessBlock),
        ] {
            assert_eq!(r(method, uri, "h").operation, op, "{method} {uri}");
        }
        assert!(matches!(
            r("POST", "/b1?policy", "h").operation,
            NotImplemented(_)
        ));
        assert_eq!(ListObjectsV2.iam_action(), "s3:ListBucket");
        assert_eq!(UploadPart.iam_action(), "s3:PutObject");
        assert_eq!(
            DeletePublicAccessBlock.iam_action(),
            "s3:PutBucketPublicAccessBlock"
        );
    }

    #[test]
    fn multipart_operations() {
        let op = |m: &str, uri: &str, copy: bool| {
            let mut headers = HeaderMap::new();
            if copy {
                headers.insert("x-amz-copy-source", "src/k".parse().unwrap());
            }
            route(&m.parse().unwrap(), &uri.parse().unwrap(), &headers, &[])
                .unwrap()
                .operation
        };
        use Operation::*;
        assert_eq!(op("POST", "/b1/k?uploads", false), CreateMultipartUpload);
        assert_eq!(
            op("PUT", "/b1/k?partNumber=1&uploadId=u", false),
            UploadPart
        );
        assert_eq!(
            op("PUT", "/b1/k?uploadId=u&partNumber=1", false),
            UploadPart
        );
        assert_eq!(
            op("PUT", "/b1/k?partNumber=1&uploadId=u", true),
            UploadPartCopy
        );
        assert_eq!(
            op("POST", "/b1/k?uploadId=u", false),
            CompleteMultipartUpload
        );
        assert_eq!(
            op("DELETE", "/b1/k?uploadId=u", false),
            AbortMultipartUpload
        );
        assert_eq!(op("GET", "/b1/k?uploadId=u", false), ListParts);
        assert_eq!(op("GET", "/b1?uploads", false), ListMultipartUploads);
        assert_eq!(op("GET", "/b1/k?partNumber=2", false), GetObject);
        assert_eq!(op("HEAD", "/b1/k?partNumber=2", false), HeadObject);
    }

    #[test]
    fn cors_operations_and_preflights() {
        use Operation::*;
        assert_eq!(r("PUT", "/b1?cors", "h").operation, PutBucketCors);
        assert_eq!(r("GET", "/b1?cors", "h").operation, GetBucketCors);
        assert_eq!(r("DELETE", "/b1?cors", "h").operation, DeleteBucketCors);
        assert_eq!(
            r("PUT", "/b1?lifecycle", "h").operation,
            PutBucketLifecycleConfiguration
        );
        assert_eq!(
            r("GET", "/b1?lifecycle", "h").operation,
            GetBucketLifecycleConfiguration
        );
        assert_eq!(
            r("DELETE", "/b1?lifecycle", "h").operation,
            DeleteBucketLifecycle
        );
        assert_eq!(r("OPTIONS", "/b1", "h").operation, CorsPreflight);
        assert_eq!(
            r("OPTIONS", "/b1/a/b?uploads", "h").operation,
            CorsPreflight
        );
        let x = r("OPTIONS", "/k", "photos.s3.example.test");
        assert_eq!(
            (x.operation, x.bucket.as_deref()),
            (CorsPreflight, Some("photos"))
        );
        assert!(matches!(
            r("OPTIONS", "/", "h").operation,
            NotImplemented(_)
        ));
    }

    #[test]
    fn tagging_operations() {
        use Operation::*;
        for (method, uri, op, action) in [
            (
                "PUT",
                "/b1/k?tagging",
                PutObjectTagging,
                "s3:PutObjectTagging",
            ),
            (
                "GET",
                "/b1/k?tagging",
                GetObjectTagging,
                "s3:GetObjectTagging",
            ),
            (
                "DELETE",
                "/b1/k?tagging&versionId=null",
                DeleteObjectTagging,
                "s3:DeleteObjectTagging",
            ),
            (
                "PUT",
                "/b1?tagging",
                PutBucketTagging,
                "s3:PutBucketTagging",
            ),
            (
                "GET",
                "/b1?tagging",
                GetBucketTagging,
                "s3:GetBucketTagging",
            ),
            (
                "DELETE",
                "/b1?tagging",
                DeleteBucketTagging,
                "s3:PutBucketTagging",
            ),
        ] {
            let routed = r(method, uri, "h").operation;
            assert_eq!(routed, op, "{method} {uri}");
            assert_eq!(routed.iam_action(), action, "{method} {uri}");
            assert_eq!(routed.is_write(), method != "GET", "{method} {uri}");
        }
    }

    #[test]
    fn object_lock_operations() {
        use Operation::*;
        for (method, uri, op, action) in [
            (
                "PUT",
                "/b1?object-lock",
                PutObjectLockConfiguration,
                "s3:PutBucketObjectLockConfiguration",
            ),
            (
                "GET",
                "/b1?object-lock",
                GetObjectLockConfiguration,
                "s3:GetBucketObjectLockConfiguration",
            ),
            (
                "PUT",
                "/b1/k?retention&versionId=v",
                PutObjectRetention,
                "s3:PutObjectRetention",
            ),
            (
                "GET",
                "/b1/k?retention",
                GetObjectRetention,
                "s3:GetObjectRetention",
            ),
            (
                "PUT",
                "/b1/k?legal-hold",
                PutObjectLegalHold,
                "s3:PutObjectLegalHold",
            ),
            (
                "GET",
                "/b1/k?legal-hold",
                GetObjectLegalHold,
                "s3:GetObjectLegalHold",
            ),
        ] {
            let routed = r(method, uri, "h").operation;
            assert_eq!(routed, op, "{method} {uri}");
            assert_eq!(routed.iam_action(), action);
            assert_eq!(routed.is_write(), method == "PUT");
        }
        assert!(matches!(
            r("DELETE", "/b1/k?retention", "h").operation,
            NotImplemented(_)
        ));
    }

    #[test]
    fn key_without_bucket_is_invalid_uri() {
        // Found by fuzz/fuzz_targets/router.rs: `DELETE //PdOS` routed to a service operation
        // carrying a key and no bucket (and `GET //key` listed the buckets).
        for (method, uri) in [
            (Method::DELETE, "//PdOS"),
            (Method::GET, "//key"),
            (Method::PUT, "//a/b"),
        ] {
            let e = route(&method, &uri.parse().unwrap(), &HeaderMap::new(), &[]).unwrap_err();
            assert_eq!(e.code, "InvalidURI", "{method} {uri}");
        }
        assert_eq!(
            r("GET", "//", "localhost").operation,
            Operation::ListBuckets
        );
        assert_eq!(r("GET", "/", "localhost").operation, Operation::ListBuckets);
    }

    #[test]
    fn bad_utf8_is_invalid_uri() {
        let e = route(
            &Method::GET,
            &"/b1/%ff".parse().unwrap(),
            &HeaderMap::new(),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidURI");
    }
}
