//! `hansa explain`: where writes of a key go and why (from the configuration alone), and where
//! its current version lives and in which state (from the index, when it can be opened).
//!
//! The index is opened the way the gateway opens it; sled locks it for one process, so while a
//! gateway runs on the same data directory the current replicas cannot be read here, and the
//! report says so instead of failing: the write plan alone is still useful.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::meta::{MetaError, MetaStore, ObjectRecord, SledStore};
use crate::placement::{Placement, WriteExplanation};

/// What `hansa explain` prints.
#[derive(Debug)]
pub struct Report {
    pub plan: WriteExplanation,
    pub current: Current,
}

/// The key's current version as the index knows it, or why it cannot be shown.
#[derive(Debug)]
pub enum Current {
    Version(Box<ObjectRecord>),
    /// The bucket holds no such key.
    NoKey,
    /// The index knows no such bucket.
    NoBucket,
    /// There is no index at this path (nothing was ever written with this data directory).
    NoIndex(PathBuf),
    /// A running gateway holds the index.
    IndexBusy(PathBuf),
    /// The index could not be opened or read.
    IndexUnreadable {
        path: PathBuf,
        error: String,
    },
}

/// Builds the report for `bucket/key` under `config`.
pub fn explain(config: &Config, bucket: &str, key: &str) -> Report {
    let plan = Placement::from_config(config).explain_write(bucket, key);
    let index = config.server.data_dir.join("index");
    Report {
        plan,
        current: current(&index, config.limits.index_cache_bytes, bucket, key),
    }
}

fn current(index: &Path, cache_bytes: u64, bucket: &str, key: &str) -> Current {
    // Opening creates an index where none is: never do that for a read-only question.
    if !index.is_dir() {
        return Current::NoIndex(index.to_path_buf());
    }
    let unreadable = |e: MetaError| Current::IndexUnreadable {
        path: index.to_path_buf(),
        error: e.to_string(),
    };
    let meta = match SledStore::open(index, cache_bytes) {
        Ok(meta) => meta,
        Err(e) if is_locked(&e) => return Current::IndexBusy(index.to_path_buf()),
        Err(e) => return unreadable(e),
    };
    // Asking for a key of an unknown bucket would create the bucket's tree: ask first.
    match meta.bucket(bucket) {
        Ok(Some(_)) => {}
        Ok(None) => return Current::NoBucket,
        Err(e) => return unreadable(e),
    }
    match meta.object(bucket, key) {
        Ok(Some(record)) => Current::Version(Box::new(record)),
        Ok(None) => Current::NoKey,
        Err(e) => unreadable(e),
    }
}

/// sled refuses a second opener with an I/O error of its own wording (an advisory file lock).
fn is_locked(e: &MetaError) -> bool {
    matches!(e, MetaError::Storage(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.plan)?;
        writeln!(f)?;
        let (bucket, key) = (&self.plan.bucket, &self.plan.key);
        match &self.current {
            Current::Version(record) => self.version(f, record),
            Current::NoKey => writeln!(
                f,
                "current version: none: the index holds no key {key:?} in bucket {bucket:?}"
            ),
            Current::NoBucket => writeln!(
                f,
                "current version: none: the index holds no bucket {bucket:?}"
            ),
            Current::NoIndex(path) => writeln!(
                f,
                "current version: none: there is no index at {} (nothing written yet)",
                path.display()
            ),
            Current::IndexBusy(path) => writeln!(
                f,
                "current replicas: cannot be shown while the gateway holds the index ({} is \
                 locked by a running gateway); the write plan above comes from the \
                 configuration alone",
                path.display()
            ),
            Current::IndexUnreadable { path, error } => writeln!(
                f,
                "current replicas: cannot be shown: the index at {} cannot be read: {error}",
                path.display()
            ),
        }
    }
}

impl Report {
    fn version(&self, f: &mut fmt::Formatter<'_>, record: &ObjectRecord) -> fmt::Result {
        writeln!(
            f,
            "current version {}: {} bytes, etag \"{}\", {} replicas",
            record.version_id,
            record.size,
            record.etag,
            record.replicas.len()
        )?;
        let rows: Vec<[String; 4]> = record
            .replicas
            .iter()
            .map(|r| {
                let note = if self.plan.targets.contains(&r.backend) {
                    String::new()
                } else {
                    "not a target of the plan above".to_string()
                };
                [
                    format!("{:?}", r.state),
                    r.backend.clone(),
                    r.name.clone(),
                    note,
                ]
            })
            .collect();
        let header = ["state", "backend", "physical name"];
        let width = |col: usize| crate::placement::column_width(&rows, col, header[col]);
        let (w0, w1, w2) = (width(0), width(1), width(2));
        writeln!(f, "  {:<w0$}  {:<w1$}  {}", header[0], header[1], header[2])?;
        for [state, backend, name, note] in &rows {
            let line = format!("  {state:<w0$}  {backend:<w1$}  {name:<w2$}  {note}");
            writeln!(f, "{}", line.trim_end())?;
        }
        for target in &self.plan.targets {
            if !record.replicas.iter().any(|r| r.backend == *target) {
                writeln!(
                    f,
                    "  {target}: a target of the plan above, holds no replica of this version"
                )?;
            }
        }
        Ok(())
    }
}
