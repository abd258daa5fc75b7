//! The system trust store: a CA that is only in the store named by
//! `SSL_CERT_FILE` (as a distro or corporate CA in `/etc/ssl/certs` would
//! be) is trusted for Apple and SMTP without `ca_file`; a CA in no store is
//! still refused.

use std::path::Path;
use std::time::Duration;

use crate::apple_stub::{runtime, AppleStub, Reply};
use crate::smtp_stub::{tls_acceptor, SmtpStub};
use crate::util::process::tokenwatch;
use crate::util::{Env, Run};

/// The bearer Apple sees for a token file: its text without whitespace.
fn bearer(env: &Env, rel: &str) -> String {
    std::fs::read_to_string(env.path().join(rel))
        .unwrap()
        .split_whitespace()
        .collect()
}

/// Runs tokenwatch with `store` as the whole system trust store.
fn with_store(env: &Env, args: &[&str], store: &Path) -> Run {
    tokenwatch(
        env,
        args,
        &[
            ("SSL_CERT_FILE", store.to_str().unwrap()),
            // An empty folder: only the file above is in the store.
            (
                "SSL_CERT_DIR",
                env.path().join("no-certs").to_str().unwrap(),
            ),
        ],
        60,
    )
}

#[test]
fn a_ca_only_in_the_system_store_is_trusted_for_apple_and_smtp_and_a_stranger_is_refused() {
    let env = Env::new();
    std::fs::create_dir_all(env.path().join("no-certs")).unwrap();
    let rt = runtime();

    // Apple over HTTPS, with a certificate from a fresh CA.
    let (acceptor, apple_ca) = tls_acceptor();
    let apple = rt.block_on(AppleStub::start_tls(acceptor));
    // SMTP with STARTTLS, with a certificate from another fresh CA.
    let smtp = SmtpStub::builder().starttls().start();
    let store = env.write(
        "system/ca-certificates.crt",
        format!("{apple_ca}{}", smtp.ca_pem()),
    );
    // A CA that signed neither server: a store holding only it trusts neither.
    let (_, stranger_ca) = tls_acceptor();
    let stranger = env.write("system/other.crt", stranger_ca);

    env.config(&format!(
        "[apple]\nbase_url = \"{}\"\ntimeout_secs = 10\n\
         [mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\ntimeout_secs = 10\n",
        apple.base_url, smtp.port
    ));
    env.sample("tokens/a.vpptoken", "Acme", 100);
    apple.respond(
        &bearer(&env, "tokens/a.vpptoken"),
        Reply::valid("Berlin", "uid-1", "2027-03-01T00:00:00+0000"),
    );
    let probe = [
        "-c",
        "tokenwatch.toml",
        "probe",
        "tokens/a.vpptoken",
        "--json",
    ];
    let test_mail = ["-c", "tokenwatch.toml", "test-mail"];

    let refused = with_store(&env, &probe, &stranger);
    refused.expect_code(3);
    let detail = refused.json()["detail"]
        .as_str()
        .unwrap_or("")
        .to_lowercase();
    assert!(detail.contains("certificate"), "{}", refused.describe());
    assert!(apple.requests().is_empty(), "no request without trust");
    let refused = with_store(&env, &test_mail, &stranger);
    refused.expect_code(2);
    assert!(refused.stderr().contains("TLS"), "{}", refused.describe());
    assert!(smtp.messages().is_empty());

    let run = with_store(&env, &probe, &store);
    run.expect_code(0);
    assert_eq!(run.json()["verdict"], "valid", "{}", run.describe());
    assert_eq!(run.json()["location_name"], "Berlin");
    assert_eq!(apple.requests().len(), 1);

    let run = with_store(&env, &test_mail, &store);
    run.expect_code(0);
    let got = smtp.wait_for(1, Duration::from_secs(20));
    assert!(got[0].tls, "the mail went over STARTTLS");
    apple.assert_only_get_config();
    drop(apple);
    drop(rt);
}
