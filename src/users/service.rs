//! Creating, listing and deleting users, written once for both realms (every function takes
//! the target `&Realm`; realm differences come from its policy); and the few user rows and
//! flags other features read or set (sign-in, MFA, access requests, the CLI's import).
//!
//! Passwords are hashed before any transaction opens, so that no row lock waits on a hash.

use std::net::IpAddr;

use serde_json::json;
use sqlx::PgConnection;
use tracing::instrument;
use uuid::Uuid;

use crate::access::authz::{CanWrite, Perm};
use crate::access::db::factors;
use crate::access::end_credentials;
use crate::addresses::{self, Holder};
use crate::audit::{self, Actor, AuditAction};
use crate::domain::{Email, Password, Username};
use crate::http::error::{ApiError, FieldError, constraint_conflict};
use crate::outbox::{self, OutboxEvent};
use crate::realm::{ADMIN_ROLE, Realm, Role};
use crate::state::AppState;
use crate::users::db::{self, LoginCandidate, NewUserRow, USER_CONFLICTS};
use crate::users::roles::{self, RoleInput};
use crate::users::search::{self, UserFilter};
use crate::users::update::{ensure_other_admin, is_self, local_id, lock_target};
use crate::users::{NOT_FOUND, User};
pub use crate::users::{fetch, get};

/// How a new user's password is given.
#[derive(Debug)]
pub enum Credential {
    /// A password to hash with the realm's scheme.
    Password(Password),
    /// A hash made elsewhere (`import-users`): Argon2 or bcrypt, upgraded at the next sign-in.
    Hash(String),
    /// None: the user signs in through an SSO provider only (as the AutoBot model allows).
    None,
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

/// A page of users, newest first, and the number of all matches.
pub async fn list(realm: &Realm, filter: &UserFilter) -> Result<(Vec<User>, i64), ApiError> {
    realm
        .read(|mut db| {
            Box::pin(async move {
                let (ids, total) = search::page(&mut db, filter).await?;
                let catalog = realm.catalog();
                let mut rows = db::rows(&mut db, &ids).await?;
                // The page's order is that of the ids.
                rows.sort_by_key(|row| ids.iter().position(|id| *id == row.id));
                let users = rows.into_iter().map(|r| User::new(r, &catalog)).collect();
                Ok((users, total))
            })
        })
        .await
}

/// The stored form of a credential, hashed for `client` (whose hashes are limited).
pub async fn hash_credential(
    app: &AppState,
    realm: &Realm,
    client: Option<IpAddr>,
    credential: &Credential,
) -> Result<Option<String>, ApiError> {
    match credential {
        Credential::Password(password) => {
            let hash = app.hasher.hash(client, password.secret(), realm.scheme());
            Ok(Some(hash.await?))
        }
        Credential::Hash(hash) => Ok(Some(hash.clone())),
        Credential::None => Ok(None),
    }
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
    let (new, hash) = (&new, hash.as_deref());
    realm
        .transaction(|mut tx| {
            Box::pin(async move { create_in(&mut tx, realm, actor, new, hash).await })
        })
        .await
}

/// Creates a user on behalf of an operator (HTTP): the admin role needs admin rights.
pub async fn create_by(
    app: &AppState,
    realm: &Realm,
    op: &CanWrite,
    new: NewUser,
) -> Result<User, ApiError> {
    let roles = roles::of_new_user(realm, &new.roles, new.admin)?;
    if roles.iter().any(|r| r.name == ADMIN_ROLE) {
        op.0.require(Perm::ManageAdmins(realm.id())).await?;
    }
    create(app, realm, &op.0.actor(), new).await
}

/// A new user ready to be written: its roles resolved and its password hashed.
pub struct Prepared<'a> {
    pub new: &'a NewUser,
    pub roles: Vec<Role>,
    pub password_hash: Option<String>,
}

/// Writes new users inside the caller's transaction, in a few statements whatever their
/// number: the rows with `is_platform_admin` and password state, their roles, their addresses
/// (no look-alike of another), one `user_created` audit event and one invalidation message
/// each. Every path that creates users ends here.
pub async fn create_many(
    db: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    users: &[Prepared<'_>],
) -> Result<Vec<Uuid>, ApiError> {
    let default_org = crate::realm::db::default_org_id(db).await?;
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
            password_hash: u.password_hash.as_deref(),
            is_active: u.new.is_active,
            is_platform_admin: u.roles.iter().any(|r| r.name == ADMIN_ROLE),
            must_change_password: u.new.must_change_password,
        })
        .collect();
    db::insert_many(db, &rows)
        .await
        .map_err(|e| constraint_conflict(e, USER_CONFLICTS))?;
    let holders: Vec<Holder> = ids.iter().map(|id| Holder::User(*id)).collect();
    let emails: Vec<&str> = rows.iter().map(|r| r.email).collect();
    addresses::hold(db, &holders, &emails, None).await?;
    let (grant_users, grant_roles): (Vec<Uuid>, Vec<Uuid>) = users
        .iter()
        .zip(&ids)
        .flat_map(|(u, id)| u.roles.iter().map(move |r| (*id, r.id)))
        .unzip();
    db::grant_roles(db, &grant_users, &grant_roles, local_id(actor, realm)).await?;
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
    audit::record_many(db, realm, actor, AuditAction::UserCreated, &events).await?;
    outbox::enqueue(db, realm, &ids, OutboxEvent::UserCreated).await?;
    Ok(ids)
}

/// Creates one user (its password already hashed) inside the caller's transaction.
pub async fn create_in(
    db: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    new: &NewUser,
    password_hash: Option<&str>,
) -> Result<User, ApiError> {
    if let Some(org) = new.org_id
        && !crate::realm::db::org_exists(db, org).await?
    {
        return Err(ApiError::field(FieldError::body(
            "org_id",
            "Organization not found",
        )));
    }
    let prepared = Prepared {
        new,
        roles: roles::of_new_user(realm, &new.roles, new.admin)?,
        password_hash: password_hash.map(str::to_owned),
    };
    let ids = create_many(db, realm, actor, std::slice::from_ref(&prepared)).await?;
    let id = ids.first().copied().ok_or(NOT_FOUND)?;
    fetch(db, realm, id).await?.ok_or(NOT_FOUND)
}

/// Deletes a user (see [`db::soft_delete`]): sessions, API keys, MFA, team memberships and its
/// address go with it.
#[instrument(skip_all, fields(realm = realm.name(), user.id = %id))]
pub async fn delete(realm: &Realm, op: &CanWrite, id: Uuid) -> Result<(), ApiError> {
    if is_self(op, realm, id) {
        return Err(ApiError::Conflict("You cannot delete yourself".into()));
    }
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                let target = lock_target(&mut tx, realm, op, id).await?;
                ensure_other_admin(&mut tx, &target).await?;
                let actor = op.0.actor();
                end_credentials(&mut tx, realm, &actor, id, None, "deleted").await?;
                factors::delete(&mut tx, id).await?;
                let teams = crate::teams::service::leave_all(&mut tx, id).await?;
                addresses::release(&mut tx, Holder::User(id)).await?;
                db::soft_delete(&mut tx, id).await?;
                let detail =
                    json!({"username": target.username, "email": target.email, "teams": teams});
                audit::record(
                    &mut tx,
                    realm,
                    &actor,
                    AuditAction::UserDeleted,
                    Some(id),
                    detail,
                )
                .await?;
                outbox::enqueue(&mut tx, realm, &[id], OutboxEvent::UserDeleted).await
            })
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// What other features read or set of users: these are the users table's statements they use.

/// The account a sign-in names (a username or an e-mail).
pub async fn login_candidate(
    realm: &Realm,
    login: &str,
) -> Result<Option<LoginCandidate>, ApiError> {
    realm
        .read(|mut db| Box::pin(async move { Ok(db::find_for_login(&mut db, login).await?) }))
        .await
}

/// The stored password hash of a user.
pub async fn password_hash(realm: &Realm, id: Uuid) -> Result<Option<String>, ApiError> {
    realm
        .read(|mut db| Box::pin(async move { Ok(db::password_hash(&mut db, id).await?) }))
        .await
}

/// Stamps a successful sign-in.
pub async fn signed_in(db: &mut PgConnection, id: Uuid) -> Result<(), ApiError> {
    Ok(db::record_login(db, id).await?)
}

/// Replaces a user's hash by one of the realm's scheme, made from the password a sign-in just
/// proved (the stored one was of another scheme or other parameters).
pub async fn rehash(db: &mut PgConnection, id: Uuid, hash: &str) -> Result<(), ApiError> {
    Ok(db::upgrade_hash(db, id, hash).await?)
}

/// Stores a password the user chose (the must-change flag ends).
pub async fn set_own_password(db: &mut PgConnection, id: Uuid, hash: &str) -> Result<(), ApiError> {
    Ok(db::set_password(db, id, hash, false).await?)
}

/// Sets the MFA flag the AutoBot model keeps on the user.
pub async fn set_mfa_enabled(
    db: &mut PgConnection,
    id: Uuid,
    enabled: bool,
) -> Result<(), ApiError> {
    Ok(db::set_mfa_enabled(db, id, enabled).await?)
}

/// Whether a live user has this username (any case), in the caller's unit of work.
pub async fn username_taken(db: &mut PgConnection, username: &str) -> Result<bool, ApiError> {
    Ok(db::username_taken(db, username).await?)
}

/// Locks the live user `id` for the rest of the caller's transaction; whether there is one.
pub async fn lock(db: &mut PgConnection, id: Uuid) -> Result<bool, ApiError> {
    Ok(db::lock(db, id).await?)
}

/// Which of `usernames` and `emails` (lower-cased) live users already have, in the caller's
/// unit of work (an import checks its file first).
pub async fn taken(
    db: &mut PgConnection,
    usernames: &[String],
    emails: &[String],
) -> Result<Vec<String>, ApiError> {
    Ok(db::taken(db, usernames, emails).await?)
}

/// The live user with this e-mail (any case), in the caller's unit of work.
pub async fn with_email(db: &mut PgConnection, email: &str) -> Result<Option<Uuid>, ApiError> {
    Ok(db::id_by_email(db, email).await?)
}

/// The live user with this username (any case), in the caller's unit of work.
pub async fn find_id(db: &mut PgConnection, username: &str) -> Result<Option<Uuid>, ApiError> {
    Ok(db::id_by_username(db, username).await?)
}
