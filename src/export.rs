//! `GET /api/autobot-users/{user_id}/export`: everything stored about a user (GDPR art. 15),
//! gathered from each feature in one unit of work.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::authz::CanWrite;
use crate::access::db::sessions::{self, SessionRow};
use crate::access_requests::dto::AccessRequest;
use crate::access_requests::service as access_requests;
use crate::audit_log::{self, AuditEvent};
use crate::auth::api_keys::dto::ApiKeyResponse;
use crate::auth::api_keys::service as api_keys;
use crate::http::error::{ApiError, HttpError};
use crate::http::extract::{ApiJson, ApiPath};
use crate::realm::Realm;
use crate::state::Target;
use crate::teams::dto::TeamResponse;
use crate::teams::service as teams;
use crate::users::dto::{UserPath, UserResponse};
use crate::users::service as users;

/// Sessions listed in an export at most.
const MAX_SESSIONS: i64 = 1000;

/// Everything stored about a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserExport {
    pub user: UserResponse,
    pub teams: Vec<TeamResponse>,
    pub sessions: Vec<SessionRow>,
    pub api_keys: Vec<ApiKeyResponse>,
    pub access_requests: Vec<AccessRequest>,
    pub audit_events: Vec<AuditEvent>,
    pub exported_at: DateTime<Utc>,
}

/// Everything stored about a user (GDPR art. 15).
#[utoipa::path(get, path = "/{user_id}/export", params(UserPath),
    responses((status = 200, body = UserExport), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn export_user(
    State(target): State<Target>,
    op: CanWrite,
    ApiPath(path): ApiPath<UserPath>,
) -> Result<ApiJson<UserExport>, ApiError> {
    gather(&target.realm, &op, path.user_id).await.map(ApiJson)
}

/// Everything stored about user `id`, read in one unit of work.
pub async fn gather(realm: &Realm, _op: &CanWrite, id: Uuid) -> Result<UserExport, ApiError> {
    let idle = realm.tokens().lifetimes.session_idle;
    realm
        .read(|mut db| {
            Box::pin(async move {
                let user = users::fetch(&mut db, realm, id)
                    .await?
                    .ok_or(ApiError::NotFound("User not found"))?;
                let teams = teams::of_user_in(&mut db, id).await?;
                let (sessions, _) = sessions::live(&mut db, id, idle, 0, MAX_SESSIONS).await?;
                Ok(UserExport {
                    teams: teams.into_iter().map(Into::into).collect(),
                    sessions,
                    api_keys: api_keys::of_user(&mut db, id).await?,
                    access_requests: access_requests::of_user(&mut db, id, &user.email).await?,
                    audit_events: audit_log::about_user(&mut db, realm, id).await?,
                    user: user.into(),
                    exported_at: Utc::now(),
                })
            })
        })
        .await
}
