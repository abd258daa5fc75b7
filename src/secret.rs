//! A wrapper for credentials (token bearer text, SMTP passwords) whose
//! `Debug` and `Display` never show the value, so a secret cannot leak through
//! a log line, an error message or a `{:?}` by accident. The only way to the
//! value is the explicit [`Secret::expose`].
//!
//! [`Redactor`] masks what a text shows of secrets that came back from
//! outside (a server echoing the bearer in an error page), down to any run
//! of [`LEAK_RUN`] characters.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use crate::show::html_escape;

mod file;
pub use file::{read_private_file, read_secret_file};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw value. Call sites are few and reviewed: the Apple probe's
    /// `Authorization` header and the SMTP login.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Shortest run of a secret that counts as a leak. Shorter runs are too
/// likely to occur by chance (dates, words) to be masked, and 16 characters
/// of a Base64 token are 96 bits: enough to matter.
pub const LEAK_RUN: usize = 16;

/// Secrets shorter than this are not real credentials; masking them would
/// mangle ordinary text.
const MIN_SECRET: usize = 8;

/// What replaces each masked run.
const MASK: &str = "[redacted]";

/// Masks every part of some secrets that a text shows: any run of
/// [`LEAK_RUN`] or more bytes that also occurs in one of the secrets, in
/// any of the encodings a server might echo it in (as is, JSON-escaped,
/// with `\/`, percent-encoded, HTML-escaped, whitespace collapsed).
/// A secret shorter than [`LEAK_RUN`] is masked where it occurs whole.
///
/// Every window of [`LEAK_RUN`] bytes of every encoded secret is kept in a
/// hash set, so masking a text costs one lookup per byte of it, whatever
/// the length of the secrets. The windows are parts of the secrets: a
/// `Redactor` lives only as long as the secret it was made from.
#[derive(Default)]
pub struct Redactor {
    windows: HashSet<[u8; LEAK_RUN]>,
    /// Encoded secrets of `MIN_SECRET..LEAK_RUN` bytes.
    short: Vec<Vec<u8>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redactor([redacted])")
    }
}

impl Redactor {
    /// A redactor for these secrets (each in every encoding of
    /// [`encodings`]).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut r = Redactor::default();
        for secret in secrets {
            for form in encodings(secret) {
                r.add(form.as_bytes());
            }
        }
        r
    }

    fn add(&mut self, form: &[u8]) {
        if form.len() < MIN_SECRET {
            return;
        }
        if form.len() < LEAK_RUN {
            if !self.short.iter().any(|s| s == form) {
                self.short.push(form.to_vec());
            }
            return;
        }
        for w in form.windows(LEAK_RUN) {
            if let Ok(w) = <[u8; LEAK_RUN]>::try_from(w) {
                self.windows.insert(w);
            }
        }
    }

    /// True when nothing would be masked in any text.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.short.is_empty()
    }

    /// `text` with every part of a secret replaced by `[redacted]`;
    /// overlapping and touching parts become one mask. Should masking
    /// itself form a new run of a secret (only a secret that contains the
    /// mask text could), the whole text is masked. Borrowed only when
    /// nothing was masked.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let ranges = self.leaks(text);
        if ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in ranges {
            out.push_str(&text[at..start]);
            out.push_str(MASK);
            at = end;
        }
        out.push_str(&text[at..]);
        if self.leaks(&out).is_empty() {
            Cow::Owned(out)
        } else {
            Cow::Owned(MASK.to_owned())
        }
    }

    /// True when `text` shows a part of a secret.
    pub fn leaks_in(&self, text: &str) -> bool {
        !self.leaks(text).is_empty()
    }

    /// The byte ranges of `text` to mask: sorted, disjoint, not touching,
    /// on character boundaries.
    fn leaks(&self, text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut found: Vec<(usize, usize)> = Vec::new();
        if !self.windows.is_empty() {
            for (i, w) in bytes.windows(LEAK_RUN).enumerate() {
                let hit = <[u8; LEAK_RUN]>::try_from(w).is_ok_and(|w| self.windows.contains(&w));
                if hit {
                    push_merged(&mut found, (i, i + LEAK_RUN));
                }
            }
        }
        if !self.short.is_empty() {
            for s in &self.short {
                found.extend(memchr::memmem::find_iter(bytes, s).map(|i| (i, i + s.len())));
            }
            found.sort_unstable();
            let mut merged = Vec::with_capacity(found.len());
            for r in found {
                push_merged(&mut merged, r);
            }
            found = merged;
        }
        // A secret's bytes may start or end inside a character of the text
        // (a multi-byte character sharing a byte with it): mask the whole
        // character, so the output stays UTF-8.
        let mut out: Vec<(usize, usize)> = Vec::with_capacity(found.len());
        for (mut start, mut end) in found {
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            while !text.is_char_boundary(end) {
                end += 1;
            }
            push_merged(&mut out, (start, end));
        }
        out
    }
}

/// Appends `r` to ranges sorted by start, merging it into the last one
/// when they overlap or touch.
fn push_merged(ranges: &mut Vec<(usize, usize)>, r: (usize, usize)) {
    match ranges.last_mut() {
        Some(last) if r.0 <= last.1 => last.1 = last.1.max(r.1),
        _ => ranges.push(r),
    }
}

/// `secret` as it may come back from a server: as is, whitespace runs
/// collapsed to one space (how messages are shortened for display), inside
/// a JSON string (with and without `/` escaped as `\/`), percent-encoded,
/// and HTML-escaped. Duplicates are left out.
pub fn encodings(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    let mut add = |f: String| {
        if !forms.contains(&f) {
            forms.push(f);
        }
    };
    add(collapse_whitespace(secret));
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or("")
        .to_owned();
    add(json.replace('/', "\\/"));
    add(json);
    add(percent_encode(secret));
    add(html_escape(secret));
    forms
}

/// Runs of whitespace and control characters as one space, the way error
/// messages are put on one line for display.
pub fn collapse_whitespace(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every byte but RFC 3986's unreserved characters as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_the_value() {
        let s = Secret::new("canary-7f3a");
        assert!(!format!("{s:?}").contains("canary"));
        assert!(!format!("{s}").contains("canary"));
        assert_eq!(s.expose(), "canary-7f3a");
    }

    /// A token-like secret: Base64 text with `/` and `+`, 1,400 characters.
    fn long_secret(seed: u64) -> String {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut x = seed | 1;
        (0..1400)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(alphabet[(x % 64) as usize])
            })
            .collect()
    }

    /// The first run of `LEAK_RUN` bytes of any form of `secrets` in
    /// `text`, found the slow, obvious way.
    fn naive_leak(text: &str, secrets: &[&str]) -> Option<String> {
        for secret in secrets {
            for form in encodings(secret) {
                for w in form.as_bytes().windows(LEAK_RUN) {
                    if memchr::memmem::find(text.as_bytes(), w).is_some() {
                        return Some(String::from_utf8_lossy(w).into_owned());
                    }
                }
            }
        }
        None
    }

    #[test]
    fn an_echoed_long_secret_leaves_no_16_characters_and_the_text_around_it() {
        let secret = long_secret(7);
        let r = Redactor::new([secret.as_str()]);
        let text = format!("<html>401: header was Authorization: Bearer {secret}\r\n</html>");
        let out = r.redact(&text);
        assert_eq!(
            out,
            "<html>401: header was Authorization: Bearer [redacted]\r\n</html>"
        );
        assert_eq!(naive_leak(&out, &[&secret]), None);
    }

    #[test]
    fn every_run_of_16_is_masked_and_15_is_kept() {
        let secret = long_secret(11);
        let r = Redactor::new([secret.as_str()]);
        for start in [0, 1, 500, secret.len() - 16] {
            let run = &secret[start..start + 16];
            assert_eq!(r.redact(&format!("x {run} y")), "x [redacted] y", "{start}");
            let run = &secret[start..start + 15];
            let text = format!("x {run} y");
            assert_eq!(r.redact(&text), text.as_str(), "{start}");
        }
        // Two separate pieces, one of them longer than a window.
        let text = format!("a{}b{}c", &secret[10..40], &secret[900..916]);
        assert_eq!(r.redact(&text), "a[redacted]b[redacted]c");
    }

    #[test]
    fn overlapping_and_touching_pieces_become_one_mask() {
        let secret = long_secret(3);
        let r = Redactor::new([secret.as_str()]);
        // Touching: the end of the secret followed by its start.
        let text = format!("[{}{}]", &secret[1380..], &secret[..20]);
        assert_eq!(r.redact(&text), "[[redacted]]");
        // Overlapping copies.
        let text = format!("{}{}", &secret[0..30], &secret[14..60]);
        assert_eq!(r.redact(&text), "[redacted]");
    }

    #[test]
    fn encoded_echoes_are_masked() {
        let secret = format!(
            "{{\"token\":\"{}\", \"org\":\"A & B <x>\"}}",
            long_secret(5)
        );
        let r = Redactor::new([secret.as_str()]);
        let json = serde_json::to_string(&secret).unwrap();
        let echoes = [
            json.clone(),
            json.replace('/', "\\/"),
            percent_encode(&secret),
            html_escape(&secret),
            secret.replace(", ", ",\n    "),
        ];
        for echo in echoes {
            let text = format!("error: {echo} end");
            let out = r.redact(&text);
            assert_eq!(naive_leak(&out, &[&secret]), None, "{out}");
            assert!(out.starts_with("error: ") && out.ends_with(" end"), "{out}");
        }
    }

    #[test]
    fn short_secrets_are_masked_whole_and_tiny_ones_not_at_all() {
        let r = Redactor::new(["canary-7f3a", "abc"]);
        assert_eq!(r.redact("x canary-7f3a y abc"), "x [redacted] y abc");
        assert_eq!(r.redact("canary-7f3"), "canary-7f3");
        assert!(Redactor::new(["abc", ""]).is_empty());
    }

    #[test]
    fn multi_byte_characters_next_to_a_secret_are_masked_whole() {
        // "é" and "è" share their first byte (0xC3): a run of the secret
        // that ends inside "è" takes all of it.
        let secret = format!("{}é", long_secret(9));
        let r = Redactor::new([secret.as_str()]);
        let text = format!("ü{}è!", &secret[secret.len() - 20..secret.len() - 2]);
        assert_eq!(r.redact(&text), "ü[redacted]!");
        let text = format!("ü{}è!", &secret[secret.len() - 18..]);
        assert_eq!(r.redact(&text), "ü[redacted]è!");
    }

    #[test]
    fn random_mixes_of_secret_pieces_and_text_never_leak_or_panic() {
        let secrets = [
            long_secret(21),
            format!("{{\"t\":\"{}\"}}", long_secret(22)),
        ];
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let r = Redactor::new(refs.iter().copied());
        let noise = [
            "ä",
            " ",
            "\n",
            "x",
            "Bearer ",
            "\\/",
            "%2F",
            "é€",
            "[redacted]",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for _ in 0..300 {
            let mut text = String::new();
            for _ in 0..next(8) {
                if next(2) == 0 {
                    let s = &secrets[next(2)];
                    let start = next(s.len() - 1);
                    let end = (start + 1 + next(60)).min(s.len());
                    text.push_str(&s[start..end]);
                } else {
                    text.push_str(noise[next(noise.len())]);
                }
            }
            let out = r.redact(&text);
            assert_eq!(naive_leak(&out, &refs), None, "{text:?} -> {out:?}");
            assert_eq!(
                r.leaks_in(&text),
                naive_leak(&text, &refs).is_some(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_redactor_does_not_show_its_secret() {
        let r = Redactor::new(["canary-secret-0123456789"]);
        assert!(!format!("{r:?}").contains("canary"));
    }
}
