//! Building and running the application: pools, migrations, bootstrap admin, background tasks,
//! the router with its middleware, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::database::migrate::Unmigratable;
use crate::extract::MAX_BODY_BYTES;
use crate::realm::{Realm, RealmId, SchemaState};
use crate::serve::ConnectionLimits;
use crate::state::AppState;

/// A built server, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    /// `/metrics` on an address of its own (`METRICS_ADDR`), when configured.
    metrics: Option<TcpListener>,
    router: Router,
    state: AppState,
    shutdown: watch::Sender<bool>,
}

/// Migrates the AutoBot database, in the background until it succeeds, so that the server
/// starts (and serves the SLM realm) while that remote database is down or cannot be migrated.
/// The realm's schema state says which (`/readyz`), and its endpoints answer 503 until then.
/// A cause is logged once, in one line, and again only when it changes.
fn migrate_autobot_until_done(
    realm: Realm,
    settings: &Settings,
    mut shutdown: watch::Receiver<bool>,
    mut last_cause: Option<String>,
) {
    let options = settings.autobot_db.options.clone();
    let target = settings.autobot_db.describe();
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        loop {
            let outcome = crate::database::migrate::migrate_up(RealmId::Autobot, &options).await;
            if let Some(cause) = record_migration(&realm, &target, outcome, last_cause.as_deref()) {
                last_cause = Some(cause);
            } else {
                return;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    });
}

/// Records the outcome of a migration of the AutoBot realm in its schema state, and logs a
/// cause unless it is `logged` already; returns the cause, or `None` once migrated.
fn record_migration(
    realm: &Realm,
    target: &str,
    outcome: anyhow::Result<()>,
    logged: Option<&str>,
) -> Option<String> {
    let err = match outcome {
        Ok(()) => {
            realm.set_schema(SchemaState::Ready);
            if logged.is_some() {
                tracing::info!(database = %target, "AutoBot database migrated; its endpoints answer again");
            }
            return None;
        }
        Err(err) => err,
    };
    let (cause, blocked) = match err.downcast_ref::<Unmigratable>() {
        Some(blocked) => (blocked.to_string(), true),
        None => (format!("{err:#}"), false),
    };
    if blocked {
        realm.set_schema(SchemaState::Unmigrated(cause.clone().into()));
    }
    if logged != Some(cause.as_str()) {
        if blocked {
            tracing::error!(database = %target, "AutoBot database cannot be migrated, its endpoints answer 503 until it is: {cause}");
        } else {
            tracing::warn!(database = %target, error = %cause, "AutoBot database unreachable; serving the SLM realm and retrying");
        }
    }
    Some(cause)
}

/// How often the e-mail skeletons of users written elsewhere are computed.
const SKELETON_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// Keeps the look-alike check's e-mail skeletons current for users the AutoBot backend writes:
/// at start, then every few minutes, in each realm whose database is ready.
async fn keep_email_skeletons_current(app: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SKELETON_SWEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        for realm in [&app.slm, &app.autobot] {
            if realm.schema() != SchemaState::Ready {
                continue;
            }
            match crate::users::service::sweep_email_skeletons(realm).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(realm = realm.name(), users = n, "computed e-mail skeletons")
                }
                Err(err) => {
                    tracing::debug!(realm = realm.name(), error = %err, "e-mail skeletons not computed now")
                }
            }
        }
    }
}

impl Application {
    /// Connects, migrates (when configured), creates the bootstrap admin, binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        // Install the recorder before anything records, or early metrics would be lost.
        crate::telemetry::prometheus();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = AppState::build(settings.clone())?;
        if settings.migrate_on_start {
            crate::database::migrate::migrate_up(RealmId::Slm, &settings.slm_db.options)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("SLM database {}: {e:#}", settings.slm_db.describe())
                })?;
            // A reachable AutoBot database is migrated before the server answers; one that is
            // slow, down or blocked is left to the background.
            state.autobot.set_schema(SchemaState::Pending);
            let quick = tokio::time::timeout(
                Duration::from_secs(3),
                crate::database::migrate::migrate_up(
                    RealmId::Autobot,
                    &settings.autobot_db.options,
                ),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 3 s")));
            let target = settings.autobot_db.describe();
            if let Some(cause) = record_migration(&state.autobot, &target, quick, None) {
                migrate_autobot_until_done(
                    state.autobot.clone(),
                    &settings,
                    shutdown_rx.clone(),
                    Some(cause),
                );
            }
        }
        if let Some(creds) = crate::bootstrap::ensure_admin(&state, &state.slm, &settings.bootstrap)
            .await
            .map_err(|e| anyhow::anyhow!("creating the bootstrap admin failed: {e:#}"))?
        {
            // Printed once, on standard output, for the operator (docs/api.md §7).
            println!("BOOTSTRAP_ADMIN_USERNAME={}", creds.username);
            println!("BOOTSTRAP_ADMIN_PASSWORD={}", creds.password);
        }
        tokio::spawn(keep_email_skeletons_current(
            state.clone(),
            shutdown_rx.clone(),
        ));
        tokio::spawn(crate::outbox::run_relay(
            state.autobot.clone(),
            state.redis.clone(),
            crate::outbox::Targets {
                channel: settings.invalidation_channel.clone(),
                rbac_channel: settings.rbac_invalidation_channel.clone(),
                rbac_key: settings.rbac_cache_key.clone(),
            },
            shutdown_rx,
        ));
        let router = router(state.clone());
        let listener = TcpListener::bind(settings.bind_addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (BIND_ADDR): {e}", settings.bind_addr)
        })?;
        let metrics = match settings.metrics_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (METRICS_ADDR): {e}"))?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            metrics,
            router,
            state,
            shutdown,
        })
    }

    /// The port actually bound (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The metrics listener's port, when it has one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown;
        if let Some(listener) = self.metrics {
            let mut stop = shutdown.subscribe();
            let router = crate::ops::metrics_router(self.state.clone());
            tokio::spawn(async move {
                let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                });
                if let Err(err) = serve.await {
                    tracing::error!(error = %err, "the metrics listener stopped");
                }
            });
        }
        let settings = &self.state.settings;
        let limits = ConnectionLimits {
            header_read_timeout: settings.header_read_timeout,
            max_connections: settings.max_connections,
            max_per_client: settings.max_connections_per_client,
            trusted_proxies: settings.trusted_proxies.clone(),
        };
        crate::serve::serve(self.listener, self.router, limits, async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = shutdown.send(true);
        })
        .await;
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

fn cors(settings: &Settings) -> CorsLayer {
    let origins = &settings.cors_origins;
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
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
    if origins.iter().any(|o| o == "*") {
        layer
    } else {
        layer.allow_credentials(true)
    }
}

/// The whole HTTP surface: the route table, the document and Swagger UI, and the middleware.
pub fn router(app: AppState) -> Router {
    let (api, paths) = crate::routes::api(&app);
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(api)
        .merge(crate::openapi::docs_router(crate::openapi::document(paths)))
        .fallback(crate::middleware::not_found)
        .layer(axum::middleware::from_fn(
            crate::middleware::run_again_after_conflict,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            app.settings.request_timeout,
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
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::audit::record_denials,
        ))
        .layer(axum::middleware::from_fn(crate::middleware::observe))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            // 5xx are logged once, with their cause, by middleware::observe.
            TraceLayer::new_for_http().on_failure(()).make_span_with(|req: &axum::http::Request<_>| {
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
