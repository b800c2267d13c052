//! User and role endpoints, mounted once per realm (`/api/slm-users`, `/api/autobot-users`,
//! `/api/{slm,autobot}-roles`): extract → parse → authorize → service → respond.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::access::authz::{CanRead, CanWrite, Operator};
use crate::domain::{Email, Errors, Password, Username, parse_avatar_url, parse_name, parse_text};
use crate::http::error::{ApiError, FieldError, HTTPValidationError, HttpError};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::pagination::{Listed, Page, search_term};
use crate::state::Target;
use crate::users::access;
use crate::users::db::ProfileChange;
use crate::users::dto::{
    CreateUserRequest, ListUsersQuery, RoleList, RoleResponse, RolesRequest, SessionList,
    UpdateUserRequest, UserList, UserPath, UserResponse, UserRolePath,
};
use crate::users::roles::RoleInput;
use crate::users::search::UserFilter;
use crate::users::service::{self, Credential, NewUser};
use crate::users::update::{self, UserPatch};

/// The one `admin` flag of a request, under either of its names.
fn admin_flag(platform: Option<bool>, legacy: Option<bool>, errors: &mut Errors) -> Option<bool> {
    match (platform, legacy) {
        (Some(a), Some(b)) if a != b => {
            errors.push(FieldError::body(
                "is_admin",
                "is_admin and is_platform_admin disagree",
            ));
            None
        }
        (a, b) => a.or(b),
    }
}

/// Create a user.
#[utoipa::path(post, path = "", request_body = CreateUserRequest,
    responses((status = 201, body = UserResponse), (status = 409, body = HttpError),
              (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(target): State<Target>,
    op: CanWrite,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Errors::default();
    let username = errors.body("username", Username::parse(&body.username));
    let email = errors.body("email", Email::parse(&body.email));
    let display_name = match body.display_name.as_deref() {
        None => Some(None),
        Some(raw) => errors.body("display_name", parse_name(raw, 255, "Display name")),
    };
    let password = errors.body(
        "password",
        Password::parse(
            &body.password,
            &body.username,
            email.as_ref().map(Email::as_str),
            target.realm.scheme(),
        ),
    );
    let admin = admin_flag(body.is_platform_admin, body.is_admin, &mut errors);
    let new = errors.finish(|| {
        Some(NewUser {
            username: username?,
            email: email?,
            display_name: display_name?,
            credential: Credential::Password(password?),
            roles: RoleInput {
                names: body.roles,
                ids: body.role_ids,
            },
            admin: admin.unwrap_or(false),
            is_active: body.is_active.unwrap_or(true),
            must_change_password: false,
            org_id: body.org_id,
        })
    })?;
    let user = service::create_by(&target.app, &target.realm, &op, new).await?;
    Ok((StatusCode::CREATED, ApiJson(UserResponse::from(user))))
}

/// List users, newest first.
#[utoipa::path(get, path = "", params(Page, ListUsersQuery),
    responses((status = 200, body = UserList, headers(("x-total-count" = i64, description = "All matches")))),
    security(("bearer" = [])))]
pub async fn list_users(
    State(target): State<Target>,
    _op: CanRead,
    page: Page,
    ApiQuery(query): ApiQuery<ListUsersQuery>,
) -> Result<Listed<UserList>, ApiError> {
    let search = search_term(query.search)?;
    let filter = UserFilter {
        search,
        is_active: query.is_active,
        // A role nobody holds (or that does not exist) simply matches no one.
        role: query.role.filter(|r| !r.trim().is_empty()),
        skip: page.skip,
        limit: page.limit,
    };
    let (users, total) = service::list(&target.realm, &filter).await?;
    let body = UserList {
        users: users.into_iter().map(UserResponse::from).collect(),
        total,
        limit: page.limit,
        offset: page.skip,
    };
    Ok(Listed(body, total))
}

/// Get a user.
#[utoipa::path(get, path = "/{user_id}", params(UserPath),
    responses((status = 200, body = UserResponse), (status = 404, body = HttpError)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(target): State<Target>,
    _op: CanRead,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<ApiJson<UserResponse>, ApiError> {
    let user = service::get(&target.realm, path.user_id).await?;
    Ok(ApiJson(user.into()))
}

fn parse_patch(body: UpdateUserRequest) -> Result<UserPatch, ApiError> {
    let mut errors = Errors::default();
    let email = match body.email.as_deref() {
        None => Some(None),
        Some(raw) => errors
            .body("email", Email::parse(raw))
            .map(|e| Some(e.as_str().to_owned())),
    };
    let username = match body.username.as_deref() {
        None => Some(None),
        Some(raw) => errors
            .body("username", Username::parse(raw))
            .map(|u| Some(u.as_str().to_owned())),
    };
    let nullable = |errors: &mut Errors,
                    field: &str,
                    value: Option<Option<String>>,
                    parse: &dyn Fn(&str) -> Result<Option<String>, String>| {
        match value {
            None => Some(None),
            Some(None) => Some(Some(None)),
            Some(Some(raw)) => errors.body(field, parse(&raw)).map(Some),
        }
    };
    let display_name = nullable(&mut errors, "display_name", body.display_name, &|raw| {
        parse_name(raw, 255, "Display name")
    });
    let bio = nullable(&mut errors, "bio", body.bio, &|raw| {
        parse_text(raw, 2000, "Bio")
    });
    let avatar_url = nullable(
        &mut errors,
        "avatar_url",
        body.avatar_url,
        &parse_avatar_url,
    );
    let admin = admin_flag(body.is_platform_admin, body.is_admin, &mut errors);
    errors.finish(|| {
        Some(UserPatch {
            profile: ProfileChange {
                email: email?,
                username: username?,
                display_name: display_name?,
                bio: bio?,
                avatar_url: avatar_url?,
                preferences: body.preferences.map(serde_json::Value::Object),
                is_active: body.is_active,
            },
            password: body.password,
            admin,
        })
    })
}

/// Update a user.
#[utoipa::path(patch, path = "/{user_id}", params(UserPath), request_body = UpdateUserRequest,
    responses((status = 200, body = UserResponse), (status = 404, body = HttpError),
              (status = 409, body = HttpError), (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> Result<ApiJson<UserResponse>, ApiError> {
    let patch = parse_patch(body)?;
    let user = update::update(&target.app, &target.realm, &op, path.user_id, patch).await?;
    Ok(ApiJson(user.into()))
}

/// Delete a user.
#[utoipa::path(delete, path = "/{user_id}", params(UserPath),
    responses((status = 204), (status = 404, body = HttpError), (status = 409, body = HttpError)),
    security(("bearer" = [])))]
pub async fn delete_user(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<StatusCode, ApiError> {
    service::delete(&target.realm, &op, path.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add roles to a user (by name or id).
#[utoipa::path(post, path = "/{user_id}/roles", params(UserPath), request_body = RolesRequest,
    responses((status = 200, body = UserResponse), (status = 404, body = HttpError),
              (status = 409, body = HttpError), (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn add_user_roles(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    ApiJson(body): ApiJson<RolesRequest>,
) -> Result<ApiJson<UserResponse>, ApiError> {
    let input = RoleInput {
        names: body.roles,
        ids: body.role_ids,
    };
    let user = access::add_roles(&target.realm, &op, path.user_id, input).await?;
    Ok(ApiJson(user.into()))
}

/// Remove a role (a name or an id) from a user.
#[utoipa::path(delete, path = "/{user_id}/roles/{role}", params(UserRolePath),
    responses((status = 200, body = UserResponse), (status = 404, body = HttpError), (status = 409, body = HttpError)),
    security(("bearer" = [])))]
pub async fn remove_user_role(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserRolePath>,
) -> Result<ApiJson<UserResponse>, ApiError> {
    let user = access::remove_role(&target.realm, &op, path.user_id, &path.role).await?;
    Ok(ApiJson(user.into()))
}

/// Clear a brute-force lockout.
#[utoipa::path(post, path = "/{user_id}/unlock", params(UserPath),
    responses((status = 204), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn unlock_user(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<StatusCode, ApiError> {
    access::unlock(&target.realm, &op, path.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End every session and API key of a user.
#[utoipa::path(post, path = "/{user_id}/revoke-sessions", params(UserPath),
    responses((status = 204), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn revoke_user_sessions(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<StatusCode, ApiError> {
    access::revoke_sessions(&target.realm, &op, path.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The live sessions of a user, newest first.
#[utoipa::path(get, path = "/{user_id}/sessions", params(UserPath, Page),
    responses((status = 200, body = SessionList, headers(("x-total-count" = i64, description = "All sessions"))),
              (status = 404, body = HttpError)),
    security(("bearer" = [])))]
pub async fn list_user_sessions(
    State(target): State<Target>,
    op: CanRead,
    ApiPath(path): ApiPath<UserPath>,
    page: Page,
) -> Result<Listed<SessionList>, ApiError> {
    let (sessions, total) = access::sessions(&target.realm, &op, path.user_id, page).await?;
    let body = SessionList {
        sessions,
        total,
        limit: page.limit,
        offset: page.skip,
    };
    Ok(Listed(body, total))
}

/// Turn off the MFA of a user who lost their authenticator (audited as `mfa_disabled`).
#[utoipa::path(delete, path = "/{user_id}/mfa", params(UserPath),
    responses((status = 204), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn reset_user_mfa(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<StatusCode, ApiError> {
    access::reset_mfa(&target.realm, &op, path.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The realm's roles, to map `role_ids` (any SLM principal).
#[utoipa::path(get, path = "", responses((status = 200, body = RoleList)), security(("bearer" = [])))]
pub async fn list_roles(
    State(target): State<Target>,
    _op: Operator,
) -> Result<ApiJson<RoleList>, ApiError> {
    let roles: Vec<RoleResponse> = target
        .realm
        .serving_catalog()?
        .roles()
        .into_iter()
        .cloned()
        .map(RoleResponse::from)
        .collect();
    let total = i64::try_from(roles.len()).unwrap_or(i64::MAX);
    Ok(ApiJson(RoleList { roles, total }))
}
