//! Prometheus metrics: what the daemon's latest pass saw, its deliveries and
//! Apple requests, in the classic text format (`text/plain;
//! version=0.0.4`) that Prometheus, `promtool check metrics` and
//! node_exporter's textfile collector all read.
//!
//! Values are set from each pass ([`Metrics::observe_pass`]); a scrape only
//! encodes them, it never scans. Labels carry paths, orgs, accounts and
//! short fingerprints, never a credential's text. Timestamps are gauges in
//! seconds since the epoch, as Prometheus' naming guide says.

pub mod server;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::evaluate::Status;
use crate::report::Report;
use crate::token::found::FolderState;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every status a credential can be in: one series per credential, the
/// current one set to 1.
pub const STATUSES: [&str; 6] = [
    "ok",
    "expiring",
    "expired",
    "invalidated",
    "superseded",
    "unreadable",
];

/// One credential as a pass saw it. Values that do not apply to a kind
/// are empty strings in the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialFacts {
    pub kind: &'static str,
    pub path: String,
    pub org: String,
    pub account: String,
    /// Shown form (12 hex digits).
    pub fingerprint: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub status: &'static str,
    pub silenced: bool,
}

/// One configured folder as a pass saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderFacts {
    pub path: String,
    /// Present, readable and (unless allowed) not empty.
    pub up: bool,
    pub credentials: usize,
    pub unreadable_files: usize,
}

/// What one pass saw.
#[derive(Debug, Clone, Default)]
pub struct PassFacts {
    pub credentials: Vec<CredentialFacts>,
    pub folders: Vec<FolderFacts>,
}

/// The outbox as a pass left it.
#[derive(Debug, Clone, Default)]
pub struct OutboxFacts {
    /// (state "pending" or "parked", channel, count)
    pub counts: Vec<(String, String, i64)>,
    pub oldest_pending: Option<DateTime<Utc>>,
}

impl PassFacts {
    /// What a `check` or a daemon pass reported, as metrics; a credential
    /// is silenced when the report says a silence holds for it.
    /// The one place both build their facts, so the textfile and a scrape
    /// agree.
    pub fn from_report(report: &Report) -> PassFacts {
        let credentials = report
            .tokens
            .iter()
            .map(|t| CredentialFacts {
                kind: t.kind.as_str(),
                path: t.path.clone(),
                org: t.org_name.clone().unwrap_or_default(),
                account: t.account.clone().unwrap_or_default(),
                fingerprint: t.fingerprint.clone().unwrap_or_default(),
                expires_at: t.expires_at,
                created_at: t.created_at,
                status: t.status.as_str(),
                silenced: t.silenced.is_some(),
            })
            .collect();
        let folders = report
            .folders
            .iter()
            .enumerate()
            .map(|(i, f)| FolderFacts {
                path: f.path.clone(),
                up: f.state == FolderState::Ok,
                credentials: f.tokens,
                unreadable_files: report
                    .tokens
                    .iter()
                    .filter(|t| t.folder == i && t.status == Status::Unreadable)
                    .count(),
            })
            .collect();
        PassFacts {
            credentials,
            folders,
        }
    }
}

fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64
}

const CREDENTIAL_LABELS: [&str; 5] = ["kind", "path", "org", "account", "fingerprint"];

/// One family [`Credentials`] writes: its name, help and labels.
struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

const EXPIRY: Family = Family {
    name: "tokenwatch_credential_expiry_timestamp_seconds",
    help: "When the credential expires, in seconds since the epoch.",
    labels: &CREDENTIAL_LABELS,
};
const CREATED: Family = Family {
    name: "tokenwatch_credential_created_timestamp_seconds",
    help:
        "When the credential was created (derived for content tokens), in seconds since the epoch.",
    labels: &CREDENTIAL_LABELS,
};
const STATUS: Family = Family {
    name: "tokenwatch_credential_status",
    help: "1 for the credential's current status.",
    labels: &["kind", "path", "org", "account", "fingerprint", "status"],
};
const SILENCED: Family = Family {
    name: "tokenwatch_credential_silenced",
    help: "1 while the credential is silenced (tokenwatch silence).",
    labels: &CREDENTIAL_LABELS,
};
const FOLDER_UP: Family = Family {
    name: "tokenwatch_folder_up",
    help: "1 when the folder is present and readable (and not unexpectedly empty).",
    labels: &["path"],
};
const FOLDER_CREDENTIALS: Family = Family {
    name: "tokenwatch_folder_credentials",
    help: "Readable credentials found in the folder.",
    labels: &["path"],
};
const UNREADABLE: Family = Family {
    name: "tokenwatch_unreadable_files",
    help: "Files with a credential's name that cannot be read as one.",
    labels: &["folder"],
};

impl Family {
    fn desc(&self) -> Desc {
        Desc::new(
            self.name.to_owned(),
            self.help.to_owned(),
            self.labels.iter().map(|l| (*l).to_owned()).collect(),
            HashMap::new(),
        )
        .expect("a valid metric name")
    }

    /// The family with one gauge series per `(label values, value)`.
    fn gauges<'a>(&self, series: impl Iterator<Item = ([&'a str; 6], f64)>) -> MetricFamily {
        let metrics = series
            .map(|(values, value)| {
                let mut labels: Vec<LabelPair> = self
                    .labels
                    .iter()
                    .zip(values)
                    .map(|(name, value)| {
                        let mut pair = LabelPair::default();
                        pair.set_name((*name).to_owned());
                        pair.set_value(value.to_owned());
                        pair
                    })
                    .collect();
                // In name order, as the crate's own vectors write them.
                labels.sort_by(|a, b| a.name().cmp(b.name()));
                let mut gauge = proto::Gauge::default();
                gauge.set_value(value);
                let mut m = Metric::from_gauge(gauge);
                m.set_label(labels);
                m
            })
            .collect();
        let mut family = MetricFamily::default();
        family.set_name(self.name.to_owned());
        family.set_help(self.help.to_owned());
        family.set_field_type(MetricType::GAUGE);
        family.set_metric(metrics);
        family
    }
}

/// The credential and folder families, shared by the daemon's registry and
/// `check --format prometheus`. The series are made from the latest pass's
/// facts when a scrape gathers them: kept as labelled series between
/// scrapes, 10,000 credentials took about 26 MiB, most of the daemon's
/// memory, and setting them again was most of an unchanged rescan's CPU.
struct Credentials {
    descs: Vec<Desc>,
    with_silenced: bool,
    latest: Arc<Mutex<Arc<PassFacts>>>,
}

impl Credentials {
    fn new(with_silenced: bool, latest: Arc<Mutex<Arc<PassFacts>>>) -> Credentials {
        let mut families = vec![&EXPIRY, &CREATED, &STATUS];
        if with_silenced {
            families.push(&SILENCED);
        }
        families.extend([&FOLDER_UP, &FOLDER_CREDENTIALS, &UNREADABLE]);
        Credentials {
            descs: families.into_iter().map(Family::desc).collect(),
            with_silenced,
            latest,
        }
    }
}

impl Collector for Credentials {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // Only the Arc is swapped under the lock; a poisoned one still
        // holds a whole value.
        let pass = self
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        fn labels(c: &CredentialFacts) -> [&str; 6] {
            let fp = c.fingerprint.as_str();
            [
                c.kind,
                c.path.as_str(),
                c.org.as_str(),
                c.account.as_str(),
                fp,
                "",
            ]
        }
        fn folder(f: &FolderFacts, n: usize) -> ([&str; 6], f64) {
            ([f.path.as_str(), "", "", "", "", ""], n as f64)
        }
        let creds = || pass.credentials.iter();
        let mut out = vec![
            EXPIRY.gauges(creds().filter_map(|c| Some((labels(c), seconds(c.expires_at?))))),
            CREATED.gauges(creds().filter_map(|c| Some((labels(c), seconds(c.created_at?))))),
            STATUS.gauges(creds().map(|c| {
                let mut l = labels(c);
                l[5] = c.status;
                (l, 1.0)
            })),
        ];
        if self.with_silenced {
            out.push(SILENCED.gauges(creds().filter(|c| c.silenced).map(|c| (labels(c), 1.0))));
        }
        let folders = || pass.folders.iter();
        out.push(FOLDER_UP.gauges(folders().map(|f| folder(f, usize::from(f.up)))));
        out.push(FOLDER_CREDENTIALS.gauges(folders().map(|f| folder(f, f.credentials))));
        out.push(UNREADABLE.gauges(folders().map(|f| folder(f, f.unreadable_files))));
        // A family without series is left out, as an empty labelled
        // vector was.
        out.retain(|f| !f.get_metric().is_empty());
        out
    }
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("a valid metric name");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric name");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn encode(r: &Registry) -> String {
    let mut out = Vec::new();
    // Encoding in-memory families into a Vec cannot fail.
    let _ = TextEncoder::new().encode(&r.gather(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The text `check --format prometheus` writes for node_exporter's textfile
/// collector: the credential and folder families only.
pub fn textfile(pass: PassFacts) -> String {
    let r = Registry::new();
    let latest = Arc::new(Mutex::new(Arc::new(pass)));
    r.register(Box::new(Credentials::new(false, latest)))
        .expect("registered once");
    encode(&r)
}

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    credentials: Arc<Mutex<Arc<PassFacts>>>,
    outbox: IntGaugeVec,
    oldest_pending: Gauge,
    deliveries: IntCounterVec,
    last_pass: Gauge,
    pass_duration: Histogram,
    apple_verified: GaugeVec,
    apple_requests: IntCounterVec,
    config_reload: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let credentials = Arc::default();
        r.register(Box::new(Credentials::new(true, Arc::clone(&credentials))))
            .expect("registered once");
        let outbox = int_gauge_vec(
            &r,
            "tokenwatch_outbox_messages",
            "Messages waiting in the outbox.",
            &["state", "channel"],
        );
        let oldest_pending = Gauge::new(
            "tokenwatch_outbox_oldest_pending_timestamp_seconds",
            "When the oldest pending message was queued; 0 when none is pending.",
        )
        .expect("a valid metric name");
        r.register(Box::new(oldest_pending.clone()))
            .expect("registered once");
        let deliveries = IntCounterVec::new(
            Opts::new(
                "tokenwatch_deliveries_total",
                "Delivery attempts by channel and result.",
            ),
            &["channel", "result"],
        )
        .expect("a valid metric name");
        r.register(Box::new(deliveries.clone()))
            .expect("registered once");
        let last_pass = Gauge::new(
            "tokenwatch_last_pass_timestamp_seconds",
            "When the latest pass ended, in seconds since the epoch.",
        )
        .expect("a valid metric name");
        r.register(Box::new(last_pass.clone()))
            .expect("registered once");
        let pass_duration = Histogram::with_opts(
            HistogramOpts::new(
                "tokenwatch_pass_duration_seconds",
                "How long a pass took (scan results to alerts queued).",
            )
            .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0]),
        )
        .expect("a valid metric name");
        r.register(Box::new(pass_duration.clone()))
            .expect("registered once");
        let apple_verified = gauge_vec(
            &r,
            "tokenwatch_apple_last_verified_timestamp_seconds",
            "When Apple last answered about the content token.",
            &["fingerprint"],
        );
        let apple_requests = IntCounterVec::new(
            Opts::new(
                "tokenwatch_apple_requests_total",
                "Requests to Apple's API by result.",
            ),
            &["result"],
        )
        .expect("a valid metric name");
        r.register(Box::new(apple_requests.clone()))
            .expect("registered once");
        let config_reload = IntGauge::new(
            "tokenwatch_config_reload_success",
            "0 while the daemon runs on a previous config because the file was rejected.",
        )
        .expect("a valid metric name");
        r.register(Box::new(config_reload.clone()))
            .expect("registered once");
        config_reload.set(1);
        let build = IntGaugeVec::new(
            Opts::new("tokenwatch_build_info", "1, labelled with the version."),
            &["version"],
        )
        .expect("a valid metric name");
        r.register(Box::new(build.clone()))
            .expect("registered once");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Metrics {
            registry: r,
            credentials,
            outbox,
            oldest_pending,
            deliveries,
            last_pass,
            pass_duration,
            apple_verified,
            apple_requests,
            config_reload,
        }
    }

    /// What a pass saw, when it ended and how long it took.
    pub fn observe_pass(&self, pass: PassFacts, ended: DateTime<Utc>, took: std::time::Duration) {
        *self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(pass);
        self.last_pass.set(seconds(ended));
        self.pass_duration.observe(took.as_secs_f64());
    }

    pub fn set_outbox(&self, outbox: &OutboxFacts) {
        self.outbox.reset();
        for (state, channel, n) in &outbox.counts {
            self.outbox
                .with_label_values(&[state.as_str(), channel.as_str()])
                .set(*n);
        }
        self.oldest_pending
            .set(outbox.oldest_pending.map(seconds).unwrap_or(0.0));
    }

    /// One delivery attempt: `result` is `delivered`, `transient_failure`
    /// or `permanent_failure`.
    pub fn count_delivery(&self, channel: &str, result: &str) {
        self.deliveries.with_label_values(&[channel, result]).inc();
    }

    pub fn apple_verified(&self, fingerprint: &str, at: DateTime<Utc>) {
        self.apple_verified
            .with_label_values(&[fingerprint])
            .set(seconds(at));
    }

    pub fn count_apple_request(&self, result: &str) {
        self.apple_requests.with_label_values(&[result]).inc();
    }

    pub fn config_reloaded(&self, ok: bool) {
        self.config_reload.set(i64::from(ok));
    }

    /// The exposition text for a scrape.
    pub fn encode(&self) -> String {
        encode(&self.registry)
    }
}

#[cfg(test)]
mod tests;
