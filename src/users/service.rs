//! The rules of user management, written once for both realms: every function takes the
//! target `&Realm`, and realm differences come from its policy.
//!
//! Passwords are hashed before any transaction opens, so that no row lock waits on a hash.

use std::collections::BTreeMap;

use serde_json::json;
use tracing::instrument;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditAction};
use crate::auth::authz::{self, Perm};
use crate::auth::principal::Principal;
use crate::auth::service::end_credentials;
use crate::database::{Db, Tx};
use crate::domain::{Email, Password, Username, email_skeleton};
use crate::error::{ApiError, FieldError, LocItem, constraint_conflict};
use crate::outbox;
use crate::realm::{ADMIN_ROLE, Realm};
use crate::state::AppState;
use crate::users::db::{self, NewUserRow, ProfileChange, Role, USER_CONFLICTS, User, UserFilter};

const NOT_FOUND: ApiError = ApiError::NotFound("User not found");

/// Roles named in a request, by name or by id.
#[derive(Debug, Default, Clone)]
pub struct RoleInput {
    pub names: Option<Vec<String>>,
    pub ids: Option<Vec<Uuid>>,
}

impl RoleInput {
    pub fn is_empty(&self) -> bool {
        self.names.as_ref().is_none_or(Vec::is_empty) && self.ids.as_ref().is_none_or(Vec::is_empty)
    }
}

/// The roles of `known` (the realm's) named by `input`, or 422s pointing at each unknown entry
/// (`["body", "roles", i]` or `["body", "role_ids", i]`).
pub fn pick_roles(known: &[Role], input: &RoleInput) -> Result<Vec<Role>, Vec<FieldError>> {
    let mut picked: BTreeMap<Uuid, Role> = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, name) in input.names.iter().flatten().enumerate() {
        match known.iter().find(|r| &r.name == name) {
            Some(role) => {
                picked.insert(role.id, role.clone());
            }
            None => errors.push(FieldError::at(
                vec!["body".into(), "roles".into(), LocItem::Index(i)],
                format!(
                    "Unknown role {name:?}; expected one of: {}",
                    known
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "value_error",
            )),
        }
    }
    for (i, id) in input.ids.iter().flatten().enumerate() {
        match known.iter().find(|r| &r.id == id) {
            Some(role) => {
                picked.insert(role.id, role.clone());
            }
            None => errors.push(FieldError::at(
                vec!["body".into(), "role_ids".into(), LocItem::Index(i)],
                "Role not found",
                "value_error",
            )),
        }
    }
    if errors.is_empty() {
        Ok(picked.into_values().collect())
    } else {
        Err(errors)
    }
}

/// The realm's roles named by `input`, or 422s pointing at each unknown entry.
pub async fn resolve_roles(db: &mut impl Db, input: &RoleInput) -> Result<Vec<Role>, ApiError> {
    let known = db::roles(db).await?;
    pick_roles(&known, input).map_err(ApiError::Validation)
}

/// The roles a new user gets: those named, the realm's base role when none is, and `admin`
/// when asked for with the flag.
pub fn roles_of_new_user(
    known: &[Role],
    realm: &Realm,
    new: &NewUser,
) -> Result<Vec<Role>, Vec<FieldError>> {
    let named = if new.roles.is_empty() {
        RoleInput {
            names: Some(vec![realm.new_user_role().to_owned()]),
            ids: None,
        }
    } else {
        new.roles.clone()
    };
    let mut roles = pick_roles(known, &named)?;
    if new.admin && !roles.iter().any(|r| r.name == ADMIN_ROLE) {
        roles.extend(known.iter().find(|r| r.name == ADMIN_ROLE).cloned());
    }
    Ok(roles)
}

/// The realm's role named `name`.
pub async fn role_named(db: &mut impl Db, name: &str) -> Result<Role, ApiError> {
    db::roles(db)
        .await?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "the realm has no {name} role (not seeded?)"
            ))
        })
}

/// How a new user's password is given.
#[derive(Debug)]
pub enum Credential {
    /// A password to hash with the realm's scheme.
    Password(Password),
    /// A hash made elsewhere (`import-users`): Argon2 or bcrypt, upgraded at the next login.
    Hash(String),
}

/// A user to create, already parsed.
#[derive(Debug)]
pub struct NewUser {
    pub username: Username,
    pub email: Email,
    pub display_name: Option<String>,
    pub credential: Credential,
    pub roles: RoleInput,
    /// Grants `admin` on top of `roles`.
    pub admin: bool,
    pub is_active: bool,
    pub must_change_password: bool,
    pub org_id: Option<Uuid>,
}

/// Changes to a user, parsed; the password is checked against the policy once the user is
/// known.
#[derive(Debug, Default)]
pub struct UserPatch {
    pub profile: ProfileChange,
    pub password: Option<String>,
    pub admin: Option<bool>,
}

/// Changes that touch an admin (granting, withdrawing, or changing an admin account) need the
/// realm's admin permission, so that a manager can never escalate or remove an admin.
fn require_for_target(operator: &Principal, realm: &Realm, target: &User) -> Result<(), ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    if target.has_role(ADMIN_ROLE) {
        authz::require(operator, Perm::ManageAdmins(realm.id()))?;
    }
    Ok(())
}

/// Refuses a change that would leave the realm without an active admin. Takes the realm-wide
/// admin lock first, so concurrent demotions are serialised.
async fn ensure_other_admin(tx: &mut impl Db, target: &User) -> Result<(), ApiError> {
    if !(target.is_active && target.has_role(ADMIN_ROLE)) {
        return Ok(());
    }
    db::lock_admin_set(tx).await?;
    if db::count_active_admins(tx, Some(target.id)).await? == 0 {
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

/// The `assigned_by`/`revoked_by` of a change: the operator, when a user of this database.
fn local_id(actor: &Actor, realm: &Realm) -> Option<Uuid> {
    actor.id.filter(|_| actor.realm == Some(realm.id()))
}

/// Creates a user: the one way users come to exist, whether over HTTP, from the CLI, at
/// bootstrap or by approving an access request.
#[instrument(skip_all, fields(realm = realm.name()))]
pub async fn create(
    app: &AppState,
    realm: &Realm,
    actor: &Actor,
    new: NewUser,
) -> Result<User, ApiError> {
    let hash = hash_credential(app, realm, actor.client.ip, &new.credential).await?;
    let mut tx = realm.begin().await?;
    let user = create_in(&mut tx, realm, actor, &new, &hash).await?;
    tx.commit().await?;
    Ok(user)
}

/// The stored form of a credential.
pub async fn hash_credential(
    app: &AppState,
    realm: &Realm,
    client: Option<std::net::IpAddr>,
    credential: &Credential,
) -> Result<String, ApiError> {
    match credential {
        Credential::Password(password) => {
            app.hasher
                .hash(client, password.expose(), realm.scheme())
                .await
        }
        Credential::Hash(hash) => Ok(hash.clone()),
    }
}

/// Refuses an e-mail of `emails` that looks like another one without being it (the same
/// TR39 skeleton, another address): another of `emails`, a live user's (`except` aside) or a
/// pending access request's. 409, like a duplicate. Returns the skeletons, in order.
pub async fn ensure_no_look_alike(
    db: &mut impl Db,
    emails: &[&str],
    except: Option<Uuid>,
) -> Result<Vec<String>, ApiError> {
    let skeletons: Vec<String> = emails.iter().map(|e| email_skeleton(e)).collect();
    let lowered: Vec<String> = emails.iter().map(|e| e.to_lowercase()).collect();
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let within = skeletons
        .iter()
        .zip(&lowered)
        .any(|(skeleton, email)| *seen.entry(skeleton).or_insert(email) != email.as_str());
    let look_alike = within
        || !db::look_alike_emails(db, &skeletons, &lowered, except)
            .await?
            .is_empty()
        || !crate::access_requests::service::look_alike_pending(db, &skeletons, &lowered)
            .await?
            .is_empty();
    if look_alike {
        return Err(ApiError::Conflict(
            "Email looks like an existing one".into(),
        ));
    }
    Ok(skeletons)
}

/// A new user ready to be written: its roles resolved and its password hashed.
pub struct Prepared<'a> {
    pub new: &'a NewUser,
    pub roles: Vec<Role>,
    pub password_hash: String,
}

/// Writes new users inside the caller's transaction, in a few statements whatever their number:
/// the rows with `is_platform_admin` and password state, their roles, one `user_created` audit
/// event and one invalidation message each. Every path that creates users ends here.
pub async fn create_many(
    tx: &mut impl Db,
    realm: &Realm,
    actor: &Actor,
    users: &[Prepared<'_>],
) -> Result<Vec<Uuid>, ApiError> {
    let default_org = db::default_org_id(tx).await?;
    let ids: Vec<Uuid> = users.iter().map(|_| Uuid::now_v7()).collect();
    let rows: Vec<NewUserRow<'_>> = users
        .iter()
        .zip(&ids)
        .map(|(u, id)| NewUserRow {
            id: *id,
            org_id: u.new.org_id.or(default_org),
            username: u.new.username.as_str(),
            email: u.new.email.as_str(),
            display_name: u.new.display_name.as_deref(),
            password_hash: Some(&u.password_hash),
            is_active: u.new.is_active,
            is_platform_admin: u.roles.iter().any(|r| r.name == ADMIN_ROLE),
            must_change_password: u.new.must_change_password,
        })
        .collect();
    let emails: Vec<&str> = rows.iter().map(|r| r.email).collect();
    let skeletons = ensure_no_look_alike(tx, &emails, None).await?;
    db::insert_many(tx, &rows)
        .await
        .map_err(|e| constraint_conflict(e, USER_CONFLICTS))?;
    db::store_skeletons(tx, &ids, &emails, &skeletons).await?;
    let (grant_users, grant_roles): (Vec<Uuid>, Vec<Uuid>) = users
        .iter()
        .zip(&ids)
        .flat_map(|(u, id)| u.roles.iter().map(move |r| (*id, r.id)))
        .unzip();
    db::grant_roles(tx, &grant_users, &grant_roles, local_id(actor, realm)).await?;
    let events: Vec<(Uuid, serde_json::Value)> = users
        .iter()
        .zip(&ids)
        .map(|(u, id)| {
            let roles: Vec<&str> = u.roles.iter().map(|r| r.name.as_str()).collect();
            (
                *id,
                json!({"username": u.new.username.as_str(), "email": u.new.email.as_str(), "roles": roles}),
            )
        })
        .collect();
    audit::record_many(tx, realm, actor, AuditAction::UserCreated, &events).await?;
    outbox::enqueue(tx, realm, &ids, "user.created").await?;
    Ok(ids)
}

/// Creates one user (its password already hashed) inside the caller's transaction.
pub async fn create_in(
    tx: &mut impl Db,
    realm: &Realm,
    actor: &Actor,
    new: &NewUser,
    password_hash: &str,
) -> Result<User, ApiError> {
    if let Some(org) = new.org_id
        && !db::org_exists(tx, org).await?
    {
        return Err(ApiError::field(FieldError::body(
            "org_id",
            "Organization not found",
        )));
    }
    let known = db::roles(tx).await?;
    let roles = roles_of_new_user(&known, realm, new).map_err(ApiError::Validation)?;
    let prepared = Prepared {
        new,
        roles,
        password_hash: password_hash.to_owned(),
    };
    let ids = create_many(tx, realm, actor, std::slice::from_ref(&prepared)).await?;
    let id = ids.first().copied().ok_or(NOT_FOUND)?;
    db::fetch(tx, id).await?.ok_or(NOT_FOUND)
}

/// Creates a user on behalf of an operator (HTTP): the admin role needs admin rights.
pub async fn create_by(
    app: &AppState,
    realm: &Realm,
    operator: &Principal,
    new: NewUser,
) -> Result<User, ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    let known = {
        let mut conn = realm.conn().await?;
        db::roles(&mut conn).await?
    };
    let roles = roles_of_new_user(&known, realm, &new).map_err(ApiError::Validation)?;
    if roles.iter().any(|r| r.name == ADMIN_ROLE) {
        authz::require(operator, Perm::ManageAdmins(realm.id()))?;
    }
    create(app, realm, &operator.actor(), new).await
}

pub async fn get(realm: &Realm, id: Uuid) -> Result<User, ApiError> {
    let mut conn = realm.conn().await?;
    db::fetch(&mut conn, id).await?.ok_or(NOT_FOUND)
}

pub async fn list(realm: &Realm, filter: &UserFilter) -> Result<(Vec<User>, i64), ApiError> {
    let mut conn = realm.conn().await?;
    Ok(db::list(&mut conn, filter).await?)
}

/// The realm's roles.
pub async fn roles(realm: &Realm) -> Result<Vec<Role>, ApiError> {
    let mut conn = realm.conn().await?;
    Ok(db::roles(&mut conn).await?)
}

/// Ends a user's sessions and API keys (see [`end_credentials`]): every session, except the
/// operator's own when they change themselves (like a password change, which ends only the
/// *other* sessions).
async fn end_sessions(
    tx: &mut impl Db,
    realm: &Realm,
    operator: &Principal,
    id: Uuid,
    reason: &str,
) -> Result<(), ApiError> {
    let keep = is_self(operator, realm, id)
        .then_some(operator.session_id)
        .flatten();
    end_credentials(tx, realm, &operator.actor(), id, keep, reason).await
}

/// Makes `roles` the user's roles, audited and announced. Sessions stay: every request reads
/// the current roles, so the next one sees the new ones (docs/api.md §1).
async fn store_roles(
    tx: &mut Tx,
    realm: &Realm,
    operator: &Principal,
    target: &User,
    roles: &[Role],
) -> Result<(), ApiError> {
    let ids: Vec<Uuid> = roles.iter().map(|r| r.id).collect();
    db::set_roles(tx, target.id, &ids, local_id(&operator.actor(), realm)).await?;
    // One event per role granted or withdrawn, as the AutoBot backend records them.
    let actor = operator.actor();
    for (action, changed) in [
        (
            AuditAction::RoleAssigned,
            roles
                .iter()
                .filter(|r| !target.roles.iter().any(|t| t.id == r.id))
                .collect::<Vec<_>>(),
        ),
        (
            AuditAction::RoleRevoked,
            target
                .roles
                .iter()
                .filter(|t| !roles.iter().any(|r| r.id == t.id))
                .collect::<Vec<_>>(),
        ),
    ] {
        for role in changed {
            audit::record(
                tx,
                realm,
                &actor,
                action,
                Some(target.id),
                json!({"role": role.name, "role_id": role.id}),
            )
            .await?;
        }
    }
    outbox::enqueue(tx, realm, &[target.id], "user.roles_changed").await
}

#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn update(
    app: &AppState,
    realm: &Realm,
    operator: &Principal,
    id: Uuid,
    patch: UserPatch,
) -> Result<User, ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    if patch.admin.is_some() {
        authz::require(operator, Perm::ManageAdmins(realm.id()))?;
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
            let password = Password::parse(
                raw,
                username,
                Some(email),
                realm.scheme().max_password_bytes(),
            )
            .map_err(|msg| ApiError::field(FieldError::body("password", msg)))?;
            Some(
                app.hasher
                    .hash(operator.client.ip, password.expose(), realm.scheme())
                    .await?,
            )
        }
        None => None,
    };
    let mut tx = realm.begin().await?;
    let target = db::fetch_for_update(&mut tx, id).await?.ok_or(NOT_FOUND)?;
    require_for_target(operator, realm, &target)?;
    let deactivating = patch.profile.is_active == Some(false) && target.is_active;
    let demoting = patch.admin == Some(false) && target.has_role(ADMIN_ROLE);
    if deactivating && is_self(operator, realm, id) {
        return Err(ApiError::Conflict("You cannot deactivate yourself".into()));
    }
    if deactivating || demoting {
        ensure_other_admin(&mut tx, &target).await?;
    }
    if let Some(email) = patch.profile.email.as_deref() {
        let skeletons = ensure_no_look_alike(&mut tx, &[email], Some(id)).await?;
        db::store_skeletons(&mut tx, &[id], &[email], &skeletons).await?;
    }
    db::update_profile(&mut tx, id, &patch.profile)
        .await
        .map_err(|e| constraint_conflict(e, USER_CONFLICTS))?;
    let actor = operator.actor();
    let mut changed: Vec<&str> = Vec::new();
    let p = &patch.profile;
    for (field, set) in [
        ("email", p.email.is_some()),
        ("username", p.username.is_some()),
        ("display_name", p.display_name.is_some()),
        ("bio", p.bio.is_some()),
        ("avatar_url", p.avatar_url.is_some()),
        ("preferences", p.preferences.is_some()),
    ] {
        if set {
            changed.push(field);
        }
    }
    if let Some(hash) = &password_hash {
        // An admin setting a password leaves the must-change flag as it was.
        db::set_password(&mut tx, id, hash, target.must_change_password).await?;
        audit::record(
            &mut tx,
            realm,
            &actor,
            AuditAction::PasswordChanged,
            Some(id),
            json!({"by": "admin"}),
        )
        .await?;
    }
    if let Some(admin) = patch.admin
        && admin != target.has_role(ADMIN_ROLE)
    {
        let mut roles: Vec<Role> = target
            .roles
            .iter()
            .filter(|r| r.name != ADMIN_ROLE)
            .cloned()
            .collect();
        if admin {
            roles.push(role_named(&mut tx, ADMIN_ROLE).await?);
        } else if roles.is_empty() {
            roles.push(role_named(&mut tx, realm.policy().default_role).await?);
        }
        store_roles(&mut tx, realm, operator, &target, &roles).await?;
    }
    if let Some(active) = p.is_active
        && active != target.is_active
    {
        let action = match active {
            true => AuditAction::UserActivated,
            false => AuditAction::UserDeactivated,
        };
        audit::record(&mut tx, realm, &actor, action, Some(id), json!({})).await?;
    }
    // Deactivation or a new password ends the user's sessions at once.
    if deactivating {
        end_sessions(&mut tx, realm, operator, id, "deactivated").await?;
    } else if password_hash.is_some() {
        end_sessions(&mut tx, realm, operator, id, "password_changed").await?;
    }
    if !changed.is_empty() {
        audit::record(
            &mut tx,
            realm,
            &actor,
            AuditAction::UserUpdated,
            Some(id),
            json!({"fields": changed}),
        )
        .await?;
    }
    let event = if deactivating {
        "user.deactivated"
    } else if password_hash.is_some() {
        "user.password_changed"
    } else {
        "user.updated"
    };
    outbox::enqueue(&mut tx, realm, &[id], event).await?;
    let user = db::fetch(&mut tx, id).await?.ok_or(NOT_FOUND)?;
    tx.commit().await?;
    Ok(user)
}

/// Deletes a user (see [`db::soft_delete`]): sessions, API keys, MFA and team memberships go
/// with it.
#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn delete(realm: &Realm, operator: &Principal, id: Uuid) -> Result<(), ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    if is_self(operator, realm, id) {
        return Err(ApiError::Conflict("You cannot delete yourself".into()));
    }
    let mut tx = realm.begin().await?;
    let target = db::fetch_for_update(&mut tx, id).await?.ok_or(NOT_FOUND)?;
    require_for_target(operator, realm, &target)?;
    ensure_other_admin(&mut tx, &target).await?;
    end_credentials(&mut tx, realm, &operator.actor(), id, None, "deleted").await?;
    crate::auth::db::delete_mfa(&mut tx, id).await?;
    let teams = crate::teams::db::remove_from_all_teams(&mut tx, id).await?;
    db::soft_delete(&mut tx, id).await?;
    audit::record(
        &mut tx,
        realm,
        &operator.actor(),
        AuditAction::UserDeleted,
        Some(id),
        json!({"username": target.username, "email": target.email, "teams": teams}),
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &[id], "user.deleted").await?;
    tx.commit().await
}

/// Adds roles to a user.
#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn add_roles(
    realm: &Realm,
    operator: &Principal,
    id: Uuid,
    input: RoleInput,
) -> Result<User, ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    let mut tx = realm.begin().await?;
    let added = resolve_roles(&mut tx, &input).await?;
    if added.is_empty() {
        return Err(ApiError::field(FieldError::body(
            "roles",
            "At least one role is required",
        )));
    }
    if added.iter().any(|r| r.name == ADMIN_ROLE) {
        authz::require(operator, Perm::ManageAdmins(realm.id()))?;
    }
    let target = db::fetch_for_update(&mut tx, id).await?.ok_or(NOT_FOUND)?;
    require_for_target(operator, realm, &target)?;
    let mut roles = target.roles.0.clone();
    let before = roles.len();
    for role in added {
        if !roles.iter().any(|r| r.id == role.id) {
            roles.push(role);
        }
    }
    if roles.len() != before {
        store_roles(&mut tx, realm, operator, &target, &roles).await?;
    }
    let user = db::fetch(&mut tx, id).await?.ok_or(NOT_FOUND)?;
    tx.commit().await?;
    Ok(user)
}

/// Removes one role (named or by id) from a user.
#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn remove_role(
    realm: &Realm,
    operator: &Principal,
    id: Uuid,
    role: &str,
) -> Result<User, ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    let mut tx = realm.begin().await?;
    let known = db::roles(&mut tx).await?;
    let parsed_id = role.parse::<Uuid>().ok();
    let role = known
        .into_iter()
        .find(|r| r.name == role || Some(r.id) == parsed_id)
        .ok_or(ApiError::NotFound("Role not found"))?;
    if role.name == ADMIN_ROLE {
        authz::require(operator, Perm::ManageAdmins(realm.id()))?;
    }
    let target = db::fetch_for_update(&mut tx, id).await?.ok_or(NOT_FOUND)?;
    require_for_target(operator, realm, &target)?;
    if target.roles.iter().any(|r| r.id == role.id) {
        if role.name == ADMIN_ROLE {
            ensure_other_admin(&mut tx, &target).await?;
        }
        let rest: Vec<Role> = target
            .roles
            .iter()
            .filter(|r| r.id != role.id)
            .cloned()
            .collect();
        store_roles(&mut tx, realm, operator, &target, &rest).await?;
    }
    let user = db::fetch(&mut tx, id).await?.ok_or(NOT_FOUND)?;
    tx.commit().await?;
    Ok(user)
}

/// Clears a brute-force lockout.
pub async fn unlock(realm: &Realm, operator: &Principal, id: Uuid) -> Result<(), ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    let mut tx = realm.begin().await?;
    db::fetch_for_update(&mut tx, id).await?.ok_or(NOT_FOUND)?;
    crate::auth::db::clear_failures(&mut tx, id).await?;
    audit::record(
        &mut tx,
        realm,
        &operator.actor(),
        AuditAction::AccountUnlocked,
        Some(id),
        json!({}),
    )
    .await?;
    tx.commit().await
}

/// Ends every session and API key of a user.
pub async fn revoke_sessions(
    realm: &Realm,
    operator: &Principal,
    id: Uuid,
) -> Result<(), ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    let mut tx = realm.begin().await?;
    let target = db::fetch_for_update(&mut tx, id).await?.ok_or(NOT_FOUND)?;
    require_for_target(operator, realm, &target)?;
    end_credentials(
        &mut tx,
        realm,
        &operator.actor(),
        id,
        None,
        "revoked_by_admin",
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &[id], "user.sessions_revoked").await?;
    tx.commit().await
}

/// Everything stored about a user, as `GET …/{id}/export` returns it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UserExport {
    pub user: crate::users::dto::UserResponse,
    pub teams: Vec<crate::teams::dto::TeamResponse>,
    pub sessions: Vec<crate::auth::db::SessionRow>,
    pub api_keys: Vec<crate::auth::dto::ApiKeyResponse>,
    pub access_requests: Vec<crate::access_requests::dto::AccessRequest>,
    pub audit_events: Vec<crate::audit::AuditEvent>,
    pub exported_at: chrono::DateTime<chrono::Utc>,
}

/// Everything stored about a user (GDPR art. 15).
pub async fn export(realm: &Realm, operator: &Principal, id: Uuid) -> Result<UserExport, ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    let mut conn = realm.conn().await?;
    let user = db::fetch(&mut conn, id).await?.ok_or(NOT_FOUND)?;
    let teams = crate::teams::db::of_user(&mut conn, id).await?;
    let (sessions, _) =
        crate::auth::db::live_sessions(&mut conn, id, realm.tokens().session_idle, 0, 1000).await?;
    let api_keys = crate::auth::db::api_keys_of(&mut conn, id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    let access_requests = crate::access_requests::db::of_user(&mut conn, id, &user.email).await?;
    let audit_events = crate::audit::db::about_user(&mut conn, realm.name(), id).await?;
    Ok(UserExport {
        user: user.into(),
        teams: teams.into_iter().map(Into::into).collect(),
        sessions,
        api_keys,
        access_requests,
        audit_events,
        exported_at: chrono::Utc::now(),
    })
}

/// Computes the e-mail skeletons the look-alike check compares with, for the live users that
/// lack one (written by the AutoBot backend, or before this release); returns how many.
pub async fn sweep_email_skeletons(realm: &Realm) -> Result<usize, ApiError> {
    let mut done = 0;
    loop {
        let mut conn = realm.conn().await?;
        let rows = db::emails_without_skeleton(&mut conn, 1000).await?;
        if rows.is_empty() {
            return Ok(done);
        }
        let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
        let emails: Vec<&str> = rows.iter().map(|(_, email)| email.as_str()).collect();
        let skeletons: Vec<String> = emails.iter().map(|e| email_skeleton(e)).collect();
        db::store_skeletons(&mut conn, &ids, &emails, &skeletons).await?;
        done += rows.len();
    }
}
