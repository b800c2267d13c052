//! Parse-don't-validate types for user input. A value of these types is known to be valid.

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::error::FieldError;

/// A username: 3–64 letters, digits, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let len = raw.chars().count();
        if !(3..=64).contains(&len) {
            return Err("Username must be 3 to 64 characters long".into());
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err("Username may contain only letters, digits, '.', '_' and '-'".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A syntactically valid e-mail address (the domain is stored lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

const EMAIL_ERROR: &str = "value is not a valid email address";

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.len() > 254 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EMAIL_ERROR.into());
        }
        let Some((local, domain)) = raw.rsplit_once('@') else {
            return Err(EMAIL_ERROR.into());
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.chars().all(char::is_alphabetic) && tld.len() >= 2);
        if !(local_ok && domain_ok) {
            return Err(EMAIL_ERROR.into());
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A full name of at most 200 characters (trimmed; empty means none).
pub fn parse_full_name(raw: &str) -> Result<Option<String>, String> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > 200 {
        return Err("Full name must be at most 200 characters".into());
    }
    if trimmed.chars().any(char::is_control) {
        return Err("Full name must not contain control characters".into());
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

static COMMON_PASSWORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// A password that meets the policy: 8–128 characters, not the username or e-mail, not in the
/// shipped blocklist of common passwords.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Checks `raw` against the policy; `username` and `email` are the account's own.
    pub fn parse(raw: &str, username: &str, email: Option<&str>) -> Result<Self, String> {
        let len = raw.chars().count();
        if len < 8 {
            return Err("Password must be at least 8 characters long".into());
        }
        if len > 128 {
            return Err("Password must be at most 128 characters long".into());
        }
        let lower = raw.to_lowercase();
        if lower == username.to_lowercase() {
            return Err("Password must not be the same as the username".into());
        }
        if email.is_some_and(|e| {
            let e = e.to_lowercase();
            lower == e || e.split('@').next().is_some_and(|local| lower == local)
        }) {
            return Err("Password must not be the same as the email".into());
        }
        // "Password1!" and "monkey2026" are as guessable as their stems.
        let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
        if COMMON_PASSWORDS.contains(&lower) || (stem.len() >= 4 && COMMON_PASSWORDS.contains(stem))
        {
            return Err("Password is too common".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Collects field errors while parsing a request, so that every bad field is reported at once
/// as FastAPI does.
#[derive(Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    /// Records the error of `result` at `["body", field]` and returns its value.
    pub fn body<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(msg) => {
                self.0.push(FieldError::body(field, msg));
                None
            }
        }
    }

    /// Adds an error directly.
    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// `Ok(value)` if no error was recorded, else a 422 with all of them.
    pub fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, crate::error::ApiError> {
        if self.0.is_empty()
            && let Some(value) = value()
        {
            return Ok(value);
        }
        Err(crate::error::ApiError::Validation(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("alice.b-c_1").is_ok());
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("alice@x").is_err());
        assert!(Username::parse("ålice").is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("Alice@Example.COM").expect("valid").as_str(),
            "Alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@@b.com",
            "a@-b.com",
            "a..b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("correct horse battery", "alice", None).is_ok());
        assert!(Password::parse("short", "alice", None).is_err());
        assert!(Password::parse(&"x".repeat(129), "alice", None).is_err());
        assert!(Password::parse("AliceAlice", "alicealice", None).is_err());
        assert!(Password::parse("alice@example.com", "bob", Some("alice@example.com")).is_err());
        assert!(Password::parse("password123", "bob", None).is_err());
        assert!(Password::parse("Password1", "bob", None).is_err());
        assert!(Password::parse("Monkey2026!", "bob", None).is_err());
        assert_eq!(
            format!(
                "{:?}",
                Password::parse("s3cret-value!", "bob", None).expect("ok")
            ),
            "Password(***)"
        );
    }

    #[test]
    fn full_names() {
        assert_eq!(
            parse_full_name("  Alice A. ").expect("ok").as_deref(),
            Some("Alice A.")
        );
        assert_eq!(parse_full_name("").expect("ok"), None);
        assert!(parse_full_name(&"x".repeat(201)).is_err());
    }
}
