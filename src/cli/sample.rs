//! `tokenwatch sample-token`: a fake token for trying tokenwatch and for
//! fire drills.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use chrono::{Duration, NaiveDate, Utc};

use super::EXIT_OK;

pub fn run(
    org: &str,
    expires: Option<&str>,
    days: Option<i64>,
    output: Option<&Path>,
) -> anyhow::Result<i32> {
    let expires_at = match (expires, days) {
        (Some(date), _) => NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .with_context(|| format!("--expires {date:?} is not a date in the form YYYY-MM-DD"))?
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .context("--expires: no such time")?,
        (None, Some(n)) => {
            if n.abs() > 36_500 {
                bail!("--days {n} is out of range (at most 100 years either way)");
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
            write_private(path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote sample token for {org:?} expiring {} to {}",
                crate::report::rfc3339(&expires_at),
                path.display()
            );
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(EXIT_OK)
}

/// Tokens are credentials, even fake ones teach the habit: 0600.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
