//! Cache invalidation through a transactional outbox (docs/api.md §5): a message row is written in
//! the same transaction as the user change it announces, and a relay task delivers it after
//! commit, at least once and in commit order, then deletes it. Redis being down never fails a
//! write; the backlog waits and is delivered when Redis returns.
//!
//! Each message goes to every cache that exists, each of which can be turned off:
//! 1. the AutoBot backend's permission cache: `DEL rbac:perm:<user_id>`, then
//!    `PUBLISH autobot:rbac:invalidate {"user_id"}`;
//! 2. the seed design's channel `user:cache:invalidate` with the whole message.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use sqlx::PgConnection;

use crate::http::error::ApiError;
use crate::realm::Realm;
use crate::realm::announcements::Channel;
use crate::redis_client::Redis;

/// How often the relay looks for work when no notification arrives.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
const BATCH: i64 = 200;

/// Where messages go; `None` turns a target off.
#[derive(Clone, Debug)]
pub struct Targets {
    /// The seed design's channel.
    pub channel: Option<String>,
    /// The AutoBot backend's RBAC invalidation channel.
    pub rbac_channel: Option<String>,
    /// The AutoBot backend's cached-permissions key, `{user_id}` standing for the user.
    pub rbac_key: Option<String>,
}

/// What changed, as the `event` of an invalidation message (docs/api.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxEvent {
    UserCreated,
    UserUpdated,
    UserDeactivated,
    UserDeleted,
    UserRolesChanged,
    UserPasswordChanged,
    UserSessionsRevoked,
    TeamMembershipChanged,
    TeamDeleted,
}

impl OutboxEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserUpdated => "user.updated",
            Self::UserDeactivated => "user.deactivated",
            Self::UserDeleted => "user.deleted",
            Self::UserRolesChanged => "user.roles_changed",
            Self::UserPasswordChanged => "user.password_changed",
            Self::UserSessionsRevoked => "user.sessions_revoked",
            Self::TeamMembershipChanged => "team.membership_changed",
            Self::TeamDeleted => "team.deleted",
        }
    }
}

/// Queues one invalidation message per user in `user_ids`, inside the caller's transaction.
/// A no-op in realms that do not publish invalidations.
pub async fn enqueue(
    db: &mut PgConnection,
    realm: &Realm,
    user_ids: &[Uuid],
    event: OutboxEvent,
) -> Result<(), ApiError> {
    if !realm.policy().publishes_invalidations || user_ids.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let payloads: Vec<serde_json::Value> = user_ids
        .iter()
        .map(|user_id| {
            json!({
                "user_id": user_id,
                "realm": realm.name(),
                "event": event.as_str(),
                "id": Uuid::now_v7(),
                "occurred_at": now,
            })
        })
        .collect();
    // One round trip: the rows, and the NOTIFY that wakes the relay. A NOTIFY is delivered only
    // when the transaction commits, which is exactly when to relay.
    sqlx::query!(
        r#"WITH queued AS (
               INSERT INTO slm_server.outbox (user_id, payload)
               SELECT * FROM UNNEST($1::uuid[], $2::jsonb[])
           )
           SELECT pg_notify($3, '') AS "notified""#,
        user_ids,
        &payloads,
        Channel::Outbox.name(),
    )
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Number of pending messages and the age in seconds of the oldest.
pub async fn backlog(realm: &Realm) -> Result<(i64, f64), ApiError> {
    realm
        .read(|mut db| {
            Box::pin(async move {
                let row = sqlx::query!(
                    r#"SELECT count(*) AS "pending!",
                              COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0)
                                  AS "oldest!"
                       FROM slm_server.outbox"#
                )
                .fetch_one(&mut *db)
                .await?;
                Ok((row.pending, row.oldest))
            })
        })
        .await
}

/// Delivers pending rows once; returns how many were delivered. One relay at a time holds the
/// realm-wide lock, so several replicas never reorder or double-deliver a batch; a crash
/// before commit leaves the rows for the next attempt (at-least-once).
pub async fn relay_once(
    realm: &Realm,
    redis: &Redis,
    targets: &Targets,
) -> Result<usize, ApiError> {
    realm
        .transaction(|mut tx| Box::pin(async move { relay_batch(&mut tx, redis, targets).await }))
        .await
}

async fn relay_batch(
    tx: &mut PgConnection,
    redis: &Redis,
    targets: &Targets,
) -> Result<usize, ApiError> {
    // The batch is taken (deleted) under the realm-wide lock, tried once, before publishing: a
    // failed publish rolls the transaction back and the rows stay (at-least-once). Another
    // replica's relay holding the lock takes nothing here.
    //
    // The deletion commits without waiting for the disk (`synchronous_commit` off for this
    // transaction only): if PostgreSQL crashes before writing it, the rows come back and are
    // delivered again, which at-least-once allows. The change that queued them was committed
    // durably; only this bookkeeping is not, so that each change costs one flush of the log,
    // not two.
    let mut rows = sqlx::query!(
        r#"WITH relay AS (
               SELECT pg_try_advisory_xact_lock(7263511, 2) AS locked,
                      set_config('synchronous_commit', 'off', true) AS commit_mode
           )
           DELETE FROM slm_server.outbox
           WHERE id IN (SELECT o.id FROM slm_server.outbox o, relay
                        WHERE relay.locked ORDER BY o.id LIMIT $1)
           RETURNING id, user_id, payload"#,
        BATCH
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    rows.sort_by_key(|r| r.id);
    let started = Instant::now();
    // One pipeline, in id order: each user's messages arrive in commit order everywhere.
    let mut pipe = redis::pipe();
    for row in &rows {
        if let Some(key) = &targets.rbac_key {
            pipe.del(key.replace("{user_id}", &row.user_id.to_string()))
                .ignore();
        }
        if let Some(channel) = &targets.rbac_channel {
            pipe.publish(channel, json!({ "user_id": row.user_id }).to_string())
                .ignore();
        }
        if let Some(channel) = &targets.channel {
            pipe.publish(channel, row.payload.to_string()).ignore();
        }
    }
    let mut conn = redis.conn();
    pipe.query_async::<()>(&mut conn)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("publishing to Redis failed: {e}")))?;
    metrics::histogram!("outbox_publish_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("outbox_published_total").increment(rows.len() as u64);
    Ok(rows.len())
}

/// Runs the relay until `shutdown` changes: woken by NOTIFY after each commit, polling as a
/// fallback, backing off while Redis or the database is down.
pub async fn run_relay(
    realm: Realm,
    redis: Redis,
    targets: Targets,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let delivered = relay_once(&realm, &redis, &targets).await;
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
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = realm.announcements().next(Channel::Outbox), if delivered.is_ok() => {}
        }
    }
}
