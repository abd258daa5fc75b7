//! One evaluation pass: everything the slots hold is evaluated, the
//! snapshot for `status` is stored, and due alerts go to the outbox in one
//! transaction with their ledger rows.

use chrono::{DateTime, Utc};

use super::Daemon;
use crate::alerts::{self, Audience, HostFacts, Ledger, Member, Recorded};
use crate::assess::{self, Assessment, FolderAssessment};
use crate::evaluate::Status;
use crate::render::{Context, Input};
use crate::report::{self, Report};
use crate::scan;
use crate::state::{NewLedgerRow, NewRow, SeenRef};

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
    pub(super) fn verdicts(&self) -> assess::Verdicts {
        match tokio::task::block_in_place(|| self.store.verdicts_by_fingerprint()) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot read Apple's verdicts");
                assess::Verdicts::new()
            }
        }
    }

    /// The push certificates removed recently enough that a new one may
    /// replace them; none when they cannot be read.
    fn gone_certificates(&self, now: DateTime<Utc>) -> Vec<assess::GoneCert> {
        let since = now - assess::topic::REPLACED_WITHIN;
        match tokio::task::block_in_place(|| self.store.gone_certificates(since)) {
            Ok(gone) => gone,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the push certificates gone");
                Vec::new()
            }
        }
    }

    pub(super) fn report(&self, now: DateTime<Utc>, verdicts: &assess::Verdicts) -> Report {
        self.assessed(now, verdicts).1
    }

    /// The folders as alerts see them, and the report of every token.
    fn assessed(
        &self,
        now: DateTime<Utc>,
        verdicts: &assess::Verdicts,
    ) -> (Vec<FolderAssessment>, Report) {
        let scans: Vec<_> = self
            .folders
            .slots()
            .iter()
            .map(|s| s.scan.clone())
            .collect();
        // Borrowed, not cloned: a copy of every file doubled the memory.
        let files = scan::dedup_refs(self.folders.slots().iter().flat_map(|s| &s.files));
        let mut tokens = assess::assess(now, &files, &self.cfg.assess_policy(), verdicts);
        let folders = assess::assess_folders(&scans);
        assess::mark_topic_changes(now, &mut tokens, &folders, &self.gone_certificates(now));
        // Read every pass: `tokenwatch silence` cannot signal the daemon.
        match tokio::task::block_in_place(|| self.store.silences()) {
            Ok(silences) => assess::silence::mark(&mut tokens, &silences, now),
            Err(e) => tracing::error!(error = %e, "cannot read the silences; none hold this pass"),
        }
        let mut report = report::project(now, &folders, tokens);
        for (f, slot) in report.folders.iter_mut().zip(self.folders.slots()) {
            f.watch = Some(slot.mode_name().to_string());
        }
        (folders, report)
    }

    /// Reads the clock once: the assessment, the snapshot, the alerts, the
    /// outbox rows and the Apple requests all see the same `now`.
    pub(super) fn pass(&mut self) {
        let now = self.clock.now();
        let started = std::time::Instant::now();
        let verdicts = self.verdicts();
        self.keepalive.progress();
        let (folders, report) = self.assessed(now, &verdicts);
        self.warned.log_new(self.folders.files());
        self.folders.mark_passed();
        self.keepalive.progress();
        let built = started.elapsed();
        // Alerts first: the sender writes them while the snapshot below is
        // stored (a few hundred ms at 10,000 tokens). Nothing here reads
        // what the snapshot writes (the ledger stands alone).
        let queued = self.plan_and_enqueue(now, &report.tokens, &folders);
        let enqueued = started.elapsed();
        self.keepalive.progress();
        let mut seen: Vec<SeenRef<'_>> = Vec::with_capacity(report.tokens.len());
        seen.extend(
            report
                .tokens
                .iter()
                .filter(|t| t.status != Status::Unreadable)
                .filter_map(|t| {
                    Some(SeenRef {
                        fingerprint: &t.identity,
                        path: &t.path,
                        org_name: t.org_name.as_deref()?,
                        created_at: t.created_at?,
                        expires_at: t.expires_at?,
                        account: t.account.as_deref(),
                        status: t.status.as_str(),
                        detail: t.detail.as_deref(),
                        topic: t.kind_facts.topic.as_deref(),
                    })
                }),
        );
        self.keepalive.progress();
        let snapshot = |w: &mut dyn std::io::Write| {
            serde_json::to_writer(w, &report).map_err(std::io::Error::from)
        };
        let mut stored = queued;
        let mut state_problem = None;
        let keepalive = &self.keepalive;
        let store = &mut self.store;
        let writes = match tokio::task::block_in_place(|| {
            store.record_scan_with_progress(now, &seen, &snapshot, &|| keepalive.progress())
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                // Keep running on what is in memory; a pass is retried below.
                tracing::error!(error = %e, "cannot record the scan in the state database");
                state_problem = Some(e.to_string());
                stored = false;
                None
            }
        };
        let recorded = started.elapsed();
        self.keepalive.progress();
        if !queued && state_problem.is_none() {
            state_problem = Some("cannot queue alerts in the state database (see the log)".into());
        }
        self.observe_pass(now, &report, started.elapsed(), state_problem);
        self.keepalive.progress();
        self.keepalive.status(&status_line(&report));
        // Where a pass spends its time, for whoever profiles a slow one.
        tracing::debug!(
            tokens = report.tokens.len(),
            rows_written = writes.map(|w| w.written),
            rows_gone = writes.map(|w| w.gone),
            report_ms = built.as_millis() as u64,
            queued_ms = enqueued.as_millis() as u64,
            recorded_ms = recorded.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "pass done"
        );
        drop(seen);
        drop(report);
        self.store.release_memory();
        release_freed_memory();
        self.request_verification(now, false, &verdicts);
        self.retry_if_unstored(now + elapsed(started), stored);
    }

    /// A pass whose scan or alerts could not be written (disk full, state
    /// read-only) is run again soon, backing off, rather than at the next
    /// event or scheduled scan, which may be an hour away: the status must
    /// catch up and the alerts must be queued once the disk recovers
    /// (regression test: faults::disk::a_full_disk_is_survived_and_nothing_is_lost_or_sent_twice).
    /// `done`: when the pass ended, on the pass's clock.
    fn retry_if_unstored(&mut self, done: DateTime<Utc>, stored: bool) {
        if stored {
            if self.due.state_failures > 0 {
                tracing::info!("the state database accepts writes again");
            }
            self.due.state_failures = 0;
            return;
        }
        self.due.state_failures = self.due.state_failures.saturating_add(1);
        let wait = self.due.state_retry.nth(self.due.state_failures).as_secs() as i64;
        // After the pass, not from its start: a long pass must not eat
        // into the wait.
        let at = done + chrono::Duration::seconds(wait);
        tracing::warn!(
            retry_in_secs = wait,
            "state not written; the pass runs again then"
        );
        self.due.recheck_at = Some(self.due.recheck_at.map_or(at, |t| t.min(at)));
    }

    /// Host-wide facts: whether Apple has been unreachable.
    fn host_facts(&self) -> HostFacts {
        let since =
            tokio::task::block_in_place(|| self.store.meta(super::prober::APPLE_UNREACHABLE_SINCE))
                .ok()
                .flatten()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc));
        HostFacts {
            apple_unreachable_since: since,
        }
    }

    /// The ledger rows of what this pass holds (and of no token): the rows
    /// of tokens long gone are never read.
    fn ledger(&self, tokens: &[Assessment]) -> Option<Ledger> {
        let present = tokens.iter().map(|t| t.identity.as_str());
        match tokio::task::block_in_place(|| self.store.ledger_for(present)) {
            Ok(rows) => Some(
                rows.into_iter()
                    .map(|r| {
                        let recorded = Recorded {
                            at: r.recorded_at,
                            mailed: r.mailed,
                        };
                        (r.key, recorded)
                    })
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
    fn plan_and_enqueue(
        &mut self,
        now: DateTime<Utc>,
        tokens: &[Assessment],
        folders: &[FolderAssessment],
    ) -> bool {
        let Some(ledger) = self.ledger(tokens) else {
            return false;
        };
        let audiences = self.cfg.audiences();
        let plan = alerts::plan(
            now,
            tokens,
            folders,
            &self.host_facts(),
            &ledger,
            &self.cfg.alerts.planner(),
            &audiences,
        );
        self.due.recheck_at = plan.recheck_at;
        let mut rows = Vec::new();
        // A silenced credential's alerts count as done without a message,
        // so lifting the silence does not replay what came due meanwhile.
        let (hushed, due): (Vec<_>, Vec<_>) = plan.alerts.into_iter().partition(|a| {
            a.subject
                .and_then(|i| tokens.get(i))
                .is_some_and(|t| t.silenced.is_some())
        });
        for a in &hushed {
            let fingerprint = a
                .subject
                .and_then(|i| tokens.get(i))
                .map(|t| t.identity.clone());
            rows.extend(
                std::iter::once(&a.key)
                    .chain(&a.also_done)
                    .map(|k| NewLedgerRow {
                        key: k.clone(),
                        fingerprint: fingerprint.clone(),
                        mailed: false,
                    }),
            );
        }
        if due.is_empty() && rows.is_empty() {
            return true;
        }
        let ctx = Context {
            tz: self.cfg.timezone,
            host: &self.host,
            now,
        };
        let mut outbox = Vec::new();
        let max = self.cfg.alerts.max_mails_per_pass;
        for group in alerts::group_for_storm_guard(due, &audiences, max) {
            for a in &group {
                let fingerprint = a
                    .subject
                    .and_then(|i| tokens.get(i))
                    .map(|t| t.identity.clone());
                rows.push(NewLedgerRow {
                    key: a.key.clone(),
                    fingerprint: fingerprint.clone(),
                    mailed: true,
                });
                rows.extend(a.also_done.iter().map(|k| NewLedgerRow {
                    key: k.clone(),
                    fingerprint: fingerprint.clone(),
                    mailed: false,
                }));
            }
            let input = if group.len() == 1 {
                Input::Alert {
                    alert: &group[0],
                    tokens,
                    folders,
                }
            } else {
                tracing::warn!(
                    alerts = group.len(),
                    "storm guard: sending one summary mail"
                );
                Input::Summary {
                    alerts: &group,
                    tokens,
                    folders,
                }
            };
            let audience = audiences.get(group[0].audience);
            if audience.members.is_empty() {
                tracing::warn!(alert = %group[0].key, "nobody to tell about this alert");
                continue;
            }
            outbox.extend(self.drafts(audience, &input, &ctx));
        }
        match tokio::task::block_in_place(|| self.store.commit_alerts(now, &rows, &outbox)) {
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

    /// The outbox rows of one alert (or summary, or digest): what each
    /// channel the audience is reached on renders for its members.
    fn drafts(&self, audience: &Audience, input: &Input<'_>, ctx: &Context<'_>) -> Vec<NewRow> {
        let keys = input.keys();
        let mut out = Vec::new();
        for name in audience.channels() {
            let Some(channel) = self.sender.channels().get(name) else {
                tracing::warn!(channel = name, key = %keys[0], "no such channel is configured; its recipients are not told");
                continue;
            };
            let to: Vec<&Member> = audience.on(name).collect();
            for draft in channel.render(input, &to, ctx) {
                out.push(NewRow {
                    message_id: draft.message_id,
                    alert_keys: keys.clone(),
                    channel: name.to_owned(),
                    recipients: draft.recipients,
                    title: draft.title,
                    payload: draft.payload,
                    date: ctx.now,
                });
            }
        }
        out
    }

    /// The scheduled digest: one mail per recipient listing every token
    /// they hear about, soonest expiry first.
    pub(super) fn send_digest(&mut self) {
        let now = self.clock.now();
        let report = self.report(now, &self.verdicts());
        let ctx = Context {
            tz: self.cfg.timezone,
            host: &self.host,
            now,
        };
        let day = now
            .with_timezone(&self.cfg.timezone)
            .format("%Y-%m-%d")
            .to_string();
        let mut rows = Vec::new();
        let mut outbox = Vec::new();
        for group in alerts::digest_groups(&report.tokens, &self.cfg.audiences()) {
            let tokens: Vec<&Assessment> =
                group.tokens.iter().map(|&i| &report.tokens[i]).collect();
            let key = format!("digest:{day}:{}", group.member.key);
            rows.push(NewLedgerRow {
                key: key.clone(),
                fingerprint: None,
                mailed: true,
            });
            let input = Input::Digest {
                key: &key,
                tokens: &tokens,
                folders: group.folders,
            };
            let audience = Audience {
                members: vec![group.member],
            };
            outbox.extend(self.drafts(&audience, &input, &ctx));
        }
        match tokio::task::block_in_place(|| self.store.commit_alerts(now, &rows, &outbox)) {
            Ok(ids) => {
                tracing::info!(mails = ids.len(), "digest queued");
                self.sender.wake();
            }
            Err(e) => tracing::error!(error = %e, "cannot queue the digest"),
        }
    }
}

/// Time since `started`, as a chrono duration.
fn elapsed(started: std::time::Instant) -> chrono::Duration {
    chrono::Duration::from_std(started.elapsed()).unwrap_or(chrono::Duration::zero())
}

/// What `systemctl status` shows of a pass: how much is watched and how much
/// needs someone soon.
fn status_line(report: &Report) -> String {
    let readable = report
        .tokens
        .iter()
        .filter(|t| t.status != Status::Unreadable)
        .count();
    let expiring = report
        .tokens
        .iter()
        .filter(|t| t.status == Status::Expiring)
        .count();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut line = format!(
        "watching {} in {}; {expiring} expiring",
        plural(readable, "credential", "credentials"),
        plural(report.folders.len(), "folder", "folders"),
    );
    let needs_care = report
        .tokens
        .iter()
        .filter(|t| {
            matches!(
                t.status,
                Status::Expired | Status::Invalidated | Status::Unreadable
            )
        })
        .count();
    if needs_care > 0 {
        line.push_str(&format!(
            ", {needs_care} expired, invalidated or unreadable"
        ));
    }
    line
}
