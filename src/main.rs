//! The `tokenwatch` binary: parse the command line, set up logging, call
//! the library, exit with its code.

use clap::Parser;
use tokenwatch::cli::{self, Cli, LogFormat};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 3 (monitoring "unknown"), not clap's 2,
            // which would read as "critical".
            let code = if e.use_stderr() { cli::EXIT_UNKNOWN } else { cli::EXIT_OK };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    init_tracing(cli.log_level.as_deref(), cli.log_format);
    std::process::exit(cli::run(cli));
}

fn init_tracing(level: Option<&str>, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l),
        None => EnvFilter::try_from_default_env(),
    }
    .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // journald stamps each line itself.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    match (format, journald) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Human, true) => builder.without_time().init(),
        (LogFormat::Human, false) => builder.init(),
    }
}
