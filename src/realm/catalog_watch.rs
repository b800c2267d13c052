//! Keeps each realm's catalog current on every replica. A trigger on `roles`, `permissions` and
//! `role_permissions` announces each committed change (migration `catalog_changes_announced`,
//! [`Channel::Catalog`]), whoever writes them, so a replica reads its catalog again as soon as it
//! changed. The catalog's fingerprint says whether it did; a slow periodic check and a check
//! after each (re)connection of the listener cover announcements sent while none listened.

use std::time::Duration;

use tokio::sync::watch;

use crate::realm::announcements::Channel;
use crate::realm::{Realm, SchemaState};

/// How often the catalog is checked without an announcement.
const FALLBACK_CHECK: Duration = Duration::from_secs(60);

/// Runs until `shutdown` changes.
pub async fn run(realm: Realm, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(FALLBACK_CHECK) => {}
            _ = realm.announcements().next(Channel::Catalog) => {}
        }
        refresh(&realm).await;
    }
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
