//! Automated Device Enrollment (ADE) server tokens (`*.p7m`): an S/MIME
//! message whose body is CMS enveloped data (BER, indefinite lengths),
//! encrypted to the certificate the MDM uploaded to Apple; inside, a MIME
//! part wraps JSON with the OAuth secrets and `access_token_expiry` in
//! `-----BEGIN MESSAGE-----` lines.
//!
//! Only the MDM's private key opens it. With that key ([`AdeKey`], passed
//! in [`Source::key`]) the expiry is read; without it, or when the key does
//! not fit, the expiry is estimated from Apple's file name
//! (`<server>_Token_<YYYY-MM-DDTHH-MM-SSZ>_smime.p7m`, the download time)
//! plus one year, and [`Details::expiry_estimated`] says so.
//!
//! The decrypted content is a credential: it lives in a zeroized buffer for
//! the length of one read, and only the expiry and the first
//! [`IDENTITY_PREFIX_CHARS`] characters of `consumer_key` leave it. Errors
//! never quote the file, the content or the key.
//!
//! OpenSSL (through the `openssl` crate) does the CMS work: it reads BER,
//! which RustCrypto's DER-only `cms` crate rejects.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Months, NaiveDateTime, TimeZone, Utc};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::symm::Cipher;
use openssl::x509::X509;
use zeroize::{Zeroize, Zeroizing};

use super::kind::{Kind, KindId, Rules, Source};
use super::vpp::find;
use super::{created_from_expiry, Credential, Details, Fingerprint, TokenError, Variant};

mod sample;
pub use sample::{sample_ade, AdeSample, AdeSampleError, SAMPLE_SERVER};

/// Largest file the reader accepts; Apple's tokens are a few KiB.
pub const MAX_ADE_FILE_BYTES: usize = 64 * 1024;

/// How much of `consumer_key` is shown as the token's identity: enough to
/// tell two servers' tokens apart, far too little to use.
pub const IDENTITY_PREFIX_CHARS: usize = 8;

/// Start of `consumer_key` in every token [`sample_ade`] writes.
pub const SAMPLE_CONSUMER_KEY_PREFIX: &str = "CK_SAMPLE_tokenwatch";

const EXT: &[u8] = b".p7m";

const RENEWAL: &str =
    "To renew: sign in to Apple Business (or Apple School Manager), open Preferences, \
select your MDM server and choose Download Token. Upload the new token to your MDM, \
then replace the old file in the watched folder.";
const UNREADABLE: &str = "Replace the file with the server token (.p7m) downloaded from Apple Business, \
keeping Apple's file name (it holds the download date), or set the folder's ade_key to the MDM's key \
so that tokenwatch can read the expiry inside. `tokenwatch inspect FILE` shows what is wrong.";

/// Enrollment server tokens: see the module documentation.
pub struct Ade;

impl Kind for Ade {
    fn id(&self) -> KindId {
        KindId::Ade
    }

    /// `*.p7m` in any case, with something before the dot.
    fn claims(&self, name: &[u8]) -> bool {
        name.len() > EXT.len() && name[name.len() - EXT.len()..].eq_ignore_ascii_case(EXT)
    }

    fn max_bytes(&self) -> usize {
        MAX_ADE_FILE_BYTES
    }

    fn read(&self, src: Source<'_>) -> (Fingerprint, Result<Credential, TokenError>) {
        let fingerprint = Fingerprint::of(src.bytes);
        let result = if src.bytes.len() > MAX_ADE_FILE_BYTES {
            Err(TokenError::Ade(AdeProblem::TooLarge))
        } else if src.bytes.trim_ascii().is_empty() {
            Err(TokenError::Empty)
        } else {
            read(src, &fingerprint).map_err(TokenError::Ade)
        };
        (fingerprint, result)
    }

    fn rules(&self) -> Rules {
        Rules {
            account_password_change: false,
            apple_verification: false,
        }
    }

    fn noun(&self) -> &'static str {
        "ADE server token"
    }

    fn renewal_advice(&self) -> &'static [&'static str] {
        &[RENEWAL]
    }

    fn unreadable_advice(&self) -> &'static str {
        UNREADABLE
    }
}

/// Why a `.p7m` file gives no expiry. `Display` follows
/// `cannot read token PATH: `; [`AdeProblem::ExpiryUnknown`] shows only its
/// code, `ade_expiry_unknown`, which the JSON output uses as `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdeProblem {
    #[error("file is larger than 64 KiB; an ADE server token is a few KiB")]
    TooLarge,
    #[error("file is not S/MIME enveloped data (an ADE server token .p7m)")]
    NotEnvelopedData,
    /// Not decrypted (no key, or the key does not fit) and no download
    /// time in the file name to estimate from.
    #[error("ade_expiry_unknown")]
    ExpiryUnknown {
        /// A key was given but does not decrypt the file.
        key_failed: bool,
    },
    /// Decrypted, but what is inside is not Apple's wrapped JSON with a
    /// date in `access_token_expiry`.
    #[error("decrypted, but the content holds no readable access_token_expiry")]
    NoExpiryInside,
}

impl AdeProblem {
    /// What to do about it, for views that show a hint next to the error.
    pub fn hint(self) -> Option<&'static str> {
        match self {
            AdeProblem::ExpiryUnknown { key_failed: false } => Some(
                "set the folder's ade_key to the MDM's key, or keep Apple's file name \
                 (SERVER_Token_YYYY-MM-DDTHH-MM-SSZ_smime.p7m), which holds the download date",
            ),
            AdeProblem::ExpiryUnknown { key_failed: true } => Some(
                "the folder's ade_key does not decrypt this token: set it to the key of the \
                 MDM the token was downloaded for, or keep Apple's file name \
                 (SERVER_Token_YYYY-MM-DDTHH-MM-SSZ_smime.p7m), which holds the download date",
            ),
            AdeProblem::NoExpiryInside | AdeProblem::NotEnvelopedData => {
                Some("download the token again from Apple Business")
            }
            AdeProblem::TooLarge => None,
        }
    }
}

/// The MDM's private key and its certificate, which Apple encrypts server
/// tokens to. `Debug` shows nothing of either.
pub struct AdeKey {
    pkey: PKey<Private>,
    cert: X509,
}

impl fmt::Debug for AdeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdeKey([redacted])")
    }
}

/// Why bytes are not a usable [`AdeKey`]; never quotes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdeKeyError {
    #[error("it holds no PEM private key (-----BEGIN PRIVATE KEY----- or RSA PRIVATE KEY)")]
    NoPrivateKey,
    #[error("its private key is encrypted with a passphrase; store it unencrypted with tight permissions")]
    EncryptedKey,
    #[error("it holds no PEM certificate (-----BEGIN CERTIFICATE-----) next to the key")]
    NoCertificate,
    #[error("none of its certificates belongs to its private key")]
    KeyMismatch,
}

impl AdeKey {
    /// Reads the MDM's private key and certificate from PEM text (one file,
    /// in any order; further certificates are ignored). The private key
    /// must not be encrypted. `pem` is not wiped here: the caller owns it
    /// (and should wipe it, e.g. read it into a `Zeroizing` buffer).
    pub fn from_pem(pem: &[u8]) -> Result<AdeKey, AdeKeyError> {
        if find(pem, b"ENCRYPTED PRIVATE KEY").is_some()
            || find(pem, b"Proc-Type: 4,ENCRYPTED").is_some()
        {
            return Err(AdeKeyError::EncryptedKey);
        }
        // PEM blocks are ASCII; other lines (a PKCS#12 export's bag
        // attributes) may not be, and OpenSSL quoting one that is not
        // UTF-8 in an error would make the openssl crate panic.
        let ascii: Zeroizing<Vec<u8>> = Zeroizing::new(
            pem.split_inclusive(|&b| b == b'\n')
                .filter(|line| line.is_ascii())
                .flatten()
                .copied()
                .collect(),
        );
        let pem = ascii.as_slice();
        // An empty passphrase: OpenSSL's default would prompt on the
        // terminal for an encrypted key that slipped past the check above.
        let pkey = PKey::private_key_from_pem_callback(pem, |_| Ok(0))
            .map_err(|_| AdeKeyError::NoPrivateKey)?;
        let certs = X509::stack_from_pem(pem).map_err(|_| AdeKeyError::NoCertificate)?;
        if certs.is_empty() {
            return Err(AdeKeyError::NoCertificate);
        }
        let cert = certs
            .into_iter()
            .find(|c| c.public_key().is_ok_and(|p| p.public_eq(&pkey)))
            .ok_or(AdeKeyError::KeyMismatch)?;
        Ok(AdeKey { pkey, cert })
    }
}

/// What Apple's file name says. Both None for a renamed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdeFileName {
    /// The MDM server's name in Apple Business; None when empty.
    pub server: Option<String>,
    /// When the token was downloaded.
    pub downloaded_at: Option<DateTime<Utc>>,
}

/// Reads `<server>_Token_<YYYY-MM-DDTHH-MM-SSZ>_smime.p7m`. Tolerates what
/// browsers and people do to a download: a suffix after the timestamp
/// (`_smime (1).p7m`), any case of the extension, underscores in the
/// server name. A name without the `_Token_<timestamp>` part has neither.
pub fn parse_file_name(name: &[u8]) -> AdeFileName {
    const MARK: &[u8] = b"_Token_";
    const STAMP: usize = "2026-03-14T09-26-53Z".len();
    let none = AdeFileName {
        server: None,
        downloaded_at: None,
    };
    // The last `_Token_` followed by a timestamp: a server may be named
    // "X_Token_Y" too.
    let mut end = name.len();
    while let Some(at) = memchr::memmem::rfind(&name[..end], MARK) {
        let rest = &name[at + MARK.len()..];
        let stamp = rest.get(..STAMP).and_then(parse_stamp);
        let boundary = matches!(rest.get(STAMP), None | Some(b'_' | b'.' | b' ' | b'-'));
        if let (Some(at_time), true) = (stamp, boundary) {
            let server = String::from_utf8_lossy(&name[..at]);
            // A name shows up in subjects and logs: no control characters.
            let server: String = server.chars().filter(|c| !c.is_control()).collect();
            let server = server.trim();
            return AdeFileName {
                server: (!server.is_empty()).then(|| server.to_owned()),
                downloaded_at: Some(at_time),
            };
        }
        end = at;
    }
    none
}

/// `2026-03-14T09-26-53Z` (Apple's file-name form: dashes for colons, UTC).
fn parse_stamp(text: &[u8]) -> Option<DateTime<Utc>> {
    let text = std::str::from_utf8(text).ok()?;
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || b"-TZ".contains(&b))
    {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H-%M-%SZ").ok()?;
    Some(Utc.from_utc_datetime(&naive))
}

/// One calendar year on (29 February maps to 28 February): how long Apple
/// says a server token lives.
fn one_year_after(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    at.checked_add_months(Months::new(12))
}

fn read(src: Source<'_>, fingerprint: &Fingerprint) -> Result<Credential, AdeProblem> {
    let name = parse_file_name(src.name);
    let envelope = parse_envelope(src.bytes).ok_or(AdeProblem::NotEnvelopedData)?;
    let mut variants = Vec::new();
    let mut key_failed = false;
    if let Some(key) = src.key {
        match envelope.decrypt(&key.pkey, &key.cert) {
            Ok(plain) => {
                let plain = Zeroizing::new(plain);
                return read_inside(&plain, name, fingerprint);
            }
            Err(_) => {
                key_failed = true;
                variants.push(Variant::AdeKeyMismatch);
            }
        }
    }
    let downloaded = name
        .downloaded_at
        .ok_or(AdeProblem::ExpiryUnknown { key_failed })?;
    let expires_at = one_year_after(downloaded).ok_or(AdeProblem::ExpiryUnknown { key_failed })?;
    let sample = is_sample_server(name.server.as_deref());
    Ok(Credential {
        kind: KindId::Ade,
        org_name: name.server.clone().unwrap_or_default(),
        expires_at,
        created_at: downloaded,
        fingerprint: fingerprint.clone(),
        variants,
        sample,
        details: Some(Box::new(Details {
            expiry_estimated: true,
            server: name.server,
            ..Details::default()
        })),
    })
}

fn is_sample_server(server: Option<&str>) -> bool {
    server.is_some_and(|s| s.starts_with(SAMPLE_SERVER))
}

/// The CMS structure of an S/MIME message (Apple's form), or of the bare
/// BER/DER or PEM it carries; None unless it is enveloped data.
fn parse_envelope(bytes: &[u8]) -> Option<CmsContentInfo> {
    let body = bytes.trim_ascii_start();
    let cms = if body.first() == Some(&0x30) {
        CmsContentInfo::from_der(body).ok()?
    } else if !body.is_ascii() {
        // Text forms are ASCII. OpenSSL quotes a bad MIME header in its
        // error, and the openssl crate panics on one that is not UTF-8.
        return None;
    } else if body.starts_with(b"-----BEGIN") {
        CmsContentInfo::from_pem(body).ok()?
    } else {
        CmsContentInfo::smime_read_cms(bytes).ok()?
    };
    let der = cms.to_der().ok()?;
    is_enveloped_data(&der).then_some(cms)
}

/// DER `ContentInfo` whose contentType is id-envelopedData
/// (1.2.840.113549.1.7.3): the openssl crate does not expose the type.
fn is_enveloped_data(der: &[u8]) -> bool {
    const OID: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
    ];
    let Some((&0x30, rest)) = der.split_first() else {
        return false;
    };
    let Some((&len, rest)) = rest.split_first() else {
        return false;
    };
    let skip = if len < 0x80 {
        0
    } else {
        usize::from(len & 0x7f)
    };
    rest.get(skip..).is_some_and(|r| r.starts_with(OID))
}

/// The JSON fields read from the decrypted content; the other secrets are
/// skipped unread.
#[derive(serde::Deserialize)]
struct Inside<'a> {
    #[serde(borrow, default)]
    consumer_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    access_token_expiry: Option<Cow<'a, str>>,
}

fn read_inside(
    plain: &[u8],
    name: AdeFileName,
    fingerprint: &Fingerprint,
) -> Result<Credential, AdeProblem> {
    let json = message_body(plain).ok_or(AdeProblem::NoExpiryInside)?;
    let inside: Inside<'_> =
        serde_json::from_slice(json).map_err(|_| AdeProblem::NoExpiryInside)?;
    let expiry = inside
        .access_token_expiry
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
        .ok_or(AdeProblem::NoExpiryInside)?;
    let (prefix, sample) = match inside.consumer_key {
        Some(key) => {
            let prefix: String = key.chars().take(IDENTITY_PREFIX_CHARS).collect();
            let sample = key.starts_with(SAMPLE_CONSUMER_KEY_PREFIX);
            // An escaped value was copied out of the zeroized buffer.
            if let Cow::Owned(mut key) = key {
                key.zeroize();
            }
            (Some(prefix).filter(|p| !p.is_empty()), sample)
        }
        None => (None, false),
    };
    Ok(Credential {
        kind: KindId::Ade,
        org_name: name.server.clone().unwrap_or_default(),
        expires_at: expiry.with_timezone(&Utc),
        created_at: name
            .downloaded_at
            .unwrap_or_else(|| created_from_expiry(expiry)),
        fingerprint: fingerprint.clone(),
        variants: Vec::new(),
        sample: sample || is_sample_server(name.server.as_deref()),
        details: Some(Box::new(Details {
            server: name.server,
            identity_prefix: prefix,
            ..Details::default()
        })),
    })
}

/// [`read_inside`] for the fuzz target, which cannot make valid
/// ciphertext out of mutated plaintext: what a file named `name` would
/// read as if it decrypted to `plain`.
#[doc(hidden)]
pub fn read_decrypted(name: &[u8], plain: &[u8]) -> Result<Credential, TokenError> {
    let fingerprint = Fingerprint::of(plain);
    read_inside(plain, parse_file_name(name), &fingerprint).map_err(TokenError::Ade)
}

/// The text between Apple's `-----BEGIN MESSAGE-----` and
/// `-----END MESSAGE-----` lines (the MIME headers before it are skipped);
/// the whole content when it is bare JSON.
fn message_body(plain: &[u8]) -> Option<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN MESSAGE-----";
    const END: &[u8] = b"-----END MESSAGE-----";
    let Some(at) = find(plain, BEGIN) else {
        let trimmed = plain.trim_ascii();
        return trimmed.starts_with(b"{").then_some(trimmed);
    };
    let body = &plain[at + BEGIN.len()..];
    let end = find(body, END)?;
    Some(body[..end].trim_ascii())
}

/// Base64 lines of 64 characters, as OpenSSL writes S/MIME bodies.
fn base64_lines(der: &[u8]) -> String {
    let text = STANDARD.encode(der);
    let mut out = String::with_capacity(text.len() + text.len() / 64 + 1);
    for line in text.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Encrypts `content` to `cert` as Apple does (RSA key transport,
/// AES-256-CBC) and writes it as an S/MIME message with BER indefinite
/// lengths, like `openssl smime -encrypt -aes256 -stream`.
fn envelope(content: &[u8], cert: &X509) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let mut certs = openssl::stack::Stack::new()?;
    certs.push(cert.clone())?;
    let cms = CmsContentInfo::encrypt(&certs, content, Cipher::aes_256_cbc(), CMSOptions::BINARY)?;
    let der = cms.to_der()?;
    // The openssl crate has no streaming writer: re-encode its DER with
    // indefinite lengths, the form Apple's files have.
    let ber = sample::indefinite(&der).unwrap_or(der);
    let mut out = String::from(
        "MIME-Version: 1.0\n\
         Content-Disposition: attachment; filename=\"smime.p7m\"\n\
         Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"\n\
         Content-Transfer-Encoding: base64\n\n",
    );
    out.push_str(&base64_lines(&ber));
    out.push('\n');
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests;
