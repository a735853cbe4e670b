//! ACLs (canned, grant headers, AccessControlPolicy documents), object ownership controls, and
//! anonymous access where ACLs grant it: the SDK for the signed side, plain reqwest (no
//! signature) for the anonymous side.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AccessControlPolicy, BucketCannedAcl, CompletedMultipartUpload, CompletedPart, Grant, Grantee,
    ObjectCannedAcl, ObjectOwnership, Owner, OwnershipControls, OwnershipControlsRule, Permission,
    Type,
};
use hansa_conformance::raw::{request, send_reqwest, Response};
use hansa_conformance::{
    assert_s3_err, bucket_name, create_bucket, put, TestGateway, ADMIN, LIMITED, READER,
};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTH_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";
const OWNER: &str = ADMIN.access_key_id;

/// Grants as sorted `(grantee, permission)` pairs: `id:…` or `uri:…`.
fn summarize(grants: &[Grant]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = grants
        .iter()
        .map(|g| {
            let grantee = g.grantee().expect("grantee");
            let who = match grantee.r#type() {
                Type::CanonicalUser => format!("id:{}", grantee.id().unwrap_or("?")),
                Type::Group => format!("uri:{}", grantee.uri().unwrap_or("?")),
                other => format!("{other:?}"),
            };
            (
                who,
                g.permission().expect("permission").as_str().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

fn owner_full() -> (String, String) {
    (format!("id:{OWNER}"), "FULL_CONTROL".into())
}

async fn bucket_acl(c: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, String)> {
    let r = c.get_bucket_acl().bucket(bucket).send().await.unwrap();
    assert_eq!(r.owner().and_then(|o| o.id()), Some(OWNER));
    summarize(r.grants())
}

async fn object_acl(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<(String, String)> {
    let r = c
        .get_object_acl()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    summarize(r.grants())
}

async fn anonymous(method: &str, url: &str, body: &[u8]) -> Response {
    send_reqwest(request(method, url), body.to_vec()).await
}

fn assert_denied(resp: &Response, what: &str) {
    assert_eq!(resp.status, 403, "{what}: {}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("AccessDenied"), "{what}");
}

#[tokio::test]
async fn canned_acls_expand_on_buckets_objects_copies_and_uploads() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let user = |p: &str| (format!("id:{OWNER}"), p.to_string());
    let group = |uri: &str, p: &str| (format!("uri:{uri}"), p.to_string());
    let bucket_cases = [
        (BucketCannedAcl::Private, vec![owner_full()]),
        (
            BucketCannedAcl::PublicRead,
            vec![owner_full(), group(ALL_USERS, "READ")],
        ),
        (
            BucketCannedAcl::PublicReadWrite,
            vec![
                owner_full(),
                group(ALL_USERS, "READ"),
                group(ALL_USERS, "WRITE"),
            ],
        ),
        (
            BucketCannedAcl::AuthenticatedRead,
            vec![owner_full(), group(AUTH_USERS, "READ")],
        ),
    ];
    for (canned, want) in bucket_cases {
        let b = bucket_name("canned");
        c.create_bucket()
            .bucket(&b)
            .acl(canned.clone())
            .send()
            .await
            .unwrap();
        let mut want = want;
        want.sort();
        assert_eq!(bucket_acl(&c, &b).await, want, "CreateBucket {canned:?}");
    }
    // log-delivery-write is a bucket ACL, set here through PutBucketAcl's header.
    let b = bucket_name("objects");
    create_bucket(&c, &b).await;
    c.put_bucket_acl()
        .bucket(&b)
        .acl(BucketCannedAcl::from("log-delivery-write"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bucket_acl(&c, &b).await,
        expect(&[
            (&format!("id:{OWNER}"), "FULL_CONTROL"),
            (&format!("uri:{LOG_DELIVERY}"), "WRITE"),
            (&format!("uri:{LOG_DELIVERY}"), "READ_ACP"),
        ])
    );

    // Objects: the bucket owner is the writer here, so bucket-owner-* add nothing.
    let object_cases = [
        (ObjectCannedAcl::Private, vec![owner_full()]),
        (
            ObjectCannedAcl::PublicRead,
            vec![owner_full(), group(ALL_USERS, "READ")],
        ),
        (
            ObjectCannedAcl::PublicReadWrite,
            vec![
                owner_full(),
                group(ALL_USERS, "READ"),
                group(ALL_USERS, "WRITE"),
            ],
        ),
        (
            ObjectCannedAcl::AuthenticatedRead,
            vec![owner_full(), group(AUTH_USERS, "READ")],
        ),
        (ObjectCannedAcl::BucketOwnerRead, vec![owner_full()]),
        (
            ObjectCannedAcl::BucketOwnerFullControl,
            vec![user("FULL_CONTROL")],
        ),
    ];
    for (canned, want) in object_cases {
        let key = format!("put-{}", canned.as_str());
        c.put_object()
            .bucket(&b)
            .key(&key)
            .acl(canned.clone())
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
        let mut want = want;
        want.sort();
        assert_eq!(object_acl(&c, &b, &key).await, want, "PutObject {canned:?}");
    }

    // CopyObject does not copy the source's ACL: the copy gets the request's, or private.
    c.copy_object()
        .bucket(&b)
        .key("copy-plain")
        .copy_source(format!("{b}/put-public-read"))
        .send()
        .await
        .unwrap();
    assert_eq!(object_acl(&c, &b, "copy-plain").await, vec![owner_full()]);
    c.copy_object()
        .bucket(&b)
        .key("copy-auth")
        .copy_source(format!("{b}/put-private"))
        .acl(ObjectCannedAcl::AuthenticatedRead)
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_acl(&c, &b, "copy-auth").await,
        expect(&[
            (&format!("id:{OWNER}"), "FULL_CONTROL"),
            (&format!("uri:{AUTH_USERS}"), "READ"),
        ])
    );

    // CreateMultipartUpload's ACL is the completed object's.
    let up = c
        .create_multipart_upload()
        .bucket(&b)
        .key("mpu")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = c
        .upload_part()
        .bucket(&b)
        .key("mpu")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket(&b)
        .key("mpu")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_acl(&c, &b, "mpu").await,
        expect(&[
            (&format!("id:{OWNER}"), "FULL_CONTROL"),
            (&format!("uri:{ALL_USERS}"), "READ"),
        ])
    );
    let r = anonymous("GET", &gw.url(&format!("{b}/mpu")), b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"part".as_slice()));
    gw.shutdown().await;
}

#[tokio::test]
async fn grant_headers_documents_and_their_errors() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let b = bucket_name("grants");
    create_bucket(&c, &b).await;
    put(&c, &b, "k", b"v").await;

    // Grant headers replace the whole ACL.
    c.put_bucket_acl()
        .bucket(&b)
        .grant_read(format!("uri=\"{ALL_USERS}\""))
        .grant_full_control(format!("id=\"{OWNER}\""))
        .grant_write_acp(format!("id=\"{}\"", LIMITED.access_key_id))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bucket_acl(&c, &b).await,
        expect(&[
            (&format!("id:{OWNER}"), "FULL_CONTROL"),
            (&format!("id:{}", LIMITED.access_key_id), "WRITE_ACP"),
            (&format!("uri:{ALL_USERS}"), "READ"),
        ])
    );
    c.create_bucket()
        .bucket(bucket_name("grantcreate"))
        .grant_read(format!("uri=\"{AUTH_USERS}\""))
        .send()
        .await
        .unwrap();

    // A full document through PutObjectAcl.
    let grant =
        |grantee: Grantee, p: Permission| Grant::builder().grantee(grantee).permission(p).build();
    let user = |id: &str| {
        Grantee::builder()
            .r#type(Type::CanonicalUser)
            .id(id)
            .build()
            .unwrap()
    };
    let group = |uri: &str| {
        Grantee::builder()
            .r#type(Type::Group)
            .uri(uri)
            .build()
            .unwrap()
    };
    let policy = |owner: &str, grants: Vec<Grant>| {
        AccessControlPolicy::builder()
            .owner(Owner::builder().id(owner).build())
            .set_grants(Some(grants))
            .build()
    };
    c.put_object_acl()
        .bucket(&b)
        .key("k")
        .access_control_policy(policy(
            OWNER,
            vec![
                grant(user(OWNER), Permission::FullControl),
                grant(group(ALL_USERS), Permission::Read),
                grant(group(AUTH_USERS), Permission::ReadAcp),
                grant(user(READER.access_key_id), Permission::WriteAcp),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_acl(&c, &b, "k").await,
        expect(&[
            (&format!("id:{OWNER}"), "FULL_CONTROL"),
            (&format!("id:{}", READER.access_key_id), "WRITE_ACP"),
            (&format!("uri:{ALL_USERS}"), "READ"),
            (&format!("uri:{AUTH_USERS}"), "READ_ACP"),
        ])
    );

    // Errors.
    assert_s3_err!(
        c.put_object_acl()
            .bucket(&b)
            .key("k")
            .acl(ObjectCannedAcl::PublicRead)
            .grant_read(format!("id=\"{OWNER}\""))
            .send()
            .await,
        400,
        "InvalidRequest"
    );
    assert_s3_err!(
        c.put_object()
            .bucket(&b)
            .key("k2")
            .acl(ObjectCannedAcl::from("public-everything"))
            .body(ByteStream::from_static(b"v"))
            .send()
            .await,
        400,
        "InvalidArgument"
    );
    assert_s3_err!(
        c.put_bucket_acl()
            .bucket(&b)
            .grant_read("emailAddress=\"someone@example.com\"")
            .send()
            .await,
        400,
        "UnresolvableGrantByEmailAddress"
    );
    // A canonical id nobody has: S3's "Invalid id", by header and by document; nothing set.
    let err = assert_s3_err!(
        c.put_object_acl()
            .bucket(&b)
            .key("k")
            .grant_read("id=\"no-such-canonical-id\"")
            .send()
            .await,
        400,
        "InvalidArgument"
    );
    assert_eq!(err.message.as_deref(), Some("Invalid id"));
    let stranger = Grantee::builder()
        .r#type(Type::CanonicalUser)
        .id("no-such-canonical-id")
        .build()
        .unwrap();
    assert_s3_err!(
        c.put_bucket_acl()
            .bucket(&b)
            .access_control_policy(policy(OWNER, vec![grant(stranger, Permission::Read)]))
            .send()
            .await,
        400,
        "InvalidArgument"
    );
    assert!(!object_acl(&c, &b, "k")
        .await
        .iter()
        .any(|(who, _)| who.contains("no-such-canonical-id")));
    let email = Grantee::builder()
        .r#type(Type::AmazonCustomerByEmail)
        .email_address("someone@example.com")
        .build()
        .unwrap();
    assert_s3_err!(
        c.put_object_acl()
            .bucket(&b)
            .key("k")
            .access_control_policy(policy(OWNER, vec![grant(email, Permission::Read)]))
            .send()
            .await,
        400,
        "UnresolvableGrantByEmailAddress"
    );
    assert_s3_err!(
        c.put_object_acl()
            .bucket(&b)
            .key("k")
            .access_control_policy(policy(
                "SOMEONEELSE",
                vec![grant(group(ALL_USERS), Permission::Read)]
            ))
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        c.put_object_acl()
            .bucket(&b)
            .key("k")
            .access_control_policy(policy(
                OWNER,
                vec![grant(group("http://example.com/nobody"), Permission::Read)]
            ))
            .send()
            .await,
        400,
        "MalformedACLError"
    );
    assert_s3_err!(
        c.put_bucket_acl().bucket(&b).send().await,
        400,
        "MissingSecurityHeader"
    );
    // A document that is not one: signed by hand, since the SDK only sends good ones.
    let signer = hansa_conformance::sign::Signer::new(ADMIN);
    let body = b"<AccessControlPolicy><Owner><ID>x</ID></Owner><AccessControlList><Grant>".to_vec();
    let mut req = request("PUT", &gw.url(&format!("{b}?acl")));
    signer.sign(
        &mut req,
        &hansa_conformance::sign::Payload::Bytes(body.clone()),
    );
    let r = send_reqwest(req, body).await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (400, Some("MalformedACLError")),
        "{}",
        r.text()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn ownership_controls_round_trip_and_disable_acls() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let b = bucket_name("own");
    create_bucket(&c, &b).await;
    // A bucket created without x-amz-object-ownership has no controls: ACLs work.
    assert_s3_err!(
        c.get_bucket_ownership_controls().bucket(&b).send().await,
        404,
        "OwnershipControlsNotFoundError"
    );
    c.put_object()
        .bucket(&b)
        .key("was-public")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"v"))
        .send()
        .await
        .unwrap();
    let url = gw.url(&format!("{b}/was-public"));
    assert_eq!(anonymous("GET", &url, b"").await.status, 200);

    let controls = |o: ObjectOwnership| {
        OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(o)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    for o in [
        ObjectOwnership::BucketOwnerPreferred,
        ObjectOwnership::ObjectWriter,
        ObjectOwnership::BucketOwnerEnforced,
    ] {
        c.put_bucket_ownership_controls()
            .bucket(&b)
            .ownership_controls(controls(o.clone()))
            .send()
            .await
            .unwrap();
        let got = c
            .get_bucket_ownership_controls()
            .bucket(&b)
            .send()
            .await
            .unwrap();
        let rules = got.ownership_controls().unwrap().rules();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].object_ownership(), &o);
    }
    // ACLs disabled: the object's old grant no longer counts, and Get*Acl shows the owner only.
    assert_denied(
        &anonymous("GET", &url, b"").await,
        "ACL of a BucketOwnerEnforced bucket",
    );
    assert_eq!(object_acl(&c, &b, "was-public").await, vec![owner_full()]);
    assert_eq!(bucket_acl(&c, &b).await, vec![owner_full()]);
    assert_s3_err!(
        c.put_object()
            .bucket(&b)
            .key("k")
            .acl(ObjectCannedAcl::PublicRead)
            .body(ByteStream::from_static(b"v"))
            .send()
            .await,
        400,
        "AccessControlListNotSupported"
    );
    assert_s3_err!(
        c.put_bucket_acl()
            .bucket(&b)
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await,
        400,
        "AccessControlListNotSupported"
    );
    assert_s3_err!(
        c.put_object_acl()
            .bucket(&b)
            .key("was-public")
            .acl(ObjectCannedAcl::AuthenticatedRead)
            .send()
            .await,
        400,
        "AccessControlListNotSupported"
    );
    // Owner-full-control ACLs are still accepted.
    c.put_object()
        .bucket(&b)
        .key("k")
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .body(ByteStream::from_static(b"v"))
        .send()
        .await
        .unwrap();
    c.put_bucket_acl()
        .bucket(&b)
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();

    c.delete_bucket_ownership_controls()
        .bucket(&b)
        .send()
        .await
        .unwrap();
    assert_s3_err!(
        c.get_bucket_ownership_controls().bucket(&b).send().await,
        404,
        "OwnershipControlsNotFoundError"
    );
    // The object's ACL was kept: enabling ACLs again brings its grant back.
    assert_eq!(anonymous("GET", &url, b"").await.status, 200);

    // x-amz-object-ownership on CreateBucket, and ACLs that contradict it.
    let enforced = bucket_name("enforced");
    c.create_bucket()
        .bucket(&enforced)
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .send()
        .await
        .unwrap();
    let got = c
        .get_bucket_ownership_controls()
        .bucket(&enforced)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.ownership_controls().unwrap().rules()[0].object_ownership(),
        &ObjectOwnership::BucketOwnerEnforced
    );
    assert_s3_err!(
        c.create_bucket()
            .bucket(bucket_name("contradiction"))
            .object_ownership(ObjectOwnership::BucketOwnerEnforced)
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await,
        400,
        "InvalidBucketAclWithObjectOwnership"
    );
    // A public bucket ACL has to go before ACLs can be disabled.
    let public = bucket_name("public");
    c.create_bucket()
        .bucket(&public)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert_s3_err!(
        c.put_bucket_ownership_controls()
            .bucket(&public)
            .ownership_controls(controls(ObjectOwnership::BucketOwnerEnforced))
            .send()
            .await,
        400,
        "InvalidBucketAclWithObjectOwnership"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_public_read_bucket_served_to_an_anonymous_client_while_its_private_sibling_refuses() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let public = bucket_name("public");
    let private = bucket_name("private");
    c.create_bucket()
        .bucket(&public)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    create_bucket(&c, &private).await;
    put(&c, &public, "hello.txt", b"hello").await;
    put(&c, &private, "hello.txt", b"secret").await;
    // Bucket READ lists; the object itself needs its own grant (S3: bucket ACLs do not reach
    // objects), so the public bucket's object is written public-read.
    c.put_object_acl()
        .bucket(&public)
        .key("hello.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();

    let r = anonymous("GET", &gw.url(&format!("{public}?list-type=2")), b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<Key>hello.txt</Key>"), "{}", r.text());
    let r = anonymous("GET", &gw.url(&public), b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<Key>hello.txt</Key>"));
    assert_eq!(anonymous("HEAD", &gw.url(&public), b"").await.status, 200);
    let r = anonymous("GET", &gw.url(&format!("{public}/hello.txt")), b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()));
    // A missing key in a bucket the client may list is NoSuchKey.
    let r = anonymous("GET", &gw.url(&format!("{public}/missing")), b"").await;
    assert_eq!((r.status, r.code().as_deref()), (404, Some("NoSuchKey")));
    // READ is not READ_ACP, nor WRITE.
    assert_denied(
        &anonymous("GET", &gw.url(&format!("{public}?acl")), b"").await,
        "anonymous GetBucketAcl",
    );
    assert_denied(
        &anonymous("PUT", &gw.url(&format!("{public}/new")), b"x").await,
        "anonymous PUT into public-read",
    );

    // The private sibling refuses all of it, with S3's XML error.
    for path in [
        format!("{private}?list-type=2"),
        private.clone(),
        format!("{private}/hello.txt"),
        format!("{private}/missing"),
    ] {
        let r = anonymous("GET", &gw.url(&path), b"").await;
        assert_denied(&r, &path);
        assert!(r.text().contains("<Error>"), "{}", r.text());
    }
    let r = anonymous("HEAD", &gw.url(&format!("{private}/hello.txt")), b"").await;
    assert_eq!((r.status, r.body.len()), (403, 0));

    // A public-read object in a private bucket is readable; its neighbour is not.
    put(&c, &private, "shared.txt", b"shared").await;
    c.put_object_acl()
        .bucket(&private)
        .key("shared.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let r = anonymous("GET", &gw.url(&format!("{private}/shared.txt")), b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"shared".as_slice()));
    assert_eq!(
        anonymous("HEAD", &gw.url(&format!("{private}/shared.txt")), b"")
            .await
            .status,
        200
    );
    assert_denied(
        &anonymous("GET", &gw.url(&format!("{private}/hello.txt")), b"").await,
        "neighbour",
    );
    assert_denied(
        &anonymous("GET", &gw.url(&format!("{private}/shared.txt?acl")), b"").await,
        "object READ is not READ_ACP",
    );

    // Anonymous ListBuckets is refused.
    assert_denied(&anonymous("GET", &gw.url(""), b"").await, "ListBuckets");

    // A bad signature on a public bucket stays a bad signature.
    let bad = gw.client_with_secret(ADMIN.access_key_id, "not-the-secret-at-all-0123456789");
    assert_s3_err!(
        bad.get_object()
            .bucket(&public)
            .key("hello.txt")
            .send()
            .await,
        403,
        "SignatureDoesNotMatch"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn public_read_write_takes_anonymous_writes_and_grants_reach_scoped_keys() {
    let gw = TestGateway::start().await;
    let c = gw.client();
    let open = bucket_name("open");
    c.create_bucket()
        .bucket(&open)
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .unwrap();
    let r = anonymous("PUT", &gw.url(&format!("{open}/dropped")), b"anon").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(hansa_conformance::get(&c, &open, "dropped").await, b"anon");
    // ObjectWriter (no controls): the anonymous writer owns what it wrote, as on S3.
    let acl = c
        .get_object_acl()
        .bucket(&open)
        .key("dropped")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some("anonymous"));
    // Its object is private to that writer: the anonymous client cannot read it back.
    assert_denied(
        &anonymous("GET", &gw.url(&format!("{open}/dropped")), b"").await,
        "private object in a public-read-write bucket",
    );
    // An unsigned body still proves what it declares: a payload hash is checked, unsigned
    // aws-chunked is decoded, signed chunks cannot be verified without a key.
    let mut req = request("PUT", &gw.url(&format!("{open}/hashed")));
    req.headers_mut().insert(
        "x-amz-content-sha256",
        http::HeaderValue::from_str(&hansa_conformance::sha256_hex(b"other")).unwrap(),
    );
    let r = send_reqwest(req, b"body".to_vec()).await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (400, Some("XAmzContentSHA256Mismatch")),
        "{}",
        r.text()
    );
    let mut req = request("PUT", &gw.url(&format!("{open}/chunked")));
    for (k, v) in [
        ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "5"),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
    ] {
        req.headers_mut()
            .insert(k, http::HeaderValue::from_static(v));
    }
    let crc = hansa_conformance::sign::crc32_b64(b"hello");
    let body = format!("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n");
    let r = send_reqwest(req, body.into_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(hansa_conformance::get(&c, &open, "chunked").await, b"hello");
    let mut req = request("PUT", &gw.url(&format!("{open}/signed-chunks")));
    req.headers_mut().insert(
        "x-amz-content-sha256",
        http::HeaderValue::from_static("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
    );
    assert_denied(
        &send_reqwest(req, b"x".to_vec()).await,
        "signed chunks, unsigned",
    );
    // A bucket that does not exist is not told apart from one that refuses.
    assert_denied(
        &anonymous("GET", &gw.url("no-such-bucket-here"), b"").await,
        "missing bucket",
    );

    // But it can delete, which bucket WRITE grants.
    assert_eq!(
        anonymous("DELETE", &gw.url(&format!("{open}/dropped")), b"")
            .await
            .status,
        204
    );

    // Under BucketOwnerPreferred the bucket owner owns what is written with
    // bucket-owner-full-control.
    let preferred = bucket_name("preferred");
    c.create_bucket()
        .bucket(&preferred)
        .acl(BucketCannedAcl::PublicReadWrite)
        .object_ownership(ObjectOwnership::BucketOwnerPreferred)
        .send()
        .await
        .unwrap();
    let mut req = request("PUT", &gw.url(&format!("{preferred}/given")));
    req.headers_mut().insert(
        "x-amz-acl",
        http::HeaderValue::from_static("bucket-owner-full-control"),
    );
    assert_eq!(send_reqwest(req, b"g".to_vec()).await.status, 200);
    let acl = c
        .get_object_acl()
        .bucket(&preferred)
        .key("given")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(OWNER));

    // A credential scoped to another bucket gets what AuthenticatedUsers is granted.
    let limited = gw.client_for(LIMITED);
    let authread = bucket_name("authread");
    c.create_bucket()
        .bucket(&authread)
        .acl(BucketCannedAcl::AuthenticatedRead)
        .send()
        .await
        .unwrap();
    limited
        .list_objects_v2()
        .bucket(&authread)
        .send()
        .await
        .unwrap();
    assert_denied(
        &anonymous("GET", &gw.url(&authread), b"").await,
        "authenticated-read to anonymous",
    );
    let private = bucket_name("closed");
    create_bucket(&c, &private).await;
    assert_s3_err!(
        limited.list_objects_v2().bucket(&private).send().await,
        403,
        "AccessDenied"
    );
    // A grant to a key's id (its canonical id) reaches it outside its scope, for that object.
    put(&c, &private, "for-limited", b"granted").await;
    put(&c, &private, "not-for-limited", b"no").await;
    c.put_object_acl()
        .bucket(&private)
        .key("for-limited")
        .grant_read(format!("id=\"{}\"", LIMITED.access_key_id))
        .send()
        .await
        .unwrap();
    assert_eq!(
        hansa_conformance::get(&limited, &private, "for-limited").await,
        b"granted"
    );
    assert_s3_err!(
        limited
            .get_object()
            .bucket(&private)
            .key("not-for-limited")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_denied(
        &anonymous("GET", &gw.url(&format!("{private}/for-limited")), b"").await,
        "a grant to one key is not public",
    );

    // A read-only credential never writes, whatever a grant says.
    let reader = gw.client_for(READER);
    assert_s3_err!(
        reader
            .put_object()
            .bucket(&open)
            .key("r")
            .body(ByteStream::from_static(b"r"))
            .send()
            .await,
        403,
        "AccessDenied"
    );
    gw.shutdown().await;
}

/// Block Public Access as S3 applies it to ACLs: `IgnorePublicAcls` makes public grants count
/// for nothing (they stay listed), `BlockPublicAcls` refuses requests that set one, and
/// `RestrictPublicBuckets` keeps a public policy from letting anonymous clients in.
#[tokio::test]
async fn public_access_block_governs_public_acls_and_policies() {
    use aws_sdk_s3::types::PublicAccessBlockConfiguration;
    let gw = TestGateway::start().await;
    let c = gw.client();
    let b = bucket_name("pab");
    create_bucket(&c, &b).await;
    c.put_object()
        .bucket(&b)
        .key("open.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"open"))
        .send()
        .await
        .expect("public-read PUT");
    let url = gw.url(&format!("{b}/open.txt"));
    assert_eq!(anonymous("GET", &url, b"").await.status, 200);
    let set_block = |ignore: bool, block_acls: bool, restrict: bool| {
        let (c, b) = (c.clone(), b.clone());
        async move {
            c.put_public_access_block()
                .bucket(&b)
                .public_access_block_configuration(
                    PublicAccessBlockConfiguration::builder()
                        .ignore_public_acls(ignore)
                        .block_public_acls(block_acls)
                        .restrict_public_buckets(restrict)
                        .build(),
                )
                .send()
                .await
                .expect("put public access block")
        }
    };

    set_block(true, false, false).await;
    assert_denied(&anonymous("GET", &url, b"").await, "IgnorePublicAcls");
    let listed = object_acl(&c, &b, "open.txt").await;
    assert!(
        listed.contains(&(format!("uri:{ALL_USERS}"), "READ".to_string())),
        "the ignored grant stays listed: {listed:?}"
    );

    set_block(false, true, false).await;
    assert_eq!(
        anonymous("GET", &url, b"").await.status,
        200,
        "grants count again"
    );
    let refused = c
        .put_object()
        .bucket(&b)
        .key("new.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"new"))
        .send()
        .await;
    assert_s3_err!(refused, 403, "AccessDenied");
    let refused = c
        .put_object_acl()
        .bucket(&b)
        .key("open.txt")
        .grant_read(format!("uri=\"{AUTH_USERS}\""))
        .send()
        .await;
    assert_s3_err!(refused, 403, "AccessDenied");
    let refused = c
        .put_bucket_acl()
        .bucket(&b)
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await;
    assert_s3_err!(refused, 403, "AccessDenied");
    put(&c, &b, "private.txt", b"fine").await;
    // The refused PUT stored nothing.
    assert_s3_err!(
        c.get_object().bucket(&b).key("new.txt").send().await,
        404,
        "NoSuchKey"
    );

    // A public policy lets anonymous clients read, until RestrictPublicBuckets.
    set_block(false, false, false).await;
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/*"}}]}}"#
    );
    c.put_bucket_policy()
        .bucket(&b)
        .policy(policy)
        .send()
        .await
        .expect("public policy");
    let private_url = gw.url(&format!("{b}/private.txt"));
    let r = anonymous("GET", &private_url, b"").await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"fine".as_slice()));
    set_block(false, false, true).await;
    assert_denied(
        &anonymous("GET", &private_url, b"").await,
        "RestrictPublicBuckets",
    );
    gw.shutdown().await;
}
