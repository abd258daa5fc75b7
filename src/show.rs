//! How paths and times are written for people and JSON, in one place so
//! every output spells them the same way (pure).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

/// Lossy for display only; token paths are identified by bytes elsewhere.
pub fn show_path(p: &Path) -> String {
    String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned()
}

/// The JSON and ledger spelling of a time: UTC, whole seconds, `Z`.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A time as people in the configured zone read it.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// Control characters out, long names shortened: names come from files.
pub fn clean(s: &str, max: usize) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    if s.chars().count() > max {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// `#[serde(with = "show::serde_rfc3339")]`: writes [`rfc3339`], reads any
/// RFC 3339 time.
pub mod serde_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }
}

/// [`serde_rfc3339`] for an optional time (`null` when absent).
pub mod serde_rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::rfc3339(t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(d)
    }
}

/// Text made safe to stand in HTML, in element content and in quoted
/// attribute values alike.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_are_whole_seconds_in_utc_or_local_with_the_zone_name() {
        let t = Utc.with_ymd_and_hms(2027, 3, 28, 0, 30, 15).unwrap();
        assert_eq!(rfc3339(&t), "2027-03-28T00:30:15Z");
        assert_eq!(local(t, chrono_tz::Europe::Berlin), "2027-03-28 01:30 CET");
    }

    #[test]
    fn clean_drops_control_characters_and_shortens_with_an_ellipsis() {
        assert_eq!(clean("a\nb\u{7}c", 10), "abc");
        assert_eq!(clean("abcdef", 4), "abc…");
        assert_eq!(clean("abcd", 4), "abcd");
    }

    #[test]
    fn show_path_replaces_invalid_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/t/a\xffb.vpptoken"));
        assert_eq!(show_path(p), "/t/a\u{fffd}b.vpptoken");
    }
}
