//! Keeps each realm's catalog current on every replica. A trigger on `roles`, `permissions` and
//! `role_permissions` announces each committed change on [`CHANNEL`] (migration
//! `catalog_changes_announced`), whoever writes them, so a replica reads its catalog again as
//! soon as it changed. The catalog's fingerprint says whether it did; a slow periodic check and a
//! check after each (re)connection of the listener cover announcements sent while none listened.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::realm::{Realm, SchemaState};

/// The PostgreSQL channel the trigger announces on.
const CHANNEL: &str = "slm_catalog";
/// How often the catalog is checked without an announcement.
const FALLBACK_CHECK: Duration = Duration::from_secs(60);
/// How long to wait before listening again after the database refused.
const RETRY: Duration = Duration::from_secs(2);

/// Runs until `shutdown` changes.
pub async fn run(realm: Realm, mut shutdown: watch::Receiver<bool>) {
    let mut listener: Option<PgListener> = None;
    loop {
        if listener.is_none() {
            listener = listen(&realm).await;
            // Whatever changed while no one listened.
            refresh(&realm).await;
        }
        let Some(active) = listener.as_mut() else {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(RETRY) => continue,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(FALLBACK_CHECK) => refresh(&realm).await,
            received = active.try_recv() => match received {
                // An announcement; or the connection was lost and is back (Ok(None)), and
                // announcements may have been missed meanwhile.
                Ok(_) => refresh(&realm).await,
                Err(err) => {
                    tracing::debug!(realm = realm.name(), error = %err, "catalog listener lost");
                    listener = None;
                }
            },
        }
    }
}

async fn listen(realm: &Realm) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(realm.pool()).await.ok()?;
    listener.listen(CHANNEL).await.ok()?;
    Some(listener)
}

/// Reads the catalog again if it changed; a realm not yet serving reads it when it opens.
async fn refresh(realm: &Realm) {
    if realm.schema() != SchemaState::Ready {
        return;
    }
    match realm.refresh_catalog().await {
        Ok(true) => tracing::info!(realm = realm.name(), "roles changed; catalog read again"),
        Ok(false) => {}
        Err(err) => tracing::debug!(realm = realm.name(), error = %err, "roles not checked now"),
    }
}
