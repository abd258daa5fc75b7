//! Reading the SMTP password from a file that only its owner and group
//! may read.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::MailError;
use crate::secret::Secret;

/// The systemd credential (`LoadCredential=smtp-password:...`) used when no
/// `password_file` is configured.
pub const PASSWORD_CREDENTIAL: &str = "smtp-password";

/// A password file only ever holds one line; anything bigger is a mistake
/// (wrong path), and reading it whole would be pointless.
const MAX_PASSWORD_FILE_BYTES: u64 = 4096;

/// Reads an SMTP password file. Refuses a file that every user on the host
/// may read or write (`mode & 0o007 != 0`); `root:tokenwatch 0640` is fine.
/// One trailing newline (`\n` or `\r\n`) is removed; the rest is the password.
pub fn read_password_file(path: &Path) -> Result<Secret, MailError> {
    let fail = |reason: String| MailError::PasswordFile {
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open it: {e}")))?;
    // Check the opened file, not the path, so a swap in between cannot
    // slip a different file past the mode check.
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat it: {e}")))?;
    if !meta.is_file() {
        return Err(fail("is not a regular file".to_owned()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(fail(format!(
            "mode {mode:04o} lets every user on this host read or change it; \
             allow the owner and group only (e.g. root:tokenwatch, mode 0640)"
        )));
    }
    if meta.len() > MAX_PASSWORD_FILE_BYTES {
        return Err(fail(format!(
            "is {} bytes long; a password file holds the password only",
            meta.len()
        )));
    }
    let mut text = String::new();
    file.take(MAX_PASSWORD_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read it as UTF-8 text: {e}")))?;
    let password = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(fail("is empty".to_owned()));
    }
    Ok(Secret::new(password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn write_mode(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn password_file_trims_one_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_mode(dir.path(), "a", "s3cret\n", 0o640);
        assert_eq!(read_password_file(&p).unwrap().expose(), "s3cret");
        let p = write_mode(dir.path(), "b", "s3cret\r\n", 0o600);
        assert_eq!(read_password_file(&p).unwrap().expose(), "s3cret");
        let p = write_mode(dir.path(), "c", " s3cret \n\n", 0o600);
        assert_eq!(read_password_file(&p).unwrap().expose(), " s3cret \n");
    }

    #[test]
    fn password_file_readable_by_world_is_refused_naming_file_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o602, 0o601] {
            let p = write_mode(dir.path(), "pw", "canary-pw-81", mode);
            let err = read_password_file(&p).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&p.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(!msg.contains("canary-pw-81"));
            assert!(err.is_permanent());
        }
    }

    #[test]
    fn password_file_empty_missing_or_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write_mode(dir.path(), "empty", "\n", 0o600);
        assert!(read_password_file(&empty)
            .unwrap_err()
            .to_string()
            .contains("is empty"));
        let missing = dir.path().join("missing");
        let msg = read_password_file(&missing).unwrap_err().to_string();
        assert!(
            msg.contains("missing") && msg.contains("cannot open"),
            "{msg}"
        );
        let msg = read_password_file(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("not a regular file"), "{msg}");
    }
}
