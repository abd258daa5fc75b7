//! Reading one `.vpptoken` file's bytes into a [`TokenContent`] or a specific
//! [`TokenError`]; fingerprints; the `sample-token` writer.
//!
//! Pure: no filesystem, no clock. The scanner hands in at most
//! [`MAX_TOKEN_FILE_BYTES`] + 1 bytes.
//!
//! The file content (the Base64 text, the inner `token`) is a credential. It
//! goes into [`TokenContent::bearer`] as a [`Secret`] and nowhere else: errors
//! describe the *shape* of what is wrong, never quote the content. The one
//! exception is a malformed `expDate`, quoted when it can be nothing but a
//! date (see [`DateText`]), because that value is what ops need to see.
//!
//! Hot path (200,000 tokens/s per core is the target): one pass strips the BOM
//! and whitespace into one buffer, which is hashed, Base64-decoded once, and
//! finally moved into the bearer secret; JSON is read by a hand-written
//! visitor that borrows strings from the decoded buffer. Everything that only
//! serves a better error message runs after a failure.

use std::borrow::Cow;
use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, Months, TimeZone, Utc};
use rand::RngCore as _;
use serde::de::{self, Deserializer};

use crate::secret::Secret;
use json::{parse_json, Field, Fields};

mod date;
mod error;
mod json;

pub use error::{Base64Problem, DateText, JsonKind, JsonProblem, PemKind, TokenError};

/// Largest file the reader accepts. A real content token is about 1 KiB.
pub const MAX_TOKEN_FILE_BYTES: usize = 64 * 1024;

/// Start of the decoded inner `token` of every file written by
/// [`sample_token`], so a sample can never pass for a real token.
pub const SAMPLE_MARKER: &[u8] = b"tokenwatch-sample-not-a-real-token";

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Standard alphabet, padding required, like Go's `StdEncoding` and Python's
/// `b64decode`; non-zero trailing bits are tolerated as they are by both.
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Hex SHA-256 (64 lowercase hex digits) of the file content with a leading
/// UTF-8 BOM and all ASCII whitespace removed, so a re-wrapped copy is the same
/// token. Whitespace is what `u8::is_ascii_whitespace` says: space, tab, LF,
/// form feed, CR.
///
/// The digits are kept inline, not in a `String`: the daemon holds one per
/// token twice (file and content), 100,000 of them on a big host, and a heap
/// string costs 40 bytes more each plus an allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 64]);

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fingerprint, D::Error> {
        let s = <Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Fingerprint::from_hex(&s).ok_or_else(|| de::Error::custom("a fingerprint is 64 hex digits"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fingerprint").field(&self.as_str()).finish()
    }
}

impl Fingerprint {
    /// Fingerprint of a whole file, without allocating a stripped copy.
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        for run in body.split(u8::is_ascii_whitespace) {
            hasher.update(run);
        }
        Fingerprint::from_digest(hasher.finish().as_ref())
    }

    fn from_digest(digest: &[u8]) -> Fingerprint {
        // By hand: `hex::encode` goes char by char and costs ten times more.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b'0'; 64];
        for (pair, &b) in text.chunks_exact_mut(2).zip(digest) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0x0F)];
        }
        Fingerprint(text)
    }

    /// Accepts 64 hex digits in either case; stores them lowercase.
    pub fn from_hex(s: &str) -> Option<Fingerprint> {
        let bytes: &[u8; 64] = s.as_bytes().try_into().ok()?;
        bytes.iter().all(u8::is_ascii_hexdigit).then(|| {
            let mut text = *bytes;
            text.make_ascii_lowercase();
            Fingerprint(text)
        })
    }

    pub fn as_str(&self) -> &str {
        // The constructors only store ASCII hex digits, so this never
        // falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The first 12 hex digits, the form shown to people.
    pub fn short(&self) -> &str {
        self.as_str().get(..12).unwrap_or_default()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

/// A reader rule that applied to a file (shown by `tokenwatch inspect`).
/// Listed in a [`TokenContent`] in declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    Bom,
    CrLf,
    Wrapped,
    StraySpaces,
    PrettyJson,
    ExtraKeys,
    OffsetZ,
    OffsetWithColon,
    FractionalSeconds,
    RawJson,
    /// `orgName` missing, null or not a string; the org is shown as empty.
    NoOrgName,
}

impl Variant {
    /// True for what Apple never writes itself and ops should look at.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            Variant::OffsetWithColon
                | Variant::FractionalSeconds
                | Variant::RawJson
                | Variant::NoOrgName
        )
    }

    /// The name used in JSON output (same as the serde form).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Bom => "bom",
            Variant::CrLf => "cr_lf",
            Variant::Wrapped => "wrapped",
            Variant::StraySpaces => "stray_spaces",
            Variant::PrettyJson => "pretty_json",
            Variant::ExtraKeys => "extra_keys",
            Variant::OffsetZ => "offset_z",
            Variant::OffsetWithColon => "offset_with_colon",
            Variant::FractionalSeconds => "fractional_seconds",
            Variant::RawJson => "raw_json",
            Variant::NoOrgName => "no_org_name",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Variant::Bom => "The file starts with a UTF-8 byte order mark (ignored).",
            Variant::CrLf => "The file has Windows line ends (CRLF).",
            Variant::Wrapped => "The Base64 text is wrapped over several lines.",
            Variant::StraySpaces => "The Base64 text holds stray spaces or tabs (ignored).",
            Variant::PrettyJson => "The JSON is pretty-printed.",
            Variant::ExtraKeys => "The JSON has keys besides token, expDate and orgName (ignored).",
            Variant::OffsetZ => "expDate ends in Z (UTC) instead of a numeric offset.",
            Variant::OffsetWithColon => {
                "expDate writes its UTC offset with a colon (+00:00); Apple writes +0000."
            }
            Variant::FractionalSeconds => {
                "expDate has fractional seconds; Apple writes whole seconds."
            }
            Variant::RawJson => {
                "The file holds the decoded JSON instead of Base64: the expiry is readable, \
                 but the token cannot be checked with Apple; download it again."
            }
            Variant::NoOrgName => {
                "The JSON has no orgName text; the organisation is shown as empty."
            }
        }
    }
}

/// What a readable token file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenContent {
    /// `orgName`, JSON escapes resolved; empty when missing (see [`Variant::NoOrgName`]).
    pub org_name: String,
    pub expires_at: DateTime<Utc>,
    /// Derived, not in the file: see [`created_from_expiry`].
    pub created_at: DateTime<Utc>,
    pub fingerprint: Fingerprint,
    pub variants: Vec<Variant>,
    /// The normalised Base64 text (BOM and whitespace removed) that Apple's API
    /// takes as `Authorization: Bearer`. None when the file is raw JSON (the
    /// original Base64 is lost).
    pub bearer: Option<Secret>,
    /// The decoded inner token starts with [`SAMPLE_MARKER`]: made by [`sample_token`].
    pub sample: bool,
}

/// Reads a token file's bytes.
pub fn parse(bytes: &[u8]) -> Result<TokenContent, TokenError> {
    parse_with_fingerprint(bytes).1
}

/// [`parse`], also returning the fingerprint for files that do not parse
/// (equal to [`Fingerprint::of`]), so a scanner hashes each file once.
pub fn parse_with_fingerprint(bytes: &[u8]) -> (Fingerprint, Result<TokenContent, TokenError>) {
    let (body, bom) = match bytes.strip_prefix(UTF8_BOM) {
        Some(rest) => (rest, true),
        None => (bytes, false),
    };
    let stripped = Stripped::of(body);
    let fingerprint = Fingerprint::from_digest(sha256(&stripped.text).as_ref());
    let result = if bytes.len() > MAX_TOKEN_FILE_BYTES {
        Err(TokenError::TooLarge)
    } else {
        read(body, bom, stripped, fingerprint.clone())
    };
    (fingerprint, result)
}

/// SHA-256 by ring, whose assembly (AVX2/SSSE3) is about twice as fast as
/// sha2's portable code on CPUs without SHA extensions; hashing was half of
/// the reader's time there (`cargo bench --bench reader`, BENCHMARKS.md).
fn sha256(bytes: &[u8]) -> ring::digest::Digest {
    ring::digest::digest(&ring::digest::SHA256, bytes)
}

/// The file body with all ASCII whitespace removed, and what was removed.
struct Stripped {
    text: Vec<u8>,
    cr: bool,
    /// Space, tab or form feed.
    blank: bool,
    /// A line break followed by more text.
    wrapped: bool,
}

impl Stripped {
    fn of(body: &[u8]) -> Stripped {
        let mut s = Stripped {
            text: Vec::with_capacity(body.len()),
            cr: false,
            blank: false,
            wrapped: false,
        };
        let mut line_break = false;
        let mut rest = body;
        // Copies runs between whitespace: twice as fast as byte by byte.
        loop {
            let run = rest
                .iter()
                .position(u8::is_ascii_whitespace)
                .unwrap_or(rest.len());
            if run > 0 {
                s.wrapped |= line_break && !s.text.is_empty();
                line_break = false;
                s.text.extend_from_slice(&rest[..run]);
            }
            let Some((&space, after)) = rest[run..].split_first() else {
                return s;
            };
            match space {
                b'\n' => line_break = true,
                b'\r' => {
                    s.cr = true;
                    line_break = true;
                }
                _ => s.blank = true,
            }
            rest = after;
        }
    }
}

fn read(
    body: &[u8],
    bom: bool,
    stripped: Stripped,
    fingerprint: Fingerprint,
) -> Result<TokenContent, TokenError> {
    let Some(&first) = stripped.text.first() else {
        return Err(TokenError::Empty);
    };
    let mut variants = Vec::new();
    if bom {
        variants.push(Variant::Bom);
    }
    if stripped.cr {
        variants.push(Variant::CrLf);
    }

    if first == b'{' {
        // Whitespace inside JSON strings matters, so parse the body as written.
        let fields = parse_json(body, true)?;
        return finish(fields, body, fingerprint, variants, None, true);
    }

    let decoded = match DECODER.decode(&stripped.text) {
        Ok(decoded) => decoded,
        Err(err) => return Err(classify_non_base64(body, &err)),
    };
    if stripped.wrapped {
        variants.push(Variant::Wrapped);
    }
    if stripped.blank {
        variants.push(Variant::StraySpaces);
    }
    let fields = parse_json(&decoded, false).map_err(|err| match err {
        TokenError::NotJson { .. } => classify_mislabelled(&decoded).unwrap_or(err),
        other => other,
    })?;
    // Valid Base64 is ASCII, so this never fails; no bearer beats a panic.
    let bearer = String::from_utf8(stripped.text).ok().map(Secret::new);
    finish(fields, &decoded, fingerprint, variants, bearer, false)
}

fn finish(
    fields: Fields<'_>,
    json: &[u8],
    fingerprint: Fingerprint,
    mut variants: Vec<Variant>,
    bearer: Option<Secret>,
    raw: bool,
) -> Result<TokenContent, TokenError> {
    let exp_date = match fields.exp_date {
        None => return Err(TokenError::MissingExpDate),
        Some(Field::Str(s)) => s,
        Some(Field::Other(found)) => return Err(TokenError::ExpDateNotString { found }),
    };
    let inner = match fields.token {
        None => return Err(TokenError::MissingToken),
        Some(Field::Str(s)) => s,
        Some(Field::Other(found)) => return Err(TokenError::TokenNotString { found }),
    };
    let parsed = date::parse(&exp_date)?;

    // A raw newline cannot occur inside a JSON string, so any inside the
    // value is layout; one at the end is just the end of a line.
    if json.trim_ascii().contains(&b'\n') {
        variants.push(Variant::PrettyJson);
    }
    if fields.extra_keys {
        variants.push(Variant::ExtraKeys);
    }
    variants.extend(parsed.variants());
    if raw {
        variants.push(Variant::RawJson);
    }
    let org_name = match fields.org_name {
        Some(Field::Str(s)) => s.into_owned(),
        _ => {
            variants.push(Variant::NoOrgName);
            String::new()
        }
    };
    Ok(TokenContent {
        org_name,
        expires_at: parsed.at.with_timezone(&Utc),
        created_at: created_from_expiry(parsed.at),
        fingerprint,
        variants,
        bearer,
        sample: inner_is_sample(&inner),
    })
}

fn inner_is_sample(inner: &str) -> bool {
    // 48 Base64 characters decode to 36 bytes, enough for the 34-byte marker.
    let Some(head) = inner.as_bytes().get(..48) else {
        return false;
    };
    let mut buf = [0u8; 36];
    matches!(DECODER.decode_slice(head, &mut buf), Ok(36) if buf.starts_with(SAMPLE_MARKER))
}

/// True when the file was made by [`sample_token`]; same as `content.sample`.
pub fn is_sample(content: &TokenContent) -> bool {
    content.sample
}

/// A file that is not Base64: say what it is instead, if we know.
fn classify_non_base64(body: &[u8], err: &base64::DecodeError) -> TokenError {
    if let Some(err) = classify_mislabelled(body) {
        return err;
    }
    let binary = body
        .iter()
        .any(|&b| b >= 0x7F || (b < 0x20 && !b.is_ascii_whitespace()));
    let utf16 = body.starts_with(b"\xFF\xFE") || body.starts_with(b"\xFE\xFF");
    let problem = match err {
        _ if utf16 => Base64Problem::Utf16,
        _ if binary => Base64Problem::Binary,
        base64::DecodeError::InvalidByte(_, b'=') => Base64Problem::Truncated,
        base64::DecodeError::InvalidByte(..) => Base64Problem::InvalidCharacter,
        _ => Base64Problem::Truncated,
    };
    TokenError::NotBase64 { problem }
}

/// ADE server tokens and PEM files that landed under a `.vpptoken` name.
fn classify_mislabelled(bytes: &[u8]) -> Option<TokenError> {
    const ADE_MARKERS: [&[u8]; 5] = [
        b"application/pkcs7-mime",
        b"application/x-pkcs7-mime",
        b"smime.p7m",
        b"mime-version:",
        b"content-disposition:",
    ];
    // MIME headers come first; the encrypted body after them is long.
    let head = bytes[..bytes.len().min(4096)].to_ascii_lowercase();
    if ADE_MARKERS.iter().any(|m| find(&head, m).is_some()) {
        return Some(TokenError::AdeServerToken);
    }
    let at = find(bytes, b"-----BEGIN ")?;
    let label = &bytes[at + 11..];
    let kind = if label.starts_with(b"CERTIFICATE") || label.starts_with(b"TRUSTED CERTIFICATE") {
        PemKind::Certificate
    } else if find(&label[..label.len().min(40)], b"PRIVATE KEY").is_some() {
        PemKind::PrivateKey
    } else {
        PemKind::Other
    };
    Some(TokenError::Pem { kind })
}

/// First position of a non-empty `needle`. Jumps from one occurrence of
/// its first byte to the next instead of comparing at every offset: a
/// junk file of 64 KiB is searched this way for every unreadable file.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let last_start = haystack.len().checked_sub(needle.len())?;
    let mut at = 0;
    while at <= last_start {
        at += haystack[at..=last_start].iter().position(|&b| b == first)?;
        if haystack[at + 1..at + needle.len()] == *rest {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// Expiry minus one calendar year, computed in the offset written in the
/// file; 29 February maps to 28 February. Apple does not say whether a token
/// lives 365 days or a calendar year, so callers treat this as approximate.
pub fn created_from_expiry(expires: DateTime<FixedOffset>) -> DateTime<Utc> {
    let local = expires.naive_local();
    // `checked_sub_months` clamps to the month's last day: 29 Feb -> 28 Feb.
    // It fails only near chrono's year limits (±262,000), far outside
    // what the reader accepts; clamp there rather than panic.
    local
        .checked_sub_months(Months::new(12))
        .and_then(|naive| naive.checked_sub_offset(*expires.offset()))
        .map(|utc| Utc.from_utc_datetime(&utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A synthetic, clearly fake token in Apple's format: Base64 (standard,
/// padded, wrapped at 76 columns, trailing newline) of compact JSON
/// `{"token", "expDate", "orgName"}`, the inner token being Base64 of
/// [`SAMPLE_MARKER`] plus random bytes. Sub-second precision is dropped;
/// expiries outside years 0000-9999 cannot be written in Apple's format and
/// would not read back.
pub fn sample_token(org: &str, expires_at: DateTime<Utc>) -> String {
    #[derive(serde::Serialize)]
    struct Json<'a> {
        token: &'a str,
        #[serde(rename = "expDate")]
        exp_date: &'a str,
        #[serde(rename = "orgName")]
        org_name: &'a str,
    }
    let mut inner = [0u8; SAMPLE_MARKER.len() + 128];
    inner[..SAMPLE_MARKER.len()].copy_from_slice(SAMPLE_MARKER);
    rand::rng().fill_bytes(&mut inner[SAMPLE_MARKER.len()..]);
    let inner = STANDARD.encode(inner);
    let exp_date = expires_at.format("%Y-%m-%dT%H:%M:%S+0000").to_string();
    let json = Json {
        token: &inner,
        exp_date: &exp_date,
        org_name: org,
    };
    // Serialising three strings into a Vec cannot fail.
    let json = serde_json::to_vec(&json).unwrap_or_default();
    let text = STANDARD.encode(json);
    let mut out = String::with_capacity(text.len() + text.len() / 76 + 1);
    for line in text.as_bytes().chunks(76) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    // An independent SHA-256 to check ring's against.
    use sha2::{Digest, Sha256};
    use std::path::{Path, PathBuf};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokens")
    }

    fn fixture(rel: &str) -> Vec<u8> {
        let path = fixtures().join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn utc(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
            .with_timezone(&Utc)
    }

    fn fixed(rfc3339: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
    }

    /// The file minus BOM and whitespace: what the bearer must be.
    fn normalised(bytes: &[u8]) -> String {
        let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        body.iter()
            .filter(|b| !b.is_ascii_whitespace())
            .map(|&b| char::from(b))
            .collect()
    }

    enum Expect {
        Token {
            org: &'static str,
            expires: &'static str,
            created: &'static str,
            variants: Vec<Variant>,
            /// False for raw JSON files.
            bearer: bool,
            sample: bool,
        },
        Error(TokenError),
    }

    fn token(
        org: &'static str,
        expires: &'static str,
        created: &'static str,
        variants: &[Variant],
    ) -> Expect {
        Expect::Token {
            org,
            expires,
            created,
            variants: variants.to_vec(),
            bearer: !variants.contains(&Variant::RawJson),
            sample: false,
        }
    }

    fn table() -> Vec<(&'static str, Expect)> {
        use Variant::*;
        let not_json = |problem, raw| Expect::Error(TokenError::NotJson { problem, raw });
        let not_b64 = |problem| Expect::Error(TokenError::NotBase64 { problem });
        vec![
            (
                "valid/compact.vpptoken",
                token(
                    "Compact Corp",
                    "2031-08-16T01:13:52Z",
                    "2030-08-16T01:13:52Z",
                    &[],
                ),
            ),
            (
                "valid/trailing_newline.vpptoken",
                token(
                    "Newline Ltd",
                    "2031-09-01T00:00:00Z",
                    "2030-09-01T00:00:00Z",
                    &[],
                ),
            ),
            (
                "valid/wrapped76.vpptoken",
                token(
                    "Wrapped 76 School",
                    "2031-10-02T08:30:00Z",
                    "2030-10-02T08:30:00Z",
                    &[Wrapped],
                ),
            ),
            (
                "valid/wrapped48.vpptoken",
                token(
                    "Wrapped 48 School",
                    "2031-10-03T08:30:00Z",
                    "2030-10-03T08:30:00Z",
                    &[Wrapped],
                ),
            ),
            (
                "valid/crlf.vpptoken",
                token(
                    "CRLF GmbH",
                    "2031-11-04T09:00:00Z",
                    "2030-11-04T09:00:00Z",
                    &[CrLf, Wrapped],
                ),
            ),
            (
                "valid/bom.vpptoken",
                token(
                    "BOM Inc",
                    "2031-12-05T10:00:00Z",
                    "2030-12-05T10:00:00Z",
                    &[Bom],
                ),
            ),
            (
                "valid/crlf_bom.vpptoken",
                token(
                    "Notepad Users AG",
                    "2032-01-06T11:00:00Z",
                    "2031-01-06T11:00:00Z",
                    &[Bom, CrLf, Wrapped],
                ),
            ),
            (
                "valid/stray_spaces.vpptoken",
                token(
                    "Stray Spaces SA",
                    "2032-02-07T12:00:00Z",
                    "2031-02-07T12:00:00Z",
                    &[StraySpaces],
                ),
            ),
            (
                "valid/pretty.vpptoken",
                token(
                    "Pretty Printed Pty",
                    "2032-03-08T13:00:00Z",
                    "2031-03-08T13:00:00Z",
                    &[PrettyJson],
                ),
            ),
            (
                "valid/extra_keys.vpptoken",
                token(
                    "Extra Keys Co",
                    "2032-04-09T14:00:00Z",
                    "2031-04-09T14:00:00Z",
                    &[ExtraKeys],
                ),
            ),
            (
                "valid/offset_plus0530.vpptoken",
                token(
                    "Mumbai Schools",
                    "2032-05-10T03:30:00Z",
                    "2031-05-10T03:30:00Z",
                    &[],
                ),
            ),
            (
                "valid/offset_z.vpptoken",
                token(
                    "Zulu Time BV",
                    "2032-06-11T15:00:00Z",
                    "2031-06-11T15:00:00Z",
                    &[OffsetZ],
                ),
            ),
            (
                "valid/offset_colon.vpptoken",
                token(
                    "Colon Offset Oy",
                    "2032-07-12T16:00:00Z",
                    "2031-07-12T16:00:00Z",
                    &[OffsetWithColon],
                ),
            ),
            (
                "valid/fractional_seconds.vpptoken",
                token(
                    "Fraction AB",
                    "2032-08-13T17:00:00.250Z",
                    "2031-08-13T17:00:00.250Z",
                    &[FractionalSeconds],
                ),
            ),
            (
                "valid/raw_json.vpptoken",
                token(
                    "Raw JSON LLC",
                    "2032-09-14T18:00:00Z",
                    "2031-09-14T18:00:00Z",
                    &[RawJson],
                ),
            ),
            (
                "valid/raw_json_pretty.vpptoken",
                token(
                    "Raw Pretty LLC",
                    "2032-09-15T18:00:00Z",
                    "2031-09-15T18:00:00Z",
                    &[PrettyJson, RawJson],
                ),
            ),
            (
                "valid/org_escapes.vpptoken",
                token(
                    "Café / Bar \"Nord\"",
                    "2032-10-16T19:00:00Z",
                    "2031-10-16T19:00:00Z",
                    &[],
                ),
            ),
            (
                "valid/org_unicode.vpptoken",
                token(
                    "Schule Köln – 東京校",
                    "2032-11-17T20:00:00Z",
                    "2031-11-17T20:00:00Z",
                    &[],
                ),
            ),
            (
                "valid/no_org_name.vpptoken",
                token(
                    "",
                    "2032-12-18T21:00:00Z",
                    "2031-12-18T21:00:00Z",
                    &[NoOrgName],
                ),
            ),
            (
                "valid/leap_day.vpptoken",
                token(
                    "Leap Day Ltd",
                    "2032-02-29T12:00:00Z",
                    "2031-02-28T12:00:00Z",
                    &[],
                ),
            ),
            (
                "valid/sample.vpptoken",
                Expect::Token {
                    org: "Sample Org",
                    expires: "2033-01-19T22:00:00Z",
                    created: "2032-01-19T22:00:00Z",
                    variants: vec![Wrapped],
                    bearer: true,
                    sample: true,
                },
            ),
            (
                "valid/canary.vpptoken",
                token(
                    "Canary Org",
                    "2033-02-20T23:00:00Z",
                    "2032-02-20T23:00:00Z",
                    &[Wrapped],
                ),
            ),
            ("invalid/empty.vpptoken", Expect::Error(TokenError::Empty)),
            (
                "invalid/whitespace_only.vpptoken",
                Expect::Error(TokenError::Empty),
            ),
            (
                "invalid/not_base64.vpptoken",
                not_b64(Base64Problem::InvalidCharacter),
            ),
            (
                "invalid/binary_junk.vpptoken",
                not_b64(Base64Problem::Binary),
            ),
            (
                "invalid/half_written_zeros.vpptoken",
                not_b64(Base64Problem::Binary),
            ),
            ("invalid/utf16.vpptoken", not_b64(Base64Problem::Utf16)),
            (
                "invalid/truncated_base64.vpptoken",
                not_b64(Base64Problem::Truncated),
            ),
            (
                "invalid/truncated_json.vpptoken",
                not_json(
                    JsonProblem::Truncated {
                        line: 1,
                        column: 126,
                    },
                    false,
                ),
            ),
            (
                "invalid/base64_of_text.vpptoken",
                not_json(JsonProblem::Syntax { line: 1, column: 1 }, false),
            ),
            (
                "invalid/base64_of_binary.vpptoken",
                not_json(JsonProblem::NotUtf8, false),
            ),
            (
                "invalid/raw_json_truncated.vpptoken",
                not_json(
                    JsonProblem::Truncated {
                        line: 1,
                        column: 50,
                    },
                    true,
                ),
            ),
            (
                "invalid/json_array.vpptoken",
                Expect::Error(TokenError::NotObject {
                    found: JsonKind::Array,
                }),
            ),
            (
                "invalid/json_string.vpptoken",
                Expect::Error(TokenError::NotObject {
                    found: JsonKind::String,
                }),
            ),
            (
                "invalid/missing_exp_date.vpptoken",
                Expect::Error(TokenError::MissingExpDate),
            ),
            (
                "invalid/missing_token.vpptoken",
                Expect::Error(TokenError::MissingToken),
            ),
            (
                "invalid/exp_date_number.vpptoken",
                Expect::Error(TokenError::ExpDateNotString {
                    found: JsonKind::Number,
                }),
            ),
            (
                "invalid/exp_date_null.vpptoken",
                Expect::Error(TokenError::ExpDateNotString {
                    found: JsonKind::Null,
                }),
            ),
            (
                "invalid/token_not_string.vpptoken",
                Expect::Error(TokenError::TokenNotString {
                    found: JsonKind::Object,
                }),
            ),
            (
                "invalid/impossible_date.vpptoken",
                Expect::Error(TokenError::ImpossibleDate {
                    value: DateText::Shown("2026-02-30T00:00:00+0000".into()),
                }),
            ),
            (
                "invalid/unparseable_date.vpptoken",
                Expect::Error(TokenError::UnparseableDate {
                    value: DateText::Shown("15/08/2033 18:13".into()),
                }),
            ),
            (
                "invalid/ade_server_token.vpptoken",
                Expect::Error(TokenError::AdeServerToken),
            ),
            (
                "invalid/pem_cert.vpptoken",
                Expect::Error(TokenError::Pem {
                    kind: PemKind::Certificate,
                }),
            ),
            (
                "invalid/pem_key.vpptoken",
                Expect::Error(TokenError::Pem {
                    kind: PemKind::PrivateKey,
                }),
            ),
        ]
    }

    #[test]
    fn every_fixture_has_its_exact_outcome() {
        for (rel, expect) in table() {
            let bytes = fixture(rel);
            let (fingerprint, result) = parse_with_fingerprint(&bytes);
            assert_eq!(fingerprint, Fingerprint::of(&bytes), "{rel}");
            match (expect, result) {
                (
                    Expect::Token {
                        org,
                        expires,
                        created,
                        variants,
                        bearer,
                        sample,
                    },
                    Ok(content),
                ) => {
                    assert_eq!(content.org_name, org, "{rel}");
                    assert_eq!(content.expires_at, utc(expires), "{rel}");
                    assert_eq!(content.created_at, utc(created), "{rel}");
                    assert_eq!(content.variants, variants, "{rel}");
                    assert_eq!(content.fingerprint, fingerprint, "{rel}");
                    assert_eq!(content.sample, sample, "{rel}");
                    assert_eq!(is_sample(&content), sample, "{rel}");
                    let want_bearer = bearer.then(|| normalised(&bytes));
                    assert_eq!(
                        content.bearer.as_ref().map(|b| b.expose().to_owned()),
                        want_bearer,
                        "{rel}"
                    );
                    if let Some(b) = &content.bearer {
                        let sha = hex::encode(Sha256::digest(b.expose().as_bytes()));
                        assert_eq!(content.fingerprint.as_str(), sha, "{rel}");
                    }
                }
                (Expect::Error(want), Err(got)) => assert_eq!(got, want, "{rel}"),
                (Expect::Token { .. }, Err(e)) => panic!("{rel}: expected a token, got {e:?}"),
                (Expect::Error(want), Ok(c)) => panic!("{rel}: expected {want:?}, got {c:?}"),
            }
        }
    }

    #[test]
    fn every_fixture_file_is_in_the_table() {
        let listed: Vec<String> = table().iter().map(|(rel, _)| rel.to_string()).collect();
        let mut found = Vec::new();
        for dir in ["valid", "invalid"] {
            for entry in std::fs::read_dir(fixtures().join(dir)).expect("fixture folder") {
                let name = entry.expect("fixture entry").file_name();
                found.push(format!("{dir}/{}", name.to_string_lossy()));
            }
        }
        found.sort();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort();
        assert_eq!(found, listed_sorted);
    }

    #[test]
    fn error_messages_are_human() {
        let cases = [
            (
                "invalid/impossible_date.vpptoken",
                "expDate \"2026-02-30T00:00:00+0000\" is not a valid date",
            ),
            (
                "invalid/ade_server_token.vpptoken",
                "file is an Automated Device Enrollment server token (S/MIME .p7m), \
                 not an Apps and Books content token",
            ),
            (
                "invalid/pem_cert.vpptoken",
                "file is a PEM certificate (an APNs push certificate?), \
                 not an Apps and Books content token",
            ),
            (
                "invalid/missing_token.vpptoken",
                "JSON object has no \"token\" key",
            ),
            (
                "invalid/exp_date_number.vpptoken",
                "\"expDate\" is a number, not a string",
            ),
            (
                "invalid/truncated_json.vpptoken",
                "decoded Base64 is not JSON: it ends early at line 1 column 126 \
                 (truncated or half-written?)",
            ),
            (
                "invalid/raw_json_truncated.vpptoken",
                "file is not JSON: it ends early at line 1 column 50 (truncated or half-written?)",
            ),
            (
                "invalid/truncated_base64.vpptoken",
                "file is not Base64 text: its length or padding is wrong (truncated or half-written?)",
            ),
        ];
        for (rel, want) in cases {
            let err = parse(&fixture(rel)).expect_err(rel);
            assert_eq!(err.to_string(), want, "{rel}");
        }
    }

    #[test]
    fn size_limit_is_inclusive() {
        let mut at_limit = fixture("valid/compact.vpptoken");
        at_limit.resize(MAX_TOKEN_FILE_BYTES, b' ');
        let content = parse(&at_limit).expect("a token padded to the limit");
        assert_eq!(content.org_name, "Compact Corp");
        assert_eq!(content.variants, vec![Variant::StraySpaces]);

        at_limit.push(b' ');
        assert_eq!(parse(&at_limit).unwrap_err(), TokenError::TooLarge);
        // The scanner's truncated read of a huge file still gets a fingerprint.
        let (fingerprint, result) = parse_with_fingerprint(&at_limit);
        assert_eq!(result.unwrap_err(), TokenError::TooLarge);
        assert_eq!(fingerprint, Fingerprint::of(&at_limit));
    }

    /// Runs `f` on a thread with a small stack, so unbounded recursion fails.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(f)
            .expect("spawn")
            .join()
            .expect("no stack overflow")
    }

    #[test]
    fn deep_nesting_neither_overflows_nor_passes() {
        let depth = 20_000;
        let nested = |open: &str, close: &str| open.repeat(depth) + &close.repeat(depth);

        let balanced = STANDARD.encode(nested("[", "]"));
        let err = on_small_stack(move || parse(balanced.as_bytes()));
        assert_eq!(
            err.unwrap_err(),
            TokenError::NotObject {
                found: JsonKind::Array
            }
        );

        let unclosed = STANDARD.encode("[".repeat(depth));
        let err = on_small_stack(move || parse(unclosed.as_bytes()));
        assert_eq!(
            err.unwrap_err(),
            TokenError::NotJson {
                problem: JsonProblem::Truncated {
                    line: 1,
                    column: depth
                },
                raw: false
            }
        );

        // Deep values under keys the reader skips are walked without recursion.
        let extra = format!(
            r#"{{"token":"x","expDate":"2030-01-01T00:00:00Z","x":{}}}"#,
            nested("[", "]")
        );
        let ok = on_small_stack(move || parse(extra.as_bytes()));
        assert_eq!(
            ok.expect("deep extra key").variants,
            vec![
                Variant::ExtraKeys,
                Variant::OffsetZ,
                Variant::RawJson,
                Variant::NoOrgName
            ]
        );

        let exp = format!(r#"{{"token":"x","expDate":{}}}"#, nested("[", "]"));
        let err = on_small_stack(move || parse(exp.as_bytes()));
        assert_eq!(
            err.unwrap_err(),
            TokenError::ExpDateNotString {
                found: JsonKind::Array
            }
        );

        let objects = format!(
            r#"{{"expDate":"2030-01-01T00:00:00Z","token":{}null{}}}"#,
            r#"{"a":"#.repeat(depth / 5),
            "}".repeat(depth / 5)
        );
        let err = on_small_stack(move || parse(objects.as_bytes()));
        assert_eq!(
            err.unwrap_err(),
            TokenError::TokenNotString {
                found: JsonKind::Object
            }
        );
    }

    #[test]
    fn rewrapped_copies_share_one_fingerprint() {
        let one_line = normalised(&fixture("valid/compact.vpptoken"));
        let wrap = |width: usize, eol: &str| -> String {
            let lines: Vec<&str> = one_line
                .as_bytes()
                .chunks(width)
                .map(|c| std::str::from_utf8(c).expect("ascii"))
                .collect();
            lines.join(eol) + eol
        };
        let copies = [
            one_line.clone(),
            wrap(76, "\n"),
            wrap(48, "\r\n"),
            format!("\u{FEFF}{}", wrap(64, "\n")),
            format!(" {} \t", one_line),
        ];
        let first = parse(one_line.as_bytes()).expect("compact");
        for copy in &copies {
            let content = parse(copy.as_bytes()).expect("copy");
            assert_eq!(content.fingerprint, first.fingerprint);
            assert_eq!(content.bearer, first.bearer);
            assert_eq!(Fingerprint::of(copy.as_bytes()), first.fingerprint);
        }
        let other = parse(&fixture("valid/trailing_newline.vpptoken")).expect("other");
        assert_ne!(other.fingerprint, first.fingerprint);
    }

    #[test]
    fn fingerprint_forms() {
        let f = Fingerprint::of(b"");
        // SHA-256 of nothing.
        assert_eq!(
            f.as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(f.short(), "e3b0c44298fc");
        assert_eq!(f.to_string(), "e3b0c44298fc");
        assert_eq!(Fingerprint::of(b"\xEF\xBB\xBF \r\n"), f);

        let upper = f.as_str().to_ascii_uppercase();
        assert_eq!(Fingerprint::from_hex(&upper), Some(f.clone()));
        assert_eq!(Fingerprint::from_hex(&f.as_str()[..63]), None);
        assert_eq!(Fingerprint::from_hex(&format!("{}0", f.as_str())), None);
        assert_eq!(Fingerprint::from_hex(&f.as_str().replace('e', "g")), None);
        // 64 bytes but not 64 ASCII hex digits.
        assert_eq!(
            Fingerprint::from_hex(&format!("é{}", &f.as_str()[2..])),
            None
        );

        let json = serde_json::to_string(&f).expect("serialise");
        assert_eq!(json, format!("\"{}\"", f.as_str()));
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).expect("back"), f);
        assert!(serde_json::from_str::<Fingerprint>("\"abc\"").is_err());
    }

    #[test]
    fn created_is_one_calendar_year_earlier_in_the_files_offset() {
        let cases = [
            // 29 February has no match a year earlier.
            ("2028-02-29T12:00:00+00:00", "2027-02-28T12:00:00Z"),
            // Computed in the file's offset: the local date is 29 February,
            // though in UTC it is still the 28th (a UTC computation would
            // give 2027-02-28T23:00Z).
            ("2028-02-29T01:00:00+02:00", "2027-02-27T23:00:00Z"),
            // Local 28 February, UTC 29 February (UTC would give 2027-02-28T00:30Z).
            ("2028-02-28T23:30:00-01:00", "2027-03-01T00:30:00Z"),
            ("2029-02-28T00:00:00+00:00", "2028-02-28T00:00:00Z"),
            ("2029-03-01T00:00:00+00:00", "2028-03-01T00:00:00Z"),
            // Year boundaries, both directions of offset.
            ("2027-01-01T03:00:00+05:00", "2025-12-31T22:00:00Z"),
            ("2026-12-31T22:00:00-05:00", "2026-01-01T03:00:00Z"),
            ("2027-01-01T00:00:00+00:00", "2026-01-01T00:00:00Z"),
            ("2030-06-15T09:00:00+05:30", "2029-06-15T03:30:00Z"),
            ("2014-08-15T18:13:52-07:00", "2013-08-16T01:13:52Z"),
        ];
        for (expires, created) in cases {
            assert_eq!(
                created_from_expiry(fixed(expires)),
                utc(created),
                "{expires}"
            );
        }
    }

    #[test]
    fn created_clamps_at_chronos_limit_instead_of_panicking() {
        let min = DateTime::<Utc>::MIN_UTC.fixed_offset();
        assert_eq!(created_from_expiry(min), DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn sample_tokens_read_back_as_samples() {
        let expires = utc("2030-05-17T10:20:30.999Z");
        let org = "Acme \"Schulen\" / Köln";
        let text = sample_token(org, expires);

        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 2, "wrapped over several lines");
        let (last, full) = lines.split_last().expect("lines");
        assert!(full.iter().all(|l| l.len() == 76));
        assert!(!last.is_empty() && last.len() <= 76);

        let content = parse(text.as_bytes()).expect("sample parses");
        assert_eq!(content.org_name, org);
        assert_eq!(content.expires_at, utc("2030-05-17T10:20:30Z"));
        assert_eq!(content.created_at, utc("2029-05-17T10:20:30Z"));
        assert_eq!(content.variants, vec![Variant::Wrapped]);
        assert!(is_sample(&content));
        assert_eq!(
            content.bearer.as_ref().map(|b| b.expose().to_owned()),
            Some(normalised(text.as_bytes()))
        );

        let json = STANDARD
            .decode(normalised(text.as_bytes()))
            .expect("base64");
        let json: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(json["expDate"], "2030-05-17T10:20:30+0000");
        let keys: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 3);

        // Random inner token: two samples are two different tokens.
        let again = parse(sample_token(org, expires).as_bytes()).expect("again");
        assert_ne!(again.fingerprint, content.fingerprint);
    }

    #[test]
    fn only_the_marker_makes_a_sample() {
        for rel in ["valid/compact.vpptoken", "valid/canary.vpptoken"] {
            assert!(!parse(&fixture(rel)).expect(rel).sample, "{rel}");
        }
        let short = r#"{"token":"dG9rZW53YXRjaC1zYW1wbGU=","expDate":"2030-01-01T00:00:00Z"}"#;
        assert!(!parse(short.as_bytes()).expect("short").sample);
    }

    #[test]
    fn variant_names_match_serde_and_warnings_are_the_lenient_forms() {
        use Variant::*;
        let all = [
            Bom,
            CrLf,
            Wrapped,
            StraySpaces,
            PrettyJson,
            ExtraKeys,
            OffsetZ,
            OffsetWithColon,
            FractionalSeconds,
            RawJson,
            NoOrgName,
        ];
        for v in all {
            let json = serde_json::to_string(&v).expect("serialise");
            assert_eq!(json, format!("\"{}\"", v.name()));
            assert!(!v.describe().is_empty());
        }
        let warnings: Vec<Variant> = all.into_iter().filter(|v| v.is_warning()).collect();
        assert_eq!(
            warnings,
            vec![OffsetWithColon, FractionalSeconds, RawJson, NoOrgName]
        );
    }

    #[test]
    fn org_name_of_the_wrong_type_reads_as_empty_with_a_warning() {
        for org in ["null", "42", "[\"a\"]", "{}"] {
            let json =
                format!(r#"{{"token":"x","expDate":"2030-01-01T00:00:00+0000","orgName":{org}}}"#);
            let content = parse(STANDARD.encode(json).as_bytes()).expect(org);
            assert_eq!(content.org_name, "", "{org}");
            assert_eq!(content.variants, vec![Variant::NoOrgName], "{org}");
        }
    }

    #[test]
    fn duplicate_keys_take_the_last_value() {
        let json =
            r#"{"token":"x","expDate":"2030-01-01T00:00:00Z","expDate":"2031-01-01T00:00:00Z"}"#;
        let content = parse(json.as_bytes()).expect("duplicate");
        assert_eq!(content.expires_at, utc("2031-01-01T00:00:00Z"));
    }

    #[test]
    fn trailing_data_after_the_json_is_rejected() {
        let json = r#"{"token":"x","expDate":"2030-01-01T00:00:00Z"} {}"#;
        assert_eq!(
            parse(json.as_bytes()).unwrap_err(),
            TokenError::NotJson {
                problem: JsonProblem::Syntax {
                    line: 1,
                    column: 48
                },
                raw: true
            }
        );
    }

    #[test]
    fn find_agrees_with_a_naive_search() {
        let naive = |h: &[u8], n: &[u8]| h.windows(n.len()).position(|w| w == n);
        let hay = b"aab-----BEGIN -----BEGIN CERT xx-----BEGIN";
        for needle in [
            &b"-----BEGIN "[..],
            b"-----BEGIN",
            b"a",
            b"aab",
            b"BEGIN",
            b"xx-----BEGIN",
            b"nope",
            b"CERTX",
        ] {
            assert_eq!(find(hay, needle), naive(hay, needle), "{needle:?}");
        }
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(find(b"abc", b""), None);
    }

    #[test]
    fn missing_padding_is_truncation() {
        let text = normalised(&fixture("valid/compact.vpptoken"));
        let unpadded = text.trim_end_matches('=');
        assert_ne!(unpadded.len(), text.len(), "fixture must end in padding");
        assert_eq!(
            parse(unpadded.as_bytes()).unwrap_err(),
            TokenError::NotBase64 {
                problem: Base64Problem::Truncated
            }
        );
    }

    /// Texts that must never appear in any output: the canary, the file's
    /// Base64 (any 16-character stretch of it) and the inner token's Base64.
    fn assert_no_leak(output: &str, secrets: &[&str], context: &str) {
        for secret in secrets {
            let chars: Vec<char> = secret.chars().collect();
            for window in chars.windows(16.min(chars.len())) {
                let needle: String = window.iter().collect();
                assert!(
                    !output.contains(&needle),
                    "{context}: output leaks {needle:?}: {output}"
                );
            }
        }
    }

    #[test]
    fn canary_never_reaches_errors_or_debug() {
        const CANARY: &str = "CANARY-tokenwatch-5b2f9e71-do-not-leak";
        let canary_b64 = STANDARD.encode(CANARY);
        let file = fixture("valid/canary.vpptoken");
        let bearer = normalised(&file);
        let secrets = [CANARY, canary_b64.as_str(), bearer.as_str()];

        let content = parse(&file).expect("canary token");
        assert_eq!(
            content.bearer.as_ref().map(Secret::expose),
            Some(bearer.as_str())
        );
        assert_no_leak(&format!("{content:?}"), &secrets, "Debug of TokenContent");

        // One input per rejection class, each carrying the canary.
        let doc = |rest: &str| format!(r#"{{"token":"{CANARY}"{rest}}}"#);
        let b64 = |s: &str| STANDARD.encode(s);
        let mut inputs: Vec<(&str, Vec<u8>)> = vec![
            ("missing expDate", b64(&doc(r#","orgName":"x""#)).into()),
            ("expDate not string", b64(&doc(r#","expDate":7"#)).into()),
            (
                "impossible date",
                b64(&doc(r#","expDate":"2026-02-30T00:00:00+0000""#)).into(),
            ),
            ("unparseable date", b64(&doc(r#","expDate":"soon""#)).into()),
            (
                "missing token",
                b64(&format!(
                    r#"{{"x":"{CANARY}","expDate":"2030-01-01T00:00:00Z"}}"#
                ))
                .into(),
            ),
            (
                "token not string",
                b64(&format!(
                    r#"{{"token":["{CANARY}"],"expDate":"2030-01-01T00:00:00Z"}}"#
                ))
                .into(),
            ),
            ("not object", b64(&format!(r#"["{CANARY}"]"#)).into()),
            ("not json", b64(&format!("{CANARY} and more")).into()),
            ("bad escape", b64(&doc(r#","orgName":"\q""#)).into()),
            (
                "raw json",
                format!(r#"{{"token":"{CANARY}","expDate":7}}"#).into(),
            ),
            (
                "canary as date",
                b64(&format!(r#"{{"token":"x","expDate":"{CANARY}"}}"#)).into(),
            ),
            ("not base64", format!("{CANARY}!").into()),
            (
                "too large",
                [bearer.as_bytes(), &[b' '; MAX_TOKEN_FILE_BYTES]].concat(),
            ),
            (
                "pem",
                format!("-----BEGIN CERTIFICATE-----\n{bearer}\n").into(),
            ),
            ("ade", format!("MIME-Version: 1.0\n\n{bearer}\n").into()),
        ];
        // Every truncation of the real file: half-written downloads.
        for cut in 0..file.len() {
            inputs.push(("truncated", file[..cut].to_vec()));
        }
        for (what, input) in &inputs {
            match parse(input) {
                Err(err) => {
                    assert_no_leak(&err.to_string(), &secrets, what);
                    assert_no_leak(&format!("{err:?}"), &secrets, what);
                }
                Ok(content) => assert_no_leak(&format!("{content:?}"), &secrets, what),
            }
        }
        // A secret pasted into expDate is not echoed.
        let err = parse(inputs[10].1.as_slice()).unwrap_err();
        assert_eq!(
            err,
            TokenError::UnparseableDate {
                value: DateText::Hidden {
                    chars: CANARY.len()
                }
            }
        );
    }

    #[test]
    fn mangled_fixtures_never_panic() {
        // One flipped bit per position, cycling through bits that turn
        // Base64 into other Base64, into punctuation, and into non-ASCII.
        let mut seen_errors = 0;
        for (rel, _) in table().iter().filter(|(rel, _)| rel.starts_with("valid/")) {
            let original = fixture(rel);
            for i in 0..original.len() {
                let mut bytes = original.clone();
                bytes[i] ^= [0x01u8, 0x20, 0x80][i % 3];
                let (fingerprint, result) = parse_with_fingerprint(&bytes);
                assert_eq!(fingerprint, Fingerprint::of(&bytes), "{rel} byte {i}");
                seen_errors += usize::from(result.is_err());
            }
        }
        assert!(seen_errors > 0);
    }
}
