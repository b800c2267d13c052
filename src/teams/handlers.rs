//! Team endpoints and the per-user extras; authorization needs an SLM principal.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit;
use crate::auth::api_keys;
use crate::auth::authz::{self, Perm};
use crate::auth::dto::{
    ApiKeyCreatedResponse, ApiKeyResponse, CreateApiKeyRequest, UserApiKeyPath,
};
use crate::auth::principal::Operator;
use crate::error::{ApiError, FieldError, constraint_conflict};
use crate::extract::{ApiJson, ApiPath, ApiQuery, double_option};
use crate::outbox;
use crate::pagination::{Listed, Page, search_term};
use crate::state::Scoped;
use crate::teams::db::{self, Member, TEAM_CONFLICTS, Team};
use crate::users::dto::{UserPath, UserResponse};

const TEAM_NOT_FOUND: ApiError = ApiError::NotFound("Team not found");

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTeamRequest {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateTeamRequest {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberAdd {
    pub user_id: Uuid,
    /// `owner` or `member` (default).
    pub role: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateMembersRequest {
    #[serde(default)]
    pub add: Vec<MemberAdd>,
    #[serde(default)]
    pub remove: Vec<Uuid>,
}

/// A team with its members.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamDetail {
    #[serde(flatten)]
    pub team: Team,
    pub members: Vec<Member>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTeamsQuery {
    pub skip: Option<i64>,
    pub limit: Option<i64>,
    pub search: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TeamPath {
    pub team_id: Uuid,
}

fn parse_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::field(FieldError::body(
            "name",
            "Team name must be 1 to 100 characters",
        )));
    }
    Ok(name.to_owned())
}

fn parse_description(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw.map(str::trim) {
        Some(d) if d.chars().count() > 1000 => Err(ApiError::field(FieldError::body(
            "description",
            "Description must be at most 1000 characters",
        ))),
        Some("") | None => Ok(None),
        Some(d) => Ok(Some(d.to_owned())),
    }
}

async fn detail(
    ctx: &Scoped,
    conn: &mut sqlx::PgConnection,
    id: Uuid,
) -> Result<TeamDetail, ApiError> {
    let realm = &ctx.realm;
    let team = db::fetch(&mut *conn, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(TEAM_NOT_FOUND)?;
    let members = db::members(&mut *conn, id)
        .await
        .map_err(|e| realm.db_error(e))?;
    Ok(TeamDetail { team, members })
}

/// Create a team.
#[utoipa::path(post, path = "", request_body = CreateTeamRequest,
    responses((status = 201, body = Team), (status = 409, body = crate::openapi::HttpError)), security(("bearer" = [])))]
pub async fn create_team(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiJson(body): ApiJson<CreateTeamRequest>,
) -> Result<impl IntoResponse, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    let name = parse_name(&body.name)?;
    let description = parse_description(body.description.as_deref())?;
    let realm = &ctx.realm;
    let id = Uuid::now_v7();
    let mut tx = realm.begin().await?;
    sqlx::query("INSERT INTO teams (id, name, description) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(&name)
        .bind(&description)
        .execute(&mut *tx)
        .await
        .map_err(|e| constraint_conflict(e, TEAM_CONFLICTS))?;
    audit::record(
        &mut tx,
        realm,
        &op.actor(),
        "team_created",
        Some(id),
        json!({"name": name}),
    )
    .await?;
    let team = db::fetch(&mut *tx, id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(TEAM_NOT_FOUND)?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok((StatusCode::CREATED, axum::Json(team)))
}

/// List teams.
#[utoipa::path(get, path = "", params(ListTeamsQuery), responses((status = 200, body = Vec<Team>)), security(("bearer" = [])))]
pub async fn list_teams(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiQuery(query): ApiQuery<ListTeamsQuery>,
) -> Result<Listed<Team>, ApiError> {
    authz::require(&op, Perm::ReadUsers(ctx.realm.id()))?;
    let page = Page::parse(query.skip, query.limit, 1000)?;
    let search = search_term(query.search);
    let mut conn = ctx.realm.acquire().await?;
    let (teams, total) = db::list(&mut conn, search.as_deref(), page.skip, page.limit)
        .await
        .map_err(|e| ctx.realm.db_error(e))?;
    Ok(Listed(teams, total))
}

/// A team with its members.
#[utoipa::path(get, path = "/{team_id}", params(TeamPath),
    responses((status = 200, body = TeamDetail), (status = 404, body = crate::openapi::HttpError)), security(("bearer" = [])))]
pub async fn get_team(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<TeamPath>,
) -> Result<axum::Json<TeamDetail>, ApiError> {
    authz::require(&op, Perm::ReadUsers(ctx.realm.id()))?;
    let mut conn = ctx.realm.acquire().await?;
    detail(&ctx, &mut conn, path.team_id).await.map(axum::Json)
}

/// Rename a team or change its description.
#[utoipa::path(patch, path = "/{team_id}", params(TeamPath), request_body = UpdateTeamRequest,
    responses((status = 200, body = Team), (status = 404, body = crate::openapi::HttpError), (status = 409, body = crate::openapi::HttpError)),
    security(("bearer" = [])))]
pub async fn update_team(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<TeamPath>,
    ApiJson(body): ApiJson<UpdateTeamRequest>,
) -> Result<axum::Json<Team>, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    let name = body.name.as_deref().map(parse_name).transpose()?;
    let description = body
        .description
        .as_ref()
        .map(|d| parse_description(d.as_deref()))
        .transpose()?;
    let realm = &ctx.realm;
    let mut tx = realm.begin().await?;
    if !db::lock(&mut tx, path.team_id)
        .await
        .map_err(|e| realm.db_error(e))?
    {
        return Err(TEAM_NOT_FOUND);
    }
    sqlx::query(
        r"UPDATE teams SET name = COALESCE($2, name),
               description = CASE WHEN $3 THEN $4 ELSE description END, updated_at = now()
          WHERE id = $1",
    )
    .bind(path.team_id)
    .bind(&name)
    .bind(description.is_some())
    .bind(description.clone().flatten())
    .execute(&mut *tx)
    .await
    .map_err(|e| constraint_conflict(e, TEAM_CONFLICTS))?;
    audit::record(
        &mut tx,
        realm,
        &op.actor(),
        "team_updated",
        Some(path.team_id),
        json!({"name": name}),
    )
    .await?;
    let team = db::fetch(&mut *tx, path.team_id)
        .await
        .map_err(|e| realm.db_error(e))?
        .ok_or(TEAM_NOT_FOUND)?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(axum::Json(team))
}

/// Delete a team; each former member's cache is invalidated.
#[utoipa::path(delete, path = "/{team_id}", params(TeamPath),
    responses((status = 204), (status = 404, body = crate::openapi::HttpError)), security(("bearer" = [])))]
pub async fn delete_team(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<TeamPath>,
) -> Result<StatusCode, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    let realm = &ctx.realm;
    let mut tx = realm.begin().await?;
    if !db::lock(&mut tx, path.team_id)
        .await
        .map_err(|e| realm.db_error(e))?
    {
        return Err(TEAM_NOT_FOUND);
    }
    let members = db::member_ids(&mut *tx, path.team_id)
        .await
        .map_err(|e| realm.db_error(e))?;
    sqlx::query("DELETE FROM teams WHERE id = $1")
        .bind(path.team_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| realm.db_error(e))?;
    audit::record(
        &mut tx,
        realm,
        &op.actor(),
        "team_deleted",
        Some(path.team_id),
        json!({"members": members}),
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &members, "team.deleted").await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add and remove members in one transaction: all or nothing.
#[utoipa::path(patch, path = "/{team_id}/members", params(TeamPath), request_body = UpdateMembersRequest,
    responses((status = 200, body = TeamDetail), (status = 404, body = crate::openapi::HttpError),
              (status = 422, body = crate::openapi::HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn update_team_members(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<TeamPath>,
    ApiJson(body): ApiJson<UpdateMembersRequest>,
) -> Result<axum::Json<TeamDetail>, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    let mut errors = Vec::new();
    let mut adds: BTreeMap<Uuid, String> = BTreeMap::new();
    for (i, add) in body.add.iter().enumerate() {
        let role = add.role.clone().unwrap_or_else(|| "member".into());
        if role != "owner" && role != "member" {
            errors.push(FieldError {
                loc: vec![json!("body"), json!("add"), json!(i), json!("role")],
                msg: "Input should be 'owner' or 'member'".into(),
                kind: "enum".into(),
            });
        }
        if body.remove.contains(&add.user_id) {
            errors.push(FieldError {
                loc: vec![json!("body"), json!("add"), json!(i), json!("user_id")],
                msg: "A user cannot be both added and removed".into(),
                kind: "value_error".into(),
            });
        }
        adds.insert(add.user_id, role);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let realm = &ctx.realm;
    let mut tx = realm.begin().await?;
    if !db::lock(&mut tx, path.team_id)
        .await
        .map_err(|e| realm.db_error(e))?
    {
        return Err(TEAM_NOT_FOUND);
    }
    let wanted: Vec<Uuid> = adds.keys().copied().collect();
    let found: BTreeSet<Uuid> =
        sqlx::query_scalar::<_, Uuid>("SELECT id FROM users WHERE id = ANY($1)")
            .bind(&wanted)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| realm.db_error(e))?
            .into_iter()
            .collect();
    let unknown: Vec<FieldError> = body
        .add
        .iter()
        .enumerate()
        .filter(|(_, a)| !found.contains(&a.user_id))
        .map(|(i, _)| FieldError {
            loc: vec![json!("body"), json!("add"), json!(i), json!("user_id")],
            msg: "User not found".into(),
            kind: "value_error".into(),
        })
        .collect();
    if !unknown.is_empty() {
        // Nothing has been written: the transaction is dropped.
        return Err(ApiError::Validation(unknown));
    }
    let roles: Vec<String> = wanted.iter().map(|id| adds[id].clone()).collect();
    let added: Vec<Uuid> = sqlx::query_scalar(
        r"INSERT INTO team_members (team_id, user_id, role)
          SELECT $1, * FROM UNNEST($2::uuid[], $3::text[])
          ON CONFLICT (team_id, user_id) DO UPDATE SET role = EXCLUDED.role
          WHERE team_members.role IS DISTINCT FROM EXCLUDED.role
          RETURNING user_id",
    )
    .bind(path.team_id)
    .bind(&wanted)
    .bind(&roles)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| realm.db_error(e))?;
    let removed: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM team_members WHERE team_id = $1 AND user_id = ANY($2) RETURNING user_id",
    )
    .bind(path.team_id)
    .bind(&body.remove)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| realm.db_error(e))?;
    let affected: Vec<Uuid> = added
        .iter()
        .chain(removed.iter())
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !affected.is_empty() {
        sqlx::query("UPDATE teams SET updated_at = now() WHERE id = $1")
            .bind(path.team_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| realm.db_error(e))?;
        audit::record(
            &mut tx,
            realm,
            &op.actor(),
            "team_members_changed",
            Some(path.team_id),
            json!({"added": added, "removed": removed}),
        )
        .await?;
        outbox::enqueue(&mut tx, realm, &affected, "team.membership_changed").await?;
    }
    let team = detail(&ctx, &mut tx, path.team_id).await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(axum::Json(team))
}

/// The teams of a user.
#[utoipa::path(get, path = "/{user_id}/teams", params(UserPath),
    responses((status = 200, body = Vec<Team>), (status = 404, body = crate::openapi::HttpError)), security(("bearer" = [])))]
pub async fn list_user_teams(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<axum::Json<Vec<Team>>, ApiError> {
    authz::require(&op, Perm::ReadUsers(ctx.realm.id()))?;
    crate::users::service::get(&ctx.realm, path.user_id).await?;
    let mut conn = ctx.realm.acquire().await?;
    db::of_user(&mut *conn, path.user_id)
        .await
        .map(axum::Json)
        .map_err(|e| ctx.realm.db_error(e))
}

/// API keys of a user (without secrets).
#[utoipa::path(get, path = "/{user_id}/api-keys", params(UserPath),
    responses((status = 200, body = Vec<ApiKeyResponse>)), security(("bearer" = [])))]
pub async fn list_user_api_keys(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<axum::Json<Vec<ApiKeyResponse>>, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    crate::users::service::get(&ctx.realm, path.user_id).await?;
    api_keys::list(&ctx.realm, path.user_id)
        .await
        .map(axum::Json)
}

/// Issue an API key for a user; the key is shown once.
#[utoipa::path(post, path = "/{user_id}/api-keys", params(UserPath), request_body = CreateApiKeyRequest,
    responses((status = 201, body = ApiKeyCreatedResponse), (status = 404, body = crate::openapi::HttpError)), security(("bearer" = [])))]
pub async fn create_user_api_key(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserPath>,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let target = crate::users::service::get(&ctx.realm, path.user_id).await?;
    crate::users::service::require_for_target(&op, &ctx.realm, &target)?;
    let (name, days) = api_keys::parse_request(&body)?;
    let created = api_keys::issue(&ctx.realm, &op.actor(), path.user_id, name, days).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Revoke an API key of a user.
#[utoipa::path(delete, path = "/{user_id}/api-keys/{key_id}", params(UserApiKeyPath),
    responses((status = 204), (status = 404, body = crate::openapi::HttpError)), security(("bearer" = [])))]
pub async fn revoke_user_api_key(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserApiKeyPath>,
) -> Result<StatusCode, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    api_keys::revoke(&ctx.realm, &op.actor(), path.user_id, path.key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything stored about a user (GDPR art. 15). Secrets (hashes, TOTP secret) are never
/// exported.
#[utoipa::path(get, path = "/{user_id}/export", params(UserPath),
    responses((status = 200, description = "The user's data", body = Object), (status = 404, body = crate::openapi::HttpError)),
    security(("bearer" = [])))]
pub async fn export_user(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    let realm = &ctx.realm;
    let user = crate::users::service::get(realm, path.user_id).await?;
    let mut conn = realm.acquire().await?;
    let id = path.user_id;
    let teams = db::of_user(&mut *conn, id)
        .await
        .map_err(|e| realm.db_error(e))?;
    let sessions: Vec<serde_json::Value> = sqlx::query_scalar(
        r"SELECT json_build_object('id', id, 'created_at', created_at, 'expires_at', expires_at,
                 'revoked_at', revoked_at, 'ip', ip, 'user_agent', user_agent)
          FROM sessions WHERE user_id = $1 ORDER BY created_at",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| realm.db_error(e))?;
    let keys = api_keys::list(realm, id).await?;
    let audit: Vec<serde_json::Value> = sqlx::query_scalar(
        r"SELECT to_jsonb(a) FROM audit_log a WHERE a.target_id = $1 OR a.actor_id = $1
          ORDER BY occurred_at, id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| realm.db_error(e))?;
    let requests: Vec<serde_json::Value> = sqlx::query_scalar(
        r"SELECT to_jsonb(r) - 'ip' FROM access_requests r WHERE r.user_id = $1 ORDER BY created_at",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| realm.db_error(e))?;
    Ok(axum::Json(json!({
        "user": UserResponse::from(user),
        "teams": teams,
        "sessions": sessions,
        "api_keys": keys,
        "access_requests": requests,
        "audit_events": audit,
        "exported_at": chrono::Utc::now(),
    })))
}
