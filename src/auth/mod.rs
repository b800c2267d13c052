//! Authentication: password hashing, tokens, sessions, API keys, MFA, the request principal,
//! authorization checks, and the `/…-auth` routes of both realms.

pub mod api_keys;
pub mod authz;
pub mod client;
pub mod dto;
mod handlers;
pub mod mfa;
pub mod password;
pub mod principal;
pub mod service;
pub mod token;

use axum::Router;
use axum::routing::{delete, get, post};
use utoipa::OpenApi;

use crate::state::Scoped;

/// The auth routes of one realm.
pub fn routes() -> Router<Scoped> {
    use handlers::*;
    Router::new()
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .route("/logout", post(logout))
        .route("/me", get(get_me))
        .route("/me/password", post(change_password))
        .route("/me/mfa/setup", post(mfa_setup))
        .route("/me/mfa/enable", post(mfa_enable))
        .route("/me/mfa/disable", post(mfa_disable))
        .route(
            "/me/api-keys",
            get(list_my_api_keys).post(create_my_api_key),
        )
        .route("/me/api-keys/{key_id}", delete(revoke_my_api_key))
}

/// The OpenAPI description of [`routes`].
#[derive(OpenApi)]
#[openapi(paths(
    handlers::login,
    handlers::refresh,
    handlers::logout,
    handlers::get_me,
    handlers::change_password,
    handlers::mfa_setup,
    handlers::mfa_enable,
    handlers::mfa_disable,
    handlers::list_my_api_keys,
    handlers::create_my_api_key,
    handlers::revoke_my_api_key
))]
pub struct ApiDoc;
