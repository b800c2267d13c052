//! Request and response bodies of the team endpoints (docs/api.md §3).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::http::extract::{double_option, not_null};
use crate::teams::db::{Member, Team};

/// A team.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamResponse {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub organization_id: Uuid,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Team> for TeamResponse {
    fn from(t: Team) -> Self {
        Self {
            id: t.id,
            name: t.name,
            description: t.description,
            organization_id: t.org_id,
            member_count: t.member_count,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A member of a team.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberResponse {
    pub user_id: Uuid,
    pub username: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

impl From<Member> for MemberResponse {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id,
            username: m.username,
            role: m.role,
            joined_at: m.joined_at,
        }
    }
}

/// A team with its members.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamDetail {
    #[serde(flatten)]
    pub team: TeamResponse,
    pub members: Vec<MemberResponse>,
}

/// A page of teams, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamList {
    pub teams: Vec<TeamResponse>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// A team's name: unique in its organization, case-insensitively.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeamRequest {
    #[schema(schema_with = crate::domain::team_name_schema)]
    pub name: String,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// The default organization when absent.
    pub organization_id: Option<Uuid>,
}

/// Rename a team or change its description (`null` clears it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeamRequest {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(schema_with = crate::domain::team_name_schema)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub description: Option<Option<String>>,
}

/// A member's role in a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Owner,
    Admin,
    Member,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

/// A user to add (or whose role to change).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberAdd {
    pub user_id: Uuid,
    /// `member` when absent.
    pub role: Option<MemberRole>,
}

/// Several membership changes, all or nothing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMembersRequest {
    #[serde(default)]
    pub add: Vec<MemberAdd>,
    #[serde(default)]
    pub remove: Vec<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTeamsQuery {
    /// Case-insensitive substring of the name.
    #[param(max_length = 200)]
    pub search: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TeamPath {
    pub team_id: Uuid,
}

/// Path of a user's teams (`/api/autobot-users/{user_id}/teams`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserTeamsPath {
    pub user_id: Uuid,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TeamMemberPath {
    pub team_id: Uuid,
    pub user_id: Uuid,
}
