//! Settings from variable maps: defaults, production's refusals, names in errors.

use super::*;
use secrecy::ExposeSecret;
use std::collections::HashMap;

fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    Settings::from_lookup(&|name| map.get(name).cloned())
}

#[test]
fn local_defaults_are_usable() {
    let s = settings(&[]).expect("defaults");
    assert_eq!(s.http.bind_addr.port(), 8000);
    assert_eq!(s.slm_db.max_connections, 20);
    assert_eq!(s.autobot_db.max_connections, 40);
    assert_eq!(
        s.redis.invalidation_channel.as_deref(),
        Some("user:cache:invalidate")
    );
    assert_eq!(
        s.redis.rbac_channel.as_deref(),
        Some("autobot:rbac:invalidate")
    );
    assert_eq!(
        s.redis.rbac_cache_key.as_deref(),
        Some("rbac:perm:{user_id}")
    );
    assert_eq!(s.passwords.autobot_scheme, Scheme::Bcrypt { cost: 12 });
    assert_eq!(s.limits.lockout.threshold, 5);
    assert_eq!(s.tokens.slm_access_ttl, Duration::from_secs(1440 * 60));
    assert_eq!(s.tokens.autobot_access_ttl, Duration::from_secs(1800));
    assert_eq!(s.tokens.session_idle, Duration::from_secs(480 * 60));
    assert_eq!(s.slm_default_role, "admin");
    let both = settings(&[("ACCESS_TOKEN_EXPIRE_MINUTES", "15")]).expect("both");
    assert_eq!(both.tokens.slm_access_ttl, Duration::from_secs(900));
    assert_eq!(both.tokens.autobot_access_ttl, Duration::from_secs(900));
    let one = settings(&[
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "15"),
        ("SLM_ACCESS_TOKEN_EXPIRE_MINUTES", "60"),
    ])
    .expect("one");
    assert_eq!(one.tokens.slm_access_ttl, Duration::from_secs(3600));
    assert_eq!(one.tokens.autobot_access_ttl, Duration::from_secs(900));
    let err = settings(&[("SLM_DEFAULT_ROLE", "owner")]).expect_err("unknown role");
    assert!(err.to_string().contains("SLM_DEFAULT_ROLE"), "{err}");
}

/// What production needs besides secrets: where the databases are.
const PROD_DATABASES: [(&str, &str); 2] = [
    (
        "SLM_DATABASE_URL",
        "postgres://slm@db.internal:5432/slm_users",
    ),
    ("AUTOBOT_POSTGRES_HOST", "autobot-db.internal"),
];

fn prod(extra: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut vars = vec![("ENVIRONMENT", "prod")];
    vars.extend(PROD_DATABASES);
    vars.extend(extra);
    settings(&vars)
}

#[test]
fn prod_refuses_missing_default_or_short_secrets() {
    let err = prod(&[]).expect_err("missing");
    assert!(err.to_string().contains("SECRET_KEY"), "{err}");
    let err = prod(&[("SECRET_KEY", secrets::DEV_SECRET)]).expect_err("default");
    assert!(err.to_string().contains("SECRET_KEY"), "{err}");
    let err = prod(&[("SECRET_KEY", "short")]).expect_err("short");
    assert!(err.to_string().contains("shorter"), "{err}");
    let long = "x".repeat(40);
    let err = prod(&[("SECRET_KEY", &long)]).expect_err("no MFA key");
    assert!(err.to_string().contains("MFA_ENCRYPTION_KEY"), "{err}");
    let mfa = "m".repeat(40);
    prod(&[("SECRET_KEY", &long), ("MFA_ENCRYPTION_KEY", &mfa)]).expect("long secrets");
}

#[test]
fn prod_refuses_every_secret_this_repository_publishes() {
    let long = "x".repeat(40);
    // Every value of a secret variable in .env.example, commented out or not.
    let example = include_str!("../../.env.example");
    let mut published = 0;
    for line in example.lines() {
        let line = line.trim_start_matches(['#', ' ']);
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value
            .split_whitespace()
            .next()
            .filter(|v| !v.starts_with('#'))
            .unwrap_or("");
        if !(name.contains("SECRET") || name.starts_with("MFA_ENCRYPTION_KEY")) || value.is_empty()
        {
            continue;
        }
        published += 1;
        let vars: Vec<(&str, &str)> = if name.starts_with("MFA_") {
            vec![("SECRET_KEY", &long), (name, value)]
        } else {
            vec![(name, value), ("MFA_ENCRYPTION_KEY", &long)]
        };
        let err = prod(&vars).expect_err(line);
        assert!(err.to_string().contains(name), "{line}: {err}");
    }
    assert!(
        published >= 2,
        "the example publishes its secrets: {published}"
    );
}

#[test]
fn prod_needs_the_databases_named() {
    let long = "x".repeat(40);
    let err = settings(&[
        ("ENVIRONMENT", "prod"),
        ("SECRET_KEY", &long),
        ("MFA_ENCRYPTION_KEY", &long),
    ])
    .expect_err("no database");
    assert!(err.to_string().contains("SLM_DATABASE_URL"), "{err}");
}

#[test]
fn older_secrets_verify_and_the_newest_signs() {
    let s = settings(&[
        ("SECRET_KEY", "new-secret"),
        ("SECRET_KEY_PREVIOUS", "old-1, old-2"),
        ("AUTOBOT_JWT_SECRET", "autobot-new"),
    ])
    .expect("rotation");
    let exposed = |secrets: &[SecretString]| -> Vec<String> {
        secrets
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect()
    };
    assert_eq!(
        exposed(&s.tokens.slm_secrets),
        ["new-secret", "old-1", "old-2"]
    );
    assert_eq!(s.tokens.slm_source, "SECRET_KEY");
    assert_eq!(
        exposed(&s.tokens.autobot_secrets),
        ["autobot-new"],
        "its own variable, its own list"
    );
    assert_eq!(s.tokens.autobot_source, "AUTOBOT_JWT_SECRET");
    let s = settings(&[]).expect("local");
    assert!(
        s.tokens.slm_source.contains("development"),
        "{}",
        s.tokens.slm_source
    );
}

#[test]
fn the_mfa_keys_source_is_the_variable_that_named_them() {
    let s = settings(&[]).expect("local");
    assert!(
        s.seal_key_source.contains("derived"),
        "{}",
        s.seal_key_source
    );
    let s = settings(&[("MFA_ENCRYPTION_KEY", "one-key")]).expect("one key");
    assert_eq!(s.seal_key_source, "MFA_ENCRYPTION_KEY");
    let s = settings(&[("MFA_ENCRYPTION_KEYS", "new-key,old-key")]).expect("two keys");
    assert_eq!(
        (s.seal_key_source, s.seal_keys.0.len()),
        ("MFA_ENCRYPTION_KEYS", 2)
    );
}

#[test]
fn metrics_leave_the_public_port_in_production() {
    let long = "x".repeat(40);
    let s = prod(&[("SECRET_KEY", &long), ("MFA_ENCRYPTION_KEY", &long)]).expect("prod");
    assert_eq!(
        s.http.metrics_addr,
        Some(SocketAddr::from(([127, 0, 0, 1], 9100)))
    );
    let s = settings(&[]).expect("local");
    assert_eq!(s.http.metrics_addr, None, "local: on the API's port");
    let s = settings(&[("METRICS_ADDR", "0.0.0.0:9200")]).expect("explicit");
    assert_eq!(
        s.http.metrics_addr,
        Some(SocketAddr::from(([0, 0, 0, 0], 9200)))
    );
}

#[test]
fn bad_values_name_their_variable() {
    let err = settings(&[("ACCESS_TOKEN_EXPIRE_MINUTES", "soon")]).expect_err("bad");
    assert!(
        err.to_string().contains("ACCESS_TOKEN_EXPIRE_MINUTES"),
        "{err}"
    );
    let err = settings(&[("SLM_DATABASE_URL", "mysql://x")]).expect_err("bad url");
    assert!(err.to_string().contains("SLM_DATABASE_URL"), "{err}");
    let err = settings(&[("TRUSTED_PROXIES", "nonsense")]).expect_err("bad cidr");
    assert!(err.to_string().contains("TRUSTED_PROXIES"), "{err}");
}

#[test]
fn postgres_parts_are_accepted() {
    let s = settings(&[
        ("AUTOBOT_POSTGRES_HOST", "10.0.0.5"),
        ("AUTOBOT_POSTGRES_PORT", "6432"),
        ("AUTOBOT_POSTGRES_DB", "autobot"),
        ("AUTOBOT_POSTGRES_USER", "svc"),
    ])
    .expect("parts");
    assert_eq!(s.autobot_db.options.get_host(), "10.0.0.5");
    assert_eq!(s.autobot_db.options.get_port(), 6432);
    assert_eq!(s.autobot_db.options.get_database(), Some("autobot"));
}

/// Formatting the settings (a panic message, a debug log) shows no secret and no password.
#[test]
fn the_settings_format_without_their_secrets() {
    let s = settings(&[
        ("SECRET_KEY", "token-secret-that-must-not-show-up"),
        ("MFA_ENCRYPTION_KEY", "seal-key-that-must-not-show-up"),
        ("ADMIN_BOOTSTRAP_PASSWORD", "bootstrap-password-not-to-show"),
        (
            "SLM_DATABASE_URL",
            "postgres://slm:db-password-not-to-show@db.internal/slm_users",
        ),
        ("AUTOBOT_POSTGRES_PASSWORD", "parts-password-not-to-show"),
        (
            "REDIS_URL",
            "redis://:redis-password-not-to-show@127.0.0.1:6379",
        ),
    ])
    .expect("settings");
    let printed = format!("{s:?} {s:#?}");
    for secret in [
        "token-secret",
        "seal-key",
        "bootstrap-password",
        "db-password",
        "parts-password",
        "redis-password",
    ] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert!(
        printed.contains("db.internal"),
        "the rest still shows: {printed}"
    );
}
