//! S3 operations, one file per family.

pub mod acl;
pub mod attributes;
pub mod bucket;
pub mod copy;
pub mod cors;
pub mod delete;
pub mod lifecycle;
pub mod list;
pub mod lock;
pub mod multipart;
pub mod multipart_complete;
pub mod multipart_list;
pub mod object;
pub mod policy;
pub mod post;
mod support;
pub mod tagging;
pub mod versioning;
