//! `tokenwatch test-mail [--to ADDR]`: one mail through the configured
//! transport, with the server's answer or an error that says what failed.

use std::path::Path;

use anyhow::Context;
use chrono::Utc;
use lettre::message::Mailbox;

use super::{load_config, EXIT_OK, EXIT_UNKNOWN};
use crate::mail::transport::send_test_mail;

/// Exit code when the mail could not be delivered.
const EXIT_SEND_FAILED: i32 = 2;

pub fn run(flag: Option<&Path>, to: Option<&str>) -> anyhow::Result<i32> {
    let Some(cfg) = load_config(flag) else {
        return Ok(EXIT_UNKNOWN);
    };
    let recipients: Vec<Mailbox> = match to {
        Some(addr) => vec![addr
            .parse()
            .with_context(|| format!("--to {addr:?} is not a valid mail address"))?],
        None => cfg.alerts.recipients.clone(),
    };
    if recipients.is_empty() {
        eprintln!(
            "tokenwatch: no recipient: give --to ADDR or set [alerts] recipients in {}",
            cfg.file.display()
        );
        return Ok(EXIT_UNKNOWN);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let host = crate::daemon::hostname();
    let result = runtime.block_on(send_test_mail(
        &cfg.mail,
        cfg.alerts.from.clone(),
        recipients.clone(),
        &host,
        Utc::now(),
    ));
    let to: Vec<String> = recipients.iter().map(|m| m.to_string()).collect();
    match result {
        Ok(answer) => {
            println!("test mail to {} accepted: {answer}", to.join(", "));
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("tokenwatch: test mail to {} failed: {e}", to.join(", "));
            Ok(EXIT_SEND_FAILED)
        }
    }
}
