//! The walk below one folder: which entries are looked at, which are
//! token files, and the previous scan's results reused for unchanged files.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::time::Duration;

use super::read::read_found_as;
use super::{stamp_of, Expect, FileError, FolderScan, FolderSpec, FolderState, FoundFile, Links};
use crate::token::{Kind, KindId};

pub(super) fn is_skipped(name: &[u8]) -> bool {
    name.first() == Some(&b'.')
        || name.last() == Some(&b'~')
        || name.ends_with(b".swp")
        || name.ends_with(b".tmp")
}

/// A file seen by a scan: read now, or the previous scan's entry at this
/// index, unchanged.
// Only in one scan's working list; boxing would cost an allocation per file.
#[allow(clippy::large_enum_variant)]
enum Found {
    Fresh(FoundFile),
    Reused(usize),
}

pub(super) fn scan_folder_inner(
    index: usize,
    folder: &FolderSpec,
    links: &Links,
    previous: Vec<FoundFile>,
    settled: Duration,
    progress: &dyn Fn(),
) -> (FolderScan, Vec<FoundFile>) {
    let root = folder.path.as_path();
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
    // Most folders hold about what they held at the last scan.
    let mut files: Vec<Found> = Vec::with_capacity(previous.len());
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
            // Exactly as long as it is: `join` grows the folder's path by
            // doubling, and the scan keeps every path (a million of them
            // held 32 MiB of spare capacity; BENCHMARKS.md, the
            // million-credential rows).
            let mut path = PathBuf::with_capacity(dir.as_os_str().len() + 1 + bytes.len());
            path.push(&dir);
            path.push(&name);
            let claimed = folder.kind_of(bytes);
            let token_name = claimed.is_some();
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
                            let mut found = problem(path, index, true, err);
                            found.kind = kind_id(claimed);
                            files.push(Found::Fresh(found));
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
                        found.kind = kind_id(claimed);
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
                    let mut found = problem(
                        path.clone(),
                        index,
                        via_link || is_link,
                        FileError::NotRegular("a directory"),
                    );
                    found.kind = kind_id(claimed);
                    files.push(Found::Fresh(found));
                }
                // Following linked folders is wanted; the visited set keeps
                // a link back up the tree from looping.
                if visited.insert((meta.dev(), meta.ino())) {
                    stack.push((path, via_link || is_link));
                }
                continue;
            }
            if let Some(kind) = claimed {
                let via_link = via_link || is_link;
                let stamp = Some(stamp_of(&meta));
                let reused = cached
                    .get(path.as_os_str())
                    .copied()
                    .filter(|&i| previous[i].via_link == via_link && previous[i].stamp == stamp);
                files.push(match reused {
                    Some(i) => Found::Reused(i),
                    None => Found::Fresh(read_found_as(
                        path,
                        index,
                        kind,
                        folder.ade_key.as_ref().map(|k| &*k.0),
                        via_link,
                        &meta,
                        expect,
                        settled,
                        &mut buf,
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
    if files.is_empty() && !folder.allow_empty {
        state.state = FolderState::Empty;
    }
    (state, sorted_by_path(files))
}

/// Sorts by path bytes. Sorting the entries themselves moved each 240-byte
/// entry many times (a fifth of a rescan of 10,000 unchanged files); this
/// sorts indices and then moves each entry into place once, in the same
/// vector: a sorted copy was another 30 MiB at 100,000 files, at the
/// scan's peak.
fn sorted_by_path(mut files: Vec<FoundFile>) -> Vec<FoundFile> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        files[a]
            .path
            .as_os_str()
            .as_bytes()
            .cmp(files[b].path.as_os_str().as_bytes())
    });
    crate::assess::permute(&mut files, order);
    files
}

/// The id of the kind that claimed a name; files of no kind (a path
/// `inspect` was given) are read as content tokens, as before kinds.
fn kind_id(kind: Option<&'static dyn Kind>) -> KindId {
    kind.map_or(KindId::default(), |k| k.id())
}

pub(super) fn problem(path: PathBuf, folder: usize, via_link: bool, err: FileError) -> FoundFile {
    FoundFile {
        path,
        folder,
        kind: KindId::default(),
        size: 0,
        mtime: None,
        file_id: None,
        via_link,
        world_readable: false,
        unread_fingerprint: None,
        content: Err(err),
        stamp: None,
    }
}

pub(super) fn special_kind(meta: &Metadata) -> Option<&'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    #[test]
    fn sorting_in_place_puts_every_entry_in_path_order_once() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in [0, 1, 2, 3, 10, 257] {
            let mut names: Vec<String> = (0..n).map(|i| format!("/t/{i:04}.vpptoken")).collect();
            names.shuffle(&mut rng);
            let files = names
                .iter()
                .map(|p| problem(PathBuf::from(p), 0, false, FileError::Changed))
                .collect();
            let sorted: Vec<String> = sorted_by_path(files)
                .into_iter()
                .map(|f| f.path.display().to_string())
                .collect();
            names.sort();
            assert_eq!(sorted, names);
        }
    }
}
