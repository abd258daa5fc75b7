//! The config turned into the small policy values the pure modules take, so
//! none of them has to know the config's shape.

use chrono::Duration;
use lettre::message::Mailbox;

use super::{AlertPolicy, Config};
use crate::alerts::{self, Audience, Audiences, Member};
use crate::assess::{self, AccountBook};
use crate::evaluate;
use crate::scan::FolderSpec;

impl From<&super::Folder> for FolderSpec {
    fn from(f: &super::Folder) -> FolderSpec {
        FolderSpec {
            path: f.path.clone(),
            allow_empty: f.allow_empty,
            follow_links: f.follow_links,
            kinds: f.kinds.clone(),
            ade_key: f.ade_key.as_ref().and_then(|k| k.key.clone()),
        }
    }
}

impl AlertPolicy {
    /// What the status rules need: the largest lead day marks "expiring",
    /// and the grace after a password change.
    pub fn rules(&self) -> evaluate::Policy {
        evaluate::Policy {
            expiring_days: self.lead_days.first().copied().unwrap_or(0) as i64,
            grace: Duration::hours(self.password_change_grace_hours as i64),
        }
    }

    /// What planning alerts needs: the lead days, reminders and whether
    /// every token must name its account.
    pub fn planner(&self) -> alerts::Policy {
        alerts::Policy {
            lead_days: self.lead_days.clone(),
            repeat_days: self.repeat_days,
            require_account: self.require_account,
        }
    }
}

/// A configured mail recipient as alerts address it: the storm guard and
/// the digest tell people apart by the address in lower case.
fn mail_member(m: &Mailbox) -> Member {
    Member {
        channel: crate::mail::payload::CHANNEL,
        address: m.to_string(),
        key: m.email.to_string().to_lowercase(),
    }
}

/// A configured webhook as alerts address it: one member per name, so a
/// storm becomes one summary per webhook.
fn webhook_member(name: &str) -> Member {
    Member {
        channel: crate::webhook::CHANNEL,
        address: name.to_owned(),
        key: format!("{}:{name}", crate::webhook::CHANNEL),
    }
}

/// Mail recipients first, then webhooks, each named once.
fn audience<'a>(
    mail: impl IntoIterator<Item = &'a Mailbox>,
    webhooks: impl IntoIterator<Item = &'a String>,
) -> Audience {
    let mut members: Vec<Member> = mail.into_iter().map(mail_member).collect();
    for name in webhooks {
        let m = webhook_member(name);
        if !members.contains(&m) {
            members.push(m);
        }
    }
    Audience { members }
}

impl Config {
    /// The folders as the scan takes them, in config order (the scan's
    /// folder indices are indices into `folders`).
    pub fn folder_specs(&self) -> Vec<FolderSpec> {
        self.folders.iter().map(FolderSpec::from).collect()
    }

    /// Each token's account as the config links it.
    pub fn account_book(&self) -> AccountBook {
        AccountBook::new(
            self.tokens
                .iter()
                .map(|t| (t.path.clone(), t.account.clone())),
            self.folders.iter().map(|f| f.account.clone()).collect(),
            self.accounts.iter().cloned(),
        )
    }

    /// Who hears about what: each folder's recipients (`[alerts]` ones
    /// first), and for the host `[alerts] recipients`, else everyone any
    /// folder names. Every audience also has the `[alerts] webhooks`; a
    /// folder's audience adds the folder's own.
    pub fn audiences(&self) -> Audiences {
        let mut out = Audiences::default();
        let per_folder: Vec<Vec<Mailbox>> = self
            .folders
            .iter()
            .map(|f| self.recipients_for(Some(f)))
            .collect();
        out.folder = per_folder
            .iter()
            .zip(&self.folders)
            .map(|(list, f)| {
                out.add(audience(
                    list,
                    self.alerts.webhooks.iter().chain(&f.webhooks),
                ))
            })
            .collect();
        let mut host = self.alerts.recipients.clone();
        if host.is_empty() {
            for m in per_folder.into_iter().flatten() {
                if !host.iter().any(|r| r.email == m.email) {
                    host.push(m);
                }
            }
        }
        out.host = out.add(audience(&host, &self.alerts.webhooks));
        out
    }

    /// What assessing a token needs from the config.
    pub fn assess_policy(&self) -> assess::Policy {
        assess::Policy {
            rules: self.alerts.rules(),
            accounts: self.account_book(),
            apple_verify: self.apple.verify,
            expected_mdm: self
                .folders
                .iter()
                .map(|f| f.expected_mdm.clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn audiences_of(text: &str) -> (alerts::Audiences, Vec<Vec<String>>) {
        let cfg = super::super::parse(text, Path::new("/etc/tokenwatch.toml")).unwrap();
        let a = cfg.audiences();
        let addresses = |id| {
            a.get(id)
                .members
                .iter()
                .map(|m| format!("{} {} {}", m.channel, m.address, m.key))
                .collect::<Vec<_>>()
        };
        let mut lists: Vec<Vec<String>> = a.folder.iter().map(|&id| addresses(id)).collect();
        lists.push(addresses(a.host));
        (a, lists)
    }

    #[test]
    fn each_folder_hears_the_common_recipients_first_and_the_host_hears_them_alone() {
        let (a, lists) = audiences_of(
            "[alerts]\nrecipients = [\"Ops <Ops@Example.com>\"]\n\
             [[folder]]\npath = \"/a\"\nrecipients = [\"acme@example.com\", \"Ops@Example.com\"]\n\
             [[folder]]\npath = \"/b\"\n",
        );
        assert_eq!(
            lists,
            [
                vec![
                    "mail Ops <Ops@Example.com> ops@example.com",
                    "mail acme@example.com acme@example.com"
                ],
                vec!["mail Ops <Ops@Example.com> ops@example.com"],
                vec!["mail Ops <Ops@Example.com> ops@example.com"],
            ]
        );
        // Folder /b and the host share one audience.
        assert_eq!(a.folder[1], a.host);
        assert_eq!(a.sets.len(), 2);
    }

    #[test]
    fn without_common_recipients_the_host_tells_everyone_any_folder_names() {
        let (_, lists) = audiences_of(
            "[[folder]]\npath = \"/a\"\nrecipients = [\"a@example.com\", \"b@example.com\"]\n\
             [[folder]]\npath = \"/b\"\nrecipients = [\"b@example.com\", \"c@example.com\"]\n",
        );
        assert_eq!(
            lists[2],
            [
                "mail a@example.com a@example.com",
                "mail b@example.com b@example.com",
                "mail c@example.com c@example.com"
            ]
        );
    }

    #[test]
    fn webhooks_join_every_audience_and_a_folder_s_own_join_only_its_audience() {
        let (_, lists) = audiences_of(
            "[[webhook]]\nname = \"chat\"\nurl = \"https://chat.example.com/x\"\n\
             [[webhook]]\nname = \"auto\"\nurl = \"https://auto.example.com/y\"\n\
             [alerts]\nrecipients = [\"ops@example.com\"]\nwebhooks = [\"chat\"]\n\
             [[folder]]\npath = \"/a\"\nwebhooks = [\"auto\", \"chat\"]\n\
             [[folder]]\npath = \"/b\"\n",
        );
        assert_eq!(
            lists,
            [
                vec![
                    "mail ops@example.com ops@example.com",
                    "webhook chat webhook:chat",
                    "webhook auto webhook:auto"
                ],
                vec![
                    "mail ops@example.com ops@example.com",
                    "webhook chat webhook:chat"
                ],
                vec![
                    "mail ops@example.com ops@example.com",
                    "webhook chat webhook:chat"
                ],
            ]
        );
    }
}
