//! `[mail]`: the file or SMTP transport, and keys that only fit the other one.

use std::path::Path;
use std::time::Duration;

use super::Builder;
use crate::config::doc::Section;
use crate::config::DEFAULT_SMTP_TIMEOUT_SECS;
use crate::mail::transport::{default_port, TlsMode, TransportSettings};

impl Builder<'_, '_> {
    pub(super) fn mail(&mut self, mut s: Section, state_dir: &Path) -> Option<TransportSettings> {
        let transport = s.string(self.d, "transport");
        let host = s.string(self.d, "host");
        let port = s.integer(self.d, "port");
        let tls = s.string(self.d, "tls");
        let username = s.string(self.d, "username");
        let password_file = s.string(self.d, "password_file");
        let ca_file = s.string(self.d, "ca_file");
        let timeout = self.bounded(&mut s, "timeout_secs", 1, 3600, DEFAULT_SMTP_TIMEOUT_SECS);
        let dir = s.string(self.d, "dir");
        let span = s.span();
        s.finish(self.d);

        match transport
            .as_ref()
            .map(|(t, span)| (t.as_str(), span.clone()))
        {
            None | Some(("file", _)) => {
                for (key, present) in [
                    ("host", host.is_some()),
                    ("port", port.is_some()),
                    ("tls", tls.is_some()),
                    ("username", username.is_some()),
                    ("password_file", password_file.is_some()),
                    ("ca_file", ca_file.is_some()),
                ] {
                    if present {
                        self.d.report(
                            span.clone(),
                            &format!("mail.{key}"),
                            "only used with transport = \"smtp\"",
                        );
                    }
                }
                let dir = match dir {
                    Some((d, span)) => self.path(&d, span, "mail.dir")?,
                    None => state_dir.join("mail"),
                };
                Some(TransportSettings::File { dir })
            }
            Some(("smtp", _)) => {
                if let Some((_, dspan)) = &dir {
                    self.d.report(
                        dspan.clone(),
                        "mail.dir",
                        "only used with transport = \"file\"",
                    );
                }
                let tls = match tls {
                    None => Some(TlsMode::StartTls),
                    Some((t, span)) => {
                        match t.as_str() {
                            "none" => Some(TlsMode::None),
                            "starttls" => Some(TlsMode::StartTls),
                            "implicit" => Some(TlsMode::Implicit),
                            other => {
                                self.d.report(span, "mail.tls", format!("{other:?} is not one of \"none\", \"starttls\", \"implicit\""));
                                None
                            }
                        }
                    }
                };
                let host = match host {
                    Some((h, span)) if h.trim().is_empty() => {
                        self.d.report(span, "mail.host", "must not be empty");
                        None
                    }
                    Some((h, _)) => Some(h),
                    None => {
                        self.d.report(
                            span.clone(),
                            "mail.host",
                            "missing: transport = \"smtp\" needs a host",
                        );
                        None
                    }
                };
                let port = match port {
                    Some((p, _)) if (1..=65535).contains(&p) => Some(Some(p as u16)),
                    Some((p, span)) => {
                        self.d
                            .report(span, "mail.port", format!("{p} is not a TCP port"));
                        None
                    }
                    None => Some(None),
                };
                let password_file = self.optional_path(password_file, "mail.password_file");
                let ca_file = self.optional_path(ca_file, "mail.ca_file");
                let username = username.map(|(u, _)| u);
                let tls = tls?;
                if tls == TlsMode::None
                    && (username.is_some() || password_file.as_ref().is_some_and(Option::is_some))
                {
                    self.d.report(span, "mail.tls", "credentials are never sent without TLS: use tls = \"starttls\" or \"implicit\", or drop username and password_file");
                    return None;
                }
                Some(TransportSettings::Smtp {
                    host: host?,
                    port: port?.unwrap_or_else(|| default_port(tls)),
                    tls,
                    username,
                    password_file: password_file?,
                    ca_file: ca_file?,
                    timeout: Duration::from_secs(timeout? as u64),
                })
            }
            Some((other, span)) => {
                self.d.report(
                    span,
                    "mail.transport",
                    format!("{other:?} is not one of \"smtp\", \"file\""),
                );
                None
            }
        }
    }
}
