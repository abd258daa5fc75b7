//! Helpers for running the real binary in a temp folder and reporting
//! everything useful when an assertion fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_tokenwatch");

pub struct Run {
    pub cmd: String,
    pub dir: PathBuf,
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// Everything about this run, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\ndir: {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.dir.display(),
            self.output.status.code(),
            self.stdout(),
            self.stderr()
        )
    }
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), code, "unexpected exit code\n{}", self.describe());
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }
}

/// A temp folder to run tokenwatch in. Kept on disk when a test fails? No:
/// failures print its listing instead, so CI leaves no litter.
pub struct Env {
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Runs tokenwatch with `args` in this folder, without inheriting a
    /// config path from the environment.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(self.path()).env_remove("TOKENWATCH_CONFIG").env_remove("RUST_LOG");
        for (k, v) in env {
            c.env(k, v);
        }
        let output = c.output().expect("run tokenwatch");
        Run {
            cmd: format!("{BIN} {}", args.join(" ")),
            dir: self.path().to_path_buf(),
            output,
        }
    }

    /// Writes a sample token through the real `sample-token` command.
    pub fn sample(&self, rel: &str, org: &str, days: i64) -> PathBuf {
        let p = self.path().join(rel);
        let days = days.to_string();
        self.run(&["sample-token", "--org", org, "--days", &days, "-o", p.to_str().unwrap()])
            .expect_code(0);
        p
    }

    /// A config with one folder `tokens` and the given extra TOML.
    pub fn config(&self, extra: &str) -> PathBuf {
        self.write(
            "tokenwatch.toml",
            format!(
                "state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n{extra}\n[[folder]]\npath = \"tokens\"\naccount = \"apps@acme.appleaccount.com\"\n"
            ),
        )
    }
}
