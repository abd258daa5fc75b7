//! `tokenwatch calendar [-o FILE]`: one iCalendar with a renewal event per
//! watched credential, from a scan like `check`'s; sends nothing.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use chrono::Utc;

use super::check::stored_verdicts;
use super::{load_config, EXIT_OK, EXIT_UNKNOWN};
use crate::render::{self, calendar};
use crate::{report, scan};

pub fn run(flag: Option<&Path>, output: Option<&Path>) -> anyhow::Result<i32> {
    let Some(cfg) = load_config(flag) else {
        return Ok(EXIT_UNKNOWN);
    };
    let now = Utc::now();
    let scan = scan::scan(&cfg.folder_specs());
    let report = report::build(now, &cfg.assess_policy(), &scan, &stored_verdicts(&cfg));
    let host = crate::daemon::hostname();
    let ctx = render::Context {
        tz: cfg.timezone,
        host: &host,
        now,
    };
    let tokens: Vec<_> = report.tokens.iter().collect();
    let ics = calendar::calendar_of(&tokens, &ctx);
    match output {
        // Readable by all: it holds only what mails say, and it is meant to
        // be published or imported. Replaced whole, so a web server serving
        // it never sends half a calendar.
        Some(path) => super::sample::replace(path, ics.as_bytes(), 0o644)
            .with_context(|| format!("cannot write the calendar to {}", path.display()))?,
        None => std::io::stdout().write_all(ics.as_bytes())?,
    }
    Ok(EXIT_OK)
}
