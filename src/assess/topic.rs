//! A push certificate renewed with another Apple Account: the folder's
//! newest certificate has another topic than the one it replaces, and
//! every device enrolled under the old topic would have to enrol again.

use chrono::{DateTime, Duration, Utc};

use super::{Assessment, FolderAssessment};
use crate::evaluate::Status;

/// A certificate expired or removed longer ago than this is no longer
/// the one the newest replaces: the change was noticed, or not made, then.
pub const REPLACED_WITHIN: Duration = Duration::days(30);

/// A push certificate no longer in its folder, as the state remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoneCert {
    /// As views show it, like [`Assessment::path`].
    pub path: String,
    pub topic: String,
    pub created_at: DateTime<Utc>,
    /// When a scan last saw it.
    pub last_seen: DateTime<Utc>,
}

/// One certificate the newest may replace: its topic and when it stopped
/// counting (expired or removed).
struct Predecessor<'a> {
    topic: &'a str,
    ended: DateTime<Utc>,
}

/// Sets [`Assessment::replaces_topic`] on each folder's newest push
/// certificate (latest `created_at`, a certificate's notBefore) when the
/// certificates it replaces (older ones in the same folder that expired,
/// or are in `gone`, within [`REPLACED_WITHIN`]) all have another topic:
/// the latest of those is named. Another certificate with the same topic
/// (present, or among those replaced) means a proper renewal happened,
/// whatever else the folder held.
///
/// `folders` are in config order, as the assessments' `folder` counts
/// them; a gone certificate belongs to the folder whose path is the
/// longest prefix of its own.
pub fn mark_topic_changes(
    now: DateTime<Utc>,
    tokens: &mut [Assessment],
    folders: &[FolderAssessment],
    gone: &[GoneCert],
) {
    let since = now - REPLACED_WITHIN;
    // Each folder's certificates, in one walk over the tokens: a walk per
    // folder was 10^9 steps for a million tokens in 1,000 folders, most
    // of a pass's 14 s report (BENCHMARKS.md, the million-credential rows).
    let mut by_folder: Vec<Vec<usize>> = vec![Vec::new(); folders.len()];
    for (i, t) in tokens.iter().enumerate() {
        if t.kind_facts.topic.is_some() && t.status != Status::Unreadable {
            if let Some(certs) = by_folder.get_mut(t.folder) {
                certs.push(i);
            }
        }
    }
    for (folder, certs) in by_folder.into_iter().enumerate() {
        let Some(&newest) = certs.iter().max_by_key(|&&i| {
            (
                tokens[i].created_at,
                tokens[i].expires_at,
                &tokens[i].identity,
            )
        }) else {
            continue;
        };
        let new = &tokens[newest];
        let new_created = new.created_at;
        let mut before: Vec<Predecessor<'_>> = certs
            .iter()
            .map(|&i| &tokens[i])
            .filter(|t| t.created_at < new_created && t.status == Status::Expired)
            .filter_map(|t| {
                let ended = t.expires_at.filter(|e| *e >= since && *e <= now)?;
                Some(Predecessor {
                    topic: t.kind_facts.topic.as_deref()?,
                    ended,
                })
            })
            .collect();
        before.extend(
            gone.iter()
                .filter(|g| g.last_seen >= since && Some(g.created_at) < new_created)
                .filter(|g| folder_of(&g.path, folders) == Some(folder))
                .map(|g| Predecessor {
                    topic: &g.topic,
                    ended: g.last_seen,
                }),
        );
        let new_topic = new.kind_facts.topic.as_deref();
        let renewed = before.iter().any(|p| Some(p.topic) == new_topic)
            || certs
                .iter()
                .any(|&i| i != newest && tokens[i].kind_facts.topic.as_deref() == new_topic);
        if renewed {
            continue;
        }
        let replaced = before
            .iter()
            .max_by_key(|p| (p.ended, p.topic))
            .map(|p| p.topic.to_owned());
        tokens[newest].replaces_topic = replaced;
    }
}

/// The configured folder a shown path is in: the longest folder path that
/// is a prefix of it up to a `/`.
fn folder_of(path: &str, folders: &[FolderAssessment]) -> Option<usize> {
    folders
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            let base = f.path.trim_end_matches('/');
            path.strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|(_, f)| f.path.len())
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests;
