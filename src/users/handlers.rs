//! User endpoints, mounted once per realm (`/api/slm-users`, `/api/autobot-users`):
//! extract → parse → authorize → service → respond.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::auth::authz::{self, Perm};
use crate::auth::principal::Operator;
use crate::domain::{Email, Errors, Password, Username, parse_full_name};
use crate::error::{ApiError, FieldError};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{Listed, Page, search_term};
use crate::realm::ADMIN_ROLE;
use crate::state::Scoped;
use crate::users::db::UserFilter;
use crate::users::dto::{
    CreateUserRequest, ListUsersQuery, RolesRequest, UpdateUserRequest, UserPath, UserResponse,
    UserRolePath,
};
use crate::users::service::{self, NewUser, UserPatch, parse_roles};

/// Create a user.
#[utoipa::path(post, path = "", request_body = CreateUserRequest,
    responses((status = 201, body = UserResponse), (status = 409, body = crate::openapi::HttpError),
              (status = 422, body = crate::openapi::HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<impl IntoResponse, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    let policy = ctx.realm.policy();
    let mut errors = Errors::default();
    let username = errors.body("username", Username::parse(&body.username));
    let email = match body.email.as_deref().map(str::trim) {
        None | Some("") => Some(None),
        Some(raw) => errors.body("email", Email::parse(raw)).map(Some),
    };
    let full_name = match body.full_name.as_deref() {
        None => Some(None),
        Some(raw) => errors.body("full_name", parse_full_name(raw)),
    };
    let password = errors.body(
        "password",
        Password::parse(
            &body.password,
            &body.username,
            email.as_ref().and_then(|e| e.as_ref().map(Email::as_str)),
        ),
    );
    let mut roles = match body.roles.as_deref() {
        None => Some(vec![policy.default_role.to_owned()]),
        Some(list) => match parse_roles(&ctx.realm, list, "roles") {
            Ok(roles) => Some(roles),
            Err(ApiError::Validation(list_errors)) => {
                list_errors.into_iter().for_each(|e| errors.push(e));
                None
            }
            Err(other) => return Err(other),
        },
    };
    if let Some(roles) = roles.as_mut() {
        match body.is_admin {
            Some(true) if !roles.iter().any(|r| r == ADMIN_ROLE) => roles.push(ADMIN_ROLE.into()),
            Some(false) if roles.iter().any(|r| r == ADMIN_ROLE) => errors.push(FieldError::body(
                "is_admin",
                "is_admin is false but roles contains admin",
            )),
            _ => {}
        }
    }
    let new = errors.finish(|| {
        Some(NewUser {
            username: username?,
            email: email?,
            full_name: full_name?,
            password: password?,
            roles: roles?,
            is_active: body.is_active.unwrap_or(true),
            must_change_password: false,
        })
    })?;
    if new.roles.iter().any(|r| r == ADMIN_ROLE) {
        authz::require(&op, Perm::ManageAdmins)?;
    }
    let user = service::create(&ctx.app, &ctx.realm, &op.actor(), new).await?;
    Ok((StatusCode::CREATED, axum::Json(UserResponse::from(user))))
}

/// List users.
#[utoipa::path(get, path = "", params(ListUsersQuery),
    responses((status = 200, body = Vec<UserResponse>, headers(("x-total-count" = i64, description = "Total matches")))),
    security(("bearer" = [])))]
pub async fn list_users(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiQuery(query): ApiQuery<ListUsersQuery>,
) -> Result<Listed<UserResponse>, ApiError> {
    authz::require(&op, Perm::ReadUsers(ctx.realm.id()))?;
    let page = Page::parse(query.skip, query.limit, 1000)?;
    if let Some(role) = &query.role
        && ctx.realm.policy().rank_of(role).is_none()
    {
        return Err(ApiError::field(FieldError::query(
            "role",
            format!(
                "Unknown role; expected one of: {}",
                ctx.realm.policy().roles.join(", ")
            ),
        )));
    }
    let filter = UserFilter {
        search: search_term(query.search),
        is_active: query.is_active,
        role: query.role,
        skip: page.skip,
        limit: page.limit,
    };
    let (users, total) = service::list(&ctx.realm, &filter).await?;
    Ok(Listed(
        users.into_iter().map(UserResponse::from).collect(),
        total,
    ))
}

/// Get a user.
#[utoipa::path(get, path = "/{user_id}", params(UserPath),
    responses((status = 200, body = UserResponse), (status = 404, body = crate::openapi::HttpError)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    authz::require(&op, Perm::ReadUsers(ctx.realm.id()))?;
    let user = service::get(&ctx.realm, path.user_id).await?;
    Ok(axum::Json(user.into()))
}

/// Update a user.
#[utoipa::path(patch, path = "/{user_id}", params(UserPath), request_body = UpdateUserRequest,
    responses((status = 200, body = UserResponse), (status = 404, body = crate::openapi::HttpError),
              (status = 409, body = crate::openapi::HttpError), (status = 422, body = crate::openapi::HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserPath>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    let mut errors = Errors::default();
    let email = match &body.email {
        None => Some(None),
        Some(None) => Some(Some(None)),
        Some(Some(raw)) if raw.trim().is_empty() => Some(Some(None)),
        Some(Some(raw)) => errors
            .body("email", Email::parse(raw))
            .map(|e| Some(Some(e))),
    };
    let full_name = match &body.full_name {
        None => Some(None),
        Some(None) => Some(Some(None)),
        Some(Some(raw)) => errors.body("full_name", parse_full_name(raw)).map(Some),
    };
    let patch = errors.finish(|| {
        Some(UserPatch {
            email: email?,
            full_name: full_name?,
            password: body.password.clone(),
            is_active: body.is_active,
            is_admin: body.is_admin,
        })
    })?;
    let user = service::update(&ctx.app, &ctx.realm, &op, path.user_id, patch).await?;
    Ok(axum::Json(user.into()))
}

/// Delete a user.
#[utoipa::path(delete, path = "/{user_id}", params(UserPath),
    responses((status = 204), (status = 404, body = crate::openapi::HttpError), (status = 409, body = crate::openapi::HttpError)),
    security(("bearer" = [])))]
pub async fn delete_user(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<StatusCode, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    service::delete(&ctx.realm, &op, path.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add roles to a user.
#[utoipa::path(post, path = "/{user_id}/roles", params(UserPath), request_body = RolesRequest,
    responses((status = 200, body = UserResponse), (status = 404, body = crate::openapi::HttpError),
              (status = 422, body = crate::openapi::HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn add_user_roles(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserPath>,
    ApiJson(body): ApiJson<RolesRequest>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    let roles = parse_roles(&ctx.realm, &body.roles, "roles")?;
    if roles.is_empty() {
        return Err(ApiError::field(FieldError::body(
            "roles",
            "At least one role is required",
        )));
    }
    let user = service::add_roles(&ctx.realm, &op, path.user_id, roles).await?;
    Ok(axum::Json(user.into()))
}

/// Remove a role from a user.
#[utoipa::path(delete, path = "/{user_id}/roles/{role}", params(UserRolePath),
    responses((status = 200, body = UserResponse), (status = 404, body = crate::openapi::HttpError), (status = 409, body = crate::openapi::HttpError)),
    security(("bearer" = [])))]
pub async fn remove_user_role(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserRolePath>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    authz::require(&op, Perm::WriteUsers(ctx.realm.id()))?;
    let user = service::remove_role(&ctx.realm, &op, path.user_id, &path.role).await?;
    Ok(axum::Json(user.into()))
}

/// Clear a brute-force lockout.
#[utoipa::path(post, path = "/{user_id}/unlock", params(UserPath),
    responses((status = 204), (status = 404, body = crate::openapi::HttpError)), security(("bearer" = [])))]
pub async fn unlock_user(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<StatusCode, ApiError> {
    service::unlock(&ctx.realm, &op, path.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End every session and API key of a user.
#[utoipa::path(post, path = "/{user_id}/revoke-sessions", params(UserPath),
    responses((status = 204), (status = 404, body = crate::openapi::HttpError)), security(("bearer" = [])))]
pub async fn revoke_user_sessions(
    State(ctx): State<Scoped>,
    Operator(op): Operator,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<StatusCode, ApiError> {
    service::revoke_sessions(&ctx.realm, &op, path.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
