//! Login, refresh, logout, password change and MFA, written once for both realms.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sqlx::PgConnection;
use tracing::instrument;
use uuid::Uuid;

use crate::audit::db::audit_insert;
use crate::audit::{self, Actor};
use crate::auth::client::ClientInfo;
use crate::auth::dto::{MfaSetupResponse, TokenResponse};
use crate::auth::mfa;
use crate::auth::principal::Principal;
use crate::auth::token::{random_secret, sha256};
use crate::domain::Password;
use crate::error::{ApiError, FieldError};
use crate::outbox;
use crate::rate_limit::Limit;
use crate::realm::Realm;
use crate::state::AppState;
use crate::users::db::{self as users_db, User, user_columns};

/// The one answer to every failed login, so that it tells nothing about the account.
pub const INVALID_LOGIN: ApiError = ApiError::Unauthorized("Invalid username or password");
const MFA_REQUIRED: ApiError = ApiError::Unauthorized("MFA code required");

/// Login credentials.
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub totp_code: Option<String>,
}

#[derive(sqlx::FromRow)]
struct LoginRow {
    id: Uuid,
    username: String,
    password_hash: String,
    is_active: bool,
    mfa_enabled: bool,
    mfa_secret_encrypted: Option<Vec<u8>>,
    /// This attempt's number in the failure window; NULL when the account is locked.
    attempt: Option<i32>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn login_outcome(realm: &Realm, outcome: &'static str) {
    metrics::counter!("logins_total", "realm" => realm.name(), "outcome" => outcome).increment(1);
}

/// Writes an audit event on its own (login failures have no other write): one statement.
async fn audit_alone(
    realm: &Realm,
    actor: &Actor,
    event: &str,
    target: Option<Uuid>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let mut conn = realm.acquire().await?;
    audit::record(&mut conn, realm, actor, event, target, detail).await
}

/// Completes a successful login in one statement: clears the failure count, stamps
/// `last_login_at`, creates the session and its first refresh token, audits `login_success`,
/// and returns the user with the token pair.
async fn start_session(
    conn: &mut PgConnection,
    realm: &Realm,
    user_id: Uuid,
    username: &str,
    client: &ClientInfo,
) -> Result<(String, String, User), ApiError> {
    let session_id = Uuid::now_v7();
    let refresh_token = random_secret();
    let expires_at = Utc::now() + realm.tokens().refresh_ttl;
    let ip = client.ip.map(|ip| ip.to_string());
    let user: Option<User> = sqlx::query_as(concat!(
        r"WITH session AS (
              INSERT INTO sessions (id, user_id, expires_at, ip, user_agent)
              VALUES ($2, $1, $3, $4, $5)
          ),
          token AS (
              INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($6, $2, $3)
          ),
          audited AS (",
        audit_insert!(),
        r"VALUES ($7, now(), $8, 'login_success', $1, $9, $1, $4, $5, '{}'::jsonb)
          )
          UPDATE users u SET failed_login_count = 0, failed_login_window_start = NULL,
                             last_login_at = now()
          WHERE u.id = $1
          RETURNING ",
        user_columns!()
    ))
    .bind(user_id)
    .bind(session_id)
    .bind(expires_at)
    .bind(&ip)
    .bind(&client.user_agent)
    .bind(sha256(&refresh_token))
    .bind(Uuid::now_v7())
    .bind(realm.name())
    .bind(username)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| match &e {
        // The user was deleted since the password check: the session's foreign key refuses.
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => INVALID_LOGIN,
        _ => realm.db_error(e),
    })?;
    let user = user.ok_or(INVALID_LOGIN)?;
    let access = realm.tokens().issue_access(user_id, session_id)?;
    Ok((access, refresh_token, user))
}

fn token_response(realm: &Realm, access: String, refresh: String, user: User) -> TokenResponse {
    TokenResponse {
        access_token: access,
        token_type: "bearer",
        expires_in: realm.tokens().access_ttl.as_secs(),
        refresh_token: refresh,
        user: user.into(),
    }
}

/// Checks a TOTP code (single use per step) or a recovery code (single use) of `user_id`.
async fn check_second_factor(
    app: &AppState,
    conn: &mut PgConnection,
    realm: &Realm,
    user_id: Uuid,
    username: &str,
    encrypted_secret: Option<&[u8]>,
    code: &str,
) -> Result<bool, ApiError> {
    let Some(encrypted) = encrypted_secret else {
        return Ok(false);
    };
    let secret = mfa::decrypt(&app.settings.mfa_encryption_key, encrypted)?;
    let totp = mfa::totp(&secret, username, realm.policy().display_name)?;
    if let Some(step) = mfa::matching_step(&totp, code) {
        // Accept a step only if it is newer than the last one used: no replay within a step.
        let accepted = sqlx::query(
            "UPDATE users SET mfa_last_step = $2 WHERE id = $1 AND (mfa_last_step IS NULL OR mfa_last_step < $2)",
        )
        .bind(user_id)
        .bind(step)
        .execute(&mut *conn)
        .await
        .map_err(|e| realm.db_error(e))?;
        return Ok(accepted.rows_affected() == 1);
    }
    let used = sqlx::query(
        "UPDATE recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(sha256(&mfa::normalize_recovery_code(code)))
    .execute(&mut *conn)
    .await
    .map_err(|e| realm.db_error(e))?;
    Ok(used.rows_affected() == 1)
}

/// Logs a user in. Failed attempts are counted atomically in PostgreSQL *before* the password
/// is checked, so parallel guesses cannot exceed the lockout threshold.
#[instrument(skip_all, fields(realm = realm.name()))]
pub async fn login(
    app: &AppState,
    realm: &Realm,
    creds: Credentials,
    client: ClientInfo,
) -> Result<TokenResponse, ApiError> {
    let limit = Limit {
        name: "login",
        max: app.settings.login_rate_limit_per_minute,
        window_secs: 60,
    };
    app.rate_limiter.check(limit, client.ip).await?;
    let actor = Actor::anonymous(client.clone());
    let lockout = app.settings.lockout;

    // Find the account and reserve an attempt in one statement: only `threshold` attempts per
    // window ever reach the password check (the row lock serialises parallel guesses), and a
    // locked account reserves nothing (`attempt` is NULL).
    let row: Option<LoginRow> = sqlx::query_as(
        r"WITH target AS (
              SELECT id, username, password_hash, is_active, mfa_enabled, mfa_secret_encrypted
              FROM users
              WHERE lower(username) = lower($1)
                 OR (strpos($1, '@') > 0 AND lower(email) = lower($1))
              LIMIT 1
          ),
          reserved AS (
              UPDATE users SET
                  failed_login_count = CASE
                      WHEN failed_login_window_start IS NULL
                        OR failed_login_window_start <= now() - make_interval(secs => $2)
                      THEN 1 ELSE failed_login_count + 1 END,
                  failed_login_window_start = CASE
                      WHEN failed_login_window_start IS NULL
                        OR failed_login_window_start <= now() - make_interval(secs => $2)
                      THEN now() ELSE failed_login_window_start END
              FROM target
              WHERE users.id = target.id
                AND (users.locked_until IS NULL OR users.locked_until <= now())
              RETURNING users.failed_login_count
          )
          SELECT target.*, (SELECT failed_login_count FROM reserved) AS attempt FROM target",
    )
    .bind(creds.username.trim())
    .bind(secs(lockout.window))
    .fetch_optional(realm.db())
    .await
    .map_err(|e| realm.db_error(e))?;
    let Some(row) = row else {
        app.hasher.verify(&creds.password, None).await?;
        login_outcome(realm, "unknown_user");
        let attempted: String = creds.username.chars().take(64).collect();
        audit_alone(
            realm,
            &actor,
            "login_failure",
            None,
            json!({"username": attempted, "reason": "unknown_user"}),
        )
        .await?;
        return Err(INVALID_LOGIN);
    };
    let attempt = row.attempt;
    let Some(attempt) = attempt.filter(|n| *n <= lockout.threshold) else {
        // Locked: same work and same answer as a wrong password.
        app.hasher.verify(&creds.password, None).await?;
        login_outcome(realm, "locked");
        audit_alone(
            realm,
            &actor,
            "login_failure",
            Some(row.id),
            json!({"reason": "locked"}),
        )
        .await?;
        return Err(INVALID_LOGIN);
    };

    let verified = app
        .hasher
        .verify(&creds.password, Some(&row.password_hash))
        .await?;
    if !verified.ok || !row.is_active {
        let mut tx = realm.begin().await?;
        let reason = if verified.ok {
            "inactive"
        } else {
            "invalid_password"
        };
        audit::record(
            &mut tx,
            realm,
            &actor,
            "login_failure",
            Some(row.id),
            json!({"reason": reason}),
        )
        .await?;
        if !verified.ok && attempt >= lockout.threshold {
            sqlx::query(
                r"UPDATE users SET locked_until = now() + make_interval(secs => $2),
                       failed_login_count = 0, failed_login_window_start = NULL
                  WHERE id = $1",
            )
            .bind(row.id)
            .bind(secs(lockout.duration))
            .execute(&mut *tx)
            .await
            .map_err(|e| realm.db_error(e))?;
            audit::record(
                &mut tx,
                realm,
                &actor,
                "account_locked",
                Some(row.id),
                json!({"failed_attempts": attempt}),
            )
            .await?;
        }
        tx.commit().await.map_err(|e| realm.db_error(e))?;
        login_outcome(realm, reason);
        return Err(INVALID_LOGIN);
    }

    // An imported bcrypt hash (or older parameters) becomes Argon2id on first login; it is
    // computed before any transaction opens, so that none waits on Argon2.
    let upgraded = match verified.needs_rehash {
        true => Some(app.hasher.hash(&creds.password).await?),
        false => None,
    };
    if !row.mfa_enabled && upgraded.is_none() {
        // The usual case: one statement, no transaction to open and commit.
        let mut conn = realm.acquire().await?;
        let (access, refresh, user) =
            start_session(&mut conn, realm, row.id, &row.username, &client).await?;
        login_outcome(realm, "success");
        return Ok(token_response(realm, access, refresh, user));
    }

    let mut tx = realm.begin().await?;
    if row.mfa_enabled {
        let Some(code) = creds.totp_code.as_deref().filter(|c| !c.trim().is_empty()) else {
            // The password was right: this attempt does not count towards a lockout.
            sqlx::query("UPDATE users SET failed_login_count = GREATEST(failed_login_count - 1, 0) WHERE id = $1")
                .bind(row.id)
                .execute(&mut *tx)
                .await
                .map_err(|e| realm.db_error(e))?;
            tx.commit().await.map_err(|e| realm.db_error(e))?;
            login_outcome(realm, "mfa_required");
            return Err(MFA_REQUIRED);
        };
        let ok = check_second_factor(
            app,
            &mut tx,
            realm,
            row.id,
            &row.username,
            row.mfa_secret_encrypted.as_deref(),
            code,
        )
        .await?;
        if !ok {
            audit::record(
                &mut tx,
                realm,
                &actor,
                "login_failure",
                Some(row.id),
                json!({"reason": "invalid_mfa_code"}),
            )
            .await?;
            tx.commit().await.map_err(|e| realm.db_error(e))?;
            login_outcome(realm, "invalid_mfa_code");
            return Err(INVALID_LOGIN);
        }
    }
    if let Some(upgraded) = upgraded {
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(row.id)
            .bind(&upgraded)
            .execute(&mut *tx)
            .await
            .map_err(|e| realm.db_error(e))?;
    }
    let (access, refresh, user) =
        start_session(&mut tx, realm, row.id, &row.username, &client).await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    login_outcome(realm, "success");
    Ok(token_response(realm, access, refresh, user))
}

#[derive(sqlx::FromRow)]
struct RefreshedRow {
    session_id: Uuid,
    #[sqlx(flatten)]
    user: User,
}

/// Exchanges a refresh token for a new pair. The old token stops working; presenting a used
/// token again means it was stolen or replayed, and ends the whole session.
///
/// The usual case is one statement, so one round trip: the token is retired only if it is
/// unused, unexpired, and its session and user are live (the row lock makes this a
/// compare-and-set: of two concurrent uses, one wins); its successor is issued, the session
/// extended and `token_refresh` audited, all atomically.
#[instrument(skip_all, fields(realm = realm.name()))]
pub async fn refresh(
    realm: &Realm,
    refresh_token: &str,
    client: ClientInfo,
) -> Result<TokenResponse, ApiError> {
    let presented = sha256(refresh_token);
    let new_refresh = random_secret();
    let expires_at = Utc::now() + realm.tokens().refresh_ttl;
    let refreshed: Option<RefreshedRow> = sqlx::query_as(concat!(
        r"WITH retired AS (
              UPDATE refresh_tokens rt SET used_at = now()
              FROM sessions s JOIN users su ON su.id = s.user_id
              WHERE rt.token_hash = $1 AND rt.used_at IS NULL AND rt.expires_at > now()
                AND s.id = rt.session_id AND s.revoked_at IS NULL AND s.expires_at > now()
                AND su.is_active
              RETURNING rt.session_id, s.user_id
          ),
          extended AS (
              UPDATE sessions SET expires_at = $3 FROM retired WHERE sessions.id = retired.session_id
          ),
          issued AS (
              INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
              SELECT $2, session_id, $3 FROM retired
          ),
          audited AS (",
        audit_insert!(),
        r"SELECT $4, now(), $5, 'token_refresh', au.id, au.username, au.id, $6, $7,
                     jsonb_build_object('session_id', r.session_id)
              FROM retired r JOIN users au ON au.id = r.user_id
          )
          SELECT r.session_id, ",
        user_columns!(),
        r" FROM retired r JOIN users u ON u.id = r.user_id"
    ))
    .bind(&presented)
    .bind(sha256(&new_refresh))
    .bind(expires_at)
    .bind(Uuid::now_v7())
    .bind(realm.name())
    .bind(client.ip.map(|ip| ip.to_string()))
    .bind(&client.user_agent)
    .fetch_optional(realm.db())
    .await
    .map_err(|e| realm.db_error(e))?;
    let Some(RefreshedRow { session_id, user }) = refreshed else {
        detect_reuse(realm, &presented, client).await?;
        return Err(ApiError::InvalidCredentials);
    };
    let access = realm.tokens().issue_access(user.id, session_id)?;
    Ok(token_response(realm, access, new_refresh, user))
}

/// After a refused refresh: if the token exists and was already used, it was stolen or
/// replayed (or raced with its own successful use), so its whole session ends.
async fn detect_reuse(
    realm: &Realm,
    token_hash: &[u8],
    client: ClientInfo,
) -> Result<(), ApiError> {
    let mut tx = realm.begin().await?;
    let used: Option<(Uuid, Uuid, String)> = sqlx::query_as(
        r"SELECT rt.session_id, u.id, u.username
          FROM refresh_tokens rt
          JOIN sessions s ON s.id = rt.session_id
          JOIN users u ON u.id = s.user_id
          WHERE rt.token_hash = $1 AND rt.used_at IS NOT NULL
          FOR UPDATE OF s",
    )
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| realm.db_error(e))?;
    let Some((session_id, user_id, username)) = used else {
        return Ok(());
    };
    users_db_revoke_session(&mut tx, realm, session_id, "refresh_token_reuse").await?;
    let actor = Actor {
        id: Some(user_id),
        username: Some(username),
        client,
    };
    audit::record(
        &mut tx,
        realm,
        &actor,
        "token_reuse_detected",
        Some(user_id),
        json!({"session_id": session_id}),
    )
    .await?;
    tx.commit().await.map_err(|e| realm.db_error(e))
}

async fn users_db_revoke_session(
    conn: &mut PgConnection,
    realm: &Realm,
    session_id: Uuid,
    reason: &str,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE sessions SET revoked_at = now(), revoke_reason = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .bind(reason)
        .execute(conn)
        .await
        .map_err(|e| realm.db_error(e))
        .map(|_| ())
}

/// Ends the caller's session: its access token and refresh token stop working at once.
pub async fn logout(realm: &Realm, principal: &Principal) -> Result<(), ApiError> {
    let mut tx = realm.begin().await?;
    if let Some(session_id) = principal.session_id {
        users_db_revoke_session(&mut tx, realm, session_id, "logout").await?;
    }
    audit::record(
        &mut tx,
        realm,
        &principal.actor(),
        "logout",
        Some(principal.user.id),
        json!({"session_id": principal.session_id}),
    )
    .await?;
    tx.commit().await.map_err(|e| realm.db_error(e))
}

/// Changes the caller's own password after checking the current one; other sessions end.
#[instrument(skip_all, fields(realm = realm.name(), user.id = %principal.user.id))]
pub async fn change_password(
    app: &AppState,
    realm: &Realm,
    principal: &Principal,
    current: &str,
    new: &str,
) -> Result<(), ApiError> {
    let user = &principal.user;
    let new = Password::parse(new, &user.username, user.email.as_deref())
        .map_err(|msg| ApiError::field(FieldError::body("new_password", msg)))?;
    if new.expose() == current {
        return Err(ApiError::field(FieldError::body(
            "new_password",
            "New password must differ from the current password",
        )));
    }
    let stored = {
        let mut conn = realm.acquire().await?;
        users_db::password_hash(&mut *conn, user.id)
            .await
            .map_err(|e| realm.db_error(e))?
    };
    if !app.hasher.verify(current, stored.as_deref()).await?.ok {
        return Err(ApiError::BadRequest("Current password is incorrect".into()));
    }
    let hash = app.hasher.hash(new.expose()).await?;
    let mut tx = realm.begin().await?;
    users_db::set_password(&mut tx, user.id, &hash, false)
        .await
        .map_err(|e| realm.db_error(e))?;
    let ended =
        users_db::revoke_sessions(&mut tx, user.id, principal.session_id, "password_changed")
            .await
            .map_err(|e| realm.db_error(e))?;
    let actor = principal.actor();
    audit::record(
        &mut tx,
        realm,
        &actor,
        "password_changed",
        Some(user.id),
        json!({"by": "self"}),
    )
    .await?;
    if ended > 0 {
        audit::record(
            &mut tx,
            realm,
            &actor,
            "sessions_revoked",
            Some(user.id),
            json!({"sessions": ended}),
        )
        .await?;
    }
    outbox::enqueue(&mut tx, realm, &[user.id], "user.password_changed").await?;
    tx.commit().await.map_err(|e| realm.db_error(e))
}

/// Starts MFA enrolment: a new secret, stored encrypted as pending until confirmed.
pub async fn mfa_setup(
    app: &AppState,
    realm: &Realm,
    principal: &Principal,
) -> Result<MfaSetupResponse, ApiError> {
    if principal.user.mfa_enabled {
        return Err(ApiError::Conflict("MFA is already enabled".into()));
    }
    let secret = mfa::new_secret();
    let otpauth_url = mfa::totp(
        &secret,
        &principal.user.username,
        realm.policy().display_name,
    )?
    .to_url()
    .map_err(|e| anyhow::anyhow!("otpauth URL: {e:?}"))?;
    let sealed = mfa::encrypt(&app.settings.mfa_encryption_key, &secret)?;
    let mut conn = realm.acquire().await?;
    sqlx::query("UPDATE users SET mfa_pending_secret_encrypted = $2 WHERE id = $1")
        .bind(principal.user.id)
        .bind(sealed)
        .execute(&mut *conn)
        .await
        .map_err(|e| realm.db_error(e))?;
    Ok(MfaSetupResponse {
        secret,
        otpauth_url,
    })
}

/// Confirms enrolment with a current code; returns single-use recovery codes (shown once).
pub async fn mfa_enable(
    app: &AppState,
    realm: &Realm,
    principal: &Principal,
    code: &str,
) -> Result<Vec<String>, ApiError> {
    let mut tx = realm.begin().await?;
    let (enabled, pending): (bool, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT mfa_enabled, mfa_pending_secret_encrypted FROM users WHERE id = $1 FOR UPDATE",
    )
    .bind(principal.user.id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| realm.db_error(e))?;
    if enabled {
        return Err(ApiError::Conflict("MFA is already enabled".into()));
    }
    let Some(pending) = pending else {
        return Err(ApiError::BadRequest("Call /me/mfa/setup first".into()));
    };
    let secret = mfa::decrypt(&app.settings.mfa_encryption_key, &pending)?;
    let totp = mfa::totp(
        &secret,
        &principal.user.username,
        realm.policy().display_name,
    )?;
    let Some(step) = mfa::matching_step(&totp, code) else {
        return Err(ApiError::BadRequest("Invalid MFA code".into()));
    };
    sqlx::query(
        r"UPDATE users SET mfa_enabled = true, mfa_secret_encrypted = mfa_pending_secret_encrypted,
               mfa_pending_secret_encrypted = NULL, mfa_last_step = $2, updated_at = now()
          WHERE id = $1",
    )
    .bind(principal.user.id)
    .bind(step)
    .execute(&mut *tx)
    .await
    .map_err(|e| realm.db_error(e))?;
    let codes = mfa::recovery_codes();
    let hashes: Vec<Vec<u8>> = codes
        .iter()
        .map(|c| sha256(&mfa::normalize_recovery_code(c)))
        .collect();
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(principal.user.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| realm.db_error(e))?;
    sqlx::query(
        "INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, * FROM UNNEST($2::bytea[])",
    )
    .bind(principal.user.id)
    .bind(&hashes)
    .execute(&mut *tx)
    .await
    .map_err(|e| realm.db_error(e))?;
    audit::record(
        &mut tx,
        realm,
        &principal.actor(),
        "mfa_enabled",
        Some(principal.user.id),
        json!({}),
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &[principal.user.id], "user.updated").await?;
    tx.commit().await.map_err(|e| realm.db_error(e))?;
    Ok(codes)
}

/// Turns MFA off after checking a current code (or a recovery code).
pub async fn mfa_disable(
    app: &AppState,
    realm: &Realm,
    principal: &Principal,
    code: &str,
) -> Result<(), ApiError> {
    let mut tx = realm.begin().await?;
    let (enabled, secret): (bool, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT mfa_enabled, mfa_secret_encrypted FROM users WHERE id = $1 FOR UPDATE",
    )
    .bind(principal.user.id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| realm.db_error(e))?;
    if !enabled {
        return Err(ApiError::Conflict("MFA is not enabled".into()));
    }
    if !check_second_factor(
        app,
        &mut tx,
        realm,
        principal.user.id,
        &principal.user.username,
        secret.as_deref(),
        code,
    )
    .await?
    {
        return Err(ApiError::BadRequest("Invalid MFA code".into()));
    }
    sqlx::query(
        r"UPDATE users SET mfa_enabled = false, mfa_secret_encrypted = NULL,
               mfa_pending_secret_encrypted = NULL, updated_at = now() WHERE id = $1",
    )
    .bind(principal.user.id)
    .execute(&mut *tx)
    .await
    .map_err(|e| realm.db_error(e))?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(principal.user.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| realm.db_error(e))?;
    audit::record(
        &mut tx,
        realm,
        &principal.actor(),
        "mfa_disabled",
        Some(principal.user.id),
        json!({}),
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &[principal.user.id], "user.updated").await?;
    tx.commit().await.map_err(|e| realm.db_error(e))
}
