//! Reading one file found by the walk, without ever blocking and without
//! reading a file other than the one looked at; the bearer for Apple.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::walk::{problem, special_kind};
use super::{stamp_of, Expect, FileError, FoundFile, SETTLED};
use crate::secret::Secret;
use crate::token::ade::AdeKey;
use crate::token::{self, Kind, KindId, Source, MAX_TOKEN_FILE_BYTES};

/// [`read_found_as`] the kind its name says.
#[cfg(test)]
pub(crate) fn read_found(
    path: PathBuf,
    folder: usize,
    via_link: bool,
    meta: &Metadata,
    expect: Expect,
    settled: Duration,
    buf: &mut Vec<u8>,
) -> FoundFile {
    let kind = kind_by_path(&path);
    read_found_as(
        path, folder, kind, None, via_link, meta, expect, settled, buf,
    )
}

// The scan's working state, passed down as it is: a struct would be built
// once per file for this one call.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_found_as(
    path: PathBuf,
    folder: usize,
    kind: &'static dyn Kind,
    key: Option<&AdeKey>,
    via_link: bool,
    meta: &Metadata,
    expect: Expect,
    settled: Duration,
    buf: &mut Vec<u8>,
) -> FoundFile {
    let mut found = problem(path, folder, via_link, FileError::Io(String::new()));
    found.kind = kind.id();
    if let Some(special) = special_kind(meta) {
        found.content = Err(FileError::NotRegular(special));
        return found;
    }
    let read_at = SystemTime::now();
    match read_into(&found.path, expect, kind.max_bytes(), buf) {
        Ok(meta) => {
            let stamp = stamp_of(&meta);
            found.stamp = stamp
                .newest()
                .and_then(|t| t.checked_add(settled))
                .is_some_and(|t| t <= read_at)
                .then_some(stamp);
            found.size = meta.len();
            found.mtime = meta.modified().ok();
            found.file_id = Some((meta.dev(), meta.ino()));
            found.world_readable = meta.mode() & 0o004 != 0;
            let name = found.path.file_name().unwrap_or_default().as_bytes();
            let (fingerprint, content) = kind.read(Source {
                name,
                bytes: buf,
                key,
            });
            found.set_read(fingerprint, content.map_err(FileError::Token));
        }
        Err(FileError::Changed) => {
            // Changed just now: an unreadable-file alert waits for it to
            // settle, and the change's own event brings the next scan.
            found.mtime = Some(read_at);
            found.content = Err(FileError::Changed);
        }
        Err(e) => found.content = Err(e),
    }
    found
}

/// Reads at most one byte more than a token may have. Opens non-blocking so
/// that a FIFO swapped in after the type check cannot hang the scan, and
/// checks the type again on the open file.
pub fn read_limited(path: &Path) -> Result<(Vec<u8>, Metadata), FileError> {
    let mut bytes = Vec::new();
    let meta = read_into(path, Expect::Any, MAX_TOKEN_FILE_BYTES, &mut bytes)?;
    Ok((bytes, meta))
}

/// [`read_limited`] into a buffer the caller reuses: a scan reads thousands
/// of files, and a fresh buffer for each one, freed between the allocations
/// it keeps, left the daemon's heap full of holes.
///
/// `expect` is what the caller saw at `path` just before; a file that is
/// not it is never read (see [`Expect`]).
/// At most `max` + 1 bytes are read: the kind tells a file that is too
/// large from one that is just large enough.
fn read_into(
    path: &Path,
    expect: Expect,
    max: usize,
    bytes: &mut Vec<u8>,
) -> Result<Metadata, FileError> {
    bytes.clear();
    let plain = matches!(expect, Expect::Plain(_));
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if plain {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match File::options().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        // With O_NOFOLLOW: it became a link since it was looked at.
        Err(e) if plain && e.raw_os_error() == Some(libc::ELOOP) => return Err(FileError::Changed),
        Err(e) => return Err(FileError::Io(io_cause(&e))),
    };
    let meta = file.metadata().map_err(|e| FileError::Io(io_cause(&e)))?;
    if let Expect::Plain(id) | Expect::Target(id) = expect {
        if (meta.dev(), meta.ino()) != id {
            return Err(FileError::Changed);
        }
    }
    if let Some(kind) = special_kind(&meta) {
        return Err(FileError::NotRegular(kind));
    }
    bytes.reserve((meta.len() as usize).min(max + 1));
    file.take(max as u64 + 1)
        .read_to_end(bytes)
        .map_err(|e| FileError::Io(io_cause(&e)))?;
    Ok(meta)
}

fn io_cause(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "it disappeared while being read".into(),
        _ => e.to_string(),
    }
}

/// The bearer of the token file at `path`, read now, to ask Apple about the
/// token a scan saw there with `fingerprint`. Scans never keep it: 100,000
/// tokens' Base64 texts were a third of the daemon's memory, and a secret
/// is best held only while it is used.
pub fn read_bearer(path: &Path, fingerprint: &str) -> Result<Secret, NoBearer> {
    let kind = kind_by_path(path);
    let (bytes, _) = read_limited(path).map_err(NoBearer::Unreadable)?;
    let name = path.file_name().unwrap_or_default().as_bytes();
    let (content, bearer) = kind
        .bearer(Source {
            name,
            bytes: &bytes,
            key: None,
        })
        .map_err(|_| NoBearer::Changed)?;
    if content.fingerprint.as_str() != fingerprint {
        return Err(NoBearer::Changed);
    }
    bearer.ok_or(NoBearer::RawJson)
}

/// Why [`read_bearer`] has none; never quotes the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoBearer {
    /// Gone, or could not be read now (may be passing).
    Unreadable(FileError),
    /// The file no longer holds the scanned token.
    Changed,
    RawJson,
}

impl fmt::Display for NoBearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoBearer::Unreadable(e) => e.fmt(f),
            NoBearer::Changed => f.write_str("its content changed since it was scanned"),
            NoBearer::RawJson => {
                f.write_str("it was saved as raw JSON and the original Base64 is lost")
            }
        }
    }
}

/// The kind of the file at `path` by its name; a name no kind claims is
/// read as a content token (`inspect` takes any path).
fn kind_by_path(path: &Path) -> &'static dyn Kind {
    path.file_name()
        .and_then(|n| token::kind_for_name(n.as_bytes()))
        .unwrap_or_else(|| token::kind(KindId::default()))
}

/// Reads one file the way a scan would (for `inspect`), with the key an
/// ADE server token is encrypted to, if given.
pub fn read_one(path: &Path, key: Option<&AdeKey>) -> FoundFile {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let via_link =
                std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            read_found_as(
                path.to_path_buf(),
                0,
                kind_by_path(path),
                key,
                via_link,
                &meta,
                Expect::Any,
                SETTLED,
                &mut Vec::new(),
            )
        }
        Err(e) => problem(path.to_path_buf(), 0, false, FileError::Io(io_cause(&e))),
    }
}
