//! `tokenwatch status [--json]` and `tokenwatch outbox ...`: what the
//! daemon last saw and what it has yet to send, read from the state
//! database without disturbing the running daemon.

use std::path::Path;

use anyhow::Context;
use chrono::Utc;
use serde::Serialize;

use super::{EXIT_OK, EXIT_UNKNOWN};
use crate::assess::Assessment;
use crate::config;
use crate::report::{FolderReport, Report};
use crate::show::rfc3339;
use crate::state::{Access, OutboxRow, StateError, StateStore};

#[derive(Serialize)]
struct Status {
    generated_at: String,
    last_scan_at: Option<String>,
    config_error: Option<Vec<String>>,
    folders: Vec<FolderReport>,
    tokens: Vec<Assessment>,
    outbox: Vec<OutboxEntry>,
}

#[derive(Serialize)]
struct OutboxEntry {
    id: i64,
    state: &'static str,
    /// Which channel delivers it ("mail").
    channel: String,
    /// The row's title, under the key it had when every row was a mail.
    subject: String,
    to: Vec<String>,
    message_id: String,
    created_at: String,
    attempts: u32,
    next_try_at: Option<String>,
    last_error: Option<String>,
}

impl From<&OutboxRow> for OutboxEntry {
    fn from(m: &OutboxRow) -> Self {
        OutboxEntry {
            id: m.id,
            state: if m.parked { "parked" } else { "pending" },
            channel: m.row.channel.clone(),
            subject: m.row.title.clone(),
            to: m.row.recipients.clone(),
            message_id: m.row.message_id.clone(),
            created_at: rfc3339(&m.created_at),
            attempts: m.attempts,
            next_try_at: m.next_try_at.as_ref().map(rfc3339),
            last_error: m.last_error.clone(),
        }
    }
}

/// The state store and the time zone to show dates in.
pub(super) fn open(flag: Option<&Path>, write: bool) -> Result<(StateStore, chrono_tz::Tz), i32> {
    let path = config::resolve_path(flag);
    let mut tz = chrono_tz::UTC;
    let state_dir = match config::load(&path) {
        Ok(cfg) => {
            tz = cfg.timezone;
            cfg.state_dir
        }
        Err(e) => match config::state_dir_of(&path) {
            // The daemon keeps running on its previous config; its state
            // is still worth reading.
            Some(dir) => {
                eprintln!("tokenwatch: warning: {e}");
                dir
            }
            None => {
                eprintln!("tokenwatch: {e}");
                return Err(EXIT_UNKNOWN);
            }
        },
    };
    let access = if write {
        Access::ReadWrite
    } else {
        Access::ReadOnly
    };
    let opened = StateStore::open_existing(&state_dir, access);
    opened.map(|s| (s, tz)).map_err(|e| {
        match e {
            StateError::NotFound { .. } => eprintln!(
                "tokenwatch: the daemon has not run yet: no state database in {} ({e})",
                state_dir.display()
            ),
            e => eprintln!(
                "tokenwatch: {e} (reading the state needs the tokenwatch user's rights, or root)"
            ),
        }
        EXIT_UNKNOWN
    })
}

pub fn status(flag: Option<&Path>, json: bool) -> anyhow::Result<i32> {
    let (store, tz) = match open(flag, false) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let snapshot = store.snapshot()?;
    let (last_scan_at, report) = match snapshot {
        Some((at, text)) => {
            let report: Report =
                serde_json::from_str(&text).context("the stored status snapshot is unreadable")?;
            (Some(at), Some(report))
        }
        None => (None, None),
    };
    let outbox = store.outbox()?;
    let status = Status {
        generated_at: rfc3339(&Utc::now()),
        last_scan_at: last_scan_at.as_ref().map(rfc3339),
        config_error: store.config_error()?,
        folders: report
            .as_ref()
            .map(|r| r.folders.clone())
            .unwrap_or_default(),
        tokens: report
            .as_ref()
            .map(|r| r.tokens.clone())
            .unwrap_or_default(),
        outbox: outbox.iter().map(OutboxEntry::from).collect(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(EXIT_OK);
    }
    match (&status.last_scan_at, &report) {
        (Some(at), Some(r)) => {
            println!("last scan: {at}");
            print!("{}", super::check::human(r, tz));
        }
        _ => println!("the daemon has not finished a scan yet"),
    }
    if let Some(errors) = &status.config_error {
        println!("\nthe daemon rejected the current config and runs on the previous one:");
        for e in errors {
            println!("  {e}");
        }
    }
    if status.outbox.is_empty() {
        println!("\noutbox: empty");
    } else {
        println!("\noutbox:");
        for m in &status.outbox {
            println!(
                "  #{} {} {:?} attempts {} next {} {}",
                m.id,
                m.state,
                m.subject,
                m.attempts,
                m.next_try_at.as_deref().unwrap_or("-"),
                m.last_error
                    .as_deref()
                    .map(|e| format!("last error: {e}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(EXIT_OK)
}

pub fn outbox_retry(flag: Option<&Path>, id: Option<i64>) -> anyhow::Result<i32> {
    let (mut store, _) = match open(flag, true) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let now = Utc::now();
    match id {
        Some(id) => {
            if store.retry_mail(id, now)? {
                println!("mail #{id} will be sent again within seconds");
                Ok(EXIT_OK)
            } else {
                eprintln!("tokenwatch: no unsent mail #{id} in the outbox");
                Ok(EXIT_UNKNOWN)
            }
        }
        None => {
            let n = store.retry_all(now)?;
            println!("{n} mail(s) will be sent again within seconds");
            Ok(EXIT_OK)
        }
    }
}

pub fn outbox_drop(flag: Option<&Path>, id: i64) -> anyhow::Result<i32> {
    let (mut store, _) = match open(flag, true) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if store.drop_mail(id)? {
        println!("mail #{id} dropped; the alert stays recorded and is not sent again");
        Ok(EXIT_OK)
    } else {
        eprintln!("tokenwatch: no unsent mail #{id} in the outbox");
        Ok(EXIT_UNKNOWN)
    }
}
