//! One evaluation pass: everything the slots hold is evaluated, the
//! snapshot for `status` is stored, and due alerts go to the outbox in one
//! transaction with their ledger rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Daemon;
use crate::alerts::{self, Alert, FolderSubject, HostSubject, Ledger, Recorded, Subject};
use crate::evaluate::Status;
use crate::mail::payload::{self, MailPayload};
use crate::mail::render::{self, Context, Rendered};
use crate::report::{self, Report};
use crate::scan::{self, FolderState};
use crate::state::{NewLedgerRow, NewRow, SeenToken};

/// A pass builds its report, snapshot and alerts in tens of MiB for 100,000
/// tokens and frees them at once; glibc keeps such memory mapped (in every
/// thread's arena), so the daemon would sit at its peak for good. Hand the
/// free pages back to the kernel.
pub(super) fn release_freed_memory() {
    // glibc only; other allocators (musl) have no such call.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Daemon {
    /// Apple's stored verdicts by fingerprint; none when they cannot be read.
    pub(super) fn verdicts(&self) -> report::Verdicts {
        match tokio::task::block_in_place(|| self.store.verdicts_by_fingerprint()) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot read Apple's verdicts");
                report::Verdicts::new()
            }
        }
    }

    pub(super) fn report(&self, now: DateTime<Utc>, verdicts: &report::Verdicts) -> Report {
        // Borrowed, not cloned: a copy of every file doubled the memory.
        let folders: Vec<_> = self
            .folders
            .slots()
            .iter()
            .map(|s| s.scan.clone())
            .collect();
        let files = scan::dedup_refs(self.folders.slots().iter().flat_map(|s| &s.files));
        let mut report =
            report::build_from(now, &self.cfg.assess_policy(), &folders, &files, verdicts);
        for (f, slot) in report.folders.iter_mut().zip(self.folders.slots()) {
            f.watch = Some(slot.mode_name().to_string());
        }
        report
    }

    /// Reads the clock once: the report, the alerts and the Apple requests
    /// all see the same `now`.
    pub(super) fn pass(&mut self) {
        let now = self.clock.now();
        let started = std::time::Instant::now();
        let verdicts = self.verdicts();
        self.keepalive.progress();
        let report = self.report(now, &verdicts);
        self.folders.mark_passed();
        self.keepalive.progress();
        let built = started.elapsed();
        let seen: Vec<SeenToken> = report
            .tokens
            .iter()
            .filter(|t| t.status != Status::Unreadable)
            .filter_map(|t| {
                Some(SeenToken {
                    fingerprint: t.identity.clone(),
                    path: t.path.clone(),
                    org_name: t.org_name.clone()?,
                    created_at: t.created_at?,
                    expires_at: t.expires_at?,
                    account: t.account.clone(),
                    status: t.status.as_str().to_string(),
                    detail: t.detail.clone(),
                })
            })
            .collect();
        self.keepalive.progress();
        let snapshot = match serde_json::to_string(&report) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise the status snapshot");
                return;
            }
        };
        self.keepalive.progress();
        let mut stored = true;
        let keepalive = &self.keepalive;
        let store = &mut self.store;
        let writes = match tokio::task::block_in_place(|| {
            store.record_scan_with_progress(now, &seen, &snapshot, &|| keepalive.progress())
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                // Keep running on what is in memory; a pass is retried below.
                tracing::error!(error = %e, "cannot record the scan in the state database");
                stored = false;
                None
            }
        };
        let recorded = started.elapsed();
        self.keepalive.progress();
        stored &= self.plan_and_enqueue(now, &report);
        self.keepalive.progress();
        // Where a pass spends its time, for whoever profiles a slow one.
        tracing::debug!(
            tokens = report.tokens.len(),
            rows_written = writes.map(|w| w.written),
            rows_gone = writes.map(|w| w.gone),
            report_ms = built.as_millis() as u64,
            recorded_ms = recorded.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "pass done"
        );
        drop((report, seen, snapshot));
        release_freed_memory();
        self.request_verification(now, false, &verdicts);
        self.retry_if_unstored(stored);
    }

    /// A pass whose scan or alerts could not be written (disk full, state
    /// read-only) is run again soon, backing off, rather than at the next
    /// event or scheduled scan, which may be an hour away: the status must
    /// catch up and the alerts must be queued once the disk recovers
    /// (regression test: faults::disk::a_full_disk_is_survived_and_nothing_is_lost_or_sent_twice).
    fn retry_if_unstored(&mut self, stored: bool) {
        if stored {
            if self.due.state_failures > 0 {
                tracing::info!("the state database accepts writes again");
            }
            self.due.state_failures = 0;
            return;
        }
        self.due.state_failures = self.due.state_failures.saturating_add(1);
        let wait = self.due.state_retry.nth(self.due.state_failures).as_secs() as i64;
        // After the pass, not from its `now`: a long pass must not eat
        // into the wait.
        let at = self.clock.now() + chrono::Duration::seconds(wait);
        tracing::warn!(
            retry_in_secs = wait,
            "state not written; the pass runs again then"
        );
        self.due.recheck_at = Some(self.due.recheck_at.map_or(at, |t| t.min(at)));
    }

    fn subjects(&self, report: &Report) -> (Vec<Subject>, Vec<FolderSubject>) {
        let subjects = report
            .tokens
            .iter()
            .map(|t| Subject {
                identity: t.identity.clone(),
                path: t.path.clone(),
                kind: t.kind,
                org_name: t.org_name.clone(),
                status: t.status,
                days_left: t.days_left,
                expires_at: t.expires_at,
                created_at: t.created_at,
                account: t.account.clone(),
                detail: t.detail.clone(),
                modified_at: t.modified_at,
                recipients: self.cfg.recipients_for(self.cfg.folders.get(t.folder)),
                folder: self
                    .cfg
                    .folders
                    .get(t.folder)
                    .map(|f| crate::show::show_path(&f.path))
                    .unwrap_or_default(),
                apple: t.apple.clone(),
                superseded_by: t.superseded_by.clone(),
            })
            .collect();
        let folders = report
            .folders
            .iter()
            .zip(&self.cfg.folders)
            .map(|(r, f)| FolderSubject {
                path: r.path.clone(),
                problem: match r.state {
                    FolderState::Ok => None,
                    FolderState::Missing => Some(("missing".into(), r.error.clone())),
                    FolderState::Unreadable => Some(("unreadable".into(), r.error.clone())),
                    FolderState::Empty => Some(("empty".into(), None)),
                },
                recipients: self.cfg.recipients_for(Some(f)),
            })
            .collect();
        (subjects, folders)
    }

    /// Host-wide facts: whether Apple has been unreachable, and who hears
    /// about it (`[alerts] recipients`, else everyone).
    fn host_subject(&self) -> HostSubject {
        let since =
            tokio::task::block_in_place(|| self.store.meta(super::prober::APPLE_UNREACHABLE_SINCE))
                .ok()
                .flatten()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc));
        let mut recipients = self.cfg.alerts.recipients.clone();
        if recipients.is_empty() {
            for f in &self.cfg.folders {
                for m in self.cfg.recipients_for(Some(f)) {
                    if !recipients.iter().any(|r| r.email == m.email) {
                        recipients.push(m);
                    }
                }
            }
        }
        HostSubject {
            apple_unreachable_since: since,
            recipients,
        }
    }

    /// The ledger rows of what this pass holds (and of no token): the rows
    /// of tokens long gone are never read.
    fn ledger(&self, report: &Report) -> Option<Ledger> {
        let present = report.tokens.iter().map(|t| t.identity.as_str());
        match tokio::task::block_in_place(|| self.store.ledger_for(present)) {
            Ok(rows) => Some(
                rows.into_iter()
                    .map(|r| (r.key, Recorded { at: r.recorded_at }))
                    .collect(),
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the alert ledger; no alerts this pass");
                None
            }
        }
    }

    /// Queues the alerts due; false when the state database could not be
    /// read or written, so the pass must be retried.
    fn plan_and_enqueue(&mut self, now: DateTime<Utc>, report: &Report) -> bool {
        let Some(ledger) = self.ledger(report) else {
            return false;
        };
        let (subjects, folders) = self.subjects(report);
        let policy = alerts::Policy {
            lead_days: self.cfg.alerts.lead_days.clone(),
            repeat_days: self.cfg.alerts.repeat_days,
            require_account: self.cfg.alerts.require_account,
        };
        let host = self.host_subject();
        let plan = alerts::plan(now, &subjects, &folders, &host, &ledger, &policy);
        self.due.recheck_at = plan.recheck_at;
        if plan.alerts.is_empty() {
            return true;
        }
        let ctx = Context {
            tz: self.cfg.timezone,
            host: &self.host,
        };
        let mut rows = Vec::new();
        let mut mails = Vec::new();
        for group in alerts::group_for_storm_guard(plan.alerts, self.cfg.alerts.max_mails_per_pass)
        {
            let keys: Vec<String> = group.iter().map(|a| a.key.clone()).collect();
            for a in &group {
                rows.push(NewLedgerRow {
                    key: a.key.clone(),
                    fingerprint: a
                        .subject
                        .and_then(|i| subjects.get(i))
                        .map(|s| s.identity.clone()),
                    mailed: true,
                });
                rows.extend(a.also_done.iter().map(|k| {
                    NewLedgerRow {
                        key: k.clone(),
                        fingerprint: a
                            .subject
                            .and_then(|i| subjects.get(i))
                            .map(|s| s.identity.clone()),
                        mailed: false,
                    }
                }));
            }
            let rendered = if group.len() == 1 {
                render::render_alert(&group[0], &subjects, &folders, &ctx)
            } else {
                tracing::warn!(
                    alerts = group.len(),
                    "storm guard: sending one summary mail"
                );
                render::render_summary(&group, &subjects, &folders, &ctx)
            };
            if let Some(mail) = self.new_mail(&group[0], keys, rendered, now) {
                mails.push(mail);
            }
        }
        match tokio::task::block_in_place(|| self.store.commit_alerts(now, &rows, &mails)) {
            Ok(ids) => {
                tracing::info!(mails = ids.len(), "alerts queued");
                self.sender.wake();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot queue alerts; they will be planned again next pass");
                false
            }
        }
    }

    fn new_mail(
        &self,
        first: &Alert,
        keys: Vec<String>,
        r: Rendered,
        now: chrono::DateTime<Utc>,
    ) -> Option<NewRow> {
        if first.recipients.is_empty() {
            tracing::warn!(alert = %first.key, "nobody to tell about this alert");
            return None;
        }
        let to = first.recipients.iter().map(|m| m.to_string()).collect();
        Some(self.mail_row(keys, to, r, now))
    }

    /// The outbox row of one mail; its Message-ID comes from the alert keys.
    fn mail_row(
        &self,
        keys: Vec<String>,
        to: Vec<String>,
        r: Rendered,
        now: chrono::DateTime<Utc>,
    ) -> NewRow {
        NewRow {
            message_id: render::message_id(&keys),
            alert_keys: keys,
            channel: payload::CHANNEL.to_owned(),
            recipients: to,
            title: r.subject.clone(),
            payload: MailPayload {
                from: self.cfg.alerts.from.to_string(),
                subject: r.subject,
                text: r.text,
                html: r.html,
            }
            .to_json(),
            date: now,
        }
    }

    /// The scheduled digest: one mail per recipient listing every token
    /// they hear about, soonest expiry first.
    pub(super) fn send_digest(&mut self) {
        let now = self.clock.now();
        let report = self.report(now, &self.verdicts());
        let mut per_recipient: BTreeMap<String, (lettre::message::Mailbox, Vec<usize>, usize)> =
            BTreeMap::new();
        for (fi, folder) in self.cfg.folders.iter().enumerate() {
            for m in self.cfg.recipients_for(Some(folder)) {
                let entry = per_recipient
                    .entry(m.email.to_string().to_lowercase())
                    .or_insert((m, Vec::new(), 0));
                entry.2 += 1;
                entry.1.extend(
                    report
                        .tokens
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| t.folder == fi)
                        .map(|(i, _)| i),
                );
            }
        }
        let ctx = Context {
            tz: self.cfg.timezone,
            host: &self.host,
        };
        let day = now
            .with_timezone(&self.cfg.timezone)
            .format("%Y-%m-%d")
            .to_string();
        let mut rows = Vec::new();
        let mut mails = Vec::new();
        for (email, (mailbox, mut idx, folders)) in per_recipient {
            idx.sort_unstable();
            idx.dedup();
            let tokens: Vec<&report::TokenReport> =
                idx.iter().map(|&i| &report.tokens[i]).collect();
            let r = render::render_digest(&tokens, folders, &ctx);
            let key = format!("digest:{day}:{email}");
            rows.push(NewLedgerRow {
                key: key.clone(),
                fingerprint: None,
                mailed: true,
            });
            mails.push(self.mail_row(vec![key], vec![mailbox.to_string()], r, now));
        }
        match tokio::task::block_in_place(|| self.store.commit_alerts(now, &rows, &mails)) {
            Ok(ids) => {
                tracing::info!(mails = ids.len(), "digest queued");
                self.sender.wake();
            }
            Err(e) => tracing::error!(error = %e, "cannot queue the digest"),
        }
    }
}
