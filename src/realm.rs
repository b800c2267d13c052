//! The two realms as values: a realm carries its pool, token keys and policy, so that one
//! service function serves both (STYLE.md §2). Realm differences are data, never a `match`.

use std::sync::Arc;

use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPoolOptions, Postgres};

use crate::auth::token::TokenKeys;
use crate::config::DatabaseSettings;
use crate::error::{ApiError, is_connectivity_error};

/// Which user population.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RealmId {
    Slm,
    Autobot,
}

impl RealmId {
    /// The realm's name on the wire and in token audiences.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slm => "slm",
            Self::Autobot => "autobot",
        }
    }

    /// The static policy of this realm.
    pub fn policy(self) -> &'static RealmPolicy {
        match self {
            Self::Slm => &SLM_POLICY,
            Self::Autobot => &AUTOBOT_POLICY,
        }
    }
}

impl std::str::FromStr for RealmId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "slm" => Ok(Self::Slm),
            "autobot" => Ok(Self::Autobot),
            other => Err(format!("unknown realm {other:?}; expected slm or autobot")),
        }
    }
}

/// Everything that differs between the realms, as data.
#[derive(Debug)]
pub struct RealmPolicy {
    /// Role names from the lowest rank to the highest; the last is the admin role.
    pub roles: &'static [&'static str],
    /// Role given to a new user when none is named.
    pub default_role: &'static str,
    /// Permissions that each role adds to the ones below it (for `/me`).
    pub role_permissions: &'static [&'static [&'static str]],
    /// SLM role rank needed to read this realm's users through the management API.
    pub read_rank: i16,
    /// SLM role rank needed to change this realm's users, teams and roles below admin.
    pub write_rank: i16,
    /// Whether committed user changes are announced on Redis (API.md §5).
    pub publishes_invalidations: bool,
    /// The 503 detail when the realm's database cannot be reached.
    pub unavailable_detail: &'static str,
    /// Prefix of API keys issued in this realm, so that a leaked key is recognisable.
    pub api_key_prefix: &'static str,
    /// Name of the database when none is configured.
    pub default_database: &'static str,
    /// Human name of the realm (TOTP issuer).
    pub display_name: &'static str,
}

/// The name of the admin role in every realm.
pub const ADMIN_ROLE: &str = "admin";

static SLM_POLICY: RealmPolicy = RealmPolicy {
    roles: &["viewer", "manager", "admin"],
    default_role: "viewer",
    role_permissions: &[
        &["autobot-users:read", "autobot-teams:read"],
        &[
            "autobot-users:write",
            "autobot-teams:write",
            "access-requests:review",
            "slm-users:read",
        ],
        &["autobot-users:grant-admin", "slm-users:write", "audit:read"],
    ],
    read_rank: 2,
    write_rank: 3,
    publishes_invalidations: false,
    unavailable_detail: "SLM user database unavailable",
    api_key_prefix: "slmk_",
    default_database: "slm_users",
    display_name: "SLM",
};

static AUTOBOT_POLICY: RealmPolicy = RealmPolicy {
    roles: &["user", "manager", "admin"],
    default_role: "user",
    role_permissions: &[
        &["autobot:use", "profile:write"],
        &["teams:manage"],
        &["autobot:admin"],
    ],
    read_rank: 1,
    write_rank: 2,
    publishes_invalidations: true,
    unavailable_detail: "AutoBot user database unavailable",
    api_key_prefix: "abk_",
    default_database: "autobot_users",
    display_name: "AutoBot",
};

impl RealmPolicy {
    /// The rank (1-based) of a role name, or `None` if the realm has no such role.
    pub fn rank_of(&self, role: &str) -> Option<i16> {
        self.roles
            .iter()
            .position(|r| *r == role)
            .and_then(|i| i16::try_from(i + 1).ok())
    }

    /// The highest rank among `roles`, 0 when none is known.
    pub fn max_rank<S: AsRef<str>>(&self, roles: &[S]) -> i16 {
        roles
            .iter()
            .filter_map(|r| self.rank_of(r.as_ref()))
            .max()
            .unwrap_or(0)
    }

    /// Every permission held by a user with `roles` (hierarchical: higher roles include lower).
    pub fn permissions<S: AsRef<str>>(&self, roles: &[S]) -> Vec<String> {
        let rank = usize::try_from(self.max_rank(roles)).unwrap_or(0);
        self.role_permissions
            .iter()
            .take(rank)
            .flat_map(|perms| perms.iter().map(|p| (*p).to_owned()))
            .collect()
    }
}

struct RealmInner {
    id: RealmId,
    db: PgPool,
    tokens: TokenKeys,
}

/// A realm with its resources; cheap to clone.
#[derive(Clone)]
pub struct Realm(Arc<RealmInner>);

impl std::fmt::Debug for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Realm").field(&self.0.id).finish()
    }
}

/// A pool that connects on first use, so that the server starts while a database is down, and
/// whose requests give up after `acquire_timeout` instead of hanging.
///
/// A connection is pinged before use only when it has been idle for over a second: one that was
/// just returned is known to work, and pinging it would add a round trip to every request.
pub fn lazy_pool(settings: &DatabaseSettings) -> PgPool {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(std::time::Duration::from_secs(300))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > std::time::Duration::from_secs(1) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(settings.options.clone())
}

impl Realm {
    /// Builds a realm from its pool and token keys.
    pub fn new(id: RealmId, db: PgPool, tokens: TokenKeys) -> Self {
        Self(Arc::new(RealmInner { id, db, tokens }))
    }

    pub fn id(&self) -> RealmId {
        self.0.id
    }

    pub fn name(&self) -> &'static str {
        self.0.id.as_str()
    }

    pub fn policy(&self) -> &'static RealmPolicy {
        self.0.id.policy()
    }

    /// The pool; prefer [`Realm::acquire`] and [`Realm::begin`] in request paths, which turn an
    /// unreachable database into this realm's 503.
    pub fn db(&self) -> &PgPool {
        &self.0.db
    }

    pub fn tokens(&self) -> &TokenKeys {
        &self.0.tokens
    }

    /// Maps an error to this realm's 503 when it means the database cannot be reached.
    pub fn db_error(&self, err: sqlx::Error) -> ApiError {
        if is_connectivity_error(&err) {
            ApiError::Unavailable {
                detail: self.policy().unavailable_detail,
                retry_after_secs: Some(5),
            }
        } else {
            ApiError::from(err)
        }
    }

    /// A connection, or this realm's 503 within the acquire timeout.
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, ApiError> {
        self.0.db.acquire().await.map_err(|e| self.db_error(e))
    }

    /// A transaction, or this realm's 503 within the acquire timeout.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, ApiError> {
        self.0.db.begin().await.map_err(|e| self.db_error(e))
    }

    /// Whether the database answers a trivial query right now.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.0.db).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_hierarchical() {
        let slm = RealmId::Slm.policy();
        let viewer = slm.permissions(&["viewer"]);
        let admin = slm.permissions(&["admin"]);
        assert!(viewer.contains(&"autobot-users:read".to_owned()));
        assert!(!viewer.contains(&"slm-users:read".to_owned()));
        assert!(admin.contains(&"autobot-users:read".to_owned()));
        assert!(admin.contains(&"audit:read".to_owned()));
        assert_eq!(slm.max_rank(&["viewer", "manager"]), 2);
        assert_eq!(slm.rank_of("user"), None);
    }
}
