//! The command line (API.md §7): serve (default), migrate, create-admin, import-users, check,
//! healthcheck (for container health checks where the image has no curl).

use std::io::Read;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use sqlx::Connection;
use uuid::Uuid;

use crate::config::Settings;
use crate::realm::RealmId;

#[derive(Parser, Debug)]
#[command(
    name = "slm-server",
    version,
    about = "AutoBot user management and authentication server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RealmArg {
    Slm,
    Autobot,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RealmOrAll {
    Slm,
    Autobot,
    All,
}

impl From<RealmArg> for RealmId {
    fn from(r: RealmArg) -> Self {
        match r {
            RealmArg::Slm => RealmId::Slm,
            RealmArg::Autobot => RealmId::Autobot,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Create and migrate the databases (or revert every migration with --revert).
    Migrate {
        #[arg(long, value_enum, default_value = "all")]
        realm: RealmOrAll,
        #[arg(long)]
        revert: bool,
    },
    /// Create an admin of a realm; prints a generated password unless --password-stdin.
    CreateAdmin {
        #[arg(long, value_enum)]
        realm: RealmArg,
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Import users from a JSON array or a CSV file (Argon2 or bcrypt hashes).
    ImportUsers {
        #[arg(long, value_enum)]
        realm: RealmArg,
        file: PathBuf,
    },
    /// Report configuration and connectivity.
    Check,
    /// Exit 0 when the local server answers /healthz (container health check).
    Healthcheck,
}

fn options(settings: &Settings, realm: RealmId) -> &sqlx::postgres::PgConnectOptions {
    &settings.realm(realm).0.options
}

/// Runs `migrate`.
pub async fn migrate(settings: &Settings, realm: RealmOrAll, revert: bool) -> anyhow::Result<()> {
    let realms = match realm {
        RealmOrAll::Slm => vec![RealmId::Slm],
        RealmOrAll::Autobot => vec![RealmId::Autobot],
        RealmOrAll::All => vec![RealmId::Slm, RealmId::Autobot],
    };
    for id in realms {
        if revert {
            crate::db::migrate_down(id, options(settings, id)).await?;
            println!("{}: all migrations reverted", id.as_str());
        } else {
            crate::db::migrate_up(id, options(settings, id)).await?;
            println!("{}: migrated", id.as_str());
        }
    }
    Ok(())
}

/// Runs `create-admin`.
pub async fn create_admin(
    settings: &Settings,
    realm: RealmId,
    username: &str,
    email: Option<&str>,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let username =
        crate::domain::Username::parse(username).map_err(|m| anyhow::anyhow!("username: {m}"))?;
    let email = email
        .map(crate::domain::Email::parse)
        .transpose()
        .map_err(|m| anyhow::anyhow!("email: {m}"))?;
    let (password, generated) = if password_stdin {
        let mut raw = String::new();
        std::io::stdin().read_to_string(&mut raw)?;
        (raw.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (
            crate::auth::token::random_secret()
                .chars()
                .take(24)
                .collect(),
            true,
        )
    };
    let password = crate::domain::Password::parse(
        &password,
        username.as_str(),
        email.as_ref().map(|e| e.as_str()),
    )
    .map_err(|m| anyhow::anyhow!("password: {m}"))?;
    crate::db::migrate_up(realm, options(settings, realm)).await?;
    // Argon2 is CPU-bound: off the async runtime.
    let to_hash = password.expose().to_owned();
    let hash = tokio::task::spawn_blocking(move || crate::auth::password::hash_blocking(&to_hash))
        .await??;
    let mut conn = sqlx::PgConnection::connect_with(options(settings, realm)).await?;
    let mut tx = conn.begin().await?;
    let id = Uuid::now_v7();
    let inserted = crate::users::db::insert(
        &mut tx,
        &crate::users::db::NewUserRow {
            id,
            username: username.as_str(),
            email: email.as_ref().map(|e| e.as_str()),
            full_name: None,
            password_hash: &hash,
            is_active: true,
            must_change_password: generated,
        },
    )
    .await;
    if let Err(err) = inserted {
        anyhow::bail!(
            "cannot create {}: {}",
            username.as_str(),
            match crate::error::constraint_conflict(err, crate::users::db::USER_CONFLICTS) {
                crate::error::ApiError::Conflict(m) => m,
                other => other.to_string(),
            }
        );
    }
    crate::users::db::set_roles(&mut tx, id, &[crate::realm::ADMIN_ROLE.to_owned()]).await?;
    tx.commit().await?;
    println!(
        "created {} admin {} ({id})",
        realm.as_str(),
        username.as_str()
    );
    if generated {
        println!("PASSWORD={}", password.expose());
    }
    Ok(())
}

/// One user of an import file.
#[derive(Debug, Deserialize)]
struct ImportedUser {
    username: String,
    email: Option<String>,
    full_name: Option<String>,
    password_hash: String,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    is_active: Option<bool>,
}

fn read_import(path: &PathBuf) -> anyhow::Result<Vec<ImportedUser>> {
    let text = std::fs::read_to_string(path)?;
    if text.trim_start().starts_with('[') {
        return Ok(serde_json::from_str(&text)?);
    }
    // CSV with a header: username,email,full_name,password_hash,roles(;-separated),is_active
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty file"))?
        .split(',')
        .map(|h| h.trim().to_lowercase())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (u, h) = (
        col("username").ok_or_else(|| anyhow::anyhow!("CSV needs a username column"))?,
        col("password_hash").ok_or_else(|| anyhow::anyhow!("CSV needs a password_hash column"))?,
    );
    lines
        .enumerate()
        .map(|(i, line)| {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let get = |c: Option<usize>| {
                c.and_then(|c| cells.get(c))
                    .filter(|v| !v.is_empty())
                    .map(|v| (*v).to_owned())
            };
            Ok(ImportedUser {
                username: get(Some(u))
                    .ok_or_else(|| anyhow::anyhow!("line {}: no username", i + 2))?,
                password_hash: get(Some(h))
                    .ok_or_else(|| anyhow::anyhow!("line {}: no password_hash", i + 2))?,
                email: get(col("email")),
                full_name: get(col("full_name")),
                roles: get(col("roles")).map(|r| r.split(';').map(str::to_owned).collect()),
                is_active: get(col("is_active")).map(|v| v == "true" || v == "1"),
            })
        })
        .collect()
}

/// Runs `import-users`: all or nothing, in one transaction.
pub async fn import_users(
    settings: &Settings,
    realm: RealmId,
    file: &PathBuf,
) -> anyhow::Result<()> {
    let users = read_import(file)?;
    let policy = realm.policy();
    crate::db::migrate_up(realm, options(settings, realm)).await?;
    let mut conn = sqlx::PgConnection::connect_with(options(settings, realm)).await?;
    let mut tx = conn.begin().await?;
    for (i, user) in users.iter().enumerate() {
        let line = i + 1;
        let username = crate::domain::Username::parse(&user.username)
            .map_err(|m| anyhow::anyhow!("user {line}: {m}"))?;
        let email = user
            .email
            .as_deref()
            .map(crate::domain::Email::parse)
            .transpose()
            .map_err(|m| anyhow::anyhow!("user {line}: {m}"))?;
        let hash = &user.password_hash;
        let known = hash.starts_with("$argon2")
            || ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
        if !known {
            anyhow::bail!(
                "user {line}: password_hash must be an Argon2 PHC string or a bcrypt hash"
            );
        }
        let roles = user
            .roles
            .clone()
            .unwrap_or_else(|| vec![policy.default_role.to_owned()]);
        if let Some(bad) = roles.iter().find(|r| policy.rank_of(r).is_none()) {
            anyhow::bail!("user {line}: unknown role {bad:?}");
        }
        let id = Uuid::now_v7();
        crate::users::db::insert(
            &mut tx,
            &crate::users::db::NewUserRow {
                id,
                username: username.as_str(),
                email: email.as_ref().map(|e| e.as_str()),
                full_name: user.full_name.as_deref(),
                password_hash: hash,
                is_active: user.is_active.unwrap_or(true),
                must_change_password: false,
            },
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "user {line} ({}): {}",
                username.as_str(),
                crate::error::constraint_conflict(e, crate::users::db::USER_CONFLICTS)
            )
        })?;
        crate::users::db::set_roles(&mut tx, id, &roles).await?;
    }
    tx.commit().await?;
    println!("imported {} users into {}", users.len(), realm.as_str());
    Ok(())
}

/// Runs `check`: one line per item; exit status 1 when the SLM database is unreachable.
pub async fn check(settings: &Settings) -> anyhow::Result<bool> {
    println!("environment: {:?}", settings.environment);
    println!("bind address: {}", settings.bind_addr);
    let mut ok = true;
    for id in [RealmId::Slm, RealmId::Autobot] {
        let opts = options(settings, id);
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            sqlx::PgConnection::connect_with(opts),
        )
        .await;
        let status = match result {
            Ok(Ok(_)) => "ok".to_owned(),
            Ok(Err(e)) => format!("unreachable ({e})"),
            Err(_) => "unreachable (timeout)".to_owned(),
        };
        if id == RealmId::Slm && status != "ok" {
            ok = false;
        }
        println!(
            "{} database {}:{}/{}: {status}",
            id.as_str(),
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or("?")
        );
    }
    let redis = crate::state::Redis::new(&settings.redis_url)?;
    println!(
        "redis: {}",
        if redis.ping().await {
            "ok"
        } else {
            "unreachable"
        }
    );
    Ok(ok)
}

/// Runs `healthcheck` against the configured port on localhost.
pub async fn healthcheck(settings: &Settings) -> anyhow::Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], settings.bind_addr.port()));
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
