//! Secrets kept in files (an SMTP password, a webhook URL or signing key):
//! read only from a file that not every user on the host may read.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Secret;

/// A secret file only ever holds one line; anything bigger is a mistake
/// (wrong path), and reading it whole would be pointless.
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// Reads the `what` (e.g. "password") kept in the file at `path`. Refuses a
/// file that every user on the host may read or write (`mode & 0o007 !=
/// 0`); `root:tokenwatch 0640` is fine. One trailing newline (`\n` or
/// `\r\n`) is removed; the rest is the secret. The error is the reason
/// only, never the content; the caller names the file.
pub fn read_secret_file(path: &Path, what: &str) -> Result<Secret, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    // Check the opened file, not the path, so a swap in between cannot
    // slip a different file past the mode check.
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat it: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".to_owned());
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(format!(
            "mode {mode:04o} lets every user on this host read or change it; \
             allow the owner and group only (e.g. root:tokenwatch, mode 0640)"
        ));
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "is {} bytes long; a {what} file holds the {what} only",
            meta.len()
        ));
    }
    let mut text = String::new();
    file.take(MAX_SECRET_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read it as UTF-8 text: {e}"))?;
    let secret = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err("is empty".to_owned());
    }
    Ok(Secret::new(secret))
}
