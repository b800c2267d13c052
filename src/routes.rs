//! The route table: every path of the API, top to bottom, each handler named once where it is
//! mounted; and the middleware around it all.
//!
//! The user and sign-in handlers are written once and mounted for each realm: a group's state
//! ([`Target`]) names the realm it serves. A handler's own path (`/{user_id}`, `/login`) is in
//! its `#[utoipa::path]`, which the OpenAPI document is generated from; the comments below give
//! the full paths.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Settings;
use crate::http::extract::MAX_BODY_BYTES;
use crate::realm::RealmId::{self, Autobot, Slm};
use crate::state::{AppState, Target};
use crate::{access_requests, audit_log, auth, console, export, ops, sso, teams, users};

/// Sign-in of one realm: `…/login`, `/refresh`, `/logout`, `/me`, `/me/password`, the
/// caller's MFA and API keys under `/me`, and SSO: `/sso/providers`,
/// `/sso/{provider_id}/login`, `/sso/callback`, `/sso/ldap/login`.
fn sign_in() -> OpenApiRouter<Target> {
    use auth::handlers::*;
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(get_me))
        .routes(routes!(change_password))
        .nest("/me/mfa", mfa())
        .nest("/me/api-keys", own_api_keys())
        .routes(routes!(sso::handlers::list_active_providers))
        .routes(routes!(sso::handlers::start_sso_login))
        .routes(routes!(sso::handlers::sso_callback))
        .routes(routes!(sso::handlers::ldap_login))
}

/// A realm's SSO providers: `""`, `/{provider_id}`, `/{provider_id}/test`.
fn sso_providers() -> OpenApiRouter<Target> {
    use sso::handlers::*;
    OpenApiRouter::new()
        .routes(routes!(list_providers, create_provider))
        .routes(routes!(get_provider, update_provider, delete_provider))
        .routes(routes!(test_provider))
}

/// The caller's MFA: `/status`, `/setup`, `/verify-setup`, `/disable`, `/backup-codes`, and
/// `/verify-login`, the MFA step of a login.
fn mfa() -> OpenApiRouter<Target> {
    use auth::mfa::handlers::*;
    OpenApiRouter::new()
        .routes(routes!(mfa_status))
        .routes(routes!(mfa_setup))
        .routes(routes!(mfa_verify_setup))
        .routes(routes!(mfa_disable))
        .routes(routes!(mfa_backup_codes))
        .routes(routes!(verify_login))
}

/// The caller's API keys: `""`, `/scopes`, `/{key_id}`.
fn own_api_keys() -> OpenApiRouter<Target> {
    use auth::api_keys::handlers::*;
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(list_api_key_scopes))
        .routes(routes!(get_api_key, update_api_key, revoke_api_key))
}

/// Users of one realm: `""`, `/{user_id}`, `/{user_id}/roles[/{role}]`, `/unlock`,
/// `/revoke-sessions`, `/sessions`, `/mfa`.
fn users() -> OpenApiRouter<Target> {
    use users::handlers::*;
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(add_user_roles))
        .routes(routes!(remove_user_role))
        .routes(routes!(unlock_user))
        .routes(routes!(revoke_user_sessions))
        .routes(routes!(list_user_sessions))
        .routes(routes!(reset_user_mfa))
}

/// What AutoBot users have besides: `/{user_id}/export`, `/{user_id}/teams`, and the API keys
/// an admin issues for a user, `/{user_id}/api-keys[/{key_id}]`.
fn autobot_users() -> OpenApiRouter<Target> {
    use auth::api_keys::handlers::*;
    OpenApiRouter::new()
        .routes(routes!(export::export_user))
        .routes(routes!(teams::handlers::list_user_teams))
        .routes(routes!(list_user_api_keys, create_user_api_key))
        .routes(routes!(revoke_user_api_key))
}

/// A realm's roles: `""`.
fn roles() -> OpenApiRouter<Target> {
    OpenApiRouter::new().routes(routes!(users::handlers::list_roles))
}

/// Teams: `""`, `/{team_id}`, `/{team_id}/members[/{user_id}]`.
fn teams() -> OpenApiRouter<Target> {
    use teams::handlers::*;
    OpenApiRouter::new()
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, update_team, delete_team))
        .routes(routes!(add_team_member, update_team_members))
        .routes(routes!(remove_team_member))
}

/// Access requests: `""`, `/{id}/approve`, `/{id}/deny`.
fn access_requests() -> OpenApiRouter<Target> {
    use access_requests::handlers::*;
    OpenApiRouter::new()
        .routes(routes!(list_access_requests, submit_access_request))
        .routes(routes!(approve_access_request))
        .routes(routes!(deny_access_request))
}

/// The whole API: its router and the paths of its OpenAPI document.
pub fn api(app: &AppState) -> (Router, OpenApi) {
    let realm = |group: OpenApiRouter<Target>, id: RealmId| group.with_state(Target::new(app, id));
    OpenApiRouter::new()
        // The dashboard's own paths: the SLM realm's sign-in, MFA and API keys.
        .nest("/api/auth", realm(sign_in(), Slm))
        .nest("/api/mfa", realm(mfa(), Slm))
        .nest("/api/api-keys", realm(own_api_keys(), Slm))
        // Sign-in of each realm.
        .nest("/api/slm-auth", realm(sign_in(), Slm))
        .nest("/api/autobot-auth", realm(sign_in(), Autobot))
        // Management: an SLM principal acts on either realm.
        .nest("/api/slm-users", realm(users(), Slm))
        .nest(
            "/api/autobot-users",
            realm(users().merge(autobot_users()), Autobot),
        )
        .nest("/api/slm-roles", realm(roles(), Slm))
        .nest("/api/autobot-roles", realm(roles(), Autobot))
        .nest("/api/autobot-teams", realm(teams(), Autobot))
        .nest("/api/autobot-users/teams", realm(teams(), Autobot))
        .nest("/api/access-requests", realm(access_requests(), Autobot))
        // SSO providers: the dashboard's are the SLM realm's.
        .nest("/api/sso-providers", realm(sso_providers(), Slm))
        .nest(
            "/api/autobot-sso-providers",
            realm(sso_providers(), Autobot),
        )
        // `GET /api/audit`: both realms' trails.
        .nest(
            "/api/audit",
            OpenApiRouter::new()
                .routes(routes!(audit_log::handlers::list_audit_events))
                .with_state(app.clone()),
        )
        // `/healthz`, `/readyz`, and `/metrics` unless it has a listener of its own.
        .merge(operations(app))
        .split_for_parts()
}

fn operations(app: &AppState) -> OpenApiRouter {
    let router = OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz));
    let router = match app.settings.http.metrics_addr {
        None => router.routes(routes!(ops::metrics)),
        Some(_) => router,
    };
    router.with_state(app.clone())
}

/// The console's pages (not in the OpenAPI document: HTML for people), each group with the realm
/// it serves; all behind the console's session middleware.
pub fn console(app: &AppState) -> Router {
    use axum::routing::{get, post};
    use console::*;
    let slm = Target::new(app, Slm);
    let autobot = Target::new(app, Autobot);
    let users = |target: Target| {
        use console::users::*;
        Router::new()
            .route("/", get(list).post(create))
            .route("/new", get(new_form))
            .route("/{user_id}", get(show))
            .route("/{user_id}/edit", post(edit))
            .route("/{user_id}/password", post(set_password))
            .route("/{user_id}/roles", post(set_roles))
            .route("/{user_id}/activate", post(activate))
            .route("/{user_id}/deactivate", post(deactivate))
            .route("/{user_id}/unlock", post(unlock))
            .route("/{user_id}/revoke-sessions", post(revoke_sessions))
            .route("/{user_id}/reset-mfa", post(reset_mfa))
            .route("/{user_id}/delete", post(delete))
            .route("/{user_id}/export", get(export))
            .with_state(target)
    };
    let sso = |target: Target| {
        use console::sso::*;
        Router::new()
            .route("/", get(list).post(create))
            .route("/{provider_id}/test", post(test))
            .route("/{provider_id}/activate", post(activate))
            .route("/{provider_id}/deactivate", post(deactivate))
            .route("/{provider_id}/delete", post(delete))
            .with_state(target)
    };
    let own = Router::new()
        .route("/console/", get(account::home))
        .route(
            "/console/login",
            get(sign_in::show_login).post(sign_in::login),
        )
        .route("/console/login/mfa", post(sign_in::login_mfa))
        .route("/console/login/sso/{provider_id}", post(sign_in::login_sso))
        .route(
            "/console/login/ldap/{provider_id}",
            post(sign_in::login_ldap),
        )
        .route("/console/logout", post(sign_in::logout))
        .route(
            "/console/password",
            get(sign_in::show_password).post(sign_in::change_password),
        )
        .route("/console/account", get(account::show))
        .route("/console/account/mfa/setup", post(account::mfa_setup))
        .route("/console/account/mfa/verify", post(account::mfa_verify))
        .route("/console/account/mfa/disable", post(account::mfa_disable))
        .route(
            "/console/account/mfa/backup-codes",
            post(account::mfa_backup_codes),
        )
        .route("/console/account/api-keys", post(account::create_api_key))
        .route(
            "/console/account/api-keys/{key_id}/revoke",
            post(account::revoke_api_key),
        )
        .with_state(slm.clone());
    let autobot_pages = Router::new()
        .route("/console/teams", get(teams::list).post(teams::create))
        .route("/console/teams/{team_id}", get(teams::show))
        .route("/console/teams/{team_id}/members", post(teams::add_member))
        .route(
            "/console/teams/{team_id}/members/{user_id}/remove",
            post(teams::remove_member),
        )
        .route("/console/teams/{team_id}/delete", post(teams::delete))
        .route("/console/access-requests", get(requests::list))
        .route(
            "/console/access-requests/{id}/approve",
            post(requests::approve),
        )
        .route("/console/access-requests/{id}/deny", post(requests::deny))
        .route(
            "/request-access",
            get(requests::show_form).post(requests::submit),
        )
        .with_state(autobot.clone());
    let audit_pages = Router::new()
        .route("/console/audit", get(audit::show))
        .route("/console/audit.csv", get(audit::csv))
        .with_state(app.clone());
    Router::new()
        .merge(own)
        .merge(autobot_pages)
        .merge(audit_pages)
        .nest("/console/slm-users", users(slm.clone()))
        .nest("/console/autobot-users", users(autobot.clone()))
        .nest("/console/sso", sso(slm))
        .nest("/console/autobot-sso", sso(autobot))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            console::session::console,
        ))
        .route("/console/static/console.css", get(layout::stylesheet))
        .route(
            "/console",
            get(|| async { axum::response::Redirect::permanent("/console/") }),
        )
}

fn cors(settings: &Settings) -> CorsLayer {
    let origins = &settings.http.cors_origins;
    let any = origins.iter().any(|o| o == "*");
    let allow = match any {
        true => AllowOrigin::any(),
        false => AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok())),
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-api-key"),
        ])
        .expose_headers([
            HeaderName::from_static("x-total-count"),
            HeaderName::from_static("x-request-id"),
        ]);
    match any {
        true => layer,
        false => layer.allow_credentials(true),
    }
}

/// The whole HTTP surface: the route table, the document and Swagger UI, and the middleware.
pub fn router(app: AppState) -> Router {
    let (api, paths) = api(&app);
    let request_id = HeaderName::from_static("x-request-id");
    let docs = crate::http::openapi::docs_router(crate::http::openapi::document(paths));
    Router::new()
        .merge(api)
        .merge(docs)
        .merge(console(&app))
        .fallback(crate::http::middleware::not_found)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            app.settings.http.request_timeout,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(cors(&app.settings))
        .layer(axum::middleware::from_fn(crate::http::middleware::observe))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            // 5xx are logged once, with their cause, by middleware::observe.
            TraceLayer::new_for_http()
                .on_failure(())
                .make_span_with(|req: &axum::http::Request<_>| {
                    let request_id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id)
                }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}
