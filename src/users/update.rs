//! Changing a user (`PATCH`): its profile, e-mail, password, activity and admin flag, in one
//! transaction; and the checks every change of a user shares: the target locked, the admin
//! permission when the target is an admin, never the last active admin.

use secrecy::SecretString;
use serde_json::json;
use sqlx::PgConnection;
use tracing::instrument;
use uuid::Uuid;

use crate::access::authz::{CanWrite, Perm};
use crate::access::end_credentials;
use crate::addresses::{self, Holder};
use crate::audit::{self, Actor, AuditAction};
use crate::domain::Password;
use crate::http::error::{ApiError, FieldError, constraint_conflict};
use crate::outbox::{self, OutboxEvent};
use crate::realm::{ADMIN_ROLE, Realm, Role};
use crate::state::AppState;
use crate::users::db::{self, ProfileChange, USER_CONFLICTS};
use crate::users::roles;
use crate::users::{NOT_FOUND, User, fetch, get};

/// Changes to a user, parsed; the password is checked against the policy once the user is
/// known.
#[derive(Debug, Default)]
pub struct UserPatch {
    pub profile: ProfileChange,
    pub password: Option<SecretString>,
    pub admin: Option<bool>,
}

/// Changes that touch an admin (granting, withdrawing, or changing an admin account) need the
/// realm's admin permission, so that a manager can never escalate or remove an admin.
async fn require_for_target(op: &CanWrite, realm: &Realm, target: &User) -> Result<(), ApiError> {
    match target.is_admin() {
        true => op.0.require(Perm::ManageAdmins(realm.id())).await,
        false => Ok(()),
    }
}

/// The target of a change, locked for the rest of the transaction, after the checks that
/// depend on it.
pub(super) async fn lock_target(
    db: &mut PgConnection,
    realm: &Realm,
    op: &CanWrite,
    id: Uuid,
) -> Result<User, ApiError> {
    if !db::lock(db, id).await? {
        return Err(NOT_FOUND);
    }
    let target = fetch(db, realm, id).await?.ok_or(NOT_FOUND)?;
    require_for_target(op, realm, &target).await?;
    Ok(target)
}

/// Refuses a change that would leave the realm without an active admin. Takes the realm-wide
/// admin lock first, so concurrent demotions are serialised.
pub(super) async fn ensure_other_admin(
    db: &mut PgConnection,
    target: &User,
) -> Result<(), ApiError> {
    if !(target.is_active && target.is_admin()) {
        return Ok(());
    }
    db::lock_admin_set(db).await?;
    if db::count_active_admins(db, Some(target.id)).await? == 0 {
        return Err(ApiError::Conflict(
            "Cannot remove the last active admin".into(),
        ));
    }
    Ok(())
}

/// Whether the operator is the user `target` of `realm`.
pub(super) fn is_self(op: &CanWrite, realm: &Realm, target: Uuid) -> bool {
    op.0.principal.realm == realm.id() && op.0.principal.user_id == target
}

/// The `assigned_by`/`revoked_by` of a change: the operator, when a user of this database.
pub(super) fn local_id(actor: &Actor, realm: &Realm) -> Option<Uuid> {
    actor.id.filter(|_| actor.realm == Some(realm.id()))
}

/// Ends a user's sessions and API keys: every session, except the operator's own when they
/// change themselves (like a password change, which ends only the *other* sessions).
pub(super) async fn end_sessions(
    db: &mut PgConnection,
    realm: &Realm,
    op: &CanWrite,
    id: Uuid,
    reason: &str,
) -> Result<(), ApiError> {
    let keep = match is_self(op, realm, id) {
        true => op.0.principal.session_id,
        false => None,
    };
    end_credentials(db, realm, &op.0.actor(), id, keep, reason).await
}

/// Makes `roles` the user's roles, audited (one event per role granted or withdrawn, as the
/// AutoBot backend records them) and announced. Sessions stay: every request reads the current
/// roles, so the next one sees the new ones (docs/api.md §1).
pub(super) async fn store_roles(
    db: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    target: &User,
    roles: &[Role],
) -> Result<(), ApiError> {
    let ids: Vec<Uuid> = roles.iter().map(|r| r.id).collect();
    db::set_roles(db, target.id, &ids, local_id(actor, realm)).await?;
    let granted = roles.iter().filter(|r| !target.roles.contains(r));
    let withdrawn = target.roles.iter().filter(|t| !roles.contains(t));
    for (action, role) in granted
        .map(|r| (AuditAction::RoleAssigned, r))
        .chain(withdrawn.map(|r| (AuditAction::RoleRevoked, r)))
    {
        let detail = json!({"role": role.name, "role_id": role.id});
        audit::record(db, realm, actor, action, Some(target.id), detail).await?;
    }
    outbox::enqueue(db, realm, &[target.id], OutboxEvent::UserRolesChanged).await
}

#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn update(
    app: &AppState,
    realm: &Realm,
    op: &CanWrite,
    id: Uuid,
    patch: UserPatch,
) -> Result<User, ApiError> {
    if patch.admin.is_some() {
        op.0.require(Perm::ManageAdmins(realm.id())).await?;
    }
    // The new password is checked against the account's (new) username and e-mail, and hashed
    // before the transaction opens.
    let password_hash = match &patch.password {
        Some(raw) => {
            let current = get(realm, id).await?;
            let username = patch
                .profile
                .username
                .as_deref()
                .unwrap_or(&current.username);
            let email = patch.profile.email.as_deref().unwrap_or(&current.email);
            let password = Password::parse(raw, username, Some(email), realm.scheme())
                .map_err(|msg| ApiError::field(FieldError::body("password", msg)))?;
            let client = op.0.principal.client.ip;
            Some(
                app.hasher
                    .hash(client, password.secret(), realm.scheme())
                    .await?,
            )
        }
        None => None,
    };
    let (patch, password_hash) = (&patch, password_hash.as_deref());
    realm
        .transaction(|mut tx| {
            Box::pin(async move { update_in(&mut tx, realm, op, id, patch, password_hash).await })
        })
        .await
}

async fn update_in(
    db: &mut PgConnection,
    realm: &Realm,
    op: &CanWrite,
    id: Uuid,
    patch: &UserPatch,
    password_hash: Option<&str>,
) -> Result<User, ApiError> {
    let target = lock_target(db, realm, op, id).await?;
    let profile = &patch.profile;
    let deactivating = profile.is_active == Some(false) && target.is_active;
    let demoting = patch.admin == Some(false) && target.is_admin();
    if deactivating && is_self(op, realm, id) {
        return Err(ApiError::Conflict("You cannot deactivate yourself".into()));
    }
    if deactivating || demoting {
        ensure_other_admin(db, &target).await?;
    }
    if let Some(email) = profile.email.as_deref() {
        addresses::hold(db, &[Holder::User(id)], &[email], Some(id)).await?;
    }
    let actor = op.0.actor();
    if let Some(hash) = password_hash {
        // An admin setting a password leaves the must-change flag as it was.
        db::set_password(db, id, hash, target.must_change_password).await?;
        let detail = json!({"by": "admin"});
        audit::record(
            db,
            realm,
            &actor,
            AuditAction::PasswordChanged,
            Some(id),
            detail,
        )
        .await?;
    }
    if let Some(admin) = patch.admin
        && admin != target.is_admin()
    {
        let mut roles: Vec<Role> = target
            .roles
            .iter()
            .filter(|r| r.name != ADMIN_ROLE)
            .cloned()
            .collect();
        if admin {
            roles.push(roles::named(realm, ADMIN_ROLE)?);
        } else if roles.is_empty() {
            roles.push(roles::named(realm, realm.policy().default_role)?);
        }
        store_roles(db, realm, &actor, &target, &roles).await?;
    }
    if let Some(active) = profile.is_active
        && active != target.is_active
    {
        let action = match active {
            true => AuditAction::UserActivated,
            false => AuditAction::UserDeactivated,
        };
        audit::record(db, realm, &actor, action, Some(id), json!({})).await?;
    }
    // Deactivation or a new password ends the user's sessions and API keys at once.
    if deactivating {
        end_sessions(db, realm, op, id, "deactivated").await?;
    } else if password_hash.is_some() {
        end_sessions(db, realm, op, id, "password_changed").await?;
    }
    let changed: Vec<&str> = [
        ("email", profile.email.is_some()),
        ("username", profile.username.is_some()),
        ("display_name", profile.display_name.is_some()),
        ("bio", profile.bio.is_some()),
        ("avatar_url", profile.avatar_url.is_some()),
        ("preferences", profile.preferences.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect();
    if !changed.is_empty() {
        let detail = json!({"fields": changed});
        audit::record(
            db,
            realm,
            &actor,
            AuditAction::UserUpdated,
            Some(id),
            detail,
        )
        .await?;
    }
    let event = if deactivating {
        OutboxEvent::UserDeactivated
    } else if password_hash.is_some() {
        OutboxEvent::UserPasswordChanged
    } else {
        OutboxEvent::UserUpdated
    };
    outbox::enqueue(db, realm, &[id], event).await?;
    // The profile last: its answer is the user as this change leaves it.
    let row = db::update_profile(db, id, profile)
        .await
        .map_err(|e| constraint_conflict(e, USER_CONFLICTS))?
        .ok_or(NOT_FOUND)?;
    Ok(User::new(row, &realm.catalog()))
}
