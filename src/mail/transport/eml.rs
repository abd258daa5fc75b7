//! The file transport: one `.eml` per mail, private to the service user.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::MailError;

/// The `.eml` name for a Message-ID: readable, stable (re-sending the same
/// mail overwrites its file) and safe as a file name. When characters had
/// to be replaced, or the id is long, a hash of the full id keeps two ids
/// from sharing a file.
fn eml_file_name(message_id: &str) -> String {
    let inner = message_id.trim_start_matches('<').trim_end_matches('>');
    let mut changed = inner.len() + 2 != message_id.len();
    let mut name: String = inner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '_' | '+' | '-') {
                c
            } else {
                changed = true;
                '_'
            }
        })
        .collect();
    // A leading dot would hide the file and clash with our temp files.
    if name.starts_with('.') || name.is_empty() {
        name.insert(0, '_');
        changed = true;
    }
    if changed || name.len() > 100 {
        name.truncate(100);
        let digest = ring::digest::digest(&ring::digest::SHA256, message_id.as_bytes());
        name.push('-');
        name.push_str(&hex::encode(&digest.as_ref()[..8]));
    }
    name.push_str(".eml");
    name
}

/// Writes one mail as `<dir>/<id>.eml`, mode 0600, atomically (temp file,
/// fsync, rename, fsync of the folder). Creates a missing folder as 0700.
pub(super) fn write_eml(dir: &Path, message_id: &str, bytes: &[u8]) -> Result<PathBuf, MailError> {
    let file_err = |path: &Path, source: io::Error| MailError::File {
        path: path.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| file_err(dir, e))?;
    let name = eml_file_name(message_id);
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(file_err(&path, e));
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| file_err(dir, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eml_names_are_stable_safe_and_distinct() {
        assert_eq!(
            eml_file_name("<alert-3f2a@tokenwatch>"),
            "alert-3f2a@tokenwatch.eml"
        );
        let a = eml_file_name("<a/b@x>");
        let b = eml_file_name("<a_b@x>");
        assert_ne!(a, b);
        assert!(!a.contains('/'));
        assert_eq!(a, eml_file_name("<a/b@x>"));
        assert!(!eml_file_name("<../../etc@x>").contains('/'));
        assert!(!eml_file_name("<.hidden@x>").starts_with('.'));
        assert!(eml_file_name(&format!("<{}@x>", "y".repeat(500))).len() < 130);
        // Re-sending a mail overwrites its file: the hash must not change
        // between versions.
        assert_eq!(eml_file_name("<a/b@x>"), "a_b@x-31418c66c6b22c50.eml");
    }
}
