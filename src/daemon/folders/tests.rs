use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::Config;

/// Two folders, `a` and `b`, in a temporary directory, and the config
/// file naming them.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    cfg: Config,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    for f in ["a", "b"] {
        std::fs::create_dir(root.join(f)).unwrap();
    }
    let text = "[alerts]\nrecipients = [\"ops@example.com\"]\n\
                [[folder]]\npath = \"a\"\nallow_empty = true\n\
                [[folder]]\npath = \"b\"\nallow_empty = true\n";
    let cfg = crate::config::parse(text, &root.join("tokenwatch.toml")).unwrap();
    Setup {
        _tmp: tmp,
        root,
        cfg,
    }
}

/// Short debounces; polls and looks for missing folders so far off that
/// only events make a folder due.
fn timing() -> Timing {
    Timing {
        debounce_quiet: Duration::from_millis(10),
        debounce_max: Duration::from_millis(25),
        poll_every: Duration::from_secs(3600),
        retry_missing_every: Duration::from_secs(3600),
        ..Timing::default()
    }
}

fn token(org: &str) -> String {
    crate::token::sample_token(org, chrono::Utc::now() + chrono::Duration::days(200))
}

fn changed(path: &Path) -> WatchEvent {
    WatchEvent::Changed(vec![path.to_path_buf()])
}

/// Without a watcher every folder is polled; the set still takes events
/// (the watcher may fail later) and rescans only the folder they name,
/// once it has been quiet for the injected debounce.
#[test]
fn an_event_rescans_only_its_folder_once_quiet_and_a_pass_only_when_something_changed() {
    let s = setup();
    let mut set = FolderSet::new(None, timing());
    set.configure(&s.cfg);
    set.rescan_all(&|| {}, &|| false);
    set.mark_passed();
    assert_eq!(set.slots().len(), 2);
    assert!(set
        .slots()
        .iter()
        .all(|s| s.mode_name() == "poll (watcher failed)"));

    let file = s.root.join("a/new.vpptoken");
    std::fs::write(&file, token("Acme")).unwrap();
    let t0 = Instant::now();
    assert_eq!(set.on_event(changed(&file), &s.root.join("x"), t0), None);
    assert_eq!(set.next_due(), Some(t0 + Duration::from_millis(10)));
    // Not quiet long enough yet: nothing is scanned.
    assert!(!set.rescan_due(t0 + Duration::from_millis(9), &|| {}));
    assert!(set.files().next().is_none());
    // Quiet: folder a is rescanned and now holds the token; b is not due.
    assert!(set.rescan_due(t0 + Duration::from_millis(10), &|| {}));
    let found: Vec<_> = set.files().map(|f| f.path.clone()).collect();
    assert_eq!(found, std::slice::from_ref(&file));
    set.mark_passed();

    // An event that changed nothing a pass reads: rescanned, no pass.
    let t1 = t0 + Duration::from_secs(1);
    set.on_event(changed(&file), &s.root.join("x"), t1);
    assert!(!set.rescan_due(t1 + Duration::from_millis(10), &|| {}));
    assert_eq!(
        set.next_due().map(|t| t > t1 + Duration::from_secs(60)),
        Some(true)
    );
}

#[test]
fn events_keep_coming_and_the_wait_since_the_first_is_capped() {
    let s = setup();
    let mut set = FolderSet::new(None, timing());
    set.configure(&s.cfg);
    set.rescan_all(&|| {}, &|| false);
    let p = s.root.join("b/x.vpptoken");
    let t0 = Instant::now();
    for ms in [0, 8, 16, 24] {
        set.on_event(
            changed(&p),
            &s.root.join("x"),
            t0 + Duration::from_millis(ms),
        );
    }
    assert_eq!(set.next_due(), Some(t0 + Duration::from_millis(25)));
}

#[test]
fn the_config_file_and_lost_events_are_reported_to_the_loop() {
    let s = setup();
    let config_file = s.root.join("tokenwatch.toml");
    let mut set = FolderSet::new(None, timing());
    set.configure(&s.cfg);
    set.rescan_all(&|| {}, &|| false);
    let t0 = Instant::now();
    assert_eq!(
        set.on_event(changed(&config_file), &config_file, t0),
        Some(ConfigNews::Changed)
    );
    // Neither folder is below the config file's folder's own entry.
    assert_eq!(
        set.next_due().map(|t| t > t0 + Duration::from_secs(60)),
        Some(true)
    );
    // Lost events: the loop is told, and every folder is rescanned.
    assert_eq!(
        set.on_event(WatchEvent::Overflow, &config_file, t0),
        Some(ConfigNews::EventsLost)
    );
    assert_eq!(set.next_due(), Some(t0 + Duration::from_millis(10)));
}

#[test]
fn a_reload_keeps_the_folders_still_configured_and_drops_the_others() {
    let s = setup();
    let mut set = FolderSet::new(None, timing());
    set.configure(&s.cfg);
    std::fs::write(s.root.join("a/t.vpptoken"), token("Acme")).unwrap();
    set.rescan_all(&|| {}, &|| false);
    assert_eq!(set.files().count(), 1);

    let text = "[alerts]\nrecipients = [\"ops@example.com\"]\n\
                [[folder]]\npath = \"a\"\nallow_empty = true\n";
    let only_a = crate::config::parse(text, &s.root.join("tokenwatch.toml")).unwrap();
    set.configure(&only_a);
    assert_eq!(set.slots().len(), 1);
    // Folder a kept what its last scan found.
    assert_eq!(set.files().count(), 1);
}

/// Waits for the watcher's next event and hands it to the set.
async fn next_event(
    set: &mut FolderSet,
    rx: &mut tokio::sync::mpsc::Receiver<WatchEvent>,
    cfg: &Path,
) {
    let ev = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("no filesystem event within 30 s")
        .expect("the watcher is gone");
    set.on_event(ev, cfg, Instant::now());
}

/// A file renamed into a watched folder, or closed after writing, is
/// finished: the folder is looked at at once, not after the quiet window
/// (a minute here), while a file still open for writing waits for it.
#[tokio::test]
async fn a_finished_file_is_scanned_at_once_and_one_still_written_waits_for_quiet() {
    let s = setup();
    let config_file = s.root.join("tokenwatch.toml");
    let (tx, mut rx) = tokio::sync::mpsc::channel(crate::watch::QUEUE);
    let watcher = crate::watch::Watcher::new(tx).unwrap();
    let long = Timing {
        debounce_quiet: Duration::from_secs(60),
        debounce_max: Duration::from_secs(120),
        finished_gap: Duration::ZERO,
        ..timing()
    };
    let mut set = FolderSet::new(Some(watcher), long);
    set.configure(&s.cfg);
    set.rescan_all(&|| {}, &|| false);
    // The look that follows arming the watches, done now.
    set.rescan_due(Instant::now() + Duration::from_secs(600), &|| {});
    set.mark_passed();
    assert!(set.slots().iter().all(|s| s.mode_name() == "inotify"));
    assert_eq!(set.next_due(), None);

    // Written elsewhere, renamed in: one IN_MOVED_TO.
    let staging = tempfile::tempdir().unwrap();
    let src = staging.path().join("up.vpptoken");
    std::fs::write(&src, token("Renamed")).unwrap();
    let renamed = s.root.join("a/up.vpptoken");
    std::fs::rename(&src, &renamed).unwrap();
    next_event(&mut set, &mut rx, &config_file).await;
    let due = set.next_due().expect("the rename makes folder a due");
    assert!(
        due <= Instant::now(),
        "a renamed-in file waits for no quiet window"
    );
    assert!(set.rescan_due(Instant::now(), &|| {}));
    assert!(set.files().any(|f| f.path == renamed));
    set.mark_passed();

    // Written in place: due only once quiet while it is open...
    let written = s.root.join("b/slow.vpptoken");
    let mut file = std::fs::File::create(&written).unwrap();
    next_event(&mut set, &mut rx, &config_file).await;
    std::io::Write::write_all(&mut file, token("Written").as_bytes()).unwrap();
    next_event(&mut set, &mut rx, &config_file).await;
    let due = set.next_due().expect("the write makes folder b due");
    assert!(
        due > Instant::now() + Duration::from_secs(30),
        "an open file waits for the quiet window"
    );
    assert!(!set.rescan_due(Instant::now(), &|| {}));
    // ...and at once when it is closed (IN_CLOSE_WRITE).
    drop(file);
    while set.next_due().is_some_and(|t| t > Instant::now()) {
        next_event(&mut set, &mut rx, &config_file).await;
    }
    assert!(set.rescan_due(Instant::now(), &|| {}));
    assert!(set.files().any(|f| f.path == written));
}

/// Told to stop after the first folder, a full rescan leaves the second
/// unscanned and says so, so that no pass takes its tokens for removed.
#[test]
fn a_full_rescan_told_to_stop_scans_no_further_folder_and_says_so() {
    let s = setup();
    std::fs::write(s.root.join("a/one.vpptoken"), token("Acme")).unwrap();
    std::fs::write(s.root.join("b/two.vpptoken"), token("Beta")).unwrap();
    let mut set = FolderSet::new(None, timing());
    set.configure(&s.cfg);
    let asked = std::cell::Cell::new(0);
    let finished = set.rescan_all(&|| {}, &|| {
        asked.set(asked.get() + 1);
        asked.get() > 1
    });
    assert!(!finished);
    let files: Vec<usize> = set.slots().iter().map(|s| s.files.len()).collect();
    assert_eq!(files, [1, 0]);

    assert!(set.rescan_all(&|| {}, &|| false));
    let files: Vec<usize> = set.slots().iter().map(|s| s.files.len()).collect();
    assert_eq!(files, [1, 1]);
}
