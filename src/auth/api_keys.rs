//! API keys: `<realm prefix><256 random bits>`, shown once, stored as a keyed hash, optionally
//! expiring, revocable, and limited to scopes: permission names their owner holds. A request
//! with a key may do what both the owner's current roles and the key's scopes allow.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditAction};
use crate::auth::db::{self, NewApiKey};
use crate::auth::dto::{
    ApiKeyCreatedResponse, ApiKeyList, ApiKeyResponse, CreateApiKeyRequest, UpdateApiKeyRequest,
};
use crate::crypto::random_secret;
use crate::domain::{Errors, parse_name, parse_text};
use crate::error::{ApiError, FieldError, LocItem};
use crate::realm::Realm;
use crate::users::db as users_db;

const NOT_FOUND: ApiError = ApiError::NotFound("API key not found");
/// The `key_prefix` column holds 12 characters: enough to recognise a key in a list, far too
/// few to guess the rest.
const PREFIX_LEN: usize = 12;

/// A key request, parsed.
pub struct NewKey {
    pub name: String,
    pub description: Option<String>,
    pub scopes: Vec<String>,
    pub expires_days: Option<i64>,
}

/// Checks a key request: name 1–100 characters, description up to 500, expiry 1–3650 days,
/// and every scope one of `held` (the owner's permissions).
pub fn parse_request(body: CreateApiKeyRequest, held: &[String]) -> Result<NewKey, ApiError> {
    let mut errors = Errors::default();
    let name = match errors.body("name", parse_name(&body.name, 100, "Name")) {
        Some(None) => {
            errors.push(FieldError::body("name", "Name must not be empty"));
            None
        }
        other => other.flatten(),
    };
    let description = match body.description.as_deref() {
        None => Some(None),
        Some(raw) => errors.body("description", parse_text(raw, 500, "Description")),
    };
    for (field, days) in [
        ("expires_days", body.expires_days),
        ("expires_in_days", body.expires_in_days),
    ] {
        if days.is_some_and(|days| !(1..=3650).contains(&days)) {
            errors.push(FieldError::body(
                field,
                "Input should be between 1 and 3650",
            ));
        }
    }
    if let (Some(a), Some(b)) = (body.expires_days, body.expires_in_days)
        && a != b
    {
        errors.push(FieldError::body(
            "expires_in_days",
            "expires_days and expires_in_days disagree",
        ));
    }
    let expires_days = body.expires_days.or(body.expires_in_days);
    let mut scopes = Vec::new();
    for (i, scope) in body.scopes.unwrap_or_default().into_iter().enumerate() {
        if held.contains(&scope) {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        } else {
            errors.push(FieldError::at(
                vec!["body".into(), "scopes".into(), LocItem::Index(i)],
                "Not a permission the key's owner holds",
                "value_error",
            ));
        }
    }
    errors.finish(|| {
        Some(NewKey {
            name: name?,
            description: description?,
            scopes,
            expires_days,
        })
    })
}

/// The permissions of a user, as a key of theirs may be scoped to.
pub async fn permissions_of(realm: &Realm, owner: Uuid) -> Result<Vec<String>, ApiError> {
    let mut conn = realm.conn().await?;
    let user = users_db::fetch(&mut conn, owner)
        .await?
        .ok_or(ApiError::NotFound("User not found"))?;
    Ok(users_db::permissions_of(&mut conn, &user.role_ids()).await?)
}

/// Issues a key for `owner`.
pub async fn issue(
    realm: &Realm,
    actor: &Actor,
    owner: Uuid,
    new: NewKey,
) -> Result<ApiKeyCreatedResponse, ApiError> {
    let key = format!("{}{}", realm.policy().api_key_prefix, random_secret());
    let key_prefix: String = key.chars().take(PREFIX_LEN).collect();
    let expires_at = new
        .expires_days
        .map(|d| Utc::now() + chrono::Duration::days(d));
    let mut tx = realm.begin().await?;
    if users_db::fetch_for_update(&mut tx, owner).await?.is_none() {
        return Err(ApiError::NotFound("User not found"));
    }
    let row = db::insert_api_key(
        &mut tx,
        &NewApiKey {
            id: Uuid::now_v7(),
            user_id: owner,
            name: &new.name,
            description: new.description.as_deref(),
            key_prefix: &key_prefix,
            key_hash: &realm.tokens().api_key_hash(&key),
            scopes: &new.scopes,
            expires_at,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        realm,
        actor,
        AuditAction::ApiKeyCreated,
        Some(owner),
        json!({"key_id": row.id, "name": row.name, "key_prefix": row.key_prefix, "scopes": new.scopes}),
    )
    .await?;
    tx.commit().await?;
    Ok(ApiKeyCreatedResponse {
        id: row.id,
        name: row.name,
        description: row.description,
        key_prefix: row.key_prefix,
        key,
        scopes: row.scopes.0,
        expires_at: row.expires_at,
        created_at: row.created_at,
    })
}

/// The unrevoked keys of `owner`, without secrets.
pub async fn list(realm: &Realm, owner: Uuid) -> Result<ApiKeyList, ApiError> {
    let mut conn = realm.conn().await?;
    let keys: Vec<ApiKeyResponse> = db::api_keys_of(&mut conn, owner)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    let total = i64::try_from(keys.len()).unwrap_or(i64::MAX);
    Ok(ApiKeyList { keys, total })
}

/// One key of `owner`.
pub async fn get(realm: &Realm, owner: Uuid, key_id: Uuid) -> Result<ApiKeyResponse, ApiError> {
    let mut conn = realm.conn().await?;
    db::api_key(&mut conn, owner, key_id)
        .await?
        .map(Into::into)
        .ok_or(NOT_FOUND)
}

/// Renames a key of `owner` or changes its description.
pub async fn update(
    realm: &Realm,
    owner: Uuid,
    key_id: Uuid,
    body: UpdateApiKeyRequest,
) -> Result<ApiKeyResponse, ApiError> {
    let mut errors = Errors::default();
    let name = match body.name.as_deref() {
        None => Some(None),
        Some(raw) => match errors.body("name", parse_name(raw, 100, "Name")) {
            Some(None) => {
                errors.push(FieldError::body("name", "Name must not be empty"));
                None
            }
            other => other,
        },
    };
    let description = match body.description {
        None => Some(None),
        Some(None) => Some(Some(None)),
        Some(Some(raw)) => errors
            .body("description", parse_text(&raw, 500, "Description"))
            .map(Some),
    };
    let (name, description) = errors.finish(|| Some((name?, description?)))?;
    let mut conn = realm.conn().await?;
    db::update_api_key(
        &mut conn,
        owner,
        key_id,
        name.as_deref(),
        description.as_ref().map(|d| d.as_deref()),
    )
    .await?
    .map(Into::into)
    .ok_or(NOT_FOUND)
}

/// Revokes key `key_id` of `owner`.
pub async fn revoke(
    realm: &Realm,
    actor: &Actor,
    owner: Uuid,
    key_id: Uuid,
) -> Result<(), ApiError> {
    let revoked_by = actor.id.filter(|_| actor.realm == Some(realm.id()));
    let mut tx = realm.begin().await?;
    if !db::revoke_api_key(&mut tx, owner, key_id, revoked_by).await? {
        return Err(NOT_FOUND);
    }
    audit::record(
        &mut tx,
        realm,
        actor,
        AuditAction::ApiKeyRevoked,
        Some(owner),
        json!({"key_id": key_id}),
    )
    .await?;
    tx.commit().await
}

/// The scopes a key of this realm may have: its permissions, with their descriptions.
pub async fn scopes(realm: &Realm) -> Result<BTreeMap<String, String>, ApiError> {
    let mut conn = realm.conn().await?;
    Ok(users_db::all_permissions(&mut conn)
        .await?
        .into_iter()
        .map(|(name, description)| (name, description.unwrap_or_default()))
        .collect())
}
