//! AutoBot teams and their members (`/console/teams`): the same services as
//! `/api/autobot-teams`.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::access::authz::{CanRead, CanWrite};
use crate::console::layout::{action, field, form, may, page, select};
use crate::console::session::{ConsoleForm, Csrf};
use crate::domain::parse_name;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::ApiPath;
use crate::state::Target;
use crate::teams::dto::{MemberRole, TeamMemberPath, TeamPath, TeamResponse};
use crate::teams::service::{self, MembershipChange};

pub async fn list(
    State(target): State<Target>,
    op: CanRead,
    Extension(Csrf(csrf)): Extension<Csrf>,
) -> Result<Markup, ApiError> {
    let (teams, total) = service::list(&target.realm, &op, None, 0, 1000).await?;
    let me = &op.0.principal;
    Ok(page(
        "Teams",
        Some(me),
        html! {
            p.muted { (total) " teams" }
            div.scroll { table {
                thead { tr { th { "Team" } th { "Members" } th { "Description" } } }
                tbody { @for team in teams.into_iter().map(TeamResponse::from) { tr {
                    td { a href=(format!("/console/teams/{}", team.id)) { (team.name) } }
                    td { (team.member_count) }
                    td { (team.description.unwrap_or_default()) }
                } } }
            } }
            @if may(me, "autobot-users:write") {
                section {
                    h2 { "New team" }
                    (form("/console/teams", &csrf, html! {
                        (field("Team name", "name", "text", None, true))
                        (field("Description", "description", "text", None, false))
                        button type="submit" { "Create team" }
                    }))
                }
            }
        },
    ))
}

pub async fn create(
    State(target): State<Target>,
    op: CanWrite,
    fields: ConsoleForm,
) -> Result<Response, ApiError> {
    let name = parse_name(fields.get("name").unwrap_or_default(), 255, "Team name")
        .map_err(|m| ApiError::field(FieldError::body("name", m)))?
        .ok_or_else(|| ApiError::field(FieldError::body("name", "Team name must not be empty")))?;
    let description = fields.text("description");
    let team = service::create(&target.realm, &op, &name, description.as_deref(), None).await?;
    Ok(Redirect::to(&format!("/console/teams/{}", team.id)).into_response())
}

pub async fn show(
    State(target): State<Target>,
    op: CanRead,
    Extension(Csrf(csrf)): Extension<Csrf>,
    ApiPath(path): ApiPath<TeamPath>,
) -> Result<Markup, ApiError> {
    let detail = service::get(&target.realm, &op, path.team_id).await?;
    let me = &op.0.principal;
    let here = format!("/console/teams/{}", detail.team.id);
    let roles = [
        ("member", "Member"),
        ("admin", "Team admin"),
        ("owner", "Owner"),
    ];
    Ok(page(
        &detail.team.name,
        Some(me),
        html! {
            section {
                h2 { "Members" }
                div.scroll { table {
                    thead { tr { th { "User" } th { "Role in the team" } th { "Joined" } th { "Action" } } }
                    tbody { @for m in &detail.members { tr {
                        td { a href=(format!("/console/autobot-users/{}", m.user_id)) { (m.username) } }
                        td { (m.role) } td { (m.joined_at.to_rfc3339()) }
                        td { @if may(me, "autobot-users:write") {
                            (action(&format!("{here}/members/{}/remove", m.user_id), &csrf, &format!("Remove {}", m.username), true))
                        } }
                    } } }
                } }
            }
            @if may(me, "autobot-users:write") {
                section {
                    h2 { "Add a member" }
                    (form(&format!("{here}/members"), &csrf, html! {
                        (field("Username", "username", "text", None, true))
                        (select("Role in the team", "role", &roles, Some("member")))
                        button type="submit" { "Add member" }
                    }))
                    (action(&format!("{here}/delete"), &csrf, "Delete team", true))
                }
            }
        },
    ))
}

pub async fn add_member(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<TeamPath>,
    fields: ConsoleForm,
) -> Result<Response, ApiError> {
    let username = fields.get("username").unwrap_or_default().trim().to_owned();
    let realm = &target.realm;
    let name = &username;
    let user_id = realm
        .read(|mut db| Box::pin(async move { crate::users::service::find_id(&mut db, name).await }))
        .await?
        .ok_or_else(|| ApiError::field(FieldError::body("username", "No such user")))?;
    let role = match fields.get("role") {
        Some("owner") => MemberRole::Owner,
        Some("admin") => MemberRole::Admin,
        _ => MemberRole::Member,
    };
    let change = MembershipChange {
        add: vec![(user_id, role)],
        remove: Vec::new(),
    };
    service::change_members(realm, &op, path.team_id, change).await?;
    Ok(Redirect::to(&format!("/console/teams/{}", path.team_id)).into_response())
}

pub async fn remove_member(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<TeamMemberPath>,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    service::remove_member(&target.realm, &op, path.team_id, path.user_id).await?;
    Ok(Redirect::to(&format!("/console/teams/{}", path.team_id)).into_response())
}

pub async fn delete(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<TeamPath>,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    service::delete(&target.realm, &op, path.team_id).await?;
    Ok(Redirect::to("/console/teams").into_response())
}
