//! API keys: `<realm prefix><256 random bits>`, shown once, stored as a keyed hash, optionally
//! expiring, revocable, and limited to scopes: permission names their owner holds. A request
//! with a key may do what both the owner's current roles and the key's scopes allow.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::access::db::keys::{self, NewApiKey};
use crate::audit::{self, Actor, AuditAction};
use crate::auth::api_keys::dto::{
    ApiKeyCreatedResponse, ApiKeyList, ApiKeyResponse, CreateApiKeyRequest, UpdateApiKeyRequest,
};
use crate::credentials::keys::random_secret;
use crate::domain::{Errors, parse_name, parse_text};
use crate::http::error::{ApiError, FieldError, LocItem};
use crate::realm::Realm;
use crate::users::service as users;

const NOT_FOUND: ApiError = ApiError::NotFound("API key not found");
const USER_NOT_FOUND: ApiError = ApiError::NotFound("User not found");
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

/// A key's name: 1–100 characters once trimmed.
fn key_name(errors: &mut Errors, raw: &str) -> Option<String> {
    match errors.body("name", parse_name(raw, 100, "Name")) {
        Some(None) => {
            errors.push(FieldError::body("name", "Name must not be empty"));
            None
        }
        other => other.flatten(),
    }
}

/// Checks a key request: name 1–100 characters, description up to 500, expiry 1–3650 days,
/// and every scope one of `held` (the owner's permissions).
pub fn parse_request(body: CreateApiKeyRequest, held: &[String]) -> Result<NewKey, ApiError> {
    let mut errors = Errors::default();
    let name = key_name(&mut errors, &body.name);
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

/// The permissions of a user, as a key of theirs may be scoped to (404 for no such user).
pub async fn permissions_of(realm: &Realm, owner: Uuid) -> Result<Vec<String>, ApiError> {
    let user = users::get(realm, owner).await?;
    Ok(realm.catalog().permissions_of(&user.roles))
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
    let key_hash = realm.tokens().api_key_hash(&key);
    let expires_at = new
        .expires_days
        .map(|d| Utc::now() + chrono::Duration::days(d));
    let row = NewApiKey {
        id: Uuid::now_v7(),
        user_id: owner,
        name: &new.name,
        description: new.description.as_deref(),
        key_prefix: &key_prefix,
        key_hash: &key_hash,
        scopes: &new.scopes,
        expires_at,
    };
    let row = &row;
    let stored = realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if !users::lock(&mut tx, owner).await? {
                    return Err(USER_NOT_FOUND);
                }
                let stored = keys::insert(&mut tx, row).await?;
                let detail = json!({"key_id": stored.id, "name": stored.name,
                    "key_prefix": stored.key_prefix, "scopes": row.scopes});
                let action = AuditAction::ApiKeyCreated;
                audit::record(&mut tx, realm, actor, action, Some(owner), detail).await?;
                Ok(stored)
            })
        })
        .await?;
    Ok(ApiKeyCreatedResponse {
        id: stored.id,
        name: stored.name,
        description: stored.description,
        key_prefix: stored.key_prefix,
        key,
        scopes: stored.scopes.0,
        expires_at: stored.expires_at,
        created_at: stored.created_at,
    })
}

/// The unrevoked keys of `owner`, without secrets, in the caller's unit of work.
pub async fn of_user(db: &mut PgConnection, owner: Uuid) -> Result<Vec<ApiKeyResponse>, ApiError> {
    let rows = keys::of_user(db, owner).await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The unrevoked keys of `owner`, without secrets.
pub async fn list(realm: &Realm, owner: Uuid) -> Result<ApiKeyList, ApiError> {
    let keys = realm
        .read(|mut db| Box::pin(async move { of_user(&mut db, owner).await }))
        .await?;
    let total = i64::try_from(keys.len()).unwrap_or(i64::MAX);
    Ok(ApiKeyList { keys, total })
}

/// One key of `owner`.
pub async fn get(realm: &Realm, owner: Uuid, key_id: Uuid) -> Result<ApiKeyResponse, ApiError> {
    realm
        .read(|mut db| {
            Box::pin(async move {
                let key = keys::one(&mut db, owner, key_id).await?;
                key.map(Into::into).ok_or(NOT_FOUND)
            })
        })
        .await
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
        Some(raw) => key_name(&mut errors, raw).map(Some),
    };
    let description = match body.description {
        None => Some(None),
        Some(None) => Some(Some(None)),
        Some(Some(raw)) => errors
            .body("description", parse_text(&raw, 500, "Description"))
            .map(Some),
    };
    let (name, description) = errors.finish(|| Some((name?, description?)))?;
    let (name, description) = (name.as_deref(), description.as_ref().map(|d| d.as_deref()));
    realm
        .read(|mut db| {
            Box::pin(async move {
                let key = keys::update(&mut db, owner, key_id, name, description).await?;
                key.map(Into::into).ok_or(NOT_FOUND)
            })
        })
        .await
}

/// Revokes key `key_id` of `owner`.
pub async fn revoke(
    realm: &Realm,
    actor: &Actor,
    owner: Uuid,
    key_id: Uuid,
) -> Result<(), ApiError> {
    let revoked_by = actor.id.filter(|_| actor.realm == Some(realm.id()));
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if !keys::revoke(&mut tx, owner, key_id, revoked_by).await? {
                    return Err(NOT_FOUND);
                }
                let detail = json!({"key_id": key_id});
                audit::record(
                    &mut tx,
                    realm,
                    actor,
                    AuditAction::ApiKeyRevoked,
                    Some(owner),
                    detail,
                )
                .await
            })
        })
        .await
}

/// The scopes a key of this realm may have: its permissions, with their descriptions.
pub fn scopes(realm: &Realm) -> Result<BTreeMap<String, String>, ApiError> {
    Ok(realm
        .serving_catalog()?
        .permissions()
        .iter()
        .cloned()
        .collect())
}
