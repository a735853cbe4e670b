//! The admin plane in tests: its `[admin]` table, and requests to it with or without the
//! bearer token (reqwest, so that nothing of the gateway's own client is under test).

use std::net::SocketAddr;

use serde_json::Value;

use crate::TestGateway;

/// The token of every test gateway started with [`crate::Options::admin`].
pub const TOKEN: &str = "test-admin-token-0123456789";

/// An `[admin]` table listening on `listen`, its token given by `token_line` (`token = ".."`,
/// `token_file = ".."` or `token_env = ".."`).
pub fn admin_toml(listen: &str, token_line: &str) -> String {
    format!("\n[admin]\nlisten = \"{listen}\"\n{token_line}\n")
}

/// A test gateway's admin listener.
pub fn admin_addr(gw: &TestGateway) -> SocketAddr {
    gw.running
        .as_ref()
        .and_then(|r| r.admin_addr)
        .expect("gateway started with Options::admin")
}

/// `http://127.0.0.1:PORT` of a test gateway's admin listener.
pub fn admin_endpoint(gw: &TestGateway) -> String {
    format!("http://{}", admin_addr(gw))
}

/// An admin answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    /// The body as JSON; panics (with the body) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `error` code of a JSON error answer.
    pub fn error_code(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Sends `method path` (under the endpoint, path including `/admin/v1`) with `token` as the
/// bearer token when given, and `body` as JSON when given.
pub async fn request(
    endpoint: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, format!("{endpoint}{path}"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = req.send().await.expect("admin request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("admin answer read");
    Answer {
        status,
        headers,
        body,
    }
}

/// `method path` on a test gateway's admin listener, with the right token.
pub async fn call(gw: &TestGateway, method: &str, path: &str, body: Option<&str>) -> Answer {
    request(&admin_endpoint(gw), method, path, Some(TOKEN), body).await
}

/// `GET path` with the right token, which must answer 200 with JSON.
pub async fn get_json(gw: &TestGateway, path: &str) -> Value {
    let answer = call(gw, "GET", path, None).await;
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
    answer.json()
}
