//! Typed settings from the environment and `.env`, validated once at start-up (API.md §8).
//! Nothing else in the crate reads environment variables.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;

/// The secret used when none is configured; accepted only when `ENVIRONMENT=local`.
pub const DEV_SECRET: &str = "dev-only-insecure-secret-change-me-in-production";
/// The shortest secret accepted in production.
pub const MIN_SECRET_LEN: usize = 32;

/// A configuration problem, reported as one line naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {problem}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

fn config_error(var: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var: var.to_owned(),
        problem: problem.into(),
    }
}

/// Where the server runs; `prod` enforces strong secrets and JSON logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Local,
    Prod,
}

/// How to reach one realm's database.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub options: PgConnectOptions,
    pub max_connections: u32,
    /// How long a request waits for a connection before the realm answers 503.
    pub acquire_timeout: Duration,
}

/// Brute-force lockout policy.
#[derive(Clone, Copy, Debug)]
pub struct LockoutSettings {
    pub threshold: i32,
    pub window: Duration,
    pub duration: Duration,
}

/// The first SLM admin, created when the SLM realm has none.
#[derive(Clone, Debug)]
pub struct BootstrapSettings {
    pub username: String,
    pub password: Option<String>,
    pub force: bool,
}

/// Every setting of the server.
#[derive(Clone, Debug)]
pub struct Settings {
    pub environment: Environment,
    pub bind_addr: SocketAddr,
    pub slm_db: DatabaseSettings,
    pub autobot_db: DatabaseSettings,
    pub redis_url: String,
    /// Prefix of the keys this server writes in Redis (rate-limit counters).
    pub redis_key_prefix: String,
    pub slm_jwt_secret: String,
    pub autobot_jwt_secret: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Allowed CORS origins; empty means no cross-origin access, `*` any origin.
    pub cors_origins: Vec<String>,
    pub invalidation_channel: String,
    pub login_rate_limit_per_minute: u32,
    pub access_request_rate_limit_per_hour: u32,
    pub lockout: LockoutSettings,
    pub trusted_proxies: Vec<IpNet>,
    /// AES-256-GCM key for TOTP secrets at rest.
    pub mfa_encryption_key: [u8; 32],
    pub migrate_on_start: bool,
    pub bootstrap: BootstrapSettings,
    /// Concurrent Argon2 computations (each holds 19 MiB).
    pub hash_concurrency: usize,
    /// Password hashes allowed to wait for a slot before the server answers 503.
    pub hash_queue: usize,
    pub request_timeout: Duration,
}

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn get(lookup: Lookup, name: &str) -> Option<String> {
    lookup(name).filter(|v| !v.trim().is_empty())
}

fn parse_or<T: FromStr>(lookup: Lookup, name: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match get(lookup, name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e| config_error(name, format!("cannot parse {raw:?}: {e}"))),
    }
}

fn parse_bool(lookup: Lookup, name: &str, default: bool) -> Result<bool, ConfigError> {
    match get(lookup, name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => Err(config_error(
            name,
            format!("expected true or false, got {v:?}"),
        )),
    }
}

fn minutes(lookup: Lookup, name: &str, default: u64) -> Result<Duration, ConfigError> {
    let value: u64 = parse_or(lookup, name, default)?;
    if value == 0 {
        return Err(config_error(name, "must be at least 1"));
    }
    Ok(Duration::from_secs(value * 60))
}

/// Reads one realm's database settings: `<P>_DATABASE_URL`, or the AutoBot team's
/// `<P>_POSTGRES_HOST/PORT/DB/USER/PASSWORD` (plus `<P>_POSTGRES_SSLMODE`).
fn database(
    lookup: Lookup,
    prefix: &str,
    default_db: &str,
    default_pool: u32,
    default_acquire_ms: u64,
) -> Result<DatabaseSettings, ConfigError> {
    let url_var = format!("{prefix}_DATABASE_URL");
    let options = if let Some(url) = get(lookup, &url_var) {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(config_error(
                &url_var,
                "must be a postgres:// or postgresql:// URL",
            ));
        }
        let options = url
            .parse::<PgConnectOptions>()
            .map_err(|e| config_error(&url_var, format!("not a valid PostgreSQL URL: {e}")))?;
        if options.get_database().is_none_or(str::is_empty) {
            return Err(config_error(&url_var, "names no database"));
        }
        options
    } else {
        let var = |suffix: &str| format!("{prefix}_POSTGRES_{suffix}");
        let mut options = PgConnectOptions::new_without_pgpass()
            .host(&get(lookup, &var("HOST")).unwrap_or_else(|| "127.0.0.1".into()))
            .port(parse_or(lookup, &var("PORT"), 5432u16)?)
            .database(&get(lookup, &var("DB")).unwrap_or_else(|| default_db.into()))
            .username(&get(lookup, &var("USER")).unwrap_or_else(|| "postgres".into()));
        if let Some(password) = get(lookup, &var("PASSWORD")) {
            options = options.password(&password);
        }
        if let Some(mode) = get(lookup, &var("SSLMODE")) {
            let mode = mode
                .parse()
                .map_err(|e| config_error(&var("SSLMODE"), format!("{e}")))?;
            options = options.ssl_mode(mode);
        }
        if let Some(root) = get(lookup, &var("SSLROOTCERT")) {
            options = options.ssl_root_cert(root);
        }
        options
    };
    let pool_var = format!("{prefix}_DB_POOL_SIZE");
    let max_connections = parse_or(lookup, &pool_var, default_pool)?;
    if max_connections == 0 {
        return Err(config_error(&pool_var, "must be at least 1"));
    }
    let acquire_ms = parse_or(
        lookup,
        &format!("{prefix}_DB_ACQUIRE_TIMEOUT_MS"),
        default_acquire_ms,
    )?;
    Ok(DatabaseSettings {
        options: options.application_name("slm-server"),
        max_connections,
        acquire_timeout: Duration::from_millis(acquire_ms.max(50)),
    })
}

fn secret(
    lookup: Lookup,
    name: &str,
    fallback: Option<&str>,
    environment: Environment,
) -> Result<String, ConfigError> {
    let value = get(lookup, name).or_else(|| fallback.map(str::to_owned));
    match (environment, value) {
        (Environment::Prod, None) => Err(config_error(name, "must be set when ENVIRONMENT=prod")),
        (Environment::Prod, Some(v)) if v == DEV_SECRET => Err(config_error(
            name,
            "is the development default; set a real secret",
        )),
        (Environment::Prod, Some(v)) if v.len() < MIN_SECRET_LEN => Err(config_error(
            name,
            format!("is shorter than {MIN_SECRET_LEN} characters"),
        )),
        (_, Some(v)) => Ok(v),
        (Environment::Local, None) => Ok(DEV_SECRET.to_owned()),
    }
}

impl Settings {
    /// Reads the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is reported.
        if let Err(err) = dotenvy::dotenv()
            && !err.not_found()
        {
            return Err(config_error(".env", err.to_string()));
        }
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Builds settings from any variable lookup (tests pass a map).
    pub fn from_lookup(lookup: Lookup) -> Result<Self, ConfigError> {
        let environment = match get(lookup, "ENVIRONMENT")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("local") | Some("dev") | Some("development") | Some("test") => {
                Environment::Local
            }
            Some("prod") | Some("production") => Environment::Prod,
            Some(other) => {
                return Err(config_error(
                    "ENVIRONMENT",
                    format!("expected local or prod, got {other:?}"),
                ));
            }
        };
        let shared = get(lookup, "SECRET_KEY");
        let slm_jwt_secret = secret(lookup, "SLM_JWT_SECRET", shared.as_deref(), environment)
            .map_err(|e| rename_if_shared(e, &shared))?;
        let autobot_jwt_secret =
            secret(lookup, "AUTOBOT_JWT_SECRET", shared.as_deref(), environment)
                .map_err(|e| rename_if_shared(e, &shared))?;

        let mfa_encryption_key = match get(lookup, "MFA_ENCRYPTION_KEY") {
            Some(key) => {
                if environment == Environment::Prod && key.len() < MIN_SECRET_LEN {
                    return Err(config_error(
                        "MFA_ENCRYPTION_KEY",
                        format!("is shorter than {MIN_SECRET_LEN} characters"),
                    ));
                }
                derive_key(&key, "mfa")
            }
            // Derived from the (already validated) SLM secret when not set separately.
            None => derive_key(&slm_jwt_secret, "mfa"),
        };

        let cors_origins = get(lookup, "CORS_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().trim_end_matches('/').to_owned())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for origin in &cors_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(config_error(
                    "CORS_ORIGINS",
                    format!("{origin:?} is not an http(s) origin"),
                ));
            }
        }

        let trusted_proxies = get(lookup, "TRUSTED_PROXIES")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse::<IpNet>()
                            .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                            .map_err(|_| {
                                config_error("TRUSTED_PROXIES", format!("{s:?} is not a CIDR"))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();

        let invalidation_channel = get(lookup, "INVALIDATION_CHANNEL")
            .unwrap_or_else(|| "user:cache:invalidate".to_owned());

        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        let hash_concurrency = parse_or(lookup, "PASSWORD_HASH_CONCURRENCY", cpus)?.max(1);
        let lockout_threshold: i32 = parse_or(lookup, "LOCKOUT_THRESHOLD", 5)?;
        if lockout_threshold < 1 {
            return Err(config_error("LOCKOUT_THRESHOLD", "must be at least 1"));
        }

        Ok(Self {
            environment,
            bind_addr: parse_or(lookup, "BIND_ADDR", SocketAddr::from(([0, 0, 0, 0], 8000)))?,
            slm_db: database(lookup, "SLM", "slm_users", 20, 3000)?,
            autobot_db: database(lookup, "AUTOBOT", "autobot_users", 40, 1000)?,
            redis_url: get(lookup, "REDIS_URL")
                .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
            redis_key_prefix: get(lookup, "REDIS_KEY_PREFIX").unwrap_or_else(|| "slm:".to_owned()),
            slm_jwt_secret,
            autobot_jwt_secret,
            access_token_ttl: minutes(lookup, "ACCESS_TOKEN_EXPIRE_MINUTES", 30)?,
            refresh_token_ttl: Duration::from_secs(
                parse_or::<u64>(lookup, "REFRESH_TOKEN_EXPIRE_DAYS", 7)?.max(1) * 86_400,
            ),
            cors_origins,
            invalidation_channel,
            login_rate_limit_per_minute: parse_or(lookup, "LOGIN_RATE_LIMIT_PER_MINUTE", 10)?,
            access_request_rate_limit_per_hour: parse_or(
                lookup,
                "ACCESS_REQUEST_RATE_LIMIT_PER_HOUR",
                5,
            )?,
            lockout: LockoutSettings {
                threshold: lockout_threshold,
                window: minutes(lookup, "LOCKOUT_WINDOW_MINUTES", 15)?,
                duration: minutes(lookup, "LOCKOUT_DURATION_MINUTES", 15)?,
            },
            trusted_proxies,
            mfa_encryption_key,
            migrate_on_start: parse_bool(lookup, "MIGRATE_ON_START", true)?,
            bootstrap: BootstrapSettings {
                username: get(lookup, "ADMIN_BOOTSTRAP_USERNAME")
                    .unwrap_or_else(|| "admin".to_owned()),
                password: get(lookup, "ADMIN_BOOTSTRAP_PASSWORD"),
                force: parse_bool(lookup, "ADMIN_BOOTSTRAP_PASSWORD_FORCE", false)?,
            },
            hash_concurrency,
            hash_queue: parse_or(lookup, "PASSWORD_HASH_QUEUE", hash_concurrency * 32)?,
            request_timeout: Duration::from_secs(parse_or(lookup, "REQUEST_TIMEOUT_SECONDS", 30)?),
        })
    }
}

impl Settings {
    /// The database settings and token secret of a realm.
    pub fn realm(&self, realm: crate::realm::RealmId) -> (&DatabaseSettings, &str) {
        match realm {
            crate::realm::RealmId::Slm => (&self.slm_db, &self.slm_jwt_secret),
            crate::realm::RealmId::Autobot => (&self.autobot_db, &self.autobot_jwt_secret),
        }
    }
}

/// When a per-realm secret falls back to `SECRET_KEY`, name `SECRET_KEY` in the error.
fn rename_if_shared(mut err: ConfigError, shared: &Option<String>) -> ConfigError {
    if shared.is_some() || err.problem.starts_with("must be set") {
        err.var = if shared.is_some() {
            "SECRET_KEY".to_owned()
        } else {
            format!("SECRET_KEY (or {})", err.var)
        };
    }
    err
}

/// Derives a 256-bit key for one purpose from a configured secret.
pub fn derive_key(secret: &str, purpose: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"slm-server:");
    hasher.update(purpose.as_bytes());
    hasher.update(b":");
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(s.bind_addr.port(), 8000);
        assert_eq!(s.slm_db.max_connections, 20);
        assert_eq!(s.autobot_db.max_connections, 40);
        assert_eq!(s.invalidation_channel, "user:cache:invalidate");
        assert_eq!(s.lockout.threshold, 5);
        assert_eq!(s.access_token_ttl, Duration::from_secs(1800));
    }

    #[test]
    fn prod_refuses_missing_default_or_short_secrets() {
        let err = settings(&[("ENVIRONMENT", "prod")]).expect_err("missing");
        assert!(err.to_string().contains("SECRET_KEY"), "{err}");
        let err =
            settings(&[("ENVIRONMENT", "prod"), ("SECRET_KEY", DEV_SECRET)]).expect_err("default");
        assert!(err.to_string().contains("SECRET_KEY"), "{err}");
        let err = settings(&[("ENVIRONMENT", "prod"), ("SECRET_KEY", "short")]).expect_err("short");
        assert!(err.to_string().contains("shorter"), "{err}");
        let long = "x".repeat(40);
        settings(&[("ENVIRONMENT", "prod"), ("SECRET_KEY", &long)]).expect("long secret");
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
}
