//! SSO providers (`/console/sso`, and the AutoBot realm's at `/console/autobot-sso`): create
//! with the whole `config`, test, turn on or off, delete. The same services as
//! `/api/sso-providers`.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::access::authz::CanManageSso;
use crate::console::layout::{action, checkbox, field, form, page, select};
use crate::console::session::{ConsoleForm, Csrf};
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::ApiPath;
use crate::realm::RealmId;
use crate::sso::dto::{CreateProvider, ProviderPath, UpdateProvider};
use crate::sso::providers;
use crate::state::Target;

fn base(target: &Target) -> &'static str {
    match target.realm.id() {
        RealmId::Slm => "/console/sso",
        RealmId::Autobot => "/console/autobot-sso",
    }
}

const TYPES: &[(&str, &str)] = &[
    ("oidc", "OpenID Connect (Keycloak, Okta, any)"),
    ("microsoft_entra", "Microsoft Entra ID"),
    ("google", "Google"),
    ("google_workspace", "Google Workspace"),
    ("github", "GitHub"),
    ("ldap", "LDAP"),
    ("active_directory", "Active Directory"),
];

pub async fn list(
    State(target): State<Target>,
    op: CanManageSso,
    Extension(Csrf(csrf)): Extension<Csrf>,
) -> Result<Markup, ApiError> {
    let listed = providers::list(&target.realm, &op, None, false).await?;
    let base = base(&target);
    let title = match target.realm.id() {
        RealmId::Slm => "SSO providers (dashboard and console)",
        RealmId::Autobot => "SSO providers of AutoBot",
    };
    Ok(page(
        title,
        Some(&op.0.principal),
        html! {
            p { a href="/console/sso" { "SLM realm" } " · " a href="/console/autobot-sso" { "AutoBot realm" } " · " "docs/sso.md explains each kind." }
            @for p in &listed {
                section {
                    h2 { (p.name) " (" (p.provider_type) ")" }
                    p { (if p.is_active { "Active" } else { "Inactive" }) " · creates users: " (if p.allow_user_creation { "yes" } else { "no" })
                        " · default role: " (p.default_role.clone().unwrap_or_default()) }
                    pre { code { (serde_json::to_string_pretty(&p.config).unwrap_or_default()) } }
                    div.actions {
                        (action(&format!("{base}/{}/test", p.id), &csrf, &format!("Test {}", p.name), false))
                        @if p.is_active {
                            (action(&format!("{base}/{}/deactivate", p.id), &csrf, &format!("Turn {} off", p.name), false))
                        } @else {
                            (action(&format!("{base}/{}/activate", p.id), &csrf, &format!("Turn {} on", p.name), false))
                        }
                        (action(&format!("{base}/{}/delete", p.id), &csrf, &format!("Delete {}", p.name), true))
                    }
                }
            }
            section {
                h2 { "New provider" }
                (form(base, &csrf, html! {
                    (select("Type", "provider_type", TYPES, Some("oidc")))
                    (field("Name on the sign-in button", "name", "text", None, true))
                    p.field {
                        label for="f-config" { "Settings (JSON: issuer, client_id, client_secret, … as docs/sso.md says)" }
                        textarea id="f-config" name="config" required { "{\n  \"issuer\": \"\",\n  \"client_id\": \"\",\n  \"client_secret\": \"\"\n}" }
                    }
                    (field("Default role of the users it creates", "default_role", "text", None, false))
                    p.field {
                        label for="f-group_mapping" { "Group mapping (JSON: group → role)" }
                        textarea id="f-group_mapping" name="group_mapping" { "{}" }
                    }
                    (checkbox("Creates users met the first time", "allow_user_creation", "on", true))
                    (checkbox("Active", "is_active", "on", true))
                    button type="submit" { "Create provider" }
                }))
            }
        },
    ))
}

fn json_field<T: serde::de::DeserializeOwned>(
    fields: &ConsoleForm,
    name: &str,
) -> Result<Option<T>, ApiError> {
    match fields.text(name) {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|_| ApiError::field(FieldError::body(name, "Must be a JSON object"))),
    }
}

pub async fn create(
    State(target): State<Target>,
    op: CanManageSso,
    fields: ConsoleForm,
) -> Result<Response, ApiError> {
    let body = CreateProvider {
        provider_type: fields.get("provider_type").unwrap_or_default().to_owned(),
        name: fields.get("name").unwrap_or_default().to_owned(),
        config: json_field(&fields, "config")?.unwrap_or_default(),
        org_id: None,
        is_active: Some(fields.flag("is_active")),
        is_social: None,
        allow_user_creation: Some(fields.flag("allow_user_creation")),
        default_role: fields.text("default_role"),
        group_mapping: json_field(&fields, "group_mapping")?,
    };
    providers::create(&target.app, &target.realm, &op, body).await?;
    Ok(Redirect::to(base(&target)).into_response())
}

pub async fn test(
    State(target): State<Target>,
    op: CanManageSso,
    ApiPath(path): ApiPath<ProviderPath>,
    _fields: ConsoleForm,
) -> Result<Markup, ApiError> {
    let outcome = providers::test(&target.app, &target.realm, &op, path.provider_id).await?;
    Ok(page(
        "Provider test",
        Some(&op.0.principal),
        html! {
            @if outcome.success {
                div.notice role="status" { p { (outcome.message) } }
            } @else {
                div.problem role="alert" { p { (outcome.message) } }
            }
            @if let Some(details) = &outcome.details {
                pre { code { (serde_json::to_string_pretty(details).unwrap_or_default()) } }
            }
            p { a href=(base(&target)) { "Back to the providers" } }
        },
    ))
}

async fn set_active(
    target: &Target,
    op: &CanManageSso,
    path: ProviderPath,
    on: bool,
) -> Result<Response, ApiError> {
    let change = UpdateProvider {
        is_active: Some(on),
        ..UpdateProvider::default()
    };
    providers::update(&target.app, &target.realm, op, path.provider_id, change).await?;
    Ok(Redirect::to(base(target)).into_response())
}

pub async fn activate(
    State(target): State<Target>,
    op: CanManageSso,
    ApiPath(path): ApiPath<ProviderPath>,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    set_active(&target, &op, path, true).await
}

pub async fn deactivate(
    State(target): State<Target>,
    op: CanManageSso,
    ApiPath(path): ApiPath<ProviderPath>,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    set_active(&target, &op, path, false).await
}

pub async fn delete(
    State(target): State<Target>,
    op: CanManageSso,
    ApiPath(path): ApiPath<ProviderPath>,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    providers::delete(&target.realm, &op, path.provider_id).await?;
    Ok(Redirect::to(base(&target)).into_response())
}
