//! Operations endpoints: liveness, readiness, Prometheus metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::http::extract::ApiJson;
use crate::realm::SchemaState;
use crate::state::AppState;
use crate::telemetry;

/// Liveness: 200 while the process lives.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> ApiJson<serde_json::Value> {
    ApiJson(json!({"status": "ok"}))
}

async fn check(probe: impl Future<Output = bool>) -> &'static str {
    match tokio::time::timeout(Duration::from_millis(1500), probe).await {
        Ok(true) => "ok",
        _ => "unavailable",
    }
}

/// The check of a realm's database: `ok`, `unavailable` (it does not answer) or `unmigrated`
/// (it answers, but does not have this server's schema yet; see the start-up log or
/// `slm-server check`).
async fn check_database(realm: &crate::realm::Realm) -> &'static str {
    match realm.schema() {
        SchemaState::Ready => check(realm.ping()).await,
        SchemaState::Unmigrated(_) => "unmigrated",
        // Not reached since the server started; the migration in the background says when.
        SchemaState::Pending => "unavailable",
    }
}

/// Readiness: `ready`, `degraded` (AutoBot database down or unmigrated, or Redis down) or
/// `unavailable` (SLM database down, the only case answered with 503).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready or degraded"), (status = 503, description = "SLM database down")))]
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let (slm, autobot, redis) = tokio::join!(
        check_database(&app.slm),
        check_database(&app.autobot),
        check(app.redis.ping())
    );
    let (status, code) = if slm != "ok" {
        ("unavailable", StatusCode::SERVICE_UNAVAILABLE)
    } else if autobot != "ok" || redis != "ok" {
        ("degraded", StatusCode::OK)
    } else {
        ("ready", StatusCode::OK)
    };
    (
        code,
        ApiJson(json!({
            "status": status,
            "checks": {"slm_db": slm, "autobot_db": autobot, "redis": redis},
        })),
    )
}

/// Prometheus metrics: HTTP requests by route and status, pool usage, login outcomes, outbox.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    for realm in [&app.slm, &app.autobot] {
        let pool = realm.pool().status();
        let idle = pool.available as f64;
        metrics::gauge!("db_pool_connections", "realm" => realm.name(), "state" => "idle")
            .set(idle);
        metrics::gauge!("db_pool_connections", "realm" => realm.name(), "state" => "in_use")
            .set(pool.size as f64 - idle);
        metrics::gauge!("db_pool_max_connections", "realm" => realm.name())
            .set(pool.max_size as f64);
    }
    if let Ok(Ok((pending, oldest))) =
        tokio::time::timeout(Duration::from_secs(1), crate::outbox::backlog(&app.autobot)).await
    {
        metrics::gauge!("outbox_backlog").set(pending as f64);
        metrics::gauge!("outbox_oldest_pending_seconds").set(oldest);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::prometheus().render(),
    )
}

/// The metrics listener's own router (`METRICS_ADDR`): `/metrics` and nothing else.
pub fn metrics_router(app: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(app)
}
