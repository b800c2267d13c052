//! The SQL of API keys (the AutoBot `api_keys` table): their secret is never stored, only a
//! keyed hash of it.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

/// An API key as listed (never its secret).
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub key_prefix: String,
    pub scopes: Json<Vec<String>>,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub usage_count: i32,
    pub created_at: DateTime<Utc>,
}

/// A new API key.
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub key_prefix: &'a str,
    pub key_hash: &'a str,
    pub scopes: &'a [String],
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert(db: &mut PgConnection, key: &NewApiKey<'_>) -> sqlx::Result<ApiKeyRow> {
    sqlx::query_as!(
        ApiKeyRow,
        r#"INSERT INTO public.api_keys (id, key_hash, key_prefix, user_id, name, description,
               scopes, is_active, expires_at, usage_count)
           VALUES ($1, $2, $3, $4, $5, $6, $7, true, $8, 0)
           RETURNING id, name, description, key_prefix, scopes AS "scopes: Json<Vec<String>>",
                     is_active, expires_at, last_used_at, usage_count, created_at"#,
        key.id,
        key.key_hash,
        key.key_prefix,
        key.user_id,
        key.name,
        key.description,
        Json(key.scopes) as _,
        key.expires_at,
    )
    .fetch_one(&mut *db)
    .await
}

/// The unrevoked keys of a user, newest first.
pub async fn of_user(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Vec<ApiKeyRow>> {
    sqlx::query_as!(
        ApiKeyRow,
        r#"SELECT id, name, description, key_prefix, scopes AS "scopes: Json<Vec<String>>",
                  is_active, expires_at, last_used_at, usage_count, created_at
           FROM public.api_keys
           WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC"#,
        user_id
    )
    .fetch_all(&mut *db)
    .await
}

/// One unrevoked key of a user.
pub async fn one(
    db: &mut PgConnection,
    user_id: Uuid,
    key_id: Uuid,
) -> sqlx::Result<Option<ApiKeyRow>> {
    sqlx::query_as!(
        ApiKeyRow,
        r#"SELECT id, name, description, key_prefix, scopes AS "scopes: Json<Vec<String>>",
                  is_active, expires_at, last_used_at, usage_count, created_at
           FROM public.api_keys
           WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL"#,
        user_id,
        key_id
    )
    .fetch_optional(&mut *db)
    .await
}

/// Renames or re-describes a key; `description: Some(None)` clears it.
pub async fn update(
    db: &mut PgConnection,
    user_id: Uuid,
    key_id: Uuid,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> sqlx::Result<Option<ApiKeyRow>> {
    sqlx::query_as!(
        ApiKeyRow,
        r#"UPDATE public.api_keys SET name = COALESCE($3, name),
               description = CASE WHEN $4 THEN $5 ELSE description END, updated_at = now()
           WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL
           RETURNING id, name, description, key_prefix, scopes AS "scopes: Json<Vec<String>>",
                     is_active, expires_at, last_used_at, usage_count, created_at"#,
        user_id,
        key_id,
        name,
        description.is_some(),
        description.flatten(),
    )
    .fetch_optional(&mut *db)
    .await
}

/// Revokes one key; `revoked_by` must be a user of the same database.
pub async fn revoke(
    db: &mut PgConnection,
    user_id: Uuid,
    key_id: Uuid,
    revoked_by: Option<Uuid>,
) -> sqlx::Result<bool> {
    sqlx::query!(
        r"UPDATE public.api_keys SET revoked_at = now(), is_active = false, revoked_by = $3,
              updated_at = now()
          WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL",
        user_id,
        key_id,
        revoked_by
    )
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// Counts a use of a key. A hash under an older secret (or derivation) is replaced by the one
/// under the newest, so that a retired secret can be dropped without breaking the key.
///
/// It commits without waiting for the disk (`synchronous_commit` off for this statement's
/// transaction): a crash of PostgreSQL can only lose the last uses counted, and with them the
/// newer hash, which the key's next use writes again. Otherwise every request made with a key
/// would cost a flush of the log.
pub async fn record_use(
    db: &mut PgConnection,
    key_id: Uuid,
    current_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r"WITH bookkeeping AS (SELECT set_config('synchronous_commit', 'off', true))
          UPDATE public.api_keys SET usage_count = usage_count + 1,
              last_used_at = now(), key_hash = $2
          FROM bookkeeping
          WHERE id = $1",
        key_id,
        current_hash
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}
