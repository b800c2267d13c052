//! The command line (docs/api.md §7): serve (the default), migrate, create-admin, import-users,
//! reseal-mfa, check, healthcheck, completions. Users are created through the same service
//! function as over HTTP, with the same rows, audit events and invalidations.

/// Prints a line on standard output; when the reader has gone (`slm-server check | head`), the
/// process ends quietly, as Unix tools do, instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use sqlx::Connection as _;

use crate::audit::Actor;
use crate::config::Settings;
use crate::database::migrate::{self, RevertTo};
use crate::domain::{Email, Password, Username, parse_name};
use crate::realm::{Realm, RealmId};
use crate::state::AppState;
use crate::users::service::{self, Credential, NewUser, Prepared, RoleInput};

const ENVIRONMENT_HELP: &str = "\
Configuration comes from the environment and from a .env file in the working directory or one
of its parents (real environment variables win). The main variables:
  ENVIRONMENT                   local | prod (prod refuses missing or known secrets)
  BIND_ADDR                     listen address [default: 0.0.0.0:8000]
  SLM_DATABASE_URL              SLM database (or SLM_POSTGRES_HOST/PORT/DB/USER/PASSWORD)
  AUTOBOT_DATABASE_URL          AutoBot database (or AUTOBOT_POSTGRES_*)
  REDIS_URL                     redis:// or rediss:// [default: redis://127.0.0.1:6379]
  SECRET_KEY                    token secret of both realms (or SLM_JWT_SECRET, AUTOBOT_JWT_SECRET)
  MFA_ENCRYPTION_KEYS           keys of MFA secrets at rest, newest first
See the README's configuration table for every variable.";

#[derive(Parser, Debug)]
#[command(
    name = "slm-server",
    version,
    about = "User management and central authentication server of the AutoBot platform",
    after_long_help = ENVIRONMENT_HELP
)]
pub struct Cli {
    /// Read the settings from this file instead of looking for `.env` in the working directory
    /// and its parents (real environment variables still win)
    #[arg(long, global = true, value_name = "FILE", env = "SLM_ENV_FILE")]
    pub env_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// A realm.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RealmArg {
    /// The SLM realm (`slm_users`: fleet administrators).
    Slm,
    /// The AutoBot realm (`autobot_users`: chat and tool users).
    Autobot,
}

/// A realm, or both.
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

impl RealmOrAll {
    fn realms(self) -> Vec<RealmId> {
        match self {
            Self::Slm => vec![RealmId::Slm],
            Self::Autobot => vec![RealmId::Autobot],
            Self::All => vec![RealmId::Slm, RealmId::Autobot],
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Create, migrate and seed the databases; or show or revert their migrations.
    Migrate {
        /// Which realm's database.
        #[arg(long, value_enum, default_value = "all")]
        realm: RealmOrAll,
        /// List the migrations, applied and pending, and change nothing.
        #[arg(long, conflicts_with = "revert")]
        status: bool,
        /// Undo the newest applied migration (or, with --to, every one newer than a version).
        #[arg(long)]
        revert: bool,
        /// With --revert: the version to go back to (0 undoes every migration).
        #[arg(long, requires = "revert", value_name = "VERSION")]
        to: Option<i64>,
    },
    /// Create an admin of a realm; prints a generated password (to be changed at the first
    /// sign-in) unless one is read from standard input.
    CreateAdmin {
        /// The realm of the new admin.
        #[arg(long, value_enum)]
        realm: RealmArg,
        /// 3-50 letters, digits, '.', '_', '-'.
        #[arg(long)]
        username: String,
        /// The admin's e-mail address.
        #[arg(long)]
        email: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Import users from a JSON array or a CSV file with a header; all or nothing.
    ///
    /// Columns (CSV) or fields (JSON): username, email, password_hash (Argon2 or bcrypt
    /// $2a$/$2b$/$2y$), and optionally display_name (or full_name), roles (CSV:
    /// ';'-separated), is_active. Hashes of another scheme are upgraded at the next login.
    ImportUsers {
        /// The realm to import into.
        #[arg(long, value_enum)]
        realm: RealmArg,
        /// The file (.json, or CSV).
        file: PathBuf,
    },
    /// Re-encrypt every stored MFA secret and backup-code set with the newest MFA key, so that
    /// older keys can be removed from MFA_ENCRYPTION_KEYS.
    ResealMfa {
        /// Which realm's database.
        #[arg(long, value_enum, default_value = "all")]
        realm: RealmOrAll,
    },
    /// Report the configuration and whether every dependency answers.
    Check,
    /// Exit 0 when the local server answers /healthz (container health checks).
    Healthcheck,
    /// Print a completion script for a shell.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn options(settings: &Settings, realm: RealmId) -> &sqlx::postgres::PgConnectOptions {
    &realm.settings(settings).0.options
}

/// Runs `completions`.
pub fn completions(shell: clap_complete::Shell) {
    use clap::CommandFactory as _;
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "slm-server", &mut std::io::stdout());
}

/// Runs `migrate`.
pub async fn migrate(
    settings: &Settings,
    realm: RealmOrAll,
    status: bool,
    revert: bool,
    to: Option<i64>,
) -> anyhow::Result<()> {
    for id in realm.realms() {
        let opts = options(settings, id);
        if status {
            let list = migrate::status(opts).await?;
            let pending = list.iter().filter(|m| !m.applied).count();
            say!(
                "{}: {} applied, {pending} pending",
                id.as_str(),
                list.len() - pending
            );
            for m in list {
                let state = if m.applied { "applied" } else { "pending" };
                say!("  {} {state:<8} {}", m.version, m.description);
            }
        } else if revert {
            let to = to.map_or(RevertTo::Previous, RevertTo::Version);
            let undone = migrate::migrate_down(opts, to).await?;
            match undone.as_slice() {
                [] => say!("{}: nothing to revert", id.as_str()),
                versions => say!("{}: reverted {versions:?}", id.as_str()),
            }
        } else {
            let before = migrate::status(opts)
                .await
                .map(|l| l.iter().filter(|m| !m.applied).count());
            migrate::migrate_up(id, opts).await?;
            match before {
                Ok(0) => say!("{}: up to date", id.as_str()),
                Ok(n) => say!("{}: applied {n} migration(s)", id.as_str()),
                Err(_) => say!("{}: created and migrated", id.as_str()),
            }
        }
    }
    Ok(())
}

/// The state a command needs to create users: both realms and the hashing pool.
fn command_state(settings: &Settings) -> anyhow::Result<AppState> {
    let mut settings = settings.clone();
    // A command may write many rows in one statement: no request deadline applies.
    for db in [&mut settings.slm_db, &mut settings.autobot_db] {
        db.statement_timeout = std::time::Duration::from_secs(3600);
        db.acquire_timeout = db.acquire_timeout.max(std::time::Duration::from_secs(10));
    }
    settings.hash_concurrency = 1;
    AppState::build(Arc::new(settings))
}

/// Runs `create-admin`.
pub async fn create_admin(
    settings: &Settings,
    realm: RealmId,
    username: &str,
    email: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let username = Username::parse(username).map_err(|m| anyhow::anyhow!("--username: {m}"))?;
    let email = Email::parse(email).map_err(|m| anyhow::anyhow!("--email: {m}"))?;
    let (password, generated) = if password_stdin {
        let mut raw = String::new();
        std::io::stdin().read_to_string(&mut raw)?;
        (raw.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (
            crate::crypto::random_secret()
                .chars()
                .take(24)
                .collect::<String>(),
            true,
        )
    };
    let state = command_state(settings)?;
    let target = state.realm(realm).clone();
    let parsed = Password::parse(
        &password,
        username.as_str(),
        Some(email.as_str()),
        target.scheme().max_password_bytes(),
    )
    .map_err(|m| anyhow::anyhow!("password: {m}"))?;
    migrate::migrate_up(realm, options(settings, realm)).await?;
    let new = NewUser {
        username,
        email,
        display_name: None,
        credential: Credential::Password(parsed),
        roles: RoleInput::default(),
        admin: true,
        is_active: true,
        must_change_password: generated,
        org_id: None,
    };
    let user = service::create(&state, &target, &Actor::system("cli:create-admin"), new)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the admin: {}", crate::error::plain(&e)))?;
    say!(
        "created {} admin {} ({})",
        realm.as_str(),
        user.username,
        user.id
    );
    if generated {
        say!("PASSWORD={password}");
    }
    Ok(())
}

/// One user of an import file.
#[derive(Debug, Deserialize)]
struct ImportedUser {
    username: Option<String>,
    email: Option<String>,
    #[serde(alias = "full_name")]
    display_name: Option<String>,
    password_hash: Option<String>,
    #[serde(default, deserialize_with = "roles_field")]
    roles: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flag_field")]
    is_active: Option<bool>,
}

/// Roles as a JSON array, or (CSV) a `;`-separated string.
fn roles_field<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Roles {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Option::<Roles>::deserialize(de)? {
        None => None,
        Some(Roles::List(list)) => Some(list),
        Some(Roles::Text(text)) if text.trim().is_empty() => None,
        Some(Roles::Text(text)) => Some(
            text.split(';')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect(),
        ),
    })
}

/// A flag as a JSON boolean, or (CSV) `true`/`false`/`1`/`0`/`yes`/`no`.
fn flag_field<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Option::<Flag>::deserialize(de)? {
        None => Ok(None),
        Some(Flag::Bool(b)) => Ok(Some(b)),
        Some(Flag::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" => Ok(Some(false)),
            other => Err(serde::de::Error::custom(format!(
                "is_active: expected true or false, got {other:?}"
            ))),
        },
    }
}

/// The records of an import file, each with the line it starts on.
fn read_import(path: &Path) -> anyhow::Result<Vec<(u64, Result<ImportedUser, String>)>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if text.trim_start().starts_with('[') {
        let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("line {}: not a JSON array of users: {e}", e.line()))?;
        return Ok(items
            .into_iter()
            .map(|raw| {
                let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
                let line = 1 + text.get(..offset).unwrap_or_default().matches('\n').count() as u64;
                (
                    line,
                    serde_json::from_str(raw.get()).map_err(|e| e.to_string()),
                )
            })
            .collect());
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader.headers()?.clone();
    for required in ["username", "email", "password_hash"] {
        if !headers.iter().any(|h| h.eq_ignore_ascii_case(required)) {
            anyhow::bail!("line 1: the CSV header has no {required} column");
        }
    }
    let headers = csv::StringRecord::from(
        headers
            .iter()
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>(),
    );
    Ok(reader
        .records()
        .map(|record| match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line());
                let fields: serde_json::Map<String, serde_json::Value> = headers
                    .iter()
                    .zip(record.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(h, v)| (h.to_owned(), serde_json::Value::String(v.to_owned())))
                    .collect();
                (
                    line,
                    serde_json::from_value(serde_json::Value::Object(fields))
                        .map_err(|e| e.to_string()),
                )
            }
            Err(err) => {
                let line = err.position().map_or(0, |p| p.line());
                (line, Err(err.to_string()))
            }
        })
        .collect())
}

/// Runs `import-users`: every record is checked first ("line N: reason" for each problem),
/// then all are written in one transaction.
pub async fn import_users(
    settings: &Settings,
    realm: RealmId,
    file: &Path,
) -> anyhow::Result<usize> {
    let records = read_import(file)?;
    let state = command_state(settings)?;
    let target: Realm = state.realm(realm).clone();
    migrate::migrate_up(realm, options(settings, realm)).await?;
    let known = {
        let mut conn = target.conn().await?;
        crate::users::db::roles(&mut conn).await?
    };
    let mut errors = Vec::new();
    let mut users: Vec<(u64, NewUser)> = Vec::new();
    let (mut names, mut emails) = (HashSet::new(), HashSet::new());
    for (line, record) in records {
        let user = match record {
            Ok(user) => user,
            Err(msg) => {
                errors.push(format!("line {line}: {msg}"));
                continue;
            }
        };
        match parse_imported(user, &target) {
            Ok(new) => {
                if !names.insert(new.username.as_str().to_lowercase()) {
                    errors.push(format!(
                        "line {line}: username {} appears twice in the file",
                        new.username.as_str()
                    ));
                }
                if !emails.insert(new.email.as_str().to_lowercase()) {
                    errors.push(format!(
                        "line {line}: email {} appears twice in the file",
                        new.email.as_str()
                    ));
                }
                if let Err(role_errors) = service::roles_of_new_user(&known, &target, &new) {
                    for e in role_errors {
                        errors.push(format!("line {line}: {}", e.msg));
                    }
                }
                users.push((line, new));
            }
            Err(msg) => errors.push(format!("line {line}: {msg}")),
        }
    }
    let taken: HashSet<String> = {
        let mut conn = target.conn().await?;
        let names: Vec<String> = names.iter().cloned().collect();
        let emails: Vec<String> = emails.iter().cloned().collect();
        crate::users::db::taken(&mut conn, &names, &emails)
            .await?
            .into_iter()
            .collect()
    };
    for (line, new) in &users {
        if taken.contains(&new.username.as_str().to_lowercase()) {
            errors.push(format!(
                "line {line}: username {} already exists",
                new.username.as_str()
            ));
        }
        if taken.contains(&new.email.as_str().to_lowercase()) {
            errors.push(format!(
                "line {line}: email {} already exists",
                new.email.as_str()
            ));
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| {
            e.split(':')
                .next()
                .and_then(|l| l.trim_start_matches("line ").parse::<u64>().ok())
        });
        anyhow::bail!(
            "nothing imported, {} problem(s):\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
    let progress = indicatif::ProgressBar::new(users.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} users ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let actor = Actor::system("cli:import-users");
    let mut tx = target.begin().await?;
    for chunk in users.chunks(5000) {
        let prepared: Vec<Prepared<'_>> = chunk
            .iter()
            .map(|(_, new)| Prepared {
                new,
                roles: service::roles_of_new_user(&known, &target, new).unwrap_or_default(),
                password_hash: match &new.credential {
                    Credential::Hash(hash) => hash.clone(),
                    Credential::Password(_) => String::new(),
                },
            })
            .collect();
        service::create_many(&mut tx, &target, &actor, &prepared)
            .await
            .map_err(|e| anyhow::anyhow!("nothing imported: {}", crate::error::plain(&e)))?;
        progress.inc(chunk.len() as u64);
    }
    tx.commit()
        .await
        .map_err(|e| anyhow::anyhow!("nothing imported: {}", crate::error::plain(&e)))?;
    progress.finish_and_clear();
    say!("imported {} users into {}", users.len(), realm.as_str());
    Ok(users.len())
}

fn parse_imported(user: ImportedUser, realm: &Realm) -> Result<NewUser, String> {
    let username = Username::parse(user.username.as_deref().ok_or("no username")?)?;
    let email = Email::parse(user.email.as_deref().ok_or("no email")?)?;
    let hash = user.password_hash.ok_or("no password_hash")?;
    let known =
        hash.starts_with("$argon2") || ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
    if !known || hash.len() > 255 {
        return Err("password_hash must be an Argon2 PHC string or a bcrypt hash".into());
    }
    let display_name = match user.display_name.as_deref() {
        None => None,
        Some(raw) => parse_name(raw, 255, "display_name")?,
    };
    let _ = realm;
    Ok(NewUser {
        username,
        email,
        display_name,
        credential: Credential::Hash(hash),
        roles: RoleInput {
            names: user.roles,
            ids: None,
        },
        admin: false,
        is_active: user.is_active.unwrap_or(true),
        must_change_password: false,
        org_id: None,
    })
}

/// Runs `reseal-mfa`: every MFA secret not sealed with the newest key is sealed again.
pub async fn reseal_mfa(settings: &Settings, realm: RealmOrAll) -> anyhow::Result<()> {
    let state = command_state(settings)?;
    let keys = &settings.mfa_keys;
    for id in realm.realms() {
        let target = state.realm(id);
        let mut tx = target.begin().await?;
        let mut resealed = 0;
        for (user_id, secret, codes) in crate::auth::db::all_mfa_secrets(&mut tx).await? {
            if keys.is_current(&secret) && codes.as_deref().is_none_or(|c| keys.is_current(c)) {
                continue;
            }
            let secret = keys.seal(&keys.open(&secret)?)?;
            let codes = codes
                .map(|c| keys.open(&c).and_then(|plain| keys.seal(&plain)))
                .transpose()?;
            crate::auth::db::reseal_mfa(&mut tx, user_id, &secret, codes.as_deref()).await?;
            resealed += 1;
        }
        for (user_id, secret, codes) in crate::auth::db::all_pending_mfa(&mut tx).await? {
            if keys.is_current(&secret) && keys.is_current(&codes) {
                continue;
            }
            let secret = keys.seal(&keys.open(&secret)?)?;
            let codes = keys.seal(&keys.open(&codes)?)?;
            crate::auth::db::reseal_pending_mfa(&mut tx, user_id, &secret, &codes).await?;
            resealed += 1;
        }
        tx.commit().await?;
        say!(
            "{}: resealed {resealed} MFA secret(s) with key {}",
            id.as_str(),
            keys.0.first().map_or("?", |k| k.id.as_str())
        );
    }
    Ok(())
}

/// Runs `check`: one line per item; `false` (exit status 1) when the SLM database cannot be
/// used.
pub async fn check(settings: &Settings) -> anyhow::Result<bool> {
    say!("environment: {:?}", settings.environment);
    say!("bind address: {}", settings.bind_addr);
    say!(
        "metrics: {}",
        settings
            .metrics_addr
            .map_or("on the API's port".to_owned(), |a| a.to_string())
    );
    for (realm, source, secrets) in [
        (
            "slm",
            &settings.slm_secret_source,
            &settings.slm_jwt_secrets,
        ),
        (
            "autobot",
            &settings.autobot_secret_source,
            &settings.autobot_jwt_secrets,
        ),
    ] {
        let older = if secrets.len() > 1 {
            format!(", {} older secret(s) still verify", secrets.len() - 1)
        } else {
            String::new()
        };
        let warning = if crate::config::KNOWN_SECRETS.contains(&secrets[0].as_str()) {
            " — WARNING: a published secret, for this machine only (prod refuses it)"
        } else {
            ""
        };
        say!("{realm} token secret: from {source}{older}{warning}");
    }
    let mfa = &settings.mfa_keys.0;
    say!(
        "MFA keys: {} (newest {}) from {}",
        mfa.len(),
        mfa.first().map_or("?", |k| k.id.as_str()),
        settings.mfa_key_source
    );
    let mut ok = true;
    for id in [RealmId::Slm, RealmId::Autobot] {
        let opts = options(settings, id);
        let where_ = id.settings(settings).0.describe();
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
    let redis =
        crate::redis_client::Redis::new(&settings.redis_url, settings.redis_ca_file.as_deref())?;
    let tls = match (
        settings.redis_url.starts_with("rediss://"),
        &settings.redis_ca_file,
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
