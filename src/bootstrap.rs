//! The first SLM admin: created on start when the SLM realm has no active admin, its password
//! printed once on standard output (API.md §7). It must change that password before anything else.

use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::password::PasswordHasher;
use crate::auth::token::random_secret;
use crate::config::BootstrapSettings;
use crate::error::ApiError;
use crate::realm::{ADMIN_ROLE, Realm};
use crate::users::db;

/// Credentials to print, when the bootstrap created or reset the admin.
pub struct BootstrapCredentials {
    pub username: String,
    pub password: String,
}

/// Creates (or, with `force`, resets) the bootstrap admin.
pub async fn ensure_admin(
    realm: &Realm,
    hasher: &PasswordHasher,
    settings: &BootstrapSettings,
) -> Result<Option<BootstrapCredentials>, ApiError> {
    let mut tx = realm.begin().await?;
    db::lock_admin_set(&mut tx).await?;
    let has_admin: bool = sqlx::query_scalar(
        r"SELECT EXISTS (SELECT 1 FROM users u JOIN user_roles ur ON ur.user_id = u.id
                         JOIN roles r ON r.id = ur.role_id
                         WHERE r.name = 'admin' AND u.is_active)",
    )
    .fetch_one(&mut *tx)
    .await?;
    let existing: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM users WHERE lower(username) = lower($1)")
            .bind(&settings.username)
            .fetch_optional(&mut *tx)
            .await?;
    if has_admin && !(settings.force && existing.is_some()) {
        return Ok(None);
    }
    let password = settings
        .password
        .clone()
        .unwrap_or_else(|| random_secret().chars().take(24).collect());
    let hash = hasher.hash(&password).await?;
    let actor = Actor {
        username: Some("bootstrap".into()),
        ..Actor::default()
    };
    let id = match existing {
        Some(id) => {
            sqlx::query(
                r"UPDATE users SET password_hash = $2, must_change_password = true, is_active = true,
                       locked_until = NULL, failed_login_count = 0, updated_at = now(),
                       password_changed_at = now()
                  WHERE id = $1",
            )
            .bind(id)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
            db::revoke_sessions(&mut tx, id, None, "bootstrap_reset").await?;
            id
        }
        None => {
            let id = Uuid::now_v7();
            db::insert(
                &mut tx,
                &db::NewUserRow {
                    id,
                    username: &settings.username,
                    email: None,
                    full_name: Some("Bootstrap administrator"),
                    password_hash: &hash,
                    is_active: true,
                    must_change_password: true,
                },
            )
            .await?;
            id
        }
    };
    sqlx::query(
        "INSERT INTO user_roles (user_id, role_id) SELECT $1, id FROM roles WHERE name = $2 ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(ADMIN_ROLE)
    .execute(&mut *tx)
    .await?;
    let event = if existing.is_some() {
        "password_changed"
    } else {
        "user_created"
    };
    audit::record(
        &mut tx,
        realm,
        &actor,
        event,
        Some(id),
        json!({"bootstrap": true}),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(BootstrapCredentials {
        username: settings.username.clone(),
        password,
    }))
}
