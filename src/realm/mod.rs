//! The two realms as values: a realm carries its pool, token keys, password scheme and policy,
//! so that one service function serves both (STYLE.md §2). Realm differences are data, never a
//! `match`.

mod policy;

pub use policy::{ADMIN_ROLE, PermissionSeed, RealmPolicy};
use policy::{AUTOBOT_POLICY, SLM_POLICY};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sqlx::PgPool;

use crate::auth::password::Scheme;
use crate::auth::token::TokenKeys;
use crate::config::Settings;
use crate::database::{Conn, DatabaseSettings, Source, Tx, lazy_pool};
use crate::error::{ApiError, DatabaseUnavailable, detail_response};

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

/// Whether a realm's database has the schema this server needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaState {
    /// Migrated: requests may use it.
    Ready,
    /// Not migrated yet (the database has not answered since the server started).
    Pending,
    /// The database answers but cannot be migrated until an operator acts; the one-line cause.
    Unmigrated(Arc<str>),
}

/// How long a probe of an unreachable database waits for its connection, and between probes.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

struct RealmInner {
    id: RealmId,
    db: Source,
    /// Requests use the database only when it is [`SchemaState::Ready`]; until then they
    /// answer the realm's 503, never a 500 from a missing table.
    schema: tokio::sync::watch::Sender<SchemaState>,
    /// The database was found unreachable and a probe has not reached it since.
    down: AtomicBool,
    /// A probe is running (see [`Realm::watch_if_unreachable`]).
    probing: AtomicBool,
    tokens: TokenKeys,
    scheme: Scheme,
    /// The role of a user created without roles.
    new_user_role: String,
}

/// A realm with its resources; cheap to clone.
#[derive(Clone)]
pub struct Realm(Arc<RealmInner>);

impl std::fmt::Debug for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Realm").field(&self.0.id).finish()
    }
}

impl RealmId {
    /// This realm's database settings and token secret.
    pub fn settings(self, settings: &Settings) -> (&DatabaseSettings, &[String]) {
        match self {
            Self::Slm => (&settings.slm_db, &settings.slm_jwt_secrets),
            Self::Autobot => (&settings.autobot_db, &settings.autobot_jwt_secrets),
        }
    }

    /// This realm's access-token lifetime and the role of a user created without roles.
    fn token_ttl_and_new_user_role(self, settings: &Settings) -> (std::time::Duration, &str) {
        match self {
            Self::Slm => (settings.slm_access_token_ttl, &settings.slm_default_role),
            Self::Autobot => (
                settings.autobot_access_token_ttl,
                self.policy().default_role,
            ),
        }
    }

    /// How this realm stores new passwords.
    pub fn scheme(self, settings: &Settings) -> Scheme {
        match self {
            Self::Slm => Scheme::Argon2id,
            Self::Autobot => settings.autobot_password_scheme,
        }
    }
}

impl Realm {
    /// The realm `id` as configured: a lazily connecting pool and the token keys.
    pub fn from_settings(id: RealmId, settings: &Settings) -> Self {
        let (db, secrets) = id.settings(settings);
        let (access_ttl, new_user_role) = id.token_ttl_and_new_user_role(settings);
        let tokens = TokenKeys::new(
            id.as_str(),
            secrets,
            access_ttl,
            settings.refresh_token_ttl,
            settings.session_idle,
        );
        Self::new(
            id,
            lazy_pool(db),
            db.statement_timeout,
            tokens,
            id.scheme(settings),
            new_user_role,
        )
    }

    /// Builds a realm from its pool, statement deadline and token keys.
    pub fn new(
        id: RealmId,
        pool: PgPool,
        statement_timeout: std::time::Duration,
        tokens: TokenKeys,
        scheme: Scheme,
        new_user_role: &str,
    ) -> Self {
        let db = Source {
            pool,
            limit: statement_timeout,
            unavailable: id.policy().unavailable_detail,
        };
        Self(Arc::new(RealmInner {
            id,
            db,
            schema: tokio::sync::watch::Sender::new(SchemaState::Ready),
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            tokens,
            scheme,
            new_user_role: new_user_role.to_owned(),
        }))
    }

    /// The role of a user created without roles: `SLM_DEFAULT_ROLE` in the SLM realm (the
    /// dashboard's "Add SLM Admin" sends none), the base role in the AutoBot realm.
    pub fn new_user_role(&self) -> &str {
        &self.0.new_user_role
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

    /// The pool itself, for what is not a request (health checks, pool metrics, LISTEN).
    pub fn pool(&self) -> &PgPool {
        &self.0.db.pool
    }

    pub fn tokens(&self) -> &TokenKeys {
        &self.0.tokens
    }

    /// How this realm stores new passwords.
    pub fn scheme(&self) -> Scheme {
        self.0.scheme
    }

    /// A connection, or this realm's 503: at once while the database is known to be down,
    /// else within the acquire timeout.
    pub async fn conn(&self) -> Result<Conn, ApiError> {
        self.ready()?;
        let conn = self.0.db.conn().await;
        self.watch_if_unreachable(conn.as_ref().err());
        conn
    }

    /// A transaction, or this realm's 503 (as [`Self::conn`]).
    pub async fn begin(&self) -> Result<Tx, ApiError> {
        self.ready()?;
        let tx = self.0.db.begin().await;
        self.watch_if_unreachable(tx.as_ref().err());
        tx
    }

    /// After a failure to reach the database, probes it with a connection of its own (a
    /// refused connection is known at once, where the pool keeps trying until its timeout):
    /// while the probe fails, the realm is down and its requests answer 503 at once; the first
    /// probe that connects ends that. One probe runs at a time.
    fn watch_if_unreachable(&self, err: Option<&ApiError>) {
        if !err.is_some_and(ApiError::is_unavailable) || self.0.probing.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let realm = self.clone();
        tokio::spawn(async move {
            let options = realm.pool().connect_options();
            loop {
                let connected = tokio::time::timeout(
                    PROBE_TIMEOUT,
                    <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
                )
                .await;
                if let Ok(Ok(conn)) = connected {
                    let _ = sqlx::Connection::close(conn).await;
                    break;
                }
                realm.0.down.store(true, Ordering::SeqCst);
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
            realm.0.down.store(false, Ordering::SeqCst);
            realm.0.probing.store(false, Ordering::SeqCst);
        });
    }

    /// The state of this realm's schema.
    pub fn schema(&self) -> SchemaState {
        self.0.schema.borrow().clone()
    }

    /// Records the state of this realm's schema (the server's start-up and its migrations).
    pub fn set_schema(&self, state: SchemaState) {
        self.0.schema.send_replace(state);
    }

    /// This realm's 503 unless its schema is ready.
    fn ready(&self) -> Result<(), ApiError> {
        match *self.0.schema.borrow() {
            SchemaState::Ready if !self.0.down.load(Ordering::SeqCst) => Ok(()),
            _ => Err(ApiError::Unavailable {
                detail: self.policy().unavailable_detail,
                retry_after_secs: Some(5),
            }),
        }
    }

    /// Whether the database answers a trivial query right now (at once `false` while it is
    /// known to be down).
    pub async fn ping(&self) -> bool {
        if self.0.down.load(Ordering::SeqCst) {
            return false;
        }
        match sqlx::query("SELECT 1").execute(self.pool()).await {
            Ok(_) => true,
            Err(err) => {
                self.watch_if_unreachable(Some(&ApiError::from(err)));
                false
            }
        }
    }
}

/// Middleware of the routes of one realm: a database 503 that does not yet say which database
/// (an error that arose mid-statement rather than while connecting) names this realm's.
pub async fn label_unavailable(
    State(realm): State<Realm>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let Some(unavailable) = response.extensions().get::<DatabaseUnavailable>().cloned() else {
        return response;
    };
    if unavailable.labelled {
        return response;
    }
    let (parts, _) = response.into_parts();
    let mut labelled = detail_response(parts.status, realm.policy().unavailable_detail);
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_LENGTH && name != axum::http::header::CONTENT_TYPE {
            labelled.headers_mut().insert(name.clone(), value.clone());
        }
    }
    labelled.extensions_mut().insert(DatabaseUnavailable {
        labelled: true,
        ..unavailable
    });
    labelled
}
