//! The admin plane: a second HTTP listener, beside the S3 one, that answers operators in JSON
//! (backends, buckets, jobs, anti-entropy), and the `hansa admin` client that talks to it.
//!
//! It is a front end like `s3/`: it calls `store/` and reads the configuration, never `s3/`
//! internals. Every request needs the configured bearer token (docs/ADMIN.md), except
//! `/metrics`, `/health/live` and `/health/ready` (observe.rs, docs/METRICS.md).

mod auth;
pub mod client;
mod observe;
mod routes;
mod server;
mod views;

pub use auth::token_matches;
pub use routes::AdminState;
pub use routes::MAX_BODY;
pub use server::{serve, serve_metrics};
