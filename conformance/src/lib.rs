//! Test harness: starts a Hansa gateway in-process on 127.0.0.1 with its own temporary data
//! directory and two local backends, and hands out clients for it.
//!
//! Every [`TestGateway`] is independent (own port, own directories), so tests run in parallel.
//! Call [`TestGateway::shutdown`] at the end of a test; the directory is removed when the
//! gateway value is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use hansa;

/// The region every test gateway serves.
pub const REGION: &str = "us-east-1";
/// The base domain for virtual-host addressing.
pub const BASE_DOMAIN: &str = "s3.localhost";
/// The one bucket the limited key may use.
pub const LIMITED_BUCKET: &str = "allowed-only";

/// An access key configured on every test gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub access_key_id: &'static str,
    pub secret_access_key: &'static str,
}

/// Full access to every bucket.
pub const ADMIN: Key = Key {
    access_key_id: "HANSATESTADMIN",
    secret_access_key: "admin-secret-0123456789abcdefghijklmnop",
};
/// Read-only access to every bucket.
pub const READER: Key = Key {
    access_key_id: "HANSATESTREADER",
    secret_access_key: "reader-secret-0123456789abcdefghijklmno",
};
/// Full access to [`LIMITED_BUCKET`] only.
pub const LIMITED: Key = Key {
    access_key_id: "HANSATESTLIMITED",
    secret_access_key: "limited-secret-0123456789abcdefghijklmn",
};

/// Options for a test gateway beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `limits.header_timeout_secs` (default: the gateway's default).
    pub header_timeout_secs: Option<u64>,
    /// `limits.upload_max_age_secs`: incomplete multipart uploads older than this are aborted
    /// (default: the gateway's default, 7 days).
    pub upload_max_age_secs: Option<u64>,
    /// `limits.upload_cleanup_interval_secs`: how often the gateway looks for such uploads.
    pub upload_cleanup_interval_secs: Option<u64>,
    /// Serve TLS as well, with a fresh self-signed certificate for `localhost`/127.0.0.1.
    pub tls: bool,
    /// Extra TOML appended to the configuration (policies, bucket mappings…).
    pub extra_toml: String,
    /// Extra lines of the `[limits]` table (`name = value`, one per line).
    pub limits_toml: String,
    /// `limits.inflight_bytes` (default: 128 MiB).
    pub inflight_bytes: Option<u64>,
    /// Both local backends get a fault-injection switch ([`TestGateway::faults`]), with no
    /// fault set.
    pub faults: bool,
    /// Lines of the `[health]` table (probes, circuit breakers). When absent, circuits
    /// practically never open and probes run once an hour: most tests switch faults on and
    /// off faster than a circuit's open period and check the write protocol's own timeouts,
    /// and a probe's short-lived files would show in their listings of the disks.
    pub health_toml: Option<String>,
    /// Extra lines of a local backend's `[[backend]]` table, by backend id (`disk-a`,
    /// `disk-b`), e.g. `("disk-a", "faults = { publishes = { slow_ms = 30 } }")`. Not together
    /// with [`Options::faults`] for the same key.
    pub backend_toml: Vec<(String, String)>,
    /// Open the admin plane too, on a free port with [`admin::TOKEN`] (see [`admin`]).
    pub admin: bool,
    /// Extra lines of the `[server]` table (`name = value`, one per line).
    pub server_toml: String,
}

/// A certificate written for a TLS test gateway.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert_pem: Vec<u8>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// A gateway running in this process.
pub struct TestGateway {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// The plain-HTTP listener.
    pub addr: SocketAddr,
    /// `https://localhost:PORT` when started with `tls`.
    pub tls_endpoint: Option<String>,
    pub tls_addr: Option<SocketAddr>,
    pub tls_files: Option<TlsFiles>,
    /// The temporary directory holding `data/`, `a/` and `b/`.
    pub dir: tempfile::TempDir,
    pub running: Option<hansa::server::Running>,
    config_toml: String,
}

/// The gateways' logs on stderr when `HANSA_TEST_LOG` names a level or filter (e.g.
/// `HANSA_TEST_LOG=hansa=debug cargo test ... -- --nocapture`).
fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("HANSA_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// Where test directories go: under the workspace's `target/`, whose file system supports
/// user extended attributes (the local backend needs them).
pub fn test_tmp_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("test-tmp");
    std::fs::create_dir_all(&root).expect("create target/test-tmp");
    root
}

fn toml_str(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

impl TestGateway {
    /// Starts a gateway with the default test configuration.
    pub async fn start() -> TestGateway {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestGateway {
        init_logs();
        let dir = tempfile::Builder::new()
            .prefix("gw-")
            .tempdir_in(test_tmp_root())
            .expect("tempdir");
        let tls_files = if options.tls {
            Some(make_self_signed(dir.path()))
        } else {
            None
        };
        let config_toml = config_toml(dir.path(), &options, tls_files.as_ref());
        let mut gw = TestGateway {
            endpoint: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_endpoint: None,
            tls_addr: None,
            tls_files,
            dir,
            running: None,
            config_toml,
        };
        gw.boot().await;
        gw
    }

    async fn boot(&mut self) {
        let config = hansa::config::Config::from_toml("conformance-test.toml", &self.config_toml)
            .expect("test configuration is valid");
        // A restart may find the index still being released by the previous instance.
        let mut attempt = 0;
        let running = loop {
            match hansa::server::start(config.clone()).await {
                Ok(r) => break r,
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    if attempt == 1 {
                        eprintln!("gateway start failed ({e}); retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("gateway did not start: {e}"),
            }
        };
        self.addr = running.http_addrs[0];
        self.endpoint = format!("http://{}", self.addr);
        if let Some(tls) = running.tls_addrs.first() {
            self.tls_addr = Some(*tls);
            self.tls_endpoint = Some(format!("https://localhost:{}", tls.port()));
        }
        self.running = Some(running);
    }

    /// Shuts the gateway down and starts it again on the same directories (new port).
    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
        self.boot().await;
    }

    /// Stops the gateway (requests in flight get 5 s) and removes its directory.
    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
    }

    /// The configuration this gateway runs with (TOML), e.g. to hand to the `hansa` binary.
    pub fn config_toml(&self) -> &str {
        &self.config_toml
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The fault switch of backend `id` (`disk-a`, `disk-b`); the gateway must have been
    /// started with [`Options::faults`].
    pub fn faults(&self, id: &str) -> std::sync::Arc<hansa_backends::FaultSwitch> {
        self.running
            .as_ref()
            .expect("gateway running")
            .gateway
            .store
            .fault_switches
            .get(id)
            .unwrap_or_else(|| panic!("no fault switch for {id}: start with Options::faults"))
            .clone()
    }

    /// The running gateway's storage layer (its index and backends), for checks behind the
    /// S3 interface.
    pub fn store(&self) -> &std::sync::Arc<hansa::store::Store> {
        &self
            .running
            .as_ref()
            .expect("gateway running")
            .gateway
            .store
    }

    /// Waits until every write has settled (no intent left: a straggler's copy published or
    /// queued) and the repair queue is empty; false if that does not happen within `limit`.
    pub async fn wait_for_repairs(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            // A write answered before its straggler published has queued nothing yet: its
            // intent goes only once it has (or has queued what it could not).
            let settled = self
                .store()
                .meta
                .intents()
                .is_ok_and(|intents| intents.is_empty());
            if settled && hansa::store::queue_depth(self.store()) == 0 {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The replica states of `bucket/key` in the index, by backend id (sorted); none when the
    /// key is not in the index.
    pub fn replica_states(
        &self,
        bucket: &str,
        key: &str,
    ) -> Vec<(String, hansa::meta::ReplicaState)> {
        let record = self
            .store()
            .meta
            .object(bucket, key)
            .expect("index readable");
        let mut states: Vec<_> = record
            .map(|r| {
                r.replicas
                    .into_iter()
                    .map(|r| (r.backend, r.state))
                    .collect()
            })
            .unwrap_or_default();
        states.sort_by(|x, y| x.0.cmp(&y.0));
        states
    }

    /// The directories of the two local backends, `a` and `b`.
    pub fn backend_dirs(&self) -> [PathBuf; 2] {
        [self.dir.path().join("a"), self.dir.path().join("b")]
    }

    /// aws-sdk-s3 client with full access.
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_for(ADMIN)
    }

    /// aws-sdk-s3 client signing with `key`.
    pub fn client_for(&self, key: Key) -> aws_sdk_s3::Client {
        self.client_with_secret(key.access_key_id, key.secret_access_key)
    }

    /// aws-sdk-s3 client with arbitrary credentials (wrong secrets, unknown keys).
    pub fn client_with_secret(&self, access_key_id: &str, secret: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(sdk_config(&self.endpoint, access_key_id, secret).build())
    }

    /// aws-sdk-s3 client over HTTPS, trusting the gateway's self-signed certificate.
    pub fn tls_client(&self) -> aws_sdk_s3::Client {
        let endpoint = self
            .tls_endpoint
            .as_ref()
            .expect("gateway started with tls");
        let pem = &self.tls_files.as_ref().expect("tls files").cert_pem;
        let trust = aws_smithy_http_client::tls::TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(pem.clone());
        let tls = aws_smithy_http_client::tls::TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .expect("tls context");
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(tls)
            .build_https();
        let conf = sdk_config(endpoint, ADMIN.access_key_id, ADMIN.secret_access_key)
            .http_client(http)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// `http://127.0.0.1:PORT/<path>` (path given without the leading slash).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.endpoint, path)
    }

    /// Opens a connection and sends a signed PUT's head (payload unsigned) and the first
    /// `sent` bytes of `body`: the rest can follow, or the client can hang up.
    pub async fn start_put(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        sent: usize,
    ) -> tokio::net::TcpStream {
        self.start_put_as(ADMIN, bucket, key, body, sent).await
    }

    /// [`TestGateway::start_put`] signed with `key`.
    pub async fn start_put_as(
        &self,
        key: Key,
        bucket: &str,
        object: &str,
        body: &[u8],
        sent: usize,
    ) -> tokio::net::TcpStream {
        let path = format!("{bucket}/{}", encode_key(object));
        self.start_request(key, "PUT", &path, &[], body, sent).await
    }

    /// Opens a connection and sends a signed request's head (payload unsigned, with
    /// `headers` and a Content-Length of `body`) for `path_and_query` (no leading slash), and
    /// the first `sent` bytes of `body`: the rest can follow, or the client can hang up.
    pub async fn start_request(
        &self,
        key: Key,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        sent: usize,
    ) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut req = raw::request(method, &self.url(path_and_query));
        req.headers_mut().insert(
            "content-length",
            body.len()
                .to_string()
                .parse()
                .expect("content-length header"),
        );
        for (name, value) in headers {
            req.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        sign::Signer::new(key).sign(&mut req, &sign::Payload::Unsigned);
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        stream
            .write_all(&raw::head_bytes(&req))
            .await
            .expect("send head");
        stream
            .write_all(&body[..sent.min(body.len())])
            .await
            .expect("send part of the body");
        stream.flush().await.expect("flush");
        stream
    }

    /// Every regular file under the gateway's directory, relative to it.
    pub fn all_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
        }
    }
}

fn sdk_config(endpoint: &str, access_key_id: &str, secret: &str) -> aws_sdk_s3::config::Builder {
    let creds = aws_credential_types::Credentials::new(access_key_id, secret, None, None, "test");
    aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
}

fn config_toml(dir: &Path, options: &Options, tls: Option<&TlsFiles>) -> String {
    let mut t = String::new();
    t.push_str("[server]\nlisten = [\"127.0.0.1:0\"]\n");
    t.push_str(&format!("data_dir = {}\n", toml_str(&dir.join("data"))));
    t.push_str(&format!("region = \"{REGION}\"\n"));
    t.push_str(&format!("base_domains = [\"{BASE_DOMAIN}\"]\n"));
    for line in options.server_toml.lines() {
        t.push_str(line);
        t.push('\n');
    }
    if let Some(tls) = tls {
        t.push_str("[server.tls]\nlisten = [\"127.0.0.1:0\"]\n");
        t.push_str(&format!("certificate = {}\n", toml_str(&tls.cert_path)));
        t.push_str(&format!("private_key = {}\n", toml_str(&tls.key_path)));
    }
    t.push_str(&format!(
        "\n[limits]\ninflight_bytes = {}\nchunk_bytes = 5242880\n",
        options.inflight_bytes.unwrap_or(128 << 20)
    ));
    if let Some(secs) = options.header_timeout_secs {
        t.push_str(&format!("header_timeout_secs = {secs}\n"));
    }
    if let Some(secs) = options.upload_max_age_secs {
        t.push_str(&format!("upload_max_age_secs = {secs}\n"));
    }
    if let Some(secs) = options.upload_cleanup_interval_secs {
        t.push_str(&format!("upload_cleanup_interval_secs = {secs}\n"));
    }
    t.push_str(&options.limits_toml);
    if !options.limits_toml.ends_with('\n') {
        t.push('\n');
    }
    if options.admin {
        t.push_str(&admin::admin_toml(
            "127.0.0.1:0",
            &format!("token = {:?}", admin::TOKEN),
        ));
    }
    t.push_str("\n[health]\n");
    match &options.health_toml {
        Some(lines) => {
            t.push_str(lines);
            if !lines.ends_with('\n') {
                t.push('\n');
            }
        }
        None => t.push_str("probe_interval_ms = 3600000\nfailures_to_open = 4294967295\n"),
    }
    for (key, buckets, read_only) in [
        (ADMIN, None, false),
        (READER, None, true),
        (LIMITED, Some(LIMITED_BUCKET), false),
    ] {
        t.push_str("\n[[credential]]\n");
        t.push_str(&format!("access_key_id = \"{}\"\n", key.access_key_id));
        t.push_str(&format!(
            "secret_access_key = \"{}\"\n",
            key.secret_access_key
        ));
        if let Some(b) = buckets {
            t.push_str(&format!("buckets = [\"{b}\"]\n"));
        }
        t.push_str(&format!("read_only = {read_only}\n"));
    }
    for id in ["a", "b"] {
        t.push_str("\n[[backend]]\n");
        t.push_str(&format!("id = \"disk-{id}\"\nkind = \"local\"\n"));
        t.push_str(&format!("path = {}\n", toml_str(&dir.join(id))));
        if options.faults {
            t.push_str("faults = {}\n");
        }
        for (backend, lines) in &options.backend_toml {
            if *backend == format!("disk-{id}") {
                t.push_str(lines);
                if !lines.ends_with('\n') {
                    t.push('\n');
                }
            }
        }
    }
    t.push('\n');
    t.push_str(&options.extra_toml);
    t
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made with the `openssl` CLI.
fn make_self_signed(dir: &Path) -> TlsFiles {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
        ])
        .arg(&key_path)
        .arg("-out")
        .arg(&cert_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl (needed for the TLS test)");
    assert!(status.success(), "openssl req failed");
    TlsFiles {
        cert_pem: std::fs::read(&cert_path).expect("read cert"),
        cert_path,
        key_path,
    }
}

// ---------------------------------------------------------------------------------------------
// Errors from the SDK

/// Status and S3 error code of a failed SDK call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Err {
    pub status: u16,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Turns an SDK error into its HTTP status and S3 error code. Panics on errors that never got
/// a response (connection failures, timeouts), so a test cannot mistake those for S3 errors.
pub fn s3_err<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> S3Err
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
{
    let status = err
        .raw_response()
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|| panic!("no HTTP response: {err:?}"));
    let (code, message) = match err {
        aws_sdk_s3::error::SdkError::ServiceError(e) => (
            e.err().code().map(str::to_string),
            e.err().message().map(str::to_string),
        ),
        _ => (None, None),
    };
    S3Err {
        status,
        code,
        message,
    }
}

/// Asserts that an SDK call failed with `status` and S3 error `code`.
#[macro_export]
macro_rules! assert_s3_err {
    ($result:expr, $status:expr, $code:expr) => {{
        match $result {
            Ok(v) => panic!("expected {} {}, got success: {:?}", $status, $code, v),
            Err(e) => {
                let got = $crate::s3_err(&e);
                assert_eq!(
                    (got.status, got.code.as_deref()),
                    ($status, Some($code)),
                    "unexpected error: {:?} ({e:?})",
                    got
                );
                got
            }
        }
    }};
}

/// Asserts that an SDK call failed with `status` (HEAD requests carry no error code).
#[macro_export]
macro_rules! assert_s3_status {
    ($result:expr, $status:expr) => {{
        match $result {
            Ok(v) => panic!("expected status {}, got success: {:?}", $status, v),
            Err(e) => {
                let got = $crate::s3_err(&e);
                assert_eq!(got.status, $status, "unexpected error: {:?} ({e:?})", got);
                got
            }
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

pub fn md5_b64(data: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// A bucket name unique enough for one gateway.
pub fn bucket_name(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// Creates `bucket` with the admin client.
pub async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str) {
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
}

/// Puts `body` at `bucket/key`.
pub async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
}

/// Reads `bucket/key` in full.
pub async fn get(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key}: {e:?}"))
        .body
        .collect()
        .await
        .expect("read body")
        .into_bytes()
        .to_vec()
}

/// Every key of `bucket` via ListObjectsV2, following continuation tokens.
pub async fn list_all_keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10_000 {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("list");
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        if out.is_truncated() == Some(true) {
            token = out.next_continuation_token().map(str::to_string);
            assert!(token.is_some(), "truncated listing without a token");
        } else {
            return keys;
        }
    }
    panic!("listing does not end");
}

/// One object as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectState {
    pub bucket: String,
    pub key: String,
    pub sha256: String,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub metadata: Vec<(String, String)>,
    /// `x-amz-tagging-count`: how many tags the object has, if any.
    pub tag_count: Option<i32>,
}

/// One incomplete multipart upload and its parts (number, ETag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadState {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub parts: Vec<(i32, String)>,
}

/// Everything a client can observe of a gateway's contents: buckets, objects (bytes,
/// metadata), multipart uploads and their parts. Two snapshots are equal when nothing changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayState {
    pub buckets: Vec<String>,
    pub objects: Vec<ObjectState>,
    pub uploads: Vec<UploadState>,
}

/// A [`GatewayState`] read through `client` (which should see every bucket: the admin key).
pub async fn gateway_state(client: &aws_sdk_s3::Client) -> GatewayState {
    let listed = client.list_buckets().send().await.expect("list buckets");
    let mut buckets: Vec<String> = listed
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    buckets.sort();
    let mut objects = Vec::new();
    let mut uploads = Vec::new();
    for bucket in &buckets {
        for key in list_all_keys(client, bucket).await {
            let out = client
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {bucket}/{key}: {e:?}"));
            let mut metadata: Vec<(String, String)> = out
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            metadata.sort();
            let etag = out.e_tag().map(str::to_string);
            let content_type = out.content_type().map(str::to_string);
            let tag_count = out.tag_count();
            let bytes = out.body.collect().await.expect("read body").into_bytes();
            objects.push(ObjectState {
                bucket: bucket.clone(),
                key,
                sha256: sha256_hex(&bytes),
                etag,
                content_type,
                metadata,
                tag_count,
            });
        }
        let listed = client
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .expect("list uploads");
        for upload in listed.uploads() {
            let (Some(key), Some(upload_id)) = (upload.key(), upload.upload_id()) else {
                continue;
            };
            let parts = client
                .list_parts()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await
                .expect("list parts");
            uploads.push(UploadState {
                bucket: bucket.clone(),
                key: key.to_string(),
                upload_id: upload_id.to_string(),
                parts: parts
                    .parts()
                    .iter()
                    .map(|p| {
                        (
                            p.part_number().unwrap_or_default(),
                            p.e_tag().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
            });
        }
    }
    uploads
        .sort_by(|a, b| (&a.bucket, &a.key, &a.upload_id).cmp(&(&b.bucket, &b.key, &b.upload_id)));
    GatewayState {
        buckets,
        objects,
        uploads,
    }
}

/// Percent-encodes a key for a URL path (everything but unreserved characters and `/`).
pub fn encode_key(key: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(key, SET).to_string()
}

/// Text of the first `<tag>…</tag>` in an XML document.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    xml_all(xml, tag).into_iter().next()
}

/// Texts of every `<tag>…</tag>` (not nested in itself) in an XML document, entities decoded.
pub fn xml_all(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(xml_unescape(&after[..j]));
        rest = &after[j + close.len()..];
    }
    out
}

pub fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#xD;", "\r")
        .replace("&#13;", "\r")
        .replace("&amp;", "&")
}

// ---------------------------------------------------------------------------------------------
// Hand-signed requests

/// Signed policies for browser form uploads (POST object).
pub mod post_form;
pub mod raw;
pub mod sign;

// ---------------------------------------------------------------------------------------------
// A gateway as a separate process (for crash tests: kill -9)

pub mod process;

// The admin plane: requests with or without the token, and its configuration.

pub mod admin;

// Scraping /metrics: the exposition parsed with a Prometheus text parser.

pub mod metrics;

// Headless Chromium driven by Node scripts (CORS, HTML form uploads).

pub mod browser;

/// The `hansa` binary built next to this test (`cargo build --workspace` puts it there), or
/// `HANSA_BIN`.
pub fn hansa_binary() -> PathBuf {
    if let Ok(p) = std::env::var("HANSA_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current test executable");
    // target/debug/deps/<test> → target/debug/hansa
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("hansa"))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} missing: build the gateway first (cargo build --workspace)",
        bin.display()
    );
    bin
}

/// The default test configuration for `dir`, listening on `listen`.
pub fn process_config(dir: &Path, listen: SocketAddr) -> String {
    process_config_with(dir, listen, String::new())
}

/// [`process_config`] with `extra_toml` appended (policies, more backends).
pub fn process_config_with(dir: &Path, listen: SocketAddr, extra_toml: String) -> String {
    process_config_from(
        dir,
        listen,
        &Options {
            extra_toml,
            ..Default::default()
        },
    )
}

/// The test configuration for `dir` built from `options` (its `extra_toml`, `limits_toml`,
/// `backend_toml`…; not `tls`), listening on `listen`.
pub fn process_config_from(dir: &Path, listen: SocketAddr, options: &Options) -> String {
    config_toml(dir, options, None).replacen(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"{listen}\"]"),
        1,
    )
}

/// aws-sdk-s3 client with the given key for any S3 server at `endpoint` (e.g. a test server
/// behind a backend, to look at what the gateway left there).
pub fn client_with(endpoint: &str, access_key_id: &str, secret: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(sdk_config(endpoint, access_key_id, secret).build())
}

/// aws-sdk-s3 client (admin key) for a gateway at `endpoint`.
pub fn client_at(endpoint: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        sdk_config(endpoint, ADMIN.access_key_id, ADMIN.secret_access_key).build(),
    )
}

// ---------------------------------------------------------------------------------------------
// Test servers (moto, Azurite) started by scripts/test-servers.sh

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A test server's variable (`HANSA_TEST_*`). `None` only when explicitly opted out
/// (`HANSA_SKIP_CLOUD_TESTS=1`); a missing variable otherwise fails the test with how to run
/// it.
pub fn test_server_var(name: &str) -> Option<String> {
    if let Some(v) = non_empty_var(name) {
        return Some(v);
    }
    if non_empty_var("HANSA_SKIP_CLOUD_TESTS").as_deref() == Some("1") {
        eprintln!("HANSA_SKIP_CLOUD_TESTS=1: {name} not set, test NOT run");
        return None;
    }
    panic!(
        "{name} is not set: this test needs moto and Azurite; run it inside \
         scripts/test-servers.sh, e.g. `scripts/test-servers.sh cargo test -p hansa-conformance \
         --test cloud_replicas` (or `scripts/test.sh`); set HANSA_SKIP_CLOUD_TESTS=1 to skip it \
         knowingly"
    )
}

/// `[[backend]]` entries `moto` (kind s3) and `azurite` (kind azure) on the test servers, each
/// under its own prefix; `None` when the servers are not there (see [`test_server_var`]).
pub fn cloud_backends_toml(moto_prefix: &str, azure_prefix: &str) -> Option<String> {
    Some(format!(
        r#"
[[backend]]
id = "moto"
kind = "s3"
preset = "custom"
endpoint = "{s3_endpoint}"
bucket = "{s3_bucket}"
prefix = "{moto_prefix}"
allow_http = true
access_key_id_env = "HANSA_TEST_S3_ACCESS_KEY"
secret_access_key_env = "HANSA_TEST_S3_SECRET_KEY"
retries = 1

[[backend]]
id = "azurite"
kind = "azure"
endpoint = "{azure_endpoint}"
account = "{azure_account}"
container = "{azure_container}"
prefix = "{azure_prefix}"
allow_http = true
access_key_env = "HANSA_TEST_AZURE_KEY"
retries = 1
"#,
        s3_endpoint = test_server_var("HANSA_TEST_S3_ENDPOINT")?,
        s3_bucket = test_server_var("HANSA_TEST_S3_BUCKET")?,
        azure_endpoint = test_server_var("HANSA_TEST_AZURE_ENDPOINT")?,
        azure_account = test_server_var("HANSA_TEST_AZURE_ACCOUNT")?,
        azure_container = test_server_var("HANSA_TEST_AZURE_CONTAINER")?,
    ))
}
