//! What the config file looked like when it was last read, so that lost
//! filesystem events (a queue overflow) re-read it only if it may have
//! changed.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Device, inode, size, and modification and change times (with their
/// nanoseconds) of a file. An editor that saves through a temporary file
/// and a rename gives a new inode; one that writes in place changes the
/// size or the times (ctime changes on every write, and cannot be set
/// back by `touch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    /// None when the file cannot be looked at (gone, no permission): then
    /// it is always worth reading again.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// Whether the file may differ from when `loaded` was taken.
    pub fn changed_since(path: &Path, loaded: Option<FileStamp>) -> bool {
        match (loaded, FileStamp::of(path)) {
            (Some(a), Some(b)) => a != b,
            _ => true,
        }
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
        let loaded = FileStamp::of(&p);
        assert!(loaded.is_some());
        assert!(!FileStamp::changed_since(&p, loaded));

        // Saved through a temporary file: same size, maybe the same times
        // (coarse clocks), but a new inode.
        let tmp_file = tmp.path().join(".tokenwatch.toml.swp");
        std::fs::write(&tmp_file, "a = 2\n").unwrap();
        std::fs::rename(&tmp_file, &p).unwrap();
        assert!(FileStamp::changed_since(&p, loaded));

        // Written in place with another length.
        let loaded = FileStamp::of(&p);
        std::fs::write(&p, "a = 22\n").unwrap();
        assert!(FileStamp::changed_since(&p, loaded));

        // Gone, or never looked at: read it again.
        let loaded = FileStamp::of(&p);
        std::fs::remove_file(&p).unwrap();
        assert!(FileStamp::changed_since(&p, loaded));
        assert!(FileStamp::changed_since(&p, None));
    }
}
