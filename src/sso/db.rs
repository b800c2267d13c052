//! The SQL of SSO: providers (`sso_providers`) and the links of users to them
//! (`user_sso_links`), both the AutoBot platform's tables, and the server's sign-ins in flight
//! (`slm_server.sso_flows`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

/// A provider as stored (its config's secrets sealed).
#[derive(Debug, Clone)]
pub struct ProviderRow {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub provider_type: String,
    pub name: String,
    pub config: serde_json::Value,
    pub is_active: bool,
    pub is_social: bool,
    pub allow_user_creation: bool,
    pub default_role: Option<String>,
    pub group_mapping: serde_json::Value,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The providers, newest first, of `org_id` (when given) and active (when asked).
pub async fn providers(
    db: &mut PgConnection,
    org_id: Option<Uuid>,
    active_only: bool,
) -> sqlx::Result<Vec<ProviderRow>> {
    sqlx::query_as!(
        ProviderRow,
        r#"SELECT id, org_id, provider_type::text AS "provider_type!", name::text AS "name!",
                  config, is_active, is_social, allow_user_creation, default_role::text,
                  group_mapping, last_sync_at, created_at, updated_at
           FROM public.sso_providers
           WHERE ($1::uuid IS NULL OR org_id = $1) AND (NOT $2 OR is_active)
           ORDER BY created_at DESC, id DESC"#,
        org_id,
        active_only,
    )
    .fetch_all(&mut *db)
    .await
}

pub async fn provider(db: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ProviderRow>> {
    sqlx::query_as!(
        ProviderRow,
        r#"SELECT id, org_id, provider_type::text AS "provider_type!", name::text AS "name!",
                  config, is_active, is_social, allow_user_creation, default_role::text,
                  group_mapping, last_sync_at, created_at, updated_at
           FROM public.sso_providers WHERE id = $1"#,
        id,
    )
    .fetch_optional(&mut *db)
    .await
}

/// A provider locked for a change.
pub async fn lock(db: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ProviderRow>> {
    sqlx::query_as!(
        ProviderRow,
        r#"SELECT id, org_id, provider_type::text AS "provider_type!", name::text AS "name!",
                  config, is_active, is_social, allow_user_creation, default_role::text,
                  group_mapping, last_sync_at, created_at, updated_at
           FROM public.sso_providers WHERE id = $1 FOR UPDATE"#,
        id,
    )
    .fetch_optional(&mut *db)
    .await
}

/// Writes a provider: a new one, or the new state of an existing one.
pub async fn upsert(db: &mut PgConnection, p: &ProviderRow) -> sqlx::Result<()> {
    sqlx::query!(
        r"INSERT INTO public.sso_providers (id, org_id, provider_type, name, config, is_active,
              is_social, allow_user_creation, default_role, group_mapping)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
          ON CONFLICT (id) DO UPDATE SET name = $4, config = $5, is_active = $6, is_social = $7,
              allow_user_creation = $8, default_role = $9, group_mapping = $10,
              updated_at = now()",
        p.id,
        p.org_id,
        p.provider_type,
        p.name,
        p.config,
        p.is_active,
        p.is_social,
        p.allow_user_creation,
        p.default_role,
        p.group_mapping,
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

pub async fn delete(db: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query!("DELETE FROM public.sso_providers WHERE id = $1", id)
        .execute(&mut *db)
        .await
        .map(|r| r.rows_affected() > 0)
}

// ---------------------------------------------------------------------------------------------
// Sign-ins in flight.

/// A sign-in started at a provider, waiting for its redirect back.
pub struct NewFlow<'a> {
    pub state_hash: &'a [u8],
    pub provider_id: Uuid,
    pub browser_hash: &'a [u8],
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    pub redirect_uri: &'a str,
    /// The console's sign-in (else the dashboard's).
    pub console: bool,
    pub ttl: std::time::Duration,
}

pub async fn insert_flow(db: &mut PgConnection, flow: &NewFlow<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r"WITH expired AS (
              DELETE FROM slm_server.sso_flows WHERE expires_at < now() - interval '1 hour'
          )
          INSERT INTO slm_server.sso_flows (state_hash, provider_id, browser_hash, nonce,
              pkce_verifier, redirect_uri, landing, expires_at)
          VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $8 THEN 'console' ELSE 'dashboard' END,
                  now() + make_interval(secs => $7))",
        flow.state_hash,
        flow.provider_id,
        flow.browser_hash,
        flow.nonce,
        flow.pkce_verifier,
        flow.redirect_uri,
        flow.ttl.as_secs_f64(),
        flow.console,
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}

/// A sign-in in flight, taken for its redirect back.
#[derive(Debug)]
pub struct Flow {
    pub provider_id: Uuid,
    pub browser_hash: Vec<u8>,
    pub nonce: String,
    pub pkce_verifier: String,
    pub redirect_uri: String,
    pub console: bool,
}

/// Takes the live flow of a state: it is spent, whatever happens next (single use).
pub async fn take_flow(db: &mut PgConnection, state_hash: &[u8]) -> sqlx::Result<Option<Flow>> {
    sqlx::query_as!(
        Flow,
        r#"UPDATE slm_server.sso_flows SET used_at = now()
          WHERE state_hash = $1 AND used_at IS NULL AND expires_at > now()
          RETURNING provider_id, browser_hash, nonce, pkce_verifier, redirect_uri,
                    landing = 'console' AS "console!""#,
        state_hash,
    )
    .fetch_optional(&mut *db)
    .await
}

// ---------------------------------------------------------------------------------------------
// Links of users to providers.

/// A user's link to a provider.
#[derive(Debug)]
pub struct Link {
    pub user_id: Uuid,
    pub metadata: serde_json::Value,
}

/// The link of an identity at a provider, locked.
pub async fn link(
    db: &mut PgConnection,
    provider_id: Uuid,
    external_id: &str,
) -> sqlx::Result<Option<Link>> {
    sqlx::query_as!(
        Link,
        r"SELECT user_id, metadata FROM public.user_sso_links
          WHERE provider_id = $1 AND external_id = $2 FOR UPDATE",
        provider_id,
        external_id,
    )
    .fetch_optional(&mut *db)
    .await
}

/// Links a user to an identity at a provider (or records its sign-in on an existing link).
pub async fn record_link(
    db: &mut PgConnection,
    user_id: Uuid,
    provider_id: Uuid,
    external_id: &str,
    external_email: Option<&str>,
    metadata: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        r"INSERT INTO public.user_sso_links (id, user_id, provider_id, external_id,
              external_email, metadata, last_login_at)
          VALUES ($1, $2, $3, $4, $5, $6, now())
          ON CONFLICT (provider_id, external_id) DO UPDATE SET external_email = $5,
              metadata = $6, last_login_at = now(), updated_at = now()",
        Uuid::now_v7(),
        user_id,
        provider_id,
        external_id,
        external_email.map(|e| e.chars().take(255).collect::<String>()),
        Json(metadata) as _,
    )
    .execute(&mut *db)
    .await
    .map(|_| ())
}
