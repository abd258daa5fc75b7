use super::*;

fn parse_at(text: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new("/etc/tokenwatch/tokenwatch.toml"))
}

const MINIMAL: &str = r#"
[alerts]
recipients = ["ops@example.com"]

[[folder]]
path = "tokens"
"#;

#[test]
fn shipped_example_parses() {
    let cfg = parse_at(EXAMPLE).expect("config/tokenwatch.toml must parse");
    assert_eq!(cfg.folders.len(), 2);
    assert!(!cfg.folders[0].follow_links);
    assert!(cfg.schedule.digest.is_some());
    assert!(matches!(
        cfg.mail,
        TransportSettings::Smtp { port: 587, .. }
    ));
}

#[test]
fn shipped_quickstart_parses_with_paths_relative_to_the_file() {
    let text = include_str!("../../config/quickstart.toml");
    let cfg = parse(text, Path::new("/opt/tw/config/quickstart.toml")).unwrap();
    assert_eq!(
        cfg.folders[0].path,
        PathBuf::from("/opt/tw/config/quickstart-tokens")
    );
    assert_eq!(
        cfg.state_dir,
        PathBuf::from("/opt/tw/config/quickstart-state")
    );
    assert!(
        matches!(&cfg.mail, TransportSettings::File { dir } if dir == Path::new("/opt/tw/config/quickstart-state/mail"))
    );
}

#[test]
fn defaults_fill_what_is_missing() {
    let cfg = parse_at(MINIMAL).unwrap();
    assert_eq!(cfg.state_dir, PathBuf::from("/var/lib/tokenwatch"));
    assert_eq!(cfg.timezone, chrono_tz::UTC);
    assert_eq!(cfg.alerts.lead_days, vec![60, 30, 14, 7, 3, 1]);
    assert_eq!(cfg.alerts.repeat_days, 7);
    assert_eq!(cfg.alerts.password_change_grace_hours, 48);
    assert_eq!(cfg.alerts.forget_after_days, 400);
    assert_eq!(cfg.check.warning_days, 30);
    assert_eq!(cfg.check.critical_days, 7);
    assert_eq!(cfg.folders[0].path, PathBuf::from("/etc/tokenwatch/tokens"));
    assert!(
        matches!(&cfg.mail, TransportSettings::File { dir } if dir == Path::new("/var/lib/tokenwatch/mail"))
    );
    assert!(!cfg.apple.verify);
    assert_eq!(cfg.schedule.check.expr(), "0 0 * * * *");
}

#[test]
fn lead_days_are_sorted_and_deduplicated() {
    let cfg = parse_at(&format!("{MINIMAL}\n[alerts.x]\n").replace("[alerts.x]\n", "")).unwrap();
    assert_eq!(cfg.alerts.lead_days[0], 60);
    let text = "[alerts]\nrecipients = [\"a@example.com\"]\nlead_days = [1, 30, 7, 30]\n[[folder]]\npath = \"/t\"\n";
    assert_eq!(parse_at(text).unwrap().alerts.lead_days, vec![30, 7, 1]);
}

#[test]
fn every_problem_is_reported_at_once_with_line_and_column() {
    let text = r#"state_dir = 5
colour = "blue"

[alerts]
recipients = ["not an address"]
lead_dayz = [1]

[check]
warning_days = 3
critical_days = 10

[[folder]]
path = "/srv/a"
acount = "x"

[[account]]
id = "a"
password_changed = "yesterday"
"#;
    let err = parse_at(text).unwrap_err();
    let lines = err.lines();
    let joined = lines.join("\n");
    let expect = [
        "/etc/tokenwatch/tokenwatch.toml:1:13: state_dir: expected a string, found an integer",
        "/etc/tokenwatch/tokenwatch.toml:2:1: colour: unknown key",
        "/etc/tokenwatch/tokenwatch.toml:5:15: alerts.recipients[0]: \"not an address\" is not a valid mail address",
        "/etc/tokenwatch/tokenwatch.toml:6:1: alerts.lead_dayz: unknown key",
        "/etc/tokenwatch/tokenwatch.toml:10:17: check.critical_days: 10 is more than warning_days (3)",
        "/etc/tokenwatch/tokenwatch.toml:14:1: folder[1].acount: unknown key",
        "/etc/tokenwatch/tokenwatch.toml:18:20: account[1].password_changed: \"yesterday\" is not a date-time",
    ];
    for e in expect {
        assert!(
            lines.iter().any(|l| l.starts_with(e)),
            "missing {e:?} in:\n{joined}"
        );
    }
    assert_eq!(lines.len(), expect.len(), "{joined}");
}

#[test]
fn a_config_without_folders_is_invalid() {
    let err = parse_at("[alerts]\nrecipients = [\"a@example.com\"]\n").unwrap_err();
    assert!(
        err.to_string().contains("no [[folder]] configured"),
        "{err}"
    );
}

#[test]
fn bad_toml_syntax_is_located() {
    let err = parse_at("state_dir = \"/x\"\n[alerts\n").unwrap_err();
    let line = &err.lines()[0];
    assert!(
        line.starts_with("/etc/tokenwatch/tokenwatch.toml:2:"),
        "{line}"
    );
    assert!(line.contains("not valid TOML"), "{line}");
}

#[test]
fn unknown_time_zone_and_mail_transport_are_named() {
    let text = format!("timezone = \"Mars/Olympus\"\n[mail]\ntransport = \"pigeon\"\n{MINIMAL}");
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(
        err.contains("timezone: unknown time zone \"Mars/Olympus\""),
        "{err}"
    );
    assert!(
        err.contains("mail.transport: \"pigeon\" is not one of"),
        "{err}"
    );
}

#[test]
fn credentials_without_tls_are_refused() {
    let text = format!("[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\n{MINIMAL}");
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(
        err.contains("credentials are never sent without TLS"),
        "{err}"
    );
}

#[test]
fn smtp_port_defaults_by_tls_mode() {
    for (tls, port) in [("none", 25), ("starttls", 587), ("implicit", 465)] {
        let text =
            format!("[mail]\ntransport = \"smtp\"\nhost = \"h\"\ntls = \"{tls}\"\n{MINIMAL}");
        match parse_at(&text).unwrap().mail {
            TransportSettings::Smtp { port: p, .. } => assert_eq!(p, port, "{tls}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn folders_without_any_recipient_are_refused() {
    let err = parse_at("[[folder]]\npath = \"/t\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("nobody would be told"), "{err}");
    let ok = parse_at("[[folder]]\npath = \"/t\"\nrecipients = [\"a@example.com\"]\n").unwrap();
    assert_eq!(ok.recipients_for(ok.folders.first()).len(), 1);
}

#[test]
fn token_links_win_over_folder_accounts() {
    let text = format!("{MINIMAL}account = \"folder@x\"\n[[token]]\npath = \"tokens/a.vpptoken\"\naccount = \"token@x\"\n");
    let cfg = parse_at(&text).unwrap();
    let folder = cfg.folders.first();
    assert_eq!(
        cfg.account_for(Path::new("/etc/tokenwatch/tokens/a.vpptoken"), folder),
        Some("token@x")
    );
    assert_eq!(
        cfg.account_for(Path::new("/etc/tokenwatch/tokens/b.vpptoken"), folder),
        Some("folder@x")
    );
}

#[test]
fn password_changed_accepts_toml_datetimes_and_strings() {
    let text = format!("{MINIMAL}[[account]]\nid = \"a\"\npassword_changed = 2026-10-01T12:00:00Z\n[[account]]\nid = \"b\"\npassword_changed = \"2026-10-01T14:00:00+02:00\"\n");
    let cfg = parse_at(&text).unwrap();
    assert_eq!(
        cfg.accounts[0].password_changed,
        cfg.accounts[1].password_changed
    );
}

#[test]
fn http_apple_base_url_is_only_for_loopback() {
    let text = format!("[apple]\nbase_url = \"http://apple.example.com/mdm/v2\"\n{MINIMAL}");
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(err.contains("apple.base_url"), "{err}");
}

#[test]
fn state_dir_of_a_config_that_is_not_valid_toml_is_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokenwatch.toml");
    std::fs::write(
        &file,
        "# comment\nstate_dir = \"state\"\n[alerts\nrecipients = [\"ops@example.com\"]\n",
    )
    .unwrap();
    assert_eq!(state_dir_of(&file), Some(dir.path().join("state")));
    // Without a readable state_dir line there is no guess.
    std::fs::write(&file, "state_dir = \n[alerts\n").unwrap();
    assert_eq!(state_dir_of(&file), None);
}

#[test]
fn follow_links_is_off_unless_a_folder_sets_it() {
    let text = format!("{MINIMAL}\n[[folder]]\npath = \"linked\"\nfollow_links = true\n");
    let cfg = parse_at(&text).unwrap();
    assert!(!cfg.folders[0].follow_links);
    assert!(cfg.folders[1].follow_links);
    let err = parse_at(&format!("{MINIMAL}follow_links = \"yes\"\n")).unwrap_err();
    assert!(
        err.lines()[0].contains(".follow_links: expected true or false"),
        "{err}"
    );
}

#[test]
fn a_folder_watches_content_tokens_unless_it_names_its_kinds() {
    let text = format!("{MINIMAL}\n[[folder]]\npath = \"two\"\nkinds = [\"vpp\", \"vpp\"]\n");
    let cfg = parse_at(&text).unwrap();
    assert_eq!(cfg.folders[0].kinds, [KindId::Vpp]);
    assert_eq!(
        cfg.folders[1].kinds,
        [KindId::Vpp],
        "named twice, kept once"
    );
    assert_eq!(cfg.folder_specs()[1].kinds, [KindId::Vpp]);

    let err = parse_at(&format!("{MINIMAL}kinds = [\"vpp\", \"p12\"]\n")).unwrap_err();
    let line = &err.lines()[0];
    assert!(
        line.contains(".kinds[1]: \"p12\" is not a credential kind; known: vpp"),
        "{err}"
    );
    let err = parse_at(&format!("{MINIMAL}kinds = []\n")).unwrap_err();
    assert!(
        err.lines()[0].contains("must name at least one kind"),
        "{err}"
    );
    let err = parse_at(&format!("{MINIMAL}kinds = \"vpp\"\n")).unwrap_err();
    assert!(
        err.lines()[0].contains(".kinds: expected an array of strings"),
        "{err}"
    );
}

#[test]
fn expected_mdm_is_optional_and_never_blank() {
    let cfg = parse_at(&format!("{MINIMAL}expected_mdm = \"Fleet\"\n")).unwrap();
    assert_eq!(cfg.folders[0].expected_mdm.as_deref(), Some("Fleet"));
    assert_eq!(parse_at(MINIMAL).unwrap().folders[0].expected_mdm, None);
    let err = parse_at(&format!("{MINIMAL}expected_mdm = \" \"\n")).unwrap_err();
    assert!(
        err.lines()[0].contains(".expected_mdm: must be the MDM's name"),
        "{err}"
    );
}

#[test]
fn forget_after_days_is_read_and_bounded() {
    let with = |v: &str| {
        parse_at(&format!(
            "[alerts]\nrecipients = [\"ops@example.com\"]\nforget_after_days = {v}\n[[folder]]\npath = \"/t\"\n"
        ))
    };
    assert_eq!(with("730").unwrap().alerts.forget_after_days, 730);
    let err = with("7").unwrap_err();
    assert!(
        err.lines()
            .iter()
            .any(|l| l.contains("alerts.forget_after_days: 7 is out of range 30..=36500")),
        "{:?}",
        err.lines()
    );
}

/// The readers behind these texts are shared by many keys, so a change to
/// one helper shows up here rather than as a silently reworded problem.
#[test]
fn shared_readers_keep_their_problem_texts() {
    let text = "timezone = 3\n\
        [alerts]\n\
        recipients = \"x\"\n\
        lead_days = [1, \"a\", 4000]\n\
        require_account = \"yes\"\n\
        [[folder]]\n\
        recipients = [\"a@b.c\", 4]\n\
        [[account]]\n\
        password_changed = 5\n\
        [[token]]\n\
        path = \"t\"\n\
        account = \"\"\n\
        [apple]\n\
        timeout_secs = 601\n";
    let err = parse_at(text).unwrap_err();
    let causes: Vec<String> = err
        .lines()
        .iter()
        .map(|l| l.splitn(4, ':').nth(3).unwrap_or(l).trim().to_string())
        .collect();
    assert_eq!(
        causes,
        [
            "timezone: expected a string, found an integer",
            "alerts.recipients: expected an array of strings, found a string",
            "alerts.lead_days[1]: expected an integer",
            "alerts.lead_days: 4000 is out of range 0..=3650",
            "alerts.require_account: expected true or false, found a string",
            "folder[1].path: missing: every [[folder]] needs a path",
            "folder[1].recipients[1]: expected a string",
            "account[1].id: missing: every [[account]] needs an id",
            "account[1].password_changed: expected a date-time such as 2026-10-01T12:00:00Z, found an integer",
            "token[1].account: must be a non-empty account name without control characters",
            "apple.timeout_secs: 601 is out of range 1..=600",
        ]
    );
}

#[test]
fn webhooks_are_read_and_named_by_alerts_and_folders() {
    let text = r#"
[alerts]
recipients = ["ops@example.com"]
webhooks = ["ops-chat", "ops-chat"]

[[webhook]]
name = "ops-chat"
format = "slack"
url_file = "hooks/ops-chat.url"
timeout_secs = 20

[[webhook]]
name = "automation"
url = "http://127.0.0.1:9000/in"
secret_file = "/etc/tokenwatch/automation.key"

[[folder]]
path = "tokens"
webhooks = ["automation"]
"#;
    let cfg = parse_at(text).unwrap();
    assert_eq!(cfg.alerts.webhooks, ["ops-chat"], "named twice, kept once");
    assert_eq!(cfg.folders[0].webhooks, ["automation"]);
    let [chat, auto] = cfg.webhooks.as_slice() else {
        panic!("{:?}", cfg.webhooks)
    };
    assert_eq!(chat.format, crate::webhook::Format::Slack);
    assert_eq!(
        chat.url,
        crate::webhook::UrlSource::File("/etc/tokenwatch/hooks/ops-chat.url".into())
    );
    assert_eq!(chat.timeout, std::time::Duration::from_secs(20));
    assert_eq!(auto.format, crate::webhook::Format::Json);
    assert_eq!(
        auto.secret_file.as_deref(),
        Some(Path::new("/etc/tokenwatch/automation.key"))
    );
}

#[test]
fn webhook_mistakes_name_the_key_and_never_show_the_url() {
    const SECRET: &str = "T0SECRET/B0SECRET/WebhookPathCanary9f8e7d6c5b4a";
    let bad = |hook: &str, extra: &str| {
        let text = format!(
            "[alerts]\nrecipients = [\"ops@example.com\"]\n{extra}\n[[webhook]]\n{hook}\n[[folder]]\npath = \"/t\"\n"
        );
        parse_at(&text).unwrap_err().to_string()
    };
    let err = bad(
        &format!("name = \"chat\"\nurl = \"http://hooks.example.com/{SECRET}\""),
        "",
    );
    assert!(
        err.contains(".url: http://hooks.example.com uses http to a host that is not a loopback"),
        "{err}"
    );
    assert!(!err.contains("Canary"), "{err}");
    let err = bad(
        "name = \"chat\"\nurl_file = \"/a\"\nurl = \"https://x.example/\"",
        "",
    );
    assert!(err.contains("give url or url_file, not both"), "{err}");
    let err = bad("name = \"chat\"", "");
    assert!(err.contains("needs url_file (or url)"), "{err}");
    let err = bad("name = \"a b\"\nurl_file = \"/a\"", "");
    assert!(err.contains("is not a webhook name"), "{err}");
    let err = bad(
        "name = \"chat\"\nformat = \"teams\"\nurl_file = \"/a\"\nsecret_file = \"/k\"",
        "",
    );
    assert!(
        err.contains(".secret_file: only used with format = \"json\""),
        "{err}"
    );
    let err = bad(
        "name = \"chat\"\nformat = \"discord\"\nurl_file = \"/a\"",
        "",
    );
    assert!(err.contains("\"discord\" is not one of"), "{err}");
    let err = bad(
        "name = \"chat\"\nurl_file = \"/a\"",
        "webhooks = [\"nope\"]",
    );
    assert!(
        err.contains("alerts.webhooks: no [[webhook]] is named \"nope\""),
        "{err}"
    );
}

#[test]
fn metrics_listen_is_off_unless_set_and_must_be_an_address_and_port() {
    assert_eq!(parse_at(MINIMAL).unwrap().metrics_listen, None);
    let cfg = parse_at(&format!(
        "[metrics]\nlisten = \"127.0.0.1:9817\"\n{MINIMAL}"
    ))
    .unwrap();
    assert_eq!(cfg.metrics_listen, Some("127.0.0.1:9817".parse().unwrap()));
    let err = parse_at(&format!("[metrics]\nlisten = \"localhost\"\n{MINIMAL}")).unwrap_err();
    assert!(
        err.to_string()
            .contains("metrics.listen: \"localhost\" is not an address and port"),
        "{err}"
    );
}

#[test]
fn a_folder_told_only_through_a_webhook_is_fine() {
    let text = "[[webhook]]\nname = \"chat\"\nurl_file = \"/a\"\n[[folder]]\npath = \"/t\"\nwebhooks = [\"chat\"]\n";
    assert!(parse_at(text).is_ok());
    let err = parse_at("[[folder]]\npath = \"/t\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("nobody would be told"), "{err}");
}

/// Found by the config fuzzer: toml_edit 0.23 panicked ("all items have
/// spans") on these repeated dotted keys; the config must report, not panic.
#[test]
fn repeated_dotted_keys_are_a_problem_not_a_panic() {
    let bytes =
        include_bytes!("../../fuzz/corpus/config_loader/regression-toml-edit-dotted-key-span");
    let text = String::from_utf8_lossy(bytes);
    assert!(parse_at(&text).is_err());
}
