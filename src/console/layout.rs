//! The console's page frame and the few pieces every page is made of: a labelled field, a
//! form with its CSRF token, a table. Everything is plain HTML: it works by keyboard and with a
//! screen reader, at 360 px and on a desktop.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::access::principal::Principal;

/// The stylesheet, served from the binary.
pub const STYLESHEET: &str = include_str!("console.css");

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Whether `me` holds `permission`.
pub fn may(me: &Principal, permission: &str) -> bool {
    me.can(permission)
}

/// A page: its title, the navigation of `me` (none before sign-in), and its body.
pub fn page(title: &str, me: Option<&Principal>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · slm-server" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                header {
                    a.brand href="/console/" { "slm-server console" }
                    @if let Some(me) = me {
                        nav aria-label="Main" {
                            a href="/console/" { "Home" }
                            @if may(me, "slm-users:read") { a href="/console/slm-users" { "SLM users" } }
                            @if may(me, "autobot-users:read") {
                                a href="/console/autobot-users" { "AutoBot users" }
                                a href="/console/teams" { "Teams" }
                            }
                            @if may(me, "access-requests:review") { a href="/console/access-requests" { "Access requests" } }
                            @if may(me, "audit:read") { a href="/console/audit" { "Audit log" } }
                            @if may(me, "slm-users:write") { a href="/console/sso" { "SSO" } }
                            a href="/console/account" { "My account (" (me.username) ")" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A form posting to `action`, with the CSRF token.
pub fn form(action: &str, csrf: &str, body: Markup) -> Markup {
    html! {
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            (body)
        }
    }
}

/// A one-button form (an action on a resource).
pub fn action(action: &str, csrf: &str, label: &str, danger: bool) -> Markup {
    form(
        action,
        csrf,
        html! {
            button type="submit" class=[danger.then_some("danger")] { (label) }
        },
    )
}

/// A labelled input.
pub fn field(label: &str, name: &str, kind: &str, value: Option<&str>, required: bool) -> Markup {
    let id = format!("f-{name}");
    html! {
        p.field {
            label for=(id) { (label) }
            input id=(id) name=(name) type=(kind) value=[value] required[required]
                autocomplete=[(kind == "password").then_some("off")];
        }
    }
}

/// A labelled checkbox.
pub fn checkbox(label: &str, name: &str, value: &str, checked: bool) -> Markup {
    let id = format!("f-{name}-{value}");
    html! {
        p.check {
            input id=(id) type="checkbox" name=(name) value=(value) checked[checked];
            label for=(id) { (label) }
        }
    }
}

/// A labelled choice.
pub fn select(label: &str, name: &str, options: &[(&str, &str)], selected: Option<&str>) -> Markup {
    let id = format!("f-{name}");
    html! {
        p.field {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (value, text) in options {
                    option value=(value) selected[Some(*value) == selected] { (text) }
                }
            }
        }
    }
}

/// A notice shown once (a new secret), with what to do about it.
pub fn once(label: &str, secret: &str) -> Markup {
    html! {
        div.once role="status" {
            p { strong { (label) } " — shown once; copy it now." }
            pre { code { (secret) } }
        }
    }
}

/// The page of an error: its status and what the API said.
pub fn problem(status: StatusCode, messages: &[String]) -> Markup {
    page(
        status.canonical_reason().unwrap_or("Error"),
        None,
        html! {
            div.problem role="alert" {
                @for message in messages { p { (message) } }
            }
            p { a href="/console/" { "Back to the console" } }
        },
    )
}

pub fn problem_response(status: StatusCode, message: &str) -> Response {
    (status, problem(status, &[message.to_owned()])).into_response()
}

/// An SVG (a QR code) made by this server, placed as it is.
pub fn svg(svg: &str) -> Markup {
    html! { div.qr role="img" aria-label="QR code of the authenticator secret" { (PreEscaped(svg)) } }
}
