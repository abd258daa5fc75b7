//! Special files with a token name (FIFO, socket, link loop, directory,
//! unreadable file, device): each is unreadable with a clear error, and
//! none blocks a scan.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use chrono::Utc;

use crate::util::process::run_with_deadline;
use crate::util::{unavailable, Daemon, Env, BIN};

/// Who runs tokenwatch in the special-files test.
enum Runner {
    /// As the test user, who is not root: permissions apply.
    Me,
    /// As root without capabilities, so permissions apply to it too.
    Powerless,
    /// As root with its powers, which read any file: no permission case.
    Root,
}

/// Makes the exec that follows start root without capabilities: with
/// SECBIT_NOROOT, uid 0 no longer gains them all at exec, and the ambient
/// set (normally empty) is cleared too. Such a root still owns everything
/// it made but obeys file permissions like any user. Switching to another
/// uid instead needs the test folder and the binary reachable by that user,
/// which they are not under a folder only root can enter (a checkout or a
/// `CARGO_TARGET_DIR` in /root).
fn drop_root_powers() -> std::io::Result<()> {
    const SECBIT_NOROOT: libc::c_ulong = 1;
    fn prctl(option: libc::c_int, arg: libc::c_ulong) -> std::io::Result<()> {
        let unused: libc::c_ulong = 0;
        match unsafe { libc::prctl(option, arg, unused, unused, unused) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    )?;
    prctl(libc::PR_SET_SECUREBITS, SECBIT_NOROOT)
}

fn command_as(runner: &Runner, env: &Env, args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(env.path())
        .env_remove("TOKENWATCH_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env("RUST_LOG", "info,tokio_cron_scheduler=warn");
    if let Runner::Powerless = runner {
        // Runs in the child between fork and exec; prctl is async-signal-safe.
        unsafe { cmd.pre_exec(drop_root_powers) };
    }
    cmd
}

/// Who can run tokenwatch so that a file without read permission is
/// unreadable to it; `Root` (with a printed reason) when nobody can.
fn runner(env: &Env) -> Runner {
    if unsafe { libc::geteuid() } != 0 {
        return Runner::Me;
    }
    let probe = command_as(&Runner::Powerless, env, &["config", "example"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match probe {
        Ok(s) if s.success() => Runner::Powerless,
        Ok(s) => {
            unavailable(
                "special files: no read permission",
                &format!("tokenwatch without root's capabilities failed ({s})"),
            );
            Runner::Root
        }
        Err(e) => {
            unavailable(
                "special files: no read permission",
                &format!("cannot drop root's capabilities ({e})"),
            );
            Runner::Root
        }
    }
}

#[test]
fn special_files_with_a_token_name_are_unreadable_with_a_clear_error_and_never_block() {
    let env = Env::new();
    let cfg = env.config("");
    let dir = env.path().join("tokens");
    std::fs::create_dir_all(&dir).unwrap();
    let runner = runner(&env);
    env.sample("tokens/good.vpptoken", "Good Org", 200);

    // name -> what the error must say
    let mut expect: Vec<(&str, &str)> = Vec::new();

    let fifo = dir.join("fifo.vpptoken");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    expect.push(("fifo.vpptoken", "is a FIFO, not a regular file"));
    std::os::unix::fs::symlink("fifo.vpptoken", dir.join("link-to-fifo.vpptoken")).unwrap();
    expect.push(("link-to-fifo.vpptoken", "is a FIFO, not a regular file"));

    // Bound and left bound: a live socket, as a crashed service leaves it.
    let _socket = std::os::unix::net::UnixListener::bind(dir.join("socket.vpptoken")).unwrap();
    expect.push(("socket.vpptoken", "is a socket, not a regular file"));

    std::os::unix::fs::symlink("self.vpptoken", dir.join("self.vpptoken")).unwrap();
    expect.push(("self.vpptoken", "is a symbolic link loop"));
    std::os::unix::fs::symlink("loop-b.vpptoken", dir.join("loop-a.vpptoken")).unwrap();
    std::os::unix::fs::symlink("loop-a.vpptoken", dir.join("loop-b.vpptoken")).unwrap();
    expect.push(("loop-a.vpptoken", "is a symbolic link loop"));
    expect.push(("loop-b.vpptoken", "is a symbolic link loop"));
    // A folder link back up the tree must not loop the walk either.
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("sub/back")).unwrap();

    std::fs::create_dir(dir.join("x.vpptoken")).unwrap();
    expect.push(("x.vpptoken", "is a directory, not a regular file"));

    // A character device, where mknod is allowed (root, not in every
    // container): /dev/zero's numbers, which would never end if read.
    let dev = dir.join("zero.vpptoken");
    let c = std::ffi::CString::new(dev.as_os_str().as_bytes()).unwrap();
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 5)) };
    if rc == 0 {
        expect.push(("zero.vpptoken", "is a character device, not a regular file"));
    } else {
        unavailable(
            "special files: character device",
            &format!("mknod not permitted ({})", std::io::Error::last_os_error()),
        );
    }

    // A token that expires now: read by mistake it would turn the exit code
    // to 2, so it exists only where it cannot be read.
    if !matches!(runner, Runner::Root) {
        let noperm = dir.join("noperm.vpptoken");
        std::fs::write(
            &noperm,
            tokenwatch::token::sample_token("Locked", Utc::now()),
        )
        .unwrap();
        std::fs::set_permissions(&noperm, std::fs::Permissions::from_mode(0o000)).unwrap();
        expect.push(("noperm.vpptoken", "cannot be read: permission denied"));
    }

    let assert_rows = |report: &serde_json::Value, what: &str| {
        let rows: BTreeMap<String, (String, String)> = report["tokens"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|t| {
                let path = t["path"].as_str().unwrap_or("");
                (
                    path.rsplit('/').next().unwrap_or(path).to_string(),
                    (
                        t["status"].as_str().unwrap_or("").to_string(),
                        t["detail"].as_str().unwrap_or("").to_string(),
                    ),
                )
            })
            .collect();
        for (name, error) in &expect {
            let Some((status, detail)) = rows.get(*name) else {
                panic!("{what}: no row for {name}: {report:#}");
            };
            assert_eq!(status, "unreadable", "{what}: {name}: {report:#}");
            assert!(
                detail.contains(error),
                "{what}: {name}: detail {detail:?} does not say {error:?}"
            );
        }
        assert_eq!(rows.get("good.vpptoken").map(|r| r.0.as_str()), Some("ok"));
    };

    let check = run_with_deadline(
        command_as(&runner, &env, &["-c", "tokenwatch.toml", "check", "--json"]),
        "check --json",
        env.path(),
        60,
    );
    check.expect_code(3);
    assert_rows(&check.json(), "check --json");
    let human = run_with_deadline(
        command_as(&runner, &env, &["-c", "tokenwatch.toml", "check"]),
        "check",
        env.path(),
        60,
    );
    human.expect_code(3);
    assert!(
        human.stdout().contains("is a FIFO, not a regular file"),
        "{}",
        human.describe()
    );

    let mut cmd = command_as(&runner, &env, &["-c", cfg.to_str().unwrap(), "run"]);
    let log = env.path().join("daemon.log");
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let d = Daemon {
        child: cmd.spawn().expect("start daemon"),
        config: cfg.clone(),
        dir: env.path().to_path_buf(),
        log,
    };
    let status = d.wait_for("every special file reported", 30, |s| {
        s["tokens"]
            .as_array()
            .is_some_and(|t| t.len() > expect.len())
    });
    assert_rows(&status, "status --json");
    // Still serving: a new token is picked up after all that.
    // Made outside the folder and moved in whole.
    let staged = env.sample("later.vpptoken", "Later Org", 100);
    std::fs::rename(&staged, dir.join("later.vpptoken")).unwrap();
    d.wait_for("daemon still scanning", 15, |s| {
        crate::util::token_states(s).contains(&("later.vpptoken".into(), "ok".into()))
    });
}
