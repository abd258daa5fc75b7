//! Walking token folders: which files are tokens, reading them without
//! ever blocking, and reducing several paths to one token.
//!
//! Rules: a token file is a regular file named `*.vpptoken` (any
//! case) anywhere below a configured folder; hidden entries and editor
//! leftovers are skipped; FIFOs, sockets and devices are reported, never
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

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::Folder;
use crate::secret::Secret;
use crate::token::{self, Fingerprint, MAX_TOKEN_FILE_BYTES};
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

/// Does this file name look like a token file?
pub fn is_token_name(name: &[u8]) -> bool {
    const EXT: &[u8] = b".vpptoken";
    if name.first() == Some(&b'.') {
        return false;
    }
    name.len() > EXT.len() && name[name.len() - EXT.len()..].eq_ignore_ascii_case(EXT)
}

fn is_skipped(name: &[u8]) -> bool {
    name.first() == Some(&b'.')
        || name.last() == Some(&b'~')
        || name.ends_with(b".swp")
        || name.ends_with(b".tmp")
}

/// Scans every folder and de-duplicates across them.
pub fn scan(folders: &[Folder]) -> Scan {
    let mut out = Scan::default();
    let within = Links::within(folders.iter().map(|f| &f.path));
    for (i, folder) in folders.iter().enumerate() {
        let links = if folder.follow_links {
            &Links::Follow
        } else {
            &within
        };
        let (state, files) = scan_folder(i, &folder.path, folder.allow_empty, links);
        out.folders.push(state);
        out.files.extend(files);
    }
    out.files = dedup(out.files);
    out
}

/// Scans one folder recursively, reading every file.
pub fn scan_folder(
    index: usize,
    root: &Path,
    allow_empty: bool,
    links: &Links,
) -> (FolderScan, Vec<FoundFile>) {
    scan_folder_cached(index, root, allow_empty, links, Vec::new(), &|| {})
}

/// [`scan_folder`], reusing from `previous` (this folder's last scan) every
/// file found again under the same path with the same [`FileStamp`].
/// `progress` is called for each entry looked at, so that a scan of
/// millions of files can show it is advancing (the daemon's watchdog).
pub fn scan_folder_cached(
    index: usize,
    root: &Path,
    allow_empty: bool,
    links: &Links,
    previous: Vec<FoundFile>,
    progress: &dyn Fn(),
) -> (FolderScan, Vec<FoundFile>) {
    scan_folder_inner(index, root, allow_empty, links, previous, SETTLED, progress)
}

/// A file seen by a scan: read now, or the previous scan's entry at this
/// index, unchanged.
// Only in one scan's working list; boxing would cost an allocation per file.
#[allow(clippy::large_enum_variant)]
enum Found {
    Fresh(FoundFile),
    Reused(usize),
}

fn scan_folder_inner(
    index: usize,
    root: &Path,
    allow_empty: bool,
    links: &Links,
    previous: Vec<FoundFile>,
    settled: Duration,
    progress: &dyn Fn(),
) -> (FolderScan, Vec<FoundFile>) {
    // Keyed by the path's bytes, borrowed: hashing a `Path` walks its
    // components, and copying every key cost an allocation per file.
    let cached: HashMap<&OsStr, usize> = previous
        .iter()
        .enumerate()
        .filter(|(_, f)| f.stamp.is_some())
        .map(|(i, f)| (f.path.as_os_str(), i))
        .collect();
    let mut state = FolderScan {
        path: root.to_path_buf(),
        state: FolderState::Ok,
        tokens: 0,
        error: None,
        folder_links: false,
    };
    let meta = match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            state.state = FolderState::Unreadable;
            state.error = Some("is not a directory".into());
            return (state, Vec::new());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            state.state = FolderState::Missing;
            state.error = Some("does not exist".into());
            return (state, Vec::new());
        }
        Err(e) => {
            state.state = FolderState::Unreadable;
            state.error = Some(e.to_string());
            return (state, Vec::new());
        }
    };
    let mut files: Vec<Found> = Vec::new();
    let mut buf = Vec::new();
    let mut visited: HashSet<(u64, u64)> = HashSet::from([(meta.dev(), meta.ino())]);
    let mut stack = vec![(root.to_path_buf(), false)];
    let mut first = true;
    while let Some((dir, via_link)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                if first {
                    state.state = FolderState::Unreadable;
                    state.error = Some(e.to_string());
                    return (state, Vec::new());
                }
                tracing::warn!(folder = %dir.display(), error = %e, "cannot read subfolder");
                continue;
            }
        };
        first = false;
        for entry in entries.flatten() {
            progress();
            let name = entry.file_name();
            let bytes = name.as_bytes();
            if is_skipped(bytes) {
                continue;
            }
            let path = dir.join(&name);
            let token_name = is_token_name(bytes);
            let Ok(lmeta) = entry.metadata() else {
                continue;
            };
            let is_link = lmeta.file_type().is_symlink();
            let link_id = (lmeta.dev(), lmeta.ino());
            let meta = if is_link {
                match std::fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        if token_name {
                            let err = if e.raw_os_error() == Some(libc::ELOOP) {
                                FileError::LinkLoop
                            } else {
                                FileError::BrokenLink
                            };
                            files.push(Found::Fresh(problem(path, index, true, err)));
                        }
                        continue;
                    }
                }
            } else {
                lmeta
            };
            let expect = match (is_link, is_link.then(|| links.allows(&path)).flatten()) {
                (false, _) => Expect::Plain(link_id),
                (true, Some(target)) => Expect::Target(target),
                (true, None) => {
                    // Reported where following it would have mattered: a
                    // folder, or a token name. Its target is never opened,
                    // so nothing of it (not even a hash) is kept or shown.
                    if meta.is_dir() || token_name {
                        let mut found = problem(path, index, true, FileError::LinkOutsideFolder);
                        // The link itself: two paths to it are one report.
                        found.file_id = Some(link_id);
                        files.push(Found::Fresh(found));
                    }
                    continue;
                }
            };
            if meta.is_dir() {
                state.folder_links |= is_link;
                if token_name {
                    files.push(Found::Fresh(problem(
                        path.clone(),
                        index,
                        via_link || is_link,
                        FileError::NotRegular("a directory"),
                    )));
                }
                // Following linked folders is wanted; the visited set keeps
                // a link back up the tree from looping.
                if visited.insert((meta.dev(), meta.ino())) {
                    stack.push((path, via_link || is_link));
                }
                continue;
            }
            if token_name {
                let via_link = via_link || is_link;
                let stamp = Some(stamp_of(&meta));
                let reused = cached
                    .get(path.as_os_str())
                    .copied()
                    .filter(|&i| previous[i].via_link == via_link && previous[i].stamp == stamp);
                files.push(match reused {
                    Some(i) => Found::Reused(i),
                    None => Found::Fresh(read_found(
                        path, index, via_link, &meta, expect, settled, &mut buf,
                    )),
                });
            }
        }
    }
    drop(cached);
    let mut previous: Vec<Option<FoundFile>> = previous.into_iter().map(Some).collect();
    let files: Vec<FoundFile> = files
        .into_iter()
        .filter_map(|f| match f {
            Found::Fresh(f) => Some(f),
            // Each path is reached once per scan, so each entry is taken once.
            Found::Reused(i) => previous[i].take().map(|old| FoundFile {
                folder: index,
                ..old
            }),
        })
        .collect();
    state.tokens = files.iter().filter(|f| f.content.is_ok()).count();
    if files.is_empty() && !allow_empty {
        state.state = FolderState::Empty;
    }
    (state, sorted_by_path(files))
}

/// Sorts by path bytes. Sorting the entries themselves moved each 240-byte
/// entry many times (a fifth of a rescan of 10,000 unchanged files); this
/// sorts indices and moves each entry once.
fn sorted_by_path(files: Vec<FoundFile>) -> Vec<FoundFile> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        files[a]
            .path
            .as_os_str()
            .as_bytes()
            .cmp(files[b].path.as_os_str().as_bytes())
    });
    let mut slots: Vec<Option<FoundFile>> = files.into_iter().map(Some).collect();
    // Exact capacity: collecting from `filter_map` grows by doubling, and
    // this vector lives as long as the folder's scan.
    let mut sorted = Vec::with_capacity(order.len());
    sorted.extend(order.into_iter().filter_map(|i| slots[i].take()));
    sorted
}

fn problem(path: PathBuf, folder: usize, via_link: bool, err: FileError) -> FoundFile {
    FoundFile {
        path,
        folder,
        size: 0,
        mtime: None,
        file_id: None,
        via_link,
        world_readable: false,
        fingerprint: None,
        content: Err(err),
        stamp: None,
    }
}

fn special_kind(meta: &Metadata) -> Option<&'static str> {
    let ft = meta.file_type();
    if ft.is_file() {
        None
    } else if ft.is_fifo() {
        Some("a FIFO")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_block_device() {
        Some("a block device")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_dir() {
        Some("a directory")
    } else {
        Some("a special file")
    }
}

fn read_found(
    path: PathBuf,
    folder: usize,
    via_link: bool,
    meta: &Metadata,
    expect: Expect,
    settled: Duration,
    buf: &mut Vec<u8>,
) -> FoundFile {
    let mut found = problem(path, folder, via_link, FileError::Io(String::new()));
    if let Some(kind) = special_kind(meta) {
        found.content = Err(FileError::NotRegular(kind));
        return found;
    }
    let read_at = SystemTime::now();
    match read_into(&found.path, expect, buf) {
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
            let (fingerprint, content) = token::parse_with_fingerprint(buf);
            found.fingerprint = Some(fingerprint);
            found.content = content.map_err(FileError::Token);
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
    let meta = read_into(path, Expect::Any, &mut bytes)?;
    Ok((bytes, meta))
}

/// [`read_limited`] into a buffer the caller reuses: a scan reads thousands
/// of files, and a fresh buffer for each one, freed between the allocations
/// it keeps, left the daemon's heap full of holes.
///
/// `expect` is what the caller saw at `path` just before; a file that is
/// not it is never read (see [`Expect`]).
fn read_into(path: &Path, expect: Expect, bytes: &mut Vec<u8>) -> Result<Metadata, FileError> {
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
    bytes.reserve((meta.len() as usize).min(MAX_TOKEN_FILE_BYTES + 1));
    file.take(MAX_TOKEN_FILE_BYTES as u64 + 1)
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
    let (bytes, _) = read_limited(path).map_err(NoBearer::Unreadable)?;
    let (content, bearer) = token::parse_with_bearer(&bytes).map_err(|_| NoBearer::Changed)?;
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

/// Reads one file the way a scan would (for `inspect`).
pub fn read_one(path: &Path) -> FoundFile {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let via_link =
                std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            read_found(
                path.to_path_buf(),
                0,
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

/// The path to show for a file reached several ways: a real (non-link)
/// path first, then the smallest in byte order.
fn preferred(a: &FoundFile, b: &FoundFile) -> bool {
    (a.via_link, a.path.as_os_str().as_bytes()) < (b.via_link, b.path.as_os_str().as_bytes())
}

/// One entry per file (several links to one inode) and per token (the
/// same bytes under several names), sorted by path.
pub fn dedup(files: Vec<FoundFile>) -> Vec<FoundFile> {
    let keep = dedup_indices(&files.iter().collect::<Vec<_>>());
    let mut slots: Vec<Option<FoundFile>> = files.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// [`dedup`] without copying: the daemon's folders keep their files, and a
/// pass only needs to look at them.
pub fn dedup_refs<'a>(files: impl IntoIterator<Item = &'a FoundFile>) -> Vec<&'a FoundFile> {
    let files: Vec<&FoundFile> = files.into_iter().collect();
    dedup_indices(&files)
        .into_iter()
        .map(|i| files[i])
        .collect()
}

/// Indices into `files` of the entries to keep, sorted by path.
fn dedup_indices(files: &[&FoundFile]) -> Vec<usize> {
    let mut keep: Vec<usize> = Vec::with_capacity(files.len());
    let mut by_id: HashMap<(u64, u64), usize> = HashMap::new();
    let mut by_fp: HashMap<&Fingerprint, usize> = HashMap::new();
    for (n, f) in files.iter().enumerate() {
        let same = f
            .file_id
            .and_then(|id| by_id.get(&id).copied())
            .or_else(|| match (&f.content, &f.fingerprint) {
                (Ok(_), Some(fp)) => by_fp.get(fp).copied(),
                _ => None,
            });
        match same {
            Some(i) => {
                if preferred(f, files[keep[i]]) {
                    keep[i] = n;
                }
            }
            None => {
                let i = keep.len();
                if let Some(id) = f.file_id {
                    by_id.insert(id, i);
                }
                if let (Ok(_), Some(fp)) = (&f.content, &f.fingerprint) {
                    by_fp.insert(fp, i);
                }
                keep.push(n);
            }
        }
    }
    keep.sort_by(|&a, &b| {
        files[a]
            .path
            .as_os_str()
            .as_bytes()
            .cmp(files[b].path.as_os_str().as_bytes())
    });
    keep
}

mod links;
mod targeted;
pub use links::Links;
pub use targeted::{rescan_paths, MAX_PATHS};

#[cfg(test)]
mod tests;
