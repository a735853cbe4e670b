//! Multipart uploads (issue 4), against S3's documented behaviour: CreateMultipartUpload,
//! UploadPart, UploadPartCopy, CompleteMultipartUpload, AbortMultipartUpload, ListParts,
//! ListMultipartUploads; GetObject / HeadObject with partNumber; the multipart ETag and
//! composite / full-object checksums; EntityTooSmall, InvalidPart, InvalidPartOrder,
//! NoSuchUpload, InvalidArgument, InvalidPartNumber, PreconditionFailed, MalformedXML;
//! staged parts removed from every backend; restarts between parts; abandoned uploads expire.
//!
//! Every part but the last is 5 MiB (S3's minimum), and few parts are used, so each test
//! moves at most a few tens of MiB.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};
use hansa_backends::Fault;
use hansa_conformance::{
    assert_s3_err, assert_s3_status, create_bucket, encode_key, get, list_all_keys, md5_hex, put,
    random_bytes, sha256_hex, Options, TestGateway, READER,
};

const MIB: usize = 1024 * 1024;
/// S3's minimum size of every part but the last.
const PART: usize = 5 * MIB;

// ---------------------------------------------------------------------------------------------
// helpers

async fn create(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    s3.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create multipart upload {bucket}/{key}: {e:?}"))
        .upload_id()
        .expect("UploadId")
        .to_string()
}

async fn create_with_checksum(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    algorithm: ChecksumAlgorithm,
) -> String {
    s3.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .checksum_algorithm(algorithm)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create multipart upload {bucket}/{key}: {e:?}"))
        .upload_id()
        .expect("UploadId")
        .to_string()
}

/// The object's checksum of algorithm `name` (`crc32`, `sha256`, …) and its type, as
/// HeadObject reports them with checksum mode on.
async fn head_checksum(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    name: &str,
) -> (Option<String>, Option<ChecksumType>) {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {bucket}/{key}: {e:?}"));
    let value = match name {
        "crc32" => head.checksum_crc32(),
        "crc32c" => head.checksum_crc32_c(),
        "sha1" => head.checksum_sha1(),
        "sha256" => head.checksum_sha256(),
        "crc64nvme" => head.checksum_crc64_nvme(),
        other => panic!("no checksum algorithm {other}"),
    };
    (value.map(str::to_string), head.checksum_type().cloned())
}

/// Uploads part `n` and returns its ETag (quoted, as the gateway sent it).
async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    n: i32,
    data: &[u8],
) -> String {
    s3.upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(n)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part {n} of {bucket}/{key}: {e:?}"))
        .e_tag()
        .expect("part ETag")
        .to_string()
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, etag)| {
                    CompletedPart::builder()
                        .part_number(*n)
                        .e_tag(*etag)
                        .build()
                })
                .collect(),
        ))
        .build()
}

async fn complete(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    parts: &[(i32, &str)],
) -> aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput {
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(completed(parts))
        .send()
        .await
        .unwrap_or_else(|e| panic!("complete {bucket}/{key}: {e:?}"))
}

/// `"<hex MD5 of the concatenated binary MD5s of the parts>-<N>"`, quoted like an ETag header.
fn multipart_etag(parts: &[&[u8]]) -> String {
    use md5::Digest;
    let mut md5s = Vec::new();
    for p in parts {
        md5s.extend_from_slice(&md5::Md5::digest(p));
    }
    format!(
        "\"{}-{}\"",
        hex::encode(md5::Md5::digest(&md5s)),
        parts.len()
    )
}

fn quoted_md5(data: &[u8]) -> String {
    format!("\"{}\"", md5_hex(data))
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The raw checksum of `data` ("crc32", "crc32c", "crc64nvme", "sha1", "sha256").
fn checksum_raw(algo: &str, data: &[u8]) -> Vec<u8> {
    let mut c = algo
        .parse::<aws_smithy_checksums::ChecksumAlgorithm>()
        .expect("algorithm")
        .into_impl();
    c.update(data);
    c.finalize().to_vec()
}

fn checksum_b64(algo: &str, data: &[u8]) -> String {
    b64(&checksum_raw(algo, data))
}

/// S3's composite checksum: the checksum of the concatenated binary part checksums, `-N`.
fn composite_checksum(algo: &str, parts: &[&[u8]]) -> String {
    let mut raw = Vec::new();
    for p in parts {
        raw.extend(checksum_raw(algo, p));
    }
    format!("{}-{}", checksum_b64(algo, &raw), parts.len())
}

async fn body_of(out: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// Where each local backend stages the parts of `upload_id`.
fn staged_dirs(gw: &TestGateway, upload_id: &str) -> Vec<PathBuf> {
    gw.backend_dirs()
        .into_iter()
        .map(|d| d.join(".hansa").join("mpu").join(upload_id))
        .collect()
}

fn assert_staged(gw: &TestGateway, upload_id: &str) {
    for d in staged_dirs(gw, upload_id) {
        assert!(
            d.is_dir(),
            "staged parts of {upload_id} expected at {}",
            d.display()
        );
    }
}

fn assert_not_staged(gw: &TestGateway, upload_id: &str, after: &str) {
    for d in staged_dirs(gw, upload_id) {
        assert!(
            !d.exists(),
            "after {after}, the staged parts of {upload_id} are still at {}: {:?}",
            d.display(),
            std::fs::read_dir(&d)
                .map(|r| r.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        );
    }
}

/// Every backend holds `<root>/<bucket>/<key>` with exactly `data`.
fn assert_replicas(gw: &TestGateway, bucket: &str, key: &str, data: &[u8]) {
    for dir in gw.backend_dirs() {
        let path = dir.join(bucket).join(key);
        let on_disk =
            std::fs::read(&path).unwrap_or_else(|e| panic!("replica {}: {e}", path.display()));
        assert_eq!(on_disk.len(), data.len(), "{}", path.display());
        assert_eq!(sha256_hex(&on_disk), sha256_hex(data), "{}", path.display());
    }
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------------
// the whole cycle

#[tokio::test]
async fn create_upload_complete_keeps_metadata_and_replicates() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "mpu").await;
    let key = "dir/large object ✓.bin";
    let created = s3
        .create_multipart_upload()
        .bucket("mpu")
        .key(key)
        .content_type("application/x-hansa-test")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"large.bin\"")
        .metadata("color", "blue")
        .metadata("owner-name", "Ada Lovelace")
        .send()
        .await
        .expect("create multipart upload");
    assert_eq!(created.bucket(), Some("mpu"));
    assert_eq!(created.key(), Some(key));
    let id = created.upload_id().expect("upload id").to_string();
    assert!(!id.is_empty());

    let p1 = random_bytes(PART);
    let p2 = random_bytes(MIB + 3);
    let e1 = upload(&s3, "mpu", key, &id, 1, &p1).await;
    let e2 = upload(&s3, "mpu", key, &id, 2, &p2).await;
    assert_eq!(e1, quoted_md5(&p1), "a part's ETag is the MD5 of its bytes");
    assert_eq!(e2, quoted_md5(&p2));
    assert_staged(&gw, &id);

    // Not visible as an object before Complete.
    assert_s3_err!(
        s3.get_object().bucket("mpu").key(key).send().await,
        404,
        "NoSuchKey"
    );

    let out = complete(&s3, "mpu", key, &id, &[(1, &e1), (2, &e2)]).await;
    let etag = multipart_etag(&[&p1, &p2]);
    assert_eq!(out.e_tag(), Some(etag.as_str()), "Complete's ETag");
    assert_eq!(out.bucket(), Some("mpu"));
    assert_eq!(out.key(), Some(key));
    let data = concat(&[&p1, &p2]);

    let md: HashMap<String, String> = [("color", "blue"), ("owner-name", "Ada Lovelace")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let head = s3
        .head_object()
        .bucket("mpu")
        .key(key)
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.content_type(), Some("application/x-hansa-test"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"large.bin\"")
    );
    assert_eq!(head.metadata(), Some(&md));

    let got = s3
        .get_object()
        .bucket("mpu")
        .key(key)
        .send()
        .await
        .expect("get");
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(got.content_type(), Some("application/x-hansa-test"));
    assert_eq!(got.metadata(), Some(&md));
    assert_eq!(got.content_length(), Some(data.len() as i64));
    let body = body_of(got).await;
    assert_eq!(sha256_hex(&body), sha256_hex(&data));

    // Listed like any object, with the multipart ETag and the full size.
    let listed = s3
        .list_objects_v2()
        .bucket("mpu")
        .send()
        .await
        .expect("list");
    let obj = listed
        .contents()
        .iter()
        .find(|o| o.key() == Some(key))
        .expect("listed");
    assert_eq!(obj.size(), Some(data.len() as i64));
    assert_eq!(obj.e_tag(), Some(etag.as_str()));

    // The upload is gone: from the listing, and from every backend's staging area; every
    // backend holds the object under its plain name.
    let uploads = s3
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .expect("list uploads");
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
    wait_until_gone(&gw, &id).await;
    assert_replicas(&gw, "mpu", key, &data);
    gw.shutdown().await;
}

#[tokio::test]
async fn final_etag_is_md5_of_part_md5s() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "etag").await;
    let parts = [random_bytes(PART), random_bytes(PART), random_bytes(12_345)];
    let id = create(&s3, "etag", "k").await;
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        etags.push(upload(&s3, "etag", "k", &id, i as i32 + 1, p).await);
    }
    let list: Vec<(i32, &str)> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i32 + 1, e.as_str()))
        .collect();
    let out = complete(&s3, "etag", "k", &id, &list).await;
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let want = multipart_etag(&refs);
    assert!(want.ends_with("-3\""), "{want}");
    assert_eq!(out.e_tag(), Some(want.as_str()));
    let head = s3
        .head_object()
        .bucket("etag")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(head.e_tag(), Some(want.as_str()));
    // If-Match with the multipart ETag works like any ETag.
    let got = s3
        .get_object()
        .bucket("etag")
        .key("k")
        .if_match(want.as_str())
        .send()
        .await
        .expect("get if-match");
    assert_eq!(got.e_tag(), Some(want.as_str()));
    assert_eq!(sha256_hex(&body_of(got).await), sha256_hex(&refs.concat()));
    gw.shutdown().await;
}

#[tokio::test]
async fn parts_out_of_order_and_in_parallel() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "par").await;
    let id = create(&s3, "par", "parallel.bin").await;
    let mut parts: Vec<Vec<u8>> = (0..4).map(|_| random_bytes(PART)).collect();
    parts.push(random_bytes(777));
    // All at once, the last part first.
    let mut tasks = Vec::new();
    for (i, p) in parts.iter().enumerate().rev() {
        let s3 = s3.clone();
        let id = id.clone();
        let p = p.clone();
        let n = i as i32 + 1;
        tasks.push(tokio::spawn(async move {
            (n, upload(&s3, "par", "parallel.bin", &id, n, &p).await)
        }));
    }
    let mut etags: Vec<(i32, String)> = Vec::new();
    for t in tasks {
        etags.push(t.await.expect("task"));
    }
    etags.sort();
    for (n, e) in &etags {
        assert_eq!(e, &quoted_md5(&parts[*n as usize - 1]), "part {n}");
    }
    // ListParts shows them in ascending order whatever order they arrived in.
    let listed = s3
        .list_parts()
        .bucket("par")
        .key("parallel.bin")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    let numbers: Vec<i32> = listed
        .parts()
        .iter()
        .map(|p| p.part_number().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
    let list: Vec<(i32, &str)> = etags.iter().map(|(n, e)| (*n, e.as_str())).collect();
    let out = complete(&s3, "par", "parallel.bin", &id, &list).await;
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    assert_eq!(out.e_tag(), Some(multipart_etag(&refs).as_str()));
    let got = get(&s3, "par", "parallel.bin").await;
    assert_eq!(sha256_hex(&got), sha256_hex(&refs.concat()));
    wait_until_gone(&gw, &id).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn reuploaded_part_last_wins() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "again").await;
    let id = create(&s3, "again", "k").await;
    let first = random_bytes(PART);
    let second = random_bytes(PART);
    let tail = random_bytes(1000);
    let e_first = upload(&s3, "again", "k", &id, 1, &first).await;
    let e_second = upload(&s3, "again", "k", &id, 1, &second).await;
    let e_tail = upload(&s3, "again", "k", &id, 2, &tail).await;
    assert_ne!(e_first, e_second);

    let listed = s3
        .list_parts()
        .bucket("again")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    assert_eq!(listed.parts().len(), 2, "{:?}", listed.parts());
    assert_eq!(listed.parts()[0].part_number(), Some(1));
    assert_eq!(listed.parts()[0].e_tag(), Some(e_second.as_str()));
    assert_eq!(listed.parts()[0].size(), Some(PART as i64));

    // The replaced part's ETag no longer names a part.
    assert_s3_err!(
        s3.complete_multipart_upload()
            .bucket("again")
            .key("k")
            .upload_id(&id)
            .multipart_upload(completed(&[(1, &e_first), (2, &e_tail)]))
            .send()
            .await,
        400,
        "InvalidPart"
    );
    let out = complete(&s3, "again", "k", &id, &[(1, &e_second), (2, &e_tail)]).await;
    assert_eq!(
        out.e_tag(),
        Some(multipart_etag(&[&second, &tail]).as_str())
    );
    let got = get(&s3, "again", "k").await;
    assert_eq!(sha256_hex(&got), sha256_hex(&concat(&[&second, &tail])));
    wait_until_gone(&gw, &id).await;
    gw.shutdown().await;
}

/// Clients number parts sparsely and may complete with a subset of what they uploaded.
#[tokio::test]
async fn complete_with_a_subset_of_sparse_parts() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "sparse").await;
    let id = create(&s3, "sparse", "k").await;
    let p1 = random_bytes(PART);
    let p3 = random_bytes(PART); // uploaded, left out of the object
    let p7 = random_bytes(PART);
    let p10000 = random_bytes(4321);
    let e1 = upload(&s3, "sparse", "k", &id, 1, &p1).await;
    let _e3 = upload(&s3, "sparse", "k", &id, 3, &p3).await;
    let e7 = upload(&s3, "sparse", "k", &id, 7, &p7).await;
    let e10000 = upload(&s3, "sparse", "k", &id, 10000, &p10000).await;
    let out = complete(
        &s3,
        "sparse",
        "k",
        &id,
        &[(1, &e1), (7, &e7), (10000, &e10000)],
    )
    .await;
    assert_eq!(
        out.e_tag(),
        Some(multipart_etag(&[&p1, &p7, &p10000]).as_str())
    );
    let data = concat(&[&p1, &p7, &p10000]);
    let got = get(&s3, "sparse", "k").await;
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256_hex(&got), sha256_hex(&data));
    assert_replicas(&gw, "sparse", "k", &data);
    // The part left out is removed too.
    wait_until_gone(&gw, &id).await;
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// errors

#[tokio::test]
async fn entity_too_small_for_a_part_that_is_not_the_last() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "small").await;
    let id = create(&s3, "small", "k").await;
    let p1 = random_bytes(MIB);
    let p2 = random_bytes(MIB);
    // S3 accepts small parts on upload: only Complete knows which part is last.
    let e1 = upload(&s3, "small", "k", &id, 1, &p1).await;
    let e2 = upload(&s3, "small", "k", &id, 2, &p2).await;
    assert_s3_err!(
        s3.complete_multipart_upload()
            .bucket("small")
            .key("k")
            .upload_id(&id)
            .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
            .send()
            .await,
        400,
        "EntityTooSmall"
    );
    assert_s3_err!(
        s3.get_object().bucket("small").key("k").send().await,
        404,
        "NoSuchKey"
    );
    // A failed Complete leaves the upload as it was: part 1 sent again at 5 MiB completes.
    let p1 = random_bytes(PART);
    let e1 = upload(&s3, "small", "k", &id, 1, &p1).await;
    complete(&s3, "small", "k", &id, &[(1, &e1), (2, &e2)]).await;
    assert_eq!(
        sha256_hex(&get(&s3, "small", "k").await),
        sha256_hex(&concat(&[&p1, &p2]))
    );

    // The last part, and so a one-part upload, may be of any size.
    let id = create(&s3, "small", "one").await;
    let e = upload(&s3, "small", "one", &id, 1, b"tiny").await;
    let out = complete(&s3, "small", "one", &id, &[(1, &e)]).await;
    assert_eq!(out.e_tag(), Some(multipart_etag(&[&b"tiny"[..]]).as_str()));
    assert_eq!(get(&s3, "small", "one").await, b"tiny");
    gw.shutdown().await;
}

#[tokio::test]
async fn invalid_part_order_and_invalid_part() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "order").await;
    let id = create(&s3, "order", "k").await;
    let p1 = random_bytes(PART);
    let p2 = random_bytes(100);
    let e1 = upload(&s3, "order", "k", &id, 1, &p1).await;
    let e2 = upload(&s3, "order", "k", &id, 2, &p2).await;
    let try_complete = |parts: Vec<(i32, String)>| {
        let s3 = s3.clone();
        let id = id.clone();
        async move {
            let refs: Vec<(i32, &str)> = parts.iter().map(|(n, e)| (*n, e.as_str())).collect();
            s3.complete_multipart_upload()
                .bucket("order")
                .key("k")
                .upload_id(&id)
                .multipart_upload(completed(&refs))
                .send()
                .await
        }
    };
    // descending part numbers
    assert_s3_err!(
        try_complete(vec![(2, e2.clone()), (1, e1.clone())]).await,
        400,
        "InvalidPartOrder"
    );
    // an ETag that is not the part's
    let wrong = quoted_md5(b"something else");
    assert_s3_err!(
        try_complete(vec![(1, wrong), (2, e2.clone())]).await,
        400,
        "InvalidPart"
    );
    // a part never uploaded
    assert_s3_err!(
        try_complete(vec![(1, e1.clone()), (2, e2.clone()), (3, e2.clone())]).await,
        400,
        "InvalidPart"
    );
    // part 2's ETag under part number 1
    assert_s3_err!(
        try_complete(vec![(1, e2.clone()), (2, e2.clone())]).await,
        400,
        "InvalidPart"
    );
    // no part at all: S3 answers MalformedXML
    assert_s3_err!(
        s3.complete_multipart_upload()
            .bucket("order")
            .key("k")
            .upload_id(&id)
            .multipart_upload(CompletedMultipartUpload::builder().build())
            .send()
            .await,
        400,
        "MalformedXML"
    );
    // None of these touched the upload. ETags may be given without quotes.
    let out = try_complete(vec![(1, e1.trim_matches('"').to_string()), (2, e2.clone())])
        .await
        .expect("complete after the failed attempts");
    assert_eq!(out.e_tag(), Some(multipart_etag(&[&p1, &p2]).as_str()));
    assert_eq!(
        sha256_hex(&get(&s3, "order", "k").await),
        sha256_hex(&concat(&[&p1, &p2]))
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn part_number_out_of_range_is_invalid_argument() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "range").await;
    let id = create(&s3, "range", "k").await;
    for n in [0, 10001, -1] {
        assert_s3_err!(
            s3.upload_part()
                .bucket("range")
                .key("k")
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from_static(b"data"))
                .send()
                .await,
            400,
            "InvalidArgument"
        );
    }
    // The bounds themselves are fine.
    upload(&s3, "range", "k", &id, 1, b"first").await;
    upload(&s3, "range", "k", &id, 10000, b"last").await;
    let listed = s3
        .list_parts()
        .bucket("range")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    let numbers: Vec<i32> = listed
        .parts()
        .iter()
        .map(|p| p.part_number().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 10000]);
    gw.shutdown().await;
}

#[tokio::test]
async fn no_such_upload() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "nsu").await;

    async fn expect_no_such_upload(s3: &aws_sdk_s3::Client, key: &str, id: &str) {
        let r = s3
            .upload_part()
            .bucket("nsu")
            .key(key)
            .upload_id(id)
            .part_number(1)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        assert_s3_err!(r, 404, "NoSuchUpload");
        let r = s3
            .list_parts()
            .bucket("nsu")
            .key(key)
            .upload_id(id)
            .send()
            .await;
        assert_s3_err!(r, 404, "NoSuchUpload");
        let r = s3
            .upload_part_copy()
            .bucket("nsu")
            .key(key)
            .upload_id(id)
            .part_number(1)
            .copy_source("nsu/source")
            .send()
            .await;
        assert_s3_err!(r, 404, "NoSuchUpload");
        let r = s3
            .abort_multipart_upload()
            .bucket("nsu")
            .key(key)
            .upload_id(id)
            .send()
            .await;
        assert_s3_err!(r, 404, "NoSuchUpload");
    }
    put(&s3, "nsu", "source", b"copy source").await;

    // unknown ids, of the gateway's shape and of others
    for id in [
        "0123456789abcdef0123456789abcdef",
        "not-an-upload-id",
        "../../etc",
    ] {
        expect_no_such_upload(&s3, "k", id).await;
        assert_s3_err!(
            s3.complete_multipart_upload()
                .bucket("nsu")
                .key("k")
                .upload_id(id)
                .multipart_upload(completed(&[(1, "\"0123456789abcdef0123456789abcdef\"")]))
                .send()
                .await,
            404,
            "NoSuchUpload"
        );
    }

    // an upload id belongs to its key
    let id = create(&s3, "nsu", "k").await;
    expect_no_such_upload(&s3, "other-key", &id).await;

    // after Abort
    let e = upload(&s3, "nsu", "k", &id, 1, b"part").await;
    s3.abort_multipart_upload()
        .bucket("nsu")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect("abort");
    expect_no_such_upload(&s3, "k", &id).await;
    assert_s3_err!(
        s3.complete_multipart_upload()
            .bucket("nsu")
            .key("k")
            .upload_id(&id)
            .multipart_upload(completed(&[(1, &e)]))
            .send()
            .await,
        404,
        "NoSuchUpload"
    );
    assert_s3_err!(
        s3.get_object().bucket("nsu").key("k").send().await,
        404,
        "NoSuchKey"
    );

    // after Complete
    let id = create(&s3, "nsu", "done").await;
    let e = upload(&s3, "nsu", "done", &id, 1, b"part").await;
    complete(&s3, "nsu", "done", &id, &[(1, &e)]).await;
    expect_no_such_upload(&s3, "done", &id).await;
    // The object is not touched by those attempts.
    assert_eq!(get(&s3, "nsu", "done").await, b"part");
    gw.shutdown().await;
}

#[tokio::test]
async fn create_needs_a_bucket_and_write_access() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    assert_s3_err!(
        s3.create_multipart_upload()
            .bucket("no-such-bucket")
            .key("k")
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    create_bucket(&s3, "ro-bucket").await;
    let reader = gw.client_for(READER);
    assert_s3_err!(
        reader
            .create_multipart_upload()
            .bucket("ro-bucket")
            .key("k")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    // A read-only key cannot add parts to someone else's upload either.
    let id = create(&s3, "ro-bucket", "k").await;
    assert_s3_err!(
        reader
            .upload_part()
            .bucket("ro-bucket")
            .key("k")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        reader
            .abort_multipart_upload()
            .bucket("ro-bucket")
            .key("k")
            .upload_id(&id)
            .send()
            .await,
        403,
        "AccessDenied"
    );
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// checksums

/// CRC32 (no checksum type: S3's default for CRC32 is COMPOSITE) and SHA256 (always composite):
/// the SDK sends each part's checksum, Complete names them, and the object's checksum is the
/// checksum of the part checksums, `-N`.
#[tokio::test]
async fn composite_checksums() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "comp").await;
    let p1 = random_bytes(PART);
    let p2 = random_bytes(PART);
    let p3 = random_bytes(54_321);
    let parts: [&[u8]; 3] = [&p1, &p2, &p3];
    for (algo, name) in [
        (ChecksumAlgorithm::Crc32, "crc32"),
        (ChecksumAlgorithm::Sha256, "sha256"),
    ] {
        let key = format!("composite-{name}");
        let created = s3
            .create_multipart_upload()
            .bucket("comp")
            .key(&key)
            .checksum_algorithm(algo.clone())
            .send()
            .await
            .expect("create");
        assert_eq!(created.checksum_algorithm(), Some(&algo), "{name}");
        if let Some(t) = created.checksum_type() {
            assert_eq!(t, &ChecksumType::Composite, "{name}");
        }
        let id = created.upload_id().unwrap().to_string();
        let mut done = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let n = i as i32 + 1;
            let out = s3
                .upload_part()
                .bucket("comp")
                .key(&key)
                .upload_id(&id)
                .part_number(n)
                .checksum_algorithm(algo.clone())
                .body(ByteStream::from(p.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{name} part {n}: {e:?}"));
            let want = checksum_b64(name, p);
            let got = match name {
                "crc32" => out.checksum_crc32(),
                _ => out.checksum_sha256(),
            };
            assert_eq!(got, Some(want.as_str()), "{name} part {n} checksum");
            let b = CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap());
            done.push(match name {
                "crc32" => b.checksum_crc32(want).build(),
                _ => b.checksum_sha256(want).build(),
            });
        }
        // ListParts reports each part's checksum.
        let listed = s3
            .list_parts()
            .bucket("comp")
            .key(&key)
            .upload_id(&id)
            .send()
            .await
            .expect("list parts");
        for (i, p) in listed.parts().iter().enumerate() {
            let got = match name {
                "crc32" => p.checksum_crc32(),
                _ => p.checksum_sha256(),
            };
            assert_eq!(
                got,
                Some(checksum_b64(name, parts[i]).as_str()),
                "{name}: ListParts checksum of part {}",
                i + 1
            );
        }
        let out = s3
            .complete_multipart_upload()
            .bucket("comp")
            .key(&key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} complete: {e:?}"));
        let want = composite_checksum(name, &parts);
        assert!(want.ends_with("-3"), "{want}");
        let got = match name {
            "crc32" => out.checksum_crc32(),
            _ => out.checksum_sha256(),
        };
        assert_eq!(got, Some(want.as_str()), "{name}: Complete's checksum");
        assert_eq!(
            out.checksum_type(),
            Some(&ChecksumType::Composite),
            "{name}: Complete's checksum type"
        );
        let (got, kind) = head_checksum(&s3, "comp", &key, name).await;
        assert_eq!(
            got.as_deref(),
            Some(want.as_str()),
            "{name}: HeadObject's checksum"
        );
        assert_eq!(kind, Some(ChecksumType::Composite));
        let got = s3
            .get_object()
            .bucket("comp")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get");
        let sum = match name {
            "crc32" => got.checksum_crc32().map(str::to_string),
            _ => got.checksum_sha256().map(str::to_string),
        };
        assert_eq!(
            sum.as_deref(),
            Some(want.as_str()),
            "{name}: GetObject's checksum"
        );
        assert_eq!(sha256_hex(&body_of(got).await), sha256_hex(&parts.concat()));
    }
    gw.shutdown().await;
}

/// An upload created with a (composite) checksum algorithm: each part must carry a checksum of
/// that algorithm, and Complete must name each part's checksum, matching what was uploaded.
#[tokio::test]
async fn composite_upload_needs_part_checksums() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "needs").await;
    let p1 = random_bytes(PART);
    let p2 = random_bytes(1000);
    let id = create_with_checksum(&s3, "needs", "k", ChecksumAlgorithm::Sha256).await;
    // A part with another algorithm's checksum: "Checksum Type mismatch occurred".
    assert_s3_err!(
        s3.upload_part()
            .bucket("needs")
            .key("k")
            .upload_id(&id)
            .part_number(1)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(p1.clone()))
            .send()
            .await,
        400,
        "InvalidRequest"
    );
    let mut etags = Vec::new();
    for (n, p) in [(1, &p1), (2, &p2)] {
        let out = s3
            .upload_part()
            .bucket("needs")
            .key("k")
            .upload_id(&id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .expect("part");
        etags.push(out.e_tag().unwrap().to_string());
    }
    let complete_with = |sums: [Option<String>; 2]| {
        let s3 = s3.clone();
        let id = id.clone();
        let etags = etags.clone();
        async move {
            let parts = (0..2)
                .map(|i| {
                    CompletedPart::builder()
                        .part_number(i as i32 + 1)
                        .e_tag(&etags[i])
                        .set_checksum_sha256(sums[i].clone())
                        .build()
                })
                .collect();
            s3.complete_multipart_upload()
                .bucket("needs")
                .key("k")
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
        }
    };
    let s1 = checksum_b64("sha256", &p1);
    let s2 = checksum_b64("sha256", &p2);
    // A part checksum that is not the part's.
    let wrong = complete_with([Some(s1.clone()), Some(s1.clone())]).await;
    let err = assert_s3_status!(wrong, 400);
    assert!(
        matches!(err.code.as_deref(), Some("InvalidPart") | Some("BadDigest")),
        "{err:?}"
    );
    // "The upload was created using a sha256 checksum. The complete request must include the
    // checksum for each part. It was missing for part 2 in the request."
    assert_s3_err!(
        complete_with([Some(s1.clone()), None]).await,
        400,
        "InvalidRequest"
    );
    let out = complete_with([Some(s1), Some(s2)])
        .await
        .expect("complete with the parts' checksums");
    assert_eq!(
        out.checksum_sha256(),
        Some(composite_checksum("sha256", &[&p1, &p2]).as_str())
    );
    gw.shutdown().await;
}

/// FULL_OBJECT checksums (CRC64NVME, and CRC32 with the type asked for): the object's checksum
/// is the checksum of all its bytes, with no `-N`.
#[tokio::test]
async fn full_object_checksums() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "full").await;
    let p1 = random_bytes(PART);
    let p2 = random_bytes(300_001);
    let parts: [&[u8]; 2] = [&p1, &p2];
    let data = parts.concat();
    for (algo, name) in [
        (ChecksumAlgorithm::Crc64Nvme, "crc64nvme"),
        (ChecksumAlgorithm::Crc32, "crc32"),
    ] {
        let key = format!("full-{name}");
        let created = s3
            .create_multipart_upload()
            .bucket("full")
            .key(&key)
            .checksum_algorithm(algo.clone())
            .checksum_type(ChecksumType::FullObject)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} create: {e:?}"));
        assert_eq!(created.checksum_algorithm(), Some(&algo), "{name}");
        assert_eq!(
            created.checksum_type(),
            Some(&ChecksumType::FullObject),
            "{name}: CreateMultipartUpload's checksum type"
        );
        let id = created.upload_id().unwrap().to_string();
        let mut done = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let n = i as i32 + 1;
            let out = s3
                .upload_part()
                .bucket("full")
                .key(&key)
                .upload_id(&id)
                .part_number(n)
                .checksum_algorithm(algo.clone())
                .body(ByteStream::from(p.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{name} part {n}: {e:?}"));
            let want = checksum_b64(name, p);
            let got = match name {
                "crc32" => out.checksum_crc32(),
                _ => out.checksum_crc64_nvme(),
            };
            assert_eq!(got, Some(want.as_str()), "{name} part {n} checksum");
            let b = CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap());
            done.push(match name {
                "crc32" => b.checksum_crc32(want).build(),
                _ => b.checksum_crc64_nvme(want).build(),
            });
        }
        let want = checksum_b64(name, &data);
        let mut req = s3
            .complete_multipart_upload()
            .bucket("full")
            .key(&key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            );
        if name == "crc64nvme" {
            // The checksum type and the object's size, which S3 checks. (The whole object's
            // checksum as a header: see complete_checks_the_whole_object_checksum.)
            req = req
                .checksum_type(ChecksumType::FullObject)
                .mpu_object_size(data.len() as i64);
        }
        let out = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} complete: {e:?}"));
        let got = match name {
            "crc32" => out.checksum_crc32(),
            _ => out.checksum_crc64_nvme(),
        };
        assert_eq!(got, Some(want.as_str()), "{name}: Complete's checksum");
        assert_eq!(
            out.checksum_type(),
            Some(&ChecksumType::FullObject),
            "{name}: Complete's checksum type"
        );
        let (got, kind) = head_checksum(&s3, "full", &key, name).await;
        assert_eq!(
            got.as_deref(),
            Some(want.as_str()),
            "{name}: HeadObject's checksum"
        );
        assert_eq!(kind, Some(ChecksumType::FullObject));
        // The SDK checks a full-object checksum against the body it reads.
        let got = s3
            .get_object()
            .bucket("full")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get");
        assert_eq!(sha256_hex(&body_of(got).await), sha256_hex(&data));
    }

    gw.shutdown().await;
}

/// What current SDKs' transfer managers send with a FULL_OBJECT upload: Complete carries the
/// whole object's checksum (`x-amz-checksum-crc64nvme`, the object's, not the XML body's), its
/// type and the object's size. S3 checks the value against the parts and refuses a wrong one.
#[tokio::test]
async fn complete_checks_the_whole_object_checksum() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "full").await;
    let p1 = random_bytes(PART);
    let p2 = random_bytes(300_001);
    let data = concat(&[&p1, &p2]);
    let want = checksum_b64("crc64nvme", &data);
    let start = |key: &'static str| {
        let s3 = s3.clone();
        let (p1, p2) = (p1.clone(), p2.clone());
        async move {
            let id = s3
                .create_multipart_upload()
                .bucket("full")
                .key(key)
                .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
                .checksum_type(ChecksumType::FullObject)
                .send()
                .await
                .expect("create")
                .upload_id()
                .unwrap()
                .to_string();
            let mut parts = Vec::new();
            for (n, p) in [(1, p1), (2, p2)] {
                let out = s3
                    .upload_part()
                    .bucket("full")
                    .key(key)
                    .upload_id(&id)
                    .part_number(n)
                    .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
                    .body(ByteStream::from(p.clone()))
                    .send()
                    .await
                    .expect("part");
                parts.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .e_tag(out.e_tag().unwrap())
                        .checksum_crc64_nvme(checksum_b64("crc64nvme", &p))
                        .build(),
                );
            }
            (
                id,
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
        }
    };

    let (id, parts) = start("right").await;
    let out = s3
        .complete_multipart_upload()
        .bucket("full")
        .key("right")
        .upload_id(&id)
        .multipart_upload(parts)
        .checksum_crc64_nvme(want.clone())
        .checksum_type(ChecksumType::FullObject)
        .mpu_object_size(data.len() as i64)
        .send()
        .await;
    match out {
        Ok(out) => {
            assert_eq!(out.checksum_crc64_nvme(), Some(want.as_str()));
            assert_eq!(out.checksum_type(), Some(&ChecksumType::FullObject));
        }
        Err(e) => panic!(
            "Complete with x-amz-checksum-crc64nvme = the object's CRC64NVME ({want}): {:?}",
            hansa_conformance::s3_err(&e)
        ),
    }
    assert_eq!(
        sha256_hex(&get(&s3, "full", "right").await),
        sha256_hex(&data)
    );

    // A whole-object checksum that does not match the bytes is refused.
    let (id, parts) = start("wrong").await;
    let r = s3
        .complete_multipart_upload()
        .bucket("full")
        .key("wrong")
        .upload_id(&id)
        .multipart_upload(parts)
        .checksum_crc64_nvme(checksum_b64("crc64nvme", b"other bytes"))
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await;
    let err = assert_s3_status!(r, 400);
    assert!(
        matches!(
            err.code.as_deref(),
            Some("BadDigest") | Some("InvalidRequest")
        ),
        "a wrong full-object checksum: {err:?}"
    );
    assert_s3_err!(
        s3.get_object().bucket("full").key("wrong").send().await,
        404,
        "NoSuchKey"
    );
    // A wrong x-amz-mp-object-size too.
    let (id, parts) = start("size").await;
    let r = s3
        .complete_multipart_upload()
        .bucket("full")
        .key("size")
        .upload_id(&id)
        .multipart_upload(parts)
        .mpu_object_size(data.len() as i64 + 1)
        .send()
        .await;
    assert_s3_status!(r, 400);
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// UploadPartCopy

#[tokio::test]
async fn upload_part_copy_with_ranges_and_conditions() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "src").await;
    create_bucket(&s3, "dst").await;
    let source = random_bytes(12 * MIB + 5);
    let src_key = "dir/sóurce file+1.bin";
    put(&s3, "src", src_key, &source).await;
    let src_etag = quoted_md5(&source);
    let copy_source = format!("src/{}", encode_key(src_key));

    let id = create(&s3, "dst", "assembled").await;
    let copy = |n: i32, range: Option<String>| {
        let s3 = s3.clone();
        let id = id.clone();
        let copy_source = copy_source.clone();
        async move {
            s3.upload_part_copy()
                .bucket("dst")
                .key("assembled")
                .upload_id(&id)
                .part_number(n)
                .copy_source(copy_source)
                .set_copy_source_range(range)
                .send()
                .await
        }
    };
    // part 1: the first 5 MiB; part 2: the whole source; part 3: 5 MiB from the middle
    let r1 = &source[..PART];
    let r2 = &source[..];
    let r3 = &source[MIB + 100..MIB + 100 + PART];
    let out1 = copy(1, Some(format!("bytes=0-{}", PART - 1)))
        .await
        .expect("copy part 1");
    let out2 = copy(2, None).await.expect("copy part 2");
    let out3 = copy(3, Some(format!("bytes={}-{}", MIB + 100, MIB + 99 + PART)))
        .await
        .expect("copy part 3");
    let e1 = out1
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    let e2 = out2
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    let e3 = out3
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    assert_eq!(
        e1,
        quoted_md5(r1),
        "a copied part's ETag is the MD5 of its bytes"
    );
    assert_eq!(e2, quoted_md5(r2));
    assert_eq!(e3, quoted_md5(r3));
    assert!(out1.copy_part_result().unwrap().last_modified().is_some());

    // An ordinary part after copied ones.
    let p4 = random_bytes(2000);
    let e4 = upload(&s3, "dst", "assembled", &id, 4, &p4).await;

    // Copy-source conditions: a failed one adds no part.
    let failed = s3
        .upload_part_copy()
        .bucket("dst")
        .key("assembled")
        .upload_id(&id)
        .part_number(5)
        .copy_source(&copy_source)
        .copy_source_if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await;
    assert_s3_err!(failed, 412, "PreconditionFailed");
    let failed = s3
        .upload_part_copy()
        .bucket("dst")
        .key("assembled")
        .upload_id(&id)
        .part_number(5)
        .copy_source(&copy_source)
        .copy_source_if_none_match(&src_etag)
        .send()
        .await;
    assert_s3_err!(failed, 412, "PreconditionFailed");
    let out6 = s3
        .upload_part_copy()
        .bucket("dst")
        .key("assembled")
        .upload_id(&id)
        .part_number(6)
        .copy_source(&copy_source)
        .copy_source_range("bytes=100-1099")
        .copy_source_if_match(&src_etag)
        .send()
        .await
        .expect("copy-source-if-match with the source's ETag");
    assert_eq!(
        out6.copy_part_result().unwrap().e_tag(),
        Some(quoted_md5(&source[100..1100]).as_str())
    );
    // A missing source.
    assert_s3_err!(
        s3.upload_part_copy()
            .bucket("dst")
            .key("assembled")
            .upload_id(&id)
            .part_number(7)
            .copy_source("src/no-such-key")
            .send()
            .await,
        404,
        "NoSuchKey"
    );
    let listed = s3
        .list_parts()
        .bucket("dst")
        .key("assembled")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    let numbers: Vec<i32> = listed
        .parts()
        .iter()
        .map(|p| p.part_number().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 6], "parts after the copies");
    assert_eq!(listed.parts()[1].size(), Some(source.len() as i64));

    let out = complete(
        &s3,
        "dst",
        "assembled",
        &id,
        &[(1, &e1), (2, &e2), (3, &e3), (4, &e4)],
    )
    .await;
    assert_eq!(
        out.e_tag(),
        Some(multipart_etag(&[r1, r2, r3, &p4]).as_str())
    );
    let want = concat(&[r1, r2, r3, &p4]);
    let got = get(&s3, "dst", "assembled").await;
    assert_eq!(got.len(), want.len());
    assert_eq!(sha256_hex(&got), sha256_hex(&want));
    assert_replicas(&gw, "dst", "assembled", &want);
    // The source is untouched.
    assert_eq!(
        sha256_hex(&get(&s3, "src", src_key).await),
        sha256_hex(&source)
    );
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// partNumber reads

#[tokio::test]
async fn get_and_head_with_part_number() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "pn-bucket").await;
    let parts = [
        random_bytes(PART),
        random_bytes(PART + 17),
        random_bytes(1234),
    ];
    let id = create(&s3, "pn-bucket", "k").await;
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        etags.push(upload(&s3, "pn-bucket", "k", &id, i as i32 + 1, p).await);
    }
    let list: Vec<(i32, &str)> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i32 + 1, e.as_str()))
        .collect();
    complete(&s3, "pn-bucket", "k", &id, &list).await;
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let etag = multipart_etag(&refs);
    let total: usize = parts.iter().map(Vec::len).sum();

    let mut start = 0usize;
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let end = start + p.len() - 1;
        let range = format!("bytes {start}-{end}/{total}");
        let got = s3
            .get_object()
            .bucket("pn-bucket")
            .key("k")
            .part_number(n)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get part {n}: {e:?}"));
        assert_eq!(got.content_length(), Some(p.len() as i64), "part {n}");
        assert_eq!(got.parts_count(), Some(3), "x-amz-mp-parts-count, part {n}");
        assert_eq!(got.content_range(), Some(range.as_str()), "part {n}");
        assert_eq!(got.e_tag(), Some(etag.as_str()), "the object's ETag");
        assert_eq!(sha256_hex(&body_of(got).await), sha256_hex(p), "part {n}");

        let head = s3
            .head_object()
            .bucket("pn-bucket")
            .key("k")
            .part_number(n)
            .send()
            .await
            .unwrap_or_else(|e| panic!("head part {n}: {e:?}"));
        assert_eq!(head.content_length(), Some(p.len() as i64), "HEAD part {n}");
        assert_eq!(head.parts_count(), Some(3), "HEAD part {n}");
        assert_eq!(head.e_tag(), Some(etag.as_str()));

        // The status is 206 Partial Content, for GET and HEAD, as S3 answers.
        for method in ["GET", "HEAD"] {
            let mut req = hansa_conformance::raw::request(
                method,
                &gw.url(&format!("pn-bucket/k?partNumber={n}")),
            );
            hansa_conformance::sign::Signer::new(hansa_conformance::ADMIN).sign(
                &mut req,
                &hansa_conformance::sign::Payload::Bytes(Vec::new()),
            );
            let resp = hansa_conformance::raw::send_reqwest(req, Vec::new()).await;
            assert_eq!(resp.status, 206, "{method} partNumber={n}: {}", resp.text());
            assert_eq!(
                resp.header("content-range"),
                Some(range.as_str()),
                "{method}"
            );
            assert_eq!(resp.header("x-amz-mp-parts-count"), Some("3"), "{method}");
            assert_eq!(
                resp.header("content-length"),
                Some(p.len().to_string().as_str()),
                "{method}"
            );
        }
        start = end + 1;
    }

    // partNumber and Range together: "Cannot specify both Range header and partNumber query
    // parameter".
    assert_s3_err!(
        s3.get_object()
            .bucket("pn-bucket")
            .key("k")
            .part_number(1)
            .range("bytes=0-9")
            .send()
            .await,
        400,
        "InvalidRequest"
    );
    // An object from a single PUT is its own part 1.
    put(&s3, "pn-bucket", "single", b"one single part").await;
    let got = s3
        .get_object()
        .bucket("pn-bucket")
        .key("single")
        .part_number(1)
        .send()
        .await
        .expect("partNumber=1 of a single-PUT object");
    assert_eq!(got.content_length(), Some(15));
    assert_eq!(got.e_tag(), Some(quoted_md5(b"one single part").as_str()));
    assert_eq!(body_of(got).await, b"one single part");

    // A part number beyond the object's parts.
    assert_s3_err!(
        s3.get_object()
            .bucket("pn-bucket")
            .key("k")
            .part_number(4)
            .send()
            .await,
        416,
        "InvalidPartNumber"
    );
    assert_s3_status!(
        s3.head_object()
            .bucket("pn-bucket")
            .key("k")
            .part_number(4)
            .send()
            .await,
        416
    );
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// listings

#[tokio::test]
async fn list_parts_paging() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "lp-bucket").await;
    let id = create(&s3, "lp-bucket", "k").await;
    let numbers = [1, 2, 3, 5, 8, 13, 21];
    let mut expected = Vec::new();
    for n in numbers {
        let data = random_bytes(100 + n as usize);
        let e = upload(&s3, "lp-bucket", "k", &id, n, &data).await;
        expected.push((n, e, data.len() as i64));
    }
    let page = |max: Option<i32>, marker: Option<&str>| {
        let s3 = s3.clone();
        let id = id.clone();
        let marker = marker.map(str::to_string);
        async move {
            s3.list_parts()
                .bucket("lp-bucket")
                .key("k")
                .upload_id(&id)
                .set_max_parts(max)
                .set_part_number_marker(marker)
                .send()
                .await
                .expect("list parts")
        }
    };
    let all = page(None, None).await;
    assert_eq!(all.bucket(), Some("lp-bucket"));
    assert_eq!(all.key(), Some("k"));
    assert_eq!(all.upload_id(), Some(id.as_str()));
    assert_eq!(all.is_truncated(), Some(false));
    let got: Vec<(i32, String, i64)> = all
        .parts()
        .iter()
        .map(|p| {
            assert!(p.last_modified().is_some());
            (
                p.part_number().unwrap(),
                p.e_tag().unwrap().to_string(),
                p.size().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);

    // Pages of 3, following NextPartNumberMarker.
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = Vec::new();
    for _ in 0..10 {
        let out = page(Some(3), marker.as_deref()).await;
        assert_eq!(out.max_parts(), Some(3));
        let nums: Vec<i32> = out
            .parts()
            .iter()
            .map(|p| p.part_number().unwrap())
            .collect();
        seen.extend(nums.iter().copied());
        pages.push(nums.clone());
        if out.is_truncated() == Some(true) {
            let next = out.next_part_number_marker().expect("NextPartNumberMarker");
            assert_eq!(
                next,
                nums.last().unwrap().to_string(),
                "marker = last part of the page"
            );
            marker = Some(next.to_string());
        } else {
            break;
        }
    }
    assert_eq!(pages, vec![vec![1, 2, 3], vec![5, 8, 13], vec![21]]);
    assert_eq!(seen, numbers.to_vec());

    // part-number-marker alone: the parts after it (it need not be a part that exists).
    let after = page(None, Some("5")).await;
    let nums: Vec<i32> = after
        .parts()
        .iter()
        .map(|p| p.part_number().unwrap())
        .collect();
    assert_eq!(nums, vec![8, 13, 21]);
    let after = page(None, Some("4")).await;
    assert_eq!(after.parts()[0].part_number(), Some(5));
    let none = page(None, Some("21")).await;
    assert!(none.parts().is_empty());
    assert_eq!(none.is_truncated(), Some(false));

    // An upload with no part yet.
    let empty_id = create(&s3, "lp-bucket", "empty").await;
    let empty = s3
        .list_parts()
        .bucket("lp-bucket")
        .key("empty")
        .upload_id(&empty_id)
        .send()
        .await
        .expect("list parts of an empty upload");
    assert!(empty.parts().is_empty());
    assert_eq!(empty.is_truncated(), Some(false));
    gw.shutdown().await;
}

#[tokio::test]
async fn list_multipart_uploads_prefix_delimiter_and_paging() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "lmu").await;
    create_bucket(&s3, "other").await;
    let other_id = create(&s3, "other", "a/1").await;
    let mut all: Vec<(String, String)> = Vec::new();
    for key in [
        "a/1", "a/2", "b/x/1", "b/x/2", "b/y", "c", "dup", "dup", "dup",
    ] {
        let id = create(&s3, "lmu", key).await;
        all.push((key.to_string(), id));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let list = |prefix: Option<&str>,
                delimiter: Option<&str>,
                key_marker: Option<&str>,
                id_marker: Option<&str>,
                max: Option<i32>| {
        let s3 = s3.clone();
        let (prefix, delimiter, key_marker, id_marker) = (
            prefix.map(str::to_string),
            delimiter.map(str::to_string),
            key_marker.map(str::to_string),
            id_marker.map(str::to_string),
        );
        async move {
            s3.list_multipart_uploads()
                .bucket("lmu")
                .set_prefix(prefix)
                .set_delimiter(delimiter)
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .set_max_uploads(max)
                .send()
                .await
                .expect("list multipart uploads")
        }
    };
    let pairs =
        |out: &aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput| {
            out.uploads()
                .iter()
                .map(|u| {
                    (
                        u.key().unwrap().to_string(),
                        u.upload_id().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        };
    let prefixes =
        |out: &aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput| {
            out.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_string())
                .collect::<Vec<_>>()
        };

    // Everything: sorted by key, uploads of one key in the order they were started.
    let out = list(None, None, None, None, None).await;
    assert_eq!(out.bucket(), Some("lmu"));
    assert_eq!(out.is_truncated(), Some(false));
    assert_eq!(pairs(&out), all, "uploads by key, then by initiation");
    for u in out.uploads() {
        assert!(u.initiated().is_some(), "Initiated of {:?}", u.key());
    }
    assert!(!pairs(&out).iter().any(|(_, id)| id == &other_id));

    // prefix
    let out = list(Some("b/"), None, None, None, None).await;
    assert_eq!(pairs(&out), all[2..5].to_vec());
    assert_eq!(out.prefix(), Some("b/"));

    // delimiter: keys below a "/" roll up into common prefixes
    let out = list(None, Some("/"), None, None, None).await;
    assert_eq!(pairs(&out), all[5..].to_vec());
    assert_eq!(prefixes(&out), vec!["a/", "b/"]);
    assert_eq!(out.delimiter(), Some("/"));
    let out = list(Some("b/"), Some("/"), None, None, None).await;
    assert_eq!(pairs(&out), vec![all[4].clone()]);
    assert_eq!(prefixes(&out), vec!["b/x/"]);

    // key-marker alone: keys after it
    let out = list(None, None, Some("b/x/2"), None, None).await;
    assert_eq!(pairs(&out), all[4..].to_vec());
    // key-marker with upload-id-marker: that key's uploads after the marker, then later keys
    let out = list(None, None, Some("dup"), Some(all[6].1.as_str()), None).await;
    assert_eq!(pairs(&out), all[7..].to_vec());
    let out = list(None, None, Some("c"), Some(all[5].1.as_str()), None).await;
    assert_eq!(pairs(&out), all[6..].to_vec());

    // max-uploads paging with NextKeyMarker / NextUploadIdMarker
    let mut got = Vec::new();
    let (mut km, mut im): (Option<String>, Option<String>) = (None, None);
    let mut n_pages = 0;
    for _ in 0..20 {
        let out = list(None, None, km.as_deref(), im.as_deref(), Some(2)).await;
        n_pages += 1;
        assert_eq!(out.max_uploads(), Some(2));
        let page = pairs(&out);
        assert!(page.len() <= 2, "{page:?}");
        got.extend(page.clone());
        if out.is_truncated() == Some(true) {
            assert_eq!(page.len(), 2);
            km = out.next_key_marker().map(str::to_string);
            im = out.next_upload_id_marker().map(str::to_string);
            assert_eq!(km.as_deref(), Some(page[1].0.as_str()), "NextKeyMarker");
            assert_eq!(
                im.as_deref(),
                Some(page[1].1.as_str()),
                "NextUploadIdMarker"
            );
        } else {
            break;
        }
    }
    assert_eq!(got, all, "paged listing");
    assert_eq!(n_pages, 5);

    // Aborted and completed uploads leave the listing.
    s3.abort_multipart_upload()
        .bucket("lmu")
        .key("c")
        .upload_id(&all[5].1)
        .send()
        .await
        .expect("abort");
    let e = upload(&s3, "lmu", "b/y", &all[4].1, 1, b"done").await;
    complete(&s3, "lmu", "b/y", &all[4].1, &[(1, &e)]).await;
    let out = list(None, None, None, None, None).await;
    let mut left = all.clone();
    left.remove(5);
    left.remove(4);
    assert_eq!(pairs(&out), left);
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// abort, restart, expiry, conditions

#[tokio::test]
async fn abort_removes_staged_parts_from_every_backend() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "abort").await;
    let id = create(&s3, "abort", "dir/k").await;
    upload(&s3, "abort", "dir/k", &id, 1, &random_bytes(PART)).await;
    upload(&s3, "abort", "dir/k", &id, 2, &random_bytes(1000)).await;
    assert_staged(&gw, &id);
    for d in staged_dirs(&gw, &id) {
        assert!(
            std::fs::read_dir(&d).expect("staging dir").next().is_some(),
            "{} holds the staged parts",
            d.display()
        );
    }
    let out = s3
        .abort_multipart_upload()
        .bucket("abort")
        .key("dir/k")
        .upload_id(&id)
        .send()
        .await;
    assert!(out.is_ok(), "abort: {out:?}");
    assert_not_staged(&gw, &id, "Abort");
    // Nothing of the upload is left under the bucket on any backend, and no object appeared.
    for dir in gw.backend_dirs() {
        assert!(
            !dir.join("abort").join("dir").join("k").exists(),
            "no object on {}",
            dir.display()
        );
    }
    assert_s3_err!(
        s3.get_object().bucket("abort").key("dir/k").send().await,
        404,
        "NoSuchKey"
    );
    let uploads = s3
        .list_multipart_uploads()
        .bucket("abort")
        .send()
        .await
        .expect("list uploads");
    assert!(uploads.uploads().is_empty());
    assert!(list_all_keys(&s3, "abort").await.is_empty());
    gw.shutdown().await;
}

/// A gateway whose two disks carry fault switches.
async fn faulty_gateway() -> TestGateway {
    TestGateway::start_with(Options {
        faults: true,
        ..Default::default()
    })
    .await
}

/// Files staged for publication (compositions of completions) on either disk.
fn staged_compositions(gw: &TestGateway) -> Vec<PathBuf> {
    gw.all_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".hansa/staging/"))
        .collect()
}

/// A completion that misses its quorum (one disk cannot compose) changes nothing the client
/// can see and keeps the upload whole: once the disk works again, the same
/// CompleteMultipartUpload succeeds, with the object on every backend and nothing staged left.
#[tokio::test]
async fn a_completion_that_missed_its_quorum_can_be_retried() {
    let gw = faulty_gateway().await;
    let s3 = gw.client();
    create_bucket(&s3, "again").await;
    let key = "dir/retried";
    let id = create(&s3, "again", key).await;
    let (p1, p2) = (random_bytes(PART), random_bytes(4321));
    let e1 = upload(&s3, "again", key, &id, 1, &p1).await;
    let e2 = upload(&s3, "again", key, &id, 2, &p2).await;
    let parts = [(1, e1.as_str()), (2, e2.as_str())];
    gw.faults("disk-b").update(|p| p.writes = Fault::Fail);
    let failed = s3
        .complete_multipart_upload()
        .bucket("again")
        .key(key)
        .upload_id(&id)
        .multipart_upload(completed(&parts))
        .send()
        .await;
    gw.faults("disk-b").clear();
    let failed = failed.expect_err("a completion missing a replica must fail");
    let status = failed.raw_response().map(|r| r.status().as_u16());
    assert!(
        status.is_some_and(|s| s >= 500),
        "status {status:?}: {failed:?}"
    );
    assert_s3_err!(
        s3.get_object().bucket("again").key(key).send().await,
        404,
        "NoSuchKey"
    );
    for dir in gw.backend_dirs() {
        assert!(
            !dir.join("again").join(key).exists(),
            "a failed completion made a copy visible on {}",
            dir.display()
        );
    }
    let listed = s3
        .list_parts()
        .bucket("again")
        .key(key)
        .upload_id(&id)
        .send()
        .await
        .expect("the upload is still there");
    assert_eq!(listed.parts().len(), 2);

    let done = complete(&s3, "again", key, &id, &parts).await;
    let data = concat(&[&p1, &p2]);
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&p1, &p2]).as_str()));
    let got = s3
        .get_object()
        .bucket("again")
        .key(key)
        .send()
        .await
        .expect("get");
    assert_eq!(sha256_hex(&body_of(got).await), sha256_hex(&data));
    assert_replicas(&gw, "again", key, &data);
    wait_until_gone(&gw, &id).await;
    gw.shutdown().await;
}

/// Waits until a completed upload's parts and staged compositions are gone from every disk
/// (they are removed once the object is published everywhere, right after the answer).
async fn wait_until_gone(gw: &TestGateway, upload_id: &str) {
    for _ in 0..100 {
        if staged_dirs(gw, upload_id).iter().all(|d| !d.exists())
            && staged_compositions(gw).is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_not_staged(gw, upload_id, "Complete");
    assert!(
        staged_compositions(gw).is_empty(),
        "staged compositions left: {:?}",
        staged_compositions(gw)
    );
}

/// A completion that failed made nothing visible; aborting the upload afterwards removes its
/// parts and leaves no staged composition behind.
#[tokio::test]
async fn abort_after_a_failed_completion_leaves_nothing() {
    let gw = faulty_gateway().await;
    let s3 = gw.client();
    create_bucket(&s3, "again").await;
    let key = "dir/abandoned";
    let id = create(&s3, "again", key).await;
    let e1 = upload(&s3, "again", key, &id, 1, &random_bytes(PART)).await;
    gw.faults("disk-b").update(|p| p.writes = Fault::Fail);
    let failed = s3
        .complete_multipart_upload()
        .bucket("again")
        .key(key)
        .upload_id(&id)
        .multipart_upload(completed(&[(1, e1.as_str())]))
        .send()
        .await;
    gw.faults("disk-b").clear();
    assert!(failed.is_err(), "{failed:?}");
    for dir in gw.backend_dirs() {
        assert!(
            !dir.join("again").join(key).exists(),
            "a failed completion made a copy visible on {}",
            dir.display()
        );
    }
    s3.abort_multipart_upload()
        .bucket("again")
        .key(key)
        .upload_id(&id)
        .send()
        .await
        .expect("abort");
    assert_not_staged(&gw, &id, "Abort");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !staged_compositions(&gw).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "staged compositions left: {:?}",
            staged_compositions(&gw)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.shutdown().await;
}

/// A directory that took the object's path on one disk after the upload began: that disk
/// publishes the object under its fallback name instead, and the completion succeeds.
#[tokio::test]
async fn a_completion_blocked_by_a_directory_uses_the_fallback_name() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "again").await;
    let key = "dir/blocked";
    let id = create(&s3, "again", key).await;
    let data = random_bytes(PART + 17);
    let e1 = upload(&s3, "again", key, &id, 1, &data).await;
    let blocker = gw.backend_dirs()[1].join("again").join(key);
    std::fs::create_dir_all(blocker.join("blocker")).expect("blocker directory");
    complete(&s3, "again", key, &id, &[(1, e1.as_str())]).await;
    assert_eq!(get(&s3, "again", key).await, data);
    assert!(
        blocker.is_dir(),
        "a directory that is not the upload's stays"
    );
    let fallback = gw.backend_dirs()[1]
        .join(".hansa/k/again")
        .join(sha256_hex(key.as_bytes()));
    assert_eq!(
        std::fs::read(&fallback).expect("the copy under the fallback name"),
        data
    );
    wait_until_gone(&gw, &id).await;
    gw.shutdown().await;
}

/// DeleteBucket on a bucket whose only content is an upload in progress: the gateway may abort
/// the upload and delete the bucket, or refuse with BucketNotEmpty; either way no staged part
/// may stay behind once the bucket is gone.
#[tokio::test]
async fn delete_bucket_leaves_no_staged_parts() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "gone").await;
    let id = create(&s3, "gone", "k").await;
    upload(&s3, "gone", "k", &id, 1, b"part").await;
    assert_staged(&gw, &id);
    match s3.delete_bucket().bucket("gone").send().await {
        Ok(_) => assert_not_staged(&gw, &id, "DeleteBucket"),
        Err(e) => {
            // The S3 answer for a bucket that still has uploads: BucketNotEmpty (409).
            let err = hansa_conformance::s3_err(&e);
            assert_eq!(
                (err.status, err.code.as_deref()),
                (409, Some("BucketNotEmpty")),
                "{err:?}"
            );
            s3.abort_multipart_upload()
                .bucket("gone")
                .key("k")
                .upload_id(&id)
                .send()
                .await
                .expect("abort");
            s3.delete_bucket()
                .bucket("gone")
                .send()
                .await
                .expect("delete bucket after abort");
            assert_not_staged(&gw, &id, "Abort + DeleteBucket");
        }
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn restart_between_parts() {
    let mut gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "rs-bucket").await;
    let p1 = random_bytes(PART);
    let p2 = random_bytes(PART);
    let p3 = random_bytes(333_333);
    let id = s3
        .create_multipart_upload()
        .bucket("rs-bucket")
        .key("k")
        .content_type("application/x-restarted")
        .metadata("kept", "yes")
        .send()
        .await
        .expect("create")
        .upload_id()
        .unwrap()
        .to_string();
    let e1 = upload(&s3, "rs-bucket", "k", &id, 1, &p1).await;

    gw.restart().await;
    let s3 = gw.client();
    let uploads = s3
        .list_multipart_uploads()
        .bucket("rs-bucket")
        .send()
        .await
        .expect("list uploads after restart");
    let ids: Vec<&str> = uploads
        .uploads()
        .iter()
        .filter_map(|u| u.upload_id())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
    let listed = s3
        .list_parts()
        .bucket("rs-bucket")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts after restart");
    assert_eq!(listed.parts().len(), 1);
    assert_eq!(listed.parts()[0].e_tag(), Some(e1.as_str()));
    assert_eq!(listed.parts()[0].size(), Some(PART as i64));

    let e2 = upload(&s3, "rs-bucket", "k", &id, 2, &p2).await;
    gw.restart().await;
    let s3 = gw.client();
    let e3 = upload(&s3, "rs-bucket", "k", &id, 3, &p3).await;
    let out = complete(&s3, "rs-bucket", "k", &id, &[(1, &e1), (2, &e2), (3, &e3)]).await;
    assert_eq!(out.e_tag(), Some(multipart_etag(&[&p1, &p2, &p3]).as_str()));
    let data = concat(&[&p1, &p2, &p3]);
    let got = s3
        .get_object()
        .bucket("rs-bucket")
        .key("k")
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_type(), Some("application/x-restarted"));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("kept"))
            .map(String::as_str),
        Some("yes")
    );
    assert_eq!(sha256_hex(&body_of(got).await), sha256_hex(&data));
    wait_until_gone(&gw, &id).await;
    assert_replicas(&gw, "rs-bucket", "k", &data);

    // And the completed object survives one more restart.
    gw.restart().await;
    let s3 = gw.client();
    assert_eq!(
        sha256_hex(&get(&s3, "rs-bucket", "k").await),
        sha256_hex(&data)
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn abandoned_uploads_expire() {
    let gw = TestGateway::start_with(Options {
        upload_max_age_secs: Some(2),
        upload_cleanup_interval_secs: Some(1),
        ..Options::default()
    })
    .await;
    let s3 = gw.client();
    create_bucket(&s3, "exp").await;
    let id = create(&s3, "exp", "abandoned").await;
    upload(&s3, "exp", "abandoned", &id, 1, &random_bytes(100_000)).await;
    assert_staged(&gw, &id);
    // One completed at once is an object, which no cleanup touches.
    let done = create(&s3, "exp", "completed").await;
    let e = upload(&s3, "exp", "completed", &done, 1, b"kept").await;
    complete(&s3, "exp", "completed", &done, &[(1, &e)]).await;

    let started = std::time::Instant::now();
    loop {
        let out = s3
            .list_multipart_uploads()
            .bucket("exp")
            .send()
            .await
            .expect("list uploads");
        if out.uploads().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "upload older than upload_max_age_secs = 2 still listed after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Its parts leave the backends with it (allow the abort a moment to finish).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while staged_dirs(&gw, &id).iter().any(|d| d.exists()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_not_staged(&gw, &id, "expiry");
    assert_s3_err!(
        s3.upload_part()
            .bucket("exp")
            .key("abandoned")
            .upload_id(&id)
            .part_number(2)
            .body(ByteStream::from_static(b"late"))
            .send()
            .await,
        404,
        "NoSuchUpload"
    );
    assert_eq!(get(&s3, "exp", "completed").await, b"kept");
    gw.shutdown().await;
}

#[tokio::test]
async fn complete_with_conditions() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "cond").await;
    put(&s3, "cond", "exists", b"original").await;
    let original_etag = quoted_md5(b"original");

    let start = |key: &'static str| {
        let s3 = s3.clone();
        async move {
            let id = create(&s3, "cond", key).await;
            let e = upload(&s3, "cond", key, &id, 1, b"from the upload").await;
            (id, e)
        }
    };

    // If-None-Match: * on a key that exists
    let (id, e) = start("exists").await;
    assert_s3_err!(
        s3.complete_multipart_upload()
            .bucket("cond")
            .key("exists")
            .upload_id(&id)
            .multipart_upload(completed(&[(1, &e)]))
            .if_none_match("*")
            .send()
            .await,
        412,
        "PreconditionFailed"
    );
    assert_eq!(get(&s3, "cond", "exists").await, b"original");
    // S3 keeps the upload after a failed precondition; either way, Abort (or NoSuchUpload if
    // the gateway dropped it) leaves no staged part behind.
    if let Err(e) = s3
        .abort_multipart_upload()
        .bucket("cond")
        .key("exists")
        .upload_id(&id)
        .send()
        .await
    {
        let err = hansa_conformance::s3_err(&e);
        assert_eq!(err.code.as_deref(), Some("NoSuchUpload"), "{err:?}");
    }
    assert_not_staged(&gw, &id, "a failed precondition and Abort");

    // If-None-Match: * on a key that does not exist
    let (id, e) = start("fresh").await;
    s3.complete_multipart_upload()
        .bucket("cond")
        .key("fresh")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e)]))
        .if_none_match("*")
        .send()
        .await
        .expect("If-None-Match: * on a new key");
    assert_eq!(get(&s3, "cond", "fresh").await, b"from the upload");

    // If-Match with another ETag, then with the current one
    let (id, e) = start("exists").await;
    assert_s3_err!(
        s3.complete_multipart_upload()
            .bucket("cond")
            .key("exists")
            .upload_id(&id)
            .multipart_upload(completed(&[(1, &e)]))
            .if_match("\"0123456789abcdef0123456789abcdef\"")
            .send()
            .await,
        412,
        "PreconditionFailed"
    );
    assert_eq!(get(&s3, "cond", "exists").await, b"original");
    let (id, e) = start("exists").await;
    s3.complete_multipart_upload()
        .bucket("cond")
        .key("exists")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e)]))
        .if_match(&original_etag)
        .send()
        .await
        .expect("If-Match with the current ETag");
    assert_eq!(get(&s3, "cond", "exists").await, b"from the upload");
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// a retried Complete

/// A client that missed Complete's answer and sends it again gets the same 200 and result
/// (S3 does this for a while after completion, and the SDKs rely on it); nothing is written.
#[tokio::test]
async fn retried_complete_answers_like_the_first() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "retry").await;
    let key = "dir/retried ✓.bin";
    let p1 = random_bytes(PART);
    let p2 = random_bytes(777);
    let id = create(&s3, "retry", key).await;
    let e1 = upload(&s3, "retry", key, &id, 1, &p1).await;
    let e2 = upload(&s3, "retry", key, &id, 2, &p2).await;
    let parts = [(1, e1.as_str()), (2, e2.as_str())];
    let first = complete(&s3, "retry", key, &id, &parts).await;
    let etag = multipart_etag(&[&p1, &p2]);
    assert_eq!(first.e_tag(), Some(etag.as_str()));
    let before = s3
        .head_object()
        .bucket("retry")
        .key(key)
        .send()
        .await
        .expect("head");

    for attempt in 1..=2 {
        let again = s3
            .complete_multipart_upload()
            .bucket("retry")
            .key(key)
            .upload_id(&id)
            .multipart_upload(completed(&parts))
            .send()
            .await
            .unwrap_or_else(|e| panic!("retried Complete #{attempt}: {e:?}"));
        assert_eq!(again.e_tag(), first.e_tag(), "retry #{attempt}");
        assert_eq!(again.bucket(), first.bucket());
        assert_eq!(again.key(), first.key());
        assert_eq!(again.location(), first.location());
        assert_eq!(again.version_id(), first.version_id());
    }

    // The object is the one the first Complete made: same bytes, ETag and modification time.
    let got = s3
        .get_object()
        .bucket("retry")
        .key(key)
        .send()
        .await
        .expect("get");
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(got.last_modified(), before.last_modified());
    assert_eq!(
        sha256_hex(&body_of(got).await),
        sha256_hex(&concat(&[&p1, &p2]))
    );
    assert_replicas(&gw, "retry", key, &concat(&[&p1, &p2]));

    // A request naming a different number of parts is not the same request.
    assert_s3_err!(
        s3.complete_multipart_upload()
            .bucket("retry")
            .key(key)
            .upload_id(&id)
            .multipart_upload(completed(&parts[..1]))
            .send()
            .await,
        404,
        "NoSuchUpload"
    );
    // The upload id belongs to its key.
    assert_s3_err!(
        s3.complete_multipart_upload()
            .bucket("retry")
            .key("other-key")
            .upload_id(&id)
            .multipart_upload(completed(&parts))
            .send()
            .await,
        404,
        "NoSuchUpload"
    );
    gw.shutdown().await;
}

/// The retried answer carries the object's checksum like the first one did.
#[tokio::test]
async fn retried_complete_repeats_the_checksum() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "retry-sum").await;
    let p1 = random_bytes(PART);
    let p2 = random_bytes(4321);
    let id = create_with_checksum(&s3, "retry-sum", "k", ChecksumAlgorithm::Crc32).await;
    let mut done = Vec::new();
    for (n, p) in [(1, &p1), (2, &p2)] {
        let sum = checksum_b64("crc32", p);
        let out = s3
            .upload_part()
            .bucket("retry-sum")
            .key("k")
            .upload_id(&id)
            .part_number(n)
            .checksum_crc32(&sum)
            .body(ByteStream::from(p.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {n}: {e:?}"));
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().expect("ETag"))
                .checksum_crc32(sum)
                .build(),
        );
    }
    let send = || {
        s3.complete_multipart_upload()
            .bucket("retry-sum")
            .key("k")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done.clone()))
                    .build(),
            )
            .send()
    };
    let first = send().await.expect("complete");
    let want = composite_checksum("crc32", &[&p1, &p2]);
    assert_eq!(first.checksum_crc32(), Some(want.as_str()));
    let again = send().await.expect("retried complete");
    assert_eq!(again.e_tag(), first.e_tag());
    assert_eq!(again.checksum_crc32(), first.checksum_crc32());
    assert_eq!(again.checksum_type(), first.checksum_type());
    assert_eq!(get(&s3, "retry-sum", "k").await, concat(&[&p1, &p2]));
    gw.shutdown().await;
}

/// Only the upload that made the current object is answered: an aborted upload, a made-up id,
/// and a completed upload whose object was since replaced still get NoSuchUpload.
#[tokio::test]
async fn retried_complete_needs_the_current_object() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "retry-no").await;
    let complete_again = |key: &'static str, id: String, etag: String| {
        let s3 = s3.clone();
        async move {
            s3.complete_multipart_upload()
                .bucket("retry-no")
                .key(key)
                .upload_id(id)
                .multipart_upload(completed(&[(1, &etag)]))
                .send()
                .await
        }
    };

    // Aborted, on a key whose object another upload made.
    let done = create(&s3, "retry-no", "k").await;
    let e = upload(&s3, "retry-no", "k", &done, 1, b"completed").await;
    complete(&s3, "retry-no", "k", &done, &[(1, &e)]).await;
    let aborted = create(&s3, "retry-no", "k").await;
    let ea = upload(&s3, "retry-no", "k", &aborted, 1, b"aborted").await;
    s3.abort_multipart_upload()
        .bucket("retry-no")
        .key("k")
        .upload_id(&aborted)
        .send()
        .await
        .expect("abort");
    assert_s3_err!(complete_again("k", aborted, ea).await, 404, "NoSuchUpload");
    // Made up, of the gateway's shape and not.
    for id in ["0123456789abcdef0123456789abcdef", "not-an-upload-id"] {
        assert_s3_err!(
            complete_again("k", id.to_string(), e.clone()).await,
            404,
            "NoSuchUpload"
        );
    }
    // The completed one is still answered...
    complete_again("k", done.clone(), e.clone())
        .await
        .expect("retry of the upload that made the object");
    // ...until a plain PUT replaces its object.
    put(&s3, "retry-no", "k", b"overwritten").await;
    assert_s3_err!(
        complete_again("k", done.clone(), e.clone()).await,
        404,
        "NoSuchUpload"
    );
    assert_eq!(get(&s3, "retry-no", "k").await, b"overwritten");
    // Or once the object is deleted.
    let id = create(&s3, "retry-no", "gone").await;
    let eg = upload(&s3, "retry-no", "gone", &id, 1, b"soon deleted").await;
    complete(&s3, "retry-no", "gone", &id, &[(1, &eg)]).await;
    s3.delete_object()
        .bucket("retry-no")
        .key("gone")
        .send()
        .await
        .expect("delete");
    assert_s3_err!(complete_again("gone", id, eg).await, 404, "NoSuchUpload");
    assert_s3_err!(
        s3.get_object().bucket("retry-no").key("gone").send().await,
        404,
        "NoSuchKey"
    );
    gw.shutdown().await;
}
