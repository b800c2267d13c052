//! `/api/access-requests`: submitting (anonymous) and reviewing (SLM managers).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::access::authz::CanReview;
use crate::access_requests::dto::{
    AccessRequest, AccessRequestAccepted, AccessRequestList, AccessRequestPath, ApprovalResponse,
    ApproveRequest, CreateAccessRequest, DenyRequest, ListAccessRequestsQuery,
};
use crate::access_requests::service::{self, Submission};
use crate::domain::{Email, Errors, Username, parse_name, parse_text};
use crate::http::client::ClientInfo;
use crate::http::error::{ApiError, FieldError, HTTPValidationError, HttpError};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::pagination::{Listed, Page};
use crate::state::Target;
use crate::users::roles::RoleInput;

/// Ask for an AutoBot account (no authentication; rate-limited per IP).
#[utoipa::path(post, path = "", request_body = CreateAccessRequest,
    responses((status = 202, body = AccessRequestAccepted), (status = 409, body = HttpError),
              (status = 422, body = HTTPValidationError), (status = 429, body = HttpError)))]
pub async fn submit_access_request(
    State(target): State<Target>,
    client: ClientInfo,
    ApiJson(body): ApiJson<CreateAccessRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Errors::default();
    let username = errors.body("username", Username::parse(&body.username));
    let email = errors.body("email", Email::parse(&body.email));
    let full_name = match body.full_name.as_deref() {
        None => Some(None),
        Some(raw) => errors.body("full_name", parse_name(raw, 255, "Full name")),
    };
    let reason = match body.reason.as_deref() {
        None => Some(None),
        Some(raw) => errors.body("reason", parse_text(raw, 2000, "Reason")),
    };
    let submission = errors.finish(|| {
        Some(Submission {
            username: username?,
            email: email?,
            full_name: full_name?,
            reason: reason?,
        })
    })?;
    let accepted = service::submit(&target.app, &target.realm, client, submission).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(accepted)))
}

/// List access requests, newest first (SLM manager+).
#[utoipa::path(get, path = "", params(Page, ListAccessRequestsQuery),
    responses((status = 200, body = AccessRequestList, headers(("x-total-count" = i64, description = "All matches")))),
    security(("bearer" = [])))]
pub async fn list_access_requests(
    State(target): State<Target>,
    op: CanReview,
    page: Page,
    ApiQuery(query): ApiQuery<ListAccessRequestsQuery>,
) -> Result<Listed<AccessRequestList>, ApiError> {
    let (requests, total) = service::list(&target.realm, &op, query.status, page).await?;
    let body = AccessRequestList {
        requests,
        total,
        limit: page.limit,
        offset: page.skip,
    };
    Ok(Listed(body, total))
}

fn comment(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw {
        None => Ok(None),
        Some(raw) => parse_text(raw, 2000, "Comment")
            .map_err(|m| ApiError::field(FieldError::body("comment", m))),
    }
}

/// Approve: create the AutoBot user with a temporary password it must change.
#[utoipa::path(post, path = "/{id}/approve", params(AccessRequestPath), request_body = ApproveRequest,
    responses((status = 200, body = ApprovalResponse), (status = 404, body = HttpError), (status = 409, body = HttpError),
              (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn approve_access_request(
    State(target): State<Target>,
    op: CanReview,
    ApiPath(path): ApiPath<AccessRequestPath>,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> Result<ApiJson<ApprovalResponse>, ApiError> {
    let comment = comment(body.comment.as_deref())?;
    let roles = RoleInput {
        names: body.roles,
        ids: body.role_ids,
    };
    service::approve(&target.app, &target.realm, &op, path.id, roles, comment)
        .await
        .map(ApiJson)
}

/// Deny an access request; the comment (why) is required.
#[utoipa::path(post, path = "/{id}/deny", params(AccessRequestPath), request_body = DenyRequest,
    responses((status = 200, body = AccessRequest), (status = 404, body = HttpError), (status = 409, body = HttpError),
              (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn deny_access_request(
    State(target): State<Target>,
    op: CanReview,
    ApiPath(path): ApiPath<AccessRequestPath>,
    ApiJson(body): ApiJson<DenyRequest>,
) -> Result<ApiJson<AccessRequest>, ApiError> {
    // A denial is explained to the person who asked (docs/api.md §4).
    let Some(comment) = comment(Some(&body.comment))? else {
        return Err(ApiError::field(FieldError::new(
            &["body", "comment"],
            "String should have at least 1 character",
            "string_too_short",
        )));
    };
    service::deny(&target.realm, &op, path.id, &comment)
        .await
        .map(ApiJson)
}
