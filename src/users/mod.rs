//! User management, written once and mounted for each realm: users, their roles, and the
//! realm's roles.

pub mod db;
pub mod dto;
mod handlers;
pub mod service;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::Scoped;

/// The user routes of one realm (the router state names the realm). The per-user sessions
/// and MFA reset are auth's handlers, mounted here under the user.
pub fn router() -> OpenApiRouter<Scoped> {
    use handlers::*;
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(add_user_roles))
        .routes(routes!(remove_user_role))
        .routes(routes!(unlock_user))
        .routes(routes!(revoke_user_sessions))
        .routes(routes!(crate::auth::handlers::list_user_sessions))
        .routes(routes!(crate::auth::mfa_handlers::reset_user_mfa))
}

/// What `/api/autobot-users` adds: the GDPR export, a user's teams, and the API keys admins
/// issue for a user.
pub fn autobot_router() -> OpenApiRouter<Scoped> {
    OpenApiRouter::new()
        .routes(routes!(handlers::export_user))
        .routes(routes!(crate::teams::handlers::list_user_teams))
        .routes(routes!(
            crate::auth::api_key_handlers::list_user_api_keys,
            crate::auth::api_key_handlers::create_user_api_key
        ))
        .routes(routes!(crate::auth::api_key_handlers::revoke_user_api_key))
}

/// `/api/{slm,autobot}-roles`.
pub fn roles_router() -> OpenApiRouter<Scoped> {
    OpenApiRouter::new().routes(routes!(handlers::list_roles))
}
