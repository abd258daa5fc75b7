//! `tokenwatch test-webhook NAME`: one test message to a configured
//! webhook, with the receiver's answer or why it failed.

use std::path::Path;

use chrono::Utc;

use super::{load_config, EXIT_OK, EXIT_UNKNOWN};
use crate::webhook::body::{self, Message, Severity};
use crate::webhook::{client, Hook};

/// Exit code when the message could not be delivered.
const EXIT_SEND_FAILED: i32 = 2;

pub fn run(flag: Option<&Path>, name: &str) -> anyhow::Result<i32> {
    let Some(cfg) = load_config(flag) else {
        return Ok(EXIT_UNKNOWN);
    };
    let Some(settings) = cfg.webhooks.iter().find(|w| w.name == name) else {
        let known: Vec<&str> = cfg.webhooks.iter().map(|w| w.name.as_str()).collect();
        eprintln!(
            "tokenwatch: no [[webhook]] named {name:?} in {} (configured: {})",
            cfg.file.display(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
        return Ok(EXIT_UNKNOWN);
    };
    let hook = match Hook::from_settings(settings) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("tokenwatch: {e}");
            return Ok(EXIT_UNKNOWN);
        }
    };
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tokenwatch: {e}");
            return Ok(EXIT_UNKNOWN);
        }
    };
    let host = crate::daemon::hostname();
    let now = Utc::now();
    let id = format!("test.{}@{host}", now.timestamp_millis());
    let summary = format!("Test message from tokenwatch on {host}");
    let text = body::render(
        hook.format,
        &Message {
            id: &id,
            event: "test",
            severity: Severity::Info,
            summary: &summary,
            token: None,
            folder: None,
            sent_at: now,
            facts: vec![("Host", host.clone())],
            advice: vec![
                "Alerts about expiring, expired and invalidated Apple credentials will arrive here."
                    .to_owned(),
            ],
        },
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(hook.post(&client, &id, &text)) {
        Ok(answer) => {
            println!("test message accepted: {answer}");
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("tokenwatch: test message failed: {e}");
            Ok(EXIT_SEND_FAILED)
        }
    }
}
