//! Per-IP rate limits (logins, access requests): fixed windows counted in Redis so that they
//! hold across replicas, falling back to an in-process count when Redis is down, so that an
//! outage neither blocks logins nor lifts the limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::ApiError;
use crate::state::Redis;

/// A limit: `max` requests per `window_secs` per client IP; `max == 0` turns it off.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub name: &'static str,
    pub max: u32,
    pub window_secs: u64,
}

/// The shared limiter.
pub struct RateLimiter {
    redis: Redis,
    key_prefix: String,
    /// Fallback counts: key → (window index, count). Never held across an await.
    local: Mutex<HashMap<String, (u64, u32)>>,
}

impl RateLimiter {
    pub fn new(redis: Redis, key_prefix: String) -> Self {
        Self {
            redis,
            key_prefix,
            local: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `ip` against `limit`; 429 with `Retry-After` when over it.
    pub async fn check(&self, limit: Limit, ip: Option<IpAddr>) -> Result<(), ApiError> {
        if limit.max == 0 {
            return Ok(());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let window = now / limit.window_secs;
        let retry_after_secs = (window + 1) * limit.window_secs - now;
        let ip = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let key = format!("{}rl:{}:{}:{}", self.key_prefix, limit.name, ip, window);
        let count = match self.count_in_redis(&key, limit.window_secs).await {
            Ok(count) => count,
            Err(err) => {
                tracing::debug!(error = %err, "rate limit falls back to the in-process count");
                self.count_locally(key, window)
            }
        };
        if count > u64::from(limit.max) {
            metrics::counter!("rate_limited_total", "limit" => limit.name).increment(1);
            return Err(ApiError::TooManyRequests {
                retry_after_secs: retry_after_secs.max(1),
            });
        }
        Ok(())
    }

    async fn count_in_redis(&self, key: &str, window_secs: u64) -> redis::RedisResult<u64> {
        let mut conn = self.redis.conn();
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .incr(key, 1u64)
            .expire(key, i64::try_from(window_secs + 1).unwrap_or(i64::MAX))
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(count)
    }

    fn count_locally(&self, key: String, window: u64) -> u64 {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if local.len() > 100_000 {
            local.retain(|_, (w, _)| *w == window);
        }
        let entry = local.entry(key).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        u64::from(entry.1)
    }
}
