//! What a realm's database announces (`NOTIFY`): its catalog changed (a trigger, migration
//! `catalog_changes_announced`), or outbox rows were committed. One connection per realm
//! listens on every channel and wakes the task that waits for each.
//!
//! The connection is its own, outside the request pool, so every connection of the pool serves
//! requests. And one is cheaper than one per task: PostgreSQL wakes every listening connection
//! of a database on each `NOTIFY`, whatever channel it listens on.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::{Notify, watch};

use crate::realm::Realm;

/// A channel a realm's database announces on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The roles, permissions or grants changed.
    Catalog,
    /// Outbox rows were committed.
    Outbox,
}

impl Channel {
    const ALL: [Self; 2] = [Self::Catalog, Self::Outbox];

    /// The PostgreSQL channel's name (the catalog's is also written in the trigger of
    /// migration `catalog_changes_announced`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Catalog => "slm_catalog",
            Self::Outbox => "slm_outbox",
        }
    }
}

/// How long to wait before listening again after the database refused.
const RETRY: Duration = Duration::from_secs(2);

/// The wake-ups of a realm's tasks, one per channel. A wake-up given while its task is busy is
/// kept for its next wait, so none is lost.
#[derive(Debug, Default)]
pub struct Announcements {
    catalog: Notify,
    outbox: Notify,
}

impl Announcements {
    fn of(&self, channel: Channel) -> &Notify {
        match channel {
            Channel::Catalog => &self.catalog,
            Channel::Outbox => &self.outbox,
        }
    }

    /// Waits for an announcement on `channel` (or for a reconnection of the listener, after
    /// which announcements may have been missed).
    pub async fn next(&self, channel: Channel) {
        self.of(channel).notified().await
    }

    fn wake(&self, channel: Channel) {
        self.of(channel).notify_one();
    }

    fn wake_all(&self) {
        Channel::ALL.into_iter().for_each(|c| self.wake(c));
    }
}

/// Listens to `realm`'s database until `shutdown` changes, waking each channel's task.
pub async fn listen(realm: Realm, mut shutdown: watch::Receiver<bool>) {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(RETRY)
        .connect_lazy_with(realm.pool().manager().options().clone());
    let announcements = realm.announcements();
    loop {
        let listening = async {
            let mut listener = PgListener::connect_with(&own).await?;
            let names = Channel::ALL.map(Channel::name);
            listener.listen_all(names).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listening.await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::debug!(realm = realm.name(), error = %err, "cannot listen; retrying");
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        // Whatever was announced while no one listened.
        announcements.wake_all();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => {
                        let channel = notification.channel();
                        if let Some(c) = Channel::ALL.into_iter().find(|c| c.name() == channel) {
                            announcements.wake(c);
                        }
                    }
                    // The connection was lost: listen anew, then wake every task.
                    Ok(None) => break,
                    Err(err) => {
                        tracing::debug!(realm = realm.name(), error = %err, "listener lost");
                        break;
                    }
                },
            }
        }
    }
}
