//! The route table: every endpoint of the API, each declared once with its OpenAPI operation
//! (the feature modules' `router()`s), mounted here under its prefix. The routers of users and
//! auth are written once and mounted for each realm, with that realm as their state.

use axum::Router;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::realm::{RealmId, label_unavailable};
use crate::state::{AppState, Scoped};

/// A realm-scoped router bound to its realm: database 503s name that realm's database.
fn for_realm(router: OpenApiRouter<Scoped>, app: &AppState, id: RealmId) -> OpenApiRouter {
    let scoped = Scoped::new(app, id);
    router
        .layer(axum::middleware::from_fn_with_state(
            scoped.realm.clone(),
            label_unavailable,
        ))
        .with_state(scoped)
}

/// The whole API: its router and the paths of its OpenAPI document.
pub fn api(app: &AppState) -> (Router, OpenApi) {
    use RealmId::{Autobot, Slm};
    OpenApiRouter::new()
        // The dashboard's own paths: the SLM realm's sign-in, MFA and API keys.
        .nest("/api/auth", for_realm(crate::auth::router(), app, Slm))
        .nest("/api/mfa", for_realm(crate::auth::mfa_router(), app, Slm))
        .nest(
            "/api/api-keys",
            for_realm(crate::auth::api_key_router(), app, Slm),
        )
        .nest("/api/slm-auth", for_realm(crate::auth::router(), app, Slm))
        .nest(
            "/api/autobot-auth",
            for_realm(crate::auth::router(), app, Autobot),
        )
        .nest(
            "/api/slm-users",
            for_realm(crate::users::router(), app, Slm),
        )
        .nest(
            "/api/autobot-users",
            for_realm(
                crate::users::router().merge(crate::users::autobot_router()),
                app,
                Autobot,
            ),
        )
        .nest(
            "/api/slm-roles",
            for_realm(crate::users::roles_router(), app, Slm),
        )
        .nest(
            "/api/autobot-roles",
            for_realm(crate::users::roles_router(), app, Autobot),
        )
        .nest(
            "/api/autobot-teams",
            for_realm(crate::teams::router(), app, Autobot),
        )
        .nest(
            "/api/autobot-users/teams",
            for_realm(crate::teams::router(), app, Autobot),
        )
        .nest(
            "/api/access-requests",
            for_realm(crate::access_requests::router(), app, Autobot),
        )
        .nest(
            "/api/audit",
            crate::audit::router()
                .layer(axum::middleware::from_fn_with_state(
                    app.slm.clone(),
                    label_unavailable,
                ))
                .with_state(app.clone()),
        )
        .merge(crate::ops::router(app.settings.metrics_addr.is_none()).with_state(app.clone()))
        .split_for_parts()
}
