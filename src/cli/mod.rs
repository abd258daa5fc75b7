//! The command line: one file per subcommand; each returns the process exit
//! code. `main` only parses arguments, sets up logging and calls [`run`].

mod account;
mod args;
mod calendar;
mod check;
mod config_cmd;
mod inspect;
mod probe;
mod run;
mod sample;
mod silence;
mod status;
mod test_mail;
mod test_webhook;

pub use args::{
    AccountAction, CheckFormat, Cli, Command, ConfigAction, LogFormat, OutboxAction, SilenceAction,
};

use crate::config::{self, Config};

/// Exit codes shared by the subcommands (monitoring plugin convention).
pub const EXIT_OK: i32 = 0;
pub const EXIT_WARNING: i32 = 1;
pub const EXIT_CRITICAL: i32 = 2;
/// Unknown state: configuration or usage error, unreadable input.
pub const EXIT_UNKNOWN: i32 = 3;

/// Runs a parsed command line and returns the exit code.
pub fn run(cli: Cli) -> i32 {
    let config_flag = cli.config.as_deref();
    let result = match cli.command {
        Command::Check {
            json,
            format,
            output,
        } => {
            let format = if json { CheckFormat::Json } else { format };
            check::run(config_flag, format, output.as_deref())
        }
        Command::Calendar { output } => calendar::run(config_flag, output.as_deref()),
        Command::Inspect { file, key, json } => inspect::run(&file, key.as_deref(), json),
        Command::SampleToken {
            kind,
            org,
            expires,
            days,
            output,
            force,
            key_out,
        } => sample::run(&sample::Request {
            kind: &kind,
            org: org.as_deref(),
            expires: expires.as_deref(),
            days,
            output: output.as_deref(),
            force,
            key_out: key_out.as_deref(),
        }),
        Command::Probe { file, json } => probe::run(config_flag, &file, json),
        Command::Run => run::run(config_flag),
        Command::Status { json } => status::status(config_flag, json),
        Command::Outbox { action } => match action {
            OutboxAction::Retry { id, .. } => status::outbox_retry(config_flag, id),
            OutboxAction::Drop { id } => status::outbox_drop(config_flag, id),
        },
        Command::TestMail { to } => test_mail::run(config_flag, to.as_deref()),
        Command::TestWebhook { name } => test_webhook::run(config_flag, &name),
        Command::Account { action } => match action {
            AccountAction::PasswordChanged { account, at, add } => {
                account::password_changed(config_flag, &account, at.as_deref(), add)
            }
        },
        Command::Config { action } => match action {
            ConfigAction::Check => config_cmd::check(config_flag),
            ConfigAction::Example => config_cmd::example(),
        },
        Command::Silence {
            action,
            credential,
            until,
            reason,
        } => match (action, credential, until) {
            (Some(SilenceAction::List { json }), ..) => silence::list(config_flag, json),
            (Some(SilenceAction::Clear { credential }), ..) => {
                silence::clear(config_flag, &credential)
            }
            (None, Some(credential), Some(until)) => {
                silence::set(config_flag, &credential, &until, reason.as_deref())
            }
            // clap requires both without a subcommand.
            (None, _, _) => Ok(EXIT_UNKNOWN),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tokenwatch: {e:#}");
            EXIT_UNKNOWN
        }
    }
}

/// Loads the config named by `-c`, `TOKENWATCH_CONFIG` or the default;
/// prints every problem and yields None when it is invalid.
pub(crate) fn load_config(flag: Option<&std::path::Path>) -> Option<Config> {
    let path = config::resolve_path(flag);
    match config::load(&path) {
        Ok(cfg) => Some(cfg),
        Err(e) => {
            eprintln!("tokenwatch: {e}");
            None
        }
    }
}
