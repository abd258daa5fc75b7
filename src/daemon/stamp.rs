//! What the config file looked like when it was last read, so that lost
//! filesystem events (a queue overflow) re-read it only if it may have
//! changed.

use std::path::Path;

use crate::scan::stamp_of;
use crate::token::found::FileStamp;

/// The stamp (device, inode, size, modification and change times) the
/// scan uses for token files. An editor that saves through a temporary
/// file and a rename gives a new inode; one that writes in place changes
/// the size or the times (ctime changes on every write, and cannot be set
/// back by `touch`). None when the file cannot be looked at (gone, no
/// permission): then it is always worth reading again.
pub(super) fn stamp(path: &Path) -> Option<FileStamp> {
    std::fs::metadata(path).ok().map(|m| stamp_of(&m))
}

/// Whether the file may differ from when `loaded` was taken.
pub(super) fn changed_since(path: &Path, loaded: Option<FileStamp>) -> bool {
    match (loaded, stamp(path)) {
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_left_alone_is_unchanged_and_a_rewrite_or_replacement_is_a_change() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("tokenwatch.toml");
        std::fs::write(&p, "a = 1\n").unwrap();
        let loaded = stamp(&p);
        assert!(loaded.is_some());
        assert!(!changed_since(&p, loaded));

        // Saved through a temporary file: same size, maybe the same times
        // (coarse clocks), but a new inode.
        let tmp_file = tmp.path().join(".tokenwatch.toml.swp");
        std::fs::write(&tmp_file, "a = 2\n").unwrap();
        std::fs::rename(&tmp_file, &p).unwrap();
        assert!(changed_since(&p, loaded));

        // Written in place with another length.
        let loaded = stamp(&p);
        std::fs::write(&p, "a = 22\n").unwrap();
        assert!(changed_since(&p, loaded));

        // Gone, or never looked at: read it again.
        let loaded = stamp(&p);
        std::fs::remove_file(&p).unwrap();
        assert!(changed_since(&p, loaded));
        assert!(changed_since(&p, None));
    }
}
