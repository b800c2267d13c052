//! Typed settings from the environment and `.env`, validated once at start-up (docs/api.md §8).
//! Nothing else in the crate reads environment variables.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use sqlx::postgres::PgConnectOptions;

use crate::auth::password::Scheme;
use crate::auth::totp::{MfaKey, MfaKeys};
use crate::crypto::derive_key;
pub use crate::database::{DatabaseSettings, DatabaseTls};

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
    pub email: String,
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
    /// The CA that a `rediss://` server's certificate must chain to (system roots if unset).
    pub redis_ca_file: Option<String>,
    /// Prefix of the keys this server writes in Redis (rate-limit counters).
    pub redis_key_prefix: String,
    /// Each realm's token secrets, newest first: the first signs, all verify.
    pub slm_jwt_secrets: Vec<String>,
    pub autobot_jwt_secrets: Vec<String>,
    /// Where each realm's signing secret came from (a variable, or the development default),
    /// for `check`.
    pub slm_secret_source: String,
    pub autobot_secret_source: String,
    /// Where `/metrics` is served: its own listener, or `None` for the API's port.
    pub metrics_addr: Option<SocketAddr>,
    /// Access-token lifetime of each realm: the SLM one long, as the SLM backend's, because
    /// the dashboard never refreshes.
    pub slm_access_token_ttl: Duration,
    pub autobot_access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// A session unused for this long ends, whatever its tokens say.
    pub session_idle: Duration,
    /// The role of an SLM user created without roles (the dashboard's "Add SLM Admin" sends
    /// none).
    pub slm_default_role: String,
    /// How long after its rotation a refresh token is still accepted (parallel tabs).
    pub refresh_reuse_grace: Duration,
    /// Allowed CORS origins; empty means no cross-origin access, `*` any origin.
    pub cors_origins: Vec<String>,
    /// Channel of the seed design's invalidation messages (`None`: not published).
    pub invalidation_channel: Option<String>,
    /// Channel the AutoBot backend's RBAC middleware listens on (`None`: not published).
    pub rbac_invalidation_channel: Option<String>,
    /// Key of the AutoBot backend's cached permissions, `{user_id}` standing for the user
    /// (`None`: not deleted).
    pub rbac_cache_key: Option<String>,
    /// How the AutoBot realm stores new passwords.
    pub autobot_password_scheme: Scheme,
    pub login_rate_limit_per_minute: u32,
    pub access_request_rate_limit_per_hour: u32,
    pub lockout: LockoutSettings,
    pub trusted_proxies: Vec<IpNet>,
    /// AES-256-GCM keys of MFA secrets at rest, newest first.
    pub mfa_keys: MfaKeys,
    /// Where the MFA keys came from (a variable, or derived), for `check`.
    pub mfa_key_source: &'static str,
    pub migrate_on_start: bool,
    pub bootstrap: BootstrapSettings,
    /// Concurrent Argon2 computations (each holds 19 MiB).
    pub hash_concurrency: usize,
    /// Password hashes allowed to wait for a slot before the server answers 503.
    pub hash_queue: usize,
    pub request_timeout: Duration,
    /// A request's headers must arrive within this (also the keep-alive idle limit).
    pub header_read_timeout: Duration,
    /// Connections open at once (below the descriptor limit).
    pub max_connections: usize,
    /// Connections of one client address at once (trusted proxies excepted).
    pub max_connections_per_client: usize,
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

/// The MFA encryption keys: `MFA_ENCRYPTION_KEYS` (comma-separated, newest first) or
/// `MFA_ENCRYPTION_KEY`; each key's id is derived from it, so the same secret has the same id
/// in either form. Without either, one key is derived from the SLM token secret (local only).
/// Returns the keys and where they came from, for `check`.
fn mfa_keys(
    lookup: Lookup,
    environment: Environment,
    slm_secret: &str,
) -> Result<(MfaKeys, &'static str), ConfigError> {
    // The variable named in errors, where the keys came from (for `check`), the secrets.
    let (var, source, secrets): (&str, &'static str, Vec<String>) = match (
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
            vec![one.trim().to_owned()],
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
            vec![format!("derived:{slm_secret}")],
        ),
    };
    if secrets.is_empty() {
        return Err(config_error(var, "names no key"));
    }
    for secret in &secrets {
        check_secret(var, secret, environment)?;
    }
    let keys = MfaKeys(
        secrets
            .iter()
            .map(|secret| MfaKey {
                id: derive_key(secret, "mfa-key-id")[..4]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                key: derive_key(secret, "mfa"),
            })
            .collect(),
    );
    Ok((keys, source))
}

/// `METRICS_ADDR`: where `/metrics` is served. Unset, it is the API's port in local use and
/// `127.0.0.1:9100` in production (the public port does not serve it); `api` means the API's
/// port in either.
fn metrics_addr(
    lookup: Lookup,
    environment: Environment,
) -> Result<Option<SocketAddr>, ConfigError> {
    match get(lookup, "METRICS_ADDR").map(|v| v.trim().to_owned()) {
        Some(v) if v.eq_ignore_ascii_case("api") => Ok(None),
        Some(_) => parse_or(
            lookup,
            "METRICS_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 9100)),
        )
        .map(Some),
        None if environment == Environment::Prod => {
            Ok(Some(SocketAddr::from(([127, 0, 0, 1], 9100))))
        }
        None => Ok(None),
    }
}

/// A Redis target (channel or key) with its default; `off` or `none` turns it off.
fn target(lookup: Lookup, name: &str, default: &str) -> Option<String> {
    match get(lookup, name) {
        None => Some(default.to_owned()),
        Some(v) if ["off", "none"].contains(&v.trim().to_ascii_lowercase().as_str()) => None,
        Some(v) => Some(v.trim().to_owned()),
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
/// `<P>_POSTGRES_HOST/PORT/DB/USER/PASSWORD`. In production one of the two must be given.
///
/// TLS follows one rule whichever form is used: `<P>_POSTGRES_SSLMODE` and
/// `<P>_POSTGRES_SSLROOTCERT`, when set, win over the URL's `sslmode` and `sslrootcert`;
/// otherwise the URL's apply. A CA file that cannot be read stops start-up, naming the file.
fn database(
    lookup: Lookup,
    prefix: &str,
    default_db: &str,
    default_pool: u32,
    default_timeout_ms: u64,
    environment: Environment,
) -> Result<DatabaseSettings, ConfigError> {
    let url_var = format!("{prefix}_DATABASE_URL");
    let var = |suffix: &str| format!("{prefix}_POSTGRES_{suffix}");
    let mut tls = DatabaseTls {
        mode: "prefer".to_owned(),
        root_cert: None,
    };
    let mut options = if let Some(url) = get(lookup, &url_var) {
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
        if let Some((_, query)) = url.split_once('?') {
            for (key, value) in form_urlencoded::parse(query.as_bytes()) {
                match key.as_ref() {
                    "sslmode" => tls.mode = value.into_owned(),
                    "sslrootcert" => tls.root_cert = Some(value.into_owned()),
                    _ => {}
                }
            }
        }
        options
    } else {
        if environment == Environment::Prod && get(lookup, &var("HOST")).is_none() {
            return Err(config_error(
                &url_var,
                format!("must be set (or {}) when ENVIRONMENT=prod", var("HOST")),
            ));
        }
        // The local defaults are those of `.ci/dev`, which sets this password when it
        // installs PostgreSQL.
        let password = get(lookup, &var("PASSWORD"))
            .or_else(|| (environment == Environment::Local).then(|| "postgres".to_owned()));
        let mut options = PgConnectOptions::new_without_pgpass()
            .host(&get(lookup, &var("HOST")).unwrap_or_else(|| "127.0.0.1".into()))
            .port(parse_or(lookup, &var("PORT"), 5432u16)?)
            .database(&get(lookup, &var("DB")).unwrap_or_else(|| default_db.into()))
            .username(&get(lookup, &var("USER")).unwrap_or_else(|| "postgres".into()));
        if let Some(password) = password {
            options = options.password(&password);
        }
        options
    };
    if let Some(mode) = get(lookup, &var("SSLMODE")) {
        let parsed = mode
            .trim()
            .parse()
            .map_err(|e| config_error(&var("SSLMODE"), format!("{e}")))?;
        options = options.ssl_mode(parsed);
        tls.mode = mode.trim().to_owned();
    }
    if let Some(root) = get(lookup, &var("SSLROOTCERT")) {
        options = options.ssl_root_cert(root.trim());
        tls.root_cert = Some(root.trim().to_owned());
    }
    if let Some(ca) = &tls.root_cert
        && let Err(err) = std::fs::File::open(ca)
    {
        let source = if get(lookup, &var("SSLROOTCERT")).is_some() {
            var("SSLROOTCERT")
        } else {
            url_var.clone()
        };
        return Err(config_error(
            &source,
            format!("cannot read the CA file {ca}: {err}"),
        ));
    }
    let pool_var = format!("{prefix}_DB_POOL_SIZE");
    let max_connections = parse_or(lookup, &pool_var, default_pool)?;
    if max_connections == 0 {
        return Err(config_error(&pool_var, "must be at least 1"));
    }
    let millis = |suffix: &str| -> Result<Duration, ConfigError> {
        let var = format!("{prefix}_DB_{suffix}_TIMEOUT_MS");
        let ms: u64 = parse_or(lookup, &var, default_timeout_ms)?;
        if ms < 50 {
            return Err(config_error(&var, "must be at least 50"));
        }
        Ok(Duration::from_millis(ms))
    };
    Ok(DatabaseSettings {
        options: options.application_name("slm-server"),
        max_connections,
        acquire_timeout: millis("ACQUIRE")?,
        statement_timeout: millis("STATEMENT")?,
        tls,
    })
}

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
fn secret_list(lookup: Lookup, name: &str) -> Vec<String> {
    get(lookup, name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A realm's token secrets, newest first, and the variable the signing one came from: the
/// realm's own variable (one of `names`) or `SECRET_KEY`, each with its `_PREVIOUS` list of
/// older secrets that still verify during a rotation.
fn signing_secrets(
    lookup: Lookup,
    names: &[&str],
    environment: Environment,
) -> Result<(Vec<String>, String), ConfigError> {
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
                vec![DEV_SECRET.to_owned()],
                "the built-in development secret (local only)".to_owned(),
            )),
        };
    };
    let mut secrets = vec![get(lookup, var).unwrap_or_default().trim().to_owned()];
    check_secret(var, &secrets[0], environment)?;
    let previous = format!("{var}_PREVIOUS");
    for old in secret_list(lookup, &previous) {
        check_secret(&previous, &old, environment)?;
        secrets.push(old);
    }
    Ok((secrets, (*var).to_owned()))
}

impl Settings {
    /// Reads the process environment, after loading `env_file`, or else `.env` in the working
    /// directory or one of its parents if there is one (real variables win over either).
    pub fn from_env(env_file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        match env_file {
            Some(path) => {
                let name = path.display().to_string();
                dotenvy::from_path(path).map_err(|err| config_error(&name, err.to_string()))?;
            }
            // A missing .env is normal; a malformed one is reported.
            None => {
                if let Err(err) = dotenvy::dotenv()
                    && !err.not_found()
                {
                    return Err(config_error(".env", err.to_string()));
                }
            }
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
        // The SLM backend calls the SLM secret SLM_SECRET_KEY; both names are accepted.
        let (slm_jwt_secrets, slm_secret_source) =
            signing_secrets(lookup, &["SLM_JWT_SECRET", "SLM_SECRET_KEY"], environment)?;
        let (autobot_jwt_secrets, autobot_secret_source) =
            signing_secrets(lookup, &["AUTOBOT_JWT_SECRET"], environment)?;

        let (mfa_keys, mfa_key_source) = mfa_keys(lookup, environment, &slm_jwt_secrets[0])?;

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

        let invalidation_channel = target(lookup, "INVALIDATION_CHANNEL", "user:cache:invalidate");
        let rbac_invalidation_channel = target(
            lookup,
            "RBAC_INVALIDATION_CHANNEL",
            "autobot:rbac:invalidate",
        );
        let rbac_cache_key = target(lookup, "RBAC_CACHE_KEY", "rbac:perm:{user_id}");
        if let Some(key) = &rbac_cache_key
            && !key.contains("{user_id}")
        {
            return Err(config_error(
                "RBAC_CACHE_KEY",
                "must contain {user_id} (or be off)",
            ));
        }
        let bcrypt_cost: u32 = parse_or(lookup, "AUTOBOT_BCRYPT_COST", 12)?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(config_error("AUTOBOT_BCRYPT_COST", "must be 4 to 31"));
        }
        let autobot_password_scheme = match get(lookup, "AUTOBOT_PASSWORD_SCHEME")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("bcrypt") => Scheme::Bcrypt { cost: bcrypt_cost },
            Some("argon2id") => Scheme::Argon2id,
            Some(other) => {
                return Err(config_error(
                    "AUTOBOT_PASSWORD_SCHEME",
                    format!("expected bcrypt or argon2id, got {other:?}"),
                ));
            }
        };

        let redis_url =
            get(lookup, "REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
        if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
            return Err(config_error(
                "REDIS_URL",
                "must be a redis:// or rediss:// URL",
            ));
        }
        let redis_ca_file = get(lookup, "REDIS_CA_FILE").map(|v| v.trim().to_owned());
        if let Some(ca) = &redis_ca_file
            && let Err(err) = std::fs::File::open(ca)
        {
            return Err(config_error(
                "REDIS_CA_FILE",
                format!("cannot read the CA file {ca}: {err}"),
            ));
        }

        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        let slm_db = database(lookup, "SLM", "slm_users", 20, 2000, environment)?;
        let autobot_db = database(lookup, "AUTOBOT", "autobot_users", 40, 1000, environment)?;
        let max_connections = parse_or(
            lookup,
            "MAX_CONNECTIONS",
            crate::serve::default_max_connections(
                slm_db.max_connections + autobot_db.max_connections,
            ),
        )?;
        let hash_concurrency = parse_or(lookup, "PASSWORD_HASH_CONCURRENCY", cpus)?.max(1);
        let lockout_threshold: i32 = parse_or(lookup, "LOCKOUT_THRESHOLD", 5)?;
        let slm_roles = crate::realm::RealmId::Slm.policy().role_names();
        let slm_default_role = get(lookup, "SLM_DEFAULT_ROLE")
            .map_or_else(|| "admin".to_owned(), |v| v.trim().to_owned());
        if !slm_roles.contains(&slm_default_role.as_str()) {
            return Err(config_error(
                "SLM_DEFAULT_ROLE",
                format!(
                    "expected one of {}, got {slm_default_role:?}",
                    slm_roles.join(", ")
                ),
            ));
        }
        if lockout_threshold < 1 {
            return Err(config_error("LOCKOUT_THRESHOLD", "must be at least 1"));
        }

        Ok(Self {
            environment,
            bind_addr: parse_or(lookup, "BIND_ADDR", SocketAddr::from(([0, 0, 0, 0], 8000)))?,
            slm_db,
            autobot_db,
            redis_url,
            redis_ca_file,
            redis_key_prefix: get(lookup, "REDIS_KEY_PREFIX").unwrap_or_else(|| "slm:".to_owned()),
            slm_jwt_secrets,
            autobot_jwt_secrets,
            slm_secret_source,
            autobot_secret_source,
            metrics_addr: metrics_addr(lookup, environment)?,
            slm_access_token_ttl: minutes(
                lookup,
                "SLM_ACCESS_TOKEN_EXPIRE_MINUTES",
                parse_or(lookup, "ACCESS_TOKEN_EXPIRE_MINUTES", 1440)?,
            )?,
            autobot_access_token_ttl: minutes(
                lookup,
                "AUTOBOT_ACCESS_TOKEN_EXPIRE_MINUTES",
                parse_or(lookup, "ACCESS_TOKEN_EXPIRE_MINUTES", 30)?,
            )?,
            session_idle: minutes(lookup, "SESSION_IDLE_MINUTES", 480)?,
            slm_default_role,
            refresh_token_ttl: Duration::from_secs(
                parse_or::<u64>(lookup, "REFRESH_TOKEN_EXPIRE_DAYS", 7)?.max(1) * 86_400,
            ),
            refresh_reuse_grace: Duration::from_secs(parse_or(
                lookup,
                "REFRESH_REUSE_GRACE_SECONDS",
                10,
            )?),
            cors_origins,
            invalidation_channel,
            rbac_invalidation_channel,
            rbac_cache_key,
            autobot_password_scheme,
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
            mfa_keys,
            mfa_key_source,
            migrate_on_start: parse_bool(lookup, "MIGRATE_ON_START", true)?,
            bootstrap: BootstrapSettings {
                username: get(lookup, "ADMIN_BOOTSTRAP_USERNAME")
                    .unwrap_or_else(|| "admin".to_owned()),
                email: get(lookup, "ADMIN_BOOTSTRAP_EMAIL")
                    .unwrap_or_else(|| "admin@slm.local".to_owned()),
                password: get(lookup, "ADMIN_BOOTSTRAP_PASSWORD"),
                force: parse_bool(lookup, "ADMIN_BOOTSTRAP_PASSWORD_FORCE", false)?,
            },
            hash_concurrency,
            hash_queue: parse_or(lookup, "PASSWORD_HASH_QUEUE", hash_concurrency * 32)?,
            request_timeout: Duration::from_secs(parse_or(lookup, "REQUEST_TIMEOUT_SECONDS", 30)?),
            header_read_timeout: Duration::from_secs(
                parse_or::<u64>(lookup, "HEADER_READ_TIMEOUT_SECONDS", 20)?.max(1),
            ),
            max_connections,
            max_connections_per_client: parse_or::<usize>(
                lookup,
                "MAX_CONNECTIONS_PER_CLIENT",
                256,
            )?
            .max(1),
        })
    }
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
        assert_eq!(
            s.invalidation_channel.as_deref(),
            Some("user:cache:invalidate")
        );
        assert_eq!(
            s.rbac_invalidation_channel.as_deref(),
            Some("autobot:rbac:invalidate")
        );
        assert_eq!(s.rbac_cache_key.as_deref(), Some("rbac:perm:{user_id}"));
        assert_eq!(s.autobot_password_scheme, Scheme::Bcrypt { cost: 12 });
        assert_eq!(s.lockout.threshold, 5);
        assert_eq!(s.slm_access_token_ttl, Duration::from_secs(1440 * 60));
        assert_eq!(s.autobot_access_token_ttl, Duration::from_secs(1800));
        assert_eq!(s.session_idle, Duration::from_secs(480 * 60));
        assert_eq!(s.slm_default_role, "admin");
        let both = settings(&[("ACCESS_TOKEN_EXPIRE_MINUTES", "15")]).expect("both");
        assert_eq!(both.slm_access_token_ttl, Duration::from_secs(900));
        assert_eq!(both.autobot_access_token_ttl, Duration::from_secs(900));
        let one = settings(&[
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "15"),
            ("SLM_ACCESS_TOKEN_EXPIRE_MINUTES", "60"),
        ])
        .expect("one");
        assert_eq!(one.slm_access_token_ttl, Duration::from_secs(3600));
        assert_eq!(one.autobot_access_token_ttl, Duration::from_secs(900));
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
        let err = prod(&[("SECRET_KEY", DEV_SECRET)]).expect_err("default");
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
        let example = include_str!("../.env.example");
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
            if !(name.contains("SECRET") || name.starts_with("MFA_ENCRYPTION_KEY"))
                || value.is_empty()
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
        assert_eq!(s.slm_jwt_secrets, ["new-secret", "old-1", "old-2"]);
        assert_eq!(s.slm_secret_source, "SECRET_KEY");
        assert_eq!(
            s.autobot_jwt_secrets,
            ["autobot-new"],
            "its own variable, its own list"
        );
        assert_eq!(s.autobot_secret_source, "AUTOBOT_JWT_SECRET");
        let s = settings(&[]).expect("local");
        assert!(
            s.slm_secret_source.contains("development"),
            "{}",
            s.slm_secret_source
        );
    }

    #[test]
    fn the_mfa_keys_source_is_the_variable_that_named_them() {
        let s = settings(&[]).expect("local");
        assert!(s.mfa_key_source.contains("derived"), "{}", s.mfa_key_source);
        let s = settings(&[("MFA_ENCRYPTION_KEY", "one-key")]).expect("one key");
        assert_eq!(s.mfa_key_source, "MFA_ENCRYPTION_KEY");
        let s = settings(&[("MFA_ENCRYPTION_KEYS", "new-key,old-key")]).expect("two keys");
        assert_eq!(
            (s.mfa_key_source, s.mfa_keys.0.len()),
            ("MFA_ENCRYPTION_KEYS", 2)
        );
    }

    #[test]
    fn metrics_leave_the_public_port_in_production() {
        let long = "x".repeat(40);
        let s = prod(&[("SECRET_KEY", &long), ("MFA_ENCRYPTION_KEY", &long)]).expect("prod");
        assert_eq!(
            s.metrics_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9100)))
        );
        let s = settings(&[]).expect("local");
        assert_eq!(s.metrics_addr, None, "local: on the API's port");
        let s = settings(&[("METRICS_ADDR", "0.0.0.0:9200")]).expect("explicit");
        assert_eq!(s.metrics_addr, Some(SocketAddr::from(([0, 0, 0, 0], 9200))));
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
