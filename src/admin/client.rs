//! The `hansa admin` client: finds the admin listener and its token, sends one request, and
//! shows the answer as a table (or as the raw JSON). `--wait` follows a job until it ends.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{Config, ADMIN_TOKEN_FILE};
use crate::meta::{JobRecord, JobSpec, JobState};

/// The admin token's environment variable.
pub const TOKEN_ENV: &str = "HANSA_ADMIN_TOKEN";

/// Where the embedded default keeps its token (`hansa serve` without `--config`).
const DEFAULT_DATA_DIR: &str = "./hansa-data";

#[derive(thiserror::Error, Debug)]
pub enum ClientError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot reach the admin listener at {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("the admin listener refused the token (401 Unauthorized): check --token-file, {TOKEN_ENV} or the configuration's [admin] token")]
    Unauthorized,
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from {url}: {problem}")]
    Decode { url: String, problem: String },
}

/// Where the admin listener is: `--url`, else the configuration's `[admin] listen`, else the
/// default address.
pub fn admin_url(url: Option<&str>, config: Option<&Config>) -> String {
    if let Some(url) = url {
        return url.trim_end_matches('/').to_string();
    }
    let listen = config
        .and_then(|c| c.admin.as_ref())
        .map(|a| a.listen)
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 9001)));
    // A listener on every address is reached on this machine's loopback.
    let host = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", listen.port())
}

/// The token: `--token-file`, else `HANSA_ADMIN_TOKEN`, else the configuration's, else the
/// embedded default's `./hansa-data/admin-token`.
pub fn find_token(
    token_file: Option<&Path>,
    config: Option<&Config>,
) -> Result<String, ClientError> {
    if let Some(file) = token_file {
        return token_from_file(file);
    }
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        if !token.trim().is_empty() {
            return Ok(token.trim().to_string());
        }
    }
    if let Some(admin) = config.and_then(|c| c.admin.as_ref()) {
        return admin
            .token
            .resolve()
            .map_err(|e| ClientError::Setup(e.to_string()));
    }
    let default = PathBuf::from(DEFAULT_DATA_DIR).join(ADMIN_TOKEN_FILE);
    if default.exists() {
        return token_from_file(&default);
    }
    Err(ClientError::Setup(format!(
        "no admin token: give --token-file, set {TOKEN_ENV}, or --config with an [admin] token"
    )))
}

fn token_from_file(file: &Path) -> Result<String, ClientError> {
    let token = std::fs::read_to_string(file)
        .map_err(|e| ClientError::Setup(format!("{}: {e}", file.display())))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(ClientError::Setup(format!(
            "{}: the token is empty",
            file.display()
        )));
    }
    Ok(token.to_string())
}

/// A connection to one admin listener.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(base: String, token: String) -> Result<AdminClient, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Anti-entropy lists every backend: it may take minutes on large ones.
            .timeout(Duration::from_secs(3600))
            .build()
            .map_err(|e| ClientError::Setup(format!("HTTP client: {e}")))?;
        Ok(AdminClient { base, token, http })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        self.send(reqwest::Method::POST, path, body).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}/admin/v1{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Connect {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|source| ClientError::Connect {
                url: self.base.clone(),
                source,
            })?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized);
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| ClientError::Decode {
            url: url.clone(),
            problem: format!("{status}: {e}"),
        })?;
        if !status.is_success() {
            let field = |name: &str| {
                value
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            return Err(ClientError::Api {
                status: status.as_u16(),
                code: field("error"),
                message: field("message"),
            });
        }
        Ok(value)
    }

    /// Reads a job record.
    pub async fn job(&self, id: &str) -> Result<JobRecord, ClientError> {
        let value = self.get(&format!("/jobs/{id}")).await?;
        job_from(value, &self.base)
    }
}

pub fn job_from(value: Value, base: &str) -> Result<JobRecord, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::Decode {
        url: base.to_string(),
        problem: format!("not a job record: {e}"),
    })
}

// ---- Tables ----------------------------------------------------------------------------

/// Lays out rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `1.5 GiB`, `12 KiB`, `300 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn text(v: &Value, field: &str) -> String {
    match v.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_string(),
        Some(other) => other.to_string(),
    }
}

fn number(v: &Value, field: &str) -> u64 {
    v.get(field).and_then(Value::as_u64).unwrap_or(0)
}

pub fn backends_table(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|b| {
            let tags = b
                .get("tags")
                .and_then(Value::as_object)
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                text(b, "id"),
                text(b, "kind"),
                text(b, "state"),
                if b.get("draining").and_then(Value::as_bool) == Some(true) {
                    "yes".into()
                } else {
                    "no".into()
                },
                number(b, "objects").to_string(),
                human_bytes(number(b, "bytes")),
                text(b, "p50_ms"),
                text(b, "p99_ms"),
                number(b, "queued").to_string(),
                tags,
            ]
        })
        .collect();
    table(
        &[
            "BACKEND", "KIND", "CIRCUIT", "DRAINING", "OBJECTS", "BYTES", "P50_MS", "P99_MS",
            "QUEUED", "TAGS",
        ],
        &rows,
    )
}

pub fn buckets_table(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|b| {
            let policy = b.get("policy").cloned().unwrap_or(Value::Null);
            let list = |field: &str, sep: &str| {
                policy
                    .get(field)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(sep)
                    })
                    .unwrap_or_default()
            };
            vec![
                text(b, "name"),
                text(&policy, "name"),
                format!(
                    "{}/{}",
                    number(&policy, "write_quorum"),
                    number(&policy, "replicas")
                ),
                list("members", ","),
                number(b, "objects").to_string(),
                human_bytes(number(b, "bytes")),
                list("rules", "; "),
            ]
        })
        .collect();
    table(
        &[
            "BUCKET",
            "POLICY",
            "QUORUM/REPLICAS",
            "MEMBERS",
            "OBJECTS",
            "BYTES",
            "RULES",
        ],
        &rows,
    )
}

pub fn describe_spec(spec: &JobSpec) -> String {
    match spec {
        JobSpec::Drain {
            backend,
            keep_replicas,
        } => {
            if *keep_replicas {
                format!("drain {backend} (keep replicas)")
            } else {
                format!("drain {backend}")
            }
        }
        JobSpec::Rebalance => "rebalance".to_string(),
        JobSpec::Verify {
            backend,
            deep,
            repair,
        } => {
            let mut s = "verify".to_string();
            if let Some(b) = backend {
                s.push_str(&format!(" {b}"));
            }
            if *deep {
                s.push_str(" deep");
            }
            if *repair {
                s.push_str(" repair");
            }
            s
        }
    }
}

fn state_name(state: JobState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{state:?}"))
}

pub fn jobs_table(jobs: &[JobRecord]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let p = &j.progress;
            vec![
                j.id.clone(),
                describe_spec(&j.spec),
                state_name(j.state),
                format!("{}/{}", p.objects_done, p.objects_total),
                format!(
                    "{}/{}",
                    human_bytes(p.bytes_done),
                    human_bytes(p.bytes_total)
                ),
                p.objects_failed.to_string(),
                j.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "JOB", "STATE", "OBJECTS", "BYTES", "FAILED", "MESSAGE",
        ],
        &rows,
    )
}

/// One job in full: what it is, where it is, what it found.
pub fn job_details(j: &JobRecord) -> String {
    let p = &j.progress;
    let mut out = format!(
        "job      {}\nkind     {}\nstate    {}\nobjects  {} of {} ({} failed)\nbytes    {} of {} ({} moved)\npasses   {}\n",
        j.id,
        describe_spec(&j.spec),
        state_name(j.state),
        p.objects_done,
        p.objects_total,
        p.objects_failed,
        human_bytes(p.bytes_done),
        human_bytes(p.bytes_total),
        human_bytes(p.bytes_moved),
        j.passes,
    );
    if let Some(cursor) = &j.cursor {
        out.push_str(&format!("cursor   {}/{}\n", cursor.bucket, cursor.key));
    }
    if let Some(message) = &j.message {
        out.push_str(&format!("message  {message}\n"));
    }
    for (name, count) in &p.counts {
        out.push_str(&format!("count    {name} = {count}\n"));
    }
    for problem in &p.problems {
        out.push_str(&format!(
            "problem  {}/{}: {}\n",
            problem.bucket, problem.key, problem.reason
        ));
    }
    out
}

/// A reload's answer (`POST /admin/v1/reload`): one line per change applied, then one per
/// change that waits for a restart.
pub fn reload_text(value: &Value) -> String {
    let lines = |key: &str| -> Vec<String> {
        value[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = format!(
        "reloaded {}\n",
        value["file"].as_str().unwrap_or("the configuration")
    );
    let applied = lines("applied");
    if applied.is_empty() {
        out.push_str("applied: nothing changed\n");
    }
    for line in applied {
        out.push_str(&format!("applied: {line}\n"));
    }
    for line in lines("restart_needed") {
        out.push_str(&format!("restart to apply: {line}\n"));
    }
    out
}

/// A lifecycle pass: what it removed (or would remove), and where the next pass resumes.
pub fn lifecycle_table(value: &Value) -> String {
    let actions = value
        .get("actions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = actions
        .iter()
        .map(|a| {
            vec![
                text(a, "action"),
                text(a, "bucket"),
                text(a, "key"),
                text(a, "rule"),
                a.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string(),
            ]
        })
        .collect();
    let mut out = table(&["ACTION", "BUCKET", "KEY", "RULE", "ERROR"], &rows);
    let dry = value.get("dry_run").and_then(Value::as_bool) == Some(true);
    out.push_str(&format!(
        "{} {}, {} keys examined",
        actions.len(),
        if dry { "would be removed" } else { "removed" },
        number(value, "keys_examined"),
    ));
    match value.get("cursor").filter(|c| !c.is_null()) {
        Some(c) => out.push_str(&format!(
            "; the next pass resumes after {}/{}\n",
            text(c, "bucket"),
            text(c, "key")
        )),
        None => out.push_str("; every bucket was walked\n"),
    }
    out
}

pub fn anti_entropy_table(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let mut row = vec![text(r, "backend")];
            for f in [
                "listed", "indexed", "missing", "queued", "adopted", "stale", "young", "foreign",
            ] {
                row.push(number(r, f).to_string());
            }
            row.push(
                r.get("unknown")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
                    .to_string(),
            );
            row
        })
        .collect();
    table(
        &[
            "BACKEND", "LISTED", "INDEXED", "MISSING", "QUEUED", "ADOPTED", "STALE", "YOUNG",
            "FOREIGN", "UNKNOWN",
        ],
        &rows,
    )
}

// ---- Following a job -------------------------------------------------------------------

/// How `--wait` shows progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// A progress bar (stderr is a terminal).
    Bar,
    /// A line every few seconds: done, left, rate, ETA.
    Lines,
    /// One JSON record per update.
    Json,
}

impl Follow {
    pub fn choose(json: bool) -> Follow {
        if json {
            Follow::Json
        } else if std::io::stderr().is_terminal() {
            Follow::Bar
        } else {
            Follow::Lines
        }
    }
}

/// How often the job is read.
const POLL: Duration = Duration::from_millis(500);
/// How often a plain line is printed.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Follows a job until it is no longer running or paused; returns its last record.
pub async fn follow(client: &AdminClient, id: &str, how: Follow) -> Result<JobRecord, ClientError> {
    let started = Instant::now();
    let mut last_line = None::<Instant>;
    let mut last_json = None::<JobRecord>;
    let bar = (how == Follow::Bar).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    loop {
        let job = client.job(id).await?;
        let p = &job.progress;
        match how {
            Follow::Bar => {
                if let Some(bar) = &bar {
                    bar.set_length(p.bytes_total);
                    bar.set_position(p.bytes_done);
                    bar.set_message(format!(
                        "{} {}/{} objects",
                        state_name(job.state),
                        p.objects_done,
                        p.objects_total
                    ));
                }
            }
            Follow::Lines => {
                if last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY) || !job.state.is_active() {
                    last_line = Some(Instant::now());
                    println!("{}", progress_line(&job, started.elapsed()));
                }
            }
            Follow::Json => {
                if last_json.as_ref() != Some(&job) {
                    println!("{}", serde_json::to_string(&job).unwrap_or_default());
                    last_json = Some(job.clone());
                }
            }
        }
        if !job.state.is_active() {
            if let Some(bar) = &bar {
                bar.finish_with_message(state_name(job.state));
            }
            return Ok(job);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `objects 120/1000 (880 left), bytes 1.2 GiB/9.8 GiB (8.6 GiB left), 40.0 MiB/s, ETA 3m40s`
pub fn progress_line(job: &JobRecord, elapsed: Duration) -> String {
    let p = &job.progress;
    let bytes_left = p.bytes_total.saturating_sub(p.bytes_done);
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = p.bytes_done as f64 / secs;
    let eta = if rate > 0.0 && job.state.is_active() {
        format_duration(Duration::from_secs_f64(bytes_left as f64 / rate))
    } else {
        "-".to_string()
    };
    format!(
        "{} {}: objects {}/{} ({} left), bytes {}/{} ({} left), {}/s, ETA {}",
        job.id,
        state_name(job.state),
        p.objects_done,
        p.objects_total,
        p.objects_total.saturating_sub(p.objects_done),
        human_bytes(p.bytes_done),
        human_bytes(p.bytes_total),
        human_bytes(bytes_left),
        human_bytes(rate as u64),
        eta
    )
}

fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Whether a job ended well: done, with no object it could not handle.
pub fn succeeded(job: &JobRecord) -> bool {
    job.state == JobState::Done
        && job.progress.objects_failed == 0
        && job.progress.problems.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_reports_say_what_went_and_where_the_next_pass_starts() {
        let report = serde_json::json!({
            "dry_run": true, "now_ms": 0, "resumed_after": null, "keys_examined": 7,
            "cursor": {"bucket": "logs", "key": "b"},
            "actions": [{"action": "expire", "bucket": "logs", "key": "a", "rule": "old"}],
        });
        let text = lifecycle_table(&report);
        assert!(text.starts_with("ACTION"), "{text}");
        assert!(text.contains("expire  logs    a    old   -"), "{text}");
        assert!(
            text.ends_with(
                "1 would be removed, 7 keys examined; the next pass resumes after logs/b\n"
            ),
            "{text}"
        );
        let done = serde_json::json!({"dry_run": false, "keys_examined": 0, "cursor": null, "actions": []});
        assert!(lifecycle_table(&done)
            .ends_with("0 removed, 0 keys examined; every bucket was walked\n"));
    }

    #[test]
    fn tables_align_and_bytes_read_well() {
        let t = table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     BB\nlong  x\n");
        assert_eq!(human_bytes(300), "300 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }

    #[test]
    fn progress_line_tells_done_left_rate_and_eta() {
        let mut job: JobRecord = serde_json::from_value(serde_json::json!({
            "id": "j1", "spec": {"kind": "rebalance"}, "state": "running",
            "created_ms": 0, "updated_ms": 0,
            "progress": {"objects_done": 25, "objects_total": 100,
                         "bytes_done": 10 << 20, "bytes_total": 40 << 20,
                         "bytes_moved": 0, "objects_failed": 0}
        }))
        .unwrap();
        let line = progress_line(&job, Duration::from_secs(10));
        assert_eq!(
            line,
            "j1 running: objects 25/100 (75 left), bytes 10.0 MiB/40.0 MiB (30.0 MiB left), \
             1.0 MiB/s, ETA 30s"
        );
        assert!(!succeeded(&job));
        job.state = JobState::Done;
        assert!(succeeded(&job));
        assert!(progress_line(&job, Duration::from_secs(10)).ends_with("ETA -"));
        job.progress.objects_failed = 1;
        assert!(!succeeded(&job), "done with a failed object is no success");
    }

    #[test]
    fn url_comes_from_flag_then_config_then_default() {
        assert_eq!(admin_url(Some("http://h:1/"), None), "http://h:1");
        assert_eq!(admin_url(None, None), "http://127.0.0.1:9001");
        let mut config = Config::embedded("/tmp/x".into(), "127.0.0.1:9000".parse().unwrap());
        if let Some(a) = config.admin.as_mut() {
            a.listen = "0.0.0.0:9555".parse().unwrap();
        }
        assert_eq!(admin_url(None, Some(&config)), "http://127.0.0.1:9555");
    }
}
