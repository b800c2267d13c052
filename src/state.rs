//! Shared application state: both realms, the password hasher, Redis and settings.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::auth::password::PasswordHasher;
use crate::config::Settings;
use crate::rate_limit::RateLimiter;
use crate::realm::{Realm, RealmId};

/// Everything a request may need; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub slm: Realm,
    pub autobot: Realm,
    pub hasher: PasswordHasher,
    pub redis: Redis,
    pub rate_limiter: RateLimiter,
    pub settings: Arc<Settings>,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: AppInner) -> Self {
        Self(Arc::new(inner))
    }

    /// The realm with this id.
    pub fn realm(&self, id: RealmId) -> &Realm {
        match id {
            RealmId::Slm => &self.slm,
            RealmId::Autobot => &self.autobot,
        }
    }
}

/// The state of a router serving one target realm (users, auth): the app plus that realm.
/// Management routes authenticate against the SLM realm whatever the target.
#[derive(Clone)]
pub struct Scoped {
    pub app: AppState,
    pub realm: Realm,
}

impl FromRef<Scoped> for AppState {
    fn from_ref(scoped: &Scoped) -> AppState {
        scoped.app.clone()
    }
}

/// A Redis connection that reconnects by itself and never blocks a request for long: commands
/// time out after half a second, so Redis being down degrades features instead of hanging.
#[derive(Clone)]
pub struct Redis {
    manager: ConnectionManager,
}

impl Redis {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self { manager })
    }

    /// A handle for commands (cheap clone of a multiplexed connection).
    pub fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// Whether Redis answers PING right now.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }
}
