//! The command line's definition and nothing else. It uses clap and std
//! only, never `crate::` paths: `build.rs` compiles this same file
//! (`#[path]`) to write the man page and the shell completions, so they
//! cannot drift from what the binary accepts.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `sample-token --days` bound either way (100 years); clap enforces it.
pub const MAX_DAYS: i64 = 36_500;

/// What `check` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
    Prometheus,
}

#[derive(Debug, Parser)]
#[command(
    name = "tokenwatch",
    version,
    about = "Watches Apple content tokens (.vpptoken) and mails ops before they expire or die"
)]
pub struct Cli {
    /// Config file [default: $TOKENWATCH_CONFIG, else /etc/tokenwatch/tokenwatch.toml]
    #[arg(short = 'c', long = "config", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log level (overrides RUST_LOG), e.g. info, debug
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan all token folders now, evaluate, print; sends nothing
    Check {
        /// Short for --format json
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// text (a table), json, or prometheus (the textfile collector's format)
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
        /// Write to FILE (atomically: a temporary file renamed in its folder) instead of stdout
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write one iCalendar with a renewal event per watched credential
    ///
    /// The events are the ones the first mail about an expiring credential
    /// carries (same UIDs), for importing or publishing; sends nothing.
    Calendar {
        /// Write to this file (replaced whole) instead of standard output
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Show what tokenwatch reads from one file (never the secret)
    Inspect {
        file: PathBuf,
        /// The key and certificate an ADE server token is encrypted to (PEM, like ade_key)
        #[arg(long, value_name = "PATH")]
        key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Write a synthetic, clearly fake credential: a content token in
    /// Apple's format, a push certificate or an ADE server token
    SampleToken {
        /// vpp (content token), apns (push certificate, PEM) or ade (ADE server token, S/MIME)
        #[arg(long, default_value = "vpp", value_parser = ["vpp", "apns", "ade"])]
        kind: String,
        /// Organisation name to put in it (ADE tokens name their MDM server instead)
        #[arg(long)]
        org: Option<String>,
        /// Expiry date (UTC midnight)
        #[arg(
            long,
            value_name = "YYYY-MM-DD",
            conflicts_with = "days",
            required_unless_present = "days"
        )]
        expires: Option<String>,
        /// Expire this many days from now (may be negative; at most 100 years either way)
        #[arg(
            long,
            value_name = "N",
            allow_hyphen_values = true,
            value_parser = clap::value_parser!(i64).range(-MAX_DAYS..=MAX_DAYS)
        )]
        days: Option<i64>,
        /// Write a new file here instead of stdout (folders are created);
        /// an existing file is refused, a symbolic link always
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace an existing FILE (atomically; never through a symbolic link)
        #[arg(long, requires = "output")]
        force: bool,
        /// ade: also write the private key and certificate it is encrypted
        /// to here (mode 0600), for ade_key or inspect --key
        #[arg(long, value_name = "FILE", requires = "output")]
        key_out: Option<PathBuf>,
    },
    /// Ask Apple about one token (read-only GET /client/config)
    Probe {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon in the foreground (systemd supervises it)
    Run,
    /// Show what the running daemon last saw, and its outbox
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Act on mail the daemon could not deliver
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Send a test mail through the configured transport
    TestMail {
        /// Recipient [default: the [alerts] recipients]
        #[arg(long, value_name = "ADDR")]
        to: Option<String>,
    },
    /// Post a test message to a configured webhook; exit 0 delivered, 2 failed, 3 not configured
    TestWebhook {
        /// The [[webhook]]'s name
        name: String,
    },
    /// Record facts about a Managed Apple Account in the config file
    Account {
        #[command(subcommand)]
        action: AccountAction,
    },
    /// Validate or print the configuration
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Send nothing about a credential until a date (one left to expire on purpose)
    ///
    /// `silence CREDENTIAL --until DATE [--reason TEXT]`; CREDENTIAL is a
    /// file or a fingerprint prefix of at least 8 hex digits. New content
    /// (a replacement) is a new credential and is never silenced by this.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Silence {
        #[command(subcommand)]
        action: Option<SilenceAction>,
        /// A credential file, or a fingerprint prefix (8 or more hex digits)
        #[arg(required = true)]
        credential: Option<String>,
        /// Until the start of this day in the configured timezone
        /// (YYYY-MM-DD), or a time (RFC 3339, or YYYY-MM-DD HH:MM)
        #[arg(long, value_name = "DATE", required = true)]
        until: Option<String>,
        /// Why, shown by `silence list`, `status` and `check --json`
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SilenceAction {
    /// List the silences (also those whose date has passed)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Lift the silence of a credential
    Clear {
        /// A credential file, or a fingerprint prefix (8 or more hex digits)
        credential: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the config; exit 0, or 3 with every error
    Check,
    /// Print the documented example config
    Example,
}

#[derive(Debug, Subcommand)]
pub enum AccountAction {
    /// Record that ACCOUNT's password changed (edits the config file)
    ///
    /// Tokens of the account created before the change are invalidated.
    /// Sets `password_changed` in its [[account]] table, keeping the file's
    /// comments, owner, group and mode; the running daemon re-reads it.
    PasswordChanged {
        /// The Managed Apple Account, as the config names it
        account: String,
        /// When: RFC 3339 (2026-10-01T12:00:00Z) or "YYYY-MM-DD HH:MM" in the
        /// configured timezone (a time that occurs twice means the first) [default: now]
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Add an [[account]] even though no folder or token refers to it
        #[arg(long)]
        add: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Send parked or pending mail again now
    Retry {
        /// Outbox id (see `tokenwatch status`)
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every unsent mail
        #[arg(long)]
        all: bool,
    },
    /// Remove an unsent mail; its alert is not sent again
    Drop { id: i64 },
}
