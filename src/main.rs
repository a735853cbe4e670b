//! `hansa`: the gateway's command line.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hansa::config::{self, Config, CredentialConfig};

#[derive(Parser)]
#[command(
    name = "hansa",
    version,
    about = "S3-compatible gateway that replicates every object across storage providers"
)]
struct Cli {
    /// Log lines as text (coloured only on a terminal) or as JSON objects for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without --config: the embedded default (two local replicas under
    /// ./hansa-data, listening on 127.0.0.1:9000).
    Serve {
        /// TOML configuration file (see deploy/hansa.example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding the configuration.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (index, generated credentials, embedded backends).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Start with an empty index although a backend holds Hansa's data (otherwise
        /// refused: rebuild the index with `hansa rebuild-index`).
        #[arg(long)]
        allow_empty_index: bool,
        /// Start although objects have their only present replicas on a backend the
        /// configuration no longer has.
        #[arg(long)]
        force: bool,
    },
    /// Rebuild a lost index from the backends (offline: the gateway must not run, and the
    /// index must hold no bucket).
    RebuildIndex {
        /// TOML configuration file, as given to `hansa serve`.
        #[arg(long)]
        config: PathBuf,
        /// Print the counts as one JSON object.
        #[arg(long)]
        json: bool,
        /// Also import objects Hansa did not write, found at `<bucket>/<key>` of a valid bucket
        /// name: each is read once and stamped (local backends only).
        #[arg(long)]
        import_foreign: bool,
    },
    /// Explain where writes of a key go and why (from the configuration alone), and where its
    /// current version lives (from the index, unless a running gateway holds it).
    Explain {
        /// TOML configuration file, as given to `hansa serve`.
        #[arg(long)]
        config: PathBuf,
        bucket: String,
        key: String,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    keep_body_buffers_unpooled();
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match cli.command {
        Command::Version => {
            println!("hansa {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Explain {
            config,
            bucket,
            key,
        } => match Config::from_file_for_inspection(&config) {
            // The plan can always be shown; a missing key or an index held by a running
            // gateway is part of the answer, not a failure.
            Ok(config) => {
                print!("{}", hansa::explain::explain(&config, &bucket, &key));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hansa: {e}");
                ExitCode::FAILURE
            }
        },
        Command::RebuildIndex {
            config,
            json,
            import_foreign,
        } => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("hansa: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(rebuild_index(config, json, import_foreign)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("hansa: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve {
            config,
            listen,
            data,
            allow_empty_index,
            force,
        } => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("hansa: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let overrides = hansa::store::StartupOverrides {
                allow_empty_index,
                force,
            };
            match runtime.block_on(serve(config, listen, data, overrides)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("hansa: {message}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(
    config_file: Option<PathBuf>,
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    overrides: hansa::store::StartupOverrides,
) -> Result<(), String> {
    let mut config = match &config_file {
        Some(file) => Config::from_file(file).map_err(|e| e.to_string())?,
        None => Config::embedded(
            data.clone()
                .unwrap_or_else(|| PathBuf::from("./hansa-data")),
            listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000))),
        ),
    };
    if let Some(addr) = listen {
        config.server.listen = vec![addr];
    }
    if let Some(dir) = data {
        config.server.data_dir = dir;
    }
    config.server.allow_empty_index |= overrides.allow_empty_index;
    config.server.force_start |= overrides.force;
    let generated = if config.credentials.is_empty() {
        let key = config::generated_key(&config.server.data_dir).map_err(|e| e.to_string())?;
        config.credentials.push(CredentialConfig {
            access_key_id: key.access_key_id.clone(),
            secret_access_key: Some(key.secret_access_key.clone()),
            secret_access_key_env: None,
            buckets: None,
            read_only: false,
        });
        Some(key)
    } else {
        None
    };
    let region = config.server.region.clone();
    let running = hansa::server::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let endpoint = running
        .http_addrs
        .first()
        .map(|a| format!("http://{a}"))
        .or_else(|| running.tls_addrs.first().map(|a| format!("https://{a}")))
        .unwrap_or_default();
    for a in &running.http_addrs {
        println!("hansa: listening on http://{a}");
    }
    for a in &running.tls_addrs {
        println!("hansa: listening on https://{a}");
    }
    if let Some(key) = generated {
        print_key(&key, &endpoint, &region);
    }
    let stopper = running.stopper();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stopper.send(true);
    });
    running.wait().await;
    Ok(())
}

/// `hansa rebuild-index`: opens the index and the backends of `config_file`, rebuilds, and
/// prints what it found.
async fn rebuild_index(
    config_file: PathBuf,
    json: bool,
    import_foreign: bool,
) -> Result<(), String> {
    let config = Config::from_file(&config_file).map_err(|e| e.to_string())?;
    let owner = config
        .credentials
        .first()
        .map(|c| c.access_key_id.clone())
        .or_else(|| {
            config::generated_key(&config.server.data_dir)
                .ok()
                .map(|k| k.access_key_id)
        })
        .unwrap_or_default();
    let store = hansa::store::Store::open(&config)
        .await
        .map_err(|e| e.to_string())?;
    let store = std::sync::Arc::new(store);
    let options = hansa::store::rebuild::RebuildOptions { import_foreign };
    let report =
        hansa::store::rebuild::rebuild_index(&store, &owner, &config.server.region, options)
            .await
            .map_err(|e| format!("rebuild failed: {e}"))?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "hansa: rebuilt the index from {} backend(s) in {} ms: {} bucket(s), {} object(s), \
             {} byte(s); {} stale cop(ies) skipped, {} tombstoned key(s), {} foreign object(s) \
             skipped, {} imported, {} replica(s) pending repair",
            report.backends,
            report.millis,
            report.buckets,
            report.objects,
            report.bytes,
            report.stale_copies,
            report.tombstoned_keys,
            report.foreign_skipped,
            report.foreign_imported,
            report.pending_replicas
        );
    }
    Ok(())
}

/// Logs go to stderr (stdout carries what the operator asked for), filtered by `HANSA_LOG`.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HANSA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn print_key(key: &config::GeneratedKey, endpoint: &str, region: &str) {
    // Under a service manager stdout is a journal: the secret stays in its file there.
    if key.created && !std::io::stdout().is_terminal() {
        println!(
            "hansa: generated a new access key {} (the secret is in {})",
            key.access_key_id,
            key.file.display()
        );
    } else if key.created {
        println!(
            "\nhansa: generated a new access key (stored in {file}, shown only this once):\n\
             \n  access key id:     {id}\n  secret access key: {secret}\n\
             \naws cli:\n  export AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={region}\n  \
             aws --endpoint-url {endpoint} s3 mb s3://my-bucket\n\
             \nrclone (~/.config/rclone/rclone.conf):\n  [hansa]\n  type = s3\n  provider = Other\n  \
             access_key_id = {id}\n  secret_access_key = {secret}\n  endpoint = {endpoint}\n  region = {region}\n",
            file = key.file.display(),
            id = key.access_key_id,
            secret = key.secret_access_key,
        );
    } else {
        println!(
            "hansa: access key id {} (secret in {})",
            key.access_key_id,
            key.file.display()
        );
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// glibc raises its mmap threshold each time a large mapped block is freed, so after the first
/// request the gateway's 8 MiB body buffers come from the heap arenas, and freed ones stay
/// resident. A fixed threshold keeps each body buffer in its own mapping, returned to the
/// system when the buffer is dropped: resident memory follows the buffers in use.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_body_buffers_unpooled() {
    // SAFETY: mallopt only tunes the allocator; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_body_buffers_unpooled() {}
