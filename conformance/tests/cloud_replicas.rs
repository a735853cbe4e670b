//! End-to-end: `hansa serve` with a policy of three replicas (write quorum 3) on a local
//! directory, the S3 server (moto) and Azurite, driven by aws-sdk-s3. Every object must be on
//! all three, with its bytes, content type and user metadata, as each server's own client sees
//! it: the file system (file + `user.` extended attributes), a second aws-sdk-s3 client pointed
//! at moto, and Azure's Blob REST API (Shared Key) against Azurite. Reads fail over when copies
//! are deleted behind the gateway's back.
//!
//! The servers come from `scripts/test-servers.sh` (their endpoints in `HANSA_TEST_*`); without
//! them the tests fail with how to run them, unless `HANSA_SKIP_CLOUD_TESTS=1` opts out
//! knowingly (the convention of backends/tests/cloud.rs).

use hansa_backends::physical_name;
use hansa_conformance::{
    cloud_backends_toml, create_bucket, get, random_bytes, sha256_hex, test_server_var, TestGateway,
};
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// Servers

struct Servers {
    s3_endpoint: String,
    s3_bucket: String,
    s3_access_key: String,
    s3_secret_key: String,
    azure_endpoint: String,
    azure_account: String,
    azure_key: String,
    azure_container: String,
}

impl Servers {
    fn from_env() -> Option<Servers> {
        Some(Servers {
            s3_endpoint: test_server_var("HANSA_TEST_S3_ENDPOINT")?,
            s3_bucket: test_server_var("HANSA_TEST_S3_BUCKET")?,
            s3_access_key: test_server_var("HANSA_TEST_S3_ACCESS_KEY")?,
            s3_secret_key: test_server_var("HANSA_TEST_S3_SECRET_KEY")?,
            azure_endpoint: test_server_var("HANSA_TEST_AZURE_ENDPOINT")?,
            azure_account: test_server_var("HANSA_TEST_AZURE_ACCOUNT")?,
            azure_key: test_server_var("HANSA_TEST_AZURE_KEY")?,
            azure_container: test_server_var("HANSA_TEST_AZURE_CONTAINER")?,
        })
    }
}

/// A gateway whose default policy keeps three replicas: `disk-a` (local), `moto` (s3) and
/// `azurite` (azure), each cloud backend under a prefix of its own for this test.
struct Setup {
    gw: TestGateway,
    servers: Servers,
    moto_prefix: String,
    azure_prefix: String,
}

async fn start(servers: Servers, read_order: &[&str]) -> Setup {
    start_with(servers, read_order, 3, false).await
}

/// [`start`] with a write quorum of `quorum` (of the three replicas) and, with `faults`, a
/// fault switch on every backend (`TestGateway::faults("moto")`, …).
async fn start_with(servers: Servers, read_order: &[&str], quorum: usize, faults: bool) -> Setup {
    let run = format!("e2e/{:016x}", rand::random::<u64>());
    let moto_prefix = format!("{run}/moto");
    let azure_prefix = format!("{run}/azurite");
    let order = read_order
        .iter()
        .map(|b| format!("{b:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut backends = cloud_backends_toml(&moto_prefix, &azure_prefix)
        .expect("the servers' variables were read before");
    if faults {
        backends = backends.replace("\nretries = 1\n", "\nretries = 1\nfaults = {}\n");
    }
    let extra = format!(
        r#"{backends}
[policy.default]
backends = ["disk-a", "moto", "azurite"]
replicas = 3
write_quorum = {quorum}
read_order = [{order}]
[repair]
max_backoff_secs = 1
anti_entropy_interval_secs = 0
"#
    );
    let gw = TestGateway::start_with(hansa_conformance::Options {
        extra_toml: extra,
        faults,
        ..Default::default()
    })
    .await;
    Setup {
        gw,
        servers,
        moto_prefix,
        azure_prefix,
    }
}

// ---------------------------------------------------------------------------------------------
// What a copy looks like, read with each server's own client

/// One copy as read straight from a backend.
#[derive(Debug)]
struct Copy {
    bytes: Vec<u8>,
    content_type: Option<String>,
    /// User metadata, names without the provider's prefix, decoded where the layout encodes
    /// them (Azure).
    user_metadata: BTreeMap<String, String>,
    /// Hansa's own entries (`hansa-*`): on object stores as metadata, on disk from the stamp.
    hansa: BTreeMap<String, String>,
}

/// The local copy: the file, and its extended attributes read through the kernel's xattr
/// interface (Python's `os.getxattr`, as `getfattr` would; python3 is needed by
/// scripts/test-servers.sh anyway, and `getfattr` is not always installed).
fn read_local(root: &Path, bucket: &str, key: &str) -> Option<Copy> {
    let path = root.join(physical_name(bucket, key).as_str());
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    const SCRIPT: &str = r#"
import json, os, sys
p = sys.argv[1]
x = {n: os.getxattr(p, n).decode() for n in os.listxattr(p)}
attrs = json.loads(x.get("user.hansa.attrs", "{}"))
stamp = json.loads(x.get("user.hansa.stamp", "{}"))
out = {"content_type": attrs.get("content_type"), "mime_type": x.get("user.mime_type"),
       "user_metadata": attrs.get("user_metadata") or {},
       "stamp": {k: str(v) for k, v in stamp.items()}}
# One line per entry, tab-separated, so the test needs no JSON parser.
print("content_type\t" + (out["content_type"] or ""))
print("mime_type\t" + (out["mime_type"] or ""))
for k, v in sorted(out["user_metadata"].items()):
    print("meta\t" + k + "\t" + v)
for k, v in sorted(out["stamp"].items()):
    print("stamp\t" + k + "\t" + v)
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&path)
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .expect("run python3 to read extended attributes");
    assert!(
        output.status.success(),
        "reading the xattrs of {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8 from python");
    let mut copy = Copy {
        bytes,
        content_type: None,
        user_metadata: BTreeMap::new(),
        hansa: BTreeMap::new(),
    };
    let mut mime_type = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.splitn(3, '\t').collect();
        match fields.as_slice() {
            ["content_type", v] if !v.is_empty() => copy.content_type = Some(v.to_string()),
            ["mime_type", v] if !v.is_empty() => mime_type = Some(v.to_string()),
            ["meta", k, v] => {
                copy.user_metadata.insert(k.to_string(), v.to_string());
            }
            ["stamp", k, v] => {
                copy.hansa.insert(format!("hansa-{k}"), v.to_string());
            }
            _ => {}
        }
    }
    assert_eq!(
        mime_type,
        copy.content_type,
        "user.mime_type of {}",
        path.display()
    );
    Some(copy)
}

fn moto_client(s: &Servers) -> aws_sdk_s3::Client {
    let creds = aws_credential_types::Credentials::new(
        &s.s3_access_key,
        &s.s3_secret_key,
        None,
        None,
        "moto",
    );
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(&s.s3_endpoint)
            .force_path_style(true)
            .build(),
    )
}

/// Splits metadata into user metadata and Hansa's `hansa-*` entries (user metadata named
/// `hansa-…` by the client is stored as `hansa-u-…`).
fn split_metadata(meta: impl IntoIterator<Item = (String, String)>) -> Copy {
    let mut copy = Copy {
        bytes: Vec::new(),
        content_type: None,
        user_metadata: BTreeMap::new(),
        hansa: BTreeMap::new(),
    };
    for (k, v) in meta {
        if let Some(user) = k.strip_prefix("hansa-u-") {
            copy.user_metadata.insert(format!("hansa-{user}"), v);
        } else if k.starts_with("hansa-") {
            copy.hansa.insert(k, v);
        } else {
            copy.user_metadata.insert(k, v);
        }
    }
    copy
}

/// The copy on moto, read with aws-sdk-s3 (its metadata as S3 metadata).
async fn read_moto(setup: &Setup, bucket: &str, key: &str) -> Option<Copy> {
    let name = format!(
        "{}/{}",
        setup.moto_prefix,
        physical_name(bucket, key).as_str()
    );
    let s3 = moto_client(&setup.servers);
    let out = match s3
        .get_object()
        .bucket(&setup.servers.s3_bucket)
        .key(&name)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => return None,
        Err(e) => panic!("moto GET {name}: {e:?}"),
    };
    let mut copy = split_metadata(out.metadata().cloned().unwrap_or_default());
    copy.content_type = out.content_type().map(str::to_string);
    copy.bytes = out.body.collect().await.expect("moto body").to_vec();
    // A multipart upload completed natively on S3 keeps the metadata of its creation (when
    // size and ETag were unknown) plus `hansa-mpu: <upload id>`; the stamp of the completion
    // is the metadata of the side object `.hansa/mpu-attrs/<upload id>` (docs/LAYOUT.md).
    if let Some(upload) = copy.hansa.get("hansa-mpu").cloned() {
        let side = format!("{}/.hansa/mpu-attrs/{upload}", setup.moto_prefix);
        let head = s3
            .head_object()
            .bucket(&setup.servers.s3_bucket)
            .key(&side)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto HEAD {side} (stamp of {name}): {e:?}"));
        let stamp = split_metadata(head.metadata().cloned().unwrap_or_default());
        copy.hansa.extend(stamp.hansa);
    }
    Some(copy)
}

async fn delete_on_moto(setup: &Setup, bucket: &str, key: &str) {
    let name = format!(
        "{}/{}",
        setup.moto_prefix,
        physical_name(bucket, key).as_str()
    );
    moto_client(&setup.servers)
        .delete_object()
        .bucket(&setup.servers.s3_bucket)
        .key(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("moto DELETE {name}: {e:?}"));
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// An Azure Blob REST request signed with the account's Shared Key (2021-08-06 API).
async fn azure_request(s: &Servers, method: reqwest::Method, blob: &str) -> reqwest::Response {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let date = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .expect("date");
    let version = "2021-08-06";
    // The endpoint is path-style (`http://127.0.0.1:PORT/<account>`), so the canonicalized
    // resource repeats the account: /<account>/<account>/<container>/<blob>.
    let url_path = format!(
        "{}/{}",
        s.azure_container,
        hansa_conformance::encode_key(blob)
    );
    let endpoint_path = s
        .azure_endpoint
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, p)| format!("/{p}"))
        .unwrap_or_default();
    let to_sign = format!(
        "{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{}{endpoint_path}/{url_path}",
        s.azure_account
    );
    let key = b64.decode(&s.azure_key).expect("Azure key is base64");
    let signature = b64.encode(hmac_sha256(&key, to_sign.as_bytes()));
    reqwest::Client::new()
        .request(method, format!("{}/{url_path}", s.azure_endpoint))
        .header("x-ms-date", date)
        .header("x-ms-version", version)
        .header(
            "Authorization",
            format!("SharedKey {}:{signature}", s.azure_account),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("Azurite {blob}: {e}"))
}

/// Reverses the layout's Azure metadata-name spelling (`_` + two hex digits per byte).
fn azure_decode_name(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'_' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8 name")
}

/// The copy on Azurite, read with a Shared Key-signed `Get Blob`.
async fn read_azurite(setup: &Setup, bucket: &str, key: &str) -> Option<Copy> {
    let blob = format!(
        "{}/{}",
        setup.azure_prefix,
        physical_name(bucket, key).as_str()
    );
    let resp = azure_request(&setup.servers, reqwest::Method::GET, &blob).await;
    if resp.status() == 404 {
        return None;
    }
    assert_eq!(resp.status(), 200, "Azurite GET {blob}: {resp:?}");
    let headers = resp.headers().clone();
    let meta = headers.iter().filter_map(|(n, v)| {
        let name = n.as_str().strip_prefix("x-ms-meta-")?;
        Some((
            azure_decode_name(name),
            v.to_str().expect("ascii metadata").to_string(),
        ))
    });
    let mut copy = split_metadata(meta.collect::<Vec<_>>());
    copy.content_type = headers
        .get("content-type")
        .map(|v| v.to_str().expect("content type").to_string());
    copy.bytes = resp.bytes().await.expect("Azurite body").to_vec();
    Some(copy)
}

async fn delete_on_azurite(setup: &Setup, bucket: &str, key: &str) {
    let blob = format!(
        "{}/{}",
        setup.azure_prefix,
        physical_name(bucket, key).as_str()
    );
    let resp = azure_request(&setup.servers, reqwest::Method::DELETE, &blob).await;
    assert_eq!(resp.status(), 202, "Azurite DELETE {blob}: {resp:?}");
}

fn local_root(setup: &Setup) -> std::path::PathBuf {
    setup.gw.backend_dirs()[0].clone()
}

// ---------------------------------------------------------------------------------------------
// The objects

struct Object {
    key: &'static str,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    metadata: Vec<(&'static str, &'static str)>,
    multipart: bool,
}

fn objects() -> Vec<Object> {
    let meta = vec![("color", "blue"), ("project-name", "hansa e2e")];
    vec![
        Object {
            key: "small.txt",
            body: b"hello, three replicas\n".to_vec(),
            content_type: Some("text/plain; charset=utf-8"),
            metadata: meta.clone(),
            multipart: false,
        },
        Object {
            key: "über/日本語 ファイル.txt",
            body: "unicode key, unicode body: ünïcödé\n".as_bytes().to_vec(),
            content_type: Some("text/plain"),
            metadata: vec![("lang", "ja")],
            multipart: false,
        },
        Object {
            // Not a plain name on every kind: stored under `.hansa/k/<bucket>/<sha256>`.
            key: "a//b",
            body: random_bytes(1000),
            content_type: Some("application/x-double-slash"),
            metadata: vec![("origin", "a-double-slash-key")],
            multipart: false,
        },
        Object {
            key: "empty",
            body: Vec::new(),
            content_type: None,
            metadata: Vec::new(),
            multipart: false,
        },
        Object {
            // Larger than the part size (5 MiB in the test gateway): object_store writes it
            // to moto and Azurite with a multipart upload of its own.
            key: "big/12mib.bin",
            body: random_bytes(12 * 1024 * 1024 + 7),
            content_type: Some("application/octet-stream"),
            metadata: meta.clone(),
            multipart: false,
        },
        Object {
            // A multipart upload through the gateway, two parts.
            key: "mpu/two-parts.bin",
            body: random_bytes(5 * 1024 * 1024 + 1234 * 1024 + 5),
            content_type: Some("video/x-test"),
            metadata: meta,
            multipart: true,
        },
    ]
}

async fn upload(s3: &aws_sdk_s3::Client, bucket: &str, o: &Object) {
    let meta: std::collections::HashMap<String, String> = o
        .metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !o.multipart {
        s3.put_object()
            .bucket(bucket)
            .key(o.key)
            .set_content_type(o.content_type.map(str::to_string))
            .set_metadata(Some(meta))
            .body(o.body.clone().into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {}: {e:?}", o.key));
        return;
    }
    let create = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(o.key)
        .set_content_type(o.content_type.map(str::to_string))
        .set_metadata(Some(meta))
        .send()
        .await
        .expect("CreateMultipartUpload");
    let upload_id = create.upload_id().expect("upload id");
    let split = 5 * 1024 * 1024;
    let mut parts = Vec::new();
    for (n, chunk) in [&o.body[..split], &o.body[split..]].into_iter().enumerate() {
        let n = n as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(o.key)
            .upload_id(upload_id)
            .part_number(n)
            .body(chunk.to_vec().into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("UploadPart {n}: {e:?}"));
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(o.key)
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("CompleteMultipartUpload");
}

/// Checks one backend's copy of `o`: bytes, user metadata, `content_type` (the object's, as
/// the gateway reports it) and Hansa's stamp.
fn check_copy(backend: &str, o: &Object, content_type: Option<&str>, copy: Option<Copy>) {
    let copy = copy.unwrap_or_else(|| panic!("{backend}: no copy of {:?}", o.key));
    assert_eq!(
        copy.bytes.len(),
        o.body.len(),
        "{backend}: size of {:?}",
        o.key
    );
    assert_eq!(
        sha256_hex(&copy.bytes),
        sha256_hex(&o.body),
        "{backend}: bytes of {:?}",
        o.key
    );
    let expected_meta: BTreeMap<String, String> = o
        .metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        copy.user_metadata, expected_meta,
        "{backend}: user metadata of {:?}",
        o.key
    );
    match content_type {
        Some(ct) => assert_eq!(
            copy.content_type.as_deref(),
            Some(ct),
            "{backend}: content type of {:?}",
            o.key
        ),
        // Object stores answer with a default type of their own; Hansa marks that.
        None if backend == "disk-a" => assert_eq!(copy.content_type, None, "{backend}"),
        None => assert_eq!(
            copy.hansa.get("hansa-no-content-type").map(String::as_str),
            Some("1"),
            "{backend}: {:?} has no content type: {copy:?}",
            o.key
        ),
    }
    // Hansa's stamp: the size, and the real key where the name does not show it. S3's
    // multipart protocol fixes metadata when an upload starts, before size and ETag are
    // known: such a copy's stamp has neither (docs/LAYOUT.md).
    let expected_size = if o.multipart && backend == "moto" {
        assert_eq!(copy.hansa.get("hansa-etag"), None, "{backend}: {copy:?}");
        None
    } else {
        Some(o.body.len().to_string())
    };
    assert_eq!(
        copy.hansa.get("hansa-size"),
        expected_size.as_ref(),
        "{backend}: hansa-size of {:?} in {:?}",
        o.key,
        copy.hansa
    );
    if physical_name("e2e", o.key).is_fallback() || backend == "disk-a" {
        assert_eq!(
            copy.hansa.get("hansa-key").map(String::as_str),
            Some(o.key),
            "{backend}: the key recorded with {:?}",
            o.key
        );
    }
    assert!(
        copy.hansa.contains_key("hansa-version_id") || copy.hansa.contains_key("hansa-version"),
        "{backend}: version of {:?} in {:?}",
        o.key,
        copy.hansa
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

const BUCKET: &str = "e2e";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_local_moto_and_azurite() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let setup = start(servers, &["disk-a", "moto", "azurite"]).await;
    let s3 = setup.gw.client();
    create_bucket(&s3, BUCKET).await;

    let objects = objects();
    for o in &objects {
        upload(&s3, BUCKET, o).await;
    }
    for o in &objects {
        // Through the gateway…
        let got = get(&s3, BUCKET, o.key).await;
        assert_eq!(
            sha256_hex(&got),
            sha256_hex(&o.body),
            "gateway GET {:?}",
            o.key
        );
        let head = s3
            .head_object()
            .bucket(BUCKET)
            .key(o.key)
            .send()
            .await
            .expect("HEAD");
        // Without a Content-Type of its own the SDK may send a default one; the copies must
        // agree with what the gateway recorded.
        let ct = match o.content_type {
            Some(ct) => {
                assert_eq!(head.content_type(), Some(ct), "gateway HEAD {:?}", o.key);
                Some(ct)
            }
            None => head.content_type(),
        };
        // …and on each backend, with its own client.
        let local = read_local(&local_root(&setup), BUCKET, o.key);
        check_copy("disk-a", o, ct, local);
        check_copy("moto", o, ct, read_moto(&setup, BUCKET, o.key).await);
        check_copy("azurite", o, ct, read_azurite(&setup, BUCKET, o.key).await);
    }
    // The 12 MiB single PUT went to moto as a multipart upload (part size 5 MiB): its S3
    // ETag is that of a multipart object, `<md5 of the part md5s>-<parts>`.
    let big = format!(
        "{}/{}",
        setup.moto_prefix,
        physical_name(BUCKET, "big/12mib.bin").as_str()
    );
    let head = moto_client(&setup.servers)
        .head_object()
        .bucket(&setup.servers.s3_bucket)
        .key(&big)
        .send()
        .await
        .expect("moto HEAD");
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    assert!(
        etag.ends_with("-3"),
        "12 MiB object on moto has ETag {etag:?}: not a 3-part multipart upload"
    );
    // The gateway's multipart staging is gone from the object stores once complete.
    let staged = moto_client(&setup.servers)
        .list_objects_v2()
        .bucket(&setup.servers.s3_bucket)
        .prefix(format!("{}/.hansa/mpu/", setup.moto_prefix))
        .send()
        .await
        .expect("list moto");
    assert_eq!(staged.key_count(), Some(0), "staged parts left on moto");

    setup.gw.shutdown().await;
}

/// Copies deleted behind the gateway's back: reads go on from the copies that remain, without
/// restarting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_fail_over_when_copies_disappear() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let setup = start(servers, &["disk-a", "moto", "azurite"]).await;
    let s3 = setup.gw.client();
    create_bucket(&s3, BUCKET).await;
    let one = random_bytes(200_000);
    let two = random_bytes(300_000);
    let three = random_bytes(100_000);
    hansa_conformance::put(&s3, BUCKET, "gone-from-disk", &one).await;
    hansa_conformance::put(&s3, BUCKET, "only-on-azurite", &two).await;
    hansa_conformance::put(&s3, BUCKET, "only-on-moto", &three).await;

    // The first copy in read order (local) disappears.
    let path = local_root(&setup).join(physical_name(BUCKET, "gone-from-disk").as_str());
    std::fs::remove_file(&path).expect("delete the local copy");
    assert!(read_local(&local_root(&setup), BUCKET, "gone-from-disk").is_none());
    assert_eq!(get(&s3, BUCKET, "gone-from-disk").await, one);

    // Local and moto copies disappear: Azurite still serves.
    let path = local_root(&setup).join(physical_name(BUCKET, "only-on-azurite").as_str());
    std::fs::remove_file(&path).expect("delete the local copy");
    delete_on_moto(&setup, BUCKET, "only-on-azurite").await;
    assert!(read_moto(&setup, BUCKET, "only-on-azurite").await.is_none());
    assert_eq!(get(&s3, BUCKET, "only-on-azurite").await, two);

    // Local and Azurite copies disappear: moto still serves.
    let path = local_root(&setup).join(physical_name(BUCKET, "only-on-moto").as_str());
    std::fs::remove_file(&path).expect("delete the local copy");
    delete_on_azurite(&setup, BUCKET, "only-on-moto").await;
    assert!(read_azurite(&setup, BUCKET, "only-on-moto").await.is_none());
    assert_eq!(get(&s3, BUCKET, "only-on-moto").await, three);

    setup.gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The write protocol on cloud kinds, with faults injected around the real servers

/// Multipart uploads open on moto under this test's prefix (a write staged there and never
/// published or discarded would show here).
async fn moto_uploads(setup: &Setup) -> Vec<String> {
    let s3 = moto_client(&setup.servers);
    let out = s3
        .list_multipart_uploads()
        .bucket(&setup.servers.s3_bucket)
        .prefix(format!("{}/", setup.moto_prefix))
        .send()
        .await
        .expect("moto ListMultipartUploads");
    out.uploads()
        .iter()
        .filter_map(|u| u.key().map(str::to_string))
        .collect()
}

/// Polls until moto has no open upload under the test's prefix (a discard runs in the
/// background after the answer).
async fn assert_no_uploads_left(setup: &Setup) {
    for _ in 0..100 {
        if moto_uploads(setup).await.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("uploads left on moto: {:?}", moto_uploads(setup).await);
}

/// Finding 1 on cloud kinds: with moto refusing writes and all three replicas required, an
/// overwrite (small: held in memory; large: a multipart upload at the key) is refused, the
/// previous version is whole on every provider, and nothing is left open on moto.
#[tokio::test]
async fn a_rejected_overwrite_on_a_cloud_replica_harms_nothing() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let setup = start_with(servers, &["disk-a", "moto", "azurite"], 3, true).await;
    let s3 = setup.gw.client();
    create_bucket(&s3, BUCKET).await;
    for (key, size) in [("small", 100_000), ("large", 12 << 20)] {
        let v0 = random_bytes(size);
        hansa_conformance::put(&s3, BUCKET, key, &v0).await;
        setup
            .gw
            .faults("moto")
            .update(|p| p.writes = hansa_backends::Fault::Fail);
        let r = s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(random_bytes(size).into())
            .send()
            .await;
        setup.gw.faults("moto").clear();
        let status = r
            .as_ref()
            .err()
            .and_then(|e| e.raw_response())
            .map(|r| r.status().as_u16());
        assert_eq!(status, Some(503), "{key}: {r:?}");
        let local = read_local(&local_root(&setup), BUCKET, key).expect("local copy");
        let moto = read_moto(&setup, BUCKET, key).await.expect("moto copy");
        let azure = read_azurite(&setup, BUCKET, key)
            .await
            .expect("azurite copy");
        for (backend, copy) in [("disk-a", local), ("moto", moto), ("azurite", azure)] {
            assert_eq!(
                sha256_hex(&copy.bytes),
                sha256_hex(&v0),
                "{key}: {backend} lost the acknowledged version"
            );
        }
        assert_eq!(get(&s3, BUCKET, key).await, v0);
    }
    assert_no_uploads_left(&setup).await;
    setup.gw.shutdown().await;
}

/// Finding 4 on cloud kinds: W = 2 of 3 with Azurite silent: writes of every size answer
/// without waiting for it, and read back.
#[tokio::test]
async fn a_silent_cloud_replica_does_not_hold_up_a_quorum_of_two() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let setup = start_with(servers, &["disk-a", "moto", "azurite"], 2, true).await;
    let s3 = setup.gw.client();
    create_bucket(&s3, BUCKET).await;
    setup.gw.faults("azurite").set(hansa_backends::FaultPlan {
        writes: hansa_backends::Fault::Hang,
        publishes: hansa_backends::Fault::Hang,
        ..Default::default()
    });
    for (key, size) in [("one-kib", 1024), ("twelve-mib", 12 << 20)] {
        let body = random_bytes(size);
        let started = std::time::Instant::now();
        tokio::time::timeout(
            std::time::Duration::from_secs(8),
            hansa_conformance::put(&s3, BUCKET, key, &body),
        )
        .await
        .unwrap_or_else(|_| panic!("{key}: a PUT waited for the silent replica"));
        eprintln!("{key} with Azurite silent: {:?}", started.elapsed());
        assert_eq!(get(&s3, BUCKET, key).await, body);
    }
    setup.gw.faults("azurite").clear();
    setup.gw.shutdown().await;
}

/// Finding 2 on cloud kinds: a client that hangs up in the middle of a large body leaves the
/// previous version whole on every provider and no upload open on moto.
#[tokio::test]
async fn a_client_hanging_up_leaves_nothing_on_the_providers() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let setup = start_with(servers, &["disk-a", "moto", "azurite"], 3, true).await;
    let s3 = setup.gw.client();
    create_bucket(&s3, BUCKET).await;
    let v0 = random_bytes(50_000);
    hansa_conformance::put(&s3, BUCKET, "k", &v0).await;
    let v1 = random_bytes(12 << 20);
    let stream = setup.gw.start_put(BUCKET, "k", &v1, 9 << 20).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop(stream);
    assert_no_uploads_left(&setup).await;
    assert_eq!(get(&s3, BUCKET, "k").await, v0);
    let moto = read_moto(&setup, BUCKET, "k").await.expect("moto copy");
    let azure = read_azurite(&setup, BUCKET, "k")
        .await
        .expect("azurite copy");
    assert_eq!(sha256_hex(&moto.bytes), sha256_hex(&v0));
    assert_eq!(sha256_hex(&azure.bytes), sha256_hex(&v0));
    setup.gw.shutdown().await;
}

/// A cloud provider down during writes (W = 2 of 3 met by the others): every write is
/// acknowledged with that replica pending; once the provider is back the repair queue copies
/// each version to it, and the provider's own client reads the same bytes and metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cloud_replica_that_was_down_catches_up() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let setup = start_with(servers, &["disk-a", "moto", "azurite"], 2, true).await;
    let s3 = setup.gw.client();
    create_bucket(&s3, BUCKET).await;
    for down in ["moto", "azurite"] {
        setup
            .gw
            .faults(down)
            .set(hansa_backends::FaultPlan::all(hansa_backends::Fault::Fail));
        let objects = objects();
        for o in &objects {
            upload(&s3, BUCKET, o).await;
            let states = setup.gw.replica_states(BUCKET, o.key);
            assert!(
                states.contains(&(down.to_string(), hansa::meta::ReplicaState::Pending)),
                "{down} down: {:?}: {states:?}",
                o.key
            );
        }
        // A delete and an overwrite of objects the provider still holds from before.
        let (gone, changed) = (format!("{down}-gone"), format!("{down}-changed"));
        setup.gw.faults(down).clear();
        hansa_conformance::put(&s3, BUCKET, &gone, b"deleted while down").await;
        hansa_conformance::put(&s3, BUCKET, &changed, b"old version").await;
        setup
            .gw
            .faults(down)
            .set(hansa_backends::FaultPlan::all(hansa_backends::Fault::Fail));
        s3.delete_object()
            .bucket(BUCKET)
            .key(&gone)
            .send()
            .await
            .expect("delete while a provider is down");
        hansa_conformance::put(&s3, BUCKET, &changed, b"new version").await;
        setup.gw.faults(down).clear();
        assert!(
            setup
                .gw
                .wait_for_repairs(std::time::Duration::from_secs(120))
                .await,
            "{down}: the repair queue did not drain"
        );
        for o in &objects {
            let states = setup.gw.replica_states(BUCKET, o.key);
            assert!(
                states
                    .iter()
                    .all(|(_, s)| *s == hansa::meta::ReplicaState::Present),
                "{down}: {:?}: {states:?}",
                o.key
            );
            let copy = match down {
                "moto" => read_moto(&setup, BUCKET, o.key).await,
                _ => read_azurite(&setup, BUCKET, o.key).await,
            }
            .unwrap_or_else(|| panic!("{down}: no copy of {:?}", o.key));
            assert_eq!(
                sha256_hex(&copy.bytes),
                sha256_hex(&o.body),
                "{down}: {:?}",
                o.key
            );
            let expected: BTreeMap<String, String> = o
                .metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(copy.user_metadata, expected, "{down}: {:?}", o.key);
            if let Some(ct) = o.content_type {
                assert_eq!(
                    copy.content_type.as_deref(),
                    Some(ct),
                    "{down}: {:?}",
                    o.key
                );
            }
        }
        let read = |key: String| {
            let setup = &setup;
            async move {
                match down {
                    "moto" => read_moto(setup, BUCKET, &key).await,
                    _ => read_azurite(setup, BUCKET, &key).await,
                }
            }
        };
        assert!(
            read(gone.clone()).await.is_none(),
            "{down}: {gone} came back"
        );
        let copy = read(changed.clone()).await.expect("overwritten copy");
        assert_eq!(copy.bytes, b"new version", "{down}: {changed} is stale");
    }
    setup.gw.shutdown().await;
}
