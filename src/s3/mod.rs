//! The S3 front end: route → authenticate → dispatch → respond.

pub mod access_log;
pub mod auth;
pub mod authorize;
pub mod body;
pub mod body_error;
pub mod conditions;
pub mod copy_source;
pub mod ctx;
mod digests;
pub mod error;
pub mod handler;
pub mod host;
pub mod ops;
pub mod pace;
pub mod range;
pub mod response;
pub mod router;
pub mod xml;
pub mod xml_text;

#[cfg(test)]
mod fuzz_tests;
