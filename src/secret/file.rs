//! Secrets kept in files (an SMTP password, a webhook URL or signing key):
//! read only from a file that not every user on the host may read.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use zeroize::Zeroizing;

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
    let bytes = read_private_file(
        path,
        MAX_SECRET_FILE_BYTES,
        &format!("a {what} file holds the {what} only"),
    )?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| "cannot read it as UTF-8 text".to_owned())?;
    let secret = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    if secret.is_empty() {
        return Err("is empty".to_owned());
    }
    Ok(Secret::new(secret))
}

/// The bytes of a file only its owner and group may read (a key), at most
/// `max` of them (`too_big` says what belongs there), wiped from memory
/// when dropped. The error is the reason only; the caller names the file.
pub fn read_private_file(
    path: &Path,
    max: u64,
    too_big: &str,
) -> Result<Zeroizing<Vec<u8>>, String> {
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
    if meta.len() > max {
        return Err(format!("is {} bytes long; {too_big}", meta.len()));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0)));
    file.take(max)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    Ok(bytes)
}
