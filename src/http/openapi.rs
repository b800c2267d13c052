//! The OpenAPI 3.1 document and Swagger UI. The paths come from the route table
//! ([`crate::routes`]), where each route is declared once with its operation; this module adds
//! what every operation shares: the security schemes, the tags, unique operation ids, and the
//! error answers that any operation of a kind can give (422 for bad input, 401 without
//! credentials, 503 when a database is down…), so the document lists every status it can see,
//! and the rule that holds for every string: no NUL character (docs/api.md §1).

use crate::http::extract::ApiJson;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::openapi::{
    Content, OpenApi, PathItem, Ref, RefOr, Response as ApiResponse, ResponseBuilder,
};
use utoipa::{OpenApi as _, ToSchema as _};

use crate::http::error::{FieldError, HTTPValidationError, HttpError, LocItem};
use crate::http::extract::ApiPath;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "SLM Server",
        description = "User management and central authentication for the AutoBot platform.",
    ),
    components(schemas(HttpError, HTTPValidationError, FieldError, LocItem))
)]
struct BaseDoc;

fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
}

fn error_response(description: &str, schema: &str) -> RefOr<ApiResponse> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name(schema))),
            )
            .build(),
    )
}

/// Adds `status` to `op` unless the handler documented it itself.
fn answers(op: &mut Operation, status: u16, description: &str, schema: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| error_response(description, schema));
}

/// The error answers an operation can give because of what it takes and where it lives.
fn add_shared_answers(path: &str, op: &mut Operation) {
    let validation = HTTPValidationError::name();
    let detail = HttpError::name();
    let has_input =
        op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if has_input {
        answers(op, 422, "Validation Error", &validation);
    }
    if op.request_body.is_some() {
        answers(op, 413, "Request body over 64 KiB", &detail);
        answers(op, 415, "Unsupported Content-Type", &detail);
    }
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    if secured {
        answers(op, 401, "Missing, invalid or revoked credentials", &detail);
        answers(op, 403, "Not enough permissions", &detail);
    }
    if path.contains('{') {
        answers(op, 404, "Not found", &detail);
    }
    if path.starts_with("/api/") {
        answers(op, 408, "Request timed out", &detail);
        answers(
            op,
            503,
            "A database is unreachable or the server is saturated",
            &detail,
        );
    }
}

/// The mount a path belongs to, as its tag: `/api/autobot-users/{id}` is `autobot-users`.
fn tag_of(path: &str) -> String {
    path.strip_prefix("/api/")
        .and_then(|rest| rest.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("operations")
        .to_owned()
}

/// Completes the document generated from the route table.
pub fn document(routes: OpenApi) -> OpenApi {
    let mut doc = BaseDoc::openapi().merge_from(routes);
    let components = doc.components.get_or_insert_with(Default::default);
    // OAuth2 password flow against the SLM login, so that Swagger UI's Authorize works. (One
    // scheme: an API key in `X-API-Key` is the same credential as one in `Authorization`, and
    // declaring it as an alternative scheme would tell clients that either header alone is a
    // different way in.)
    components.add_security_scheme(
        "bearer",
        SecurityScheme::OAuth2(OAuth2::with_description(
            [Flow::Password(Password::new(
                "/api/slm-auth/login",
                Scopes::new(),
            ))],
            "`Authorization: Bearer <token>`: an access JWT from a login, or an API key \
             (which may also come as `X-API-Key: <key>`, the dashboard's convention).",
        )),
    );
    // The same handler serves several mounts (both realms): operation ids must stay unique.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        let tag = tag_of(path);
        for (method, op) in operations(item) {
            add_shared_answers(path, op);

            op.tags = Some(vec![tag.clone()]);
            let base = op
                .operation_id
                .take()
                .unwrap_or_else(|| format!("{method}_{}", path.replace(['/', '{', '}', '-'], "_")));
            let id = format!("{base}_{}", tag.replace('-', "_"));
            let n = seen.entry(id.clone()).or_insert(0);
            *n += 1;
            op.operation_id = Some(if *n == 1 { id } else { format!("{id}_{n}") });
        }
    }
    doc
}

/// A pattern that every string without one of its own gets: no NUL. PostgreSQL cannot store
/// U+0000 and no field has a use for it, so the server refuses it everywhere (see
/// `crate::extract`); the document says so, so that a client knows before it asks.
const NO_NUL: &str = "^[^\\u0000]*$";

/// Adds [`NO_NUL`] to every string schema of `value` (the whole document) that has no pattern,
/// enumeration or constant of its own. (The patterns written by hand exclude control
/// characters, NUL among them.)
fn forbid_nul(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let is_string = match map.get("type") {
                Some(serde_json::Value::String(t)) => t == "string",
                Some(serde_json::Value::Array(types)) => types.iter().any(|t| t == "string"),
                _ => false,
            };
            if is_string
                && !["pattern", "enum", "const"]
                    .iter()
                    .any(|k| map.contains_key(*k))
            {
                map.insert("pattern".into(), NO_NUL.into());
            }
            for (key, item) in map.iter_mut() {
                // Examples are data, not schemas.
                if key != "example" && key != "examples" {
                    forbid_nul(item);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

/// The document as served at `/openapi.json`.
pub fn served(doc: &OpenApi) -> serde_json::Value {
    let mut value = serde_json::to_value(doc).unwrap_or_default();
    forbid_nul(&mut value);
    value
}

/// The Swagger UI page of `doc`, served from the binary (no CDN) at `/docs` itself.
pub fn docs_router(doc: OpenApi) -> Router {
    let doc = Arc::new(served(&doc));
    let config = Arc::new(utoipa_swagger_ui::Config::from("/openapi.json"));
    let index = {
        let config = config.clone();
        move || {
            let config = config.clone();
            async move { swagger_file("", config, true) }
        }
    };
    let asset = move |ApiPath(rest): ApiPath<String>| {
        let config = config.clone();
        async move { swagger_file(&rest, config, false) }
    };
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { ApiJson(doc.as_ref().clone()) }
            }),
        )
        .route("/docs", get(index.clone()))
        .route("/docs/", get(index))
        .route("/docs/{*rest}", get(asset))
}

fn swagger_file(
    path: &str,
    config: Arc<utoipa_swagger_ui::Config<'static>>,
    index: bool,
) -> Response {
    let Ok(Some(file)) = utoipa_swagger_ui::serve(path, config) else {
        return crate::http::error::detail_response(StatusCode::NOT_FOUND, "Not Found");
    };
    let mut bytes = file.bytes.into_owned();
    if index && !file.gzpipped {
        // The page is served at `/docs` (no redirect); its assets are relative to `/docs/`.
        let html =
            String::from_utf8_lossy(&bytes).replacen("<head>", "<head><base href=\"/docs/\">", 1);
        bytes = html.into_bytes();
    }
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, file.content_type)],
        bytes,
    )
        .into_response();
    if file.gzpipped {
        response.headers_mut().insert(
            header::CONTENT_ENCODING,
            axum::http::HeaderValue::from_static("gzip"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_mount() {
        assert_eq!(tag_of("/api/autobot-users/{user_id}"), "autobot-users");
        assert_eq!(tag_of("/healthz"), "operations");
    }

    #[test]
    fn every_string_without_a_pattern_gets_the_no_nul_one() {
        let mut doc = serde_json::json!({
            "a": {"type": "string"},
            "b": {"type": ["string", "null"], "format": "email"},
            "c": {"type": "string", "pattern": "^x$"},
            "d": {"type": "string", "enum": ["x"]},
            "e": {"type": "integer"},
            "f": {"properties": {"g": {"type": "string"}}, "example": {"type": "string"}}
        });
        forbid_nul(&mut doc);
        assert_eq!(doc["a"]["pattern"], NO_NUL);
        assert_eq!(doc["b"]["pattern"], NO_NUL);
        assert_eq!(doc["c"]["pattern"], "^x$");
        assert!(doc["d"].get("pattern").is_none());
        assert!(doc["e"].get("pattern").is_none());
        assert_eq!(doc["f"]["properties"]["g"]["pattern"], NO_NUL);
        assert!(
            doc["f"]["example"].get("pattern").is_none(),
            "examples are data"
        );
    }

    #[test]
    fn loc_items_are_strings_or_integers() {
        let schema =
            serde_json::to_value(<LocItem as utoipa::PartialSchema>::schema()).expect("schema");
        let text = schema.to_string();
        assert!(
            text.contains("\"string\"") && text.contains("\"integer\""),
            "{text}"
        );
    }
}
