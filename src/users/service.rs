//! The rules of user management, written once for both realms: every function takes the
//! target `&Realm`, and realm differences come from its policy.

use std::collections::BTreeSet;

use serde_json::json;
use tracing::instrument;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::authz::{self, Perm};
use crate::auth::principal::Principal;
use crate::domain::{Email, Password, Username};
use crate::error::{ApiError, FieldError, constraint_conflict};
use crate::outbox;
use crate::realm::{ADMIN_ROLE, Realm};
use crate::state::AppState;
use crate::users::db::{self, NewUserRow, USER_CONFLICTS, User, UserFilter};

/// A user to create, already parsed.
#[derive(Debug)]
pub struct NewUser {
    pub username: Username,
    pub email: Option<Email>,
    pub full_name: Option<String>,
    pub password: Password,
    pub roles: Vec<String>,
    pub is_active: bool,
    pub must_change_password: bool,
}

/// Changes to a user; the password is checked against the policy once the user is known.
#[derive(Debug, Default)]
pub struct UserPatch {
    pub email: Option<Option<Email>>,
    pub full_name: Option<Option<String>>,
    pub password: Option<String>,
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
}

const NOT_FOUND: ApiError = ApiError::NotFound("User not found");

/// Checks role names against the realm; errors point at `loc_prefix` + index.
pub fn parse_roles(
    realm: &Realm,
    roles: &[String],
    loc_field: &str,
) -> Result<Vec<String>, ApiError> {
    let policy = realm.policy();
    let mut errors = Vec::new();
    let mut parsed = BTreeSet::new();
    for (i, role) in roles.iter().enumerate() {
        if policy.rank_of(role).is_some() {
            parsed.insert(role.clone());
        } else {
            errors.push(FieldError {
                loc: vec![json!("body"), json!(loc_field), json!(i)],
                msg: format!(
                    "Unknown role {role:?}; expected one of: {}",
                    policy.roles.join(", ")
                ),
                kind: "value_error".into(),
            });
        }
    }
    if errors.is_empty() {
        Ok(parsed.into_iter().collect())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Changes that touch an admin (granting, withdrawing, or changing an admin account) need
/// SLM admin rights, so that a manager can never escalate or remove an admin.
pub fn require_for_target(
    operator: &Principal,
    realm: &Realm,
    target: &User,
) -> Result<(), ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    if target.has_role(ADMIN_ROLE) {
        authz::require(operator, Perm::ManageAdmins)?;
    }
    Ok(())
}

/// Refuses a change that would leave the realm without an active admin. Takes the realm-wide
/// admin lock first, so concurrent demotions are serialised.
async fn ensure_other_admin(
    tx: &mut sqlx::PgConnection,
    realm: &Realm,
    target: &User,
) -> Result<(), ApiError> {
    if !(target.is_active && target.has_role(ADMIN_ROLE)) {
        return Ok(());
    }
    db::lock_admin_set(tx)
        .await
        .map_err(|e| realm.db_error(e))?;
    let others = db::count_other_active_admins(tx, target.id)
        .await
        .map_err(|e| realm.db_error(e))?;
    if others == 0 {
        return Err(ApiError::Conflict(
            "Cannot remove the last active admin".into(),
        ));
    }
    Ok(())
}

/// Whether `operator` is `target` (same realm and id).
fn is_self(operator: &Principal, realm: &Realm, target: Uuid) -> bool {
    operator.realm == realm.id() && operator.user.id == target
}

#[instrument(skip_all, fields(realm = realm.name()))]
pub async fn create(
    app: &AppState,
    realm: &Realm,
    actor: &Actor,
    new: NewUser,
) -> Result<User, ApiError> {
    let hash = app.hasher.hash(new.password.expose()).await?;
    let mut tx = realm.begin().await?;
    let user = create_in(&mut tx, realm, actor, &new, &hash).await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(user)
}

/// Inserts a user (password already hashed) inside the caller's transaction, with its roles,
/// audit event and invalidation message.
pub async fn create_in(
    tx: &mut sqlx::PgConnection,
    realm: &Realm,
    actor: &Actor,
    new: &NewUser,
    password_hash: &str,
) -> Result<User, ApiError> {
    let id = Uuid::now_v7();
    db::insert(
        tx,
        &NewUserRow {
            id,
            username: new.username.as_str(),
            email: new.email.as_ref().map(Email::as_str),
            full_name: new.full_name.as_deref(),
            password_hash,
            is_active: new.is_active,
            must_change_password: new.must_change_password,
        },
    )
    .await
    .map_err(|e| constraint_conflict(e, USER_CONFLICTS))?;
    db::set_roles(tx, id, &new.roles)
        .await
        .map_err(|e| realm.db_error(e))?;
    audit::record(
        tx,
        realm,
        actor,
        "user_created",
        Some(id),
        json!({"username": new.username.as_str(), "roles": new.roles}),
    )
    .await?;
    outbox::enqueue(tx, realm, &[id], "user.created").await?;
    db::fetch(&mut *tx, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(NOT_FOUND)
}

pub async fn get(realm: &Realm, id: Uuid) -> Result<User, ApiError> {
    let mut conn = realm.acquire().await?;
    db::fetch(&mut *conn, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(NOT_FOUND)
}

pub async fn list(realm: &Realm, filter: &UserFilter) -> Result<(Vec<User>, i64), ApiError> {
    let mut conn = realm.acquire().await?;
    db::list(&mut conn, filter)
        .await
        .map_err(|e| realm.db_error(e))
}

#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn update(
    app: &AppState,
    realm: &Realm,
    operator: &Principal,
    id: Uuid,
    patch: UserPatch,
) -> Result<User, ApiError> {
    let mut tx = realm.begin().await?;
    let target = db::fetch_for_update(&mut tx, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(NOT_FOUND)?;
    require_for_target(operator, realm, &target)?;
    if patch.is_admin.is_some() {
        authz::require(operator, Perm::ManageAdmins)?;
    }
    let deactivating = patch.is_active == Some(false) && target.is_active;
    let demoting = patch.is_admin == Some(false) && target.has_role(ADMIN_ROLE);
    let roles_changed = patch
        .is_admin
        .is_some_and(|admin| admin != target.has_role(ADMIN_ROLE));
    if deactivating && is_self(operator, realm, id) {
        return Err(ApiError::Conflict("You cannot deactivate yourself".into()));
    }
    if deactivating || demoting {
        ensure_other_admin(&mut tx, realm, &target).await?;
    }
    // The password policy needs the account's own username and (new) e-mail.
    let new_email = match &patch.email {
        Some(email) => email.as_ref().map(|e| e.as_str().to_owned()),
        None => target.email.clone(),
    };
    let password_hash = match &patch.password {
        Some(raw) => {
            let password = Password::parse(raw, &target.username, new_email.as_deref())
                .map_err(|msg| ApiError::field(FieldError::body("password", msg)))?;
            Some(app.hasher.hash(password.expose()).await?)
        }
        None => None,
    };

    let mut changed: Vec<&str> = Vec::new();
    if let Some(email) = &patch.email {
        sqlx::query("UPDATE users SET email = $2 WHERE id = $1")
            .bind(id)
            .bind(email.as_ref().map(Email::as_str))
            .execute(&mut *tx)
            .await
            .map_err(|e| constraint_conflict(e, USER_CONFLICTS))?;
        changed.push("email");
    }
    if let Some(full_name) = &patch.full_name {
        sqlx::query("UPDATE users SET full_name = $2 WHERE id = $1")
            .bind(id)
            .bind(full_name)
            .execute(&mut *tx)
            .await
            .map_err(|e| realm.db_error(e))?;
        changed.push("full_name");
    }
    if let Some(is_active) = patch.is_active {
        sqlx::query("UPDATE users SET is_active = $2 WHERE id = $1")
            .bind(id)
            .bind(is_active)
            .execute(&mut *tx)
            .await
            .map_err(|e| realm.db_error(e))?;
        changed.push("is_active");
    }
    if let Some(is_admin) = patch.is_admin {
        let mut roles: BTreeSet<String> = target.roles.iter().cloned().collect();
        if is_admin {
            roles.insert(ADMIN_ROLE.to_owned());
        } else {
            roles.remove(ADMIN_ROLE);
            if roles.is_empty() {
                roles.insert(realm.policy().default_role.to_owned());
            }
        }
        let roles: Vec<String> = roles.into_iter().collect();
        db::set_roles(&mut tx, id, &roles)
            .await
            .map_err(|e| realm.db_error(e))?;
        changed.push("is_admin");
    }
    sqlx::query("UPDATE users SET updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| realm.db_error(e))?;
    let actor = operator.actor();
    if let Some(hash) = &password_hash {
        db::set_password(&mut tx, id, hash, target.must_change_password)
            .await
            .map_err(|e| realm.db_error(e))?;
        changed.push("password");
        audit::record(
            &mut tx,
            realm,
            &actor,
            "password_changed",
            Some(id),
            json!({"by": "admin"}),
        )
        .await?;
    }
    // Deactivation, a new password or new roles end the user's sessions at once: whatever
    // was granted under the old state must be asked for again.
    let reason = if deactivating {
        Some("deactivated")
    } else if password_hash.is_some() {
        Some("password_changed")
    } else if roles_changed {
        Some("roles_changed")
    } else {
        None
    };
    if let Some(reason) = reason {
        end_sessions(&mut tx, realm, operator, id, reason).await?;
    }
    audit::record(
        &mut tx,
        realm,
        &actor,
        "user_updated",
        Some(id),
        json!({"fields": changed}),
    )
    .await?;
    if patch.is_admin.is_some() {
        audit::record(
            &mut tx,
            realm,
            &actor,
            "roles_changed",
            Some(id),
            json!({"is_admin": patch.is_admin}),
        )
        .await?;
    }
    let event = if deactivating {
        "user.deactivated"
    } else {
        "user.updated"
    };
    outbox::enqueue(&mut tx, realm, &[id], event).await?;
    let user = db::fetch(&mut *tx, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(NOT_FOUND)?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(user)
}

#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn delete(realm: &Realm, operator: &Principal, id: Uuid) -> Result<(), ApiError> {
    let mut tx = realm.begin().await?;
    let target = db::fetch_for_update(&mut tx, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(NOT_FOUND)?;
    require_for_target(operator, realm, &target)?;
    if is_self(operator, realm, id) {
        return Err(ApiError::Conflict("You cannot delete yourself".into()));
    }
    ensure_other_admin(&mut tx, realm, &target).await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| realm.db_error(e))?;
    audit::record(
        &mut tx,
        realm,
        &operator.actor(),
        "user_deleted",
        Some(id),
        json!({"username": target.username}),
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &[id], "user.deleted").await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(())
}

/// Adds `roles` (already parsed) to a user.
#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn add_roles(
    realm: &Realm,
    operator: &Principal,
    id: Uuid,
    roles: Vec<String>,
) -> Result<User, ApiError> {
    if roles.iter().any(|r| r == ADMIN_ROLE) {
        authz::require(operator, Perm::ManageAdmins)?;
    }
    let mut tx = realm.begin().await?;
    let target = db::fetch_for_update(&mut tx, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(NOT_FOUND)?;
    require_for_target(operator, realm, &target)?;
    let mut all: BTreeSet<String> = target.roles.iter().cloned().collect();
    let added: Vec<String> = roles
        .into_iter()
        .filter(|r| all.insert(r.clone()))
        .collect();
    if !added.is_empty() {
        let all: Vec<String> = all.into_iter().collect();
        store_roles(&mut tx, realm, operator, id, &all, json!({"added": added})).await?;
    }
    let user = db::fetch(&mut *tx, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(NOT_FOUND)?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(user)
}

/// Stores a user's new role set with its audit event and invalidation message.
async fn store_roles(
    tx: &mut sqlx::PgConnection,
    realm: &Realm,
    operator: &Principal,
    id: Uuid,
    roles: &[String],
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    db::set_roles(tx, id, roles)
        .await
        .map_err(|e| realm.db_error(e))?;
    sqlx::query("UPDATE users SET updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| realm.db_error(e))?;
    audit::record(
        tx,
        realm,
        &operator.actor(),
        "roles_changed",
        Some(id),
        detail,
    )
    .await?;
    end_sessions(tx, realm, operator, id, "roles_changed").await?;
    outbox::enqueue(tx, realm, &[id], "user.roles_changed").await
}

/// Ends a user's sessions and audits it: every session, except the operator's own when they
/// change themselves (like a password change, which ends only the *other* sessions). API keys
/// stay: they carry no snapshot of the user, whose current state is checked on every use.
async fn end_sessions(
    tx: &mut sqlx::PgConnection,
    realm: &Realm,
    operator: &Principal,
    id: Uuid,
    reason: &str,
) -> Result<(), ApiError> {
    let keep = match is_self(operator, realm, id) {
        true => operator.session_id,
        false => None,
    };
    let ended = db::revoke_sessions(tx, id, keep, reason)
        .await
        .map_err(|e| realm.db_error(e))?;
    audit::record(
        tx,
        realm,
        &operator.actor(),
        "sessions_revoked",
        Some(id),
        json!({"sessions": ended, "reason": reason}),
    )
    .await
}

/// Removes one role from a user.
#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn remove_role(
    realm: &Realm,
    operator: &Principal,
    id: Uuid,
    role: &str,
) -> Result<User, ApiError> {
    if realm.policy().rank_of(role).is_none() {
        return Err(ApiError::NotFound("Role not found"));
    }
    if role == ADMIN_ROLE {
        authz::require(operator, Perm::ManageAdmins)?;
    }
    let mut tx = realm.begin().await?;
    let target = db::fetch_for_update(&mut tx, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(NOT_FOUND)?;
    require_for_target(operator, realm, &target)?;
    if target.has_role(role) {
        if role == ADMIN_ROLE {
            ensure_other_admin(&mut tx, realm, &target).await?;
        }
        let rest: Vec<String> = target
            .roles
            .iter()
            .filter(|r| *r != role)
            .cloned()
            .collect();
        store_roles(
            &mut tx,
            realm,
            operator,
            id,
            &rest,
            json!({"removed": [role]}),
        )
        .await?;
    }
    let user = db::fetch(&mut *tx, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(NOT_FOUND)?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(user)
}

/// Clears a brute-force lockout.
pub async fn unlock(realm: &Realm, operator: &Principal, id: Uuid) -> Result<(), ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    let mut tx = realm.begin().await?;
    let updated = sqlx::query(
        r"UPDATE users SET locked_until = NULL, failed_login_count = 0,
               failed_login_window_start = NULL
          WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(|e| realm.db_error(e))?;
    if updated.rows_affected() == 0 {
        return Err(NOT_FOUND);
    }
    audit::record(
        &mut tx,
        realm,
        &operator.actor(),
        "account_unlocked",
        Some(id),
        json!({}),
    )
    .await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(())
}

/// Ends every session and API key of a user.
pub async fn revoke_sessions(
    realm: &Realm,
    operator: &Principal,
    id: Uuid,
) -> Result<(), ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    let mut tx = realm.begin().await?;
    db::fetch_for_update(&mut tx, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(NOT_FOUND)?;
    let sessions = db::revoke_sessions(&mut tx, id, None, "revoked_by_admin")
        .await
        .map_err(|e| realm.db_error(e))?;
    let keys = db::revoke_api_keys(&mut tx, id)
        .await
        .map_err(|e| realm.db_error(e))?;
    audit::record(
        &mut tx,
        realm,
        &operator.actor(),
        "sessions_revoked",
        Some(id),
        json!({"sessions": sessions, "api_keys": keys}),
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &[id], "user.sessions_revoked").await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(())
}
