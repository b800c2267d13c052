//! Parse-don't-validate types for user input. A value of these types is known to be valid.

use std::collections::HashSet;
use std::sync::LazyLock;

use unicode_security::MixedScript as _;

use crate::error::FieldError;

/// A username: 3–50 letters, digits, `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let len = raw.chars().count();
        if !(3..=50).contains(&len) {
            return Err("Username must be 3 to 50 characters long".into());
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
        // A DNS name of at least two labels; the top-level one is not all digits (that would
        // be an IP address) and may be an IDN in its `xn--` form. (Its length is DNS's
        // business: the schema's `format: email` says no more.)
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
                .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
        if !(local_ok && domain_ok) {
            return Err(EMAIL_ERROR.into());
        }
        // A part that mixes scripts (a Cyrillic `а` among Latin letters) exists only to look
        // like another address (Unicode TR39); digits and punctuation belong to every script.
        if ![local]
            .into_iter()
            .chain(labels)
            .all(|part| part.is_single_script())
        {
            return Err(format!("{EMAIL_ERROR}: it mixes scripts"));
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The confusable skeleton (Unicode TR39) of an e-mail address, lower-cased first: two
/// addresses with the same skeleton look alike (`carol@…` and `cаrol@…`, but also `rn` and
/// `m`). Only ever compared, never shown.
pub fn email_skeleton(email: &str) -> String {
    unicode_security::skeleton(&email.to_lowercase()).collect()
}

/// A name shown to people (a display name, a team name, a full name): at most `max`
/// characters and no control character anywhere (a tab or a newline at either end included),
/// as the published schema's `maxLength` and `pattern` say of what was sent; then trimmed of
/// spaces. Empty means none.
pub fn parse_name(raw: &str, max: usize, what: &str) -> Result<Option<String>, String> {
    if raw.chars().count() > max {
        return Err(format!("{what} must be at most {max} characters"));
    }
    if raw.chars().any(char::is_control) {
        return Err(format!("{what} must not contain control characters"));
    }
    let trimmed = raw.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

/// Free text (a bio, a reason, a comment): at most `max` characters, kept as written.
pub fn parse_text(raw: &str, max: usize, what: &str) -> Result<Option<String>, String> {
    if raw.chars().count() > max {
        return Err(format!("{what} must be at most {max} characters"));
    }
    Ok((!raw.trim().is_empty()).then(|| raw.to_owned()))
}

/// An avatar URL: empty (none), or `http(s)://` and then no whitespace or control character, at
/// most 500 characters: exactly the published pattern, with nothing trimmed.
pub fn parse_avatar_url(raw: &str) -> Result<Option<String>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"));
    let ok = raw.chars().count() <= 500
        && rest.is_some_and(|rest| {
            !rest.is_empty() && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
        });
    if ok {
        Ok(Some(raw.to_owned()))
    } else {
        Err("URL must be an http(s) URL of at most 500 characters".into())
    }
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
    /// Checks `raw` against the policy; `username` and `email` are the account's own, and
    /// `max_bytes` the limit of the realm's hash (bcrypt reads 72 bytes, and the AutoBot
    /// backend's `bcrypt.checkpw` refuses longer passwords rather than truncate them).
    pub fn parse(
        raw: &str,
        username: &str,
        email: Option<&str>,
        max_bytes: Option<usize>,
    ) -> Result<Self, String> {
        let len = raw.chars().count();
        if len < 8 {
            return Err("Password must be at least 8 characters long".into());
        }
        if len > 128 {
            return Err("Password must be at most 128 characters long".into());
        }
        if let Some(max) = max_bytes
            && raw.len() > max
        {
            return Err(format!(
                "Password must be at most {max} bytes in UTF-8 in this realm"
            ));
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
    fn look_alike_emails() {
        // Mixed scripts in the local part or in one label of the domain are refused.
        for bad in ["c\u{430}rol@example.com", "carol@ex\u{430}mple.com"] {
            let err = Email::parse(bad).expect_err(bad);
            assert!(err.contains("mixes scripts"), "{err}");
        }
        // One script per part is fine, whatever the script, and so are digits and signs.
        for good in [
            "\u{441}\u{43e}\u{440}@example.com",
            "j\u{fc}rgen.m\u{fc}ller+1@example.de",
            "\u{5c71}\u{7530}@example.jp",
            "bob-2@example.com",
        ] {
            assert!(Email::parse(good).is_ok(), "{good} refused");
        }
        // Whole-script look-alikes share a skeleton with what they imitate; so do `rn` and `m`.
        let skeleton = |e: &str| email_skeleton(Email::parse(e).expect(e).as_str());
        assert_eq!(
            skeleton("\u{441}\u{43e}\u{440}@example.com"),
            skeleton("cop@example.com")
        );
        assert_eq!(skeleton("rnary@example.com"), skeleton("mary@example.com"));
        assert_eq!(skeleton("Carol@Example.com"), skeleton("carol@example.com"));
        assert_ne!(
            skeleton("carol@example.com"),
            skeleton("caro1x@example.com")
        );
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("correct horse battery", "alice", None, None).is_ok());
        assert!(Password::parse("short", "alice", None, None).is_err());
        assert!(Password::parse(&"x".repeat(129), "alice", None, None).is_err());
        assert!(Password::parse("AliceAlice", "alicealice", None, None).is_err());
        assert!(
            Password::parse("alice@example.com", "bob", Some("alice@example.com"), None).is_err()
        );
        assert!(Password::parse("password123", "bob", None, None).is_err());
        assert!(Password::parse("Password1", "bob", None, None).is_err());
        assert!(Password::parse("Monkey2026!", "bob", None, None).is_err());
        assert!(
            Password::parse(&"é".repeat(40), "bob", None, Some(72)).is_err(),
            "80 bytes"
        );
        assert!(Password::parse(&"e".repeat(72), "bob", None, Some(72)).is_ok());
        assert_eq!(
            format!(
                "{:?}",
                Password::parse("s3cret-value!", "bob", None, None).expect("ok")
            ),
            "Password(***)"
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            parse_name("  Alice A. ", 255, "Name")
                .expect("ok")
                .as_deref(),
            Some("Alice A.")
        );
        assert_eq!(parse_name("", 255, "Name").expect("ok"), None);
        assert!(parse_name(&"x".repeat(256), 255, "Name").is_err());
        assert!(parse_name("a\tb", 255, "Name").is_err());
        for edge in ["Team\t", "\nTeam", " Team\r\n", "\u{85}Team"] {
            assert!(parse_name(edge, 255, "Name").is_err(), "{edge:?}");
        }
        assert_eq!(
            parse_name("\u{a0}Team\u{3000}", 255, "Name").expect("ok"),
            Some("Team".to_owned()),
            "spaces that are not control characters are trimmed"
        );
        assert!(parse_avatar_url("https://example.com/a.png").is_ok());
        assert!(parse_avatar_url("javascript:alert(1)").is_err());
    }

    #[test]
    fn idn_top_level_domains_are_emails_too() {
        assert!(Email::parse("a@example.xn--p1ai").is_ok());
        assert!(Email::parse("a@10.0.0.1").is_err());
    }

    /// The `pattern` a schema publishes for one property.
    fn published_pattern<T: utoipa::PartialSchema>(property: &str) -> regex::Regex {
        let schema = serde_json::to_value(T::schema()).expect("schema");
        let pattern = schema["properties"][property]["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{property} has a pattern"));
        // Class shorthands mean other sets in other engines (Python's `\s` has U+001C-U+001F,
        // JavaScript's U+FEFF): the published patterns spell their classes out.
        assert!(
            !pattern.contains("\\s") && !pattern.contains("\\S"),
            "{property}: {pattern}"
        );
        regex::Regex::new(pattern).expect("a valid pattern")
    }

    /// For every character, alone or around a letter, the published patterns of names and of
    /// the deny comment accept exactly what these rules accept, so a client validating with
    /// the document and the server never disagree (the fuzzer checks this from outside).
    #[test]
    fn the_published_patterns_say_what_the_rules_do() {
        let team = published_pattern::<crate::teams::dto::CreateTeamRequest>("name");
        let display = published_pattern::<crate::users::dto::CreateUserRequest>("display_name");
        let comment = published_pattern::<crate::access_requests::dto::DenyRequest>("comment");
        let avatar = published_pattern::<crate::users::dto::UpdateUserRequest>("avatar_url");
        for c in (0..=0x10_ffff_u32).filter_map(char::from_u32) {
            for value in [c.to_string(), format!("a{c}"), format!("{c}a")] {
                let name = parse_name(&value, 255, "Name");
                assert_eq!(
                    team.is_match(&value),
                    matches!(name, Ok(Some(_))),
                    "team {value:?}"
                );
                assert_eq!(display.is_match(&value), name.is_ok(), "display {value:?}");
                let text = parse_text(&value, 2000, "Comment");
                let nul = value.contains('\0');
                assert_eq!(
                    comment.is_match(&value),
                    !nul && matches!(text, Ok(Some(_))),
                    "comment {value:?}"
                );
            }
            for value in [
                c.to_string(),
                format!("http://a{c}"),
                format!("https://{c}"),
            ] {
                let nul = value.contains('\0');
                let url = parse_avatar_url(&value);
                assert_eq!(
                    avatar.is_match(&value),
                    !nul && url.is_ok(),
                    "avatar {value:?}"
                );
            }
        }
    }
}
