//! The rules of AutoBot teams and memberships. Every membership change notifies the caches of
//! the users it concerns.

use std::collections::BTreeMap;

use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, AuditAction};
use crate::auth::authz::{self, Perm};
use crate::auth::principal::Principal;
use crate::database::Db;
use crate::error::{ApiError, FieldError, LocItem, constraint_conflict};
use crate::outbox;
use crate::realm::Realm;
use crate::teams::db::{self, TEAM_CONFLICTS, Team};
use crate::teams::dto::{MemberResponse, MemberRole, TeamDetail, TeamResponse};
use crate::users::db as users_db;

const TEAM_NOT_FOUND: ApiError = ApiError::NotFound("Team not found");

async fn detail(db: &mut impl Db, id: Uuid) -> Result<TeamDetail, ApiError> {
    let team = db::fetch(db, id).await?.ok_or(TEAM_NOT_FOUND)?;
    let members = db::members(db, id).await?;
    Ok(TeamDetail {
        team: team.into(),
        members: members.into_iter().map(MemberResponse::from).collect(),
    })
}

pub async fn get(realm: &Realm, op: &Principal, id: Uuid) -> Result<TeamDetail, ApiError> {
    authz::require(op, Perm::ReadUsers(realm.id()))?;
    let mut conn = realm.conn().await?;
    detail(&mut conn, id).await
}

pub async fn list(
    realm: &Realm,
    op: &Principal,
    search: Option<&str>,
    skip: i64,
    limit: i64,
) -> Result<(Vec<Team>, i64), ApiError> {
    authz::require(op, Perm::ReadUsers(realm.id()))?;
    let mut conn = realm.conn().await?;
    Ok(db::list(&mut conn, search, skip, limit).await?)
}

/// The teams of a user.
pub async fn of_user(realm: &Realm, op: &Principal, user_id: Uuid) -> Result<Vec<Team>, ApiError> {
    authz::require(op, Perm::ReadUsers(realm.id()))?;
    let mut conn = realm.conn().await?;
    users_db::fetch(&mut conn, user_id)
        .await?
        .ok_or(ApiError::NotFound("User not found"))?;
    Ok(db::of_user(&mut conn, user_id).await?)
}

pub async fn create(
    realm: &Realm,
    op: &Principal,
    name: &str,
    description: Option<&str>,
    organization_id: Option<Uuid>,
) -> Result<TeamResponse, ApiError> {
    authz::require(op, Perm::WriteUsers(realm.id()))?;
    let mut tx = realm.begin().await?;
    let org_id = match organization_id {
        Some(org) if users_db::org_exists(&mut tx, org).await? => org,
        Some(_) => {
            return Err(ApiError::field(FieldError::body(
                "organization_id",
                "Organization not found",
            )));
        }
        None => users_db::default_org_id(&mut tx).await?.ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("no organization exists (not seeded?)"))
        })?,
    };
    let id = Uuid::now_v7();
    db::insert(&mut tx, id, org_id, name, description)
        .await
        .map_err(|e| constraint_conflict(e, TEAM_CONFLICTS))?;
    audit::record(
        &mut tx,
        realm,
        &op.actor(),
        AuditAction::TeamCreated,
        Some(id),
        json!({"name": name}),
    )
    .await?;
    let team = db::fetch(&mut tx, id).await?.ok_or(TEAM_NOT_FOUND)?;
    tx.commit().await?;
    Ok(team.into())
}

pub async fn update(
    realm: &Realm,
    op: &Principal,
    id: Uuid,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> Result<TeamResponse, ApiError> {
    authz::require(op, Perm::WriteUsers(realm.id()))?;
    let mut tx = realm.begin().await?;
    if !db::lock(&mut tx, id).await? {
        return Err(TEAM_NOT_FOUND);
    }
    db::update(&mut tx, id, name, description)
        .await
        .map_err(|e| constraint_conflict(e, TEAM_CONFLICTS))?;
    audit::record(
        &mut tx,
        realm,
        &op.actor(),
        AuditAction::TeamUpdated,
        Some(id),
        json!({"name": name}),
    )
    .await?;
    let team = db::fetch(&mut tx, id).await?.ok_or(TEAM_NOT_FOUND)?;
    tx.commit().await?;
    Ok(team.into())
}

/// Deletes a team; each former member's cache is invalidated.
pub async fn delete(realm: &Realm, op: &Principal, id: Uuid) -> Result<(), ApiError> {
    authz::require(op, Perm::WriteUsers(realm.id()))?;
    let mut tx = realm.begin().await?;
    if !db::lock(&mut tx, id).await? {
        return Err(TEAM_NOT_FOUND);
    }
    let members = db::member_ids(&mut tx, id).await?;
    db::delete(&mut tx, id).await?;
    audit::record(
        &mut tx,
        realm,
        &op.actor(),
        AuditAction::TeamDeleted,
        Some(id),
        json!({"members": members}),
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &members, "team.deleted").await?;
    tx.commit().await
}

/// A membership change: who joins (or changes role) and who leaves.
pub struct MembershipChange {
    pub add: Vec<(Uuid, MemberRole)>,
    pub remove: Vec<Uuid>,
}

/// Adds and removes members in one transaction, all or nothing: an unknown user rejects the
/// whole change (422 at `["body", "add", i, "user_id"]`) and nothing is written.
pub async fn change_members(
    realm: &Realm,
    op: &Principal,
    id: Uuid,
    change: MembershipChange,
) -> Result<TeamDetail, ApiError> {
    authz::require(op, Perm::WriteUsers(realm.id()))?;
    let mut errors = Vec::new();
    let mut adds: BTreeMap<Uuid, MemberRole> = BTreeMap::new();
    for (i, (user_id, role)) in change.add.iter().enumerate() {
        if change.remove.contains(user_id) {
            errors.push(FieldError::at(
                vec![
                    "body".into(),
                    "add".into(),
                    LocItem::Index(i),
                    "user_id".into(),
                ],
                "A user cannot be both added and removed",
                "value_error",
            ));
        }
        adds.insert(*user_id, *role);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = realm.begin().await?;
    if !db::lock(&mut tx, id).await? {
        return Err(TEAM_NOT_FOUND);
    }
    let wanted: Vec<Uuid> = adds.keys().copied().collect();
    let found = users_db::existing(&mut tx, &wanted).await?;
    let unknown: Vec<FieldError> = change
        .add
        .iter()
        .enumerate()
        .filter(|(_, (user_id, _))| !found.contains(user_id))
        .map(|(i, _)| {
            FieldError::at(
                vec![
                    "body".into(),
                    "add".into(),
                    LocItem::Index(i),
                    "user_id".into(),
                ],
                "User not found",
                "value_error",
            )
        })
        .collect();
    if !unknown.is_empty() {
        // Nothing has been written: the transaction is dropped.
        return Err(ApiError::Validation(unknown));
    }
    let roles: Vec<&str> = wanted.iter().map(|u| adds[u].as_str()).collect();
    let upserted = db::upsert_members(&mut tx, id, &wanted, &roles).await?;
    let removed = db::remove_members(&mut tx, id, &change.remove).await?;
    let actor = op.actor();
    for member in &upserted {
        let action = match member.joined {
            true => AuditAction::TeamMemberAdded,
            false => AuditAction::TeamMemberRoleChanged,
        };
        audit::record(
            &mut tx,
            realm,
            &actor,
            action,
            Some(id),
            json!({"user_id": member.user_id, "role": member.role}),
        )
        .await?;
    }
    for user_id in &removed {
        audit::record(
            &mut tx,
            realm,
            &actor,
            AuditAction::TeamMemberRemoved,
            Some(id),
            json!({"user_id": user_id}),
        )
        .await?;
    }
    let changed: Vec<Uuid> = upserted.iter().map(|m| m.user_id).chain(removed).collect();
    outbox::enqueue(&mut tx, realm, &changed, "team.membership_changed").await?;
    let team = detail(&mut tx, id).await?;
    tx.commit().await?;
    Ok(team)
}

/// Removes one member (404 when the user is not one).
pub async fn remove_member(
    realm: &Realm,
    op: &Principal,
    id: Uuid,
    user_id: Uuid,
) -> Result<(), ApiError> {
    authz::require(op, Perm::WriteUsers(realm.id()))?;
    let mut tx = realm.begin().await?;
    if !db::lock(&mut tx, id).await? {
        return Err(TEAM_NOT_FOUND);
    }
    let removed = db::remove_members(&mut tx, id, &[user_id]).await?;
    if removed.is_empty() {
        return Err(ApiError::NotFound("Not a member of this team"));
    }
    audit::record(
        &mut tx,
        realm,
        &op.actor(),
        AuditAction::TeamMemberRemoved,
        Some(id),
        json!({"user_id": user_id}),
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &removed, "team.membership_changed").await?;
    tx.commit().await
}
