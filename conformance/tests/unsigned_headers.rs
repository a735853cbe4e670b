//! Nothing unsigned changes a request (issue 13): every operation the gateway serves, with an
//! `x-amz-*` header the signature does not cover, header-signed and presigned, is refused with
//! 403 AccessDenied naming the header, and changes nothing; the same request with the header
//! signed is accepted.

use std::time::Duration;

use hansa_conformance::raw::{self, send_reqwest, Response};
use hansa_conformance::sign::{crc32_b64, Payload, Signer};
use hansa_conformance::{
    bucket_name, create_bucket, gateway_state, get, md5_b64, put, xml_text, GatewayState,
    TestGateway, ADMIN,
};

const MESSAGE: &str = "There were headers present in the request which were not signed";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    Header,
    Presigned,
}

/// One request: what it signs, what it sends, and the status it gets when all is signed.
#[derive(Clone, Debug)]
struct Case {
    operation: &'static str,
    method: &'static str,
    /// Path and query, e.g. `/bucket/key?uploads`.
    target: String,
    signed_headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    accepted: u16,
}

impl Case {
    fn new(operation: &'static str, method: &'static str, target: String, accepted: u16) -> Self {
        Case {
            operation,
            method,
            target,
            signed_headers: Vec::new(),
            body: Vec::new(),
            accepted,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.signed_headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    fn signs(&self, name: &str) -> bool {
        self.signed_headers.iter().any(|(n, _)| *n == name)
    }
}

/// Signs `case` (its own headers plus `extra_signed`) with `auth`, then adds `unsigned`
/// headers the signature does not cover, and sends it.
async fn send(
    gw: &TestGateway,
    case: &Case,
    auth: Auth,
    extra_signed: &[(&str, String)],
    unsigned: &[(&str, String)],
) -> Response {
    let mut req = raw::request(case.method, &format!("{}{}", gw.endpoint, case.target));
    for (name, value) in case
        .signed_headers
        .iter()
        .map(|(n, v)| (*n, v))
        .chain(extra_signed.iter().map(|(n, v)| (*n, v)))
    {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    let signer = Signer::new(ADMIN);
    match auth {
        Auth::Header => {
            signer.sign(&mut req, &Payload::Bytes(case.body.clone()));
        }
        Auth::Presigned => {
            signer.presign(&mut req, Duration::from_secs(300));
        }
    }
    for (name, value) in unsigned {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    send_reqwest(req, case.body.clone()).await
}

fn assert_refused(resp: &Response, expected_names: &str, what: &str) {
    assert_eq!(resp.status, 403, "{what}: {}", resp.text());
    if resp.body.is_empty() {
        // HEAD: S3 sends the status only.
        return;
    }
    let text = resp.text();
    assert_eq!(
        resp.code().as_deref(),
        Some("AccessDenied"),
        "{what}: {text}"
    );
    assert_eq!(
        xml_text(&text, "Message").as_deref(),
        Some(MESSAGE),
        "{what}: {text}"
    );
    assert_eq!(
        xml_text(&text, "HeadersNotSigned").as_deref(),
        Some(expected_names),
        "{what}: {text}"
    );
}

/// Buckets, objects and uploads every case of one round works on.
struct Fixture {
    bucket: String,
    /// Another bucket, holding `secret`, which no case names but an unsigned copy source does.
    other: String,
    /// An empty bucket for DeleteBucket.
    empty: String,
    new_bucket: String,
    /// Upload at `mp` with part 1, for UploadPart, UploadPartCopy and ListParts.
    upload: String,
    /// Upload at `mp-done` with part 1 (ETag `done_etag`), for CompleteMultipartUpload.
    done_upload: String,
    done_etag: String,
    /// Upload at `mp-abort`, for AbortMultipartUpload.
    abort_upload: String,
}

async fn start_upload(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (String, String) {
    let upload_id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("upload id")
        .to_string();
    let etag = s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .part_number(1)
        .body(b"first part".to_vec().into())
        .send()
        .await
        .expect("upload part")
        .e_tag()
        .expect("etag")
        .to_string();
    (upload_id, etag)
}

async fn fixture(s3: &aws_sdk_s3::Client) -> Fixture {
    let bucket = bucket_name("unsigned");
    let other = bucket_name("other");
    let empty = bucket_name("empty");
    for b in [&bucket, &other, &empty] {
        create_bucket(s3, b).await;
    }
    put(s3, &bucket, "obj", b"original bytes").await;
    put(s3, &other, "secret", b"top secret").await;
    let (upload, _) = start_upload(s3, &bucket, "mp").await;
    let (done_upload, done_etag) = start_upload(s3, &bucket, "mp-done").await;
    let (abort_upload, _) = start_upload(s3, &bucket, "mp-abort").await;
    Fixture {
        new_bucket: bucket_name("new"),
        bucket,
        other,
        empty,
        upload,
        done_upload,
        done_etag,
        abort_upload,
    }
}

/// Every operation of `src/s3/router.rs`.
fn cases(f: &Fixture) -> Vec<Case> {
    let b = &f.bucket;
    let put_body = b"new object bytes".to_vec();
    let delete_doc = "<Delete><Object><Key>new-key</Key></Object></Delete>".to_string();
    let policy_doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"HANSATESTREADER"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/*"}}]}}"#
    );
    let block_doc = "<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls>\
                     </PublicAccessBlockConfiguration>"
        .to_string();
    let ownership_doc = "<OwnershipControls><Rule><ObjectOwnership>BucketOwnerPreferred\
                         </ObjectOwnership></Rule></OwnershipControls>"
        .to_string();
    let cors_doc = "<CORSConfiguration><CORSRule><AllowedOrigin>http://app.test</AllowedOrigin>\
                    <AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>"
        .to_string();
    let tagging_doc =
        "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>".to_string();
    let lifecycle_doc = "<LifecycleConfiguration><Rule><ID>r</ID><Filter><Prefix>tmp/</Prefix>\
                         </Filter><Status>Enabled</Status><Expiration><Days>1</Days>\
                         </Expiration></Rule></LifecycleConfiguration>"
        .to_string();
    // Suspended: DeleteObject below still removes `obj` from the listing (a null marker).
    let versioning_doc =
        "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>".to_string();
    let complete_doc = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        f.done_etag
    );
    vec![
        Case::new("ListBuckets", "GET", "/".into(), 200),
        Case::new("CreateBucket", "PUT", format!("/{}", f.new_bucket), 200),
        Case::new("HeadBucket", "HEAD", format!("/{b}"), 200),
        Case::new("DeleteBucket", "DELETE", format!("/{}", f.empty), 204),
        Case::new("GetBucketLocation", "GET", format!("/{b}?location"), 200),
        Case::new(
            "GetBucketVersioning",
            "GET",
            format!("/{b}?versioning"),
            200,
        ),
        Case::new(
            "PutBucketVersioning",
            "PUT",
            format!("/{b}?versioning"),
            200,
        )
        .header("content-md5", md5_b64(versioning_doc.as_bytes()))
        .body(versioning_doc),
        Case::new("ListObjectVersions", "GET", format!("/{b}?versions"), 200),
        Case::new("GetBucketAcl", "GET", format!("/{b}?acl"), 200),
        Case::new("PutBucketAcl", "PUT", format!("/{b}?acl"), 200).header("x-amz-acl", "private"),
        Case::new("PutBucketCors", "PUT", format!("/{b}?cors"), 200)
            .header("content-md5", md5_b64(cors_doc.as_bytes()))
            .body(cors_doc),
        Case::new("GetBucketCors", "GET", format!("/{b}?cors"), 200),
        Case::new(
            "PutBucketLifecycleConfiguration",
            "PUT",
            format!("/{b}?lifecycle"),
            200,
        )
        .header("content-md5", md5_b64(lifecycle_doc.as_bytes()))
        .body(lifecycle_doc),
        Case::new(
            "GetBucketLifecycleConfiguration",
            "GET",
            format!("/{b}?lifecycle"),
            200,
        ),
        Case::new(
            "DeleteBucketLifecycle",
            "DELETE",
            format!("/{b}?lifecycle"),
            204,
        ),
        Case::new(
            "PutBucketOwnershipControls",
            "PUT",
            format!("/{b}?ownershipControls"),
            200,
        )
        .header("content-md5", md5_b64(ownership_doc.as_bytes()))
        .body(ownership_doc),
        Case::new(
            "GetBucketOwnershipControls",
            "GET",
            format!("/{b}?ownershipControls"),
            200,
        ),
        Case::new(
            "DeleteBucketOwnershipControls",
            "DELETE",
            format!("/{b}?ownershipControls"),
            204,
        ),
        Case::new("DeleteBucketCors", "DELETE", format!("/{b}?cors"), 204),
        Case::new("PutBucketPolicy", "PUT", format!("/{b}?policy"), 204).body(policy_doc),
        Case::new("GetBucketPolicy", "GET", format!("/{b}?policy"), 200),
        Case::new(
            "GetBucketPolicyStatus",
            "GET",
            format!("/{b}?policyStatus"),
            200,
        ),
        Case::new("DeleteBucketPolicy", "DELETE", format!("/{b}?policy"), 204),
        Case::new(
            "PutPublicAccessBlock",
            "PUT",
            format!("/{b}?publicAccessBlock"),
            200,
        )
        .header("content-md5", md5_b64(block_doc.as_bytes()))
        .body(block_doc),
        Case::new(
            "GetPublicAccessBlock",
            "GET",
            format!("/{b}?publicAccessBlock"),
            200,
        ),
        Case::new(
            "DeletePublicAccessBlock",
            "DELETE",
            format!("/{b}?publicAccessBlock"),
            204,
        ),
        Case::new("ListObjects", "GET", format!("/{b}"), 200),
        Case::new("ListObjectsV2", "GET", format!("/{b}?list-type=2"), 200),
        Case::new("ListMultipartUploads", "GET", format!("/{b}?uploads"), 200),
        Case::new("PutObject", "PUT", format!("/{b}/new-key"), 200)
            .header("x-amz-checksum-crc32", crc32_b64(&put_body))
            .body(put_body),
        Case::new("CopyObject", "PUT", format!("/{b}/copied"), 200)
            .header("x-amz-copy-source", format!("/{b}/obj")),
        Case::new("GetObject", "GET", format!("/{b}/obj"), 200),
        Case::new("HeadObject", "HEAD", format!("/{b}/obj"), 200),
        Case::new("GetObjectAcl", "GET", format!("/{b}/obj?acl"), 200),
        Case::new(
            "GetObjectAttributes",
            "GET",
            format!("/{b}/obj?attributes"),
            200,
        )
        .header("x-amz-object-attributes", "ETag,ObjectSize"),
        Case::new("PutObjectAcl", "PUT", format!("/{b}/obj?acl"), 200)
            .header("x-amz-acl", "private"),
        Case::new("PutObjectTagging", "PUT", format!("/{b}/obj?tagging"), 200)
            .header("content-md5", md5_b64(tagging_doc.as_bytes()))
            .body(tagging_doc.clone()),
        Case::new("GetObjectTagging", "GET", format!("/{b}/obj?tagging"), 200),
        Case::new(
            "DeleteObjectTagging",
            "DELETE",
            format!("/{b}/obj?tagging"),
            204,
        ),
        Case::new("PutBucketTagging", "PUT", format!("/{b}?tagging"), 204)
            .header("content-md5", md5_b64(tagging_doc.as_bytes()))
            .body(tagging_doc),
        Case::new("GetBucketTagging", "GET", format!("/{b}?tagging"), 200),
        Case::new(
            "DeleteBucketTagging",
            "DELETE",
            format!("/{b}?tagging"),
            204,
        ),
        Case::new(
            "CreateMultipartUpload",
            "POST",
            format!("/{b}/mp-new?uploads"),
            200,
        ),
        Case::new(
            "UploadPart",
            "PUT",
            format!("/{b}/mp?partNumber=2&uploadId={}", f.upload),
            200,
        )
        .body(b"second part".to_vec()),
        Case::new(
            "UploadPartCopy",
            "PUT",
            format!("/{b}/mp?partNumber=3&uploadId={}", f.upload),
            200,
        )
        .header("x-amz-copy-source", format!("/{b}/obj")),
        Case::new(
            "CompleteMultipartUpload",
            "POST",
            format!("/{b}/mp-done?uploadId={}", f.done_upload),
            200,
        )
        .body(complete_doc),
        Case::new(
            "AbortMultipartUpload",
            "DELETE",
            format!("/{b}/mp-abort?uploadId={}", f.abort_upload),
            204,
        ),
        Case::new(
            "ListParts",
            "GET",
            format!("/{b}/mp?uploadId={}", f.upload),
            200,
        ),
        // Last: the cases above read `obj`.
        Case::new("DeleteObject", "DELETE", format!("/{b}/obj"), 204),
        Case::new("DeleteObjects", "POST", format!("/{b}?delete"), 200)
            .header("content-md5", md5_b64(delete_doc.as_bytes()))
            .body(delete_doc),
    ]
}

/// Unsigned headers an attacker would add: each would change what the request does.
fn attacks(f: &Fixture, case: &Case) -> Vec<Vec<(&'static str, String)>> {
    let crc = crc32_b64(&case.body);
    let single = [
        ("x-amz-copy-source", format!("/{}/secret", f.other)),
        ("x-amz-meta-evil", "1".to_string()),
        ("x-amz-acl", "public-read".to_string()),
        ("x-amz-checksum-crc32", crc),
        ("x-amz-metadata-directive", "REPLACE".to_string()),
        ("x-amz-tagging", "evil=1".to_string()),
    ];
    let mut out: Vec<Vec<(&'static str, String)>> = single
        .iter()
        .filter(|(name, _)| !case.signs(name))
        .map(|header| vec![header.clone()])
        .collect();
    // Several at once are all named, sorted, comma-separated.
    out.push(vec![
        ("x-amz-meta-evil", "1".to_string()),
        (
            "x-amz-grant-read",
            "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"".into(),
        ),
    ]);
    out
}

fn expected_names(headers: &[(&str, String)]) -> String {
    let mut names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.join(", ")
}

async fn every_operation(auth: Auth) {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    let f = fixture(&s3).await;
    let secret_before = get(&s3, &f.other, "secret").await;
    let mut state: GatewayState = gateway_state(&s3).await;
    let all = cases(&f);
    assert_eq!(all.len(), 50, "one case per routed operation");
    for case in &all {
        for unsigned in attacks(&f, case) {
            let what = format!("{auth:?} {} + unsigned {unsigned:?}", case.operation);
            let resp = send(&gw, case, auth, &[], &unsigned).await;
            assert_refused(&resp, &expected_names(&unsigned), &what);
            assert_eq!(gateway_state(&s3).await, state, "{what} changed something");
        }
        // The same request with an x-amz-* header signed is accepted.
        let signed = [("x-amz-meta-note", "signed".to_string())];
        let resp = send(&gw, case, auth, &signed, &[]).await;
        assert_eq!(
            resp.status,
            case.accepted,
            "{auth:?} {} signed: {}",
            case.operation,
            resp.text()
        );
        state = gateway_state(&s3).await;
    }
    // What the accepted requests did, to show the refused ones would have been able to act.
    assert!(state.buckets.contains(&f.new_bucket));
    assert!(!state.buckets.contains(&f.empty));
    assert!(state
        .objects
        .iter()
        .any(|o| o.bucket == f.bucket && o.key == "mp-done"));
    assert!(!state.uploads.iter().any(|u| u.upload_id == f.abort_upload));
    assert!(!state
        .objects
        .iter()
        .any(|o| o.bucket == f.bucket && (o.key == "obj" || o.key == "new-key")));
    let copied = state
        .objects
        .iter()
        .find(|o| o.bucket == f.bucket && o.key == "copied")
        .expect("copied object");
    assert_eq!(
        copied.sha256,
        hansa_conformance::sha256_hex(b"original bytes")
    );
    assert!(
        copied.metadata.iter().all(|(_, v)| v != "1"),
        "no unsigned metadata: {copied:?}"
    );
    assert_eq!(get(&s3, &f.other, "secret").await, secret_before);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_refuses_unsigned_headers_header_signed() {
    every_operation(Auth::Header).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_refuses_unsigned_headers_presigned() {
    every_operation(Auth::Presigned).await;
}

/// The report of issue 13: a presigned upload link plus an unsigned copy source copied a
/// private object to the upload key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_upload_link_cannot_copy_another_object() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "uploads").await;
    create_bucket(&s3, "private-hr").await;
    put(
        &s3,
        "private-hr",
        "salaries.csv",
        b"name,salary\nalice,1000000\n",
    )
    .await;
    let target = "/uploads/drop/user123.jpg";
    let before = gateway_state(&s3).await;

    for auth in [Auth::Presigned, Auth::Header] {
        let put_case = Case::new("PutObject", "PUT", target.into(), 200);
        let resp = send(
            &gw,
            &put_case,
            auth,
            &[],
            &[("x-amz-copy-source", "private-hr/salaries.csv".into())],
        )
        .await;
        assert_refused(&resp, "x-amz-copy-source", &format!("{auth:?} attack"));
        assert_eq!(
            gateway_state(&s3).await,
            before,
            "{auth:?} attack changed something"
        );

        // A later presigned GET of the upload key finds nothing.
        let get_case = Case::new("GetObject", "GET", target.into(), 200);
        let resp = send(&gw, &get_case, Auth::Presigned, &[], &[]).await;
        assert_eq!(resp.status, 404, "{}", resp.text());
        assert_eq!(resp.code().as_deref(), Some("NoSuchKey"));
    }

    // The link still does what it was made for.
    let upload = Case::new("PutObject", "PUT", target.into(), 200).body(b"a photo".to_vec());
    let resp = send(&gw, &upload, Auth::Presigned, &[], &[]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let get_case = Case::new("GetObject", "GET", target.into(), 200);
    let resp = send(&gw, &get_case, Auth::Presigned, &[], &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"a photo");
    gw.shutdown().await;
}

/// What aws-sdk-s3 presigns, with and without flexible checksums, is sent as the SDK says and
/// accepted: the headers it puts in a presigned request are signed, or exempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_presigned_requests_with_checksums_are_accepted() {
    use aws_sdk_s3::presigning::PresigningConfig;
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};

    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "presign").await;
    let config = || PresigningConfig::expires_in(Duration::from_secs(300)).expect("config");
    let body = b"presigned by the SDK".to_vec();

    let plain = s3
        .put_object()
        .bucket("presign")
        .key("plain")
        .presigned(config())
        .await
        .expect("presign");
    let with_checksum = s3
        .put_object()
        .bucket("presign")
        .key("checksummed")
        .checksum_crc32(crc32_b64(&body))
        .metadata("note", "signed")
        .presigned(config())
        .await
        .expect("presign");
    let with_algorithm = s3
        .put_object()
        .bucket("presign")
        .key("algorithm")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .presigned(config())
        .await
        .expect("presign");
    for presigned in [&plain, &with_checksum, &with_algorithm] {
        let mut req = raw::request(presigned.method(), presigned.uri());
        for (name, value) in presigned.headers() {
            req.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        let resp = send_reqwest(req, body.clone()).await;
        assert_eq!(
            resp.status,
            200,
            "{} {:?}: {}",
            presigned.uri(),
            presigned.headers().collect::<Vec<_>>(),
            resp.text()
        );
    }
    assert_eq!(get(&s3, "presign", "checksummed").await, body);

    let read = s3
        .get_object()
        .bucket("presign")
        .key("checksummed")
        .checksum_mode(ChecksumMode::Enabled)
        .presigned(config())
        .await
        .expect("presign");
    let mut req = raw::request(read.method(), read.uri());
    for (name, value) in read.headers() {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    let resp = send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, body);
    gw.shutdown().await;
}
