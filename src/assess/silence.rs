//! Silences: a credential deliberately left to expire (a closed location)
//! gets no alerts until a date. Keyed by fingerprint, so new content (a
//! replacement) is never silenced by its predecessor's silence.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::show;

/// Longest reason kept; a silence explains itself in a line.
pub const MAX_REASON_CHARS: usize = 200;

/// One silence as stored and as shown (`silenced` in the JSON output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    #[serde(with = "show::serde_rfc3339")]
    pub until: DateTime<Utc>,
    pub reason: Option<String>,
}

impl Silence {
    /// Whether it still holds at `now`.
    pub fn holds(&self, now: DateTime<Utc>) -> bool {
        now < self.until
    }
}

/// Silences by full fingerprint.
pub type Silences = HashMap<String, Silence>;

/// The silence of `fingerprint` that holds at `now`, if any.
pub fn holding<'a>(
    silences: &'a Silences,
    fingerprint: Option<&str>,
    now: DateTime<Utc>,
) -> Option<&'a Silence> {
    silences.get(fingerprint?).filter(|s| s.holds(now))
}

/// Marks each credential with the silence that holds for it at `now`.
pub fn mark(tokens: &mut [super::Assessment], silences: &Silences, now: DateTime<Utc>) {
    for t in tokens {
        t.silenced = holding(silences, Some(&t.identity), now)
            .cloned()
            .map(Box::new);
    }
}

/// A reason as kept: control characters become spaces, runs of spaces
/// one, at most [`MAX_REASON_CHARS`]; None when nothing is left.
pub fn clean_reason(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let joined = words.join(" ");
    let kept: String = joined.chars().take(MAX_REASON_CHARS).collect();
    (!kept.is_empty()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_silence_holds_until_its_date_and_only_for_its_fingerprint() {
        let until = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        let silences: Silences = [(
            "ab".repeat(32),
            Silence {
                until,
                reason: None,
            },
        )]
        .into();
        let before = until - chrono::Duration::seconds(1);
        assert!(holding(&silences, Some(&"ab".repeat(32)), before).is_some());
        assert!(holding(&silences, Some(&"ab".repeat(32)), until).is_none());
        assert!(holding(&silences, Some(&"cd".repeat(32)), before).is_none());
        assert!(holding(&silences, None, before).is_none());
    }

    #[test]
    fn reasons_are_one_clean_line_of_bounded_length() {
        assert_eq!(
            clean_reason("  closed\n\tlocation \u{7}Berlin ").as_deref(),
            Some("closed location Berlin")
        );
        assert_eq!(clean_reason(" \n "), None);
        assert_eq!(
            clean_reason(&"x".repeat(500)).map(|r| r.chars().count()),
            Some(MAX_REASON_CHARS)
        );
    }
}
