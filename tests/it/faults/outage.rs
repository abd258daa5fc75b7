//! A mail server outage over many retry rounds: each alert arrives once when it is back.

use super::{deliveries, outbox, poll_until, token_text};
use crate::smtp_stub::SmtpStub;
use crate::util::mail::smtp_config;
use crate::util::{Daemon, Env};

#[test]
fn mail_server_outage_over_many_retry_rounds_delivers_each_alert_once() {
    let mut stub = SmtpStub::start();
    stub.stop();
    let env = Env::new();
    let cfg = smtp_config(&env, stub.port, "max_mails_per_pass = 1000", &["tokens"]);
    for i in 0..10 {
        env.write(
            &format!("tokens/early{i}.vpptoken"),
            token_text(&format!("Early {i}"), 20),
        );
    }
    // Retries start after 50 ms instead of 5 s (test knob; doubling and
    // the cap scale with it), so many rounds fit in seconds.
    let mut d = Daemon::start_with(&env, &cfg, &[("TOKENWATCH_RETRY_BASE_MS", "50")]);
    d.wait_for("the first alerts failing a few rounds", 60, |s| {
        let o = outbox(s);
        o.len() == 10 && o.iter().all(|m| m["attempts"].as_u64() >= Some(3))
    });
    // New alerts arise while the server is still down.
    for i in 0..10 {
        env.write(
            &format!("tokens/late{i}.vpptoken"),
            token_text(&format!("Late {i}"), 5),
        );
    }
    let s = d.wait_for("every alert failing over many rounds", 60, |s| {
        let o = outbox(s);
        o.len() == 20
            && o.iter().all(|m| m["attempts"].as_u64() >= Some(4))
            && o.iter().any(|m| m["attempts"].as_u64() >= Some(8))
    });
    let rounds = outbox(&s)
        .iter()
        .filter_map(|m| m["attempts"].as_u64())
        .max()
        .unwrap_or(0);
    let refused = outbox(&s)
        .iter()
        .all(|m| m["last_error"].as_str().unwrap_or("").contains("refused"));
    assert!(refused, "{s}");
    assert_eq!(stub.connections(), 0);

    stub.restart();
    poll_until(
        "all 20 alerts delivered once the server is back",
        60,
        || deliveries(&stub).len() >= 20,
        || d.log(),
    );
    d.wait_for("outbox drained", 30, |s| outbox(s).is_empty());
    d.stop();
    let by_id = deliveries(&stub);
    let total: usize = by_id.values().map(|(_, n)| n).sum();
    println!(
        "mail server outage: down for {rounds} retry rounds, 20 alerts (10 arose during the outage), {} delivered, 0 lost, {} duplicates",
        by_id.len(),
        total - by_id.len()
    );
    assert_eq!(by_id.len(), 20);
    assert_eq!(total, 20, "each alert exactly once: {by_id:?}");
}
