//! Reading the SMTP password from a file that only its owner and group
//! may read.

use std::path::Path;

use super::MailError;
use crate::secret::{read_secret_file, Secret};

/// The systemd credential (`LoadCredential=smtp-password:...`) used when no
/// `password_file` is configured.
pub const PASSWORD_CREDENTIAL: &str = "smtp-password";

/// Reads an SMTP password file. Refuses a file that every user on the host
/// may read or write (`mode & 0o007 != 0`); `root:tokenwatch 0640` is fine.
/// One trailing newline (`\n` or `\r\n`) is removed; the rest is the password.
pub fn read_password_file(path: &Path) -> Result<Secret, MailError> {
    read_secret_file(path, "password").map_err(|reason| MailError::PasswordFile {
        path: path.to_owned(),
        reason,
    })
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
