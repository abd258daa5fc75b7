//! A wrapper for credentials (token bearer text, SMTP passwords) whose
//! `Debug` and `Display` never show the value, so a secret cannot leak through
//! a log line, an error message or a `{:?}` by accident. The only way to the
//! value is the explicit [`Secret::expose`].

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw value. Call sites are few and reviewed: the Apple probe's
    /// `Authorization` header and the SMTP login.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_the_value() {
        let s = Secret::new("canary-7f3a");
        assert!(!format!("{s:?}").contains("canary"));
        assert!(!format!("{s}").contains("canary"));
        assert_eq!(s.expose(), "canary-7f3a");
    }
}
