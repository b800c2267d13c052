//! The SQL of teams and memberships (the AutoBot `teams` and `team_memberships` tables). A
//! team or a user whose `deleted_at` is set is left out.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::database::Db;

macro_rules! team_columns {
    () => {
        "t.id, t.name, t.description, t.org_id, \
         (SELECT count(*) FROM public.team_memberships m JOIN public.users mu ON mu.id = m.user_id \
          WHERE m.team_id = t.id AND mu.deleted_at IS NULL) AS member_count, \
         t.created_at, t.updated_at"
    };
}

/// A team.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub org_id: Uuid,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A member of a team.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub username: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

/// Unique constraints of `teams` and the 409 each means.
pub const TEAM_CONFLICTS: &[(&str, &str)] = &[
    ("uq_team_org_name", "Team name already exists"),
    ("teams_org_name_lower_key", "Team name already exists"),
];

pub async fn fetch(db: &mut impl Db, id: Uuid) -> sqlx::Result<Option<Team>> {
    sqlx::query_as(concat!(
        "SELECT ",
        team_columns!(),
        " FROM public.teams t WHERE t.id = $1 AND t.deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(db.exec())
    .await
}

/// Row-locks a team for the rest of the transaction; `false` if there is no such team.
pub async fn lock(db: &mut impl Db, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM public.teams WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(db.exec())
    .await
    .map(|r| r.is_some())
}

pub async fn insert(
    db: &mut impl Db,
    id: Uuid,
    org_id: Uuid,
    name: &str,
    description: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        r"INSERT INTO public.teams (id, org_id, name, description, settings, is_default)
          VALUES ($1, $2, $3, $4, '{}', false)",
    )
    .bind(id)
    .bind(org_id)
    .bind(name)
    .bind(description)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// Renames a team or changes its description; `description: Some(None)` clears it.
pub async fn update(
    db: &mut impl Db,
    id: Uuid,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> sqlx::Result<()> {
    sqlx::query(
        r"UPDATE public.teams SET name = COALESCE($2, name),
              description = CASE WHEN $3 THEN $4 ELSE description END, updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(name)
    .bind(description.is_some())
    .bind(description.flatten())
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// Deletes a team (its memberships and team API keys go with it).
pub async fn delete(db: &mut impl Db, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM public.teams WHERE id = $1")
        .bind(id)
        .execute(db.exec())
        .await
        .map(|_| ())
}

pub async fn members(db: &mut impl Db, team_id: Uuid) -> sqlx::Result<Vec<Member>> {
    sqlx::query_as(
        r"SELECT m.user_id, u.username::text, m.role::text, m.joined_at
          FROM public.team_memberships m JOIN public.users u ON u.id = m.user_id
          WHERE m.team_id = $1 AND u.deleted_at IS NULL ORDER BY m.joined_at, m.user_id",
    )
    .bind(team_id)
    .fetch_all(db.exec())
    .await
}

pub async fn member_ids(db: &mut impl Db, team_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT user_id FROM public.team_memberships WHERE team_id = $1")
        .bind(team_id)
        .fetch_all(db.exec())
        .await
}

/// A membership that a write changed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChangedMember {
    pub user_id: Uuid,
    pub role: String,
    /// A new member, rather than a member whose role changed.
    pub joined: bool,
}

/// Adds members, or changes the role of those already in; returns who changed.
pub async fn upsert_members(
    db: &mut impl Db,
    team_id: Uuid,
    user_ids: &[Uuid],
    roles: &[&str],
) -> sqlx::Result<Vec<ChangedMember>> {
    // `xmax = 0` tells an inserted row from one the ON CONFLICT branch updated.
    sqlx::query_as(
        r"INSERT INTO public.team_memberships AS m (id, team_id, user_id, role)
          SELECT gen_random_uuid(), $1, u, r FROM UNNEST($2::uuid[], $3::text[]) AS a(u, r)
          ON CONFLICT (team_id, user_id) DO UPDATE SET role = EXCLUDED.role, updated_at = now()
          WHERE m.role IS DISTINCT FROM EXCLUDED.role
          RETURNING user_id, role::text, (xmax = 0) AS joined",
    )
    .bind(team_id)
    .bind(user_ids)
    .bind(roles)
    .fetch_all(db.exec())
    .await
}

/// Removes members; returns who was one.
pub async fn remove_members(
    db: &mut impl Db,
    team_id: Uuid,
    user_ids: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "DELETE FROM public.team_memberships WHERE team_id = $1 AND user_id = ANY($2) RETURNING user_id",
    )
    .bind(team_id)
    .bind(user_ids)
    .fetch_all(db.exec())
    .await
}

/// Removes a user from every team; returns the teams.
pub async fn remove_from_all_teams(db: &mut impl Db, user_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("DELETE FROM public.team_memberships WHERE user_id = $1 RETURNING team_id")
        .bind(user_id)
        .fetch_all(db.exec())
        .await
}

/// One page of teams ordered by name, and the number of all matches.
pub async fn list(
    db: &mut impl Db,
    search: Option<&str>,
    skip: i64,
    limit: i64,
) -> sqlx::Result<(Vec<Team>, i64)> {
    let pattern = search.map(crate::users::db::like_pattern);
    let teams = sqlx::query_as(concat!(
        "SELECT ",
        team_columns!(),
        r" FROM public.teams t WHERE t.deleted_at IS NULL AND ($1::text IS NULL OR t.name ILIKE $1)
           ORDER BY lower(t.name), t.id OFFSET $2 LIMIT $3"
    ))
    .bind(&pattern)
    .bind(skip)
    .bind(limit)
    .fetch_all(db.exec())
    .await?;
    let total = sqlx::query_scalar(
        r"SELECT count(*) FROM public.teams t
          WHERE t.deleted_at IS NULL AND ($1::text IS NULL OR t.name ILIKE $1)",
    )
    .bind(&pattern)
    .fetch_one(db.exec())
    .await?;
    Ok((teams, total))
}

/// The teams of a user, by name.
pub async fn of_user(db: &mut impl Db, user_id: Uuid) -> sqlx::Result<Vec<Team>> {
    sqlx::query_as(concat!(
        "SELECT ",
        team_columns!(),
        r" FROM public.teams t JOIN public.team_memberships tm ON tm.team_id = t.id
           WHERE tm.user_id = $1 AND t.deleted_at IS NULL ORDER BY lower(t.name), t.id"
    ))
    .bind(user_id)
    .fetch_all(db.exec())
    .await
}
