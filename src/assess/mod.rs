//! Each credential assessed against the rules and what Apple said: the one
//! shape that reports, alerts and mails are built from (pure).

mod apple;
pub mod silence;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use apple::{AppleAssessment, AppleRecord};
pub use silence::{Silence, Silences};

use crate::evaluate::{self, Account};

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
