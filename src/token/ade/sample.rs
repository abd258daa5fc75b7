//! The `sample-token --kind ade` writer: a realistic, clearly fake server
//! token and the key that opens it.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rand::rand_bytes;
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use zeroize::Zeroizing;

use super::envelope;
use super::SAMPLE_CONSUMER_KEY_PREFIX;
use crate::secret::Secret;
use crate::token::created_from_expiry;

/// The server name in every sample's file name; a token whose file name
/// starts with it is a sample even when it cannot be decrypted.
pub const SAMPLE_SERVER: &str = "SAMPLE-tokenwatch-MDM";

/// A sample server token and the key that decrypts it.
#[derive(Debug)]
pub struct AdeSample {
    /// Apple's form: `SAMPLE-tokenwatch-MDM_Token_<download time>_smime.p7m`,
    /// the download time being one year before the expiry.
    pub file_name: String,
    /// The S/MIME message, as Apple serves it.
    pub p7m: Vec<u8>,
    /// A freshly made RSA private key and self-signed certificate, PEM,
    /// which [`super::AdeKey::from_pem`] reads (`--key-out`). Made for this
    /// sample only, but a private key all the same: write it to a file
    /// only its owner can read.
    pub key_pem: Secret,
}

/// Why no sample could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdeSampleError {
    #[error("the expiry is outside the years 0001-9999")]
    OutOfRange,
    #[error("OpenSSL failed to make the sample key or message: {0}")]
    Crypto(String),
}

impl From<openssl::error::ErrorStack> for AdeSampleError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        AdeSampleError::Crypto(e.to_string())
    }
}

/// A server token expiring `days` days after `now` (whole seconds), with
/// fake `CK_SAMPLE_tokenwatch…`, `CS_…`, `AT_…`, `AS_…` values, encrypted
/// (RSA 2048, AES-256-CBC, BER indefinite lengths) to a new self-signed
/// certificate whose key comes back with it.
pub fn sample_ade(now: DateTime<Utc>, days: i64) -> Result<AdeSample, AdeSampleError> {
    let expires = Duration::try_days(days)
        .and_then(|d| now.trunc_subsecs(0).checked_add_signed(d))
        .ok_or(AdeSampleError::OutOfRange)?;
    let downloaded = created_from_expiry(expires.fixed_offset());
    for at in [expires, downloaded] {
        if !(1..=9999).contains(&at.format("%Y").to_string().parse::<i32>().unwrap_or(0)) {
            return Err(AdeSampleError::OutOfRange);
        }
    }
    let (key_pem, cert) = sample_key(now)?;
    let json = Zeroizing::new(format!(
        "{{\"consumer_key\":\"{ck}\",\"consumer_secret\":\"CS_{cs}\",\"access_token\":\"AT_{at}\",\
         \"access_secret\":\"AS_{as_}\",\"access_token_expiry\":\"{exp}\"}}",
        ck = format_args!("{SAMPLE_CONSUMER_KEY_PREFIX}_{}", random_hex(20)?.as_str()),
        cs = random_hex(20)?.as_str(),
        at = random_hex(60)?.as_str(),
        as_ = random_hex(20)?.as_str(),
        exp = expires.format("%Y-%m-%dT%H:%M:%SZ"),
    ));
    let content = Zeroizing::new(format!(
        "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
         -----BEGIN MESSAGE-----\n{}\n-----END MESSAGE-----\n",
        json.as_str()
    ));
    let p7m = envelope(content.as_bytes(), &cert)?;
    Ok(AdeSample {
        file_name: format!(
            "{SAMPLE_SERVER}_Token_{}_smime.p7m",
            downloaded.format("%Y-%m-%dT%H-%M-%SZ")
        ),
        p7m,
        key_pem,
    })
}

fn random_hex(bytes: usize) -> Result<Zeroizing<String>, AdeSampleError> {
    let mut buf = Zeroizing::new(vec![0u8; bytes]);
    rand_bytes(&mut buf)?;
    Ok(Zeroizing::new(hex::encode(buf.as_slice())))
}

/// A new RSA key and a self-signed certificate for it, valid from a day
/// before `now` for two years, as PEM (key first) and as a certificate.
fn sample_key(now: DateTime<Utc>) -> Result<(Secret, X509), AdeSampleError> {
    let pkey = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("O", "tokenwatch sample")?;
    name.append_entry_by_text("CN", "SAMPLE tokenwatch MDM (not a real key)")?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let start = now.timestamp().saturating_sub(86_400);
    let end = now.timestamp().saturating_add(2 * 366 * 86_400);
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = Asn1Integer::from_bn(&serial)?;
    let (start, end) = (Asn1Time::from_unix(start)?, Asn1Time::from_unix(end)?);
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&pkey)?;
    b.set_not_before(&start)?;
    b.set_not_after(&end)?;
    b.sign(&pkey, MessageDigest::sha256())?;
    let cert = b.build();
    let key = Zeroizing::new(pkey.private_key_to_pem_pkcs8()?);
    let mut pem = Zeroizing::new(String::from_utf8_lossy(&key).into_owned());
    pem.push_str(&String::from_utf8_lossy(&cert.to_pem()?));
    Ok((Secret::new(std::mem::take(&mut *pem)), cert))
}

/// `der` (a DER `ContentInfo` with enveloped data) re-encoded as
/// `openssl smime -encrypt -stream` writes it: the ContentInfo, its
/// `[0]`, the EnvelopedData and the EncryptedContentInfo with indefinite
/// lengths (`30 80 … 00 00`), the encrypted content as a constructed
/// `[0]` holding one OCTET STRING; the recipient infos as they were.
/// None for input of another shape.
pub(super) fn indefinite(der: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(der.len() + 32);
    let [(0x30, _, info)] = tlvs(der)?[..] else {
        return None;
    };
    out.extend_from_slice(&[0x30, 0x80]);
    for (tag, whole, content) in tlvs(info)? {
        if tag != 0xa0 {
            out.extend_from_slice(whole);
            continue;
        }
        let [(0x30, _, enveloped)] = tlvs(content)?[..] else {
            return None;
        };
        out.extend_from_slice(&[0xa0, 0x80, 0x30, 0x80]);
        for (tag, whole, content) in tlvs(enveloped)? {
            if tag != 0x30 {
                out.extend_from_slice(whole);
                continue;
            }
            out.extend_from_slice(&[0x30, 0x80]);
            for (tag, whole, content) in tlvs(content)? {
                if tag == 0x80 {
                    out.extend_from_slice(&[0xa0, 0x80, 0x04]);
                    push_length(&mut out, content.len());
                    out.extend_from_slice(content);
                    out.extend_from_slice(&[0, 0]);
                } else {
                    out.extend_from_slice(whole);
                }
            }
            out.extend_from_slice(&[0, 0]);
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
    out.extend_from_slice(&[0, 0]);
    Some(out)
}

/// One DER value: its tag, its whole encoding and its content.
type Tlv<'a> = (u8, &'a [u8], &'a [u8]);

/// The DER values in `der`, one after another. Single-byte tags and
/// definite lengths only.
fn tlvs(mut der: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = der.split_first() {
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = match first {
            l if l < 0x80 => (usize::from(l), rest),
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                let bytes = rest.get(..n)?;
                let len = bytes
                    .iter()
                    .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
                (len, &rest[n..])
            }
            _ => return None,
        };
        let content = rest.get(..len)?;
        let whole_len = der.len() - rest.len() + len;
        out.push((tag, &der[..whole_len], content));
        der = &rest[len..];
    }
    Some(out)
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}
