//! Apple content tokens (`*.vpptoken`): Base64 of a small JSON object with
//! `token`, `expDate` and `orgName`; the reader and what makes it a
//! [`Kind`]. The parent's `parse*` functions, which the fuzz target and the
//! bench call, are this reader.

use base64::Engine as _;
use chrono::Utc;

use super::json::{parse_json, Field, Fields};
use super::kind::{Kind, KindId, Rules, Source};
use super::{
    created_from_expiry, date, Base64Problem, Credential, Fingerprint, PemKind, TokenError,
    Variant, DECODER, MAX_TOKEN_FILE_BYTES, SAMPLE_MARKER, UTF8_BOM,
};
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

    fn read(&self, src: Source<'_>) -> (Fingerprint, Result<Credential, TokenError>) {
        super::parse_with_fingerprint(src.bytes)
    }

    fn bearer(&self, src: Source<'_>) -> Result<(Credential, Option<Secret>), TokenError> {
        super::parse_with_bearer(src.bytes)
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

    /// The wording from before there were other kinds.
    fn unreadable_title(&self) -> String {
        "Unreadable token file".into()
    }

    fn renewal_advice(&self) -> &'static [&'static str] {
        &[RENEWAL, PASSWORD_WARNING]
    }

    fn unreadable_advice(&self) -> &'static str {
        UNREADABLE
    }
}

type Parsed = Result<(Credential, Option<Secret>), TokenError>;

pub(super) fn parse_full(bytes: &[u8]) -> (Fingerprint, Parsed) {
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

fn read(body: &[u8], bom: bool, stripped: Stripped, fingerprint: Fingerprint) -> Parsed {
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
        return finish(fields, body, fingerprint, variants, true).map(|t| (t, None));
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
    finish(fields, &decoded, fingerprint, variants, false).map(|t| (t, bearer))
}

fn finish(
    fields: Fields<'_>,
    json: &[u8],
    fingerprint: Fingerprint,
    mut variants: Vec<Variant>,
    raw: bool,
) -> Result<Credential, TokenError> {
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
    Ok(Credential {
        kind: KindId::Vpp,
        org_name,
        expires_at: parsed.at.with_timezone(&Utc),
        created_at: created_from_expiry(parsed.at),
        fingerprint,
        variants,
        sample: inner_is_sample(&inner),
        details: None,
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

/// First position of a non-empty `needle` (an empty one finds nothing).
/// `memchr`'s substring search: a junk file of 64 KiB is searched for every
/// unreadable file, so a byte-by-byte scan would show.
pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    memchr::memmem::find(haystack, needle)
}
