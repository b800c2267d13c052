//! The SQL of users and their role assignments (`users`, `user_roles`), and the server's own
//! state of them (`slm_server.password_state`, `slm_server.bootstrap_state`). The one query that
//! reads user rows is [`rows`]: sign-in, user management and every list read it there
//! ([`update_profile`] answers the same columns, so that a change needs no second read).
//!
//! A row of `users` whose `deleted_at` is set is no user (the AutoBot backend soft-deletes):
//! every query here leaves it out.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::realm::ADMIN_ROLE;

/// A user as stored, without secrets; its roles are ids, resolved by the realm's catalog.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub org_id: Option<Uuid>,
    pub is_active: bool,
    pub is_verified: bool,
    pub mfa_enabled: bool,
    /// The AutoBot backend's admin flag (admin = the flag or the `admin` role).
    pub is_platform_admin: bool,
    /// As PostgreSQL prints it, never parsed: a JSON number may be beyond what `f64` holds (the
    /// AutoBot backend writes Python's integers), and the server does not read preferences.
    pub preferences: Json<Box<RawValue>>,
    pub role_ids: Vec<Uuid>,
    pub must_change_password: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The live users among `ids`, in no particular order.
pub async fn rows(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT u.id, u.username::text AS "username!", u.email::text AS "email!",
                  u.display_name::text, u.bio, u.avatar_url::text, u.org_id, u.is_active,
                  u.is_verified, u.mfa_enabled, u.is_platform_admin,
                  u.preferences AS "preferences: Json<Box<RawValue>>",
                  ARRAY(SELECT ur.role_id FROM public.user_roles ur WHERE ur.user_id = u.id)
                      AS "role_ids!",
                  COALESCE(ps.must_change_password, false) AS "must_change_password!",
                  u.last_login_at, u.created_at, u.updated_at
           FROM public.users u LEFT JOIN slm_server.password_state ps ON ps.user_id = u.id
           WHERE u.id = ANY($1) AND u.deleted_at IS NULL"#,
        ids
    )
    .fetch_all(&mut *db)
    .await
}

/// Row-locks a live user for the rest of the transaction; `false` if there is none.
pub async fn lock(db: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        "SELECT id FROM public.users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        id
    )
    .fetch_optional(&mut *db)
    .await
    .map(|found| found.is_some())
}

/// The account a sign-in names.
/// Holds a password hash: not `Debug`.
pub struct LoginCandidate {
    pub id: Uuid,
    pub username: String,
    pub password_hash: Option<String>,
    pub is_active: bool,
    pub mfa_enabled: bool,
}

/// The account of a username or e-mail, case-insensitively, as the AutoBot backend finds it;
/// the username wins when both match different accounts.
pub async fn find_for_login(
    db: &mut PgConnection,
    login: &str,
) -> sqlx::Result<Option<LoginCandidate>> {
    sqlx::query_as!(
        LoginCandidate,
        r#"SELECT id, username::text AS "username!", password_hash::text, is_active, mfa_enabled
           FROM public.users
           WHERE deleted_at IS NULL AND (lower(username) = lower($1) OR lower(email) = lower($1))
           ORDER BY (lower(username) = lower($1)) DESC
           LIMIT 1"#,
        login
    )
    .fetch_optional(&mut *db)
    .await
}

/// Whether a live user has this username, case-insensitively.
pub async fn username_taken(db: &mut PgConnection, username: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM public.users
                          WHERE lower(username) = lower($1) AND deleted_at IS NULL) AS "taken!""#,
        username
    )
    .fetch_one(&mut *db)
    .await
}

/// Which of these usernames and e-mail addresses live users hold, case-insensitively.
pub async fn taken(
    db: &mut PgConnection,
    usernames: &[String],
    emails: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"SELECT lower(username)::text AS "name!" FROM public.users
           WHERE lower(username) = ANY($1) AND deleted_at IS NULL
           UNION ALL
           SELECT lower(email)::text FROM public.users
           WHERE lower(email) = ANY($2) AND deleted_at IS NULL"#,
        usernames,
        emails
    )
    .fetch_all(&mut *db)
    .await
}

/// Unique indexes of `users` and the 409 each means.
pub const USER_CONFLICTS: &[(&str, &str)] = &[
    ("users_username_lower_key", "Username already exists"),
    ("ix_users_username", "Username already exists"),
    ("users_email_lower_key", "Email already exists"),
    ("ix_users_email", "Email already exists"),
];

/// The columns of a new user row.
pub struct NewUserRow<'a> {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub username: &'a str,
    pub email: &'a str,
    pub display_name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub is_active: bool,
    /// Kept equal to holding `admin` (the roles are granted with the row).
    pub is_platform_admin: bool,
    pub must_change_password: bool,
}

/// Inserts users (without roles) and their password state, in two statements whatever their
/// number.
pub async fn insert_many(db: &mut PgConnection, rows: &[NewUserRow<'_>]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let orgs: Vec<Option<Uuid>> = rows.iter().map(|r| r.org_id).collect();
    let emails: Vec<String> = rows.iter().map(|r| r.email.to_owned()).collect();
    let usernames: Vec<String> = rows.iter().map(|r| r.username.to_owned()).collect();
    let hashes: Vec<Option<String>> = rows
        .iter()
        .map(|r| r.password_hash.map(str::to_owned))
        .collect();
    let names: Vec<Option<String>> = rows
        .iter()
        .map(|r| r.display_name.map(str::to_owned))
        .collect();
    let active: Vec<bool> = rows.iter().map(|r| r.is_active).collect();
    let admin: Vec<bool> = rows.iter().map(|r| r.is_platform_admin).collect();
    let must_change: Vec<bool> = rows.iter().map(|r| r.must_change_password).collect();
    sqlx::query!(
        r"INSERT INTO public.users (id, org_id, email, username, password_hash, display_name,
              is_active, is_verified, mfa_enabled, is_platform_admin, preferences)
          SELECT id, org_id, email, username, password_hash, display_name, is_active, false, false,
                 is_platform_admin, '{}'
          FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                      $7::boolean[], $8::boolean[])
               AS n(id, org_id, email, username, password_hash, display_name, is_active, is_platform_admin)",
        &ids,
        &orgs as &[Option<Uuid>],
        &emails,
        &usernames,
        &hashes as &[Option<String>],
        &names as &[Option<String>],
        &active,
        &admin,
    )
    .execute(&mut *db)
    .await?;
    sqlx::query!(
        r"INSERT INTO slm_server.password_state (user_id, must_change_password)
          SELECT * FROM UNNEST($1::uuid[], $2::boolean[])",
        &ids,
        &must_change,
    )
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Grants role `role_ids[i]` to user `user_ids[i]` for every `i` (new users).
pub async fn grant_roles(
    db: &mut PgConnection,
    user_ids: &[Uuid],
    role_ids: &[Uuid],
    assigned_by: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r"INSERT INTO public.user_roles (user_id, role_id, assigned_by)
          SELECT u, r, $3 FROM UNNEST($1::uuid[], $2::uuid[]) AS g(u, r)
          ON CONFLICT DO NOTHING",
        user_ids,
        role_ids,
        assigned_by,
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Changes to the profile columns; `None` leaves a column, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub email: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<Option<String>>,
    pub bio: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub preferences: Option<serde_json::Value>,
    pub is_active: Option<bool>,
}

pub async fn update_profile(
    db: &mut PgConnection,
    id: Uuid,
    change: &ProfileChange,
) -> sqlx::Result<Option<UserRow>> {
    // Answers the row as `rows` reads it, so that a change made last needs no second read.
    sqlx::query_as!(
        UserRow,
        r#"UPDATE public.users u SET
              email = COALESCE($2, email),
              username = COALESCE($3, username),
              display_name = CASE WHEN $4 THEN $5 ELSE display_name END,
              bio = CASE WHEN $6 THEN $7 ELSE bio END,
              avatar_url = CASE WHEN $8 THEN $9 ELSE avatar_url END,
              preferences = COALESCE($10, preferences),
              is_active = COALESCE($11, is_active),
              updated_at = now()
          WHERE u.id = $1 AND u.deleted_at IS NULL
          RETURNING u.id, u.username::text AS "username!", u.email::text AS "email!",
                    u.display_name::text, u.bio, u.avatar_url::text, u.org_id, u.is_active,
                    u.is_verified, u.mfa_enabled, u.is_platform_admin,
                    u.preferences AS "preferences: Json<Box<RawValue>>",
                    ARRAY(SELECT ur.role_id FROM public.user_roles ur WHERE ur.user_id = u.id)
                        AS "role_ids!",
                    COALESCE((SELECT ps.must_change_password FROM slm_server.password_state ps
                              WHERE ps.user_id = u.id), false) AS "must_change_password!",
                    u.last_login_at, u.created_at, u.updated_at"#,
        id,
        change.email,
        change.username,
        change.display_name.is_some(),
        change.display_name.clone().flatten(),
        change.bio.is_some(),
        change.bio.clone().flatten(),
        change.avatar_url.is_some(),
        change.avatar_url.clone().flatten(),
        change.preferences.clone(),
        change.is_active,
    )
    .fetch_optional(&mut *db)
    .await
}

/// Makes `role_ids` the user's roles, keeping `is_platform_admin` equal to holding `admin`.
/// `assigned_by` must be a user of the same database (the AutoBot schema's foreign key).
pub async fn set_roles(
    db: &mut PgConnection,
    user_id: Uuid,
    role_ids: &[Uuid],
    assigned_by: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM public.user_roles WHERE user_id = $1 AND role_id <> ALL($2)",
        user_id,
        role_ids,
    )
    .execute(&mut *db)
    .await?;
    sqlx::query!(
        r"INSERT INTO public.user_roles (user_id, role_id, assigned_by)
          SELECT $1, role_id, $3 FROM UNNEST($2::uuid[]) AS r(role_id)
          ON CONFLICT DO NOTHING",
        user_id,
        role_ids,
        assigned_by,
    )
    .execute(&mut *db)
    .await?;
    sqlx::query!(
        r"UPDATE public.users SET updated_at = now(), is_platform_admin = EXISTS (
              SELECT 1 FROM public.user_roles ur JOIN public.roles r ON r.id = ur.role_id
              WHERE ur.user_id = $1 AND r.name = $2)
          WHERE id = $1",
        user_id,
        ADMIN_ROLE,
    )
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Serialises every change that could remove a realm's last active admin (one realm-wide
/// transaction lock), so that two admins demoting each other cannot both succeed.
pub async fn lock_admin_set(db: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_advisory_xact_lock(7263511, 1)")
        .execute(&mut *db)
        .await
        .map(|_| ())
}

/// Active admins (by the flag or the role) other than `except` (`None`: all of them).
pub async fn count_active_admins(db: &mut PgConnection, except: Option<Uuid>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM public.users u
           WHERE u.is_active AND u.deleted_at IS NULL AND ($1::uuid IS NULL OR u.id <> $1)
             AND (u.is_platform_admin OR EXISTS (
                 SELECT 1 FROM public.user_roles ur JOIN public.roles r ON r.id = ur.role_id
                 WHERE ur.user_id = u.id AND r.name = $2))"#,
        except,
        ADMIN_ROLE,
    )
    .fetch_one(&mut *db)
    .await
}

/// The id of the user with this username, case-insensitively.
pub async fn id_by_username(db: &mut PgConnection, username: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM public.users WHERE lower(username) = lower($1) AND deleted_at IS NULL",
        username
    )
    .fetch_optional(&mut *db)
    .await
}

/// The live user with this e-mail address, case-insensitively.
pub async fn id_by_email(db: &mut PgConnection, email: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM public.users WHERE lower(email) = lower($1) AND deleted_at IS NULL",
        email
    )
    .fetch_optional(&mut *db)
    .await
}

/// The stored password hash of a user.
pub async fn password_hash(db: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "SELECT password_hash::text FROM public.users WHERE id = $1 AND deleted_at IS NULL",
        id
    )
    .fetch_optional(&mut *db)
    .await
    .map(Option::flatten)
}

/// Stores a new password hash and whether the user must change it before anything else.
pub async fn set_password(
    db: &mut PgConnection,
    id: Uuid,
    hash: &str,
    must_change_password: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE public.users SET password_hash = $2, updated_at = now() WHERE id = $1",
        id,
        hash
    )
    .execute(&mut *db)
    .await?;
    sqlx::query!(
        r"INSERT INTO slm_server.password_state (user_id, must_change_password, changed_at)
          VALUES ($1, $2, now())
          ON CONFLICT (user_id) DO UPDATE SET must_change_password = $2, changed_at = now()",
        id,
        must_change_password
    )
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Replaces a hash by one of the realm's current scheme after a successful sign-in.
pub async fn upgrade_hash(db: &mut PgConnection, id: Uuid, hash: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE public.users SET password_hash = $2 WHERE id = $1",
        id,
        hash
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Stamps a successful sign-in.
pub async fn record_login(db: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE public.users SET last_login_at = now() WHERE id = $1",
        id
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Sets the MFA flag the AutoBot model keeps on the user.
pub async fn set_mfa_enabled(db: &mut PgConnection, id: Uuid, enabled: bool) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE public.users SET mfa_enabled = $2, updated_at = now() WHERE id = $1",
        id,
        enabled
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Deletes a user the way the AutoBot model does (`deleted_at`, inactive), and erases what
/// identifies the person: the username and e-mail become placeholders (so both can be used
/// again), the profile and password are cleared, and the roles removed. The row stays, because
/// the audit trail refers to it.
pub async fn soft_delete(db: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query!(
        r"UPDATE public.users SET deleted_at = now(), is_active = false, is_platform_admin = false,
              mfa_enabled = false,
              username = 'deleted-' || replace(id::text, '-', ''),
              email = 'deleted-' || replace(id::text, '-', '') || '@deleted.invalid',
              display_name = NULL, bio = NULL, avatar_url = NULL, password_hash = NULL,
              preferences = '{}', updated_at = now()
          WHERE id = $1 AND deleted_at IS NULL",
        id
    )
    .execute(&mut *db)
    .await?;
    sqlx::query!("DELETE FROM public.user_roles WHERE user_id = $1", id)
        .execute(&mut *db)
        .await?;
    Ok(deleted.rows_affected() == 1)
}

/// Whether the bootstrap admin's password was last force-reset to this fingerprint.
pub async fn forced_reset_done(db: &mut PgConnection, fingerprint: &[u8]) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM slm_server.bootstrap_state WHERE forced_fingerprint = $1)
           AS "done!""#,
        fingerprint
    )
    .fetch_one(&mut *db)
    .await
}

/// Records a forced reset of the bootstrap admin's password.
pub async fn record_forced_reset(db: &mut PgConnection, fingerprint: &[u8]) -> sqlx::Result<()> {
    sqlx::query!(
        r"INSERT INTO slm_server.bootstrap_state (singleton, forced_fingerprint) VALUES (true, $1)
          ON CONFLICT (singleton) DO UPDATE SET forced_fingerprint = $1, forced_at = now()",
        fingerprint
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}
