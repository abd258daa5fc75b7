//! `tokenwatch inspect FILE [--json]`: what tokenwatch reads from one file,
//! redacted. Needs no config and no state.

use std::path::Path;

use serde::Serialize;

use super::{EXIT_OK, EXIT_UNKNOWN};
use crate::scan;
use crate::show::{rfc3339, show_path};
use crate::token::Variant;

#[derive(Serialize)]
struct Inspection {
    path: String,
    readable: bool,
    org_name: Option<String>,
    fingerprint: Option<String>,
    created_at: Option<String>,
    /// The creation date is derived (expiry minus one year), never read.
    created_at_derived: bool,
    expires_at: Option<String>,
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

pub fn run(file: &Path, json: bool) -> anyhow::Result<i32> {
    let found = scan::read_one(file);
    let token = found.token();
    let report = Inspection {
        path: show_path(&found.path),
        readable: token.is_some(),
        org_name: token.map(|t| t.org_name.clone()),
        fingerprint: found.fingerprint.as_ref().map(|f| f.short().to_string()),
        created_at: token.map(|t| rfc3339(&t.created_at)),
        created_at_derived: true,
        expires_at: token.map(|t| rfc3339(&t.expires_at)),
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
            Some(e) => println!("error:        cannot read token {}: {e}", report.path),
            None => {
                println!("organisation: {}", report.org_name.as_deref().unwrap_or(""));
                println!(
                    "expires:      {}",
                    report.expires_at.as_deref().unwrap_or("")
                );
                println!(
                    "created:      {} (derived: expiry minus one year)",
                    report.created_at.as_deref().unwrap_or("")
                );
                println!(
                    "fingerprint:  {}",
                    report.fingerprint.as_deref().unwrap_or("")
                );
                if report.sample {
                    println!(
                        "sample:       yes (made by tokenwatch sample-token; not a real token)"
                    );
                }
                if !report.verifiable_with_apple {
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
