//! The queries of the audit log: a page of events and their number, and a user's events.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit_log::dto::AuditEvent;

/// Filters of an audit query. The actor is the local user or, for an operator of the other
/// realm, `details.actor.id`.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub event_type: Option<String>,
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: i64,
}

/// An audit row as stored.
struct Row {
    id: Uuid,
    created_at: DateTime<Utc>,
    user_id: Option<Uuid>,
    action: String,
    outcome: String,
    resource_id: Option<Uuid>,
    details: serde_json::Value,
    ip_address: Option<String>,
    user_agent: Option<String>,
}

impl Row {
    fn into_event(self, realm: &str) -> AuditEvent {
        let mut details = self.details;
        let actor = details
            .as_object_mut()
            .and_then(|d| d.remove("actor"))
            .unwrap_or_default();
        let actor_id = self
            .user_id
            .or_else(|| actor["id"].as_str().and_then(|s| s.parse().ok()));
        AuditEvent {
            id: self.id,
            occurred_at: self.created_at,
            realm: realm.to_owned(),
            event_type: self.action,
            outcome: self.outcome,
            actor_id,
            actor_username: actor["username"].as_str().map(str::to_owned),
            target_id: self.resource_id,
            ip: self.ip_address,
            user_agent: self.user_agent,
            detail: details,
        }
    }
}

/// The newest `filter.limit` matching events of `realm`'s trail.
pub async fn newest(
    db: &mut PgConnection,
    realm: &str,
    filter: &AuditFilter,
) -> sqlx::Result<Vec<AuditEvent>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, created_at, user_id, action::text AS "action!", outcome::text AS "outcome!",
                  resource_id, details, ip_address::text, user_agent::text
           FROM public.audit_logs
           WHERE ($1::text IS NULL OR action = $1)
             AND ($2::uuid IS NULL OR user_id = $2 OR details -> 'actor' ->> 'id' = $2::text)
             AND ($3::uuid IS NULL OR resource_id = $3)
             AND ($4::timestamptz IS NULL OR created_at >= $4)
             AND ($5::timestamptz IS NULL OR created_at <= $5)
           ORDER BY created_at DESC, id DESC LIMIT $6"#,
        filter.event_type,
        filter.actor_id,
        filter.target_id,
        filter.since,
        filter.until,
        filter.limit,
    )
    .fetch_all(&mut *db)
    .await?;
    Ok(rows.into_iter().map(|r| r.into_event(realm)).collect())
}

/// The number of matching events.
pub async fn count(db: &mut PgConnection, filter: &AuditFilter) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM public.audit_logs
           WHERE ($1::text IS NULL OR action = $1)
             AND ($2::uuid IS NULL OR user_id = $2 OR details -> 'actor' ->> 'id' = $2::text)
             AND ($3::uuid IS NULL OR resource_id = $3)
             AND ($4::timestamptz IS NULL OR created_at >= $4)
             AND ($5::timestamptz IS NULL OR created_at <= $5)"#,
        filter.event_type,
        filter.actor_id,
        filter.target_id,
        filter.since,
        filter.until,
    )
    .fetch_one(&mut *db)
    .await
}

/// The events about or by a user (the GDPR export), newest first.
pub async fn about_user(
    db: &mut PgConnection,
    realm: &str,
    user_id: Uuid,
) -> sqlx::Result<Vec<AuditEvent>> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, created_at, user_id, action::text AS "action!", outcome::text AS "outcome!",
                  resource_id, details, ip_address::text, user_agent::text
           FROM public.audit_logs WHERE resource_id = $1 OR user_id = $1
           ORDER BY created_at DESC, id DESC LIMIT 10000"#,
        user_id
    )
    .fetch_all(&mut *db)
    .await?;
    Ok(rows.into_iter().map(|r| r.into_event(realm)).collect())
}
