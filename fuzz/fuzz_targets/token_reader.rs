//! Any bytes into the token reader: it must return a token or an error,
//! never panic, hang or allocate without bound (libFuzzer's `-timeout`,
//! `-rss_limit_mb` and `-malloc_limit_mb` catch the last two).
//!
//! Each input is read twice: as the file itself, and Base64-encoded as
//! Apple writes it, so mutations of the JSON also reach the reader behind
//! the Base64 layer (a mutated Base64 text rarely stays Base64).
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tokenwatch::token::{self, Fingerprint};

fuzz_target!(|bytes: &[u8]| {
    check(bytes);
    if bytes.len() <= token::MAX_TOKEN_FILE_BYTES / 4 * 3 {
        check(STANDARD.encode(bytes).as_bytes());
    }
});

fn check(bytes: &[u8]) {
    let (fingerprint, result) = token::parse_with_fingerprint(bytes);
    // The scanner relies on this: one hash per file, equal to the slow path.
    assert_eq!(fingerprint, Fingerprint::of(bytes));
    // Asking Apple reads the file again for its bearer: same token.
    let again = token::parse_with_bearer(bytes);
    assert_eq!(again.as_ref().ok().map(|(c, _)| c), result.as_ref().ok());
    match result {
        Ok(content) => {
            // What a readable token promises the rest of tokenwatch.
            assert_eq!(content.fingerprint, fingerprint);
            assert!(content.created_at <= content.expires_at);
            assert!(bytes.len() <= token::MAX_TOKEN_FILE_BYTES);
            let _ = format!("{content:?}");
        }
        Err(err) => {
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
