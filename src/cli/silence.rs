//! `tokenwatch silence`: no alerts for a credential deliberately left to
//! expire, until a date. Stored in the state database, where the running
//! daemon and `check` read it.

use std::path::Path;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::status::open;
use super::{EXIT_OK, EXIT_UNKNOWN};
use crate::assess::silence::{clean_reason, Silence};
use crate::config::edit::parse_at;
use crate::scan;
use crate::show::{local, rfc3339};
use crate::state::StateStore;

/// Shortest fingerprint prefix taken: shorter ones name too many.
const MIN_PREFIX: usize = 8;

/// `silence CREDENTIAL --until DATE [--reason TEXT]`.
pub fn set(
    flag: Option<&Path>,
    credential: &str,
    until: &str,
    reason: Option<&str>,
) -> anyhow::Result<i32> {
    let (mut store, tz) = match open(flag, true) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let now = Utc::now();
    let until = match parse_until(until, tz) {
        Ok(t) if t > now => t,
        Ok(t) => {
            eprintln!(
                "tokenwatch: --until {}: that is not in the future",
                local(t, tz)
            );
            return Ok(EXIT_UNKNOWN);
        }
        Err(e) => {
            eprintln!("tokenwatch: --until {until:?}: {e}");
            return Ok(EXIT_UNKNOWN);
        }
    };
    let (fingerprint, path) = match resolve(&store, credential) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("tokenwatch: {e}");
            return Ok(EXIT_UNKNOWN);
        }
    };
    let silence = Silence {
        until,
        reason: reason.and_then(clean_reason),
    };
    store.put_silence(&fingerprint, &silence, now)?;
    println!(
        "silenced {} ({path}) until {}{}",
        &fingerprint[..12],
        local(until, tz),
        silence.reason.map(|r| format!(": {r}")).unwrap_or_default()
    );
    Ok(EXIT_OK)
}

/// `silence clear CREDENTIAL`.
pub fn clear(flag: Option<&Path>, credential: &str) -> anyhow::Result<i32> {
    let (mut store, _) = match open(flag, true) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let fingerprint = match resolve(&store, credential) {
        Ok((fp, _)) => fp,
        // A silence may outlive the scans that knew its credential.
        Err(e) => match silenced_by_prefix(&store, credential)? {
            Some(fp) => fp,
            None => {
                eprintln!("tokenwatch: {e}");
                return Ok(EXIT_UNKNOWN);
            }
        },
    };
    if store.clear_silence(&fingerprint)? {
        println!("silence of {} lifted", &fingerprint[..12]);
        Ok(EXIT_OK)
    } else {
        eprintln!("tokenwatch: {} is not silenced", &fingerprint[..12]);
        Ok(EXIT_UNKNOWN)
    }
}

#[derive(Serialize)]
struct Listed {
    fingerprint: String,
    path: Option<String>,
    until: String,
    reason: Option<String>,
    /// False once the date has passed.
    active: bool,
}

/// `silence list [--json]`.
pub fn list(flag: Option<&Path>, json: bool) -> anyhow::Result<i32> {
    let (store, tz) = match open(flag, false) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let now = Utc::now();
    let rows: Vec<Listed> = store
        .silence_rows()?
        .into_iter()
        .map(|r| Listed {
            active: r.silence.holds(now),
            fingerprint: r.fingerprint,
            path: r.path,
            until: rfc3339(&r.silence.until),
            reason: r.silence.reason,
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(EXIT_OK);
    }
    if rows.is_empty() {
        println!("no silences");
    }
    for r in &rows {
        let until = DateTime::parse_from_rfc3339(&r.until)
            .map(|t| local(t.with_timezone(&Utc), tz))
            .unwrap_or_else(|_| r.until.clone());
        println!(
            "{}  {}{}  {}{}",
            &r.fingerprint[..12.min(r.fingerprint.len())],
            if r.active { "until " } else { "ended " },
            until,
            r.path.as_deref().unwrap_or("(not seen by a scan)"),
            r.reason
                .as_deref()
                .map(|t| format!("  \u{2014} {t}"))
                .unwrap_or_default()
        );
    }
    Ok(EXIT_OK)
}

/// `YYYY-MM-DD` is the start of that day in the configured time zone (the
/// silence ends as that day begins); anything else as `account
/// password-changed --at` takes it.
fn parse_until(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(day) => {
            let midnight = day.and_hms_opt(0, 0, 0).ok_or("not a date")?;
            tz.from_local_datetime(&midnight)
                .earliest()
                // A day that starts in a daylight-saving gap starts later.
                .or_else(|| {
                    tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| format!("{day} has no start in {tz}"))
        }
        Err(_) => parse_at(text, tz)
            .map_err(|e| format!("{e}; or a date, YYYY-MM-DD, meaning the start of that day")),
    }
}

/// The full fingerprint and a path of CREDENTIAL: a file (read now), or a
/// prefix of at least [`MIN_PREFIX`] hex digits of a fingerprint a scan
/// stored.
fn resolve(store: &StateStore, credential: &str) -> Result<(String, String), String> {
    let path = Path::new(credential);
    if path.exists() {
        // A fingerprint is of the file as it is; no key is needed for it.
        let found = scan::read_one(path, None);
        return match (&found.content, found.fingerprint()) {
            (Ok(c), _) => Ok((
                c.fingerprint.as_str().to_owned(),
                crate::show::show_path(path),
            )),
            (Err(e), _) => Err(format!(
                "{}: not a readable credential ({e}); silence a credential, not a file",
                path.display()
            )),
        };
    }
    let prefix = hex_prefix(credential).ok_or_else(|| {
        format!(
            "{credential:?}: no such file, and not a fingerprint prefix of at least {MIN_PREFIX} hex digits"
        )
    })?;
    let found = store
        .credentials_by_prefix(&prefix)
        .map_err(|e| e.to_string())?;
    match found.as_slice() {
        [] => Err(format!(
            "no credential with a fingerprint starting {prefix} (see `tokenwatch check --json`)"
        )),
        [one] => Ok((one.fingerprint.clone(), one.path.clone())),
        many => Err(format!(
            "{prefix} names {} credentials ({}): give more digits",
            many.len(),
            many.iter()
                .map(|c| c.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn silenced_by_prefix(store: &StateStore, credential: &str) -> anyhow::Result<Option<String>> {
    let Some(prefix) = hex_prefix(credential) else {
        return Ok(None);
    };
    let matching: Vec<String> = store
        .silences()?
        .into_keys()
        .filter(|fp| fp.starts_with(&prefix))
        .collect();
    Ok(match matching.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    })
}

fn hex_prefix(text: &str) -> Option<String> {
    let t = text.trim();
    (t.len() >= MIN_PREFIX && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| t.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_a_date_means_the_start_of_that_day_in_the_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            rfc3339(&parse_until("2027-03-01", berlin).unwrap()),
            "2027-02-28T23:00:00Z"
        );
        assert_eq!(
            rfc3339(&parse_until("2027-03-01T12:00:00Z", berlin).unwrap()),
            "2027-03-01T12:00:00Z"
        );
        assert!(parse_until("next week", berlin).is_err());
        assert!(parse_until("2027-02-30", berlin).is_err());
    }

    #[test]
    fn a_prefix_is_eight_to_sixty_four_hex_digits() {
        assert_eq!(hex_prefix("ABCDEF01").as_deref(), Some("abcdef01"));
        assert_eq!(hex_prefix("abcdef0"), None);
        assert_eq!(hex_prefix("abcdefgh"), None);
        assert_eq!(hex_prefix(&"a".repeat(65)), None);
    }
}
