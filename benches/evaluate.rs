//! Evaluation micro-benchmarks: the pure status rules for one token, and
//! `report::build` (`assess::assess` of every scanned token plus the view
//! `check` and the daemon print) over 10,000 scanned tokens.
//!
//! `cargo bench --bench evaluate`; BENCHMARKS.md has the latest figures.

use std::hint::black_box;
use std::path::PathBuf;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokenwatch::assess::Verdicts;
use tokenwatch::config;
use tokenwatch::evaluate::{self, Account, Facts, Policy};
use tokenwatch::report;
use tokenwatch::scan::{FolderScan, FolderState, FoundFile, Scan};
use tokenwatch::token;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 1, 12, 0, 0).unwrap()
}

fn evaluate_one(c: &mut Criterion) {
    let account = Account {
        id: "apps@bench.appleaccount.com".into(),
        password_changed: Some(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()),
    };
    let policy = Policy {
        expiring_days: 60,
        grace: Duration::hours(48),
    };
    let expiries: Vec<DateTime<Utc>> = (0..1024)
        .map(|i| now() + Duration::hours(i * 17 - 2000))
        .collect();
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("one_token", |b| {
        b.iter(|| {
            i = (i + 1) % expiries.len();
            let facts = Facts {
                expires_at: expiries[i],
                created_at: expiries[i] - Duration::days(365),
                account: Some(&account),
                apple: None,
                superseded: false,
                rules: token::kind(token::KindId::Vpp).rules(),
            };
            black_box(evaluate::evaluate(black_box(now()), &facts, &policy))
        })
    });
    group.finish();
}

fn report_build(c: &mut Criterion) {
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("tokenwatch.toml");
    std::fs::write(
        &cfg_path,
        "state_dir = \"state\"\n\
         [alerts]\nrecipients = [\"ops@example.com\"]\n\
         [[folder]]\npath = \"tokens\"\naccount = \"apps@bench.appleaccount.com\"\n\
         [[account]]\nid = \"apps@bench.appleaccount.com\"\n",
    )
    .unwrap();
    let cfg = config::load(&cfg_path).unwrap();
    let root = dir.path().join("tokens");
    let files = (0..N)
        .map(|i| {
            let text = token::sample_token(
                &format!("Bench Org {i}"),
                now() + Duration::hours(i as i64 * 3 - 1000),
            );
            let (fingerprint, content) = token::parse_with_fingerprint(text.as_bytes());
            let mut found = FoundFile {
                path: root.join(format!("t{i:07}.vpptoken")),
                folder: 0,
                kind: token::KindId::Vpp,
                size: text.len() as u64,
                mtime: None,
                file_id: Some((1, i as u64)),
                via_link: false,
                world_readable: false,
                unread_fingerprint: None,
                content: Err(tokenwatch::scan::FileError::Changed),
                stamp: None,
            };
            found.set_read(
                fingerprint,
                content.map_err(tokenwatch::scan::FileError::Token),
            );
            found
        })
        .collect();
    let scan = Scan {
        folders: vec![FolderScan {
            path: PathBuf::from(&root),
            state: FolderState::Ok,
            tokens: N,
            error: None,
            folder_links: false,
        }],
        files,
    };
    let mut group = c.benchmark_group("report");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);
    let policy = cfg.assess_policy();
    group.bench_function("build_10k_tokens", |b| {
        b.iter(|| {
            black_box(report::build(
                now(),
                &policy,
                black_box(&scan),
                &Verdicts::new(),
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, evaluate_one, report_build);
criterion_main!(benches);
