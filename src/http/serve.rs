//! Serving the API over TCP with limits that no client can exhaust: HTTP/1.1 connections that
//! must deliver each request's headers within a deadline (which also closes idle keep-alive
//! connections), at most so many connections in all (kept below the descriptor limit, so the
//! server never fails to accept, connect to its databases or log), and at most so many per
//! client address. Shutdown stops accepting and lets requests under way finish.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::http::raw_errors::{Peer, ShapedIo};

/// How many connections the server keeps, and for how long without a complete request head.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// A request's headers must arrive within this; a keep-alive connection idle this long
    /// closes too (hyper's one timer for both).
    pub header_read_timeout: Duration,
    /// Connections open at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Connections of one client address at once; beyond, a new one is closed at once. The
    /// trusted proxies (nginx) are not limited: their clients are many.
    pub max_per_client: usize,
    /// Peers not limited per address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The connections each client address has open.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in its client's count, given back when dropped.
struct ClientSlot {
    counts: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    fn take(counts: &Arc<PerClient>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut map = counts.0.lock().unwrap_or_else(|p| p.into_inner());
        let open = map.entry(ip).or_insert(0);
        if *open >= max {
            return None;
        }
        *open += 1;
        Some(ClientSlot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = map.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// How long requests under way may take to finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = Arc::new(PerClient::default());
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((stream, peer, slot)) = accepted else {
            continue;
        };
        let trusted = limits
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.ip()));
        let client_slot = match trusted {
            true => None,
            false => match PerClient::take(&per_client, peer.ip(), limits.max_per_client) {
                Some(taken) => Some(taken),
                None => {
                    metrics::counter!("connections_refused_total", "reason" => "per_client")
                        .increment(1);
                    continue;
                }
            },
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let service = router.clone().map_request(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(Peer(peer)));
                request
            },
        );
        let connection = http.serve_connection(
            TokioIo::new(ShapedIo::new(stream)),
            TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(client_slot);
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still under way after {DRAIN:?}; stopping anyway");
    }
}

/// The next connection once a place is free. An accept error (the descriptor limit despite
/// the cap, a connection reset before it was accepted) is logged and waited out briefly.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, slot)),
        Err(err) => {
            tracing::warn!(error = %err, "accepting a connection failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// The default cap on connections: what the descriptor limit leaves after the database pools
/// and a reserve for Redis, logs, the databases' listening connections and the metrics port.
pub fn default_max_connections(pools: u32) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(65_536);
    let reserved = u64::from(pools) + 128;
    usize::try_from(limit.saturating_sub(reserved).clamp(64, 65_536)).unwrap_or(64)
}
