//! `tokenwatch account password-changed`: records a password change in the
//! config file for ops who would rather not write TOML.

use std::path::Path;

use chrono::Utc;

use super::EXIT_OK;
use crate::config::{self, edit};
use crate::evaluate::{Status, REASON_PASSWORD_CHANGE};
use crate::show::rfc3339;

pub fn password_changed(
    flag: Option<&Path>,
    account: &str,
    at: Option<&str>,
    add: bool,
) -> anyhow::Result<i32> {
    let path = config::resolve_path(flag);
    let now = Utc::now();
    let rec = edit::record_password_change(&path, account, at, add, now)?;
    let what = match &rec.edited.change {
        edit::Change::Replaced { previous } => format!(" (was {previous})"),
        edit::Change::Set => String::new(),
        edit::Change::Appended => " (new [[account]] table)".to_string(),
    };
    println!(
        "recorded: the password of {account} changed at {}{what}, in {}",
        rfc3339(&rec.edited.at),
        rec.written.display()
    );

    // What the change means right now, as `check` would see it.
    let cfg = &rec.edited.config;
    let scan = crate::scan::scan(&cfg.folders);
    let report = crate::report::build(
        now,
        &cfg.assess_policy(),
        &scan,
        &crate::report::Verdicts::new(),
    );
    let mine: Vec<_> = report
        .tokens
        .iter()
        .filter(|t| t.account.as_deref() == Some(account))
        .collect();
    let invalidated = mine
        .iter()
        .filter(|t| {
            t.status == Status::Invalidated && t.detail.as_deref() == Some(REASON_PASSWORD_CHANGE)
        })
        .count();
    match mine.len() {
        0 => println!("no token of {account} is in the configured folders"),
        n => println!(
            "{n} token{} of {account}; {invalidated} invalidated by this change",
            if n == 1 { "" } else { "s" }
        ),
    }
    if rec.via_symlink {
        // The daemon watches the link's folder; replacing the target raises
        // no event there.
        println!(
            "{} is a symlink: reload the running daemon (systemctl reload tokenwatch, or SIGHUP) to apply it",
            path.display()
        );
    } else {
        println!("the running daemon watches the config and applies this by itself");
    }
    Ok(EXIT_OK)
}
