//! Updating a folder's last scan for just the paths the watcher named.
//!
//! A rescan of a folder with 10,000 unchanged files still costs a `stat` of
//! each (about 50 ms, and ten times that at 100,000); a token renamed into
//! the folder needs one. Whatever this cannot settle from the named paths
//! alone — the folder itself, a directory, a symlink on the way, a file
//! below a path the last scan found a directory at — is answered with "scan
//! it all", and the caller runs the full (cached) scan, so the result is
//! what a full scan would have found. Two cases the named paths cannot show
//! go to a full scan too: files with several hard links (a write through
//! one name changes the others) and folders with a followed symlink
//! anywhere below (files reachable by two paths). A symlink out of every
//! folder is not followed, so it forces nothing; whether a named symlink
//! leads out is for the full scan to judge.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::{
    is_skipped, read_found_as, Expect, FolderScan, FolderSpec, FolderState, FoundFile, SETTLED,
};

/// More named paths than this in one batch are cheaper to take as a full
/// (cached) scan than to look up one by one.
pub const MAX_PATHS: usize = 256;

/// The named paths cannot settle it: scan the whole folder.
struct FullScan;

/// Updates `files` (the folder's last scan, sorted by path) for `paths`:
/// each token path is read afresh and added, replaced or removed; other
/// names that are plain files are ignored, as a scan would. `Err` gives the
/// files back when a full rescan is needed instead.
pub fn rescan_paths(
    index: usize,
    folder: &FolderSpec,
    last: &FolderScan,
    mut files: Vec<FoundFile>,
    paths: &[PathBuf],
) -> Result<(FolderScan, Vec<FoundFile>), Vec<FoundFile>> {
    let root = folder.path.as_path();
    // A file reached through a symlinked folder is listed by a scan once,
    // under whichever path the walk takes first: only a full scan knows.
    // A link out of every folder is not followed, so no write anywhere
    // changes what it shows; only its own path, which goes to a full scan.
    if paths.len() > MAX_PATHS
        || last.folder_links
        || files.iter().any(FoundFile::followed_a_link)
        || !std::fs::metadata(root).is_ok_and(|m| m.is_dir())
    {
        return Err(files);
    }
    // Files read too soon after a change to trust their stamp are read
    // again, as a full scan would (see SETTLED). A link out of the folders
    // was never read.
    let unsettled: Vec<PathBuf> = files
        .iter()
        .filter(|f| f.stamp.is_none() && !f.is_link_outside())
        .map(|f| f.path.clone())
        .collect();
    let mut buf = Vec::new();
    for path in paths.iter().chain(&unsettled) {
        if update_one(index, folder, &mut files, path, &mut buf).is_err() {
            return Err(files);
        }
    }
    let tokens = files.iter().filter(|f| f.content.is_ok()).count();
    let state = FolderScan {
        path: root.to_path_buf(),
        state: if files.is_empty() && !folder.allow_empty {
            FolderState::Empty
        } else {
            FolderState::Ok
        },
        tokens,
        error: None,
        folder_links: false,
    };
    Ok((state, files))
}

fn update_one(
    index: usize,
    folder: &FolderSpec,
    files: &mut Vec<FoundFile>,
    path: &Path,
    buf: &mut Vec<u8>,
) -> Result<(), FullScan> {
    let root = folder.path.as_path();
    let Ok(rel) = path.strip_prefix(root) else {
        return Err(FullScan);
    };
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(name) => names.push(name.as_bytes()),
            // `..`, `.` or an absolute part: not a plain path below root.
            _ => return Err(FullScan),
        }
    }
    let Some((&name, dirs)) = names.split_last() else {
        // The folder itself.
        return Err(FullScan);
    };
    // A scan skips hidden entries and editor leftovers, and never enters
    // skipped folders: nothing below one can change its result.
    if names.iter().any(|n| is_skipped(n)) {
        return Ok(());
    }
    // Every folder on the way must be a real one, not a symlink (see above).
    let mut dir = root.to_path_buf();
    for d in dirs {
        dir.push(std::ffi::OsStr::from_bytes(d));
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            // Gone or replaced: its removal or creation is an event of its own.
            _ => return Err(FullScan),
        }
    }
    let found_at = position(files, path);
    let below = has_entries_below(files, path);
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(_) => return Err(FullScan),
    };
    let kind = folder.kind_of(name);
    match meta {
        None => {
            // Gone: a file, or a folder whose tokens the scan listed.
            if below {
                return Err(FullScan);
            }
            if let Ok(i) = found_at {
                files.remove(i);
            }
            Ok(())
        }
        Some(m) if m.is_dir() || m.file_type().is_symlink() => Err(FullScan),
        // Another name of the same file keeps what was read through it: a
        // full scan sees its change time move and reads it again.
        Some(m) if m.nlink() > 1 => Err(FullScan),
        Some(_) if below => Err(FullScan),
        Some(m) if kind.is_some() => {
            // Looked at as a plain file: what is opened must be that file
            // (a link swapped in since is not followed).
            let Some(kind) = kind else {
                return Err(FullScan);
            };
            let fresh = read_found_as(
                path.to_path_buf(),
                index,
                kind,
                folder.ade_key.as_ref().map(|k| &*k.0),
                false,
                &m,
                Expect::Plain((m.dev(), m.ino())),
                SETTLED,
                buf,
            );
            match found_at {
                Ok(i) => files[i] = fresh,
                Err(i) => files.insert(i, fresh),
            }
            Ok(())
        }
        // Any other name that is not a folder or link: not a token file.
        Some(_) => {
            debug_assert!(found_at.is_err());
            Ok(())
        }
    }
}

/// Where `path` is, or would go, in files sorted by path bytes.
fn position(files: &[FoundFile], path: &Path) -> Result<usize, usize> {
    let key = path.as_os_str().as_bytes();
    files.binary_search_by(|f| f.path.as_os_str().as_bytes().cmp(key))
}

/// The last scan found files below `path` (it was a folder).
fn has_entries_below(files: &[FoundFile], path: &Path) -> bool {
    let mut prefix = path.as_os_str().as_bytes().to_vec();
    prefix.push(b'/');
    let start = files.partition_point(|f| f.path.as_os_str().as_bytes() < prefix.as_slice());
    files
        .get(start)
        .is_some_and(|f| f.path.as_os_str().as_bytes().starts_with(&prefix))
}

#[cfg(test)]
mod tests;
