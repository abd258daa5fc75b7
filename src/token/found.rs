//! What a scan found, as plain data: folders, files, and each file's token
//! or the reason it could not be read. The scan fills it; everything after
//! the scan only reads it (pure).

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{Credential, Fingerprint, KindId, TokenError};

/// The `detail` of an unreadable entry that is a symlink leading out of
/// every configured folder (not followed).
pub const REASON_LINK_OUTSIDE_FOLDER: &str = "link_outside_folder";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FolderState {
    Ok,
    Missing,
    Unreadable,
    Empty,
}

#[derive(Debug, Clone)]
pub struct FolderScan {
    pub path: PathBuf,
    pub state: FolderState,
    /// Readable tokens found in this folder (before de-duplication).
    pub tokens: usize,
    /// Why the folder is missing or unreadable.
    pub error: Option<String>,
    /// A symlink to a folder was found below it: the walk may reach files
    /// by more than one path, so only a full scan knows which it lists.
    pub folder_links: bool,
}

/// Why a file with a token name could not be read as a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// Not a regular file: "a FIFO", "a socket", "a directory", ...
    NotRegular(&'static str),
    BrokenLink,
    LinkLoop,
    /// A symlink leading out of every configured folder, not followed.
    LinkOutsideFolder,
    /// Replaced between the look at the entry and the read (a file became
    /// a link, a link now leads elsewhere): not read, looked at again by
    /// the next scan.
    Changed,
    Io(String),
    Token(TokenError),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::NotRegular(kind) => write!(f, "is {kind}, not a regular file"),
            FileError::BrokenLink => f.write_str("is a symbolic link to nothing"),
            FileError::LinkLoop => f.write_str("is a symbolic link loop"),
            // A reason code, as in `check --json`'s `detail`; mails and
            // `check` explain it.
            FileError::LinkOutsideFolder => f.write_str(REASON_LINK_OUTSIDE_FOLDER),
            FileError::Changed => f.write_str("changed while being read"),
            FileError::Io(e) => write!(f, "cannot be read: {e}"),
            FileError::Token(e) => e.fmt(f),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FoundFile {
    /// Absolute, as reached from the configured folder (not canonicalised).
    pub path: PathBuf,
    /// Index of the configured folder it was found in.
    pub folder: usize,
    /// The kind that claimed the file's name; decides how it was read and
    /// which rules apply.
    pub kind: KindId,
    pub size: u64,
    pub mtime: Option<SystemTime>,
    /// Device and inode of the file itself, for telling links apart.
    pub file_id: Option<(u64, u64)>,
    /// Some directory or the file itself on the way here was a symlink.
    pub via_link: bool,
    /// Readable by every user on the host: a credential lying open.
    pub world_readable: bool,
    /// Of the bytes read, for a file that was read but is not a credential;
    /// see [`FoundFile::fingerprint`]. Boxed and kept only there: a
    /// credential carries its own, and a daemon holds one `FoundFile` per
    /// watched file.
    pub unread_fingerprint: Option<Box<Fingerprint>>,
    pub content: Result<Credential, FileError>,
    /// Set when this result may be reused by the next scan as long as the
    /// file's stamp is the same; None for files that were not read, or were
    /// changed too recently to trust their timestamps (see [`SETTLED`]).
    pub stamp: Option<FileStamp>,
}

/// One version of a file, told apart without reading it: any write moves
/// the modification and change times, a chmod the change time, a rename
/// over the file the inode; the change time cannot be set by users, so a
/// rewrite that keeps size and modification time still shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    /// Nanoseconds since the epoch, or [`UNTRUSTED`] for a time beyond
    /// what 64 bits hold (year 1678 to 2262): one number rather than a
    /// (seconds, nanoseconds) pair, as a daemon holds a stamp per file.
    mtime: i64,
    ctime: i64,
}

/// A time a stamp cannot hold: [`FileStamp::newest`] is None for it, so the
/// file is never trusted to be unchanged and is read at every scan.
const UNTRUSTED: i64 = i64::MIN;

impl FileStamp {
    /// `mtime` and `ctime` are (seconds, nanoseconds) since the epoch, as
    /// `stat` gives them.
    pub fn new(dev: u64, ino: u64, size: u64, mtime: (i64, i64), ctime: (i64, i64)) -> FileStamp {
        let nanos = |(secs, nanos): (i64, i64)| {
            secs.checked_mul(1_000_000_000)
                .and_then(|n| n.checked_add(nanos))
                .filter(|&n| n != UNTRUSTED)
                .unwrap_or(UNTRUSTED)
        };
        FileStamp {
            dev,
            ino,
            size,
            mtime: nanos(mtime),
            ctime: nanos(ctime),
        }
    }

    /// The later of the modification and change times.
    pub fn newest(&self) -> Option<SystemTime> {
        let at = |nanos: i64| {
            let nanos = u64::try_from(nanos).ok()?;
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
        };
        Some(at(self.mtime)?.max(at(self.ctime)?))
    }
}

impl FoundFile {
    /// A file in folder 0 as a scan would find it, read by its kind from
    /// `bytes`, with no key and no stamp: for tests of what comes after
    /// the scan.
    #[cfg(test)]
    pub(crate) fn read_for_test(path: PathBuf, kind: KindId, bytes: &[u8]) -> FoundFile {
        let name = path
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or_default();
        let (fingerprint, content) = super::kind(kind).read(super::Source {
            name,
            bytes,
            key: None,
        });
        let mut found = FoundFile {
            path: path.clone(),
            folder: 0,
            kind,
            size: bytes.len() as u64,
            mtime: None,
            file_id: None,
            via_link: false,
            world_readable: false,
            unread_fingerprint: None,
            content: Err(FileError::Changed),
            stamp: None,
        };
        found.set_read(fingerprint, content.map_err(FileError::Token));
        found
    }

    /// Of the bytes read, for readable and unreadable files alike; None when
    /// nothing could be read.
    pub fn fingerprint(&self) -> Option<&Fingerprint> {
        match &self.content {
            Ok(c) => Some(&c.fingerprint),
            Err(_) => self.unread_fingerprint.as_deref(),
        }
    }

    /// What reading the file's bytes gave: a kind returns the credential's
    /// own fingerprint with a credential.
    pub fn set_read(&mut self, fingerprint: Fingerprint, content: Result<Credential, FileError>) {
        debug_assert!(content
            .as_ref()
            .map_or(true, |c| c.fingerprint == fingerprint));
        self.unread_fingerprint = content.is_err().then(|| Box::new(fingerprint));
        self.content = content;
    }

    pub fn token(&self) -> Option<&Credential> {
        self.content.as_ref().ok()
    }

    /// Reached through a symlink that was followed (or, broken, would be):
    /// what it shows changes with writes elsewhere. A link out of every
    /// folder is not followed, so no write elsewhere changes it.
    pub fn followed_a_link(&self) -> bool {
        self.via_link && !self.is_link_outside()
    }

    /// A symlink out of every configured folder, not followed.
    pub fn is_link_outside(&self) -> bool {
        matches!(self.content, Err(FileError::LinkOutsideFolder))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub folders: Vec<FolderScan>,
    /// Sorted by path; each token once.
    pub files: Vec<FoundFile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_tells_times_apart_to_the_nanosecond_and_distrusts_what_it_cannot_hold() {
        let at = |mtime, ctime| FileStamp::new(1, 2, 3, mtime, ctime);
        let a = at((1_700_000_000, 5), (1_700_000_000, 5));
        assert_ne!(a, at((1_700_000_000, 6), (1_700_000_000, 5)));
        assert_ne!(a, at((1_700_000_000, 5), (1_700_000_001, 5)));
        assert_eq!(
            a.newest(),
            Some(SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5))
        );
        // Year 2300 and before 1970: never trusted to be unchanged.
        assert_eq!(at((10_500_000_000, 0), (1_700_000_000, 0)).newest(), None);
        assert_eq!(at((-5, 0), (1_700_000_000, 0)).newest(), None);
    }
}
