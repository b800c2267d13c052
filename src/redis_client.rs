//! The Redis connection shared by the rate limiter and the outbox relay.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};

/// A Redis connection that reconnects by itself and never blocks a request for long: commands
/// time out after half a second, so Redis being down degrades features instead of hanging.
#[derive(Clone)]
pub struct Redis {
    manager: ConnectionManager,
}

impl Redis {
    /// A connection to `url` (`redis://` or `rediss://`, with a password as
    /// `redis://:password@host`); a `rediss://` server is verified against `ca_file` when
    /// given, else against the system's roots.
    pub fn new(url: &SecretString, ca_file: Option<&str>) -> anyhow::Result<Self> {
        let url = url.expose_secret();
        let client = match ca_file {
            Some(path) => {
                let root_cert = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("cannot read the CA file {path} (REDIS_CA_FILE): {e}")
                })?;
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )?
            }
            None => redis::Client::open(url)?,
        };
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
        self.probe().await.is_ok()
    }

    /// PING, with the reason when it fails (for `check`).
    pub async fn probe(&self) -> Result<(), String> {
        let mut conn = self.conn();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
