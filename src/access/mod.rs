//! What lets a user in, and who is calling: sessions and refresh tokens, API keys, second
//! factors and lockouts (their tables), the principal of each request, and what it may do.

pub mod authz;
pub mod cookie;
pub mod db;
pub mod principal;

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditAction};
use crate::http::error::ApiError;
use crate::realm::Realm;

/// Ends what signs a user in, in the caller's transaction, and audits it: every session but
/// `keep` (the caller's own, when one changes one's own password), and every API key for good
/// — a key does not come back when the account is re-activated. A password change,
/// deactivation, deletion and `revoke-sessions` all end here (docs/api.md §1).
pub async fn end_credentials(
    db: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> Result<(), ApiError> {
    let ended = db::sessions::end_all(db, user_id, keep, reason).await?;
    audit::record(
        db,
        realm,
        actor,
        AuditAction::SessionsRevoked,
        Some(user_id),
        json!({"sessions": ended.sessions, "api_keys": ended.api_keys, "reason": reason}),
    )
    .await
}
