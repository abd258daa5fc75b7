//! What a credential file holds that ops should fix but that is worth no
//! alert (a push certificate with its private key, an enrollment token the
//! folder's key does not decrypt): logged once per file and content, not
//! at every pass, and never mailed.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::token::found::FoundFile;
use crate::token::{kind, Fingerprint};

/// The files already warned about, by path and content: the same file
/// rewritten with a key again is news, an unchanged one is not. Only files
/// with a warning are kept, so it stays small.
#[derive(Debug, Default)]
pub(super) struct Warned(HashSet<(PathBuf, Fingerprint)>);

impl Warned {
    /// Logs the warnings of the files not warned about before; returns how
    /// many lines it logged.
    pub(super) fn log_new<'a>(&mut self, files: impl IntoIterator<Item = &'a FoundFile>) -> usize {
        let mut logged = 0;
        for f in files {
            let Ok(c) = &f.content else { continue };
            let warnings = c.warnings();
            if warnings.is_empty() || !self.0.insert((f.path.clone(), c.fingerprint.clone())) {
                continue;
            }
            for w in warnings {
                tracing::warn!(
                    file = %f.path.display(),
                    kind = c.kind.as_str(),
                    "{} file: {w}",
                    kind(c.kind).noun()
                );
                logged += 1;
            }
        }
        logged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::KindId;

    fn found(name: &str, fixture: &str) -> FoundFile {
        let path = format!(
            "{}/tests/fixtures/apns/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        FoundFile::read_for_test(
            PathBuf::from(format!("/srv/push/{name}")),
            KindId::Apns,
            &bytes,
        )
    }

    #[test]
    fn a_file_is_warned_about_once_until_it_changes_or_another_one_comes() {
        let mut warned = Warned::default();
        let keyed = found("push.pem", "push_with_key.pem");
        let clean = found("clean.pem", "push.pem");
        assert_eq!(warned.log_new([&keyed, &clean]), 1);
        assert_eq!(warned.log_new([&keyed, &clean]), 0);
        let copy = found("copy.pem", "push_with_key.pem");
        assert_eq!(warned.log_new([&keyed, &copy]), 1);
    }
}
