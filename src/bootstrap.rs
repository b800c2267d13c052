//! The first SLM admin: created on start when the SLM realm has no active admin, its password
//! printed once on standard output (docs/api.md §7). It must change that password before anything
//! else. `ADMIN_BOOTSTRAP_PASSWORD_FORCE` resets the password of that account once for each
//! password given (a setting left in place does not reset it again at every start).

use serde_json::json;

use crate::audit::{self, Actor, AuditAction};
use crate::config::BootstrapSettings;
use crate::crypto::{random_secret, sha256};
use crate::domain::{Email, Password, Username};
use crate::error::ApiError;
use crate::realm::{ADMIN_ROLE, Realm};
use crate::state::AppState;
use crate::users::db;
use crate::users::service::{self, Credential, NewUser, RoleInput};

/// Credentials to print, when the bootstrap created or reset the admin.
pub struct BootstrapCredentials {
    pub username: String,
    pub password: String,
}

fn invalid(what: &str, msg: String) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("ADMIN_BOOTSTRAP_{what}: {msg}"))
}

/// Creates the bootstrap admin when the SLM realm has no active admin, or resets its password
/// when forced (once per password).
pub async fn ensure_admin(
    app: &AppState,
    realm: &Realm,
    settings: &BootstrapSettings,
) -> Result<Option<BootstrapCredentials>, ApiError> {
    let (has_admin, existing) = {
        let mut conn = realm.conn().await?;
        (
            db::count_active_admins(&mut conn, None).await? > 0,
            db::id_by_username(&mut conn, &settings.username).await?,
        )
    };
    let fingerprint = sha256(&format!(
        "bootstrap:{}:{}",
        settings.username,
        settings.password.as_deref().unwrap_or("<generated>")
    ));
    let forced = match (settings.force, existing) {
        (true, Some(_)) => {
            let mut conn = realm.conn().await?;
            !db::forced_reset_done(&mut conn, &fingerprint).await?
        }
        _ => false,
    };
    if has_admin && !forced {
        return Ok(None);
    }
    let username = Username::parse(&settings.username).map_err(|m| invalid("USERNAME", m))?;
    let email = Email::parse(&settings.email).map_err(|m| invalid("EMAIL", m))?;
    let password = settings
        .password
        .clone()
        .unwrap_or_else(|| random_secret().chars().take(24).collect());
    let parsed = Password::parse(
        &password,
        username.as_str(),
        Some(email.as_str()),
        realm.scheme().max_password_bytes(),
    )
    .map_err(|m| invalid("PASSWORD", m))?;
    let actor = Actor::system("bootstrap");
    match existing {
        Some(id) if forced => {
            let hash = app
                .hasher
                .hash(None, parsed.expose(), realm.scheme())
                .await?;
            let mut tx = realm.begin().await?;
            db::lock_admin_set(&mut tx).await?;
            db::set_password(&mut tx, id, &hash, true).await?;
            db::update_profile(
                &mut tx,
                id,
                &db::ProfileChange {
                    is_active: Some(true),
                    ..Default::default()
                },
            )
            .await?;
            crate::auth::db::clear_failures(&mut tx, id).await?;
            crate::auth::service::end_credentials(
                &mut tx,
                realm,
                &actor,
                id,
                None,
                "bootstrap_reset",
            )
            .await?;
            let user = db::fetch(&mut tx, id)
                .await?
                .ok_or(ApiError::NotFound("User not found"))?;
            if !user.has_role(ADMIN_ROLE) {
                let mut roles = user.role_ids();
                roles.extend(
                    db::roles(&mut tx)
                        .await?
                        .into_iter()
                        .filter(|r| r.name == ADMIN_ROLE)
                        .map(|r| r.id),
                );
                db::set_roles(&mut tx, id, &roles, None).await?;
            }
            db::record_forced_reset(&mut tx, &fingerprint).await?;
            audit::record(
                &mut tx,
                realm,
                &actor,
                AuditAction::PasswordChanged,
                Some(id),
                json!({"bootstrap": true, "forced": true}),
            )
            .await?;
            tx.commit().await?;
        }
        Some(_) => {
            // The account exists but is no active admin, and no reset was asked for: an
            // operator must decide (`slm-server create-admin`, or the force setting).
            tracing::warn!(username = %settings.username, "the SLM realm has no active admin; set ADMIN_BOOTSTRAP_PASSWORD_FORCE=1 to reset the bootstrap account");
            return Ok(None);
        }
        None => {
            let new = NewUser {
                username,
                email,
                display_name: Some("Bootstrap administrator".into()),
                credential: Credential::Password(parsed),
                roles: RoleInput {
                    names: Some(vec![ADMIN_ROLE.to_owned()]),
                    ids: None,
                },
                admin: true,
                is_active: true,
                must_change_password: true,
                org_id: None,
            };
            let hash = service::hash_credential(app, realm, None, &new.credential).await?;
            let mut tx = realm.begin().await?;
            db::lock_admin_set(&mut tx).await?;
            // Another replica may have created it meanwhile.
            if db::count_active_admins(&mut tx, None).await? > 0 {
                return Ok(None);
            }
            service::create_in(&mut tx, realm, &actor, &new, &hash).await?;
            if settings.force {
                db::record_forced_reset(&mut tx, &fingerprint).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(Some(BootstrapCredentials {
        username: settings.username.clone(),
        password,
    }))
}
