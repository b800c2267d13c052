//! `skip`/`offset`/`limit` of list endpoints and their answer: the envelope the dashboard reads
//! (`{"users": [...], "total", "limit", "offset"}`) with `X-Total-Count` (docs/api.md §1).

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{ApiError, FieldError};
use crate::extract::ApiJson;

/// Validated paging.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub skip: i64,
    pub limit: i64,
}

impl Page {
    /// `skip` (or its synonym `offset`) `>= 0`, default 0, and `1 <= limit <= max_limit`,
    /// default 100 (or `max_limit` when lower).
    pub fn parse(
        skip: Option<i64>,
        offset: Option<i64>,
        limit: Option<i64>,
        max_limit: i64,
    ) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        for (name, value) in [("skip", skip), ("offset", offset)] {
            if value.is_some_and(|v| v < 0) {
                errors.push(FieldError::new(
                    &["query", name],
                    "Input should be greater than or equal to 0",
                    "greater_than_equal",
                ));
            }
        }
        // `skip` wins when both are given (each is still checked).
        let skip = skip.or(offset).unwrap_or(0);
        let limit = limit.unwrap_or(100.min(max_limit));
        if limit < 1 {
            errors.push(FieldError::new(
                &["query", "limit"],
                "Input should be greater than or equal to 1",
                "greater_than_equal",
            ));
        } else if limit > max_limit {
            errors.push(FieldError::new(
                &["query", "limit"],
                format!("Input should be less than or equal to {max_limit}"),
                "less_than_equal",
            ));
        }
        if errors.is_empty() {
            Ok(Self { skip, limit })
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// A list envelope with the total number of matches also in `X-Total-Count`.
pub struct Listed<T>(pub T, pub i64);

impl<T: Serialize> IntoResponse for Listed<T> {
    fn into_response(self) -> Response {
        let mut response = ApiJson(self.0).into_response();
        response
            .headers_mut()
            .insert("x-total-count", HeaderValue::from(self.1));
        response
    }
}

/// The longest `search` accepted (declared as `max_length` on every list's `search`).
pub const SEARCH_MAX_CHARS: usize = 200;

/// A list's `search` parameter, trimmed; blank means no filter; longer than
/// [`SEARCH_MAX_CHARS`] is a 422 at `query.search`.
pub fn search_term(search: Option<String>) -> Result<Option<String>, ApiError> {
    if search
        .as_ref()
        .is_some_and(|s| s.chars().count() > SEARCH_MAX_CHARS)
    {
        return Err(ApiError::field(FieldError::query(
            "search",
            format!("String should have at most {SEARCH_MAX_CHARS} characters"),
        )));
    }
    Ok(search
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty()))
}
