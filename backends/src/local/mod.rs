//! Local-disk backend: one directory, one file per replica, attributes in extended attributes.
//!
//! Hand-written rather than object_store's `LocalFileSystem` because that store keeps no
//! attributes and no stamp. A write is staged as a file in `.hansa/staging/` on the same file
//! system with its extended attributes (the stamp last: a staged file without one is
//! incomplete), made durable, and published by renaming it over the target, made durable in
//! turn: a large file by fsyncing it and the directories, a small one by a flush it shares
//! with the concurrent small writes of its file system ([`group_sync`]). Readers see the old
//! file or the new one, never a mix.
//!
//! A replica's backend etag is its stamp's version and its size: it survives a restore by `cp`,
//! `tar` or `rsync` (new inode, new modification time) as long as the extended attributes come
//! along; a copy restored without them is recognised by its content and restamped by the
//! gateway ([`Backend::restamp`]).

use crate::backend::{
    resolve_range, Backend, ByteStream, CompletedPart, GetResult, ObjectAttributes, ObjectInfo,
    PutResult, Staged, Stamp,
};
use crate::error::{BackendError, Result};
use crate::naming::{
    is_safe_token, staged_part_name, staging_token, PhysicalName, FALLBACK_PREFIX, HANSA_DIR,
    HASHED_BUCKET_PREFIX, STAGING_PREFIX, UPLOADS_PREFIX,
};
use async_trait::async_trait;
use bytes::BytesMut;
use futures::stream::{BoxStream, StreamExt};
use std::collections::{HashSet, VecDeque};
use std::io::{ErrorKind, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;
use xattr::FileExt;

mod group_sync;
mod placed;

/// JSON [`Stamp`]: the write this file belongs to.
pub const XATTR_STAMP: &str = "user.hansa.stamp";
/// JSON [`ObjectAttributes`] (absent when all empty).
pub const XATTR_ATTRS: &str = "user.hansa.attrs";
/// Content type, for desktop tools (freedesktop.org shared-MIME convention).
pub const XATTR_MIME: &str = "user.mime_type";

/// Temp files at least this old are leftovers of a crash. An active upload rewrites its temp
/// file continuously, so its mtime stays fresh; another process on the same root (an admin
/// command) must not delete a live upload.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);
const WRITE_BUFFER: usize = 1 << 20;
const READ_CHUNK: usize = 256 << 10;
/// A concurrent delete may prune a directory between our mkdir and rename.
const RENAME_ATTEMPTS: usize = 5;

#[derive(Debug, Clone)]
pub struct LocalBackend {
    id: String,
    root: PathBuf,
    /// Scratch files (probes, parts on their way in): removed when stale.
    tmp: PathBuf,
    /// Staged bodies: kept until published or discarded, whatever their age.
    staging: PathBuf,
    /// Multipart parts being written into place (see [`placed`]).
    placements: std::sync::Arc<placed::Placements>,
    /// The shared flush of small writes (see [`group_sync`]).
    group: std::sync::Arc<group_sync::GroupSync>,
}

impl LocalBackend {
    /// Opens (creating if needed) a backend rooted at `root`, removes stale temp files, and
    /// verifies the file system keeps `user.` extended attributes.
    pub fn new(id: impl Into<String>, root: PathBuf) -> Result<Self> {
        let tmp = root.join(HANSA_DIR).join("tmp");
        let staging = root.join(STAGING_PREFIX);
        for dir in [&tmp, &staging] {
            std::fs::create_dir_all(dir)
                .map_err(|e| io_error(e, &format!("create {}", dir.display())))?;
        }
        let backend = Self {
            id: id.into(),
            tmp,
            staging,
            placements: Default::default(),
            group: std::sync::Arc::new(
                group_sync::GroupSync::open(&root)
                    .map_err(|e| io_error(e, &format!("open {}", root.display())))?,
            ),
            root,
        };
        backend.clean_tmp(STALE_TMP_AGE)?;
        backend.probe_xattrs()?;
        Ok(backend)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `name`.
    pub fn path_of(&self, name: &PhysicalName) -> PathBuf {
        // PhysicalName guarantees relative, `..`-free segments, so join cannot leave the root.
        self.root.join(name.as_str())
    }

    /// Removes temp files older than `max_age` (`Duration::ZERO`: all of them).
    pub fn clean_tmp(&self, max_age: Duration) -> Result<usize> {
        let removed = remove_old_files(&self.tmp, max_age, |_| false)?;
        if removed > 0 {
            tracing::info!(backend = %self.id, removed, "removed stale temporary files");
        }
        Ok(removed)
    }

    fn probe_xattrs(&self) -> Result<()> {
        let path = self
            .tmp
            .join(format!("xattr-probe-{}", uuid::Uuid::new_v4()));
        let file = std::fs::File::create(&path)
            .map_err(|e| io_error(e, &format!("create {}", path.display())))?;
        let result = file.set_xattr(XATTR_STAMP, b"{}");
        let _ = std::fs::remove_file(&path);
        result.map_err(|e| BackendError::Other {
            message: format!(
                "{}: the file system does not keep user extended attributes ({e}); \
                 use ext4, XFS, btrfs or tmpfs ≥ 6.6",
                self.root.display()
            ),
        })
    }

    fn new_tmp_path(&self) -> PathBuf {
        self.tmp.join(format!("{}.tmp", uuid::Uuid::new_v4()))
    }

    /// The staged file a handle names.
    fn staging_path(&self, handle: &str) -> Result<PathBuf> {
        if !is_safe_token(handle) {
            return Err(BackendError::other(format!(
                "invalid staging handle {handle:?}"
            )));
        }
        Ok(self.staging.join(handle))
    }

    /// Streams `body` into a new file at `path`, then sets its extended attributes (the stamp
    /// complete by then) and makes it durable: a large body by fsyncing the file and, with
    /// `sync_dir`, that directory (the new file's entry). Any early return, or a dropped
    /// future, removes the file. Returns the file (for a rename into place) and the size
    /// written.
    ///
    /// A body of at most one write buffer is gathered first and written, stamped and made
    /// durable (by the shared flush, entry included) in a single trip to a blocking thread:
    /// small writes pay for the disk, not for handoffs.
    async fn write_body(
        &self,
        path: PathBuf,
        display_name: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        mut body: ByteStream,
        sync_dir: Option<PathBuf>,
    ) -> Result<(TempFile, u64)> {
        // Encoded up front so that attributes too large for the file system fail before the
        // body is read; encoded again at the end, when the stamp is complete.
        encode_xattrs(attrs, stamp)?;
        let fail = |e: BackendError| {
            tracing::debug!(name = display_name, error = %e, "body stream failed");
            BackendError::Aborted
        };
        let mut gathered: Vec<bytes::Bytes> = Vec::new();
        let mut size = 0u64;
        let mut rest = None;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(fail)?;
            size += chunk.len() as u64;
            gathered.push(chunk);
            if size > WRITE_BUFFER as u64 {
                rest = Some(body);
                break;
            }
        }
        let name = display_name.to_string();
        let Some(body) = rest else {
            // Small: create, write and stamp at once, then made durable with the concurrent
            // small writes of this file system by one shared flush (file and entry alike).
            check_size(display_name, size, stamp);
            let xattrs = encode_xattrs(attrs, &stamp.resolved())?;
            let group = self.group.clone();
            let guard = tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| io_error(e, &format!("create {}", path.display())))?;
                let guard = TempFile(Some(path));
                for chunk in &gathered {
                    file.write_all(chunk)
                        .map_err(|e| io_error(e, "write file"))?;
                }
                set_xattrs(&file, &name, &xattrs)?;
                group.sync()?;
                Ok::<_, BackendError>(guard)
            })
            .await
            .map_err(|e| BackendError::other(format!("write task failed: {e}")))??;
            return Ok((guard, size));
        };
        // Large: streamed in batches (see `write_stream`).
        let create = path.clone();
        let file = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&create)
        })
        .await
        .map_err(|e| BackendError::other(format!("create task failed: {e}")))?
        .map_err(|e| io_error(e, &format!("create {}", path.display())))?;
        let guard = TempFile(Some(path));
        let (file, size) = write_stream(file, 0, gathered, body, None).await?;
        check_size(display_name, size, stamp);
        let xattrs = encode_xattrs(attrs, &stamp.resolved())?;
        tokio::task::spawn_blocking(move || {
            finish_file(&file, &name, &xattrs)?;
            match sync_dir {
                Some(dir) => fsync_dir(&dir),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| BackendError::other(format!("fsync task failed: {e}")))??;
        Ok((guard, size))
    }

    /// Writes a body to a scratch file and renames it to `target` (parts, probes).
    async fn write_file(
        &self,
        target: PathBuf,
        display_name: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        body: ByteStream,
    ) -> Result<u64> {
        let (guard, size) = self
            .write_body(self.new_tmp_path(), display_name, attrs, stamp, body, None)
            .await?;
        let name = display_name.to_string();
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || rename_into_place(guard, &root, &target, &name))
            .await
            .map_err(|e| BackendError::other(format!("rename task failed: {e}")))??;
        Ok(size)
    }

    /// Writes part `number` into its region of the upload's data file, then marks it (see
    /// [`placed`]). Gives the body back untouched when the part cannot be placed there.
    async fn place_part(
        &self,
        upload_dir: &Path,
        number: u32,
        size: u64,
        receipt: &str,
        body: ByteStream,
    ) -> Result<Option<ByteStream>> {
        if size == 0 || number == 0 {
            return Ok(Some(body));
        }
        let (dir, root) = (upload_dir.to_path_buf(), self.root.clone());
        let region = tokio::task::spawn_blocking(move || {
            create_dir_durably(&root, &dir)?;
            if placed::is_sealed_on_disk(&dir) || placed::is_placed(&dir, number) {
                return Ok(None);
            }
            let stride = placed::stride(&dir, size)?;
            if size > stride {
                return Ok(None);
            }
            let data = placed::data_path(&dir);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&data)
                .map_err(|e| io_error(e, &format!("open {}", data.display())))?;
            Ok::<_, BackendError>(Some((file, u64::from(number - 1) * stride)))
        })
        .await
        .map_err(|e| BackendError::other(format!("place task failed: {e}")))??;
        let Some((file, offset)) = region else {
            return Ok(Some(body));
        };
        let (file, written) = write_stream(file, offset, Vec::new(), body, Some(size)).await?;
        if written != size {
            return Err(BackendError::other(format!(
                "part {number}: {written} bytes where {size} were announced"
            )));
        }
        let (dir, receipt) = (upload_dir.to_path_buf(), receipt.to_string());
        tokio::task::spawn_blocking(move || {
            file.sync_data()
                .map_err(|e| io_error(e, "fsync the upload's data"))?;
            placed::mark(&dir, number, &receipt)
        })
        .await
        .map_err(|e| BackendError::other(format!("mark task failed: {e}")))??;
        Ok(None)
    }

    /// Writes a part to a file of its own.
    async fn put_part_file(
        &self,
        name: &PhysicalName,
        upload: &str,
        part_number: u32,
        size: u64,
        receipt: &str,
        body: ByteStream,
    ) -> Result<PutResult> {
        let rel = staged_part_name(upload, part_number, receipt);
        let stamp = Stamp {
            bucket: String::new(),
            key: name.as_str().to_string(),
            version_id: format!("{upload}-part-{part_number}"),
            etag: String::new(),
            size,
            checksum: None,
            late: None,
        };
        let written = self
            .write_file(
                self.root.join(&rel),
                &rel,
                &ObjectAttributes::default(),
                &stamp,
                body,
            )
            .await?;
        Ok(PutResult {
            etag: receipt.to_string(),
            size: written,
        })
    }

    fn open(&self, name: &PhysicalName) -> Result<(std::fs::File, ObjectInfo)> {
        open_object(&self.path_of(name), name.as_str())
    }

    /// The directory holding an upload's staged parts.
    fn upload_dir(&self, upload: &str) -> Result<PathBuf> {
        if !is_safe_token(upload) {
            return Err(BackendError::other(format!("invalid upload id {upload:?}")));
        }
        Ok(self.root.join(UPLOADS_PREFIX).join(upload))
    }
}

/// Concatenates an upload's parts into the staged file `staged` with its extended
/// attributes, fsynced. `std::io::copy` between files uses `copy_file_range`, so the bytes are
/// copied inside the kernel (or reflinked, on file systems that can). The parts stay until the
/// upload is aborted (after its commit), so a completion that fails elsewhere can be retried.
fn compose_parts(
    staged: PathBuf,
    upload_dir: &Path,
    parts: &[CompletedPart],
    name: &str,
    xattrs: &[(&'static str, Vec<u8>)],
) -> Result<TempFile> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&staged)
        .map_err(|e| io_error(e, &format!("create {}", staged.display())))?;
    let guard = TempFile(Some(staged));
    for part in parts {
        if !is_safe_token(&part.receipt) {
            return Err(BackendError::other(format!(
                "invalid part receipt {:?}",
                part.receipt
            )));
        }
        let stale = || BackendError::PreconditionFailed {
            name: format!("{name} (part {})", part.part_number),
        };
        let copied = match placed::source_of(upload_dir, part)? {
            None => return Err(stale()),
            Some(placed::PartSource::File(path)) => {
                let mut staged = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Err(stale()),
                    Err(e) => return Err(io_error(e, &format!("open {}", path.display()))),
                };
                std::io::copy(&mut staged, &mut out)
            }
            Some(placed::PartSource::Region(offset, len)) => {
                let mut data = std::fs::File::open(placed::data_path(upload_dir))
                    .map_err(|e| io_error(e, "open the upload's data"))?;
                data.seek(SeekFrom::Start(offset))
                    .map_err(|e| io_error(e, "seek the upload's data"))?;
                std::io::copy(&mut std::io::Read::take(data, len), &mut out)
            }
        }
        .map_err(|e| io_error(e, &format!("copy part {}", part.part_number)))?;
        if copied != part.size {
            return Err(stale());
        }
    }
    finish_file(&out, name, xattrs)?;
    Ok(guard)
}

/// Makes the upload's data file, which holds `parts` in place, the staged object: linked into
/// staging, cut to the object's `len`, stamped and fsynced. No byte is copied.
fn adopt_data(
    staged: PathBuf,
    upload_dir: &Path,
    len: u64,
    parts: &[CompletedPart],
    name: &str,
    xattrs: &[(&'static str, Vec<u8>)],
) -> Result<TempFile> {
    placed::unmark_beyond(upload_dir, parts.len() as u32)?;
    std::fs::hard_link(placed::data_path(upload_dir), &staged)
        .map_err(|e| io_error(e, &format!("link {}", staged.display())))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&staged)
        .map_err(|e| io_error(e, "open the staged object"));
    let guard = TempFile(Some(staged));
    let file = file?;
    file.set_len(len)
        .map_err(|e| io_error(e, "cut the staged object"))?;
    finish_file(&file, name, xattrs)?;
    Ok(guard)
}

fn remove_upload_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(e, &format!("remove {}", dir.display()))),
    }
    match dir.parent() {
        Some(parent) => fsync_dir(parent),
        None => Ok(()),
    }
}

/// Warns when a body's size is not the one its stamp announced (a caller's bug).
fn check_size(name: &str, size: u64, stamp: &Stamp) {
    let stamp = stamp.resolved();
    if size != stamp.size {
        tracing::warn!(
            name,
            size,
            stamp_size = stamp.size,
            "stamp size differs from body size"
        );
    }
}

/// Removes the temp file unless the commit disarmed it.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes `first`, then the rest of `body`, into `file` from `offset` on, batch by batch on
/// blocking threads (positional writes, no copy), each batch's writeback started at once: the
/// disk works while the body is still arriving, and the fsync at the end waits for the tail
/// only. With `limit`, a body longer than that fails before a byte beyond it is written.
/// Returns the file and how many bytes were written; a failing body is `Aborted`.
async fn write_stream(
    mut file: std::fs::File,
    offset: u64,
    first: Vec<bytes::Bytes>,
    mut body: ByteStream,
    limit: Option<u64>,
) -> Result<(std::fs::File, u64)> {
    let mut written = 0u64;
    let mut batch = first;
    let mut batch_len: u64 = batch.iter().map(|c| c.len() as u64).sum();
    loop {
        // A full batch goes out before the next chunk is awaited: the chunks are the
        // fan-out's buffers, and the write budget gets them back once every target has
        // written them.
        if batch_len >= WRITE_BUFFER as u64 {
            file = write_at(file, offset + written, std::mem::take(&mut batch)).await?;
            written += batch_len;
            batch_len = 0;
        }
        match body.next().await {
            Some(Ok(chunk)) => {
                batch_len += chunk.len() as u64;
                if limit.is_some_and(|limit| written + batch_len > limit) {
                    return Err(BackendError::other("the body is longer than announced"));
                }
                batch.push(chunk);
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "body stream failed");
                return Err(BackendError::Aborted);
            }
            None => {
                if batch_len > 0 {
                    file = write_at(file, offset + written, batch).await?;
                    written += batch_len;
                }
                return Ok((file, written));
            }
        }
    }
}

/// Writes `batch` into `file` from `offset` on, on a blocking thread, and starts that range's
/// writeback.
async fn write_at(
    file: std::fs::File,
    offset: u64,
    batch: Vec<bytes::Bytes>,
) -> Result<std::fs::File> {
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut at = offset;
        for chunk in &batch {
            file.write_all_at(chunk, at)
                .map_err(|e| io_error(e, "write file"))?;
            at += chunk.len() as u64;
        }
        start_writeback(&file, offset, at - offset);
        Ok(file)
    })
    .await
    .map_err(|e| BackendError::other(format!("write task failed: {e}")))?
}

/// Asks the kernel to start writing `len` bytes from `offset` back to the disk now, without
/// waiting for them. Only a head start for the fsync that makes the file durable: if the call
/// fails, that fsync does all the work.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor belongs to `file`, open for the whole call; the call reads no
    // memory of ours.
    let _ = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// Removes the files of `dir` at least `older_than` old (by modification time) that `keep`
/// does not claim by name; returns how many.
fn remove_old_files(
    dir: &Path,
    older_than: Duration,
    keep: impl Fn(&str) -> bool,
) -> Result<usize> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| io_error(e, &format!("read {}", dir.display())))?;
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        if keep(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or(Duration::ZERO);
        if meta.is_file() && age >= older_than && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

fn encode_xattrs(attrs: &ObjectAttributes, stamp: &Stamp) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mut out = Vec::with_capacity(3);
    out.push((XATTR_STAMP, to_json(stamp)?));
    if !attrs.is_empty() {
        out.push((XATTR_ATTRS, to_json(attrs)?));
    }
    if let Some(ct) = &attrs.content_type {
        out.push((XATTR_MIME, ct.as_bytes().to_vec()));
    }
    Ok(out)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| BackendError::other(format!("encode metadata: {e}")))
}

/// Sets the extended attributes (the stamp among them, last) and fsyncs the file.
fn finish_file(file: &std::fs::File, name: &str, xattrs: &[(&'static str, Vec<u8>)]) -> Result<()> {
    set_xattrs(file, name, xattrs)?;
    file.sync_all().map_err(|e| io_error(e, "fsync file"))
}

/// Sets the extended attributes, the stamp among them, last.
fn set_xattrs(file: &std::fs::File, name: &str, xattrs: &[(&'static str, Vec<u8>)]) -> Result<()> {
    for (attr, value) in xattrs {
        file.set_xattr(attr, value)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::E2BIG | libc::ENOSPC | libc::ERANGE) => {
                    BackendError::AttributesTooLarge {
                        name: name.to_string(),
                        message: format!("{attr} ({} bytes): {e}", value.len()),
                    }
                }
                _ => io_error(e, &format!("set {attr}")),
            })?;
    }
    Ok(())
}

/// How a rename is made durable.
enum Settle<'a> {
    /// By fsyncing the directories it changed.
    Dirs,
    /// By the shared flush of small writes.
    Group(&'a group_sync::GroupSync),
}

/// Creates the parent directories and renames the (fsynced) file `from` to `target`; then
/// fsyncs the parent, and the parents of any directory created.
fn rename_into_place(mut from: TempFile, root: &Path, target: &Path, name: &str) -> Result<()> {
    let source = from
        .0
        .clone()
        .ok_or_else(|| BackendError::other("file already renamed"))?;
    rename_durably(&source, root, target, name, Settle::Dirs)?;
    from.0 = None;
    Ok(())
}

fn rename_durably(
    source: &Path,
    root: &Path,
    target: &Path,
    name: &str,
    settle: Settle<'_>,
) -> Result<()> {
    let parent = target
        .parent()
        .ok_or_else(|| BackendError::other(format!("no parent directory for {name}")))?;
    let conflict = || BackendError::NameConflict {
        name: name.to_string(),
    };
    let mut attempt = 0;
    let created = loop {
        attempt += 1;
        let created = create_parents(root, parent).map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists | ErrorKind::NotADirectory => conflict(),
            _ => io_error(e, &format!("create directories for {name}")),
        })?;
        match std::fs::rename(source, target) {
            Ok(()) => break created,
            Err(e) if matches!(e.kind(), ErrorKind::IsADirectory | ErrorKind::NotADirectory) => {
                return Err(conflict())
            }
            Err(e)
                if e.raw_os_error() == Some(libc::ENOTEMPTY)
                    || e.raw_os_error() == Some(libc::EEXIST) =>
            {
                return Err(conflict())
            }
            // The parent vanished (a concurrent delete pruned it): create it again.
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < RENAME_ATTEMPTS => {
                if !source.exists() {
                    return Err(e).map_err(|e| io_error(e, &format!("rename into {name}")));
                }
                continue;
            }
            Err(e) => return Err(io_error(e, &format!("rename into {name}"))),
        }
    };
    // The rename is durable once the parent is; new directories are durable once theirs are.
    if let Settle::Group(group) = settle {
        return group.sync();
    }
    fsync_dir(parent)?;
    fsync_parents(&created)
}

/// `create_dir_all` that reports which directories it created (deepest last), so that their
/// parents can be fsynced.
fn create_parents(root: &Path, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = dir;
    while cur != root {
        match std::fs::symlink_metadata(cur) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(ErrorKind::NotADirectory.into()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                missing.push(cur.to_path_buf());
                match cur.parent() {
                    Some(p) => cur = p,
                    None => break,
                }
            }
            Err(e) => return Err(e),
        }
    }
    missing.reverse();
    for d in &missing {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(missing)
}

/// Creates `dir` (and its missing parents under `root`), durably.
fn create_dir_durably(root: &Path, dir: &Path) -> Result<()> {
    let created =
        create_parents(root, dir).map_err(|e| io_error(e, &format!("create {}", dir.display())))?;
    fsync_parents(&created)
}

/// Makes new directories durable: fsyncs the parent of each.
fn fsync_parents(created: &[PathBuf]) -> Result<()> {
    for dir in created {
        if let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
    }
    Ok(())
}

fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(e, &format!("fsync {}", dir.display())))
}

fn open_object(path: &Path, name: &str) -> Result<(std::fs::File, ObjectInfo)> {
    let not_found = || BackendError::NotFound {
        name: name.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => not_found(),
        _ => io_error(e, &format!("open {name}")),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| io_error(e, &format!("stat {name}")))?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let last_modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let stamp: Option<Stamp> = read_json_xattr(&file, XATTR_STAMP, name)?;
    let attributes: ObjectAttributes =
        read_json_xattr(&file, XATTR_ATTRS, name)?.unwrap_or_default();
    // A stamped replica is known by its version and size, so a copy restored with its
    // extended attributes keeps its etag (bytes changed in place are caught by the gateway's
    // verification of what it reads). An unstamped file is known by its modification time.
    let etag = match &stamp {
        Some(s) => format!("{}-{:x}", s.version_id, meta.len()),
        None => {
            let nanos = last_modified
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("m{nanos:x}-{:x}", meta.len())
        }
    };
    let info = ObjectInfo {
        name: name.to_string(),
        size: meta.len(),
        etag,
        last_modified,
        attributes,
        stamp,
    };
    Ok((file, info))
}

fn read_json_xattr<T: serde::de::DeserializeOwned>(
    file: &std::fs::File,
    attr: &str,
    name: &str,
) -> Result<Option<T>> {
    match file.get_xattr(attr) {
        Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                // Someone else's (or a damaged) attribute: treat the file as foreign.
                tracing::warn!(name, attr, error = %e, "unreadable extended attribute ignored");
                Ok(None)
            }
        },
        Ok(None) => Ok(None),
        Err(e) => Err(io_error(e, &format!("read {attr} of {name}"))),
    }
}

fn io_error(e: std::io::Error, context: &str) -> BackendError {
    match e.kind() {
        ErrorKind::PermissionDenied => BackendError::Unauthorized {
            message: format!("{context}: {e}"),
        },
        _ => BackendError::unavailable(format!("{context}: {e}")),
    }
}

fn read_stream(file: tokio::fs::File, range: Range<u64>, name: String) -> ByteStream {
    let remaining = range.end - range.start;
    futures::stream::try_unfold((file, remaining), move |(mut file, remaining)| {
        let name = name.clone();
        async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(READ_CHUNK);
            let mut buf = BytesMut::with_capacity(want);
            while buf.len() < want {
                let n = (&mut file)
                    .take((want - buf.len()) as u64)
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| io_error(e, &format!("read {name}")))?;
                if n == 0 {
                    return Err(BackendError::unavailable(format!(
                        "{name}: file shrank while being read"
                    )));
                }
            }
            Ok(Some((buf.freeze(), (file, remaining - want as u64))))
        }
    })
    .boxed()
}

/// Removes empty directories above `path`, stopping at `keep_depth` segments below the root
/// (the bucket directory, or `.hansa/k/<bucket>`), so a later put may use the name as a file.
fn prune_empty_parents(root: &Path, path: &Path, keep_depth: usize) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        let depth = d
            .strip_prefix(root)
            .map(|r| r.components().count())
            .unwrap_or(0);
        if depth <= keep_depth || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Hansa's scratch space (temp files, probes), as opposed to fallback-named objects.
fn is_internal(rel: &str, prefix: &str) -> bool {
    // With a trailing slash, so the directories `.hansa` and `.hansa/k` themselves are walked.
    let dir = format!("{rel}/");
    dir.starts_with(".hansa/")
        && dir != ".hansa/"
        && !dir.starts_with(FALLBACK_PREFIX)
        && !dir.starts_with(HASHED_BUCKET_PREFIX)
        // Bucket markers and tombstones are listed only when asked for by their prefix, so
        // nothing that lists objects ever takes them for objects.
        && !listed_record(&dir, prefix)
}

/// Bucket markers and tombstones are listed only when the prefix asks for them.
fn listed_record(rel: &str, prefix: &str) -> bool {
    (crate::naming::is_record_name(rel) && crate::naming::is_record_name(prefix))
        || (crate::naming::is_version_name(rel) && crate::naming::is_version_name(prefix))
}

/// Should the walk descend into directory `rel` (no trailing slash) for `prefix`?
fn dir_may_match(rel: &str, prefix: &str) -> bool {
    let with_slash = format!("{rel}/");
    with_slash.starts_with(prefix) || prefix.starts_with(&with_slash)
}

/// Reads one directory: subdirectories to walk and files to report, by relative name.
fn read_dir_rel(root: &Path, rel: &str, prefix: &str) -> Result<(Vec<String>, Vec<String>)> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        // Pruned by a concurrent delete.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok((vec![], vec![])),
        Err(e) => return Err(io_error(e, &format!("list {}", dir.display()))),
    };
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    for entry in entries {
        let entry = entry.map_err(|e| io_error(e, &format!("list {}", dir.display())))?;
        let Ok(file_name) = entry.file_name().into_string() else {
            tracing::warn!(dir = %dir.display(), "skipping non-UTF-8 file name");
            continue;
        };
        let child = if rel.is_empty() {
            file_name
        } else {
            format!("{rel}/{file_name}")
        };
        if is_internal(&child, prefix) {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            if dir_may_match(&child, prefix) {
                dirs.push(child);
            }
        } else if ft.is_file() && child.starts_with(prefix) {
            files.push(child);
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

struct Walk {
    root: PathBuf,
    prefix: String,
    dirs: Vec<String>,
    files: VecDeque<String>,
}

async fn walk_next(mut w: Walk) -> Result<Option<(ObjectInfo, Walk)>> {
    loop {
        if let Some(rel) = w.files.pop_front() {
            let path = w.root.join(&rel);
            let found =
                tokio::task::spawn_blocking(move || open_object(&path, &rel).map(|(_, info)| info))
                    .await
                    .map_err(|e| BackendError::other(format!("list task failed: {e}")))?;
            match found {
                Ok(info) => return Ok(Some((info, w))),
                Err(BackendError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        let Some(rel) = w.dirs.pop() else {
            return Ok(None);
        };
        let (root, prefix) = (w.root.clone(), w.prefix.clone());
        let (dirs, files) = tokio::task::spawn_blocking(move || read_dir_rel(&root, &rel, &prefix))
            .await
            .map_err(|e| BackendError::other(format!("list task failed: {e}")))??;
        // Pop order: reverse so that directories are visited in sorted order.
        w.dirs.extend(dirs.into_iter().rev());
        w.files.extend(files);
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn id(&self) -> &str {
        &self.id
    }

    async fn prepare(
        &self,
        _name: &PhysicalName,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<String> {
        // Attributes the file system cannot hold fail here, before any byte is sent.
        encode_xattrs(attrs, stamp)?;
        Ok(staging_token(&stamp.version_id))
    }

    async fn stage(
        &self,
        name: &PhysicalName,
        prepared: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        body: ByteStream,
    ) -> Result<Staged> {
        let path = self.staging_path(prepared)?;
        // The staged copy counts towards the write quorum: its directory entry must be
        // durable too.
        let (mut guard, size) = self
            .write_body(
                path,
                name.as_str(),
                attrs,
                stamp,
                body,
                Some(self.staging.clone()),
            )
            .await?;
        guard.0 = None;
        Ok(Staged {
            handle: prepared.to_string(),
            size,
            durable: true,
        })
    }

    async fn stage_upload(
        &self,
        name: &PhysicalName,
        upload: &str,
        parts: &[CompletedPart],
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<Staged> {
        let upload_dir = self.upload_dir(upload)?;
        let xattrs = encode_xattrs(attrs, &stamp.resolved())?;
        let handle = staging_token(&stamp.version_id);
        let staged = self.staging_path(&handle)?;
        let size = parts.iter().map(|p| p.size).sum();
        let parts = parts.to_vec();
        let shown = name.as_str().to_string();
        let staging = self.staging.clone();
        let (placements, upload) = (self.placements.clone(), upload.to_string());
        let mut guard = tokio::task::spawn_blocking(move || {
            // Sealed before it is adopted: nothing may write the data file once it may be an
            // object.
            let guard = match placed::whole_in_data(&upload_dir, &parts)? {
                Some(len) if placements.seal(&upload) => {
                    placed::seal_on_disk(&upload_dir)?;
                    adopt_data(staged, &upload_dir, len, &parts, &shown, &xattrs)?
                }
                _ => compose_parts(staged, &upload_dir, &parts, &shown, &xattrs)?,
            };
            fsync_dir(&staging)?;
            Ok::<_, BackendError>(guard)
        })
        .await
        .map_err(|e| BackendError::other(format!("compose task failed: {e}")))??;
        guard.0 = None;
        Ok(Staged {
            handle,
            size,
            durable: true,
        })
    }

    async fn publish(&self, name: &PhysicalName, staged: &str, stamp: &Stamp) -> Result<PutResult> {
        let source = self.staging_path(staged)?;
        let target = self.path_of(name);
        let root = self.root.clone();
        let shown = name.as_str().to_string();
        let version = stamp.version_id.clone();
        let group = self.group.clone();
        let info = tokio::task::spawn_blocking(move || {
            let info = match open_object(&source, &shown) {
                Ok((_, staged)) => {
                    // Only a complete staged file carries its stamp (set last, then fsynced).
                    if staged.stamp.as_ref().map(|s| s.version_id.as_str())
                        != Some(version.as_str())
                    {
                        return Err(BackendError::other(format!(
                            "{shown}: the staged copy is incomplete or another version's"
                        )));
                    }
                    // A small object joins the shared flush of small writes.
                    let settle = if staged.size <= WRITE_BUFFER as u64 {
                        Settle::Group(&group)
                    } else {
                        Settle::Dirs
                    };
                    rename_durably(&source, &root, &target, &shown, settle)?;
                    // The same file under its new name: its etag (stamp and size) is the same.
                    ObjectInfo {
                        name: shown.clone(),
                        ..staged
                    }
                }
                // Published before (a retry): fine if the object is still this version.
                Err(BackendError::NotFound { .. }) => open_object(&target, &shown)?.1,
                Err(e) => return Err(e),
            };
            if info.stamp.as_ref().map(|s| s.version_id.as_str()) != Some(version.as_str()) {
                return Err(BackendError::NotFound { name: shown });
            }
            Ok(info)
        })
        .await
        .map_err(|e| BackendError::other(format!("publish task failed: {e}")))??;
        Ok(PutResult {
            etag: info.etag,
            size: info.size,
        })
    }

    /// A hard link: no byte moves, and the copy keeps the inode's extended attributes (stamp
    /// and attributes), so its etag is the source's. A later publish over `from` renames a
    /// new file there and leaves the linked inode to `to`.
    async fn copy(&self, from: &PhysicalName, to: &PhysicalName) -> Result<PutResult> {
        let source = self.path_of(from);
        let target = self.path_of(to);
        let tmp = self.new_tmp_path();
        let root = self.root.clone();
        let (from_shown, to_shown) = (from.as_str().to_string(), to.as_str().to_string());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = std::fs::hard_link(&source, &tmp) {
                return Err(match e.kind() {
                    ErrorKind::NotFound => BackendError::NotFound { name: from_shown },
                    _ => io_error(e, &format!("link {from_shown}")),
                });
            }
            let renamed = rename_durably(&tmp, &root, &target, &to_shown, Settle::Dirs);
            // A rename onto another link of the same file does nothing (POSIX): a copy made
            // again leaves its temporary link, which goes here.
            let _ = std::fs::remove_file(&tmp);
            renamed?;
            let (_, info) = open_object(&target, &to_shown)?;
            Ok(PutResult {
                etag: info.etag,
                size: info.size,
            })
        })
        .await
        .map_err(|e| BackendError::other(format!("copy task failed: {e}")))?
    }

    async fn discard(&self, _name: &PhysicalName, handle: &str) -> Result<()> {
        let path = self.staging_path(handle)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(e, &format!("discard {}", path.display()))),
        }
    }

    /// Also sweeps `.hansa/tmp/`: a part or probe on its way in when the process died stays
    /// there (no handle names those files; one being written has a fresh modification time).
    async fn collect_staged(&self, older_than: Duration, live: &HashSet<String>) -> Result<usize> {
        let (staging, tmp) = (self.staging.clone(), self.tmp.clone());
        let live = live.clone();
        let id = self.id.clone();
        tokio::task::spawn_blocking(move || {
            let staged = remove_old_files(&staging, older_than, |name| live.contains(name))?;
            let scratch = remove_old_files(&tmp, older_than, |_| false)?;
            if staged + scratch > 0 {
                tracing::info!(backend = %id, staged, scratch, "removed staged copies and temporary files no write holds");
            }
            Ok(staged + scratch)
        })
        .await
        .map_err(|e| BackendError::other(format!("collect task failed: {e}")))?
    }

    async fn restamp(
        &self,
        name: &PhysicalName,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<ObjectInfo> {
        let path = self.path_of(name);
        let shown = name.as_str().to_string();
        let xattrs = encode_xattrs(attrs, &stamp.resolved())?;
        tokio::task::spawn_blocking(move || {
            let (file, _) = open_object(&path, &shown)?;
            finish_file(&file, &shown, &xattrs)?;
            open_object(&path, &shown).map(|(_, info)| info)
        })
        .await
        .map_err(|e| BackendError::other(format!("restamp task failed: {e}")))?
    }

    async fn get(
        &self,
        name: &PhysicalName,
        range: Option<Range<u64>>,
        if_match: Option<&str>,
    ) -> Result<GetResult> {
        let this = self.clone();
        let owned_name = name.clone();
        let if_match = if_match.map(str::to_string);
        let (file, info, range, eager) = tokio::task::spawn_blocking(move || {
            let (mut file, info) = this.open(&owned_name)?;
            if let Some(expected) = if_match {
                if expected != "*" && expected != info.etag {
                    return Err(BackendError::PreconditionFailed {
                        name: owned_name.to_string(),
                    });
                }
            }
            let range = resolve_range(owned_name.as_str(), range, info.size)?;
            if range.start > 0 {
                file.seek(SeekFrom::Start(range.start))
                    .map_err(|e| io_error(e, &format!("seek {owned_name}")))?;
            }
            // A small range is read here, in the same trip to a blocking thread as the open.
            let eager = if range.end - range.start <= READ_CHUNK as u64 {
                let mut data = vec![0u8; (range.end - range.start) as usize];
                std::io::Read::read_exact(&mut file, &mut data).map_err(|e| match e.kind() {
                    ErrorKind::UnexpectedEof => BackendError::unavailable(format!(
                        "{owned_name}: file shrank while being read"
                    )),
                    _ => io_error(e, &format!("read {owned_name}")),
                })?;
                Some(bytes::Bytes::from(data))
            } else {
                None
            };
            Ok((file, info, range, eager))
        })
        .await
        .map_err(|e| BackendError::other(format!("open task failed: {e}")))??;
        let body = match eager {
            Some(data) => futures::stream::once(async move { Ok(data) }).boxed(),
            None => read_stream(
                tokio::fs::File::from_std(file),
                range.clone(),
                name.to_string(),
            ),
        };
        Ok(GetResult { info, range, body })
    }

    async fn head(&self, name: &PhysicalName) -> Result<ObjectInfo> {
        let this = self.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || this.open(&name).map(|(_, info)| info))
            .await
            .map_err(|e| BackendError::other(format!("head task failed: {e}")))?
    }

    async fn delete(&self, name: &PhysicalName) -> Result<()> {
        let path = self.path_of(name);
        let root = self.root.clone();
        let keep_depth = if name.is_fallback() { 3 } else { 1 };
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
                    ) =>
                {
                    return Ok(())
                }
                // EISDIR is reported as EPERM by unlink(2) on some systems.
                Err(_) if path.is_dir() => return Ok(()),
                Err(e) => return Err(io_error(e, &format!("delete {name}"))),
            }
            if let Some(parent) = path.parent() {
                fsync_dir(parent)?;
            }
            prune_empty_parents(&root, &path, keep_depth);
            Ok(())
        })
        .await
        .map_err(|e| BackendError::other(format!("delete task failed: {e}")))?
    }

    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ObjectInfo>> {
        let walk = Walk {
            root: self.root.clone(),
            prefix: prefix.to_string(),
            dirs: vec![String::new()],
            files: VecDeque::new(),
        };
        futures::stream::try_unfold(walk, walk_next).boxed()
    }

    /// A file system cannot hold a file where a directory is needed or the reverse: `a` and
    /// `a/b` cannot both be plain. Racing writers are still caught by `put` (NameConflict).
    async fn name_available(&self, name: &PhysicalName) -> bool {
        let target = self.path_of(name);
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut dir = root;
            let segments: Vec<_> = target
                .strip_prefix(&dir)
                .map(|rel| rel.components().map(|c| c.as_os_str().to_owned()).collect())
                .unwrap_or_default();
            let Some((last, parents)) = segments.split_last() else {
                return false;
            };
            for segment in parents {
                dir.push(segment);
                match std::fs::symlink_metadata(&dir) {
                    Ok(m) if !m.is_dir() => return false,
                    Ok(_) => {}
                    // Nothing further down exists yet: every deeper name is free.
                    Err(_) => return true,
                }
            }
            dir.push(last);
            !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
        })
        .await
        .unwrap_or(false)
    }

    async fn create_upload(
        &self,
        _name: &PhysicalName,
        upload_id: &str,
        _attrs: &ObjectAttributes,
        _stamp: &Stamp,
    ) -> Result<String> {
        // Parts create the directory as they arrive; nothing to prepare.
        self.upload_dir(upload_id)?;
        Ok(upload_id.to_string())
    }

    async fn put_part(
        &self,
        name: &PhysicalName,
        upload: &str,
        part_number: u32,
        size: u64,
        body: ByteStream,
    ) -> Result<PutResult> {
        let upload_dir = self.upload_dir(upload)?;
        let receipt = uuid::Uuid::new_v4().simple().to_string();
        if let Some(claim) = self.placements.claim(upload, part_number) {
            if let Some(body) = self
                .place_part(&upload_dir, part_number, size, &receipt, body)
                .await?
            {
                return self
                    .put_part_file(name, upload, part_number, size, &receipt, body)
                    .await;
            }
            drop(claim);
            return Ok(PutResult {
                etag: receipt,
                size,
            });
        }
        self.put_part_file(name, upload, part_number, size, &receipt, body)
            .await
    }

    async fn abort_upload(&self, _name: &PhysicalName, upload: &str) -> Result<()> {
        let dir = self.upload_dir(upload)?;
        self.placements.forget(upload);
        tokio::task::spawn_blocking(move || remove_upload_dir(&dir))
            .await
            .map_err(|e| BackendError::other(format!("abort task failed: {e}")))?
    }

    async fn check(&self) -> Result<()> {
        let probe = self
            .root
            .join(HANSA_DIR)
            .join(format!("probe-{}", uuid::Uuid::new_v4()));
        let content = bytes::Bytes::from(format!("hansa probe {}", uuid::Uuid::new_v4()));
        let stamp = Stamp {
            bucket: String::new(),
            key: String::new(),
            version_id: "probe".into(),
            etag: String::new(),
            size: content.len() as u64,
            checksum: None,
            late: None,
        };
        let body: ByteStream = futures::stream::iter([Ok(content.clone())]).boxed();
        let name = probe.display().to_string();
        self.write_file(
            probe.clone(),
            &name,
            &ObjectAttributes::default(),
            &stamp,
            body,
        )
        .await?;
        let read = tokio::fs::read(&probe).await;
        let _ = tokio::fs::remove_file(&probe).await;
        let read = read.map_err(|e| io_error(e, &format!("read {name}")))?;
        if read != content {
            return Err(BackendError::unavailable(format!(
                "{name}: probe read back differently"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{fallback_name, physical_name};
    use crate::testsuite::{body, collect, put_bytes, stamp};

    fn backend() -> (tempfile::TempDir, LocalBackend) {
        let dir = tempfile::Builder::new()
            .prefix("hansa-local-")
            .tempdir()
            .expect("tempdir");
        let b = LocalBackend::new("local", dir.path().join("root")).expect("new");
        (dir, b)
    }

    fn tmp_entries(b: &LocalBackend) -> Vec<PathBuf> {
        std::fs::read_dir(&b.tmp)
            .expect("read tmp")
            .map(|e| e.expect("entry").path())
            .collect()
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).expect("metadata").ino()
    }

    /// Files of their own in an upload's directory (parts that were not placed).
    fn part_files(b: &LocalBackend, upload: &str) -> Vec<String> {
        std::fs::read_dir(b.upload_dir(upload).expect("upload dir"))
            .expect("read upload dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() > 6 && n.as_bytes()[5] == b'.' && !n.ends_with(".placed"))
            .collect()
    }

    async fn complete_as(
        b: &LocalBackend,
        name: &PhysicalName,
        upload: &str,
        parts: &[CompletedPart],
        version: &str,
    ) -> (PathBuf, Vec<u8>) {
        let size = parts.iter().map(|p| p.size).sum();
        let st = stamp("bkt", "big", version, size);
        let staged = b
            .stage_upload(name, upload, parts, &ObjectAttributes::default(), &st)
            .await
            .expect("stage upload");
        let staged_path = b.staging_path(&staged.handle).expect("staging path");
        let staged_inode = inode(&staged_path);
        b.publish(name, &staged.handle, &st).await.expect("publish");
        assert_eq!(inode(&b.path_of(name)), staged_inode);
        (staged_path, crate::testsuite::read(b, name).await)
    }

    /// Parts of one size (the last shorter) are written where they belong in the object, in
    /// whatever order they come: the completion adopts the upload's data file, so no byte is
    /// copied (the object is the data file's inode), and aborting the upload keeps the object.
    #[tokio::test]
    async fn equal_parts_are_written_in_place_and_adopted() {
        use crate::testsuite::{pattern, start_upload, upload_part};
        let (_d, b) = backend();
        let (name, upload) = start_upload(&b, "bkt", "big", "up1").await;
        let (p1, p2, p3) = (pattern(5 << 20, 1), pattern(5 << 20, 2), b"tail".to_vec());
        let one = upload_part(&b, &name, &upload, 1, &p1).await;
        let three = upload_part(&b, &name, &upload, 3, &p3).await;
        let two = upload_part(&b, &name, &upload, 2, &p2).await;
        assert_eq!(part_files(&b, &upload), Vec::<String>::new());
        let data = placed::data_path(&b.upload_dir(&upload).expect("dir"));
        let data_inode = inode(&data);
        let (_, got) = complete_as(&b, &name, &upload, &[one, two, three], "v1").await;
        assert_eq!(got, [p1, p2, p3].concat());
        assert_eq!(
            inode(&b.path_of(&name)),
            data_inode,
            "the bytes were copied"
        );
        b.abort_upload(&name, &upload).await.expect("abort");
        assert!(!data.exists());
        assert_eq!(
            crate::testsuite::read(&b, &name).await.len(),
            (10 << 20) + 4
        );
    }

    /// What does not fit the first part's stride gets a file of its own and is copied at
    /// completion: a larger part, a part number sent again (the region keeps the bytes the
    /// first receipt names), and a completion with a subset of parts.
    #[tokio::test]
    async fn parts_off_the_stride_are_copied_and_every_receipt_keeps_its_bytes() {
        use crate::testsuite::{pattern, start_upload, upload_part};
        let (_d, b) = backend();
        let (name, upload) = start_upload(&b, "bkt", "big", "up2").await;
        let two = upload_part(&b, &name, &upload, 2, &pattern(5 << 20, 3)).await;
        let one = upload_part(&b, &name, &upload, 1, &pattern(6 << 20, 4)).await;
        let two_again = upload_part(&b, &name, &upload, 2, &pattern(5 << 20, 5)).await;
        assert_eq!(
            part_files(&b, &upload).len(),
            2,
            "{:?}",
            part_files(&b, &upload)
        );
        let data = placed::data_path(&b.upload_dir(&upload).expect("dir"));

        let (_, got) = complete_as(&b, &name, &upload, &[one.clone(), two], "v1").await;
        assert_eq!(got, [pattern(6 << 20, 4), pattern(5 << 20, 3)].concat());
        assert_ne!(inode(&b.path_of(&name)), inode(&data));
        let (_, got) = complete_as(&b, &name, &upload, &[one, two_again], "v2").await;
        assert_eq!(got, [pattern(6 << 20, 4), pattern(5 << 20, 5)].concat());
    }

    /// Completing with the first parts only cuts the data file there: the parts beyond lose
    /// their place, and naming one of them later is refused as stale, never read as zeros.
    #[tokio::test]
    async fn a_completion_of_the_first_parts_unmarks_the_rest() {
        use crate::testsuite::{pattern, start_upload, upload_part};
        let (_d, b) = backend();
        let (name, upload) = start_upload(&b, "bkt", "big", "up3").await;
        let one = upload_part(&b, &name, &upload, 1, &pattern(5 << 20, 6)).await;
        let two = upload_part(&b, &name, &upload, 2, &pattern(5 << 20, 7)).await;
        let (_, got) = complete_as(&b, &name, &upload, std::slice::from_ref(&one), "v1").await;
        assert_eq!(got, pattern(5 << 20, 6));
        let again = b
            .stage_upload(
                &name,
                &upload,
                &[one, two],
                &ObjectAttributes::default(),
                &stamp("bkt", "big", "v2", 10 << 20),
            )
            .await;
        assert!(
            matches!(again, Err(BackendError::PreconditionFailed { .. })),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn file_then_child_is_a_name_conflict_and_fallback_works() {
        let (_d, b) = backend();
        put_bytes(&b, "bkt", "a", "v1", b"file a").await;
        let child = physical_name("bkt", "a/b");
        let st = stamp("bkt", "a/b", "v2", 5);
        let err = b
            .put(&child, &ObjectAttributes::default(), &st, body(b"child", 2))
            .await;
        assert!(
            matches!(err, Err(BackendError::NameConflict { .. })),
            "{err:?}"
        );
        let fallback = fallback_name("bkt", "a/b");
        b.put(
            &fallback,
            &ObjectAttributes::default(),
            &st,
            body(b"child", 2),
        )
        .await
        .expect("fallback put");
        let info = b.head(&fallback).await.expect("head");
        assert_eq!(info.stamp, Some(st));
        assert!(tmp_entries(&b).is_empty());

        // The other way round: a directory where the file should go.
        put_bytes(&b, "bkt", "x/y", "v1", b"deep").await;
        let err = b
            .put(
                &physical_name("bkt", "x"),
                &ObjectAttributes::default(),
                &stamp("bkt", "x", "v1", 1),
                body(b"x", 1),
            )
            .await;
        assert!(
            matches!(err, Err(BackendError::NameConflict { .. })),
            "{err:?}"
        );
        // And deeper: a file in the middle of the path.
        let err = b
            .put(
                &physical_name("bkt", "a/b/c/d"),
                &ObjectAttributes::default(),
                &stamp("bkt", "a/b/c/d", "v1", 1),
                body(b"x", 1),
            )
            .await;
        assert!(
            matches!(err, Err(BackendError::NameConflict { .. })),
            "{err:?}"
        );
        assert!(tmp_entries(&b).is_empty());
        let got = b
            .get(&physical_name("bkt", "a"), None, None)
            .await
            .expect("a");
        assert_eq!(collect(got.body).await.expect("body"), b"file a");
    }

    #[tokio::test]
    async fn delete_prunes_empty_directories_up_to_the_bucket() {
        let (_d, b) = backend();
        let (deep, _) = put_bytes(&b, "bkt", "a/b/c", "v1", b"deep").await;
        let (sibling, _) = put_bytes(&b, "bkt", "s/t", "v1", b"sib").await;
        b.delete(&deep).await.expect("delete");
        assert!(!b.root.join("bkt/a").exists(), "empty parents removed");
        assert!(b.root.join("bkt").is_dir(), "bucket directory kept");
        // `a` can be a file now.
        put_bytes(&b, "bkt", "a", "v2", b"now a file").await;
        b.delete(&sibling).await.expect("delete sibling");
        assert!(b.root.join("bkt").is_dir());
        // Non-empty parents stay.
        let (one, _) = put_bytes(&b, "bkt", "p/one", "v1", b"1").await;
        put_bytes(&b, "bkt", "p/two", "v1", b"2").await;
        b.delete(&one).await.expect("delete one");
        assert!(b.root.join("bkt/p/two").is_file());
    }

    #[tokio::test]
    async fn crash_leftovers_in_tmp_are_removed() {
        let (_d, b) = backend();
        let stale = b.tmp.join("stale.tmp");
        let fresh = b.tmp.join("fresh.tmp");
        std::fs::write(&stale, b"half an object").expect("write");
        std::fs::write(&fresh, b"an upload in progress").expect("write");
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .and_then(|f| f.set_modified(two_hours_ago))
            .expect("set mtime");
        let reopened = LocalBackend::new("local", b.root.clone()).expect("reopen");
        assert!(!stale.exists(), "stale temp file removed at start-up");
        assert!(fresh.exists(), "a live upload of another process is kept");
        assert_eq!(reopened.clean_tmp(Duration::ZERO).expect("clean"), 1);
        assert!(tmp_entries(&b).is_empty());
    }

    #[tokio::test]
    async fn collection_sweeps_temp_files_a_crash_left() {
        let (_d, b) = backend();
        // A part cut off by a crash, and one still being written.
        let (stale, fresh) = (b.tmp.join("cut.tmp"), b.tmp.join("writing.tmp"));
        std::fs::write(&stale, b"half a part").expect("write");
        std::fs::write(&fresh, b"a part on its way").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(7200)))
            .expect("set mtime");
        let removed = b
            .collect_staged(Duration::from_secs(3600), &HashSet::new())
            .await
            .expect("collect");
        assert_eq!(removed, 1);
        assert!(!stale.exists() && fresh.exists());
        assert_eq!(
            b.collect_staged(Duration::ZERO, &HashSet::new())
                .await
                .expect("collect"),
            1
        );
        assert!(tmp_entries(&b).is_empty());
    }

    #[tokio::test]
    async fn nothing_escapes_the_root() {
        let (dir, b) = backend();
        for key in ["../../x", "../escape", "/abs", "a/../../b", ".."] {
            let (name, _) = put_bytes(&b, "bkt", key, "v1", b"contained").await;
            let path = b.path_of(&name);
            assert!(path.starts_with(&b.root), "{}", path.display());
            assert!(path.is_file());
            let got = b.head(&name).await.expect("head");
            assert_eq!(got.stamp.map(|s| s.key), Some(key.to_string()));
        }
        // Even a bucket name the gateway should never pass.
        let (name, _) = put_bytes(&b, "..", "../../x", "v1", b"contained").await;
        assert!(b.path_of(&name).starts_with(&b.root));
        let outside: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(outside, vec![std::ffi::OsString::from("root")]);
    }

    #[tokio::test]
    async fn attributes_are_extended_attributes() {
        let (_d, b) = backend();
        let name = physical_name("bkt", "doc.html");
        let attrs = ObjectAttributes {
            content_type: Some("text/html".into()),
            user_metadata: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        let st = stamp("bkt", "doc.html", "ver-1", 4);
        b.put(&name, &attrs, &st, body(b"<p/>", 4))
            .await
            .expect("put");
        let path = b.path_of(&name);
        assert_eq!(std::fs::read(&path).expect("read"), b"<p/>");
        let mime = xattr::get(&path, XATTR_MIME).expect("xattr");
        assert_eq!(mime.as_deref(), Some(&b"text/html"[..]));
        let stamp_json = xattr::get(&path, XATTR_STAMP)
            .expect("xattr")
            .expect("stamp");
        assert_eq!(
            serde_json::from_slice::<Stamp>(&stamp_json).expect("json"),
            st
        );
        let attrs_json = xattr::get(&path, XATTR_ATTRS)
            .expect("xattr")
            .expect("attrs");
        assert_eq!(
            serde_json::from_slice::<ObjectAttributes>(&attrs_json).expect("json"),
            attrs
        );
        // The etag starts with the version id.
        assert!(b
            .head(&name)
            .await
            .expect("head")
            .etag
            .starts_with("ver-1-"));
    }

    #[tokio::test]
    async fn foreign_files_are_listed_without_stamp() {
        let (_d, b) = backend();
        std::fs::create_dir_all(b.root.join("bkt/dropped")).expect("mkdir");
        std::fs::write(b.root.join("bkt/dropped/in.txt"), b"by hand").expect("write");
        let name = physical_name("bkt", "dropped/in.txt");
        let info = b.head(&name).await.expect("head");
        assert_eq!(info.stamp, None);
        assert_eq!(info.size, 7);
        assert!(!info.etag.is_empty());
        assert!(b.get(&name, None, Some(&info.etag)).await.is_ok());
        let listed: Vec<_> = b
            .list("bkt/")
            .map(|r| r.expect("list").name)
            .collect()
            .await;
        assert_eq!(listed, vec!["bkt/dropped/in.txt".to_string()]);
    }

    #[tokio::test]
    async fn failed_puts_leave_no_temp_files() {
        let (_d, b) = backend();
        let (name, _) = put_bytes(&b, "bkt", "k", "v1", b"old").await;
        let failing = body(b"partial", 3)
            .chain(futures::stream::once(async { Err(BackendError::Aborted) }))
            .boxed();
        let r = b
            .put(
                &name,
                &ObjectAttributes::default(),
                &stamp("bkt", "k", "v2", 9),
                failing,
            )
            .await;
        assert!(matches!(r, Err(BackendError::Aborted)));
        assert!(tmp_entries(&b).is_empty());
        // Attributes beyond what the file system holds (ext4: one 4 KiB block).
        let big = ObjectAttributes {
            user_metadata: (0..64)
                .map(|i| (format!("m{i}"), "x".repeat(1024)))
                .collect(),
            ..Default::default()
        };
        match b
            .put(&name, &big, &stamp("bkt", "k", "v3", 3), body(b"new", 3))
            .await
        {
            Ok(_) => {} // XFS/btrfs hold 64 KiB
            Err(BackendError::AttributesTooLarge { .. }) => {
                let got = b.get(&name, None, None).await.expect("old intact");
                assert!(got.info.etag.starts_with("v1-"), "{}", got.info.etag);
                assert_eq!(collect(got.body).await.expect("body"), b"old");
            }
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(tmp_entries(&b).is_empty());
    }

    #[tokio::test]
    async fn reads_are_streamed_in_bounded_chunks() {
        let (_d, b) = backend();
        let data = crate::testsuite::pattern(3 << 20, 9);
        let (name, _) = put_bytes(&b, "bkt", "big", "v1", &data).await;
        let got = b
            .get(&name, Some(1..(3 << 20) - 1), None)
            .await
            .expect("get");
        let chunks: Vec<_> = got.body.map(|c| c.expect("chunk")).collect().await;
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.len() <= READ_CHUNK));
        let joined: Vec<u8> = chunks.concat();
        assert_eq!(joined, &data[1..(3 << 20) - 1]);
    }

    #[tokio::test]
    async fn check_leaves_nothing_behind() {
        let (_d, b) = backend();
        b.check().await.expect("check");
        let hansa: Vec<_> = std::fs::read_dir(b.root.join(HANSA_DIR))
            .expect("read")
            .map(|e| e.expect("entry").file_name())
            .collect();
        let mut hansa = hansa;
        hansa.sort();
        assert_eq!(
            hansa,
            vec![
                std::ffi::OsString::from("staging"),
                std::ffi::OsString::from("tmp")
            ]
        );
        assert!(tmp_entries(&b).is_empty());
    }

    #[tokio::test]
    async fn name_available_sees_file_directory_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new("t", dir.path().to_path_buf()).unwrap();
        let a = crate::naming::physical_name("bkt", "a");
        let ab = crate::naming::physical_name("bkt", "a/b");
        let abc = crate::naming::physical_name("bkt", "a/b/c");
        assert!(b.name_available(&a).await);
        assert!(b.name_available(&ab).await);
        crate::testsuite::put_bytes(&b, "bkt", "a", "v1", b"x").await;
        assert!(!b.name_available(&ab).await, "a is a file");
        assert!(!b.name_available(&abc).await, "a is a file further up");
        b.delete(&a).await.unwrap();
        crate::testsuite::put_bytes(&b, "bkt", "a/b", "v2", b"y").await;
        assert!(!b.name_available(&a).await, "a is a directory now");
        assert!(
            b.name_available(&crate::naming::physical_name("bkt", "a/c"))
                .await
        );
    }
}
