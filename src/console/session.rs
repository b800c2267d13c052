//! The console's session and forms: the session cookie carries the access token of a sign-in
//! (so that logout, deactivation and revocation end it at once, like any token), and is turned
//! into the request's `Authorization` before the API's own extractors run; every form carries
//! a CSRF token bound to a cookie of its own; every answer carries a strict CSP, and an API
//! error becomes a page showing its `detail`.

use axum::extract::{Form, FromRequest, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use secrecy::ExposeSecret;

use crate::access::cookie::{cookie, csrf_cookie, session_cookie};
use crate::credentials::keys::{derive_key, hex, hmac_sha256, random_secret};
use crate::state::AppState;

/// The Content-Security-Policy of every console page: no script at all, styles and images of
/// this origin, forms posted here only.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The CSRF token of this browser's forms, as a request extension for the pages.
#[derive(Clone)]
pub struct Csrf(pub String);

fn csrf_token(app: &AppState, key: &str) -> String {
    let secret = app.settings.tokens.slm_secrets[0].expose_secret();
    hex(&hmac_sha256(
        &derive_key(secret, "console-csrf"),
        key.as_bytes(),
    ))
}

/// The console's middleware: the session cookie as the request's credential (and no other),
/// the CSRF key, the security headers, and errors as pages.
pub async fn console(
    axum::extract::State(app): axum::extract::State<AppState>,
    jar: CookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers_mut();
    headers.remove(header::AUTHORIZATION);
    headers.remove("x-api-key");
    if let Some(session) = jar.get(session_cookie(&app))
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", session.value()))
    {
        headers.insert(header::AUTHORIZATION, value);
    }
    let (key, new_key) = match jar.get(csrf_cookie(&app)) {
        Some(c) if c.value().len() == 43 => (c.value().to_owned(), false),
        _ => (random_secret(), true),
    };
    request
        .extensions_mut()
        .insert(Csrf(csrf_token(&app, &key)));
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let mut response = match response.status() {
        status if status.is_client_error() || status.is_server_error() => {
            error_page(&path, response).await
        }
        _ => response,
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match new_key {
        true => (
            CookieJar::new().add(cookie(&app, csrf_cookie(&app), key)),
            response,
        )
            .into_response(),
        false => response,
    }
}

/// An API error as a page: 401 sends the browser to the sign-in; anything else shows the
/// status and the API's `detail`.
async fn error_page(path: &str, response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json {
        return response;
    }
    if status == StatusCode::UNAUTHORIZED && !path.starts_with("/console/login") {
        return Redirect::to("/console/login").into_response();
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let detail: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let messages: Vec<String> = match &detail["detail"] {
        serde_json::Value::String(text) => vec![text.clone()],
        serde_json::Value::Array(items) => items
            .iter()
            .map(|e| {
                let at: Vec<String> = e["loc"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .skip(1)
                            .map(|p| p.to_string().trim_matches('"').to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                format!(
                    "{}: {}",
                    at.join("."),
                    e["msg"].as_str().unwrap_or_default()
                )
            })
            .collect(),
        _ => vec![status.canonical_reason().unwrap_or("Error").to_owned()],
    };
    let page = crate::console::layout::problem(status, &messages);
    (status, page).into_response()
}

/// A form posted to the console: its fields, after its CSRF token was checked (403 and nothing
/// done without it).
pub struct ConsoleForm(pub Vec<(String, String)>);

impl ConsoleForm {
    /// The first value of a field, trimmed of nothing.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field's value, `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_owned)
    }

    /// Every value of a field (checkboxes).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Whether a checkbox is checked.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<S: Send + Sync> FromRequest<S> for ConsoleForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let expected = request.extensions().get::<Csrf>().map(|c| c.0.clone());
        if request.method() != Method::POST {
            return Ok(Self(Vec::new()));
        }
        let Form(fields): Form<Vec<(String, String)>> =
            Form::from_request(request, state).await.map_err(|_| {
                crate::console::layout::problem_response(StatusCode::BAD_REQUEST, "Unreadable form")
            })?;
        let sent = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str());
        match (expected, sent) {
            (Some(expected), Some(sent)) if constant_eq(&expected, sent) => Ok(Self(fields)),
            _ => Err(crate::console::layout::problem_response(
                StatusCode::FORBIDDEN,
                "The form expired or did not come from this console: open it again",
            )),
        }
    }
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}
