//! `hansa`: the gateway's command line.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use hansa::config::{self, Config};

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
        /// Admin listener address, overriding the configuration's [admin] listen (embedded
        /// default: 127.0.0.1:9001).
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
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
    /// Check a configuration before serving it: validate the file (as `serve` does), probe
    /// every backend (in parallel, each within limits.backend_timeout_secs) and print the
    /// placement summary. Exit 0 when all is well, 1 on a backend or policy problem, 2 when
    /// the file is invalid. Does not open the index (runs beside a gateway).
    CheckConfig {
        /// TOML configuration file, as given to `hansa serve`.
        file: PathBuf,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Talk to a running gateway's admin plane: backends, buckets, jobs (drain, rebalance,
    /// verify), anti-entropy. See docs/ADMIN.md.
    Admin(AdminArgs),
    /// Print the version.
    Version,
}

#[derive(clap::Args)]
struct AdminArgs {
    /// The admin listener (default: the --config file's [admin] listen, else
    /// http://127.0.0.1:9001).
    #[arg(long, global = true)]
    url: Option<String>,
    /// The gateway's configuration file: the admin address and token are taken from it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// A file holding the admin token (else $HANSA_ADMIN_TOKEN, the configuration's token,
    /// or ./hansa-data/admin-token).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// Print the raw JSON answer (with --wait: one JSON line per update).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Backends: health, latency, circuit, repair queue, objects and bytes, draining.
    Backends,
    /// Buckets: policy, replicas, write quorum, members, rules, objects and bytes.
    Buckets,
    /// Every job, oldest first.
    Jobs,
    /// One job in full.
    Job {
        id: String,
        /// Follow the job until it ends.
        #[arg(long)]
        wait: bool,
    },
    /// Pause a running job.
    Pause { id: String },
    /// Resume a paused job.
    Resume { id: String },
    /// Cancel a running or paused job.
    Cancel { id: String },
    /// Move every replica off a backend (it takes no new replicas from now on).
    Drain {
        backend: String,
        /// Keep the drained backend's copies (stop writing to it only).
        #[arg(long)]
        keep_replicas: bool,
        #[arg(long)]
        wait: bool,
    },
    /// Move objects to where the current policies place them.
    Rebalance {
        #[arg(long)]
        wait: bool,
    },
    /// Check replicas against the index.
    Verify {
        /// Only the replicas on this backend.
        #[arg(long)]
        backend: Option<String>,
        /// Read and checksum every byte.
        #[arg(long)]
        deep: bool,
        /// Queue what is wrong for repair.
        #[arg(long)]
        repair: bool,
        #[arg(long)]
        wait: bool,
    },
    /// Compare every backend's listing with the index now.
    AntiEntropy,
    /// Apply the buckets' lifecycle rules now (one bounded pass), or with --dry-run list what
    /// a pass would remove.
    Lifecycle {
        #[arg(long)]
        dry_run: bool,
        /// Evaluate the rules at this time (RFC 3339 or milliseconds since the epoch).
        #[arg(long)]
        now: Option<String>,
        /// At most this many removals in the pass.
        #[arg(long)]
        max_actions: Option<usize>,
    },
    /// Read the gateway's configuration file again and apply it (as SIGHUP does): prints
    /// the changes applied and those that need a restart, or why the file was refused.
    Reload,
}

fn main() -> ExitCode {
    keep_body_buffers_unpooled();
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match cli.command {
        Command::Admin(args) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("hansa admin: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(admin(args)) {
                Ok(code) => code,
                Err(message) => {
                    eprintln!("hansa admin: {message}");
                    ExitCode::FAILURE
                }
            }
        }
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
        Command::CheckConfig { file, json } => check_config(&file, json),
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
            admin_listen,
        } => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("hansa: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let overrides = hansa::config_source::Overrides {
                listen,
                data_dir: data,
                admin_listen,
                allow_empty_index,
                force,
            };
            let code = match runtime.block_on(serve(config, overrides)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("hansa: {message}");
                    ExitCode::FAILURE
                }
            };
            // Requests still running after the shutdown grace end here; the blocking pool
            // gets a moment, not for ever.
            runtime.shutdown_timeout(Duration::from_secs(2));
            code
        }
    }
}

async fn serve(
    config_file: Option<PathBuf>,
    overrides: hansa::config_source::Overrides,
) -> Result<(), String> {
    let mut config = match &config_file {
        Some(file) => Config::from_file(file).map_err(|e| e.to_string())?,
        None => Config::embedded(
            overrides
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./hansa-data")),
            overrides
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9000))),
        ),
    };
    // The flags override the file here and at every reload.
    let generated = overrides.apply(&mut config)?;
    if config_file.is_none() {
        // The embedded default's admin plane, with a token kept beside the generated key.
        let (file, created) =
            config::generated_admin_token(&config.server.data_dir).map_err(|e| e.to_string())?;
        if let Some(admin) = config.admin.as_mut() {
            admin.token = config::AdminToken::File(file.clone());
        }
        if created {
            println!("hansa: generated an admin token in {}", file.display());
        }
    }
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
    if let Some(a) = running.admin_addr {
        println!("hansa: admin plane on http://{a}");
    }
    if let Some(a) = running.metrics_addr {
        println!("hansa: metrics on http://{a}/metrics");
    }
    if let Some(key) = generated {
        print_key(&key, &endpoint, &region);
    }
    let gateway = running.gateway.clone();
    if let Some(file) = config_file {
        gateway
            .set_reload_source(hansa::config_source::Source { file, overrides })
            .await;
    }
    wait_for_signal().await;
    // Read now: a reload may have changed it.
    let grace_secs = gateway.live().config.limits.shutdown_grace_secs;
    tracing::info!(
        grace_secs,
        "shutting down: no new connections; requests in flight may finish"
    );
    let clean = tokio::select! {
        clean = running.shutdown(Duration::from_secs(grace_secs)) => clean,
        _ = wait_for_signal() => {
            tracing::warn!("second signal: not waiting for the grace");
            false
        }
    };
    if !clean {
        tracing::warn!(
            grace_secs,
            "requests still in flight after the grace: their connections are closed"
        );
    }
    // Every acknowledged write is durable already; this makes the rest of the index so.
    match gateway.store.meta.sync().await {
        Ok(()) => tracing::info!("index flushed; stopped"),
        Err(e) => tracing::error!(error = %e, "could not flush the index at shutdown"),
    }
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

/// `hansa check-config`: 0 when the configuration is valid and every backend and policy is
/// ready, 1 on a backend or policy problem, 2 when the file cannot be loaded.
fn check_config(file: &std::path::Path, json: bool) -> ExitCode {
    let config = match Config::from_file(file) {
        Ok(c) => c,
        Err(e) => {
            if json {
                let v = serde_json::json!({"file": file.display().to_string(),
                    "valid": false, "problems": [e.to_string()]});
                println!("{v}");
            }
            eprintln!("hansa check-config: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hansa check-config: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(hansa::check_config::check(file, &config));
    if json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        v["valid"] = serde_json::Value::Bool(true);
        println!("{v}");
    } else {
        print!("{report}");
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        for p in &report.problems {
            eprintln!("hansa check-config: {p}");
        }
        ExitCode::FAILURE
    }
}

/// Runs one `hansa admin` command; the exit code says whether it (and, with `--wait`, the
/// job) succeeded.
async fn admin(args: AdminArgs) -> Result<ExitCode, String> {
    use hansa::admin::client::{self, AdminClient};
    use serde_json::json;
    let config = match &args.config {
        Some(file) => Some(Config::from_file_for_inspection(file).map_err(|e| e.to_string())?),
        None => None,
    };
    let url = client::admin_url(args.url.as_deref(), config.as_ref());
    let token = client::find_token(args.token_file.as_deref(), config.as_ref())
        .map_err(|e| e.to_string())?;
    let api = AdminClient::new(url, token).map_err(|e| e.to_string())?;
    let fail = |e: client::ClientError| e.to_string();
    let print_json = |v: &serde_json::Value| {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    };
    match args.command {
        AdminCommand::Backends | AdminCommand::Buckets => {
            let (path, table): (_, fn(&serde_json::Value) -> String) = match args.command {
                AdminCommand::Backends => ("/backends", client::backends_table),
                _ => ("/buckets", client::buckets_table),
            };
            let v = api.get(path).await.map_err(fail)?;
            if args.json {
                print_json(&v);
            } else {
                print!("{}", table(&v));
            }
        }
        AdminCommand::Jobs => {
            let v = api.get("/jobs").await.map_err(fail)?;
            if args.json {
                print_json(&v);
            } else {
                let jobs: Vec<hansa::meta::JobRecord> =
                    serde_json::from_value(v).map_err(|e| format!("not a job list: {e}"))?;
                print!("{}", client::jobs_table(&jobs));
            }
        }
        AdminCommand::Reload => {
            let v = api.post("/reload", None).await.map_err(fail)?;
            if args.json {
                print_json(&v);
            } else {
                print!("{}", client::reload_text(&v));
            }
        }
        AdminCommand::AntiEntropy => {
            let v = api.post("/anti-entropy", None).await.map_err(fail)?;
            if args.json {
                print_json(&v);
            } else {
                print!("{}", client::anti_entropy_table(&v));
            }
        }
        AdminCommand::Lifecycle {
            dry_run,
            now,
            max_actions,
        } => {
            let mut query = format!("dry_run={dry_run}");
            if let Some(now) = now {
                query.push_str("&now=");
                query.extend(percent_encoding::utf8_percent_encode(
                    &now,
                    percent_encoding::NON_ALPHANUMERIC,
                ));
            }
            if let Some(n) = max_actions {
                query.push_str(&format!("&max_actions={n}"));
            }
            let v = api
                .post(&format!("/lifecycle/run?{query}"), None)
                .await
                .map_err(fail)?;
            if args.json {
                print_json(&v);
            } else {
                print!("{}", client::lifecycle_table(&v));
            }
        }
        AdminCommand::Job { id, wait } => {
            let v = api.get(&format!("/jobs/{id}")).await.map_err(fail)?;
            return show_job(&api, v, wait, args.json).await;
        }
        AdminCommand::Pause { id } => return control(&api, &id, "pause", args.json).await,
        AdminCommand::Resume { id } => return control(&api, &id, "resume", args.json).await,
        AdminCommand::Cancel { id } => return control(&api, &id, "cancel", args.json).await,
        AdminCommand::Drain {
            backend,
            keep_replicas,
            wait,
        } => {
            let spec = json!({"kind": "drain", "backend": backend, "keep_replicas": keep_replicas});
            let v = api.post("/jobs", Some(&spec)).await.map_err(fail)?;
            return show_job(&api, v, wait, args.json).await;
        }
        AdminCommand::Rebalance { wait } => {
            let v = api
                .post("/jobs", Some(&json!({"kind": "rebalance"})))
                .await
                .map_err(fail)?;
            return show_job(&api, v, wait, args.json).await;
        }
        AdminCommand::Verify {
            backend,
            deep,
            repair,
            wait,
        } => {
            let spec =
                json!({"kind": "verify", "backend": backend, "deep": deep, "repair": repair});
            let v = api.post("/jobs", Some(&spec)).await.map_err(fail)?;
            return show_job(&api, v, wait, args.json).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Pauses, resumes or cancels a job, and shows it.
async fn control(
    api: &hansa::admin::client::AdminClient,
    id: &str,
    action: &str,
    json: bool,
) -> Result<ExitCode, String> {
    let v = api
        .post(&format!("/jobs/{id}/{action}"), None)
        .await
        .map_err(|e| e.to_string())?;
    show_job(api, v, false, json).await
}

/// Shows a started or changed job; with `wait`, follows it until it ends and exits non-zero
/// unless it is done without problems.
async fn show_job(
    api: &hansa::admin::client::AdminClient,
    value: serde_json::Value,
    wait: bool,
    json: bool,
) -> Result<ExitCode, String> {
    use hansa::admin::client::{self, Follow};
    let job = client::job_from(value.clone(), "the admin listener").map_err(|e| e.to_string())?;
    if !wait {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        } else {
            print!("{}", client::job_details(&job));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        println!(
            "following job {} ({})",
            job.id,
            client::describe_spec(&job.spec)
        );
    }
    let last = client::follow(api, &job.id, Follow::choose(json))
        .await
        .map_err(|e| e.to_string())?;
    if !json {
        print!("{}", client::job_details(&last));
    }
    Ok(if client::succeeded(&last) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Logs go to stderr (stdout carries what the operator asked for), filtered by `RUST_LOG`
/// (or `HANSA_LOG`, which wins when both are set; default `info`). JSON lines are flat: the
/// keys `timestamp`, `level`, `target`, `message` and the event's own fields side by side.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HANSA_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
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
