//! `tokenwatch sample-token`: a fake token for trying tokenwatch and for
//! fire drills.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use chrono::{Datelike, Duration, NaiveDate, Utc};

use super::args::MAX_DAYS;
use super::EXIT_OK;
use crate::token::ade::sample_ade;
use crate::token::apns::sample_apns;

/// Years a token file can state (`expDate` has four digits); a sample
/// outside them would be unreadable.
const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// What `sample-token` was asked for.
pub struct Request<'a> {
    pub kind: &'a str,
    pub org: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub days: Option<i64>,
    pub output: Option<&'a Path>,
    pub force: bool,
    pub key_out: Option<&'a Path>,
}

pub fn run(r: &Request) -> anyhow::Result<i32> {
    let now = Utc::now();
    // Whole seconds, as Apple writes them.
    let now = now - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
    let expires_at = match (r.expires, r.days) {
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
            now + Duration::days(n)
        }
        (None, None) => bail!("give --expires YYYY-MM-DD or --days N"),
    };
    if r.key_out.is_some() && r.kind != "ade" {
        bail!("--key-out is for --kind ade only (the key an ADE server token is encrypted to)");
    }
    let org = || {
        r.org
            .with_context(|| format!("--kind {} needs --org NAME", r.kind))
    };
    // The samples of other kinds are made from a lifetime; a date is the
    // whole days up to it.
    let days = (expires_at - now).num_days();
    let (bytes, name, what): (Vec<u8>, Option<String>, String) = match r.kind {
        "apns" => {
            let org = org()?;
            let s = sample_apns(now, days, org)?;
            (
                s.pem.into_bytes(),
                None,
                format!("sample push certificate for {org:?} (topic {})", s.topic),
            )
        }
        "ade" => {
            let s = sample_ade(now, days)?;
            if let Some(path) = r.key_out {
                write_file(path, s.key_pem.expose().as_bytes(), r.force)?;
                eprintln!(
                    "wrote the sample's private key and certificate to {}",
                    path.display()
                );
            }
            (
                s.p7m,
                Some(s.file_name),
                "sample ADE server token".to_owned(),
            )
        }
        _ => {
            let org = org()?;
            let text = crate::token::sample_token(org, expires_at);
            (text.into_bytes(), None, format!("sample token for {org:?}"))
        }
    };
    match r.output {
        Some(path) => {
            // An ADE token's name carries its download date; given a
            // folder, the sample keeps Apple's name.
            let path = match name {
                Some(name) if path.is_dir() => path.join(name),
                _ => path.to_path_buf(),
            };
            write_file(&path, &bytes, r.force)?;
            eprintln!(
                "wrote {what} expiring {} to {}",
                crate::show::rfc3339(&expires_at),
                path.display()
            );
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(EXIT_OK)
}

/// [`write_private`], creating the folders on the way.
fn write_file(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create folder {}", parent.display()))?;
    }
    write_private(path, bytes, force).with_context(|| format!("cannot write {}", path.display()))
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
