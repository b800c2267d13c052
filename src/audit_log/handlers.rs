//! `GET /api/audit`: SLM admins read both realms' audit logs, newest first.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use crate::access::authz::CanReadAudit;
use crate::audit_log::db::{self, AuditFilter};
use crate::audit_log::dto::{AuditEvent, AuditEventList, AuditQuery};
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::ApiQuery;
use crate::http::pagination::{Listed, Page};
use crate::realm::RealmId;
use crate::state::AppState;

/// Read the audit log (SLM admin only).
#[utoipa::path(get, path = "", params(Page<500>, AuditQuery),
    responses((status = 200, body = AuditEventList, headers(("x-total-count" = i64, description = "All matches"),
        ("x-unavailable-realms" = String, description = "Realms whose log could not be read")))),
    security(("bearer" = [])))]
pub async fn list_audit_events(
    State(app): State<AppState>,
    _op: CanReadAudit,
    page: Page<500>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let Found {
        events,
        total,
        unavailable,
    } = search(&app, &query, page).await?;
    let body = AuditEventList {
        events,
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

/// A page of the audit log.
pub struct Found {
    pub events: Vec<AuditEvent>,
    /// All matches.
    pub total: i64,
    /// Realms whose log could not be read (the AutoBot one, when its database is down).
    pub unavailable: Vec<&'static str>,
}

/// The events of both realms (or of `query.realm`) matching `query`, newest first: a page.
pub async fn search(
    app: &AppState,
    query: &AuditQuery,
    page: Page<500>,
) -> Result<Found, ApiError> {
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
    // `skip + limit` of each (no more than it holds).
    let filter = AuditFilter {
        event_type: query.event_type.clone(),
        actor_id: query.actor_id,
        target_id: query.target_id,
        since: query.since,
        until: query.until,
        limit: page.skip.saturating_add(page.limit),
    };
    let (mut total, mut events, mut unavailable) = (0, Vec::new(), Vec::new());
    for id in realms {
        let realm = app.realm(id);
        let filter = &filter;
        let read = realm
            .read(|mut db| {
                Box::pin(async move {
                    let count = db::count(&mut db, filter).await?;
                    let wanted = AuditFilter {
                        limit: filter.limit.min(count),
                        ..filter.clone()
                    };
                    let events = match count {
                        0 => Vec::new(),
                        _ => db::newest(&mut db, realm.name(), &wanted).await?,
                    };
                    Ok((count, events))
                })
            })
            .await;
        match read {
            Ok((count, mut found)) => {
                total += count;
                events.append(&mut found);
            }
            // The SLM log must answer; a missing AutoBot log is reported, not fatal.
            Err(err) if err.is_unavailable() && id == RealmId::Autobot && query.realm.is_none() => {
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
    Ok(Found {
        events: page_events,
        total,
        unavailable,
    })
}
