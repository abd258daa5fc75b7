//! The mail transport against the in-process SMTP stub: what arrives, how
//! failures are classified, authentication over TLS, password-file rules,
//! and the file transport.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use tokenwatch::mail::transport::{
    read_password_file, send_test_mail, MailError, Mailer, OutgoingMail, TlsMode, TransportSettings,
};

use crate::smtp_stub::{Mode, SmtpStub};
use crate::util::mail::header;

const WAIT: Duration = Duration::from_secs(10);
const USER: &str = "tokenwatch";
const CANARY: &str = "canary-pw-5e1d9";

fn mail(id: &str, to: &[&str]) -> OutgoingMail {
    OutgoingMail {
        message_id: id.to_owned(),
        from: "tokenwatch <tokenwatch@example.com>".parse().unwrap(),
        to: to.iter().map(|a| a.parse().unwrap()).collect(),
        subject: "[tokenwatch] Content token for Acme Corp (sToken_for_Berlin.vpptoken) expires in 14 days"
            .to_owned(),
        text: "Plain part: renew the token for Acme Corp.\n".to_owned(),
        html: "<p>HTML part: renew the token for <b>Acme Corp</b>.</p>\n".to_owned(),
        date: DateTime::parse_from_rfc3339("2027-01-10T09:30:00Z")
            .unwrap()
            .with_timezone(&Utc),
        calendar: None,
    }
}

fn plain(port: u16) -> TransportSettings {
    TransportSettings::Smtp {
        host: "127.0.0.1".to_owned(),
        port,
        tls: TlsMode::None,
        username: None,
        password_file: None,
        ca_file: None,
        timeout: WAIT,
    }
}

fn with_tls(
    port: u16,
    tls: TlsMode,
    ca_file: Option<PathBuf>,
    password_file: Option<PathBuf>,
) -> TransportSettings {
    TransportSettings::Smtp {
        host: "127.0.0.1".to_owned(),
        port,
        tls,
        username: password_file.as_ref().map(|_| USER.to_owned()),
        password_file,
        ca_file,
        timeout: WAIT,
    }
}

fn password_file(dir: &Path, password: &str, mode: u32) -> PathBuf {
    let path = dir.join("smtp-password");
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Every rendering of an error, for leak checks.
fn renderings(err: &MailError) -> String {
    format!(
        "{err}\n{err:?}\n{err:#}\n{}",
        std::error::Error::source(err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    )
}

fn assert_no_canary(text: &str) {
    let b64 = base64::engine::general_purpose::STANDARD;
    for needle in [
        CANARY.to_owned(),
        b64.encode(CANARY),
        b64.encode(format!("\0{USER}\0{CANARY}")),
    ] {
        assert!(
            !text.contains(&needle),
            "password leaked ({needle}) in: {text}"
        );
    }
}

/// A mailer that logs in to `stub` as USER with the canary password, read
/// from a file of `mode`, over `tls` and trusting the stub's CA.
fn auth_mailer(stub: &SmtpStub, dir: &Path, tls: TlsMode, mode: u32) -> Mailer {
    let ca = stub.write_ca(dir);
    let pw = password_file(dir, CANARY, mode);
    Mailer::new(&with_tls(stub.port, tls, Some(ca), Some(pw))).unwrap()
}

/// Sends mail `id` to ops@example.com, which must fail; the error.
async fn send_err(mailer: &Mailer, id: &str) -> MailError {
    mailer
        .send(&mail(id, &["ops@example.com"]))
        .await
        .unwrap_err()
}

/// Sends mail `id` to ops@example.com, which must be accepted.
async fn send_ok(mailer: &Mailer, id: &str) {
    mailer.send(&mail(id, &["ops@example.com"])).await.unwrap();
}

#[tokio::test]
async fn smtp_delivers_both_parts_headers_and_every_recipient() {
    let stub = SmtpStub::start();
    let mailer = Mailer::new(&plain(stub.port)).unwrap();
    let m = mail(
        "<alert-3f2a91@tokenwatch>",
        &["ops@example.com", "Second <it@example.org>"],
    );

    let answer = mailer.send(&m).await.unwrap();

    assert!(
        answer.starts_with("250 2.0.0 Ok: queued as STUB1"),
        "{answer}"
    );
    let got = stub.wait_for_async(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.from, "tokenwatch@example.com");
    assert_eq!(r.to, vec!["ops@example.com", "it@example.org"]);
    let raw = r.text();
    assert_eq!(
        header(&raw, "Message-ID").as_deref(),
        Some("<alert-3f2a91@tokenwatch>")
    );
    assert_eq!(
        header(&raw, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        header(&raw, "Date").as_deref(),
        Some("Sun, 10 Jan 2027 09:30:00 +0000")
    );
    assert_eq!(header(&raw, "Subject"), Some(m.subject.clone()));
    assert_eq!(
        header(&raw, "To").as_deref(),
        Some("ops@example.com, Second <it@example.org>")
    );
    assert!(raw.contains("Content-Type: multipart/alternative"), "{raw}");
    assert!(raw.contains("Content-Type: text/plain"), "{raw}");
    assert!(
        raw.contains("Plain part: renew the token for Acme Corp."),
        "{raw}"
    );
    assert!(raw.contains("Content-Type: text/html"), "{raw}");
    assert!(raw.contains("<b>Acme Corp</b>"), "{raw}");
}

#[tokio::test]
async fn a_4xx_answer_is_transient_and_carries_the_servers_words() {
    let stub = SmtpStub::start();
    let mailer = Mailer::new(&plain(stub.port)).unwrap();
    for (mode, answer) in [
        (Mode::Tempfail, "451 4.3.0 stub: try again later"),
        (
            Mode::TempfailRcpt,
            "451 4.7.1 stub: recipient temporarily refused",
        ),
    ] {
        stub.set_mode(mode);
        let err = send_err(&mailer, "<a1@tokenwatch>").await;
        assert!(err.is_transient() && !err.is_permanent(), "{mode:?}: {err}");
        assert!(
            matches!(err, MailError::Rejected { code: 451, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(answer), "{err}");
    }
    assert!(stub.messages().is_empty());
}

#[tokio::test]
async fn a_5xx_answer_is_permanent_and_carries_the_servers_words() {
    let stub = SmtpStub::start();
    let mailer = Mailer::new(&plain(stub.port)).unwrap();
    for (mode, answer) in [
        (Mode::Reject, "554 5.7.1 stub: message rejected"),
        (Mode::RejectRcpt, "550 5.1.1 stub: no such recipient"),
    ] {
        stub.set_mode(mode);
        let err = send_err(&mailer, "<a1@tokenwatch>").await;
        assert!(err.is_permanent() && !err.is_transient(), "{mode:?}: {err}");
        assert!(err.to_string().contains("rejected the mail"), "{err}");
        assert!(err.to_string().contains(answer), "{err}");
    }
    assert!(stub.messages().is_empty());
}

#[tokio::test]
async fn smtp_down_is_transient_connection_refused_and_delivery_works_once_back() {
    let mut stub = SmtpStub::start();
    let mailer = Mailer::new(&plain(stub.port)).unwrap();
    let m = mail("<down-then-back@tokenwatch>", &["ops@example.com"]);
    stub.stop();

    let err = mailer.send(&m).await.unwrap_err();
    assert!(
        matches!(err, MailError::ConnectionRefused { .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", stub.port)),
        "{err}"
    );

    stub.restart();
    mailer.send(&m).await.unwrap();
    let got = stub.wait_for_async(1, WAIT).await;
    assert!(got[0]
        .text()
        .contains("Message-ID: <down-then-back@tokenwatch>"));
}

#[tokio::test]
async fn auth_plain_over_starttls_with_a_password_file() {
    let stub = SmtpStub::builder().starttls().auth(USER, CANARY).start();
    let dir = tempfile::tempdir().unwrap();
    let mailer = auth_mailer(&stub, dir.path(), TlsMode::StartTls, 0o640);
    assert_no_canary(&format!("{mailer:?}"));

    send_ok(&mailer, "<auth-1@tokenwatch>").await;

    let got = stub.wait_for_async(1, WAIT).await;
    assert_eq!(got[0].auth_user.as_deref(), Some(USER));
    assert!(got[0].tls, "message must arrive over TLS");
    assert_no_canary(&got[0].text());
}

#[tokio::test]
async fn auth_login_over_implicit_tls() {
    let stub = SmtpStub::builder()
        .implicit_tls()
        .auth(USER, CANARY)
        .login_only()
        .start();
    let dir = tempfile::tempdir().unwrap();
    let mailer = auth_mailer(&stub, dir.path(), TlsMode::Implicit, 0o600);

    send_ok(&mailer, "<auth-2@tokenwatch>").await;

    let got = stub.wait_for_async(1, WAIT).await;
    assert_eq!(got[0].auth_user.as_deref(), Some(USER));
    assert!(got[0].tls);
}

#[tokio::test]
async fn wrong_password_is_a_permanent_authentication_error() {
    let stub = SmtpStub::builder()
        .starttls()
        .auth(USER, "the-right-one")
        .start();
    let dir = tempfile::tempdir().unwrap();
    let mailer = auth_mailer(&stub, dir.path(), TlsMode::StartTls, 0o640);

    let err = send_err(&mailer, "<auth-3@tokenwatch>").await;

    assert!(matches!(err, MailError::Authentication { .. }), "{err:?}");
    assert!(err.is_permanent());
    let text = err.to_string();
    assert!(
        text.contains("authentication as tokenwatch failed: 535"),
        "{text}"
    );
    assert_eq!(stub.auth_failures(), 1);
    assert_no_canary(&renderings(&err));
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error_that_suggests_ca_file() {
    let stub = SmtpStub::builder().starttls().start();
    let mailer = Mailer::new(&with_tls(stub.port, TlsMode::StartTls, None, None)).unwrap();

    let err = send_err(&mailer, "<tls-1@tokenwatch>").await;

    assert!(matches!(err, MailError::Tls { .. }), "{err:?}");
    assert!(err.is_permanent());
    let text = err.to_string();
    assert!(
        text.contains("TLS failed") && text.contains("ca_file"),
        "{text}"
    );
    assert!(stub.messages().is_empty());
}

#[tokio::test]
async fn starttls_required_but_not_offered_is_a_tls_error_and_sends_nothing() {
    let stub = SmtpStub::start();
    let mailer = Mailer::new(&with_tls(stub.port, TlsMode::StartTls, None, None)).unwrap();

    let err = send_err(&mailer, "<tls-2@tokenwatch>").await;

    assert!(matches!(err, MailError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("does not offer STARTTLS"), "{err}");
    assert!(stub.messages().is_empty());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_transient() {
    // Bound but never accepted: the kernel completes the handshake, and
    // the greeting never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let settings = TransportSettings::Smtp {
        host: "127.0.0.1".to_owned(),
        port,
        tls: TlsMode::None,
        username: None,
        password_file: None,
        ca_file: None,
        timeout: Duration::from_millis(300),
    };
    let mailer = Mailer::new(&settings).unwrap();

    let err = send_err(&mailer, "<slow@tokenwatch>").await;

    assert!(matches!(err, MailError::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("timeout"), "{err}");
    drop(silent);
}

#[test]
fn a_world_readable_password_file_is_refused_naming_the_file_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let pw = password_file(dir.path(), CANARY, 0o644);
    let settings = with_tls(2525, TlsMode::StartTls, None, Some(pw.clone()));

    let err = Mailer::new(&settings).unwrap_err();

    assert!(matches!(err, MailError::PasswordFile { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&pw.display().to_string()), "{text}");
    assert!(text.contains("0644"), "{text}");
    assert_no_canary(&renderings(&err));
    // root:tokenwatch 0640 is the documented good case.
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(read_password_file(&pw).unwrap().expose(), CANARY);
}

#[tokio::test]
async fn the_password_never_appears_in_any_error() {
    let mut stub = SmtpStub::builder().starttls().auth(USER, "other").start();
    let dir = tempfile::tempdir().unwrap();
    let ca = stub.write_ca(dir.path());
    let pw = password_file(dir.path(), CANARY, 0o600);
    let good_ca = with_tls(stub.port, TlsMode::StartTls, Some(ca), Some(pw.clone()));
    let no_ca = with_tls(stub.port, TlsMode::StartTls, None, Some(pw));
    let m = mail("<leak@tokenwatch>", &["ops@example.com"]);
    let mut seen = String::new();

    for settings in [&good_ca, &no_ca] {
        let mailer = Mailer::new(settings).unwrap();
        seen += &format!("{mailer:?}\n");
        let err = mailer.send(&m).await.unwrap_err();
        seen += &renderings(&err);
    }
    stub.stop();
    let err = Mailer::new(&good_ca).unwrap().send(&m).await.unwrap_err();
    assert!(
        matches!(err, MailError::ConnectionRefused { .. }),
        "{err:?}"
    );
    seen += &renderings(&err);

    assert!(
        seen.contains("authentication") && seen.contains("TLS failed"),
        "{seen}"
    );
    assert_no_canary(&seen);
}

#[tokio::test]
async fn file_transport_writes_one_private_eml_per_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("state").join("mail");
    let mailer = Mailer::new(&TransportSettings::File {
        dir: mail_dir.clone(),
    })
    .unwrap();
    let m = mail("<alert-77@tokenwatch>", &["ops@example.com"]);

    let first = mailer.send(&m).await.unwrap();
    let second = mailer.send(&m).await.unwrap();

    assert_eq!(first, second, "the same mail must land in the same file");
    let path = PathBuf::from(&first);
    assert_eq!(path, mail_dir.join("alert-77@tokenwatch.eml"));
    let entries: Vec<_> = std::fs::read_dir(&mail_dir).unwrap().collect();
    assert_eq!(
        entries.len(),
        1,
        "resending must overwrite, not add: {entries:?}"
    );
    let file_mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(file_mode, 0o600, "file mode {file_mode:o}");
    let dir_mode = std::fs::metadata(&mail_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "dir mode {dir_mode:o}");
    let raw = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        header(&raw, "Message-ID").as_deref(),
        Some("<alert-77@tokenwatch>")
    );

    send_ok(&mailer, "<alert-78@tokenwatch>").await;
    assert_eq!(std::fs::read_dir(&mail_dir).unwrap().count(), 2);
}

#[tokio::test]
async fn test_mail_reports_the_servers_answer() {
    let stub = SmtpStub::start();
    let answer = send_test_mail(
        &plain(stub.port),
        "tokenwatch@example.com".parse().unwrap(),
        vec!["ops@example.com".parse().unwrap()],
        "watch01",
        Utc::now(),
    )
    .await
    .unwrap();

    assert!(answer.starts_with("250 "), "{answer}");
    let got = stub.wait_for_async(1, WAIT).await;
    let raw = got[0].text();
    assert_eq!(
        header(&raw, "Subject").as_deref(),
        Some("[tokenwatch] Test mail from watch01")
    );
    assert_eq!(
        header(&raw, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
}

/// A burst of alerts reuses SMTP sessions instead of opening a
/// connection, with its greeting and EHLO, per mail.
#[tokio::test]
async fn consecutive_mails_reuse_their_connection() {
    let stub = SmtpStub::start();
    let mailer = Mailer::new(&plain(stub.port)).unwrap();
    for i in 0..10 {
        send_ok(&mailer, &format!("<reuse-{i}@tokenwatch>")).await;
        // lettre hands a connection back to its pool in a task of its
        // own: give it the moment it needs.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stub.wait_for_async(10, WAIT).await.len(), 10);
    let n = stub.connections();
    assert!(n <= 2, "ten mails one after the other took {n} connections");
}

/// A kept connection that the server has dropped meanwhile (it restarted,
/// or timed the idle session out) is replaced, and the mail goes out on
/// the first attempt.
#[tokio::test]
async fn a_kept_connection_the_server_dropped_is_replaced() {
    let mut stub = SmtpStub::start();
    let mailer = Mailer::new(&plain(stub.port)).unwrap();
    send_ok(&mailer, "<before-drop@tokenwatch>").await;
    stub.restart();
    send_ok(&mailer, "<after-drop@tokenwatch>").await;
    let got = stub.wait_for_async(2, WAIT).await;
    assert!(got[1]
        .text()
        .contains("Message-ID: <after-drop@tokenwatch>"));
    assert_eq!(stub.connections(), 2);
}
