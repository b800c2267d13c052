//! The providers of a realm, as SLM admins manage them: written only after their `config` is
//! checked for their type, secrets sealed, every change audited as `settings_updated`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::access::authz::CanManageSso;
use crate::audit::{self, AuditAction};
use crate::config::Environment;
use crate::domain::{Errors, parse_name};
use crate::http::error::{ApiError, FieldError, LocItem};
use crate::realm::{Catalog, Realm, RealmId};
use crate::sso::Protocol;
use crate::sso::config::{self, Kind, SUPPORTED};
use crate::sso::db::{self, ProviderRow};
use crate::sso::dto::{CreateProvider, ProviderResponse, TestResponse, UpdateProvider};
use crate::state::AppState;

pub const NOT_FOUND: ApiError = ApiError::NotFound("SSO provider not found");

impl ProviderResponse {
    pub fn from_row(row: ProviderRow) -> Self {
        let kind = Kind::of(&row.provider_type);
        Self {
            config: config::masked(kind, &row.config),
            group_mapping: serde_json::from_value(row.group_mapping).unwrap_or_default(),
            id: row.id,
            org_id: row.org_id,
            provider_type: row.provider_type,
            name: row.name,
            is_active: row.is_active,
            is_social: row.is_social,
            allow_user_creation: row.allow_user_creation,
            default_role: row.default_role,
            last_sync_at: row.last_sync_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The role a provider gives by default: a role of its realm. In the SLM realm the dashboard's
/// `user` means `viewer`, the least privilege; absent means the realm's base role.
fn default_role(
    realm: &Realm,
    catalog: &Catalog,
    raw: Option<&str>,
    errors: &mut Errors,
) -> Option<String> {
    let name = match raw.map(str::trim) {
        None | Some("") => realm.policy().default_role,
        Some("user") if realm.id() == RealmId::Slm => "viewer",
        Some(name) => name,
    };
    match catalog.named(name) {
        Some(role) => Some(role.name.clone()),
        None => {
            errors.push(FieldError::body(
                "default_role",
                format!("No role named {name:?}"),
            ));
            None
        }
    }
}

/// A `group_mapping` whose every role is one of the realm's.
fn group_mapping(
    catalog: &Catalog,
    mapping: BTreeMap<String, String>,
    errors: &mut Errors,
) -> Value {
    for (group, role) in &mapping {
        if catalog.named(role).is_none() || group.trim().is_empty() {
            errors.push(FieldError::at(
                vec![
                    "body".into(),
                    "group_mapping".into(),
                    LocItem::from(group.as_str()),
                ],
                format!("No role named {role:?}"),
                "value_error",
            ));
        }
    }
    json!(mapping)
}

fn provider_name(raw: &str, errors: &mut Errors) -> Option<String> {
    match errors.body("name", parse_name(raw, 255, "Name")) {
        Some(None) => {
            errors.push(FieldError::body("name", "Name must not be empty"));
            None
        }
        other => other.flatten(),
    }
}

fn local(app: &AppState) -> bool {
    app.settings.environment == Environment::Local
}

pub async fn list(
    realm: &Realm,
    _op: &CanManageSso,
    org_id: Option<Uuid>,
    active_only: bool,
) -> Result<Vec<ProviderResponse>, ApiError> {
    let rows = realm
        .read(|mut db| {
            Box::pin(async move { Ok(db::providers(&mut db, org_id, active_only).await?) })
        })
        .await?;
    Ok(rows.into_iter().map(ProviderResponse::from_row).collect())
}

pub async fn get(
    realm: &Realm,
    _op: &CanManageSso,
    id: Uuid,
) -> Result<ProviderResponse, ApiError> {
    let row = realm
        .read(|mut db| Box::pin(async move { db::provider(&mut db, id).await?.ok_or(NOT_FOUND) }))
        .await?;
    Ok(ProviderResponse::from_row(row))
}

/// Records a change of a provider in the realm's trail.
async fn audited(
    db: &mut sqlx::PgConnection,
    realm: &Realm,
    op: &CanManageSso,
    row: &ProviderRow,
    change: &str,
) -> Result<(), ApiError> {
    let detail = json!({"setting": "sso_provider", "change": change, "provider_id": row.id,
        "name": row.name, "provider_type": row.provider_type});
    audit::record(
        db,
        realm,
        &op.0.actor(),
        AuditAction::SettingsUpdated,
        Some(row.id),
        detail,
    )
    .await
}

pub async fn create(
    app: &AppState,
    realm: &Realm,
    op: &CanManageSso,
    body: CreateProvider,
) -> Result<ProviderResponse, ApiError> {
    let catalog = realm.serving_catalog()?;
    let mut errors = Errors::default();
    let kind = Kind::of(&body.provider_type);
    if kind.is_none() {
        errors.push(FieldError::body(
            "provider_type",
            format!("Unsupported provider type; supported: {SUPPORTED}"),
        ));
    }
    let name = provider_name(&body.name, &mut errors);
    let role = default_role(realm, &catalog, body.default_role.as_deref(), &mut errors);
    let mapping = group_mapping(
        &catalog,
        body.group_mapping.unwrap_or_default(),
        &mut errors,
    );
    let config = match kind {
        Some(kind) => match config::checked(
            kind,
            &body.config,
            None,
            &app.settings.seal_keys,
            local(app),
        ) {
            Ok(config) => Some(config),
            Err(ApiError::Validation(found)) => {
                found.into_iter().for_each(|e| errors.push(e));
                None
            }
            Err(other) => return Err(other),
        },
        None => None,
    };
    let row = errors.finish(|| {
        let kind = kind?;
        Some(ProviderRow {
            id: Uuid::now_v7(),
            org_id: body.org_id,
            provider_type: body.provider_type.clone(),
            name: name?,
            config: Value::Object(config?),
            is_active: body.is_active.unwrap_or(true),
            is_social: body.is_social.unwrap_or(kind.social_by_default()),
            allow_user_creation: body.allow_user_creation.unwrap_or(false),
            default_role: role,
            group_mapping: mapping,
            last_sync_at: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        })
    })?;
    let row = &row;
    let stored = realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if let Some(org) = row.org_id
                    && !crate::realm::db::org_exists(&mut tx, org).await?
                {
                    return Err(ApiError::field(FieldError::body(
                        "org_id",
                        "Organization not found",
                    )));
                }
                db::upsert(&mut tx, row).await?;
                audited(&mut tx, realm, op, row, "created").await?;
                db::provider(&mut tx, row.id).await?.ok_or(NOT_FOUND)
            })
        })
        .await?;
    Ok(ProviderResponse::from_row(stored))
}

pub async fn update(
    app: &AppState,
    realm: &Realm,
    op: &CanManageSso,
    id: Uuid,
    body: UpdateProvider,
) -> Result<ProviderResponse, ApiError> {
    let catalog = realm.serving_catalog()?;
    let body = &body;
    let catalog = &catalog;
    let stored = realm
        .transaction(|mut tx| {
            Box::pin(async move {
                let mut row = db::lock(&mut tx, id).await?.ok_or(NOT_FOUND)?;
                let mut errors = Errors::default();
                if let Some(raw) = &body.name
                    && let Some(name) = provider_name(raw, &mut errors)
                {
                    row.name = name;
                }
                if let Some(raw) = &body.default_role {
                    row.default_role = default_role(realm, catalog, Some(raw), &mut errors);
                }
                if let Some(mapping) = &body.group_mapping {
                    row.group_mapping = group_mapping(catalog, mapping.clone(), &mut errors);
                }
                if let Some(config) = &body.config {
                    let Some(kind) = Kind::of(&row.provider_type) else {
                        return Err(ApiError::field(FieldError::body(
                            "config",
                            format!("This server does not speak {}", row.provider_type),
                        )));
                    };
                    let stored = row.config.as_object().cloned();
                    let keys = &app.settings.seal_keys;
                    match config::checked(kind, config, stored.as_ref(), keys, local(app)) {
                        Ok(config) => row.config = Value::Object(config),
                        Err(ApiError::Validation(found)) => {
                            found.into_iter().for_each(|e| errors.push(e))
                        }
                        Err(other) => return Err(other),
                    }
                }
                row.is_active = body.is_active.unwrap_or(row.is_active);
                row.is_social = body.is_social.unwrap_or(row.is_social);
                row.allow_user_creation =
                    body.allow_user_creation.unwrap_or(row.allow_user_creation);
                errors.finish(|| Some(()))?;
                db::upsert(&mut tx, &row).await?;
                audited(&mut tx, realm, op, &row, "updated").await?;
                db::provider(&mut tx, id).await?.ok_or(NOT_FOUND)
            })
        })
        .await?;
    Ok(ProviderResponse::from_row(stored))
}

pub async fn delete(realm: &Realm, op: &CanManageSso, id: Uuid) -> Result<(), ApiError> {
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                let row = db::lock(&mut tx, id).await?.ok_or(NOT_FOUND)?;
                db::delete(&mut tx, id).await?;
                audited(&mut tx, realm, op, &row, "deleted").await
            })
        })
        .await
}

/// Tries the provider as configured: OIDC discovery and keys; GitHub's API; an LDAP bind with
/// the search account and one search. A failure is an answer (`success: false`), not an error.
pub async fn test(
    app: &AppState,
    realm: &Realm,
    _op: &CanManageSso,
    id: Uuid,
) -> Result<TestResponse, ApiError> {
    let row = realm
        .read(|mut db| Box::pin(async move { db::provider(&mut db, id).await?.ok_or(NOT_FOUND) }))
        .await?;
    let Some(kind) = Kind::of(&row.provider_type) else {
        return Ok(TestResponse {
            success: false,
            message: format!("This server does not speak {}", row.provider_type),
            details: None,
        });
    };
    let outcome = async {
        let protocol = Protocol::new(kind, &row.config, &app.settings.seal_keys)?;
        protocol.test(provider_timeout(app)).await
    }
    .await;
    Ok(match outcome {
        Ok(details) => TestResponse {
            success: true,
            message: format!("{} answers as configured", row.name),
            details: Some(details),
        },
        Err(err) => {
            tracing::info!(provider = %row.id, error = %format!("{err:#}"), "SSO provider test failed");
            TestResponse {
                success: false,
                message: format!("{err:#}"),
                details: None,
            }
        }
    })
}

/// How long one exchange with a provider may take: well within the request's own deadline.
pub fn provider_timeout(app: &AppState) -> Duration {
    (app.settings.http.request_timeout / 3).min(Duration::from_secs(10))
}

/// Seals every provider secret of the realm that is not sealed with the newest key again, in
/// the caller's transaction (`slm-server reseal-mfa`); returns how many providers changed.
pub async fn reseal(
    db: &mut sqlx::PgConnection,
    keys: &crate::credentials::seal::SealKeys,
) -> Result<usize, ApiError> {
    let mut changed = 0;
    for mut row in db::providers(db, None, false).await? {
        let Some(config) = row.config.as_object_mut() else {
            continue;
        };
        let mut touched = false;
        for key in ["client_secret", "bind_password"] {
            if let Some(Value::String(sealed)) = config.get(key)
                && !keys.is_current(sealed)
            {
                let plain = keys.open(sealed).map_err(ApiError::Internal)?;
                let fresh = keys.seal(&plain).map_err(ApiError::Internal)?;
                config.insert(key.to_owned(), Value::String(fresh));
                touched = true;
            }
        }
        if touched {
            db::upsert(db, &row).await?;
            changed += 1;
        }
    }
    Ok(changed)
}
