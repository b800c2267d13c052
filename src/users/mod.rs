//! User management, written once for both realms: users, their roles, the bootstrap admin, and
//! the realm's roles.

pub mod access;
pub mod bootstrap;
pub mod db;
pub mod dto;
pub mod handlers;
pub mod roles;
pub mod search;
pub mod service;
pub mod update;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::realm::Realm;

use crate::realm::{ADMIN_ROLE, Catalog, Role};
use crate::users::db::UserRow;

/// A user: the row, and its roles resolved by the realm's catalog (highest first; `admin` for
/// the `is_platform_admin` flag too, docs/api.md §3).
#[derive(Debug, Clone)]
pub struct User {
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
    pub preferences: Box<RawValue>,
    pub roles: Vec<Role>,
    pub must_change_password: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// The user of `row`, its roles resolved by `catalog`.
    pub fn new(row: UserRow, catalog: &Catalog) -> Self {
        Self {
            roles: catalog.roles_of(&row.role_ids, row.is_platform_admin),
            id: row.id,
            username: row.username,
            email: row.email,
            display_name: row.display_name,
            bio: row.bio,
            avatar_url: row.avatar_url,
            org_id: row.org_id,
            is_active: row.is_active,
            is_verified: row.is_verified,
            mfa_enabled: row.mfa_enabled,
            preferences: row.preferences.0,
            must_change_password: row.must_change_password,
            last_login_at: row.last_login_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.name == role)
    }

    /// An admin of its realm, by the flag or the role.
    pub fn is_admin(&self) -> bool {
        self.has_role(ADMIN_ROLE)
    }

    /// The name of the highest role, if the user has any.
    pub fn highest_role(&self) -> Option<&str> {
        self.roles.first().map(|r| r.name.as_str())
    }
}

const NOT_FOUND: ApiError = ApiError::NotFound("User not found");

/// The user `id` of `realm`, read in the caller's unit of work.
pub async fn fetch(
    db: &mut PgConnection,
    realm: &Realm,
    id: Uuid,
) -> Result<Option<User>, ApiError> {
    let catalog = realm.catalog();
    Ok(db::rows(db, &[id])
        .await?
        .into_iter()
        .next()
        .map(|row| User::new(row, &catalog)))
}

pub async fn get(realm: &Realm, id: Uuid) -> Result<User, ApiError> {
    realm
        .read(|mut db| Box::pin(async move { fetch(&mut db, realm, id).await?.ok_or(NOT_FOUND) }))
        .await
}
