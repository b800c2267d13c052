//! Request and response bodies of sign-in, MFA and API keys (`/api/auth`, `/api/mfa`,
//! `/api/api-keys` and the same under `/api/{slm,autobot}-auth`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::db::{ApiKeyRow, SessionRow};
use crate::extract::{double_option, not_null};
use crate::users::dto::UserResponse;

/// Login credentials (JSON, or the OAuth2 password-flow form of Swagger UI's Authorize, whose
/// `grant_type`, `scope`, `client_id` and `client_secret` are accepted and ignored).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "the OAuth2 form fields are accepted and ignored")]
pub struct LoginRequest {
    /// Username or e-mail address.
    #[schema(min_length = 1, max_length = 255)]
    pub username: String,
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
    /// A six-digit TOTP code or a backup code, when MFA is on: skips the MFA challenge.
    #[schema(max_length = 64)]
    pub totp_code: Option<String>,
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// A token pair and the user it was issued to.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    /// Absent when refreshing with the access token alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub user: UserResponse,
}

/// The password was right and MFA is on: send a code with `temp_token` to
/// `/api/mfa/verify-login` (or `…/me/mfa/verify-login` of the realm).
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaChallenge {
    /// Always `true`.
    pub requires_mfa: bool,
    /// Good for one MFA step, for `expires_in` seconds, nothing else.
    pub temp_token: String,
    pub expires_in: u64,
}

/// The answer to a login: tokens, or the MFA challenge.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    Tokens(Box<TokenResponse>),
    Challenge(MfaChallenge),
}

/// The second step of an MFA login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyLoginRequest {
    /// A six-digit TOTP code or a backup code.
    #[schema(min_length = 1, max_length = 64)]
    pub code: String,
    /// Also accepted as the `temp_token` query parameter.
    #[schema(max_length = 256)]
    pub temp_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyLoginQuery {
    #[param(max_length = 256)]
    pub temp_token: Option<String>,
}

/// Exchange a refresh token; without a body, the bearer access token is renewed instead.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(min_length = 1, max_length = 256)]
    pub refresh_token: String,
}

/// The caller, with what it may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    #[serde(flatten)]
    pub user: UserResponse,
    /// Whether the caller holds `admin`.
    pub is_admin: bool,
    /// The highest role.
    pub role: Option<String>,
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(min_length = 1, max_length = 1024)]
    pub current_password: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// MFA of the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaStatus {
    pub enabled: bool,
    /// Always `totp`.
    pub method: String,
    pub backup_codes_remaining: i32,
    pub last_verified_at: Option<DateTime<Utc>>,
}

/// A new enrolment, pending until a first code confirms it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaSetupResponse {
    /// Base32 TOTP secret.
    pub secret: String,
    pub otpauth_uri: String,
    /// An SVG image of a QR code of `otpauth_uri`, for an authenticator app to scan.
    pub qr_svg: String,
    /// Single-use codes, shown once.
    pub backup_codes: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaCodeRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MfaVerifySetupResponse {
    pub success: bool,
    pub message: String,
}

/// Proof for turning MFA off: the password, or a current code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct MfaDisableRequest {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, max_length = 1024)]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, max_length = 64)]
    pub code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupCodesResponse {
    /// A new set, shown once; the old one stops working.
    pub backup_codes: Vec<String>,
}

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Permission names (`GET …/api-keys/scopes`) the key may use, each held by its owner;
    /// none means everything the owner may do.
    pub scopes: Option<Vec<String>>,
    /// Days until it expires (1–3650); never when absent.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_days: Option<i64>,
    /// A synonym of `expires_days`.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

/// A new API key; `key` is shown once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreatedResponse {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub key_prefix: String,
    pub key: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An API key as listed (without its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub usage_count: i32,
    pub created_at: DateTime<Utc>,
}

impl From<ApiKeyRow> for ApiKeyResponse {
    fn from(k: ApiKeyRow) -> Self {
        Self {
            id: k.id,
            name: k.name,
            description: k.description,
            key_prefix: k.key_prefix,
            scopes: k.scopes.0,
            is_active: k.is_active,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            usage_count: k.usage_count,
            created_at: k.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub keys: Vec<ApiKeyResponse>,
    pub total: i64,
}

/// Rename a key or change its description (`null` clears it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApiKeyRequest {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub description: Option<Option<String>>,
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionsQuery {
    #[param(minimum = 0)]
    pub skip: Option<i64>,
    /// A synonym of `skip`.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// A page of a user's live sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionRow>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}
