//! `tokenwatch probe FILE`: one read-only check of one token with Apple,
//! printing Apple's verdict and what it says about the token.

use std::path::Path;

use serde::Serialize;

use super::{load_config, EXIT_CRITICAL, EXIT_OK, EXIT_UNKNOWN};
use crate::evaluate::Verdict;
use crate::probe::{Probe, ProbeOutcome};
use crate::scan::{self, FileError};
use crate::show::{rfc3339, show_path};
use crate::token;

#[derive(Serialize)]
struct ProbeReport {
    path: String,
    fingerprint: Option<String>,
    verdict: Verdict,
    detail: String,
    location_name: Option<String>,
    uid: Option<String>,
    mdm_name: Option<String>,
    apple_expires_at: Option<String>,
    file_expires_at: Option<String>,
}

pub fn run(flag: Option<&Path>, file: &Path, json: bool) -> anyhow::Result<i32> {
    let Some(cfg) = load_config(flag) else {
        return Ok(EXIT_UNKNOWN);
    };
    let read = scan::read_limited(file)
        .and_then(|(bytes, _)| token::parse_with_bearer(&bytes).map_err(FileError::Token));
    let (token, bearer) = match &read {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tokenwatch: cannot read token {}: {e}", show_path(file));
            return Ok(EXIT_UNKNOWN);
        }
    };
    let Some(bearer) = bearer else {
        eprintln!(
            "tokenwatch: {} cannot be verified with Apple: it was saved as raw JSON and the original Base64 is lost",
            show_path(file)
        );
        return Ok(EXIT_UNKNOWN);
    };
    let probe = Probe::new(&cfg.apple.probe)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(probe.verify(bearer));
    let (location_name, uid, mdm_name, apple_expires_at) = match &outcome {
        ProbeOutcome::Valid(c) => (
            c.location_name.clone(),
            c.uid.clone(),
            c.mdm_name.clone(),
            c.apple_expires_at.as_ref().map(rfc3339),
        ),
        _ => (None, None, None, None),
    };
    let report = ProbeReport {
        path: show_path(file),
        fingerprint: Some(token.fingerprint.short().to_string()),
        verdict: outcome.verdict(),
        detail: outcome.to_string(),
        location_name,
        uid,
        mdm_name,
        apple_expires_at,
        file_expires_at: Some(rfc3339(&token.expires_at)),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("file:        {}", report.path);
        println!(
            "fingerprint: {}",
            report.fingerprint.as_deref().unwrap_or("")
        );
        println!("verdict:     {} ({})", report.verdict, report.detail);
        for (label, value) in [
            ("location:   ", &report.location_name),
            ("uId:        ", &report.uid),
            ("MDM:        ", &report.mdm_name),
            ("Apple says expires:", &report.apple_expires_at),
        ] {
            if let Some(v) = value {
                println!("{label} {v}");
            }
        }
    }
    Ok(match report.verdict {
        Verdict::Valid => EXIT_OK,
        Verdict::Revoked | Verdict::Expired | Verdict::Invalid => EXIT_CRITICAL,
        Verdict::Unverifiable | Verdict::Error => EXIT_UNKNOWN,
    })
}
