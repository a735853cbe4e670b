//! A backend that cannot be reached does not stop the gateway: it starts, reports the backend
//! as not ready, and keeps serving (and, with a write quorum the other replicas meet, accepting)
//! what the other replicas hold. Needs no external server: the unreachable backend is an S3
//! endpoint on a 127.0.0.1 port nobody listens on.

use hansa_conformance::{random_bytes, Options, TestGateway};

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

async fn gateway_with_a_dead_backend() -> TestGateway {
    let port = closed_port();
    let extra = format!(
        r#"
[[backend]]
id = "dead"
kind = "s3"
preset = "custom"
endpoint = "http://127.0.0.1:{port}"
bucket = "nowhere"
allow_http = true
access_key_id = "AKIDEXAMPLE"
secret_access_key = "not-a-secret"
retries = 0
connect_timeout_secs = 1

[policy.default]
backends = ["dead", "disk-a"]
replicas = 2
write_quorum = 1
read_order = ["dead", "disk-a"]
"#
    );
    TestGateway::start_with(Options {
        extra_toml: extra,
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_backend_does_not_stop_reads_or_writes() {
    let gw = gateway_with_a_dead_backend().await;
    let s3 = gw.client();
    s3.create_bucket()
        .bucket("alive")
        .send()
        .await
        .expect("create bucket");

    let body = random_bytes(300_000);
    s3.put_object()
        .bucket("alive")
        .key("k")
        .body(body.clone().into())
        .send()
        .await
        .expect("PUT with one of two replicas reachable (write quorum 1)");
    let got = s3
        .get_object()
        .bucket("alive")
        .key("k")
        .send()
        .await
        .expect("GET fails over from the dead backend")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert!(got == body, "GET returned other bytes");

    // A multipart upload whose second target never starts: parts and completion go to the
    // reachable one, and the object reads back whole.
    let created = s3
        .create_multipart_upload()
        .bucket("alive")
        .key("mp")
        .send()
        .await
        .expect("create upload");
    let upload_id = created.upload_id().expect("upload id").to_string();
    let parts_data = [random_bytes(5 << 20), random_bytes(1234)];
    let mut parts = Vec::new();
    for (i, data) in parts_data.iter().enumerate() {
        let number = i as i32 + 1;
        let part = s3
            .upload_part()
            .bucket("alive")
            .key("mp")
            .upload_id(&upload_id)
            .part_number(number)
            .body(data.clone().into())
            .send()
            .await
            .expect("upload part");
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().unwrap_or_default())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("alive")
        .key("mp")
        .upload_id(&upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete with one of two replicas reachable");
    let got = s3
        .get_object()
        .bucket("alive")
        .key("mp")
        .send()
        .await
        .expect("GET the multipart object")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert!(
        got == parts_data.concat(),
        "multipart object read back with other bytes"
    );
    gw.shutdown().await;
}
