//! What an operation handler knows about its request: the route, the headers, who signed it,
//! and the body, taken at most once.

use std::sync::Arc;

use bytes::Bytes;

use super::auth::{Credential, Verified};
use super::error::{S3Error, S3Result};
use super::router::Route;
use crate::gateway::Gateway;

/// The client's request body, boxed once so handlers need not be generic.
pub type RawBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Everything an operation handler needs about its request.
pub struct Ctx {
    pub gw: Arc<Gateway>,
    pub route: Route,
    pub method: http::Method,
    pub headers: http::HeaderMap,
    pub verified: Verified,
    pub credential: Credential,
    pub request_id: String,
    /// In a mutex only so that `&Ctx` is `Send`; it is taken once, never contended.
    body: std::sync::Mutex<Option<RawBody>>,
}

impl Ctx {
    pub fn new(
        gw: Arc<Gateway>,
        route: Route,
        parts: http::request::Parts,
        verified: Verified,
        credential: Credential,
        request_id: String,
        body: RawBody,
    ) -> Ctx {
        Ctx {
            gw,
            route,
            method: parts.method,
            headers: parts.headers,
            verified,
            credential,
            request_id,
            body: std::sync::Mutex::new(Some(body)),
        }
    }

    pub fn bucket(&self) -> S3Result<&str> {
        self.route
            .bucket
            .as_deref()
            .ok_or_else(|| S3Error::invalid_request("missing bucket"))
    }

    pub fn key(&self) -> S3Result<&str> {
        self.route
            .key
            .as_deref()
            .ok_or_else(|| S3Error::invalid_request("missing key"))
    }

    /// The raw body; each handler takes it at most once.
    pub fn take_body(&mut self) -> S3Result<RawBody> {
        self.body
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| S3Error::internal("request body taken twice"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
