//! Request and response bodies of API keys (`/api/api-keys`, `…/me/api-keys` of each realm,
//! and the keys an admin issues for an AutoBot user).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::access::db::keys::ApiKeyRow;
use crate::http::extract::double_option;

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[schema(schema_with = crate::domain::key_name_schema)]
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
/// Holds the key: not `Debug`.
#[derive(Serialize, ToSchema)]
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
    #[schema(schema_with = crate::domain::nullable_key_name_schema)]
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
