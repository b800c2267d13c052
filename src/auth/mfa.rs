//! MFA (TOTP) of the caller, for both realms: status, setup with backup codes, confirmation,
//! disabling, new backup codes; the second-factor check of a login; and an admin's reset of a
//! user who lost their authenticator.
//!
//! The confirmed secret and the backup codes live where the AutoBot model keeps them
//! (`user_mfa`, sealed); the enrolment in progress and the replay state are the server's own.

use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, AuditAction};
use crate::auth::authz::{self, Perm};
use crate::auth::db;
use crate::auth::dto::{MfaSetupResponse, MfaStatus};
use crate::auth::principal::Principal;
use crate::auth::totp::{self, BACKUP_CODES};
use crate::database::Db;
use crate::error::ApiError;
use crate::outbox;
use crate::realm::{ADMIN_ROLE, Realm};
use crate::state::AppState;
use crate::users::db as users_db;

const INVALID_CODE: &str = "Invalid MFA code";

fn backup_code_count() -> i32 {
    i32::try_from(BACKUP_CODES).unwrap_or(i32::MAX)
}

/// The caller's MFA.
pub async fn status(realm: &Realm, principal: &Principal) -> Result<MfaStatus, ApiError> {
    let mut conn = realm.conn().await?;
    let record = db::mfa_record(&mut conn, principal.user.id, false).await?;
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
    principal: &Principal,
) -> Result<MfaSetupResponse, ApiError> {
    principal.require_session()?;
    let keys = &app.settings.mfa_keys;
    let secret = totp::new_secret();
    let otpauth_uri = totp::totp(
        &secret,
        &principal.user.username,
        realm.policy().display_name,
    )?
    .to_url()
    .map_err(|e| anyhow::anyhow!("otpauth URL: {e:?}"))?;
    let codes = totp::backup_codes();
    let digests: Vec<String> = codes.iter().map(|c| totp::backup_code_digest(c)).collect();
    let sealed_secret = keys.seal(&secret)?;
    let sealed_codes = totp::seal_backup_codes(keys, &digests)?;
    let mut tx = realm.begin().await?;
    if db::mfa_record(&mut tx, principal.user.id, true)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict("MFA is already enabled".into()));
    }
    db::set_pending_mfa(&mut tx, principal.user.id, &sealed_secret, &sealed_codes).await?;
    tx.commit().await?;
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
    principal: &Principal,
    code: &str,
) -> Result<(), ApiError> {
    principal.require_session()?;
    let user_id = principal.user.id;
    let mut tx = realm.begin().await?;
    if db::mfa_record(&mut tx, user_id, true).await?.is_some() {
        return Err(ApiError::Conflict("MFA is already enabled".into()));
    }
    let Some((sealed_secret, sealed_codes)) = db::pending_mfa(&mut tx, user_id).await? else {
        return Err(ApiError::BadRequest("Start with /setup".into()));
    };
    let secret = app.settings.mfa_keys.open(&sealed_secret)?;
    let totp = totp::totp(
        &secret,
        &principal.user.username,
        realm.policy().display_name,
    )?;
    let Some(step) = totp::matching_step(&totp, code) else {
        return Err(ApiError::BadRequest(INVALID_CODE.into()));
    };
    db::enable_mfa(
        &mut tx,
        user_id,
        &sealed_secret,
        &sealed_codes,
        backup_code_count(),
    )
    .await?;
    db::accept_totp_step(&mut tx, user_id, step).await?;
    users_db::set_mfa_enabled(&mut tx, user_id, true).await?;
    audit::record(
        &mut tx,
        realm,
        &principal.actor(),
        AuditAction::MfaEnabled,
        Some(user_id),
        json!({}),
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &[user_id], "user.updated").await?;
    tx.commit().await
}

/// Which second factor a code was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    Totp,
    /// A backup code, now spent.
    BackupCode,
}

/// Checks a TOTP code (single use within its step) or a backup code (single use) of `user_id`,
/// inside the caller's transaction; `None` when it is neither.
pub async fn check_second_factor(
    app: &AppState,
    tx: &mut impl Db,
    realm: &Realm,
    user_id: Uuid,
    username: &str,
    code: &str,
) -> Result<Option<SecondFactor>, ApiError> {
    let Some(record) = db::mfa_record(tx, user_id, true).await? else {
        return Ok(None);
    };
    let keys = &app.settings.mfa_keys;
    let secret = keys.open(&record.secret_encrypted)?;
    let totp = totp::totp(&secret, username, realm.policy().display_name)?;
    if let Some(step) = totp::matching_step(&totp, code) {
        let fresh = db::accept_totp_step(tx, user_id, step).await?;
        if fresh {
            db::mfa_verified(tx, user_id).await?;
        }
        return Ok(fresh.then_some(SecondFactor::Totp));
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
    db::set_backup_codes(
        tx,
        user_id,
        &totp::seal_backup_codes(keys, &digests)?,
        remaining,
    )
    .await?;
    db::mfa_verified(tx, user_id).await?;
    Ok(Some(SecondFactor::BackupCode))
}

/// Whether `password` is the caller's.
async fn password_matches(
    app: &AppState,
    realm: &Realm,
    principal: &Principal,
    password: &str,
) -> Result<bool, ApiError> {
    let stored = {
        let mut conn = realm.conn().await?;
        users_db::password_hash(&mut conn, principal.user.id).await?
    };
    Ok(app
        .hasher
        .verify(
            principal.client.ip,
            password,
            stored.as_deref(),
            realm.scheme(),
        )
        .await?
        .ok)
}

/// How the caller proves it may turn MFA off.
pub enum Proof<'a> {
    Password(&'a str),
    Code(&'a str),
}

/// Turns the caller's MFA off after checking the password or a current code.
pub async fn disable(
    app: &AppState,
    realm: &Realm,
    principal: &Principal,
    proof: Proof<'_>,
) -> Result<(), ApiError> {
    principal.require_session()?;
    let user_id = principal.user.id;
    if let Proof::Password(password) = proof
        && !password_matches(app, realm, principal, password).await?
    {
        return Err(ApiError::BadRequest("Password is incorrect".into()));
    }
    let mut tx = realm.begin().await?;
    if db::mfa_record(&mut tx, user_id, true).await?.is_none() {
        return Err(ApiError::Conflict("MFA is not enabled".into()));
    }
    if let Proof::Code(code) = proof
        && check_second_factor(app, &mut tx, realm, user_id, &principal.user.username, code)
            .await?
            .is_none()
    {
        return Err(ApiError::BadRequest(INVALID_CODE.into()));
    }
    db::delete_mfa(&mut tx, user_id).await?;
    users_db::set_mfa_enabled(&mut tx, user_id, false).await?;
    audit::record(
        &mut tx,
        realm,
        &principal.actor(),
        AuditAction::MfaDisabled,
        Some(user_id),
        json!({"by": "self"}),
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &[user_id], "user.updated").await?;
    tx.commit().await
}

/// A new set of backup codes for the caller (the old set stops working).
pub async fn regenerate_backup_codes(
    app: &AppState,
    realm: &Realm,
    principal: &Principal,
    password: &str,
) -> Result<Vec<String>, ApiError> {
    principal.require_session()?;
    let user_id = principal.user.id;
    if !password_matches(app, realm, principal, password).await? {
        return Err(ApiError::BadRequest("Password is incorrect".into()));
    }
    let codes = totp::backup_codes();
    let digests: Vec<String> = codes.iter().map(|c| totp::backup_code_digest(c)).collect();
    let sealed = totp::seal_backup_codes(&app.settings.mfa_keys, &digests)?;
    let mut tx = realm.begin().await?;
    if db::mfa_record(&mut tx, user_id, true).await?.is_none() {
        return Err(ApiError::Conflict("MFA is not enabled".into()));
    }
    db::set_backup_codes(&mut tx, user_id, &sealed, backup_code_count()).await?;
    audit::record(
        &mut tx,
        realm,
        &principal.actor(),
        AuditAction::MfaBackupCodesRegenerated,
        Some(user_id),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(codes)
}

/// An admin turns off the MFA of a user who lost their authenticator; the user enrols again
/// after signing in with the password.
pub async fn reset(realm: &Realm, operator: &Principal, user_id: Uuid) -> Result<(), ApiError> {
    authz::require(operator, Perm::WriteUsers(realm.id()))?;
    let mut tx = realm.begin().await?;
    let target = users_db::fetch_for_update(&mut tx, user_id)
        .await?
        .ok_or(ApiError::NotFound("User not found"))?;
    if target.has_role(ADMIN_ROLE) {
        authz::require(operator, Perm::ManageAdmins(realm.id()))?;
    }
    let was_on = db::delete_mfa(&mut tx, user_id).await?;
    users_db::set_mfa_enabled(&mut tx, user_id, false).await?;
    audit::record(
        &mut tx,
        realm,
        &operator.actor(),
        AuditAction::MfaDisabled,
        Some(user_id),
        json!({"by": "admin", "was_enabled": was_on}),
    )
    .await?;
    outbox::enqueue(&mut tx, realm, &[user_id], "user.updated").await?;
    tx.commit().await
}
