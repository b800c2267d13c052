//! Request and response bodies of MFA (`/api/mfa`, `…/me/mfa` of each realm).

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::extract::not_null;

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
/// Holds the secret and codes: not `Debug`.
#[derive(Serialize, ToSchema)]
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
    #[schema(value_type = String, min_length = 1, max_length = 64)]
    pub code: SecretString,
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
    pub password: Option<SecretString>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, max_length = 64)]
    pub code: Option<SecretString>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    #[schema(value_type = String, min_length = 1, max_length = 1024)]
    pub password: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct BackupCodesResponse {
    /// A new set, shown once; the old one stops working.
    pub backup_codes: Vec<String>,
}
