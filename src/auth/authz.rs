//! Authorization: what an SLM principal may do (API.md §2), as explicit checks in handlers.
//! Which rank each action needs is realm data (`RealmPolicy`), not code.

use crate::auth::principal::Principal;
use crate::error::ApiError;
use crate::realm::RealmId;

/// SLM role ranks.
pub const MANAGER: i16 = 2;
pub const ADMIN: i16 = 3;

/// An action on the management API.
#[derive(Debug, Clone, Copy)]
pub enum Perm {
    /// Read users (and teams) of a realm.
    ReadUsers(RealmId),
    /// Create, update, delete users, teams, memberships and non-admin roles of a realm.
    WriteUsers(RealmId),
    /// Grant or withdraw a realm's `admin` role, or change an admin.
    ManageAdmins,
    ReviewAccessRequests,
    ReadAudit,
}

impl Perm {
    fn rank(self) -> i16 {
        match self {
            Self::ReadUsers(realm) => realm.policy().read_rank,
            Self::WriteUsers(realm) => realm.policy().write_rank,
            Self::ManageAdmins | Self::ReadAudit => ADMIN,
            Self::ReviewAccessRequests => MANAGER,
        }
    }
}

/// `Ok` when the SLM principal may perform `perm`, else 403 "Not enough permissions".
pub fn require(principal: &Principal, perm: Perm) -> Result<(), ApiError> {
    debug_assert_eq!(
        principal.realm,
        RealmId::Slm,
        "management principals are SLM users"
    );
    if principal.realm == RealmId::Slm && principal.rank() >= perm.rank() {
        Ok(())
    } else {
        Err(ApiError::Forbidden("Not enough permissions"))
    }
}
