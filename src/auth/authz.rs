//! Authorization: what an SLM principal may do (docs/api.md §2). Which permission each action needs
//! is realm data (`RealmPolicy`); what a principal holds comes from its roles in the database
//! (and its API key's scopes).
//!
//! The services check every action (they are also called by the CLI and by each other); a
//! handler also names its route's baseline permission in its signature, [`Authorized`], so
//! that it is checked before the body is read: someone who may not act gets 403 whatever
//! they sent, as with FastAPI's dependencies, instead of learning the body's rules first.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::auth::principal::{Operator, Principal};
use crate::error::ApiError;
use crate::realm::RealmId;
use crate::state::Scoped;

/// An action on the management API.
#[derive(Debug, Clone, Copy)]
pub enum Perm {
    /// Read users (and teams) of a realm.
    ReadUsers(RealmId),
    /// Create, update, delete users, teams, memberships and non-admin roles of a realm.
    WriteUsers(RealmId),
    /// Grant or withdraw a realm's `admin` role, or change an admin.
    ManageAdmins(RealmId),
    ReviewAccessRequests,
    ReadAudit,
}

impl Perm {
    /// The SLM permission this action needs.
    pub fn permission(self) -> &'static str {
        match self {
            Self::ReadUsers(realm) => realm.policy().read_permission,
            Self::WriteUsers(realm) => realm.policy().write_permission,
            Self::ManageAdmins(realm) => realm.policy().admin_permission,
            Self::ReviewAccessRequests => "access-requests:review",
            Self::ReadAudit => "audit:read",
        }
    }
}

/// `Ok` when the SLM principal may perform `perm`, else 403 "Not enough permissions".
pub fn require(principal: &Principal, perm: Perm) -> Result<(), ApiError> {
    let permission = perm.permission();
    if principal.realm == RealmId::Slm && principal.can(permission) {
        Ok(())
    } else {
        Err(principal.denied("Not enough permissions", Some(permission)))
    }
}

/// A route's baseline permission, for the route's target realm.
pub trait Gate {
    fn perm(realm: RealmId) -> Perm;
}

/// Reads the realm's users and teams.
pub enum CanRead {}
/// Changes the realm's users, teams and memberships.
pub enum CanWrite {}
/// Reviews access requests.
pub enum CanReview {}

impl Gate for CanRead {
    fn perm(realm: RealmId) -> Perm {
        Perm::ReadUsers(realm)
    }
}

impl Gate for CanWrite {
    fn perm(realm: RealmId) -> Perm {
        Perm::WriteUsers(realm)
    }
}

impl Gate for CanReview {
    fn perm(_: RealmId) -> Perm {
        Perm::ReviewAccessRequests
    }
}

/// An SLM principal (see [`Operator`]) that holds `G`'s permission for the route's realm.
pub struct Authorized<G>(pub Principal, pub PhantomData<G>);

impl<G: Gate> FromRequestParts<Scoped> for Authorized<G> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Scoped,
    ) -> Result<Self, Self::Rejection> {
        let Operator(principal) = Operator::from_request_parts(parts, state).await?;
        require(&principal, G::perm(state.realm.id()))?;
        Ok(Self(principal, PhantomData))
    }
}
