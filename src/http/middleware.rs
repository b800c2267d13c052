//! Cross-cutting HTTP behaviour: every error body FastAPI-shaped (axum's and tower's own 404,
//! 405, 408, 413 included), the cause of a 500 or of a database 503 logged once with the
//! request id, and request metrics by matched route.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ErrorCause;
use crate::http::extract::ApiJson;

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
    match response.extensions().get::<ErrorCause>() {
        Some(ErrorCause {
            cause,
            unavailable: true,
        }) => {
            tracing::warn!(request_id = %request_id, %method, %route, error = %cause, "database unavailable")
        }
        Some(ErrorCause { cause, .. }) => {
            tracing::error!(request_id = %request_id, %method, %route, error = %cause, "request failed")
        }
        None => {}
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
