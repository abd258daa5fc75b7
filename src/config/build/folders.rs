//! `[[folder]]`, `[[account]]` and `[[token]]`: what is watched and whose it is.

use chrono::{DateTime, Utc};

use super::{Builder, Span};
use crate::config::doc::Section;
use crate::config::{Account, Folder, KeyFile, TokenLink};
use crate::token::{KindId, KINDS};

impl Builder<'_, '_> {
    pub(super) fn folder(&mut self, mut s: Section) -> Option<(Folder, Span)> {
        let path = self.required_path(&mut s, "folder");
        let account = self.account_id(&mut s, "account");
        let recipients = self.mailboxes(&mut s, "recipients");
        let allow_empty = s.boolean(self.d, "allow_empty").unwrap_or(false);
        let poll = s.boolean(self.d, "poll").unwrap_or(false);
        let follow_links = s.boolean(self.d, "follow_links").unwrap_or(false);
        let kinds = self.kinds(&mut s, "kinds");
        let webhooks = self.webhook_names(&mut s, "webhooks");
        let ade_key = match s.string(self.d, "ade_key") {
            Some((p, span)) => self
                .path(&p, span.clone(), &s.key_path("ade_key"))
                .map(|path| Some(KeyFile::new(path, span))),
            None => Some(None),
        };
        let expected_mdm = s.string(self.d, "expected_mdm");
        let expected_mdm = match expected_mdm {
            Some((name, span)) if name.trim().is_empty() || name.chars().any(char::is_control) => {
                self.d.report(
                    span,
                    &s.key_path("expected_mdm"),
                    "must be the MDM's name as Apple reports it, not empty and without control characters",
                );
                None
            }
            Some((name, _)) => Some(Some(name)),
            None => Some(None),
        };
        let span = s.span();
        s.finish(self.d);
        Some((
            Folder {
                path: path?,
                account,
                recipients,
                allow_empty,
                poll,
                follow_links,
                kinds: kinds?,
                expected_mdm: expected_mdm?,
                webhooks,
                ade_key: ade_key?,
            },
            span,
        ))
    }

    /// Default: content tokens only, as before kinds could be chosen.
    fn kinds(&mut self, s: &mut Section, key: &'static str) -> Option<Vec<KindId>> {
        let full = s.key_path(key);
        let Some(names) = s.strings(self.d, key) else {
            return (s.value_span(key).is_none()).then(|| vec![KindId::default()]);
        };
        if names.is_empty() {
            let span = s.value_span(key);
            self.d.report(
                span,
                &full,
                "must name at least one kind, such as [\"vpp\"]",
            );
            return None;
        }
        let mut kinds = Vec::new();
        let mut ok = true;
        for (i, (name, span)) in names.into_iter().enumerate() {
            match KINDS.iter().find(|k| k.id().as_str() == name) {
                Some(k) if !kinds.contains(&k.id()) => kinds.push(k.id()),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = KINDS.iter().map(|k| k.id().as_str()).collect();
                    self.d.report(
                        span,
                        &format!("{full}[{i}]"),
                        format!(
                            "{name:?} is not a credential kind; known: {}",
                            known.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(kinds)
    }

    fn account_id(&mut self, s: &mut Section, key: &'static str) -> Option<String> {
        let (v, span) = s.string(self.d, key)?;
        if v.trim().is_empty() || v.chars().any(char::is_control) {
            self.d.report(
                span,
                &s.key_path(key),
                "must be a non-empty account name without control characters",
            );
            return None;
        }
        Some(v)
    }

    /// Only an absent key is reported as missing: one that is there but
    /// wrong has had its own problem reported already.
    fn required_account_id(
        &mut self,
        s: &mut Section,
        key: &'static str,
        rule: &str,
    ) -> Option<String> {
        let id = self.account_id(s, key);
        if id.is_none() && s.value_span(key).is_none() {
            self.missing(s, key, rule);
        }
        id
    }

    pub(super) fn account(&mut self, mut s: Section) -> Option<Account> {
        let id = self.required_account_id(&mut s, "id", "every [[account]] needs an id");
        let password_changed = match s.datetime_text(self.d, "password_changed") {
            Some((text, span)) => match DateTime::parse_from_rfc3339(&text) {
                Ok(t) => Some(Some(t.with_timezone(&Utc))),
                Err(e) => {
                    self.d.report(
                        span,
                        &s.key_path("password_changed"),
                        format!("{text:?} is not a date-time with an offset, such as 2026-10-01T12:00:00Z ({e})"),
                    );
                    None
                }
            },
            None => Some(None),
        };
        s.finish(self.d);
        Some(Account {
            id: id?,
            password_changed: password_changed?,
        })
    }

    pub(super) fn token_link(&mut self, mut s: Section) -> Option<TokenLink> {
        let path = self.required_path(&mut s, "token");
        let account =
            self.required_account_id(&mut s, "account", "every [[token]] needs an account");
        s.finish(self.d);
        Some(TokenLink {
            path: path?,
            account: account?,
        })
    }
}
