//! The rules: each token's status and days left, as a pure function of the
//! clock, the token's dates, its account and what Apple said. The CLI's
//! `check`, the daemon and the alert planner all call [`evaluate`], so a
//! token cannot be "fine" in one place and "dead" in another.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::token::Rules;

/// Ordered by precedence: when several apply, the greatest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Expiring,
    Expired,
    Invalidated,
    Superseded,
    Unreadable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Expiring => "expiring",
            Status::Expired => "expired",
            Status::Invalidated => "invalidated",
            Status::Superseded => "superseded",
            Status::Unreadable => "unreadable",
        }
    }
}

/// Reason codes in `detail` for invalidated tokens.
pub const REASON_PASSWORD_CHANGE: &str = "password_change";
pub const REASON_APPLE_REVOKED: &str = "apple_revoked";
pub const REASON_APPLE_INVALID: &str = "apple_invalid";
pub use crate::token::found::REASON_LINK_OUTSIDE_FOLDER;
/// `detail` of a credential whose expiry is not read from the file but
/// estimated (an enrollment token that could not be decrypted: its file
/// name's download time plus one year). A note, not a problem: the status
/// is computed from the estimate as usual.
pub const DETAIL_EXPIRY_ESTIMATED: &str = "expiry_estimated";
/// What [`DETAIL_EXPIRY_ESTIMATED`] means, for people.
pub const EXPIRY_ESTIMATED_MEANS: &str = "estimated as the file name's download time plus one year (set ade_key on the folder to read the real expiry)";
/// What [`REASON_LINK_OUTSIDE_FOLDER`] means, for people.
pub const LINK_OUTSIDE_FOLDER_MEANS: &str = "a symbolic link whose target is outside every configured folder; not followed (set follow_links = true on its [[folder]] to follow it)";

/// The part of the config the rules read.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// `expiring` means within this many days (the largest lead day).
    pub expiring_days: i64,
    pub grace: Duration,
}

/// A Managed Apple Account that tokens belong to, as the rules see it:
/// changing its password kills its tokens (after the grace period).
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub password_changed: Option<DateTime<Utc>>,
}

/// What Apple last said about a token. The same words are stored in the
/// state database, shown as `apple.verdict` and printed by `probe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Revoked,
    Expired,
    Invalid,
    /// Saved as raw JSON: the Base64 that Apple takes is lost.
    Unverifiable,
    /// No answer about the token itself (rate limit, outage, odd reply).
    Error,
}

impl Verdict {
    pub const ALL: [Verdict; 6] = [
        Verdict::Valid,
        Verdict::Revoked,
        Verdict::Expired,
        Verdict::Invalid,
        Verdict::Unverifiable,
        Verdict::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Revoked => "revoked",
            Verdict::Expired => "expired",
            Verdict::Invalid => "invalid",
            Verdict::Unverifiable => "unverifiable",
            Verdict::Error => "error",
        }
    }

    /// Apple's answer about this token; the rules ignore the others.
    pub fn is_definitive(self) -> bool {
        matches!(
            self,
            Verdict::Valid | Verdict::Revoked | Verdict::Expired | Verdict::Invalid
        )
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Callers that compared the old string verdicts with a word keep working.
impl PartialEq<&str> for Verdict {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Text that is none of [`Verdict::as_str`]'s words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Apple verdict {0:?}")]
pub struct UnknownVerdict(pub String);

impl FromStr for Verdict {
    type Err = UnknownVerdict;

    fn from_str(s: &str) -> Result<Verdict, UnknownVerdict> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVerdict(s.to_string()))
    }
}

/// What is known about one readable token.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub account: Option<&'a Account>,
    /// Only a definitive verdict counts; the others act as none.
    pub apple: Option<Verdict>,
    /// Another token with the same Apple `uId` expires later.
    pub superseded: bool,
    /// Which of the rules apply to the token's kind: a password change
    /// counts only where it kills the file, Apple's verdict only where
    /// Apple is asked.
    pub rules: Rules,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub status: Status,
    pub days_left: i64,
    /// A reason code for `invalidated`, or a note for people.
    pub detail: Option<String>,
}

/// Whole days until expiry, rounded down: 0 in the last day, -1 in the
/// first day after expiry.
pub fn days_left(now: DateTime<Utc>, expires_at: DateTime<Utc>) -> i64 {
    (expires_at - now).num_seconds().div_euclid(86_400)
}

pub fn evaluate(now: DateTime<Utc>, facts: &Facts, policy: &Policy) -> Evaluation {
    let days = days_left(now, facts.expires_at);
    let mut detail = None;

    let apple = facts.apple.filter(|_| facts.rules.apple_verification);
    let invalid_reason = match apple {
        Some(Verdict::Revoked) => Some(REASON_APPLE_REVOKED),
        Some(Verdict::Invalid) => Some(REASON_APPLE_INVALID),
        _ => None,
    };
    let password_changed = facts
        .account
        .filter(|_| facts.rules.account_password_change)
        .and_then(|a| a.password_changed.map(|at| (a, at)))
        // A change that has not happened yet (clock skew, a typo) kills nothing.
        .filter(|(_, at)| *at <= now);
    let mut killed_by_password = false;
    if let Some((account, at)) = password_changed {
        if at > facts.created_at + policy.grace {
            killed_by_password = true;
        } else if at > facts.created_at - policy.grace {
            // The derived creation date is only good to about a day, and the
            // normal renewal is "change password, then download": this token
            // may be the fresh one, or may have died with the change.
            detail = Some(format!(
                "created around the password change of {} ({}); check that it still works",
                account.id,
                at.format("%Y-%m-%d %H:%M UTC")
            ));
        }
    }

    let status = if facts.superseded {
        Status::Superseded
    } else if let Some(reason) = invalid_reason {
        detail = Some(reason.to_string());
        Status::Invalidated
    } else if killed_by_password {
        detail = Some(REASON_PASSWORD_CHANGE.to_string());
        Status::Invalidated
    } else if now >= facts.expires_at || apple == Some(Verdict::Expired) {
        Status::Expired
    } else if days <= policy.expiring_days {
        Status::Expiring
    } else {
        Status::Ok
    };
    Evaluation {
        status,
        days_left: days,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, mi, s).unwrap()
    }

    const POLICY: Policy = Policy {
        expiring_days: 60,
        grace: Duration::hours(48),
    };

    fn facts(expires_at: DateTime<Utc>) -> Facts<'static> {
        Facts {
            expires_at,
            created_at: expires_at - Duration::days(365),
            account: None,
            apple: None,
            superseded: false,
            rules: crate::token::kind(crate::token::KindId::Vpp).rules(),
        }
    }

    #[test]
    fn a_kind_without_the_password_and_apple_rules_ignores_both() {
        let exp = at(2027, 6, 1, 0, 0, 0);
        let now = at(2026, 11, 1, 0, 0, 0);
        let acc = account(at(2026, 10, 1, 0, 0, 0));
        let none = Rules {
            account_password_change: false,
            apple_verification: false,
        };
        for apple in [Verdict::Revoked, Verdict::Invalid, Verdict::Expired] {
            let f = Facts {
                account: Some(&acc),
                apple: Some(apple),
                rules: none,
                ..facts(exp)
            };
            assert_eq!(evaluate(now, &f, &POLICY).status, Status::Ok, "{apple}");
            let f = Facts {
                rules: facts(exp).rules,
                ..f
            };
            assert_ne!(evaluate(now, &f, &POLICY).status, Status::Ok, "{apple}");
        }
    }

    #[test]
    fn days_left_rounds_down_and_goes_negative() {
        let exp = at(2027, 1, 10, 12, 0, 0);
        assert_eq!(days_left(exp - Duration::days(14), exp), 14);
        assert_eq!(
            days_left(exp - Duration::days(14) + Duration::seconds(1), exp),
            13
        );
        assert_eq!(days_left(exp - Duration::seconds(1), exp), 0);
        assert_eq!(days_left(exp, exp), 0);
        assert_eq!(days_left(exp + Duration::seconds(1), exp), -1);
        assert_eq!(days_left(exp + Duration::days(1), exp), -1);
        assert_eq!(
            days_left(exp + Duration::days(1) + Duration::seconds(1), exp),
            -2
        );
    }

    #[test]
    fn expiring_starts_exactly_at_the_largest_lead_day() {
        let exp = at(2027, 3, 1, 0, 0, 0);
        let just_outside = exp - Duration::days(61);
        assert_eq!(
            evaluate(just_outside, &facts(exp), &POLICY).status,
            Status::Ok
        );
        // 60 days and 23:59:59 left is still "61 days" → ok... one second later it is 60.
        let boundary = exp - Duration::days(61) + Duration::seconds(1);
        let e = evaluate(boundary, &facts(exp), &POLICY);
        assert_eq!((e.status, e.days_left), (Status::Expiring, 60));
    }

    #[test]
    fn expired_from_the_expiry_second_on() {
        let exp = at(2027, 3, 1, 0, 0, 0);
        assert_eq!(
            evaluate(exp - Duration::seconds(1), &facts(exp), &POLICY).status,
            Status::Expiring
        );
        let e = evaluate(exp, &facts(exp), &POLICY);
        assert_eq!((e.status, e.days_left), (Status::Expired, 0));
        assert_eq!(
            evaluate(exp + Duration::days(3), &facts(exp), &POLICY).days_left,
            -3
        );
    }

    fn account(changed: DateTime<Utc>) -> Account {
        Account {
            id: "apps@acme.appleaccount.com".into(),
            password_changed: Some(changed),
        }
    }

    #[test]
    fn password_change_after_creation_plus_grace_invalidates() {
        let exp = at(2027, 6, 1, 0, 0, 0);
        let created = at(2026, 6, 1, 0, 0, 0);
        let now = at(2026, 11, 1, 0, 0, 0);
        let acc = account(created + Duration::hours(48) + Duration::seconds(1));
        let f = Facts {
            account: Some(&acc),
            created_at: created,
            ..facts(exp)
        };
        let e = evaluate(now, &f, &POLICY);
        assert_eq!(e.status, Status::Invalidated);
        assert_eq!(e.detail.as_deref(), Some(REASON_PASSWORD_CHANGE));
    }

    #[test]
    fn password_change_inside_grace_keeps_ok_with_a_note() {
        let exp = at(2027, 6, 1, 0, 0, 0);
        let created = at(2026, 6, 1, 0, 0, 0);
        let now = at(2026, 11, 1, 0, 0, 0);
        for changed in [
            created + Duration::hours(48),
            created - Duration::hours(47),
            created,
        ] {
            let acc = account(changed);
            let f = Facts {
                account: Some(&acc),
                created_at: created,
                ..facts(exp)
            };
            let e = evaluate(now, &f, &POLICY);
            assert_eq!(e.status, Status::Ok, "{changed}");
            assert!(e
                .detail
                .unwrap()
                .contains("created around the password change of apps@acme"));
        }
    }

    #[test]
    fn token_downloaded_after_the_change_is_fine() {
        let exp = at(2027, 6, 1, 0, 0, 0);
        let created = at(2026, 6, 1, 0, 0, 0);
        let acc = account(created - Duration::days(3));
        let f = Facts {
            account: Some(&acc),
            created_at: created,
            ..facts(exp)
        };
        let e = evaluate(at(2026, 11, 1, 0, 0, 0), &f, &POLICY);
        assert_eq!((e.status, e.detail), (Status::Ok, None));
    }

    #[test]
    fn a_password_change_in_the_future_kills_nothing_yet() {
        let exp = at(2027, 6, 1, 0, 0, 0);
        let created = at(2026, 6, 1, 0, 0, 0);
        let now = at(2026, 11, 1, 0, 0, 0);
        let acc = account(now + Duration::hours(1));
        let f = Facts {
            account: Some(&acc),
            created_at: created,
            ..facts(exp)
        };
        assert_eq!(evaluate(now, &f, &POLICY).status, Status::Ok);
        assert_eq!(
            evaluate(now + Duration::hours(1), &f, &POLICY).status,
            Status::Invalidated
        );
    }

    #[test]
    fn precedence_superseded_over_invalidated_over_expired() {
        let exp = at(2026, 6, 1, 0, 0, 0);
        let now = at(2026, 11, 1, 0, 0, 0);
        let acc = account(at(2026, 1, 1, 0, 0, 0));
        let mut f = Facts {
            account: Some(&acc),
            created_at: at(2025, 6, 1, 0, 0, 0),
            ..facts(exp)
        };
        assert_eq!(evaluate(now, &f, &POLICY).status, Status::Invalidated);
        f.superseded = true;
        assert_eq!(evaluate(now, &f, &POLICY).status, Status::Superseded);
        assert!(Status::Unreadable > Status::Superseded && Status::Expired > Status::Expiring);
    }

    #[test]
    fn apple_verdicts_map_to_statuses() {
        let exp = at(2027, 6, 1, 0, 0, 0);
        let now = at(2026, 11, 1, 0, 0, 0);
        let cases = [
            (
                Verdict::Revoked,
                Status::Invalidated,
                Some(REASON_APPLE_REVOKED),
            ),
            (
                Verdict::Invalid,
                Status::Invalidated,
                Some(REASON_APPLE_INVALID),
            ),
            (Verdict::Expired, Status::Expired, None),
            (Verdict::Valid, Status::Ok, None),
        ];
        for (verdict, status, detail) in cases {
            let f = Facts {
                apple: Some(verdict),
                ..facts(exp)
            };
            let e = evaluate(now, &f, &POLICY);
            assert_eq!(
                (e.status, e.detail.as_deref()),
                (status, detail),
                "{verdict:?}"
            );
        }
    }

    #[test]
    fn verdicts_read_back_what_they_write_in_text_and_json() {
        for v in Verdict::ALL {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
            assert_eq!(v.to_string(), v.as_str());
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.as_str()));
            assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), v);
        }
        let words: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(
            words,
            [
                "valid",
                "revoked",
                "expired",
                "invalid",
                "unverifiable",
                "error"
            ]
        );
        assert_eq!(
            "Valid".parse::<Verdict>(),
            Err(UnknownVerdict("Valid".into()))
        );
    }

    #[test]
    fn only_apples_answers_about_the_token_change_its_status() {
        let exp = at(2027, 6, 1, 0, 0, 0);
        let now = at(2026, 11, 1, 0, 0, 0);
        for verdict in [Verdict::Unverifiable, Verdict::Error] {
            assert!(!verdict.is_definitive());
            let f = Facts {
                apple: Some(verdict),
                ..facts(exp)
            };
            assert_eq!(evaluate(now, &f, &POLICY).status, Status::Ok, "{verdict:?}");
        }
    }

    #[test]
    fn offsets_do_not_shift_the_day_count() {
        // 2027-01-10T09:30:00-0700 is 16:30 UTC.
        let exp =
            chrono::DateTime::parse_from_str("2027-01-10T09:30:00-0700", "%Y-%m-%dT%H:%M:%S%z")
                .unwrap()
                .with_timezone(&Utc);
        assert_eq!(days_left(at(2026, 12, 27, 16, 30, 0), exp), 14);
        assert_eq!(days_left(at(2026, 12, 27, 16, 30, 1), exp), 13);
    }
}
