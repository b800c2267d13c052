//! The command line (docs/api.md §7): serve (the default), migrate, create-admin, import-users,
//! reseal-mfa, check, healthcheck, completions. Users are created through the same service
//! function as over HTTP, with the same rows, audit events and invalidations.
//!
//! Commands print with `say!`: when the reader has gone (`slm-server check | head`), the
//! process ends quietly, as Unix tools do, instead of panicking.

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

mod maintenance;
mod users;

pub use maintenance::{check, healthcheck, reseal_mfa};
pub use users::{create_admin, import_users};

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Settings;
use crate::realm::migrate::{self, RevertTo};
use crate::realm::{Realm, RealmId};
use crate::state::AppState;

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

/// The database settings of a realm.
fn database(settings: &Settings, realm: RealmId) -> &crate::database::DatabaseSettings {
    match realm {
        RealmId::Slm => &settings.slm_db,
        RealmId::Autobot => &settings.autobot_db,
    }
}

fn options(settings: &Settings, realm: RealmId) -> &sqlx::postgres::PgConnectOptions {
    &database(settings, realm).options
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

/// What a command that writes users needs: the realm, migrated and open, in a state with the
/// hashing pool, and no request deadline (a command may write many rows in one statement).
async fn command_realm(settings: &Settings, realm: RealmId) -> anyhow::Result<(AppState, Realm)> {
    let mut settings = settings.clone();
    for db in [&mut settings.slm_db, &mut settings.autobot_db] {
        db.statement_timeout = std::time::Duration::from_secs(3600);
        db.acquire_timeout = db.acquire_timeout.max(std::time::Duration::from_secs(10));
    }
    settings.passwords.hash_concurrency = 1;
    let state = AppState::build(Arc::new(settings))?;
    migrate::migrate_up(realm, &database(&state.settings, realm).options).await?;
    let target = state.realm(realm).clone();
    target
        .open()
        .await
        .map_err(|e| anyhow::anyhow!("{}", crate::http::error::plain(&e)))?;
    Ok((state, target))
}
