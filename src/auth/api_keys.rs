//! API keys: `<realm prefix><256 random bits>`, shown once, stored as a keyed hash, optionally
//! expiring, revocable. Serves `/me/api-keys` and the per-user keys admins issue.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::dto::{ApiKeyCreatedResponse, ApiKeyResponse, CreateApiKeyRequest};
use crate::auth::token::random_secret;
use crate::error::{ApiError, FieldError};
use crate::realm::Realm;

const NOT_FOUND: ApiError = ApiError::NotFound("API key not found");

/// Validates a key request: name 1–100 characters, expiry 1..=3650 days.
pub fn parse_request(body: &CreateApiKeyRequest) -> Result<(String, Option<i64>), ApiError> {
    let mut errors = Vec::new();
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::body("name", "Name must be 1 to 100 characters"));
    }
    if let Some(days) = body.expires_in_days
        && !(1..=3650).contains(&days)
    {
        errors.push(FieldError::body(
            "expires_in_days",
            "Input should be between 1 and 3650",
        ));
    }
    if errors.is_empty() {
        Ok((name.to_owned(), body.expires_in_days))
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Issues a key for `owner`.
pub async fn issue(
    realm: &Realm,
    actor: &Actor,
    owner: Uuid,
    name: String,
    expires_in_days: Option<i64>,
) -> Result<ApiKeyCreatedResponse, ApiError> {
    let key = format!("{}{}", realm.policy().api_key_prefix, random_secret());
    // Enough of the key to recognise it in a list, far too little to guess the rest.
    let prefix: String = key
        .chars()
        .take(realm.policy().api_key_prefix.len() + 8)
        .collect();
    let id = Uuid::now_v7();
    let created_at = Utc::now();
    let expires_at = expires_in_days.map(|d| created_at + chrono::Duration::days(d));
    let mut tx = realm.begin().await?;
    let owner_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
            .bind(owner)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| realm.db_error(e))?;
    if !owner_exists {
        return Err(ApiError::NotFound("User not found"));
    }
    sqlx::query(
        r"INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at, expires_at)
          VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(owner)
    .bind(&name)
    .bind(&prefix)
    .bind(realm.tokens().api_key_hash(&key))
    .bind(created_at)
    .bind(expires_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| realm.db_error(e))?;
    audit::record(
        &mut tx,
        realm,
        actor,
        "api_key_issued",
        Some(owner),
        json!({"key_id": id, "name": name, "prefix": prefix}),
    )
    .await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(ApiKeyCreatedResponse {
        id,
        name,
        prefix,
        key,
        created_at,
        expires_at,
    })
}

/// The live (unrevoked) keys of `owner`, without secrets.
pub async fn list(realm: &Realm, owner: Uuid) -> Result<Vec<ApiKeyResponse>, ApiError> {
    let mut conn = realm.acquire().await?;
    sqlx::query_as(
        r"SELECT id, name, prefix, created_at, expires_at, last_used_at FROM api_keys
          WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
    )
    .bind(owner)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| realm.db_error(e))
}

/// Revokes key `key_id` of `owner`.
pub async fn revoke(
    realm: &Realm,
    actor: &Actor,
    owner: Uuid,
    key_id: Uuid,
) -> Result<(), ApiError> {
    let mut tx = realm.begin().await?;
    let revoked = sqlx::query(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(key_id)
    .bind(owner)
    .execute(&mut *tx)
    .await
    .map_err(|e| realm.db_error(e))?;
    if revoked.rows_affected() == 0 {
        return Err(NOT_FOUND);
    }
    audit::record(
        &mut tx,
        realm,
        actor,
        "api_key_revoked",
        Some(owner),
        json!({"key_id": key_id}),
    )
    .await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(())
}
