//! The audit trail: events written into the realm's shared `audit_logs` (one trail with the
//! AutoBot backend's own events) in the same transaction as the change they record.

use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::db;
use crate::http::client::ClientInfo;
use crate::http::error::ApiError;
use crate::realm::{Realm, RealmId};

/// Who did something, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub id: Option<Uuid>,
    pub username: Option<String>,
    /// The realm the actor belongs to (SLM operators act on AutoBot users).
    pub realm: Option<RealmId>,
    pub client: ClientInfo,
}

impl Actor {
    /// An actor known only by its client (anonymous requests, failed logins).
    pub fn anonymous(client: ClientInfo) -> Self {
        Self {
            client,
            ..Self::default()
        }
    }

    /// A command run on the server itself (`slm-server create-admin`, the bootstrap).
    pub fn system(name: &str) -> Self {
        Self {
            username: Some(name.to_owned()),
            ..Self::default()
        }
    }
}

/// What an audit event records, as `audit_logs.action` names it. One trail is shared with the
/// AutoBot backend, so where its `AuditAction` vocabulary has a name, that name is used; the
/// rest are this server's own (docs/api.md §4, Audit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditAction {
    LoginSuccess,
    LoginFailed,
    Logout,
    PasswordChanged,
    MfaEnabled,
    MfaDisabled,
    MfaFailed,
    BackupCodeUsed,
    UserCreated,
    UserUpdated,
    UserDeleted,
    UserActivated,
    UserDeactivated,
    TeamCreated,
    TeamUpdated,
    TeamDeleted,
    TeamMemberAdded,
    TeamMemberRemoved,
    TeamMemberRoleChanged,
    RoleAssigned,
    RoleRevoked,
    ApiKeyCreated,
    ApiKeyRevoked,
    AccountLocked,
    AccountUnlocked,
    SsoLogin,
    SsoLinked,
    SettingsUpdated,
    // The server's own: the backend has no name for these.
    MfaBackupCodesRegenerated,
    TokenRefresh,
    TokenReuseDetected,
    SessionsRevoked,
    AccessRequestSubmitted,
    AccessRequestApproved,
    AccessRequestDenied,
    PermissionDenied,
}

impl AuditAction {
    /// The name stored in `audit_logs.action`.
    pub fn as_str(self) -> &'static str {
        use AuditAction::*;
        match self {
            LoginSuccess => "login_success",
            LoginFailed => "login_failed",
            Logout => "logout",
            PasswordChanged => "password_changed",
            MfaEnabled => "mfa_enabled",
            MfaDisabled => "mfa_disabled",
            MfaFailed => "mfa_failed",
            BackupCodeUsed => "backup_code_used",
            UserCreated => "user_created",
            UserUpdated => "user_updated",
            UserDeleted => "user_deleted",
            UserActivated => "user_activated",
            UserDeactivated => "user_deactivated",
            TeamCreated => "team_created",
            TeamUpdated => "team_updated",
            TeamDeleted => "team_deleted",
            TeamMemberAdded => "team_member_added",
            TeamMemberRemoved => "team_member_removed",
            TeamMemberRoleChanged => "team_member_role_changed",
            RoleAssigned => "role_assigned",
            RoleRevoked => "role_revoked",
            ApiKeyCreated => "api_key_created",
            ApiKeyRevoked => "api_key_revoked",
            AccountLocked => "account_locked",
            AccountUnlocked => "account_unlocked",
            SsoLogin => "sso_login",
            SsoLinked => "sso_linked",
            SettingsUpdated => "settings_updated",
            MfaBackupCodesRegenerated => "mfa_backup_codes_regenerated",
            TokenRefresh => "token_refresh",
            TokenReuseDetected => "token_reuse_detected",
            SessionsRevoked => "sessions_revoked",
            AccessRequestSubmitted => "access_request_submitted",
            AccessRequestApproved => "access_request_approved",
            AccessRequestDenied => "access_request_denied",
            PermissionDenied => "permission_denied",
        }
    }

    /// What kind of thing the event is about (the `resource_type` column, in the backend's
    /// `AuditResourceType` words).
    fn resource_type(self) -> &'static str {
        use AuditAction::*;
        match self {
            TeamCreated
            | TeamUpdated
            | TeamDeleted
            | TeamMemberAdded
            | TeamMemberRemoved
            | TeamMemberRoleChanged => "team",
            ApiKeyCreated | ApiKeyRevoked => "api_key",
            SettingsUpdated => "settings",
            AccessRequestSubmitted | AccessRequestApproved | AccessRequestDenied => {
                "access_request"
            }
            _ => "user",
        }
    }

    /// Whether the event records something done or something refused (the `outcome`
    /// column, with the backend's values).
    fn outcome(self) -> &'static str {
        use AuditAction::*;
        match self {
            LoginFailed | MfaFailed | TokenReuseDetected | AccountLocked => "failure",
            PermissionDenied => "denied",
            _ => "success",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Appends one event to `realm`'s audit trail inside `db`'s transaction.
///
/// `user_id` is the actor only when the actor is a user of this same database (its foreign
/// key): an SLM operator changing an AutoBot user is named in `details.actor` instead.
pub async fn record(
    db: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    action: AuditAction,
    target_id: Option<Uuid>,
    detail: Value,
) -> Result<(), ApiError> {
    Ok(db::insert(db, &[event(realm, actor, action, target_id, detail)]).await?)
}

fn event(
    realm: &Realm,
    actor: &Actor,
    action: AuditAction,
    target_id: Option<Uuid>,
    detail: Value,
) -> db::NewEvent<'static> {
    let local_actor = actor.id.filter(|_| actor.realm == Some(realm.id()));
    let mut details = match detail {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("value".to_owned(), other)]),
    };
    details.insert(
        "actor".to_owned(),
        json!({
            "id": actor.id,
            "username": actor.username,
            "realm": actor.realm.map(RealmId::as_str),
        }),
    );
    db::NewEvent {
        id: Uuid::now_v7(),
        user_id: local_actor,
        action: action.as_str(),
        resource_type: action.resource_type(),
        resource_id: target_id,
        outcome: action.outcome(),
        details: Value::Object(details),
        ip_address: actor.client.ip.map(|ip| ip.to_string()),
        user_agent: actor.client.user_agent.clone(),
    }
}

/// Appends one event per target (the same kind, each with its own detail), in one statement.
pub async fn record_many(
    db: &mut PgConnection,
    realm: &Realm,
    actor: &Actor,
    action: AuditAction,
    targets: &[(Uuid, Value)],
) -> Result<(), ApiError> {
    let events: Vec<db::NewEvent<'_>> = targets
        .iter()
        .map(|(target, detail)| event(realm, actor, action, Some(*target), detail.clone()))
        .collect();
    Ok(db::insert(db, &events).await?)
}
