//! Token reader micro-benchmark: file bytes -> token (strip, fingerprint,
//! Base64, JSON, date), the work a scan does per file once it is read.
//! Targets: at least 200,000 content tokens per second on one core; the
//! other kinds' targets are at [`other_kinds`].
//!
//! Measured in CPU time of the benchmarking thread, not wall time: "per
//! core" is what the target asks, and on a shared machine other processes
//! taking the core would otherwise count against the reader.
//!
//! `cargo bench --bench reader`; BENCHMARKS.md has the latest figures.

use std::hint::black_box;

use chrono::{Duration, TimeZone, Utc};
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokenwatch::token::ade::{self, AdeKey};
use tokenwatch::token::apns;
use tokenwatch::token::{self, Fingerprint, KindId, Source};

/// Distinct tokens in Apple's layout, so caches do not flatter the figure.
fn samples(n: usize) -> Vec<Vec<u8>> {
    let base = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            let expires = base + Duration::hours(i as i64 * 7);
            token::sample_token(&format!("Bench Org {i}"), expires).into_bytes()
        })
        .collect()
}

/// CPU time consumed by the calling thread (`CLOCK_THREAD_CPUTIME_ID`), in ns.
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical_ns < 1e3 {
            (1.0, "ns cpu")
        } else if typical_ns < 1e6 {
            (1e3, "µs cpu")
        } else {
            (1e6, "ms cpu")
        };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }

    fn scale_throughputs(
        &self,
        _: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per, unit) = match throughput {
            Throughput::Elements(n) => (*n as f64 / 1e3, "Kelem/s cpu"),
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                (*n as f64 / (1024.0 * 1024.0), "MiB/s cpu")
            }
            Throughput::Bits(n) => (*n as f64 / 1e6, "Mbit/s cpu"),
            Throughput::ElementsAndBytes { elements, .. } => {
                (*elements as f64 / 1e3, "Kelem/s cpu")
            }
        };
        values.iter_mut().for_each(|v| *v = per * 1e9 / *v);
        unit
    }

    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn reader(c: &mut Criterion<ThreadCpuTime>) {
    let files = samples(1024);
    let mut group = c.benchmark_group("reader");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("parse_with_fingerprint", |b| {
        b.iter(|| {
            i = (i + 1) % files.len();
            black_box(token::parse_with_fingerprint(black_box(&files[i])))
        })
    });
    group.bench_function("fingerprint_only", |b| {
        b.iter(|| {
            i = (i + 1) % files.len();
            black_box(Fingerprint::of(black_box(&files[i])))
        })
    });
    let broken: Vec<Vec<u8>> = files.iter().map(|f| f[..f.len() / 2].to_vec()).collect();
    group.bench_function("truncated_file", |b| {
        b.iter(|| {
            i = (i + 1) % broken.len();
            black_box(token::parse_with_fingerprint(black_box(&broken[i])))
        })
    });
    group.finish();

    // The fingerprint's hash on a typical file's stripped text, by both
    // implementations in the tree: why the reader uses ring's.
    let text: Vec<u8> = files[0]
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mut group = c.benchmark_group("sha256_of_one_token");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("sha2", |b| {
        use sha2::Digest as _;
        b.iter(|| black_box(sha2::Sha256::digest(black_box(&text))))
    });
    group.bench_function("ring", |b| {
        b.iter(|| {
            black_box(ring::digest::digest(
                &ring::digest::SHA256,
                black_box(&text),
            ))
        })
    });
    group.finish();
}

/// The other kinds' readers, each file read fresh (a push certificate
/// parsed, an enrollment token decrypted with its folder's key: one RSA
/// decryption each), the work the scan does for a new or changed file.
/// Targets: at least 100,000 push certificates and 1,000 enrollment tokens
/// per second on one core.
fn other_kinds(c: &mut Criterion<ThreadCpuTime>) {
    let now = Utc::now();
    // Distinct certificates and tokens, each with its own key: making one
    // is an RSA key generation, so a handful stands for many.
    let certs: Vec<Vec<u8>> = (0..16)
        .map(|i| {
            apns::sample_apns(now, 100 + i, &format!("Bench Org {i}"))
                .expect("sample certificate")
                .pem
                .into_bytes()
        })
        .collect();
    let tokens: Vec<(String, Vec<u8>, AdeKey)> = (0..4)
        .map(|i| {
            let s = ade::sample_ade(now, 100 + i).expect("sample enrollment token");
            let key = AdeKey::from_pem(s.key_pem.expose().as_bytes()).expect("sample key");
            (s.file_name, s.p7m, key)
        })
        .collect();

    let mut group = c.benchmark_group("kinds");
    group.throughput(Throughput::Elements(1));
    let apns = token::kind(KindId::Apns);
    let mut i = 0;
    group.bench_function("apns_pem", |b| {
        b.iter(|| {
            i = (i + 1) % certs.len();
            let (fp, read) = apns.read(Source {
                name: b"push.pem",
                bytes: black_box(&certs[i]),
                key: None,
            });
            assert!(read.is_ok());
            black_box(fp)
        })
    });
    let ade = token::kind(KindId::Ade);
    group.bench_function("ade_p7m_with_key", |b| {
        b.iter(|| {
            i = (i + 1) % tokens.len();
            let (name, p7m, key) = &tokens[i];
            let (fp, read) = ade.read(Source {
                name: name.as_bytes(),
                bytes: black_box(p7m),
                key: Some(key),
            });
            // The decrypted expiry, not the file name's estimate: the
            // figure must include the decryption.
            assert!(read.is_ok_and(|c| c.details().is_some_and(|d| !d.expiry_estimated)));
            black_box(fp)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = reader, other_kinds
}
criterion_main!(benches);
