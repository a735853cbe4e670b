//! What an operation handler knows about its request: the route, the headers, who signed it,
//! and the body, taken at most once.

use std::sync::Arc;

use http_body_util::BodyExt;

use super::auth::{Credential, Verified};
use super::error::{S3Error, S3Result};
use super::pace::{Pace, PacedBody, RawBody};
use super::router::Route;
use crate::access::Principal;
use crate::gateway::{Gateway, LiveSettings};

/// Everything an operation handler needs about its request.
pub struct Ctx {
    pub gw: Arc<Gateway>,
    /// The configuration's live part as the request found it (see `Gateway::live`).
    pub live: Arc<LiveSettings>,
    pub route: Route,
    pub method: http::Method,
    pub headers: http::HeaderMap,
    /// For an unsigned request: an unsigned payload (`PayloadCheck::Unsigned`).
    pub verified: Verified,
    /// For an unsigned request: a stand-in named `anonymous` with no bucket in its scope, so
    /// that pacing and rate limits treat all unsigned requests as one tenant.
    pub credential: Credential,
    /// Who sent the request; ACL decisions and object ownership tell anonymous requests
    /// apart by it.
    pub principal: Principal,
    pub request_id: String,
    /// The client's connection (address, TLS), when the server recorded it.
    pub connection: Option<crate::access::Connection>,
    /// In a mutex only so that `&Ctx` is `Send`; it is taken once, never contended.
    body: std::sync::Mutex<Option<RawBody>>,
}

impl Ctx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gw: Arc<Gateway>,
        live: Arc<LiveSettings>,
        route: Route,
        parts: http::request::Parts,
        verified: Verified,
        credential: Credential,
        principal: Principal,
        request_id: String,
        body: RawBody,
    ) -> Ctx {
        Ctx {
            gw,
            live,
            route,
            connection: parts.extensions.get::<crate::access::Connection>().copied(),
            method: parts.method,
            headers: parts.headers,
            verified,
            credential,
            principal,
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

    /// The raw body; each handler takes it at most once. It fails with RequestTimeout when
    /// the client stalls or trickles (`limits.body_idle_timeout_secs`,
    /// `limits.min_body_bytes_per_sec`), and is read no faster than the credential's
    /// `bytes_per_sec`: every body, object or XML document, goes at a pace the gateway can
    /// afford.
    pub fn take_body(&mut self) -> S3Result<RawBody> {
        let raw = self
            .body
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| S3Error::internal("request body taken twice"))?;
        let pace = Pace::from_limits(
            &self.live.config.limits,
            self.live.rates.bytes(&self.credential.access_key_id),
        );
        Ok(PacedBody::new(raw, pace).boxed_unsync())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
