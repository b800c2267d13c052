//! Typed settings from the environment and `.env`, validated once at start-up (README,
//! Configuration), by section. Nothing else in the crate reads environment variables. A bad
//! value is one line naming its variable.

mod database;
mod secrets;
mod sso;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

use crate::credentials::password::Scheme;
use crate::credentials::seal::SealKeys;
pub use crate::database::DatabaseSettings;
pub use secrets::KNOWN_SECRETS;
pub use sso::SsoSettings;

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

/// Every setting of the server.
#[derive(Clone, Debug)]
pub struct Settings {
    pub environment: Environment,
    pub http: HttpSettings,
    pub slm_db: DatabaseSettings,
    pub autobot_db: DatabaseSettings,
    /// Migrate both databases at start (else `slm-server migrate` does).
    pub migrate_on_start: bool,
    pub redis: RedisSettings,
    pub tokens: TokenSettings,
    pub passwords: PasswordSettings,
    pub limits: LoginLimits,
    /// The keys that seal secrets at rest (MFA secrets, backup codes, SSO provider secrets),
    /// newest first, and where they came from (for `check`).
    pub seal_keys: Arc<SealKeys>,
    pub seal_key_source: &'static str,
    /// The role of an SLM user created without roles (the dashboard's "Add SLM Admin" sends
    /// none).
    pub slm_default_role: String,
    pub bootstrap: BootstrapSettings,
    pub sso: SsoSettings,
}

/// The HTTP listener, its limits, and the clients it believes.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub bind_addr: SocketAddr,
    /// Where `/metrics` is served: its own listener, or `None` for the API's port.
    pub metrics_addr: Option<SocketAddr>,
    /// Allowed CORS origins; empty means no cross-origin access, `*` any origin.
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub request_timeout: Duration,
    /// A request's headers must arrive within this (also the keep-alive idle limit).
    pub header_read_timeout: Duration,
    /// Connections open at once (below the descriptor limit).
    pub max_connections: usize,
    /// Connections of one client address at once (trusted proxies excepted).
    pub max_connections_per_client: usize,
}

/// Redis, and the targets of cache invalidations.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    pub url: SecretString,
    /// The CA that a `rediss://` server's certificate must chain to (system roots if unset).
    pub ca_file: Option<String>,
    /// Prefix of the keys this server writes in Redis (rate-limit counters).
    pub key_prefix: String,
    /// Channel of the seed design's invalidation messages (`None`: not published).
    pub invalidation_channel: Option<String>,
    /// Channel the AutoBot backend's RBAC middleware listens on (`None`: not published).
    pub rbac_channel: Option<String>,
    /// Key of the AutoBot backend's cached permissions, `{user_id}` standing for the user
    /// (`None`: not deleted).
    pub rbac_cache_key: Option<String>,
}

/// Token secrets and the lifetimes of tokens and sessions.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// Each realm's token secrets, newest first: the first signs, all verify.
    pub slm_secrets: Vec<SecretString>,
    pub autobot_secrets: Vec<SecretString>,
    /// Where each realm's signing secret came from, for `check`.
    pub slm_source: String,
    pub autobot_source: String,
    /// Access-token lifetime of each realm: the SLM one long, as the SLM backend's, because
    /// the dashboard never refreshes.
    pub slm_access_ttl: Duration,
    pub autobot_access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// How long after its rotation a refresh token is still accepted (parallel tabs).
    pub refresh_reuse_grace: Duration,
    /// A session unused for this long ends, whatever its tokens say.
    pub session_idle: Duration,
}

/// How passwords are stored and how many hashes run.
#[derive(Clone, Debug)]
pub struct PasswordSettings {
    pub autobot_scheme: Scheme,
    /// Concurrent hashes (an Argon2 one holds 19 MiB).
    pub hash_concurrency: usize,
    /// Hashes allowed to wait for a core before the server answers 503.
    pub hash_queue: usize,
}

/// Per-client rate limits and the per-account lockout.
#[derive(Clone, Copy, Debug)]
pub struct LoginLimits {
    pub login_per_minute: u32,
    pub access_requests_per_hour: u32,
    pub lockout: LockoutSettings,
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
    pub password: Option<SecretString>,
    pub force: bool,
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

/// A comma-separated list, trimmed, blanks dropped.
fn list(lookup: Lookup, name: &str) -> Vec<String> {
    get(lookup, name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A Redis target (channel or key) with its default; `off` or `none` turns it off.
fn target(lookup: Lookup, name: &str, default: &str) -> Option<String> {
    match get(lookup, name) {
        None => Some(default.to_owned()),
        Some(v) if ["off", "none"].contains(&v.trim().to_ascii_lowercase().as_str()) => None,
        Some(v) => Some(v.trim().to_owned()),
    }
}

fn environment(lookup: Lookup) -> Result<Environment, ConfigError> {
    match get(lookup, "ENVIRONMENT")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("local") | Some("dev") | Some("development") | Some("test") => {
            Ok(Environment::Local)
        }
        Some("prod") | Some("production") => Ok(Environment::Prod),
        Some(other) => Err(config_error(
            "ENVIRONMENT",
            format!("expected local or prod, got {other:?}"),
        )),
    }
}

impl HttpSettings {
    fn read(lookup: Lookup, environment: Environment, pools: u32) -> Result<Self, ConfigError> {
        let cors_origins: Vec<String> = list(lookup, "CORS_ORIGINS")
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_owned())
            .collect();
        if let Some(bad) = cors_origins
            .iter()
            .find(|o| *o != "*" && !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(config_error(
                "CORS_ORIGINS",
                format!("{bad:?} is not an http(s) origin"),
            ));
        }
        let trusted_proxies = list(lookup, "TRUSTED_PROXIES")
            .iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| config_error("TRUSTED_PROXIES", format!("{s:?} is not a CIDR")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // `METRICS_ADDR`: unset, the API's port in local use and 127.0.0.1:9100 in production
        // (the public port does not serve it); `api` means the API's port in either.
        let private_metrics = SocketAddr::from(([127, 0, 0, 1], 9100));
        let metrics_addr = match get(lookup, "METRICS_ADDR").map(|v| v.trim().to_owned()) {
            Some(v) if v.eq_ignore_ascii_case("api") => None,
            Some(_) => Some(parse_or(lookup, "METRICS_ADDR", private_metrics)?),
            None if environment == Environment::Prod => Some(private_metrics),
            None => None,
        };
        Ok(Self {
            bind_addr: parse_or(lookup, "BIND_ADDR", SocketAddr::from(([0, 0, 0, 0], 8000)))?,
            metrics_addr,
            cors_origins,
            trusted_proxies,
            request_timeout: Duration::from_secs(parse_or(lookup, "REQUEST_TIMEOUT_SECONDS", 30)?),
            header_read_timeout: Duration::from_secs(
                parse_or::<u64>(lookup, "HEADER_READ_TIMEOUT_SECONDS", 20)?.max(1),
            ),
            max_connections: parse_or(
                lookup,
                "MAX_CONNECTIONS",
                crate::http::serve::default_max_connections(pools),
            )?,
            max_connections_per_client: parse_or::<usize>(
                lookup,
                "MAX_CONNECTIONS_PER_CLIENT",
                256,
            )?
            .max(1),
        })
    }
}

impl RedisSettings {
    fn read(lookup: Lookup) -> Result<Self, ConfigError> {
        let url = get(lookup, "REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(config_error(
                "REDIS_URL",
                "must be a redis:// or rediss:// URL",
            ));
        }
        let ca_file = get(lookup, "REDIS_CA_FILE").map(|v| v.trim().to_owned());
        if let Some(ca) = &ca_file
            && let Err(err) = std::fs::File::open(ca)
        {
            return Err(config_error(
                "REDIS_CA_FILE",
                format!("cannot read the CA file {ca}: {err}"),
            ));
        }
        let rbac_cache_key = target(lookup, "RBAC_CACHE_KEY", "rbac:perm:{user_id}");
        if rbac_cache_key
            .as_ref()
            .is_some_and(|key| !key.contains("{user_id}"))
        {
            return Err(config_error(
                "RBAC_CACHE_KEY",
                "must contain {user_id} (or be off)",
            ));
        }
        Ok(Self {
            url: SecretString::from(url),
            ca_file,
            key_prefix: get(lookup, "REDIS_KEY_PREFIX").unwrap_or_else(|| "slm:".to_owned()),
            invalidation_channel: target(lookup, "INVALIDATION_CHANNEL", "user:cache:invalidate"),
            rbac_channel: target(
                lookup,
                "RBAC_INVALIDATION_CHANNEL",
                "autobot:rbac:invalidate",
            ),
            rbac_cache_key,
        })
    }
}

impl TokenSettings {
    fn read(lookup: Lookup, environment: Environment) -> Result<Self, ConfigError> {
        // The SLM backend calls the SLM secret SLM_SECRET_KEY; both names are accepted.
        let (slm_secrets, slm_source) =
            secrets::signing_secrets(lookup, &["SLM_JWT_SECRET", "SLM_SECRET_KEY"], environment)?;
        let (autobot_secrets, autobot_source) =
            secrets::signing_secrets(lookup, &["AUTOBOT_JWT_SECRET"], environment)?;
        Ok(Self {
            slm_secrets,
            autobot_secrets,
            slm_source,
            autobot_source,
            slm_access_ttl: minutes(
                lookup,
                "SLM_ACCESS_TOKEN_EXPIRE_MINUTES",
                parse_or(lookup, "ACCESS_TOKEN_EXPIRE_MINUTES", 1440)?,
            )?,
            autobot_access_ttl: minutes(
                lookup,
                "AUTOBOT_ACCESS_TOKEN_EXPIRE_MINUTES",
                parse_or(lookup, "ACCESS_TOKEN_EXPIRE_MINUTES", 30)?,
            )?,
            refresh_ttl: Duration::from_secs(
                parse_or::<u64>(lookup, "REFRESH_TOKEN_EXPIRE_DAYS", 7)?.max(1) * 86_400,
            ),
            refresh_reuse_grace: Duration::from_secs(parse_or(
                lookup,
                "REFRESH_REUSE_GRACE_SECONDS",
                10,
            )?),
            session_idle: minutes(lookup, "SESSION_IDLE_MINUTES", 480)?,
        })
    }
}

impl PasswordSettings {
    fn read(lookup: Lookup) -> Result<Self, ConfigError> {
        let bcrypt_cost: u32 = parse_or(lookup, "AUTOBOT_BCRYPT_COST", 12)?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(config_error("AUTOBOT_BCRYPT_COST", "must be 4 to 31"));
        }
        let autobot_scheme = match get(lookup, "AUTOBOT_PASSWORD_SCHEME")
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
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        let hash_concurrency = parse_or(lookup, "PASSWORD_HASH_CONCURRENCY", cpus)?.max(1);
        Ok(Self {
            autobot_scheme,
            hash_concurrency,
            hash_queue: parse_or(lookup, "PASSWORD_HASH_QUEUE", hash_concurrency * 32)?,
        })
    }
}

impl LoginLimits {
    fn read(lookup: Lookup) -> Result<Self, ConfigError> {
        let threshold: i32 = parse_or(lookup, "LOCKOUT_THRESHOLD", 5)?;
        if threshold < 1 {
            return Err(config_error("LOCKOUT_THRESHOLD", "must be at least 1"));
        }
        Ok(Self {
            login_per_minute: parse_or(lookup, "LOGIN_RATE_LIMIT_PER_MINUTE", 10)?,
            access_requests_per_hour: parse_or(lookup, "ACCESS_REQUEST_RATE_LIMIT_PER_HOUR", 5)?,
            lockout: LockoutSettings {
                threshold,
                window: minutes(lookup, "LOCKOUT_WINDOW_MINUTES", 15)?,
                duration: minutes(lookup, "LOCKOUT_DURATION_MINUTES", 15)?,
            },
        })
    }
}

impl BootstrapSettings {
    fn read(lookup: Lookup) -> Result<Self, ConfigError> {
        Ok(Self {
            username: get(lookup, "ADMIN_BOOTSTRAP_USERNAME").unwrap_or_else(|| "admin".to_owned()),
            email: get(lookup, "ADMIN_BOOTSTRAP_EMAIL")
                .unwrap_or_else(|| "admin@slm.local".to_owned()),
            password: get(lookup, "ADMIN_BOOTSTRAP_PASSWORD").map(SecretString::from),
            force: parse_bool(lookup, "ADMIN_BOOTSTRAP_PASSWORD_FORCE", false)?,
        })
    }
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
        let environment = environment(lookup)?;
        let tokens = TokenSettings::read(lookup, environment)?;
        let (seal_keys, seal_key_source) =
            secrets::seal_keys(lookup, environment, &tokens.slm_secrets[0])?;
        let slm_db = database::database(lookup, "SLM", "slm_users", 20, 2000, environment)?;
        let autobot_db =
            database::database(lookup, "AUTOBOT", "autobot_users", 40, 1000, environment)?;
        let pools = slm_db.max_connections + autobot_db.max_connections;
        let slm_default_role = get(lookup, "SLM_DEFAULT_ROLE")
            .map_or_else(|| "admin".to_owned(), |v| v.trim().to_owned());
        let slm_roles = crate::realm::RealmId::Slm.policy().role_names();
        if !slm_roles.contains(&slm_default_role.as_str()) {
            return Err(config_error(
                "SLM_DEFAULT_ROLE",
                format!(
                    "expected one of {}, got {slm_default_role:?}",
                    slm_roles.join(", ")
                ),
            ));
        }
        Ok(Self {
            environment,
            http: HttpSettings::read(lookup, environment, pools)?,
            slm_db,
            autobot_db,
            migrate_on_start: parse_bool(lookup, "MIGRATE_ON_START", true)?,
            redis: RedisSettings::read(lookup)?,
            tokens,
            passwords: PasswordSettings::read(lookup)?,
            limits: LoginLimits::read(lookup)?,
            seal_keys: Arc::new(seal_keys),
            seal_key_source,
            slm_default_role,
            bootstrap: BootstrapSettings::read(lookup)?,
            sso: SsoSettings::read(lookup)?,
        })
    }
}
