//! Request and response bodies of `/api/sso-providers` and `/api/auth/sso` (docs/api.md §7),
//! as the dashboard's `useSsoApi.ts` sends and reads them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::http::extract::not_null;

/// A provider as every answer shows it: secrets in `config` are `"********"`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderResponse {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub provider_type: String,
    pub name: String,
    pub is_active: bool,
    pub is_social: bool,
    pub allow_user_creation: bool,
    pub default_role: Option<String>,
    /// Group (an OIDC groups-claim value, an LDAP group's DN or `cn`) → role name.
    pub group_mapping: BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub providers: Vec<ProviderResponse>,
    pub total: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProviderListQuery {
    pub org_id: Option<Uuid>,
    /// Only active providers.
    pub active_only: Option<bool>,
}

/// A new provider.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    /// `oidc`, `google`, `google_workspace`, `microsoft_entra`, `github`, `ldap`,
    /// `active_directory` (and their aliases, docs/api.md §7).
    #[schema(min_length = 1, max_length = 50)]
    pub provider_type: String,
    #[schema(schema_with = crate::domain::team_name_schema)]
    pub name: String,
    /// The protocol's settings; secrets are stored encrypted and never shown again.
    #[schema(value_type = Object)]
    pub config: serde_json::Map<String, serde_json::Value>,
    pub org_id: Option<Uuid>,
    pub is_active: Option<bool>,
    pub is_social: Option<bool>,
    pub allow_user_creation: Option<bool>,
    /// A role of the provider's realm; default the least privileged one.
    #[schema(max_length = 100)]
    pub default_role: Option<String>,
    pub group_mapping: Option<BTreeMap<String, String>>,
}

/// Changes to a provider; `"********"` for a secret keeps the stored one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProvider {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(schema_with = crate::domain::team_name_schema)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = Object)]
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool)]
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool)]
    pub is_social: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool)]
    pub allow_user_creation: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, max_length = 100)]
    pub default_role: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = BTreeMap<String, String>)]
    pub group_mapping: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProviderPath {
    pub provider_id: Uuid,
}

/// The answer of a provider's test.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResponse {
    pub success: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// An active provider, as the login page lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveProvider {
    pub id: Uuid,
    pub name: String,
    pub provider_type: String,
    pub is_social: bool,
}

/// Where to send the browser to sign in at the provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginStart {
    pub provider_id: Uuid,
    pub provider_type: String,
    pub provider_name: String,
    /// The provider's authorization URL, with `state`, `nonce` and the PKCE challenge.
    pub redirect_url: String,
    pub state: String,
}

/// The query of the provider's redirect back.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// The provider's refusal (`access_denied`, …).
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// An LDAP sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapLogin {
    pub provider_id: Uuid,
    #[schema(min_length = 1, max_length = 255)]
    pub username: String,
    #[schema(value_type = String, min_length = 1, max_length = 1024)]
    pub password: SecretString,
}

/// The token of an LDAP sign-in. Holds a token: not `Debug`.
#[derive(Serialize, ToSchema)]
pub struct LdapToken {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
}
