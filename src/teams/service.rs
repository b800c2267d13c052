//! The rules of AutoBot teams and memberships. Every membership change notifies the caches of
//! the users it concerns, and is audited with the AutoBot backend's event names.

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::access::authz::{CanRead, CanWrite};
use crate::audit::{self, Actor, AuditAction};
use crate::database::like_pattern;
use crate::http::error::{ApiError, FieldError, LocItem, constraint_conflict};
use crate::outbox::{self, OutboxEvent};
use crate::realm::Realm;
use crate::teams::db::{self, TEAM_CONFLICTS, Team};
use crate::teams::dto::{MemberResponse, MemberRole, TeamDetail, TeamResponse};

const TEAM_NOT_FOUND: ApiError = ApiError::NotFound("Team not found");

/// The teams `ids`, in that order.
async fn in_order(db: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Team>, ApiError> {
    let mut teams = db::teams(db, ids).await?;
    teams.sort_by_key(|t| ids.iter().position(|id| *id == t.id));
    Ok(teams)
}

async fn team(db: &mut PgConnection, id: Uuid) -> Result<Team, ApiError> {
    db::teams(db, &[id])
        .await?
        .into_iter()
        .next()
        .ok_or(TEAM_NOT_FOUND)
}

async fn detail(db: &mut PgConnection, id: Uuid) -> Result<TeamDetail, ApiError> {
    let team = team(db, id).await?;
    let members = db::members(db, id).await?;
    Ok(TeamDetail {
        team: team.into(),
        members: members.into_iter().map(MemberResponse::from).collect(),
    })
}

pub async fn get(realm: &Realm, _op: &CanRead, id: Uuid) -> Result<TeamDetail, ApiError> {
    realm
        .read(|mut db| Box::pin(async move { detail(&mut db, id).await }))
        .await
}

/// A page of teams by name, and the number of all matches.
pub async fn list(
    realm: &Realm,
    _op: &CanRead,
    search: Option<&str>,
    skip: i64,
    limit: i64,
) -> Result<(Vec<Team>, i64), ApiError> {
    let pattern = search.map(like_pattern);
    let pattern = pattern.as_deref();
    realm
        .read(|mut db| {
            Box::pin(async move {
                let (ids, total) = db::page(&mut db, pattern, skip, limit).await?;
                Ok((in_order(&mut db, &ids).await?, total))
            })
        })
        .await
}

/// The teams of a user.
pub async fn of_user(realm: &Realm, _op: &CanRead, user_id: Uuid) -> Result<Vec<Team>, ApiError> {
    realm
        .read(|mut db| {
            Box::pin(async move {
                let ids = db::of_user(&mut db, user_id)
                    .await?
                    .ok_or(ApiError::NotFound("User not found"))?;
                in_order(&mut db, &ids).await
            })
        })
        .await
}

/// The teams of a user, in the caller's unit of work (the GDPR export).
pub async fn of_user_in(db: &mut PgConnection, user_id: Uuid) -> Result<Vec<Team>, ApiError> {
    let ids = db::of_user(db, user_id).await?.unwrap_or_default();
    in_order(db, &ids).await
}

pub async fn create(
    realm: &Realm,
    op: &CanWrite,
    name: &str,
    description: Option<&str>,
    organization_id: Option<Uuid>,
) -> Result<TeamResponse, ApiError> {
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                let org_id = match organization_id {
                    Some(org) if crate::realm::db::org_exists(&mut tx, org).await? => org,
                    Some(_) => {
                        return Err(ApiError::field(FieldError::body(
                            "organization_id",
                            "Organization not found",
                        )));
                    }
                    None => crate::realm::db::default_org_id(&mut tx)
                        .await?
                        .ok_or_else(|| {
                            ApiError::Internal(anyhow::anyhow!(
                                "no organization exists (not seeded?)"
                            ))
                        })?,
                };
                let id = Uuid::now_v7();
                db::insert(&mut tx, id, org_id, name, description)
                    .await
                    .map_err(|e| constraint_conflict(e, TEAM_CONFLICTS))?;
                let detail = json!({"name": name});
                let actor = op.0.actor();
                audit::record(
                    &mut tx,
                    realm,
                    &actor,
                    AuditAction::TeamCreated,
                    Some(id),
                    detail,
                )
                .await?;
                Ok(team(&mut tx, id).await?.into())
            })
        })
        .await
}

pub async fn update(
    realm: &Realm,
    op: &CanWrite,
    id: Uuid,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> Result<TeamResponse, ApiError> {
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if !db::lock(&mut tx, id).await? {
                    return Err(TEAM_NOT_FOUND);
                }
                db::update(&mut tx, id, name, description)
                    .await
                    .map_err(|e| constraint_conflict(e, TEAM_CONFLICTS))?;
                let detail = json!({"name": name});
                let actor = op.0.actor();
                audit::record(
                    &mut tx,
                    realm,
                    &actor,
                    AuditAction::TeamUpdated,
                    Some(id),
                    detail,
                )
                .await?;
                Ok(team(&mut tx, id).await?.into())
            })
        })
        .await
}

/// Deletes a team; each former member's cache is invalidated.
pub async fn delete(realm: &Realm, op: &CanWrite, id: Uuid) -> Result<(), ApiError> {
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if !db::lock(&mut tx, id).await? {
                    return Err(TEAM_NOT_FOUND);
                }
                let members = db::member_ids(&mut tx, id).await?;
                db::delete(&mut tx, id).await?;
                let detail = json!({"members": members});
                let actor = op.0.actor();
                audit::record(
                    &mut tx,
                    realm,
                    &actor,
                    AuditAction::TeamDeleted,
                    Some(id),
                    detail,
                )
                .await?;
                outbox::enqueue(&mut tx, realm, &members, OutboxEvent::TeamDeleted).await
            })
        })
        .await
}

/// A membership change: who joins (or changes role) and who leaves.
pub struct MembershipChange {
    pub add: Vec<(Uuid, MemberRole)>,
    pub remove: Vec<Uuid>,
}

fn at_add(i: usize, msg: &str) -> FieldError {
    FieldError::at(
        vec![
            "body".into(),
            "add".into(),
            LocItem::Index(i),
            "user_id".into(),
        ],
        msg,
        "value_error",
    )
}

/// Adds and removes members in one transaction, all or nothing: an unknown user rejects the
/// whole change (422 at `["body", "add", i, "user_id"]`) and nothing is written.
pub async fn change_members(
    realm: &Realm,
    op: &CanWrite,
    id: Uuid,
    change: MembershipChange,
) -> Result<TeamDetail, ApiError> {
    let mut adds: BTreeMap<Uuid, MemberRole> = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, (user_id, role)) in change.add.iter().enumerate() {
        if change.remove.contains(user_id) {
            errors.push(at_add(i, "A user cannot be both added and removed"));
        }
        adds.insert(*user_id, *role);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (adds, change) = (&adds, &change);
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if !db::lock(&mut tx, id).await? {
                    return Err(TEAM_NOT_FOUND);
                }
                let wanted: Vec<Uuid> = adds.keys().copied().collect();
                let found = db::live_users(&mut tx, &wanted).await?;
                let unknown: Vec<FieldError> = change
                    .add
                    .iter()
                    .enumerate()
                    .filter(|(_, (user_id, _))| !found.contains(user_id))
                    .map(|(i, _)| at_add(i, "User not found"))
                    .collect();
                if !unknown.is_empty() {
                    // Nothing has been written: the transaction is dropped.
                    return Err(ApiError::Validation(unknown));
                }
                let roles: Vec<String> =
                    wanted.iter().map(|u| adds[u].as_str().to_owned()).collect();
                let upserted = db::upsert_members(&mut tx, id, &wanted, &roles).await?;
                let removed = db::remove_members(&mut tx, id, &change.remove).await?;
                record_changes(&mut tx, realm, &op.0.actor(), id, &upserted, &removed).await?;
                detail(&mut tx, id).await
            })
        })
        .await
}

/// Audits each membership change (the AutoBot backend's names) and announces it.
async fn record_changes(
    db: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    team: Uuid,
    upserted: &[db::ChangedMember],
    removed: &[Uuid],
) -> Result<(), ApiError> {
    for member in upserted {
        let action = match member.joined {
            true => AuditAction::TeamMemberAdded,
            false => AuditAction::TeamMemberRoleChanged,
        };
        let detail = json!({"user_id": member.user_id, "role": member.role});
        audit::record(db, realm, actor, action, Some(team), detail).await?;
    }
    for user_id in removed {
        let detail = json!({"user_id": user_id});
        let action = AuditAction::TeamMemberRemoved;
        audit::record(db, realm, actor, action, Some(team), detail).await?;
    }
    let changed: Vec<Uuid> = upserted
        .iter()
        .map(|m| m.user_id)
        .chain(removed.iter().copied())
        .collect();
    outbox::enqueue(db, realm, &changed, OutboxEvent::TeamMembershipChanged).await
}

/// Removes one member (404 when the user is not one).
pub async fn remove_member(
    realm: &Realm,
    op: &CanWrite,
    id: Uuid,
    user_id: Uuid,
) -> Result<(), ApiError> {
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if !db::lock(&mut tx, id).await? {
                    return Err(TEAM_NOT_FOUND);
                }
                let removed = db::remove_members(&mut tx, id, &[user_id]).await?;
                if removed.is_empty() {
                    return Err(ApiError::NotFound("Not a member of this team"));
                }
                record_changes(&mut tx, realm, &op.0.actor(), id, &[], &removed).await
            })
        })
        .await
}

/// Takes a deleted user out of every team, in the caller's transaction; returns the teams.
pub async fn leave_all(db: &mut PgConnection, user_id: Uuid) -> Result<Vec<Uuid>, ApiError> {
    Ok(db::remove_from_all(db, user_id).await?)
}
