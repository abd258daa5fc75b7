//! Why a file is not a readable token: one variant per rejection class,
//! each with a human cause and never the file's content.

use std::fmt;

/// Why a file is not a readable token. `Display` is a human cause, meant to
/// follow `cannot read token PATH: `; it never contains file content except a
/// malformed `expDate` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("file is larger than 64 KiB; a content token is about 1 KiB")]
    TooLarge,
    #[error("file is empty or holds only whitespace (a half-written download?)")]
    Empty,
    #[error(
        "file is an Automated Device Enrollment server token (S/MIME .p7m), \
         not an Apps and Books content token"
    )]
    AdeServerToken,
    #[error("file is a PEM {kind}, not an Apps and Books content token")]
    Pem { kind: PemKind },
    #[error("file is not Base64 text: {problem}")]
    NotBase64 { problem: Base64Problem },
    #[error("{} is not JSON: {problem}", if *.raw { "file" } else { "decoded Base64" })]
    NotJson {
        problem: JsonProblem,
        /// The file itself looked like JSON (started with `{`), rather than Base64.
        raw: bool,
    },
    #[error("JSON is {found}, not an object")]
    NotObject { found: JsonKind },
    #[error("JSON object has no \"expDate\" key")]
    MissingExpDate,
    #[error("JSON object has no \"token\" key")]
    MissingToken,
    #[error("\"expDate\" is {found}, not a string")]
    ExpDateNotString { found: JsonKind },
    #[error("\"token\" is {found}, not a string")]
    TokenNotString { found: JsonKind },
    /// Shaped like Apple's date but no such instant (30 February, hour 25).
    #[error("expDate {value} is not a valid date")]
    ImpossibleDate { value: DateText },
    #[error("expDate {value} is not a date like 2027-08-15T18:13:52-0700")]
    UnparseableDate { value: DateText },
    /// Why a push certificate file does not read.
    #[error(transparent)]
    Apns(#[from] super::apns::ApnsError),
    /// An ADE server token (`.p7m`) without a readable expiry.
    #[error(transparent)]
    Ade(#[from] super::ade::AdeProblem),
}

/// A malformed `expDate` as an error shows it: quoted when it could only be
/// a date (at most 40 characters of digits, spaces and `-+:./,TZtz`), so a
/// misplaced secret in that key is never echoed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateText {
    Shown(String),
    Hidden { chars: usize },
}

impl fmt::Display for DateText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateText::Shown(value) => write!(f, "\"{value}\""),
            DateText::Hidden { chars } => write!(f, "(a text of {chars} characters, not shown)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemKind {
    Certificate,
    PrivateKey,
    Other,
}

impl fmt::Display for PemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PemKind::Certificate => "certificate (an APNs push certificate?)",
            PemKind::PrivateKey => "private key",
            PemKind::Other => "file (-----BEGIN ...)",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Problem {
    /// NUL, control or non-ASCII bytes.
    Binary,
    /// Saved as UTF-16 (a "Unicode" save in Windows editors).
    Utf16,
    /// Printable text outside the standard Base64 alphabet.
    InvalidCharacter,
    /// Length or padding wrong: the text stops mid-way.
    Truncated,
}

impl fmt::Display for Base64Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Base64Problem::Binary => "it holds binary data",
            Base64Problem::Utf16 => "it is saved as UTF-16; save it as plain text (UTF-8)",
            Base64Problem::InvalidCharacter => {
                "it holds characters outside the standard Base64 alphabet"
            }
            Base64Problem::Truncated => {
                "its length or padding is wrong (truncated or half-written?)"
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonProblem {
    NotUtf8,
    /// The text ends inside the JSON value.
    Truncated {
        line: usize,
        column: usize,
    },
    Syntax {
        line: usize,
        column: usize,
    },
}

impl fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            JsonProblem::NotUtf8 => f.write_str("it is binary data, not UTF-8 text"),
            JsonProblem::Truncated { line, column } => write!(
                f,
                "it ends early at line {line} column {column} (truncated or half-written?)"
            ),
            JsonProblem::Syntax { line, column } => {
                write!(f, "syntax error at line {line} column {column}")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        })
    }
}
