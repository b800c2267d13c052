//! `skip`/`offset`/`limit` of list endpoints and their answer: the envelope the dashboard reads
//! (`{"users": [...], "total", "limit", "offset"}`) with `X-Total-Count` (docs/api.md §1).

use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};

use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{ApiJson, ApiQuery};

/// The paging of a list: `skip` (or its synonym `offset`) `>= 0`, default 0, and
/// `1 <= limit <= MAX`, default 100 (or `MAX` when lower). An extractor of the query string,
/// declared once for every list (its OpenAPI parameters too).
#[derive(Debug, Clone, Copy)]
pub struct Page<const MAX: i64 = 1000> {
    pub skip: i64,
    pub limit: i64,
}

/// The paging parameters as sent.
#[derive(Debug, Deserialize)]
struct PageQuery {
    skip: Option<i64>,
    offset: Option<i64>,
    limit: Option<i64>,
}

impl<const MAX: i64> Page<MAX> {
    fn parse(query: PageQuery) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        for (name, value) in [("skip", query.skip), ("offset", query.offset)] {
            if value.is_some_and(|v| v < 0) {
                errors.push(FieldError::new(
                    &["query", name],
                    "Input should be greater than or equal to 0",
                    "greater_than_equal",
                ));
            }
        }
        // `skip` wins when both are given (each is still checked).
        let skip = query.skip.or(query.offset).unwrap_or(0);
        let limit = query.limit.unwrap_or(100.min(MAX));
        if limit < 1 {
            errors.push(FieldError::new(
                &["query", "limit"],
                "Input should be greater than or equal to 1",
                "greater_than_equal",
            ));
        } else if limit > MAX {
            errors.push(FieldError::new(
                &["query", "limit"],
                format!("Input should be less than or equal to {MAX}"),
                "less_than_equal",
            ));
        }
        match errors.is_empty() {
            true => Ok(Self { skip, limit }),
            false => Err(ApiError::Validation(errors)),
        }
    }
}

impl<const MAX: i64, S: Send + Sync> FromRequestParts<S> for Page<MAX> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiQuery(query) = ApiQuery::<PageQuery>::from_request_parts(parts, state).await?;
        Self::parse(query)
    }
}

impl<const MAX: i64> IntoParams for Page<MAX> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let integer = |minimum: i64, maximum: Option<i64>, description: &str| {
            let schema = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(minimum))
                .maximum(maximum);
            (schema, description.to_owned())
        };
        [
            ("skip", integer(0, None, "Rows to skip.")),
            ("offset", integer(0, None, "A synonym of `skip`.")),
            (
                "limit",
                integer(1, Some(MAX), "Rows to return (default 100)."),
            ),
        ]
        .into_iter()
        .map(|(name, (schema, description))| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        })
        .collect()
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
