//! The SQL of teams and memberships (AutoBot realm).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! team_columns {
    () => {
        "t.id, t.name, t.description, \
         (SELECT count(*) FROM team_members m WHERE m.team_id = t.id) AS member_count, \
         t.created_at, t.updated_at"
    };
}

/// A team.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A member of a team.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub username: String,
    /// `owner` or `member`.
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

pub const TEAM_CONFLICTS: &[(&str, &str)] = &[("teams_name_key", "Team name already exists")];

pub async fn fetch(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Team>> {
    sqlx::query_as(concat!(
        "SELECT ",
        team_columns!(),
        " FROM teams t WHERE t.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar::<_, Uuid>("SELECT id FROM teams WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await
        .map(|r| r.is_some())
}

pub async fn members(db: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<Vec<Member>> {
    sqlx::query_as(
        r"SELECT m.user_id, u.username, m.role, m.joined_at FROM team_members m
          JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 ORDER BY m.joined_at, m.user_id",
    )
    .bind(team_id)
    .fetch_all(db)
    .await
}

pub async fn member_ids(db: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT user_id FROM team_members WHERE team_id = $1")
        .bind(team_id)
        .fetch_all(db)
        .await
}

pub async fn list(
    conn: &mut PgConnection,
    search: Option<&str>,
    skip: i64,
    limit: i64,
) -> sqlx::Result<(Vec<Team>, i64)> {
    let pattern = search.map(crate::users::db::like_pattern);
    let teams = sqlx::query_as(concat!(
        "SELECT ",
        team_columns!(),
        " FROM teams t WHERE ($1::text IS NULL OR t.name ILIKE $1) ORDER BY t.created_at, t.id OFFSET $2 LIMIT $3"
    ))
    .bind(&pattern)
    .bind(skip)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar(
        "SELECT count(*) FROM teams t WHERE ($1::text IS NULL OR t.name ILIKE $1)",
    )
    .bind(&pattern)
    .fetch_one(&mut *conn)
    .await?;
    Ok((teams, total))
}

pub async fn of_user(db: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<Vec<Team>> {
    sqlx::query_as(concat!(
        "SELECT ",
        team_columns!(),
        " FROM teams t JOIN team_members tm ON tm.team_id = t.id WHERE tm.user_id = $1 ORDER BY t.created_at, t.id"
    ))
    .bind(user_id)
    .fetch_all(db)
    .await
}
