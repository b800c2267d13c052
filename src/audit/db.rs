//! The SQL of the audit trail (`audit_logs`, shared with the AutoBot backend, append-only).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::dto::AuditEvent;
use crate::database::Db;

/// A new event.
pub struct NewEvent<'a> {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<Uuid>,
    pub outcome: &'a str,
    pub details: serde_json::Value,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

pub async fn insert(db: &mut impl Db, event: &NewEvent<'_>) -> sqlx::Result<()> {
    sqlx::query(
        r"INSERT INTO public.audit_logs (id, org_id, user_id, action, resource_type, resource_id,
              outcome, details, ip_address, user_agent)
          VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, left($8, 45), left($9, 500))",
    )
    .bind(event.id)
    .bind(event.user_id)
    .bind(event.action)
    .bind(event.resource_type)
    .bind(event.resource_id)
    .bind(event.outcome)
    .bind(&event.details)
    .bind(&event.ip_address)
    .bind(&event.user_agent)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// Inserts events in one statement.
pub async fn insert_many(db: &mut impl Db, events: &[NewEvent<'_>]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let users: Vec<Option<Uuid>> = events.iter().map(|e| e.user_id).collect();
    let actions: Vec<&str> = events.iter().map(|e| e.action).collect();
    let types: Vec<&str> = events.iter().map(|e| e.resource_type).collect();
    let resources: Vec<Option<Uuid>> = events.iter().map(|e| e.resource_id).collect();
    let outcomes: Vec<&str> = events.iter().map(|e| e.outcome).collect();
    let details: Vec<&serde_json::Value> = events.iter().map(|e| &e.details).collect();
    let ips: Vec<Option<&str>> = events.iter().map(|e| e.ip_address.as_deref()).collect();
    let agents: Vec<Option<&str>> = events.iter().map(|e| e.user_agent.as_deref()).collect();
    sqlx::query(
        r"INSERT INTO public.audit_logs (id, org_id, user_id, action, resource_type, resource_id,
              outcome, details, ip_address, user_agent)
          SELECT id, NULL, user_id, action, resource_type, resource_id, outcome, details,
                 left(ip, 45), left(agent, 500)
          FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[],
                      $7::jsonb[], $8::text[], $9::text[])
               AS e(id, user_id, action, resource_type, resource_id, outcome, details, ip, agent)",
    )
    .bind(&ids)
    .bind(&users)
    .bind(&actions)
    .bind(&types)
    .bind(&resources)
    .bind(&outcomes)
    .bind(&details)
    .bind(&ips)
    .bind(&agents)
    .execute(db.exec())
    .await
    .map(|_| ())
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

/// The WHERE clause of an audit query: $1 action, $2 actor, $3 target, $4 since, $5 until. The
/// actor is the local user or, for an operator of the other realm, `details.actor.id`.
macro_rules! audit_filter {
    () => {
        r"WHERE ($1::text IS NULL OR action = $1)
            AND ($2::uuid IS NULL OR user_id = $2 OR details -> 'actor' ->> 'id' = $2::text)
            AND ($3::uuid IS NULL OR resource_id = $3)
            AND ($4::timestamptz IS NULL OR created_at >= $4)
            AND ($5::timestamptz IS NULL OR created_at <= $5)"
    };
}

#[derive(sqlx::FromRow)]
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
    db: &mut impl Db,
    realm: &str,
    filter: &AuditFilter,
) -> sqlx::Result<Vec<AuditEvent>> {
    let rows: Vec<Row> = sqlx::query_as(concat!(
        r"SELECT id, created_at, user_id, action::text, outcome::text, resource_id, details,
                 ip_address::text, user_agent::text
          FROM public.audit_logs ",
        audit_filter!(),
        " ORDER BY created_at DESC, id DESC LIMIT $6"
    ))
    .bind(&filter.event_type)
    .bind(filter.actor_id)
    .bind(filter.target_id)
    .bind(filter.since)
    .bind(filter.until)
    .bind(filter.limit)
    .fetch_all(db.exec())
    .await?;
    Ok(rows.into_iter().map(|r| r.into_event(realm)).collect())
}

/// The number of matching events.
pub async fn count(db: &mut impl Db, filter: &AuditFilter) -> sqlx::Result<i64> {
    sqlx::query_scalar(concat!(
        "SELECT count(*) FROM public.audit_logs ",
        audit_filter!()
    ))
    .bind(&filter.event_type)
    .bind(filter.actor_id)
    .bind(filter.target_id)
    .bind(filter.since)
    .bind(filter.until)
    .fetch_one(db.exec())
    .await
}

/// The events about or by a user (the GDPR export), newest first.
pub async fn about_user(
    db: &mut impl Db,
    realm: &str,
    user_id: Uuid,
) -> sqlx::Result<Vec<AuditEvent>> {
    let rows: Vec<Row> = sqlx::query_as(
        r"SELECT id, created_at, user_id, action::text, outcome::text, resource_id, details,
                 ip_address::text, user_agent::text
          FROM public.audit_logs WHERE resource_id = $1 OR user_id = $1
          ORDER BY created_at DESC, id DESC LIMIT 10000",
    )
    .bind(user_id)
    .fetch_all(db.exec())
    .await?;
    Ok(rows.into_iter().map(|r| r.into_event(realm)).collect())
}
