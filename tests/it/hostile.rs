//! Hostile input against the real binary (issue 7): a generated corpus of
//! malformed token files with odd names in a watched folder, and special
//! files with a token name. The daemon must stay up, report each file as
//! unreadable exactly once (in `status --json` and in one mail), keep its
//! memory bounded, and never block.
//!
//! The corpus is random but reproducible: the seed is printed, and
//! `HOSTILE_SEED=N` replays it. `HOSTILE_FILES=N` changes the file count
//! (at least 10,000 by default; CI uses the default).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{Duration as Days, Utc};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::util::mail::read_mails;
use crate::util::process::{proc_kib, run_with_deadline, tokenwatch};
use crate::util::{unavailable, Daemon, Env, BIN};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const MAX_TOKEN: usize = tokenwatch::token::MAX_TOKEN_FILE_BYTES;
/// Linux's NAME_MAX: the longest file name, in bytes.
const NAME_MAX: usize = 255;
const DEFAULT_FILES: usize = 10_000;
/// Generous: a daemon holding 10,000 unreadable files needs a few MiB.
const RSS_LIMIT_KIB: u64 = 256 * 1024;

// ---------------------------------------------------------------------------
// The corpus.

/// Every file name carries a unique tag that survives how tokenwatch shows
/// paths (lossy UTF-8, control characters dropped, long paths cut), so a
/// status row or a mail line can be traced back to its file.
fn tag(i: usize) -> String {
    format!("hx{i:05}x")
}

/// All tags in a text.
/// N in a summary's "and N more (see `tokenwatch status`)", once per mail
/// (the HTML part says it again), or 0.
fn more_in(text: &str) -> usize {
    let Some(end) = text.find(" more (see ") else {
        return 0;
    };
    let digits: String = text[..end]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().unwrap_or(0)
}

fn tags_in(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 8 <= b.len() {
        if b[i] == b'h'
            && b[i + 1] == b'x'
            && b[i + 7] == b'x'
            && b[i + 2..i + 7].iter().all(u8::is_ascii_digit)
        {
            if let Ok(n) = std::str::from_utf8(&b[i + 2..i + 7]).unwrap_or("").parse() {
                out.push(n);
            }
            i += 8;
        } else {
            i += 1;
        }
    }
    out
}

fn odd_name(i: usize, rng: &mut StdRng) -> Vec<u8> {
    let t = tag(i);
    let ext = b".vpptoken";
    let mut name: Vec<u8> = match rng.random_range(0..9) {
        0 => t.clone().into_bytes(),
        1 => format!("{t} with  spaces ").into_bytes(),
        2 => format!("{t}\nsecond line\r\tand a tab").into_bytes(),
        3 => [t.as_bytes(), b"\xff\xfe\x80not-utf8\xc3"].concat(),
        4 => {
            // Exactly NAME_MAX bytes.
            let fill = NAME_MAX - t.len() - ext.len();
            [t.as_bytes(), &vec![b'L'; fill][..]].concat()
        }
        5 => {
            // Near NAME_MAX in two-byte characters.
            let fill = (NAME_MAX - t.len() - ext.len()) / 2;
            format!("{t}{}", "é".repeat(fill)).into_bytes()
        }
        6 => format!("{t}-Köln-東京-\u{202e}kcatta").into_bytes(),
        7 => format!("-{t} $(reboot) `id` ;|&<>*?'\"").into_bytes(),
        _ => {
            let mut n = t.clone().into_bytes();
            n.extend((0..rng.random_range(1..20)).map(|_| rng.random_range(1..=255u8)));
            n.retain(|&b| b != b'/');
            n
        }
    };
    // Any case of the extension is a token name.
    name.extend_from_slice(match rng.random_range(0..4) {
        0 => b".VPPTOKEN",
        1 => b".VppToken",
        _ => ext,
    });
    assert!(name.len() <= NAME_MAX, "{} bytes", name.len());
    name
}

/// What a generated file holds: bytes, or a sparse file of this length.
enum Content {
    Bytes(Vec<u8>),
    Sparse(u64),
}

struct Generator {
    rng: StdRng,
    /// Readable tokens to mangle.
    bases: Vec<Vec<u8>>,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        let mut bases: Vec<Vec<u8>> = (0..40)
            .map(|k| {
                tokenwatch::token::sample_token(
                    &format!("Hostile Org {k} \"quoted\" / Köln"),
                    Utc::now() + Days::days(k * 17 - 100),
                )
                .into_bytes()
            })
            .collect();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokens/valid");
        for e in std::fs::read_dir(fixtures).expect("fixtures").flatten() {
            bases.push(std::fs::read(e.path()).expect("fixture"));
        }
        Generator {
            rng: StdRng::seed_from_u64(seed),
            bases,
        }
    }

    fn base(&mut self) -> Vec<u8> {
        let i = self.rng.random_range(0..self.bases.len());
        self.bases[i].clone()
    }

    /// The mix, by `i % 100`: mostly damaged real tokens, a few huge files
    /// (each costs a 64 KiB read per scan, so they are kept to 3 %).
    fn content(&mut self, i: usize) -> Content {
        let bytes = match i % 100 {
            0..=24 => {
                let b = self.truncated();
                self.make_unreadable(b)
            }
            25..=44 => {
                let b = self.bit_flipped();
                self.make_unreadable(b)
            }
            45..=47 => return self.huge(i),
            48..=59 => self.deep_json(),
            60..=71 => self.invalid_utf8(),
            72..=94 => self.structural(),
            // Exact duplicates: the same broken content under many names.
            _ => match i % 3 {
                0 => Vec::new(),
                1 => b"not a token\n".to_vec(),
                _ => self.bases[0][..20].to_vec(),
            },
        };
        Content::Bytes(bytes)
    }

    /// A mutation can leave a valid token (a flip inside the org name, a
    /// cut that only drops a line end); keep flipping until it is not one.
    /// The other generators make nothing readable by construction (and the
    /// test fails on any row that is not unreadable).
    fn make_unreadable(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        while tokenwatch::token::parse(&bytes).is_ok() {
            let at = self.rng.random_range(0..bytes.len());
            bytes[at] ^= 1 << self.rng.random_range(0..8);
        }
        bytes
    }

    fn truncated(&mut self) -> Vec<u8> {
        let mut b = self.base();
        let keep = self.rng.random_range(1..b.len().saturating_sub(2).max(2));
        b.truncate(keep);
        b
    }

    fn bit_flipped(&mut self) -> Vec<u8> {
        let mut b = self.base();
        for _ in 0..self.rng.random_range(1..=8) {
            let at = self.rng.random_range(0..b.len());
            b[at] ^= 1 << self.rng.random_range(0..8);
        }
        b
    }

    fn huge(&mut self, i: usize) -> Content {
        // A few sparse files of a gigabyte: reading one whole would show.
        if i % 1000 == 45 {
            return Content::Sparse(1 << 30);
        }
        let len = MAX_TOKEN + 1 + self.rng.random_range(0..192 * 1024);
        let bytes = match self.rng.random_range(0..3) {
            // A real token drowned in whitespace: still too large.
            0 => {
                let mut b = self.base();
                b.resize(len, b' ');
                b
            }
            // Valid Base64 lines, wrapped at 76 like Apple's.
            1 => {
                let mut raw = [0u8; 57];
                self.rng.fill_bytes(&mut raw);
                let line = B64.encode(raw) + "\n";
                line.repeat(len / line.len() + 1).into_bytes()
            }
            // A JSON string that never ends.
            _ => {
                let mut b = br#"{"token":""#.to_vec();
                b.resize(len, b'A');
                b
            }
        };
        Content::Bytes(bytes)
    }

    fn deep_json(&mut self) -> Vec<u8> {
        // Mostly moderate, some as deep as 64 KiB allows.
        let depth = if self.rng.random_bool(0.1) {
            60_000
        } else {
            self.rng.random_range(100..20_000)
        };
        let (open, close) = match self.rng.random_range(0..3) {
            0 => ("[", "]"),
            1 => (r#"{"a":"#, "}"),
            _ => (r#"[{"x":"#, "}]"),
        };
        let closed = self.rng.random_bool(0.5);
        let nest = |depth: usize| {
            let mut s = open.repeat(depth);
            s.push_str("null");
            if closed {
                s.push_str(&close.repeat(depth));
            }
            s
        };
        let json = match self.rng.random_range(0..4) {
            0 => nest(depth),
            1 => format!(r#"{{"token":"x","expDate":{}}}"#, nest(depth)),
            2 => format!(
                r#"{{"token":{},"expDate":"2030-01-01T00:00:00Z"}}"#,
                nest(depth)
            ),
            _ => format!(r#"{{"extra":{},"token":"x"}}"#, nest(depth)),
        };
        let mut bytes = json.into_bytes();
        bytes.truncate(MAX_TOKEN - 16);
        if self.rng.random_bool(0.5) {
            // As Base64, as long as it fits the size limit.
            bytes.truncate(MAX_TOKEN / 4 * 3 - 16);
            bytes = B64.encode(&bytes).into_bytes();
        }
        bytes
    }

    fn invalid_utf8(&mut self) -> Vec<u8> {
        let mut junk = vec![0u8; self.rng.random_range(1..2048)];
        self.rng.fill_bytes(&mut junk);
        match self.rng.random_range(0..5) {
            0 => junk,
            1 => [br#"{"token":""#.as_slice(), &junk, b"\"}"].concat(),
            2 => B64
                .encode(
                    [
                        br#"{"token":"\xff\xfe","expDate":""#.as_slice(),
                        &junk,
                        b"\"}",
                    ]
                    .concat(),
                )
                .into_bytes(),
            // UTF-16 with a byte order mark, as a "Unicode" save makes it.
            3 => {
                let text = String::from_utf8_lossy(&self.base()).into_owned();
                let mut b = vec![0xFF, 0xFE];
                b.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
                b
            }
            // Overlong encodings and lone surrogates in "UTF-8".
            _ => [
                b"\xEF\xBB\xBF".as_slice(),
                b"\xC0\xAF\xED\xA0\x80\xF4\x90\x80\x80",
                &junk,
            ]
            .concat(),
        }
    }

    fn structural(&mut self) -> Vec<u8> {
        let n = self.rng.random_range(0..1_000_000u32);
        let text = match self.rng.random_range(0..14) {
            0 => format!("-----BEGIN CERTIFICATE-----\nMIIB{n}\n-----END CERTIFICATE-----\n"),
            1 => format!(
                "MIME-Version: 1.0\nContent-Type: application/pkcs7-mime; name=smime.p7m\n\n{n}\n"
            ),
            2 => format!(
                r#"{{"token":"x","expDate":"2026-02-{:02}T25:61:61+0000"}}"#,
                30 + n % 70
            ),
            3 => format!(r#"{{"token":"x","expDate":{n}e999999}}"#),
            4 => format!(r#"{{"token":"\ud800{n}","expDate":"2030-01-01T00:00:00Z"}}"#),
            5 => format!(
                r#"{{"token":"x","expDate":"{}"}}"#,
                "9".repeat(1 + n as usize % 5000)
            ),
            6 => format!(r#"["{n}"]"#),
            7 => format!(r#"{{"expDate":"2030-01-01T00:00:00Z","orgName":"{n}"}}"#),
            8 => format!("{}{n}", "\u{0}".repeat(1 + n as usize % 4096)),
            9 => format!(r#"{{"token":"x","expDate":"2030-01-01T00:00:00Z"}}{n}"#),
            10 => format!(r#"{{"token":"x","expDate":"+{n:06}-01-01T00:00:00Z"}}"#),
            11 => format!(
                "{{\"token\":\"x\",\"expDate\":\"2030-01-01T00:00:00Z\",\"k\":\"{}\"",
                "\\u0000".repeat(1 + n as usize % 9000)
            ),
            12 => format!("{}{n}", " \r\n\t\x0c".repeat(1 + n as usize % 1000)),
            _ => format!("{n}{}", "=".repeat(1 + n as usize % 100)),
        };
        let bytes = text.into_bytes();
        if self.rng.random_bool(0.5) && bytes.len() < MAX_TOKEN / 2 {
            B64.encode(&bytes).into_bytes()
        } else {
            bytes
        }
    }
}

/// Writes files `from..to` of the corpus into `dir`; returns their names.
fn write_corpus(dir: &Path, gen: &mut Generator, from: usize, to: usize) -> usize {
    std::fs::create_dir_all(dir).expect("corpus folder");
    let mut written = 0;
    for i in from..to {
        let name = odd_name(i, &mut gen.rng);
        let path = dir.join(OsStr::from_bytes(&name));
        match gen.content(i) {
            Content::Bytes(bytes) => std::fs::write(&path, bytes),
            Content::Sparse(len) => std::fs::File::create(&path).and_then(|f| f.set_len(len)),
        }
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        // Private, as tokens should be (no world-readable warnings).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        written += 1;
    }
    written
}

fn seed() -> u64 {
    std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// Each tag found in the unreadable rows of a status or check report,
/// with how often; and rows that are not unreadable or carry no tag.
fn unreadable_rows(report: &serde_json::Value) -> (BTreeMap<usize, usize>, Vec<String>) {
    let mut seen = BTreeMap::new();
    let mut odd = Vec::new();
    for t in report["tokens"].as_array().into_iter().flatten() {
        let path = t["path"].as_str().unwrap_or("");
        let tags = tags_in(path);
        let detail = t["detail"].as_str().unwrap_or("");
        if t["status"] != "unreadable" || tags.len() != 1 || detail.is_empty() {
            odd.push(t.to_string());
        }
        for tag in tags {
            *seen.entry(tag).or_insert(0) += 1;
        }
    }
    (seen, odd)
}

#[test]
fn ten_thousand_malformed_files_keep_the_daemon_up_and_each_is_reported_once() {
    let seed = seed();
    let total: usize = std::env::var("HOSTILE_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_FILES);
    println!("hostile corpus: {total} files, HOSTILE_SEED={seed}");
    let env = Env::new();
    let cfg = env.config("");
    let dir = env.path().join("tokens");
    let mut gen = Generator::new(seed);

    // Half before start-up (the first full scan), half while it runs
    // (filesystem events, one burst).
    let started = Instant::now();
    let phase = |what: &str| println!("hostile corpus: {what} after {:.1?}", started.elapsed());
    let half = total / 2;
    write_corpus(&dir, &mut gen, 0, half);
    phase("first half written");
    let d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 60, |s| s["tokens"].as_array().is_some());
    phase("first scan done");
    write_corpus(&dir, &mut gen, half, total);
    phase("second half written");

    let all: BTreeSet<usize> = (0..total).collect();
    let complete = |s: &serde_json::Value| {
        let (seen, odd) = unreadable_rows(s);
        odd.is_empty() && seen.len() == total && seen.values().all(|&n| n == 1)
    };
    let status = d.wait_for("every file listed as unreadable once", 180, |s| {
        complete(s) || !unreadable_rows(s).1.is_empty()
    });
    phase("status lists every file");
    let (seen, odd) = unreadable_rows(&status);
    assert!(
        odd.is_empty(),
        "rows that are not one unreadable file: {odd:?}"
    );
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "listed more than once: {twice:?}");
    assert_eq!(seen.keys().copied().collect::<BTreeSet<_>>(), all);

    // Mail: unreadable files are mailed once settled (10 s unchanged),
    // collapsed by the storm guard into summary mails, each listing at most
    // 200 and counting the rest ("and N more"). Every file must be listed
    // or counted, none listed twice, and every mail must stay under 1 MiB.
    let mail_dir = env.path().join("state/mail");
    let deadline = Instant::now() + Duration::from_secs(180);
    let per_mail = loop {
        let mails = read_mails(&mail_dir);
        for (name, raw, _) in &mails {
            assert!(raw.len() < 1 << 20, "mail {name} has {} bytes", raw.len());
        }
        let per_mail: Vec<(String, BTreeSet<usize>)> = mails
            .iter()
            .map(|(name, _, text)| (name.clone(), tags_in(text).into_iter().collect()))
            .collect();
        let listed: usize = per_mail.iter().map(|(_, t)| t.len()).sum();
        let counted: usize = mails.iter().map(|(_, _, text)| more_in(text)).sum();
        let pending = d
            .status()
            .is_some_and(|s| s["outbox"].as_array().is_some_and(|o| !o.is_empty()));
        if listed + counted >= total && !pending {
            assert_eq!(listed + counted, total, "files listed or counted in mails");
            break per_mail;
        }
        assert!(
            Instant::now() < deadline,
            "after 180 s, {listed} of {total} files were listed and {counted} counted in mails\n--- daemon log ---\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    phase("every file mailed");
    let mut mails_per_file: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (name, tags) in &per_mail {
        for &t in tags {
            mails_per_file.entry(t).or_default().push(name);
        }
    }
    let repeated: Vec<_> = mails_per_file
        .iter()
        .filter(|(_, m)| m.len() != 1)
        .collect();
    assert!(
        repeated.is_empty(),
        "{} files are in several mails, e.g. {:?}",
        repeated.len(),
        repeated.iter().take(5).collect::<Vec<_>>()
    );

    // The same corpus through `check`: it finishes, lists each file once.
    let check = tokenwatch(
        &env,
        &["-c", "tokenwatch.toml", "check", "--json"],
        &[],
        300,
    );
    check.expect_code(3);
    phase("check done");
    let (seen, odd) = unreadable_rows(&check.json());
    assert!(odd.is_empty(), "check rows: {odd:?}");
    assert_eq!(seen.len(), total);
    assert!(seen.values().all(|&n| n == 1));

    let mut d = d;
    assert!(
        d.child.try_wait().expect("daemon state").is_none(),
        "the daemon exited\n{}",
        d.log()
    );
    let pid = d.child.id();
    let rss = proc_kib(pid, "VmRSS").expect("VmRSS");
    let peak = proc_kib(pid, "VmHWM").expect("VmHWM");
    println!(
        "hostile corpus: {total} files, {} mails, daemon RSS {rss} KiB, peak {peak} KiB",
        per_mail.len()
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "daemon peak RSS {peak} KiB exceeds {RSS_LIMIT_KIB} KiB"
    );
}

// ---------------------------------------------------------------------------
// Special files.

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

/// Regression: at `RUST_LOG=trace` with stderr going to a file in the
/// config's folder (which the daemon watches), notify logged each inotify
/// event, each log line was a new event, and start-up never finished (not
/// even SIGTERM got through).
#[test]
fn a_trace_log_written_into_the_watched_config_folder_does_not_feed_back_and_hang() {
    let env = Env::new();
    let cfg = env.config("");
    env.sample("tokens/a.vpptoken", "Acme", 200);
    // Daemon::start_with writes its log next to the config.
    let mut d = Daemon::start_with(&env, &cfg, &[("RUST_LOG", "trace")]);
    d.wait_for("first scan at trace level", 30, |s| {
        s["tokens"][0]["status"] == "ok"
    });
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(20), Some(0), "did not stop on SIGTERM");
    let log = d.log();
    assert!(log.contains("TRACE"), "not at trace level:\n{log}");
    assert!(
        log.lines().count() < 20_000,
        "{} log lines: the log feeds itself",
        log.lines().count()
    );
}
