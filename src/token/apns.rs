//! APNs MDM push certificates (`*.pem`, `*.crt`, `*.cer`): the reader and
//! what makes them a [`Kind`]; the sample writer is in [`sample`].
//!
//! A file is PEM (one or more `CERTIFICATE` blocks, often with Keychain's
//! bag attributes around them and sometimes with the private key) or one DER
//! certificate. The push certificate is the first certificate whose subject
//! UID, the push topic, starts with [`TOPIC_PREFIX`]; the others are the
//! chain and are ignored.
//!
//! A private key block is recognised by its label only: its Base64 is never
//! decoded, hashed or kept, so nothing of it can reach a log, an error or a
//! [`Credential`]. Certificates are public; errors still quote nothing from
//! the file except the subject of a certificate that is not a push
//! certificate, which is what ops need to see to know which file they put
//! there.

use chrono::{DateTime, Utc};
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::nom;
use x509_parser::oid_registry::OID_USERID;
use x509_parser::x509::X509Name;

use super::kind::{Kind, KindId, Rules, Source};
use super::{Credential, Details, Fingerprint, TokenError, UTF8_BOM};

pub mod sample;

pub use sample::{sample_apns, ApnsSample, SampleError, SAMPLE_CN_MARKER};

/// Largest file the reader accepts. A push certificate is about 2 KiB; a
/// PEM with the whole chain, a key and bag attributes stays under 10 KiB.
pub const MAX_APNS_FILE_BYTES: usize = 256 * 1024;

/// How every push topic starts (`com.apple.mgmt.External.<UUID>`).
pub const TOPIC_PREFIX: &str = "com.apple.mgmt";

/// Longest subject an error quotes, in characters.
const SUBJECT_SHOWN_CHARS: usize = 200;

const RENEWAL: &str =
    "To renew: sign in to the Apple Push Certificates Portal (https://identity.apple.com) \
with the same Apple Account that created this certificate, choose Renew next to it, upload the \
certificate signing request from your MDM and download the renewed certificate.";
const SAME_ACCOUNT: &str =
    "Renew it, do not create a new one, and use the Apple Account that created it: \
a certificate made with another Apple Account has another topic, and every enrolled device would \
have to enrol again.";
const REPLACE: &str =
    "Upload the renewed certificate to your MDM, then replace the old file in the watched folder.";
const UNREADABLE: &str =
    "Replace the file with the push certificate (.pem or .cer) from the Apple Push \
Certificates Portal, without its private key, or remove it from the watched folder. \
`tokenwatch inspect FILE` shows what is wrong.";

const EXTENSIONS: [&[u8]; 3] = [b".pem", b".crt", b".cer"];

pub struct Apns;

impl Kind for Apns {
    fn id(&self) -> KindId {
        KindId::Apns
    }

    /// `*.pem`, `*.crt`, `*.cer` in any case, with something before the dot.
    fn claims(&self, name: &[u8]) -> bool {
        EXTENSIONS.iter().any(|ext| {
            name.len() > ext.len() && name[name.len() - ext.len()..].eq_ignore_ascii_case(ext)
        })
    }

    fn max_bytes(&self) -> usize {
        MAX_APNS_FILE_BYTES
    }

    fn read(&self, src: Source<'_>) -> (Fingerprint, Result<Credential, TokenError>) {
        match read(src.bytes) {
            Ok(credential) => (credential.fingerprint.clone(), Ok(credential)),
            Err(err) => (Fingerprint::of(src.bytes), Err(TokenError::Apns(err))),
        }
    }

    fn rules(&self) -> Rules {
        Rules {
            // The certificate lives on after a password change of the
            // Apple Account; Apple has no API that says it is revoked.
            account_password_change: false,
            apple_verification: false,
        }
    }

    fn noun(&self) -> &'static str {
        "APNs push certificate"
    }

    fn renewal_advice(&self) -> &'static [&'static str] {
        &[RENEWAL, SAME_ACCOUNT, REPLACE]
    }

    fn unreadable_advice(&self) -> &'static str {
        UNREADABLE
    }
}

/// Why a file is not a readable push certificate. `Display` follows
/// `cannot read token PATH: ` and quotes nothing from the file except the
/// subject in [`ApnsError::NotPush`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApnsError {
    #[error("file is larger than 256 KiB; a push certificate is about 2 KiB")]
    TooLarge,
    #[error("file is empty or holds only whitespace (a half-written download?)")]
    Empty,
    #[error(
        "file is neither a PEM certificate (-----BEGIN CERTIFICATE-----) nor a DER certificate"
    )]
    NotCertificate,
    #[error(
        "PEM file holds {} but no certificate",
        if *.private_key { "a private key" } else { "no CERTIFICATE block" }
    )]
    NoCertificateInPem {
        /// The blocks found include a private key.
        private_key: bool,
    },
    #[error("{problem}")]
    BadCertificate { problem: CertProblem },
    /// Readable certificates, none with a push topic; `subject` is the
    /// first one's.
    #[error(
        "certificate {subject} is not an APNs push certificate \
         (its subject has no UID starting with com.apple.mgmt)"
    )]
    NotPush { subject: Subject },
    #[error("certificate dates cannot be read: {problem}")]
    BadDates { problem: DateProblem },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertProblem {
    /// A `CERTIFICATE` block without its END line, or whose Base64 does
    /// not decode.
    PemCut,
    /// A `CERTIFICATE` block that decodes to something else.
    PemNotX509,
    /// Binary data that is no X.509 certificate (often a `.p12` bundle).
    DerNotX509,
}

impl std::fmt::Display for CertProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertProblem::PemCut => {
                "a PEM CERTIFICATE block is cut short or its Base64 is broken (truncated copy?)"
            }
            CertProblem::PemNotX509 => "a PEM CERTIFICATE block does not hold an X.509 certificate",
            CertProblem::DerNotX509 => {
                "file is binary but not a DER certificate (a .p12 bundle? \
                 export the certificate alone as .pem or .cer)"
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateProblem {
    /// notBefore or notAfter is no valid time (month 13, hour 25, ...).
    Invalid,
    /// A valid time chrono cannot hold.
    OutOfRange,
    /// notBefore is later than notAfter.
    Reversed,
}

impl std::fmt::Display for DateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DateProblem::Invalid => "notBefore or notAfter is not a valid date",
            DateProblem::OutOfRange => "notBefore or notAfter is out of range",
            DateProblem::Reversed => "notBefore is later than notAfter",
        })
    }
}

/// A certificate subject as an error shows it: one line of at most
/// [`SUBJECT_SHOWN_CHARS`] characters, control characters and bidirectional
/// overrides escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    fn of(name: &X509Name<'_>) -> Subject {
        let full = name.to_string();
        let mut shown = String::new();
        for (i, c) in full.chars().enumerate() {
            if i == SUBJECT_SHOWN_CHARS {
                shown.push('…');
                break;
            }
            if escaped(c) {
                shown.extend(c.escape_default());
            } else {
                shown.push(c);
            }
        }
        Subject(shown)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Control characters, and bidirectional overrides, which could make the
/// line read otherwise than it is.
fn escaped(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

/// Reads a push certificate file's bytes (at most [`MAX_APNS_FILE_BYTES`]).
/// The credential's fingerprint is the SHA-256 of the DER certificate.
pub fn read(bytes: &[u8]) -> Result<Credential, ApnsError> {
    if bytes.len() > MAX_APNS_FILE_BYTES {
        return Err(ApnsError::TooLarge);
    }
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    // A DER certificate is a SEQUENCE, 0x30; so is the digit 0, which a
    // PEM file with some text before its block may start with.
    if body.first() == Some(&0x30) && memchr::memmem::find(body, b"-----BEGIN ").is_none() {
        return read_der(body);
    }
    if body.trim_ascii().is_empty() {
        return Err(ApnsError::Empty);
    }
    read_pem(body)
}

fn read_der(der: &[u8]) -> Result<Credential, ApnsError> {
    let (cert, raw) = certificate(der, CertProblem::DerNotX509)?;
    push_facts(&cert, raw, false).unwrap_or_else(|| {
        Err(ApnsError::NotPush {
            subject: Subject::of(cert.subject()),
        })
    })
}

fn read_pem(text: &[u8]) -> Result<Credential, ApnsError> {
    let blocks = pem_blocks(text);
    let has_private_key = blocks.iter().any(|b| matches!(b, Block::PrivateKey));
    let mut first_error = None;
    let mut first_subject = None;
    let mut certificates = 0;
    for block in &blocks {
        let Block::Certificate { text, complete } = *block else {
            continue;
        };
        certificates += 1;
        let der = match decode_pem(text, complete) {
            Ok(der) => der,
            Err(err) => {
                first_error.get_or_insert(err);
                continue;
            }
        };
        match certificate(&der, CertProblem::PemNotX509) {
            Ok((cert, raw)) => match push_facts(&cert, raw, has_private_key) {
                Some(found) => return found,
                None => {
                    first_subject.get_or_insert_with(|| Subject::of(cert.subject()));
                }
            },
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    // A broken block may well be the push certificate: say that first.
    if let Some(err) = first_error {
        return Err(err);
    }
    if let Some(subject) = first_subject {
        return Err(ApnsError::NotPush { subject });
    }
    if certificates == 0 && !blocks.is_empty() {
        return Err(ApnsError::NoCertificateInPem {
            private_key: has_private_key,
        });
    }
    Err(ApnsError::NotCertificate)
}

/// The DER inside one `CERTIFICATE` block, decoded by x509-parser's PEM
/// reader; `text` runs from the BEGIN line to the END line.
fn decode_pem(text: &[u8], complete: bool) -> Result<Vec<u8>, ApnsError> {
    let cut = ApnsError::BadCertificate {
        problem: CertProblem::PemCut,
    };
    if !complete {
        return Err(cut);
    }
    x509_parser::pem::parse_x509_pem(text)
        .map(|(_, pem)| pem.contents)
        .map_err(|_| cut)
}

/// One parsed certificate and its exact DER (without anything after it).
fn certificate(
    der: &[u8],
    problem: CertProblem,
) -> Result<(X509Certificate<'_>, &[u8]), ApnsError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((rest, cert)) => {
            // `rest` is what follows the certificate in `der`.
            let raw = der
                .get(..der.len().saturating_sub(rest.len()))
                .unwrap_or(der);
            Ok((cert, raw))
        }
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) if e == X509Error::InvalidDate => {
            Err(ApnsError::BadDates {
                problem: DateProblem::Invalid,
            })
        }
        Err(_) => Err(ApnsError::BadCertificate { problem }),
    }
}

/// The push topic: the subject's first UID that is a string.
fn topic<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a str> {
    cert.subject()
        .iter_by_oid(&OID_USERID)
        .find_map(|attr| attr.as_str().ok())
}

fn first_str<'a>(
    mut attrs: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Option<String> {
    attrs.find_map(|attr| attr.as_str().ok()).map(str::to_owned)
}

/// The credential when `cert` is a push certificate; None when it is not.
fn push_facts(
    cert: &X509Certificate<'_>,
    raw: &[u8],
    has_private_key: bool,
) -> Option<Result<Credential, ApnsError>> {
    let topic = topic(cert).filter(|t| t.starts_with(TOPIC_PREFIX))?;
    Some(credential(cert, raw, topic, has_private_key))
}

fn credential(
    cert: &X509Certificate<'_>,
    raw: &[u8],
    topic: &str,
    has_private_key: bool,
) -> Result<Credential, ApnsError> {
    let validity = cert.validity();
    let at = |t: &x509_parser::time::ASN1Time| {
        DateTime::<Utc>::from_timestamp(t.timestamp(), 0).ok_or(ApnsError::BadDates {
            problem: DateProblem::OutOfRange,
        })
    };
    let not_before = at(&validity.not_before)?;
    let not_after = at(&validity.not_after)?;
    if not_before > not_after {
        return Err(ApnsError::BadDates {
            problem: DateProblem::Reversed,
        });
    }
    let subject_cn = first_str(cert.subject().iter_common_name());
    let sample = subject_cn
        .as_deref()
        .is_some_and(|cn| cn.contains(SAMPLE_CN_MARKER));
    Ok(Credential {
        kind: KindId::Apns,
        org_name: first_str(cert.subject().iter_organization()).unwrap_or_default(),
        expires_at: not_after,
        created_at: not_before,
        fingerprint: Fingerprint::sha256(raw),
        variants: Vec::new(),
        sample,
        details: Some(Box::new(Details {
            issued_at: Some(not_before),
            topic: Some(topic.to_owned()),
            serial: Some(serial_hex(cert.raw_serial())),
            subject_cn,
            issuer_cn: first_str(cert.issuer().iter_common_name()),
            has_private_key,
            ..Details::default()
        })),
    })
}

/// Lower-case hex without the sign byte DER adds to a serial whose top bit
/// is set, so it reads as Keychain and `openssl x509 -serial` show it.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(&raw[start..])
}

/// One `-----BEGIN ...-----` block of a PEM file.
enum Block<'a> {
    /// From the BEGIN line to the end of the END line (or of the file).
    Certificate {
        text: &'a [u8],
        complete: bool,
    },
    /// Only its presence is kept.
    PrivateKey,
    Other,
}

/// The PEM blocks in `text`, by their BEGIN and END lines; text around
/// them (bag attributes, `openssl x509 -text` output) is skipped.
fn pem_blocks(text: &[u8]) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut lines = lines(text);
    while let Some((start, line)) = lines.next() {
        let Some(label) = begin_label(line) else {
            continue;
        };
        let start = start + (line.len() - line.trim_ascii_start().len());
        // Skipping to the END line is all that happens to a key's lines.
        let end = lines
            .by_ref()
            .find(|(_, l)| l.trim_ascii_start().starts_with(b"-----END "))
            .map(|(s, l)| s + l.len());
        blocks.push(if is_certificate(label) {
            Block::Certificate {
                text: text
                    .get(start..end.unwrap_or(text.len()))
                    .unwrap_or_default(),
                complete: end.is_some(),
            }
        } else if label.ends_with(b"PRIVATE KEY") {
            Block::PrivateKey
        } else {
            Block::Other
        });
    }
    blocks
}

/// Each line with the offset it starts at, without its `\n`.
fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    text.split(|&b| b == b'\n').map(move |line| {
        let start = at;
        at += line.len() + 1;
        (start, line)
    })
}

fn begin_label(line: &[u8]) -> Option<&[u8]> {
    line.trim_ascii()
        .strip_prefix(b"-----BEGIN ")?
        .strip_suffix(b"-----")
}

fn is_certificate(label: &[u8]) -> bool {
    matches!(
        label,
        b"CERTIFICATE" | b"X509 CERTIFICATE" | b"TRUSTED CERTIFICATE"
    )
}

#[cfg(test)]
mod tests;
