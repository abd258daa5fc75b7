//! `tokenwatch check [--format text|json|prometheus] [-o FILE]`: scan now,
//! evaluate, print, send nothing.

use std::path::Path;

use anyhow::Context as _;
use chrono::Utc;
use chrono_tz::Tz;

use super::{load_config, CheckFormat, EXIT_UNKNOWN};
use crate::evaluate::{self, Status};
use crate::metrics::{self, PassFacts};
use crate::report::{self, Report, Verdicts};
use crate::scan::{self, FolderState};
use crate::show;
use crate::state::{StateError, StateStore};

pub fn run(flag: Option<&Path>, format: CheckFormat, output: Option<&Path>) -> anyhow::Result<i32> {
    let Some(cfg) = load_config(flag) else {
        return Ok(EXIT_UNKNOWN);
    };
    let scan = scan::scan(&cfg.folder_specs());
    let verdicts = stored_verdicts(&cfg);
    let now = Utc::now();
    let mut report = report::build(now, &cfg.assess_policy(), &scan, &verdicts);
    crate::assess::silence::mark(&mut report.tokens, &stored_silences(&cfg), now);
    warn_world_readable(&report);
    warn_credentials(&scan);
    let text = match format {
        CheckFormat::Text => human(&report, cfg.timezone),
        CheckFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        // The textfile families have no silenced series.
        CheckFormat::Prometheus => metrics::textfile(PassFacts::from_report(&report)),
    };
    match output {
        // Readable by node_exporter's user, like any textfile; the text
        // holds no secret.
        Some(path) => super::sample::replace(path, text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(report::exit_code(
        &report,
        &cfg.check,
        cfg.alerts.require_account,
    ))
}

/// Apple's verdicts as the daemon stored them, so a revoked token cannot
/// look fine here. Read-only; `check` works without any state.
pub(crate) fn stored_verdicts(cfg: &crate::config::Config) -> Verdicts {
    let store = match StateStore::open_read_only(&cfg.state_dir) {
        Ok(s) => s,
        Err(StateError::NotFound { .. }) if !cfg.apple.verify => return Verdicts::new(),
        Err(e) => {
            eprintln!("tokenwatch: note: Apple's verdicts are not shown: {e}");
            return Verdicts::new();
        }
    };
    match store.verdicts_by_fingerprint() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("tokenwatch: note: Apple's verdicts are not shown: {e}");
            Verdicts::new()
        }
    }
}

/// The silences set with `tokenwatch silence`; none without a state
/// database (any problem opening it was noted with the verdicts).
fn stored_silences(cfg: &crate::config::Config) -> crate::assess::silence::Silences {
    StateStore::open_read_only(&cfg.state_dir)
        .and_then(|s| s.silences())
        .unwrap_or_default()
}

/// Token files are credentials; one lying open is worth a warning, though
/// not a different exit code.
pub(crate) fn warn_world_readable(report: &Report) {
    for t in report.tokens.iter().filter(|t| t.world_readable) {
        eprintln!(
            "tokenwatch: warning: token file {} is readable by every user of this host; restrict it (chmod o-r)",
            t.path
        );
    }
}

/// What a credential file holds that ops should fix, though no alert is
/// sent for it and the exit code stays.
fn warn_credentials(scan: &crate::token::found::Scan) {
    for f in &scan.files {
        let Ok(c) = &f.content else { continue };
        for w in c.warnings() {
            eprintln!(
                "tokenwatch: warning: {} {}: {w}",
                crate::token::kind(c.kind).noun(),
                crate::show::show_path(&f.path)
            );
        }
    }
}

/// A table sorted by expiry, then unreadable files and folder problems.
pub(crate) fn human(report: &Report, tz: Tz) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let readable: Vec<_> = report
        .tokens
        .iter()
        .filter(|t| t.status != Status::Unreadable)
        .collect();
    if readable.is_empty() {
        out.push_str("no readable tokens found\n");
    } else {
        let rows: Vec<[String; 7]> = readable
            .iter()
            .map(|t| {
                // The status stays the credential's own; the mark says
                // nobody hears about it for now.
                let status = t.status.as_str().to_uppercase();
                [
                    match &t.silenced {
                        Some(s) => {
                            format!("{status} (silenced until {})", show::local(s.until, tz))
                        }
                        None => status,
                    },
                    t.days_left.map(|d| d.to_string()).unwrap_or_default(),
                    t.expires_at.map(|e| show::local(e, tz)).unwrap_or_default(),
                    t.kind.as_str().to_string(),
                    t.org_name.clone().unwrap_or_default(),
                    t.account.clone().unwrap_or_else(|| "(unknown)".into()),
                    t.path.clone(),
                ]
            })
            .collect();
        let header = [
            "STATUS", "DAYS", "EXPIRES", "KIND", "ORG", "ACCOUNT", "FILE",
        ]
        .map(String::from);
        let mut widths = header.clone().map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        for r in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(widths).enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    let _ = write!(line, "{c:<w$}  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for t in readable.iter().filter(|t| t.detail.is_some()) {
            let detail = t.detail.as_deref().unwrap_or("");
            let _ = if detail == evaluate::DETAIL_EXPIRY_ESTIMATED {
                writeln!(
                    out,
                    "  {}: {detail}: {}",
                    t.path,
                    evaluate::EXPIRY_ESTIMATED_MEANS
                )
            } else {
                writeln!(out, "  {}: {detail}", t.path)
            };
        }
    }
    let unreadable: Vec<_> = report
        .tokens
        .iter()
        .filter(|t| t.status == Status::Unreadable)
        .collect();
    if !unreadable.is_empty() {
        out.push_str("\nunreadable files:\n");
        for t in unreadable {
            let detail = t.detail.as_deref().unwrap_or("unreadable");
            let _ = if detail == evaluate::REASON_LINK_OUTSIDE_FOLDER {
                writeln!(
                    out,
                    "  {}: {detail}: {}",
                    t.path,
                    evaluate::LINK_OUTSIDE_FOLDER_MEANS
                )
            } else {
                writeln!(out, "  {}: {detail}", t.path)
            };
        }
    }
    let bad: Vec<_> = report
        .folders
        .iter()
        .filter(|f| f.state != FolderState::Ok)
        .collect();
    if !bad.is_empty() {
        out.push_str("\nfolder problems:\n");
        for f in bad {
            let what = match f.state {
                FolderState::Missing => "missing",
                FolderState::Unreadable => "unreadable",
                FolderState::Empty => "holds no token (set allow_empty = true if that is expected)",
                FolderState::Ok => "ok",
            };
            match &f.error {
                Some(e) if f.state != FolderState::Empty => {
                    let _ = writeln!(out, "  {}: {what}: {e}", f.path);
                }
                _ => {
                    let _ = writeln!(out, "  {}: {what}", f.path);
                }
            }
        }
    }
    out
}
