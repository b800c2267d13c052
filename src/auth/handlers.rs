//! Sign-in endpoints of both realms (`/api/auth` is the SLM realm's, the dashboard's paths):
//! login, refresh, logout, the caller and its password.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::access::authz::{Caller, PasswordOwner, SignedIn};
use crate::access::principal;
use crate::auth::dto::{
    ChangePasswordRequest, LoginRequest, LoginResponse, MeResponse, RefreshRequest, TokenResponse,
};
use crate::auth::service;
use crate::auth::sign_in::{self, Credentials};
use crate::http::client::ClientInfo;
use crate::http::error::{ApiError, HTTPValidationError, HttpError};
use crate::http::extract::{ApiJson, JsonOrForm, OptionalJson};
use crate::state::Target;
use crate::users::dto::UserResponse;
use crate::users::service as users;

/// Log in (JSON, or the OAuth2 password-flow form used by Swagger UI). With MFA on and no
/// `totp_code`, the answer is the MFA challenge.
#[utoipa::path(post, path = "/login",
    request_body(content((LoginRequest = "application/json"), (LoginRequest = "application/x-www-form-urlencoded"))),
    responses((status = 200, body = LoginResponse), (status = 401, body = HttpError),
              (status = 422, body = HTTPValidationError), (status = 429, body = HttpError)))]
pub async fn login(
    State(target): State<Target>,
    client: ClientInfo,
    JsonOrForm(body): JsonOrForm<LoginRequest>,
) -> Result<ApiJson<LoginResponse>, ApiError> {
    let creds = Credentials {
        login: body.username,
        password: body.password,
        code: body.totp_code,
    };
    sign_in::login(&target.app, &target.realm, creds, client)
        .await
        .map(ApiJson)
}

/// Exchange a refresh token for a new pair; or, with no body, renew the bearer access token
/// for its live session (the dashboard's refresh).
#[utoipa::path(post, path = "/refresh", request_body(content = Option<RefreshRequest>),
    responses((status = 200, body = TokenResponse), (status = 401, body = HttpError)),
    security((), ("bearer" = [])))]
pub async fn refresh(
    State(target): State<Target>,
    client: ClientInfo,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> Result<ApiJson<TokenResponse>, ApiError> {
    let answer = match body {
        Some(body) => {
            service::refresh(
                &target.realm,
                &body.refresh_token,
                target.app.settings.tokens.refresh_reuse_grace,
                client,
            )
            .await?
        }
        None => {
            let me = principal::authenticate(&target.realm, &headers, client).await?;
            service::refresh_access(&target.realm, &me).await?
        }
    };
    Ok(ApiJson(answer))
}

/// End the current session: its access and refresh tokens stop working at once.
#[utoipa::path(post, path = "/logout", responses((status = 204), (status = 401, body = HttpError)),
    security(("bearer" = [])))]
pub async fn logout(
    State(target): State<Target>,
    Caller(me): SignedIn,
) -> Result<StatusCode, ApiError> {
    service::logout(&target.realm, &me).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller, with its highest role and what it may do.
#[utoipa::path(get, path = "/me", responses((status = 200, body = MeResponse), (status = 401, body = HttpError)),
    security(("bearer" = [])))]
pub async fn get_me(
    State(target): State<Target>,
    Caller(me): SignedIn,
) -> Result<ApiJson<MeResponse>, ApiError> {
    let user = users::get(&target.realm, me.user_id).await?;
    Ok(ApiJson(MeResponse {
        is_admin: user.is_admin(),
        role: user.highest_role().map(str::to_owned),
        permissions: me.permissions,
        user: UserResponse::from(user),
    }))
}

/// Change the caller's password; other sessions end.
#[utoipa::path(post, path = "/me/password", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 400, body = HttpError), (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn change_password(
    State(target): State<Target>,
    Caller(me): PasswordOwner,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    service::change_password(
        &target.app,
        &target.realm,
        &me,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
