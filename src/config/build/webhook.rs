//! `[[webhook]]`: where chat and automation receive alerts.

use std::time::Duration;

use super::{Builder, Span};
use crate::config::doc::Section;
use crate::secret::Secret;
use crate::webhook::settings::DEFAULT_TIMEOUT_SECS;
use crate::webhook::{Endpoint, Format, UrlSource, WebhookSettings};

/// Longest webhook name: it is shown in `status` and stored with rows.
const MAX_NAME_CHARS: usize = 64;

impl Builder<'_, '_> {
    pub(super) fn webhook(&mut self, mut s: Section) -> Option<(WebhookSettings, Span)> {
        let name = match s.string(self.d, "name") {
            Some((n, span)) => self.webhook_name(&n, span, &s.key_path("name")),
            None => {
                self.missing(&s, "name", "every [[webhook]] needs a name");
                None
            }
        };
        let format = match s.string(self.d, "format") {
            Some((f, span)) => match f.parse::<Format>() {
                Ok(f) => Some(f),
                Err(e) => {
                    self.d.report(span, &s.key_path("format"), e);
                    None
                }
            },
            None => Some(Format::default()),
        };
        let url = s.string(self.d, "url");
        let url_file = s.string(self.d, "url_file");
        let secret_file = s.string(self.d, "secret_file");
        let timeout = self.bounded(&mut s, "timeout_secs", 1, 120, DEFAULT_TIMEOUT_SECS);
        let span = s.span();
        let url = match (url, url_file) {
            (Some((text, uspan)), None) => match Endpoint::parse(&text) {
                Ok(_) => Some(UrlSource::Inline(Secret::new(text))),
                Err(e) => {
                    // Never the value: the URL is a secret.
                    self.d.report(uspan, &s.key_path("url"), e);
                    None
                }
            },
            (None, Some((p, pspan))) => self
                .path(&p, pspan, &s.key_path("url_file"))
                .map(UrlSource::File),
            (Some(_), Some(_)) => {
                self.d.report(
                    span.clone(),
                    &s.key_path("url"),
                    "give url or url_file, not both",
                );
                None
            }
            (None, None) => {
                self.missing(&s, "url_file", "every [[webhook]] needs url_file (or url)");
                None
            }
        };
        let secret_file = match secret_file {
            Some((_, kspan)) if format.is_some_and(|f| f != Format::Json) => {
                self.d.report(
                    kspan,
                    &s.key_path("secret_file"),
                    "only used with format = \"json\" (Slack and Teams do not check signatures)",
                );
                None
            }
            other => self.optional_path(other, &s.key_path("secret_file")),
        };
        s.finish(self.d);
        Some((
            WebhookSettings {
                name: name?,
                format: format?,
                url: url?,
                secret_file: secret_file?,
                timeout: Duration::from_secs(timeout? as u64),
            },
            span,
        ))
    }

    fn webhook_name(&mut self, name: &str, span: Span, key: &str) -> Option<String> {
        let ok = !name.is_empty()
            && name.chars().count() <= MAX_NAME_CHARS
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.d.report(
                span,
                key,
                format!("{name:?} is not a webhook name: use up to {MAX_NAME_CHARS} letters, digits, '-', '_' or '.'"),
            );
            return None;
        }
        Some(name.to_owned())
    }

    /// A list of webhook names (`[alerts] webhooks`, `[[folder]] webhooks`);
    /// whether each is defined is checked once every section is read.
    pub(super) fn webhook_names(&mut self, s: &mut Section, key: &'static str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (name, _) in s.strings(self.d, key).unwrap_or_default() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Names given in `[alerts]` and `[[folder]]` must be configured, and
    /// each webhook once.
    pub(super) fn webhook_checks(
        &mut self,
        hooks: &[(WebhookSettings, Span)],
        alerts: &[String],
        folders: &[(crate::config::Folder, Span)],
    ) {
        let mut seen = std::collections::BTreeSet::new();
        for (i, (h, span)) in hooks.iter().enumerate() {
            if !seen.insert(h.name.as_str()) {
                self.d.report(
                    span.clone(),
                    &format!("webhook[{}].name", i + 1),
                    format!("webhook {:?} is configured twice", h.name),
                );
            }
        }
        let unknown = |name: &String| !seen.contains(name.as_str());
        for name in alerts.iter().filter(|n| unknown(n)) {
            self.d.report(
                None,
                "alerts.webhooks",
                format!("no [[webhook]] is named {name:?}"),
            );
        }
        for (i, (f, span)) in folders.iter().enumerate() {
            for name in f.webhooks.iter().filter(|n| unknown(n)) {
                self.d.report(
                    span.clone(),
                    &format!("folder[{}].webhooks", i + 1),
                    format!("no [[webhook]] is named {name:?}"),
                );
            }
        }
    }
}
