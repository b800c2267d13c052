//! A user's access, as an operator changes it: roles granted or withdrawn, a lockout cleared,
//! sessions listed or ended, MFA reset; and the bootstrap's reset of its account.

use serde_json::json;
use sqlx::PgConnection;
use tracing::instrument;
use uuid::Uuid;

use crate::access::authz::{CanRead, CanWrite, Perm};
use crate::access::db::sessions::SessionRow;
use crate::access::db::{factors, lockout};
use crate::access::end_credentials;
use crate::audit::{self, Actor, AuditAction};
use crate::http::error::{ApiError, FieldError};
use crate::http::pagination::Page;
use crate::outbox::{self, OutboxEvent};
use crate::realm::{ADMIN_ROLE, Realm, Role};
use crate::users::db::{self, ProfileChange};
use crate::users::roles::{self, RoleInput};
use crate::users::update::{ensure_other_admin, lock_target, store_roles};
use crate::users::{NOT_FOUND, User, fetch};

/// Adds roles to a user.
#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn add_roles(
    realm: &Realm,
    op: &CanWrite,
    id: Uuid,
    input: RoleInput,
) -> Result<User, ApiError> {
    let added = roles::resolve(&realm.catalog(), &input)?;
    if added.is_empty() {
        return Err(ApiError::field(FieldError::body(
            "roles",
            "At least one role is required",
        )));
    }
    if added.iter().any(|r| r.name == ADMIN_ROLE) {
        op.0.require(Perm::ManageAdmins(realm.id())).await?;
    }
    let added = &added;
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                let target = lock_target(&mut tx, realm, op, id).await?;
                let mut roles = target.roles.clone();
                let before = roles.len();
                roles.extend(added.iter().filter(|r| !target.roles.contains(r)).cloned());
                if roles.len() != before {
                    store_roles(&mut tx, realm, &op.0.actor(), &target, &roles).await?;
                }
                fetch(&mut tx, realm, id).await?.ok_or(NOT_FOUND)
            })
        })
        .await
}

/// Removes one role (named or by id) from a user.
#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn remove_role(
    realm: &Realm,
    op: &CanWrite,
    id: Uuid,
    role: &str,
) -> Result<User, ApiError> {
    let parsed_id = role.parse::<Uuid>().ok();
    let catalog = realm.catalog();
    let role = catalog
        .roles()
        .into_iter()
        .find(|r| r.name == role || Some(r.id) == parsed_id)
        .cloned()
        .ok_or(ApiError::NotFound("Role not found"))?;
    if role.name == ADMIN_ROLE {
        op.0.require(Perm::ManageAdmins(realm.id())).await?;
    }
    let role = &role;
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                let target = lock_target(&mut tx, realm, op, id).await?;
                if target.roles.contains(role) {
                    if role.name == ADMIN_ROLE {
                        ensure_other_admin(&mut tx, &target).await?;
                    }
                    let rest: Vec<Role> = target
                        .roles
                        .iter()
                        .filter(|r| *r != role)
                        .cloned()
                        .collect();
                    store_roles(&mut tx, realm, &op.0.actor(), &target, &rest).await?;
                }
                fetch(&mut tx, realm, id).await?.ok_or(NOT_FOUND)
            })
        })
        .await
}

/// Gives an account back to whoever runs the server (the bootstrap's forced reset), in the
/// caller's transaction: a new password to change at the next sign-in, active, an admin, no
/// lockout, and nothing of what signed it in before.
pub async fn reset_account(
    db: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    id: Uuid,
    password_hash: &str,
) -> Result<(), ApiError> {
    db::lock_admin_set(db).await?;
    if !db::lock(db, id).await? {
        return Err(NOT_FOUND);
    }
    let target = fetch(db, realm, id).await?.ok_or(NOT_FOUND)?;
    db::set_password(db, id, password_hash, true).await?;
    let activate = ProfileChange {
        is_active: Some(true),
        ..ProfileChange::default()
    };
    db::update_profile(db, id, &activate).await?;
    lockout::clear(db, id).await?;
    end_credentials(db, realm, actor, id, None, "bootstrap_reset").await?;
    if !target.is_admin() {
        let mut roles = target.roles.clone();
        roles.push(roles::named(realm, ADMIN_ROLE)?);
        store_roles(db, realm, actor, &target, &roles).await?;
    }
    let detail = json!({"bootstrap": true, "forced": true});
    audit::record(
        db,
        realm,
        actor,
        AuditAction::PasswordChanged,
        Some(id),
        detail,
    )
    .await?;
    outbox::enqueue(db, realm, &[id], OutboxEvent::UserPasswordChanged).await
}

/// Clears a brute-force lockout.
pub async fn unlock(realm: &Realm, op: &CanWrite, id: Uuid) -> Result<(), ApiError> {
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                lock_target(&mut tx, realm, op, id).await?;
                lockout::clear(&mut tx, id).await?;
                let actor = op.0.actor();
                audit::record(
                    &mut tx,
                    realm,
                    &actor,
                    AuditAction::AccountUnlocked,
                    Some(id),
                    json!({}),
                )
                .await
            })
        })
        .await
}

/// Ends every session and API key of a user.
pub async fn revoke_sessions(realm: &Realm, op: &CanWrite, id: Uuid) -> Result<(), ApiError> {
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                lock_target(&mut tx, realm, op, id).await?;
                end_credentials(&mut tx, realm, &op.0.actor(), id, None, "revoked_by_admin")
                    .await?;
                outbox::enqueue(&mut tx, realm, &[id], OutboxEvent::UserSessionsRevoked).await
            })
        })
        .await
}

/// The live sessions of a user, newest first, and how many there are.
pub async fn sessions(
    realm: &Realm,
    _op: &CanRead,
    id: Uuid,
    page: Page,
) -> Result<(Vec<SessionRow>, i64), ApiError> {
    let idle = realm.tokens().lifetimes.session_idle;
    realm
        .read(|mut db| {
            Box::pin(async move {
                if db::rows(&mut db, &[id]).await?.is_empty() {
                    return Err(NOT_FOUND);
                }
                let live =
                    crate::access::db::sessions::live(&mut db, id, idle, page.skip, page.limit);
                Ok(live.await?)
            })
        })
        .await
}

/// An admin turns off the MFA of a user who lost their authenticator; the user enrols again
/// after signing in with the password.
pub async fn reset_mfa(realm: &Realm, op: &CanWrite, id: Uuid) -> Result<(), ApiError> {
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                lock_target(&mut tx, realm, op, id).await?;
                let was_on = factors::delete(&mut tx, id).await?;
                db::set_mfa_enabled(&mut tx, id, false).await?;
                let detail = json!({"by": "admin", "was_enabled": was_on});
                let actor = op.0.actor();
                audit::record(
                    &mut tx,
                    realm,
                    &actor,
                    AuditAction::MfaDisabled,
                    Some(id),
                    detail,
                )
                .await?;
                outbox::enqueue(&mut tx, realm, &[id], OutboxEvent::UserUpdated).await
            })
        })
        .await
}

/// Gives a user the roles an SSO provider says (docs/api.md §7), in the caller's transaction:
/// exactly `names` for a user the provider created (the provider is the authority), or those
/// added to the user's own for a linked one. Audited and announced like any change of roles.
pub async fn apply_provider_roles(
    db: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    id: Uuid,
    names: &[String],
    replace: bool,
) -> Result<(), ApiError> {
    let target = fetch(db, realm, id).await?.ok_or(NOT_FOUND)?;
    let catalog = realm.catalog();
    let granted: Vec<Role> = names
        .iter()
        .filter_map(|name| catalog.named(name).cloned())
        .collect();
    let mut roles: Vec<Role> = match replace {
        true => Vec::new(),
        false => target.roles.clone(),
    };
    roles.extend(
        granted
            .into_iter()
            .filter(|r| !roles.contains(r))
            .collect::<Vec<_>>(),
    );
    if roles.is_empty() {
        roles.push(roles::named(realm, realm.policy().default_role)?);
    }
    let mut before: Vec<_> = target.roles.iter().map(|r| r.id).collect();
    let mut after: Vec<_> = roles.iter().map(|r| r.id).collect();
    before.sort();
    after.sort();
    if before != after {
        if target.is_admin() && !roles.iter().any(|r| r.name == ADMIN_ROLE) {
            ensure_other_admin(db, &target).await?;
        }
        store_roles(db, realm, actor, &target, &roles).await?;
    }
    Ok(())
}
