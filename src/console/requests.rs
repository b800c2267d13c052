//! Access requests: the public form (`/request-access`) and their review
//! (`/console/access-requests`): approve with roles (the temporary password shown once), deny
//! with a required comment. The same services as `/api/access-requests`.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::access::authz::CanReview;
use crate::access_requests::dto::{AccessRequestPath, RequestStatus};
use crate::access_requests::service::{self, Submission};
use crate::console::layout::{checkbox, field, form, once, page};
use crate::console::session::{ConsoleForm, Csrf};
use crate::console::sign_in::message;
use crate::domain::{Email, Errors, Username, parse_name, parse_text};
use crate::http::client::ClientInfo;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::ApiPath;
use crate::http::pagination::Page;
use crate::state::Target;
use crate::users::roles::RoleInput;

fn request_form(csrf: &str, error: Option<&str>) -> Markup {
    page(
        "Ask for AutoBot access",
        None,
        html! {
            @if let Some(error) = error { div.problem role="alert" { p { (error) } } }
            section {
                p { "An administrator reviews each request. You will hear back by e-mail." }
                (form("/request-access", csrf, html! {
                    (field("Username (3–50 letters, digits, . _ -)", "username", "text", None, true))
                    (field("E-mail", "email", "email", None, true))
                    (field("Full name", "full_name", "text", None, false))
                    p.field {
                        label for="f-reason" { "Why you need access" }
                        textarea id="f-reason" name="reason" maxlength="2000" {}
                    }
                    button type="submit" { "Send request" }
                }))
            }
        },
    )
}

pub async fn show_form(Extension(Csrf(csrf)): Extension<Csrf>) -> Markup {
    request_form(&csrf, None)
}

/// The public form posted: the same rate limit and checks as `POST /api/access-requests`.
pub async fn submit(
    State(target): State<Target>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    client: ClientInfo,
    fields: ConsoleForm,
) -> Response {
    let mut errors = Errors::default();
    let username = errors.body(
        "username",
        Username::parse(fields.get("username").unwrap_or_default()),
    );
    let email = errors.body(
        "email",
        Email::parse(fields.get("email").unwrap_or_default()),
    );
    let full_name = errors.body(
        "full_name",
        parse_name(
            fields.get("full_name").unwrap_or_default(),
            255,
            "Full name",
        ),
    );
    let reason = errors.body(
        "reason",
        parse_text(fields.get("reason").unwrap_or_default(), 2000, "Reason"),
    );
    let submission = errors.finish(|| {
        Some(Submission {
            username: username?,
            email: email?,
            full_name: full_name?,
            reason: reason?,
        })
    });
    let outcome = match submission {
        Ok(submission) => service::submit(&target.app, &target.realm, client, submission).await,
        Err(err) => Err(err),
    };
    match outcome {
        Ok(_) => page(
            "Request sent",
            None,
            html! {
                div.notice role="status" {
                    p { "Thank you: your request is waiting for an administrator's review." }
                }
            },
        )
        .into_response(),
        Err(err) => (err.status(), request_form(&csrf, Some(&message(&err)))).into_response(),
    }
}

pub async fn list(
    State(target): State<Target>,
    op: CanReview,
    Extension(Csrf(csrf)): Extension<Csrf>,
) -> Result<Markup, ApiError> {
    let page_of = Page {
        skip: 0,
        limit: 200,
    };
    let (requests, total) =
        service::list(&target.realm, &op, Some(RequestStatus::Pending), page_of).await?;
    let catalog = target.realm.catalog();
    Ok(page(
        "Access requests",
        Some(&op.0.principal),
        html! {
            p.muted { (total) " pending" }
            @for request in &requests {
                section {
                    h2 { (request.username) " — " (request.email) }
                    p { (request.full_name.clone().unwrap_or_default()) }
                    @if let Some(reason) = &request.reason { blockquote { (reason) } }
                    p.muted { "Asked " (request.created_at.to_rfc3339()) }
                    (form(&format!("/console/access-requests/{}/approve", request.id), &csrf, html! {
                        fieldset {
                            legend { "Roles of the new user" }
                            @for role in catalog.roles() {
                                (checkbox(&role.name, "roles", &role.name, role.name == target.realm.policy().default_role))
                            }
                        }
                        button type="submit" { "Approve " (request.username) }
                    }))
                    (form(&format!("/console/access-requests/{}/deny", request.id), &csrf, html! {
                        (field("Why it is denied", "comment", "text", None, true))
                        button.danger type="submit" { "Deny " (request.username) }
                    }))
                }
            }
        },
    ))
}

pub async fn approve(
    State(target): State<Target>,
    op: CanReview,
    ApiPath(path): ApiPath<AccessRequestPath>,
    fields: ConsoleForm,
) -> Result<Markup, ApiError> {
    let roles = RoleInput {
        names: Some(fields.all("roles")).filter(|r| !r.is_empty()),
        ids: None,
    };
    let approved = service::approve(&target.app, &target.realm, &op, path.id, roles, None).await?;
    Ok(page(
        "Request approved",
        Some(&op.0.principal),
        html! {
            div.notice role="status" {
                p { "The AutoBot user " a href=(format!("/console/autobot-users/{}", approved.user.id)) { (approved.user.username) } " exists now." }
            }
            (once("Temporary password (to be changed at the first sign-in)", &approved.temporary_password))
            p { a href="/console/access-requests" { "Back to the requests" } }
        },
    ))
}

pub async fn deny(
    State(target): State<Target>,
    op: CanReview,
    ApiPath(path): ApiPath<AccessRequestPath>,
    fields: ConsoleForm,
) -> Result<Response, ApiError> {
    let comment = parse_text(fields.get("comment").unwrap_or_default(), 2000, "Comment")
        .map_err(|m| ApiError::field(FieldError::body("comment", m)))?
        .ok_or_else(|| {
            ApiError::field(FieldError::body("comment", "Say why the request is denied"))
        })?;
    service::deny(&target.realm, &op, path.id, &comment).await?;
    Ok(Redirect::to("/console/access-requests").into_response())
}
