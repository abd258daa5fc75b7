//! Any text into the config loader: it must return a config or located
//! problems, never panic, hang or allocate without bound.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // `config::load` turns non-UTF-8 files into one error before parsing;
    // only text reaches `parse`.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match tokenwatch::config::parse(text, Path::new("/etc/tokenwatch/tokenwatch.toml")) {
        Ok(config) => {
            assert!(!config.folders.is_empty());
            assert!(config.check.critical_days <= config.check.warning_days);
            assert!(!config.alerts.lead_days.is_empty());
        }
        Err(err) => {
            assert!(!err.problems.is_empty());
            for problem in &err.problems {
                // Positions are 1-based, 0 only for whole-file problems.
                assert_eq!(problem.line == 0, problem.column == 0, "{problem:?}");
            }
            let _ = err.to_string();
        }
    }
});
