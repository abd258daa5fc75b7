//! Crash torture: kill -9 at random moments, mail in flight included, and no alert is ever lost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::Rng;

use super::{deliveries, integrity, outbox, poll_until, rng_for, token_text};
use crate::smtp_stub::SmtpStub;
use crate::util::mail::smtp_config;
use crate::util::{Daemon, Env};

#[test]
fn crash_torture_kill_9_twenty_times_loses_no_alert() {
    const TOKENS: usize = 200;
    const KILLS: usize = 20;
    let mut rng = rng_for("crash torture");
    let stub = SmtpStub::start();
    // The stub is slow to answer DATA (a kill then leaves the mail unsent,
    // to be sent after the restart), and records a message before it
    // answers 250 (a kill then leaves it delivered but unrecorded: the one
    // legitimate duplicate). Both keep mail going out through all the kills:
    // the delays grow with the sends the daemon keeps in flight, so it
    // delivers about 11 mails a second however many that is and the 200
    // alerts outlast the torture (with delays fixed for 4 sends at once,
    // 16 at once had every mail out before the last kills, which then found
    // no mail to aim at).
    let sends_at_once = tokenwatch::daemon::sender::PARALLEL_SENDS as u32;
    let data_delay = Duration::from_millis(250) * sends_at_once / 4;
    let answer_delay = Duration::from_millis(100) * sends_at_once / 4;
    stub.set_data_delay(data_delay);
    stub.set_delay(answer_delay);
    let env = Env::new();
    let cfg = smtp_config(&env, stub.port, "max_mails_per_pass = 1000", &["tokens"]);
    for i in 0..TOKENS {
        env.write(
            &format!("tokens/t{i:03}.vpptoken"),
            token_text(&format!("Org {i:03}"), 20),
        );
    }

    // Kills that found mail in flight, and how many mails that was in all.
    let mut mid_delivery = 0;
    let mut in_flight_at_kills = 0;
    for kill in 0..KILLS {
        let started = Instant::now();
        let d = Daemon::start(&env, &cfg);
        if kill % 2 == 0 {
            // A random moment: start-up, scanning, queueing or sending.
            std::thread::sleep(Duration::from_millis(rng.random_range(100..1200)));
        } else {
            // Aimed at a delivery however slowly this machine starts the
            // daemon: once one of its mails is in flight, some way into
            // the stub's delays.
            assert!(
                stub.wait_for_open(started, Duration::from_secs(60)),
                "kill {kill}: no mail went out within 60 s\n{}",
                d.log()
            );
            std::thread::sleep(
                rng.random_range(Duration::ZERO..(data_delay + answer_delay) * 3 / 4),
            );
        }
        let killing = Instant::now();
        drop(d); // SIGKILL, and reaped
        let in_flight = stub.open_across(started..killing, Instant::now());
        in_flight_at_kills += in_flight;
        if in_flight > 0 {
            mid_delivery += 1;
        }
    }
    let sent_during_torture = stub.messages().len();

    let mut d = Daemon::start(&env, &cfg);
    poll_until(
        "every alert delivered after the last restart",
        90,
        || deliveries(&stub).len() >= TOKENS,
        || {
            format!(
                "{} distinct delivered\n{}",
                deliveries(&stub).len(),
                d.log()
            )
        },
    );
    d.wait_for("outbox drained", 30, |s| outbox(s).is_empty());
    d.stop();

    let by_id = deliveries(&stub);
    let total: usize = by_id.values().map(|(_, n)| n).sum();
    let duplicates = total - by_id.len();
    // One alert per token, each under one Message-ID.
    let mut orgs: BTreeMap<String, usize> = BTreeMap::new();
    for (subject, _) in by_id.values() {
        let org = subject
            .split("for ")
            .nth(1)
            .and_then(|s| s.split(" (").next())
            .unwrap_or(subject)
            .to_string();
        *orgs.entry(org).or_default() += 1;
    }
    println!(
        "crash torture: {KILLS} kills (kill -9; {mid_delivery} with mail in flight, {in_flight_at_kills} mails in flight in all, \
         {sent_during_torture} mails accepted before the last restart), \
         {TOKENS} alerts, {} delivered, 0 lost, {duplicates} duplicates (same Message-ID)",
        by_id.len()
    );
    assert!(
        mid_delivery * 3 >= KILLS,
        "only {mid_delivery} of {KILLS} kills landed with mail in flight"
    );
    assert_eq!(by_id.len(), TOKENS, "every alert delivered");
    assert_eq!(orgs.len(), TOKENS, "one alert per token: {orgs:?}");
    assert!(
        orgs.values().all(|&n| n == 1),
        "an alert went out under two Message-IDs: {orgs:?}"
    );
    // Each kill can leave at most the mails in flight (a few are sent at
    // once) accepted but unrecorded.
    assert!(
        duplicates <= KILLS * sends_at_once as usize,
        "{duplicates} duplicates for {KILLS} kills with {sends_at_once} sends in flight"
    );
    assert_eq!(integrity(&env.path().join("state")), "ok");
}
