//! Benchmark data: N synthetic tokens spread over F folders, plus a
//! matching config, for `benches/run.sh` (see BENCHMARKS.md).
//!
//! The tokens come from the real `sample-token` writer
//! ([`tokenwatch::token::sample_token`]), so they have Apple's exact shape
//! (Base64 wrapped at 76 columns) and are marked as samples. Expiries are
//! spread uniformly over two years from now (or, with `--expiring-within`,
//! over the next few days, so that every token is due an alert); a share of
//! the files is malformed in the ways real folders are (truncated copies,
//! empty files, non-Base64 text, Base64 of something that is not JSON, a
//! missing `expDate`). The layout is `OUT/tokens/fNNN/tNNNNNNN.vpptoken` and
//! `OUT/tokenwatch.toml` with `state_dir = "state"`.
//!
//! ```text
//! cargo run --release --example gen_tokens -- --out /tmp/tw --tokens 10000 --folders 100
//! ```

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use base64::Engine as _;
use chrono::{Duration, Utc};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Parser)]
#[command(about = "Writes synthetic tokens and a config for the tokenwatch benchmarks")]
struct Args {
    /// Folder to fill (created; must not hold an older run's tokens).
    #[arg(long)]
    out: PathBuf,
    /// Number of token files, malformed ones included.
    #[arg(long, default_value_t = 10_000)]
    tokens: usize,
    /// Number of configured folders the files are spread over.
    #[arg(long, default_value_t = 1)]
    folders: usize,
    /// Share of malformed files, in percent.
    #[arg(long, default_value_t = 2.0)]
    malformed_percent: f64,
    /// Every expiry falls within this many days from now (default: two years).
    #[arg(long)]
    expiring_within: Option<u32>,
    /// Deliver mail by SMTP to 127.0.0.1:PORT (tls none) instead of .eml files.
    #[arg(long)]
    smtp_port: Option<u16>,
    /// `[alerts] max_mails_per_pass` (the storm guard; default tokenwatch's own).
    #[arg(long)]
    max_mails_per_pass: Option<u32>,
    /// Seed for expiries, folders and malformed files, for repeatable runs.
    #[arg(long, default_value_t = 6)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.folders > 0, "--folders must be at least 1");
    let mut rng = StdRng::seed_from_u64(args.seed);
    let now = Utc::now();
    let span_secs = i64::from(args.expiring_within.unwrap_or(730)) * 86_400;
    let tokens_dir = args.out.join("tokens");
    for f in 0..args.folders {
        std::fs::create_dir_all(tokens_dir.join(format!("f{f:03}")))?;
    }
    let mut malformed = 0usize;
    for i in 0..args.tokens {
        let folder = i % args.folders;
        let path = tokens_dir
            .join(format!("f{folder:03}"))
            .join(format!("t{i:07}.vpptoken"));
        // At least an hour ahead, so no token is expired at generation time
        // and "expiring within N days" stays true through a benchmark run.
        let expires = now + Duration::seconds(3600 + rng.random_range(0..span_secs));
        let org = format!("Bench Org {i}");
        let good = tokenwatch::token::sample_token(&org, expires);
        let bytes = if rng.random_bool(args.malformed_percent / 100.0) {
            malformed += 1;
            mangle(&good, &mut rng)
        } else {
            good.into_bytes()
        };
        // 0600 like real token files (credentials): a world-readable token
        // makes `check` print a warning per file.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?
            .write_all(&bytes)?;
    }
    std::fs::write(args.out.join("tokenwatch.toml"), config(&args))?;
    eprintln!(
        "wrote {} token files ({malformed} malformed) in {} folders under {}",
        args.tokens,
        args.folders,
        tokens_dir.display()
    );
    Ok(())
}

/// A broken file of one of the kinds found in real folders.
fn mangle(good: &str, rng: &mut StdRng) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match rng.random_range(0..5) {
        // An interrupted copy.
        0 => good.as_bytes()[..good.len() / 2].to_vec(),
        1 => Vec::new(),
        2 => b"<html><body>Session expired, please log in again</body></html>\n".to_vec(),
        3 => format!("{}\n", b64.encode("this is not JSON")).into_bytes(),
        _ => format!("{}\n", b64.encode(r#"{"token":"abc","orgName":"No Date"}"#)).into_bytes(),
    }
}

fn config(args: &Args) -> String {
    let mut c = String::from(
        "# Written by examples/gen_tokens.rs for benches/run.sh.\n\
         state_dir = \"state\"\n\
         timezone = \"UTC\"\n\n\
         [alerts]\n\
         recipients = [\"ops@example.com\"]\n\
         from = \"tokenwatch <tokenwatch@example.com>\"\n",
    );
    if let Some(n) = args.max_mails_per_pass {
        let _ = writeln!(c, "max_mails_per_pass = {n}");
    }
    match args.smtp_port {
        Some(port) => {
            let _ = write!(
                c,
                "\n[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n"
            );
        }
        None => c.push_str("\n[mail]\ntransport = \"file\"\ndir = \"state/mail\"\n"),
    }
    for f in 0..args.folders {
        let _ = write!(
            c,
            "\n[[folder]]\npath = \"tokens/f{f:03}\"\naccount = \"apps@bench.appleaccount.com\"\n"
        );
    }
    c.push_str("\n[[account]]\nid = \"apps@bench.appleaccount.com\"\n");
    c
}
