//! `tokenwatch account password-changed`: the real binary edits a real
//! config file, and a running daemon acts on the edit without a restart.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::util::{Daemon, Env, Run};

const ACCOUNT: &str = "apps@acme.appleaccount.com";

const COMMENTED: &str = "\
# tokenwatch for ACME: ask ops before changing
timezone = \"Europe/Berlin\"   # ops are in Berlin
state_dir = \"state\"

[alerts]
recipients = [\"ops@example.com\"]

# The account behind the Berlin tokens.
[[account]]
id = \"apps@acme.appleaccount.com\"  # rotated yearly

# Token folders
[[folder]]
path = \"tokens\"
account = \"apps@acme.appleaccount.com\"
# end of file
";

/// `tokenwatch -c tokenwatch.toml account password-changed ARGS` in `env`.
fn password_changed(env: &Env, args: &[&str]) -> Run {
    let mut all = vec!["-c", "tokenwatch.toml", "account", "password-changed"];
    all.extend_from_slice(args);
    env.run(&all)
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn password_changed_keeps_the_comments_and_the_config_stays_valid() {
    let env = Env::new();
    let cfg = env.write("tokenwatch.toml", COMMENTED);
    let run = password_changed(&env, &[ACCOUNT, "--at", "2026-01-15 10:30"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains(&format!(
            "the password of {ACCOUNT} changed at 2026-01-15T09:30:00Z"
        )),
        "{}",
        run.describe()
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    // Exactly one line added, right under the account's id; the rest is
    // the file as ops wrote it.
    assert_eq!(
        text,
        COMMENTED.replace(
            "# rotated yearly\n",
            "# rotated yearly\npassword_changed = 2026-01-15T09:30:00Z\n"
        ),
        "{}",
        run.describe()
    );
    env.run(&["-c", "tokenwatch.toml", "config", "check"])
        .expect_code(0);

    // A second change replaces the first instead of adding a key twice.
    password_changed(&env, &[ACCOUNT, "--at", "2026-02-01T08:00:00Z"]).expect_code(0);
    let again = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(
        again,
        text.replace("2026-01-15T09:30:00Z", "2026-02-01T08:00:00Z")
    );
    assert_eq!(files_in(env.path()), ["tokenwatch.toml"]);
}

#[test]
fn the_files_mode_owner_and_group_are_kept() {
    let env = Env::new();
    let cfg = env.write("tokenwatch.toml", COMMENTED);
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    let (uid, gid) = if root {
        std::os::unix::fs::chown(&cfg, Some(1234), Some(1234)).unwrap();
        (1234, 1234)
    } else {
        // Only root can give the file away; the mode is still checked.
        eprintln!("not root: checking the mode only, not a foreign owner");
        let m = std::fs::metadata(&cfg).unwrap();
        (m.uid(), m.gid())
    };
    let ino_before = std::fs::metadata(&cfg).unwrap().ino();
    password_changed(&env, &[ACCOUNT]).expect_code(0);
    let m = std::fs::metadata(&cfg).unwrap();
    assert_ne!(
        m.ino(),
        ino_before,
        "the file was rewritten in place, not replaced"
    );
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!((m.uid(), m.gid()), (uid, gid));
    assert!(std::fs::read_to_string(&cfg)
        .unwrap()
        .contains("password_changed = "));
}

#[test]
fn an_unknown_account_exits_3_and_leaves_the_file_alone() {
    let env = Env::new();
    let cfg = env.write("tokenwatch.toml", COMMENTED);
    let before = std::fs::read(&cfg).unwrap();
    let run = password_changed(&env, &["apps@acme.appleacount.com"]);
    run.expect_code(3);
    let err = run.stderr();
    assert!(
        err.contains("tokenwatch.toml not changed")
            && err.contains("\"apps@acme.appleacount.com\"")
            && err.contains("--add"),
        "{}",
        run.describe()
    );
    assert_eq!(std::fs::read(&cfg).unwrap(), before);

    for at in ["next week", "2999-01-01T00:00:00Z"] {
        let run = password_changed(&env, &[ACCOUNT, "--at", at]);
        run.expect_code(3);
        assert!(run.stderr().contains("--at"), "{}", run.describe());
        assert_eq!(std::fs::read(&cfg).unwrap(), before);
    }
    // A usage error (no account) is "unknown" too.
    password_changed(&env, &[]).expect_code(3);
    assert_eq!(files_in(env.path()), ["tokenwatch.toml"]);
}

#[test]
fn add_records_an_account_nothing_refers_to_yet() {
    let env = Env::new();
    let cfg = env.write("tokenwatch.toml", COMMENTED);
    let run = password_changed(&env, &["new@acme.appleaccount.com", "--add"]);
    run.expect_code(0);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("[[account]]\nid = \"new@acme.appleaccount.com\"\npassword_changed = "),
        "{text}"
    );
    let check = env.run(&["-c", "tokenwatch.toml", "config", "check"]);
    check.expect_code(0);
    assert!(
        check.stdout().contains("2 accounts"),
        "{}",
        check.describe()
    );
}

#[test]
fn the_running_daemon_invalidates_the_accounts_tokens_without_a_restart() {
    let env = Env::new();
    let cfg = env.config("");
    // Downloaded about 165 days ago: long before the change, past the grace.
    env.sample("tokens/a.vpptoken", "Acme", 200);
    let d = Daemon::start(&env, &cfg);
    d.wait_for("token ok", 20, |s| s["tokens"][0]["status"] == "ok");

    let run = password_changed(&env, &[ACCOUNT]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains("1 token of apps@acme.appleaccount.com; 1 invalidated"),
        "{}",
        run.describe()
    );
    let s = d.wait_for("token invalidated by the password change", 15, |s| {
        s["tokens"][0]["status"] == "invalidated"
    });
    assert_eq!(s["tokens"][0]["detail"], "password_change");
    assert!(s["config_error"].is_null(), "{s}");
}
