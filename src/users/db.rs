//! The SQL of users and their roles. Every function takes an executor or a transaction.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// The columns of a [`User`], for `SELECT … FROM users u`. Roles come ordered by rank.
macro_rules! user_columns {
    () => {
        "u.id, u.username, u.email, u.full_name, u.is_active, u.mfa_enabled, \
         u.must_change_password, u.created_at, u.updated_at, u.last_login_at, \
         ARRAY(SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
               WHERE ur.user_id = u.id ORDER BY r.rank) AS roles"
    };
}
pub(crate) use user_columns;

/// A user as stored, without secrets.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub is_active: bool,
    pub mfa_enabled: bool,
    pub must_change_password: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub roles: Vec<String>,
}

impl User {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The WHERE clause of a user list: $1 search pattern, $2 is_active, $3 role name. The ILIKE
/// conditions are served by the trigram GIN indexes.
macro_rules! user_filter {
    () => {
        r"WHERE ($1::text IS NULL OR u.username ILIKE $1 OR u.email ILIKE $1 OR u.full_name ILIKE $1)
            AND ($2::boolean IS NULL OR u.is_active = $2)
            AND ($3::text IS NULL OR EXISTS (
                  SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                  WHERE ur.user_id = u.id AND r.name = $3))"
    };
}

/// Filters of a user list.
#[derive(Debug, Default)]
pub struct UserFilter {
    pub search: Option<String>,
    pub is_active: Option<bool>,
    pub role: Option<String>,
    pub skip: i64,
    pub limit: i64,
}

/// Escapes `%`, `_` and `\` so that a search string matches itself literally in `ILIKE`.
pub fn like_pattern(search: &str) -> String {
    let mut escaped = String::with_capacity(search.len() + 2);
    escaped.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

pub async fn fetch(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users u WHERE u.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Fetches and row-locks a user for the rest of the transaction.
pub async fn fetch_for_update(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users u WHERE u.id = $1 FOR UPDATE OF u"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn list(conn: &mut PgConnection, filter: &UserFilter) -> sqlx::Result<(Vec<User>, i64)> {
    let pattern = filter.search.as_deref().map(like_pattern);
    let users = sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users u ",
        user_filter!(),
        " ORDER BY u.created_at, u.id OFFSET $4 LIMIT $5"
    ))
    .bind(&pattern)
    .bind(filter.is_active)
    .bind(&filter.role)
    .bind(filter.skip)
    .bind(filter.limit)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar(concat!("SELECT count(*) FROM users u ", user_filter!()))
        .bind(&pattern)
        .bind(filter.is_active)
        .bind(&filter.role)
        .fetch_one(&mut *conn)
        .await?;
    Ok((users, total))
}

/// The columns of a new user row.
pub struct NewUserRow<'a> {
    pub id: Uuid,
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub full_name: Option<&'a str>,
    pub password_hash: &'a str,
    pub is_active: bool,
    pub must_change_password: bool,
}

/// Unique constraints of `users` and the 409 each means.
pub const USER_CONFLICTS: &[(&str, &str)] = &[
    ("users_username_key", "Username already exists"),
    ("users_email_key", "Email already exists"),
];

pub async fn insert(conn: &mut PgConnection, row: &NewUserRow<'_>) -> sqlx::Result<()> {
    sqlx::query(
        r"INSERT INTO users (id, username, email, full_name, password_hash, is_active, must_change_password)
          VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(row.id)
    .bind(row.username)
    .bind(row.email)
    .bind(row.full_name)
    .bind(row.password_hash)
    .bind(row.is_active)
    .bind(row.must_change_password)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Replaces the roles of a user with `roles` (names known to exist in the realm).
pub async fn set_roles(
    conn: &mut PgConnection,
    user_id: Uuid,
    roles: &[String],
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO user_roles (user_id, role_id) SELECT $1, id FROM roles WHERE name = ANY($2)",
    )
    .bind(user_id)
    .bind(roles)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Serialises every change that could remove a realm's last active admin (one realm-wide
/// transaction lock), so that two admins demoting each other cannot both succeed.
pub async fn lock_admin_set(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(7263511, 1)")
        .execute(conn)
        .await
        .map(|_| ())
}

/// Active admins other than `except`.
pub async fn count_other_active_admins(conn: &mut PgConnection, except: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        r"SELECT count(*) FROM users u
          JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id
          WHERE r.name = 'admin' AND u.is_active AND u.id <> $1",
    )
    .bind(except)
    .fetch_one(conn)
    .await
}

/// Ends sessions of a user (all, or all but `keep`) and returns how many were live.
pub async fn revoke_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> sqlx::Result<u64> {
    sqlx::query(
        r"UPDATE sessions SET revoked_at = now(), revoke_reason = $3
          WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason)
    .execute(conn)
    .await
    .map(|r| r.rows_affected())
}

/// Revokes every API key of a user.
pub async fn revoke_api_keys(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<u64> {
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

/// The stored password hash of a user.
pub async fn password_hash(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Stores a new password hash and clears `must_change_password` when `changed_by_owner`.
pub async fn set_password(
    conn: &mut PgConnection,
    id: Uuid,
    hash: &str,
    must_change_password: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        r"UPDATE users SET password_hash = $2, must_change_password = $3,
               password_changed_at = now(), updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(hash)
    .bind(must_change_password)
    .execute(conn)
    .await
    .map(|_| ())
}
