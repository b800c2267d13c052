//! The SQL of teams and memberships (the AutoBot `teams` and `team_memberships` tables). A
//! team or a user whose `deleted_at` is set is left out: these statements read `users` for
//! that, and for a member's name (nothing here writes it).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A team.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
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

/// The live teams among `ids`, in no particular order.
pub async fn teams(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Team>> {
    sqlx::query_as!(
        Team,
        r#"SELECT t.id, t.name::text AS "name!", t.description, t.org_id,
                  (SELECT count(*) FROM public.team_memberships m
                   JOIN public.users mu ON mu.id = m.user_id
                   WHERE m.team_id = t.id AND mu.deleted_at IS NULL) AS "member_count!",
                  t.created_at, t.updated_at
           FROM public.teams t WHERE t.id = ANY($1) AND t.deleted_at IS NULL"#,
        ids
    )
    .fetch_all(&mut *db)
    .await
}

/// Row-locks a team for the rest of the transaction; `false` if there is no such team.
pub async fn lock(db: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        "SELECT id FROM public.teams WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        id
    )
    .fetch_optional(&mut *db)
    .await
    .map(|r| r.is_some())
}

pub async fn insert(
    db: &mut PgConnection,
    id: Uuid,
    org_id: Uuid,
    name: &str,
    description: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r"INSERT INTO public.teams (id, org_id, name, description, settings, is_default)
          VALUES ($1, $2, $3, $4, '{}', false)",
        id,
        org_id,
        name,
        description
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Renames a team or changes its description; `description: Some(None)` clears it.
pub async fn update(
    db: &mut PgConnection,
    id: Uuid,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r"UPDATE public.teams SET name = COALESCE($2, name),
              description = CASE WHEN $3 THEN $4 ELSE description END, updated_at = now()
          WHERE id = $1",
        id,
        name,
        description.is_some(),
        description.flatten()
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Deletes a team (its memberships and team API keys go with it).
pub async fn delete(db: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM public.teams WHERE id = $1", id)
        .execute(&mut *db)
        .await
        .map(|_| ())
}

pub async fn members(db: &mut PgConnection, team_id: Uuid) -> sqlx::Result<Vec<Member>> {
    sqlx::query_as!(
        Member,
        r#"SELECT m.user_id, u.username::text AS "username!", m.role::text AS "role!", m.joined_at
           FROM public.team_memberships m JOIN public.users u ON u.id = m.user_id
           WHERE m.team_id = $1 AND u.deleted_at IS NULL ORDER BY m.joined_at, m.user_id"#,
        team_id
    )
    .fetch_all(&mut *db)
    .await
}

pub async fn member_ids(db: &mut PgConnection, team_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT user_id FROM public.team_memberships WHERE team_id = $1",
        team_id
    )
    .fetch_all(&mut *db)
    .await
}

/// Which of `ids` are live users.
pub async fn live_users(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM public.users WHERE id = ANY($1) AND deleted_at IS NULL",
        ids
    )
    .fetch_all(&mut *db)
    .await
}

/// A membership that a write changed.
#[derive(Debug, Clone)]
pub struct ChangedMember {
    pub user_id: Uuid,
    pub role: String,
    /// A new member, rather than a member whose role changed.
    pub joined: bool,
}

/// Adds members, or changes the role of those already in; returns who changed.
pub async fn upsert_members(
    db: &mut PgConnection,
    team_id: Uuid,
    user_ids: &[Uuid],
    roles: &[String],
) -> sqlx::Result<Vec<ChangedMember>> {
    // `xmax = 0` tells an inserted row from one the ON CONFLICT branch updated.
    sqlx::query_as!(
        ChangedMember,
        r#"INSERT INTO public.team_memberships AS m (id, team_id, user_id, role)
           SELECT gen_random_uuid(), $1, u, r FROM UNNEST($2::uuid[], $3::text[]) AS a(u, r)
           ON CONFLICT (team_id, user_id) DO UPDATE SET role = EXCLUDED.role, updated_at = now()
           WHERE m.role IS DISTINCT FROM EXCLUDED.role
           RETURNING user_id, role::text AS "role!", (xmax = 0) AS "joined!""#,
        team_id,
        user_ids,
        roles
    )
    .fetch_all(&mut *db)
    .await
}

/// Removes members; returns who was one.
pub async fn remove_members(
    db: &mut PgConnection,
    team_id: Uuid,
    user_ids: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "DELETE FROM public.team_memberships WHERE team_id = $1 AND user_id = ANY($2) RETURNING user_id",
        team_id,
        user_ids
    )
    .fetch_all(&mut *db)
    .await
}

/// Removes a user from every team; returns the teams.
pub async fn remove_from_all(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "DELETE FROM public.team_memberships WHERE user_id = $1 RETURNING team_id",
        user_id
    )
    .fetch_all(&mut *db)
    .await
}

/// One page of team ids ordered by name, and the number of all matches.
pub async fn page(
    db: &mut PgConnection,
    pattern: Option<&str>,
    skip: i64,
    limit: i64,
) -> sqlx::Result<(Vec<Uuid>, i64)> {
    let ids = sqlx::query_scalar!(
        r"SELECT t.id FROM public.teams t
          WHERE t.deleted_at IS NULL AND ($1::text IS NULL OR t.name ILIKE $1)
          ORDER BY lower(t.name), t.id OFFSET $2 LIMIT $3",
        pattern,
        skip,
        limit
    )
    .fetch_all(&mut *db)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM public.teams t
           WHERE t.deleted_at IS NULL AND ($1::text IS NULL OR t.name ILIKE $1)"#,
        pattern
    )
    .fetch_one(&mut *db)
    .await?;
    Ok((ids, total))
}

/// The live teams of a live user, by name; `None` when there is no such user.
pub async fn of_user(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Option<Vec<Uuid>>> {
    if live_users(db, &[user_id]).await?.is_empty() {
        return Ok(None);
    }
    sqlx::query_scalar!(
        r"SELECT t.id FROM public.teams t JOIN public.team_memberships tm ON tm.team_id = t.id
          WHERE tm.user_id = $1 AND t.deleted_at IS NULL ORDER BY lower(t.name), t.id",
        user_id
    )
    .fetch_all(&mut *db)
    .await
    .map(Some)
}
