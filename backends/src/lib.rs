//! Storage backends for the Hansa gateway.
//!
//! One narrow trait, [`Backend`], over every kind of store: [`LocalBackend`] (a directory,
//! hand-written for atomic, durable writes with extended attributes) and
//! [`ObjectStoreBackend`] (anything `object_store` speaks: memory; S3, GCS and Azure, built
//! from their configuration by [`cloud`]).
//! [`FaultyBackend`] wraps any of them to inject faults in tests and demonstrations.
//! [`naming`] maps S3 keys to names every backend can hold; [`testsuite`] is the behaviour
//! every backend must show.

pub mod backend;
pub mod cloud;
pub mod error;
pub mod faults;
pub mod local;
pub mod naming;
pub mod object_store;
pub mod testsuite;

pub use crate::backend::{
    resolve_range, Backend, ByteStream, CompletedPart, GetResult, LateStamp, ObjectAttributes,
    ObjectInfo, PutResult, Staged, Stamp,
};
pub use crate::cloud::{CloudConfig, CloudError, CloudKind, Secret};
pub use crate::error::BackendError;
pub use crate::faults::{Fault, FaultPlan, FaultSwitch, FaultyBackend};
pub use crate::local::LocalBackend;
pub use crate::naming::{fallback_name, physical_name, plain_name, PhysicalName};
pub use crate::object_store::ObjectStoreBackend;
