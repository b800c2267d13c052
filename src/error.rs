//! The one error type of handlers and services, and its FastAPI-shaped wire format.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// One entry of a FastAPI 422 body: `{"loc": [...], "msg": "...", "type": "..."}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = ValidationError)]
pub struct FieldError {
    /// Where the bad value is: starts with `body`, `query` or `path`.
    #[schema(value_type = Vec<String>)]
    pub loc: Vec<serde_json::Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    /// A value error at `loc` (strings), e.g. `["body", "email"]`.
    pub fn new(loc: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        Self {
            loc: loc.iter().map(|s| json!(s)).collect(),
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }

    /// A `value_error` in the request body at field `field`.
    pub fn body(field: &str, msg: impl Into<String>) -> Self {
        Self::new(&["body", field], msg, "value_error")
    }

    /// A `value_error` in the query string at parameter `param`.
    pub fn query(param: &str, msg: impl Into<String>) -> Self {
        Self::new(&["query", param], msg, "value_error")
    }
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
    /// A dependency is down or the server is saturated: 503, optionally with `Retry-After`.
    #[error("unavailable: {detail}")]
    Unavailable {
        detail: &'static str,
        retry_after_secs: Option<u64>,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The cause of a 500, carried to the logging middleware in a response extension so that it is
/// logged once, with the request id, and never sent to the client.
#[derive(Clone, Debug)]
pub struct InternalErrorCause(pub std::sync::Arc<String>);

impl ApiError {
    /// A 422 for one field.
    pub fn field(error: FieldError) -> Self {
        Self::Validation(vec![error])
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
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Database errors that mean "cannot reach the database" rather than "the query is wrong".
pub fn is_connectivity_error(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if is_connectivity_error(&err) {
            // Realm-aware callers map this earlier (Realm::acquire); this is the fallback for a
            // connection lost mid-request.
            return Self::Unavailable {
                detail: "Database unavailable",
                retry_after_secs: Some(1),
            };
        }
        Self::Internal(anyhow::Error::new(err).context("database query failed"))
    }
}

/// Maps a unique-violation on a named constraint (or unique index) to a 409, the database being
/// the only judge of duplicates so that concurrent writes cannot race.
pub trait OnConstraint<T> {
    fn on_constraint(self, constraint: &str, conflict: &str) -> Result<T, ApiError>;
}

impl<T> OnConstraint<T> for Result<T, sqlx::Error> {
    fn on_constraint(self, constraint: &str, conflict: &str) -> Result<T, ApiError> {
        self.map_err(|err| constraint_conflict(err, &[(constraint, conflict)]))
    }
}

/// Like [`OnConstraint`] for several constraints at once; other errors convert as usual.
pub fn constraint_conflict(err: sqlx::Error, map: &[(&str, &str)]) -> ApiError {
    if let sqlx::Error::Database(db) = &err
        && let Some(name) = db.constraint()
        && let Some((_, detail)) = map.iter().find(|(c, _)| *c == name)
    {
        return ApiError::Conflict((*detail).to_owned());
    }
    ApiError::from(err)
}

fn detail_body(detail: &str) -> serde_json::Value {
    json!({ "detail": detail })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::Validation(errors) => json!({ "detail": errors }),
            Self::NotAuthenticated => detail_body("Not authenticated"),
            Self::InvalidCredentials => detail_body("Could not validate credentials"),
            Self::Unauthorized(detail) | Self::Forbidden(detail) | Self::NotFound(detail) => {
                detail_body(detail)
            }
            Self::Conflict(detail) | Self::BadRequest(detail) => detail_body(detail),
            Self::PayloadTooLarge => detail_body("Request body too large"),
            Self::UnsupportedMediaType => detail_body("Unsupported Media Type"),
            Self::TooManyRequests { .. } => detail_body("Too many requests"),
            Self::Unavailable { detail, .. } => detail_body(detail),
            Self::Internal(_) => detail_body("Internal Server Error"),
        };
        let mut response = (status, axum::Json(body)).into_response();
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
            Self::Internal(err) => {
                response
                    .extensions_mut()
                    .insert(InternalErrorCause(std::sync::Arc::new(format!("{err:#}"))));
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
}
