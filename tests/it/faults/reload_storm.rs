//! A storm of config reloads under load: the last valid config stays in charge.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{alive, folder_watch, poll_until, rng_for, token_rows, token_text};
use crate::smtp_stub::SmtpStub;
use crate::util::{Daemon, Env};

/// Folders of the valid storm config `k` (even).
fn storm_folders(k: usize) -> &'static [&'static str] {
    match (k / 2) % 3 {
        0 => &["a"],
        1 => &["a", "b"],
        _ => &["b", "c"],
    }
}

/// The largest lead day of the valid storm config `k` (even): which tokens
/// are `expiring` shows the policy in charge.
fn storm_lead(k: usize) -> i64 {
    20 + ((k / 2) % 20) as i64
}

/// A valid config for even `k` (folders and lead days vary) or, for odd
/// `k`, one of several kinds of invalid config.
fn storm_config(k: usize, port: u16) -> String {
    let head = "state_dir = \"state\"\n";
    let alerts = "[alerts]\nrecipients = [\"ops@example.com\"]\n";
    if k % 2 == 1 {
        return match (k / 2) % 6 {
            0 => format!("{head}[alerts\nrecipients = [\"ops@example.com\"]\n"),
            1 => format!("{head}bogus_key = 1\n{alerts}[[folder]]\npath = \"a\"\n"),
            2 => format!("{head}{alerts}"),
            3 => format!("{head}{alerts}[schedule]\ncheck = \"not cron\"\n[[folder]]\npath = \"a\"\n"),
            4 => format!("{head}timezone = \"Mars/Olympus\"\n{alerts}[[folder]]\npath = \"a\"\n"),
            // Valid TOML and settings, but the mailer cannot be built.
            _ => format!("{head}{alerts}[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"starttls\"\nusername = \"u\"\npassword_file = \"no-such-password-file\"\n[[folder]]\npath = \"a\"\n"),
        };
    }
    let mut text = format!(
        "{head}[alerts]\nrecipients = [\"ops@example.com\"]\nlead_days = [{}, 7]\nmax_mails_per_pass = 1000\n[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n",
        storm_lead(k)
    );
    for f in storm_folders(k) {
        text.push_str(&format!("[[folder]]\npath = \"{f}\"\nallow_empty = true\n"));
    }
    text
}

#[test]
fn a_storm_of_100_reloads_under_load_leaves_the_last_valid_config_in_charge() {
    const TOKENS: i64 = 20;
    let mut rng = rng_for("reload storm");
    let stub = SmtpStub::start();
    let env = Env::new();
    // Token i expires in 20 + i days, so lead day L makes L - 19 of each
    // folder's tokens `expiring`.
    let token = |f: &str, i: i64| token_text(&format!("{f} {i}"), 20 + i);
    for f in ["a", "b", "c"] {
        for i in 0..TOKENS {
            env.write(&format!("{f}/t{i}.vpptoken"), token(f, i));
        }
    }
    let cfg = env.write("tokenwatch.toml", storm_config(0, stub.port));
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 20, |s| token_rows(s).len() == TOKENS as usize);

    // Load: tokens keep being replaced (editor saves) during the storm.
    let stop_load = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop_load = stop_load.clone();
        let root = env.path().to_path_buf();
        let seed: u64 = rng.random();
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut writes = 0usize;
            while !stop_load.load(std::sync::atomic::Ordering::Relaxed) {
                let f = ["a", "b", "c"][rng.random_range(0..3)];
                let i = rng.random_range(0..TOKENS);
                let tmp = root.join(format!("{f}/.t{i}.swp"));
                let _ = std::fs::write(&tmp, token(f, i));
                let _ = std::fs::rename(&tmp, root.join(format!("{f}/t{i}.vpptoken")));
                writes += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            writes
        })
    };

    const RELOADS: usize = 100;
    // Every reload, applied or rejected, leaves at least one such line.
    let reloads_logged = |log: &str| {
        log.lines()
            .filter(|l| l.contains("config reloaded") || l.contains("rejected"))
            .count()
    };
    let started = Instant::now();
    for k in 1..=RELOADS {
        // Editors replace the file; SIGHUP makes the reload happen now, and
        // now and then a pause lets the config watcher reload it as well.
        let tmp = env.path().join(".tokenwatch.toml.new");
        std::fs::write(&tmp, storm_config(k, stub.port)).unwrap();
        std::fs::rename(&tmp, &cfg).unwrap();
        let before = reloads_logged(&d.log());
        d.signal(libc::SIGHUP);
        poll_until(
            &format!("reload {k} to be logged"),
            20,
            || reloads_logged(&d.log()) > before,
            || d.log(),
        );
        assert!(alive(&mut d), "died at reload {k}:\n{}", d.log());
        if rng.random_bool(0.1) {
            std::thread::sleep(Duration::from_millis(rng.random_range(300..600)));
        }
    }
    let storm = started.elapsed();

    // The 100th config is valid, and no other valid one in the storm has
    // both its folders and its lead day.
    let want_folders: Vec<String> = storm_folders(RELOADS)
        .iter()
        .map(|f| env.path().join(f).display().to_string())
        .collect();
    let expiring_per_folder = (0..TOKENS)
        .filter(|i| 20 + i <= storm_lead(RELOADS))
        .count();
    let want_expiring = expiring_per_folder * want_folders.len();
    let in_charge = |s: &serde_json::Value| {
        let folders: Vec<String> = folder_watch(s).into_iter().map(|(p, _)| p).collect();
        let rows = token_rows(s);
        s["config_error"].is_null()
            && folders == want_folders
            && rows.len() == TOKENS as usize * want_folders.len()
            && rows.iter().filter(|(_, st, _)| st == "expiring").count() == want_expiring
    };
    d.wait_for("the last valid config in charge", 30, in_charge);

    // One more invalid config: rejected, the last valid one stays.
    std::fs::write(&cfg, storm_config(1, stub.port)).unwrap();
    d.signal(libc::SIGHUP);
    let s = d.wait_for("the invalid config rejected", 20, |s| {
        s["config_error"].is_array()
    });
    let folders: Vec<String> = folder_watch(&s).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        folders, want_folders,
        "the rejected config changed the folders"
    );

    stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = load.join().unwrap();
    assert!(alive(&mut d), "{}", d.log());
    let log = d.log();
    let applied = log.matches("config reloaded").count();
    let rejected = log.lines().filter(|l| l.contains("rejected")).count();
    assert!(applied + rejected > RELOADS, "{applied} + {rejected}");
    d.stop();
    println!(
        "reload storm: {RELOADS} config replacements (50 valid, 50 invalid of 6 kinds) + 1 final invalid in {:.1} s, \
         {writes} token rewrites meanwhile; {applied} reloads applied, {rejected} rejected (SIGHUP and the config watcher); no crash; \
         the last valid config in charge ({} folders, lead {} days, {want_expiring} expiring)",
        storm.as_secs_f64(),
        want_folders.len(),
        storm_lead(RELOADS)
    );
}
