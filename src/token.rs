//! Reading one `.vpptoken` file's bytes into a [`Credential`] or a specific
//! [`TokenError`]; fingerprints; the `sample-token` writer. The reader
//! itself is the content-token kind's ([`vpp`]); [`mod@kind`] is the seam.
//!
//! Pure: no filesystem, no clock. The scanner hands in at most
//! [`MAX_TOKEN_FILE_BYTES`] + 1 bytes.
//!
//! The file content (the Base64 text, the inner `token`) is a credential. It
//! goes into [`Credential::bearer`] as a [`Secret`] and nowhere else: errors
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
use json::{parse_json, Field};

pub mod ade;
pub mod apns;
mod date;
mod error;
pub mod found;
mod json;
pub mod kind;
pub mod vpp;
#[cfg(test)]
use vpp::find;

pub use error::{Base64Problem, DateText, JsonKind, JsonProblem, PemKind, TokenError};
pub use kind::{kind, kind_for_name, Kind, KindId, Rules, Source, KINDS};

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

    /// SHA-256 of exactly these bytes, nothing stripped: for binary
    /// content such as a DER certificate.
    pub fn sha256(bytes: &[u8]) -> Fingerprint {
        Fingerprint::from_digest(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
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
/// Listed in a [`Credential`] in declaration order.
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
    /// The folder's `ade_key` does not decrypt this ADE server token; its
    /// expiry is estimated from the file name.
    AdeKeyMismatch,
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
                | Variant::AdeKeyMismatch
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
            Variant::AdeKeyMismatch => "ade_key_mismatch",
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
            Variant::AdeKeyMismatch => {
                "The folder's ade_key does not decrypt this token (a key of another MDM?); \
                 the expiry is estimated from the file name."
            }
        }
    }
}

/// What a readable credential file says: the facts every kind has, and
/// those only some kinds have in [`Credential::details`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub kind: KindId,
    /// `orgName` of a content token, JSON escapes resolved; empty when
    /// missing (see [`Variant::NoOrgName`]). Other kinds say what stands in
    /// for it.
    pub org_name: String,
    pub expires_at: DateTime<Utc>,
    /// Derived for content tokens: see [`created_from_expiry`].
    pub created_at: DateTime<Utc>,
    pub fingerprint: Fingerprint,
    pub variants: Vec<Variant>,
    /// Made by `tokenwatch sample-token`, never a real credential.
    pub sample: bool,
    /// Boxed: content tokens, by far the most numerous, have none, and a
    /// daemon holds one `Credential` per watched file.
    pub details: Option<Box<Details>>,
}

/// Facts some kinds have and others do not; a key that does not apply is
/// None (shown as null).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// When the issuer says the credential was made (a certificate's
    /// notBefore), as opposed to a `created_at` derived from the expiry.
    pub issued_at: Option<DateTime<Utc>>,
    /// A push certificate's topic (its subject UID).
    pub topic: Option<String>,
    /// A certificate's serial number, hex.
    pub serial: Option<String>,
    /// A certificate's subject and issuer common names.
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    /// The file holds a private key as well: keys belong elsewhere.
    pub has_private_key: bool,
    /// The expiry is inferred (from the file name), not read.
    pub expiry_estimated: bool,
    /// The server an enrollment token is for (from its file name).
    pub server: Option<String>,
    /// The first characters of an identity that is otherwise a secret
    /// (an enrollment token's consumer key).
    pub identity_prefix: Option<String>,
}

impl Credential {
    /// Apple's API takes the file's Base64 text; a file saved as raw JSON
    /// has lost it, and only some kinds can be asked about at all.
    pub fn verifiable_with_apple(&self) -> bool {
        kind(self.kind).rules().apple_verification && !self.variants.contains(&Variant::RawJson)
    }

    pub fn details(&self) -> Option<&Details> {
        self.details.as_deref()
    }
}

/// Reads a token file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Credential, TokenError> {
    parse_with_fingerprint(bytes).1
}

/// [`parse`], also returning the normalised Base64 text (BOM and whitespace
/// removed) that Apple's API takes as `Authorization: Bearer`; None when the
/// file is raw JSON. Only for asking Apple: what scans keep in memory for
/// every token never holds it.
pub fn parse_with_bearer(bytes: &[u8]) -> Result<(Credential, Option<Secret>), TokenError> {
    vpp::parse_full(bytes).1
}

/// Every form in which a bearer carries secret text: the bearer itself (the
/// Base64 file text), that JSON's inner `token` value (unescaped), and the
/// JSON it decodes to, less the `expDate` and `orgName` values: those are
/// shown on purpose everywhere, and Apple's `locationName` is often the
/// organisation's name, which must not turn into `[redacted]`. What is left
/// of the JSON comes as the pieces between those values. A server echoing
/// any form leaks the credential, so all of them are masked in what it
/// answers ([`crate::secret::Redactor`]). Forms that cannot be read from
/// the bearer are left out.
pub fn secret_forms(bearer: &Secret) -> Vec<Secret> {
    let text = bearer.expose();
    let mut forms = vec![Secret::new(text)];
    let Ok(json) = DECODER
        .decode(text.as_bytes())
        .map_err(drop)
        .and_then(|d| String::from_utf8(d).map_err(drop))
    else {
        return forms;
    };
    let Ok(fields) = parse_json(json.as_bytes(), false) else {
        forms.push(Secret::new(json));
        return forms;
    };
    if let Some(Field::Str(inner)) = &fields.token {
        forms.push(Secret::new(inner.as_ref()));
    }
    // The values as they may be written in the JSON; one written another
    // way (`\u00e9`) is simply not found, and its text stays masked.
    let mut public = Vec::new();
    for value in [&fields.exp_date, &fields.org_name] {
        if let Some(Field::Str(v)) = value {
            let quoted = serde_json::to_string(v.as_ref()).unwrap_or_default();
            public.push(quoted.replace('/', "\\/"));
            public.push(quoted);
        }
    }
    let mut pieces = vec![json.as_str()];
    for p in public.iter().filter(|p| p.len() > 2) {
        pieces = pieces
            .iter()
            .flat_map(|piece| piece.split(p.as_str()))
            .collect();
    }
    // A shorter piece is JSON punctuation and key names: no run of it
    // could count as a leak.
    forms.extend(
        pieces
            .into_iter()
            .filter(|p| p.len() >= crate::secret::LEAK_RUN)
            .map(Secret::new),
    );
    forms
}

/// [`parse`], also returning the fingerprint for files that do not parse
/// (equal to [`Fingerprint::of`]), so a scanner hashes each file once.
pub fn parse_with_fingerprint(bytes: &[u8]) -> (Fingerprint, Result<Credential, TokenError>) {
    let (fingerprint, result) = vpp::parse_full(bytes);
    (fingerprint, result.map(|(content, _bearer)| content))
}

/// True when the file was made by [`sample_token`]; same as `content.sample`.
pub fn is_sample(content: &Credential) -> bool {
    content.sample
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
mod tests;
