//! Reading the audit trail: the admin-only `GET /api/audit` over both realms, and a user's events
//! for the GDPR export.

mod db;
pub mod dto;
pub mod handlers;

pub use dto::AuditEvent;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::realm::Realm;

/// The events about or by a user (the GDPR export), newest first, in the caller's unit of work.
pub async fn about_user(
    db: &mut PgConnection,
    realm: &Realm,
    user_id: Uuid,
) -> Result<Vec<AuditEvent>, ApiError> {
    Ok(db::about_user(db, realm.name(), user_id).await?)
}
