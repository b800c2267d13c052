//! One realm's database: a URL or the AutoBot team's `<P>_POSTGRES_*` parts, TLS, pool and
//! timeouts.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use super::{ConfigError, Environment, Lookup, config_error, get, parse_or};
use crate::database::{DatabaseSettings, DatabaseTls};

/// Reads one realm's database settings: `<P>_DATABASE_URL`, or the AutoBot team's
/// `<P>_POSTGRES_HOST/PORT/DB/USER/PASSWORD`. In production one of the two must be given.
///
/// TLS follows one rule whichever form is used: `<P>_POSTGRES_SSLMODE` and
/// `<P>_POSTGRES_SSLROOTCERT`, when set, win over the URL's `sslmode` and `sslrootcert`;
/// otherwise the URL's apply. A CA file that cannot be read stops start-up, naming the file.
pub(super) fn database(
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
