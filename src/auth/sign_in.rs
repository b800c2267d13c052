//! Signing in, written once for both realms: the password (with lockout), and the second
//! factor, in the login body or as the second step of an MFA challenge.
//!
//! Every refusal is audited once, as `login_failed` with its reason (or `mfa_failed`), in the
//! transaction that settles the attempt.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tracing::instrument;
use uuid::Uuid;

use crate::access::db::{factors, lockout};
use crate::audit::{self, Actor, AuditAction};
use crate::auth::dto::{LoginResponse, MfaChallenge, TokenResponse};
use crate::auth::mfa::service as mfa;
use crate::auth::service::{INVALID_LOGIN, open_session, user_actor};
use crate::credentials::keys::{random_secret, sha256};
use crate::http::client::ClientInfo;
use crate::http::error::ApiError;
use crate::http::rate_limit::Limit;
use crate::realm::Realm;
use crate::state::AppState;
use crate::users::db::LoginCandidate;
use crate::users::service as users;

const INVALID_CHALLENGE: ApiError = ApiError::Unauthorized("Invalid or expired MFA code or token");
/// How long the temp token of an MFA challenge lives.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Wrong codes a challenge survives.
const CHALLENGE_ATTEMPTS: i32 = 5;

/// Login credentials.
pub struct Credentials {
    pub login: String,
    pub password: SecretString,
    pub code: Option<SecretString>,
}

fn count(realm: &Realm, outcome: &'static str) {
    metrics::counter!("logins_total", "realm" => realm.name(), "outcome" => outcome).increment(1);
}

pub fn login_limit(app: &AppState) -> Limit {
    Limit {
        name: "login",
        max: app.settings.limits.login_per_minute,
        window_secs: 60,
    }
}

/// A refused login, audited as `login_failed` with its `reason`, on its own (the refusal
/// changed nothing else).
async fn refuse(
    realm: &Realm,
    actor: &Actor,
    target: Option<Uuid>,
    detail: serde_json::Value,
) -> ApiError {
    let written = realm
        .read(|mut db| {
            Box::pin(async move {
                let action = AuditAction::LoginFailed;
                audit::record(&mut db, realm, actor, action, target, detail).await
            })
        })
        .await;
    written.err().unwrap_or(INVALID_LOGIN)
}

/// Waits for this login's turn at the password check of `account`. Logins beyond the
/// account's places wait (a right password is never refused for being one of many at once),
/// for at most a third of the request timeout, then answer 503 with `Retry-After`. Returns
/// whether the account is locked.
pub async fn take_turn(
    app: &AppState,
    realm: &Realm,
    account: Uuid,
    attempt: Uuid,
) -> Result<lockout::Turn, ApiError> {
    let policy = app.settings.limits.lockout;
    let deadline = tokio::time::Instant::now() + app.settings.http.request_timeout / 3;
    loop {
        let turn = realm
            .read(|mut db| {
                Box::pin(async move {
                    let turn = lockout::reserve(
                        &mut db,
                        account,
                        attempt,
                        policy.window,
                        policy.threshold,
                    );
                    Ok(turn.await?)
                })
            })
            .await?;
        if turn.locked || turn.reserved {
            return Ok(turn);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::Unavailable {
                detail: "Server busy, retry shortly",
                retry_after_secs: Some(1),
            });
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(20..60))).await;
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
    let candidate = users::login_candidate(realm, creds.login.trim()).await?;
    let attempt = Uuid::now_v7();
    let turn = match &candidate {
        Some(account) => Some(take_turn(app, realm, account.id, attempt).await?),
        None => None,
    };
    let account = match (candidate, turn) {
        (Some(account), Some(turn)) if turn.reserved => account,
        (candidate, _) => {
            // The same work and the same answer as a wrong password.
            let no_hash = None;
            app.hasher
                .verify(client.ip, &creds.password, no_hash, realm.scheme())
                .await?;
            let (target, detail, outcome) = match candidate {
                Some(locked) => (Some(locked.id), json!({"reason": "locked"}), "locked"),
                None => {
                    let attempted: String = creds.login.chars().take(64).collect();
                    let detail = json!({"username": attempted, "reason": "unknown_user"});
                    (None, detail, "unknown_user")
                }
            };
            count(realm, outcome);
            return Err(refuse(realm, &actor, target, detail).await);
        }
    };
    let id = account.id;
    let outcome = check(app, realm, &creds, &actor, account, attempt).await;
    // A refused login settled its attempt; whatever else went wrong before that (a 503, a
    // lost connection) frees the place here.
    if let Err(err) = &outcome
        && !matches!(err, ApiError::Unauthorized(_))
    {
        let _ = realm
            .read(|mut db| {
                Box::pin(async move { Ok(lockout::release(&mut db, id, attempt).await?) })
            })
            .await;
    }
    outcome
}

/// The password (and second factor) of a login holding a place: every way out settles the
/// attempt in the transaction that answers it.
async fn check(
    app: &AppState,
    realm: &Realm,
    creds: &Credentials,
    actor: &Actor,
    account: LoginCandidate,
    attempt: Uuid,
) -> Result<LoginResponse, ApiError> {
    let policy = app.settings.limits.lockout;
    let id = account.id;
    // A user without a password (SSO-only in the AutoBot model) is checked against the dummy.
    let stored = account.password_hash.as_deref();
    let verified = app
        .hasher
        .verify(actor.client.ip, &creds.password, stored, realm.scheme())
        .await?;
    if !verified.ok || !account.is_active {
        let reason = if verified.ok {
            "inactive"
        } else {
            "invalid_password"
        };
        realm
            .transaction(|mut tx| {
                Box::pin(async move {
                    let detail = json!({"reason": reason});
                    audit::record(
                        &mut tx,
                        realm,
                        actor,
                        AuditAction::LoginFailed,
                        Some(id),
                        detail,
                    )
                    .await?;
                    if verified.ok {
                        return Ok(lockout::release(&mut tx, id, attempt).await?);
                    }
                    let failed =
                        lockout::failed(&mut tx, id, attempt, policy.threshold, policy.duration)
                            .await?;
                    if failed >= policy.threshold {
                        let detail = json!({"failed_attempts": failed});
                        let action = AuditAction::AccountLocked;
                        audit::record(&mut tx, realm, actor, action, Some(id), detail).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        count(realm, reason);
        return Err(INVALID_LOGIN);
    }
    // A hash of another scheme or other parameters becomes the realm's now that the password
    // is known; computed before the transaction, so that none waits on it.
    let upgraded = match verified.needs_rehash {
        true => Some(
            app.hasher
                .hash(actor.client.ip, &creds.password, realm.scheme())
                .await?,
        ),
        false => None,
    };
    let code = creds
        .code
        .as_ref()
        .map(|c| c.expose_secret().trim())
        .filter(|c| !c.is_empty());
    let (upgraded, account) = (upgraded.as_deref(), &account);
    let answer = realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if let Some(hash) = upgraded {
                    users::rehash(&mut tx, id, hash).await?;
                }
                if account.mfa_enabled {
                    let Some(code) = code else {
                        // The password was right: this attempt does not count towards a lockout.
                        lockout::release(&mut tx, id, attempt).await?;
                        let temp_token = random_secret();
                        let ip = actor.client.ip.map(|ip| ip.to_string());
                        let ua = actor.client.user_agent.as_deref();
                        let token_hash = sha256(&temp_token);
                        factors::insert_challenge(
                            &mut tx,
                            &token_hash,
                            id,
                            CHALLENGE_TTL,
                            ip.as_deref(),
                            ua,
                        )
                        .await?;
                        return Ok(Ok(LoginResponse::Challenge(MfaChallenge {
                            requires_mfa: true,
                            temp_token,
                            expires_in: CHALLENGE_TTL.as_secs(),
                        })));
                    };
                    let proved =
                        mfa::second_factor(app, &mut tx, realm, actor, id, &account.username, code)
                            .await?;
                    if !proved {
                        // A wrong code in the login body counts as a failed login.
                        lockout::failed(&mut tx, id, attempt, policy.threshold, policy.duration)
                            .await?;
                        return Ok(Err(INVALID_LOGIN));
                    }
                }
                lockout::succeeded(&mut tx, id, attempt).await?;
                let me = user_actor(realm, id, &account.username, &actor.client);
                let detail = json!({"mfa": account.mfa_enabled});
                let action = AuditAction::LoginSuccess;
                let tokens = open_session(&mut tx, realm, &me, id, action, detail).await?;
                Ok(Ok(LoginResponse::Tokens(Box::new(tokens))))
            })
        })
        .await?;
    count(
        realm,
        match &answer {
            Ok(LoginResponse::Challenge(_)) => "mfa_required",
            Ok(LoginResponse::Tokens(_)) => "success",
            Err(_) => "invalid_mfa_code",
        },
    );
    answer
}

/// The second step of an MFA login: the temp token of the challenge and a code.
#[instrument(skip_all, fields(realm = realm.name()))]
pub async fn verify_login(
    app: &AppState,
    realm: &Realm,
    temp_token: &SecretString,
    code: &SecretString,
    client: ClientInfo,
) -> Result<TokenResponse, ApiError> {
    app.rate_limiter.check(login_limit(app), client.ip).await?;
    let token_hash = sha256(temp_token.expose_secret());
    let (token_hash, code, client) = (&token_hash, code.expose_secret().trim(), &client);
    let answer = realm
        .transaction(|mut tx| {
            Box::pin(async move {
                let Some(user_id) =
                    factors::attempt_challenge(&mut tx, token_hash, CHALLENGE_ATTEMPTS).await?
                else {
                    // Nothing to record beyond the attempt: the token is unknown, used or expired.
                    return Ok(Err(INVALID_CHALLENGE));
                };
                let user = users::fetch(&mut tx, realm, user_id)
                    .await?
                    .filter(|u| u.is_active);
                let Some(user) = user else {
                    factors::spend_challenge(&mut tx, token_hash).await?;
                    return Ok(Err(INVALID_CHALLENGE));
                };
                let actor = Actor::anonymous(client.clone());
                if !mfa::second_factor(app, &mut tx, realm, &actor, user_id, &user.username, code)
                    .await?
                {
                    return Ok(Err(INVALID_CHALLENGE));
                }
                factors::spend_challenge(&mut tx, token_hash).await?;
                lockout::clear(&mut tx, user_id).await?;
                let me = user_actor(realm, user_id, &user.username, client);
                let (action, detail) = (AuditAction::LoginSuccess, json!({"mfa": true}));
                let tokens = open_session(&mut tx, realm, &me, user_id, action, detail).await?;
                Ok(Ok(tokens))
            })
        })
        .await?;
    if answer.is_ok() {
        count(realm, "success");
    }
    answer
}
