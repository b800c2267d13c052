//! Access requests: anyone asks for an AutoBot account; an SLM manager approves (creating the
//! user, through the one way users are created, with a temporary password that must be
//! changed) or denies with a comment. A request is reviewed once.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::access::authz::{CanReview, Perm};
use crate::access_requests::db::{self, NewRequest, REQUEST_CONFLICTS, Review};
use crate::access_requests::dto::{
    AccessRequest, AccessRequestAccepted, ApprovalResponse, RequestStatus,
};
use crate::addresses::{self, Holder};
use crate::audit::{self, Actor, AuditAction};
use crate::credentials::keys::random_secret;
use crate::domain::{Email, Password, Username};
use crate::http::client::ClientInfo;
use crate::http::error::{ApiError, constraint_conflict};
use crate::http::pagination::Page;
use crate::http::rate_limit::Limit;
use crate::realm::{ADMIN_ROLE, Realm};
use crate::state::AppState;
use crate::users::roles::{self, RoleInput};
use crate::users::service::{self as users, Credential, NewUser};

const NOT_FOUND: ApiError = ApiError::NotFound("Access request not found");

/// A request as submitted, parsed.
pub struct Submission {
    pub username: Username,
    pub email: Email,
    pub full_name: Option<String>,
    pub reason: Option<String>,
}

/// Records a request (no authentication; rate-limited per client IP). Its address is held
/// until it is reviewed, so that no look-alike of it can be registered meanwhile.
pub async fn submit(
    app: &AppState,
    realm: &Realm,
    client: ClientInfo,
    submission: Submission,
) -> Result<AccessRequestAccepted, ApiError> {
    let limit = Limit {
        name: "access_request",
        max: app.settings.limits.access_requests_per_hour,
        window_secs: 3600,
    };
    app.rate_limiter.check(limit, client.ip).await?;
    let id = Uuid::now_v7();
    let (submission, client) = (&submission, &client);
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if users::username_taken(&mut tx, submission.username.as_str()).await? {
                    return Err(ApiError::Conflict("Username already exists".into()));
                }
                let email = submission.email.as_str();
                addresses::hold(&mut tx, &[Holder::Request(id)], &[email], None).await?;
                let ip = client.ip.map(|ip| ip.to_string());
                let request = NewRequest {
                    id,
                    username: submission.username.as_str(),
                    email,
                    full_name: submission.full_name.as_deref(),
                    reason: submission.reason.as_deref(),
                    ip: ip.as_deref(),
                };
                db::insert(&mut tx, &request)
                    .await
                    .map_err(|e| constraint_conflict(e, REQUEST_CONFLICTS))?;
                let actor = Actor::anonymous(client.clone());
                let action = AuditAction::AccessRequestSubmitted;
                let detail = json!({"username": submission.username.as_str(), "email": email});
                audit::record(&mut tx, realm, &actor, action, Some(id), detail).await
            })
        })
        .await?;
    Ok(AccessRequestAccepted {
        id,
        status: RequestStatus::Pending,
    })
}

/// A page of requests, newest first, and the number of all matches.
pub async fn list(
    realm: &Realm,
    _op: &CanReview,
    status: Option<RequestStatus>,
    page: Page,
) -> Result<(Vec<AccessRequest>, i64), ApiError> {
    realm
        .read(|mut db| {
            Box::pin(async move { Ok(db::page(&mut db, status, page.skip, page.limit).await?) })
        })
        .await
}

/// The requests of a user (by the account they led to, or its e-mail), in the caller's unit
/// of work (the GDPR export).
pub async fn of_user(
    db: &mut PgConnection,
    user_id: Uuid,
    email: &str,
) -> Result<Vec<AccessRequest>, ApiError> {
    Ok(db::of_user(db, user_id, email).await?)
}

/// The request `id`, locked, if it is still pending; its address is released, as it is being
/// reviewed.
async fn take_pending(db: &mut PgConnection, id: Uuid) -> Result<AccessRequest, ApiError> {
    let request = db::lock(db, id).await?.ok_or(NOT_FOUND)?;
    if request.status != RequestStatus::Pending {
        return Err(ApiError::Conflict(format!(
            "Access request already {}",
            request.status.as_str()
        )));
    }
    addresses::release(db, Holder::Request(id)).await?;
    Ok(request)
}

/// Approves a request: the AutoBot user is created with a temporary password it must change.
pub async fn approve(
    app: &AppState,
    realm: &Realm,
    op: &CanReview,
    id: Uuid,
    roles: RoleInput,
    comment: Option<String>,
) -> Result<ApprovalResponse, ApiError> {
    if roles::of_new_user(realm, &roles, false)?
        .iter()
        .any(|r| r.name == ADMIN_ROLE)
    {
        op.0.require(Perm::ManageAdmins(realm.id())).await?;
    }
    // Read the request to hash its temporary password before the transaction opens.
    let first = realm
        .read(|mut db| Box::pin(async move { db::lock(&mut db, id).await?.ok_or(NOT_FOUND) }))
        .await?;
    let temporary_password =
        SecretString::from(random_secret().chars().take(20).collect::<String>());
    let password = Password::parse(
        &temporary_password,
        &first.username,
        Some(&first.email),
        realm.scheme(),
    )
    .map_err(|m| ApiError::Internal(anyhow::anyhow!("temporary password rejected: {m}")))?;
    let new = NewUser {
        username: Username::parse(&first.username).map_err(ApiError::Conflict)?,
        email: Email::parse(&first.email).map_err(ApiError::Conflict)?,
        display_name: first.full_name.clone(),
        credential: Credential::Password(password),
        roles,
        admin: false,
        is_active: true,
        must_change_password: true,
        org_id: None,
    };
    let principal = &op.0.principal;
    let hash = users::hash_credential(app, realm, principal.client.ip, &new.credential).await?;
    let (new, hash, comment) = (&new, hash.as_deref(), comment.as_deref());
    let (request, user) = realm
        .transaction(|mut tx| {
            Box::pin(async move {
                take_pending(&mut tx, id).await?;
                let actor = op.0.actor();
                let user = users::create_in(&mut tx, realm, &actor, new, hash).await?;
                let review = Review {
                    status: RequestStatus::Approved,
                    reviewer_id: principal.user_id,
                    reviewer_username: &principal.username,
                    comment,
                    user_id: Some(user.id),
                };
                let request = db::review(&mut tx, id, &review).await?;
                let action = AuditAction::AccessRequestApproved;
                let detail = json!({"user_id": user.id});
                audit::record(&mut tx, realm, &actor, action, Some(id), detail).await?;
                Ok((request, user))
            })
        })
        .await?;
    Ok(ApprovalResponse {
        request,
        user: user.into(),
        temporary_password: temporary_password.expose_secret().to_owned(),
    })
}

/// Denies a request, saying why.
pub async fn deny(
    realm: &Realm,
    op: &CanReview,
    id: Uuid,
    comment: &str,
) -> Result<AccessRequest, ApiError> {
    let principal = &op.0.principal;
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                take_pending(&mut tx, id).await?;
                let review = Review {
                    status: RequestStatus::Denied,
                    reviewer_id: principal.user_id,
                    reviewer_username: &principal.username,
                    comment: Some(comment),
                    user_id: None,
                };
                let request = db::review(&mut tx, id, &review).await?;
                let action = AuditAction::AccessRequestDenied;
                let detail = json!({"comment": comment});
                audit::record(&mut tx, realm, &op.0.actor(), action, Some(id), detail).await?;
                Ok(request)
            })
        })
        .await
}
