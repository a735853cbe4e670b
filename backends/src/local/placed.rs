//! Multipart parts written where they belong in the object, so that a completion copies nothing.
//!
//! The first part of an upload to arrive sets the upload's stride (its size), kept durably in
//! `stride` in the upload's directory. A part of at most the stride is written into the upload's
//! `data` file at `(number − 1) × stride` and, once fsynced, marked by `NNNNN.placed`, a symbolic
//! link naming its receipt (one name per part number: looked up, never listed). A completion naming parts 1, 2, …, k, each placed and all but the
//! last exactly one stride long, makes the data file itself the staged object: a hard link and a
//! truncation, every byte written once per disk. Anything else gets a file of its own, as before,
//! and a completion naming one copies the parts into place: a part larger than the stride, a
//! part number placed before (a placed region is never written again, so the receipt it answered
//! stays valid until the upload ends), a part racing another of its number, and a part arriving
//! once a completion has sealed the upload (its data file may have become an object).

use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::fsync_dir;
use crate::backend::CompletedPart;
use crate::error::{BackendError, Result};

const DATA: &str = "data";
const STRIDE: &str = "stride";
/// Present once a completion has adopted the data file: a seal that outlives the process.
const SEALED: &str = "sealed";

/// What this process is doing to uploads' data files: the regions being written, and the
/// uploads sealed by a completion (nothing writes their data file any more).
#[derive(Debug, Default)]
pub(super) struct Placements {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    writing: HashSet<(String, u32)>,
    sealed: HashSet<String>,
}

/// The right to write one part's region; given back when dropped.
pub(super) struct Claim {
    placements: Arc<Placements>,
    region: (String, u32),
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut state) = self.placements.state.lock() {
            state.writing.remove(&self.region);
        }
    }
}

impl Placements {
    /// Claims part `number`'s region of `upload`, unless the upload is sealed or another write
    /// of that part number is under way.
    pub fn claim(self: &Arc<Self>, upload: &str, number: u32) -> Option<Claim> {
        let mut state = self.state.lock().ok()?;
        if state.sealed.contains(upload) {
            return None;
        }
        let region = (upload.to_string(), number);
        if !state.writing.insert(region.clone()) {
            return None;
        }
        Some(Claim {
            placements: self.clone(),
            region,
        })
    }

    /// Seals `upload` against further region writes; false (and not sealed) while one is under
    /// way.
    pub fn seal(&self, upload: &str) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if state.writing.iter().any(|(u, _)| u == upload) {
            return false;
        }
        state.sealed.insert(upload.to_string());
        true
    }

    /// The upload is gone: nothing more to remember of it.
    pub fn forget(&self, upload: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.sealed.remove(upload);
        }
    }
}

/// Seals the upload on disk too (durably): after a restart, nothing writes a data file that
/// may have become an object.
pub(super) fn seal_on_disk(upload_dir: &Path) -> Result<()> {
    std::fs::write(upload_dir.join(SEALED), b"").map_err(|e| io(e, "seal the upload"))?;
    fsync_dir(upload_dir)
}

pub(super) fn is_sealed_on_disk(upload_dir: &Path) -> bool {
    upload_dir.join(SEALED).exists()
}

pub(super) fn data_path(upload_dir: &Path) -> PathBuf {
    upload_dir.join(DATA)
}

fn marker_path(upload_dir: &Path, number: u32) -> PathBuf {
    upload_dir.join(format!("{number:05}.placed"))
}

/// Marks part `number` placed under `receipt`, durably (its region is written and fsynced).
pub(super) fn mark(upload_dir: &Path, number: u32, receipt: &str) -> Result<()> {
    std::os::unix::fs::symlink(receipt, marker_path(upload_dir, number))
        .map_err(|e| io(e, "mark a placed part"))?;
    fsync_dir(upload_dir)
}

/// Whether part `number` has a placed region already (then it is never written again).
pub(super) fn is_placed(upload_dir: &Path, number: u32) -> bool {
    std::fs::symlink_metadata(marker_path(upload_dir, number)).is_ok()
}

/// Whether part `number`'s region holds the bytes `receipt` names.
fn is_placed_as(upload_dir: &Path, number: u32, receipt: &str) -> bool {
    std::fs::read_link(marker_path(upload_dir, number))
        .is_ok_and(|named| named.as_os_str() == receipt)
}

/// The upload's stride: the one recorded, else `size`, recorded now. Durable before it is
/// returned: the offsets of placed parts depend on it.
pub(super) fn stride(upload_dir: &Path, size: u64) -> Result<u64> {
    let path = upload_dir.join(STRIDE);
    if let Some(stride) = read_stride(&path)? {
        return Ok(stride);
    }
    // Written whole under a name of its own, then linked: a reader never sees half a number,
    // and of two parts racing to set it, one link wins.
    let tmp = upload_dir.join(format!("{STRIDE}.{}", uuid::Uuid::new_v4().simple()));
    let written = std::fs::write(&tmp, size.to_string())
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| match std::fs::hard_link(&tmp, &path) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            other => other,
        });
    let _ = std::fs::remove_file(&tmp);
    written.map_err(|e| io(e, "record the upload's stride"))?;
    fsync_dir(upload_dir)?;
    read_stride(&path)?.ok_or_else(|| BackendError::other("the upload's stride vanished"))
}

fn read_stride(path: &Path) -> Result<Option<u64>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| BackendError::other(format!("{}: not a stride", path.display()))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(e, "read the upload's stride")),
    }
}

/// Where a completed part's bytes are.
pub(super) enum PartSource {
    /// A file of its own.
    File(PathBuf),
    /// A region of the data file: (offset, length).
    Region(u64, u64),
}

/// Finds part `part`'s bytes; `None` when its receipt names nothing here (a stale part).
pub(super) fn source_of(upload_dir: &Path, part: &CompletedPart) -> Result<Option<PartSource>> {
    let file = upload_dir.join(format!("{:05}.{}", part.part_number, part.receipt));
    if file.exists() {
        return Ok(Some(PartSource::File(file)));
    }
    if !is_placed_as(upload_dir, part.part_number, &part.receipt) {
        return Ok(None);
    }
    let Some(stride) = read_stride(&upload_dir.join(STRIDE))? else {
        return Ok(None);
    };
    if part.size > stride || part.part_number == 0 {
        return Ok(None);
    }
    Ok(Some(PartSource::Region(
        u64::from(part.part_number - 1) * stride,
        part.size,
    )))
}

/// The object's length when the data file holds exactly `parts` in order (1, 2, …, k, all but
/// the last one stride long, each placed); `None` when it does not.
pub(super) fn whole_in_data(upload_dir: &Path, parts: &[CompletedPart]) -> Result<Option<u64>> {
    let Some(stride) = read_stride(&upload_dir.join(STRIDE))? else {
        return Ok(None);
    };
    let mut len = 0u64;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let fits = if last {
            part.size <= stride
        } else {
            part.size == stride
        };
        if u64::from(part.part_number) != i as u64 + 1
            || !fits
            || !is_placed_as(upload_dir, part.part_number, &part.receipt)
        {
            return Ok(None);
        }
        len += part.size;
    }
    Ok((!parts.is_empty()).then_some(len))
}

/// Removes the markers of parts beyond the first `kept`: a truncation to the completed object
/// drops their bytes.
pub(super) fn unmark_beyond(upload_dir: &Path, kept: u32) -> Result<()> {
    for entry in std::fs::read_dir(upload_dir).map_err(|e| io(e, "list the upload"))? {
        let entry = entry.map_err(|e| io(e, "list the upload"))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(number) = name
            .strip_suffix(".placed")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if number > kept {
            std::fs::remove_file(entry.path()).map_err(|e| io(e, "unmark a part"))?;
        }
    }
    Ok(())
}

fn io(e: std::io::Error, context: &str) -> BackendError {
    super::io_error(e, context)
}
