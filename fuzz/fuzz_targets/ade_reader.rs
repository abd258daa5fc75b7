//! Any bytes into the ADE server token reader, without a key and with the
//! fixtures' key (tests/fixtures/ade/mdm-key.pem, which the seeded tokens
//! are encrypted to): it must return facts or an error, never panic, hang
//! or allocate without bound.
//!
//! Each input is also read as decrypted content (mutated ciphertext almost
//! never decrypts, so the parser behind the decryption is fuzzed directly)
//! and as a file name.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tokenwatch::token::ade::{self, Ade, AdeKey};
use tokenwatch::token::{Fingerprint, Kind, Source, TokenError};

const APPLE_NAME: &[u8] = b"Example MDM_Token_2026-03-14T09-26-53Z_smime.p7m";

static KEY: LazyLock<AdeKey> = LazyLock::new(|| {
    AdeKey::from_pem(include_bytes!("../../tests/fixtures/ade/mdm-key.pem"))
        .expect("the fixtures' key reads")
});

fuzz_target!(|bytes: &[u8]| {
    for name in [APPLE_NAME, b"renamed.p7m"] {
        for key in [None, Some(&*KEY)] {
            let (fingerprint, result) = Ade.read(Source { name, bytes, key });
            assert_eq!(fingerprint, Fingerprint::of(bytes));
            check(
                bytes,
                result.map(|c| {
                    assert_eq!(c.fingerprint, fingerprint);
                    c
                }),
            );
        }
    }
    check(bytes, ade::read_decrypted(APPLE_NAME, bytes));
    let n = ade::parse_file_name(bytes);
    if let Some(server) = n.server {
        assert!(!server.is_empty() && !server.chars().any(char::is_control));
    }
});

fn check(bytes: &[u8], result: Result<tokenwatch::token::Credential, TokenError>) {
    match result {
        Ok(c) => {
            // What a readable token promises the rest of tokenwatch.
            assert!(bytes.len() <= ade::MAX_ADE_FILE_BYTES);
            let d = c.details().expect("ADE credentials have details");
            if let Some(prefix) = &d.identity_prefix {
                assert!(prefix.chars().count() <= ade::IDENTITY_PREFIX_CHARS);
            }
            let _ = format!("{c:?}");
        }
        Err(err) => {
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
