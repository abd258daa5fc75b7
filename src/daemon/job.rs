//! The daemon's scheduled jobs: what a schedule tick asks the loop to do.

use std::fmt;

/// One kind of scheduled work. Each has its own cron schedule
/// (`[schedule]` in the config; housekeeping's is fixed) and one handler in
/// the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A full rescan and evaluation pass.
    Check,
    /// The digest mail.
    Digest,
    /// Ask Apple about every verifiable token.
    Verify,
    /// Forget old sent mail and token history.
    Housekeeping,
}

impl Job {
    /// The schedule's name in log lines (unchanged from when ticks carried
    /// names).
    pub fn name(self) -> &'static str {
        match self {
            Job::Check => "check",
            Job::Digest => "digest",
            Job::Verify => "verify",
            Job::Housekeeping => "housekeeping",
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
