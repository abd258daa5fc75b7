//! Ten thousand malformed token files in a watched folder: the daemon stays
//! up, reports each once, and its memory stays bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{seed, write_corpus, Generator};
use crate::util::mail::read_mails;
use crate::util::process::{proc_kib, tokenwatch};
use crate::util::{Daemon, Env};

const DEFAULT_FILES: usize = 10_000;
/// Generous: a daemon holding 10,000 unreadable files needs a few MiB.
const RSS_LIMIT_KIB: u64 = 256 * 1024;

/// N in a summary's "and N more (see `tokenwatch status`)", once per mail
/// (the HTML part says it again), or 0.
fn more_in(text: &str) -> usize {
    let Some(end) = text.find(" more (see ") else {
        return 0;
    };
    let digits: String = text[..end]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().unwrap_or(0)
}

/// All tags in a text.
fn tags_in(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 8 <= b.len() {
        if b[i] == b'h'
            && b[i + 1] == b'x'
            && b[i + 7] == b'x'
            && b[i + 2..i + 7].iter().all(u8::is_ascii_digit)
        {
            if let Ok(n) = std::str::from_utf8(&b[i + 2..i + 7]).unwrap_or("").parse() {
                out.push(n);
            }
            i += 8;
        } else {
            i += 1;
        }
    }
    out
}

/// Each tag found in the unreadable rows of a status or check report,
/// with how often; and rows that are not unreadable or carry no tag.
fn unreadable_rows(report: &serde_json::Value) -> (BTreeMap<usize, usize>, Vec<String>) {
    let mut seen = BTreeMap::new();
    let mut odd = Vec::new();
    for t in report["tokens"].as_array().into_iter().flatten() {
        let path = t["path"].as_str().unwrap_or("");
        let tags = tags_in(path);
        let detail = t["detail"].as_str().unwrap_or("");
        if t["status"] != "unreadable" || tags.len() != 1 || detail.is_empty() {
            odd.push(t.to_string());
        }
        for tag in tags {
            *seen.entry(tag).or_insert(0) += 1;
        }
    }
    (seen, odd)
}

#[test]
fn ten_thousand_malformed_files_keep_the_daemon_up_and_each_is_reported_once() {
    let seed = seed();
    let total: usize = std::env::var("HOSTILE_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_FILES);
    println!("hostile corpus: {total} files, HOSTILE_SEED={seed}");
    let env = Env::new();
    let cfg = env.config("");
    let dir = env.path().join("tokens");
    let mut gen = Generator::new(seed);

    // Half before start-up (the first full scan), half while it runs
    // (filesystem events, one burst).
    let started = Instant::now();
    let phase = |what: &str| println!("hostile corpus: {what} after {:.1?}", started.elapsed());
    let half = total / 2;
    write_corpus(&dir, &mut gen, 0, half);
    phase("first half written");
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 60, |s| s["tokens"].as_array().is_some());
    phase("first scan done");
    write_corpus(&dir, &mut gen, half, total);
    phase("second half written");

    let all: BTreeSet<usize> = (0..total).collect();
    let complete = |s: &serde_json::Value| {
        let (seen, odd) = unreadable_rows(s);
        odd.is_empty() && seen.len() == total && seen.values().all(|&n| n == 1)
    };
    let status = d.wait_for("every file listed as unreadable once", 180, |s| {
        complete(s) || !unreadable_rows(s).1.is_empty()
    });
    phase("status lists every file");
    let (seen, odd) = unreadable_rows(&status);
    assert!(
        odd.is_empty(),
        "rows that are not one unreadable file: {odd:?}"
    );
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "listed more than once: {twice:?}");
    assert_eq!(seen.keys().copied().collect::<BTreeSet<_>>(), all);

    // Mail: unreadable files are mailed once settled (10 s unchanged),
    // collapsed by the storm guard into summary mails, each listing at most
    // 200 and counting the rest ("and N more"). Every file must be listed
    // or counted, none listed twice, and every mail must stay under 1 MiB.
    let mail_dir = env.path().join("state/mail");
    let deadline = Instant::now() + Duration::from_secs(180);
    let per_mail = loop {
        let mails = read_mails(&mail_dir);
        for (name, raw, _) in &mails {
            assert!(raw.len() < 1 << 20, "mail {name} has {} bytes", raw.len());
        }
        let per_mail: Vec<(String, BTreeSet<usize>)> = mails
            .iter()
            .map(|(name, _, text)| (name.clone(), tags_in(text).into_iter().collect()))
            .collect();
        let listed: usize = per_mail.iter().map(|(_, t)| t.len()).sum();
        let counted: usize = mails.iter().map(|(_, _, text)| more_in(text)).sum();
        let pending = d
            .status()
            .is_some_and(|s| s["outbox"].as_array().is_some_and(|o| !o.is_empty()));
        if listed + counted >= total && !pending {
            assert_eq!(listed + counted, total, "files listed or counted in mails");
            break per_mail;
        }
        assert!(
            Instant::now() < deadline,
            "after 180 s, {listed} of {total} files were listed and {counted} counted in mails\n--- daemon log ---\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    phase("every file mailed");
    let mut mails_per_file: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (name, tags) in &per_mail {
        for &t in tags {
            mails_per_file.entry(t).or_default().push(name);
        }
    }
    let repeated: Vec<_> = mails_per_file
        .iter()
        .filter(|(_, m)| m.len() != 1)
        .collect();
    assert!(
        repeated.is_empty(),
        "{} files are in several mails, e.g. {:?}",
        repeated.len(),
        repeated.iter().take(5).collect::<Vec<_>>()
    );

    // The same corpus through `check`: it finishes, lists each file once.
    let check = tokenwatch(
        &env,
        &["-c", "tokenwatch.toml", "check", "--json"],
        &[],
        300,
    );
    check.expect_code(3);
    phase("check done");
    let (seen, odd) = unreadable_rows(&check.json());
    assert!(odd.is_empty(), "check rows: {odd:?}");
    assert_eq!(seen.len(), total);
    assert!(seen.values().all(|&n| n == 1));

    let mut d = d;
    assert!(
        d.child.try_wait().expect("daemon state").is_none(),
        "the daemon exited\n{}",
        d.log()
    );
    let pid = d.child.id();
    let rss = proc_kib(pid, "VmRSS").expect("VmRSS");
    let peak = proc_kib(pid, "VmHWM").expect("VmHWM");
    println!(
        "hostile corpus: {total} files, {} mails, daemon RSS {rss} KiB, peak {peak} KiB",
        per_mail.len()
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "daemon peak RSS {peak} KiB exceeds {RSS_LIMIT_KIB} KiB"
    );
}
