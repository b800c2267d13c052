//! The SQL of lockouts (`slm_server.login_failures`): the failures of an account's window, its
//! lock, and the password checks under way (`in_flight`, see the migration that added it).

use sqlx::PgConnection;
use uuid::Uuid;

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

/// Whether a login may check the password now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// The account is locked: no password is checked.
    pub locked: bool,
    /// This login holds one of the account's places.
    pub reserved: bool,
}

/// Reserves a place for login `attempt` of account `user_id`, unless it is locked: a place is
/// free while the failures of the window and the checks under way stay below `threshold`. The
/// row lock serialises the logins of an account, so at most `threshold` wrong passwords per
/// window ever reach the password check, and a right password is never refused for being in
/// a crowd: it waits for a place.
pub async fn reserve(
    db: &mut PgConnection,
    user_id: Uuid,
    attempt: Uuid,
    window: std::time::Duration,
    threshold: i32,
) -> sqlx::Result<Turn> {
    let row = sqlx::query!(
        r#"INSERT INTO slm_server.login_failures AS f (user_id, failures, window_start, in_flight)
           VALUES ($1, 0, now(), jsonb_build_array(jsonb_build_object('id', $2::uuid, 'at', now())))
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
           RETURNING coalesce(f.locked_until > now(), false) AS "locked!",
                     f.in_flight @> jsonb_build_array(jsonb_build_object('id', $2::uuid))
                         AS "reserved!""#,
        user_id,
        attempt,
        secs(window),
        threshold,
    )
    .fetch_one(&mut *db)
    .await?;
    Ok(Turn {
        locked: row.locked,
        reserved: row.reserved,
    })
}

/// A right password: the account's failures are forgotten and `attempt`'s place freed.
pub async fn succeeded(db: &mut PgConnection, user_id: Uuid, attempt: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        r"UPDATE slm_server.login_failures
          SET failures = 0, window_start = NULL, in_flight = slm_server.login_done(in_flight, $2)
          WHERE user_id = $1",
        user_id,
        attempt
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// Frees `attempt`'s place without counting a failure (a right password of an inactive
/// account, an MFA challenge, a check that could not run).
pub async fn release(db: &mut PgConnection, user_id: Uuid, attempt: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        r"UPDATE slm_server.login_failures SET in_flight = slm_server.login_done(in_flight, $2)
          WHERE user_id = $1",
        user_id,
        attempt
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// A wrong password: counts a failure and frees `attempt`'s place; the failure that reaches
/// `threshold` locks the account for `duration` and starts a new window. Returns the failures
/// of the window, this one included (0 when the row was gone: an admin's unlock).
pub async fn failed(
    db: &mut PgConnection,
    user_id: Uuid,
    attempt: Uuid,
    threshold: i32,
    duration: std::time::Duration,
) -> sqlx::Result<i32> {
    let failed = sqlx::query_scalar!(
        r#"WITH before AS (
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
           RETURNING before.failures + 1 AS "failed!""#,
        user_id,
        attempt,
        threshold,
        secs(duration),
    )
    .fetch_optional(&mut *db)
    .await?;
    Ok(failed.unwrap_or(0))
}

/// Forgets the failures and the lockout of a user (an admin's unlock, a completed MFA
/// sign-in); logins under way keep their places.
pub async fn clear(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query!(
        r"UPDATE slm_server.login_failures SET failures = 0, window_start = NULL, locked_until = NULL
          WHERE user_id = $1",
        user_id
    )
    .execute(&mut *db)
    .await
    .map(|r| r.rows_affected() > 0)
}

/// Whether the account is locked now.
pub async fn is_locked(db: &mut PgConnection, user_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM slm_server.login_failures
                          WHERE user_id = $1 AND locked_until > now()) AS "locked!""#,
        user_id
    )
    .fetch_one(&mut *db)
    .await
}
