//! The audit trail: events written into the realm's shared `audit_logs` (one trail with the
//! AutoBot backend's own events) in the same transaction as the change they record, the
//! recording of every refused request, and the admin-only `/api/audit` query over both realms.

pub mod db;
mod dto;
mod handlers;

pub use dto::AuditEvent;
pub use handlers::router;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::client::ClientInfo;
use crate::database::Db;
use crate::error::{ApiError, Denial};
use crate::realm::{Realm, RealmId};
use crate::state::AppState;

/// Who did something, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub id: Option<Uuid>,
    pub username: Option<String>,
    /// The realm the actor belongs to (SLM operators act on AutoBot users).
    pub realm: Option<RealmId>,
    pub client: ClientInfo,
}

impl Actor {
    /// An actor known only by its client (anonymous requests, failed logins).
    pub fn anonymous(client: ClientInfo) -> Self {
        Self {
            client,
            ..Self::default()
        }
    }

    /// A command run on the server itself (`slm-server create-admin`, the bootstrap).
    pub fn system(name: &str) -> Self {
        Self {
            username: Some(name.to_owned()),
            ..Self::default()
        }
    }
}

/// What kind of thing an event is about, from its name (the `resource_type` column).
fn resource_type(event: &str) -> &'static str {
    if event.starts_with("team_") {
        "team"
    } else if event.starts_with("api_key_") {
        "api_key"
    } else if event.starts_with("access_request_") {
        "access_request"
    } else {
        "user"
    }
}

/// Whether an event records something done or something refused (the `outcome` column).
fn outcome(event: &str) -> &'static str {
    match event {
        "login_failure" | "token_reuse_detected" | "account_locked" => "failure",
        "permission_denied" => "denied",
        _ => "success",
    }
}

/// Appends one event to `realm`'s audit trail inside `db`'s transaction.
///
/// `user_id` is the actor only when the actor is a user of this same database (its foreign
/// key): an SLM operator changing an AutoBot user is named in `details.actor` instead.
pub async fn record(
    db: &mut impl Db,
    realm: &Realm,
    actor: &Actor,
    event_type: &str,
    target_id: Option<Uuid>,
    detail: Value,
) -> Result<(), ApiError> {
    Ok(db::insert(db, &event(realm, actor, event_type, target_id, detail)).await?)
}

fn event<'a>(
    realm: &Realm,
    actor: &Actor,
    event_type: &'a str,
    target_id: Option<Uuid>,
    detail: Value,
) -> db::NewEvent<'a> {
    let local_actor = actor.id.filter(|_| actor.realm == Some(realm.id()));
    let mut details = match detail {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("value".to_owned(), other)]),
    };
    details.insert(
        "actor".to_owned(),
        json!({
            "id": actor.id,
            "username": actor.username,
            "realm": actor.realm.map(RealmId::as_str),
        }),
    );
    db::NewEvent {
        id: Uuid::now_v7(),
        user_id: local_actor,
        action: event_type,
        resource_type: resource_type(event_type),
        resource_id: target_id,
        outcome: outcome(event_type),
        details: Value::Object(details),
        ip_address: actor.client.ip.map(|ip| ip.to_string()),
        user_agent: actor.client.user_agent.clone(),
    }
}

/// Appends one event per target (the same kind, each with its own detail), in one statement.
pub async fn record_many(
    db: &mut impl Db,
    realm: &Realm,
    actor: &Actor,
    event_type: &str,
    targets: &[(Uuid, Value)],
) -> Result<(), ApiError> {
    let events: Vec<db::NewEvent<'_>> = targets
        .iter()
        .map(|(target, detail)| event(realm, actor, event_type, Some(*target), detail.clone()))
        .collect();
    Ok(db::insert_many(db, &events).await?)
}

/// Records every 403 as `permission_denied` in the refused principal's realm (docs/api.md §4). The
/// refusal changed nothing, so the event is written on its own, after the answer is known.
pub async fn record_denials(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().to_string();
    let response = next.run(request).await;
    let Some(denial) = response.extensions().get::<Denial>().cloned() else {
        return response;
    };
    let Ok(realm_id) = denial.realm.parse::<RealmId>() else {
        return response;
    };
    let realm = app.realm(realm_id);
    let actor = Actor {
        id: Some(denial.actor_id),
        username: Some(denial.actor_username.clone()),
        realm: Some(realm_id),
        client: ClientInfo {
            ip: denial.ip.as_deref().and_then(|ip| ip.parse().ok()),
            user_agent: denial.user_agent.clone(),
        },
    };
    let detail = json!({
        "method": method,
        "path": path,
        "reason": denial.detail,
        "permission": denial.permission,
    });
    let written = async {
        let mut conn = realm.conn().await?;
        record(
            &mut conn,
            realm,
            &actor,
            "permission_denied",
            Some(denial.actor_id),
            detail,
        )
        .await
    }
    .await;
    if let Err(err) = written {
        tracing::warn!(error = %err, "could not record a permission_denied event");
    }
    response
}
