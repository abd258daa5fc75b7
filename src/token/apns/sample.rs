//! The sample push certificate (`tokenwatch sample-token --kind apns`): a
//! self-signed certificate shaped like Apple's, which the reader reads as a
//! push certificate and marks as a sample.

use chrono::{DateTime, Duration, TimeDelta, Utc};
use rand::RngCore as _;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};

/// Part of the subject CN of every certificate [`sample_apns`] writes; a
/// certificate whose subject CN contains it reads as a sample. Apple's CNs
/// are `APSP:<UUID>`, which cannot contain it.
pub const SAMPLE_CN_MARKER: &str = "SAMPLE-tokenwatch";

/// The subject UID attribute (0.9.2342.19200300.100.1.1): the push topic.
const UID: [u64; 7] = [0, 9, 2342, 19_200_300, 100, 1, 1];

/// Last second that X.509 (GeneralizedTime, four-digit years) can hold.
const LAST_X509_SECOND: i64 = 253_402_300_799;

/// A sample push certificate as [`sample_apns`] wrote it.
#[derive(Debug, Clone)]
pub struct ApnsSample {
    /// The certificate alone, PEM, trailing newline; no private key.
    pub pem: String,
    /// The same certificate, DER (for a `.cer` file).
    pub der: Vec<u8>,
    /// `com.apple.mgmt.External.<random UUID>`.
    pub topic: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("the sample's dates would fall outside the years 1970 to 9999")]
    OutOfRange,
    #[error("cannot make the sample certificate: {0}")]
    Certificate(String),
}

/// A realistic, clearly fake push certificate: self-signed (ECDSA P-256,
/// a fresh key that is thrown away), subject
/// `UID=com.apple.mgmt.External.<uuid>, CN=APSP:SAMPLE-tokenwatch-<uuid>,
/// O=<org>, C=US`, valid from a day before `now` (or before the expiry,
/// when that is earlier: `days` may be negative for an expired sample)
/// until `now` + `days` days, to the second.
pub fn sample_apns(now: DateTime<Utc>, days: i64, org: &str) -> Result<ApnsSample, SampleError> {
    let now = now.with_timezone(&Utc);
    let not_after = TimeDelta::try_days(days)
        .and_then(|d| now.checked_add_signed(d))
        .ok_or(SampleError::OutOfRange)?;
    let not_before = now
        .min(not_after)
        .checked_sub_signed(Duration::days(1))
        .ok_or(SampleError::OutOfRange)?;

    let uuid = random_uuid();
    let topic = format!("{}.External.{uuid}", super::TOPIC_PREFIX);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CustomDnType(UID.to_vec()), topic.as_str());
    dn.push(
        DnType::CommonName,
        format!("APSP:{SAMPLE_CN_MARKER}-{uuid}"),
    );
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CountryName, "US");

    // rcgen takes `time::OffsetDateTime`: built from its epoch plus a std
    // duration, so that tokenwatch needs no second date crate. A closure,
    // because only inference can name that type here.
    let x509_time = |at: DateTime<Utc>| {
        let secs = at.timestamp();
        if !(0..=LAST_X509_SECOND).contains(&secs) {
            return Err(SampleError::OutOfRange);
        }
        // In range by the check above, so the addition cannot overflow.
        Ok(rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(secs.unsigned_abs()))
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.not_before = x509_time(not_before)?;
    params.not_after = x509_time(not_after)?;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];

    let failed = |e: rcgen::Error| SampleError::Certificate(e.to_string());
    let key = KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok(ApnsSample {
        pem: cert.pem(),
        der: cert.der().to_vec(),
        topic,
    })
}

/// A version 4 UUID, lower case, as Apple writes topics.
fn random_uuid() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Eight random bytes, positive and without a leading zero byte, like the
/// serials Apple's CA writes.
fn random_serial() -> [u8; 8] {
    let mut serial = [0u8; 8];
    rand::rng().fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x7F) | 0x10;
    serial
}
