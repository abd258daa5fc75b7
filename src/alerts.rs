//! Which alerts are due, and who hears about them: a pure function of the
//! clock, the assessed tokens and folders, the ledger of what was already
//! recorded and the audiences the config names. An alert points at an
//! [`Audience`] (recipients per channel); how a channel addresses them is
//! the channel's business.
//!
//! Every alert has a ledger key. A key is derived from facts that do not
//! change across restarts (the token's fingerprint, the threshold, the
//! reminder number counted from a fixed date), so a restart, a missed tick
//! or a replayed pass plans nothing that the ledger already holds.

mod audience;
mod digest;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};

pub use audience::{Audience, AudienceId, Audiences, Member};
pub use digest::{digest_groups, DigestGroup};

use crate::assess::{Assessment, FolderAssessment};
use crate::evaluate::Status;

/// A file must sit unchanged this long before it is called unreadable, so a
/// slow upload is not an error.
pub const UNREADABLE_SETTLE: Duration = Duration::seconds(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertKind {
    /// Crossed `days` (the most urgent lead day crossed). `first`: no
    /// earlier lead day's alert for this credential was sent, so this is
    /// the first mail saying it expires (the one that carries the invite).
    Expiring {
        days: u32,
        first: bool,
    },
    /// `reminder` 0 is the first mail.
    Expired {
        reminder: u32,
    },
    Invalidated {
        reason: String,
        reminder: u32,
    },
    Unreadable {
        error: String,
    },
    FolderProblem {
        state: String,
        error: Option<String>,
    },
    FolderRecovered,
    Superseded,
    NoAccount,
    /// Checks of this token with Apple keep failing (while Apple itself answers).
    CannotVerify {
        since: DateTime<Utc>,
    },
    /// Apple's expiry differs from the file's by more than a day.
    AppleExpiryMismatch,
    /// No request to Apple has got through since then (one mail per host).
    AppleUnreachable {
        since: DateTime<Utc>,
    },
    /// Apple says another MDM uses the token than its folder expects.
    MdmConflict {
        expected: String,
        actual: String,
    },
    /// The folder's newest push certificate has another topic than the one
    /// it replaced (`old`).
    TopicChanged {
        old: String,
    },
}

impl AlertKind {
    /// The kind's name, as channels that name events spell it: the
    /// `event` of a webhook's json body, documented and never renamed.
    pub fn name(&self) -> &'static str {
        match self {
            AlertKind::Expiring { .. } => "expiring",
            AlertKind::Expired { .. } => "expired",
            AlertKind::Invalidated { .. } => "invalidated",
            AlertKind::Unreadable { .. } => "unreadable",
            AlertKind::FolderProblem { .. } => "folder_problem",
            AlertKind::FolderRecovered => "folder_recovered",
            AlertKind::Superseded => "superseded",
            AlertKind::NoAccount => "account_missing",
            AlertKind::CannotVerify { .. } => "cannot_verify",
            AlertKind::AppleExpiryMismatch => "expiry_mismatch",
            AlertKind::AppleUnreachable { .. } => "apple_unreachable",
            AlertKind::MdmConflict { .. } => "mdm_conflict",
            AlertKind::TopicChanged { .. } => "topic_changed",
        }
    }
}

/// After this long, a failing Apple check is worth a mail.
pub const APPLE_FAILURE_GRACE: Duration = Duration::days(1);

#[derive(Debug, Clone)]
pub struct Policy {
    /// Largest first.
    pub lead_days: Vec<u32>,
    pub repeat_days: u32,
    pub require_account: bool,
}

/// What the ledger says about one key.
#[derive(Debug, Clone, Copy)]
pub struct Recorded {
    pub at: DateTime<Utc>,
    /// A message was queued for it; false when it only counts as done
    /// (folded into a more urgent threshold, skipped, or due while the
    /// credential was silenced).
    pub mailed: bool,
}

pub type Ledger = HashMap<String, Recorded>;

#[derive(Debug, Clone)]
pub struct Alert {
    pub key: String,
    pub kind: AlertKind,
    /// Index into the assessments given to [`plan`] (None for folder and
    /// host alerts).
    pub subject: Option<usize>,
    /// Index into the folders given to [`plan`] (folder alerts).
    pub folder: Option<usize>,
    /// Who hears about it.
    pub audience: AudienceId,
    /// Ledger keys recorded as done without a mail of their own: thresholds
    /// crossed at once with a more urgent one, skipped reminders.
    pub also_done: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub alerts: Vec<Alert>,
    /// Come back then: an unreadable file is still settling.
    pub recheck_at: Option<DateTime<Utc>>,
}

/// Facts about this host rather than one token.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Since when no request to Apple got through.
    pub apple_unreachable_since: Option<DateTime<Utc>>,
}

/// `folders` are in config order (their index is the one `audiences`
/// and the assessments' `folder` use).
pub fn plan(
    now: DateTime<Utc>,
    subjects: &[Assessment],
    folders: &[FolderAssessment],
    host: &HostFacts,
    ledger: &Ledger,
    policy: &Policy,
    audiences: &Audiences,
) -> Plan {
    let mut out = Plan::default();
    let apple_down = host.apple_unreachable_since;
    if let Some(since) = apple_down.filter(|s| now - *s > APPLE_FAILURE_GRACE) {
        let key = format!("apple_unreachable:{}", since.timestamp());
        if !ledger.contains_key(&key) {
            out.alerts.push(Alert {
                key,
                kind: AlertKind::AppleUnreachable { since },
                subject: None,
                folder: None,
                audience: audiences.host,
                also_done: Vec::new(),
            });
        }
    }
    let repeat = Duration::days(policy.repeat_days.max(1) as i64);
    for (i, s) in subjects.iter().enumerate() {
        let fp = &s.identity;
        let audience = audiences.of_folder(s.folder);
        let about = |key: String, kind: AlertKind, also_done: Vec<String>| Alert {
            key,
            kind,
            subject: Some(i),
            folder: None,
            audience,
            also_done,
        };
        let mut push = |key: String, kind: AlertKind, also_done: Vec<String>| {
            out.alerts.push(about(key, kind, also_done))
        };
        match s.status {
            Status::Unreadable => {
                let settled = s.modified_at.is_none_or(|m| m + UNREADABLE_SETTLE <= now);
                // Per content *and* path: two files with the same broken
                // content (two empty downloads) are two problems, and an
                // empty file mailed once must not silence every later one.
                let key = format!("unreadable:{fp}:{}", s.path);
                if ledger.contains_key(&key) {
                    continue;
                }
                if settled {
                    let error = s.detail.clone().unwrap_or_default();
                    push(key, AlertKind::Unreadable { error }, Vec::new());
                } else if let Some(m) = s.modified_at {
                    let at = m + UNREADABLE_SETTLE;
                    out.recheck_at = Some(out.recheck_at.map_or(at, |r| r.min(at)));
                }
            }
            Status::Superseded => {
                let key = format!("superseded:{fp}");
                if !ledger.contains_key(&key) {
                    push(key, AlertKind::Superseded, Vec::new());
                }
            }
            Status::Invalidated => {
                let reason = s.detail.clone().unwrap_or_else(|| "invalid".into());
                let first = format!("invalidated:{fp}:{reason}");
                match ledger.get(&first) {
                    None => push(
                        first,
                        AlertKind::Invalidated {
                            reason,
                            reminder: 0,
                        },
                        Vec::new(),
                    ),
                    Some(rec) => {
                        let n = ((now - rec.at).num_seconds() / repeat.num_seconds()).max(0) as u32;
                        if let Some((key, done)) = reminder(&first, n, ledger) {
                            push(
                                key,
                                AlertKind::Invalidated {
                                    reason,
                                    reminder: n,
                                },
                                done,
                            );
                        }
                    }
                }
            }
            Status::Expired => {
                let first = format!("expired:{fp}");
                let since = s.expires_at.map(|e| now - e).unwrap_or_else(Duration::zero);
                let n = (since.num_seconds() / repeat.num_seconds()).max(0) as u32;
                if !ledger.contains_key(&first) {
                    // First sight of an already long-expired token: one mail,
                    // and the reminders it stands for count as sent.
                    let done = (1..=n).map(|k| format!("{first}:{k}")).collect();
                    push(first, AlertKind::Expired { reminder: 0 }, done);
                } else if let Some((key, done)) = reminder(&first, n, ledger) {
                    push(key, AlertKind::Expired { reminder: n }, done);
                }
            }
            Status::Expiring | Status::Ok => {
                let Some(days) = s.days_left else { continue };
                let crossed: Vec<u32> = policy
                    .lead_days
                    .iter()
                    .copied()
                    .filter(|d| days <= *d as i64)
                    .collect();
                if let Some(&most_urgent) = crossed.last() {
                    let key = format!("expiring:{fp}:{most_urgent}");
                    if !ledger.contains_key(&key) {
                        let done = crossed
                            .iter()
                            .filter(|d| **d != most_urgent)
                            .map(|d| format!("expiring:{fp}:{d}"))
                            .filter(|k| !ledger.contains_key(k))
                            .collect();
                        // Only a lead day someone was told about counts: one
                        // that came due while the credential was silenced
                        // carried no invite, so the first mail after the
                        // silence must.
                        let first = !crossed.iter().any(|d| {
                            ledger
                                .get(&format!("expiring:{fp}:{d}"))
                                .is_some_and(|r| r.mailed)
                        });
                        push(
                            key,
                            AlertKind::Expiring {
                                days: most_urgent,
                                first,
                            },
                            done,
                        );
                    }
                }
            }
        }
        // Alerts beside the status's own, each once.
        let mut extra = |key: String, kind: AlertKind| {
            if !ledger.contains_key(&key) {
                out.alerts.push(about(key, kind, Vec::new()));
            }
        };
        if let Some(apple) = &s.apple {
            // While Apple cannot be reached at all, the one host mail says it.
            if let Some(since) = apple
                .failing_since
                .filter(|f| now - *f > APPLE_FAILURE_GRACE && apple_down.is_none())
            {
                extra(
                    format!("cannot_verify:{fp}:{}", since.timestamp()),
                    AlertKind::CannotVerify { since },
                );
            }
            if apple.expiry_mismatch && !matches!(s.status, Status::Superseded | Status::Unreadable)
            {
                extra(format!("apple_expiry:{fp}"), AlertKind::AppleExpiryMismatch);
            }
        }
        // Once per MDM: if Apple later names yet another one, that is news.
        if let Some(c) = &s.mdm_conflict {
            extra(
                format!("mdm_conflict:{fp}:{}", c.actual),
                AlertKind::MdmConflict {
                    expected: c.expected.clone(),
                    actual: c.actual.clone(),
                },
            );
        }
        if let Some(old) = &s.replaces_topic {
            extra(
                format!("topic_changed:{fp}:{old}"),
                AlertKind::TopicChanged { old: old.clone() },
            );
        }
        if policy.require_account && s.account.is_none() && s.status != Status::Unreadable {
            extra(format!("noaccount:{fp}"), AlertKind::NoAccount);
        }
    }
    // The folder keys, picked out once: two walks over the whole ledger
    // per folder were 3.6 x 10^8 key comparisons a pass with 1,000 folders
    // and a ledger of 180,000 keys (13 s; BENCHMARKS.md, the
    // million-credential rows).
    let folder_keys: Vec<&str> = if folders.is_empty() {
        Vec::new()
    } else {
        ledger
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("folder:"))
            .collect()
    };
    for (i, f) in folders.iter().enumerate() {
        // Episodes are counted from the ledger: problem n, then recovered n.
        let prefix = format!("folder:{}:", f.path);
        let problems = folder_keys
            .iter()
            .filter(|k| k.starts_with(&prefix) && k[prefix.len()..].starts_with("problem:"))
            .count();
        let recoveries = folder_keys
            .iter()
            .filter(|k| k.starts_with(&prefix) && k[prefix.len()..].starts_with("recovered:"))
            .count();
        let (key, kind) = match (f.problem(), problems > recoveries) {
            (Some((state, error)), false) => (
                format!("{prefix}problem:{}", problems + 1),
                AlertKind::FolderProblem {
                    state: state.to_owned(),
                    error: error.map(str::to_owned),
                },
            ),
            (None, true) => (
                format!("{prefix}recovered:{problems}"),
                AlertKind::FolderRecovered,
            ),
            _ => continue,
        };
        out.alerts.push(Alert {
            key,
            kind,
            subject: None,
            folder: Some(i),
            audience: audiences.of_folder(i),
            also_done: Vec::new(),
        });
    }
    out
}

/// Reminder `n` of an alert whose first mail is `first`, unless recorded;
/// the skipped ones before it count as done.
fn reminder(first: &str, n: u32, ledger: &Ledger) -> Option<(String, Vec<String>)> {
    if n == 0 {
        return None;
    }
    let key = format!("{first}:{n}");
    if ledger.contains_key(&key) {
        return None;
    }
    let done = (1..n)
        .map(|k| format!("{first}:{k}"))
        .filter(|k| !ledger.contains_key(k))
        .collect();
    Some((key, done))
}

/// Groups alerts by who hears about them; a group with more than the
/// limit becomes one summary. Returned in a stable order.
pub fn group_for_storm_guard(
    alerts: Vec<Alert>,
    audiences: &Audiences,
    max_per_pass: u32,
) -> Vec<Vec<Alert>> {
    let mut groups: BTreeMap<Vec<(&str, &str)>, Vec<Alert>> = BTreeMap::new();
    for a in alerts {
        let key = audiences.get(a.audience).identity();
        groups.entry(key).or_default().push(a);
    }
    let mut out = Vec::new();
    for (_, group) in groups {
        if group.len() > max_per_pass as usize {
            out.push(group);
        } else {
            out.extend(group.into_iter().map(|a| vec![a]));
        }
    }
    out
}

#[cfg(test)]
mod tests;
