//! `tokenwatch inspect FILE [--json]`: what tokenwatch reads from one file,
//! redacted. Needs no config and no state.

use std::path::Path;

use serde::Serialize;

use super::{EXIT_OK, EXIT_UNKNOWN};
use crate::scan;
use crate::show::{rfc3339, show_path};
use crate::token::ade::AdeKey;
use crate::token::{self, KindId, Variant};

#[derive(Serialize)]
struct Inspection {
    path: String,
    kind: KindId,
    readable: bool,
    org_name: Option<String>,
    fingerprint: Option<String>,
    created_at: Option<String>,
    /// The creation date is derived (expiry minus one year), not read.
    created_at_derived: bool,
    expires_at: Option<String>,
    /// Push certificates: the certificate's notBefore.
    issued_at: Option<String>,
    topic: Option<String>,
    serial: Option<String>,
    has_private_key: Option<bool>,
    /// ADE server tokens: the expiry is estimated from the file name.
    expiry_estimated: Option<bool>,
    server: Option<String>,
    consumer_key_prefix: Option<String>,
    variants: Vec<VariantNote>,
    verifiable_with_apple: bool,
    sample: bool,
    world_readable: bool,
    error: Option<String>,
}

#[derive(Serialize)]
struct VariantNote {
    rule: Variant,
    warning: bool,
    description: &'static str,
}

/// The key an ADE server token is encrypted to, read like `ade_key`.
fn read_key(path: &Path) -> Result<AdeKey, String> {
    crate::secret::read_private_file(
        path,
        64 * 1024,
        "a key file holds a private key and certificate only",
    )
    .and_then(|pem| AdeKey::from_pem(&pem).map_err(|e| e.to_string()))
    .map_err(|e| format!("--key {}: {e}", path.display()))
}

pub fn run(file: &Path, key: Option<&Path>, json: bool) -> anyhow::Result<i32> {
    let key = match key.map(read_key).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("tokenwatch: {e}");
            return Ok(EXIT_UNKNOWN);
        }
    };
    let found = scan::read_one(file, key.as_ref());
    let token = found.token();
    let details = token.and_then(|t| t.details());
    let kind = found.kind;
    let report = Inspection {
        path: show_path(&found.path),
        kind,
        readable: token.is_some(),
        org_name: token.map(|t| t.org_name.clone()),
        fingerprint: found.fingerprint().map(|f| f.short().to_string()),
        created_at: token.map(|t| rfc3339(&t.created_at)),
        created_at_derived: token.is_some()
            && details.is_none_or(|d| d.issued_at.is_none())
            && kind != KindId::Ade,
        expires_at: token.map(|t| rfc3339(&t.expires_at)),
        issued_at: details.and_then(|d| d.issued_at).map(|t| rfc3339(&t)),
        topic: details.and_then(|d| d.topic.clone()),
        serial: details.and_then(|d| d.serial.clone()),
        has_private_key: (kind == KindId::Apns).then(|| details.is_some_and(|d| d.has_private_key)),
        expiry_estimated: (kind == KindId::Ade && token.is_some())
            .then(|| details.is_some_and(|d| d.expiry_estimated)),
        server: details.and_then(|d| d.server.clone()),
        consumer_key_prefix: details.and_then(|d| d.identity_prefix.clone()),
        variants: token
            .map(|t| {
                t.variants
                    .iter()
                    .map(|v| VariantNote {
                        rule: *v,
                        warning: v.is_warning(),
                        description: v.describe(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        verifiable_with_apple: token.is_some_and(|t| t.verifiable_with_apple()),
        sample: token.is_some_and(crate::token::is_sample),
        world_readable: found.world_readable,
        error: found.content.as_ref().err().map(|e| e.to_string()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("file:         {}", report.path);
        match &report.error {
            Some(e) => println!(
                "error:        cannot read {} {}: {e}",
                token::kind(kind).noun().to_lowercase(),
                report.path
            ),
            None => {
                println!("kind:         {}", token::kind(kind).noun());
                println!("organisation: {}", report.org_name.as_deref().unwrap_or(""));
                if let Some(server) = &report.server {
                    println!("server:       {server}");
                }
                if let Some(topic) = &report.topic {
                    println!("topic:        {topic}");
                }
                if let Some(serial) = &report.serial {
                    println!("serial:       {serial}");
                }
                println!(
                    "expires:      {}",
                    report.expires_at.as_deref().unwrap_or("")
                );
                if report.expiry_estimated == Some(true) {
                    println!("              (estimated: the date in Apple's file name plus one year; set ade_key or --key to read it)");
                }
                let created = report.created_at.as_deref().unwrap_or("");
                match (&report.issued_at, kind, report.created_at_derived) {
                    (Some(issued), _, _) => println!("issued:       {issued}"),
                    (None, KindId::Ade, false) => {
                        println!("created:      {created} (downloaded, from the file name)")
                    }
                    _ => println!("created:      {created} (derived: expiry minus one year)"),
                }
                if let Some(prefix) = &report.consumer_key_prefix {
                    println!("consumer key: {prefix}… (decrypted with the key)");
                }
                if report.has_private_key == Some(true) {
                    println!("warning:      the file also holds a private key; keep keys out of watched folders");
                }
                println!(
                    "fingerprint:  {}",
                    report.fingerprint.as_deref().unwrap_or("")
                );
                if report.sample {
                    println!(
                        "sample:       yes (made by tokenwatch sample-token; not a real token)"
                    );
                }
                if kind == KindId::Vpp && !report.verifiable_with_apple {
                    println!("apple:        cannot be verified with Apple (saved as raw JSON; the original Base64 is lost)");
                }
                for v in &report.variants {
                    println!(
                        "{}{}",
                        if v.warning {
                            "warning:      "
                        } else {
                            "note:         "
                        },
                        v.description
                    );
                }
            }
        }
        if report.world_readable {
            println!("warning:      readable by every user of this host; restrict it (chmod o-r)");
        }
    }
    Ok(if report.readable {
        EXIT_OK
    } else {
        EXIT_UNKNOWN
    })
}
