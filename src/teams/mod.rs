//! AutoBot teams and memberships, and the per-user extras of `/api/autobot-users` (teams,
//! admin-issued API keys, GDPR export).

pub mod db;
mod handlers;

use axum::Router;
use axum::routing::{delete, get, patch};
use utoipa::OpenApi;

use crate::state::Scoped;

/// `/api/autobot-teams` (also served at `/api/autobot-users/teams`).
pub fn routes() -> Router<Scoped> {
    use handlers::*;
    Router::new()
        .route("/", get(list_teams).post(create_team))
        .route(
            "/{team_id}",
            get(get_team).patch(update_team).delete(delete_team),
        )
        .route("/{team_id}/members", patch(update_team_members))
}

/// Extra routes of `/api/autobot-users`.
pub fn user_routes() -> Router<Scoped> {
    use handlers::*;
    Router::new()
        .route("/{user_id}/teams", get(list_user_teams))
        .route(
            "/{user_id}/api-keys",
            get(list_user_api_keys).post(create_user_api_key),
        )
        .route("/{user_id}/api-keys/{key_id}", delete(revoke_user_api_key))
        .route("/{user_id}/export", get(export_user))
}

#[derive(OpenApi)]
#[openapi(paths(
    handlers::create_team,
    handlers::list_teams,
    handlers::get_team,
    handlers::update_team,
    handlers::delete_team,
    handlers::update_team_members
))]
pub struct ApiDoc;

#[derive(OpenApi)]
#[openapi(paths(
    handlers::list_user_teams,
    handlers::list_user_api_keys,
    handlers::create_user_api_key,
    handlers::revoke_user_api_key,
    handlers::export_user
))]
pub struct UserTeamsApiDoc;
