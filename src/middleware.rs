//! Cross-cutting HTTP behaviour: every error body FastAPI-shaped (axum's and tower's own 404,
//! 405, 408, 413 included), the cause of a 500 or of a database 503 logged once with the
//! request id, request metrics by matched route, and a request whose transaction PostgreSQL
//! ended (a deadlock) run again.

use crate::extract::ApiJson;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, DatabaseUnavailable, InternalErrorCause, TransactionConflict};
use crate::extract::MAX_BODY_BYTES;

/// How many times a request is run when PostgreSQL keeps ending its transaction.
const CONFLICT_ATTEMPTS: u32 = 3;

/// Runs a request again when PostgreSQL ended its transaction to break a deadlock (or a
/// serialization failure), up to [`CONFLICT_ATTEMPTS`] times, after a short random pause.
///
/// A global lock order cannot prevent every deadlock here: the AutoBot schema's foreign keys
/// (audit rows, sessions and role grants all reference `users`) take row locks that a request
/// does not choose, so a request that locks a user and then its sessions can meet one that
/// holds a session and then checks the user. PostgreSQL then ends one of the two transactions;
/// it wrote nothing, and every request keeps its writes in one transaction, so running it
/// again is safe. (Work before that transaction, such as a login's counted attempt or a rate
/// limit's count, is counted again: the cautious side.) The body is kept to send it again; it
/// is limited to [`MAX_BODY_BYTES`], as the extractors would limit it.
pub async fn run_again_after_conflict(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    let mut attempt = 1;
    loop {
        let mut again = Request::new(Body::from(body.clone()));
        *again.method_mut() = parts.method.clone();
        *again.uri_mut() = parts.uri.clone();
        *again.version_mut() = parts.version;
        *again.headers_mut() = parts.headers.clone();
        *again.extensions_mut() = parts.extensions.clone();
        let response = next.clone().run(again).await;
        if attempt == CONFLICT_ATTEMPTS
            || response.extensions().get::<TransactionConflict>().is_none()
        {
            return response;
        }
        let cause = response
            .extensions()
            .get::<InternalErrorCause>()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        tracing::warn!(attempt, error = %cause, "the database ended the request's transaction; running it again");
        metrics::counter!("http_request_conflict_retries_total").increment(1);
        let pause = Duration::from_millis(rand::random_range(10..50) * u64::from(attempt));
        tokio::time::sleep(pause).await;
        attempt += 1;
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Rewrites any error response that is not already JSON into `{"detail": "<reason>"}`,
/// keeping its headers (`Allow`, `Retry-After`, …).
fn fastapi_shaped(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let detail = match status {
        StatusCode::NOT_FOUND => "Not Found",
        StatusCode::METHOD_NOT_ALLOWED => "Method Not Allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "Request body too large",
        StatusCode::REQUEST_TIMEOUT => "Request timed out",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported Media Type",
        other => other.canonical_reason().unwrap_or("Error"),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::json!({ "detail": detail }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// Records metrics, normalises error bodies and logs the cause of 500s.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(request).await;
    if let Some(InternalErrorCause(cause)) = response.extensions().get::<InternalErrorCause>() {
        tracing::error!(request_id = %request_id, %method, %route, error = %cause, "request failed");
    }
    if let Some(unavailable) = response.extensions().get::<DatabaseUnavailable>() {
        tracing::warn!(request_id = %request_id, %method, %route, error = %unavailable.cause, "database unavailable");
    }
    let response = fastapi_shaped(response);
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The router's fallback: FastAPI's 404.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        ApiJson(serde_json::json!({"detail": "Not Found"})),
    )
        .into_response()
}
