//! The `tokenwatch` binary: parse the command line, set up logging, call
//! the library, exit with its code.

use clap::Parser;
use tokenwatch::cli::{self, Cli, LogFormat};

fn main() {
    let undumpable = tokenwatch::hardening::forbid_core_dumps();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 3 (monitoring "unknown"), not clap's 2,
            // which would read as "critical".
            let code = if e.use_stderr() {
                cli::EXIT_UNKNOWN
            } else {
                cli::EXIT_OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    init_tracing(cli.log_level.as_deref(), cli.log_format);
    if let Err(e) = undumpable {
        tracing::warn!(error = %e, "cannot make the process non-dumpable; a core dump could hold secrets");
    }
    std::process::exit(cli::run(cli));
}

fn init_tracing(level: Option<&str>, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    // tokio-cron-scheduler logs every armed job at info; that is noise.
    const DEFAULT: &str = "info,tokio_cron_scheduler=warn";
    let wanted = level
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok());
    // notify logs every raw inotify event at trace. With the log written
    // into a watched folder (the config's), each line is an event that logs
    // a line: a loop that starves the watcher and hung start-up for good.
    // Raw events are never needed; cap them unless asked for by name.
    let names_notify = wanted.as_deref().is_some_and(|w| w.contains("notify"));
    let mut filter = wanted
        .and_then(|w| EnvFilter::try_new(w).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT));
    if !names_notify {
        if let Ok(cap) = "notify=debug".parse() {
            filter = filter.add_directive(cap);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // journald stamps each line itself.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    match (format, journald) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Human, true) => builder.without_time().init(),
        (LogFormat::Human, false) => builder.init(),
    }
}
