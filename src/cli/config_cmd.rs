//! `tokenwatch config check` and `tokenwatch config example`.

use std::path::Path;

use super::{load_config, EXIT_OK, EXIT_UNKNOWN};

pub fn check(flag: Option<&Path>) -> anyhow::Result<i32> {
    Ok(match load_config(flag) {
        Some(cfg) => {
            // The URL and key files are read when the daemon starts; a
            // check that passed must mean the start does too.
            if let Err(e) = crate::webhook::WebhookChannel::from_settings(&cfg.webhooks) {
                eprintln!("tokenwatch: {}: {e}", cfg.file.display());
                return Ok(EXIT_UNKNOWN);
            }
            println!(
                "{}: ok ({} folder{}, {} account{})",
                cfg.file.display(),
                cfg.folders.len(),
                if cfg.folders.len() == 1 { "" } else { "s" },
                cfg.accounts.len(),
                if cfg.accounts.len() == 1 { "" } else { "s" },
            );
            EXIT_OK
        }
        None => EXIT_UNKNOWN,
    })
}

pub fn example() -> anyhow::Result<i32> {
    print!("{}", crate::config::EXAMPLE);
    Ok(EXIT_OK)
}
