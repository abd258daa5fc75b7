//! Push certificates and ADE server tokens through the real binary:
//! `sample-token --kind`, `inspect` (with `--key`), folders that name their
//! kinds, and `[[folder]] ade_key`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::util::Env;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const ADE_NAME: &str = "Example MDM_Token_2026-03-14T09-26-53Z_smime.p7m";

fn copy_fixture(env: &Env, from: &str, to: &str, mode: u32) -> PathBuf {
    let bytes = std::fs::read(Path::new(FIXTURES).join(from)).unwrap();
    let p = env.write(to, bytes);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn token_json<'a>(check: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    check["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("{name} not in {check:#}"))
}

#[test]
fn a_folder_reads_the_kinds_it_names_and_ignores_the_others() {
    let env = Env::new();
    env.sample("tokens/acme.vpptoken", "Acme", 200);
    copy_fixture(&env, "apns/push.pem", "tokens/push.pem", 0o600);
    copy_fixture(
        &env,
        &format!("ade/{ADE_NAME}"),
        &format!("tokens/{ADE_NAME}"),
        0o600,
    );

    let only_vpp = env.config("");
    let run = env.run(&["-c", only_vpp.to_str().unwrap(), "check", "--json"]);
    let v = run.json();
    assert_eq!(v["tokens"].as_array().unwrap().len(), 1, "{v:#}");

    let all = env.write(
        "all.toml",
        "state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n\
         [[folder]]\npath = \"tokens\"\nkinds = [\"vpp\", \"apns\", \"ade\"]\n",
    );
    let v = env
        .run(&["-c", all.to_str().unwrap(), "check", "--json"])
        .json();
    assert_eq!(v["tokens"].as_array().unwrap().len(), 3, "{v:#}");
    assert_eq!(token_json(&v, "push.pem")["kind"], "apns");
    assert_eq!(
        token_json(&v, "push.pem")["expires_at"],
        "2027-01-15T12:00:00Z"
    );
    assert_eq!(
        token_json(&v, "push.pem")["org_name"],
        "Example School District"
    );
    let ade = token_json(&v, ADE_NAME);
    assert_eq!(ade["kind"], "ade");
    // No key: a year after the download date in Apple's file name, and
    // the status detail says the date is a guess.
    assert_eq!(ade["expires_at"], "2027-03-14T09:26:53Z");
    assert_eq!(ade["expiry_estimated"], true);
    assert_eq!(ade["detail"], "expiry_estimated", "{ade:#}");
    assert!(token_json(&v, "push.pem")["detail"].is_null(), "{v:#}");
    let text = env.run(&["-c", all.to_str().unwrap(), "check"]);
    assert!(
        text.stdout()
            .contains(&format!("{ADE_NAME}: expiry_estimated: estimated as")),
        "{}",
        text.describe()
    );
}

#[test]
fn with_the_folder_key_an_ade_token_shows_its_real_expiry() {
    let env = Env::new();
    copy_fixture(
        &env,
        &format!("ade/{ADE_NAME}"),
        &format!("tokens/{ADE_NAME}"),
        0o600,
    );
    let key = copy_fixture(&env, "ade/mdm-key.pem", "keys/mdm-key.pem", 0o640);
    let cfg = env.write(
        "tw.toml",
        "state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n\
         [[folder]]\npath = \"tokens\"\nkinds = [\"ade\"]\nade_key = \"keys/mdm-key.pem\"\n",
    );
    let cfg = cfg.to_str().unwrap();
    let v = env.run(&["-c", cfg, "check", "--json"]).json();
    assert_eq!(
        token_json(&v, ADE_NAME)["expires_at"],
        "2027-03-13T21:00:07Z"
    );
    assert!(token_json(&v, ADE_NAME)["detail"].is_null(), "{v:#}");

    // A key every user may read is refused, naming the key and the file.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    for args in [vec!["-c", cfg, "check"], vec!["-c", cfg, "config", "check"]] {
        let run = env.run(&args);
        run.expect_code(3);
        assert!(run.stderr().contains(".ade_key"), "{}", run.describe());
        assert!(run.stderr().contains("mdm-key.pem"), "{}", run.describe());
        assert!(run.stderr().contains("0644"), "{}", run.describe());
    }
    // The key's text never shows, also when it is the wrong kind of file.
    std::fs::write(&key, "not a key at all\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = env.run(&["-c", cfg, "config", "check"]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("no PEM private key"),
        "{}",
        run.describe()
    );
    assert!(
        !run.stderr().contains("not a key at all"),
        "{}",
        run.describe()
    );
}

#[test]
fn inspect_reads_every_kind_and_an_ade_token_with_its_key() {
    let env = Env::new();
    let pem = copy_fixture(&env, "apns/push_with_key.pem", "push.pem", 0o600);
    let run = env.run(&["inspect", pem.to_str().unwrap(), "--json"]);
    let v = run.expect_code(0).json();
    assert_eq!(v["kind"], "apns");
    assert!(v["topic"]
        .as_str()
        .unwrap()
        .starts_with("com.apple.mgmt.External."));
    assert_eq!(v["has_private_key"], true);
    assert_eq!(v["issued_at"], "2026-01-15T12:00:00Z");
    assert_eq!(v["created_at_derived"], false);
    let text = env.run(&["inspect", pem.to_str().unwrap()]);
    assert!(text.stdout().contains("private key"), "{}", text.describe());
    assert!(
        !text.stdout().contains("PRIVATE KEY-----"),
        "{}",
        text.describe()
    );

    let p7m = copy_fixture(&env, &format!("ade/{ADE_NAME}"), ADE_NAME, 0o600);
    let key = copy_fixture(&env, "ade/mdm-key.pem", "mdm-key.pem", 0o600);
    let v = env
        .run(&["inspect", p7m.to_str().unwrap(), "--json"])
        .json();
    assert_eq!(v["expiry_estimated"], true);
    assert_eq!(v["server"], "Example MDM");
    let run = env.run(&[
        "inspect",
        p7m.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--json",
    ]);
    let v = run.expect_code(0).json();
    assert_eq!(v["expiry_estimated"], false);
    assert_eq!(v["expires_at"], "2027-03-13T21:00:07Z");
    assert_eq!(v["consumer_key_prefix"].as_str().unwrap().len(), 8);
    let other = copy_fixture(&env, "ade/other-key.pem", "other-key.pem", 0o600);
    let v = env
        .run(&[
            "inspect",
            p7m.to_str().unwrap(),
            "--key",
            other.to_str().unwrap(),
            "--json",
        ])
        .json();
    assert_eq!(v["expiry_estimated"], true);
    assert!(
        v["variants"].to_string().contains("ade_key_mismatch"),
        "{v:#}"
    );
}

#[test]
fn sample_token_writes_each_kind_and_the_reader_reads_it_back() {
    let env = Env::new();
    let out = env.path().join("samples");
    std::fs::create_dir_all(&out).unwrap();
    let pem = out.join("push.pem");
    env.run(&[
        "sample-token",
        "--kind",
        "apns",
        "--org",
        "Acme",
        "--days",
        "25",
        "-o",
        pem.to_str().unwrap(),
    ])
    .expect_code(0);
    let v = env
        .run(&["inspect", pem.to_str().unwrap(), "--json"])
        .json();
    assert_eq!(v["kind"], "apns");
    assert_eq!(v["org_name"], "Acme");
    assert_eq!(v["sample"], true);

    let key = env.path().join("keys/ade.pem");
    let run = env.run(&[
        "sample-token",
        "--kind",
        "ade",
        "--days",
        "300",
        "-o",
        out.to_str().unwrap(),
        "--key-out",
        key.to_str().unwrap(),
    ]);
    run.expect_code(0);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let p7m = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "p7m"))
        .expect("Apple's file name in the folder");
    assert!(p7m
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .contains("_Token_"));
    let v = env
        .run(&[
            "inspect",
            p7m.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--json",
        ])
        .json();
    assert_eq!(v["kind"], "ade");
    assert_eq!(v["sample"], true);
    assert_eq!(v["expiry_estimated"], false);

    // Refusals: no org for a certificate, a key for another kind.
    let run = env.run(&["sample-token", "--kind", "apns", "--days", "5"]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("--kind apns needs --org"),
        "{}",
        run.describe()
    );
    let run = env.run(&[
        "sample-token",
        "--org",
        "A",
        "--days",
        "5",
        "-o",
        "x.vpptoken",
        "--key-out",
        "k.pem",
    ]);
    run.expect_code(3);
    assert!(
        run.stderr().contains("--key-out is for --kind ade only"),
        "{}",
        run.describe()
    );
}
