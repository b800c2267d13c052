//! Access requests: anyone asks for an AutoBot account; an SLM manager approves (creating the
//! user with a temporary password that must be changed) or denies.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::authz::{self, Perm};
use crate::auth::client::ClientInfo;
use crate::auth::principal::Operator;
use crate::auth::token::random_secret;
use crate::domain::{Email, Errors, Password, Username, parse_full_name};
use crate::error::{ApiError, FieldError};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{Listed, Page};
use crate::rate_limit::Limit;
use crate::realm::ADMIN_ROLE;
use crate::state::Scoped;
use crate::users::dto::UserResponse;
use crate::users::service::{NewUser, create_in, parse_roles};

const NOT_FOUND: ApiError = ApiError::NotFound("Access request not found");

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateAccessRequest {
    pub username: String,
    pub email: String,
    pub full_name: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessRequestAccepted {
    pub id: Uuid,
    pub status: &'static str,
}

/// An access request as reviewers see it.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct AccessRequest {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub full_name: Option<String>,
    pub reason: Option<String>,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub reviewer_id: Option<Uuid>,
    pub reviewer_username: Option<String>,
    pub comment: Option<String>,
    pub user_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ApproveRequest {
    pub roles: Option<Vec<String>>,
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DenyRequest {
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalResponse {
    pub request: AccessRequest,
    pub user: UserResponse,
    /// Shown once; the user must change it.
    pub temporary_password: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAccessRequestsQuery {
    /// `pending`, `approved` or `denied`.
    pub status: Option<String>,
    pub skip: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccessRequestPath {
    pub id: Uuid,
}

const COLUMNS: &str = "id, username, email, full_name, reason, status, created_at, reviewed_at, reviewer_id, reviewer_username, comment, user_id";

fn parse_comment(comment: Option<&str>) -> Result<Option<String>, ApiError> {
    match comment.map(str::trim) {
        Some(c) if c.chars().count() > 2000 => Err(ApiError::field(FieldError::body(
            "comment",
            "Comment must be at most 2000 characters",
        ))),
        Some("") | None => Ok(None),
        Some(c) => Ok(Some(c.to_owned())),
    }
}

/// Ask for an AutoBot account (no authentication; rate-limited per IP).
#[utoipa::path(post, path = "", request_body = CreateAccessRequest,
    responses((status = 202, body = AccessRequestAccepted), (status = 409, body = crate::openapi::HttpError),
              (status = 422, body = crate::openapi::HTTPValidationError), (status = 429, body = crate::openapi::HttpError)))]
pub async fn submit_access_request(
    State(ctx): State<Scoped>,
    client: ClientInfo,
    ApiJson(body): ApiJson<CreateAccessRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = Limit {
        name: "access_request",
        max: ctx.app.settings.access_request_rate_limit_per_hour,
        window_secs: 3600,
    };
    let mut errors = Errors::default();
    let username = errors.body("username", Username::parse(&body.username));
    let email = errors.body("email", Email::parse(&body.email));
    let full_name = match body.full_name.as_deref() {
        None => Some(None),
        Some(raw) => errors.body("full_name", parse_full_name(raw)),
    };
    let reason = errors.body(
        "reason",
        match body.reason.as_deref().map(str::trim) {
            Some(r) if r.chars().count() > 2000 => {
                Err("Reason must be at most 2000 characters".to_owned())
            }
            other => Ok(other.filter(|r| !r.is_empty()).map(str::to_owned)),
        },
    );
    let (username, email, full_name, reason) =
        errors.finish(|| Some((username?, email?, full_name?, reason?)))?;
    ctx.app.rate_limiter.check(limit, client.ip).await?;
    let realm = &ctx.realm;
    let id = Uuid::now_v7();
    let mut tx = realm.begin().await?;
    let taken: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1))")
            .bind(username.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| realm.db_error(e))?;
    if taken {
        return Err(ApiError::Conflict("Username already exists".into()));
    }
    sqlx::query(
        r"INSERT INTO access_requests (id, username, email, full_name, reason, ip)
          VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(username.as_str())
    .bind(email.as_str())
    .bind(&full_name)
    .bind(&reason)
    .bind(client.ip.map(|ip| ip.to_string()))
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        crate::error::constraint_conflict(
            e,
            &[(
                "access_requests_pending_email_key",
                "A pending access request exists for this email",
            )],
        )
    })?;
    audit::record(
        &mut tx,
        realm,
        &Actor::anonymous(client),
        "access_request_submitted",
        Some(id),
        json!({"username": username.as_str(), "email": email.as_str()}),
    )
    .await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(AccessRequestAccepted {
            id,
            status: "pending",
        }),
    ))
}

/// List access requests (SLM manager+).
#[utoipa::path(get, path = "", params(ListAccessRequestsQuery),
    responses((status = 200, body = Vec<AccessRequest>)), security(("bearer" = [])))]
pub async fn list_access_requests(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiQuery(query): ApiQuery<ListAccessRequestsQuery>,
) -> Result<Listed<AccessRequest>, ApiError> {
    authz::require(&op, Perm::ReviewAccessRequests)?;
    let page = Page::parse(query.skip, query.limit, 1000)?;
    if let Some(status) = &query.status
        && !["pending", "approved", "denied"].contains(&status.as_str())
    {
        return Err(ApiError::field(FieldError::query(
            "status",
            "Input should be 'pending', 'approved' or 'denied'",
        )));
    }
    let realm = &ctx.realm;
    let mut conn = realm.acquire().await?;
    let rows: Vec<AccessRequest> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM access_requests WHERE ($1::text IS NULL OR status = $1) ORDER BY created_at, id OFFSET $2 LIMIT $3"
    )))
    .bind(&query.status)
    .bind(page.skip)
    .bind(page.limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| realm.db_error(e))?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM access_requests WHERE ($1::text IS NULL OR status = $1)",
    )
    .bind(&query.status)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| realm.db_error(e))?;
    Ok(Listed(rows, total))
}

async fn lock_pending(
    tx: &mut sqlx::PgConnection,
    ctx: &Scoped,
    id: Uuid,
) -> Result<AccessRequest, ApiError> {
    let request: AccessRequest = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM access_requests WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(tx)
    .await
    .map_err(|e| ctx.realm.db_error(e))?
    .ok_or(NOT_FOUND)?;
    if request.status != "pending" {
        return Err(ApiError::Conflict(format!(
            "Access request already {}",
            request.status
        )));
    }
    Ok(request)
}

async fn review(
    tx: &mut sqlx::PgConnection,
    ctx: &Scoped,
    op: &crate::auth::principal::Principal,
    id: Uuid,
    status: &str,
    comment: Option<String>,
    user_id: Option<Uuid>,
) -> Result<AccessRequest, ApiError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        r"UPDATE access_requests SET status = $2, reviewed_at = now(), reviewer_id = $3,
               reviewer_username = $4, comment = $5, user_id = $6
          WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(status)
    .bind(op.user.id)
    .bind(&op.user.username)
    .bind(comment)
    .bind(user_id)
    .fetch_one(tx)
    .await
    .map_err(|e| ctx.realm.db_error(e))
}

/// Approve: create the AutoBot user with a temporary password it must change.
#[utoipa::path(post, path = "/{id}/approve", params(AccessRequestPath), request_body = ApproveRequest,
    responses((status = 200, body = ApprovalResponse), (status = 404, body = crate::openapi::HttpError), (status = 409, body = crate::openapi::HttpError)),
    security(("bearer" = [])))]
pub async fn approve_access_request(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<AccessRequestPath>,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> Result<axum::Json<ApprovalResponse>, ApiError> {
    authz::require(&op, Perm::ReviewAccessRequests)?;
    let realm = &ctx.realm;
    let roles = match &body.roles {
        Some(list) if !list.is_empty() => parse_roles(realm, list, "roles")?,
        _ => vec![realm.policy().default_role.to_owned()],
    };
    if roles.iter().any(|r| r == ADMIN_ROLE) {
        authz::require(&op, Perm::ManageAdmins)?;
    }
    let comment = parse_comment(body.comment.as_deref())?;
    let mut tx = realm.begin().await?;
    let request = lock_pending(&mut tx, &ctx, path.id).await?;
    let temporary_password = random_secret().chars().take(20).collect::<String>();
    let new = NewUser {
        username: Username::parse(&request.username).map_err(ApiError::Conflict)?,
        email: Some(Email::parse(&request.email).map_err(ApiError::Conflict)?),
        full_name: request.full_name.clone(),
        password: Password::parse(&temporary_password, &request.username, Some(&request.email))
            .map_err(|m| ApiError::Internal(anyhow::anyhow!("temporary password rejected: {m}")))?,
        roles,
        is_active: true,
        must_change_password: true,
    };
    let hash = ctx.app.hasher.hash(&temporary_password).await?;
    let user = create_in(&mut tx, realm, &op.actor(), &new, &hash).await?;
    let request = review(
        &mut tx,
        &ctx,
        &op,
        path.id,
        "approved",
        comment,
        Some(user.id),
    )
    .await?;
    audit::record(
        &mut tx,
        realm,
        &op.actor(),
        "access_request_approved",
        Some(request.id),
        json!({"user_id": user.id}),
    )
    .await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(axum::Json(ApprovalResponse {
        request,
        user: user.into(),
        temporary_password,
    }))
}

/// Deny an access request.
#[utoipa::path(post, path = "/{id}/deny", params(AccessRequestPath), request_body = DenyRequest,
    responses((status = 200, body = AccessRequest), (status = 404, body = crate::openapi::HttpError), (status = 409, body = crate::openapi::HttpError)),
    security(("bearer" = [])))]
pub async fn deny_access_request(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<AccessRequestPath>,
    ApiJson(body): ApiJson<DenyRequest>,
) -> Result<axum::Json<AccessRequest>, ApiError> {
    authz::require(&op, Perm::ReviewAccessRequests)?;
    let comment = parse_comment(body.comment.as_deref())?;
    let realm = &ctx.realm;
    let mut tx = realm.begin().await?;
    lock_pending(&mut tx, &ctx, path.id).await?;
    let request = review(&mut tx, &ctx, &op, path.id, "denied", comment, None).await?;
    audit::record(
        &mut tx,
        realm,
        &op.actor(),
        "access_request_denied",
        Some(request.id),
        json!({}),
    )
    .await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(axum::Json(request))
}

pub fn routes() -> Router<Scoped> {
    Router::new()
        .route("/", get(list_access_requests).post(submit_access_request))
        .route("/{id}/approve", post(approve_access_request))
        .route("/{id}/deny", post(deny_access_request))
}

#[derive(OpenApi)]
#[openapi(paths(
    submit_access_request,
    list_access_requests,
    approve_access_request,
    deny_access_request
))]
pub struct ApiDoc;
