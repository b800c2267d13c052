//! Sign-in endpoints of both realms (`/api/auth` is the SLM realm's, the dashboard's paths):
//! login, refresh, logout, the caller, its password; and a user's sessions for admins.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::auth::authz::{Authorized, CanRead};

use crate::auth::client::ClientInfo;
use crate::auth::db;
use crate::auth::dto::{
    ChangePasswordRequest, LoginRequest, LoginResponse, MeResponse, RefreshRequest, SessionList,
    SessionsQuery, TokenResponse,
};
use crate::auth::principal::{self, SignedIn};
use crate::auth::service::{self, Credentials};
use crate::error::{ApiError, HTTPValidationError, HttpError};
use crate::extract::{ApiJson, ApiPath, ApiQuery, JsonOrForm, OptionalJson};
use crate::pagination::{Listed, Page};
use crate::realm::ADMIN_ROLE;
use crate::state::Scoped;
use crate::users::dto::{UserPath, UserResponse};

/// Log in (JSON, or the OAuth2 password-flow form used by Swagger UI). With MFA on and no
/// `totp_code`, the answer is the MFA challenge.
#[utoipa::path(post, path = "/login",
    request_body(content((LoginRequest = "application/json"), (LoginRequest = "application/x-www-form-urlencoded"))),
    responses((status = 200, body = LoginResponse), (status = 401, body = HttpError),
              (status = 422, body = HTTPValidationError), (status = 429, body = HttpError)))]
pub async fn login(
    State(ctx): State<Scoped>,
    client: ClientInfo,
    JsonOrForm(body): JsonOrForm<LoginRequest>,
) -> Result<ApiJson<LoginResponse>, ApiError> {
    let creds = Credentials {
        username: body.username,
        password: body.password,
        totp_code: body.totp_code,
    };
    service::login(&ctx.app, &ctx.realm, creds, client)
        .await
        .map(ApiJson)
}

/// Exchange a refresh token for a new pair; or, with no body, renew the bearer access token
/// for its live session (the dashboard's refresh).
#[utoipa::path(post, path = "/refresh", request_body(content = Option<RefreshRequest>),
    responses((status = 200, body = TokenResponse), (status = 401, body = HttpError)),
    security((), ("bearer" = [])))]
pub async fn refresh(
    State(ctx): State<Scoped>,
    client: ClientInfo,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> Result<ApiJson<TokenResponse>, ApiError> {
    let answer = match body {
        Some(body) => {
            service::refresh(
                &ctx.realm,
                &body.refresh_token,
                ctx.app.settings.refresh_reuse_grace,
                client,
            )
            .await?
        }
        None => {
            let me = principal::authenticate(&ctx.realm, &headers, client).await?;
            service::refresh_access(&ctx.realm, &me).await?
        }
    };
    Ok(ApiJson(answer))
}

/// End the current session: its access and refresh tokens stop working at once.
#[utoipa::path(post, path = "/logout", responses((status = 204), (status = 401, body = HttpError)),
    security(("bearer" = [])))]
pub async fn logout(
    State(ctx): State<Scoped>,
    SignedIn(me): SignedIn,
) -> Result<StatusCode, ApiError> {
    service::logout(&ctx.realm, &me).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller, with its highest role and what it may do.
#[utoipa::path(get, path = "/me", responses((status = 200, body = MeResponse), (status = 401, body = HttpError)),
    security(("bearer" = [])))]
pub async fn get_me(SignedIn(me): SignedIn) -> ApiJson<MeResponse> {
    ApiJson(MeResponse {
        is_admin: me.user.has_role(ADMIN_ROLE),
        role: me.user.highest_role().map(str::to_owned),
        permissions: me.permissions,
        user: UserResponse::from(me.user),
    })
}

/// Change the caller's password; other sessions end.
#[utoipa::path(post, path = "/me/password", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 400, body = HttpError), (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn change_password(
    State(ctx): State<Scoped>,
    SignedIn(me): SignedIn,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    service::change_password(
        &ctx.app,
        &ctx.realm,
        &me,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The live sessions of a user, newest first.
#[utoipa::path(get, path = "/{user_id}/sessions", params(UserPath, SessionsQuery),
    responses((status = 200, body = SessionList, headers(("x-total-count" = i64, description = "All sessions"))),
              (status = 404, body = HttpError)),
    security(("bearer" = [])))]
pub async fn list_user_sessions(
    State(ctx): State<Scoped>,
    _allowed: Authorized<CanRead>,
    ApiPath(path): ApiPath<UserPath>,
    ApiQuery(query): ApiQuery<SessionsQuery>,
) -> Result<Listed<SessionList>, ApiError> {
    let page = Page::parse(query.skip, query.offset, query.limit, 1000)?;
    let mut conn = ctx.realm.conn().await?;
    if crate::users::db::fetch(&mut conn, path.user_id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("User not found"));
    }
    let (sessions, total) = db::live_sessions(
        &mut conn,
        path.user_id,
        ctx.realm.tokens().session_idle,
        page.skip,
        page.limit,
    )
    .await?;
    let body = SessionList {
        sessions,
        total,
        limit: page.limit,
        offset: page.skip,
    };
    Ok(Listed(body, total))
}
