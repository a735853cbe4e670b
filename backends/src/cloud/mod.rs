//! Cloud backends: `s3` (AWS and S3-compatible providers, with presets), `gcs` and `azure`,
//! built from their configuration into an [`ObjectStoreBackend`].
//!
//! Every store gets Hansa's HTTP client ([`http`]): a connect timeout and a read-idle timeout
//! instead of object_store's 30-second limit on a whole request (which would cut long reads),
//! and a small retry budget instead of ten retries over three minutes (which would stall
//! failover to another replica).
//!
//! Secrets (keys, tokens, SAS) come from the configuration, an environment variable or a file
//! it names; [`Secret`] never shows its value in `Debug` output.

mod http;

use crate::object_store::{
    AzureNative, MetaNames, NativeMultipart, NativeRetry, ObjectStoreBackend, S3Native,
    S3ProtocolAuth,
};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where object_store's GCS client sends its XML requests unless a service-account key names
/// another base URL.
const GCS_BASE_URL: &str = "https://storage.googleapis.com";

/// Azure's largest block (service version 2019-12-12 and later).
const AZURE_MAX_BLOCK_MIB: u64 = 4000;

/// A secret value (key, token). `Debug` prints it masked, so a configuration dump or a log
/// line never shows it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for handing to the store's builder (never to a log).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// A cloud backend's configuration problem: the field and what is wrong. Never contains a
/// secret's value (only the variable or file it was to come from).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{field}: {problem}")]
pub struct CloudError {
    pub field: String,
    pub problem: String,
}

fn invalid(field: &str, problem: impl Into<String>) -> CloudError {
    CloudError {
        field: field.to_string(),
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CloudKind {
    S3,
    Gcs,
    Azure,
}

impl CloudKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gcs",
            Self::Azure => "azure",
        }
    }
}

/// Conventions of S3-compatible providers: endpoint pattern, default region, addressing.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum S3Preset {
    Aws,
    Ovh,
    Scaleway,
    Hetzner,
    Ionos,
    Exoscale,
    Garage,
    Minio,
    Custom,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Addressing {
    /// `https://endpoint/bucket/key`
    Path,
    /// `https://bucket.endpoint/key`
    VirtualHost,
}

/// The `[[backend]]` fields of kinds `s3`, `gcs` and `azure` (besides `id` and `tags`, which
/// the gateway's configuration keeps). Which fields apply to which kind is checked by
/// [`CloudConfig::validate`].
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    pub kind: CloudKind,
    /// s3, gcs: the bucket that holds this backend's copies.
    pub bucket: Option<String>,
    /// azure: the container that holds this backend's copies.
    pub container: Option<String>,
    /// azure: the storage account.
    pub account: Option<String>,
    /// Where Hansa's names start inside the bucket/container (e.g. `hansa/replica-1`).
    #[serde(default)]
    pub prefix: String,
    /// s3: provider conventions; `aws` when neither this nor `endpoint` is given, `custom`
    /// when only `endpoint` is.
    pub preset: Option<S3Preset>,
    /// s3: the service endpoint (without the bucket); gcs: the base URL (emulators);
    /// azure: the account URL (e.g. `http://127.0.0.1:10000/devstoreaccount1` for Azurite).
    pub endpoint: Option<String>,
    /// s3: the signing region (and, for most presets, part of the endpoint).
    pub region: Option<String>,
    /// s3: `path` or `virtual-host`; the preset's convention when absent.
    pub addressing: Option<Addressing>,
    /// Plain-HTTP endpoints (test servers on 127.0.0.1); refused otherwise.
    #[serde(default)]
    pub allow_http: bool,

    // s3 static credentials: inline, from an environment variable, or from a file.
    pub access_key_id: Option<Secret>,
    pub access_key_id_env: Option<String>,
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key: Option<Secret>,
    pub secret_access_key_env: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    pub session_token_env: Option<String>,
    pub session_token_file: Option<PathBuf>,
    /// s3: a profile of the AWS shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
    /// `~/.aws/credentials`): its static keys are used.
    pub profile: Option<String>,

    /// gcs: a service-account JSON key file; else the application-default credentials
    /// (`GOOGLE_APPLICATION_CREDENTIALS`) or the instance metadata server.
    pub service_account_file: Option<PathBuf>,
    /// gcs: a service-account JSON key in an environment variable.
    pub service_account_key_env: Option<String>,
    /// gcs: send no credentials (emulators, public buckets).
    #[serde(default)]
    pub anonymous: bool,

    // azure: shared key, or SAS token; else managed identity / workload identity.
    pub access_key: Option<Secret>,
    pub access_key_env: Option<String>,
    pub access_key_file: Option<PathBuf>,
    pub sas_token_env: Option<String>,
    pub sas_token_file: Option<PathBuf>,
    /// azure: the largest block the service takes, in MiB (Azure: 4000; Azure Stack Hub:
    /// 100). A multipart part larger than this is staged as several blocks.
    pub max_block_mib: Option<u64>,

    /// s3, gcs, azure: multipart uploads go straight into the provider's own multipart upload
    /// (the default, except for preset `garage`). `false`: parts are staged as objects and
    /// composed at completion (for S3-compatible servers whose multipart API does not take
    /// sparse part numbers or parts of unequal sizes, e.g. `rclone serve s3`, Cloudflare R2,
    /// or cancels an upload when another write of the same key completes, as Garage does).
    pub native_multipart: Option<bool>,

    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout_secs: f64,
    /// Longest silence while waiting for an answer or the next bytes of a body. A transfer
    /// that keeps moving is never cut, however long it takes.
    #[serde(default = "defaults::read_timeout")]
    pub read_timeout_secs: f64,
    /// Retries of a failed request (5xx, 429, network errors), with exponential backoff.
    #[serde(default = "defaults::retries")]
    pub retries: usize,
    #[serde(default = "defaults::retry_backoff")]
    pub retry_initial_backoff_ms: u64,
    #[serde(default = "defaults::retry_max_backoff")]
    pub retry_max_backoff_secs: f64,
    /// No retry is started after this long since the first attempt.
    #[serde(default = "defaults::retry_timeout")]
    pub retry_timeout_secs: f64,
}

mod defaults {
    pub fn connect_timeout() -> f64 {
        5.0
    }
    pub fn read_timeout() -> f64 {
        30.0
    }
    pub fn retries() -> usize {
        3
    }
    pub fn retry_backoff() -> u64 {
        200
    }
    pub fn retry_max_backoff() -> f64 {
        5.0
    }
    pub fn retry_timeout() -> f64 {
        60.0
    }
}

/// Endpoint, region and addressing of an `s3` backend after its preset was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The service endpoint without the bucket; `None`: AWS's own for the region.
    pub endpoint: Option<String>,
    pub region: String,
    pub addressing: Addressing,
}

impl S3Preset {
    /// (endpoint pattern with `{region}`, default region, addressing). Path-style works with
    /// every S3-compatible provider listed (virtual-host needs a wildcard DNS name and breaks
    /// TLS for bucket names with dots); AWS prefers virtual-host.
    fn conventions(self) -> (Option<&'static str>, Option<&'static str>, Addressing) {
        use Addressing::*;
        match self {
            Self::Aws => (None, Some("us-east-1"), VirtualHost),
            Self::Ovh => (Some("https://s3.{region}.io.cloud.ovh.net"), None, Path),
            Self::Scaleway => (Some("https://s3.{region}.scw.cloud"), None, Path),
            Self::Hetzner => (Some("https://{region}.your-objectstorage.com"), None, Path),
            Self::Ionos => (Some("https://s3.{region}.ionoscloud.com"), None, Path),
            Self::Exoscale => (Some("https://sos-{region}.exo.io"), None, Path),
            Self::Garage => (None, Some("garage"), Path),
            Self::Minio => (None, Some("us-east-1"), Path),
            Self::Custom => (None, Some("us-east-1"), Path),
        }
    }
}

impl CloudConfig {
    /// Static checks (no environment or file access): required fields per kind, fields that
    /// do not apply, value ranges.
    pub fn validate(&self) -> Result<(), CloudError> {
        let kind = self.kind.as_str();
        let not_for = |field: &str, present: bool| {
            if present {
                Err(invalid(field, format!("does not apply to kind {kind:?}")))
            } else {
                Ok(())
            }
        };
        let s3_fields = [
            ("preset", self.preset.is_some()),
            ("region", self.region.is_some()),
            ("addressing", self.addressing.is_some()),
            ("access_key_id", self.access_key_id.is_some()),
            ("access_key_id_env", self.access_key_id_env.is_some()),
            ("access_key_id_file", self.access_key_id_file.is_some()),
            ("secret_access_key", self.secret_access_key.is_some()),
            (
                "secret_access_key_env",
                self.secret_access_key_env.is_some(),
            ),
            (
                "secret_access_key_file",
                self.secret_access_key_file.is_some(),
            ),
            ("session_token_env", self.session_token_env.is_some()),
            ("session_token_file", self.session_token_file.is_some()),
            ("profile", self.profile.is_some()),
        ];
        let gcs_fields = [
            ("service_account_file", self.service_account_file.is_some()),
            (
                "service_account_key_env",
                self.service_account_key_env.is_some(),
            ),
            ("anonymous", self.anonymous),
        ];
        let azure_fields = [
            ("container", self.container.is_some()),
            ("account", self.account.is_some()),
            ("access_key", self.access_key.is_some()),
            ("access_key_env", self.access_key_env.is_some()),
            ("access_key_file", self.access_key_file.is_some()),
            ("sas_token_env", self.sas_token_env.is_some()),
            ("sas_token_file", self.sas_token_file.is_some()),
            ("max_block_mib", self.max_block_mib.is_some()),
        ];
        // The fields of the other two kinds must not appear.
        let others: [&[(&str, bool)]; 2] = match self.kind {
            CloudKind::S3 => [&gcs_fields, &azure_fields],
            CloudKind::Gcs => [&s3_fields, &azure_fields],
            CloudKind::Azure => [&s3_fields, &gcs_fields],
        };
        for group in others {
            for (field, present) in group {
                not_for(field, *present)?;
            }
        }
        match self.kind {
            CloudKind::S3 | CloudKind::Gcs => {
                if self.bucket.as_deref().unwrap_or("").is_empty() {
                    return Err(invalid("bucket", "missing"));
                }
            }
            CloudKind::Azure => {
                not_for("bucket", self.bucket.is_some())?;
                if self.container.as_deref().unwrap_or("").is_empty() {
                    return Err(invalid("container", "missing"));
                }
                if self.account.as_deref().unwrap_or("").is_empty() {
                    return Err(invalid("account", "missing"));
                }
                if self
                    .max_block_mib
                    .is_some_and(|m| !(1..=AZURE_MAX_BLOCK_MIB).contains(&m))
                {
                    return Err(invalid(
                        "max_block_mib",
                        format!("must be between 1 and {AZURE_MAX_BLOCK_MIB}"),
                    ));
                }
            }
        }
        if self.kind == CloudKind::S3 {
            self.s3_location()?;
            one_of(
                "access_key_id",
                self.access_key_id.is_some(),
                self.access_key_id_env.is_some(),
                self.access_key_id_file.is_some(),
            )?;
            one_of(
                "secret_access_key",
                self.secret_access_key.is_some(),
                self.secret_access_key_env.is_some(),
                self.secret_access_key_file.is_some(),
            )?;
            let has_id = self.access_key_id.is_some()
                || self.access_key_id_env.is_some()
                || self.access_key_id_file.is_some();
            let has_secret = self.secret_access_key.is_some()
                || self.secret_access_key_env.is_some()
                || self.secret_access_key_file.is_some();
            if has_id != has_secret {
                return Err(invalid(
                    "secret_access_key",
                    "give both an access key id and a secret access key, or neither",
                ));
            }
            if self.profile.is_some() && has_id {
                return Err(invalid(
                    "profile",
                    "give either a profile or static keys, not both",
                ));
            }
        }
        if self.kind == CloudKind::Gcs {
            let given = [
                self.service_account_file.is_some(),
                self.service_account_key_env.is_some(),
                self.anonymous,
            ];
            if given.iter().filter(|g| **g).count() > 1 {
                return Err(invalid(
                    "service_account_file",
                    "give at most one of service_account_file, service_account_key_env, anonymous",
                ));
            }
        }
        if self.kind == CloudKind::Azure {
            one_of(
                "access_key",
                self.access_key.is_some(),
                self.access_key_env.is_some(),
                self.access_key_file.is_some(),
            )?;
            let key = self.access_key.is_some()
                || self.access_key_env.is_some()
                || self.access_key_file.is_some();
            let sas = self.sas_token_env.is_some() || self.sas_token_file.is_some();
            if (self.sas_token_env.is_some() && self.sas_token_file.is_some()) || (key && sas) {
                return Err(invalid(
                    "sas_token_env",
                    "give one credential: a shared key or a SAS token",
                ));
            }
        }
        if let Some(endpoint) = &self.endpoint {
            let lower = endpoint.to_ascii_lowercase();
            if lower.starts_with("http://") {
                if !self.allow_http {
                    return Err(invalid(
                        "endpoint",
                        "plain http:// needs allow_http = true (meant for local test servers)",
                    ));
                }
            } else if !lower.starts_with("https://") {
                return Err(invalid("endpoint", "must start with https:// (or http://)"));
            }
        }
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(invalid(field, "must be a positive number of seconds"))
            }
        };
        positive("connect_timeout_secs", self.connect_timeout_secs)?;
        positive("read_timeout_secs", self.read_timeout_secs)?;
        positive("retry_max_backoff_secs", self.retry_max_backoff_secs)?;
        positive("retry_timeout_secs", self.retry_timeout_secs)?;
        if self.retries > 20 {
            return Err(invalid("retries", "at most 20"));
        }
        if !self.prefix.is_empty() {
            Path::parse(self.prefix.trim_matches('/'))
                .map_err(|e| invalid("prefix", format!("not a valid object path: {e}")))?;
        }
        Ok(())
    }

    /// Endpoint, region and addressing after applying the preset and overrides.
    pub fn s3_location(&self) -> Result<S3Location, CloudError> {
        let preset = self.preset.unwrap_or(if self.endpoint.is_some() {
            S3Preset::Custom
        } else {
            S3Preset::Aws
        });
        let (pattern, default_region, addressing) = preset.conventions();
        let region = match (&self.region, default_region) {
            (Some(r), _) if !r.is_empty() => r.clone(),
            (_, Some(d)) => d.to_string(),
            _ => {
                return Err(invalid(
                    "region",
                    format!("preset {preset:?} needs a region (part of its endpoint)"),
                ))
            }
        };
        if !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid("region", "only letters, digits and '-'"));
        }
        let endpoint = match (&self.endpoint, pattern) {
            (Some(e), _) => Some(e.trim_end_matches('/').to_string()),
            (None, Some(p)) => Some(p.replace("{region}", &region)),
            (None, None) if preset == S3Preset::Aws => None,
            (None, None) => {
                return Err(invalid(
                    "endpoint",
                    format!("preset {preset:?} needs the endpoint of your server"),
                ))
            }
        };
        Ok(S3Location {
            endpoint,
            region,
            addressing: self.addressing.unwrap_or(addressing),
        })
    }

    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(self.retry_initial_backoff_ms),
                max_backoff: Duration::from_secs_f64(self.retry_max_backoff_secs),
                base: 2.0,
            },
            max_retries: self.retries,
            retry_timeout: Duration::from_secs_f64(self.retry_timeout_secs),
        }
    }

    fn connector(&self) -> http::TimeoutConnector {
        http::TimeoutConnector {
            connect_timeout: Duration::from_secs_f64(self.connect_timeout_secs),
            read_timeout: Duration::from_secs_f64(self.read_timeout_secs),
        }
    }

    fn client_options(&self) -> ClientOptions {
        // The connector builds the client; these are what object_store itself reads
        // (allow_http decides whether http:// URLs are accepted at all).
        ClientOptions::new()
            .with_allow_http(self.allow_http)
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs_f64(self.connect_timeout_secs))
    }

    /// Whether multipart uploads use the provider's own multipart API. Garage (2.5) drops an
    /// upload in progress once another write of the same key completes, so two clients
    /// uploading one key at once would fail there: it stages unless told otherwise.
    fn uses_native_multipart(&self) -> bool {
        self.native_multipart
            .unwrap_or(self.preset != Some(S3Preset::Garage))
    }

    /// Builds the backend: reads secrets from their variables or files, creates the store.
    /// Makes no request (reachability is [`crate::Backend::check`]'s job).
    pub fn build(&self, id: &str) -> Result<ObjectStoreBackend, CloudError> {
        self.validate()?;
        let prefix = Path::from(self.prefix.trim_matches('/'));
        // Multipart uploads go to the provider's own multipart API (`object_store::native`)
        // unless `native_multipart = false`.
        let (backend, native) = match self.kind {
            CloudKind::S3 => {
                let store = self.build_s3()?;
                let native = self.s3_native(&store)?;
                (ObjectStoreBackend::new(id, Arc::new(store), prefix), native)
            }
            CloudKind::Gcs => {
                let store = self.build_gcs()?;
                let native = self.gcs_native(&store)?;
                (ObjectStoreBackend::new(id, Arc::new(store), prefix), native)
            }
            CloudKind::Azure => {
                let store = self.build_azure()?;
                let native = self.azure_native(&store)?;
                let backend = ObjectStoreBackend::new(id, Arc::new(store), prefix)
                    .with_meta_names(MetaNames::Azure);
                (backend, native)
            }
        };
        Ok(if self.uses_native_multipart() {
            backend.with_native_multipart(native)
        } else {
            backend
        })
    }

    fn native_retry(&self) -> NativeRetry {
        NativeRetry {
            retries: self.retries,
            initial_backoff: Duration::from_millis(self.retry_initial_backoff_ms),
            max_backoff: Duration::from_secs_f64(self.retry_max_backoff_secs),
        }
    }

    fn native_client(&self) -> Result<reqwest::Client, CloudError> {
        self.connector()
            .client(self.allow_http)
            .map_err(|e| invalid("kind", format!("cannot build the HTTP client: {e}")))
    }

    /// The bucket's URL as object_store's S3 client forms it.
    fn s3_bucket_endpoint(&self) -> Result<String, CloudError> {
        let location = self.s3_location()?;
        let bucket = self.bucket.clone().unwrap_or_default();
        let region = &location.region;
        Ok(match (&location.endpoint, location.addressing) {
            (Some(endpoint), Addressing::Path) => format!("{endpoint}/{bucket}"),
            (Some(endpoint), Addressing::VirtualHost) => bucket_host(endpoint, &bucket)
                .ok_or_else(|| invalid("endpoint", "not a URL of the form scheme://host"))?,
            (None, Addressing::VirtualHost) => {
                format!("https://{bucket}.s3.{region}.amazonaws.com")
            }
            (None, Addressing::Path) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        })
    }

    fn s3_native(
        &self,
        store: &object_store::aws::AmazonS3,
    ) -> Result<NativeMultipart, CloudError> {
        Ok(NativeMultipart::S3(Arc::new(S3Native {
            client: self.native_client()?,
            auth: S3ProtocolAuth::Aws {
                credentials: store.credentials().clone(),
                region: self.s3_location()?.region,
            },
            bucket_endpoint: self.s3_bucket_endpoint()?,
            bucket: self.bucket.clone().unwrap_or_default(),
            retry: self.native_retry(),
        })))
    }

    /// GCS's XML API speaks S3's multipart protocol at `<base>/<bucket>`, the URL form
    /// object_store's GCS client uses for its XML requests.
    fn gcs_native(
        &self,
        store: &object_store::gcp::GoogleCloudStorage,
    ) -> Result<NativeMultipart, CloudError> {
        let base = self
            .endpoint
            .as_deref()
            .unwrap_or(GCS_BASE_URL)
            .trim_end_matches('/');
        let bucket = self.bucket.as_deref().unwrap_or_default();
        Ok(NativeMultipart::S3(Arc::new(S3Native {
            client: self.native_client()?,
            auth: S3ProtocolAuth::Gcp {
                credentials: store.credentials().clone(),
            },
            bucket_endpoint: format!("{base}/{bucket}"),
            bucket: bucket.to_string(),
            retry: self.native_retry(),
        })))
    }

    fn azure_native(
        &self,
        store: &object_store::azure::MicrosoftAzure,
    ) -> Result<NativeMultipart, CloudError> {
        let account = self.account.clone().unwrap_or_default();
        let base = match &self.endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_string(),
            None => format!("https://{account}.blob.core.windows.net"),
        };
        let mut container_url = reqwest::Url::parse(&base)
            .map_err(|e| invalid("endpoint", format!("not a URL: {e}")))?;
        container_url
            .path_segments_mut()
            .map_err(|()| invalid("endpoint", "not a URL with a path"))?
            .pop_if_empty()
            .push(self.container.as_deref().unwrap_or_default());
        Ok(NativeMultipart::Azure(Arc::new(AzureNative {
            client: self.native_client()?,
            credentials: store.credentials().clone(),
            account,
            container_url,
            retry: self.native_retry(),
            max_block_bytes: self.max_block_mib.unwrap_or(AZURE_MAX_BLOCK_MIB) << 20,
        })))
    }

    fn build_s3(&self) -> Result<object_store::aws::AmazonS3, CloudError> {
        use object_store::aws::AmazonS3Builder;
        let location = self.s3_location()?;
        let bucket = self.bucket.clone().unwrap_or_default();
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(&location.region)
            .with_client_options(self.client_options())
            .with_retry(self.retry())
            .with_http_connector(self.connector())
            .with_allow_http(self.allow_http);
        match (&location.endpoint, location.addressing) {
            (Some(endpoint), Addressing::Path) => {
                b = b
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false);
            }
            (Some(endpoint), Addressing::VirtualHost) => {
                // object_store wants the bucket's own endpoint for virtual-host requests.
                let with_bucket = bucket_host(endpoint, &bucket)
                    .ok_or_else(|| invalid("endpoint", "not a URL of the form scheme://host"))?;
                b = b
                    .with_endpoint(with_bucket)
                    .with_virtual_hosted_style_request(true);
            }
            (None, addressing) => {
                b = b.with_virtual_hosted_style_request(addressing == Addressing::VirtualHost);
            }
        }
        let id = secret(
            "access_key_id",
            &self.access_key_id,
            &self.access_key_id_env,
            &self.access_key_id_file,
        )?;
        let key = secret(
            "secret_access_key",
            &self.secret_access_key,
            &self.secret_access_key_env,
            &self.secret_access_key_file,
        )?;
        let token = secret(
            "session_token",
            &None,
            &self.session_token_env,
            &self.session_token_file,
        )?;
        let (id, key, token) = match (&self.profile, id, key) {
            (Some(profile), _, _) => {
                let (id, key, profile_token) = aws_profile(profile)?;
                (Some(id), Some(key), token.or(profile_token))
            }
            (None, id, key) => (id, key, token),
        };
        if let (Some(id), Some(key)) = (id, key) {
            b = b
                .with_access_key_id(id.expose())
                .with_secret_access_key(key.expose());
            if let Some(token) = token {
                b = b.with_token(token.expose());
            }
        }
        // Without static keys object_store's chain applies: web identity token
        // (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN), container credentials, then IMDS.
        b.build()
            .map_err(|e| invalid("kind", format!("cannot build the S3 client: {e}")))
    }

    fn build_gcs(&self) -> Result<object_store::gcp::GoogleCloudStorage, CloudError> {
        use object_store::gcp::GoogleCloudStorageBuilder;
        let mut b = GoogleCloudStorageBuilder::new()
            .with_bucket_name(self.bucket.clone().unwrap_or_default())
            .with_client_options(self.client_options())
            .with_retry(self.retry())
            .with_http_connector(self.connector());
        // object_store takes a custom base URL (and "no OAuth") only from a service-account
        // key's JSON, so those go in there.
        let key_json = match (&self.service_account_file, &self.service_account_key_env) {
            (Some(file), None) => Some(std::fs::read_to_string(file).map_err(|e| {
                invalid("service_account_file", format!("{}: {e}", file.display()))
            })?),
            (None, Some(var)) => Some(env_secret("service_account_key_env", var)?.0),
            _ => None,
        };
        match (key_json, &self.endpoint, self.anonymous) {
            (Some(json), endpoint, _) => {
                let mut value: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
                    invalid(
                        "service_account_file",
                        format!("not a service-account JSON key: {e}"),
                    )
                })?;
                if let (Some(endpoint), Some(obj)) = (endpoint, value.as_object_mut()) {
                    obj.insert("gcs_base_url".into(), endpoint.trim_end_matches('/').into());
                }
                b = b.with_service_account_key(value.to_string());
            }
            (None, Some(endpoint), true) => {
                let value = serde_json::json!({
                    "private_key": "",
                    "private_key_id": "",
                    "client_email": "",
                    "gcs_base_url": endpoint.trim_end_matches('/'),
                    "disable_oauth": true,
                });
                b = b.with_service_account_key(value.to_string());
            }
            (None, Some(_), false) => {
                return Err(invalid(
                    "endpoint",
                    "a custom gcs endpoint needs service_account_file, service_account_key_env \
                     or anonymous = true",
                ))
            }
            (None, None, true) => b = b.with_skip_signature(true),
            (None, None, false) => {} // application-default credentials or instance metadata
        }
        b.build()
            .map_err(|e| invalid("kind", format!("cannot build the GCS client: {e}")))
    }

    fn build_azure(&self) -> Result<object_store::azure::MicrosoftAzure, CloudError> {
        use object_store::azure::MicrosoftAzureBuilder;
        let mut b = MicrosoftAzureBuilder::new()
            .with_account(self.account.clone().unwrap_or_default())
            .with_container_name(self.container.clone().unwrap_or_default())
            .with_client_options(self.client_options())
            .with_retry(self.retry())
            .with_http_connector(self.connector())
            .with_allow_http(self.allow_http);
        if let Some(endpoint) = &self.endpoint {
            b = b.with_endpoint(endpoint.trim_end_matches('/').to_string());
        }
        if let Some(key) = secret(
            "access_key",
            &self.access_key,
            &self.access_key_env,
            &self.access_key_file,
        )? {
            b = b.with_access_key(key.expose());
        } else if let Some(sas) = secret(
            "sas_token",
            &None,
            &self.sas_token_env,
            &self.sas_token_file,
        )? {
            let pairs = sas_pairs(sas.expose())
                .ok_or_else(|| invalid("sas_token_env", "not a SAS query string"))?;
            b = b.with_sas_authorization(pairs);
        }
        // Otherwise object_store's chain: workload identity, then managed identity (IMDS).
        b.build()
            .map_err(|e| invalid("kind", format!("cannot build the Azure client: {e}")))
    }
}

fn one_of(field: &str, inline: bool, env: bool, file: bool) -> Result<(), CloudError> {
    if [inline, env, file].iter().filter(|x| **x).count() > 1 {
        Err(invalid(
            field,
            format!("give only one of {field}, {field}_env, {field}_file"),
        ))
    } else {
        Ok(())
    }
}

fn env_secret(field: &str, var: &str) -> Result<Secret, CloudError> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Secret(v)),
        _ => Err(invalid(
            field,
            format!("environment variable {var} is not set"),
        )),
    }
}

/// A secret given inline, in an environment variable, or in a file (trailing newline
/// removed).
fn secret(
    field: &str,
    inline: &Option<Secret>,
    env: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, CloudError> {
    if let Some(s) = inline {
        return Ok(Some(s.clone()));
    }
    if let Some(var) = env {
        return env_secret(&format!("{field}_env"), var).map(Some);
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(&format!("{field}_file"), format!("{}: {e}", path.display())))?;
        let value = text.trim_end_matches(['\r', '\n']).to_string();
        if value.is_empty() {
            return Err(invalid(
                &format!("{field}_file"),
                format!("{} is empty", path.display()),
            ));
        }
        return Ok(Some(Secret(value)));
    }
    Ok(None)
}

/// `scheme://host[:port][/path]` → `scheme://bucket.host[:port][/path]`.
fn bucket_host(endpoint: &str, bucket: &str) -> Option<String> {
    let (scheme, rest) = endpoint.split_once("://")?;
    if rest.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{bucket}.{rest}"))
}

/// A SAS token (`sv=…&sig=…`, with or without a leading `?`) as query pairs.
fn sas_pairs(sas: &str) -> Option<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = sas
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=')?;
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            };
            Some((decode(k)?, decode(v)?))
        })
        .collect::<Option<_>>()?;
    (!pairs.is_empty()).then_some(pairs)
}

/// Static keys of `profile` in the AWS shared credentials file.
fn aws_profile(profile: &str) -> Result<(Secret, Secret, Option<Secret>), CloudError> {
    let path = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".aws").join("credentials"))
            .ok_or_else(|| invalid("profile", "no HOME to find ~/.aws/credentials"))?,
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| invalid("profile", format!("{}: {e}", path.display())))?;
    parse_aws_profile(&text, profile).ok_or_else(|| {
        invalid(
            "profile",
            format!(
                "{}: no profile [{profile}] with aws_access_key_id and aws_secret_access_key",
                path.display()
            ),
        )
    })
}

fn parse_aws_profile(text: &str, profile: &str) -> Option<(Secret, Secret, Option<Secret>)> {
    let (mut id, mut key, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section.trim() == profile;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = Secret(v.trim().to_string());
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => key = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((id?, key?, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_like: serde_json::Value) -> CloudConfig {
        serde_json::from_value(toml_like).expect("config")
    }

    #[test]
    fn presets_fill_endpoint_region_and_addressing() {
        let c = parse(
            serde_json::json!({"kind": "s3", "bucket": "b", "preset": "scaleway", "region": "fr-par"}),
        );
        assert_eq!(
            c.s3_location().unwrap(),
            S3Location {
                endpoint: Some("https://s3.fr-par.scw.cloud".into()),
                region: "fr-par".into(),
                addressing: Addressing::Path
            }
        );
        let c = parse(
            serde_json::json!({"kind": "s3", "bucket": "b", "preset": "exoscale", "region": "ch-gva-2"}),
        );
        assert_eq!(
            c.s3_location().unwrap().endpoint.as_deref(),
            Some("https://sos-ch-gva-2.exo.io")
        );
        let c = parse(
            serde_json::json!({"kind": "s3", "bucket": "b", "preset": "hetzner", "region": "fsn1"}),
        );
        assert_eq!(
            c.s3_location().unwrap().endpoint.as_deref(),
            Some("https://fsn1.your-objectstorage.com")
        );
        let c = parse(
            serde_json::json!({"kind": "s3", "bucket": "b", "preset": "ovh", "region": "gra"}),
        );
        assert_eq!(
            c.s3_location().unwrap().endpoint.as_deref(),
            Some("https://s3.gra.io.cloud.ovh.net")
        );
        // AWS: no endpoint (object_store's own per region), virtual-host.
        let c = parse(serde_json::json!({"kind": "s3", "bucket": "b"}));
        let l = c.s3_location().unwrap();
        assert_eq!(
            (l.endpoint, l.region.as_str(), l.addressing),
            (None, "us-east-1", Addressing::VirtualHost)
        );
        // Every preset field can be overridden.
        let c = parse(
            serde_json::json!({"kind": "s3", "bucket": "b", "preset": "scaleway", "region": "nl-ams",
            "endpoint": "https://s3.example.eu/", "addressing": "virtual-host"}),
        );
        assert_eq!(
            c.s3_location().unwrap(),
            S3Location {
                endpoint: Some("https://s3.example.eu".into()),
                region: "nl-ams".into(),
                addressing: Addressing::VirtualHost
            }
        );
        // Presets that need a region or an endpoint say so.
        let c = parse(serde_json::json!({"kind": "s3", "bucket": "b", "preset": "ovh"}));
        assert_eq!(c.validate().unwrap_err().field, "region");
        let c = parse(serde_json::json!({"kind": "s3", "bucket": "b", "preset": "garage"}));
        assert_eq!(c.validate().unwrap_err().field, "endpoint");
        let c = parse(
            serde_json::json!({"kind": "s3", "bucket": "b", "endpoint": "http://127.0.0.1:9000"}),
        );
        assert_eq!(
            c.validate().unwrap_err().field,
            "endpoint",
            "http needs allow_http"
        );
    }

    #[test]
    fn native_multipart_defaults_per_preset() {
        let built = |extra: serde_json::Value| {
            let mut json = serde_json::json!({"kind": "s3", "bucket": "b",
                "endpoint": "http://127.0.0.1:1", "allow_http": true,
                "access_key_id": "k", "secret_access_key": "s"});
            if let (Some(obj), Some(more)) = (json.as_object_mut(), extra.as_object()) {
                obj.extend(more.clone());
            }
            parse(json)
                .build("b")
                .expect("build")
                .has_native_multipart()
        };
        assert!(built(serde_json::json!({"preset": "custom"})));
        assert!(!built(serde_json::json!({"preset": "garage"})));
        assert!(built(
            serde_json::json!({"preset": "garage", "native_multipart": true})
        ));
        assert!(!built(serde_json::json!({"native_multipart": false})));
        let gcs = parse(serde_json::json!({"kind": "gcs", "bucket": "b",
            "endpoint": "http://127.0.0.1:1", "anonymous": true, "allow_http": true}));
        assert!(gcs.build("g").expect("build gcs").has_native_multipart());
    }

    #[test]
    fn fields_are_checked_per_kind() {
        let c = parse(serde_json::json!({"kind": "gcs", "bucket": "b", "preset": "aws"}));
        assert_eq!(c.validate().unwrap_err().field, "preset");
        let c = parse(serde_json::json!({"kind": "azure", "container": "c"}));
        assert_eq!(c.validate().unwrap_err().field, "account");
        let c = parse(serde_json::json!({"kind": "s3", "bucket": "b", "access_key_id": "x"}));
        assert_eq!(c.validate().unwrap_err().field, "secret_access_key");
        let c = parse(
            serde_json::json!({"kind": "s3", "bucket": "b", "access_key_id": "x",
            "access_key_id_env": "X", "secret_access_key": "y"}),
        );
        assert_eq!(c.validate().unwrap_err().field, "access_key_id");
        assert!(serde_json::from_value::<CloudConfig>(
            serde_json::json!({"kind": "s3", "bucket": "b", "nonsense": 1})
        )
        .is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let c = parse(
            serde_json::json!({"kind": "s3", "bucket": "b", "access_key_id": "AKIDVISIBLE",
            "secret_access_key": "very-secret-value"}),
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("very-secret-value") && !shown.contains("AKIDVISIBLE"),
            "{shown}"
        );
        let e = secret(
            "secret_access_key",
            &None,
            &Some("HANSA_TEST_SURELY_UNSET_VAR".into()),
            &None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("HANSA_TEST_SURELY_UNSET_VAR"));
    }

    #[test]
    fn secrets_from_files_and_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "s3cr3t\n").unwrap();
        let got = secret("k", &None, &None, &Some(file)).unwrap().unwrap();
        assert_eq!(got.expose(), "s3cr3t");
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[other]\n\
                    aws_access_key_id=C\naws_secret_access_key=D\naws_session_token=T\n";
        let (id, key, token) = parse_aws_profile(text, "other").unwrap();
        assert_eq!(
            (
                id.expose(),
                key.expose(),
                token.as_ref().map(Secret::expose)
            ),
            ("C", "D", Some("T"))
        );
        assert!(parse_aws_profile(text, "missing").is_none());
    }

    #[test]
    fn sas_tokens_split_into_pairs() {
        let pairs = sas_pairs("?sv=2021-06-08&sig=a%2Fb%3D&sp=rw").unwrap();
        assert_eq!(pairs[1], ("sig".to_string(), "a/b=".to_string()));
        assert!(sas_pairs("").is_none());
        assert_eq!(
            bucket_host("https://s3.example.eu:8443", "bkt").as_deref(),
            Some("https://bkt.s3.example.eu:8443")
        );
    }

    #[test]
    fn builds_each_kind_without_network() {
        for json in [
            serde_json::json!({"kind": "s3", "bucket": "b", "endpoint": "http://127.0.0.1:1", "allow_http": true,
                "access_key_id": "a", "secret_access_key": "b"}),
            serde_json::json!({"kind": "s3", "bucket": "b", "preset": "scaleway", "region": "fr-par",
                "access_key_id": "a", "secret_access_key": "b", "addressing": "virtual-host"}),
            serde_json::json!({"kind": "gcs", "bucket": "b", "endpoint": "http://127.0.0.1:1", "allow_http": true,
                "anonymous": true}),
            serde_json::json!({"kind": "azure", "account": "devstoreaccount1", "container": "c",
                "endpoint": "http://127.0.0.1:1/devstoreaccount1", "allow_http": true,
                "access_key": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="}),
        ] {
            let c = parse(json.clone());
            c.build("t").unwrap_or_else(|e| panic!("{json}: {e}"));
        }
    }
}
