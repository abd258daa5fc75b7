//! tokenwatch watches folders of Apple content tokens (`.vpptoken`), knows
//! each token's expiry and Managed Apple Account, and mails ops before a
//! token dies.
//!
//! The module list is the architecture map. Pure modules hold the rules;
//! edge modules do I/O and are thin.
//!
//! - [`hardening`]: process-wide protections set at start (no core dumps).
//! - [`backoff`]: the doubling, capped wait between retries (pure).
//! - [`secret`]: a redacting wrapper for credentials, and the redactor that
//!   masks any 16-character run of a secret in text from outside (pure).
//! - [`show`]: how paths and times are spelled in output (pure).
//! - [`token`]: one file's bytes into a token or a specific error;
//!   fingerprints; the sample-token writer (pure).
//! - [`config`]: loading and validating the TOML config, with every error
//!   located by file, line and column.
//! - [`evaluate`]: status and days left per token from (now, tokens,
//!   accounts, verdicts, policy) (pure).
//! - [`assess`]: one [`assess::Assessment`] per credential from (now,
//!   scanned files, policy, Apple's recorded verdicts): status, days left,
//!   superseded copies, Apple's expiry mismatch (pure).
//! - [`alerts`]: which alerts are due given the ledger, and for which
//!   audience (recipients per channel); storm guard and digest grouping
//!   (pure).
//! - [`render`]: alerts, storm summaries and digests into words: subject,
//!   plain text and HTML, which every channel builds its payload from;
//!   renewal events as iCalendar (pure).
//! - [`report`]: the `check`/`status` view of the assessments and its exit
//!   code (pure).
//! - [`scan`]: walking token folders; special files, symlinks, dedup.
//! - [`state`]: the SQLite state database: scans, ledger, outbox, verdicts,
//!   and the housekeeping that forgets what is long gone.
//! - [`channel`]: the seam every alert channel implements: render its
//!   payload, deliver one message, say whether a failure is transient or
//!   permanent; the registry of configured channels by name.
//! - [`mail`]: the mail channel: its outbox payload (with the calendar
//!   invite of a first expiry mail) and sending (SMTP or file).
//! - [`webhook`]: the webhook channel: one HTTPS post per webhook, in its
//!   format, signed.
//! - [`metrics`]: the latest pass, deliveries and Apple requests as
//!   Prometheus metrics; `/metrics` and `/healthz`.
//! - [`probe`]: the read-only Apple API check of a token.
//! - [`watch`]: filesystem events turned into "rescan this folder" (a bounded
//!   queue; a burst beyond it means "rescan everything").
//! - [`schedule`]: cron schedules in a time zone, correct across DST.
//! - [`daemon`]: the long-running loop that owns the token set.
//! - [`cli`]: the subcommands, their output and exit codes.

pub mod alerts;
pub mod assess;
pub mod backoff;
pub mod channel;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod evaluate;
pub mod hardening;
pub mod mail;
pub mod metrics;
pub mod probe;
pub mod render;
pub mod report;
pub mod scan;
pub mod schedule;
pub mod secret;
pub mod show;
pub mod state;
pub mod token;
pub mod watch;
pub mod webhook;
