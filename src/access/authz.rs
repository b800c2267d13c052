//! Authorization: what an SLM principal may do (docs/api.md §2), checked once, by the route's
//! extractor, which hands the service a proof of it ([`CanRead`], [`CanWrite`], …). Which
//! permission each action needs is realm data (`RealmPolicy`); what a principal holds comes
//! from its roles (and its API key's scopes). A service checks only what depends on data (the
//! target is an admin) with [`Allowed::require`].
//!
//! Every refusal is recorded as `permission_denied` in the refused principal's realm, where it
//! is decided, and answered 403. The check comes before the body is read, as with FastAPI's
//! dependencies: someone who may not act learns nothing about a valid body.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use serde_json::json;

use crate::access::principal::{Principal, authenticate};
use crate::audit::{self, Actor, AuditAction};
use crate::http::client::ClientInfo;
use crate::http::error::ApiError;
use crate::realm::{Realm, RealmId};
use crate::state::{AppState, Target};

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
    /// Create, change and delete the SSO providers of either realm.
    ManageSso,
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
            // SLM admins: the one role that changes SLM users.
            Self::ManageSso => "slm-users:write",
        }
    }
}

/// The method and path of a refused request, for its audit event.
#[derive(Debug, Clone)]
pub struct RequestLine {
    method: String,
    path: String,
}

impl RequestLine {
    pub fn of(parts: &Parts) -> Self {
        Self {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
        }
    }
}

/// Records that `principal` was refused `reason` (lacking `permission`) in `home`, the
/// principal's own realm, and returns the 403 to answer. The refusal changed nothing, so the
/// event is written on its own.
pub async fn refuse(
    home: &Realm,
    principal: &Principal,
    request: &RequestLine,
    reason: &'static str,
    permission: Option<&'static str>,
) -> ApiError {
    let detail = json!({
        "method": request.method,
        "path": request.path,
        "reason": reason,
        "permission": permission,
    });
    let actor = principal.actor();
    let target = Some(principal.user_id);
    let written = home
        .read(|mut db| {
            Box::pin(async move {
                let action = AuditAction::PermissionDenied;
                audit::record(&mut db, home, &actor, action, target, detail).await
            })
        })
        .await;
    if let Err(err) = written {
        tracing::warn!(error = %err, "could not record a permission_denied event");
    }
    ApiError::Forbidden(reason)
}

/// An SLM principal proved to hold the permission its route needs: the proof a route's
/// extractor hands the service.
#[derive(Debug, Clone)]
pub struct Allowed {
    pub principal: Principal,
    /// The principal's realm, where its refusals are recorded.
    home: Realm,
    request: RequestLine,
}

impl Allowed {
    /// The principal as the actor of an audited change.
    pub fn actor(&self) -> Actor {
        self.principal.actor()
    }

    /// A further check of a route whose action a key must not take (minting keys): `Ok` when
    /// the principal signed in with a session, else the recorded 403.
    pub async fn require_session(&self) -> Result<(), ApiError> {
        match self.principal.api_key_id {
            None => Ok(()),
            Some(_) => Err(refuse(
                &self.home,
                &self.principal,
                &self.request,
                "This requires a signed-in session, not an API key",
                None,
            )
            .await),
        }
    }

    /// A further check that depends on data (the target is an admin): `Ok` when the principal
    /// may also do `perm`, else the recorded 403.
    pub async fn require(&self, perm: Perm) -> Result<(), ApiError> {
        let permission = perm.permission();
        match self.principal.can(permission) {
            true => Ok(()),
            false => Err(refuse(
                &self.home,
                &self.principal,
                &self.request,
                "Not enough permissions",
                Some(permission),
            )
            .await),
        }
    }
}

/// Authenticates an SLM principal and checks that it may act and do `perm`.
async fn allow(parts: &Parts, app: &AppState, perm: Perm) -> Result<Allowed, ApiError> {
    let client = ClientInfo::from_parts(parts, &app.settings.http.trusted_proxies);
    let principal = authenticate(&app.slm, &parts.headers, client).await?;
    let request = RequestLine::of(parts);
    if principal.must_change_password {
        let reason = "Password change required";
        return Err(refuse(&app.slm, &principal, &request, reason, None).await);
    }
    let allowed = Allowed {
        principal,
        home: app.slm.clone(),
        request,
    };
    allowed.require(perm).await?;
    Ok(allowed)
}

/// May read the route's realm's users and teams.
#[derive(Debug, Clone)]
pub struct CanRead(pub Allowed);

/// May change the route's realm's users, teams and memberships (admins need more, per target).
#[derive(Debug, Clone)]
pub struct CanWrite(pub Allowed);

/// May review access requests.
#[derive(Debug, Clone)]
pub struct CanReview(pub Allowed);

/// May manage SSO providers (of the route's realm).
#[derive(Debug, Clone)]
pub struct CanManageSso(pub Allowed);

/// May read the audit log of both realms.
#[derive(Debug, Clone)]
pub struct CanReadAudit(pub Allowed);

impl FromRequestParts<Target> for CanRead {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Target) -> Result<Self, ApiError> {
        allow(parts, &state.app, Perm::ReadUsers(state.realm.id()))
            .await
            .map(Self)
    }
}

impl FromRequestParts<Target> for CanWrite {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Target) -> Result<Self, ApiError> {
        allow(parts, &state.app, Perm::WriteUsers(state.realm.id()))
            .await
            .map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CanReview
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        allow(
            parts,
            &AppState::from_ref(state),
            Perm::ReviewAccessRequests,
        )
        .await
        .map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CanManageSso
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        allow(parts, &AppState::from_ref(state), Perm::ManageSso)
            .await
            .map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CanReadAudit
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        allow(parts, &AppState::from_ref(state), Perm::ReadAudit)
            .await
            .map(Self)
    }
}

// ---------------------------------------------------------------------------------------------
// Who may call a self-service route, and any SLM principal.

fn client_of(parts: &Parts, app: &AppState) -> ClientInfo {
    ClientInfo::from_parts(parts, &app.settings.http.trusted_proxies)
}

/// A signed-in user of the router's own realm, as its route needs: `READY`, one who may act
/// (not one who must first change the password), and `SESSION`, signed in with a session rather
/// than an API key (a key must not mint keys or turn MFA off). A refusal is a recorded 403.
#[derive(Debug, Clone)]
pub struct Caller<const READY: bool, const SESSION: bool>(pub Principal);

/// Anyone signed in, even one who must change their password: `/me`, `/logout`.
pub type SignedIn = Caller<false, false>;
/// One who may act: self-service reads (MFA status, API keys).
pub type RealmUser = Caller<true, false>;
/// One who may act, with a session: managing credentials (MFA, API keys).
pub type SessionUser = Caller<true, true>;
/// One with a session, even one who must change their password: `/me/password`.
pub type PasswordOwner = Caller<false, true>;

impl<const READY: bool, const SESSION: bool> FromRequestParts<Target> for Caller<READY, SESSION> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Target,
    ) -> Result<Self, Self::Rejection> {
        let client = client_of(parts, &state.app);
        let principal = authenticate(&state.realm, &parts.headers, client).await?;
        let refusal = if READY && principal.must_change_password {
            Some("Password change required")
        } else if SESSION && principal.api_key_id.is_some() {
            Some("This requires a signed-in session, not an API key")
        } else {
            None
        };
        match refusal {
            None => Ok(Self(principal)),
            Some(reason) => {
                let request = RequestLine::of(parts);
                Err(refuse(&state.realm, &principal, &request, reason, None).await)
            }
        }
    }
}

/// An SLM-realm principal who may act: every management route requires one, whatever realm it
/// manages (docs/api.md §2). Routes that need a permission take its proof instead
/// ([`CanRead`], …).
#[derive(Debug, Clone)]
pub struct Operator(());

impl<S> FromRequestParts<S> for Operator
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        let client = client_of(parts, &app);
        let principal = authenticate(&app.slm, &parts.headers, client).await?;
        if principal.must_change_password {
            let request = RequestLine::of(parts);
            let reason = "Password change required";
            return Err(refuse(&app.slm, &principal, &request, reason, None).await);
        }
        Ok(Operator(()))
    }
}
