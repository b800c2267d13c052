//! Request extractors whose every rejection is a FastAPI-shaped 422 (or 413/415) with the
//! right `loc`; axum's raw `Json`, `Query` and `Path` are not used by handlers (clippy.toml).

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, FieldError};

/// Largest accepted request body (API.md §1: over 64 KiB is 413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON request body.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// A body that is JSON or `application/x-www-form-urlencoded` (the OAuth2 password flow used by
/// Swagger UI's Authorize button).
#[derive(Debug)]
pub struct JsonOrForm<T>(pub T);

/// Query-string parameters.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

/// Path parameters.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

enum BodyKind {
    Json,
    Form,
}

fn body_kind(req: &Request) -> Result<BodyKind, ApiError> {
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        // FastAPI parses a body without Content-Type as JSON; so do we.
        return Ok(BodyKind::Json);
    };
    let mime = value
        .to_str()
        .map_err(|_| ApiError::UnsupportedMediaType)?
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(BodyKind::Json)
    } else if mime == "application/x-www-form-urlencoded" {
        Ok(BodyKind::Form)
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

async fn read_body(req: Request) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)
}

fn missing_body() -> ApiError {
    ApiError::field(FieldError::new(&["body"], "Field required", "missing"))
}

/// Turns serde's description of a data error into a FastAPI `msg`/`type`, without echoing the
/// offending value (it may be a password).
fn describe(message: &str) -> (String, &'static str, Option<String>) {
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default().to_owned();
        return ("Field required".to_owned(), "missing", Some(field));
    }
    if let Some((_, expected)) = message.split_once(", expected ") {
        let expected = expected.split(" at line ").next().unwrap_or(expected);
        return (format!("Input should be {expected}"), "type_error", None);
    }
    if message.starts_with("unknown variant") {
        let expected = message
            .split_once("expected ")
            .map(|(_, e)| e)
            .unwrap_or("");
        return (format!("Input should be {expected}"), "enum", None);
    }
    let msg = message.split(" at line ").next().unwrap_or(message);
    (msg.to_owned(), "value_error", None)
}

fn loc_of(root: &str, path: &serde_path_to_error::Path) -> Vec<serde_json::Value> {
    use serde_path_to_error::Segment;
    let mut loc = vec![json!(root)];
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => loc.push(json!(index)),
            Segment::Map { key } => loc.push(json!(key)),
            Segment::Enum { variant } => loc.push(json!(variant)),
            Segment::Unknown => {}
        }
    }
    loc
}

fn data_error(root: &str, path: &serde_path_to_error::Path, message: &str) -> ApiError {
    let (msg, kind, missing_field) = describe(message);
    let mut loc = loc_of(root, path);
    if let Some(field) = missing_field {
        loc.push(json!(field));
    }
    ApiError::field(FieldError {
        loc,
        msg,
        kind: kind.to_owned(),
    })
}

/// Parses a JSON document into `T` with FastAPI-shaped errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(missing_body());
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut *de).map_err(|err| {
        let inner = err.inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::field(FieldError::new(
                &["body"],
                "JSON decode error",
                "json_invalid",
            ))
        } else {
            data_error("body", err.path(), &inner.to_string())
        }
    })?;
    de.end().map_err(|_| {
        ApiError::field(FieldError::new(
            &["body"],
            "JSON decode error",
            "json_invalid",
        ))
    })?;
    Ok(value)
}

fn parse_urlencoded<T: DeserializeOwned>(root: &str, input: &[u8]) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(input));
    serde_path_to_error::deserialize::<_, T>(de)
        .map_err(|err| data_error(root, err.path(), &err.inner().to_string()))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        match body_kind(&req)? {
            BodyKind::Json => {}
            BodyKind::Form => return Err(ApiError::UnsupportedMediaType),
        }
        let bytes = read_body(req).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonOrForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let kind = body_kind(&req)?;
        let bytes = read_body(req).await?;
        match kind {
            BodyKind::Json => parse_json(&bytes).map(JsonOrForm),
            BodyKind::Form => parse_urlencoded("body", &bytes).map(JsonOrForm),
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        parse_urlencoded("query", query.as_bytes()).map(ApiQuery)
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                let keyed = match err.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. } => Some(key.clone()),
                    ErrorKind::ParseErrorAtIndex { index, .. } => param_name(parts, *index),
                    _ => None,
                };
                // Otherwise name the first `*_id` parameter that is not a UUID.
                let name = keyed
                    .or_else(|| first_bad_uuid_param(parts))
                    .or_else(|| param_name(parts, 0))
                    .unwrap_or_default();
                let (msg, kind) = if name.ends_with("_id") || name == "id" {
                    ("Input should be a valid UUID", "uuid_parsing")
                } else {
                    ("Invalid path parameter", "value_error")
                };
                Err(ApiError::field(FieldError::new(
                    &["path", &name],
                    msg,
                    kind,
                )))
            }
            Err(other) => Err(ApiError::Internal(anyhow::anyhow!(
                "path extraction failed: {other}"
            ))),
        }
    }
}

/// The first `*_id` path parameter whose value is not a UUID.
fn first_bad_uuid_param(parts: &Parts) -> Option<String> {
    let matched = parts.extensions.get::<MatchedPath>()?.as_str().to_owned();
    let pattern: Vec<&str> = matched.split('/').collect();
    let actual: Vec<&str> = parts.uri.path().split('/').collect();
    pattern
        .iter()
        .zip(actual.iter())
        .filter_map(|(p, v)| Some((p.strip_prefix('{')?.strip_suffix('}')?, *v)))
        .find(|(name, value)| {
            (name.ends_with("_id") || *name == "id") && uuid::Uuid::parse_str(value).is_err()
        })
        .map(|(name, _)| name.to_owned())
}

/// The name of the `index`-th `{param}` of the matched route.
fn param_name(parts: &Parts, index: usize) -> Option<String> {
    let matched = parts.extensions.get::<MatchedPath>()?;
    matched
        .as_str()
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .nth(index)
        .map(str::to_owned)
}

/// Deserializes a field that distinguishes "absent" (`None`) from "null" (`Some(None)`), for
/// PATCH bodies where `null` clears a value.
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code)]
    struct Sample {
        name: String,
        active: bool,
    }

    fn loc_and_type(err: ApiError) -> (Vec<serde_json::Value>, String) {
        match err {
            ApiError::Validation(errors) => (errors[0].loc.clone(), errors[0].kind.clone()),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn missing_field_points_at_the_field() {
        let err = parse_json::<Sample>(br#"{"name": "x"}"#).expect_err("missing");
        assert_eq!(
            loc_and_type(err),
            (vec![json!("body"), json!("active")], "missing".into())
        );
    }

    #[test]
    fn wrong_type_points_at_the_field_without_echoing_it() {
        let err = parse_json::<Sample>(br#"{"name": "x", "active": "secret"}"#).expect_err("type");
        let ApiError::Validation(errors) = err else {
            panic!("not a validation error")
        };
        assert_eq!(errors[0].loc, vec![json!("body"), json!("active")]);
        assert!(!errors[0].msg.contains("secret"), "{}", errors[0].msg);
    }

    #[test]
    fn malformed_json_is_a_body_error() {
        let err = parse_json::<Sample>(b"{not json").expect_err("syntax");
        assert_eq!(
            loc_and_type(err),
            (vec![json!("body")], "json_invalid".into())
        );
        let err = parse_json::<Sample>(b"").expect_err("empty");
        assert_eq!(loc_and_type(err), (vec![json!("body")], "missing".into()));
    }

    #[test]
    fn query_errors_point_at_the_parameter() {
        #[derive(Debug, serde::Deserialize)]
        #[expect(dead_code)]
        struct Q {
            limit: Option<u32>,
        }
        let err = parse_urlencoded::<Q>("query", b"limit=abc").expect_err("bad int");
        assert_eq!(loc_and_type(err).0, vec![json!("query"), json!("limit")]);
    }
}
