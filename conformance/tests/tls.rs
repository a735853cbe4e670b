//! HTTPS listener: aws-sdk-s3 over TLS (where SDKs send aws-chunked bodies with checksum
//! trailers) trusting a self-signed certificate.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use hansa_conformance::{random_bytes, sha256_hex, Options, TestGateway};

#[tokio::test]
async fn sdk_over_https_with_checksum_trailers() {
    let gw = TestGateway::start_with(Options {
        tls: true,
        ..Options::default()
    })
    .await;
    assert!(gw.tls_addr.is_some(), "TLS listener started");
    let s3 = gw.tls_client();
    s3.create_bucket()
        .bucket("secure")
        .send()
        .await
        .expect("create over TLS");
    let data = random_bytes(3 * 1024 * 1024 + 17);
    for algo in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc64Nvme,
    ] {
        let key = format!("obj-{}", algo.as_str());
        // A streaming body of known length: the SDK sends STREAMING-UNSIGNED-PAYLOAD-TRAILER.
        let path = gw.dir.path().join(format!("upload-{}", algo.as_str()));
        std::fs::write(&path, &data).expect("write upload file");
        let body = ByteStream::from_path(&path).await.expect("stream");
        let out = s3
            .put_object()
            .bucket("secure")
            .key(&key)
            .checksum_algorithm(algo.clone())
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key} over TLS: {e:?}"));
        assert!(out.e_tag().is_some());
        let got = s3
            .get_object()
            .bucket("secure")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get over TLS");
        assert_eq!(got.content_encoding(), None, "aws-chunked is not stored");
        assert_eq!(got.content_length(), Some(data.len() as i64));
        let bytes = got.body.collect().await.expect("body").into_bytes();
        assert_eq!(sha256_hex(&bytes), sha256_hex(&data), "{key}");
    }
    // An in-memory body too, and the plain listener still works alongside.
    s3.put_object()
        .bucket("secure")
        .key("small")
        .body(b"small over tls".to_vec().into())
        .send()
        .await
        .expect("small put");
    let plain = gw.client();
    assert_eq!(
        hansa_conformance::get(&plain, "secure", "small").await,
        b"small over tls"
    );
    let keys = hansa_conformance::list_all_keys(&s3, "secure").await;
    assert_eq!(keys.len(), 5);
    gw.shutdown().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_fails_cleanly() {
    let gw = TestGateway::start_with(Options {
        tls: true,
        ..Options::default()
    })
    .await;
    let addr = gw.tls_addr.expect("tls addr");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("write");
    let resp =
        hansa_conformance::raw::read_response(&mut stream, std::time::Duration::from_secs(5)).await;
    assert!(
        resp.is_none_or(|r| r.status != 200),
        "plaintext served on the TLS port"
    );
    // The TLS listener still works after the garbage.
    let s3 = gw.tls_client();
    s3.list_buckets().send().await.expect("TLS still serving");
    gw.shutdown().await;
}
