//! Helpers for running the real binary in a temp folder and reporting
//! everything useful when an assertion fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod mail;
pub mod process;

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
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code\n{}",
            self.describe()
        );
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }
}

/// Privileged set-ups (tmpfs, user namespaces, device nodes, dropping
/// capabilities) may be unavailable outside CI. Returns normally after
/// saying what did not run; panics when `TOKENWATCH_FAULTS_STRICT=1` (set in
/// `.ci/run`) demands the privilege, so CI cannot skip a case silently.
pub fn unavailable(test: &str, why: &str) {
    if std::env::var("TOKENWATCH_FAULTS_STRICT").is_ok_and(|v| v == "1") {
        panic!("{test}: {why} (TOKENWATCH_FAULTS_STRICT=1 requires it)");
    }
    println!("{test}: NOT RUN: {why}");
}

/// A temp folder to run tokenwatch in. Kept on disk when a test fails? No:
/// failures print its listing instead, so CI leaves no litter.
pub struct Env {
    pub tmp: tempfile::TempDir,
    /// Daemon logs live outside the watched tree: a log written next to the
    /// config would feed the config watcher its own trace lines.
    pub logs: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            tmp: tempfile::tempdir().expect("temp dir"),
            logs: tempfile::tempdir().expect("temp dir"),
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

    /// `tokenwatch ARGS` in this folder, with neither a config path nor a
    /// log level inherited from the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.path())
            .env_remove("TOKENWATCH_CONFIG")
            .env_remove("RUST_LOG");
        c
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.command(args);
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

    /// Writes a sample token through the real `sample-token` command; an
    /// existing file is rewritten in place, as an editor saving it would.
    pub fn sample(&self, rel: &str, org: &str, days: i64) -> PathBuf {
        let p = self.path().join(rel);
        let days = days.to_string();
        if p.exists() {
            let run = self.run(&["sample-token", "--org", org, "--days", &days]);
            run.expect_code(0);
            std::fs::write(&p, run.stdout()).unwrap();
            return p;
        }
        self.run(&[
            "sample-token",
            "--org",
            org,
            "--days",
            &days,
            "-o",
            p.to_str().unwrap(),
        ])
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

/// A running `tokenwatch run`, stopped (SIGKILL) when dropped.
pub struct Daemon {
    pub child: std::process::Child,
    pub config: PathBuf,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(env: &Env, config: &Path) -> Daemon {
        Self::start_with(env, config, &[])
    }

    pub fn start_with(env: &Env, config: &Path, extra_env: &[(&str, &str)]) -> Daemon {
        Self::start_from(env, config, extra_env, Command::new(BIN))
    }

    /// Started as systemd starts a service with `WatchdogSec=`: with
    /// `WATCHDOG_PID` naming the daemon's own process, without which the
    /// daemon ignores `WATCHDOG_USEC`. Only a shell that then execs the
    /// daemon knows that number in advance.
    pub fn start_with_watchdog_pid(env: &Env, config: &Path, extra_env: &[(&str, &str)]) -> Daemon {
        let mut c = Command::new("sh");
        c.args(["-c", "export WATCHDOG_PID=$$; exec \"$0\" \"$@\"", BIN]);
        Self::start_from(env, config, extra_env, c)
    }

    /// Starts `program` (tokenwatch, or what execs it) with the arguments
    /// of `tokenwatch run`, logging into a new file outside the watched tree.
    fn start_from(
        env: &Env,
        config: &Path,
        extra_env: &[(&str, &str)],
        program: Command,
    ) -> Daemon {
        let log = env.logs.path().join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut c = Self::run_args(program, env, config, &log);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        Self::spawn(env, config, &mut c, log)
    }

    /// The `tokenwatch run` that [`start_with`](Self::start_with) starts,
    /// logging into `log`: for tests that change how it starts (umask, user).
    pub fn command(env: &Env, config: &Path, log: &Path) -> Command {
        Self::run_args(Command::new(BIN), env, config, log)
    }

    fn run_args(mut c: Command, env: &Env, config: &Path, log: &Path) -> Command {
        c.args(["-c", config.to_str().unwrap(), "run"])
            .current_dir(env.path())
            .env_remove("TOKENWATCH_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env("RUST_LOG", "info,tokio_cron_scheduler=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        c
    }

    /// Starts `cmd`, made by [`command`](Self::command) with `log`.
    pub fn spawn(env: &Env, config: &Path, cmd: &mut Command, log: PathBuf) -> Daemon {
        Daemon {
            child: cmd.spawn().expect("start daemon"),
            config: config.to_path_buf(),
            dir: env.path().to_path_buf(),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the daemon's log holds `needle`; panics with the log
    /// after `secs`.
    pub fn wait_log(&self, needle: &str, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !self.log().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle:?} in the log within {secs} s:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `status --json`, or None while the daemon has not written it yet.
    pub fn status(&self) -> Option<serde_json::Value> {
        let out = Command::new(BIN)
            .args(["-c", self.config.to_str().unwrap(), "status", "--json"])
            .current_dir(&self.dir)
            .env_remove("TOKENWATCH_CONFIG")
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["last_scan_at"].is_string().then_some(v)
    }

    /// Polls `status --json` until `cond` holds; panics with the last status
    /// and the daemon's log after `secs`.
    pub fn wait_for(
        &self,
        what: &str,
        secs: u64,
        cond: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut last = None;
        while std::time::Instant::now() < deadline {
            if let Some(s) = self.status() {
                if cond(&s) {
                    return s;
                }
                last = Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "timed out after {secs}s waiting for: {what}\nlast status: {}\n--- daemon log ---\n{}",
            last.map(|s| serde_json::to_string_pretty(&s).unwrap())
                .unwrap_or_else(|| "none".into()),
            self.log()
        );
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, then a clean exit within 20 s; fails with the log otherwise.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        assert_eq!(self.wait_exit(20), Some(0), "{}", self.log());
    }

    /// Waits for the process to exit; its exit code, or None on timeout.
    pub fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tokens in a status, by file name → status string.
pub fn token_states(status: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = status["tokens"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let p = t["path"].as_str().unwrap_or("");
                    (
                        p.rsplit('/').next().unwrap_or(p).to_string(),
                        t["status"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
