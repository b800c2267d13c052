//! User management, written once and mounted for each realm.

pub mod db;
pub mod dto;
mod handlers;
pub mod service;

use axum::Router;
use axum::routing::{delete, get, post};
use utoipa::OpenApi;

use crate::state::Scoped;

/// The user routes of one realm (the router state names the realm).
pub fn routes() -> Router<Scoped> {
    use handlers::*;
    Router::new()
        .route("/", get(list_users).post(create_user))
        .route(
            "/{user_id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/{user_id}/roles", post(add_user_roles))
        .route("/{user_id}/roles/{role}", delete(remove_user_role))
        .route("/{user_id}/unlock", post(unlock_user))
        .route("/{user_id}/revoke-sessions", post(revoke_user_sessions))
}

/// The OpenAPI description of [`routes`], nested under each realm's prefix.
#[derive(OpenApi)]
#[openapi(paths(
    handlers::create_user,
    handlers::list_users,
    handlers::get_user,
    handlers::update_user,
    handlers::delete_user,
    handlers::add_user_roles,
    handlers::remove_user_role,
    handlers::unlock_user,
    handlers::revoke_user_sessions
))]
pub struct ApiDoc;
