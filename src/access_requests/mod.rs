//! Access requests: anyone asks for an AutoBot account; an SLM manager reviews it.

pub mod db;
pub mod dto;
mod handlers;
pub mod service;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::Scoped;

/// `/api/access-requests`.
pub fn router() -> OpenApiRouter<Scoped> {
    use handlers::*;
    OpenApiRouter::new()
        .routes(routes!(list_access_requests, submit_access_request))
        .routes(routes!(approve_access_request))
        .routes(routes!(deny_access_request))
}
