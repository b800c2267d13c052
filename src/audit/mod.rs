//! The audit log: events written in the same transaction as the change they describe, and the
//! admin-only `/api/audit` query over both realms.

pub mod db;
mod handlers;

pub use db::AuditEvent;
pub use handlers::{ApiDoc, routes};

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::client::ClientInfo;
use crate::error::ApiError;
use crate::realm::Realm;

/// Who did something, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub id: Option<Uuid>,
    pub username: Option<String>,
    pub client: ClientInfo,
}

impl Actor {
    /// An actor known only by its client (anonymous requests, failed logins).
    pub fn anonymous(client: ClientInfo) -> Self {
        Self {
            id: None,
            username: None,
            client,
        }
    }
}

/// Appends one event to `realm`'s audit log inside `conn`'s transaction.
pub async fn record(
    conn: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    event_type: &str,
    target_id: Option<Uuid>,
    detail: Value,
) -> Result<(), ApiError> {
    let event = AuditEvent {
        id: Uuid::now_v7(),
        occurred_at: chrono::Utc::now(),
        realm: realm.name().to_owned(),
        event_type: event_type.to_owned(),
        actor_id: actor.id,
        actor_username: actor.username.clone(),
        target_id,
        ip: actor.client.ip.map(|ip| ip.to_string()),
        user_agent: actor.client.user_agent.clone(),
        detail,
    };
    db::insert(conn, &event)
        .await
        .map_err(|e| realm.db_error(e))
}
