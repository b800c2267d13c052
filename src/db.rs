//! Database provisioning: create a realm's database when missing, and run its migrations up or
//! down. Each realm has its own migration folder, embedded at compile time.

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::realm::RealmId;

static SLM_MIGRATOR: Migrator = sqlx::migrate!("./migrations_slm");
static AUTOBOT_MIGRATOR: Migrator = sqlx::migrate!("./migrations_autobot");

/// The migrations of a realm.
pub fn migrator(realm: RealmId) -> &'static Migrator {
    match realm {
        RealmId::Slm => &SLM_MIGRATOR,
        RealmId::Autobot => &AUTOBOT_MIGRATOR,
    }
}

/// Creates the database named in `options` if it does not exist, connecting to the server's
/// `postgres` maintenance database to do so.
pub async fn ensure_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    let name = options
        .get_database()
        .ok_or_else(|| anyhow::anyhow!("the database URL names no database"))?
        .to_owned();
    if PgConnection::connect_with(options).await.is_ok() {
        return Ok(());
    }
    // Identifiers cannot be bound as parameters; the name is checked to be a plain identifier.
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        anyhow::bail!("refusing to create database {name:?}: unusual characters in its name");
    }
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL to create {name}: {e}"))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let result = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await;
        // Another replica may have created it at the same moment.
        if let Err(err) = result
            && !err.to_string().contains("already exists")
        {
            return Err(err.into());
        }
        tracing::info!(database = %name, "created database");
    }
    Ok(())
}

/// Creates (if needed) and migrates a realm's database to the newest schema.
pub async fn migrate_up(realm: RealmId, options: &PgConnectOptions) -> anyhow::Result<()> {
    ensure_database(options).await?;
    let pool = single_connection(options).await?;
    migrator(realm).run(&pool).await?;
    pool.close().await;
    Ok(())
}

/// Reverts every migration of a realm (drops its schema).
pub async fn migrate_down(realm: RealmId, options: &PgConnectOptions) -> anyhow::Result<()> {
    let pool = single_connection(options).await?;
    migrator(realm).undo(&pool, 0).await?;
    pool.close().await;
    Ok(())
}

/// A one-connection pool (the migrator's futures must be `Send` for background retries).
async fn single_connection(options: &PgConnectOptions) -> anyhow::Result<sqlx::PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_with(options.clone())
        .await?)
}
