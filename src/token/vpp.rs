//! Apple content tokens (`*.vpptoken`): Base64 of a small JSON object with
//! `token`, `expDate` and `orgName`. The reader itself is the parent
//! module's (its hot path is shared with the fuzz target and the bench);
//! this file is what makes it a [`Kind`].

use super::kind::{Kind, KindId, Rules};
use super::{Fingerprint, TokenContent, TokenError, MAX_TOKEN_FILE_BYTES};
use crate::secret::Secret;

const RENEWAL: &str = "To renew: sign in to Apple Business with a role that may get licences for apps and books, \
open Settings > Payments & Billing > Apps & Books, download a new content token, and upload it to your MDM. \
Then replace the old file in the watched folder.";
const PASSWORD_WARNING: &str =
    "Changing the password of the Managed Apple Account that downloaded a token \
invalidates that token at once: download a new token after every password change.";
const UNREADABLE: &str = "Replace the file with the .vpptoken file downloaded from Apple Business, or remove it from the watched folder. `tokenwatch inspect FILE` shows what is wrong.";

const EXT: &[u8] = b".vpptoken";

pub struct Vpp;

impl Kind for Vpp {
    fn id(&self) -> KindId {
        KindId::Vpp
    }

    /// `*.vpptoken` in any case, with something before the dot.
    fn claims(&self, name: &[u8]) -> bool {
        name.len() > EXT.len() && name[name.len() - EXT.len()..].eq_ignore_ascii_case(EXT)
    }

    fn max_bytes(&self) -> usize {
        MAX_TOKEN_FILE_BYTES
    }

    fn read(&self, bytes: &[u8]) -> (Fingerprint, Result<TokenContent, TokenError>) {
        super::parse_with_fingerprint(bytes)
    }

    fn bearer(&self, bytes: &[u8]) -> Result<(TokenContent, Option<Secret>), TokenError> {
        super::parse_with_bearer(bytes)
    }

    fn rules(&self) -> Rules {
        Rules {
            account_password_change: true,
            apple_verification: true,
        }
    }

    fn noun(&self) -> &'static str {
        "Content token"
    }

    fn renewal_advice(&self) -> &'static [&'static str] {
        &[RENEWAL, PASSWORD_WARNING]
    }

    fn unreadable_advice(&self) -> &'static str {
        UNREADABLE
    }
}
