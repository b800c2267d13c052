//! Secrets: each realm's token signing secrets (with the older ones that still verify during a
//! rotation) and the keys that seal secrets at rest. Production refuses a missing, short or
//! published one. Every secret is a [`SecretString`]: its `Debug` shows nothing.

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, Environment, Lookup, config_error, get};
use crate::credentials::seal::{SealKey, SealKeys};

/// The secret used when none is configured; accepted only when `ENVIRONMENT=local`.
pub const DEV_SECRET: &str = "dev-only-insecure-secret-change-me-in-production";
/// Secrets published in this repository (the development default, the examples of
/// `.env.example` and the docs): production refuses every one of them.
pub const KNOWN_SECRETS: &[&str] = &[
    DEV_SECRET,
    "change-me-to-a-long-random-string-of-64-chars",
    "change-me-mfa-key-of-at-least-32-characters",
];
/// The shortest secret accepted in production.
pub const MIN_SECRET_LEN: usize = 32;

/// Checks one secret (`var` names it in errors) for `environment`.
fn check_secret(var: &str, value: &str, environment: Environment) -> Result<(), ConfigError> {
    if environment != Environment::Prod {
        return Ok(());
    }
    if KNOWN_SECRETS.contains(&value.trim()) {
        return Err(config_error(
            var,
            "is a published example or development secret; set a real one",
        ));
    }
    if value.len() < MIN_SECRET_LEN {
        return Err(config_error(
            var,
            format!("is shorter than {MIN_SECRET_LEN} characters"),
        ));
    }
    Ok(())
}

/// A comma-separated list of secrets (`…_PREVIOUS`, `MFA_ENCRYPTION_KEYS`).
fn secret_list(lookup: Lookup, name: &str) -> Vec<SecretString> {
    get(lookup, name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(SecretString::from)
                .collect()
        })
        .unwrap_or_default()
}

/// A realm's token secrets, newest first, and the variable the signing one came from: the
/// realm's own variable (one of `names`) or `SECRET_KEY`, each with its `_PREVIOUS` list of
/// older secrets that still verify during a rotation.
pub(super) fn signing_secrets(
    lookup: Lookup,
    names: &[&str],
    environment: Environment,
) -> Result<(Vec<SecretString>, String), ConfigError> {
    let var = names
        .iter()
        .chain(std::iter::once(&"SECRET_KEY"))
        .find(|name| get(lookup, name).is_some());
    let Some(var) = var else {
        return match environment {
            Environment::Prod => Err(config_error(
                &format!("SECRET_KEY (or {})", names[0]),
                "must be set when ENVIRONMENT=prod",
            )),
            Environment::Local => Ok((
                vec![SecretString::from(DEV_SECRET)],
                "the built-in development secret (local only)".to_owned(),
            )),
        };
    };
    let newest = SecretString::from(get(lookup, var).unwrap_or_default().trim());
    check_secret(var, newest.expose_secret(), environment)?;
    let mut secrets = vec![newest];
    let previous = format!("{var}_PREVIOUS");
    for old in secret_list(lookup, &previous) {
        check_secret(&previous, old.expose_secret(), environment)?;
        secrets.push(old);
    }
    Ok((secrets, (*var).to_owned()))
}

/// The keys that seal secrets at rest: `MFA_ENCRYPTION_KEYS` (comma-separated, newest first) or
/// `MFA_ENCRYPTION_KEY`; each key's id is derived from it, so the same secret has the same id
/// in either form. Without either, one key is derived from the SLM token secret (local only).
/// Returns the keys and where they came from, for `check`.
pub(super) fn seal_keys(
    lookup: Lookup,
    environment: Environment,
    slm_secret: &SecretString,
) -> Result<(SealKeys, &'static str), ConfigError> {
    // The variable named in errors, where the keys came from (for `check`), the secrets.
    let (var, source, secrets): (&str, &'static str, Vec<SecretString>) = match (
        get(lookup, "MFA_ENCRYPTION_KEYS"),
        get(lookup, "MFA_ENCRYPTION_KEY"),
    ) {
        (Some(_), _) => (
            "MFA_ENCRYPTION_KEYS",
            "MFA_ENCRYPTION_KEYS",
            secret_list(lookup, "MFA_ENCRYPTION_KEYS"),
        ),
        (None, Some(one)) => (
            "MFA_ENCRYPTION_KEY",
            "MFA_ENCRYPTION_KEY",
            vec![SecretString::from(one.trim())],
        ),
        (None, None) if environment == Environment::Prod => {
            return Err(config_error(
                "MFA_ENCRYPTION_KEYS",
                "must be set when ENVIRONMENT=prod",
            ));
        }
        (None, None) => (
            "MFA_ENCRYPTION_KEY",
            "the SLM token secret (derived; local only)",
            vec![SecretString::from(format!(
                "derived:{}",
                slm_secret.expose_secret()
            ))],
        ),
    };
    if secrets.is_empty() {
        return Err(config_error(var, "names no key"));
    }
    for secret in &secrets {
        check_secret(var, secret.expose_secret(), environment)?;
    }
    Ok((SealKeys(secrets.iter().map(SealKey::new).collect()), source))
}
