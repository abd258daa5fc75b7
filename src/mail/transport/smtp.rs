//! SMTP delivery with lettre over rustls, and the mapping of lettre's
//! errors to [`MailError`].

use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::password::{read_password_file, PASSWORD_CREDENTIAL};
use super::{MailError, TlsMode};
use crate::secret::Secret;

/// Connections kept open between mails: as many as the outbox sender has
/// sends in flight (`daemon::sender::PARALLEL_SENDS`), so a burst of
/// alerts pays for one TCP connection, TLS handshake, EHLO and AUTH per
/// connection rather than per mail.
const POOL_SIZE: u32 = 16;
/// How long an idle connection is kept. A server that drops an idle
/// connection can leave lettre's pool with one that answers the NOOP it
/// checks with and then fails the mail (lettre #743); servers wait minutes
/// before dropping one (RFC 5321 asks for 5), so connections are only kept
/// across a burst, never for that long.
const POOL_IDLE: Duration = Duration::from_secs(5);

pub(super) struct Smtp {
    /// The transport as configured; built at the first send, because its
    /// connection pool runs a task on the async runtime.
    builder: AsyncSmtpTransportBuilder,
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) tls: TlsMode,
    pub(super) timeout: Duration,
    pub(super) username: Option<String>,
    /// Kept only to scrub it (and its AUTH encodings) from server answers.
    pub(super) password: Option<Secret>,
}

impl Smtp {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        host: &str,
        port: u16,
        tls: TlsMode,
        username: Option<&str>,
        password_file: Option<&Path>,
        ca_file: Option<&Path>,
        timeout: Duration,
        credentials_dir: Option<&Path>,
    ) -> Result<Smtp, MailError> {
        let settings = |reason: String| MailError::Settings(reason);
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(settings(format!("SMTP host {host:?} is not a host name")));
        }
        if port == 0 {
            return Err(settings(format!(
                "SMTP port 0 for host {host} is not a port"
            )));
        }
        if timeout.is_zero() {
            return Err(settings(
                "SMTP timeout must be more than 0 seconds".to_owned(),
            ));
        }
        if tls == TlsMode::None {
            if username.is_some() || password_file.is_some() {
                return Err(settings(format!(
                    "SMTP host {host} has tls = \"none\" but a username or password_file: \
                     credentials are never sent without TLS; use tls = \"starttls\" or \"implicit\""
                )));
            }
            if ca_file.is_some() {
                return Err(settings(format!(
                    "SMTP host {host} has tls = \"none\", so its ca_file would never be used"
                )));
            }
        }
        let username = match username {
            Some("") => return Err(settings("SMTP username is empty".to_owned())),
            other => other.map(str::to_owned),
        };
        let password = match (&username, password_file) {
            (Some(_), Some(path)) => Some(read_password_file(path)?),
            (Some(user), None) => {
                let credential = credentials_dir.map(|d| d.join(PASSWORD_CREDENTIAL));
                match credential {
                    Some(path) if path.exists() => Some(read_password_file(&path)?),
                    _ => {
                        return Err(settings(format!(
                            "SMTP username {user} has no password: set password_file, or pass \
                             the systemd credential {PASSWORD_CREDENTIAL}"
                        )))
                    }
                }
            }
            (None, Some(path)) => {
                return Err(settings(format!(
                    "SMTP password_file {} is set but username is not",
                    path.display()
                )))
            }
            (None, None) => None,
        };

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(timeout));
        builder = match tls {
            TlsMode::None => builder.tls(Tls::None),
            TlsMode::StartTls => builder.tls(Tls::Required(tls_parameters(host, ca_file)?)),
            TlsMode::Implicit => builder.tls(Tls::Wrapper(tls_parameters(host, ca_file)?)),
        };
        if let (Some(user), Some(pw)) = (&username, &password) {
            builder = builder.credentials(Credentials::new(user.clone(), pw.expose().to_owned()));
        }
        let pool = PoolConfig::new()
            .min_idle(0)
            .max_size(POOL_SIZE)
            .idle_timeout(POOL_IDLE);
        Ok(Smtp {
            builder: builder.pool_config(pool),
            transport: OnceLock::new(),
            host: host.to_owned(),
            port,
            tls,
            timeout,
            username,
            password,
        })
    }

    fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub(super) async fn send(&self, message: Message) -> Result<String, MailError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timed_out = || MailError::Timeout {
            server: self.server(),
            timeout: self.timeout,
        };
        // lettre reports a failed lookup as a generic connection error;
        // resolving first lets the error say "DNS". lettre then resolves
        // again: one extra lookup per mail, for a few mails a day.
        match tokio::time::timeout_at(
            deadline,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) => {
                return Err(MailError::Dns {
                    host: self.host.clone(),
                    reason: e.to_string(),
                })
            }
            Ok(Ok(mut addrs)) => {
                if addrs.next().is_none() {
                    return Err(MailError::Dns {
                        host: self.host.clone(),
                        reason: "no addresses".to_owned(),
                    });
                }
            }
        }
        // lettre's own timeout covers connecting only; a server that
        // accepts and then stalls would hang the send without this.
        let transport = self.transport.get_or_init(|| self.builder.clone().build());
        match tokio::time::timeout_at(deadline, transport.send(message)).await {
            Err(_) => Err(timed_out()),
            Ok(Ok(response)) => Ok(self.scrub(&answer_text(&response))),
            Ok(Err(e)) => Err(self.classify(&e)),
        }
    }

    /// Maps a lettre error to what happened, in words ops can act on.
    fn classify(&self, err: &lettre::transport::smtp::Error) -> MailError {
        let server = self.server();
        let detail = || {
            let text = std::error::Error::source(err)
                .map(|s| s.to_string())
                .unwrap_or_else(|| err.to_string());
            self.scrub(&text)
        };
        if let Some(code) = err.status() {
            let code = u16::from(code);
            let answer = format!("{code} {}", detail());
            // 530 auth required, 534 mechanism too weak, 535 bad
            // credentials, 538 encryption required for the mechanism.
            if matches!(code, 530 | 534 | 535 | 538) {
                return MailError::Authentication {
                    server,
                    username: self.username.clone(),
                    answer,
                };
            }
            return MailError::Rejected {
                server,
                code,
                answer,
            };
        }
        if let Some(io_err) = find_io_error(err) {
            if io_err.kind() == io::ErrorKind::ConnectionRefused {
                return MailError::ConnectionRefused { server };
            }
            if io_err.kind() == io::ErrorKind::TimedOut {
                return MailError::Timeout {
                    server,
                    timeout: self.timeout,
                };
            }
            // tokio-rustls reports handshake failures as io errors that
            // wrap the rustls error.
            if let Some(tls_err) = io_err
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
            {
                let hint = match tls_err {
                    rustls::Error::InvalidCertificate(_) => {
                        "; if the server uses a private CA, add it to the system trust store or set ca_file"
                    }
                    rustls::Error::InvalidMessage(_) => {
                        "; the server may not speak TLS there: check port and tls"
                    }
                    _ => "",
                };
                return MailError::Tls {
                    server,
                    reason: format!("{tls_err}{hint}"),
                };
            }
        }
        if err.is_tls() {
            return MailError::Tls {
                server,
                reason: detail(),
            };
        }
        if err.is_client() {
            let text = detail();
            if text.contains("STARTTLS") {
                return MailError::Tls {
                    server,
                    reason: "the server does not offer STARTTLS, which tls = \"starttls\" requires"
                        .to_owned(),
                };
            }
            if text.contains("authentication mechanism") {
                return MailError::Authentication {
                    server,
                    username: self.username.clone(),
                    answer: "the server offers no mechanism tokenwatch supports (PLAIN, LOGIN)"
                        .to_owned(),
                };
            }
            return MailError::Unsupported {
                server,
                reason: text,
            };
        }
        if err.is_response() {
            return MailError::Protocol {
                server,
                reason: detail(),
            };
        }
        MailError::Network {
            server,
            reason: detail(),
        }
    }

    /// Removes the password, and the forms it takes in AUTH PLAIN and AUTH
    /// LOGIN, from text that came from the server, in case it echoes them.
    fn scrub(&self, text: &str) -> String {
        let Some(password) = &self.password else {
            return text.to_owned();
        };
        let pw = password.expose();
        let b64 = base64::engine::general_purpose::STANDARD;
        let user = self.username.as_deref().unwrap_or("");
        let mut out = text.to_owned();
        for needle in [
            b64.encode(format!("\0{user}\0{pw}")),
            b64.encode(pw),
            pw.to_owned(),
        ] {
            if !needle.is_empty() {
                out = out.replace(&needle, "[redacted]");
            }
        }
        out
    }
}

/// The roots are the system trust store (lettre's `rustls-native-certs`:
/// /etc/ssl/certs, or SSL_CERT_FILE and SSL_CERT_DIR), read here, once per
/// mailer and only for a TLS mode, plus `ca_file`.
fn tls_parameters(host: &str, ca_file: Option<&Path>) -> Result<TlsParameters, MailError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(path) = ca_file {
        let ca_fail = |reason: String| MailError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_fail(format!("cannot read it: {e}")))?;
        // lettre accepts a PEM without certificates and would then trust
        // nothing extra; say so instead.
        if !pem
            .windows(b"-----BEGIN CERTIFICATE-----".len())
            .any(|w| w == b"-----BEGIN CERTIFICATE-----")
        {
            return Err(ca_fail("holds no PEM certificate".to_owned()));
        }
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| ca_fail(format!("is not a valid PEM certificate: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build_rustls().map_err(|e| MailError::Tls {
        server: host.to_owned(),
        reason: format!("cannot set up TLS: {e}"),
    })
}

fn find_io_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io_err) = e.downcast_ref::<io::Error>() {
            return Some(io_err);
        }
        source = e.source();
    }
    None
}

fn answer_text(response: &Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    format!("{} {}", u16::from(response.code()), lines.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn scrub_removes_password_and_its_auth_encodings() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "canary-77").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let smtp = Smtp::new(
            "127.0.0.1",
            587,
            TlsMode::StartTls,
            Some("tw"),
            Some(&pw),
            None,
            Duration::from_secs(1),
            None,
        )
        .unwrap();
        let echoed = format!(
            "535 bad {} {} canary-77",
            b64.encode("\0tw\0canary-77"),
            b64.encode("canary-77")
        );
        let clean = smtp.scrub(&echoed);
        assert!(!clean.contains("canary-77"), "{clean}");
        assert!(!clean.contains(&b64.encode("canary-77")), "{clean}");
        assert_eq!(clean.matches("[redacted]").count(), 3, "{clean}");
    }
}
