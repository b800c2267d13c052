//! The SQL of sessions and refresh tokens (`slm_server.sessions`, `slm_server.refresh_tokens`),
//! the statement that ends everything that signs a user in (API keys too), and the one statement that authenticates a request's access token: its session and user,
//! read together on every request (the user's columns a principal needs, and no more; every
//! other read of users is in `users/db.rs`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

/// A new session and its first refresh token.
pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub refresh_token_hash: &'a [u8],
}

pub async fn insert(db: &mut PgConnection, session: &NewSession<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r"WITH session AS (
              INSERT INTO slm_server.sessions (id, user_id, expires_at, ip, user_agent)
              VALUES ($1, $2, $3, $4, $5)
          )
          INSERT INTO slm_server.refresh_tokens (token_hash, session_id, expires_at)
          VALUES ($6, $1, $3)",
        session.id,
        session.user_id,
        session.expires_at,
        session.ip,
        session.user_agent,
        session.refresh_token_hash,
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// The session a refresh token was exchanged in.
#[derive(Debug)]
pub struct Rotated {
    pub session_id: Uuid,
    pub user_id: Uuid,
}

/// Retires a refresh token and issues its successor, extending the session, in one statement:
/// the token must be unexpired, unused (or used less than `grace` ago), and its session (used
/// within `idle`) and user live. The row lock makes it a compare-and-set.
///
/// The token is the only table the UPDATE scans, found by its unique hash; the session and
/// the user are checked by primary key from it, in a scalar subquery, which PostgreSQL runs
/// once per token and never turns into a join. (A join of the three, or an `EXISTS`, which it
/// plans as a semi-join, let a plan made on tables not yet analysed start from `users` and
/// read every live session of every user on each refresh.)
pub async fn rotate_refresh_token(
    db: &mut PgConnection,
    presented: &[u8],
    successor: &[u8],
    expires_at: DateTime<Utc>,
    grace: std::time::Duration,
    idle: std::time::Duration,
) -> sqlx::Result<Option<Rotated>> {
    sqlx::query_as!(
        Rotated,
        r#"WITH retired AS (
               UPDATE slm_server.refresh_tokens rt SET used_at = COALESCE(rt.used_at, now())
               WHERE rt.token_hash = $1 AND rt.expires_at > now()
                 AND (rt.used_at IS NULL OR rt.used_at > now() - make_interval(secs => $4))
                 AND COALESCE((
                     SELECT s.revoked_at IS NULL AND s.expires_at > now()
                            AND s.last_seen_at > now() - make_interval(secs => $5)
                            AND su.is_active AND su.deleted_at IS NULL
                     FROM slm_server.sessions s JOIN public.users su ON su.id = s.user_id
                     WHERE s.id = rt.session_id), false)
               RETURNING rt.session_id,
                         (SELECT s.user_id FROM slm_server.sessions s WHERE s.id = rt.session_id)
                         AS user_id
           ),
           extended AS (
               UPDATE slm_server.sessions SET expires_at = $3, last_seen_at = now()
               FROM retired WHERE sessions.id = retired.session_id
           ),
           issued AS (
               INSERT INTO slm_server.refresh_tokens (token_hash, session_id, expires_at)
               SELECT $2, session_id, $3 FROM retired
           )
           SELECT session_id AS "session_id!", user_id AS "user_id!" FROM retired"#,
        presented,
        successor,
        expires_at,
        secs(grace),
        secs(idle),
    )
    .fetch_optional(&mut *db)
    .await
}

/// A session whose refresh token was presented again after its grace (a replay).
#[derive(Debug)]
pub struct Replayed {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
}

/// The session of a refresh token used more than `grace` ago (a replay), locked.
pub async fn replayed_session(
    db: &mut PgConnection,
    presented: &[u8],
    grace: std::time::Duration,
) -> sqlx::Result<Option<Replayed>> {
    sqlx::query_as!(
        Replayed,
        r#"SELECT s.id AS session_id, u.id AS user_id, u.username::text AS "username!"
           FROM slm_server.refresh_tokens rt
           JOIN slm_server.sessions s ON s.id = rt.session_id
           JOIN public.users u ON u.id = s.user_id
           WHERE rt.token_hash = $1 AND rt.used_at <= now() - make_interval(secs => $2)
           FOR UPDATE OF s"#,
        presented,
        secs(grace),
    )
    .fetch_optional(&mut *db)
    .await
}

/// Ends one session.
pub async fn revoke(db: &mut PgConnection, session_id: Uuid, reason: &str) -> sqlx::Result<()> {
    sqlx::query!(
        r"UPDATE slm_server.sessions SET revoked_at = now(), revoke_reason = $2
          WHERE id = $1 AND revoked_at IS NULL",
        session_id,
        reason
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// What [`end_all`] ended.
pub struct Ended {
    pub sessions: i64,
    pub api_keys: i64,
}

/// Ends what signs a user in, in one statement: its sessions (all, or all but `keep`) and its
/// API keys, for good. Returns how many of each were live.
pub async fn end_all(
    db: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> sqlx::Result<Ended> {
    sqlx::query_as!(
        Ended,
        r#"WITH sessions AS (
               UPDATE slm_server.sessions SET revoked_at = now(), revoke_reason = $3
               WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)
               RETURNING 1
           ),
           keys AS (
               UPDATE public.api_keys SET revoked_at = now(), is_active = false, updated_at = now()
               WHERE user_id = $1 AND revoked_at IS NULL
               RETURNING 1
           )
           SELECT (SELECT count(*) FROM sessions) AS "sessions!",
                  (SELECT count(*) FROM keys) AS "api_keys!""#,
        user_id,
        keep,
        reason
    )
    .fetch_one(&mut *db)
    .await
}

/// A live session as listed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SessionRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The live sessions of a user (used within `idle`), newest first, and how many there are.
pub async fn live(
    db: &mut PgConnection,
    user_id: Uuid,
    idle: std::time::Duration,
    skip: i64,
    limit: i64,
) -> sqlx::Result<(Vec<SessionRow>, i64)> {
    let rows = sqlx::query_as!(
        SessionRow,
        r"SELECT id, created_at, last_seen_at, ip, user_agent, expires_at
          FROM slm_server.sessions
          WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
            AND last_seen_at > now() - make_interval(secs => $4)
          ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3",
        user_id,
        skip,
        limit,
        secs(idle),
    )
    .fetch_all(&mut *db)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM slm_server.sessions
           WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
             AND last_seen_at > now() - make_interval(secs => $2)"#,
        user_id,
        secs(idle),
    )
    .fetch_one(&mut *db)
    .await?;
    Ok((rows, total))
}

/// What a request's credential proves: the user (the columns a principal needs) and the
/// session's end or the key's scopes.
#[derive(Debug)]
pub struct Credential {
    pub user_id: Uuid,
    pub username: String,
    pub is_platform_admin: bool,
    /// The roles the user holds (`user_roles`), resolved through the realm's catalog.
    pub role_ids: Vec<Uuid>,
    pub must_change_password: bool,
    pub session_expires_at: Option<DateTime<Utc>>,
    pub key_id: Option<Uuid>,
    pub key_scopes: Option<serde_json::Value>,
}

/// The user of a live session: read on every request, so that logout, deactivation, deletion
/// and role changes apply at once on every replica. `last_seen_at` is kept to the minute; a
/// session unused for `idle` has ended (and is not revived by this request).
pub async fn of_session(
    db: &mut PgConnection,
    session_id: Uuid,
    user_id: Uuid,
    idle: std::time::Duration,
) -> sqlx::Result<Option<Credential>> {
    sqlx::query_as!(
        Credential,
        r#"WITH seen AS (
               UPDATE slm_server.sessions SET last_seen_at = now()
               WHERE id = $1 AND last_seen_at < now() - interval '60 seconds'
                 AND last_seen_at > now() - make_interval(secs => $3)
           )
           SELECT u.id AS user_id, u.username::text AS "username!", u.is_platform_admin,
                  ARRAY(SELECT ur.role_id FROM public.user_roles ur WHERE ur.user_id = u.id)
                      AS "role_ids!",
                  COALESCE(ps.must_change_password, false) AS "must_change_password!",
                  s.expires_at AS "session_expires_at?", NULL::uuid AS "key_id?",
                  NULL::jsonb AS "key_scopes?"
           FROM slm_server.sessions s JOIN public.users u ON u.id = s.user_id
           LEFT JOIN slm_server.password_state ps ON ps.user_id = u.id
           WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL
             AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $3)
             AND u.is_active AND u.deleted_at IS NULL"#,
        session_id,
        user_id,
        secs(idle),
    )
    .fetch_optional(&mut *db)
    .await
}

/// The owner of a live API key whose stored hash is one of `hashes`.
pub async fn of_api_key(
    db: &mut PgConnection,
    hashes: &[String],
) -> sqlx::Result<Option<Credential>> {
    sqlx::query_as!(
        Credential,
        r#"SELECT u.id AS user_id, u.username::text AS "username!", u.is_platform_admin,
                  ARRAY(SELECT ur.role_id FROM public.user_roles ur WHERE ur.user_id = u.id)
                      AS "role_ids!",
                  COALESCE(ps.must_change_password, false) AS "must_change_password!",
                  NULL::timestamptz AS "session_expires_at?", k.id AS "key_id?",
                  k.scopes AS "key_scopes?"
           FROM public.api_keys k JOIN public.users u ON u.id = k.user_id
           LEFT JOIN slm_server.password_state ps ON ps.user_id = u.id
           WHERE k.key_hash = ANY($1) AND k.is_active AND k.revoked_at IS NULL
             AND (k.expires_at IS NULL OR k.expires_at > now())
             AND u.is_active AND u.deleted_at IS NULL"#,
        hashes,
    )
    .fetch_optional(&mut *db)
    .await
}
