//! Request extractors whose every rejection is a FastAPI-shaped 422 (or 413/415) with the
//! right `loc`; axum's raw `Json`, `Query` and `Path` are not used by handlers (clippy.toml).

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use utoipa::PartialSchema;
use utoipa::openapi::schema::{SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::http::error::{ApiError, FieldError, LocItem};

/// Largest accepted request body (docs/api.md §1: over 64 KiB is 413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON request body, or a JSON response.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(bytes) => ([(CONTENT_TYPE, "application/json")], bytes).into_response(),
            Err(err) => {
                ApiError::Internal(anyhow::Error::new(err).context("serializing a response"))
                    .into_response()
            }
        }
    }
}

/// A body that is JSON or `application/x-www-form-urlencoded` (the OAuth2 password flow used by
/// Swagger UI's Authorize button).
#[derive(Debug)]
pub struct JsonOrForm<T>(pub T);

/// A JSON body that may be absent: `None` for an empty body (whatever its Content-Type).
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

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
    if message.starts_with("unknown field `") {
        // Pydantic's wording for a model that forbids extra fields.
        return (
            "Extra inputs are not permitted".to_owned(),
            "extra_forbidden",
            None,
        );
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

fn loc_of(root: &str, path: &serde_path_to_error::Path) -> Vec<LocItem> {
    use serde_path_to_error::Segment;
    let mut loc = vec![LocItem::from(root)];
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => loc.push((*index).into()),
            Segment::Map { key } => loc.push(loc_key(key)),
            Segment::Enum { variant } => loc.push(variant.as_str().into()),
            Segment::Unknown => {}
        }
    }
    loc
}

fn data_error(root: &str, path: &serde_path_to_error::Path, message: &str) -> ApiError {
    let (msg, kind, missing_field) = describe(message);
    let mut loc = loc_of(root, path);
    if let Some(field) = missing_field {
        loc.push(field.into());
    }
    ApiError::field(FieldError::at(loc, msg, kind))
}

/// PostgreSQL cannot store U+0000 in text, and no field has a use for it: a string holding one
/// is refused at its own `loc` before anything else looks at it (docs/api.md §1).
const NUL_MESSAGE: &str = "String should not contain the NUL character";

/// A key as a `loc` item: a NUL in it shown as U+FFFD, so that no answer carries a NUL.
fn loc_key(key: &str) -> LocItem {
    key.replace('\0', "\u{FFFD}").into()
}

fn nul_error(loc: Vec<LocItem>) -> FieldError {
    FieldError::at(loc, NUL_MESSAGE, "string_nul")
}

/// Every key and string of a JSON document that holds a NUL, as `loc`s under `body`.
fn nul_locs(value: &serde_json::Value, loc: &mut Vec<LocItem>, found: &mut Vec<FieldError>) {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => found.push(nul_error(loc.clone())),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                loc.push(i.into());
                nul_locs(item, loc, found);
                loc.pop();
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                loc.push(loc_key(key));
                if key.contains('\0') {
                    found.push(nul_error(loc.clone()));
                } else {
                    nul_locs(item, loc, found);
                }
                loc.pop();
            }
        }
        _ => {}
    }
}

fn json_invalid() -> ApiError {
    ApiError::field(FieldError::new(
        &["body"],
        "JSON decode error",
        "json_invalid",
    ))
}

/// Every required property of `T`'s schema that the object `value` lacks, as FastAPI lists
/// them: all at once (serde stops at the first); or the one error that `value` is no object. The schema is the one `/openapi.json`
/// publishes, derived from the same struct, so the two cannot disagree.
fn missing_fields<T: PartialSchema>(value: &serde_json::Value) -> Vec<FieldError> {
    let RefOr::T(Schema::Object(schema)) = T::schema() else {
        return Vec::new();
    };
    if schema.schema_type != SchemaType::Type(Type::Object) {
        return Vec::new();
    }
    // serde would also read a struct from an array of its fields; the schema says object.
    let serde_json::Value::Object(present) = value else {
        return vec![FieldError::new(
            &["body"],
            "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type",
        )];
    };
    schema
        .required
        .iter()
        .filter(|name| !present.contains_key(name.as_str()))
        .map(|name| FieldError::new(&["body", name], "Field required", "missing"))
        .collect()
}

/// Parses a JSON document into `T` with FastAPI-shaped errors.
pub fn parse_json<T: DeserializeOwned + PartialSchema>(bytes: &[u8]) -> Result<T, ApiError> {
    // As FastAPI: an empty body is a missing one; anything else must be JSON (so a lone
    // newline is invalid JSON, not an absent body).
    if bytes.is_empty() {
        return Err(missing_body());
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| json_invalid())?;
    let mut nuls = Vec::new();
    nul_locs(&value, &mut vec![LocItem::from("body")], &mut nuls);
    if !nuls.is_empty() {
        return Err(ApiError::Validation(nuls));
    }
    let missing = missing_fields::<T>(&value);
    if !missing.is_empty() {
        return Err(ApiError::Validation(missing));
    }
    serde_path_to_error::deserialize::<_, T>(value)
        .map_err(|err| data_error("body", err.path(), &err.inner().to_string()))
}

fn parse_urlencoded<T: DeserializeOwned>(root: &str, input: &[u8]) -> Result<T, ApiError> {
    let nuls: Vec<FieldError> = form_urlencoded::parse(input)
        .filter(|(key, value)| key.contains('\0') || value.contains('\0'))
        .map(|(key, _)| nul_error(vec![root.into(), loc_key(&key)]))
        .collect();
    if !nuls.is_empty() {
        return Err(ApiError::Validation(nuls));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(input));
    serde_path_to_error::deserialize::<_, T>(de)
        .map_err(|err| data_error(root, err.path(), &err.inner().to_string()))
}

impl<T: DeserializeOwned + PartialSchema, S: Send + Sync> FromRequest<S> for ApiJson<T> {
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

impl<T: DeserializeOwned + PartialSchema, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let kind = body_kind(&req);
        let bytes = read_body(req).await?;
        // No body, or a JSON `null`: the optional body is absent. Whitespace alone is not
        // "no body": it is invalid JSON, and must not fall back to the bearer token.
        if bytes.is_empty() || bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(None));
        }
        match kind? {
            BodyKind::Json => parse_json(&bytes).map(|v| OptionalJson(Some(v))),
            BodyKind::Form => Err(ApiError::UnsupportedMediaType),
        }
    }
}

impl<T: DeserializeOwned + PartialSchema, S: Send + Sync> FromRequest<S> for JsonOrForm<T> {
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
        // The one use of axum's `Path`: its rejections become FastAPI 422s here.
        #[expect(clippy::disallowed_types, reason = "wrapped here")]
        let extracted = axum::extract::Path::<T>::from_request_parts(parts, state).await;
        let value = match extracted {
            Ok(axum::extract::Path(value)) => value,
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                // The parameters in route order, decoded (absent when one is not UTF-8).
                let raw: Vec<(String, String)> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|raw| {
                        raw.iter()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let (keyed, utf8) = match err.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. } => (Some(key.clone()), false),
                    ErrorKind::InvalidUtf8InPathParam { key } => (Some(key.clone()), true),
                    ErrorKind::ParseErrorAtIndex { index, .. } => {
                        (raw.get(*index).map(|(k, _)| k.clone()), false)
                    }
                    _ => (None, false),
                };
                // Otherwise (a type's own parse error names no key) the first `*_id` parameter
                // that is not a UUID.
                let name = keyed
                    .or_else(|| {
                        raw.iter()
                            .find(|(k, v)| is_id(k) && uuid::Uuid::parse_str(v).is_err())
                            .map(|(k, _)| k.clone())
                    })
                    .or_else(|| raw.first().map(|(k, _)| k.clone()))
                    .unwrap_or_default();
                let (msg, kind) = if utf8 {
                    ("Input should be a valid UTF-8 string", "string_unicode")
                } else if is_id(&name) {
                    ("Input should be a valid UUID", "uuid_parsing")
                } else {
                    ("Invalid path parameter", "value_error")
                };
                return Err(ApiError::field(FieldError::new(
                    &["path", &name],
                    msg,
                    kind,
                )));
            }
            Err(other) => {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "path extraction failed: {other}"
                )));
            }
        };
        // The values are valid UTF-8 now; refuse a decoded NUL like anywhere else.
        if let Ok(raw) = RawPathParams::from_request_parts(parts, state).await {
            let nuls: Vec<FieldError> = raw
                .iter()
                .filter(|(_, v)| v.contains('\0'))
                .map(|(k, _)| nul_error(vec!["path".into(), k.into()]))
                .collect();
            if !nuls.is_empty() {
                return Err(ApiError::Validation(nuls));
            }
        }
        Ok(ApiPath(value))
    }
}

/// Whether a path parameter is an id (a UUID).
fn is_id(name: &str) -> bool {
    name.ends_with("_id") || name == "id"
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

/// Deserializes an optional field that cannot be cleared: absent is `None`, `null` is refused
/// like any other wrong type (pair it with `#[schema(value_type = …)]`, so that the published
/// schema does not call it nullable).
pub fn not_null<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(de).map(Some)
}

/// Deserializes an optional date-time as RFC 3339 writes it (the schema's `format: date-time`,
/// a four-digit year). chrono's own parser also reads years such as `-12345`, which PostgreSQL
/// cannot hold; every instant this accepts, it can.
pub fn rfc3339<'de, D>(de: D) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(de)?;
    chrono::DateTime::parse_from_rfc3339(&raw)
        .map(|t| Some(t.to_utc()))
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[expect(dead_code)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        active: bool,
        note: Option<String>,
    }

    fn loc_and_type(err: ApiError) -> (Vec<LocItem>, String) {
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
            (vec!["body".into(), "active".into()], "missing".into())
        );
    }

    #[test]
    fn every_missing_field_is_listed_at_once() {
        let err = parse_json::<Sample>(br#"{"note": "x"}"#).expect_err("missing");
        let ApiError::Validation(errors) = err else {
            panic!("not a validation error")
        };
        let locs: Vec<_> = errors.iter().map(|e| e.loc.clone()).collect();
        assert_eq!(
            locs,
            vec![
                vec![LocItem::from("body"), "name".into()],
                vec![LocItem::from("body"), "active".into()]
            ]
        );
    }

    #[test]
    fn wrong_type_points_at_the_field_without_echoing_it() {
        let err = parse_json::<Sample>(br#"{"name": "x", "active": "secret"}"#).expect_err("type");
        let ApiError::Validation(errors) = err else {
            panic!("not a validation error")
        };
        assert_eq!(errors[0].loc, vec![LocItem::from("body"), "active".into()]);
        assert!(!errors[0].msg.contains("secret"), "{}", errors[0].msg);
    }

    #[test]
    fn an_array_is_no_object() {
        let err = parse_json::<Sample>(br#"["x", true, null]"#).expect_err("array");
        assert_eq!(
            loc_and_type(err),
            (vec!["body".into()], "model_attributes_type".into())
        );
    }

    #[test]
    fn an_unknown_field_is_an_extra_input() {
        let err = parse_json::<Sample>(br#"{"name": "x", "active": true, "nmae": 1}"#)
            .expect_err("extra");
        assert_eq!(
            loc_and_type(err),
            (vec!["body".into(), "nmae".into()], "extra_forbidden".into())
        );
    }

    #[test]
    fn malformed_json_is_a_body_error() {
        let err = parse_json::<Sample>(b"{not json").expect_err("syntax");
        assert_eq!(
            loc_and_type(err),
            (vec!["body".into()], "json_invalid".into())
        );
        let err = parse_json::<Sample>(b"").expect_err("empty");
        assert_eq!(loc_and_type(err), (vec!["body".into()], "missing".into()));
    }

    #[test]
    fn a_nul_anywhere_is_refused_at_its_own_loc() {
        let err =
            parse_json::<serde_json::Value>(br#"{"name": "a\u0000", "tags": ["ok", "b\u0000"]}"#)
                .expect_err("nul");
        let ApiError::Validation(errors) = err else {
            panic!("not a validation error")
        };
        let locs: Vec<_> = errors.iter().map(|e| e.loc.clone()).collect();
        assert_eq!(
            locs,
            vec![
                vec![LocItem::from("body"), "name".into()],
                vec!["body".into(), "tags".into(), 1.into()]
            ]
        );
        let err = parse_urlencoded::<serde_json::Value>("query", b"search=%00x").expect_err("nul");
        assert_eq!(
            loc_and_type(err).0,
            vec![LocItem::from("query"), "search".into()]
        );
    }

    #[test]
    fn query_errors_point_at_the_parameter() {
        #[derive(Debug, serde::Deserialize)]
        #[expect(dead_code)]
        struct Q {
            limit: Option<u32>,
        }
        let err = parse_urlencoded::<Q>("query", b"limit=abc").expect_err("bad int");
        assert_eq!(
            loc_and_type(err).0,
            vec![LocItem::from("query"), "limit".into()]
        );
    }
}
#[cfg(test)]
mod path_tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt as _;

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code)]
    struct Two {
        user_id: uuid::Uuid,
        key_id: uuid::Uuid,
    }

    #[tokio::test]
    async fn the_bad_one_of_two_ids_is_named() {
        let inner = axum::Router::new().route(
            "/u/{user_id}/k/{key_id}",
            get(|ApiPath(_): ApiPath<Two>| async { "ok" }),
        );
        // Nested, as every route of the server is: the router sees the path without its prefix.
        let app = axum::Router::new().nest("/api/x", inner);
        let uri = format!("/api/x/u/{}/k/a%00b", uuid::Uuid::nil());
        let response = app
            .oneshot(
                axum::http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .expect("test"),
            )
            .await
            .expect("test");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("test");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("test");
        assert_eq!(
            body["detail"][0]["loc"],
            serde_json::json!(["path", "key_id"]),
            "{body}"
        );
    }
}
