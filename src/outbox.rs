//! Cache invalidation through a transactional outbox (API.md §5): a message row is written in
//! the same transaction as the user change it announces, and a relay task publishes it to Redis
//! after commit, at least once and in commit order, then deletes it. Redis being down never
//! fails a write; the backlog waits and is delivered when Redis returns.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgConnection;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::ApiError;
use crate::realm::Realm;
use crate::state::Redis;

/// The PostgreSQL channel that wakes the relay after a commit.
const NOTIFY_CHANNEL: &str = "slm_outbox";
/// How often the relay looks for work when no notification arrives (missed notifications,
/// a listener reconnecting).
const POLL_INTERVAL: Duration = Duration::from_secs(2);
const BATCH: i64 = 200;

/// Queues one invalidation message per user in `user_ids`, inside the caller's transaction.
/// A no-op in realms that do not publish invalidations.
pub async fn enqueue(
    conn: &mut PgConnection,
    realm: &Realm,
    user_ids: &[Uuid],
    event: &str,
) -> Result<(), ApiError> {
    if !realm.policy().publishes_invalidations || user_ids.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now();
    let payloads: Vec<serde_json::Value> = user_ids
        .iter()
        .map(|user_id| {
            json!({
                "user_id": user_id,
                "realm": realm.name(),
                "event": event,
                "id": Uuid::now_v7(),
                "occurred_at": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            })
        })
        .collect();
    sqlx::query("INSERT INTO outbox (payload) SELECT * FROM UNNEST($1::jsonb[])")
        .bind(&payloads)
        .execute(&mut *conn)
        .await
        .map_err(|e| realm.db_error(e))?;
    // NOTIFY is delivered only when the transaction commits, which is exactly when to relay.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(NOTIFY_CHANNEL)
        .execute(&mut *conn)
        .await
        .map_err(|e| realm.db_error(e))?;
    Ok(())
}

/// Number of pending messages and the age in seconds of the oldest.
pub async fn backlog(realm: &Realm) -> sqlx::Result<(i64, f64)> {
    sqlx::query_as(
        r"SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0)
          FROM outbox",
    )
    .fetch_one(realm.db())
    .await
}

/// Publishes pending rows once; returns how many were delivered. One relay at a time holds the
/// realm-wide lock, so several replicas never reorder or double-publish a batch; a crash before
/// commit leaves the rows for the next attempt (at-least-once).
pub async fn relay_once(realm: &Realm, redis: &Redis, channel: &str) -> anyhow::Result<usize> {
    let mut tx = realm.db().begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(7263511, 2)")
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(0);
    }
    let rows: Vec<(i64, serde_json::Value)> =
        sqlx::query_as("SELECT id, payload FROM outbox ORDER BY id LIMIT $1")
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let started = Instant::now();
    let mut pipe = redis::pipe();
    for (_, payload) in &rows {
        pipe.publish(channel, payload.to_string()).ignore();
    }
    let mut conn = redis.conn();
    pipe.query_async::<()>(&mut conn).await?;
    metrics::histogram!("outbox_publish_seconds").record(started.elapsed().as_secs_f64());
    let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    metrics::counter!("outbox_published_total").increment(rows.len() as u64);
    Ok(rows.len())
}

/// Runs the relay until `shutdown` changes: woken by NOTIFY after each commit, polling as a
/// fallback, backing off while Redis or the database is down.
pub async fn run_relay(
    realm: Realm,
    redis: Redis,
    channel: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut listener: Option<PgListener> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        if listener.is_none() {
            listener = match PgListener::connect_with(realm.db()).await {
                Ok(mut l) => match l.listen(NOTIFY_CHANNEL).await {
                    Ok(()) => Some(l),
                    Err(_) => None,
                },
                Err(_) => None,
            };
        }
        let delivered = relay_once(&realm, &redis, &channel).await;
        let wait = match &delivered {
            Ok(n) if *n as i64 == BATCH => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Ok(_) => {
                backoff = Duration::from_millis(100);
                POLL_INTERVAL
            }
            Err(err) => {
                tracing::debug!(error = %err, "outbox relay attempt failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(2));
                backoff
            }
        };
        let mut listener_lost = false;
        {
            let notified = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
                result = notified, if delivered.is_ok() => listener_lost = result.is_err(),
            }
        }
        if listener_lost {
            listener = None;
        }
    }
}
