//! An inotify event queue overflow while the daemon is stopped (SIGSTOP).

use std::collections::BTreeMap;
use std::time::Instant;

use super::{alive, folder_watch, matches_model, token_text, Model};
use crate::util::{unavailable, Daemon, Env};

#[test]
fn an_event_queue_overflow_rescans_and_new_subfolders_stay_watched() {
    let env = Env::new();
    let cfg = env.config("");
    let mut model: Model = BTreeMap::new();
    let p = env.write("tokens/a.vpptoken", token_text("Before", 300));
    model.insert(p, 300);
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 20, |s| matches_model(s, &model));

    // More events than the kernel queues for one inotify instance (each
    // file: create, open, modify, close), while the daemon is stopped and
    // cannot read them: the queue overflows for certain.
    let queue: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384);
    let files = queue / 3 + 500;
    if files > 40_000 {
        return unavailable(
            "queue overflow",
            &format!(
                "fs.inotify.max_queued_events is {queue}: overflowing it takes too many files"
            ),
        );
    }
    d.signal(libc::SIGSTOP);
    let started = Instant::now();
    for i in 0..files {
        let p = env.write(
            &format!("tokens/burst{i:05}.vpptoken"),
            token_text("Burst", 100 + (i % 500) as i64),
        );
        model.insert(p, 100 + (i % 500) as i64);
    }
    // Subfolders created at the end of the burst: their creation events
    // are among the lost ones.
    for i in 0..3 {
        let p = env.write(
            &format!("tokens/late{i}/t.vpptoken"),
            token_text("Late", 250),
        );
        model.insert(p, 250);
    }
    d.signal(libc::SIGCONT);
    let s = d.wait_for("every burst file after the overflow", 60, |s| {
        matches_model(s, &model)
    });
    let rescanned = started.elapsed();
    assert_eq!(folder_watch(&s)[0].1, "inotify");
    let log = d.log();
    assert!(
        log.contains("queue overflow"),
        "no overflow was reported:\n{log}"
    );

    // Let the backlog of queued events drain: a file written now at the top
    // is seen only after every event queued before it.
    let p = env.write("tokens/sentinel.vpptoken", token_text("Sentinel", 66));
    model.insert(p, 66);
    d.wait_for("the backlog drained", 30, |s| matches_model(s, &model));

    // The subfolders whose creation was lost must be watched too: a change
    // inside one is seen through events (no safety-net scan runs for an
    // hour).
    let started = Instant::now();
    let p = env.write("tokens/late1/u.vpptoken", token_text("After", 77));
    model.insert(p, 77);
    d.wait_for(
        "a change inside a subfolder created during the overflow",
        10,
        |s| matches_model(s, &model),
    );
    let after = started.elapsed();
    // The config file did not change: lost events are no reason to reload
    // it (a reload tells systemd RELOADING and scans every folder again).
    let log = d.log();
    assert!(
        !log.contains("config reloaded"),
        "an overflow reloaded an unchanged config:\n{log}"
    );
    assert!(alive(&mut d));
    d.stop();
    println!(
        "queue overflow: {} files written while the daemon was stopped (queue {queue} events); all seen {:.1} s after the burst began; \
         a change in a subfolder created during the overflow seen after {:.1} s",
        files + 3,
        rescanned.as_secs_f64(),
        after.as_secs_f64()
    );
}
