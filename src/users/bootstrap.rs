//! The first SLM admin: created on start when the SLM realm has no active admin, its password
//! printed once on standard output (docs/api.md §7). It must change that password before anything
//! else. `ADMIN_BOOTSTRAP_PASSWORD_FORCE` resets the password of that account once for each
//! password given (a setting left in place does not reset it again at every start).

use secrecy::{ExposeSecret, SecretString};

use crate::audit::Actor;
use crate::config::BootstrapSettings;
use crate::credentials::keys::{random_secret, sha256};
use crate::domain::{Email, Password, Username};
use crate::http::error::ApiError;
use crate::realm::ADMIN_ROLE;
use crate::state::AppState;
use crate::users::db;
use crate::users::roles::RoleInput;
use crate::users::service::{self, Credential, NewUser};

/// Credentials to print, when the bootstrap created or reset the admin.
pub struct BootstrapCredentials {
    pub username: String,
    pub password: SecretString,
}

fn invalid(what: &str, msg: String) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("ADMIN_BOOTSTRAP_{what}: {msg}"))
}

/// Creates the bootstrap admin when the SLM realm has no active admin, or resets its password
/// when forced (once per password).
pub async fn ensure_admin(
    app: &AppState,
    settings: &BootstrapSettings,
) -> Result<Option<BootstrapCredentials>, ApiError> {
    let realm = &app.slm;
    let fingerprint = sha256(&format!(
        "bootstrap:{}:{}",
        settings.username,
        settings
            .password
            .as_ref()
            .map_or("<generated>", |p| p.expose_secret())
    ));
    let fingerprint = &fingerprint;
    let (has_admin, existing, forced) = realm
        .read(|mut db| {
            Box::pin(async move {
                let has_admin = db::count_active_admins(&mut db, None).await? > 0;
                let existing = db::id_by_username(&mut db, &settings.username).await?;
                let forced = settings.force
                    && existing.is_some()
                    && !db::forced_reset_done(&mut db, fingerprint).await?;
                Ok((has_admin, existing, forced))
            })
        })
        .await?;
    if has_admin && !forced {
        return Ok(None);
    }
    let username = Username::parse(&settings.username).map_err(|m| invalid("USERNAME", m))?;
    let email = Email::parse(&settings.email).map_err(|m| invalid("EMAIL", m))?;
    let password = settings.password.clone().unwrap_or_else(|| {
        SecretString::from(random_secret().chars().take(24).collect::<String>())
    });
    let parsed = Password::parse(
        &password,
        username.as_str(),
        Some(email.as_str()),
        realm.scheme(),
    )
    .map_err(|m| invalid("PASSWORD", m))?;
    let actor = &Actor::system("bootstrap");
    match existing {
        Some(id) if forced => {
            let hash = app
                .hasher
                .hash(None, parsed.secret(), realm.scheme())
                .await?;
            let hash = hash.as_str();
            realm
                .transaction(|mut tx| {
                    Box::pin(async move {
                        crate::users::access::reset_account(&mut tx, realm, actor, id, hash)
                            .await?;
                        Ok(db::record_forced_reset(&mut tx, fingerprint).await?)
                    })
                })
                .await?;
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
                roles: RoleInput::named(&[ADMIN_ROLE]),
                admin: true,
                is_active: true,
                must_change_password: true,
                org_id: None,
            };
            let hash = service::hash_credential(app, realm, None, &new.credential).await?;
            let (new, hash) = (&new, hash.as_deref());
            let created = realm
                .transaction(|mut tx| {
                    Box::pin(async move {
                        db::lock_admin_set(&mut tx).await?;
                        // Another replica may have created it meanwhile.
                        if db::count_active_admins(&mut tx, None).await? > 0 {
                            return Ok(false);
                        }
                        service::create_in(&mut tx, realm, actor, new, hash).await?;
                        if settings.force {
                            db::record_forced_reset(&mut tx, fingerprint).await?;
                        }
                        Ok(true)
                    })
                })
                .await?;
            if !created {
                return Ok(None);
            }
        }
    }
    Ok(Some(BootstrapCredentials {
        username: settings.username.clone(),
        password,
    }))
}
