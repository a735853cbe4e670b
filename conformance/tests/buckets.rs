//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
//! GetBucketVersioning, GetBucketAcl / GetObjectAcl, canned ACL `private`.

use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, ObjectCannedAcl, Permission,
};
use hansa_conformance::{assert_s3_err, assert_s3_status, create_bucket, put, TestGateway};

#[tokio::test]
async fn bucket_lifecycle() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    let before = s3.list_buckets().send().await.expect("list buckets");
    assert!(before.buckets().is_empty(), "fresh gateway has no buckets");

    let created = s3
        .create_bucket()
        .bucket("life-cycle")
        .send()
        .await
        .expect("create");
    // S3 answers CreateBucket with the bucket's path in Location.
    assert_eq!(created.location(), Some("/life-cycle"));
    create_bucket(&s3, "another-one").await;

    let listed = s3.list_buckets().send().await.expect("list buckets");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, vec!["another-one", "life-cycle"], "sorted by name");
    for b in listed.buckets() {
        assert!(b.creation_date().is_some(), "CreationDate present");
    }
    assert!(
        listed.owner().and_then(|o| o.id()).is_some(),
        "Owner/ID present"
    );

    let head = s3
        .head_bucket()
        .bucket("life-cycle")
        .send()
        .await
        .expect("head");
    assert_eq!(head.bucket_region(), Some("us-east-1"));

    let deleted = s3.delete_bucket().bucket("life-cycle").send().await;
    assert!(deleted.is_ok(), "delete empty bucket: {deleted:?}");
    assert_s3_status!(s3.head_bucket().bucket("life-cycle").send().await, 404);
    let listed = s3.list_buckets().send().await.expect("list buckets");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, vec!["another-one"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn delete_bucket_status_is_204() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "to-delete").await;
    let resp = hansa_conformance::raw::send_reqwest(
        {
            let mut r = hansa_conformance::raw::request("DELETE", &gw.url("to-delete"));
            hansa_conformance::sign::Signer::new(hansa_conformance::ADMIN)
                .sign(&mut r, &hansa_conformance::sign::Payload::Bytes(Vec::new()));
            r
        },
        Vec::new(),
    )
    .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn create_bucket_location_constraint() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    // The gateway's own region is accepted as a constraint.
    s3.create_bucket()
        .bucket("in-region")
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from("us-east-1"))
                .build(),
        )
        .send()
        .await
        .expect("create with LocationConstraint us-east-1");
    s3.head_bucket()
        .bucket("in-region")
        .send()
        .await
        .expect("exists");

    // Another region cannot be served by this endpoint.
    let e = assert_s3_err!(
        s3.create_bucket()
            .bucket("other-region")
            .create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::EuWest1)
                    .build(),
            )
            .send()
            .await,
        400,
        "IllegalLocationConstraintException"
    );
    assert!(e.message.is_some());
    assert_s3_status!(s3.head_bucket().bucket("other-region").send().await, 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn create_existing_bucket_is_already_owned_by_you() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "twice").await;
    put(&s3, "twice", "k", b"kept").await;
    assert_s3_err!(
        s3.create_bucket().bucket("twice").send().await,
        409,
        "BucketAlreadyOwnedByYou"
    );
    // The existing bucket and its content are untouched.
    assert_eq!(hansa_conformance::get(&s3, "twice", "k").await, b"kept");
    gw.shutdown().await;
}

#[tokio::test]
async fn invalid_bucket_names() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    let long = "a".repeat(64);
    let mut accepted = Vec::new();
    for name in [
        "ab",
        long.as_str(),
        "UpperCase",
        "under_score",
        "-leading-dash",
        "trailing-dash-",
        ".leading-dot",
        "double..dot",
        "192.168.5.4",
        "xn--prefixed",
        "suffixed-s3alias",
    ] {
        match s3.create_bucket().bucket(name).send().await {
            Ok(_) => accepted.push(name.to_string()),
            Err(e) => {
                let got = hansa_conformance::s3_err(&e);
                assert_eq!(
                    (got.status, got.code.as_deref()),
                    (400, Some("InvalidBucketName")),
                    "{name}"
                );
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "invalid bucket names accepted: {accepted:?}"
    );
    // Boundary cases that are valid.
    let max = "b".repeat(63);
    for name in ["abc", max.as_str(), "with.dots.ok", "0-digits-9"] {
        s3.create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} is a valid bucket name: {e:?}"));
    }
    let listed = s3.list_buckets().send().await.expect("list");
    assert_eq!(
        listed.buckets().len(),
        4,
        "only the valid names were created"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn head_and_delete_missing_bucket() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    assert_s3_status!(s3.head_bucket().bucket("no-such-bucket").send().await, 404);
    assert_s3_err!(
        s3.delete_bucket().bucket("no-such-bucket").send().await,
        404,
        "NoSuchBucket"
    );
    assert_s3_err!(
        s3.get_bucket_location()
            .bucket("no-such-bucket")
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    assert_s3_err!(
        s3.get_bucket_versioning()
            .bucket("no-such-bucket")
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    assert_s3_err!(
        s3.get_bucket_acl().bucket("no-such-bucket").send().await,
        404,
        "NoSuchBucket"
    );
    assert_s3_err!(
        s3.list_objects_v2().bucket("no-such-bucket").send().await,
        404,
        "NoSuchBucket"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn delete_non_empty_bucket() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "full").await;
    put(&s3, "full", "dir/obj", b"x").await;
    assert_s3_err!(
        s3.delete_bucket().bucket("full").send().await,
        409,
        "BucketNotEmpty"
    );
    s3.head_bucket()
        .bucket("full")
        .send()
        .await
        .expect("still there");
    assert_eq!(hansa_conformance::get(&s3, "full", "dir/obj").await, b"x");
    s3.delete_object()
        .bucket("full")
        .key("dir/obj")
        .send()
        .await
        .expect("delete object");
    s3.delete_bucket()
        .bucket("full")
        .send()
        .await
        .expect("now empty");
    assert_s3_status!(s3.head_bucket().bucket("full").send().await, 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn get_bucket_location_us_east_1_is_empty() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "where").await;
    let loc = s3
        .get_bucket_location()
        .bucket("where")
        .send()
        .await
        .expect("location");
    // Buckets in us-east-1 have a null/empty LocationConstraint.
    let c = loc.location_constraint().map(|c| c.as_str().to_string());
    assert!(
        c.as_deref().is_none_or(str::is_empty),
        "us-east-1 is reported as an empty constraint, got {c:?}"
    );
    // And the raw document is a LocationConstraint element.
    let mut req = hansa_conformance::raw::request("GET", &gw.url("where?location"));
    hansa_conformance::sign::Signer::new(hansa_conformance::ADMIN).sign(
        &mut req,
        &hansa_conformance::sign::Payload::Bytes(Vec::new()),
    );
    let resp = hansa_conformance::raw::send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.text().contains("LocationConstraint"),
        "{}",
        resp.text()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn get_bucket_versioning_not_enabled() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "versions").await;
    let v = s3
        .get_bucket_versioning()
        .bucket("versions")
        .send()
        .await
        .expect("versioning");
    // Never enabled: no Status, no MFADelete.
    assert_eq!(v.status(), None);
    assert_eq!(v.mfa_delete(), None);
    gw.shutdown().await;
}

#[tokio::test]
async fn acls_report_owner_full_control() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "acl-bucket").await;
    let acl = s3
        .get_bucket_acl()
        .bucket("acl-bucket")
        .send()
        .await
        .expect("bucket acl");
    let owner_id = acl
        .owner()
        .and_then(|o| o.id())
        .expect("owner id")
        .to_string();
    assert_eq!(acl.grants().len(), 1, "{acl:?}");
    let grant = &acl.grants()[0];
    assert_eq!(grant.permission(), Some(&Permission::FullControl));
    assert_eq!(
        grant.grantee().and_then(|g| g.id()),
        Some(owner_id.as_str()),
        "the owner is the grantee"
    );

    s3.put_object()
        .bucket("acl-bucket")
        .key("private-object")
        .acl(ObjectCannedAcl::Private)
        .body(b"secret".to_vec().into())
        .send()
        .await
        .expect("x-amz-acl: private is accepted");
    let acl = s3
        .get_object_acl()
        .bucket("acl-bucket")
        .key("private-object")
        .send()
        .await
        .expect("object acl");
    assert!(acl.owner().and_then(|o| o.id()).is_some());
    assert_eq!(acl.grants().len(), 1, "{acl:?}");
    assert_eq!(acl.grants()[0].permission(), Some(&Permission::FullControl));
    assert_eq!(
        hansa_conformance::get(&s3, "acl-bucket", "private-object").await,
        b"secret"
    );

    assert_s3_err!(
        s3.get_object_acl()
            .bucket("acl-bucket")
            .key("missing")
            .send()
            .await,
        404,
        "NoSuchKey"
    );
    // CreateBucket with the canned ACL private is accepted as well.
    s3.create_bucket()
        .bucket("acl-private")
        .acl(aws_sdk_s3::types::BucketCannedAcl::Private)
        .send()
        .await
        .expect("create with x-amz-acl: private");
    gw.shutdown().await;
}
