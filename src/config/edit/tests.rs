use super::*;

const FILE: &str = "/etc/tokenwatch/tokenwatch.toml";

const COMMENTED: &str = "\
# tokenwatch, edited by hand
state_dir = \"state\"   # relative to this file

[alerts]
recipients = [\"ops@example.com\"]


# the accounts ops track
[[account]]
id = \"apps@acme.appleaccount.com\"   # Berlin and Hamburg
password_changed = 2026-01-01T00:00:00Z  # the last rotation

[[account]]
id = \"quiet@acme.appleaccount.com\"

# where the tokens live
[[folder]]
path = \"/srv/tokens/acme\"
account = \"apps@acme.appleaccount.com\"

[[folder]]
path = \"/srv/tokens/other\"
account = \"other@acme.appleaccount.com\"

[[token]]
path = \"/srv/tokens/acme/special.vpptoken\"
account = \"special@acme.appleaccount.com\"
# the end
";

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    utc("2026-10-01T12:00:00Z")
}

fn edit(text: &str, account: &str, at: Option<&str>, add: bool) -> Result<Edited, EditError> {
    edit_text(text, Path::new(FILE), account, at, add, now())
}

/// The lines of `new` that are not in `old`, and those of `old` that
/// are gone, as a line diff that assumes only insertions/replacements.
fn changed_lines(old: &str, new: &str) -> (Vec<String>, Vec<String>) {
    let o: Vec<&str> = old.lines().collect();
    let n: Vec<&str> = new.lines().collect();
    let prefix = o.iter().zip(&n).take_while(|(a, b)| a == b).count();
    let suffix = o[prefix..]
        .iter()
        .rev()
        .zip(n[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    (
        n[prefix..n.len() - suffix]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        o[prefix..o.len() - suffix]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
}

#[test]
fn replacing_password_changed_changes_only_that_line_and_keeps_its_comment() {
    let e = edit(COMMENTED, "apps@acme.appleaccount.com", None, false).unwrap();
    assert_eq!(
        e.change,
        Change::Replaced {
            previous: "2026-01-01T00:00:00Z".into()
        }
    );
    let (added, removed) = changed_lines(COMMENTED, &e.text);
    assert_eq!(
        added,
        ["password_changed = 2026-10-01T12:00:00Z  # the last rotation"]
    );
    assert_eq!(
        removed,
        ["password_changed = 2026-01-01T00:00:00Z  # the last rotation"]
    );
    assert_eq!(
        e.config
            .account("apps@acme.appleaccount.com")
            .unwrap()
            .password_changed,
        Some(now())
    );
}

#[test]
fn an_account_without_password_changed_gets_one_line_added() {
    let e = edit(COMMENTED, "quiet@acme.appleaccount.com", None, false).unwrap();
    assert_eq!(e.change, Change::Set);
    let (added, removed) = changed_lines(COMMENTED, &e.text);
    assert_eq!(added, ["password_changed = 2026-10-01T12:00:00Z"]);
    assert!(removed.is_empty(), "{removed:?}");
    let (before, after) = e.text.split_once("password_changed = 2026-10-01").unwrap();
    assert!(before.ends_with("id = \"quiet@acme.appleaccount.com\"\n"));
    assert!(after.starts_with("T12:00:00Z\n\n# where the tokens live\n[[folder]]"));
}

#[test]
fn an_account_only_a_folder_or_token_names_gets_a_table_after_the_last_account() {
    for account in [
        "other@acme.appleaccount.com",
        "special@acme.appleaccount.com",
    ] {
        let e = edit(COMMENTED, account, None, false).unwrap();
        assert_eq!(e.change, Change::Appended);
        let want = COMMENTED.replace(
            "id = \"quiet@acme.appleaccount.com\"\n",
            &format!("id = \"quiet@acme.appleaccount.com\"\n\n[[account]]\nid = \"{account}\"\npassword_changed = 2026-10-01T12:00:00Z\n"),
        );
        assert_eq!(e.text, want);
        assert_eq!(e.config.accounts.len(), 3);
    }
}

#[test]
fn an_unknown_account_is_refused_naming_the_file_and_a_near_miss() {
    let err = edit(COMMENTED, "Apps@acme.appleaccount.com", None, false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EditError::Refused { .. }), "{msg}");
    assert!(msg.starts_with(&format!("{FILE} not changed: ")), "{msg}");
    assert!(
        msg.contains("did you mean \"apps@acme.appleaccount.com\"?") && msg.contains("--add"),
        "{msg}"
    );
    let msg = edit(COMMENTED, "typo@acme", None, false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("known: apps@acme.appleaccount.com, other@"),
        "{msg}"
    );
}

#[test]
fn add_appends_a_new_account() {
    let e = edit(COMMENTED, "new@acme.appleaccount.com", None, true).unwrap();
    assert_eq!(e.change, Change::Appended);
    assert!(e.config.account("new@acme.appleaccount.com").is_some());
    let (added, removed) = changed_lines(COMMENTED, &e.text);
    assert!(added.contains(&"id = \"new@acme.appleaccount.com\"".to_string()));
    assert!(removed.is_empty());
}

#[test]
fn add_to_a_config_without_accounts_appends_after_the_last_table() {
    let text = "[[folder]]\npath = \"/t\"\naccount = \"a@x\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n\n[[folder]]\npath = \"/u\"\n";
    let e = edit(text, "a@x", Some("2026-09-30T10:00:00+02:00"), false).unwrap();
    assert_eq!(
        e.text,
        format!("{text}\n[[account]]\nid = \"a@x\"\npassword_changed = 2026-09-30T08:00:00Z\n")
    );
}

#[test]
fn inline_account_arrays_are_edited_in_place() {
    let text = "account = [ { id = \"a@x\" } ]\n[alerts]\nrecipients = [\"o@example.com\"]\n[[folder]]\npath = \"/t\"\naccount = \"b@x\"\n";
    let e = edit(text, "a@x", None, false).unwrap();
    assert_eq!(e.change, Change::Set);
    // toml_edit keeps the space that closed the old last value.
    assert!(
        e.text.starts_with(
            "account = [ { id = \"a@x\" , password_changed = 2026-10-01T12:00:00Z } ]\n"
        ),
        "{}",
        e.text
    );
    assert_eq!(
        e.config.account("a@x").unwrap().password_changed,
        Some(now())
    );
    let e = edit(text, "b@x", None, false).unwrap();
    assert_eq!(e.config.accounts.len(), 2);
}

#[test]
fn an_account_key_that_is_not_a_list_of_tables_is_refused() {
    let text = "[account]\nid = \"a@x\"\n[[folder]]\npath = \"/t\"\n";
    let msg = edit(text, "a@x", None, true).unwrap_err().to_string();
    assert!(msg.contains("not a list of [[account]] tables"), "{msg}");
}

#[test]
fn an_already_invalid_config_is_reported_with_its_own_line_numbers() {
    let text = COMMENTED.replace("[[token]]", "bogus = 1\n[[token]]");
    let err = edit(&text, "quiet@acme.appleaccount.com", None, false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EditError::Invalid { .. }), "{msg}");
    // Line 25 of the file as it is, not of the edited text (one longer).
    assert!(
        msg.contains("tokenwatch.toml:25:1: folder[2].bogus: unknown key"),
        "{msg}"
    );
    assert!(
        msg.starts_with(&format!("{FILE} not changed: invalid config")),
        "{msg}"
    );
}

#[test]
fn an_edit_that_fixes_a_bad_password_changed_is_allowed() {
    let text = COMMENTED.replace("2026-01-01T00:00:00Z", "\"last tuesday\"");
    assert!(parse(&text, Path::new(FILE)).is_err());
    let e = edit(&text, "apps@acme.appleaccount.com", None, false).unwrap();
    assert!(e
        .text
        .contains("password_changed = 2026-10-01T12:00:00Z  # the last rotation"));
}

#[test]
fn a_broken_toml_file_is_reported_with_line_and_column() {
    let msg = edit("[[folder]\n", "a@x", None, true)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("tokenwatch.toml:1:") && msg.contains("not valid TOML"),
        "{msg}"
    );
}

#[test]
fn account_names_with_control_characters_are_refused() {
    for bad in ["", "  ", "a@x\nid = 1"] {
        let msg = edit(COMMENTED, bad, None, true).unwrap_err().to_string();
        assert!(msg.contains("is not an account name"), "{bad:?}: {msg}");
    }
}

#[test]
fn at_reads_rfc3339_and_local_time_in_the_configured_zone() {
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    let cases = [
        (
            "2026-09-01T10:00:00Z",
            chrono_tz::UTC,
            "2026-09-01T10:00:00Z",
        ),
        (
            "2026-09-01T12:00:00+02:00",
            chrono_tz::UTC,
            "2026-09-01T10:00:00Z",
        ),
        ("2026-09-01 12:00", chrono_tz::UTC, "2026-09-01T12:00:00Z"),
        ("2026-09-01 12:00", berlin, "2026-09-01T10:00:00Z"),
        ("2026-01-15 12:00:30", berlin, "2026-01-15T11:00:30Z"),
        // 02:30 happens twice on 2026-10-25 in Berlin: the first one.
        ("2026-10-25 02:30", berlin, "2026-10-25T00:30:00Z"),
    ];
    for (text, tz, want) in cases {
        assert_eq!(parse_at(text, tz), Ok(utc(want)), "{text} in {tz}");
    }
    let gap = parse_at("2026-03-29 02:30", berlin).unwrap_err();
    assert!(gap.contains("does not exist in Europe/Berlin"), "{gap}");
    for bad in ["yesterday", "2026-13-01 10:00", "01.10.2026 10:00", ""] {
        let e = parse_at(bad, berlin).unwrap_err();
        assert!(e.contains("RFC 3339"), "{bad}: {e}");
    }
}

#[test]
fn at_uses_the_configs_timezone() {
    let text = format!("timezone = \"Europe/Berlin\"\n{COMMENTED}");
    let e = edit(
        &text,
        "quiet@acme.appleaccount.com",
        Some("2026-09-01 12:00"),
        false,
    )
    .unwrap();
    assert_eq!(e.at, utc("2026-09-01T10:00:00Z"));
    assert!(e.text.contains("password_changed = 2026-09-01T10:00:00Z"));
}

#[test]
fn a_time_in_the_future_is_refused_beyond_a_little_skew() {
    let acct = "quiet@acme.appleaccount.com";
    let e = edit(COMMENTED, acct, Some("2026-10-01T12:04:00Z"), false).unwrap();
    assert_eq!(e.at, utc("2026-10-01T12:04:00Z"));
    let err = edit(COMMENTED, acct, Some("2026-10-01T13:00:00Z"), false).unwrap_err();
    assert!(matches!(err, EditError::BadTime { .. }));
    assert!(err.to_string().contains("is in the future"), "{err}");
}

#[test]
fn replace_file_keeps_the_mode_and_record_writes_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("conf/real.toml");
    fs::create_dir(real.parent().unwrap()).unwrap();
    fs::write(&real, COMMENTED).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.path().join("tokenwatch.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();

    let rec =
        record_password_change(&link, "quiet@acme.appleaccount.com", None, false, now()).unwrap();
    assert!(rec.via_symlink);
    assert_eq!(rec.written, fs::canonicalize(&real).unwrap());
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_to_string(&real).unwrap(), rec.edited.text);
    assert_eq!(fs::metadata(&real).unwrap().mode() & 0o7777, 0o640);
    // No temp file left behind.
    let names: Vec<_> = fs::read_dir(real.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["real.toml"]);
}

#[test]
fn a_file_saved_by_someone_else_meanwhile_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenwatch.toml");
    let theirs = format!("{COMMENTED}# saved by an editor meanwhile\n");
    fs::write(&path, &theirs).unwrap();
    let err = replace_file(&path, COMMENTED.as_bytes(), b"ours")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenwatch.toml not changed") && err.contains("changed by someone else"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), theirs);
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temp file left"
    );
    // Unchanged since it was read: written.
    replace_file(&path, theirs.as_bytes(), b"ours").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "ours");
}

#[test]
fn a_refused_edit_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenwatch.toml");
    fs::write(&path, COMMENTED).unwrap();
    let before = fs::metadata(&path).unwrap().modified().unwrap();
    assert!(record_password_change(&path, "typo", None, false, now()).is_err());
    assert_eq!(fs::read_to_string(&path).unwrap(), COMMENTED);
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}
