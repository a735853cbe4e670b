//! Hansa: an S3-compatible gateway that keeps every object on several storage providers.
//!
//! A request goes `server` → `s3::router` → `s3::auth` → `s3::ops` → `store` (the storage
//! protocol) → `placement` / `replication` / `meta` → `hansa_backends`. See `docs/ARCHITECTURE.md`.

pub mod access;
pub mod admin;
pub mod check_config;
pub mod checksum;
pub mod config;
pub mod config_source;
pub mod explain;
pub mod fd_limit;
pub mod gateway;
pub mod lifecycle;
pub mod meta;
pub mod metrics;
pub mod placement;
pub mod reload;
pub mod replication;
pub mod s3;
pub mod server;
pub mod store;
pub mod upkeep;
