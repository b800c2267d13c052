//! `/api/slm-auth` and `/api/autobot-auth`: one set of handlers, mounted once per realm.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::auth::api_keys;
use crate::auth::client::ClientInfo;
use crate::auth::dto::*;
use crate::auth::principal::RealmUser;
use crate::auth::service::{self, Credentials};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, JsonOrForm};
use crate::state::Scoped;
use crate::users::dto::UserResponse;

/// Log in (JSON, or the OAuth2 password-flow form used by Swagger UI).
#[utoipa::path(post, path = "/login",
    request_body(content((LoginRequest = "application/json"), (LoginRequest = "application/x-www-form-urlencoded"))),
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::openapi::HttpError),
              (status = 422, body = crate::openapi::HTTPValidationError), (status = 429, body = crate::openapi::HttpError)))]
pub async fn login(
    State(ctx): State<Scoped>,
    client: ClientInfo,
    JsonOrForm(body): JsonOrForm<LoginRequest>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    let creds = Credentials {
        username: body.username,
        password: body.password,
        totp_code: body.totp_code,
    };
    service::login(&ctx.app, &ctx.realm, creds, client)
        .await
        .map(axum::Json)
}

/// Exchange a refresh token for a new token pair.
#[utoipa::path(post, path = "/refresh", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::openapi::HttpError)))]
pub async fn refresh(
    State(ctx): State<Scoped>,
    client: ClientInfo,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    service::refresh(&ctx.realm, &body.refresh_token, client)
        .await
        .map(axum::Json)
}

/// End the current session.
#[utoipa::path(post, path = "/logout", responses((status = 204), (status = 401, body = crate::openapi::HttpError)),
    security(("bearer" = [])))]
pub async fn logout(
    State(ctx): State<Scoped>,
    RealmUser(me): RealmUser,
) -> Result<StatusCode, ApiError> {
    service::logout(&ctx.realm, &me).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller, with its permissions.
#[utoipa::path(get, path = "/me", responses((status = 200, body = MeResponse), (status = 401, body = crate::openapi::HttpError)),
    security(("bearer" = [])))]
pub async fn get_me(State(ctx): State<Scoped>, RealmUser(me): RealmUser) -> axum::Json<MeResponse> {
    let permissions = ctx.realm.policy().permissions(&me.user.roles);
    axum::Json(MeResponse {
        user: UserResponse::from(me.user),
        permissions,
    })
}

/// Change the caller's password; other sessions end.
#[utoipa::path(post, path = "/me/password", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 400, body = crate::openapi::HttpError), (status = 422, body = crate::openapi::HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn change_password(
    State(ctx): State<Scoped>,
    RealmUser(me): RealmUser,
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

/// Start TOTP enrolment.
#[utoipa::path(post, path = "/me/mfa/setup", responses((status = 200, body = MfaSetupResponse)), security(("bearer" = [])))]
pub async fn mfa_setup(
    State(ctx): State<Scoped>,
    RealmUser(me): RealmUser,
) -> Result<axum::Json<MfaSetupResponse>, ApiError> {
    service::mfa_setup(&ctx.app, &ctx.realm, &me)
        .await
        .map(axum::Json)
}

/// Confirm TOTP enrolment with a code; returns recovery codes once.
#[utoipa::path(post, path = "/me/mfa/enable", request_body = MfaCodeRequest,
    responses((status = 200, body = RecoveryCodesResponse), (status = 400, body = crate::openapi::HttpError)), security(("bearer" = [])))]
pub async fn mfa_enable(
    State(ctx): State<Scoped>,
    RealmUser(me): RealmUser,
    ApiJson(body): ApiJson<MfaCodeRequest>,
) -> Result<axum::Json<RecoveryCodesResponse>, ApiError> {
    let recovery_codes = service::mfa_enable(&ctx.app, &ctx.realm, &me, &body.code).await?;
    Ok(axum::Json(RecoveryCodesResponse { recovery_codes }))
}

/// Turn MFA off with a current code.
#[utoipa::path(post, path = "/me/mfa/disable", request_body = MfaCodeRequest,
    responses((status = 204), (status = 400, body = crate::openapi::HttpError)), security(("bearer" = [])))]
pub async fn mfa_disable(
    State(ctx): State<Scoped>,
    RealmUser(me): RealmUser,
    ApiJson(body): ApiJson<MfaCodeRequest>,
) -> Result<StatusCode, ApiError> {
    service::mfa_disable(&ctx.app, &ctx.realm, &me, &body.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's API keys (without secrets).
#[utoipa::path(get, path = "/me/api-keys", responses((status = 200, body = Vec<ApiKeyResponse>)), security(("bearer" = [])))]
pub async fn list_my_api_keys(
    State(ctx): State<Scoped>,
    RealmUser(me): RealmUser,
) -> Result<axum::Json<Vec<ApiKeyResponse>>, ApiError> {
    api_keys::list(&ctx.realm, me.user.id).await.map(axum::Json)
}

/// Issue an API key for the caller; the key is shown once.
#[utoipa::path(post, path = "/me/api-keys", request_body = CreateApiKeyRequest,
    responses((status = 201, body = ApiKeyCreatedResponse), (status = 422, body = crate::openapi::HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn create_my_api_key(
    State(ctx): State<Scoped>,
    RealmUser(me): RealmUser,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let (name, days) = api_keys::parse_request(&body)?;
    let created = api_keys::issue(&ctx.realm, &me.actor(), me.user.id, name, days).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Revoke one of the caller's API keys.
#[utoipa::path(delete, path = "/me/api-keys/{key_id}", params(ApiKeyPath),
    responses((status = 204), (status = 404, body = crate::openapi::HttpError)), security(("bearer" = [])))]
pub async fn revoke_my_api_key(
    State(ctx): State<Scoped>,
    RealmUser(me): RealmUser,
    ApiPath(path): ApiPath<ApiKeyPath>,
) -> Result<StatusCode, ApiError> {
    api_keys::revoke(&ctx.realm, &me.actor(), me.user.id, path.key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
