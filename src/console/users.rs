//! Users of a realm (`/console/slm-users`, `/console/autobot-users`): search and pages,
//! create, edit, password, roles, activate/deactivate, unlock, sessions, MFA reset, delete, the
//! GDPR export. The same services as `/api/{slm,autobot}-users`.

use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use secrecy::SecretString;
use uuid::Uuid;

use crate::access::authz::{CanRead, CanWrite};
use crate::console::layout::{action, checkbox, field, form, may, page};
use crate::console::session::{ConsoleForm, Csrf};
use crate::domain::{Email, Errors, Password, Username, parse_name};
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::pagination::Page;
use crate::realm::{Realm, RealmId};
use crate::state::Target;
use crate::users::db::ProfileChange;
use crate::users::dto::UserPath;
use crate::users::roles::RoleInput;
use crate::users::search::UserFilter;
use crate::users::service::{self, Credential, NewUser};
use crate::users::update::{self, UserPatch};
use crate::users::{User, access};

const PAGE_SIZE: i64 = 25;

/// The console's path of a realm's users.
fn base(realm: &Realm) -> &'static str {
    match realm.id() {
        RealmId::Slm => "/console/slm-users",
        RealmId::Autobot => "/console/autobot-users",
    }
}

fn title(realm: &Realm) -> &'static str {
    match realm.id() {
        RealmId::Slm => "SLM users",
        RealmId::Autobot => "AutoBot users",
    }
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    page: Option<i64>,
}

pub async fn list(
    State(target): State<Target>,
    op: CanRead,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Markup, ApiError> {
    let realm = &target.realm;
    let number = query.page.unwrap_or(1).clamp(1, 100_000);
    let search = crate::http::pagination::search_term(query.q.clone())?;
    let filter = UserFilter {
        search: search.clone(),
        skip: (number - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
        ..UserFilter::default()
    };
    let (users, total) = service::list(realm, &filter).await?;
    let me = &op.0.principal;
    let q = search.unwrap_or_default();
    let link = |n: i64| {
        format!(
            "{}?q={}&page={n}",
            base(realm),
            crate::console::urlencode(&q)
        )
    };
    Ok(page(
        title(realm),
        Some(me),
        html! {
            form method="get" action=(base(realm)) role="search" {
                (field("Search by username, e-mail or name", "q", "search", Some(&q), false))
                button type="submit" { "Search" }
            }
            @if may(me, realm.policy().write_permission) {
                p { a href=(format!("{}/new", base(realm))) { "Create a user" } }
            }
            p.muted { (total) " users" }
            div.scroll { table {
                thead { tr { th { "Username" } th { "E-mail" } th { "Roles" } th { "Active" } th { "Last sign-in" } } }
                tbody { @for user in &users { tr {
                    td { a href=(format!("{}/{}", base(realm), user.id)) { (user.username) } }
                    td { (user.email) }
                    td { (roles(user)) }
                    td { (if user.is_active { "yes" } else { "no" }) }
                    td { (user.last_login_at.map(|t| t.to_rfc3339()).unwrap_or_default()) }
                } } }
            } }
            nav aria-label="Pages" .actions {
                @if number > 1 { a href=(link(number - 1)) { "Previous page" } }
                @if number * PAGE_SIZE < total { a href=(link(number + 1)) { "Next page" } }
            }
        },
    ))
}

fn roles(user: &User) -> String {
    let names: Vec<&str> = user.roles.iter().map(|r| r.name.as_str()).collect();
    names.join(", ")
}

pub async fn new_form(
    State(target): State<Target>,
    op: CanWrite,
    Extension(Csrf(csrf)): Extension<Csrf>,
) -> Markup {
    let realm = &target.realm;
    let catalog = realm.catalog();
    page(
        &format!("New user of {}", title(realm)),
        Some(&op.0.principal),
        html! {
            section { (form(base(realm), &csrf, html! {
                (field("Username (3–50 letters, digits, . _ -)", "username", "text", None, true))
                (field("E-mail", "email", "email", None, true))
                (field("Display name", "display_name", "text", None, false))
                (field("Password", "password", "password", None, true))
                fieldset {
                    legend { "Roles" }
                    @for role in catalog.roles() {
                        (checkbox(&role.name, "roles", &role.name, role.name == realm.new_user_role()))
                    }
                }
                (checkbox("Active", "is_active", "on", true))
                button type="submit" { "Create user" }
            })) }
        },
    )
}

pub async fn create(
    State(target): State<Target>,
    op: CanWrite,
    fields: ConsoleForm,
) -> Result<Response, ApiError> {
    let realm = &target.realm;
    let mut errors = Errors::default();
    let raw_username = fields.get("username").unwrap_or_default();
    let username = errors.body("username", Username::parse(raw_username));
    let email = errors.body(
        "email",
        Email::parse(fields.get("email").unwrap_or_default()),
    );
    let display_name = match fields.text("display_name") {
        None => Some(None),
        Some(raw) => errors.body("display_name", parse_name(&raw, 255, "Display name")),
    };
    let secret = SecretString::from(fields.get("password").unwrap_or_default());
    let password = errors.body(
        "password",
        Password::parse(
            &secret,
            raw_username,
            email.as_ref().map(Email::as_str),
            realm.scheme(),
        ),
    );
    let new = errors.finish(|| {
        Some(NewUser {
            username: username?,
            email: email?,
            display_name: display_name?,
            credential: Credential::Password(password?),
            roles: RoleInput {
                names: Some(fields.all("roles")),
                ids: None,
            },
            admin: false,
            is_active: fields.flag("is_active"),
            must_change_password: false,
            org_id: None,
        })
    })?;
    let user = service::create_by(&target.app, realm, &op, new).await?;
    Ok(Redirect::to(&format!("{}/{}", base(realm), user.id)).into_response())
}

pub async fn show(
    State(target): State<Target>,
    op: CanRead,
    Extension(Csrf(csrf)): Extension<Csrf>,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<Markup, ApiError> {
    let realm = &target.realm;
    let user = service::get(realm, path.user_id).await?;
    let (sessions, _) = access::sessions(realm, &op, user.id, Page { skip: 0, limit: 50 }).await?;
    let me = &op.0.principal;
    let write = may(me, realm.policy().write_permission);
    let here = format!("{}/{}", base(realm), user.id);
    let catalog = realm.catalog();
    Ok(page(
        &user.username,
        Some(me),
        html! {
            section {
                h2 { "Profile" }
                dl {
                    dt { "E-mail" } dd { (user.email) }
                    dt { "Display name" } dd { (user.display_name.clone().unwrap_or_default()) }
                    dt { "Roles" } dd { (roles(&user)) }
                    dt { "Active" } dd { (if user.is_active { "yes" } else { "no" }) }
                    dt { "Two-factor" } dd { (if user.mfa_enabled { "on" } else { "off" }) }
                    dt { "Must change password" } dd { (if user.must_change_password { "yes" } else { "no" }) }
                }
                @if realm.id() == RealmId::Autobot && write {
                    p { a href=(format!("{here}/export")) { "Download everything stored about this user (GDPR)" } }
                }
            }
            @if write {
                section {
                    h2 { "Edit" }
                    (form(&format!("{here}/edit"), &csrf, html! {
                        (field("E-mail", "email", "email", Some(&user.email), true))
                        (field("Display name", "display_name", "text", user.display_name.as_deref(), false))
                        button type="submit" { "Save profile" }
                    }))
                    (form(&format!("{here}/password"), &csrf, html! {
                        (field("New password", "password", "password", None, true))
                        button type="submit" { "Set password" }
                    }))
                }
                section {
                    h2 { "Roles" }
                    (form(&format!("{here}/roles"), &csrf, html! {
                        fieldset {
                            legend { "Roles held" }
                            @for role in catalog.roles() {
                                (checkbox(&role.name, "roles", &role.name, user.has_role(&role.name)))
                            }
                        }
                        button type="submit" { "Save roles" }
                    }))
                }
                section {
                    h2 { "Access" }
                    div.actions {
                        @if user.is_active {
                            (action(&format!("{here}/deactivate"), &csrf, "Deactivate", true))
                        } @else {
                            (action(&format!("{here}/activate"), &csrf, "Activate", false))
                        }
                        (action(&format!("{here}/unlock"), &csrf, "Unlock", false))
                        (action(&format!("{here}/revoke-sessions"), &csrf, "End all sessions and API keys", true))
                        @if user.mfa_enabled { (action(&format!("{here}/reset-mfa"), &csrf, "Reset two-factor", true)) }
                        (action(&format!("{here}/delete"), &csrf, "Delete user", true))
                    }
                }
            }
            section {
                h2 { "Sessions" }
                div.scroll { table {
                    thead { tr { th { "Started" } th { "Last seen" } th { "Address" } } }
                    tbody { @for s in &sessions { tr {
                        td { (s.created_at.to_rfc3339()) } td { (s.last_seen_at.to_rfc3339()) }
                        td { (s.ip.clone().unwrap_or_default()) }
                    } } }
                } }
            }
        },
    ))
}

fn back(realm: &Realm, id: Uuid) -> Response {
    Redirect::to(&format!("{}/{id}", base(realm))).into_response()
}

pub async fn edit(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    fields: ConsoleForm,
) -> Result<Response, ApiError> {
    let mut errors = Errors::default();
    let email = errors.body(
        "email",
        Email::parse(fields.get("email").unwrap_or_default()),
    );
    let display_name = errors.body(
        "display_name",
        parse_name(
            fields.get("display_name").unwrap_or_default(),
            255,
            "Display name",
        ),
    );
    let patch = errors.finish(|| {
        Some(UserPatch {
            profile: ProfileChange {
                email: Some(email?.as_str().to_owned()),
                display_name: Some(display_name?),
                ..ProfileChange::default()
            },
            ..UserPatch::default()
        })
    })?;
    update::update(&target.app, &target.realm, &op, path.user_id, patch).await?;
    Ok(back(&target.realm, path.user_id))
}

pub async fn set_password(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    fields: ConsoleForm,
) -> Result<Response, ApiError> {
    let patch = UserPatch {
        password: Some(SecretString::from(
            fields.get("password").unwrap_or_default(),
        )),
        ..UserPatch::default()
    };
    update::update(&target.app, &target.realm, &op, path.user_id, patch).await?;
    Ok(back(&target.realm, path.user_id))
}

async fn set_active(
    target: &Target,
    op: &CanWrite,
    id: Uuid,
    active: bool,
) -> Result<Response, ApiError> {
    let patch = UserPatch {
        profile: ProfileChange {
            is_active: Some(active),
            ..ProfileChange::default()
        },
        ..UserPatch::default()
    };
    update::update(&target.app, &target.realm, op, id, patch).await?;
    Ok(back(&target.realm, id))
}

pub async fn deactivate(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    set_active(&target, &op, path.user_id, false).await
}

pub async fn activate(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    set_active(&target, &op, path.user_id, true).await
}

/// Makes the checked roles the user's: those added, then those withdrawn.
pub async fn set_roles(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    fields: ConsoleForm,
) -> Result<Response, ApiError> {
    let realm = &target.realm;
    let wanted = fields.all("roles");
    let user = service::get(realm, path.user_id).await?;
    let added: Vec<String> = wanted
        .iter()
        .filter(|r| !user.has_role(r))
        .cloned()
        .collect();
    if !added.is_empty() {
        let input = RoleInput {
            names: Some(added),
            ids: None,
        };
        access::add_roles(realm, &op, user.id, input).await?;
    }
    for role in user.roles.iter().filter(|r| !wanted.contains(&r.name)) {
        access::remove_role(realm, &op, user.id, &role.name).await?;
    }
    Ok(back(realm, user.id))
}

pub async fn unlock(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    access::unlock(&target.realm, &op, path.user_id).await?;
    Ok(back(&target.realm, path.user_id))
}

pub async fn revoke_sessions(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    access::revoke_sessions(&target.realm, &op, path.user_id).await?;
    Ok(back(&target.realm, path.user_id))
}

pub async fn reset_mfa(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    access::reset_mfa(&target.realm, &op, path.user_id).await?;
    Ok(back(&target.realm, path.user_id))
}

pub async fn delete(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    service::delete(&target.realm, &op, path.user_id).await?;
    Ok(Redirect::to(base(&target.realm)).into_response())
}

/// The GDPR export, as a JSON download.
pub async fn export(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<Response, ApiError> {
    let export = crate::export::gather(&target.realm, &op, path.user_id).await?;
    let body = serde_json::to_vec_pretty(&export).map_err(|e| ApiError::Internal(e.into()))?;
    let disposition = format!("attachment; filename=\"user-{}.json\"", path.user_id);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
