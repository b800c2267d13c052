//! Shared application state: both realms, the password hasher, Redis and settings.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::auth::password::PasswordHasher;
use crate::config::Settings;
use crate::rate_limit::RateLimiter;
use crate::realm::{Realm, RealmId};
use crate::redis_client::Redis;

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

    /// The state of `settings`: both realms (pools connect on first use), the hashing pool,
    /// Redis (also connected on first use) and the rate limiter.
    pub fn build(settings: Arc<Settings>) -> anyhow::Result<Self> {
        let redis = Redis::new(&settings.redis_url, settings.redis_ca_file.as_deref())?;
        Ok(Self::new(AppInner {
            rate_limiter: RateLimiter::new(redis.clone(), settings.redis_key_prefix.clone()),
            slm: Realm::from_settings(RealmId::Slm, &settings),
            autobot: Realm::from_settings(RealmId::Autobot, &settings),
            hasher: PasswordHasher::new(
                settings.hash_concurrency,
                settings.hash_queue,
                // Answered well before the request's own deadline.
                settings.request_timeout / 3,
            ),
            redis,
            settings,
        }))
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

impl Scoped {
    /// The state of routes targeting realm `id`.
    pub fn new(app: &AppState, id: RealmId) -> Self {
        Self {
            app: app.clone(),
            realm: app.realm(id).clone(),
        }
    }
}

impl FromRef<Scoped> for AppState {
    fn from_ref(scoped: &Scoped) -> AppState {
        scoped.app.clone()
    }
}
