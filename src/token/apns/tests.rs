//! The fixtures are made by `tests/fixtures/apns/make.sh`; the facts
//! asserted here are those that script sets.

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::token::{kind, Variant};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../../tests/fixtures/apns/", $name)).as_slice()
    };
}

const PUSH_PEM: &[u8] = fixture!("push.pem");
const PUSH_DER: &[u8] = fixture!("push.cer");
const PUSH_WITH_KEY: &[u8] = fixture!("push_with_key.pem");
const CHAIN: &[u8] = fixture!("chain.pem");
const EXPIRED: &[u8] = fixture!("expired.pem");
const NOT_APPLE: &[u8] = fixture!("not_apple.crt");
const KEY_ONLY: &[u8] = fixture!("key_only.pem");
const GARBAGE: &[u8] = fixture!("garbage.pem");
const TRUNCATED: &[u8] = fixture!("truncated.pem");

/// `sha256sum push.cer`
const PUSH_FINGERPRINT: &str = "330d27e2176bbe1b980041b8c2c9859de0da0a296e6e1d3fdb25a262cf6f5b2a";
const PUSH_TOPIC: &str = "com.apple.mgmt.External.6f1b3c2a-8d4e-4f5a-9b6c-7d8e9f0a1b2c";
const FAKE_CA: &str = "FAKE Apple Application Integration 2 Certification Authority";

fn utc(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
}

/// Through the seam, as a scan reads a file.
fn scan(name: &str, bytes: &[u8]) -> (Fingerprint, Result<Credential, TokenError>) {
    kind(KindId::Apns).read(Source {
        name: name.as_bytes(),
        bytes,
        key: None,
    })
}

fn push_credential(has_private_key: bool) -> Credential {
    Credential {
        kind: KindId::Apns,
        org_name: "Example School District".into(),
        expires_at: utc(2027, 1, 15, 12),
        created_at: utc(2026, 1, 15, 12),
        fingerprint: Fingerprint::from_hex(PUSH_FINGERPRINT).unwrap(),
        variants: Vec::<Variant>::new(),
        sample: false,
        details: Some(Box::new(Details {
            issued_at: Some(utc(2026, 1, 15, 12)),
            topic: Some(PUSH_TOPIC.into()),
            serial: Some("5a1b2c3d4e5f6071".into()),
            subject_cn: Some("APSP:6f1b3c2a-8d4e-4f5a-9b6c-7d8e9f0a1b2c".into()),
            issuer_cn: Some(FAKE_CA.into()),
            has_private_key,
            ..Details::default()
        })),
    }
}

#[test]
fn a_pem_push_certificate_reads_with_every_fact() {
    let (fingerprint, result) = scan("push.pem", PUSH_PEM);
    assert_eq!(result.unwrap(), push_credential(false));
    assert_eq!(fingerprint.as_str(), PUSH_FINGERPRINT);
}

#[test]
fn the_same_certificate_as_der_is_the_same_credential() {
    let (fingerprint, result) = scan("push.cer", PUSH_DER);
    assert_eq!(result.unwrap(), push_credential(false));
    assert_eq!(fingerprint, scan("push.pem", PUSH_PEM).0);
}

#[test]
fn the_fingerprint_is_the_sha256_of_the_der_certificate() {
    assert_eq!(Fingerprint::sha256(PUSH_DER).as_str(), PUSH_FINGERPRINT);
    // Not the file hash the other kinds use.
    assert_ne!(Fingerprint::of(PUSH_PEM).as_str(), PUSH_FINGERPRINT);
}

#[test]
fn a_private_key_is_detected_and_nothing_of_it_is_kept() {
    let (fingerprint, result) = scan("push_with_key.pem", PUSH_WITH_KEY);
    let credential = result.unwrap();
    assert_eq!(credential, push_credential(true));
    // The key does not change which credential this is.
    assert_eq!(fingerprint.as_str(), PUSH_FINGERPRINT);
    let shown = format!("{credential:?} {fingerprint:?}");
    let canaries = key_lines(PUSH_WITH_KEY);
    assert!(canaries.len() > 20, "fixture has no key body");
    for line in canaries {
        assert!(!shown.contains(line), "key line {line} in {shown}");
    }
}

#[test]
fn a_key_without_a_certificate_says_so_and_shows_no_key() {
    let (fingerprint, result) = scan("key_only.pem", KEY_ONLY);
    let err = result.unwrap_err();
    assert_eq!(
        err,
        TokenError::Apns(ApnsError::NoCertificateInPem { private_key: true })
    );
    assert_eq!(
        err.to_string(),
        "PEM file holds a private key but no certificate"
    );
    assert_eq!(fingerprint, Fingerprint::of(KEY_ONLY));
    let shown = format!("{err:?} {err}");
    for line in key_lines(KEY_ONLY) {
        assert!(!shown.contains(line));
    }
}

/// The Base64 lines of every private key block in a PEM file.
fn key_lines(pem: &[u8]) -> Vec<&str> {
    let text = std::str::from_utf8(pem).unwrap();
    let mut inside = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.starts_with("-----BEGIN") {
            inside = line.contains("PRIVATE KEY");
        } else if line.starts_with("-----END") {
            inside = false;
        } else if inside {
            lines.push(line);
        }
    }
    lines
}

#[test]
fn a_certificate_that_is_not_for_push_names_its_subject() {
    let (fingerprint, result) = scan("not_apple.crt", NOT_APPLE);
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate \"CN=www.example.org, O=Example Ltd, C=GB\" is not an APNs push \
         certificate (its subject has no UID starting with com.apple.mgmt)"
    );
    assert_eq!(fingerprint, Fingerprint::of(NOT_APPLE));
}

#[test]
fn an_expired_push_certificate_reads_with_its_dates() {
    let credential = scan("expired.pem", EXPIRED).1.unwrap();
    assert_eq!(credential.expires_at, utc(2021, 3, 1, 8));
    assert_eq!(credential.created_at, utc(2020, 3, 1, 8));
    assert_eq!(credential.org_name, "");
    let details = credential.details().unwrap();
    assert_eq!(details.issued_at, Some(utc(2020, 3, 1, 8)));
    assert_eq!(
        details.topic.as_deref(),
        Some("com.apple.mgmt.External.0e0d0c0b-0a09-4807-8605-040302010000")
    );
    assert_eq!(details.serial.as_deref(), Some("0abcdef0"));
    assert!(!details.has_private_key);
    assert_eq!(
        credential.fingerprint.as_str(),
        "813c2d45bf374c643559698afd5c9916f4178df09a685b0a5d97f878a0bb273e"
    );
}

#[test]
fn in_a_chain_the_push_certificate_is_found_after_its_issuer() {
    assert_eq!(scan("chain.pem", CHAIN).1.unwrap(), push_credential(false));
}

#[test]
fn text_that_is_no_certificate_is_rejected() {
    let (fingerprint, result) = scan("garbage.pem", GARBAGE);
    let err = result.unwrap_err();
    assert_eq!(err, TokenError::Apns(ApnsError::NotCertificate));
    assert_eq!(
        err.to_string(),
        "file is neither a PEM certificate (-----BEGIN CERTIFICATE-----) nor a DER certificate"
    );
    assert_eq!(fingerprint, Fingerprint::of(GARBAGE));
}

#[test]
fn a_truncated_pem_says_it_is_cut_short() {
    assert_eq!(
        read(TRUNCATED),
        Err(ApnsError::BadCertificate {
            problem: CertProblem::PemCut
        })
    );
    // END line there, Base64 cut.
    let mut cut = PUSH_PEM[..600].to_vec();
    cut.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
    assert!(matches!(read(&cut), Err(ApnsError::BadCertificate { .. })));
}

#[test]
fn binary_that_is_no_certificate_is_a_der_error() {
    assert_eq!(
        read(&PUSH_DER[..500]),
        Err(ApnsError::BadCertificate {
            problem: CertProblem::DerNotX509
        })
    );
    assert_eq!(read(b"\x30\x03\x02\x01\x00"), read(&PUSH_DER[..10]));
    assert_eq!(read(b"\x00\x01\x02"), Err(ApnsError::NotCertificate));
}

#[test]
fn empty_and_oversized_files_are_rejected() {
    assert_eq!(read(b""), Err(ApnsError::Empty));
    assert_eq!(read(b" \r\n\t"), Err(ApnsError::Empty));
    assert_eq!(read(b"\xEF\xBB\xBF\n"), Err(ApnsError::Empty));
    let mut big = PUSH_PEM.to_vec();
    big.resize(MAX_APNS_FILE_BYTES + 1, b'\n');
    assert_eq!(read(&big), Err(ApnsError::TooLarge));
    big.truncate(MAX_APNS_FILE_BYTES);
    assert!(read(&big).is_ok());
}

#[test]
fn an_impossible_date_is_a_date_error() {
    // notAfter is UTCTime "270115120000Z"; month 13 keeps the length.
    let mut der = PUSH_DER.to_vec();
    let at = crate::token::vpp::find(&der, b"270115120000Z").unwrap();
    der[at + 2..at + 4].copy_from_slice(b"13");
    let err = read(&der).unwrap_err();
    assert_eq!(
        err,
        ApnsError::BadDates {
            problem: DateProblem::Invalid
        }
    );
    assert_eq!(
        err.to_string(),
        "certificate dates cannot be read: notBefore or notAfter is not a valid date"
    );
}

#[test]
fn reversed_dates_are_a_date_error() {
    // notAfter 2027 -> 2025, before notBefore (2026).
    let mut der = PUSH_DER.to_vec();
    let at = crate::token::vpp::find(&der, b"270115120000Z").unwrap();
    der[at..at + 2].copy_from_slice(b"25");
    assert_eq!(
        read(&der),
        Err(ApnsError::BadDates {
            problem: DateProblem::Reversed
        })
    );
}

#[test]
fn pem_with_bom_crlf_and_text_around_reads() {
    let mut text = b"\xEF\xBB\xBFsubject=whatever\r\n".to_vec();
    for line in PUSH_PEM.split(|&b| b == b'\n') {
        text.extend_from_slice(line);
        text.extend_from_slice(b"\r\n");
    }
    text.extend_from_slice(b"trailing notes\r\n");
    assert_eq!(read(&text), Ok(push_credential(false)));
}

#[test]
fn a_subject_is_shown_on_one_short_line() {
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        format!("two\nlines{}", "x".repeat(500)),
    );
    params.distinguished_name = dn;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let message = read(cert.der()).unwrap_err().to_string();
    assert!(
        message.starts_with("certificate \"CN=two\\nlinesxxx"),
        "{message}"
    );
    assert!(message.contains("xxx…\" is not an APNs push certificate"));
    assert!(!message.contains('\n'));
    assert!(message.chars().count() < 320);
}

#[test]
fn a_subject_with_a_bidi_override_is_escaped() {
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "evil\u{202E}gpj.exe");
    params.distinguished_name = dn;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let message = read(cert.der()).unwrap_err().to_string();
    assert!(
        message.starts_with("certificate \"CN=evil\\u{202e}gpj.exe\""),
        "{message}"
    );
}

#[test]
fn the_kind_claims_certificate_names_in_any_case() {
    for name in ["push.pem", "PUSH.PEM", "a.crt", "MDM Push.Cer"] {
        assert!(Apns.claims(name.as_bytes()), "{name}");
    }
    for name in [".pem", "push.p12", "push.pem~", "a.vpptoken", "token.p7m"] {
        assert!(!Apns.claims(name.as_bytes()), "{name}");
    }
}

#[test]
fn the_kind_says_how_to_renew_with_the_same_account() {
    assert_eq!(Apns.noun(), "APNs push certificate");
    let advice = Apns.renewal_advice().join("\n");
    assert!(advice.contains("https://identity.apple.com"));
    assert!(advice.contains("same Apple Account that created"));
    assert!(advice.contains("enrol again"));
    assert!(Apns.unreadable_advice().contains("tokenwatch inspect FILE"));
    assert_eq!(
        Apns.rules(),
        Rules {
            account_password_change: false,
            apple_verification: false
        }
    );
    assert_eq!(Apns.max_bytes(), 256 * 1024);
}

#[test]
fn the_reader_reads_what_the_sample_writer_writes() {
    let now = utc(2026, 12, 1, 6) + chrono::Duration::milliseconds(1500);
    let sample = sample_apns(now, 30, "Sample Org").unwrap();
    let credential = read(sample.pem.as_bytes()).unwrap();
    assert!(credential.sample);
    assert_eq!(credential.org_name, "Sample Org");
    // Whole seconds: what a certificate can hold.
    assert_eq!(
        credential.expires_at,
        utc(2026, 12, 31, 6) + chrono::Duration::seconds(1)
    );
    assert_eq!(
        credential.created_at,
        utc(2026, 11, 30, 6) + chrono::Duration::seconds(1)
    );
    let details = credential.details().unwrap();
    assert_eq!(details.topic.as_deref(), Some(sample.topic.as_str()));
    assert!(sample.topic.starts_with("com.apple.mgmt.External."));
    assert_eq!(sample.topic.len(), "com.apple.mgmt.External.".len() + 36);
    let cn = details.subject_cn.as_deref().unwrap();
    assert!(cn.starts_with("APSP:SAMPLE-tokenwatch-"), "{cn}");
    assert_eq!(details.issuer_cn.as_deref(), Some(cn));
    assert!(!details.has_private_key);
    assert!(!sample.pem.contains("PRIVATE KEY"));
    // The DER is the same certificate.
    assert_eq!(read(&sample.der), Ok(credential.clone()));
    assert_eq!(credential.fingerprint, Fingerprint::sha256(&sample.der));
    // Each sample is another certificate.
    let other = sample_apns(now, 30, "Sample Org").unwrap();
    assert_ne!(other.topic, sample.topic);
}

#[test]
fn an_expired_sample_is_valid_for_a_day_before_its_expiry() {
    let now = utc(2026, 12, 1, 6);
    let credential = read(sample_apns(now, -3, "Sample Org").unwrap().pem.as_bytes()).unwrap();
    assert_eq!(credential.expires_at, utc(2026, 11, 28, 6));
    assert_eq!(credential.created_at, utc(2026, 11, 27, 6));
}

#[test]
fn a_sample_beyond_what_x509_can_hold_is_refused() {
    let now = utc(2026, 12, 1, 6);
    assert_eq!(
        sample_apns(now, 3_000_000, "x").unwrap_err(),
        SampleError::OutOfRange
    );
    assert_eq!(
        sample_apns(now, i64::MAX, "x").unwrap_err(),
        SampleError::OutOfRange
    );
    assert_eq!(
        sample_apns(now, -30_000, "x").unwrap_err(),
        SampleError::OutOfRange
    );
}

#[test]
fn a_real_looking_cn_is_not_a_sample() {
    assert!(!scan("push.pem", PUSH_PEM).1.unwrap().sample);
}
