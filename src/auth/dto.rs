//! Request and response bodies of `/api/slm-auth` and `/api/autobot-auth`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::users::dto::UserResponse;

/// Login credentials (JSON, or the OAuth2 password-flow form).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username (or e-mail address).
    pub username: String,
    pub password: String,
    /// Six-digit TOTP code or a recovery code, when MFA is on.
    pub totp_code: Option<String>,
}

/// A token pair and the user it was issued to.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: UserResponse,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// The caller and what it may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    #[serde(flatten)]
    pub user: UserResponse,
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MfaSetupResponse {
    /// Base32 TOTP secret.
    pub secret: String,
    pub otpauth_url: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MfaCodeRequest {
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Single-use codes, shown once.
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApiKeyRequest {
    pub name: String,
    /// 1..=3650; no expiry when absent.
    pub expires_in_days: Option<i64>,
}

/// A new API key; `key` is shown once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreatedResponse {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API key as listed (without its secret).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct ApiKeyResponse {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ApiKeyPath {
    pub key_id: Uuid,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserApiKeyPath {
    pub user_id: Uuid,
    pub key_id: Uuid,
}
