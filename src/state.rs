//! Shared application state: both realms, the password hasher, Redis, the rate limiter and the
//! settings; and the state of a route that targets one realm.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::config::Settings;
use crate::credentials::hasher::PasswordHasher;
use crate::credentials::password::Scheme;
use crate::credentials::token::TokenLifetimes;
use crate::http::client::TrustedProxies;
use crate::http::rate_limit::RateLimiter;
use crate::realm::{Realm, RealmConfig, RealmId};
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
    pub trusted_proxies: TrustedProxies,
    pub settings: Arc<Settings>,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// The state of `settings`: both realms (pools connect on first use), the hasher, Redis
    /// (also connected on first use) and the rate limiter.
    pub fn build(settings: Arc<Settings>) -> anyhow::Result<Self> {
        let redis = Redis::new(&settings.redis.url, settings.redis.ca_file.as_deref())?;
        let tokens = &settings.tokens;
        let lifetimes = |access| TokenLifetimes {
            access,
            refresh: tokens.refresh_ttl,
            session_idle: tokens.session_idle,
        };
        let slm = Realm::new(RealmConfig {
            id: RealmId::Slm,
            database: &settings.slm_db,
            secrets: &tokens.slm_secrets,
            lifetimes: lifetimes(tokens.slm_access_ttl),
            scheme: Scheme::Argon2id,
            new_user_role: &settings.slm_default_role,
        });
        let autobot = Realm::new(RealmConfig {
            id: RealmId::Autobot,
            database: &settings.autobot_db,
            secrets: &tokens.autobot_secrets,
            lifetimes: lifetimes(tokens.autobot_access_ttl),
            scheme: settings.passwords.autobot_scheme,
            new_user_role: RealmId::Autobot.policy().default_role,
        });
        Ok(Self(Arc::new(AppInner {
            rate_limiter: RateLimiter::new(redis.clone(), settings.redis.key_prefix.clone()),
            slm,
            autobot,
            hasher: PasswordHasher::new(
                settings.passwords.hash_concurrency,
                settings.passwords.hash_queue,
                // Answered well before the request's own deadline.
                settings.http.request_timeout / 3,
            ),
            redis,
            trusted_proxies: TrustedProxies(Arc::new(settings.http.trusted_proxies.clone())),
            settings,
        })))
    }

    /// The realm with this id.
    pub fn realm(&self, id: RealmId) -> &Realm {
        match id {
            RealmId::Slm => &self.slm,
            RealmId::Autobot => &self.autobot,
        }
    }
}

/// The state of a route that targets one realm (users, sign-in): the app and that realm.
/// Management routes authenticate an SLM principal whatever the target.
#[derive(Clone)]
pub struct Target {
    pub app: AppState,
    pub realm: Realm,
}

impl Target {
    /// The state of routes targeting realm `id`.
    pub fn new(app: &AppState, id: RealmId) -> Self {
        Self {
            app: app.clone(),
            realm: app.realm(id).clone(),
        }
    }
}

impl FromRef<Target> for AppState {
    fn from_ref(target: &Target) -> AppState {
        target.app.clone()
    }
}

impl FromRef<AppState> for TrustedProxies {
    fn from_ref(app: &AppState) -> TrustedProxies {
        app.trusted_proxies.clone()
    }
}

impl FromRef<Target> for TrustedProxies {
    fn from_ref(target: &Target) -> TrustedProxies {
        target.app.trusted_proxies.clone()
    }
}
