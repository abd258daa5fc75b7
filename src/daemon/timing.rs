//! How long the daemon's components wait: debounces, poll intervals,
//! retries and limits. One value, built once by the wiring and handed to
//! the loop, the folders, the sender and the prober, so no component reads
//! the environment and a test can give a component shorter waits.

use std::time::Duration;

use crate::backoff::Backoff;

/// The daemon's waits. [`Timing::default`] is what production runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A failed send is retried after about 5 s, doubling up to an hour.
    pub send_retry: Backoff,
    /// Upper bound of one send, beyond the transport's own timeouts.
    pub send_limit: Duration,
    /// `tokenwatch outbox retry` writes to the database from another
    /// process; the sender looks at the outbox at least this often to
    /// notice.
    pub outbox_poll: Duration,
    /// A delivery outcome the state database refused (disk full,
    /// read-only) is written again after 1 s, doubling up to 30 s.
    pub record_retry: Backoff,
    /// A pass that could not write the state runs again after 5 s,
    /// doubling up to a minute.
    pub state_retry: Backoff,
    /// A token whose Apple check failed is asked again after 30 s,
    /// doubling up to an hour.
    pub probe_retry: Backoff,
    /// Events for a folder are gathered until it has been quiet this
    /// long...
    pub debounce_quiet: Duration,
    /// ...but never for longer than this after the first one.
    pub debounce_max: Duration,
    /// Events that all say their files are finished (renamed into place,
    /// closed after writing) need no quiet window: the folder is looked at
    /// at once, but no sooner than this after its previous look, so a
    /// stream of uploads is gathered rather than costing a pass per file.
    pub finished_gap: Duration,
    /// Polled folders (`poll = true`, or the watcher failed) are rescanned
    /// this often.
    pub poll_every: Duration,
    /// A missing or unreadable folder is looked for this often.
    pub retry_missing_every: Duration,
    /// A folder polled because its watch failed tries inotify again this
    /// often: the watch limit may have been raised, or other folders'
    /// watches freed.
    pub rearm_every: Duration,
    /// How long the config file must be quiet before it is re-read
    /// (editors write in several steps).
    pub config_quiet: Duration,
    /// How long shutdown waits for the mail in flight.
    pub drain_limit: Duration,
    /// The sender could not read the outbox: it looks again after this.
    pub outbox_read_retry: Duration,
    /// Apple checks are spread out by up to this much on top of the rate
    /// limit.
    pub probe_jitter: Duration,
    /// Apple rate-limited us without saying for how long (`Retry-After`):
    /// the checks pause this long (never longer than `probe_retry.max`).
    pub rate_limit_pause: Duration,
    /// A token verified within the verify schedule's interval is not asked
    /// about again by a pass; when that interval cannot be told (an
    /// irregular schedule), within this.
    pub verify_fresh_for: Duration,
    /// While starting, each extension of systemd's start timeout gives this
    /// much more time from when it is sent...
    pub start_extend_by: Duration,
    /// ...and is renewed this often while the work advances, well before
    /// the last one runs out.
    pub start_extend_every: Duration,
    /// The loop wakes at least this often with nothing to do.
    pub idle_wake: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        let secs = Duration::from_secs;
        Timing {
            send_retry: Backoff::new(secs(5), secs(3600)),
            send_limit: secs(120),
            outbox_poll: secs(15),
            record_retry: Backoff::new(secs(1), secs(30)),
            state_retry: Backoff::new(secs(5), secs(60)),
            probe_retry: Backoff::new(secs(30), secs(3600)),
            debounce_quiet: Duration::from_millis(300),
            debounce_max: Duration::from_millis(1000),
            finished_gap: Duration::from_millis(200),
            poll_every: secs(5),
            retry_missing_every: secs(2),
            rearm_every: secs(300),
            config_quiet: Duration::from_millis(300),
            drain_limit: secs(10),
            outbox_read_retry: secs(30),
            probe_jitter: Duration::from_millis(250),
            rate_limit_pause: secs(60),
            verify_fresh_for: secs(6 * 3600),
            start_extend_by: secs(30),
            start_extend_every: secs(10),
            idle_wake: secs(3600),
        }
    }
}

/// For tests and benchmarks only, never a config key: milliseconds that
/// replace the 5 s first mail retry (the one-hour cap scales with it), so a
/// test can show many retry rounds of a mail server outage in seconds.
pub const RETRY_BASE_ENV: &str = "TOKENWATCH_RETRY_BASE_MS";
/// For tests only, never a config key: seconds instead of the 300 s after
/// which a folder whose watch failed tries inotify again, so a test can
/// show a folder going back to inotify.
pub const REARM_ENV: &str = "TOKENWATCH_REARM_SECS";

impl Timing {
    /// These timings with the two test knobs applied, each logged with a
    /// warning when set. The only place the daemon reads them, called once
    /// by the wiring (`cli/run.rs`): the black-box tests run the real
    /// binary and cannot inject a `Timing`.
    pub fn with_test_env(self) -> Timing {
        self.with_knobs(
            std::env::var(RETRY_BASE_ENV).ok().as_deref(),
            std::env::var(REARM_ENV).ok().as_deref(),
        )
    }

    /// The knobs' values applied; unset, unparsable or zero values are
    /// ignored.
    fn with_knobs(mut self, retry_base_ms: Option<&str>, rearm_secs: Option<&str>) -> Timing {
        let positive = |v: Option<&str>| {
            v.and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&n| n > 0)
        };
        if let Some(ms) = positive(retry_base_ms) {
            tracing::warn!(
                env = RETRY_BASE_ENV,
                ms,
                "test knob set: mail retries start after {ms} ms instead of 5 s"
            );
            self.send_retry = self.send_retry.scaled(Duration::from_millis(ms));
        }
        if let Some(secs) = positive(rearm_secs) {
            tracing::warn!(
                env = REARM_ENV,
                secs,
                "test knob set: failed watches are retried after {secs} s instead of 300 s"
            );
            self.rearm_every = Duration::from_secs(secs);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knobs_shorten_the_mail_retry_and_the_rearm() {
        let t = Timing::default().with_knobs(Some("100"), Some(" 2 "));
        assert_eq!(t.send_retry.first, Duration::from_millis(100));
        assert_eq!(t.send_retry.max, Duration::from_secs(72));
        assert_eq!(t.rearm_every, Duration::from_secs(2));
        assert_eq!(
            Timing {
                send_retry: Timing::default().send_retry,
                rearm_every: Timing::default().rearm_every,
                ..t
            },
            Timing::default(),
            "nothing else changes"
        );
    }

    #[test]
    fn unset_zero_or_unparsable_knobs_change_nothing() {
        for (retry, rearm) in [
            (None, None),
            (Some("0"), Some("0")),
            (Some("x"), Some("-1")),
        ] {
            assert_eq!(
                Timing::default().with_knobs(retry, rearm),
                Timing::default()
            );
        }
    }
}
