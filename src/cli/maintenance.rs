//! `reseal-mfa`, `check` and `healthcheck`: keeping the server's secrets and dependencies in
//! order.

use secrecy::ExposeSecret;
use sqlx::Connection as _;

use crate::access::db::factors;
use crate::cli::{RealmOrAll, database, options};
use crate::config::Settings;
use crate::http::error::plain;
use crate::realm::RealmId;
use crate::realm::migrate;
use crate::state::AppState;

/// Runs `reseal-mfa`: every MFA secret not sealed with the newest key is sealed again.
pub async fn reseal_mfa(settings: &Settings, realm: RealmOrAll) -> anyhow::Result<()> {
    let state = AppState::build(std::sync::Arc::new(settings.clone()))?;
    let keys = &*settings.seal_keys;
    for id in realm.realms() {
        let target = state.realm(id);
        target
            .open()
            .await
            .map_err(|e| anyhow::anyhow!("{}", plain(&e)))?;
        let resealed = target
            .transaction(|mut tx| {
                Box::pin(async move {
                    let mut resealed = 0;
                    for mut sealed in factors::all_sealed(&mut tx).await? {
                        let codes_current = sealed
                            .backup_codes
                            .as_deref()
                            .is_none_or(|c| keys.is_current(c));
                        if keys.is_current(&sealed.secret) && codes_current {
                            continue;
                        }
                        sealed.secret = keys.seal(&keys.open(&sealed.secret)?)?;
                        sealed.backup_codes = match sealed.backup_codes {
                            Some(codes) => Some(keys.seal(&keys.open(&codes)?)?),
                            None => None,
                        };
                        factors::reseal(&mut tx, &sealed).await?;
                        resealed += 1;
                    }
                    resealed += crate::sso::providers::reseal(&mut tx, keys).await?;
                    Ok(resealed)
                })
            })
            .await
            .map_err(|e| anyhow::anyhow!("{}", plain(&e)))?;
        say!(
            "{}: resealed {resealed} MFA and SSO secret(s) with key {}",
            id.as_str(),
            keys.0.first().map_or("?", |k| k.id())
        );
    }
    Ok(())
}

/// Runs `check`: one line per item; `false` (exit status 1) when the SLM database cannot be
/// used.
pub async fn check(settings: &Settings) -> anyhow::Result<bool> {
    say!("environment: {:?}", settings.environment);
    say!("bind address: {}", settings.http.bind_addr);
    say!(
        "metrics: {}",
        settings
            .http
            .metrics_addr
            .map_or("on the API's port".to_owned(), |a| a.to_string())
    );
    let tokens = &settings.tokens;
    for (realm, source, secrets) in [
        ("slm", &tokens.slm_source, &tokens.slm_secrets),
        ("autobot", &tokens.autobot_source, &tokens.autobot_secrets),
    ] {
        let older = if secrets.len() > 1 {
            format!(", {} older secret(s) still verify", secrets.len() - 1)
        } else {
            String::new()
        };
        let newest = secrets.first().map_or("", |s| s.expose_secret());
        let warning = if crate::config::KNOWN_SECRETS.contains(&newest) {
            " — WARNING: a published secret, for this machine only (prod refuses it)"
        } else {
            ""
        };
        say!("{realm} token secret: from {source}{older}{warning}");
    }
    let mfa = &settings.seal_keys.0;
    say!(
        "MFA keys: {} (newest {}) from {}",
        mfa.len(),
        mfa.first().map_or("?", |k| k.id()),
        settings.seal_key_source
    );
    let mut ok = true;
    for id in [RealmId::Slm, RealmId::Autobot] {
        let opts = options(settings, id);
        let where_ = database(settings, id).describe();
        let connected = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            sqlx::PgConnection::connect_with(opts),
        )
        .await;
        let mut blockers = Vec::new();
        let status = match connected {
            Ok(Ok(mut conn)) => {
                blockers = migrate::preflight(&mut conn).await.unwrap_or_default();
                let _ = conn.close().await;
                match migrate::status(opts).await {
                    Ok(list) => {
                        let pending = list.iter().filter(|m| !m.applied).count();
                        if pending == 0 {
                            "ok, migrations up to date".to_owned()
                        } else {
                            format!("ok, {pending} migration(s) pending (serve applies them)")
                        }
                    }
                    Err(e) => format!("ok, migrations unknown ({e})"),
                }
            }
            Ok(Err(e)) if e.to_string().contains("does not exist") => {
                "missing: serve (or migrate) will create it".to_owned()
            }
            Ok(Err(e)) => format!("unreachable ({e})"),
            Err(_) => "unreachable (no answer within 3 s)".to_owned(),
        };
        if id == RealmId::Slm && !(status.starts_with("ok") || status.starts_with("missing")) {
            ok = false;
        }
        say!("{} database {where_}: {status}", id.as_str());
        // What stops the migration, each with what to do about it.
        for blocker in &blockers {
            say!("  cannot be migrated: {}", blocker.cause);
            say!("  fix: {}", blocker.fix);
        }
        if id == RealmId::Slm && !blockers.is_empty() {
            ok = false;
        }
    }
    let redis_settings = &settings.redis;
    let redis =
        crate::redis_client::Redis::new(&redis_settings.url, redis_settings.ca_file.as_deref())?;
    let tls = match (
        redis_settings.url.expose_secret().starts_with("rediss://"),
        &redis_settings.ca_file,
    ) {
        (true, Some(ca)) => format!("tls, CA file {ca}"),
        (true, None) => "tls, system roots".to_owned(),
        (false, _) => "plain".to_owned(),
    };
    match redis.probe().await {
        Ok(()) => say!("redis ({tls}): ok"),
        Err(e) => {
            say!("redis ({tls}): unreachable ({e}); the server runs without it, degraded")
        }
    }
    Ok(ok)
}

/// Runs `healthcheck` against the configured port on localhost.
pub async fn healthcheck(settings: &Settings) -> anyhow::Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], settings.http.bind_addr.port()));
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        anyhow::Ok(buf.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(std::time::Duration::from_secs(3), attempt)
        .await
        .unwrap_or(Ok(false))
}
