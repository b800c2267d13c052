//! A new password, checked against the policy. It stays a [`SecretString`] from the request
//! body to the hasher: nothing prints it.

use std::collections::HashSet;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};

use crate::credentials::password::Scheme;

static COMMON_PASSWORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// A password that meets the policy: 8–128 characters, not the username or e-mail, not in the
/// shipped blocklist of common passwords, and no longer than the realm's hash reads.
#[derive(Clone)]
pub struct Password(SecretString);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Checks `raw` against the policy; `username` and `email` are the account's own, and
    /// `scheme` the realm's (bcrypt reads 72 bytes, and the AutoBot backend's `bcrypt.checkpw`
    /// refuses longer passwords rather than truncate them).
    pub fn parse(
        raw: &SecretString,
        username: &str,
        email: Option<&str>,
        scheme: Scheme,
    ) -> Result<Self, String> {
        let text = raw.expose_secret();
        let len = text.chars().count();
        if len < 8 {
            return Err("Password must be at least 8 characters long".into());
        }
        if len > 128 {
            return Err("Password must be at most 128 characters long".into());
        }
        if let Some(max) = scheme.max_password_bytes()
            && text.len() > max
        {
            return Err(format!(
                "Password must be at most {max} bytes in UTF-8 in this realm"
            ));
        }
        let lower = text.to_lowercase();
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
        Ok(Self(raw.clone()))
    }

    /// The password, for the hasher.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARGON: Scheme = Scheme::Argon2id;
    const BCRYPT: Scheme = Scheme::Bcrypt { cost: 4 };

    fn check(raw: &str, username: &str, email: Option<&str>, scheme: Scheme) -> bool {
        Password::parse(&raw.into(), username, email, scheme).is_ok()
    }

    #[test]
    fn the_policy() {
        assert!(check("correct horse battery", "alice", None, ARGON));
        assert!(!check("short", "alice", None, ARGON));
        assert!(!check(&"x".repeat(129), "alice", None, ARGON));
        assert!(!check("AliceAlice", "alicealice", None, ARGON));
        assert!(!check(
            "alice@example.com",
            "bob",
            Some("alice@example.com"),
            ARGON
        ));
        assert!(!check("password123", "bob", None, ARGON));
        assert!(!check("Password1", "bob", None, ARGON));
        assert!(!check("Monkey2026!", "bob", None, ARGON));
        assert!(!check(&"é".repeat(40), "bob", None, BCRYPT), "80 bytes");
        assert!(check(&"é".repeat(40), "bob", None, ARGON));
        assert!(check(&"e".repeat(72), "bob", None, BCRYPT));
    }

    #[test]
    fn it_never_prints() {
        let password = Password::parse(&"s3cret-value!".into(), "bob", None, ARGON).expect("ok");
        assert_eq!(format!("{password:?}"), "Password(***)");
    }
}
