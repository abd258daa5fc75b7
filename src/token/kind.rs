//! The credential kind seam: what sets one kind of watched file apart from
//! another. A [`Kind`] decides which file names a scan picks up, how the
//! bytes are read, which rules apply to what it yields, and the advice that
//! mails give about it. Everything after the scan asks the kind instead of
//! knowing file formats.
//!
//! Adding a kind: one file implementing [`Kind`], a [`KindId`] variant and
//! one line in [`KINDS`].

use serde::{Deserialize, Serialize};

use super::ade::AdeKey;
use super::{Credential, Fingerprint, TokenError};
use crate::secret::Secret;

/// Which kind a file is; stored in and shown by the JSON output (`kind`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum KindId {
    /// An Apple content token (`.vpptoken`). The default, because output
    /// written before kinds existed held nothing else.
    #[default]
    Vpp,
    /// An APNs MDM push certificate (`.pem`, `.crt`, `.cer`).
    Apns,
    /// An Automated Device Enrollment server token (`.p7m`).
    Ade,
}

impl KindId {
    /// The name in JSON output, the same as the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            KindId::Vpp => "vpp",
            KindId::Apns => "apns",
            KindId::Ade => "ade",
        }
    }
}

/// Which of the evaluation rules apply to a kind's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Changing the password of the account that downloaded the file kills it.
    pub account_password_change: bool,
    /// Apple can be asked whether the file is still good.
    pub apple_verification: bool,
}

/// One file as a kind reads it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The final path component: some kinds read facts from Apple's file
    /// names.
    pub name: &'a [u8],
    /// At most [`Kind::max_bytes`] + 1 bytes of the file.
    pub bytes: &'a [u8],
    /// The folder's key for kinds whose files are encrypted to it (ADE
    /// server tokens); None where the folder has none.
    pub key: Option<&'a AdeKey>,
}

/// One kind of credential file. Implementations are pure: bytes in, facts
/// or a specific error out.
pub trait Kind: Sync + Send + 'static {
    fn id(&self) -> KindId;

    /// Whether a file with this name (the final path component) is of this
    /// kind. Hidden files and editor leftovers never reach this: the scan
    /// skips them first.
    fn claims(&self, file_name: &[u8]) -> bool;

    /// The scan reads at most one byte more than this; a larger file is
    /// an error the kind reports.
    fn max_bytes(&self) -> usize;

    /// The file's fingerprint (also for files that do not read) and its
    /// facts or why they cannot be had.
    fn read(&self, src: Source<'_>) -> (Fingerprint, Result<Credential, TokenError>);

    /// [`Kind::read`] plus the secret that Apple takes, read only when
    /// Apple is asked; None when the file does not hold it (kinds Apple
    /// cannot be asked about never do).
    fn bearer(&self, src: Source<'_>) -> Result<(Credential, Option<Secret>), TokenError> {
        self.read(src).1.map(|c| (c, None))
    }

    fn rules(&self) -> Rules;

    /// How mails name one file of this kind: "Content token".
    fn noun(&self) -> &'static str;

    /// The paragraphs a mail about an expiring, expired or dead file ends with.
    fn renewal_advice(&self) -> &'static [&'static str];

    /// The paragraph a mail about an unreadable file of this kind ends with.
    fn unreadable_advice(&self) -> &'static str;
}

/// Every kind, in the order a file name is offered to them.
pub static KINDS: &[&dyn Kind] = &[&super::vpp::Vpp, &super::apns::Apns, &super::ade::Ade];

/// The kind behind an id.
pub fn kind(id: KindId) -> &'static dyn Kind {
    match id {
        KindId::Vpp => &super::vpp::Vpp,
        KindId::Apns => &super::apns::Apns,
        KindId::Ade => &super::ade::Ade,
    }
}

/// The kind that claims this file name, if any.
pub fn kind_for_name(file_name: &[u8]) -> Option<&'static dyn Kind> {
    KINDS.iter().copied().find(|k| k.claims(file_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_its_kind_and_every_registered_kind_its_id() {
        for k in KINDS {
            assert_eq!(kind(k.id()).id(), k.id());
        }
        assert_eq!(kind(KindId::Vpp).id(), KindId::Vpp);
        assert_eq!(kind(KindId::Apns).id(), KindId::Apns);
        assert_eq!(kind(KindId::Ade).id(), KindId::Ade);
    }

    #[test]
    fn names_are_claimed_by_their_kind() {
        let vpp = |n: &[u8]| kind_for_name(n).map(|k| k.id());
        assert_eq!(vpp(b"sToken_for_Berlin.vpptoken"), Some(KindId::Vpp));
        assert_eq!(vpp(b"A.VPPTOKEN"), Some(KindId::Vpp));
        assert_eq!(vpp(b".vpptoken"), None);
        assert_eq!(vpp(b"a.vpptoken~"), None);
        assert_eq!(vpp(b"push.pem"), Some(KindId::Apns));
        assert_eq!(vpp(b"push.CER"), Some(KindId::Apns));
        assert_eq!(vpp(b"chain.crt"), Some(KindId::Apns));
        assert_eq!(vpp(b".pem"), None);
        assert_eq!(vpp(b"push.pem.bak"), None);
        assert_eq!(vpp(b"a.p7m"), Some(KindId::Ade));
        assert_eq!(
            vpp(b"S_Token_2026-03-14T09-26-53Z_smime.P7M"),
            Some(KindId::Ade)
        );
        assert_eq!(vpp(b".p7m"), None);
    }

    #[test]
    fn the_id_is_spelled_vpp_in_json() {
        assert_eq!(serde_json::to_string(&KindId::Vpp).unwrap(), "\"vpp\"");
        assert_eq!(KindId::Vpp.as_str(), "vpp");
        assert_eq!(KindId::default(), KindId::Vpp);
        assert_eq!(serde_json::to_string(&KindId::Apns).unwrap(), "\"apns\"");
        assert_eq!(KindId::Apns.as_str(), "apns");
        assert_eq!(serde_json::to_string(&KindId::Ade).unwrap(), "\"ade\"");
        assert_eq!(KindId::Ade.as_str(), "ade");
    }
}
