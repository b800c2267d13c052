//! Request and response bodies of `/api/audit`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// An audit event of either realm (docs/api.md §3).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// `slm` or `autobot`: whose audit log holds the event.
    pub realm: String,
    pub event_type: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub actor_id: Option<Uuid>,
    pub actor_username: Option<String>,
    pub target_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A page of audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventList {
    pub events: Vec<AuditEvent>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[param(max_length = 100)]
    pub event_type: Option<String>,
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    /// RFC 3339 (`2026-02-05T10:00:00Z`).
    #[serde(default, deserialize_with = "crate::http::extract::rfc3339")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::http::extract::rfc3339")]
    pub until: Option<DateTime<Utc>>,
    /// Both realms when absent.
    #[param(value_type = Option<String>, pattern = "^(slm|autobot)$")]
    pub realm: Option<String>,
}
