//! MFA (TOTP) of the caller, for both realms: status, setup with backup codes, confirmation,
//! disabling, new backup codes; and the one second-factor check every sign-in and every proof
//! by code goes through.
//!
//! The confirmed secret and the backup codes live where the AutoBot model keeps them
//! (`user_mfa`, sealed); the enrolment in progress and the replay state are the server's own.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::access::db::factors::{self, Pending};
use crate::access::principal::Principal;
use crate::audit::{self, Actor, AuditAction};
use crate::auth::mfa::dto::{MfaSetupResponse, MfaStatus};
use crate::auth::service::password_matches;
use crate::credentials::totp::{self, BACKUP_CODES};
use crate::http::error::ApiError;
use crate::outbox::{self, OutboxEvent};
use crate::realm::Realm;
use crate::state::AppState;
use crate::users::service as users;

const INVALID_CODE: &str = "Invalid MFA code";
const WRONG_PASSWORD: &str = "Password is incorrect";

fn backup_code_count() -> i32 {
    i32::try_from(BACKUP_CODES).unwrap_or(i32::MAX)
}

fn already_on() -> ApiError {
    ApiError::Conflict("MFA is already enabled".into())
}

fn not_on() -> ApiError {
    ApiError::Conflict("MFA is not enabled".into())
}

/// The caller's MFA.
pub async fn status(realm: &Realm, me: &Principal) -> Result<MfaStatus, ApiError> {
    let record = realm
        .read(|mut db| Box::pin(async move { Ok(factors::record(&mut db, me.user_id).await?) }))
        .await?;
    Ok(MfaStatus {
        enabled: record.is_some(),
        method: record
            .as_ref()
            .map_or_else(|| "totp".to_owned(), |r| r.method.clone()),
        backup_codes_remaining: record.as_ref().map_or(0, |r| r.backup_codes_remaining),
        last_verified_at: record.and_then(|r| r.last_verified_at),
    })
}

/// Starts an enrolment: a new secret and backup codes, pending until a first code confirms
/// them. Another setup before that replaces them.
pub async fn setup(
    app: &AppState,
    realm: &Realm,
    me: &Principal,
) -> Result<MfaSetupResponse, ApiError> {
    let keys = &app.settings.seal_keys;
    let secret = totp::new_secret();
    let otpauth_uri = totp::totp(&secret, &me.username, realm.policy().display_name)?
        .to_url()
        .map_err(|e| anyhow::anyhow!("otpauth URL: {e:?}"))?;
    let codes = totp::backup_codes();
    let digests: Vec<String> = codes.iter().map(|c| totp::backup_code_digest(c)).collect();
    let sealed = Pending {
        secret_encrypted: keys.seal(&secret)?,
        backup_codes_encrypted: totp::seal_backup_codes(keys, &digests)?,
    };
    let sealed = &sealed;
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if factors::record(&mut tx, me.user_id).await?.is_some() {
                    return Err(already_on());
                }
                Ok(factors::set_pending(&mut tx, me.user_id, sealed).await?)
            })
        })
        .await?;
    Ok(MfaSetupResponse {
        secret,
        qr_svg: totp::qr_svg(&otpauth_uri)?,
        otpauth_uri,
        backup_codes: codes,
    })
}

/// Confirms the pending enrolment with a current code: MFA is on from now.
pub async fn verify_setup(
    app: &AppState,
    realm: &Realm,
    me: &Principal,
    code: &SecretString,
) -> Result<(), ApiError> {
    let (user_id, code) = (me.user_id, code.expose_secret().trim());
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if factors::record(&mut tx, user_id).await?.is_some() {
                    return Err(already_on());
                }
                let Some(pending) = factors::pending(&mut tx, user_id).await? else {
                    return Err(ApiError::BadRequest("Start with /setup".into()));
                };
                let secret = app.settings.seal_keys.open(&pending.secret_encrypted)?;
                let totp = totp::totp(&secret, &me.username, realm.policy().display_name)?;
                let Some(step) = totp::matching_step(&totp, code) else {
                    return Err(ApiError::BadRequest(INVALID_CODE.into()));
                };
                factors::enable(&mut tx, user_id, &pending, backup_code_count()).await?;
                factors::accept_totp_step(&mut tx, user_id, step).await?;
                users::set_mfa_enabled(&mut tx, user_id, true).await?;
                let action = AuditAction::MfaEnabled;
                audit::record(
                    &mut tx,
                    realm,
                    &me.actor(),
                    action,
                    Some(user_id),
                    json!({}),
                )
                .await?;
                outbox::enqueue(&mut tx, realm, &[user_id], OutboxEvent::UserUpdated).await
            })
        })
        .await
}

/// Checks a second factor of `user_id` in the caller's transaction: a TOTP code (single use
/// within its step) or a backup code (single use, audited `backup_code_used`). A wrong code
/// is audited `mfa_failed`. Whether the code was right.
pub async fn second_factor(
    app: &AppState,
    db: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    user_id: Uuid,
    username: &str,
    code: &str,
) -> Result<bool, ApiError> {
    let action = match check_code(app, db, realm, user_id, username, code).await? {
        Some(Factor::Totp) => return Ok(true),
        Some(Factor::BackupCode) => AuditAction::BackupCodeUsed,
        None => AuditAction::MfaFailed,
    };
    audit::record(db, realm, actor, action, Some(user_id), json!({})).await?;
    Ok(action == AuditAction::BackupCodeUsed)
}

enum Factor {
    Totp,
    BackupCode,
}

async fn check_code(
    app: &AppState,
    db: &mut PgConnection,
    realm: &Realm,
    user_id: Uuid,
    username: &str,
    code: &str,
) -> Result<Option<Factor>, ApiError> {
    let Some(record) = factors::record(db, user_id).await? else {
        return Ok(None);
    };
    let keys = &app.settings.seal_keys;
    let secret = keys.open(&record.secret_encrypted)?;
    let totp = totp::totp(&secret, username, realm.policy().display_name)?;
    if let Some(step) = totp::matching_step(&totp, code) {
        let fresh = factors::accept_totp_step(db, user_id, step).await?;
        if fresh {
            factors::verified(db, user_id).await?;
        }
        return Ok(fresh.then_some(Factor::Totp));
    }
    let Some(sealed) = record.backup_codes_encrypted.as_deref() else {
        return Ok(None);
    };
    let mut digests = totp::open_backup_codes(keys, sealed)?;
    let digest = totp::backup_code_digest(code);
    let Some(position) = digests.iter().position(|d| *d == digest) else {
        return Ok(None);
    };
    digests.remove(position);
    let remaining = i32::try_from(digests.len()).unwrap_or(0);
    let sealed = totp::seal_backup_codes(keys, &digests)?;
    factors::set_backup_codes(db, user_id, &sealed, remaining).await?;
    factors::verified(db, user_id).await?;
    Ok(Some(Factor::BackupCode))
}

/// How the caller proves it may turn MFA off.
pub enum Proof<'a> {
    Password(&'a SecretString),
    Code(&'a SecretString),
}

/// Turns the caller's MFA off after checking the password or a current code (a wrong code is
/// audited, as at sign-in).
pub async fn disable(
    app: &AppState,
    realm: &Realm,
    me: &Principal,
    proof: Proof<'_>,
) -> Result<(), ApiError> {
    let user_id = me.user_id;
    if let Proof::Password(password) = proof
        && !password_matches(app, realm, me, password).await?
    {
        return Err(ApiError::BadRequest(WRONG_PASSWORD.into()));
    }
    let code = match proof {
        Proof::Code(code) => Some(code.expose_secret().trim()),
        Proof::Password(_) => None,
    };
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if factors::record(&mut tx, user_id).await?.is_none() {
                    return Err(not_on());
                }
                let actor = me.actor();
                if let Some(code) = code
                    && !second_factor(app, &mut tx, realm, &actor, user_id, &me.username, code)
                        .await?
                {
                    // The refusal's audit event stays: the transaction commits.
                    return Ok(Err(ApiError::BadRequest(INVALID_CODE.into())));
                }
                factors::delete(&mut tx, user_id).await?;
                users::set_mfa_enabled(&mut tx, user_id, false).await?;
                let detail = json!({"by": "self"});
                audit::record(
                    &mut tx,
                    realm,
                    &actor,
                    AuditAction::MfaDisabled,
                    Some(user_id),
                    detail,
                )
                .await?;
                outbox::enqueue(&mut tx, realm, &[user_id], OutboxEvent::UserUpdated).await?;
                Ok(Ok(()))
            })
        })
        .await?
}

/// A new set of backup codes for the caller (the old set stops working).
pub async fn regenerate_backup_codes(
    app: &AppState,
    realm: &Realm,
    me: &Principal,
    password: &SecretString,
) -> Result<Vec<String>, ApiError> {
    let user_id = me.user_id;
    if !password_matches(app, realm, me, password).await? {
        return Err(ApiError::BadRequest(WRONG_PASSWORD.into()));
    }
    let codes = totp::backup_codes();
    let digests: Vec<String> = codes.iter().map(|c| totp::backup_code_digest(c)).collect();
    let sealed = totp::seal_backup_codes(&app.settings.seal_keys, &digests)?;
    let sealed = sealed.as_str();
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                if factors::record(&mut tx, user_id).await?.is_none() {
                    return Err(not_on());
                }
                factors::set_backup_codes(&mut tx, user_id, sealed, backup_code_count()).await?;
                let action = AuditAction::MfaBackupCodesRegenerated;
                audit::record(
                    &mut tx,
                    realm,
                    &me.actor(),
                    action,
                    Some(user_id),
                    json!({}),
                )
                .await
            })
        })
        .await?;
    Ok(codes)
}
