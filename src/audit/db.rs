//! The SQL of the audit trail (`audit_logs`, shared with the AutoBot backend, append-only).

use sqlx::PgConnection;
use uuid::Uuid;

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

/// Inserts events in one statement.
pub async fn insert(db: &mut PgConnection, events: &[NewEvent<'_>]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let users: Vec<Option<Uuid>> = events.iter().map(|e| e.user_id).collect();
    let actions: Vec<String> = events.iter().map(|e| e.action.to_owned()).collect();
    let types: Vec<String> = events.iter().map(|e| e.resource_type.to_owned()).collect();
    let resources: Vec<Option<Uuid>> = events.iter().map(|e| e.resource_id).collect();
    let outcomes: Vec<String> = events.iter().map(|e| e.outcome.to_owned()).collect();
    let details: Vec<serde_json::Value> = events.iter().map(|e| e.details.clone()).collect();
    let ips: Vec<Option<String>> = events.iter().map(|e| e.ip_address.clone()).collect();
    let agents: Vec<Option<String>> = events.iter().map(|e| e.user_agent.clone()).collect();
    sqlx::query!(
        r"INSERT INTO public.audit_logs (id, org_id, user_id, action, resource_type, resource_id,
              outcome, details, ip_address, user_agent)
          SELECT id, NULL, user_id, action, resource_type, resource_id, outcome, details,
                 left(ip, 45), left(agent, 500)
          FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[],
                      $7::jsonb[], $8::text[], $9::text[])
               AS e(id, user_id, action, resource_type, resource_id, outcome, details, ip, agent)",
        &ids,
        &users as &[Option<Uuid>],
        &actions,
        &types,
        &resources as &[Option<Uuid>],
        &outcomes,
        &details,
        &ips as &[Option<String>],
        &agents as &[Option<String>],
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}
