//! Walking token folders: which files are tokens, reading them without
//! ever blocking, and reducing several paths to one token.
//!
//! Rules: a token file is a regular file whose name a credential kind
//! claims (see [`crate::token::kind`]) anywhere below a configured folder;
//! hidden entries and editor leftovers are skipped; FIFOs, sockets and devices are reported, never
//! opened for a blocking read; symlinks are followed without looping; a
//! token reached twice is one token, shown under its real path.
//!
//! A symlink whose target lies outside every configured folder is not
//! followed unless its folder sets `follow_links` (see [`Links`]): a link
//! to `/` walked the whole filesystem, and a link to the SMTP password file
//! put a hash of the password into the state and mails. It is reported as
//! unreadable without its target ever being opened.
//!
//! The daemon rescans a folder on every event in it, so [`scan_folder_cached`]
//! takes the folder's previous files and reuses each one whose [`FileStamp`]
//! is unchanged instead of reading and parsing it again; when the watcher
//! named the changed paths, [`rescan_paths`] looks at just those.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use crate::token::ade::AdeKey;
use crate::token::{self, Kind, KindId};
#[cfg(test)]
use read::read_found;
use read::read_found_as;
use walk::{is_skipped, scan_folder_inner};
// The scan's results are plain data in the core; their old paths stay.
pub use crate::token::found::{FileError, FileStamp, FolderScan, FolderState, FoundFile, Scan};

/// A file changed less than this long before it was read is read again at
/// the next scan (full or of named paths) even if its stamp is unchanged. File timestamps are coarse
/// (a kernel tick, or worse on network filesystems): a second write within
/// the same tick as the first, after the read, would leave the stamp as it
/// was (git calls such files "racily clean").
pub const SETTLED: Duration = Duration::from_secs(2);

/// What a read must find, as the scan saw the entry just before: the path
/// may be swapped in between by whoever can write to the folder, and a
/// file outside the folders must never be read (its hash would reach the
/// state and mails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// The entry was not a symlink, and was this file (device, inode): it
    /// is opened with `O_NOFOLLOW`, so a link swapped in is not followed,
    /// and must be that file (a folder on the way may have been swapped).
    Plain((u64, u64)),
    /// A symlink whose check resolved to this file (device, inode): the
    /// file opened must be that one.
    Target((u64, u64)),
    /// Whatever is there now (`inspect` of a path the caller names).
    Any,
}

/// The stamp of the file `meta` describes.
pub fn stamp_of(meta: &Metadata) -> FileStamp {
    FileStamp::new(
        meta.dev(),
        meta.ino(),
        meta.len(),
        (meta.mtime(), meta.mtime_nsec()),
        (meta.ctime(), meta.ctime_nsec()),
    )
}

/// What a scan needs to know of one configured folder (the config builds
/// them: `Config::folder_specs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderSpec {
    /// Absolute, not canonicalised.
    pub path: PathBuf,
    /// A folder with no credential file is fine, not `empty`.
    pub allow_empty: bool,
    /// Follow symlinks below it wherever they lead (see [`Links`]).
    pub follow_links: bool,
    /// The kinds of credential looked for; files of other kinds are
    /// ignored like any other file.
    pub kinds: Vec<KindId>,
    /// The MDM's key that ADE server tokens in it are encrypted to.
    pub ade_key: Option<SharedKey>,
}

/// A key read once and shared by every scan of its folder. Two are equal
/// when they are the same read, so a reload that reads the file again
/// counts as a change and the folder's files are read afresh.
#[derive(Clone)]
pub struct SharedKey(pub Arc<AdeKey>);

impl PartialEq for SharedKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedKey {}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl FolderSpec {
    /// A folder watched for content tokens only, as one is by default.
    pub fn new(path: impl Into<PathBuf>) -> FolderSpec {
        FolderSpec {
            path: path.into(),
            allow_empty: false,
            follow_links: false,
            kinds: vec![KindId::default()],
            ade_key: None,
        }
    }

    /// The kind, among this folder's, whose files have names like this
    /// one; None for names none of them claims and for hidden files.
    pub fn kind_of(&self, name: &[u8]) -> Option<&'static dyn Kind> {
        if name.first() == Some(&b'.') {
            return None;
        }
        self.kinds
            .iter()
            .map(|&id| token::kind(id))
            .find(|k| k.claims(name))
    }
}

/// Scans every folder and de-duplicates across them.
pub fn scan(folders: &[FolderSpec]) -> Scan {
    let mut out = Scan::default();
    let within = Links::within(folders.iter().map(|f| &f.path));
    for (i, folder) in folders.iter().enumerate() {
        let links = if folder.follow_links {
            &Links::Follow
        } else {
            &within
        };
        let (state, files) = scan_folder(i, folder, links);
        out.folders.push(state);
        out.files.extend(files);
    }
    out.files = dedup(out.files);
    out
}

/// Scans one folder recursively, reading every file.
pub fn scan_folder(
    index: usize,
    folder: &FolderSpec,
    links: &Links,
) -> (FolderScan, Vec<FoundFile>) {
    scan_folder_cached(index, folder, links, Vec::new(), &|| {})
}

/// [`scan_folder`], reusing from `previous` (this folder's last scan) every
/// file found again under the same path with the same [`FileStamp`].
/// `progress` is called for each entry looked at, so that a scan of
/// millions of files can show it is advancing (the daemon's watchdog).
pub fn scan_folder_cached(
    index: usize,
    folder: &FolderSpec,
    links: &Links,
    previous: Vec<FoundFile>,
    progress: &dyn Fn(),
) -> (FolderScan, Vec<FoundFile>) {
    scan_folder_inner(index, folder, links, previous, SETTLED, progress)
}

mod dedup;
mod links;
mod read;
mod targeted;
mod walk;
pub use dedup::{dedup, dedup_refs};
pub use links::Links;
pub use read::{read_bearer, read_limited, read_one, NoBearer};
pub use targeted::{rescan_paths, MAX_PATHS};

#[cfg(test)]
mod tests;

/// A folder spec for tests: content tokens, links within it only.
#[cfg(test)]
fn spec(root: &std::path::Path, allow_empty: bool) -> FolderSpec {
    FolderSpec {
        allow_empty,
        ..FolderSpec::new(root)
    }
}
