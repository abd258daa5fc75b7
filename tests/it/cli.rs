//! Config selection, config commands and usage errors.

use crate::util::Env;

#[test]
fn config_flag_wins_over_the_environment_and_works_after_the_subcommand() {
    let env = Env::new();
    env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    env.write("other.toml", "this is not toml");
    // TOKENWATCH_CONFIG alone is used...
    let run = env.run_env(&["config", "check"], &[("TOKENWATCH_CONFIG", "other.toml")]);
    run.expect_code(3);
    // ...and -c, before or after the subcommand, wins over it.
    env.run_env(
        &["-c", "tokenwatch.toml", "config", "check"],
        &[("TOKENWATCH_CONFIG", "other.toml")],
    )
    .expect_code(0);
    env.run_env(
        &["config", "check", "--config", "tokenwatch.toml"],
        &[("TOKENWATCH_CONFIG", "other.toml")],
    )
    .expect_code(0);
}

#[test]
fn a_bad_config_shows_every_error_with_line_and_column_and_exits_3() {
    let env = Env::new();
    let path = env.write(
        "bad.toml",
        "timezone = \"Nowhere/Land\"\nbogus = 1\n[check]\nwarning_days = \"ten\"\n[[folder]]\npath = \"tokens\"\nrecipients = [\"a@example.com\"]\n",
    );
    for args in [
        &["-c", "bad.toml", "config", "check"][..],
        &["-c", "bad.toml", "check"][..],
    ] {
        let run = env.run(args);
        run.expect_code(3);
        let err = run.stderr();
        let p = path.display().to_string();
        assert!(
            err.contains(&format!("{p}:1:12: timezone: unknown time zone")),
            "{}",
            run.describe()
        );
        assert!(
            err.contains(&format!("{p}:2:1: bogus: unknown key")),
            "{}",
            run.describe()
        );
        assert!(
            err.contains(&format!(
                "{p}:4:16: check.warning_days: expected an integer"
            )),
            "{}",
            run.describe()
        );
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let env = Env::new();
    let run = env.run(&["-c", "nope.toml", "check"]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("nope.toml: cannot read config"),
        "{}",
        run.describe()
    );
}

#[test]
fn config_example_prints_a_config_that_validates() {
    let env = Env::new();
    let run = env.run(&["config", "example"]);
    run.expect_code(0);
    assert!(run.stdout().contains("[[folder]]"));
    env.write("example.toml", run.stdout());
    env.run(&["-c", "example.toml", "config", "check"])
        .expect_code(0);
}

#[test]
fn usage_errors_exit_3() {
    let env = Env::new();
    env.run(&["frobnicate"]).expect_code(3);
    env.run(&["check", "--no-such-flag"]).expect_code(3);
    env.run(&["sample-token", "--org", "x"]).expect_code(3);
    env.run(&["--help"]).expect_code(0);
}

#[test]
fn sample_token_by_date_is_read_back_with_that_expiry() {
    let env = Env::new();
    env.run(&[
        "sample-token",
        "--org",
        "Acme",
        "--expires",
        "2028-02-29",
        "-o",
        "t/a.vpptoken",
    ])
    .expect_code(0);
    let run = env.run(&["inspect", "t/a.vpptoken", "--json"]);
    run.expect_code(0);
    let j = run.json();
    assert_eq!(j["expires_at"], "2028-02-29T00:00:00Z");
    assert_eq!(j["created_at"], "2027-02-28T00:00:00Z");
    assert_eq!(j["sample"], true);
    env.run(&["sample-token", "--org", "Acme", "--expires", "2027-02-30"])
        .expect_code(3);
}

#[test]
fn the_shipped_quickstart_config_runs_as_the_readme_says() {
    let env = Env::new();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/quickstart.toml");
    std::fs::create_dir(env.path().join("config")).unwrap();
    std::fs::copy(shipped, env.path().join("config/quickstart.toml")).unwrap();
    env.run(&[
        "sample-token",
        "--org",
        "Acme Corp",
        "--days",
        "200",
        "-o",
        "config/quickstart-tokens/acme.vpptoken",
    ])
    .expect_code(0);
    env.run(&[
        "sample-token",
        "--org",
        "Globex",
        "--days",
        "45",
        "-o",
        "config/quickstart-tokens/globex.vpptoken",
    ])
    .expect_code(0);
    let run = env.run(&["-c", "config/quickstart.toml", "check"]);
    run.expect_code(0);
    assert!(
        run.stdout().contains("EXPIRING") && run.stdout().contains("Globex"),
        "{}",
        run.describe()
    );
    // The state and mails stay next to the config, as documented.
    assert!(!env.path().join("config/quickstart-state").exists());
}
