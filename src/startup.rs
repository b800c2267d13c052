//! Building and running the application: pools, migrations, bootstrap admin, background tasks,
//! the router with its middleware, and graceful shutdown.

use std::net::SocketAddr;
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
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::password::PasswordHasher;
use crate::auth::token::TokenKeys;
use crate::config::Settings;
use crate::extract::MAX_BODY_BYTES;
use crate::rate_limit::RateLimiter;
use crate::realm::{Realm, RealmId, lazy_pool};
use crate::state::{AppInner, AppState, Redis, Scoped};

/// A built server, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: watch::Sender<bool>,
}

fn realm(id: RealmId, settings: &Settings) -> Realm {
    let (db, secret) = settings.realm(id);
    let keys = TokenKeys::new(
        id.as_str(),
        secret,
        settings.access_token_ttl,
        settings.refresh_token_ttl,
    );
    Realm::new(id, lazy_pool(db), keys)
}

/// Migrates the AutoBot database in the background until it succeeds, so that the server
/// starts (and serves the SLM realm) while that remote database is down.
fn migrate_autobot_when_reachable(settings: &Settings, mut shutdown: watch::Receiver<bool>) {
    let options = settings.autobot_db.options.clone();
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        loop {
            match crate::db::migrate_up(RealmId::Autobot, &options).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "AutoBot database not migrated yet; retrying")
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
}

impl Application {
    /// Connects, migrates (when configured), creates the bootstrap admin, binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        // Install the recorder before anything records, or early metrics would be lost.
        crate::telemetry::prometheus();
        let (shutdown, shutdown_rx) = watch::channel(false);
        if settings.migrate_on_start {
            crate::db::migrate_up(RealmId::Slm, &settings.slm_db.options)
                .await
                .map_err(|e| anyhow::anyhow!("SLM database: {e}"))?;
            let autobot_opts = &settings.autobot_db.options;
            let quick = tokio::time::timeout(
                Duration::from_secs(3),
                crate::db::migrate_up(RealmId::Autobot, autobot_opts),
            )
            .await;
            if !matches!(quick, Ok(Ok(()))) {
                tracing::warn!(
                    "AutoBot database unreachable at start; serving the SLM realm and retrying"
                );
                migrate_autobot_when_reachable(&settings, shutdown_rx.clone());
            }
        }
        let hasher = PasswordHasher::new(settings.hash_concurrency, settings.hash_queue)?;
        let redis = Redis::new(&settings.redis_url)?;
        let slm = realm(RealmId::Slm, &settings);
        let autobot = realm(RealmId::Autobot, &settings);
        if let Some(creds) = crate::bootstrap::ensure_admin(&slm, &hasher, &settings.bootstrap)
            .await
            .map_err(|e| anyhow::anyhow!("creating the bootstrap admin failed: {e}"))?
        {
            // Printed once, on standard output, for the operator (API.md §7).
            println!("BOOTSTRAP_ADMIN_USERNAME={}", creds.username);
            println!("BOOTSTRAP_ADMIN_PASSWORD={}", creds.password);
        }
        let state = AppState::new(AppInner {
            rate_limiter: RateLimiter::new(redis.clone(), settings.redis_key_prefix.clone()),
            slm,
            autobot,
            hasher,
            redis,
            settings: settings.clone(),
        });
        tokio::spawn(crate::outbox::run_relay(
            state.autobot.clone(),
            state.redis.clone(),
            settings.invalidation_channel.clone(),
            shutdown_rx,
        ));
        let router = router(state.clone());
        let listener = TcpListener::bind(settings.bind_addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (BIND_ADDR): {e}", settings.bind_addr)
        })?;
        Ok(Self {
            listener,
            router,
            state,
            shutdown,
        })
    }

    /// The port actually bound (tests bind port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown;
        let serve = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = shutdown.send(true);
        });
        serve.await?;
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

fn scoped(app: &AppState, id: RealmId) -> Scoped {
    Scoped {
        app: app.clone(),
        realm: app.realm(id).clone(),
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

/// The whole HTTP surface. Realm-scoped routers are written once and mounted per realm.
pub fn router(app: AppState) -> Router {
    let slm = scoped(&app, RealmId::Slm);
    let autobot = scoped(&app, RealmId::Autobot);
    let teams = crate::teams::routes().with_state(autobot.clone());
    let api = Router::new()
        .nest(
            "/api/slm-auth",
            crate::auth::routes().with_state(slm.clone()),
        )
        .nest(
            "/api/autobot-auth",
            crate::auth::routes().with_state(autobot.clone()),
        )
        .nest("/api/slm-users", crate::users::routes().with_state(slm))
        .nest(
            "/api/autobot-users",
            crate::users::routes()
                .merge(crate::teams::user_routes())
                .with_state(autobot.clone())
                .nest("/teams", teams.clone()),
        )
        .nest("/api/autobot-teams", teams)
        .nest(
            "/api/access-requests",
            crate::access_requests::routes().with_state(autobot),
        )
        .nest("/api/audit", crate::audit::routes().with_state(app.clone()))
        .route("/healthz", axum::routing::get(crate::ops::healthz))
        .route("/readyz", axum::routing::get(crate::ops::readyz))
        .route("/metrics", axum::routing::get(crate::ops::metrics))
        .with_state(app.clone());

    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(api)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", crate::openapi::document()))
        .fallback(crate::middleware::not_found)
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
        .layer(axum::middleware::from_fn(crate::middleware::observe))
        .layer(axum::middleware::from_fn_with_state(
            app.hasher.clone(),
            crate::middleware::keep_a_core_for_requests,
        ))
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
