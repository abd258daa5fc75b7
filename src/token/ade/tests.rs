use chrono::{DateTime, Duration, Utc};

use super::*;

/// The fixtures of `tests/fixtures/ade/make.sh`.
const TOKEN_NAME: &str = "Example MDM_Token_2026-03-14T09-26-53Z_smime.p7m";
const TOKEN: &[u8] =
    include_bytes!("../../../tests/fixtures/ade/Example MDM_Token_2026-03-14T09-26-53Z_smime.p7m");
const RENAMED_NAME: &str = "renamed-server-token.p7m";
const RENAMED: &[u8] = include_bytes!("../../../tests/fixtures/ade/renamed-server-token.p7m");
const GARBAGE_NAME: &str = "Garbage MDM_Token_2026-03-14T09-26-53Z_smime.p7m";
const GARBAGE: &[u8] =
    include_bytes!("../../../tests/fixtures/ade/Garbage MDM_Token_2026-03-14T09-26-53Z_smime.p7m");
const MDM_KEY: &[u8] = include_bytes!("../../../tests/fixtures/ade/mdm-key.pem");
const OTHER_KEY: &[u8] = include_bytes!("../../../tests/fixtures/ade/other-key.pem");

/// Every secret value in the fixtures' JSON (see make.sh).
const SECRETS: [&str; 4] = [
    "CK_3f9a1c5e7b2d4f6081a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1",
    "CS_8e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0e2b4d6f",
    "AT_Op3nSesameX7kQ9vL2mR5tW8yB1nD4gH6jK0pS3uV6xZ9cF2hJ5lN8qT1wY4aE7iO0rU3sX6zC9bG2",
    "AS_5c7e9a1b3d5f7092e4c6a8b0d2f4e6c8a0b2d4f6e8c0a2b4d6f8e0c2a4b6d8f0e2c4a6",
];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn key(pem: &[u8]) -> AdeKey {
    AdeKey::from_pem(pem).unwrap()
}

fn read_as(name: &str, bytes: &[u8], key: Option<&AdeKey>) -> Result<Credential, TokenError> {
    let (fingerprint, result) = Ade.read(Source {
        name: name.as_bytes(),
        bytes,
        key,
    });
    assert_eq!(fingerprint, Fingerprint::of(bytes));
    if let Ok(c) = &result {
        assert_eq!(c.fingerprint, fingerprint);
    }
    result
}

fn details(c: &Credential) -> &Details {
    c.details().expect("ADE credentials have details")
}

#[test]
fn apples_file_name_gives_server_and_download_time() {
    let n = parse_file_name(TOKEN_NAME.as_bytes());
    assert_eq!(n.server.as_deref(), Some("Example MDM"));
    assert_eq!(n.downloaded_at, Some(at("2026-03-14T09:26:53Z")));
}

#[test]
fn file_names_people_and_browsers_make() {
    let parse = |s: &str| {
        let n = parse_file_name(s.as_bytes());
        (n.server, n.downloaded_at.map(|t| t.to_rfc3339()))
    };
    let stamp = Some("2022-07-01T22:18:53+00:00".to_owned());
    assert_eq!(
        parse("Acme_Berlin_Token_2022-07-01T22-18-53Z_smime (1).p7m"),
        (Some("Acme_Berlin".into()), stamp.clone())
    );
    assert_eq!(
        parse("X_Token_Y_Token_2022-07-01T22-18-53Z_smime.P7M"),
        (Some("X_Token_Y".into()), stamp.clone())
    );
    assert_eq!(
        parse("_Token_2022-07-01T22-18-53Z_smime.p7m"),
        (None, stamp.clone())
    );
    assert_eq!(
        parse("Evil\nServer_Token_2022-07-01T22-18-53Z_smime.p7m"),
        (Some("EvilServer".into()), stamp)
    );
    assert_eq!(parse("server-token.p7m"), (None, None));
    assert_eq!(
        parse("A_Token_2022-13-01T22-18-53Z_smime.p7m"),
        (None, None)
    );
    assert_eq!(
        parse("A_Token_2022-07-01T22-18-53Z7_smime.p7m"),
        (None, None)
    );
    assert_eq!(
        parse("A_Token_2022-07-01T22:18:53Z_smime.p7m"),
        (None, None)
    );
    assert_eq!(parse("A_Token_+2022-07-01T22-18-53Z.p7m"), (None, None));
    assert_eq!(parse("\u{00e9}_Token_2022-07"), (None, None));
}

#[test]
fn with_the_right_key_the_expiry_and_identity_are_read_from_inside() {
    let key = key(MDM_KEY);
    let c = read_as(TOKEN_NAME, TOKEN, Some(&key)).unwrap();
    assert_eq!(c.kind, KindId::Ade);
    assert_eq!(c.expires_at, at("2027-03-13T21:00:07Z"));
    assert_eq!(c.created_at, at("2026-03-14T09:26:53Z"));
    assert_eq!(c.org_name, "Example MDM");
    assert!(c.variants.is_empty());
    assert!(!c.sample);
    let d = details(&c);
    assert!(!d.expiry_estimated);
    assert_eq!(d.server.as_deref(), Some("Example MDM"));
    assert_eq!(d.identity_prefix.as_deref(), Some("CK_3f9a1"));
}

#[test]
fn without_a_key_the_expiry_is_the_download_time_plus_a_year() {
    let c = read_as(TOKEN_NAME, TOKEN, None).unwrap();
    assert_eq!(c.expires_at, at("2027-03-14T09:26:53Z"));
    assert_eq!(c.created_at, at("2026-03-14T09:26:53Z"));
    assert_eq!(c.org_name, "Example MDM");
    assert!(c.variants.is_empty());
    let d = details(&c);
    assert!(d.expiry_estimated);
    assert_eq!(d.server.as_deref(), Some("Example MDM"));
    assert_eq!(d.identity_prefix, None);
}

#[test]
fn a_wrong_key_estimates_the_expiry_and_warns() {
    let key = key(OTHER_KEY);
    let c = read_as(TOKEN_NAME, TOKEN, Some(&key)).unwrap();
    assert_eq!(c.expires_at, at("2027-03-14T09:26:53Z"));
    assert!(details(&c).expiry_estimated);
    assert_eq!(details(&c).identity_prefix, None);
    assert_eq!(c.variants, vec![Variant::AdeKeyMismatch]);
    assert!(Variant::AdeKeyMismatch.is_warning());
    assert_eq!(Variant::AdeKeyMismatch.name(), "ade_key_mismatch");
    let text = Variant::AdeKeyMismatch.describe();
    assert!(text.contains("ade_key does not decrypt"), "{text}");
    assert!(text.contains("estimated from the file name"), "{text}");
}

#[test]
fn a_renamed_token_without_a_key_has_no_known_expiry() {
    let err = read_as(RENAMED_NAME, RENAMED, None).unwrap_err();
    assert_eq!(
        err,
        TokenError::Ade(AdeProblem::ExpiryUnknown { key_failed: false })
    );
    assert_eq!(err.to_string(), "ade_expiry_unknown");
    let hint = AdeProblem::ExpiryUnknown { key_failed: false }
        .hint()
        .unwrap();
    assert!(
        hint.contains("ade_key") && hint.contains("file name"),
        "{hint}"
    );
}

#[test]
fn a_renamed_token_with_a_wrong_key_has_no_known_expiry_and_says_why() {
    let err = read_as(RENAMED_NAME, RENAMED, Some(&key(OTHER_KEY))).unwrap_err();
    assert_eq!(
        err,
        TokenError::Ade(AdeProblem::ExpiryUnknown { key_failed: true })
    );
    assert_eq!(err.to_string(), "ade_expiry_unknown");
    let hint = AdeProblem::ExpiryUnknown { key_failed: true }
        .hint()
        .unwrap();
    assert!(hint.contains("does not decrypt"), "{hint}");
}

#[test]
fn a_renamed_token_with_the_key_is_read_and_dated_a_year_before_expiry() {
    let c = read_as(RENAMED_NAME, RENAMED, Some(&key(MDM_KEY))).unwrap();
    assert_eq!(c.expires_at, at("2027-03-13T21:00:07Z"));
    assert_eq!(c.created_at, at("2026-03-13T21:00:07Z"));
    assert_eq!(c.org_name, "");
    assert_eq!(details(&c).server, None);
    assert!(!details(&c).expiry_estimated);
    assert_eq!(details(&c).identity_prefix.as_deref(), Some("CK_3f9a1"));
}

#[test]
fn garbage_under_apples_name_is_not_enveloped_data() {
    for key in [None, Some(&key(MDM_KEY))] {
        let err = read_as(GARBAGE_NAME, GARBAGE, key).unwrap_err();
        assert_eq!(err, TokenError::Ade(AdeProblem::NotEnvelopedData));
        assert_eq!(
            err.to_string(),
            "file is not S/MIME enveloped data (an ADE server token .p7m)"
        );
    }
    assert_eq!(
        read_as(TOKEN_NAME, b"", None).unwrap_err(),
        TokenError::Empty
    );
    assert_eq!(
        read_as(TOKEN_NAME, b" \n\t", None).unwrap_err(),
        TokenError::Empty
    );
    for fill in [b'A', b' '] {
        let big = vec![fill; MAX_ADE_FILE_BYTES + 1];
        assert_eq!(
            read_as(TOKEN_NAME, &big, None).unwrap_err(),
            TokenError::Ade(AdeProblem::TooLarge)
        );
    }
}

/// Found by fuzzing: OpenSSL quotes a bad MIME header in its error text,
/// and the openssl crate panicked turning text that is not UTF-8 into a
/// Rust string.
#[test]
fn a_mime_header_that_is_not_utf8_is_an_error_not_a_panic() {
    let bytes = b"Content-Type: tex\x95\xd0\x8f\x93;charset=UTF-8\r\n\r\nMIAGCSqGSIb3DQEHA6CA\n";
    for k in [None, Some(&key(MDM_KEY))] {
        assert_eq!(
            read_as(TOKEN_NAME, bytes, k).unwrap_err(),
            TokenError::Ade(AdeProblem::NotEnvelopedData)
        );
    }
    let mut pem = b"Bag Attributes\n    friendlyName: \xff\xfe MDM\n".to_vec();
    pem.extend_from_slice(MDM_KEY);
    let c = read_as(TOKEN_NAME, TOKEN, Some(&key(&pem))).unwrap();
    assert!(!details(&c).expiry_estimated);
    assert_eq!(
        AdeKey::from_pem(b"-----BEGIN \xff\xfe-----\n").unwrap_err(),
        AdeKeyError::NoPrivateKey
    );
}

#[test]
fn the_bare_ber_body_reads_as_well_as_the_smime_message() {
    let text = std::str::from_utf8(TOKEN).unwrap();
    let body: String = text
        .split("\n\n")
        .nth(1)
        .unwrap()
        .split_ascii_whitespace()
        .collect();
    let ber = STANDARD.decode(body).unwrap();
    assert!(ber.starts_with(&[0x30, 0x80, 0x06, 0x09]));
    let c = read_as(TOKEN_NAME, &ber, Some(&key(MDM_KEY))).unwrap();
    assert_eq!(c.expires_at, at("2027-03-13T21:00:07Z"));
}

#[test]
fn truncated_and_mangled_tokens_never_panic_and_never_pass_as_decrypted() {
    let key = key(MDM_KEY);
    // Only cuts into the message itself: trailing blank lines do not count.
    let end = TOKEN.trim_ascii_end().len();
    for len in (0..end).step_by(7) {
        for k in [None, Some(&key)] {
            if let Ok(c) = read_as(TOKEN_NAME, &TOKEN[..len], k) {
                assert!(
                    details(&c).expiry_estimated,
                    "decrypted at {len} of {}",
                    TOKEN.len()
                );
            }
        }
    }
    let mut flipped = TOKEN.to_vec();
    let n = flipped.len();
    flipped[n - 100] ^= 0x01;
    let _ = read_as(TOKEN_NAME, &flipped, Some(&key));
}

#[test]
fn key_files_that_cannot_be_used_say_why() {
    let text = std::str::from_utf8(MDM_KEY).unwrap();
    let split = text.find("-----BEGIN CERTIFICATE-----").unwrap();
    let (key_only, cert_only) = text.split_at(split);
    let other = std::str::from_utf8(OTHER_KEY).unwrap();
    let other_cert = &other[other.find("-----BEGIN CERTIFICATE-----").unwrap()..];
    let err = |s: &str| AdeKey::from_pem(s.as_bytes()).unwrap_err();
    assert_eq!(err(""), AdeKeyError::NoPrivateKey);
    assert_eq!(err(cert_only), AdeKeyError::NoPrivateKey);
    assert_eq!(err(key_only), AdeKeyError::NoCertificate);
    assert_eq!(
        err(&format!("{key_only}{other_cert}")),
        AdeKeyError::KeyMismatch
    );
    assert_eq!(
        err("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQww\n-----END ENCRYPTED PRIVATE KEY-----\n"),
        AdeKeyError::EncryptedKey
    );
    // Certificate first, and a further certificate of another key.
    let reordered = format!("{other_cert}{cert_only}{key_only}");
    let c = read_as(TOKEN_NAME, TOKEN, Some(&key(reordered.as_bytes()))).unwrap();
    assert!(!details(&c).expiry_estimated);
}

/// The canary: no secret of the token and nothing of the key shows in
/// anything a read or a key error can print.
#[test]
fn no_secret_or_key_material_reaches_debug_or_display() {
    let mdm = key(MDM_KEY);
    let other = key(OTHER_KEY);
    let mut shown = vec![format!("{mdm:?}"), format!("{other:?}")];
    for (name, bytes) in [
        (TOKEN_NAME, TOKEN),
        (RENAMED_NAME, RENAMED),
        (GARBAGE_NAME, GARBAGE),
    ] {
        for k in [None, Some(&mdm), Some(&other)] {
            let (fp, result) = Ade.read(Source {
                name: name.as_bytes(),
                bytes,
                key: k,
            });
            shown.push(format!("{fp:?} {fp}"));
            match result {
                Ok(c) => shown.push(format!("{c:?}")),
                Err(e) => shown.push(format!("{e:?} {e} {:?}", Ade.unreadable_advice())),
            }
        }
    }
    let text = std::str::from_utf8(MDM_KEY).unwrap();
    let key_half = text.find("-----BEGIN CERTIFICATE-----").unwrap();
    for bad in [&text[..key_half], "", "garbage"] {
        let e = AdeKey::from_pem(bad.as_bytes()).unwrap_err();
        shown.push(format!("{e:?} {e}"));
    }
    let shown = shown.join("\n");
    assert!(shown.contains("CK_3f9a1"), "the prefix is shown on purpose");
    for secret in SECRETS {
        // Any 16 characters past the shown prefix would be a leak.
        for w in secret.as_bytes()[8..].windows(16) {
            let w = std::str::from_utf8(w).unwrap();
            assert!(!shown.contains(w), "{w} of a secret shows");
        }
    }
    for pem in [MDM_KEY, OTHER_KEY] {
        for line in std::str::from_utf8(pem).unwrap().lines() {
            if !line.starts_with("-----") {
                assert!(!shown.contains(line), "key line {line} shows");
            }
        }
    }
}

#[test]
fn the_reader_reads_what_the_sample_writer_writes() {
    let now = at("2026-12-01T06:30:15.250Z");
    let s = sample_ade(now, 30).unwrap();
    let expires = at("2026-12-31T06:30:15Z");
    assert_eq!(
        s.file_name,
        "SAMPLE-tokenwatch-MDM_Token_2025-12-31T06-30-15Z_smime.p7m"
    );
    assert!(Ade.claims(s.file_name.as_bytes()));
    let text = std::str::from_utf8(&s.p7m).unwrap();
    assert!(text.contains("smime-type=enveloped-data"));
    assert!(
        text.contains("\n\nMIAGCSqGSIb3DQEHA6CA"),
        "BER, indefinite lengths"
    );
    assert_eq!(format!("{s:?}").matches("PRIVATE").count(), 0);

    let key = AdeKey::from_pem(s.key_pem.expose().as_bytes()).unwrap();
    let c = read_as(&s.file_name, &s.p7m, Some(&key)).unwrap();
    assert_eq!(c.expires_at, expires);
    assert_eq!(c.created_at, at("2025-12-31T06:30:15Z"));
    assert!(c.sample);
    assert!(!details(&c).expiry_estimated);
    assert_eq!(details(&c).identity_prefix.as_deref(), Some("CK_SAMPL"));
    assert_eq!(c.org_name, SAMPLE_SERVER);

    // Without the key the estimate agrees, and the name still says sample.
    let c = read_as(&s.file_name, &s.p7m, None).unwrap();
    assert_eq!(c.expires_at, expires);
    assert!(c.sample && details(&c).expiry_estimated);

    // Renamed, the decrypted consumer key still says sample.
    let c = read_as("renamed.p7m", &s.p7m, Some(&key)).unwrap();
    assert!(c.sample);
    // Another sample's key does not open it.
    let other = sample_ade(now, -3).unwrap();
    let other_key = AdeKey::from_pem(other.key_pem.expose().as_bytes()).unwrap();
    let c = read_as(&s.file_name, &s.p7m, Some(&other_key)).unwrap();
    assert_eq!(c.variants, vec![Variant::AdeKeyMismatch]);
    let c = read_as(&other.file_name, &other.p7m, Some(&other_key)).unwrap();
    assert_eq!(
        c.expires_at,
        now - Duration::days(3) - Duration::milliseconds(250)
    );
    // The fixtures' key does not open samples; real tokens are never samples.
    assert!(!read_as(TOKEN_NAME, TOKEN, None).unwrap().sample);
}

#[test]
fn samples_out_of_range_are_refused() {
    let now = at("2026-12-01T06:30:15Z");
    assert_eq!(
        sample_ade(now, 4_000_000).unwrap_err(),
        AdeSampleError::OutOfRange
    );
    assert_eq!(
        sample_ade(now, i64::MAX).unwrap_err(),
        AdeSampleError::OutOfRange
    );
}

#[test]
fn the_kind_facts() {
    assert_eq!(
        Ade.rules(),
        Rules {
            account_password_change: false,
            apple_verification: false
        }
    );
    assert_eq!(Ade.noun(), "ADE server token");
    let advice = Ade.renewal_advice().join(" ");
    assert!(advice.contains("Apple Business"));
    assert!(advice.contains("Preferences"));
    assert!(advice.contains("Download Token"));
    assert!(advice.contains("Upload the new token to your MDM"));
    assert!(Ade.unreadable_advice().contains("ade_key"));
    assert!(Ade.claims(b"x.P7m"));
    assert!(!Ade.claims(b".p7m"));
    assert!(!Ade.claims(b"x.p7m.bak"));
}
