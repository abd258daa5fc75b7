//! One entry per file and per token, whichever paths reached them.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;

use super::FoundFile;
use crate::token::Fingerprint;

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
    // Sized for every file at once: grown by doubling, rehashing was half
    // of this at a million files.
    let mut by_id: HashMap<(u64, u64), usize> = HashMap::with_capacity(files.len());
    let mut by_fp: HashMap<&Fingerprint, usize> = HashMap::with_capacity(files.len());
    for (n, f) in files.iter().enumerate() {
        let same = f
            .file_id
            .and_then(|id| by_id.get(&id).copied())
            .or_else(|| match (&f.content, f.fingerprint()) {
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
                if let (Ok(_), Some(fp)) = (&f.content, f.fingerprint()) {
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
