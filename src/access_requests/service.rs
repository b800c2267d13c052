//! Access requests: anyone asks for an AutoBot account; an SLM manager approves (creating the
//! user, through the one way users are created, with a temporary password that must be
//! changed) or denies with a comment. A request is reviewed once.

use serde_json::json;
use uuid::Uuid;

use crate::access_requests::db::{self, NewRequest, REQUEST_CONFLICTS};
use crate::access_requests::dto::{AccessRequest, AccessRequestAccepted, ApprovalResponse};
use crate::audit::{self, Actor, AuditAction};
use crate::auth::authz::{self, Perm};
use crate::auth::client::ClientInfo;
use crate::auth::principal::Principal;
use crate::crypto::random_secret;
use crate::database::Db;
use crate::domain::{Email, Password, Username};
use crate::error::{ApiError, constraint_conflict};
use crate::rate_limit::Limit;
use crate::realm::Realm;
use crate::state::AppState;
use crate::users::db as users_db;
use crate::users::service::{self as users, Credential, NewUser, RoleInput};

const NOT_FOUND: ApiError = ApiError::NotFound("Access request not found");

/// A request as submitted, parsed.
pub struct Submission {
    pub username: Username,
    pub email: Email,
    pub full_name: Option<String>,
    pub reason: Option<String>,
}

/// Records a request (no authentication; rate-limited per client IP).
pub async fn submit(
    app: &AppState,
    realm: &Realm,
    client: ClientInfo,
    submission: Submission,
) -> Result<AccessRequestAccepted, ApiError> {
    let limit = Limit {
        name: "access_request",
        max: app.settings.access_request_rate_limit_per_hour,
        window_secs: 3600,
    };
    app.rate_limiter.check(limit, client.ip).await?;
    let id = Uuid::now_v7();
    let mut tx = realm.begin().await?;
    if users_db::username_taken(&mut tx, submission.username.as_str()).await? {
        return Err(ApiError::Conflict("Username already exists".into()));
    }
    let skeleton = users::ensure_no_look_alike(&mut tx, &[submission.email.as_str()], None)
        .await?
        .remove(0);
    let ip = client.ip.map(|ip| ip.to_string());
    db::insert(
        &mut tx,
        &NewRequest {
            id,
            username: submission.username.as_str(),
            email: submission.email.as_str(),
            full_name: submission.full_name.as_deref(),
            reason: submission.reason.as_deref(),
            ip: ip.as_deref(),
            email_skeleton: &skeleton,
        },
    )
    .await
    .map_err(|e| constraint_conflict(e, REQUEST_CONFLICTS))?;
    audit::record(
        &mut tx,
        realm,
        &Actor::anonymous(client),
        AuditAction::AccessRequestSubmitted,
        Some(id),
        json!({"username": submission.username.as_str(), "email": submission.email.as_str()}),
    )
    .await?;
    tx.commit().await?;
    Ok(AccessRequestAccepted {
        id,
        status: "pending",
    })
}

/// The e-mails of pending requests that look like `emails` (their `skeletons`) without being
/// them (see [`crate::users::service::ensure_no_look_alike`]).
pub async fn look_alike_pending(
    db: &mut impl Db,
    skeletons: &[String],
    emails: &[String],
) -> Result<Vec<String>, ApiError> {
    Ok(db::look_alike_pending(db, skeletons, emails).await?)
}

pub async fn list(
    realm: &Realm,
    op: &Principal,
    status: Option<&str>,
    skip: i64,
    limit: i64,
) -> Result<(Vec<AccessRequest>, i64), ApiError> {
    authz::require(op, Perm::ReviewAccessRequests)?;
    let mut conn = realm.conn().await?;
    Ok(db::list(&mut conn, status, skip, limit).await?)
}

fn ensure_pending(request: &AccessRequest) -> Result<(), ApiError> {
    if request.status != "pending" {
        return Err(ApiError::Conflict(format!(
            "Access request already {}",
            request.status
        )));
    }
    Ok(())
}

/// Approves a request: the AutoBot user is created with a temporary password it must change.
pub async fn approve(
    app: &AppState,
    realm: &Realm,
    op: &Principal,
    id: Uuid,
    roles: RoleInput,
    comment: Option<String>,
) -> Result<ApprovalResponse, ApiError> {
    authz::require(op, Perm::ReviewAccessRequests)?;
    let resolved = {
        let mut conn = realm.conn().await?;
        users::resolve_roles(&mut conn, &roles).await?
    };
    if resolved.iter().any(|r| r.name == crate::realm::ADMIN_ROLE) {
        authz::require(op, Perm::ManageAdmins(realm.id()))?;
    }
    // Read the request to hash its temporary password before the transaction opens.
    let first = {
        let mut conn = realm.conn().await?;
        db::lock(&mut conn, id).await?.ok_or(NOT_FOUND)?
    };
    ensure_pending(&first)?;
    let temporary_password: String = random_secret().chars().take(20).collect();
    let new = NewUser {
        username: Username::parse(&first.username).map_err(ApiError::Conflict)?,
        email: Email::parse(&first.email).map_err(ApiError::Conflict)?,
        display_name: first.full_name.clone(),
        credential: Credential::Password(
            Password::parse(
                &temporary_password,
                &first.username,
                Some(&first.email),
                realm.scheme().max_password_bytes(),
            )
            .map_err(|m| ApiError::Internal(anyhow::anyhow!("temporary password rejected: {m}")))?,
        ),
        roles,
        admin: false,
        is_active: true,
        must_change_password: true,
        org_id: None,
    };
    let hash = users::hash_credential(app, realm, op.client.ip, &new.credential).await?;
    let mut tx = realm.begin().await?;
    let request = db::lock(&mut tx, id).await?.ok_or(NOT_FOUND)?;
    ensure_pending(&request)?;
    let actor = op.actor();
    let user = users::create_in(&mut tx, realm, &actor, &new, &hash).await?;
    let request = db::review(
        &mut tx,
        id,
        "approved",
        (op.user.id, &op.user.username),
        comment.as_deref(),
        Some(user.id),
    )
    .await?;
    audit::record(
        &mut tx,
        realm,
        &actor,
        AuditAction::AccessRequestApproved,
        Some(id),
        json!({"user_id": user.id}),
    )
    .await?;
    tx.commit().await?;
    Ok(ApprovalResponse {
        request,
        user: user.into(),
        temporary_password,
    })
}

/// Denies a request, saying why.
pub async fn deny(
    realm: &Realm,
    op: &Principal,
    id: Uuid,
    comment: &str,
) -> Result<AccessRequest, ApiError> {
    authz::require(op, Perm::ReviewAccessRequests)?;
    let mut tx = realm.begin().await?;
    let request = db::lock(&mut tx, id).await?.ok_or(NOT_FOUND)?;
    ensure_pending(&request)?;
    let request = db::review(
        &mut tx,
        id,
        "denied",
        (op.user.id, &op.user.username),
        Some(comment),
        None,
    )
    .await?;
    audit::record(
        &mut tx,
        realm,
        &op.actor(),
        AuditAction::AccessRequestDenied,
        Some(id),
        json!({"comment": comment}),
    )
    .await?;
    tx.commit().await?;
    Ok(request)
}
