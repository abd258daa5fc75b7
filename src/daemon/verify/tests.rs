use std::path::PathBuf;

use super::*;

fn asked(batch: &[ProbeRequest]) -> Vec<&str> {
    batch.iter().map(|r| r.fingerprint.as_str()).collect()
}

#[test]
fn requested_forgets_tokens_that_are_gone_and_asks_again_when_they_return() {
    let (a, b) = (Path::new("/t/a.vpptoken"), Path::new("/t/b.vpptoken"));
    let stale = |_: &str| false;
    let mut r = Requested::default();
    assert_eq!(
        asked(&r.select([("aa", a), ("bb", b)], false, stale)),
        ["aa", "bb"]
    );
    // Asked about once, not at every pass.
    assert!(r.select([("aa", a), ("bb", b)], false, stale).is_empty());
    assert_eq!(r.len(), 2);
    // bb is gone: forgotten.
    assert!(r.select([("aa", a)], false, stale).is_empty());
    assert_eq!(r.len(), 1);
    // ...and asked about again when it comes back.
    assert_eq!(
        asked(&r.select([("aa", a), ("bb", b)], false, stale)),
        ["bb"]
    );
    // Renamed: asked about under its new name; the old name is forgotten.
    let moved = Path::new("/t/moved.vpptoken");
    assert_eq!(
        asked(&r.select([("aa", moved), ("bb", b)], false, stale)),
        ["aa"]
    );
    assert_eq!(r.len(), 2);
}

#[test]
fn requested_skips_fresh_verdicts_except_on_schedule() {
    let a = Path::new("/t/a.vpptoken");
    let fresh = |_: &str| true;
    let mut r = Requested::default();
    assert!(r.select([("aa", a)], false, fresh).is_empty());
    assert_eq!(asked(&r.select([("aa", a)], true, fresh)), ["aa"]);
}

#[test]
fn requested_stays_the_size_of_the_folders_over_many_passes() {
    let mut r = Requested::default();
    let paths: Vec<PathBuf> = (0..1000)
        .map(|i| PathBuf::from(format!("/t/{i}")))
        .collect();
    for pass in 0..100 {
        // Each pass sees 1,000 tokens, a tenth of them new.
        let fps: Vec<String> = (0..1000).map(|i| format!("{}", i + pass * 100)).collect();
        r.select(
            fps.iter()
                .map(String::as_str)
                .zip(paths.iter().map(PathBuf::as_path)),
            false,
            |_| false,
        );
        assert_eq!(r.len(), 1000);
    }
}

/// A token file as a scan finds it.
fn found(dir: &Path, name: &str, org: &str) -> FoundFile {
    let text = crate::token::sample_token(org, Utc::now() + chrono::Duration::days(200));
    let (fingerprint, content) = crate::token::parse_with_fingerprint(text.as_bytes());
    FoundFile {
        path: dir.join(name),
        folder: 0,
        kind: crate::token::KindId::default(),
        size: text.len() as u64,
        mtime: None,
        file_id: None,
        via_link: false,
        world_readable: false,
        fingerprint: Some(fingerprint),
        content: content.map_err(crate::token::found::FileError::Token),
        stamp: None,
    }
}

fn fp(f: &FoundFile) -> String {
    f.token().unwrap().fingerprint.as_str().to_owned()
}

fn verdict(f: &FoundFile, verified_at: DateTime<Utc>, failed: bool) -> AppleRecordEntry {
    let mut record =
        super::super::prober::first_record(&fp(f), verified_at, crate::evaluate::Verdict::Valid);
    record.first_failure_at = failed.then_some(verified_at);
    (fp(f), record)
}

type AppleRecordEntry = (String, crate::assess::AppleRecord);

fn verifier(clock: Arc<dyn Clock>) -> Verifier {
    let never: ProberFactory = Box::new(|_| Err("not in this test".into()));
    Verifier::new(never, mpsc::channel(1).0, clock, Timing::default())
}

/// What a pass asks Apple depends on `now` against each verdict and the
/// verify schedule's interval: the clock is moved, nothing waits.
#[test]
fn a_pass_asks_about_new_stale_and_failed_tokens_once_and_the_schedule_about_all() {
    let start: DateTime<Utc> = "2027-01-10T12:00:00Z".parse().unwrap();
    let clock = super::super::deps::FakeClock::at(start);
    let mut v = verifier(clock.clone());
    let every_6h = CronSchedule::parse("0 0 */6 * * *", chrono_tz::Tz::UTC).unwrap();
    let dir = Path::new("/t");
    let files: Vec<FoundFile> = ["fresh", "stale", "failed", "new"]
        .iter()
        .map(|n| found(dir, &format!("{n}.vpptoken"), n))
        .collect();
    let hours = chrono::Duration::hours;
    let verdicts: Verdicts = [
        verdict(&files[0], start - hours(5), false),
        verdict(&files[1], start - hours(7), false),
        verdict(&files[2], start - hours(1), true),
    ]
    .into_iter()
    .collect();
    // What `request` hands the prober at the clock's `now`, by file stem.
    let ask = |v: &mut Verifier, all: bool| -> Vec<String> {
        let now = clock.now();
        let fresh_for = v.fresh_for(&every_6h, now);
        let batch = select(&mut v.requested, now, all, &verdicts, fresh_for, &files);
        batch
            .iter()
            .map(|r| r.path.file_stem().unwrap().to_string_lossy().into_owned())
            .collect()
    };

    assert_eq!(v.fresh_for(&every_6h, clock.now()), hours(6));
    assert_eq!(ask(&mut v, false), ["stale", "failed", "new"]);

    // Two hours on, "fresh" is 7 h old, but a pass asks about a token once:
    // the schedule asks again.
    clock.advance(hours(2));
    assert!(ask(&mut v, false).is_empty());
    assert_eq!(ask(&mut v, true), ["fresh", "stale", "failed", "new"]);

    // The Apple settings changed: everything is forgotten, and a pass asks
    // about what is not fresh now.
    v.stop();
    assert_eq!(ask(&mut v, false), ["fresh", "stale", "failed", "new"]);
}

#[test]
fn the_probe_is_built_only_when_verify_is_on_and_its_error_is_kept() {
    let v = verifier(Arc::new(crate::daemon::SystemClock));
    let mut cfg = crate::config::parse(
        "[alerts]\nrecipients = [\"ops@example.com\"]\n[[folder]]\npath = \"t\"\n",
        Path::new("/t/tokenwatch.toml"),
    )
    .unwrap();
    assert!(matches!(v.probe_for(&cfg), Ok(None)));
    cfg.apple.verify = true;
    assert_eq!(v.probe_for(&cfg).err().as_deref(), Some("not in this test"));
}
