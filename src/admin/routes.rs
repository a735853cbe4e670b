//! Routing and answers: every request is checked for the token first, then matched against
//! the routes under `/admin/v1`. Answers and errors are JSON.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use super::views;
use crate::gateway::Gateway;
use crate::meta::JobSpec;
use crate::store::jobs::{self, JobControl};
use crate::store::{self, StoreError};

/// Largest request body accepted (a job spec is a few dozen bytes).
pub const MAX_BODY: usize = 64 << 10;

const PREFIX: &str = "/admin/v1";

/// A failed request: status, code and message, sent as `{"error":..,"message":..}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// For 405: the methods the route takes.
    allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    fn not_found(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NoSuchRoute",
            format!("no admin route {path}"),
        )
    }

    fn method(allow: &'static str) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("this route takes {allow}"),
            )
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NoSuchJob(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "NoSuchJob", e.to_string())
            }
            StoreError::InvalidJob(_) => {
                ApiError::new(StatusCode::CONFLICT, "InvalidJob", e.to_string())
            }
            other => {
                tracing::error!(error = %other, "admin request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    other.to_string(),
                )
            }
        }
    }
}

type Answer = Result<(StatusCode, Bytes), ApiError>;

fn json<T: Serialize>(status: StatusCode, value: &T) -> Answer {
    serde_json::to_vec(value)
        .map(|v| (status, Bytes::from(v)))
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        })
}

/// What every admin request is answered from.
pub struct AdminState {
    pub gateway: Arc<Gateway>,
    /// The bearer token, resolved at start.
    pub token: String,
}

/// Answers one admin request, and logs it.
pub async fn handle(state: Arc<AdminState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // Metrics and health are open: scrapers and probes carry no token (admin/observe.rs).
    if let Some(open) = super::observe::Open::at(&path) {
        let accept = super::observe::accept(&req);
        drop(req);
        let response =
            super::observe::answer(&state.gateway, open, &method, accept.as_deref()).await;
        tracing::debug!(
            target: "hansa::admin",
            operation = open.operation(),
            %method,
            path,
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "admin request"
        );
        return response;
    }
    let operation = operation(&method, &path);
    let authorized = super::token_matches(
        req.headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        state.token.as_bytes(),
    );
    let answer = if authorized {
        route(&state, req).await
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        ))
    };
    let error = answer.as_ref().err().map(|e| e.code);
    let response = respond(answer);
    // The same fields as the S3 request log, where they apply: the admin plane has one
    // credential, its bearer token.
    tracing::info!(
        target: "hansa::admin",
        credential = if authorized { "admin-token" } else { "-" },
        operation,
        %method,
        path,
        status = response.status().as_u16(),
        bytes_out = http_body::Body::size_hint(response.body()).exact().unwrap_or(0),
        duration_ms = started.elapsed().as_millis() as u64,
        error = error.unwrap_or("-"),
        "admin request"
    );
    response
}

fn respond(answer: Answer) -> Response<Full<Bytes>> {
    let (status, body, allow, unauthorized) = match answer {
        Ok((status, body)) => (status, body, None, false),
        Err(e) => {
            #[derive(Serialize)]
            struct ErrorBody<'e> {
                error: &'e str,
                message: &'e str,
            }
            let body = serde_json::to_vec(&ErrorBody {
                error: e.code,
                message: &e.message,
            })
            .unwrap_or_default();
            (
                e.status,
                Bytes::from(body),
                e.allow,
                e.status == StatusCode::UNAUTHORIZED,
            )
        }
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(allow) = allow {
        builder = builder.header(header::ALLOW, allow);
    }
    if unauthorized {
        builder = builder.header(header::WWW_AUTHENTICATE, "Bearer realm=\"hansa-admin\"");
    }
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The operation a request asks for, named for the log (whether or not it is allowed).
fn operation(method: &Method, path: &str) -> &'static str {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return "Unknown";
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["health"]) => "Health",
        (&Method::GET, ["backends"]) => "ListBackends",
        (&Method::GET, ["buckets"]) => "ListBuckets",
        (&Method::GET, ["jobs"]) => "ListJobs",
        (&Method::POST, ["jobs"]) => "StartJob",
        (&Method::GET, ["jobs", _]) => "GetJob",
        (&Method::POST, ["jobs", _, "pause"]) => "PauseJob",
        (&Method::POST, ["jobs", _, "resume"]) => "ResumeJob",
        (&Method::POST, ["jobs", _, "cancel"]) => "CancelJob",
        (&Method::POST, ["anti-entropy"]) => "AntiEntropy",
        (&Method::POST, ["reload"]) => "Reload",
        (&Method::POST, ["lifecycle", "run"]) => "RunLifecycle",
        _ => "Unknown",
    }
}

async fn route(state: &AdminState, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Err(ApiError::not_found(&path));
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    let store = &state.gateway.store;
    match segments.as_slice() {
        ["health"] => match method {
            Method::GET => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
            _ => Err(ApiError::method("GET")),
        },
        ["backends"] => match method {
            Method::GET => {
                let gateway = state.gateway.clone();
                let views =
                    blocking(move || views::backends(&gateway.store, &gateway.live().config))
                        .await?;
                json(StatusCode::OK, &views)
            }
            _ => Err(ApiError::method("GET")),
        },
        ["buckets"] => match method {
            Method::GET => {
                let gateway = state.gateway.clone();
                let views = blocking(move || views::buckets(&gateway.store)).await?;
                json(StatusCode::OK, &views)
            }
            _ => Err(ApiError::method("GET")),
        },
        ["jobs"] => match method {
            Method::GET => json(StatusCode::OK, &jobs::jobs(store)?),
            Method::POST => {
                let body = read_body(req).await?;
                let spec: JobSpec = serde_json::from_slice(&body).map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "MalformedJobSpec",
                        format!("not a job spec: {e}"),
                    )
                })?;
                json(StatusCode::CREATED, &jobs::start_job(store, spec)?)
            }
            _ => Err(ApiError::method("GET, POST")),
        },
        ["jobs", id] => match method {
            Method::GET => json(StatusCode::OK, &jobs::job(store, id)?),
            _ => Err(ApiError::method("GET")),
        },
        ["jobs", id, action] => {
            let control = match *action {
                "pause" => JobControl::Pause,
                "resume" => JobControl::Resume,
                "cancel" => JobControl::Cancel,
                _ => return Err(ApiError::not_found(&path)),
            };
            match method {
                Method::POST => json(StatusCode::OK, &jobs::control_job(store, id, control)?),
                _ => Err(ApiError::method("POST")),
            }
        }
        ["anti-entropy"] => match method {
            Method::POST => json(StatusCode::OK, &store::anti_entropy(store).await),
            _ => Err(ApiError::method("POST")),
        },
        ["reload"] => match method {
            Method::POST => reload(state).await,
            _ => Err(ApiError::method("POST")),
        },
        ["lifecycle", "run"] => match method {
            Method::POST => {
                let options = lifecycle_options(state, req.uri().query().unwrap_or(""))?;
                json(
                    StatusCode::OK,
                    &store::lifecycle::run_pass(store, &options).await?,
                )
            }
            _ => Err(ApiError::method("POST")),
        },
        _ => Err(ApiError::not_found(&path)),
    }
}

/// `POST /admin/v1/reload`: the same reload as SIGHUP; the answer lists the changes applied
/// and those that need a restart, or says why the file was refused.
async fn reload(state: &AdminState) -> Answer {
    use crate::reload::ReloadError;
    match crate::reload::reload(&state.gateway).await {
        Ok(outcome) => json(StatusCode::OK, &outcome),
        Err(e @ ReloadError::NoFile) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "NoConfigFile",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "InvalidConfiguration",
            e.to_string(),
        )),
    }
}

/// `POST /admin/v1/lifecycle/run` takes `dry_run` (true/false), `now` (milliseconds since the
/// epoch or RFC 3339: the clock the rules are evaluated at, for tests and what-if questions;
/// only the admin plane can set it), `max_actions` and `max_keys` (default: `[lifecycle]`).
fn lifecycle_options(
    state: &AdminState,
    query: &str,
) -> Result<store::lifecycle::PassOptions, ApiError> {
    let config = &state.gateway.config.lifecycle;
    let mut options = store::lifecycle::PassOptions {
        now_ms: crate::meta::now_ms(),
        dry_run: false,
        max_actions: config.max_actions_per_pass,
        max_keys: config.max_keys_per_pass,
    };
    let bad = |name: &str, value: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("{name}={value:?} is not valid"),
        )
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| bad(name, raw))?;
        let value = value.as_ref();
        match name {
            "dry_run" => {
                options.dry_run = match value {
                    "" | "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad(name, value)),
                }
            }
            "now" => options.now_ms = parse_now(value).ok_or_else(|| bad(name, value))?,
            "max_actions" => {
                options.max_actions = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(name, value))?
            }
            "max_keys" => {
                options.max_keys = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad(name, value))?
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    format!("unknown parameter {name:?}"),
                ))
            }
        }
    }
    Ok(options)
}

/// Milliseconds since the epoch, or an RFC 3339 time.
fn parse_now(value: &str) -> Option<u64> {
    if let Ok(ms) = value.parse::<u64>() {
        return Some(ms);
    }
    let t =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Runs an index scan on the blocking pool.
async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        })?
        .map_err(ApiError::from)
}

/// The request body, refused past [`MAX_BODY`] (by its declared length when there is one).
async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BodyTooLarge",
            format!("request bodies are limited to {MAX_BODY} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
            format!("cannot read the request body: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_for_the_log() {
        assert_eq!(
            operation(&Method::GET, "/admin/v1/backends"),
            "ListBackends"
        );
        assert_eq!(operation(&Method::POST, "/admin/v1/jobs"), "StartJob");
        assert_eq!(
            operation(&Method::POST, "/admin/v1/jobs/j1/cancel"),
            "CancelJob"
        );
        assert_eq!(operation(&Method::GET, "/admin/v1/jobs/j1"), "GetJob");
        assert_eq!(operation(&Method::DELETE, "/admin/v1/jobs"), "Unknown");
        assert_eq!(operation(&Method::GET, "/bucket/key"), "Unknown");
        assert_eq!(
            operation(&Method::POST, "/admin/v1/lifecycle/run"),
            "RunLifecycle"
        );
    }

    #[test]
    fn now_is_milliseconds_or_rfc3339() {
        assert_eq!(parse_now("1798761600000"), Some(1_798_761_600_000));
        assert_eq!(parse_now("2027-01-01T00:00:00Z"), Some(1_798_761_600_000));
        assert_eq!(
            parse_now("2027-01-01T01:00:00+01:00"),
            Some(1_798_761_600_000)
        );
        assert_eq!(parse_now("tomorrow"), None);
        assert_eq!(parse_now("-5"), None);
    }
}
