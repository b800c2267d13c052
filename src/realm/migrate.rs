//! Database provisioning: create a realm's database when missing, check an existing AutoBot
//! schema before adopting it, run the migrations (the same for both realms: the public tables
//! are the AutoBot platform's in both), and seed the realm's roles, permissions and default
//! organization.
//!
//! The migrations' own bookkeeping lives in the server's schema (`slm_server._sqlx_migrations`)
//! and they run under the migrator's advisory lock, so replicas starting together migrate once.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

use crate::realm::RealmId;

/// The schema that holds everything only this server needs.
pub const PRIVATE_SCHEMA: &str = "slm_server";

fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.create_schema(PRIVATE_SCHEMA);
    migrator.dangerous_set_table_name("slm_server._sqlx_migrations");
    migrator
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
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#,
        name
    )
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

/// The columns of the AutoBot tables that the server reads or writes, with their types as
/// `information_schema` names them. An adopted database must have every one.
const REQUIRED_COLUMNS: &[(&str, &[(&str, &str)])] = &[
    (
        "organizations",
        &[
            ("id", "uuid"),
            ("slug", "character varying"),
            ("name", "character varying"),
            ("is_active", "boolean"),
            ("deleted_at", "timestamp with time zone"),
            ("max_users", "integer"),
            ("settings", "jsonb"),
            ("created_at", "timestamp with time zone"),
        ],
    ),
    (
        "users",
        &[
            ("id", "uuid"),
            ("org_id", "uuid"),
            ("email", "character varying"),
            ("username", "character varying"),
            ("password_hash", "character varying"),
            ("display_name", "character varying"),
            ("avatar_url", "character varying"),
            ("bio", "text"),
            ("is_active", "boolean"),
            ("is_verified", "boolean"),
            ("mfa_enabled", "boolean"),
            ("is_platform_admin", "boolean"),
            ("preferences", "jsonb"),
            ("last_login_at", "timestamp with time zone"),
            ("deleted_at", "timestamp with time zone"),
            ("created_at", "timestamp with time zone"),
            ("updated_at", "timestamp with time zone"),
        ],
    ),
    (
        "roles",
        &[
            ("id", "uuid"),
            ("org_id", "uuid"),
            ("name", "character varying"),
            ("description", "text"),
            ("is_system", "boolean"),
            ("priority", "integer"),
        ],
    ),
    (
        "permissions",
        &[
            ("id", "uuid"),
            ("name", "character varying"),
            ("description", "text"),
            ("resource", "character varying"),
            ("action", "character varying"),
        ],
    ),
    (
        "role_permissions",
        &[("role_id", "uuid"), ("permission_id", "uuid")],
    ),
    (
        "user_roles",
        &[
            ("user_id", "uuid"),
            ("role_id", "uuid"),
            ("assigned_by", "uuid"),
            ("created_at", "timestamp with time zone"),
        ],
    ),
    (
        "teams",
        &[
            ("id", "uuid"),
            ("org_id", "uuid"),
            ("name", "character varying"),
            ("description", "text"),
            ("settings", "jsonb"),
            ("is_default", "boolean"),
            ("deleted_at", "timestamp with time zone"),
            ("created_at", "timestamp with time zone"),
            ("updated_at", "timestamp with time zone"),
        ],
    ),
    (
        "team_memberships",
        &[
            ("id", "uuid"),
            ("team_id", "uuid"),
            ("user_id", "uuid"),
            ("role", "character varying"),
            ("joined_at", "timestamp with time zone"),
        ],
    ),
    (
        "api_keys",
        &[
            ("id", "uuid"),
            ("key_hash", "character varying"),
            ("key_prefix", "character varying"),
            ("user_id", "uuid"),
            ("name", "character varying"),
            ("description", "character varying"),
            ("scopes", "jsonb"),
            ("is_active", "boolean"),
            ("expires_at", "timestamp with time zone"),
            ("last_used_at", "timestamp with time zone"),
            ("usage_count", "integer"),
            ("revoked_at", "timestamp with time zone"),
            ("revoked_by", "uuid"),
            ("created_at", "timestamp with time zone"),
        ],
    ),
    (
        "user_mfa",
        &[
            ("id", "uuid"),
            ("user_id", "uuid"),
            ("method", "character varying"),
            ("secret_encrypted", "character varying"),
            ("backup_codes_encrypted", "character varying"),
            ("backup_codes_remaining", "integer"),
            ("is_verified", "boolean"),
            ("last_verified_at", "timestamp with time zone"),
        ],
    ),
    (
        "audit_logs",
        &[
            ("id", "uuid"),
            ("org_id", "uuid"),
            ("user_id", "uuid"),
            ("action", "character varying"),
            ("resource_type", "character varying"),
            ("resource_id", "uuid"),
            ("outcome", "character varying"),
            ("details", "jsonb"),
            ("ip_address", "character varying"),
            ("user_agent", "character varying"),
            ("created_at", "timestamp with time zone"),
        ],
    ),
];

/// Something in an existing database that stops its migration until an operator acts: one
/// line naming it (and the rows), and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub cause: String,
    pub fix: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (fix: {})", self.cause, self.fix)
    }
}

/// The error of [`migrate_up`] when the database was reached but cannot be migrated: the
/// blockers of [`preflight`], or a migration that failed on the data. Anything else (the
/// database did not answer) is worth trying again as it is.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Unmigratable(pub Vec<Blocker>);

/// What stops an existing database from being migrated: a column the server needs that is
/// missing or of another type, and — while the server's unique indexes do not exist yet —
/// live rows that would break them (names that differ only in case). Deleted rows never block:
/// those indexes hold among live rows only. Empty when the database can be migrated.
pub async fn preflight(conn: &mut PgConnection) -> anyhow::Result<Vec<Blocker>> {
    if !has_table(conn, "public.users").await? {
        return Ok(Vec::new());
    }
    let mut blockers = Vec::new();
    let columns: Vec<(String, String, String)> = sqlx::query!(
        r#"SELECT table_name::text AS "table!", column_name::text AS "column!",
                  data_type::text AS "data_type!"
           FROM information_schema.columns WHERE table_schema = 'public'"#
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|c| (c.table, c.column, c.data_type))
    .collect();
    for (table, wanted) in REQUIRED_COLUMNS {
        for (column, data_type) in *wanted {
            match columns.iter().find(|(t, c, _)| t == table && c == column) {
                None => blockers.push(Blocker {
                    cause: format!("the existing AutoBot schema lacks column {table}.{column} ({data_type}), which slm-server needs"),
                    fix: "apply the AutoBot backend's user-management migrations to this database first".into(),
                }),
                Some((_, _, found)) if found != data_type => blockers.push(Blocker {
                    cause: format!("the existing AutoBot schema has column {table}.{column} as {found}; slm-server needs {data_type}"),
                    fix: format!("change {table}.{column} back to {data_type}, as the AutoBot backend's models define it"),
                }),
                Some(_) => {}
            }
        }
    }
    if !blockers.is_empty() {
        return Ok(blockers);
    }
    // Each: what clashes, the live rows that clash (one line per group, a few groups), and the
    // unique index that would refuse them, which makes the check moot once it exists.
    if !has_table(conn, "public.users_username_lower_key").await? {
        let groups = sqlx::query_scalar!(
            r#"SELECT string_agg(format('%L (id %s)', username, id), ' and ' ORDER BY created_at, id)
                   AS "group!"
               FROM public.users WHERE deleted_at IS NULL
               GROUP BY lower(username) HAVING count(*) > 1 LIMIT 5"#
        )
        .fetch_all(&mut *conn)
        .await?;
        blockers.extend(clash("users whose usernames differ only in case", &groups));
    }
    if !has_table(conn, "public.users_email_lower_key").await? {
        let groups = sqlx::query_scalar!(
            r#"SELECT string_agg(format('%L (id %s)', email, id), ' and ' ORDER BY created_at, id)
                   AS "group!"
               FROM public.users WHERE deleted_at IS NULL
               GROUP BY lower(email) HAVING count(*) > 1 LIMIT 5"#
        )
        .fetch_all(&mut *conn)
        .await?;
        blockers.extend(clash("users whose e-mails differ only in case", &groups));
    }
    if !has_table(conn, "public.teams_org_name_lower_key").await? {
        let groups = sqlx::query_scalar!(
            r#"SELECT string_agg(format('%L (id %s)', name, id), ' and ' ORDER BY created_at, id)
                   AS "group!"
               FROM public.teams WHERE deleted_at IS NULL
               GROUP BY org_id, lower(name) HAVING count(*) > 1 LIMIT 5"#
        )
        .fetch_all(&mut *conn)
        .await?;
        blockers.extend(clash(
            "teams of one organization whose names differ only in case",
            &groups,
        ));
    }
    Ok(blockers)
}

/// The blocker of live rows whose names clash (`what`), one group of them per entry.
fn clash(what: &str, groups: &[String]) -> Option<Blocker> {
    (!groups.is_empty()).then(|| Blocker {
        cause: format!("live {what}: {}", groups.join("; ")),
        fix: "rename, or delete (set deleted_at on), all but one of each; names are unique \
              case-insensitively among live rows"
            .into(),
    })
}

/// Whether a table or index exists (a qualified name).
async fn has_table(conn: &mut PgConnection, name: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"SELECT to_regclass($1) IS NOT NULL AS "exists!""#, name)
        .fetch_one(&mut *conn)
        .await
}

/// A one-connection pool (the migrator's futures must be `Send` for background retries).
async fn single_connection(options: &PgConnectOptions) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.clone())
        .await?)
}

/// Creates (if needed) and migrates a realm's database to the newest schema, adopting AutoBot
/// tables that already exist, then seeds what the realm needs. When the database answers but
/// cannot be migrated, the error is an [`Unmigratable`].
pub async fn migrate_up(realm: RealmId, options: &PgConnectOptions) -> anyhow::Result<()> {
    ensure_database(options).await?;
    let pool = single_connection(options).await?;
    {
        let mut conn = pool.acquire().await?;
        let blockers = preflight(&mut conn).await?;
        if !blockers.is_empty() {
            return Err(Unmigratable(blockers).into());
        }
        make_unique_indexes_over_live_rows(&mut conn).await?;
    }
    migrator().run(&pool).await.map_err(|err| match err {
        // A statement the database refused (not one it never answered) will be refused again.
        sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(db)) => {
            anyhow::Error::from(Unmigratable(vec![Blocker {
                cause: format!("a migration failed: {}", db.message()),
                fix: "see `slm-server check`, correct the data, and start again".into(),
            }]))
        }
        other => other.into(),
    })?;
    seed(realm, &pool).await?;
    pool.close().await;
    Ok(())
}

/// The first release made its case-insensitive unique indexes over every row, deleted ones
/// included, which refuses a database whose deleted rows share a name with a live one: the
/// AutoBot backend soft-deletes and may hold such rows. Before that migration runs on such a
/// database, the indexes are made here, under the same names, over live rows only, so that the
/// migration's `CREATE UNIQUE INDEX IF NOT EXISTS` finds them made. (Databases that ran the
/// first release's migration get the same indexes from a later one.)
async fn make_unique_indexes_over_live_rows(conn: &mut PgConnection) -> anyhow::Result<()> {
    let applied = has_table(conn, "slm_server._sqlx_migrations").await?
        && sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM slm_server._sqlx_migrations WHERE version = $1)
               AS "applied!""#,
            SERVER_INDEXES_MIGRATION
        )
        .fetch_one(&mut *conn)
        .await?;
    if applied || !has_table(conn, "public.users").await? {
        return Ok(());
    }
    sqlx::query!(
        r"CREATE UNIQUE INDEX IF NOT EXISTS users_username_lower_key ON public.users (lower(username))
          WHERE deleted_at IS NULL"
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        r"CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower_key ON public.users (lower(email))
          WHERE deleted_at IS NULL"
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        r"CREATE UNIQUE INDEX IF NOT EXISTS teams_org_name_lower_key
          ON public.teams (org_id, lower(name)) WHERE deleted_at IS NULL"
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The migration that made the case-insensitive unique indexes (see
/// [`make_unique_indexes_over_live_rows`]).
const SERVER_INDEXES_MIGRATION: i64 = 20261201000002;

/// Inserts the realm's roles, permissions and default organization where missing; rows that
/// exist are left as they are. Replicas starting together seed one after the other.
async fn seed(realm: RealmId, pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock(7263511, 3)")
        .execute(&mut *tx)
        .await?;
    crate::realm::db::seed(&mut tx, realm.policy()).await?;
    tx.commit().await?;
    Ok(())
}

/// One migration and whether it is applied.
#[derive(Debug)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

/// The migrations of a realm's database, oldest first.
pub async fn status(options: &PgConnectOptions) -> anyhow::Result<Vec<MigrationStatus>> {
    let mut conn = PgConnection::connect_with(options).await?;
    let applied: Vec<i64> = match has_table(&mut conn, "slm_server._sqlx_migrations").await? {
        true => {
            sqlx::query_scalar!("SELECT version FROM slm_server._sqlx_migrations WHERE success")
                .fetch_all(&mut conn)
                .await?
        }
        false => Vec::new(),
    };
    Ok(migrator()
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| MigrationStatus {
            version: m.version,
            description: m.description.to_string(),
            applied: applied.contains(&m.version),
        })
        .collect())
}

/// How far back `migrate --revert` goes.
#[derive(Clone, Copy, Debug)]
pub enum RevertTo {
    /// Undo the newest applied migration only.
    Previous,
    /// Undo every migration newer than this version (0: all of them).
    Version(i64),
}

/// Reverts migrations of a realm's database; returns the versions undone, newest first.
pub async fn migrate_down(options: &PgConnectOptions, to: RevertTo) -> anyhow::Result<Vec<i64>> {
    let before = status(options).await?;
    let mut applied: Vec<i64> = before
        .iter()
        .filter(|m| m.applied)
        .map(|m| m.version)
        .collect();
    applied.sort_unstable();
    let target = match to {
        RevertTo::Version(v) => v,
        RevertTo::Previous => applied.iter().rev().nth(1).copied().unwrap_or(0),
    };
    if target != 0 && !before.iter().any(|m| m.version == target) {
        anyhow::bail!("no migration has version {target}");
    }
    let pool = single_connection(options).await?;
    migrator().undo(&pool, target).await?;
    pool.close().await;
    Ok(applied.into_iter().rev().filter(|v| *v > target).collect())
}
