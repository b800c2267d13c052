//! Team endpoints (`/api/autobot-teams`, also at `/api/autobot-users/teams`) and a user's
//! teams (`/api/autobot-users/{user_id}/teams`); all need an SLM principal.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::access::authz::{CanRead, CanWrite};
use crate::domain::{Errors, parse_name, parse_text};
use crate::http::error::{ApiError, FieldError, HTTPValidationError, HttpError};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::pagination::{Listed, Page, search_term};
use crate::state::Target;
use crate::teams::dto::{
    CreateTeamRequest, ListTeamsQuery, MemberAdd, MemberRole, TeamDetail, TeamList, TeamMemberPath,
    TeamPath, TeamResponse, UpdateMembersRequest, UpdateTeamRequest, UserTeamsPath,
};
use crate::teams::service::{self, MembershipChange};

/// A team name: 1–255 characters once trimmed.
fn team_name(errors: &mut Errors, raw: &str) -> Option<String> {
    match errors.body("name", parse_name(raw, 255, "Team name")) {
        Some(Some(name)) => Some(name),
        Some(None) => {
            errors.push(FieldError::body("name", "Team name must not be empty"));
            None
        }
        None => None,
    }
}

/// Create a team.
#[utoipa::path(post, path = "", request_body = CreateTeamRequest,
    responses((status = 201, body = TeamResponse), (status = 409, body = HttpError), (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn create_team(
    State(target): State<Target>,
    op: CanWrite,
    ApiJson(body): ApiJson<CreateTeamRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Errors::default();
    let name = team_name(&mut errors, &body.name);
    let description = match body.description.as_deref() {
        None => Some(None),
        Some(raw) => errors.body("description", parse_text(raw, 2000, "Description")),
    };
    let (name, description) = errors.finish(|| Some((name?, description?)))?;
    let team = service::create(
        &target.realm,
        &op,
        &name,
        description.as_deref(),
        body.organization_id,
    )
    .await?;
    Ok((StatusCode::CREATED, ApiJson(team)))
}

/// List teams, by name.
#[utoipa::path(get, path = "", params(Page, ListTeamsQuery),
    responses((status = 200, body = TeamList, headers(("x-total-count" = i64, description = "All matches")))),
    security(("bearer" = [])))]
pub async fn list_teams(
    State(target): State<Target>,
    op: CanRead,
    page: Page,
    ApiQuery(query): ApiQuery<ListTeamsQuery>,
) -> Result<Listed<TeamList>, ApiError> {
    let search = search_term(query.search)?;
    let (teams, total) =
        service::list(&target.realm, &op, search.as_deref(), page.skip, page.limit).await?;
    let body = TeamList {
        teams: teams.into_iter().map(TeamResponse::from).collect(),
        total,
        limit: page.limit,
        offset: page.skip,
    };
    Ok(Listed(body, total))
}

/// A team with its members.
#[utoipa::path(get, path = "/{team_id}", params(TeamPath),
    responses((status = 200, body = TeamDetail), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn get_team(
    State(target): State<Target>,
    op: CanRead,
    ApiPath(path): ApiPath<TeamPath>,
) -> Result<ApiJson<TeamDetail>, ApiError> {
    service::get(&target.realm, &op, path.team_id)
        .await
        .map(ApiJson)
}

/// Rename a team or change its description.
#[utoipa::path(patch, path = "/{team_id}", params(TeamPath), request_body = UpdateTeamRequest,
    responses((status = 200, body = TeamResponse), (status = 404, body = HttpError), (status = 409, body = HttpError)),
    security(("bearer" = [])))]
pub async fn update_team(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<TeamPath>,
    ApiJson(body): ApiJson<UpdateTeamRequest>,
) -> Result<ApiJson<TeamResponse>, ApiError> {
    let mut errors = Errors::default();
    let name = match body.name.as_deref() {
        None => Some(None),
        Some(raw) => team_name(&mut errors, raw).map(Some),
    };
    let description = match body.description {
        None => Some(None),
        Some(None) => Some(Some(None)),
        Some(Some(raw)) => errors
            .body("description", parse_text(&raw, 2000, "Description"))
            .map(Some),
    };
    let (name, description) = errors.finish(|| Some((name?, description?)))?;
    service::update(
        &target.realm,
        &op,
        path.team_id,
        name.as_deref(),
        description.as_ref().map(|d| d.as_deref()),
    )
    .await
    .map(ApiJson)
}

/// Delete a team; each former member's cache is invalidated.
#[utoipa::path(delete, path = "/{team_id}", params(TeamPath),
    responses((status = 204), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn delete_team(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<TeamPath>,
) -> Result<StatusCode, ApiError> {
    service::delete(&target.realm, &op, path.team_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn adds(add: Vec<MemberAdd>) -> Vec<(uuid::Uuid, MemberRole)> {
    add.into_iter()
        .map(|a| (a.user_id, a.role.unwrap_or(MemberRole::Member)))
        .collect()
}

/// Add a member (the dashboard's call); an existing member gets the new role.
#[utoipa::path(post, path = "/{team_id}/members", params(TeamPath), request_body = MemberAdd,
    responses((status = 201, body = TeamDetail), (status = 404, body = HttpError), (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn add_team_member(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<TeamPath>,
    ApiJson(body): ApiJson<MemberAdd>,
) -> Result<impl IntoResponse, ApiError> {
    let change = MembershipChange {
        add: adds(vec![body]),
        remove: Vec::new(),
    };
    // A single member's unknown id points at the body's own user_id.
    let team = service::change_members(&target.realm, &op, path.team_id, change)
        .await
        .map_err(|err| match err {
            ApiError::Validation(_) => {
                ApiError::field(FieldError::body("user_id", "User not found"))
            }
            other => other,
        })?;
    Ok((StatusCode::CREATED, ApiJson(team)))
}

/// Add and remove members in one transaction: all or nothing.
#[utoipa::path(patch, path = "/{team_id}/members", params(TeamPath), request_body = UpdateMembersRequest,
    responses((status = 200, body = TeamDetail), (status = 404, body = HttpError), (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn update_team_members(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<TeamPath>,
    ApiJson(body): ApiJson<UpdateMembersRequest>,
) -> Result<ApiJson<TeamDetail>, ApiError> {
    let change = MembershipChange {
        add: adds(body.add),
        remove: body.remove,
    };
    service::change_members(&target.realm, &op, path.team_id, change)
        .await
        .map(ApiJson)
}

/// Remove a member (404 when the user is not one).
#[utoipa::path(delete, path = "/{team_id}/members/{user_id}", params(TeamMemberPath),
    responses((status = 204), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn remove_team_member(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<TeamMemberPath>,
) -> Result<StatusCode, ApiError> {
    service::remove_member(&target.realm, &op, path.team_id, path.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The teams of a user.
#[utoipa::path(get, path = "/{user_id}/teams", params(UserTeamsPath),
    responses((status = 200, body = TeamList), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn list_user_teams(
    State(target): State<Target>,
    op: CanRead,
    ApiPath(path): ApiPath<UserTeamsPath>,
) -> Result<Listed<TeamList>, ApiError> {
    let teams: Vec<TeamResponse> = service::of_user(&target.realm, &op, path.user_id)
        .await?
        .into_iter()
        .map(TeamResponse::from)
        .collect();
    let total = i64::try_from(teams.len()).unwrap_or(i64::MAX);
    let body = TeamList {
        limit: total,
        offset: 0,
        total,
        teams,
    };
    Ok(Listed(body, total))
}
