//! Scoped credentials against every operation (issue 13): a key limited to one bucket and
//! read-only, and a key limited to one bucket with writes, are refused beyond their grant with
//! 403 AccessDenied and change nothing; within it they work.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use hansa_conformance::{
    assert_s3_err, assert_s3_status, create_bucket, gateway_state, get, put, GatewayState, Key,
    Options, TestGateway, LIMITED, LIMITED_BUCKET,
};

/// Read-only, and only [`MINE`].
const SCOPED_READER: Key = Key {
    access_key_id: "HANSATESTSCOPEDREADER",
    secret_access_key: "scoped-reader-secret-0123456789abcdefgh",
};
const MINE: &str = "scoped-mine";
const THEIRS: &str = "scoped-theirs";

async fn gateway() -> TestGateway {
    TestGateway::start_with(Options {
        extra_toml: format!(
            "[[credential]]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nbuckets = [\"{MINE}\"]\nread_only = true\n",
            SCOPED_READER.access_key_id, SCOPED_READER.secret_access_key
        ),
        ..Default::default()
    })
    .await
}

/// Objects `obj` in each bucket and an upload with one part at `mp` in each, made by the admin.
/// Returns the upload ids (mine, theirs) and the ETag of part 1 in each.
async fn populate(s3: &aws_sdk_s3::Client, buckets: [&str; 2]) -> Vec<(String, String)> {
    let mut uploads = Vec::new();
    for bucket in buckets {
        create_bucket(s3, bucket).await;
        put(s3, bucket, "obj", format!("{bucket} object").as_bytes()).await;
        let upload_id = s3
            .create_multipart_upload()
            .bucket(bucket)
            .key("mp")
            .send()
            .await
            .expect("create upload")
            .upload_id()
            .expect("id")
            .to_string();
        let etag = s3
            .upload_part()
            .bucket(bucket)
            .key("mp")
            .upload_id(&upload_id)
            .part_number(1)
            .body(b"part one".to_vec().into())
            .send()
            .await
            .expect("part")
            .e_tag()
            .expect("etag")
            .to_string();
        uploads.push((upload_id, etag));
    }
    uploads
}

fn one_part(etag: &str) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
        .build()
}

fn delete_doc(key: &str) -> Delete {
    Delete::builder()
        .objects(ObjectIdentifier::builder().key(key).build().expect("id"))
        .build()
        .expect("delete")
}

/// Runs `$call`, expects 403 AccessDenied (status only for HEAD), and that nothing changed.
macro_rules! refused {
    ($admin:expr, $before:expr, $what:expr, head: $call:expr) => {{
        assert_s3_status!($call, 403);
        assert_eq!(
            &gateway_state($admin).await,
            $before,
            "{} changed something",
            $what
        );
    }};
    ($admin:expr, $before:expr, $what:expr, $call:expr) => {{
        assert_s3_err!($call, 403, "AccessDenied");
        assert_eq!(
            &gateway_state($admin).await,
            $before,
            "{} changed something",
            $what
        );
    }};
}

/// What no key scoped to `mine` may do to [`THEIRS`]: copy between the two buckets either way,
/// delete it or its objects, complete or abort its upload. Each is refused and changes nothing.
async fn refused_across_buckets(
    admin: &aws_sdk_s3::Client,
    st: &GatewayState,
    key: &aws_sdk_s3::Client,
    mine: &str,
    (their_upload, their_etag): (&str, &str),
) {
    refused!(
        admin,
        st,
        "CopyObject (from theirs into mine)",
        key.copy_object()
            .copy_source(format!("{THEIRS}/obj"))
            .bucket(mine)
            .key("stolen")
            .send()
            .await
    );
    refused!(
        admin,
        st,
        "CopyObject (from mine into theirs)",
        key.copy_object()
            .copy_source(format!("{mine}/obj"))
            .bucket(THEIRS)
            .key("pushed")
            .send()
            .await
    );
    refused!(
        admin,
        st,
        "DeleteBucket (theirs)",
        key.delete_bucket().bucket(THEIRS).send().await
    );
    refused!(
        admin,
        st,
        "DeleteObjects (theirs)",
        key.delete_objects()
            .bucket(THEIRS)
            .delete(delete_doc("obj"))
            .send()
            .await
    );
    refused!(
        admin,
        st,
        "CompleteMultipartUpload (theirs)",
        key.complete_multipart_upload()
            .bucket(THEIRS)
            .key("mp")
            .upload_id(their_upload)
            .multipart_upload(one_part(their_etag))
            .send()
            .await
    );
    refused!(
        admin,
        st,
        "AbortMultipartUpload (theirs)",
        key.abort_multipart_upload()
            .bucket(THEIRS)
            .key("mp")
            .upload_id(their_upload)
            .send()
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_key_for_one_bucket() {
    let gw = gateway().await;
    let admin = gw.client();
    let uploads = populate(&admin, [MINE, THEIRS]).await;
    let (my_upload, my_etag) = uploads[0].clone();
    let (their_upload, their_etag) = uploads[1].clone();
    let key = gw.client_for(SCOPED_READER);
    let before: GatewayState = gateway_state(&admin).await;
    let st = &before;

    // Within its grant: every read of its own bucket.
    let listed = key.list_buckets().send().await.expect("list buckets");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(
        names,
        vec![MINE],
        "ListBuckets shows only the granted bucket"
    );
    key.head_bucket()
        .bucket(MINE)
        .send()
        .await
        .expect("head bucket");
    key.get_bucket_location()
        .bucket(MINE)
        .send()
        .await
        .expect("location");
    key.get_bucket_versioning()
        .bucket(MINE)
        .send()
        .await
        .expect("versioning");
    key.get_bucket_acl()
        .bucket(MINE)
        .send()
        .await
        .expect("bucket acl");
    let v1 = key
        .list_objects()
        .bucket(MINE)
        .send()
        .await
        .expect("list v1");
    assert_eq!(v1.contents().len(), 1);
    let v2 = key
        .list_objects_v2()
        .bucket(MINE)
        .send()
        .await
        .expect("list v2");
    assert_eq!(v2.contents().len(), 1);
    let ups = key
        .list_multipart_uploads()
        .bucket(MINE)
        .send()
        .await
        .expect("list uploads");
    assert_eq!(ups.uploads().len(), 1);
    assert_eq!(
        get(&key, MINE, "obj").await,
        format!("{MINE} object").as_bytes()
    );
    key.head_object()
        .bucket(MINE)
        .key("obj")
        .send()
        .await
        .expect("head");
    key.get_object_acl()
        .bucket(MINE)
        .key("obj")
        .send()
        .await
        .expect("acl");
    let parts = key
        .list_parts()
        .bucket(MINE)
        .key("mp")
        .upload_id(&my_upload)
        .send()
        .await
        .expect("list parts");
    assert_eq!(parts.parts().len(), 1);
    assert_eq!(&gateway_state(&admin).await, st);

    // Every write, in its own bucket: refused.
    refused!(
        &admin,
        st,
        "CreateBucket",
        key.create_bucket().bucket("scoped-new").send().await
    );
    refused!(
        &admin,
        st,
        "CreateBucket (own name)",
        key.create_bucket().bucket(MINE).send().await
    );
    refused!(
        &admin,
        st,
        "DeleteBucket",
        key.delete_bucket().bucket(MINE).send().await
    );
    refused!(
        &admin,
        st,
        "PutBucketAcl",
        key.put_bucket_acl()
            .bucket(MINE)
            .acl(aws_sdk_s3::types::BucketCannedAcl::Private)
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "PutObject",
        key.put_object()
            .bucket(MINE)
            .key("new")
            .body(b"x".to_vec().into())
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "PutObject (overwrite)",
        key.put_object()
            .bucket(MINE)
            .key("obj")
            .body(b"x".to_vec().into())
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "CopyObject (within)",
        key.copy_object()
            .copy_source(format!("{MINE}/obj"))
            .bucket(MINE)
            .key("copy")
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "DeleteObject",
        key.delete_object().bucket(MINE).key("obj").send().await
    );
    refused!(
        &admin,
        st,
        "DeleteObjects",
        key.delete_objects()
            .bucket(MINE)
            .delete(delete_doc("obj"))
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "PutObjectAcl",
        key.put_object_acl()
            .bucket(MINE)
            .key("obj")
            .acl(aws_sdk_s3::types::ObjectCannedAcl::Private)
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "CreateMultipartUpload",
        key.create_multipart_upload()
            .bucket(MINE)
            .key("mp2")
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "UploadPart",
        key.upload_part()
            .bucket(MINE)
            .key("mp")
            .upload_id(&my_upload)
            .part_number(2)
            .body(b"x".to_vec().into())
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "UploadPartCopy (from theirs)",
        key.upload_part_copy()
            .bucket(MINE)
            .key("mp")
            .upload_id(&my_upload)
            .part_number(2)
            .copy_source(format!("{THEIRS}/obj"))
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "UploadPartCopy (within)",
        key.upload_part_copy()
            .bucket(MINE)
            .key("mp")
            .upload_id(&my_upload)
            .part_number(2)
            .copy_source(format!("{MINE}/obj"))
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "CompleteMultipartUpload",
        key.complete_multipart_upload()
            .bucket(MINE)
            .key("mp")
            .upload_id(&my_upload)
            .multipart_upload(one_part(&my_etag))
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "AbortMultipartUpload",
        key.abort_multipart_upload()
            .bucket(MINE)
            .key("mp")
            .upload_id(&my_upload)
            .send()
            .await
    );

    // Every read of another bucket: refused, whether it exists or not.
    for bucket in [THEIRS, "scoped-nonexistent"] {
        refused!(&admin, st, "HeadBucket", head: key.head_bucket().bucket(bucket).send().await);
        refused!(
            &admin,
            st,
            "GetBucketLocation",
            key.get_bucket_location().bucket(bucket).send().await
        );
        refused!(
            &admin,
            st,
            "GetBucketVersioning",
            key.get_bucket_versioning().bucket(bucket).send().await
        );
        refused!(
            &admin,
            st,
            "GetBucketAcl",
            key.get_bucket_acl().bucket(bucket).send().await
        );
        refused!(
            &admin,
            st,
            "ListObjects",
            key.list_objects().bucket(bucket).send().await
        );
        refused!(
            &admin,
            st,
            "ListObjectsV2",
            key.list_objects_v2().bucket(bucket).send().await
        );
        refused!(
            &admin,
            st,
            "ListMultipartUploads",
            key.list_multipart_uploads().bucket(bucket).send().await
        );
        refused!(
            &admin,
            st,
            "GetObject",
            key.get_object().bucket(bucket).key("obj").send().await
        );
        refused!(&admin, st, "HeadObject", head: key.head_object().bucket(bucket).key("obj").send().await);
        refused!(
            &admin,
            st,
            "GetObjectAcl",
            key.get_object_acl().bucket(bucket).key("obj").send().await
        );
        refused!(
            &admin,
            st,
            "ListParts",
            key.list_parts()
                .bucket(bucket)
                .key("mp")
                .upload_id(&their_upload)
                .send()
                .await
        );
    }
    refused_across_buckets(&admin, st, &key, MINE, (&their_upload, &their_etag)).await;
    // And every write there.
    refused!(
        &admin,
        st,
        "PutObject (theirs)",
        key.put_object()
            .bucket(THEIRS)
            .key("new")
            .body(b"x".to_vec().into())
            .send()
            .await
    );
    gw.shutdown().await;
}

/// A read-write key for one bucket: everything works in its bucket, nothing crosses to another,
/// in either direction of a copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writable_key_for_one_bucket_stays_in_it() {
    let gw = gateway().await;
    let admin = gw.client();
    let uploads = populate(&admin, [LIMITED_BUCKET, THEIRS]).await;
    let (my_upload, _) = uploads[0].clone();
    let (their_upload, their_etag) = uploads[1].clone();
    let key = gw.client_for(LIMITED);
    let before = gateway_state(&admin).await;
    let st = &before;

    refused_across_buckets(
        &admin,
        st,
        &key,
        LIMITED_BUCKET,
        (&their_upload, &their_etag),
    )
    .await;
    refused!(
        &admin,
        st,
        "UploadPartCopy (from theirs into my upload)",
        key.upload_part_copy()
            .bucket(LIMITED_BUCKET)
            .key("mp")
            .upload_id(&my_upload)
            .part_number(2)
            .copy_source(format!("{THEIRS}/obj"))
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "UploadPartCopy (from mine into their upload)",
        key.upload_part_copy()
            .bucket(THEIRS)
            .key("mp")
            .upload_id(&their_upload)
            .part_number(2)
            .copy_source(format!("{LIMITED_BUCKET}/obj"))
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "UploadPart (their upload)",
        key.upload_part()
            .bucket(THEIRS)
            .key("mp")
            .upload_id(&their_upload)
            .part_number(2)
            .body(b"x".to_vec().into())
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "CreateMultipartUpload (theirs)",
        key.create_multipart_upload()
            .bucket(THEIRS)
            .key("mp2")
            .send()
            .await
    );
    refused!(
        &admin,
        st,
        "CreateBucket (other name)",
        key.create_bucket().bucket("limited-other").send().await
    );
    refused!(
        &admin,
        st,
        "ListObjectsV2 (theirs)",
        key.list_objects_v2().bucket(THEIRS).send().await
    );
    refused!(
        &admin,
        st,
        "ListMultipartUploads (theirs)",
        key.list_multipart_uploads().bucket(THEIRS).send().await
    );

    // Within its bucket: copies, part copies, multipart and batch delete work.
    let listed = key.list_buckets().send().await.expect("list buckets");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, vec![LIMITED_BUCKET]);
    key.copy_object()
        .copy_source(format!("{LIMITED_BUCKET}/obj"))
        .bucket(LIMITED_BUCKET)
        .key("copy")
        .send()
        .await
        .expect("copy within");
    let part2 = key
        .upload_part_copy()
        .bucket(LIMITED_BUCKET)
        .key("mp")
        .upload_id(&my_upload)
        .part_number(2)
        .copy_source(format!("{LIMITED_BUCKET}/obj"))
        .send()
        .await
        .expect("part copy within");
    assert!(part2.copy_part_result().and_then(|r| r.e_tag()).is_some());
    key.abort_multipart_upload()
        .bucket(LIMITED_BUCKET)
        .key("mp")
        .upload_id(&my_upload)
        .send()
        .await
        .expect("abort own upload");
    key.delete_objects()
        .bucket(LIMITED_BUCKET)
        .delete(delete_doc("copy"))
        .send()
        .await
        .expect("batch delete within");
    let after = gateway_state(&admin).await;
    assert_eq!(
        after.objects, before.objects,
        "copy then delete of the copy leaves the objects as they were"
    );
    assert!(!after.uploads.iter().any(|u| u.upload_id == my_upload));
    assert!(after.uploads.iter().any(|u| u.upload_id == their_upload));
    gw.shutdown().await;
}
