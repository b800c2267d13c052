//! The SQL of second factors: a user's confirmed MFA where the AutoBot model keeps it
//! (`user_mfa`, sealed), and the server's own enrolment, replay and sign-in challenge state
//! (`slm_server.mfa_pending`, `mfa_replay`, `mfa_challenges`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

/// The second step of a sign-in: the user of a live challenge, counting this attempt; a
/// challenge is spent once used or after `max_attempts` wrong codes.
pub async fn attempt_challenge(
    db: &mut PgConnection,
    token_hash: &[u8],
    max_attempts: i32,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r"UPDATE slm_server.mfa_challenges SET attempts = attempts + 1
          WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() AND attempts < $2
          RETURNING user_id",
        token_hash,
        max_attempts
    )
    .fetch_optional(&mut *db)
    .await
}

/// Marks a challenge used: it never works again.
pub async fn spend_challenge(db: &mut PgConnection, token_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE slm_server.mfa_challenges SET used_at = now() WHERE token_hash = $1",
        token_hash
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Opens the MFA step of a sign-in whose password was right.
pub async fn insert_challenge(
    db: &mut PgConnection,
    token_hash: &[u8],
    user_id: Uuid,
    ttl: std::time::Duration,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r"WITH expired AS (
              DELETE FROM slm_server.mfa_challenges
              WHERE user_id = $2 AND (used_at IS NOT NULL OR expires_at <= now())
          )
          INSERT INTO slm_server.mfa_challenges (token_hash, user_id, expires_at, ip, user_agent)
          VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5)",
        token_hash,
        user_id,
        secs(ttl),
        ip,
        user_agent
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// A user's confirmed MFA, as the AutoBot `user_mfa` table holds it.
#[derive(Debug)]
pub struct MfaRecord {
    pub method: String,
    pub secret_encrypted: String,
    pub backup_codes_encrypted: Option<String>,
    pub backup_codes_remaining: i32,
    pub last_verified_at: Option<DateTime<Utc>>,
}

/// The confirmed MFA of a user, row-locked for the rest of the transaction.
pub async fn record(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Option<MfaRecord>> {
    sqlx::query_as!(
        MfaRecord,
        r"SELECT method, secret_encrypted, backup_codes_encrypted, backup_codes_remaining,
                 last_verified_at
          FROM public.user_mfa WHERE user_id = $1 AND is_verified FOR UPDATE",
        user_id
    )
    .fetch_optional(&mut *db)
    .await
}

/// Records an enrolment that waits for its first code.
pub async fn set_pending(
    db: &mut PgConnection,
    user_id: Uuid,
    sealed: &Pending,
) -> sqlx::Result<()> {
    sqlx::query!(
        r"INSERT INTO slm_server.mfa_pending (user_id, secret_encrypted, backup_codes_encrypted)
          VALUES ($1, $2, $3)
          ON CONFLICT (user_id) DO UPDATE SET secret_encrypted = $2,
              backup_codes_encrypted = $3, created_at = now()",
        user_id,
        sealed.secret_encrypted,
        sealed.backup_codes_encrypted
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// The sealed secret and backup codes of an enrolment.
#[derive(Debug)]
pub struct Pending {
    pub secret_encrypted: String,
    pub backup_codes_encrypted: String,
}

/// The pending enrolment of a user, locked.
pub async fn pending(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Option<Pending>> {
    sqlx::query_as!(
        Pending,
        r"SELECT secret_encrypted, backup_codes_encrypted FROM slm_server.mfa_pending
          WHERE user_id = $1 FOR UPDATE",
        user_id
    )
    .fetch_optional(&mut *db)
    .await
}

/// Turns a confirmed enrolment into the user's MFA.
pub async fn enable(
    db: &mut PgConnection,
    user_id: Uuid,
    sealed: &Pending,
    backup_codes: i32,
) -> sqlx::Result<()> {
    sqlx::query!(
        r"INSERT INTO public.user_mfa (id, user_id, method, secret_encrypted,
              backup_codes_encrypted, backup_codes_remaining, is_verified, last_verified_at)
          VALUES ($1, $2, 'totp', $3, $4, $5, true, now())
          ON CONFLICT (user_id) DO UPDATE SET method = 'totp', secret_encrypted = $3,
              backup_codes_encrypted = $4, backup_codes_remaining = $5, is_verified = true,
              last_verified_at = now(), updated_at = now()",
        Uuid::now_v7(),
        user_id,
        sealed.secret_encrypted,
        sealed.backup_codes_encrypted,
        backup_codes
    )
    .execute(&mut *db)
    .await?;
    sqlx::query!(
        "DELETE FROM slm_server.mfa_pending WHERE user_id = $1",
        user_id
    )
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Removes a user's MFA, enrolled or pending; returns whether it was on.
pub async fn delete(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<bool> {
    let removed = sqlx::query!("DELETE FROM public.user_mfa WHERE user_id = $1", user_id)
        .execute(&mut *db)
        .await?;
    sqlx::query!(
        "DELETE FROM slm_server.mfa_pending WHERE user_id = $1",
        user_id
    )
    .execute(&mut *db)
    .await?;
    sqlx::query!(
        "DELETE FROM slm_server.mfa_replay WHERE user_id = $1",
        user_id
    )
    .execute(&mut *db)
    .await?;
    Ok(removed.rows_affected() > 0)
}

/// Replaces the backup codes of a user's MFA.
pub async fn set_backup_codes(
    db: &mut PgConnection,
    user_id: Uuid,
    backup_codes_encrypted: &str,
    remaining: i32,
) -> sqlx::Result<()> {
    sqlx::query!(
        r"UPDATE public.user_mfa SET backup_codes_encrypted = $2, backup_codes_remaining = $3,
              updated_at = now()
          WHERE user_id = $1",
        user_id,
        backup_codes_encrypted,
        remaining
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Records a successful second factor.
pub async fn verified(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE public.user_mfa SET last_verified_at = now() WHERE user_id = $1",
        user_id
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Accepts TOTP step `step` only if it is newer than the last one used: no replay.
pub async fn accept_totp_step(
    db: &mut PgConnection,
    user_id: Uuid,
    step: i64,
) -> sqlx::Result<bool> {
    sqlx::query!(
        r"INSERT INTO slm_server.mfa_replay AS r (user_id, last_step) VALUES ($1, $2)
          ON CONFLICT (user_id) DO UPDATE SET last_step = $2 WHERE r.last_step < $2",
        user_id,
        step
    )
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected() == 1)
}

/// Every sealed value of second factors, for sealing again under the newest key: (user, secret,
/// backup codes), confirmed and pending alike.
pub struct Sealed {
    pub user_id: Uuid,
    pub secret: String,
    pub backup_codes: Option<String>,
    pub pending: bool,
}

pub async fn all_sealed(db: &mut PgConnection) -> sqlx::Result<Vec<Sealed>> {
    sqlx::query_as!(
        Sealed,
        r#"SELECT user_id AS "user_id!", secret_encrypted::text AS "secret!",
                  backup_codes_encrypted::text AS backup_codes, false AS "pending!"
           FROM public.user_mfa
           UNION ALL
           SELECT user_id, secret_encrypted, backup_codes_encrypted, true
           FROM slm_server.mfa_pending"#
    )
    .fetch_all(&mut *db)
    .await
}

/// Stores a value of [`all_sealed`] sealed again.
pub async fn reseal(db: &mut PgConnection, sealed: &Sealed) -> sqlx::Result<()> {
    if sealed.pending {
        sqlx::query!(
            r"UPDATE slm_server.mfa_pending SET secret_encrypted = $2, backup_codes_encrypted = $3
              WHERE user_id = $1",
            sealed.user_id,
            sealed.secret,
            sealed.backup_codes.as_deref().unwrap_or_default()
        )
        .execute(&mut *db)
        .await?;
    } else {
        sqlx::query!(
            r"UPDATE public.user_mfa SET secret_encrypted = $2, backup_codes_encrypted = $3
              WHERE user_id = $1",
            sealed.user_id,
            sealed.secret,
            sealed.backup_codes
        )
        .execute(&mut *db)
        .await?;
    }
    Ok(())
}
