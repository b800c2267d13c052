//! Authentication: password hashing, tokens, sessions, MFA, API keys, the request principal,
//! authorization checks, and their routes in both realms.

pub mod api_key_handlers;
pub mod api_keys;
pub mod authz;
pub mod client;
pub mod db;
pub mod dto;
pub mod handlers;
pub mod mfa;
pub mod mfa_handlers;
pub mod password;
pub mod principal;
pub mod service;
pub mod token;
pub mod totp;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::Scoped;

/// The sign-in routes of one realm, with its MFA and API keys under `/me`.
pub fn router() -> OpenApiRouter<Scoped> {
    use handlers::*;
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(get_me))
        .routes(routes!(change_password))
        .nest("/me/mfa", mfa_router())
        .nest("/me/api-keys", api_key_router())
}

/// MFA of the caller, and the MFA step of a login.
pub fn mfa_router() -> OpenApiRouter<Scoped> {
    use mfa_handlers::*;
    OpenApiRouter::new()
        .routes(routes!(mfa_status))
        .routes(routes!(mfa_setup))
        .routes(routes!(mfa_verify_setup))
        .routes(routes!(mfa_disable))
        .routes(routes!(mfa_backup_codes))
        .routes(routes!(verify_login))
}

/// The caller's API keys.
pub fn api_key_router() -> OpenApiRouter<Scoped> {
    use api_key_handlers::*;
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(list_api_key_scopes))
        .routes(routes!(get_api_key, update_api_key, revoke_api_key))
}
