//! The audit log (`/console/audit`): every filter of `GET /api/audit`, pages, and a CSV
//! download of what the filters select.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::access::authz::CanReadAudit;
use crate::audit_log::dto::AuditQuery;
use crate::audit_log::handlers::{Found, search};
use crate::console::layout::{field, page, select};
use crate::http::error::ApiError;
use crate::http::extract::ApiQuery;
use crate::http::pagination::Page;
use crate::state::AppState;

/// At most this many events in one CSV download.
const CSV_MAX: i64 = 10_000;

/// The query string of the filters as given (for the pages' and the download's links).
fn filters(query: &AuditQuery) -> String {
    let mut pairs = Vec::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            pairs.push(format!("{k}={}", crate::console::urlencode(&v)));
        }
    };
    add("event_type", query.event_type.clone());
    add("actor_id", query.actor_id.map(|v| v.to_string()));
    add("target_id", query.target_id.map(|v| v.to_string()));
    add("realm", query.realm.clone());
    add(
        "since",
        query
            .since
            .map(|v| v.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    add(
        "until",
        query
            .until
            .map(|v| v.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    pairs.join("&")
}

pub async fn show(
    State(app): State<AppState>,
    op: CanReadAudit,
    page_of: Page<500>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Markup, ApiError> {
    let page_of = Page {
        skip: page_of.skip,
        limit: page_of.limit.min(50),
    };
    let Found {
        events,
        total,
        unavailable,
    } = search(&app, &query, page_of).await?;
    let base = filters(&query);
    let at = |skip: i64| format!("/console/audit?{base}&skip={skip}");
    let instant = |v: Option<chrono::DateTime<chrono::Utc>>| {
        v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    Ok(page(
        "Audit log",
        Some(&op.0.principal),
        html! {
            form method="get" action="/console/audit" role="search" {
                (field("Event (e.g. user_created)", "event_type", "text", query.event_type.as_deref(), false))
                (field("Actor id", "actor_id", "text", query.actor_id.map(|v| v.to_string()).as_deref(), false))
                (field("Target id", "target_id", "text", query.target_id.map(|v| v.to_string()).as_deref(), false))
                (select("Realm", "realm", &[("", "Both"), ("slm", "SLM"), ("autobot", "AutoBot")], query.realm.as_deref()))
                (field("Since (RFC 3339, e.g. 2026-01-31T00:00:00Z)", "since", "text", instant(query.since).as_deref(), false))
                (field("Until (RFC 3339)", "until", "text", instant(query.until).as_deref(), false))
                button type="submit" { "Filter" }
            }
            p { a href=(format!("/console/audit.csv?{base}")) { "Download these events as CSV" } }
            @if !unavailable.is_empty() { p.problem role="alert" { "Not read now: " (unavailable.join(", ")) } }
            p.muted { (total) " events" }
            div.scroll { table {
                thead { tr { th { "When" } th { "Realm" } th { "Event" } th { "Outcome" } th { "Actor" } th { "Target" } th { "Address" } } }
                tbody { @for e in &events { tr {
                    td { (e.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) }
                    td { (e.realm) } td { (e.event_type) } td { (e.outcome) }
                    td { (e.actor_username.clone().unwrap_or_default()) }
                    td { (e.target_id.map(|t| t.to_string()).unwrap_or_default()) }
                    td { (e.ip.clone().unwrap_or_default()) }
                } } }
            } }
            nav aria-label="Pages" .actions {
                @if page_of.skip > 0 { a href=(at((page_of.skip - page_of.limit).max(0))) { "Newer events" } }
                @if page_of.skip + page_of.limit < total { a href=(at(page_of.skip + page_of.limit)) { "Older events" } }
            }
        },
    ))
}

fn csv_field(text: &str) -> String {
    // A leading =, +, - or @ would be a formula to a spreadsheet.
    let text = match text.starts_with(['=', '+', '-', '@']) {
        true => format!("'{text}"),
        false => text.to_owned(),
    };
    format!("\"{}\"", text.replace('"', "\"\""))
}

pub async fn csv(
    State(app): State<AppState>,
    _op: CanReadAudit,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let mut out = String::from(
        "occurred_at,realm,event_type,outcome,actor_id,actor_username,target_id,ip,user_agent,detail\n",
    );
    let mut skip = 0;
    loop {
        let Found { events, total, .. } = search(&app, &query, Page { skip, limit: 500 }).await?;
        for e in &events {
            let row = [
                e.occurred_at.to_rfc3339(),
                e.realm.clone(),
                e.event_type.clone(),
                e.outcome.clone(),
                e.actor_id.map(|v| v.to_string()).unwrap_or_default(),
                e.actor_username.clone().unwrap_or_default(),
                e.target_id.map(|v| v.to_string()).unwrap_or_default(),
                e.ip.clone().unwrap_or_default(),
                e.user_agent.clone().unwrap_or_default(),
                e.detail.to_string(),
            ];
            let row: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
            out.push_str(&row.join(","));
            out.push('\n');
        }
        skip += 500;
        if events.is_empty() || skip >= total || skip >= CSV_MAX {
            break;
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}
