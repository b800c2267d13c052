//! The two realms as values: a realm carries its database, token keys, password scheme, policy
//! and the catalog of its roles, so that one service function serves both (STYLE.md §2). Realm
//! differences are data, never a `match`.
//!
//! Every statement a request sends goes through [`Realm::read`] or [`Realm::transaction`]: they
//! answer this realm's 503 while its database is unmigrated or known to be down, and name this
//! realm's database in a 503 that arises on the way.

pub mod announcements;
mod catalog;
pub mod catalog_watch;
pub mod db;
pub mod migrate;
mod policy;

use announcements::Announcements;
pub use catalog::{Catalog, Role};
pub use policy::{ADMIN_ROLE, PermissionSeed, RealmPolicy};
use policy::{AUTOBOT_POLICY, SLM_POLICY};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::SecretString;

use crate::credentials::password::Scheme;
use crate::credentials::token::{TokenKeys, TokenLifetimes};
use crate::database::{self, BoxFuture, DatabaseSettings, Db, Pool, lazy_pool};
use crate::http::error::ApiError;

/// Which user population.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RealmId {
    Slm,
    Autobot,
}

impl RealmId {
    /// The realm's name on the wire and in tokens.
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
    /// Not open yet (the database has not answered since the server started).
    Pending,
    /// The database answers but cannot be migrated until an operator acts; the one-line cause.
    Unmigrated(Arc<str>),
}

/// How long a probe of an unreachable database waits for its connection, and between probes.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// What a realm is made of (see [`Realm::new`]).
pub struct RealmConfig<'a> {
    pub id: RealmId,
    pub database: &'a DatabaseSettings,
    pub secrets: &'a [SecretString],
    pub lifetimes: TokenLifetimes,
    pub scheme: Scheme,
    /// The role of a user created without roles.
    pub new_user_role: &'a str,
}

struct RealmInner {
    id: RealmId,
    pool: Pool,
    /// How long one unit of work may take (see [`DatabaseSettings::work_deadline`]).
    deadline: Duration,
    tokens: TokenKeys,
    scheme: Scheme,
    new_user_role: String,
    /// Requests use the database only when it is [`SchemaState::Ready`]; until then they
    /// answer the realm's 503, never a 500 from a missing table.
    schema: tokio::sync::watch::Sender<SchemaState>,
    /// The database was found unreachable and a probe has not reached it since.
    down: AtomicBool,
    /// A probe is running (see [`Realm::watch_if_unreachable`]).
    probing: AtomicBool,
    /// The realm's roles and what they grant, read from its database.
    catalog: RwLock<Arc<Catalog>>,
    /// What its database announced, for the tasks that wait for it.
    announcements: Announcements,
}

/// A realm with its resources; cheap to clone.
#[derive(Clone)]
pub struct Realm(Arc<RealmInner>);

impl std::fmt::Debug for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Realm").field(&self.0.id).finish()
    }
}

impl Realm {
    /// The realm `config` describes: a lazily connecting pool, its token keys, and a schema
    /// pending until [`Realm::open`] reads its catalog.
    pub fn new(config: RealmConfig<'_>) -> Self {
        Self(Arc::new(RealmInner {
            id: config.id,
            pool: lazy_pool(config.database),
            deadline: config.database.work_deadline(),
            tokens: TokenKeys::new(config.id.as_str(), config.secrets, config.lifetimes),
            scheme: config.scheme,
            new_user_role: config.new_user_role.to_owned(),
            schema: tokio::sync::watch::Sender::new(SchemaState::Pending),
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            announcements: Announcements::default(),
        }))
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

    /// The pool itself, for what is not a request (pool metrics, idle connections, the
    /// listener's options).
    pub fn pool(&self) -> &Pool {
        &self.0.pool
    }

    /// What this realm's database announced (see [`announcements::listen`]).
    pub fn announcements(&self) -> &Announcements {
        &self.0.announcements
    }

    pub fn tokens(&self) -> &TokenKeys {
        &self.0.tokens
    }

    /// How this realm stores new passwords.
    pub fn scheme(&self) -> Scheme {
        self.0.scheme
    }

    /// The role of a user created without roles: `SLM_DEFAULT_ROLE` in the SLM realm (the
    /// dashboard's "Add SLM Admin" sends none), the base role in the AutoBot realm.
    pub fn new_user_role(&self) -> &str {
        &self.0.new_user_role
    }

    /// The realm's roles and what they grant, as last read.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.0
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The catalog, for an answer made of it alone (the realm's roles, a key's scopes): the
    /// realm's 503 while it does not serve, as for any other answer.
    pub fn serving_catalog(&self) -> Result<Arc<Catalog>, ApiError> {
        self.ready()?;
        Ok(self.catalog())
    }

    /// Reads the catalog and marks the schema ready: the realm serves from now on (a request
    /// never meets an empty catalog). Called once the database is migrated.
    pub async fn open(&self) -> Result<(), ApiError> {
        let fresh = database::read(&self.0.pool, self.0.deadline, |mut db| {
            Box::pin(async move { Ok(db::catalog_if_changed(&mut db, "").await?) })
        })
        .await
        .map_err(|err| err.labelled(self.policy().unavailable_detail))?;
        if let Some(fresh) = fresh {
            *self.0.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        }
        self.set_schema(SchemaState::Ready);
        Ok(())
    }

    /// Reads the catalog again if the roles or what they grant changed since (a cheap
    /// fingerprint says); returns whether it did.
    pub async fn refresh_catalog(&self) -> Result<bool, ApiError> {
        let known = self.catalog().fingerprint().to_owned();
        let fresh = self
            .read(|mut db| {
                Box::pin(async move { Ok(db::catalog_if_changed(&mut db, &known).await?) })
            })
            .await?;
        let Some(fresh) = fresh else {
            return Ok(false);
        };
        *self.0.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(true)
    }

    /// Runs `work` on one connection of this realm's database (see [`database::read`]).
    pub async fn read<'a, T>(
        &self,
        work: impl for<'c> FnOnce(Db<'c, 'a>) -> BoxFuture<'c, Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        self.ready()?;
        let outcome = database::read(&self.0.pool, self.0.deadline, work).await;
        self.labelled(outcome)
    }

    /// Runs `work` in one transaction of this realm's database and commits it (see
    /// [`database::transaction`]: it runs again after a deadlock).
    pub async fn transaction<'a, T>(
        &self,
        work: impl for<'c> FnMut(Db<'c, 'a>) -> BoxFuture<'c, Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        self.ready()?;
        let outcome = database::transaction(&self.0.pool, self.0.deadline, work).await;
        self.labelled(outcome)
    }

    /// A database error of this realm's names this realm's database; one that says it cannot
    /// be reached starts a probe.
    fn labelled<T>(&self, outcome: Result<T, ApiError>) -> Result<T, ApiError> {
        outcome.map_err(|err| {
            if err.is_unavailable() {
                self.watch_if_unreachable();
            }
            err.labelled(self.policy().unavailable_detail)
        })
    }

    /// Probes the database with a connection of its own: while the probe fails, the realm is
    /// down and its requests answer 503 at once, without each trying to connect (a database
    /// that does not answer would hold each until its deadline); the first probe that connects
    /// ends that.
    /// One probe runs at a time.
    fn watch_if_unreachable(&self) {
        if self.0.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let realm = self.clone();
        tokio::spawn(async move {
            let options = realm.pool().manager().options().clone();
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

    /// This realm's 503 unless its schema is ready and its database not known to be down.
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
        let answered = database::read(&self.0.pool, self.0.deadline, |mut db| {
            Box::pin(async move {
                Ok(sqlx::query_scalar!("SELECT 1 AS one")
                    .fetch_one(&mut *db)
                    .await?)
            })
        })
        .await;
        if answered.is_err() {
            self.watch_if_unreachable();
        }
        answered.is_ok()
    }
}
