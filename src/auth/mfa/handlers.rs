//! MFA endpoints: `/api/mfa` (the dashboard's Security page, SLM realm) and
//! `/api/{slm,autobot}-auth/me/mfa`, and the MFA step of a login.

use axum::extract::State;
use axum::http::StatusCode;

use crate::access::authz::{Caller, RealmUser, SessionUser};
use crate::auth::dto::{TokenResponse, VerifyLoginQuery, VerifyLoginRequest};
use crate::auth::mfa::dto::{
    BackupCodesResponse, MfaCodeRequest, MfaDisableRequest, MfaSetupResponse, MfaStatus,
    MfaVerifySetupResponse, PasswordRequest,
};
use crate::auth::mfa::service::{self as mfa, Proof};
use crate::auth::sign_in;
use crate::http::client::ClientInfo;
use crate::http::error::{ApiError, FieldError, HTTPValidationError, HttpError};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::state::Target;

/// The caller's MFA.
#[utoipa::path(get, path = "/status", responses((status = 200, body = MfaStatus)), security(("bearer" = [])))]
pub async fn mfa_status(
    State(target): State<Target>,
    Caller(me): RealmUser,
) -> Result<ApiJson<MfaStatus>, ApiError> {
    mfa::status(&target.realm, &me).await.map(ApiJson)
}

/// Start TOTP enrolment: the secret, its otpauth URI and backup codes (shown once).
#[utoipa::path(post, path = "/setup",
    responses((status = 200, body = MfaSetupResponse), (status = 409, body = HttpError)), security(("bearer" = [])))]
pub async fn mfa_setup(
    State(target): State<Target>,
    Caller(me): SessionUser,
) -> Result<ApiJson<MfaSetupResponse>, ApiError> {
    mfa::setup(&target.app, &target.realm, &me)
        .await
        .map(ApiJson)
}

/// Confirm enrolment with a current code: MFA is on from now.
#[utoipa::path(post, path = "/verify-setup", request_body = MfaCodeRequest,
    responses((status = 200, body = MfaVerifySetupResponse), (status = 400, body = HttpError), (status = 409, body = HttpError)),
    security(("bearer" = [])))]
pub async fn mfa_verify_setup(
    State(target): State<Target>,
    Caller(me): SessionUser,
    ApiJson(body): ApiJson<MfaCodeRequest>,
) -> Result<ApiJson<MfaVerifySetupResponse>, ApiError> {
    mfa::verify_setup(&target.app, &target.realm, &me, &body.code).await?;
    Ok(ApiJson(MfaVerifySetupResponse {
        success: true,
        message: "MFA is enabled".into(),
    }))
}

/// Turn MFA off, proving it with the password or a current code.
#[utoipa::path(post, path = "/disable", request_body = MfaDisableRequest,
    responses((status = 204), (status = 400, body = HttpError), (status = 409, body = HttpError)), security(("bearer" = [])))]
pub async fn mfa_disable(
    State(target): State<Target>,
    Caller(me): SessionUser,
    ApiJson(body): ApiJson<MfaDisableRequest>,
) -> Result<StatusCode, ApiError> {
    let proof = match (&body.password, &body.code) {
        (Some(password), _) => Proof::Password(password),
        (None, Some(code)) => Proof::Code(code),
        (None, None) => {
            return Err(ApiError::field(FieldError::new(
                &["body", "password"],
                "Give the password or a code",
                "missing",
            )));
        }
    };
    mfa::disable(&target.app, &target.realm, &me, proof).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new set of backup codes; the old set stops working.
#[utoipa::path(post, path = "/backup-codes", request_body = PasswordRequest,
    responses((status = 200, body = BackupCodesResponse), (status = 400, body = HttpError), (status = 409, body = HttpError)),
    security(("bearer" = [])))]
pub async fn mfa_backup_codes(
    State(target): State<Target>,
    Caller(me): SessionUser,
    ApiJson(body): ApiJson<PasswordRequest>,
) -> Result<ApiJson<BackupCodesResponse>, ApiError> {
    let backup_codes =
        mfa::regenerate_backup_codes(&target.app, &target.realm, &me, &body.password).await?;
    Ok(ApiJson(BackupCodesResponse { backup_codes }))
}

/// The second step of an MFA login: a code and the challenge's `temp_token` (in the body or
/// the query).
#[utoipa::path(post, path = "/verify-login", params(VerifyLoginQuery), request_body = VerifyLoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = HttpError),
              (status = 422, body = HTTPValidationError), (status = 429, body = HttpError)))]
pub async fn verify_login(
    State(target): State<Target>,
    client: ClientInfo,
    ApiQuery(query): ApiQuery<VerifyLoginQuery>,
    ApiJson(body): ApiJson<VerifyLoginRequest>,
) -> Result<ApiJson<TokenResponse>, ApiError> {
    let Some(temp_token) = body.temp_token.or(query.temp_token) else {
        return Err(ApiError::field(FieldError::new(
            &["body", "temp_token"],
            "Field required",
            "missing",
        )));
    };
    sign_in::verify_login(&target.app, &target.realm, &temp_token, &body.code, client)
        .await
        .map(ApiJson)
}
