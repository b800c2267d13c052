//! The OpenAPI 3.1 document: generated from the handlers' annotations, each realm-scoped router
//! nested under its prefixes, with FastAPI's error schema names.

use serde::Serialize;
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::openapi::{OpenApi as OpenApiDoc, PathItem};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::FieldError;

/// A non-validation error: `{"detail": "User not found"}`.
#[derive(Serialize, ToSchema)]
pub struct HttpError {
    pub detail: String,
}

/// A validation error: `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`.
#[derive(Serialize, ToSchema)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub struct HTTPValidationError {
    pub detail: Vec<FieldError>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        // OAuth2 password flow against the SLM login, so that Swagger UI's Authorize works.
        components.add_security_scheme(
            "bearer",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "/api/slm-auth/login",
                Scopes::new(),
            ))])),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SLM Server",
        description = "User management and central authentication for the AutoBot platform.",
    ),
    paths(crate::ops::healthz, crate::ops::readyz, crate::ops::metrics),
    components(schemas(HttpError, HTTPValidationError, FieldError)),
    modifiers(&Security),
)]
struct BaseDoc;

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Tags the operations of a router mounted at `prefix` and makes their ids unique per mount
/// (the same handler serves both realms).
fn mounted(mut doc: OpenApiDoc, tag: &str) -> OpenApiDoc {
    let suffix = tag.replace('-', "_");
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            let id = op.operation_id.take().unwrap_or_default();
            op.operation_id = Some(format!("{id}_{suffix}"));
            op.tags = Some(vec![tag.to_owned()]);
        }
    }
    doc
}

/// The whole document.
pub fn document() -> OpenApiDoc {
    let mounts: Vec<(&str, OpenApiDoc)> = vec![
        ("/api/slm-auth", crate::auth::ApiDoc::openapi()),
        ("/api/autobot-auth", crate::auth::ApiDoc::openapi()),
        ("/api/slm-users", crate::users::ApiDoc::openapi()),
        ("/api/autobot-users", crate::users::ApiDoc::openapi()),
        (
            "/api/autobot-users",
            crate::teams::UserTeamsApiDoc::openapi(),
        ),
        ("/api/autobot-teams", crate::teams::ApiDoc::openapi()),
        (
            "/api/access-requests",
            crate::access_requests::ApiDoc::openapi(),
        ),
        ("/api/audit", crate::audit::ApiDoc::openapi()),
    ];
    let mut doc = BaseDoc::openapi();
    for (prefix, api) in mounts {
        let tag = prefix.trim_start_matches("/api/");
        doc = doc.nest(prefix, mounted(api, tag));
    }
    // Collection routes are written "" in the handlers; "/api/x" + "" is the collection path.
    doc
}
