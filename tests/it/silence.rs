//! `tokenwatch silence`: set, list and lift silences in the state the
//! daemon keeps, by file or fingerprint prefix, with exit 3 for what it
//! cannot name.

use crate::util::{Daemon, Env};

/// A daemon has scanned two tokens and stopped: the state knows them.
fn scanned() -> (Env, std::path::PathBuf, String) {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/closed.vpptoken", "Closed Location", 40);
    env.sample("tokens/open.vpptoken", "Open Location", 200);
    let mut d = Daemon::start(&env, &cfg);
    let status = d.wait_for("both tokens scanned", 20, |s| {
        s["tokens"].as_array().is_some_and(|t| t.len() == 2)
    });
    d.stop();
    let fingerprint = status["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"].as_str().unwrap().ends_with("closed.vpptoken"))
        .unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    (env, cfg, fingerprint)
}

#[test]
fn a_credential_is_silenced_by_file_listed_and_lifted_by_prefix() {
    let (env, cfg, fingerprint) = scanned();
    let cfg = cfg.to_str().unwrap();
    let file = env.path().join("tokens/closed.vpptoken");
    let set = env.run(&[
        "-c",
        cfg,
        "silence",
        file.to_str().unwrap(),
        "--until",
        "2099-01-01",
        "--reason",
        "location closed\nfor good",
    ]);
    set.expect_code(0);
    assert!(
        set.stdout().contains(&fingerprint[..12]),
        "{}",
        set.describe()
    );

    let list = env.run(&["-c", cfg, "silence", "list", "--json"]);
    let listed = list.expect_code(0).json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    // Views show 12 digits; the list gives the whole fingerprint.
    let full = listed[0]["fingerprint"].as_str().unwrap();
    assert!(full.len() == 64 && full.starts_with(&fingerprint), "{full}");
    assert_eq!(listed[0]["until"], "2099-01-01T00:00:00Z");
    assert_eq!(listed[0]["reason"], "location closed for good");
    assert_eq!(listed[0]["active"], true);
    assert!(listed[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("closed.vpptoken"));

    env.run(&["-c", cfg, "silence", "clear", &fingerprint[..8]])
        .expect_code(0);
    let list = env.run(&["-c", cfg, "silence", "list", "--json"]);
    assert_eq!(list.expect_code(0).json(), serde_json::json!([]));
    // Lifting it again names nothing silenced.
    env.run(&["-c", cfg, "silence", "clear", &fingerprint[..8]])
        .expect_code(3);
}

#[test]
fn unknown_credentials_and_bad_or_past_dates_exit_3_and_store_nothing() {
    let (env, cfg, fingerprint) = scanned();
    let cfg = cfg.to_str().unwrap();
    for (args, says) in [
        (
            vec!["ffffffff", "--until", "2099-01-01"],
            "no credential with a fingerprint starting ffffffff",
        ),
        (
            vec!["abc", "--until", "2099-01-01"],
            "not a fingerprint prefix of at least 8 hex digits",
        ),
        (
            vec![&fingerprint[..8], "--until", "soon"],
            "--until \"soon\"",
        ),
        (
            vec![&fingerprint[..8], "--until", "2020-01-01"],
            "not in the future",
        ),
        (
            vec!["notes.txt", "--until", "2099-01-01"],
            "not a readable credential",
        ),
    ] {
        env.write("notes.txt", "hello");
        let mut full = vec!["-c", cfg, "silence"];
        full.extend(args.iter().copied());
        let run = env.run(&full);
        run.expect_code(3);
        assert!(run.stderr().contains(says), "{args:?}: {}", run.describe());
    }
    let list = env.run(&["-c", cfg, "silence", "list", "--json"]);
    assert_eq!(list.expect_code(0).json(), serde_json::json!([]));
}

fn mails_about(env: &Env, org: &str) -> usize {
    crate::util::mail::read_mails(&env.path().join("state/mail"))
        .iter()
        .filter(|(_, _, text)| text.contains(org))
        .count()
}

/// The status lists a credential of this file name.
fn lists(status: &serde_json::Value, file: &str) -> bool {
    status["tokens"].as_array().is_some_and(|tokens| {
        tokens
            .iter()
            .any(|t| t["path"].as_str().is_some_and(|p| p.ends_with(file)))
    })
}

fn silenced_of(status: &serde_json::Value, file: &str) -> serde_json::Value {
    status["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"].as_str().unwrap().ends_with(file))
        .unwrap()["silenced"]
        .clone()
}

/// The credential's alerts come due while it is silenced (the daemon
/// first sees it then); they are recorded as done, so lifting the silence
/// sends nothing about them.
#[test]
fn a_silenced_credential_gets_no_mail_across_a_restart_and_no_replay_once_lifted() {
    let env = Env::new();
    let cfg_path = env.config("");
    let cfg = cfg_path.to_str().unwrap();
    // A state to keep the silence in.
    env.sample("tokens/canary0.vpptoken", "Zeroth Canary", -1);
    let mut d = Daemon::start(&env, &cfg_path);
    d.wait_for("a mail about the canary", 20, |_| {
        mails_about(&env, "Zeroth Canary") > 0
    });
    d.stop();
    std::fs::remove_file(env.path().join("tokens/canary0.vpptoken")).unwrap();
    let file = env.sample("tokens/closed.vpptoken", "Closed Location", 3);
    env.run(&[
        "-c",
        cfg,
        "silence",
        file.to_str().unwrap(),
        "--until",
        "2099-01-01",
        "--reason",
        "closed",
    ])
    .expect_code(0);

    let check = env.run(&["-c", cfg, "check", "--json"]);
    check.expect_code(0);
    let silenced = silenced_of(&check.json(), "closed.vpptoken");
    assert_eq!(
        silenced["until"],
        "2099-01-01T00:00:00Z",
        "{}",
        check.describe()
    );
    assert_eq!(silenced["reason"], "closed");
    assert!(env
        .run(&["-c", cfg, "check"])
        .stdout()
        .contains("silenced until"));

    // Killed and started again while the silence holds; a token that is
    // not silenced shows the passes ran and mailed.
    for (i, canary) in [(1, "First Canary"), (2, "Second Canary")] {
        env.sample(&format!("tokens/canary{i}.vpptoken"), canary, -1);
        let mut d = Daemon::start(&env, &cfg_path);
        // Alerts go out before the pass stores its status: wait for both.
        let status = d.wait_for("a mail about the canary, and its pass's status", 20, |s| {
            mails_about(&env, canary) > 0 && lists(s, &format!("canary{i}.vpptoken"))
        });
        assert_eq!(silenced_of(&status, "closed.vpptoken")["reason"], "closed");
        d.signal(libc::SIGKILL);
        d.wait_exit(20);
    }
    assert_eq!(mails_about(&env, "Closed Location"), 0, "silenced");

    env.run(&["-c", cfg, "silence", "clear", file.to_str().unwrap()])
        .expect_code(0);
    for i in 1..=2 {
        std::fs::remove_file(env.path().join(format!("tokens/canary{i}.vpptoken"))).unwrap();
    }
    // Counted again: 3 days left is critical.
    env.run(&["-c", cfg, "check"]).expect_code(2);
    env.sample("tokens/later.vpptoken", "Later Canary", -1);
    let mut d = Daemon::start(&env, &cfg_path);
    let status = d.wait_for(
        "a mail about the last canary, and its pass's status",
        20,
        |s| mails_about(&env, "Later Canary") > 0 && lists(s, "later.vpptoken"),
    );
    d.stop();
    assert!(silenced_of(&status, "closed.vpptoken").is_null());
    assert_eq!(
        mails_about(&env, "Closed Location"),
        0,
        "alerts that came due while silenced are not replayed"
    );
}

/// The digest, by mail and in chat, marks the silenced credential as the
/// status table does.
#[test]
fn a_digest_marks_the_silenced_credential_in_mail_and_chat() {
    let (env, _, fingerprint) = scanned();
    let stub = crate::webhook_stub::WebhookStub::start();
    let hooks = crate::webhook_daemon::hooks(&env, &stub);
    let cfg = env.config(&format!(
        "webhooks = [\"slack-hook\"]\n[schedule]\ndigest = \"* * * * * *\"\n{hooks}"
    ));
    let cfg_s = cfg.to_str().unwrap();
    env.run(&[
        "-c",
        cfg_s,
        "silence",
        &fingerprint[..8],
        "--until",
        "2099-01-01",
        "--reason",
        "closed",
    ])
    .expect_code(0);
    let digests = || {
        crate::util::mail::read_mails(&env.path().join("state/mail"))
            .into_iter()
            .map(|(_, _, text)| text)
            .filter(|text| text.contains("Digest:"))
            .collect::<Vec<_>>()
    };
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("the digest mailed and posted", 30, |s| {
        !digests().is_empty()
            && s["outbox"].as_array().is_some_and(Vec::is_empty)
            && stub.posts().iter().any(|p| p.body.contains("Digest:"))
    });
    d.stop();
    let mark = "silenced until 2099-01-01 00:00 UTC: closed";
    let mail = &digests()[0];
    let marked: Vec<&str> = mail.lines().filter(|l| l.contains(mark)).collect();
    // Once in the text and once in the HTML part.
    assert_eq!(marked.len(), 2, "{mail}");
    assert!(marked
        .iter()
        .all(|l| l.contains("closed.vpptoken") || l.contains("<span")));
    assert!(!mail
        .lines()
        .any(|l| l.contains("open.vpptoken") && l.contains("silenced")));
    let post = stub
        .posts()
        .into_iter()
        .find(|p| p.body.contains("Digest:"))
        .unwrap();
    assert!(
        post.body
            .contains(&format!("Closed Location (closed.vpptoken): {mark}")),
        "{}",
        post.body
    );
}
