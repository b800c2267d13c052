//! The SQL of authentication: sessions, refresh tokens, login failures and lockouts, MFA
//! (the AutoBot `user_mfa` table and the server's enrolment, replay and challenge state) and
//! API keys. Queries that authenticate a request read the user through
//! [`crate::users::db::user_columns`].

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::database::Db;
use crate::users::db::{User, user_columns};

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Logins and lockouts

/// The account a login names, and whether this login may check its password now.
#[derive(Debug, sqlx::FromRow)]
pub struct LoginCandidate {
    pub id: Uuid,
    pub username: String,
    pub password_hash: Option<String>,
    pub is_active: bool,
    pub mfa_enabled: bool,
    /// The account is locked: no password is checked.
    pub locked: bool,
    /// This login holds one of the account's places (see [`reserve_login_attempt`]).
    pub reserved: bool,
}

/// Finds the account by username or e-mail (case-insensitively, as the AutoBot backend does)
/// and, unless it is locked, reserves a place for this login (`attempt`) in one statement: a
/// place is free while the failures of the window and the checks under way stay below
/// `threshold`. The row lock serialises the logins of an account, so at most `threshold`
/// wrong passwords per window ever reach the password check, and a right password is never
/// refused for being in a crowd: it waits for a place.
pub async fn reserve_login_attempt(
    db: &mut impl Db,
    login: &str,
    attempt: Uuid,
    window: std::time::Duration,
    threshold: i32,
) -> sqlx::Result<Option<LoginCandidate>> {
    sqlx::query_as(
        r"WITH target AS (
              SELECT u.id, u.username, u.password_hash, u.is_active, u.mfa_enabled
              FROM public.users u
              WHERE u.deleted_at IS NULL
                AND (lower(u.username) = lower($1) OR lower(u.email) = lower($1))
              ORDER BY (lower(u.username) = lower($1)) DESC
              LIMIT 1
          ),
          current AS (
              INSERT INTO slm_server.login_failures AS f (user_id, failures, window_start, in_flight)
              SELECT id, 0, now(), jsonb_build_array(jsonb_build_object('id', $2::uuid, 'at', now()))
              FROM target
              ON CONFLICT (user_id) DO UPDATE SET
                  failures = CASE WHEN f.window_start <= now() - make_interval(secs => $3)
                                  THEN 0 ELSE f.failures END,
                  window_start = CASE WHEN f.window_start IS NULL
                                        OR f.window_start <= now() - make_interval(secs => $3)
                                      THEN now() ELSE f.window_start END,
                  in_flight = CASE
                      WHEN (f.locked_until IS NULL OR f.locked_until <= now())
                           AND (CASE WHEN f.window_start <= now() - make_interval(secs => $3)
                                     THEN 0 ELSE f.failures END)
                               + jsonb_array_length(slm_server.logins_under_way(f.in_flight)) < $4
                      THEN slm_server.logins_under_way(f.in_flight)
                           || jsonb_build_array(jsonb_build_object('id', $2::uuid, 'at', now()))
                      ELSE slm_server.logins_under_way(f.in_flight) END
              RETURNING f.locked_until > now() AS locked,
                        f.in_flight @> jsonb_build_array(jsonb_build_object('id', $2::uuid))
                            AS reserved
          )
          SELECT target.*, COALESCE(current.locked, false) AS locked,
                 COALESCE(current.reserved, false) AS reserved
          FROM target, current",
    )
    .bind(login)
    .bind(attempt)
    .bind(secs(window))
    .bind(threshold)
    .fetch_optional(db.exec())
    .await
}

/// A right password: the account's failures are forgotten and `attempt`'s place freed.
pub async fn login_succeeded(db: &mut impl Db, user_id: Uuid, attempt: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        r"UPDATE slm_server.login_failures
          SET failures = 0, window_start = NULL, in_flight = slm_server.login_done(in_flight, $2)
          WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(attempt)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// Frees `attempt`'s place without counting a failure (a right password of an inactive
/// account, an MFA challenge, a check that could not run).
pub async fn release_attempt(db: &mut impl Db, user_id: Uuid, attempt: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        r"UPDATE slm_server.login_failures SET in_flight = slm_server.login_done(in_flight, $2)
          WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(attempt)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// A wrong password: counts a failure and frees `attempt`'s place; the failure that reaches
/// `threshold` locks the account for `duration` and starts a new window. Returns the failures
/// of the window, this one included (0 when the row was gone: an admin's unlock).
pub async fn login_failed(
    db: &mut impl Db,
    user_id: Uuid,
    attempt: Uuid,
    threshold: i32,
    duration: std::time::Duration,
) -> sqlx::Result<i32> {
    let failed: Option<i32> = sqlx::query_scalar(
        r"WITH before AS (
              SELECT failures FROM slm_server.login_failures WHERE user_id = $1 FOR UPDATE
          )
          UPDATE slm_server.login_failures f SET
              in_flight = slm_server.login_done(f.in_flight, $2),
              failures = CASE WHEN before.failures + 1 >= $3 THEN 0 ELSE before.failures + 1 END,
              window_start = CASE WHEN before.failures + 1 >= $3 THEN NULL
                                  ELSE COALESCE(f.window_start, now()) END,
              locked_until = CASE WHEN before.failures + 1 >= $3
                                  THEN now() + make_interval(secs => $4) ELSE f.locked_until END
          FROM before WHERE f.user_id = $1
          RETURNING before.failures + 1",
    )
    .bind(user_id)
    .bind(attempt)
    .bind(threshold)
    .bind(secs(duration))
    .fetch_optional(db.exec())
    .await?;
    Ok(failed.unwrap_or(0))
}

/// Forgets the failures and the lockout of a user (an admin's unlock); logins under way keep
/// their places.
pub async fn clear_failures(db: &mut impl Db, user_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query(
        r"UPDATE slm_server.login_failures SET failures = 0, window_start = NULL, locked_until = NULL
          WHERE user_id = $1",
    )
    .bind(user_id)
    .execute(db.exec())
    .await
    .map(|r| r.rows_affected() > 0)
}

// ---------------------------------------------------------------------------------------------
// Sessions and refresh tokens

/// A new session and its first refresh token.
pub struct NewSession<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub refresh_token_hash: &'a [u8],
}

pub async fn insert_session(db: &mut impl Db, session: &NewSession<'_>) -> sqlx::Result<()> {
    sqlx::query(
        r"WITH session AS (
              INSERT INTO slm_server.sessions (id, user_id, expires_at, ip, user_agent)
              VALUES ($1, $2, $3, $4, $5)
          )
          INSERT INTO slm_server.refresh_tokens (token_hash, session_id, expires_at)
          VALUES ($6, $1, $3)",
    )
    .bind(session.id)
    .bind(session.user_id)
    .bind(session.expires_at)
    .bind(session.ip)
    .bind(session.user_agent)
    .bind(session.refresh_token_hash)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// The session a refresh token was exchanged in.
#[derive(Debug, sqlx::FromRow)]
pub struct Rotated {
    pub session_id: Uuid,
    pub user_id: Uuid,
}

/// Retires a refresh token and issues its successor, extending the session, in one statement:
/// the token must be unexpired, unused (or used less than `grace` ago), and its session (used
/// within `idle`) and user live. The row lock makes it a compare-and-set.
///
/// The token is the only table the UPDATE scans, found by its unique hash; the session and
/// the user are checked by primary key from it. (A join of the three let a plan chosen while
/// the tables were small start from `users` and visit every session of every user.)
pub async fn rotate_refresh_token(
    db: &mut impl Db,
    presented: &[u8],
    successor: &[u8],
    expires_at: DateTime<Utc>,
    grace: std::time::Duration,
    idle: std::time::Duration,
) -> sqlx::Result<Option<Rotated>> {
    sqlx::query_as(
        r"WITH retired AS (
              UPDATE slm_server.refresh_tokens rt SET used_at = COALESCE(rt.used_at, now())
              WHERE rt.token_hash = $1 AND rt.expires_at > now()
                AND (rt.used_at IS NULL OR rt.used_at > now() - make_interval(secs => $4))
                AND EXISTS (
                    SELECT 1 FROM slm_server.sessions s JOIN public.users su ON su.id = s.user_id
                    WHERE s.id = rt.session_id AND s.revoked_at IS NULL AND s.expires_at > now()
                      AND s.last_seen_at > now() - make_interval(secs => $5)
                      AND su.is_active AND su.deleted_at IS NULL)
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
          SELECT session_id, user_id FROM retired",
    )
    .bind(presented)
    .bind(successor)
    .bind(expires_at)
    .bind(secs(grace))
    .bind(secs(idle))
    .fetch_optional(db.exec())
    .await
}

/// The session of a refresh token used more than `grace` ago (a replay), locked.
pub async fn replayed_session(
    db: &mut impl Db,
    presented: &[u8],
    grace: std::time::Duration,
) -> sqlx::Result<Option<(Uuid, Uuid, String)>> {
    sqlx::query_as(
        r"SELECT s.id, u.id, u.username::text
          FROM slm_server.refresh_tokens rt
          JOIN slm_server.sessions s ON s.id = rt.session_id
          JOIN public.users u ON u.id = s.user_id
          WHERE rt.token_hash = $1 AND rt.used_at <= now() - make_interval(secs => $2)
          FOR UPDATE OF s",
    )
    .bind(presented)
    .bind(secs(grace))
    .fetch_optional(db.exec())
    .await
}

/// Ends one session.
pub async fn revoke_session(db: &mut impl Db, session_id: Uuid, reason: &str) -> sqlx::Result<()> {
    sqlx::query(
        r"UPDATE slm_server.sessions SET revoked_at = now(), revoke_reason = $2
          WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(reason)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// Ends the sessions of a user (all, or all but `keep`); returns how many were live.
pub async fn revoke_sessions(
    db: &mut impl Db,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> sqlx::Result<u64> {
    sqlx::query(
        r"UPDATE slm_server.sessions SET revoked_at = now(), revoke_reason = $3
          WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason)
    .execute(db.exec())
    .await
    .map(|r| r.rows_affected())
}

/// A live session as listed.
#[derive(Debug, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct SessionRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The live sessions of a user (used within `idle`), newest first, and how many there are.
pub async fn live_sessions(
    db: &mut impl Db,
    user_id: Uuid,
    idle: std::time::Duration,
    skip: i64,
    limit: i64,
) -> sqlx::Result<(Vec<SessionRow>, i64)> {
    let rows = sqlx::query_as(
        r"SELECT id, created_at, last_seen_at, ip, user_agent, expires_at
          FROM slm_server.sessions
          WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
            AND last_seen_at > now() - make_interval(secs => $4)
          ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3",
    )
    .bind(user_id)
    .bind(skip)
    .bind(limit)
    .bind(secs(idle))
    .fetch_all(db.exec())
    .await?;
    let total = sqlx::query_scalar(
        r"SELECT count(*) FROM slm_server.sessions
          WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
            AND last_seen_at > now() - make_interval(secs => $2)",
    )
    .bind(user_id)
    .bind(secs(idle))
    .fetch_one(db.exec())
    .await?;
    Ok((rows, total))
}

/// A user authenticated by a credential, with what their roles allow.
#[derive(Debug, sqlx::FromRow)]
pub struct Authenticated {
    #[sqlx(flatten)]
    pub user: User,
    pub permissions: Vec<String>,
    /// The session's end (JWTs) or the key's scopes and id (API keys).
    pub session_expires_at: Option<DateTime<Utc>>,
    pub key_id: Option<Uuid>,
    pub key_scopes: Option<Json<Vec<String>>>,
}

/// The permissions of the user `u`, through its roles (the `admin` role's when its
/// `is_platform_admin` flag is set, as in [`user_columns`]).
macro_rules! permission_column {
    () => {
        r"ARRAY(SELECT DISTINCT p.name::text FROM public.role_permissions rp
                JOIN public.permissions p ON p.id = rp.permission_id
                WHERE rp.role_id IN (
                    SELECT ur.role_id FROM public.user_roles ur WHERE ur.user_id = u.id
                    UNION ALL
                    SELECT r.id FROM public.roles r
                    WHERE u.is_platform_admin AND r.name = 'admin' AND r.org_id IS NULL)
                ORDER BY 1) AS permissions"
    };
}

/// The user of a live session, read on every request so that logout, deactivation, deletion
/// and role changes apply at once on every replica. `last_seen_at` is kept to the minute; a
/// session unused for `idle` has ended (and is not revived by this request).
pub async fn session_user(
    db: &mut impl Db,
    session_id: Uuid,
    user_id: Uuid,
    idle: std::time::Duration,
) -> sqlx::Result<Option<Authenticated>> {
    sqlx::query_as(concat!(
        r"WITH seen AS (
              UPDATE slm_server.sessions SET last_seen_at = now()
              WHERE id = $1 AND last_seen_at < now() - interval '60 seconds'
                AND last_seen_at > now() - make_interval(secs => $3)
          )
          SELECT ",
        user_columns!(),
        ", ",
        permission_column!(),
        r", s.expires_at AS session_expires_at, NULL::uuid AS key_id,
            NULL::jsonb AS key_scopes
          FROM slm_server.sessions s JOIN public.users u ON u.id = s.user_id
          WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL
            AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $3)
            AND u.is_active AND u.deleted_at IS NULL"
    ))
    .bind(session_id)
    .bind(user_id)
    .bind(secs(idle))
    .fetch_optional(db.exec())
    .await
}

/// The owner of a live API key whose stored hash is one of `hashes`.
pub async fn api_key_user(
    db: &mut impl Db,
    hashes: &[String],
) -> sqlx::Result<Option<Authenticated>> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        ", ",
        permission_column!(),
        r", NULL::timestamptz AS session_expires_at, k.id AS key_id, k.scopes AS key_scopes
          FROM public.api_keys k JOIN public.users u ON u.id = k.user_id
          WHERE k.key_hash = ANY($1) AND k.is_active AND k.revoked_at IS NULL
            AND (k.expires_at IS NULL OR k.expires_at > now())
            AND u.is_active AND u.deleted_at IS NULL"
    ))
    .bind(hashes)
    .fetch_optional(db.exec())
    .await
}

// ---------------------------------------------------------------------------------------------
// MFA

/// The second step of a login: the user of a live challenge, counting this attempt; a
/// challenge is spent once used or after `max_attempts` wrong codes.
pub async fn attempt_challenge(
    db: &mut impl Db,
    token_hash: &[u8],
    max_attempts: i32,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        r"UPDATE slm_server.mfa_challenges SET attempts = attempts + 1
          WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() AND attempts < $2
          RETURNING user_id",
    )
    .bind(token_hash)
    .bind(max_attempts)
    .fetch_optional(db.exec())
    .await
}

/// Marks a challenge used: it never works again.
pub async fn spend_challenge(db: &mut impl Db, token_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("UPDATE slm_server.mfa_challenges SET used_at = now() WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db.exec())
        .await
        .map(|_| ())
}

/// Opens the MFA step of a login whose password was right.
pub async fn insert_challenge(
    db: &mut impl Db,
    token_hash: &[u8],
    user_id: Uuid,
    ttl: std::time::Duration,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        r"WITH expired AS (
              DELETE FROM slm_server.mfa_challenges
              WHERE user_id = $2 AND (used_at IS NOT NULL OR expires_at <= now())
          )
          INSERT INTO slm_server.mfa_challenges (token_hash, user_id, expires_at, ip, user_agent)
          VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(secs(ttl))
    .bind(ip)
    .bind(user_agent)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// A user's confirmed MFA, as the AutoBot `user_mfa` table holds it.
#[derive(Debug, sqlx::FromRow)]
pub struct MfaRecord {
    pub method: String,
    pub secret_encrypted: String,
    pub backup_codes_encrypted: Option<String>,
    pub backup_codes_remaining: i32,
    pub last_verified_at: Option<DateTime<Utc>>,
}

pub async fn mfa_record(
    db: &mut impl Db,
    user_id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<MfaRecord>> {
    let sql = if lock {
        r"SELECT method, secret_encrypted, backup_codes_encrypted, backup_codes_remaining,
                 last_verified_at
          FROM public.user_mfa WHERE user_id = $1 AND is_verified FOR UPDATE"
    } else {
        r"SELECT method, secret_encrypted, backup_codes_encrypted, backup_codes_remaining,
                 last_verified_at
          FROM public.user_mfa WHERE user_id = $1 AND is_verified"
    };
    sqlx::query_as(sql)
        .bind(user_id)
        .fetch_optional(db.exec())
        .await
}

/// Records an enrolment that waits for its first code.
pub async fn set_pending_mfa(
    db: &mut impl Db,
    user_id: Uuid,
    secret_encrypted: &str,
    backup_codes_encrypted: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        r"INSERT INTO slm_server.mfa_pending (user_id, secret_encrypted, backup_codes_encrypted)
          VALUES ($1, $2, $3)
          ON CONFLICT (user_id) DO UPDATE SET secret_encrypted = $2,
              backup_codes_encrypted = $3, created_at = now()",
    )
    .bind(user_id)
    .bind(secret_encrypted)
    .bind(backup_codes_encrypted)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// The pending enrolment of a user (secret, backup codes), locked.
pub async fn pending_mfa(
    db: &mut impl Db,
    user_id: Uuid,
) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as(
        r"SELECT secret_encrypted, backup_codes_encrypted FROM slm_server.mfa_pending
          WHERE user_id = $1 FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(db.exec())
    .await
}

/// Turns a confirmed enrolment into the user's MFA.
pub async fn enable_mfa(
    db: &mut impl Db,
    user_id: Uuid,
    secret_encrypted: &str,
    backup_codes_encrypted: &str,
    backup_codes: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        r"INSERT INTO public.user_mfa (id, user_id, method, secret_encrypted,
              backup_codes_encrypted, backup_codes_remaining, is_verified, last_verified_at)
          VALUES ($1, $2, 'totp', $3, $4, $5, true, now())
          ON CONFLICT (user_id) DO UPDATE SET method = 'totp', secret_encrypted = $3,
              backup_codes_encrypted = $4, backup_codes_remaining = $5, is_verified = true,
              last_verified_at = now(), updated_at = now()",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(secret_encrypted)
    .bind(backup_codes_encrypted)
    .bind(backup_codes)
    .execute(db.exec())
    .await?;
    sqlx::query("DELETE FROM slm_server.mfa_pending WHERE user_id = $1")
        .bind(user_id)
        .execute(db.exec())
        .await?;
    Ok(())
}

/// Removes a user's MFA, enrolled or pending; returns whether it was on.
pub async fn delete_mfa(db: &mut impl Db, user_id: Uuid) -> sqlx::Result<bool> {
    let removed = sqlx::query("DELETE FROM public.user_mfa WHERE user_id = $1")
        .bind(user_id)
        .execute(db.exec())
        .await?;
    sqlx::query("DELETE FROM slm_server.mfa_pending WHERE user_id = $1")
        .bind(user_id)
        .execute(db.exec())
        .await?;
    sqlx::query("DELETE FROM slm_server.mfa_replay WHERE user_id = $1")
        .bind(user_id)
        .execute(db.exec())
        .await?;
    Ok(removed.rows_affected() > 0)
}

/// Replaces the backup codes of a user's MFA.
pub async fn set_backup_codes(
    db: &mut impl Db,
    user_id: Uuid,
    backup_codes_encrypted: &str,
    remaining: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        r"UPDATE public.user_mfa SET backup_codes_encrypted = $2, backup_codes_remaining = $3,
              updated_at = now()
          WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(backup_codes_encrypted)
    .bind(remaining)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// Records a successful second factor.
pub async fn mfa_verified(db: &mut impl Db, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE public.user_mfa SET last_verified_at = now() WHERE user_id = $1")
        .bind(user_id)
        .execute(db.exec())
        .await
        .map(|_| ())
}

/// Accepts TOTP step `step` only if it is newer than the last one used: no replay.
pub async fn accept_totp_step(db: &mut impl Db, user_id: Uuid, step: i64) -> sqlx::Result<bool> {
    sqlx::query(
        r"INSERT INTO slm_server.mfa_replay AS r (user_id, last_step) VALUES ($1, $2)
          ON CONFLICT (user_id) DO UPDATE SET last_step = $2 WHERE r.last_step < $2",
    )
    .bind(user_id)
    .bind(step)
    .execute(db.exec())
    .await
    .map(|r| r.rows_affected() == 1)
}

/// Every stored MFA secret and backup-code blob (for re-encryption under a new key).
pub async fn all_mfa_secrets(
    db: &mut impl Db,
) -> sqlx::Result<Vec<(Uuid, String, Option<String>)>> {
    sqlx::query_as(
        "SELECT user_id, secret_encrypted::text, backup_codes_encrypted::text FROM public.user_mfa",
    )
    .fetch_all(db.exec())
    .await
}

/// Every pending enrolment's secret and backup codes.
pub async fn all_pending_mfa(db: &mut impl Db) -> sqlx::Result<Vec<(Uuid, String, String)>> {
    sqlx::query_as(
        "SELECT user_id, secret_encrypted, backup_codes_encrypted FROM slm_server.mfa_pending",
    )
    .fetch_all(db.exec())
    .await
}

/// Stores re-encrypted MFA blobs.
pub async fn reseal_mfa(
    db: &mut impl Db,
    user_id: Uuid,
    secret_encrypted: &str,
    backup_codes_encrypted: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        r"UPDATE public.user_mfa SET secret_encrypted = $2, backup_codes_encrypted = $3
          WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(secret_encrypted)
    .bind(backup_codes_encrypted)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// Stores a re-encrypted pending enrolment.
pub async fn reseal_pending_mfa(
    db: &mut impl Db,
    user_id: Uuid,
    secret_encrypted: &str,
    backup_codes_encrypted: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        r"UPDATE slm_server.mfa_pending SET secret_encrypted = $2, backup_codes_encrypted = $3
          WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(secret_encrypted)
    .bind(backup_codes_encrypted)
    .execute(db.exec())
    .await
    .map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// API keys

/// An API key as listed (never its secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub key_prefix: String,
    pub scopes: Json<Vec<String>>,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub usage_count: i32,
    pub created_at: DateTime<Utc>,
}

const KEY_COLUMNS: &str = "id, name, description, key_prefix, scopes, is_active, \
                           expires_at, last_used_at, usage_count, created_at";

/// A new API key.
pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub key_prefix: &'a str,
    pub key_hash: &'a str,
    pub scopes: &'a [String],
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert_api_key(db: &mut impl Db, key: &NewApiKey<'_>) -> sqlx::Result<ApiKeyRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        r"INSERT INTO public.api_keys (id, key_hash, key_prefix, user_id, name, description,
              scopes, is_active, expires_at, usage_count)
          VALUES ($1, $2, $3, $4, $5, $6, $7, true, $8, 0)
          RETURNING {KEY_COLUMNS}"
    )))
    .bind(key.id)
    .bind(key.key_hash)
    .bind(key.key_prefix)
    .bind(key.user_id)
    .bind(key.name)
    .bind(key.description)
    .bind(Json(key.scopes))
    .bind(key.expires_at)
    .fetch_one(db.exec())
    .await
}

/// The unrevoked keys of a user, newest first.
pub async fn api_keys_of(db: &mut impl Db, user_id: Uuid) -> sqlx::Result<Vec<ApiKeyRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        r"SELECT {KEY_COLUMNS} FROM public.api_keys
          WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC"
    )))
    .bind(user_id)
    .fetch_all(db.exec())
    .await
}

/// One unrevoked key of a user.
pub async fn api_key(
    db: &mut impl Db,
    user_id: Uuid,
    key_id: Uuid,
) -> sqlx::Result<Option<ApiKeyRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        r"SELECT {KEY_COLUMNS} FROM public.api_keys
          WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL"
    )))
    .bind(user_id)
    .bind(key_id)
    .fetch_optional(db.exec())
    .await
}

/// Renames or re-describes a key; `description: Some(None)` clears it.
pub async fn update_api_key(
    db: &mut impl Db,
    user_id: Uuid,
    key_id: Uuid,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> sqlx::Result<Option<ApiKeyRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        r"UPDATE public.api_keys SET name = COALESCE($3, name),
              description = CASE WHEN $4 THEN $5 ELSE description END, updated_at = now()
          WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL
          RETURNING {KEY_COLUMNS}"
    )))
    .bind(user_id)
    .bind(key_id)
    .bind(name)
    .bind(description.is_some())
    .bind(description.flatten())
    .fetch_optional(db.exec())
    .await
}

/// Revokes one key; `revoked_by` must be a user of the same database.
pub async fn revoke_api_key(
    db: &mut impl Db,
    user_id: Uuid,
    key_id: Uuid,
    revoked_by: Option<Uuid>,
) -> sqlx::Result<bool> {
    sqlx::query(
        r"UPDATE public.api_keys SET revoked_at = now(), is_active = false, revoked_by = $3,
              updated_at = now()
          WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(key_id)
    .bind(revoked_by)
    .execute(db.exec())
    .await
    .map(|r| r.rows_affected() == 1)
}

/// Revokes every key of a user.
pub async fn revoke_api_keys(db: &mut impl Db, user_id: Uuid) -> sqlx::Result<u64> {
    sqlx::query(
        r"UPDATE public.api_keys SET revoked_at = now(), is_active = false, updated_at = now()
          WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(db.exec())
    .await
    .map(|r| r.rows_affected())
}

/// Counts a use of a key. A hash under an older secret is replaced by the one under the
/// newest, so that a retired secret can be dropped without breaking the key.
pub async fn record_api_key_use(
    db: &mut impl Db,
    key_id: Uuid,
    current_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        r"UPDATE public.api_keys SET usage_count = usage_count + 1,
              last_used_at = now(), key_hash = $2
          WHERE id = $1",
    )
    .bind(key_id)
    .bind(current_hash)
    .execute(db.exec())
    .await
    .map(|_| ())
}
