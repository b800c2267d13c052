//! API-key endpoints: the caller's own keys (`/api/api-keys`, the dashboard's, and
//! `/api/{slm,autobot}-auth/me/api-keys`), and the keys admins issue for a user
//! (`/api/autobot-users/{user_id}/api-keys`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::access::authz::{Caller, RealmUser, SessionUser};
use crate::access::authz::{CanRead, CanWrite};
use crate::auth::api_keys::dto::{
    ApiKeyCreatedResponse, ApiKeyList, ApiKeyPath, ApiKeyResponse, CreateApiKeyRequest,
    UpdateApiKeyRequest, UserApiKeyPath,
};
use crate::auth::api_keys::service as api_keys;
use crate::http::error::{ApiError, HTTPValidationError, HttpError};
use crate::http::extract::{ApiJson, ApiPath};
use crate::state::Target;
use crate::users::dto::UserPath;

/// The caller's API keys (without secrets), newest first.
#[utoipa::path(get, path = "", responses((status = 200, body = ApiKeyList)), security(("bearer" = [])))]
pub async fn list_api_keys(
    State(target): State<Target>,
    Caller(me): RealmUser,
) -> Result<ApiJson<ApiKeyList>, ApiError> {
    api_keys::list(&target.realm, me.user_id).await.map(ApiJson)
}

/// Issue an API key for the caller; the key is shown once. Its scopes must be permissions the
/// caller holds.
#[utoipa::path(post, path = "", request_body = CreateApiKeyRequest,
    responses((status = 201, body = ApiKeyCreatedResponse), (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn create_api_key(
    State(target): State<Target>,
    Caller(me): SessionUser,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let new = api_keys::parse_request(body, &me.permissions)?;
    let created = api_keys::issue(&target.realm, &me.actor(), me.user_id, new).await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// The scopes a key may have: the realm's permissions, with what each allows.
#[utoipa::path(get, path = "/scopes",
    responses((status = 200, body = BTreeMap<String, String>)), security(("bearer" = [])))]
pub async fn list_api_key_scopes(
    State(target): State<Target>,
    _me: RealmUser,
) -> Result<ApiJson<BTreeMap<String, String>>, ApiError> {
    api_keys::scopes(&target.realm).map(ApiJson)
}

/// One of the caller's keys.
#[utoipa::path(get, path = "/{key_id}", params(ApiKeyPath),
    responses((status = 200, body = ApiKeyResponse), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn get_api_key(
    State(target): State<Target>,
    Caller(me): RealmUser,
    ApiPath(path): ApiPath<ApiKeyPath>,
) -> Result<ApiJson<ApiKeyResponse>, ApiError> {
    api_keys::get(&target.realm, me.user_id, path.key_id)
        .await
        .map(ApiJson)
}

/// Rename one of the caller's keys or change its description.
#[utoipa::path(patch, path = "/{key_id}", params(ApiKeyPath), request_body = UpdateApiKeyRequest,
    responses((status = 200, body = ApiKeyResponse), (status = 404, body = HttpError),
              (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn update_api_key(
    State(target): State<Target>,
    Caller(me): SessionUser,
    ApiPath(path): ApiPath<ApiKeyPath>,
    ApiJson(body): ApiJson<UpdateApiKeyRequest>,
) -> Result<ApiJson<ApiKeyResponse>, ApiError> {
    api_keys::update(&target.realm, me.user_id, path.key_id, body)
        .await
        .map(ApiJson)
}

/// Revoke one of the caller's keys.
#[utoipa::path(delete, path = "/{key_id}", params(ApiKeyPath),
    responses((status = 204), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn revoke_api_key(
    State(target): State<Target>,
    Caller(me): SessionUser,
    ApiPath(path): ApiPath<ApiKeyPath>,
) -> Result<StatusCode, ApiError> {
    api_keys::revoke(&target.realm, &me.actor(), me.user_id, path.key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's API keys (without secrets).
#[utoipa::path(get, path = "/{user_id}/api-keys", params(UserPath),
    responses((status = 200, body = ApiKeyList), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn list_user_api_keys(
    State(target): State<Target>,
    _op: CanRead,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<ApiJson<ApiKeyList>, ApiError> {
    api_keys::permissions_of(&target.realm, path.user_id).await?;
    api_keys::list(&target.realm, path.user_id)
        .await
        .map(ApiJson)
}

/// Issue an API key for a user (shown once), scoped to permissions the user holds.
#[utoipa::path(post, path = "/{user_id}/api-keys", params(UserPath), request_body = CreateApiKeyRequest,
    responses((status = 201, body = ApiKeyCreatedResponse), (status = 404, body = HttpError),
              (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn create_user_api_key(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    op.0.require_session().await?;
    let held = api_keys::permissions_of(&target.realm, path.user_id).await?;
    let new = api_keys::parse_request(body, &held)?;
    let created = api_keys::issue(&target.realm, &op.0.actor(), path.user_id, new).await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// Revoke a user's API key.
#[utoipa::path(delete, path = "/{user_id}/api-keys/{key_id}", params(UserApiKeyPath),
    responses((status = 204), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn revoke_user_api_key(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserApiKeyPath>,
) -> Result<StatusCode, ApiError> {
    api_keys::revoke(&target.realm, &op.0.actor(), path.user_id, path.key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
