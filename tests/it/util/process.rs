//! Running a command with a hard deadline, for tests where a blocked scan
//! must fail the test instead of hanging it.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Env, Run};

/// Runs a command with a hard deadline: kills it and fails the test when it
/// does not finish (a scan that blocks on a FIFO would hang here). Output is
/// drained on threads so a large `--json` cannot fill the pipe and stall.
pub fn run_with_deadline(mut cmd: Command, what: &str, dir: &Path, secs: u64) -> Run {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "{what}: still running after {secs}s (blocked?); killed\n--- stderr ---\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        cmd: what.to_string(),
        dir: dir.to_path_buf(),
        output: std::process::Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        },
    }
}

/// `tokenwatch ARGS` in `env`, as the test user, with a deadline.
pub fn tokenwatch(env: &Env, args: &[&str], vars: &[(&str, &str)], secs: u64) -> Run {
    let mut cmd = env.command(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    run_with_deadline(
        cmd,
        &format!("tokenwatch {}", args.join(" ")),
        env.path(),
        secs,
    )
}

/// A value from `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
pub fn proc_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(&format!("{key}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
