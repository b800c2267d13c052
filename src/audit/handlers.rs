//! `GET /api/audit`: SLM admins read both realms' audit logs, newest first.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::db::{self, AuditFilter};
use crate::audit::dto::{AuditEvent, AuditEventList, AuditQuery};
use crate::auth::authz::{self, Perm};
use crate::auth::principal::Operator;
use crate::error::{ApiError, FieldError};
use crate::extract::ApiQuery;
use crate::pagination::{Listed, Page};
use crate::realm::RealmId;
use crate::state::AppState;

/// Read the audit log (SLM admin only).
#[utoipa::path(get, path = "", params(AuditQuery),
    responses((status = 200, body = AuditEventList, headers(("x-total-count" = i64, description = "All matches"),
        ("x-unavailable-realms" = String, description = "Realms whose log could not be read")))),
    security(("bearer" = [])))]
pub async fn list_audit_events(
    State(app): State<AppState>,
    Operator(op): Operator,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    authz::require(&op, Perm::ReadAudit)?;
    let page = Page::parse(query.skip, query.offset, query.limit, 500)?;
    if query
        .event_type
        .as_ref()
        .is_some_and(|t| t.chars().count() > 100)
    {
        return Err(ApiError::field(FieldError::query(
            "event_type",
            "String should have at most 100 characters",
        )));
    }
    let realms: Vec<RealmId> = match query.realm.as_deref() {
        None => vec![RealmId::Slm, RealmId::Autobot],
        Some(name) => vec![
            name.parse()
                .map_err(|msg: String| ApiError::field(FieldError::query("realm", msg)))?,
        ],
    };
    // Each realm keeps its events beside its data (same transaction); merge the newest
    // `skip + limit` of each. Counting first means a `skip` past the end reads no rows.
    let mut filter = AuditFilter {
        event_type: query.event_type,
        actor_id: query.actor_id,
        target_id: query.target_id,
        since: query.since,
        until: query.until,
        limit: page.skip.saturating_add(page.limit),
    };
    let mut counted = Vec::new();
    let mut unavailable = Vec::new();
    for id in realms {
        let realm = app.realm(id);
        let count = async {
            let mut conn = realm.conn().await?;
            Ok::<_, ApiError>((db::count(&mut conn, &filter).await?, conn))
        }
        .await;
        match count {
            Ok((count, conn)) => counted.push((id.as_str(), count, conn)),
            // The SLM log must answer; a missing AutoBot log is reported, not fatal.
            Err(err) if err.is_unavailable() && id == RealmId::Autobot && query.realm.is_none() => {
                unavailable.push(id.as_str())
            }
            Err(err) => return Err(err),
        }
    }
    let total: i64 = counted.iter().map(|(_, count, _)| *count).sum();
    let mut events = Vec::new();
    if page.skip < total {
        let wanted = filter.limit;
        for (name, count, mut conn) in counted {
            filter.limit = wanted.min(count);
            events.append(&mut db::newest(&mut conn, name, &filter).await?);
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse((e.occurred_at, e.id)));
    let page_events: Vec<AuditEvent> = events
        .into_iter()
        .skip(usize::try_from(page.skip).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(0))
        .collect();
    let body = AuditEventList {
        events: page_events,
        total,
        limit: page.limit,
        offset: page.skip,
    };
    let mut response = Listed(body, total).into_response();
    if !unavailable.is_empty()
        && let Ok(value) = HeaderValue::from_str(&unavailable.join(","))
    {
        response.headers_mut().insert("x-unavailable-realms", value);
    }
    Ok(response)
}

/// `/api/audit`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}
