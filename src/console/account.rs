//! The console's home and "my account": password, MFA (with its QR code and backup codes), API
//! keys (each shown once), and my sessions. The same services as `/api/auth/me/…`.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use secrecy::SecretString;

use crate::access::authz::{Caller, RealmUser, SessionUser, SignedIn};
use crate::access::principal::Principal;
use crate::auth::api_keys::dto::CreateApiKeyRequest;
use crate::auth::api_keys::service as api_keys;
use crate::auth::mfa::service::{self as mfa, Proof};
use crate::auth::service;
use crate::console::layout::{action, field, form, may, once, page, svg};
use crate::console::session::{ConsoleForm, Csrf};
use crate::console::sign_in::message;
use crate::http::error::ApiError;
use crate::state::Target;

pub async fn home(Caller(me): SignedIn) -> Response {
    if me.must_change_password {
        return Redirect::to("/console/password").into_response();
    }
    let link = |permission: &str, href: &str, text: &str, what: &str| {
        html! {
            @if permission.is_empty() || may(&me, permission) {
                li { a href=(href) { (text) } " — " (what) }
            }
        }
    };
    page("Console", Some(&me), html! {
        section {
            p { "Signed in as " strong { (me.username) } "." }
            ul {
                (link("slm-users:read", "/console/slm-users", "SLM users", "fleet administrators"))
                (link("autobot-users:read", "/console/autobot-users", "AutoBot users", "chat and tool users"))
                (link("autobot-users:read", "/console/teams", "Teams", "AutoBot teams and their members"))
                (link("access-requests:review", "/console/access-requests", "Access requests", "people asking for AutoBot access"))
                (link("audit:read", "/console/audit", "Audit log", "both realms' events"))
                (link("slm-users:write", "/console/sso", "SSO providers", "single sign-on"))
                (link("", "/console/account", "My account", "password, two-factor, API keys, sessions"))
            }
        }
    })
    .into_response()
}

async fn account_page(
    target: &Target,
    me: &Principal,
    csrf: &str,
    notice: Option<Markup>,
) -> Result<Markup, ApiError> {
    let status = mfa::status(&target.realm, me).await?;
    let keys = api_keys::list(&target.realm, me.user_id).await?;
    let sessions = service::my_sessions(&target.realm, me).await?;
    Ok(page(
        "My account",
        Some(me),
        html! {
            @if let Some(notice) = notice { (notice) }
            section {
                h2 { "Password" }
                p { a href="/console/password" { "Change your password" } " (your other sessions end)." }
                (action("/console/logout", csrf, "Sign out", false))
            }
            section {
                h2 { "Two-factor authentication" }
                @if status.enabled {
                    p { "On. Backup codes left: " (status.backup_codes_remaining) "." }
                    (form("/console/account/mfa/backup-codes", csrf, html! {
                        (field("Password, for new backup codes", "password", "password", None, true))
                        button type="submit" { "Make new backup codes" }
                    }))
                    (form("/console/account/mfa/disable", csrf, html! {
                        (field("Password, to turn two-factor off", "password", "password", None, true))
                        button.danger type="submit" { "Turn two-factor off" }
                    }))
                } @else {
                    p { "Off." }
                    (action("/console/account/mfa/setup", csrf, "Set up two-factor authentication", false))
                }
            }
            section {
                h2 { "API keys" }
                @if keys.keys.is_empty() { p.muted { "No API keys." } } @else {
                    div.scroll { table {
                        thead { tr { th { "Name" } th { "Prefix" } th { "Expires" } th { "Last used" } th { "Action" } } }
                        tbody { @for key in &keys.keys { tr {
                            td { (key.name) } td { code { (key.key_prefix) } }
                            td { (key.expires_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into())) }
                            td { (key.last_used_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into())) }
                            td { (action(&format!("/console/account/api-keys/{}/revoke", key.id), csrf, &format!("Revoke {}", key.name), true)) }
                        } } }
                    } }
                }
                (form("/console/account/api-keys", csrf, html! {
                    (field("New key's name", "name", "text", None, true))
                    (field("Expires after (days, empty for never)", "expires_days", "number", None, false))
                    button type="submit" { "Create API key" }
                }))
            }
            section {
                h2 { "My sessions" }
                div.scroll { table {
                    thead { tr { th { "Started" } th { "Last seen" } th { "Address" } th { "Browser" } } }
                    tbody { @for s in &sessions { tr {
                        td { (s.created_at.to_rfc3339()) } td { (s.last_seen_at.to_rfc3339()) }
                        td { (s.ip.clone().unwrap_or_default()) } td { (s.user_agent.clone().unwrap_or_default()) }
                    } } }
                } }
            }
        },
    ))
}

pub async fn show(
    State(target): State<Target>,
    Caller(me): RealmUser,
    Extension(Csrf(csrf)): Extension<Csrf>,
) -> Result<Markup, ApiError> {
    account_page(&target, &me, &csrf, None).await
}

pub async fn mfa_setup(
    State(target): State<Target>,
    Caller(me): SessionUser,
    Extension(Csrf(csrf)): Extension<Csrf>,
    _fields: ConsoleForm,
) -> Result<Markup, ApiError> {
    let setup = mfa::setup(&target.app, &target.realm, &me).await?;
    Ok(page(
        "Set up two-factor authentication",
        Some(&me),
        html! {
            section {
                p { "Scan the code with your authenticator app, or type the secret into it." }
                (svg(&setup.qr_svg))
                p { "Secret: " code { (setup.secret) } }
                (once("Backup codes, each good once", &setup.backup_codes.join("\n")))
                (form("/console/account/mfa/verify", &csrf, html! {
                    (field("A code from the app, to confirm", "code", "text", None, true))
                    button type="submit" { "Turn two-factor on" }
                }))
            }
        },
    ))
}

pub async fn mfa_verify(
    State(target): State<Target>,
    Caller(me): SessionUser,
    Extension(Csrf(csrf)): Extension<Csrf>,
    fields: ConsoleForm,
) -> Result<Markup, ApiError> {
    let code = SecretString::from(fields.get("code").unwrap_or_default());
    let notice = match mfa::verify_setup(&target.app, &target.realm, &me, &code).await {
        Ok(()) => done("Two-factor authentication is on."),
        Err(err) => refused(&err),
    };
    account_page(&target, &me, &csrf, Some(notice)).await
}

pub async fn mfa_disable(
    State(target): State<Target>,
    Caller(me): SessionUser,
    Extension(Csrf(csrf)): Extension<Csrf>,
    fields: ConsoleForm,
) -> Result<Markup, ApiError> {
    let password = SecretString::from(fields.get("password").unwrap_or_default());
    let notice =
        match mfa::disable(&target.app, &target.realm, &me, Proof::Password(&password)).await {
            Ok(()) => done("Two-factor authentication is off."),
            Err(err) => refused(&err),
        };
    account_page(&target, &me, &csrf, Some(notice)).await
}

pub async fn mfa_backup_codes(
    State(target): State<Target>,
    Caller(me): SessionUser,
    Extension(Csrf(csrf)): Extension<Csrf>,
    fields: ConsoleForm,
) -> Result<Markup, ApiError> {
    let password = SecretString::from(fields.get("password").unwrap_or_default());
    let notice =
        match mfa::regenerate_backup_codes(&target.app, &target.realm, &me, &password).await {
            Ok(codes) => once(
                "New backup codes (the old ones no longer work)",
                &codes.join("\n"),
            ),
            Err(err) => refused(&err),
        };
    account_page(&target, &me, &csrf, Some(notice)).await
}

pub async fn create_api_key(
    State(target): State<Target>,
    Caller(me): SessionUser,
    Extension(Csrf(csrf)): Extension<Csrf>,
    fields: ConsoleForm,
) -> Result<Markup, ApiError> {
    let expires_days = match fields.text("expires_days") {
        None => None,
        Some(days) => Some(days.trim().parse::<i64>().map_err(|_| {
            ApiError::field(crate::http::error::FieldError::body(
                "expires_days",
                "Must be a number of days",
            ))
        })?),
    };
    let request = CreateApiKeyRequest {
        name: fields.get("name").unwrap_or_default().to_owned(),
        description: None,
        scopes: None,
        expires_days,
        expires_in_days: None,
    };
    let issued = match api_keys::parse_request(request, &me.permissions) {
        Ok(new) => api_keys::issue(&target.realm, &me.actor(), me.user_id, new).await,
        Err(err) => Err(err),
    };
    let notice = match issued {
        Ok(created) => once(&format!("API key {}", created.name), &created.key),
        Err(err) => refused(&err),
    };
    account_page(&target, &me, &csrf, Some(notice)).await
}

pub async fn revoke_api_key(
    State(target): State<Target>,
    Caller(me): SessionUser,
    crate::http::extract::ApiPath(path): crate::http::extract::ApiPath<
        crate::auth::api_keys::dto::ApiKeyPath,
    >,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    api_keys::revoke(&target.realm, &me.actor(), me.user_id, path.key_id).await?;
    Ok(Redirect::to("/console/account").into_response())
}

/// The line that says a change of the account was made.
fn done(text: &str) -> Markup {
    html! { div.notice role="status" { p { (text) } } }
}

/// What the API said of a refused change, shown on the account page.
fn refused(err: &ApiError) -> Markup {
    html! { div.problem role="alert" { p { (message(err)) } } }
}
