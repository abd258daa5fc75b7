//! Reading mail as the tests' recipients would: headers, MIME parts and
//! their transfer encodings; and the config that sends mail to the SMTP stub.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::Env;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A config that mails through the SMTP stub on `port` without TLS.
/// `top` adds top-level keys, `alerts_extra` keys of `[alerts]`, and
/// `folders` the `[[folder]]` tables.
pub fn smtp_config_with(
    env: &Env,
    top: &str,
    port: u16,
    alerts_extra: &str,
    folders: &str,
) -> PathBuf {
    env.write(
        "tokenwatch.toml",
        format!(
            "{top}state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\nfrom = \"tokenwatch <tw@example.com>\"\n{alerts_extra}\n[mail]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout_secs = 5\n{folders}"
        ),
    )
}

/// [`smtp_config_with`] watching `folders`, each allowed to be empty.
pub fn smtp_config(env: &Env, port: u16, alerts_extra: &str, folders: &[&str]) -> PathBuf {
    let tables: String = folders
        .iter()
        .map(|f| format!("[[folder]]\npath = \"{f}\"\nallow_empty = true\n"))
        .collect();
    smtp_config_with(env, "", port, alerts_extra, &tables)
}

/// The head of a message or MIME entity, with `\n` line ends and folded
/// lines joined. Bare `\n` is accepted too: `.eml` files are read that way.
fn unfolded_head(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let head = raw.split("\n\n").next().unwrap_or(&raw);
    head.replace("\n ", " ").replace("\n\t", " ")
}

/// A header's value (folded lines joined), or None when the head lacks it.
pub fn header(raw: &str, name: &str) -> Option<String> {
    unfolded_head(raw).lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// Every `.eml` in `dir`: `(file name, raw bytes, decoded text)`. The
/// decoded text is the headers (RFC 2047 words decoded) and every MIME
/// part's body with its transfer encoding undone, so a search sees what a
/// reader sees, whatever encoding lettre picked.
pub fn read_mails(dir: &Path) -> Vec<(String, Vec<u8>, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut mails: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_name().as_bytes().ends_with(b".eml"))
        .filter(|e| !e.file_name().as_bytes().starts_with(b"."))
        .filter_map(|e| {
            let raw = std::fs::read(e.path()).ok()?;
            let text = decoded(&String::from_utf8_lossy(&raw));
            Some((e.file_name().to_string_lossy().into_owned(), raw, text))
        })
        .collect();
    mails.sort_by(|a, b| a.0.cmp(&b.0));
    mails
}

/// A message (CRLF or LF line ends) as a reader sees it: decoded headers,
/// then each part's body with its transfer encoding undone.
pub fn decoded(raw: &str) -> String {
    decode_mime(&raw.replace("\r\n", "\n"))
}

/// One MIME entity as a reader sees it: decoded headers, then each part's
/// body with its transfer encoding undone.
fn decode_mime(entity: &str) -> String {
    let mut out = decode_words(&unfolded_head(entity));
    out.push('\n');
    match subparts(entity) {
        Some(parts) => {
            for part in parts {
                out.push_str(&decode_mime(part));
            }
        }
        None => {
            out.push_str(&String::from_utf8_lossy(&leaf_body(entity)));
            out.push('\n');
        }
    }
    out
}

/// The parts of a multipart entity, or None for a leaf.
fn subparts(entity: &str) -> Option<Vec<&str>> {
    let ctype = header(entity, "content-type").unwrap_or_default();
    if !ctype.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    let body = entity.split_once("\n\n").map_or("", |(_, body)| body);
    let boundary = ctype
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_string())
        .unwrap_or_default();
    let delimiter = format!("--{boundary}");
    Some(
        body.split(delimiter.as_str())
            .skip(1)
            .take_while(|part| !part.starts_with("--"))
            .map(|part| part.trim_start_matches('\n'))
            .collect(),
    )
}

/// A leaf's body with its transfer encoding undone.
fn leaf_body(entity: &str) -> Vec<u8> {
    let body = entity.split_once("\n\n").map_or("", |(_, body)| body);
    let encoding = header(entity, "content-transfer-encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            B64.decode(compact)
                .unwrap_or_else(|_| body.as_bytes().to_vec())
        }
        "quoted-printable" => decode_qp(body),
        _ => body.as_bytes().to_vec(),
    }
}

/// Every leaf part of a message: `(Content-Type, decoded body)`. Line ends
/// in the body are `\n` (CRLF in the message are read as LF), and the line
/// break before the next boundary belongs to the boundary, so it is dropped.
pub fn leaf_parts(raw: &str) -> Vec<(String, String)> {
    fn walk(entity: &str, out: &mut Vec<(String, String)>) {
        match subparts(entity) {
            Some(parts) => parts.into_iter().for_each(|p| walk(p, out)),
            None => {
                let ctype = header(entity, "content-type").unwrap_or_default();
                let body = String::from_utf8_lossy(&leaf_body(entity)).into_owned();
                let body = body.strip_suffix('\n').unwrap_or(&body).to_owned();
                out.push((ctype, body));
            }
        }
    }
    let mut out = Vec::new();
    walk(&raw.replace("\r\n", "\n"), &mut out);
    out
}

fn decode_qp(body: &str) -> Vec<u8> {
    let soft = body.replace("=\n", "");
    let b = soft.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`).
fn decode_words(head: &str) -> String {
    let mut out = String::new();
    let mut rest = head;
    while let Some(start) = rest.find("=?") {
        out.push_str(&rest[..start]);
        let word = &rest[start + 2..];
        // charset ? encoding ? text ?=
        let decoded = word.splitn(3, '?').collect::<Vec<_>>();
        let parsed = match decoded.as_slice() {
            [_charset, enc, tail] => tail.find("?=").and_then(|end| {
                let text = &tail[..end];
                let bytes = match *enc {
                    "b" | "B" => B64.decode(text).ok()?,
                    "q" | "Q" => decode_qp(&text.replace('_', " ")),
                    _ => return None,
                };
                Some((
                    String::from_utf8_lossy(&bytes).into_owned(),
                    &tail[end + 2..],
                ))
            }),
            _ => None,
        };
        match parsed {
            Some((text, after)) => {
                out.push_str(&text);
                rest = after;
            }
            None => {
                out.push_str("=?");
                rest = word;
            }
        }
    }
    out.push_str(rest);
    out
}
