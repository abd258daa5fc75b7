//! Hostile input against the real binary: a generated corpus of
//! malformed token files with odd names in a watched folder, and special
//! files with a token name. The daemon must stay up, report each file as
//! unreadable exactly once (in `status --json` and in one mail), keep its
//! memory bounded, and never block.
//!
//! The corpus is random but reproducible: the seed is printed, and
//! `HOSTILE_SEED=N` replays it. `HOSTILE_FILES=N` changes the file count
//! (at least 10,000 by default; CI uses the default).

mod corpus;
mod special_files;
mod trace_log;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use chrono::{Duration as Days, Utc};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const MAX_TOKEN: usize = tokenwatch::token::MAX_TOKEN_FILE_BYTES;
/// Linux's NAME_MAX: the longest file name, in bytes.
const NAME_MAX: usize = 255;

/// Every file name carries a unique tag that survives how tokenwatch shows
/// paths (lossy UTF-8, control characters dropped, long paths cut), so a
/// status row or a mail line can be traced back to its file.
fn tag(i: usize) -> String {
    format!("hx{i:05}x")
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
