//! Faults: the real daemon against kill -9, a mail server outage, a full
//! disk, filesystem churn, watcher failure and config reload storms, with
//! mail to the in-process SMTP stub on 127.0.0.1.
//!
//! Each test prints its figures; see them with
//! `cargo test --test it faults -- --nocapture`. Random choices come from a
//! seed that is printed; `FAULTS_SEED=N` replays a run.
//!
//! Three tests need root, which the CI machine has: the full disk mounts
//! a small tmpfs, the read-only state sets `chattr +i` on the database, and
//! the watch limit runs the daemon in its own user namespace (`unshare
//! --user`) with a tiny per-namespace inotify watch limit, so no
//! machine-wide sysctl is touched and the tests running in parallel keep
//! their inotify. The queue overflow needs no privilege: the daemon is
//! stopped (SIGSTOP) while more events arrive than the kernel queues.
//! Without a privilege a test says so and passes without testing, unless
//! `TOKENWATCH_FAULTS_STRICT=1` (set in `.ci/run`) makes that a failure.

mod churn;
mod crash;
mod disk;
mod outage;
mod overflow;
mod reload_storm;
mod watch_limit;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::smtp_stub::SmtpStub;
use crate::util::mail::header;
use crate::util::Daemon;

/// A seeded RNG for `test`, printing the seed so a failure can be replayed.
fn rng_for(test: &str) -> StdRng {
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("{test}: seed {seed} (replay with FAULTS_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// A fake token for `org` whose `days_left` is `days` for the next 12 hours.
fn token_text(org: &str, days: i64) -> String {
    let expires = chrono::Utc::now() + chrono::Duration::days(days) + chrono::Duration::hours(12);
    tokenwatch::token::sample_token(org, expires)
}

/// What the stub received, per Message-ID: the subject and how often.
fn deliveries(stub: &SmtpStub) -> BTreeMap<String, (String, usize)> {
    let mut by_id: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for m in stub.messages() {
        let raw = m.text();
        let id = header(&raw, "Message-ID").unwrap_or_else(|| panic!("no Message-ID:\n{raw}"));
        let subject = header(&raw, "Subject").unwrap_or_default();
        by_id.entry(id).or_insert((subject, 0)).1 += 1;
    }
    by_id
}

/// Polls `cond` until it holds; panics with `what` and `detail()` after `secs`.
fn poll_until(what: &str, secs: u64, cond: impl Fn() -> bool, detail: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {secs}s waiting for: {what}\n{}", detail());
}

fn alive(d: &mut Daemon) -> bool {
    matches!(d.child.try_wait(), Ok(None))
}

fn integrity(state_dir: &Path) -> String {
    tokenwatch::state::StateStore::open_read_only(state_dir)
        .and_then(|s| s.integrity_check())
        .unwrap_or_else(|e| format!("cannot check: {e}"))
}

fn outbox(s: &serde_json::Value) -> Vec<serde_json::Value> {
    s["outbox"].as_array().cloned().unwrap_or_default()
}

/// Status tokens as (absolute path, status, days_left).
fn token_rows(s: &serde_json::Value) -> BTreeSet<(String, String, Option<i64>)> {
    s["tokens"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    (
                        t["path"].as_str().unwrap_or("").to_string(),
                        t["status"].as_str().unwrap_or("").to_string(),
                        t["days_left"].as_i64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// (path, watch) of every folder in a status.
fn folder_watch(s: &serde_json::Value) -> Vec<(String, String)> {
    s["folders"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["path"].as_str().unwrap_or("").to_string(),
                        f["watch"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every readable token the folders hold, as the status should show it:
/// path -> days left.
type Model = BTreeMap<PathBuf, i64>;

fn matches_model(s: &serde_json::Value, model: &Model) -> bool {
    let want: BTreeSet<(String, Option<i64>)> = model
        .iter()
        .map(|(p, d)| (p.display().to_string(), Some(*d)))
        .collect();
    let rows = token_rows(s);
    let got: BTreeSet<(String, Option<i64>)> =
        rows.iter().map(|(p, _, d)| (p.clone(), *d)).collect();
    got == want && rows.len() == model.len() && rows.iter().all(|(_, st, _)| st != "unreadable")
}

/// What differs between a status and the model, for failure messages.
fn model_diff(s: Option<serde_json::Value>, model: &Model) -> String {
    let Some(s) = s else {
        return "no status".into();
    };
    let got: BTreeMap<String, (String, Option<i64>)> = token_rows(&s)
        .into_iter()
        .map(|(p, st, d)| (p, (st, d)))
        .collect();
    let mut out = String::new();
    for (p, d) in model {
        let key = p.display().to_string();
        match got.get(&key) {
            None => out.push_str(&format!("missing from status: {key} ({d} days)\n")),
            Some((st, gd)) if *gd != Some(*d) || st == "unreadable" => {
                out.push_str(&format!("{key}: status {st} {gd:?} days, want {d}\n"))
            }
            _ => {}
        }
    }
    for (p, v) in &got {
        if !model.contains_key(Path::new(p)) {
            out.push_str(&format!("not in the folders: {p} {v:?}\n"));
        }
    }
    out.push_str(&format!("folders: {}\n", s["folders"]));
    out
}
