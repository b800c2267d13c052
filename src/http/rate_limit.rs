//! Per-IP rate limits (logins, access requests), counted in Redis so that they hold across
//! replicas, falling back to an in-process count when Redis is down, so that an outage neither
//! blocks logins nor lifts the limit.
//!
//! The count is a sliding window: this window's requests plus the previous window's, weighted
//! by how much of it still overlaps the last `window_secs`. A fixed window would let a client
//! send twice the limit across a boundary, and would reset a count half-way through a burst.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::error::ApiError;
use crate::redis_client::Redis;

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
    /// Fallback counts: key → (window index, count in it). Never held across an await.
    local: Mutex<HashMap<String, (u64, u64)>>,
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
        let key = |window: u64| format!("{}rl:{}:{}:{}", self.key_prefix, limit.name, ip, window);
        let (current, previous) = (key(window), key(window.saturating_sub(1)));
        let (this, last) = match self
            .count_in_redis(&current, &previous, limit.window_secs)
            .await
        {
            Ok(counts) => counts,
            Err(err) => {
                tracing::debug!(error = %err, "rate limit falls back to the in-process count");
                self.count_locally(current, previous, window)
            }
        };
        // The part of the previous window still inside the last `window_secs`, in whole
        // requests rounded down (integer arithmetic: no float rounding at the edges).
        let elapsed = now % limit.window_secs;
        let carried = last * (limit.window_secs - elapsed) / limit.window_secs;
        if this + carried > u64::from(limit.max) {
            metrics::counter!("rate_limited_total", "limit" => limit.name).increment(1);
            return Err(ApiError::TooManyRequests {
                retry_after_secs: retry_after_secs.max(1),
            });
        }
        Ok(())
    }

    /// Counts one request in `current` and reads `previous`: (this window's, the last one's).
    async fn count_in_redis(
        &self,
        current: &str,
        previous: &str,
        window_secs: u64,
    ) -> redis::RedisResult<(u64, u64)> {
        let mut conn = self.redis.conn();
        let (this, last): (u64, Option<u64>) = redis::pipe()
            .atomic()
            .incr(current, 1u64)
            // Kept for two windows: the next window still weighs this one.
            .expire(
                current,
                i64::try_from(2 * window_secs + 1).unwrap_or(i64::MAX),
            )
            .ignore()
            .get(previous)
            .query_async(&mut conn)
            .await?;
        Ok((this, last.unwrap_or(0)))
    }

    fn count_locally(&self, current: String, previous: String, window: u64) -> (u64, u64) {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if local.len() > 100_000 {
            local.retain(|_, (w, _)| *w + 1 >= window);
        }
        let last = local
            .get(&previous)
            .filter(|(w, _)| *w + 1 == window)
            .map_or(0, |(_, count)| *count);
        let entry = local.entry(current).or_insert((window, 0));
        entry.1 += 1;
        (entry.1, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline() -> RateLimiter {
        let redis = Redis::new(&"redis://127.0.0.1:1".into(), None).expect("a valid URL");
        RateLimiter::new(redis, String::new())
    }

    #[tokio::test]
    async fn the_previous_window_counts_while_it_overlaps() {
        let limiter = offline();
        for _ in 0..3 {
            limiter.count_locally("k:9".into(), "k:8".into(), 9);
        }
        assert_eq!(
            limiter.count_locally("k:10".into(), "k:9".into(), 10),
            (1, 3)
        );
        assert_eq!(
            limiter.count_locally("k:12".into(), "k:11".into(), 12),
            (1, 0),
            "a window two back no longer counts"
        );
    }
}
