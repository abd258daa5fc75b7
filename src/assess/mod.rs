//! Each credential assessed against the rules and what Apple said: the one
//! shape that reports, alerts and mails are built from (pure).

mod apple;
pub mod silence;
mod superseded;
pub mod topic;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use apple::{AppleAssessment, AppleRecord};
pub use silence::{Silence, Silences};
pub use topic::{mark_topic_changes, GoneCert};

use crate::evaluate::{self, Account, Facts, Status};
use crate::show::show_path;
use crate::token::found::{FolderScan, FolderState, FoundFile};
use crate::token::{Credential, JsonKey, KindId};

/// Apple's verdicts by full fingerprint.
pub type Verdicts = HashMap<String, AppleRecord>;

/// Which Managed Apple Account each token belongs to: a link for its path
/// wins over its folder's account.
#[derive(Debug, Clone, Default)]
pub struct AccountBook {
    by_path: HashMap<PathBuf, String>,
    /// By configured folder index.
    by_folder: Vec<Option<String>>,
    accounts: HashMap<String, Account>,
}

impl AccountBook {
    /// `links` and `accounts`: the first entry for a path or an id counts.
    pub fn new(
        links: impl IntoIterator<Item = (PathBuf, String)>,
        by_folder: Vec<Option<String>>,
        accounts: impl IntoIterator<Item = Account>,
    ) -> AccountBook {
        let mut by_path = HashMap::new();
        for (path, id) in links {
            by_path.entry(path).or_insert(id);
        }
        let mut by_id = HashMap::new();
        for a in accounts {
            by_id.entry(a.id.clone()).or_insert(a);
        }
        AccountBook {
            by_path,
            by_folder,
            accounts: by_id,
        }
    }

    pub fn account_for(&self, path: &Path, folder: usize) -> Option<&str> {
        self.by_path
            .get(path)
            .or_else(|| self.by_folder.get(folder)?.as_ref())
            .map(String::as_str)
    }

    pub fn get(&self, id: &str) -> Option<&Account> {
        self.accounts.get(id)
    }
}

/// What assessing a token needs besides the token and Apple's verdicts.
#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: evaluate::Policy,
    pub accounts: AccountBook,
    /// Apple verification is on: a token Apple cannot be asked about says so.
    pub apple_verify: bool,
    /// By configured folder index: the MDM its content tokens are meant
    /// for (`expected_mdm`), when one is named.
    pub expected_mdm: Vec<Option<String>>,
}

/// One credential assessed: its facts, its status by the rules, and what
/// Apple said. The serialised fields are `check --json`'s token entries and
/// the daemon's status snapshot, a public interface (new keys may be added,
/// none renamed); the skipped ones are what alerts need besides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assessment {
    pub path: String,
    /// The credential kind (`vpp`). A snapshot stored before kinds existed
    /// has none, and everything then was a content token.
    #[serde(default)]
    pub kind: KindId,
    pub org_name: Option<String>,
    /// First 12 hex digits of the SHA-256 fingerprint.
    pub fingerprint: Option<String>,
    #[serde(with = "crate::show::serde_rfc3339_opt")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::show::serde_rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    pub days_left: Option<i64>,
    pub account: Option<String>,
    pub status: Status,
    pub detail: Option<String>,
    /// The token file can be read by every user of the host.
    #[serde(default)]
    pub world_readable: bool,
    /// What Apple said when last asked; null when never asked.
    #[serde(default)]
    /// Boxed: most credentials are never asked about (only content tokens
    /// can be), and a pass holds one assessment per credential.
    pub apple: Option<Box<AppleAssessment>>,
    /// The silence that holds for it now (`{"until", "reason"}`), null
    /// when none: it gets no alerts and does not count towards `check`'s
    /// exit code until then.
    #[serde(default)]
    pub silenced: Option<Box<silence::Silence>>,
    /// Path of the token that replaced this one (status `superseded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// The keys only some kinds fill. Boxed, like the silence, Apple's
    /// answer and an MDM conflict: a pass holds an assessment per
    /// credential (100,000 of them on a big host), most with none of these.
    #[serde(flatten)]
    pub kind_facts: Box<KindFacts>,
    /// The topic of the push certificate this one replaced in its folder,
    /// when it differs from this one's: it was made with another Apple
    /// Account.
    #[serde(skip)]
    pub replaces_topic: Option<String>,
    /// Apple says another MDM uses this token than its folder expects.
    #[serde(skip)]
    pub mdm_conflict: Option<Box<MdmConflict>>,
    /// Full fingerprint of the content, or `path:<path>` when nothing could
    /// be read: what alert history follows.
    #[serde(skip)]
    pub identity: String,
    /// Last modification of the file, for the settle rule of alerts.
    #[serde(skip)]
    pub modified_at: Option<DateTime<Utc>>,
    /// Index of the configured folder.
    #[serde(skip)]
    pub folder: usize,
}

/// The keys of the views that only some kinds fill: each is present for
/// every credential and null where it does not apply (or could not be
/// read); which apply is the kind's say ([`crate::token::Kind::json_keys`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindFacts {
    /// A push certificate's topic (its subject UID).
    #[serde(default)]
    pub topic: Option<String>,
    /// A certificate's serial number, hex.
    #[serde(default)]
    pub serial: Option<String>,
    /// When the issuer made it (a certificate's notBefore), where the file
    /// says so rather than `created_at` being derived.
    #[serde(default, with = "crate::show::serde_rfc3339_opt")]
    pub issued_at: Option<DateTime<Utc>>,
    /// A push certificate file holds its private key too.
    #[serde(default)]
    pub has_private_key: Option<bool>,
    /// An enrollment token's expiry was estimated from its file name.
    #[serde(default)]
    pub expiry_estimated: Option<bool>,
    /// The MDM server an enrollment token is for (from its file name).
    #[serde(default)]
    pub server: Option<String>,
}

/// The MDM Apple says uses a token, and the one its folder expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdmConflict {
    pub expected: String,
    pub actual: String,
}

impl MdmConflict {
    /// A conflict when Apple names an MDM and it is not the expected one.
    /// Names are compared ignoring case and surrounding spaces: how an
    /// admin types "Jamf Pro" in the config is not a conflict.
    fn of(expected: Option<&str>, actual: Option<&str>) -> Option<MdmConflict> {
        let (expected, actual) = (expected?.trim(), actual?.trim());
        let same = expected.to_lowercase() == actual.to_lowercase();
        (!same && !actual.is_empty()).then(|| MdmConflict {
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        })
    }
}

/// One configured folder as alerts see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderAssessment {
    pub path: String,
    pub state: FolderState,
    /// Readable tokens found in it (before de-duplication).
    pub tokens: usize,
    /// Why it is missing or unreadable.
    pub error: Option<String>,
}

impl FolderAssessment {
    /// The problem alerts name (`missing`, `unreadable`, `empty`) and its
    /// cause; `None` when fine (or empty and allowed).
    pub fn problem(&self) -> Option<(&'static str, Option<&str>)> {
        match self.state {
            FolderState::Ok => None,
            FolderState::Missing => Some(("missing", self.error.as_deref())),
            FolderState::Unreadable => Some(("unreadable", self.error.as_deref())),
            FolderState::Empty => Some(("empty", None)),
        }
    }
}

pub fn assess_folders(folders: &[FolderScan]) -> Vec<FolderAssessment> {
    folders
        .iter()
        .map(|f| FolderAssessment {
            path: show_path(&f.path),
            state: f.state,
            tokens: f.tokens,
            error: f.error.clone(),
        })
        .collect()
}

/// Every file assessed at `now`: superseded copies found by Apple's `uId`,
/// Apple's expiry compared with the file's, the account resolved. Sorted
/// soonest expiry first, unreadable files (no date) last, by path.
///
/// Borrowed files: the daemon's folders keep theirs, and copying 100,000 of
/// them for each pass would double its memory. `files` must be
/// de-duplicated already (the scan's `dedup_refs`).
pub fn assess(
    now: DateTime<Utc>,
    files: &[&FoundFile],
    policy: &Policy,
    verdicts: &Verdicts,
) -> Vec<Assessment> {
    let current = superseded::current_by_uid(verdicts, files);
    let mut out: Vec<Assessment> = files
        .iter()
        .map(|f| assess_one(now, f, policy, verdicts, &current))
        .collect();
    // Indices are sorted, then each assessment moved into place once:
    // sorting the assessments themselves moved each several hundred bytes
    // many times and took a scratch copy of half of them (1.2 s and
    // hundreds of MiB for a million; BENCHMARKS.md, the million-credential
    // rows). A stable sort of indices keeps equal keys in order, as before.
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&out[a], &out[b]);
        (a.expires_at.is_none(), a.expires_at, &a.path).cmp(&(
            b.expires_at.is_none(),
            b.expires_at,
            &b.path,
        ))
    });
    permute(&mut out, order);
    out
}

/// What names a file's credential in the ledger and the state database:
/// its fingerprint, or for a file that could not be read its path.
pub fn identity(f: &FoundFile) -> String {
    match f.fingerprint() {
        Some(fp) => fp.as_str().to_string(),
        None => format!("path:{}", show_path(&f.path)),
    }
}

/// Rearranges `v` so that `v[k]` becomes what was at `order[k]` (a
/// permutation of the indices), moving each element once, in place.
pub(crate) fn permute<T>(v: &mut [T], mut order: Vec<usize>) {
    for start in 0..v.len() {
        // Follows the cycle through `start`; positions done are marked by
        // pointing at themselves.
        let mut at = start;
        loop {
            let from = order[at];
            order[at] = at;
            if from == start || from == at {
                break;
            }
            v.swap(at, from);
            at = from;
        }
    }
}

fn assess_one(
    now: DateTime<Utc>,
    f: &FoundFile,
    policy: &Policy,
    verdicts: &Verdicts,
    current: &superseded::Current<'_>,
) -> Assessment {
    let account = policy
        .accounts
        .account_for(&f.path, f.folder)
        .map(str::to_string);
    let identity = identity(f);
    let mut a = Assessment {
        path: show_path(&f.path),
        kind: f.kind,
        org_name: None,
        fingerprint: f.fingerprint().map(|fp| fp.short().to_string()),
        created_at: None,
        expires_at: None,
        days_left: None,
        account,
        status: Status::Unreadable,
        detail: None,
        world_readable: f.world_readable,
        apple: None,
        silenced: None,
        superseded_by: None,
        mdm_conflict: None,
        replaces_topic: None,
        kind_facts: Box::default(),
        identity,
        modified_at: f.mtime.map(DateTime::<Utc>::from),
        folder: f.folder,
    };
    let t = match &f.content {
        Ok(t) => t,
        Err(err) => {
            a.detail = Some(err.to_string());
            return a;
        }
    };
    let rules = crate::token::kind(f.kind).rules();
    let verdict = verdicts.get(t.fingerprint.as_str());
    a.apple = match verdict {
        Some(v) => Some(Box::new(AppleAssessment::from_record(v, t.expires_at))),
        None if rules.apple_verification && !t.verifiable_with_apple() && policy.apple_verify => {
            Some(Box::new(AppleAssessment::unverifiable()))
        }
        None => None,
    };
    a.superseded_by = verdict
        .and_then(|v| v.uid.as_deref())
        .and_then(|uid| current.get(uid))
        .filter(|(_, fp, _)| *fp != t.fingerprint.as_str())
        .map(|(_, _, path)| show_path(path));
    a.mdm_conflict = MdmConflict::of(
        policy.expected_mdm.get(f.folder).and_then(Option::as_deref),
        verdict.and_then(|v| v.mdm_name.as_deref()),
    )
    .map(Box::new);
    let facts = Facts {
        expires_at: t.expires_at,
        created_at: t.created_at,
        account: a.account.as_deref().and_then(|id| policy.accounts.get(id)),
        apple: a
            .apple
            .as_ref()
            .map(|a| a.verdict)
            .filter(|v| v.is_definitive()),
        superseded: a.superseded_by.is_some(),
        rules,
    };
    let e = evaluate::evaluate(now, &facts, &policy.rules);
    a.org_name = Some(t.org_name.clone());
    a.kind_facts = Box::new(kind_facts(t));
    a.created_at = Some(t.created_at);
    a.expires_at = Some(t.expires_at);
    a.days_left = Some(e.days_left);
    a.status = e.status;
    // A rule's finding says more than the note that the date is a guess,
    // which the per-kind `expiry_estimated` key keeps saying anyway.
    a.detail = e.detail.or_else(|| {
        a.kind_facts
            .expiry_estimated
            .filter(|estimated| *estimated)
            .map(|_| evaluate::DETAIL_EXPIRY_ESTIMATED.to_string())
    });
    a
}

/// The per-kind keys: the ones that apply to the credential's kind are
/// set (a flag false rather than null), the others stay null.
fn kind_facts(t: &Credential) -> KindFacts {
    let keys = crate::token::kind(t.kind).json_keys();
    let d = t.details().cloned().unwrap_or_default();
    let has = |k: JsonKey| keys.contains(&k);
    KindFacts {
        topic: d.topic.filter(|_| has(JsonKey::Topic)),
        serial: d.serial.filter(|_| has(JsonKey::Serial)),
        issued_at: d.issued_at.filter(|_| has(JsonKey::IssuedAt)),
        has_private_key: has(JsonKey::HasPrivateKey).then_some(d.has_private_key),
        expiry_estimated: has(JsonKey::ExpiryEstimated).then_some(d.expiry_estimated),
        server: d.server.filter(|_| has(JsonKey::Server)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_puts_each_element_where_the_order_says() {
        // Every permutation of 5, and a few longer ones with several cycles.
        fn check(order: &[usize]) {
            let mut v: Vec<String> = (0..order.len()).map(|i| format!("e{i}")).collect();
            let want: Vec<String> = order.iter().map(|&i| format!("e{i}")).collect();
            permute(&mut v, order.to_vec());
            assert_eq!(v, want, "order {order:?}");
        }
        fn all(prefix: &mut Vec<usize>, n: usize) {
            if prefix.len() == n {
                return check(prefix);
            }
            for i in 0..n {
                if !prefix.contains(&i) {
                    prefix.push(i);
                    all(prefix, n);
                    prefix.pop();
                }
            }
        }
        for n in 0..=5 {
            all(&mut Vec::new(), n);
        }
        check(&[3, 4, 5, 0, 1, 2, 7, 6, 8, 11, 9, 10]);
        let mut order: Vec<usize> = (0..1000).map(|i| (i * 7 + 3) % 1000).collect();
        order.reverse();
        check(&order);
    }

    #[test]
    fn a_path_link_wins_over_the_folder_and_the_first_entry_counts() {
        let book = AccountBook::new(
            [
                (PathBuf::from("/t/a.vpptoken"), "linked".to_string()),
                (PathBuf::from("/t/a.vpptoken"), "later".to_string()),
            ],
            vec![Some("folder".to_string()), None],
            [
                Account {
                    id: "linked".into(),
                    password_changed: None,
                },
                Account {
                    id: "linked".into(),
                    password_changed: Some(chrono::DateTime::UNIX_EPOCH),
                },
            ],
        );
        assert_eq!(
            book.account_for(Path::new("/t/a.vpptoken"), 1),
            Some("linked")
        );
        assert_eq!(
            book.account_for(Path::new("/t/b.vpptoken"), 0),
            Some("folder")
        );
        assert_eq!(book.account_for(Path::new("/t/b.vpptoken"), 1), None);
        assert_eq!(book.account_for(Path::new("/t/b.vpptoken"), 7), None);
        assert_eq!(book.get("linked").unwrap().password_changed, None);
        assert!(book.get("folder").is_none());
    }

    #[test]
    fn an_mdm_is_in_conflict_only_when_apple_names_another_one() {
        let c = MdmConflict::of(Some("Jamf Pro"), Some("Apple Business Essentials"));
        assert_eq!(
            c,
            Some(MdmConflict {
                expected: "Jamf Pro".into(),
                actual: "Apple Business Essentials".into(),
            })
        );
        assert_eq!(MdmConflict::of(Some("Jamf Pro"), Some(" jamf pro ")), None);
        assert_eq!(MdmConflict::of(Some("Jamf Pro"), None), None);
        assert_eq!(MdmConflict::of(Some("Jamf Pro"), Some("")), None);
        assert_eq!(MdmConflict::of(None, Some("Fleet")), None);
    }
}
