//! What can go wrong delivering a mail, in words that say which step
//! failed, and whether retrying can help.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail settings: {0}")]
    Settings(String),
    #[error("SMTP password file {}: {reason}", .path.display())]
    PasswordFile { path: PathBuf, reason: String },
    #[error("CA file {}: {reason}", .path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("cannot build mail {message_id}: {reason}")]
    Message { message_id: String, reason: String },
    #[error("DNS lookup of SMTP host {host} failed: {reason}")]
    Dns { host: String, reason: String },
    #[error("SMTP server {server}: connection refused")]
    ConnectionRefused { server: String },
    #[error("SMTP server {server}: network error: {reason}")]
    Network { server: String, reason: String },
    #[error("SMTP server {server}: TLS failed: {reason}")]
    Tls { server: String, reason: String },
    #[error("SMTP server {server}: authentication{} failed: {answer}", as_user(.username))]
    Authentication {
        server: String,
        username: Option<String>,
        answer: String,
    },
    #[error("SMTP server {server} {} the mail: {answer}", refusal(*.code))]
    Rejected {
        server: String,
        code: u16,
        answer: String,
    },
    #[error("SMTP server {server} cannot take this mail: {reason}")]
    Unsupported { server: String, reason: String },
    #[error("SMTP server {server}: timeout, no final answer within {timeout:?}")]
    Timeout { server: String, timeout: Duration },
    #[error("SMTP server {server}: protocol error: {reason}")]
    Protocol { server: String, reason: String },
    #[error("cannot write mail file {}: {source}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn as_user(username: &Option<String>) -> String {
    match username {
        Some(u) => format!(" as {u}"),
        None => " (no username configured)".to_owned(),
    }
}

fn refusal(code: u16) -> &'static str {
    if code >= 500 {
        "rejected"
    } else {
        "temporarily refused"
    }
}

impl MailError {
    /// Retrying the same mail with the same settings will fail again: the
    /// server said 5xx, or the settings are wrong (authentication, TLS
    /// certificate, missing STARTTLS, unreadable password or CA file). The
    /// outbox parks such mail after a few tries; ops fix the cause and use
    /// `outbox retry`.
    pub fn is_permanent(&self) -> bool {
        match self {
            MailError::Rejected { code, .. } => *code >= 500,
            MailError::Settings(_)
            | MailError::PasswordFile { .. }
            | MailError::CaFile { .. }
            | MailError::Message { .. }
            | MailError::Tls { .. }
            | MailError::Authentication { .. }
            | MailError::Unsupported { .. } => true,
            // DNS trouble, refused connections, resets, timeouts, garbled
            // answers and a full disk all pass by themselves.
            MailError::Dns { .. }
            | MailError::ConnectionRefused { .. }
            | MailError::Network { .. }
            | MailError::Timeout { .. }
            | MailError::Protocol { .. }
            | MailError::File { .. } => false,
        }
    }

    /// Worth retrying with backoff until it works: 4xx answers, timeouts,
    /// refused connections, DNS failures. Exactly `!is_permanent()`.
    pub fn is_transient(&self) -> bool {
        !self.is_permanent()
    }

    /// A short stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            MailError::Settings(_) => "settings",
            MailError::PasswordFile { .. } => "password_file",
            MailError::CaFile { .. } => "ca_file",
            MailError::Message { .. } => "message",
            MailError::Dns { .. } => "dns",
            MailError::ConnectionRefused { .. } => "connection_refused",
            MailError::Network { .. } => "network",
            MailError::Tls { .. } => "tls",
            MailError::Authentication { .. } => "authentication",
            MailError::Rejected { code, .. } if *code >= 500 => "rejected",
            MailError::Rejected { .. } => "deferred",
            MailError::Unsupported { .. } => "unsupported",
            MailError::Timeout { .. } => "timeout",
            MailError::Protocol { .. } => "protocol",
            MailError::File { .. } => "file",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes_follow_smtp_codes() {
        let rejected = |code| MailError::Rejected {
            server: "s:25".to_owned(),
            code,
            answer: format!("{code} no"),
        };
        assert!(rejected(550).is_permanent());
        assert!(rejected(451).is_transient());
        assert!(rejected(550)
            .to_string()
            .contains("rejected the mail: 550 no"));
        assert!(rejected(451)
            .to_string()
            .contains("temporarily refused the mail: 451 no"));
        let refused = MailError::ConnectionRefused {
            server: "s:25".to_owned(),
        };
        assert!(refused.is_transient());
        assert!(refused.to_string().contains("connection refused"));
        let auth = MailError::Authentication {
            server: "s:587".to_owned(),
            username: Some("tw".to_owned()),
            answer: "535 5.7.8 bad".to_owned(),
        };
        assert!(auth.is_permanent());
        assert!(
            auth.to_string()
                .contains("authentication as tw failed: 535"),
            "{auth}"
        );
    }
}
