//! Any bytes into the push-certificate reader, through the kind seam as a
//! scan calls it: it must return a credential or an error, never panic,
//! hang or allocate without bound (libFuzzer's `-timeout`, `-rss_limit_mb`
//! and `-malloc_limit_mb` catch the last two).
//!
//! Each input is read twice: as the file itself, and Base64-encoded in a
//! `CERTIFICATE` block, so mutations of the DER also reach the certificate
//! parser behind the PEM layer (a mutated PEM text rarely stays PEM).
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tokenwatch::token::apns::{MAX_APNS_FILE_BYTES, TOPIC_PREFIX};
use tokenwatch::token::{kind, Fingerprint, KindId, Source};

fuzz_target!(|bytes: &[u8]| {
    check(bytes);
    if bytes.len() <= MAX_APNS_FILE_BYTES / 2 {
        let mut pem = b"-----BEGIN CERTIFICATE-----\n".to_vec();
        for line in STANDARD.encode(bytes).as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
        check(&pem);
    }
});

fn check(bytes: &[u8]) {
    let (fingerprint, result) = kind(KindId::Apns).read(Source {
        name: b"push.pem",
        bytes,
        key: None,
    });
    match result {
        Ok(credential) => {
            // What a readable push certificate promises the rest of
            // tokenwatch.
            assert_eq!(credential.kind, KindId::Apns);
            assert_eq!(credential.fingerprint, fingerprint);
            assert!(credential.created_at <= credential.expires_at);
            assert!(bytes.len() <= MAX_APNS_FILE_BYTES);
            let details = credential
                .details()
                .expect("push certificates have details");
            let topic = details
                .topic
                .as_deref()
                .expect("a push certificate has a topic");
            assert!(topic.starts_with(TOPIC_PREFIX));
            assert_eq!(details.issued_at, Some(credential.created_at));
            let _ = format!("{credential:?}");
        }
        Err(err) => {
            // Files that do not read are hashed as every other kind's.
            assert_eq!(fingerprint, Fingerprint::of(bytes));
            // A message is built for every unreadable file: it must not
            // panic either, and stays one short line.
            let message = err.to_string();
            assert!(
                message.len() < 1024,
                "error message of {} bytes",
                message.len()
            );
            assert!(!message.contains('\n'), "multi-line error message");
        }
    }
}
