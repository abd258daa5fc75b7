//! Delivering one rendered mail through the configured transport: SMTP
//! (lettre with rustls) or one `.eml` file per mail. Failures are classified
//! so the outbox knows whether to retry (transient) or park (permanent), and
//! every error names the server or file and says which step failed.
//!
//! The SMTP password is read once, when the [`Mailer`] is built, and kept in
//! a [`Secret`](crate::secret::Secret); no error text can carry it (server answers are scrubbed too).

mod eml;
mod error;
mod message;
mod password;
mod smtp;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;

pub use error::MailError;
#[cfg(test)]
pub(crate) use message::build_message;
pub use message::test_mail;
pub use password::{read_password_file, PASSWORD_CREDENTIAL};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    None,
    StartTls,
    Implicit,
}

impl TlsMode {
    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::StartTls => "starttls",
            TlsMode::Implicit => "implicit",
        }
    }
}

impl FromStr for TlsMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(TlsMode::None),
            "starttls" => Ok(TlsMode::StartTls),
            "implicit" => Ok(TlsMode::Implicit),
            other => Err(format!(
                "unknown tls mode {other:?}; expected \"none\", \"starttls\" or \"implicit\""
            )),
        }
    }
}

/// The port used when the config names none.
pub fn default_port(tls: TlsMode) -> u16 {
    match tls {
        TlsMode::None => 25,
        TlsMode::StartTls => 587,
        TlsMode::Implicit => 465,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportSettings {
    Smtp {
        host: String,
        port: u16,
        tls: TlsMode,
        username: Option<String>,
        password_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
        /// Bounds one whole delivery: DNS lookup, connect, TLS, and the
        /// SMTP conversation up to the server's final answer.
        timeout: Duration,
    },
    File {
        dir: PathBuf,
    },
}

/// One finished mail, ready to send.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    /// Stable per alert (`<alert-...@tokenwatch>`); sent verbatim as the
    /// `Message-ID` header, so a re-sent alert carries the same id.
    pub message_id: String,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub date: DateTime<Utc>,
    /// An iCalendar invite sent as an attachment beside the two bodies.
    pub calendar: Option<CalendarAttachment>,
}

/// A `text/calendar; method=PUBLISH` attachment: its file name and text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CalendarAttachment {
    pub file_name: String,
    pub text: String,
}

/// Delivers mail through one transport. Cheap to keep; build a new one when
/// the settings (or the password file) change.
pub struct Mailer {
    inner: Inner,
}

enum Inner {
    Smtp(Box<smtp::Smtp>),
    File { dir: PathBuf },
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Smtp(s) => f
                .debug_struct("Mailer::Smtp")
                .field("host", &s.host)
                .field("port", &s.port)
                .field("tls", &s.tls)
                .field("timeout", &s.timeout)
                .field("username", &s.username)
                .field("password", &s.password)
                .finish(),
            Inner::File { dir } => f.debug_struct("Mailer::File").field("dir", dir).finish(),
        }
    }
}

impl Mailer {
    /// Validates the settings and reads the password: `password_file`, else
    /// the systemd credential `smtp-password` in `$CREDENTIALS_DIRECTORY`.
    /// Credentials with `tls = "none"` are refused: they are never sent in
    /// clear text, not even to a local relay.
    pub fn new(settings: &TransportSettings) -> Result<Mailer, MailError> {
        let credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Self::with_credentials_dir(settings, credentials_dir.as_deref())
    }

    fn with_credentials_dir(
        settings: &TransportSettings,
        credentials_dir: Option<&Path>,
    ) -> Result<Mailer, MailError> {
        match settings {
            TransportSettings::File { dir } => {
                if dir.as_os_str().is_empty() {
                    return Err(MailError::Settings(
                        "mail dir is empty; name the folder for .eml files".to_owned(),
                    ));
                }
                Ok(Mailer {
                    inner: Inner::File { dir: dir.clone() },
                })
            }
            TransportSettings::Smtp {
                host,
                port,
                tls,
                username,
                password_file,
                ca_file,
                timeout,
            } => {
                let smtp = smtp::Smtp::new(
                    host,
                    *port,
                    *tls,
                    username.as_deref(),
                    password_file.as_deref(),
                    ca_file.as_deref(),
                    *timeout,
                    credentials_dir,
                )?;
                Ok(Mailer {
                    inner: Inner::Smtp(Box::new(smtp)),
                })
            }
        }
    }

    /// Builds the MIME message (multipart/alternative text + HTML; headers
    /// Message-ID, Date, Auto-Submitted, From, To, Subject) and sends it.
    /// Returns the server's final answer (e.g. `250 2.0.0 Ok: queued as X`),
    /// or for the file transport the path of the written `.eml`.
    pub async fn send(&self, mail: &OutgoingMail) -> Result<String, MailError> {
        let message = message::build_message(mail)?;
        match &self.inner {
            Inner::Smtp(smtp) => smtp.send(message).await,
            Inner::File { dir } => {
                let (dir, id) = (dir.clone(), mail.message_id.clone());
                let bytes = message.formatted();
                let task_dir = dir.clone();
                let written =
                    tokio::task::spawn_blocking(move || eml::write_eml(&task_dir, &id, &bytes))
                        .await
                        .map_err(|e| MailError::File {
                            path: dir,
                            source: std::io::Error::other(format!("writer task failed: {e}")),
                        })??;
                Ok(written.display().to_string())
            }
        }
    }
}

/// Sends [`test_mail`] through `settings`; returns the server's answer (or
/// the file written). This is what `tokenwatch test-mail` runs.
pub async fn send_test_mail(
    settings: &TransportSettings,
    from: Mailbox,
    to: Vec<Mailbox>,
    sender_host: &str,
    now: DateTime<Utc>,
) -> Result<String, MailError> {
    let mailer = Mailer::new(settings)?;
    mailer.send(&test_mail(from, to, sender_host, now)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::os::unix::fs::PermissionsExt;

    fn write_mode(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn smtp(
        tls: TlsMode,
        username: Option<&str>,
        password_file: Option<PathBuf>,
    ) -> TransportSettings {
        TransportSettings::Smtp {
            host: "127.0.0.1".to_owned(),
            port: default_port(tls),
            tls,
            username: username.map(str::to_owned),
            password_file,
            ca_file: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn tls_mode_parses_config_spellings_and_defaults_ports() {
        for mode in [TlsMode::None, TlsMode::StartTls, TlsMode::Implicit] {
            assert_eq!(mode.as_str().parse::<TlsMode>(), Ok(mode));
        }
        assert!("STARTTLS".parse::<TlsMode>().is_err());
        assert_eq!(default_port(TlsMode::None), 25);
        assert_eq!(default_port(TlsMode::StartTls), 587);
        assert_eq!(default_port(TlsMode::Implicit), 465);
    }

    #[test]
    fn credentials_without_tls_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pw = write_mode(dir.path(), "pw", "x", 0o600);
        let err = Mailer::with_credentials_dir(&smtp(TlsMode::None, Some("tw"), Some(pw)), None)
            .unwrap_err();
        assert!(err.to_string().contains("never sent without TLS"), "{err}");
        let err =
            Mailer::with_credentials_dir(&smtp(TlsMode::None, Some("tw"), None), None).unwrap_err();
        assert!(err.to_string().contains("never sent without TLS"), "{err}");
    }

    #[test]
    fn username_needs_a_password_from_file_or_systemd_credential() {
        let settings = smtp(TlsMode::StartTls, Some("tw"), None);
        let err = Mailer::with_credentials_dir(&settings, None).unwrap_err();
        assert!(err.to_string().contains(PASSWORD_CREDENTIAL), "{err}");

        let creds = tempfile::tempdir().unwrap();
        write_mode(creds.path(), PASSWORD_CREDENTIAL, "from-systemd\n", 0o400);
        let mailer = Mailer::with_credentials_dir(&settings, Some(creds.path())).unwrap();
        let Inner::Smtp(s) = &mailer.inner else {
            panic!("expected SMTP")
        };
        assert_eq!(
            s.password.as_ref().map(Secret::expose),
            Some("from-systemd")
        );
        assert!(!format!("{mailer:?}").contains("from-systemd"));
    }

    #[test]
    fn password_file_without_username_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pw = write_mode(dir.path(), "pw", "x", 0o600);
        let err = Mailer::with_credentials_dir(&smtp(TlsMode::StartTls, None, Some(pw)), None)
            .unwrap_err();
        assert!(err.to_string().contains("username is not"), "{err}");
    }

    #[test]
    fn ca_file_without_certificate_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let ca = write_mode(dir.path(), "ca.pem", "not a certificate\n", 0o644);
        let settings = TransportSettings::Smtp {
            host: "relay.example.com".to_owned(),
            port: 587,
            tls: TlsMode::StartTls,
            username: None,
            password_file: None,
            ca_file: Some(ca.clone()),
            timeout: Duration::from_secs(5),
        };
        let err = Mailer::new(&settings).unwrap_err();
        assert!(matches!(err, MailError::CaFile { .. }), "{err}");
        assert!(err.to_string().contains(&ca.display().to_string()), "{err}");
    }
}
