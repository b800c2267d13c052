//! Request and response bodies of `/api/access-requests`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::users::dto::UserResponse;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessRequest {
    #[schema(schema_with = crate::domain::username_schema)]
    pub username: String,
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    #[schema(schema_with = crate::domain::display_name_schema)]
    pub full_name: Option<String>,
    #[schema(max_length = 2000)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessRequestAccepted {
    pub id: Uuid,
    /// Always `pending`.
    pub status: RequestStatus,
}

/// An access request as reviewers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessRequest {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub full_name: Option<String>,
    pub reason: Option<String>,
    pub status: RequestStatus,
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
    #[schema(schema_with = crate::domain::comment_schema)]
    pub comment: String,
}

/// Holds a password: not `Debug`.
#[derive(Serialize, ToSchema)]
pub struct ApprovalResponse {
    pub request: AccessRequest,
    pub user: UserResponse,
    /// Shown once; the user must change it at the first sign-in.
    pub temporary_password: String,
}

/// Where a request stands: `pending` until reviewed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
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
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccessRequestPath {
    pub id: Uuid,
}
