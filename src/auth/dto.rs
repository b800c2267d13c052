//! Request and response bodies of sign-in (`/api/auth`, `/api/{slm,autobot}-auth`). Passwords,
//! codes and tokens are [`SecretString`]s from the moment they are read: nothing prints them.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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
    #[schema(value_type = String, min_length = 1, max_length = 1024)]
    pub password: SecretString,
    /// A six-digit TOTP code or a backup code, when MFA is on: skips the MFA challenge.
    #[schema(value_type = Option<String>, max_length = 64)]
    pub totp_code: Option<SecretString>,
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<SecretString>,
}

/// A token pair and the user it was issued to.
/// Holds tokens: not `Debug`.
#[derive(Serialize, ToSchema)]
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
#[derive(Serialize, ToSchema)]
pub struct MfaChallenge {
    /// Always `true`.
    pub requires_mfa: bool,
    /// Good for one MFA step, for `expires_in` seconds, nothing else.
    pub temp_token: String,
    pub expires_in: u64,
}

/// The answer to a login: tokens, or the MFA challenge.
#[derive(Serialize, ToSchema)]
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
    #[schema(value_type = String, min_length = 1, max_length = 64)]
    pub code: SecretString,
    /// Also accepted as the `temp_token` query parameter.
    #[schema(value_type = Option<String>, max_length = 256)]
    pub temp_token: Option<SecretString>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyLoginQuery {
    #[param(value_type = Option<String>, max_length = 256)]
    pub temp_token: Option<SecretString>,
}

/// Exchange a refresh token; without a body, the bearer access token is renewed instead.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(value_type = String, min_length = 1, max_length = 256)]
    pub refresh_token: SecretString,
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
    #[schema(value_type = String, min_length = 1, max_length = 1024)]
    pub current_password: SecretString,
    #[schema(value_type = String, min_length = 8, max_length = 128)]
    pub new_password: SecretString,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request body that holds a password prints without it.
    #[test]
    fn secrets_in_requests_never_print() {
        let login: LoginRequest = serde_json::from_str(
            r#"{"username": "alice", "password": "pw-4F8a1", "totp_code": "code-9Q2",
                "client_secret": "cs-7Z3"}"#,
        )
        .expect("a login");
        let change: ChangePasswordRequest = serde_json::from_str(
            r#"{"current_password": "pw-4F8a1", "new_password": "pw-new-5K1"}"#,
        )
        .expect("a change");
        let printed = format!("{login:?} {change:?}");
        assert!(printed.contains("alice"), "{printed}");
        for secret in ["pw-4F8a1", "code-9Q2", "cs-7Z3", "pw-new-5K1"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
    }
}
