//! Building and running the application: migrations, the realms' catalogs, the bootstrap
//! admin, background tasks, and graceful shutdown. The HTTP surface is [`crate::routes`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;
use crate::database::DatabaseSettings;
use crate::http::serve::ConnectionLimits;
use crate::realm::migrate::Unmigratable;
use crate::realm::{Realm, SchemaState};
use crate::state::AppState;

/// Where the console is: under `PUBLIC_URL`, else on the listening address (`localhost` for an
/// address of every interface).
pub fn console_url(settings: &Settings) -> String {
    match &settings.sso.public_url {
        Some(public) => format!("{public}/console/"),
        None => {
            let addr = settings.http.bind_addr;
            let host = match addr.ip().is_unspecified() || addr.ip().is_loopback() {
                true => "localhost".to_owned(),
                false => addr.ip().to_string(),
            };
            format!("http://{host}:{}/console/", addr.port())
        }
    }
}

/// A built server, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    /// `/metrics` on an address of its own (`METRICS_ADDR`), when configured.
    metrics: Option<TcpListener>,
    router: Router,
    state: AppState,
    shutdown: watch::Sender<bool>,
}

/// Brings a realm up: migrates its database (when `migrate`), then reads its catalog, after
/// which it serves (see [`Realm::open`]).
async fn bring_up(realm: &Realm, database: &DatabaseSettings, migrate: bool) -> anyhow::Result<()> {
    if migrate {
        crate::realm::migrate::migrate_up(realm.id(), &database.options).await?;
    }
    realm.open().await.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Brings the AutoBot realm up in the background until it succeeds, so that the server starts
/// (and serves the SLM realm) while that remote database is down or cannot be migrated. The
/// realm's schema state says which (`/readyz`), and its endpoints answer 503 until then. A
/// cause is logged once, in one line, and again only when it changes.
fn bring_up_in_background(
    realm: Realm,
    settings: &Settings,
    mut shutdown: watch::Receiver<bool>,
    mut last_cause: Option<String>,
) {
    let database = settings.autobot_db.clone();
    let migrate = settings.migrate_on_start;
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        loop {
            let outcome = bring_up(&realm, &database, migrate).await;
            let target = database.describe();
            match record_outcome(&realm, &target, outcome, last_cause.as_deref()) {
                Some(cause) => last_cause = Some(cause),
                None => return,
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    });
}

/// Records why the AutoBot realm could not be brought up, in its schema state, and logs the
/// cause unless it is `logged` already; returns the cause, or `None` once it is up.
fn record_outcome(
    realm: &Realm,
    target: &str,
    outcome: anyhow::Result<()>,
    logged: Option<&str>,
) -> Option<String> {
    let err = match outcome {
        Ok(()) => {
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

/// How often the look-alike check's addresses are brought up to date with users written
/// elsewhere.
const ADDRESS_SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// How often the pools close the connections they have not used for a while.
const IDLE_CONNECTION_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Runs `work` on each serving realm every `period` until shutdown.
fn every(
    app: &AppState,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    work: fn(Realm) -> crate::database::BoxFuture<'static, ()>,
) {
    let realms = [app.slm.clone(), app.autobot.clone()];
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            for realm in &realms {
                if realm.schema() == SchemaState::Ready {
                    work(realm.clone()).await;
                }
            }
        }
    });
}

/// Closes the connections each pool has not used for a while (see
/// [`crate::database::IDLE_TIMEOUT`]).
fn close_idle_connections(realm: Realm) -> crate::database::BoxFuture<'static, ()> {
    Box::pin(async move { crate::database::close_idle(realm.pool()).await })
}

/// Keeps the addresses of users the AutoBot backend writes known to the look-alike check.
fn sweep_addresses(realm: Realm) -> crate::database::BoxFuture<'static, ()> {
    Box::pin(async move {
        match crate::addresses::sweep(&realm).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(realm = realm.name(), users = n, "recorded e-mail addresses"),
            Err(err) => {
                tracing::debug!(realm = realm.name(), error = %err, "e-mail addresses not recorded now")
            }
        }
    })
}

impl Application {
    /// Connects, migrates (when configured), creates the bootstrap admin, binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        // Install the recorder before anything records, or early metrics would be lost.
        crate::telemetry::prometheus();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = AppState::build(settings.clone())?;
        bring_up(&state.slm, &settings.slm_db, settings.migrate_on_start)
            .await
            .map_err(|e| anyhow::anyhow!("SLM database {}: {e:#}", settings.slm_db.describe()))?;
        // A reachable AutoBot database is brought up before the server answers; one that is
        // slow, down or blocked is left to the background.
        let quick = tokio::time::timeout(
            Duration::from_secs(3),
            bring_up(
                &state.autobot,
                &settings.autobot_db,
                settings.migrate_on_start,
            ),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 3 s")));
        let target = settings.autobot_db.describe();
        if let Some(cause) = record_outcome(&state.autobot, &target, quick, None) {
            bring_up_in_background(
                state.autobot.clone(),
                &settings,
                shutdown_rx.clone(),
                Some(cause),
            );
        }
        let bootstrap = crate::users::bootstrap::ensure_admin(&state, &settings.bootstrap)
            .await
            .map_err(|e| anyhow::anyhow!("creating the bootstrap admin failed: {e:#}"))?;
        if let Some(creds) = bootstrap {
            // Printed once, on standard output, for the operator (docs/api.md §7).
            println!("BOOTSTRAP_ADMIN_USERNAME={}", creds.username);
            println!(
                "BOOTSTRAP_ADMIN_PASSWORD={}",
                creds.password.expose_secret()
            );
            println!("CONSOLE_URL={}", console_url(&settings));
        }
        every(
            &state,
            ADDRESS_SWEEP_INTERVAL,
            shutdown_rx.clone(),
            sweep_addresses,
        );
        every(
            &state,
            IDLE_CONNECTION_CHECK_INTERVAL,
            shutdown_rx.clone(),
            close_idle_connections,
        );
        for realm in [&state.slm, &state.autobot] {
            tokio::spawn(crate::realm::announcements::listen(
                realm.clone(),
                shutdown_rx.clone(),
            ));
            tokio::spawn(crate::realm::catalog_watch::run(
                realm.clone(),
                shutdown_rx.clone(),
            ));
        }
        let redis = &settings.redis;
        tokio::spawn(crate::outbox::run_relay(
            state.autobot.clone(),
            state.redis.clone(),
            crate::outbox::Targets {
                channel: redis.invalidation_channel.clone(),
                rbac_channel: redis.rbac_channel.clone(),
                rbac_key: redis.rbac_cache_key.clone(),
            },
            shutdown_rx,
        ));
        let router = crate::routes::router(state.clone());
        let bind_addr = settings.http.bind_addr;
        let listener = TcpListener::bind(bind_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {bind_addr} (BIND_ADDR): {e}"))?;
        let metrics = match settings.http.metrics_addr {
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
        let http = &self.state.settings.http;
        let limits = ConnectionLimits {
            header_read_timeout: http.header_read_timeout,
            max_connections: http.max_connections,
            max_per_client: http.max_connections_per_client,
            trusted_proxies: http.trusted_proxies.clone(),
        };
        crate::http::serve::serve(self.listener, self.router, limits, async move {
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
