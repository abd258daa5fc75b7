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

/// README's quick start command: the line after `# 1.`.
fn readme_quickstart() -> String {
    let readme = include_str!("../../README.md");
    readme
        .lines()
        .skip_while(|l| !l.starts_with("# 1."))
        .nth(1)
        .expect("README's Quick start has a command after '# 1.'")
        .to_owned()
}

#[test]
fn the_shipped_quickstart_runs_as_the_readme_says_with_every_kind() {
    let env = Env::new();
    let root = env!("CARGO_MANIFEST_DIR");
    for rel in ["config/quickstart.toml", "contrib/quickstart.sh"] {
        let to = env.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(format!("{root}/{rel}"), to).unwrap();
    }
    let command = readme_quickstart();
    assert_eq!(command, "sh contrib/quickstart.sh");
    // Twice: someone trying it again must get the same answer.
    for round in 1..=2 {
        let out = std::process::Command::new("sh")
            .arg("contrib/quickstart.sh")
            .current_dir(env.path())
            .env("TOKENWATCH", crate::util::BIN)
            .env_remove("TOKENWATCH_CONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round}\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("EXPIRING") && stdout.contains("Globex"),
            "round {round}\n{stdout}"
        );
        let json = env
            .run(&["-c", "config/quickstart.toml", "check", "--json"])
            .json();
        let mut kinds: Vec<&str> = json["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["kind"].as_str().unwrap())
            .collect();
        kinds.sort_unstable();
        assert_eq!(
            kinds,
            ["ade", "apns", "vpp", "vpp"],
            "round {round}: {json:#}"
        );
        let ade = json["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == "ade")
            .unwrap();
        assert_eq!(ade["status"], "ok", "{ade:#}");
        assert_ne!(
            ade["expiry_estimated"], true,
            "read with the quickstart's key: {ade:#}"
        );
    }
    // The state and mails stay next to the config, as documented.
    assert!(!env.path().join("config/quickstart-state").exists());
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn sample_token_never_writes_through_a_link_even_with_force() {
    let env = Env::new();
    let target = env.write("secret.txt", "keep me");
    std::os::unix::fs::symlink(&target, env.path().join("link.vpptoken")).unwrap();
    std::os::unix::fs::symlink("nowhere.txt", env.path().join("dangling.vpptoken")).unwrap();
    for args in [
        &["-o", "link.vpptoken"][..],
        &["-o", "link.vpptoken", "--force"][..],
        &["-o", "dangling.vpptoken"][..],
        &["-o", "dangling.vpptoken", "--force"][..],
    ] {
        let mut all = vec!["sample-token", "--org", "Acme", "--days", "30"];
        all.extend_from_slice(args);
        let run = env.run(&all);
        run.expect_code(3);
        assert!(
            run.stderr().contains(args[1]) && run.stderr().contains("symbolic link"),
            "the error names the file and the cause\n{}",
            run.describe()
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(!env.path().join("nowhere.txt").exists());
    for link in ["link.vpptoken", "dangling.vpptoken"] {
        let meta = std::fs::symlink_metadata(env.path().join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} is still the link");
    }
}

#[test]
fn sample_token_refuses_an_existing_file_and_force_replaces_it_with_mode_0600() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new();
    let old = env.write("t/a.vpptoken", "old content");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sample_to = |out| ["sample-token", "--org", "Acme", "--days", "30", "-o", out];
    let args = sample_to("t/a.vpptoken");
    let run = env.run(&args);
    run.expect_code(3);
    assert!(
        run.stderr().contains("t/a.vpptoken") && run.stderr().contains("--force"),
        "{}",
        run.describe()
    );
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "old content");
    assert_eq!(mode_of(&old), 0o644);

    let inode = std::fs::metadata(&old).unwrap().ino();
    let mut forced = args.to_vec();
    forced.push("--force");
    env.run(&forced).expect_code(0);
    env.run(&["inspect", "t/a.vpptoken"]).expect_code(0);
    assert_eq!(mode_of(&old), 0o600, "a replaced file is 0600 too");
    // Replaced by a new file (temp file and rename), not truncated in place.
    assert_ne!(std::fs::metadata(&old).unwrap().ino(), inode);
    let names: Vec<_> = std::fs::read_dir(env.path().join("t"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["a.vpptoken"], "no temp file is left behind");

    // A new file is 0600 whatever the umask.
    env.run(&sample_to("t/b.vpptoken")).expect_code(0);
    assert_eq!(mode_of(&env.path().join("t/b.vpptoken")), 0o600);
}

#[test]
fn sample_token_with_extreme_numbers_is_a_usage_error_not_a_panic() {
    let env = Env::new();
    for value in [
        "--days=-9223372036854775808",
        "--days=9223372036854775807",
        "--days=99999999999",
        "--days=-99999999999999999999",
        "--days=36501",
        "--expires=+262142-01-01",
        "--expires=-262143-01-01",
        "--expires=0000-01-01",
    ] {
        let run = env.run(&["sample-token", "--org", "Acme", value, "-o", "x.vpptoken"]);
        run.expect_code(3);
        let option = value.split('=').next().unwrap();
        assert!(
            !run.stderr().contains("panicked") && run.stderr().contains(option),
            "{}",
            run.describe()
        );
    }
    assert!(!env.path().join("x.vpptoken").exists());
    env.run(&["sample-token", "--org", "Acme", "--days=-36500"])
        .expect_code(0);
}
