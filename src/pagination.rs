//! `skip`/`limit` of list endpoints and the `X-Total-Count` answer (API.md §1).

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{ApiError, FieldError};

/// Validated paging.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub skip: i64,
    pub limit: i64,
}

impl Page {
    /// `skip >= 0` (default 0) and `1 <= limit <= max_limit` (default 100).
    pub fn parse(skip: Option<i64>, limit: Option<i64>, max_limit: i64) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let skip = skip.unwrap_or(0);
        if skip < 0 {
            errors.push(FieldError::new(
                &["query", "skip"],
                "Input should be greater than or equal to 0",
                "greater_than_equal",
            ));
        }
        let limit = limit.unwrap_or(100);
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

/// A bare JSON array with the total number of matches in `X-Total-Count`.
pub struct Listed<T>(pub Vec<T>, pub i64);

impl<T: Serialize> IntoResponse for Listed<T> {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self.0).into_response();
        response
            .headers_mut()
            .insert("x-total-count", HeaderValue::from(self.1));
        response
    }
}

/// Trims a `search` parameter; blank means no filter.
pub fn search_term(search: Option<String>) -> Option<String> {
    search
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}
