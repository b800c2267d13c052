//! AutoBot teams and memberships.

pub mod db;
pub mod dto;
pub mod handlers;
mod service;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::Scoped;

/// `/api/autobot-teams` (also served at `/api/autobot-users/teams`).
pub fn router() -> OpenApiRouter<Scoped> {
    use handlers::*;
    OpenApiRouter::new()
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, update_team, delete_team))
        .routes(routes!(add_team_member, update_team_members))
        .routes(routes!(remove_team_member))
}
