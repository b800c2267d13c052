//! Request and response bodies of the user endpoints (same shapes in both realms).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::extract::double_option;
use crate::users::db::User;

/// A user as every endpoint returns it. Never carries a password hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub is_active: bool,
    /// True exactly when `roles` holds `admin`.
    pub is_admin: bool,
    pub roles: Vec<String>,
    pub mfa_enabled: bool,
    pub must_change_password: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        Self {
            is_admin: u.has_role(crate::realm::ADMIN_ROLE),
            id: u.id,
            username: u.username,
            email: u.email,
            full_name: u.full_name,
            is_active: u.is_active,
            roles: u.roles,
            mfa_enabled: u.mfa_enabled,
            must_change_password: u.must_change_password,
            created_at: u.created_at,
            updated_at: u.updated_at,
            last_login_at: u.last_login_at,
        }
    }
}

/// UserCreate.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    /// 3–64 letters, digits, `.`, `_`, `-`; unique case-insensitively.
    pub username: String,
    /// 8–128 characters; not the username or e-mail; not a common password.
    pub password: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    /// Grants the `admin` role.
    pub is_admin: Option<bool>,
    /// Defaults to the realm's base role (`user`, or `viewer` in the SLM realm).
    pub roles: Option<Vec<String>>,
    pub is_active: Option<bool>,
}

/// UserUpdate: every field optional; `null` clears `email` and `full_name`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateUserRequest {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub full_name: Option<Option<String>>,
    pub password: Option<String>,
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
}

/// Roles to add.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RolesRequest {
    pub roles: Vec<String>,
}

/// Query of a user list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Rows to skip (>= 0).
    pub skip: Option<i64>,
    /// Rows to return (1..=1000, default 100).
    pub limit: Option<i64>,
    /// Case-insensitive substring of username, email or full name.
    pub search: Option<String>,
    pub is_active: Option<bool>,
    /// Only users holding this role.
    pub role: Option<String>,
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
    pub role: String,
}
