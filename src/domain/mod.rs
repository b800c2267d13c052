//! Parse-don't-validate types for user input: a value of these types is known to be valid.
//! Each rule is written once, here, and the OpenAPI document publishes it from here (the
//! `*_schema` functions the DTOs name), so a client validating with the document and the
//! server never disagree.

mod password;

pub use password::Password;

use unicode_security::MixedScript as _;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

use crate::http::error::FieldError;

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

// ---------------------------------------------------------------------------------------------
// The rules as the OpenAPI document publishes them: each DTO field names one of these functions
// (`#[schema(schema_with = …)]`), and a test checks them against the rules above, character by
// character.

/// The username rule as a pattern.
pub const USERNAME_PATTERN: &str = "^[A-Za-z0-9._-]{3,50}$";
/// A name: no control character anywhere.
const NAME_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// A name that must not be empty once trimmed: no control character, and one character that is
/// not a space.
const VISIBLE_NAME_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u001f\\u007f-\\u009f \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// Free text that says something: one character that is not a space (nor NUL).
const SOME_TEXT_PATTERN: &str = "^[^\\u0000]*[^\\u0000\\t\\n\\u000b\\f\\r\\u0085 \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$";
/// An avatar URL, or nothing.
const AVATAR_URL_PATTERN: &str = "^(https?://[^\\u0000-\\u001f\\u007f-\\u009f \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+)?$";

fn text_schema(min: Option<usize>, max: usize, pattern: &str, nullable: bool) -> Object {
    let string = match nullable {
        true => SchemaType::from_iter([Type::String, Type::Null]),
        false => SchemaType::new(Type::String),
    };
    ObjectBuilder::new()
        .schema_type(string)
        .min_length(min)
        .max_length(Some(max))
        .pattern(Some(pattern))
        .build()
}

pub fn username_schema() -> Object {
    let mut schema = text_schema(Some(3), 50, USERNAME_PATTERN, false);
    schema.description = Some("Unique case-insensitively.".into());
    schema
}

/// A display or full name, which may be `null`.
pub fn display_name_schema() -> Object {
    text_schema(None, 255, NAME_PATTERN, true)
}

pub fn team_name_schema() -> Object {
    text_schema(Some(1), 255, VISIBLE_NAME_PATTERN, false)
}

pub fn key_name_schema() -> Object {
    text_schema(Some(1), 100, NAME_PATTERN, false)
}

/// An API key's new name, where `null` leaves it.
pub fn nullable_key_name_schema() -> Object {
    text_schema(Some(1), 100, NAME_PATTERN, true)
}

/// A required comment (a denial's reason): 1–2000 characters, not only spaces.
pub fn comment_schema() -> Object {
    let mut schema = text_schema(Some(1), 2000, SOME_TEXT_PATTERN, false);
    schema.description = Some("Why the request is denied (required).".into());
    schema
}

/// An avatar URL, which may be `null`.
pub fn avatar_url_schema() -> Object {
    text_schema(None, 500, AVATAR_URL_PATTERN, true)
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
    pub fn finish<T>(
        self,
        value: impl FnOnce() -> Option<T>,
    ) -> Result<T, crate::http::error::ApiError> {
        if self.0.is_empty()
            && let Some(value) = value()
        {
            return Ok(value);
        }
        Err(crate::http::error::ApiError::Validation(self.0))
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

    /// The `pattern` a rule publishes.
    fn published_pattern(schema: Object) -> regex::Regex {
        let pattern = schema.pattern.expect("a pattern");
        // Class shorthands mean other sets in other engines (Python's `\s` has U+001C-U+001F,
        // JavaScript's U+FEFF): the published patterns spell their classes out.
        assert!(
            !pattern.contains("\\s") && !pattern.contains("\\S"),
            "{pattern}"
        );
        regex::Regex::new(&pattern).expect("a valid pattern")
    }

    /// For every character, alone or around a letter, the published patterns of usernames,
    /// names and the deny comment accept exactly what these rules accept, so a client validating with
    /// the document and the server never disagree (the fuzzer checks this from outside).
    #[test]
    fn the_published_patterns_say_what_the_rules_do() {
        let team = published_pattern(team_name_schema());
        let display = published_pattern(display_name_schema());
        let comment = published_pattern(comment_schema());
        let avatar = published_pattern(avatar_url_schema());
        let key_name = published_pattern(key_name_schema());
        let username = published_pattern(username_schema());
        for c in (0..=0x10_ffff_u32).filter_map(char::from_u32) {
            for value in [c.to_string(), format!("a{c}"), format!("{c}a")] {
                let name = parse_name(&value, 255, "Name");
                assert_eq!(
                    team.is_match(&value),
                    matches!(name, Ok(Some(_))),
                    "team {value:?}"
                );
                assert_eq!(display.is_match(&value), name.is_ok(), "display {value:?}");
                assert_eq!(
                    key_name.is_match(&value),
                    name.is_ok(),
                    "key name {value:?}"
                );
                let user = format!("ab{value}");
                assert_eq!(
                    username.is_match(&user),
                    Username::parse(&user).is_ok(),
                    "username {user:?}"
                );
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
        for n in [2, 3, 50, 51] {
            let user = "a".repeat(n);
            assert_eq!(
                username.is_match(&user),
                Username::parse(&user).is_ok(),
                "{n}"
            );
        }
    }
}
