//! `tokenwatch sample-token`: a fake token for trying tokenwatch and for
//! fire drills.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use chrono::{Datelike, Duration, NaiveDate, Utc};

use super::EXIT_OK;

/// `--days` bound either way (100 years); clap enforces it.
pub const MAX_DAYS: i64 = 36_500;
/// Years a token file can state (`expDate` has four digits); a sample
/// outside them would be unreadable.
const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

pub fn run(
    org: &str,
    expires: Option<&str>,
    days: Option<i64>,
    output: Option<&Path>,
    force: bool,
) -> anyhow::Result<i32> {
    let expires_at = match (expires, days) {
        (Some(date), _) => {
            let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").with_context(|| {
                format!("--expires {date:?} is not a date in the form YYYY-MM-DD")
            })?;
            if !YEARS.contains(&day.year()) {
                bail!(
                    "--expires {date:?} is out of range (years {} to {})",
                    YEARS.start(),
                    YEARS.end()
                );
            }
            day.and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc())
                .context("--expires: no such time")?
        }
        (None, Some(n)) => {
            // clap refuses anything else; checked again so no caller can
            // make the date arithmetic overflow.
            if !(-MAX_DAYS..=MAX_DAYS).contains(&n) {
                bail!("--days {n} is out of range (at most {MAX_DAYS} either way)");
            }
            // Whole seconds, as Apple writes them.
            let now = Utc::now();
            now - Duration::nanoseconds(now.timestamp_subsec_nanos() as i64) + Duration::days(n)
        }
        (None, None) => bail!("give --expires YYYY-MM-DD or --days N"),
    };
    let text = crate::token::sample_token(org, expires_at);
    match output {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create folder {}", parent.display()))?;
            }
            write_private(path, text.as_bytes(), force)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote sample token for {org:?} expiring {} to {}",
                crate::show::rfc3339(&expires_at),
                path.display()
            );
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(EXIT_OK)
}

/// Writes a new file, mode 0600 (tokens are credentials; even fake ones
/// teach the habit). Never follows a symbolic link at `path`: writing
/// through one would truncate whatever it points at. An existing file is
/// refused unless `force`, and then replaced whole by a renamed temp file,
/// so no other name of the old file (a hard link) changes and its mode is
/// not inherited.
fn write_private(path: &Path, bytes: &[u8], force: bool) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(refused(
            "it is a symbolic link; tokenwatch does not write through links (remove it first)",
        )),
        Ok(m) if !m.is_file() => Err(refused("it exists and is not a regular file")),
        Ok(_) if !force => Err(refused("it exists (--force replaces it)")),
        Ok(_) => replace(path, bytes, 0o600),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // O_CREAT|O_EXCL: fails on anything that appeared meanwhile,
            // a dangling link included.
            let f = create_with_mode(path, 0o600).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => refused("it appeared while being written"),
                _ => e,
            })?;
            fill(f, bytes)
        }
        Err(e) => Err(e),
    }
}

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::AlreadyExists, why.to_string())
}

fn create_with_mode(path: &Path, mode: u32) -> io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    // The umask may have taken bits away from `mode`; nothing else added any.
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(f)
}

fn fill(mut f: File, bytes: &[u8]) -> io::Result<()> {
    f.write_all(bytes)?;
    f.sync_all()
}

/// A temp file next to `path` (hidden and `.tmp`, so a scan skips it),
/// renamed over it, so a reader sees the old file or the new one, never
/// half. rename(2) replaces a link itself, never its target.
pub(crate) fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".{}-{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let tmp = dir.join(tmp_name);
    let written = create_with_mode(&tmp, mode)
        .and_then(|f| fill(f, bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable only once the folder is.
    File::open(dir)?.sync_all()
}
