//! `GET /api/audit`: SLM admins read both realms' audit logs, newest first.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

use crate::audit::db::{self, AuditEvent, AuditFilter};
use crate::auth::authz::{self, Perm};
use crate::auth::principal::Operator;
use crate::error::{ApiError, FieldError};
use crate::extract::ApiQuery;
use crate::pagination::{Listed, Page};
use crate::realm::RealmId;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// 1..=500, default 100.
    pub limit: Option<i64>,
    pub skip: Option<i64>,
    pub event_type: Option<String>,
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    /// RFC 3339 (`2026-02-05T10:00:00Z`).
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// `slm` or `autobot`; both when absent.
    pub realm: Option<String>,
}

/// Read the audit log (SLM admin only).
#[utoipa::path(get, path = "", params(AuditQuery),
    responses((status = 200, body = Vec<AuditEvent>), (status = 403, body = crate::openapi::HttpError)),
    security(("bearer" = [])))]
pub async fn list_audit_events(
    State(app): State<AppState>,
    Operator(op): Operator,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    authz::require(&op, Perm::ReadAudit)?;
    let page = Page::parse(query.skip, query.limit, 500)?;
    let realms: Vec<RealmId> = match query.realm.as_deref() {
        None => vec![RealmId::Slm, RealmId::Autobot],
        Some(name) => vec![
            name.parse()
                .map_err(|msg: String| ApiError::field(FieldError::query("realm", msg)))?,
        ],
    };
    // Each realm keeps its events beside its data (same transaction); merge the newest.
    let filter = AuditFilter {
        event_type: query.event_type,
        actor_id: query.actor_id,
        target_id: query.target_id,
        since: query.since,
        until: query.until,
        limit: page.skip + page.limit,
    };
    let mut events = Vec::new();
    let mut total = 0i64;
    let mut unavailable = Vec::new();
    for id in realms {
        let realm = app.realm(id);
        let fetched = async {
            let mut conn = realm.acquire().await?;
            db::newest(&mut conn, &filter)
                .await
                .map_err(|e| realm.db_error(e))
        }
        .await;
        match fetched {
            Ok((mut list, count)) => {
                events.append(&mut list);
                total += count;
            }
            // The SLM log must answer; a missing AutoBot log is reported, not fatal.
            Err(ApiError::Unavailable { .. })
                if id == RealmId::Autobot && query.realm.is_none() =>
            {
                unavailable.push(id.as_str())
            }
            Err(err) => return Err(err),
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse((e.occurred_at, e.id)));
    let page_events: Vec<AuditEvent> = events
        .into_iter()
        .skip(usize::try_from(page.skip).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(0))
        .collect();
    let mut response = Listed(page_events, total).into_response();
    if !unavailable.is_empty()
        && let Ok(value) = HeaderValue::from_str(&unavailable.join(","))
    {
        response.headers_mut().insert("x-unavailable-realms", value);
    }
    Ok(response)
}

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/", axum::routing::get(list_audit_events))
}

#[derive(OpenApi)]
#[openapi(paths(list_audit_events))]
pub struct ApiDoc;
