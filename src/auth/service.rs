//! Login (with the MFA challenge), refresh, logout and password change, written once for both
//! realms.
//!
//! Hashes are checked and computed before any transaction opens, so that no row lock waits on
//! one.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tracing::instrument;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditAction};
use crate::auth::client::ClientInfo;
use crate::auth::db::{self, LoginCandidate, NewSession};
use crate::auth::dto::{LoginResponse, MfaChallenge, TokenResponse};
use crate::auth::mfa;
use crate::auth::principal::Principal;
use crate::auth::token::Subject;
use crate::crypto::{random_secret, sha256};
use crate::database::Db;
use crate::domain::Password;
use crate::error::{ApiError, FieldError};
use crate::outbox;
use crate::rate_limit::Limit;
use crate::realm::{ADMIN_ROLE, Realm};
use crate::state::AppState;
use crate::users::db::{self as users_db, User};

/// The one answer to every failed login, so that it tells nothing about the account.
pub const INVALID_LOGIN: ApiError = ApiError::Unauthorized("Invalid username or password");
const INVALID_CHALLENGE: ApiError = ApiError::Unauthorized("Invalid or expired MFA code or token");
/// How long the temp token of an MFA challenge lives.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Wrong codes a challenge survives.
const CHALLENGE_ATTEMPTS: i32 = 5;

/// Login credentials.
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub totp_code: Option<String>,
}

fn login_outcome(realm: &Realm, outcome: &'static str) {
    metrics::counter!("logins_total", "realm" => realm.name(), "outcome" => outcome).increment(1);
}

fn login_limit(app: &AppState) -> Limit {
    Limit {
        name: "login",
        max: app.settings.login_rate_limit_per_minute,
        window_secs: 60,
    }
}

/// Writes an audit event on its own (a refused login has nothing else to write).
async fn audit_alone(
    realm: &Realm,
    actor: &Actor,
    event: AuditAction,
    target: Option<Uuid>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let mut conn = realm.conn().await?;
    audit::record(&mut conn, realm, actor, event, target, detail).await
}

/// Signs an access token of `user` in `session_id`, ending no later than `session_end`.
fn issue_access(
    realm: &Realm,
    user: &User,
    session_id: Uuid,
    session_end: Option<chrono::DateTime<Utc>>,
) -> anyhow::Result<String> {
    let subject = Subject {
        user_id: user.id,
        username: &user.username,
        role: user.highest_role().unwrap_or(realm.policy().default_role),
        admin: user.has_role(ADMIN_ROLE),
        session_id,
    };
    realm.tokens().issue_access(&subject, session_end)
}

fn token_response(
    realm: &Realm,
    access: String,
    refresh: Option<String>,
    user: User,
) -> TokenResponse {
    TokenResponse {
        access_token: access,
        token_type: "bearer",
        expires_in: realm.tokens().access_ttl.as_secs(),
        refresh_token: refresh,
        user: user.into(),
    }
}

/// Completes a login whose every factor was checked: clears the failures, stamps the login,
/// opens the session with its first refresh token and audits it, in the caller's transaction.
async fn open_session(
    tx: &mut impl Db,
    realm: &Realm,
    user_id: Uuid,
    username: &str,
    client: &ClientInfo,
    detail: serde_json::Value,
) -> Result<TokenResponse, ApiError> {
    let session_id = Uuid::now_v7();
    let refresh = random_secret();
    let ip = client.ip.map(|ip| ip.to_string());
    users_db::record_login(tx, user_id).await?;
    db::insert_session(
        tx,
        &NewSession {
            id: session_id,
            user_id,
            expires_at: Utc::now() + realm.tokens().refresh_ttl,
            ip: ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
            refresh_token_hash: &sha256(&refresh),
        },
    )
    .await
    .map_err(|e| match &e {
        // The user was deleted since the password check: the session's foreign key refuses.
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => INVALID_LOGIN,
        _ => ApiError::from(e),
    })?;
    let actor = Actor {
        id: Some(user_id),
        username: Some(username.to_owned()),
        realm: Some(realm.id()),
        client: client.clone(),
    };
    audit::record(
        tx,
        realm,
        &actor,
        AuditAction::LoginSuccess,
        Some(user_id),
        detail,
    )
    .await?;
    let user = users_db::fetch(tx, user_id).await?.ok_or(INVALID_LOGIN)?;
    let access = issue_access(realm, &user, session_id, None)?;
    Ok(token_response(realm, access, Some(refresh), user))
}

/// The second factor of a sign-in, in its transaction: a wrong code is audited `mfa_failed`,
/// a backup code `backup_code_used`. Whether the code was right.
async fn second_factor(
    app: &AppState,
    tx: &mut impl Db,
    realm: &Realm,
    actor: &Actor,
    user_id: Uuid,
    username: &str,
    code: &str,
) -> Result<bool, ApiError> {
    let factor = mfa::check_second_factor(app, tx, realm, user_id, username, code).await?;
    let event = match factor {
        Some(mfa::SecondFactor::Totp) => return Ok(true),
        Some(mfa::SecondFactor::BackupCode) => AuditAction::BackupCodeUsed,
        None => {
            login_outcome(realm, "invalid_mfa_code");
            AuditAction::MfaFailed
        }
    };
    audit::record(tx, realm, actor, event, Some(user_id), json!({})).await?;
    Ok(factor.is_some())
}

/// A login's place among the password checks of an account (see
/// [`db::reserve_login_attempt`]).
enum Turn {
    /// No such account.
    Unknown,
    /// The account is locked.
    Locked(LoginCandidate),
    /// This login may check the password; the place is `attempt`'s until settled.
    Reserved(LoginCandidate, Uuid),
}

/// Waits for this login's turn at the password check of the account `login` names. Logins
/// beyond the account's places wait (a right password is never refused for being one of many
/// at once), for at most a third of the request timeout, then answer 503 with `Retry-After`.
async fn take_turn(app: &AppState, realm: &Realm, login: &str) -> Result<Turn, ApiError> {
    let lockout = app.settings.lockout;
    let attempt = Uuid::now_v7();
    let deadline = tokio::time::Instant::now() + app.settings.request_timeout / 3;
    loop {
        let candidate = {
            let mut conn = realm.conn().await?;
            db::reserve_login_attempt(&mut conn, login, attempt, lockout.window, lockout.threshold)
                .await?
        };
        match candidate {
            None => return Ok(Turn::Unknown),
            Some(c) if c.locked => return Ok(Turn::Locked(c)),
            Some(c) if c.reserved => return Ok(Turn::Reserved(c, attempt)),
            Some(_) if tokio::time::Instant::now() >= deadline => {
                return Err(ApiError::Unavailable {
                    detail: "Server busy, retry shortly",
                    retry_after_secs: Some(1),
                });
            }
            Some(_) => {
                let pause = Duration::from_millis(rand::random_range(20..60));
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Logs a user in. At most `LOCKOUT_THRESHOLD` wrong passwords per window ever reach the
/// password check, however many arrive at once (see [`take_turn`]). With MFA on, a right
/// password gives the MFA challenge, unless the body carried a code already.
#[instrument(skip_all, fields(realm = realm.name()))]
pub async fn login(
    app: &AppState,
    realm: &Realm,
    creds: Credentials,
    client: ClientInfo,
) -> Result<LoginResponse, ApiError> {
    app.rate_limiter.check(login_limit(app), client.ip).await?;
    let actor = Actor::anonymous(client.clone());
    let (row, attempt) = match take_turn(app, realm, creds.username.trim()).await? {
        Turn::Reserved(row, attempt) => (row, attempt),
        turn => {
            // The same work and the same answer as a wrong password.
            app.hasher
                .verify(client.ip, &creds.password, None, realm.scheme())
                .await?;
            let (target, detail, outcome) = match turn {
                Turn::Locked(row) => (Some(row.id), json!({"reason": "locked"}), "locked"),
                _ => {
                    let attempted: String = creds.username.chars().take(64).collect();
                    let detail = json!({"username": attempted, "reason": "unknown_user"});
                    (None, detail, "unknown_user")
                }
            };
            login_outcome(realm, outcome);
            audit_alone(realm, &actor, AuditAction::LoginFailed, target, detail).await?;
            return Err(INVALID_LOGIN);
        }
    };
    let id = row.id;
    let outcome = check_password(app, realm, &creds, &client, &actor, row, attempt).await;
    // A refused login recorded its outcome; whatever else went wrong before that (a 503, a
    // lost connection) frees the place here.
    if let Err(err) = &outcome
        && !matches!(err, ApiError::Unauthorized(_))
        && let Ok(mut conn) = realm.conn().await
    {
        let _ = db::release_attempt(&mut conn, id, attempt).await;
    }
    outcome
}

/// The password (and second factor) of a login holding a place: every way out records its
/// outcome and frees the place in the transaction that answers it.
async fn check_password(
    app: &AppState,
    realm: &Realm,
    creds: &Credentials,
    client: &ClientInfo,
    actor: &Actor,
    row: LoginCandidate,
    attempt: Uuid,
) -> Result<LoginResponse, ApiError> {
    let lockout = app.settings.lockout;
    let LoginCandidate {
        id,
        username,
        password_hash,
        is_active,
        mfa_enabled,
        ..
    } = row;
    // A user without a password (SSO-only in the AutoBot model) is checked against the dummy.
    let verified = app
        .hasher
        .verify(
            client.ip,
            &creds.password,
            password_hash.as_deref(),
            realm.scheme(),
        )
        .await?;
    if !verified.ok || !is_active {
        let reason = if verified.ok {
            "inactive"
        } else {
            "invalid_password"
        };
        let mut tx = realm.begin().await?;
        audit::record(
            &mut tx,
            realm,
            actor,
            AuditAction::LoginFailed,
            Some(id),
            json!({"reason": reason}),
        )
        .await?;
        if verified.ok {
            db::release_attempt(&mut tx, id, attempt).await?;
        } else {
            let failed =
                db::login_failed(&mut tx, id, attempt, lockout.threshold, lockout.duration).await?;
            if failed >= lockout.threshold {
                audit::record(
                    &mut tx,
                    realm,
                    actor,
                    AuditAction::AccountLocked,
                    Some(id),
                    json!({"failed_attempts": failed}),
                )
                .await?;
            }
        }
        tx.commit().await?;
        login_outcome(realm, reason);
        return Err(INVALID_LOGIN);
    }
    // A hash of another scheme or other parameters becomes the realm's now that the password
    // is known; computed before the transaction, so that none waits on it.
    let upgraded = match verified.needs_rehash {
        true => Some(
            app.hasher
                .hash(client.ip, &creds.password, realm.scheme())
                .await?,
        ),
        false => None,
    };
    let mut tx = realm.begin().await?;
    if let Some(hash) = &upgraded {
        users_db::upgrade_hash(&mut tx, id, hash).await?;
    }
    if mfa_enabled {
        let code = creds
            .totp_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        let Some(code) = code else {
            // The password was right: this attempt does not count towards a lockout.
            db::release_attempt(&mut tx, id, attempt).await?;
            let temp_token = random_secret();
            let ip = client.ip.map(|ip| ip.to_string());
            db::insert_challenge(
                &mut tx,
                &sha256(&temp_token),
                id,
                CHALLENGE_TTL,
                ip.as_deref(),
                client.user_agent.as_deref(),
            )
            .await?;
            tx.commit().await?;
            login_outcome(realm, "mfa_required");
            return Ok(LoginResponse::Challenge(MfaChallenge {
                requires_mfa: true,
                temp_token,
                expires_in: CHALLENGE_TTL.as_secs(),
            }));
        };
        if !second_factor(app, &mut tx, realm, actor, id, &username, code).await? {
            // A wrong code in the login body counts as a failed login.
            db::login_failed(&mut tx, id, attempt, lockout.threshold, lockout.duration).await?;
            tx.commit().await?;
            return Err(INVALID_LOGIN);
        }
    }
    db::login_succeeded(&mut tx, id, attempt).await?;
    let tokens = open_session(
        &mut tx,
        realm,
        id,
        &username,
        client,
        json!({"mfa": mfa_enabled}),
    )
    .await?;
    tx.commit().await?;
    login_outcome(realm, "success");
    Ok(LoginResponse::Tokens(Box::new(tokens)))
}

/// The second step of an MFA login: the temp token of the challenge and a code.
#[instrument(skip_all, fields(realm = realm.name()))]
pub async fn verify_login(
    app: &AppState,
    realm: &Realm,
    temp_token: &str,
    code: &str,
    client: ClientInfo,
) -> Result<TokenResponse, ApiError> {
    app.rate_limiter.check(login_limit(app), client.ip).await?;
    let token_hash = sha256(temp_token);
    let mut tx = realm.begin().await?;
    let Some(user_id) = db::attempt_challenge(&mut tx, &token_hash, CHALLENGE_ATTEMPTS).await?
    else {
        // Nothing to record beyond the attempt: the token is unknown, used or expired.
        return Err(INVALID_CHALLENGE);
    };
    let user = users_db::fetch(&mut tx, user_id)
        .await?
        .filter(|u| u.is_active);
    let Some(user) = user else {
        db::spend_challenge(&mut tx, &token_hash).await?;
        tx.commit().await?;
        return Err(INVALID_CHALLENGE);
    };
    let actor = Actor::anonymous(client.clone());
    if !second_factor(
        app,
        &mut tx,
        realm,
        &actor,
        user_id,
        &user.username,
        code.trim(),
    )
    .await?
    {
        tx.commit().await?;
        return Err(INVALID_CHALLENGE);
    }
    db::spend_challenge(&mut tx, &token_hash).await?;
    db::clear_failures(&mut tx, user_id).await?;
    let tokens = open_session(
        &mut tx,
        realm,
        user_id,
        &user.username,
        &client,
        json!({"mfa": true}),
    )
    .await?;
    tx.commit().await?;
    login_outcome(realm, "success");
    Ok(tokens)
}

/// Exchanges a refresh token for a new pair. The old token stops working, except when
/// presented again less than `grace` after its use (browser tabs refreshing together); later,
/// presenting it again means it was stolen or replayed, and ends the whole session.
#[instrument(skip_all, fields(realm = realm.name()))]
pub async fn refresh(
    realm: &Realm,
    refresh_token: &str,
    grace: Duration,
    client: ClientInfo,
) -> Result<TokenResponse, ApiError> {
    let presented = sha256(refresh_token);
    let successor = random_secret();
    let expires_at = Utc::now() + realm.tokens().refresh_ttl;
    let mut tx = realm.begin().await?;
    let rotated = db::rotate_refresh_token(
        &mut tx,
        &presented,
        &sha256(&successor),
        expires_at,
        grace,
        realm.tokens().session_idle,
    )
    .await?;
    let Some(rotated) = rotated else {
        detect_reuse(&mut tx, realm, &presented, grace, client).await?;
        tx.commit().await?;
        return Err(ApiError::InvalidCredentials);
    };
    let user = users_db::fetch(&mut tx, rotated.user_id)
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    let actor = Actor {
        id: Some(user.id),
        username: Some(user.username.clone()),
        realm: Some(realm.id()),
        client,
    };
    audit::record(
        &mut tx,
        realm,
        &actor,
        AuditAction::TokenRefresh,
        Some(user.id),
        json!({"session_id": rotated.session_id}),
    )
    .await?;
    tx.commit().await?;
    let access = issue_access(realm, &user, rotated.session_id, None)?;
    Ok(token_response(realm, access, Some(successor), user))
}

/// A new access token for the caller's live session (the dashboard's refresh, with only its
/// access token): it never outlives the session, and the session is not extended.
pub async fn refresh_access(
    realm: &Realm,
    principal: &Principal,
) -> Result<TokenResponse, ApiError> {
    let (Some(session_id), Some(session_end)) =
        (principal.session_id, principal.session_expires_at)
    else {
        // An API key has no session to renew.
        return Err(ApiError::InvalidCredentials);
    };
    let mut conn = realm.conn().await?;
    audit::record(
        &mut conn,
        realm,
        &principal.actor(),
        AuditAction::TokenRefresh,
        Some(principal.user.id),
        json!({"session_id": session_id, "with": "access_token"}),
    )
    .await?;
    let access = issue_access(realm, &principal.user, session_id, Some(session_end))?;
    Ok(token_response(realm, access, None, principal.user.clone()))
}

/// After a refused refresh: if the token was used before the grace window, it was stolen or
/// replayed, so its whole session ends.
async fn detect_reuse(
    tx: &mut impl Db,
    realm: &Realm,
    token_hash: &[u8],
    grace: Duration,
    client: ClientInfo,
) -> Result<(), ApiError> {
    let Some((session_id, user_id, username)) = db::replayed_session(tx, token_hash, grace).await?
    else {
        return Ok(());
    };
    db::revoke_session(tx, session_id, "refresh_token_reuse").await?;
    let actor = Actor {
        id: Some(user_id),
        username: Some(username),
        realm: Some(realm.id()),
        client,
    };
    audit::record(
        tx,
        realm,
        &actor,
        AuditAction::TokenReuseDetected,
        Some(user_id),
        json!({"session_id": session_id}),
    )
    .await
}

/// Ends the caller's session: its access token and refresh token stop working at once.
pub async fn logout(realm: &Realm, principal: &Principal) -> Result<(), ApiError> {
    let mut tx = realm.begin().await?;
    if let Some(session_id) = principal.session_id {
        db::revoke_session(&mut tx, session_id, "logout").await?;
    }
    audit::record(
        &mut tx,
        realm,
        &principal.actor(),
        AuditAction::Logout,
        Some(principal.user.id),
        json!({"session_id": principal.session_id}),
    )
    .await?;
    tx.commit().await
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
    principal.require_session()?;
    let user = &principal.user;
    let new = Password::parse(
        new,
        &user.username,
        Some(&user.email),
        realm.scheme().max_password_bytes(),
    )
    .map_err(|msg| ApiError::field(FieldError::body("new_password", msg)))?;
    if new.expose() == current {
        return Err(ApiError::field(FieldError::body(
            "new_password",
            "New password must differ from the current password",
        )));
    }
    let stored = {
        let mut conn = realm.conn().await?;
        users_db::password_hash(&mut conn, user.id).await?
    };
    if !app
        .hasher
        .verify(
            principal.client.ip,
            current,
            stored.as_deref(),
            realm.scheme(),
        )
        .await?
        .ok
    {
        return Err(ApiError::BadRequest("Current password is incorrect".into()));
    }
    let hash = app
        .hasher
        .hash(principal.client.ip, new.expose(), realm.scheme())
        .await?;
    let mut tx = realm.begin().await?;
    users_db::set_password(&mut tx, user.id, &hash, false).await?;
    let actor = principal.actor();
    audit::record(
        &mut tx,
        realm,
        &actor,
        AuditAction::PasswordChanged,
        Some(user.id),
        json!({"by": "self"}),
    )
    .await?;
    end_credentials(
        &mut tx,
        realm,
        &actor,
        user.id,
        principal.session_id,
        "password_changed",
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &[user.id], "user.password_changed").await?;
    tx.commit().await
}

/// Ends what signs a user in, in the caller's transaction, and audits it: every session but
/// `keep` (the caller's own, when one changes one's own password), and every API key for good
/// — a key does not come back when the account is re-activated. A password change,
/// deactivation, deletion and `revoke-sessions` all end here (docs/api.md §1).
pub async fn end_credentials(
    tx: &mut impl Db,
    realm: &Realm,
    actor: &Actor,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> Result<(), ApiError> {
    let sessions = db::revoke_sessions(tx, user_id, keep, reason).await?;
    let api_keys = db::revoke_api_keys(tx, user_id).await?;
    audit::record(
        tx,
        realm,
        actor,
        AuditAction::SessionsRevoked,
        Some(user_id),
        json!({"sessions": sessions, "api_keys": api_keys, "reason": reason}),
    )
    .await
}
