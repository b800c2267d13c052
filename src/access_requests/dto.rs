//! Request and response bodies of `/api/access-requests`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::users::dto::UserResponse;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessRequest {
    #[schema(pattern = "^[A-Za-z0-9._-]{3,50}$", min_length = 3, max_length = 50)]
    pub username: String,
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    #[schema(max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub full_name: Option<String>,
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessRequestAccepted {
    pub id: Uuid,
    /// Always `pending`.
    pub status: &'static str,
}

/// An access request as reviewers see it.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct AccessRequest {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub full_name: Option<String>,
    pub reason: Option<String>,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub reviewer_id: Option<Uuid>,
    pub reviewer_username: Option<String>,
    pub comment: Option<String>,
    /// The user created on approval.
    pub user_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessRequestList {
    pub requests: Vec<AccessRequest>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Role names for the new user; the realm's base role when absent.
    pub roles: Option<Vec<String>>,
    pub role_ids: Option<Vec<Uuid>>,
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyRequest {
    /// Why the request is denied (required).
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000]*[^\\u0000\\t\\n\\u000b\\f\\r\\u0085 \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    )]
    pub comment: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalResponse {
    pub request: AccessRequest,
    pub user: UserResponse,
    /// Shown once; the user must change it at the first sign-in.
    pub temporary_password: String,
}

/// A review status.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Approved,
    Denied,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAccessRequestsQuery {
    #[param(inline)]
    pub status: Option<RequestStatus>,
    #[param(minimum = 0)]
    pub skip: Option<i64>,
    /// A synonym of `skip`.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccessRequestPath {
    pub id: Uuid,
}
