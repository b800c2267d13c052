//! The SQL of the append-only audit log.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A stored audit event.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub realm: String,
    pub event_type: String,
    pub actor_id: Option<Uuid>,
    pub actor_username: Option<String>,
    pub target_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Filters of an audit query.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub event_type: Option<String>,
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: i64,
}

/// The head of an insert into the audit log, for statements that write an event together with
/// the change it records; follow it with `VALUES` or `SELECT` in this column order.
macro_rules! audit_insert {
    () => {
        "INSERT INTO audit_log (id, occurred_at, realm, event_type, actor_id, actor_username, \
         target_id, ip, user_agent, detail) "
    };
}
pub(crate) use audit_insert;

pub async fn insert(conn: &mut PgConnection, event: &AuditEvent) -> sqlx::Result<()> {
    sqlx::query(concat!(
        audit_insert!(),
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(event.id)
    .bind(event.occurred_at)
    .bind(&event.realm)
    .bind(&event.event_type)
    .bind(event.actor_id)
    .bind(&event.actor_username)
    .bind(event.target_id)
    .bind(&event.ip)
    .bind(&event.user_agent)
    .bind(&event.detail)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The WHERE clause of an audit query: $1 event_type, $2 actor, $3 target, $4 since, $5 until.
macro_rules! audit_filter {
    () => {
        r"WHERE ($1::text IS NULL OR event_type = $1)
            AND ($2::uuid IS NULL OR actor_id = $2)
            AND ($3::uuid IS NULL OR target_id = $3)
            AND ($4::timestamptz IS NULL OR occurred_at >= $4)
            AND ($5::timestamptz IS NULL OR occurred_at <= $5)"
    };
}

/// The newest `filter.limit` matching events and the number of all matching events.
pub async fn newest(
    conn: &mut PgConnection,
    filter: &AuditFilter,
) -> sqlx::Result<(Vec<AuditEvent>, i64)> {
    let events = sqlx::query_as(concat!(
        r"SELECT id, occurred_at, realm, event_type, actor_id, actor_username, target_id, ip,
                 user_agent, detail
          FROM audit_log ",
        audit_filter!(),
        " ORDER BY occurred_at DESC, id DESC LIMIT $6"
    ))
    .bind(&filter.event_type)
    .bind(filter.actor_id)
    .bind(filter.target_id)
    .bind(filter.since)
    .bind(filter.until)
    .bind(filter.limit)
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar(concat!("SELECT count(*) FROM audit_log ", audit_filter!()))
        .bind(&filter.event_type)
        .bind(filter.actor_id)
        .bind(filter.target_id)
        .bind(filter.since)
        .bind(filter.until)
        .fetch_one(&mut *conn)
        .await?;
    Ok((events, total))
}
