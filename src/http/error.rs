//! The one error type of handlers and services, its FastAPI-shaped wire format, and the
//! OpenAPI schemas of that format.
//!
//! Database errors compose with a bare `?` (`From<sqlx::Error>`). Whether one means "the
//! database is unreachable" (503, with the text of the realm whose database it is, which
//! [`crate::realm::Realm`] fills in) or "a bug" (500) is decided here. The cause of either is
//! never sent: it rides in a response extension to [`crate::http::middleware::observe`], which
//! logs it once with the request id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// Database errors by which PostgreSQL ended a transaction to resolve a deadlock (40P01) or a
/// serialization failure (40001): nothing of it was written, and running it again may succeed.
pub fn is_transaction_conflict(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "40P01" || c == "40001"))
}

/// Database errors that mean "cannot reach the database" rather than "the query is wrong".
pub fn is_connectivity_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // 57014: the server cancelled the statement at `statement_timeout`; 57P01..57P03: the
        // server is shutting down or not accepting connections; 08xxx: connection exceptions.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c == "57014" || c.starts_with("57P") || c.starts_with("08")),
        _ => false,
    }
}

/// One item of a `loc`: a field name or a list index (FastAPI's `str | int`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[serde(untagged)]
pub enum LocItem {
    Name(String),
    Index(usize),
}

impl From<&str> for LocItem {
    fn from(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

impl From<String> for LocItem {
    fn from(name: String) -> Self {
        Self::Name(name)
    }
}

impl From<usize> for LocItem {
    fn from(index: usize) -> Self {
        Self::Index(index)
    }
}

/// One entry of a FastAPI 422 body: `{"loc": [...], "msg": "...", "type": "..."}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = ValidationError)]
pub struct FieldError {
    /// Where the bad value is: starts with `body`, `query` or `path`.
    pub loc: Vec<LocItem>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    /// An error at `loc`, e.g. `["body", "email"]`.
    pub fn at(loc: Vec<LocItem>, msg: impl Into<String>, kind: &str) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }

    /// An error at a `loc` of names.
    pub fn new(loc: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        Self::at(loc.iter().map(|s| LocItem::from(*s)).collect(), msg, kind)
    }

    /// A `value_error` in the request body at field `field`.
    pub fn body(field: &str, msg: impl Into<String>) -> Self {
        Self::new(&["body", field], msg, "value_error")
    }

    /// A `value_error` at item `index` of the body's list `field`.
    pub fn body_item(field: &str, index: usize, msg: impl Into<String>) -> Self {
        Self::at(
            vec!["body".into(), field.into(), index.into()],
            msg,
            "value_error",
        )
    }

    /// A `value_error` in the query string at parameter `param`.
    pub fn query(param: &str, msg: impl Into<String>) -> Self {
        Self::new(&["query", param], msg, "value_error")
    }
}

/// A non-validation error: `{"detail": "User not found"}`.
#[derive(Serialize, ToSchema)]
pub struct HttpError {
    pub detail: String,
}

/// A validation error: `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`.
#[derive(Serialize, ToSchema)]
pub struct HTTPValidationError {
    pub detail: Vec<FieldError>,
}

/// Every failure a request can end in.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// No credentials were sent.
    #[error("not authenticated")]
    NotAuthenticated,
    /// Credentials were sent but are invalid, expired, revoked or of the other realm.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A 401 with a specific message (login failures).
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// 403: not allowed (recorded as `permission_denied` where it was decided).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// The server is saturated: 503, optionally with `Retry-After`.
    #[error("unavailable: {detail}")]
    Unavailable {
        detail: &'static str,
        retry_after_secs: Option<u64>,
    },
    /// A database error: 503 when the database cannot be reached (with the 503 text of the
    /// database it came from, when known), else 500.
    #[error("database error: {source}")]
    Database {
        source: sqlx::Error,
        unavailable: Option<&'static str>,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(source: sqlx::Error) -> Self {
        Self::Database {
            source,
            unavailable: None,
        }
    }
}

/// The cause of a 500 or a 503, carried to the logging middleware in a response extension so
/// that it is logged once, with the request id, and never sent to the client.
#[derive(Clone, Debug)]
pub struct ErrorCause {
    pub cause: std::sync::Arc<String>,
    /// A database that did not answer (a warning), rather than a failure (an error).
    pub unavailable: bool,
}

/// The `detail` of a database 503 before the route's realm names the database.
pub const DATABASE_UNAVAILABLE: &str = "Database unavailable";

impl ApiError {
    /// A 422 for one field.
    pub fn field(error: FieldError) -> Self {
        Self::Validation(vec![error])
    }

    /// A database error whose origin (and so its 503 text) is known.
    pub fn database(source: sqlx::Error, unavailable: Option<&'static str>) -> Self {
        Self::Database {
            source,
            unavailable,
        }
    }

    /// The same error, a database 503 naming `detail` (the realm's database) unless it names
    /// one already.
    pub fn labelled(self, detail: &'static str) -> Self {
        match self {
            Self::Database {
                source,
                unavailable: None,
            } => Self::Database {
                source,
                unavailable: Some(detail),
            },
            other => other,
        }
    }

    /// Whether PostgreSQL ended the transaction to break a deadlock or a serialization
    /// conflict: nothing of it was written, and running it again may succeed.
    pub fn is_transaction_conflict(&self) -> bool {
        matches!(self, Self::Database { source, .. } if is_transaction_conflict(source))
    }

    /// Whether this is a 503 because a database cannot be reached (or is not migrated).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database { source, .. } => is_connectivity_error(source),
            Self::Unavailable { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotAuthenticated | Self::InvalidCredentials | Self::Unauthorized(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database { .. } if self.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database { .. } | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error as a person reads it on a terminal (the command line).
pub fn plain(err: &ApiError) -> String {
    match err {
        ApiError::Validation(errors) => errors
            .iter()
            .map(|e| {
                let loc: Vec<String> = e
                    .loc
                    .iter()
                    .skip(1)
                    .map(|l| match l {
                        LocItem::Name(n) => n.clone(),
                        LocItem::Index(i) => i.to_string(),
                    })
                    .collect();
                format!("{}: {}", loc.join("."), e.msg)
            })
            .collect::<Vec<_>>()
            .join("; "),
        ApiError::Conflict(m) | ApiError::BadRequest(m) => m.clone(),
        ApiError::NotFound(m) | ApiError::Forbidden(m) | ApiError::Unauthorized(m) => {
            (*m).to_owned()
        }
        ApiError::Internal(e) => format!("{e:#}"),
        other => other.to_string(),
    }
}

/// Maps a unique violation on one of the named constraints (or unique indexes) to a 409, the
/// database being the only judge of duplicates so that concurrent writes cannot race; other
/// errors convert as usual.
pub fn constraint_conflict(err: sqlx::Error, map: &[(&str, &str)]) -> ApiError {
    if let sqlx::Error::Database(db) = &err
        && let Some(name) = db.constraint()
        && let Some((_, detail)) = map.iter().find(|(c, _)| *c == name)
    {
        return ApiError::Conflict((*detail).to_owned());
    }
    ApiError::from(err)
}

/// A JSON response with `status`.
fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A `{"detail": …}` response with `status`.
pub fn detail_response(status: StatusCode, detail: &str) -> Response {
    json_response(status, &json!({ "detail": detail }))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Validation(errors) => {
                return json_response(status, &json!({ "detail": errors }));
            }
            Self::NotAuthenticated => "Not authenticated",
            Self::InvalidCredentials => "Could not validate credentials",
            Self::Unauthorized(detail) | Self::Forbidden(detail) | Self::NotFound(detail) => detail,
            Self::Conflict(detail) | Self::BadRequest(detail) => detail.as_str(),
            Self::PayloadTooLarge => "Request body too large",
            Self::UnsupportedMediaType => "Unsupported Media Type",
            Self::TooManyRequests { .. } => "Too many requests",
            Self::Unavailable { detail, .. } => detail,
            Self::Database { unavailable, .. } if status == StatusCode::SERVICE_UNAVAILABLE => {
                unavailable.unwrap_or(DATABASE_UNAVAILABLE)
            }
            Self::Database { .. } | Self::Internal(_) => "Internal Server Error",
        };
        let mut response = detail_response(status, detail);
        let headers = response.headers_mut();
        match &self {
            Self::NotAuthenticated | Self::InvalidCredentials | Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooManyRequests { retry_after_secs }
            | Self::Unavailable {
                retry_after_secs: Some(retry_after_secs),
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Database { source, .. } if status == StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response.extensions_mut().insert(ErrorCause {
                    cause: std::sync::Arc::new(source.to_string()),
                    unavailable: true,
                });
            }
            Self::Database { source, .. } => {
                response.extensions_mut().insert(ErrorCause {
                    cause: std::sync::Arc::new(format!("database query failed: {source}")),
                    unavailable: false,
                });
            }
            Self::Internal(err) => {
                response.extensions_mut().insert(ErrorCause {
                    cause: std::sync::Arc::new(format!("{err:#}")),
                    unavailable: false,
                });
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(err: ApiError) -> (StatusCode, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn validation_errors_are_fastapi_shaped() {
        let (status, body) = body_of(ApiError::field(FieldError::body(
            "email",
            "value is not a valid email address",
        )))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            json!({"detail": [{"loc": ["body", "email"], "msg": "value is not a valid email address", "type": "value_error"}]})
        );
        let (_, body) = body_of(ApiError::field(FieldError::body_item(
            "roles",
            2,
            "Unknown role",
        )))
        .await;
        assert_eq!(body["detail"][0]["loc"], json!(["body", "roles", 2]));
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let (status, body) = body_of(ApiError::Internal(anyhow::anyhow!(
            "SELECT secret FROM users failed"
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, json!({"detail": "Internal Server Error"}));
    }

    #[tokio::test]
    async fn an_unreachable_database_is_a_503_with_retry_after() {
        let response = ApiError::from(sqlx::Error::PoolTimedOut).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let cause = response
            .extensions()
            .get::<ErrorCause>()
            .expect("cause carried");
        assert!(cause.unavailable);
        let (status, body) = body_of(ApiError::database(
            sqlx::Error::PoolTimedOut,
            Some("SLM user database unavailable"),
        ))
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({"detail": "SLM user database unavailable"}));
        let (status, _) = body_of(ApiError::from(sqlx::Error::RowNotFound)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
