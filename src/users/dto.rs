//! Request and response bodies of the user and role endpoints (the same shapes in both realms:
//! the dashboard's `SlmUserResponse`, docs/api.md §3).

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::access::db::sessions::SessionRow;
use crate::http::extract::{double_option, not_null};
use crate::realm::Role;
use crate::users::User;

/// A role as every endpoint shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoleResponse {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_system: bool,
}

impl From<Role> for RoleResponse {
    fn from(r: Role) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            is_system: r.is_system,
        }
    }
}

/// A user as every endpoint returns it. Never carries a password hash or a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub org_id: Option<Uuid>,
    pub is_active: bool,
    pub is_verified: bool,
    pub mfa_enabled: bool,
    /// True exactly when `roles` holds `admin`.
    pub is_platform_admin: bool,
    #[schema(value_type = Object)]
    pub preferences: Box<serde_json::value::RawValue>,
    /// Highest role first.
    pub roles: Vec<RoleResponse>,
    pub must_change_password: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        // The flag or the role (docs/api.md §3): the roles include `admin` for either.
        let is_platform_admin = u.has_role(crate::realm::ADMIN_ROLE);
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            display_name: u.display_name,
            bio: u.bio,
            avatar_url: u.avatar_url,
            org_id: u.org_id,
            is_active: u.is_active,
            is_verified: u.is_verified,
            mfa_enabled: u.mfa_enabled,
            is_platform_admin,
            preferences: u.preferences,
            roles: u.roles.into_iter().map(RoleResponse::from).collect(),
            must_change_password: u.must_change_password,
            last_login_at: u.last_login_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// UserCreate (docs/api.md §3).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Unique case-insensitively.
    #[schema(schema_with = crate::domain::username_schema)]
    pub username: String,
    /// Unique case-insensitively.
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    /// Not the username or the e-mail, not a common password; at most 72 bytes where the realm
    /// stores bcrypt (the AutoBot realm by default).
    #[schema(value_type = String, min_length = 8, max_length = 128)]
    pub password: SecretString,
    #[schema(schema_with = crate::domain::display_name_schema)]
    pub display_name: Option<String>,
    /// Role names; default the realm's base role (`user`, or `viewer` in the SLM realm).
    pub roles: Option<Vec<String>>,
    /// Role ids, as the dashboard sends them (see `GET /api/{realm}-roles`).
    pub role_ids: Option<Vec<Uuid>>,
    /// Grants `admin`.
    pub is_platform_admin: Option<bool>,
    /// A synonym of `is_platform_admin`.
    pub is_admin: Option<bool>,
    pub is_active: Option<bool>,
    /// The organization; the default organization when absent.
    pub org_id: Option<Uuid>,
}

/// UserUpdate: every field optional; `null` clears `display_name`, `bio` and `avatar_url`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, format = "email", max_length = 254)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(schema_with = crate::domain::username_schema)]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = crate::domain::display_name_schema)]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub bio: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = crate::domain::avatar_url_schema)]
    pub avatar_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = Object)]
    pub preferences: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, min_length = 8, max_length = 128)]
    pub password: Option<SecretString>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool)]
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool)]
    pub is_platform_admin: Option<bool>,
    /// A synonym of `is_platform_admin`.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool)]
    pub is_admin: Option<bool>,
}

/// Roles to add: names or ids.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolesRequest {
    pub roles: Option<Vec<String>>,
    pub role_ids: Option<Vec<Uuid>>,
}

/// Query of a user list (its paging is [`crate::http::pagination::Page`]).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Case-insensitive substring of username, email or display name.
    #[param(max_length = 200)]
    pub search: Option<String>,
    pub is_active: Option<bool>,
    /// Only users holding this role (a name); blank means any.
    pub role: Option<String>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserResponse>,
    /// All matches: exact when at most 10,000 are expected, else the database's estimate.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// A realm's roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    pub roles: Vec<RoleResponse>,
    pub total: i64,
}

/// Path of a single user.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    pub user_id: Uuid,
}

/// Path of a role of a user.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserRolePath {
    pub user_id: Uuid,
    /// A role name or id.
    pub role: String,
}

/// A page of a user's live sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionRow>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}
