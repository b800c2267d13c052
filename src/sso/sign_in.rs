//! Signing in through a provider: the initiation (a flow in flight, bound to the browser), the
//! provider's redirect back, and the LDAP form; then the account — linked, linked by a verified
//! e-mail, or created through the one user-creation path — and a session like any other.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditAction};
use crate::auth::dto::TokenResponse;
use crate::auth::service::INVALID_LOGIN;
use crate::auth::sign_in::{login_limit, take_turn};
use crate::credentials::keys::{random_secret, sha256};
use crate::http::client::ClientInfo;
use crate::http::error::ApiError;
use crate::realm::{Realm, RealmId};
use crate::sso::config::Kind;
use crate::sso::db::{self, NewFlow, ProviderRow};
use crate::sso::dto::{ActiveProvider, CallbackQuery, LdapLogin, LoginStart};
use crate::sso::providers::{NOT_FOUND, provider_timeout};
use crate::sso::provision::{complete, settle_failure};
use crate::sso::{Protocol, Start, ldap};
use crate::state::AppState;

/// How long a sign-in may stay at the provider.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// Where a failed sign-in lands.
pub const FAILED: &str = "/login?error=sso_failed";

/// The callback path of a realm, as registered at providers.
pub fn callback_path(realm: RealmId) -> &'static str {
    match realm {
        RealmId::Slm => "/api/auth/sso/callback",
        RealmId::Autobot => "/api/autobot-auth/sso/callback",
    }
}

/// Where a successful sign-in of a realm lands, with its token.
fn landing(app: &AppState, realm: RealmId) -> &str {
    match realm {
        RealmId::Slm => "/sso-callback",
        RealmId::Autobot => &app.settings.sso.autobot_redirect,
    }
}

fn unavailable() -> ApiError {
    ApiError::Unavailable {
        detail: "SSO provider unavailable",
        retry_after_secs: Some(5),
    }
}

/// The active providers, as the login page lists them.
pub async fn active(realm: &Realm) -> Result<Vec<ActiveProvider>, ApiError> {
    let rows = realm
        .read(|mut db| Box::pin(async move { Ok(db::providers(&mut db, None, true).await?) }))
        .await?;
    Ok(rows
        .into_iter()
        .filter(|p| Kind::of(&p.provider_type).is_some())
        .map(|p| ActiveProvider {
            id: p.id,
            name: p.name,
            provider_type: p.provider_type,
            is_social: p.is_social,
        })
        .collect())
}

/// An active provider this server speaks.
async fn active_provider(realm: &Realm, id: Uuid) -> Result<(ProviderRow, Kind), ApiError> {
    let row = realm
        .read(|mut db| Box::pin(async move { Ok(db::provider(&mut db, id).await?) }))
        .await?
        .filter(|p| p.is_active)
        .ok_or(NOT_FOUND)?;
    let kind = Kind::of(&row.provider_type).ok_or(NOT_FOUND)?;
    Ok((row, kind))
}

/// Starts a sign-in at a provider: a flow bound to the browser's `cookie`, and the URL to send
/// the browser to. `origin` is the origin the browser sees (`PUBLIC_URL`); `console`: the
/// sign-in lands in the console's session rather than on the dashboard's page.
pub async fn start(
    app: &AppState,
    realm: &Realm,
    id: Uuid,
    origin: &str,
    cookie: &str,
    console: bool,
) -> Result<LoginStart, ApiError> {
    let (row, kind) = active_provider(realm, id).await?;
    if kind.is_ldap() {
        return Err(ApiError::BadRequest(
            "LDAP providers sign in with POST …/auth/sso/ldap/login".into(),
        ));
    }
    let (state, nonce, verifier) = (random_secret(), random_secret(), random_secret());
    let redirect_uri = format!("{origin}{}", callback_path(realm.id()));
    let start = Start {
        redirect_uri: &redirect_uri,
        state: &state,
        nonce: &nonce,
        pkce_verifier: &verifier,
    };
    let url = async {
        match Protocol::new(kind, &row.config, &app.settings.seal_keys)? {
            Protocol::Oidc(p) => p.start(&start, provider_timeout(app)).await,
            Protocol::Github(p) => p.start(&start),
            Protocol::Ldap(_) => anyhow::bail!("not a redirect provider"),
        }
    }
    .await
    .map_err(|err| {
        tracing::warn!(provider = %row.id, error = %format!("{err:#}"), "SSO initiation failed");
        unavailable()
    })?;
    let (state_hash, browser_hash) = (sha256(&state), sha256(cookie));
    let flow = NewFlow {
        state_hash: &state_hash,
        provider_id: row.id,
        browser_hash: &browser_hash,
        nonce: &nonce,
        pkce_verifier: &verifier,
        redirect_uri: &redirect_uri,
        console,
        ttl: FLOW_TTL,
    };
    let flow = &flow;
    realm
        .read(|mut db| Box::pin(async move { Ok(db::insert_flow(&mut db, flow).await?) }))
        .await?;
    Ok(LoginStart {
        provider_id: row.id,
        provider_type: row.provider_type,
        provider_name: row.name,
        redirect_url: url,
        state,
    })
}

/// Where the provider's redirect back sends the browser.
pub enum Landing {
    /// The dashboard's page, the token in its query (the dashboard's contract).
    Page(String),
    /// The console, its session made of this access token.
    Console(String),
    /// The login page's error (the dashboard's or the console's).
    Failed { console: bool },
}

impl Landing {
    /// The location of the redirect.
    pub fn location(&self, app: &AppState, realm: RealmId) -> String {
        match self {
            Self::Page(token) => format!("{}?token={token}", landing(app, realm)),
            Self::Console(_) => "/console/".into(),
            Self::Failed { console: true } => "/console/login?error=sso_failed".into(),
            Self::Failed { console: false } => FAILED.into(),
        }
    }
}

/// The provider's redirect back: where to send the browser. Every failure is logged with its
/// cause and answered alike.
pub async fn callback(
    app: &AppState,
    realm: &Realm,
    query: CallbackQuery,
    cookie: Option<&str>,
    client: ClientInfo,
) -> Landing {
    let mut console = false;
    match finish_redirect(app, realm, query, cookie, &client, &mut console).await {
        Ok(token) if console => Landing::Console(token),
        Ok(token) => Landing::Page(token),
        Err(reason) => {
            tracing::warn!(realm = realm.name(), reason = %reason, "SSO sign-in refused");
            Landing::Failed { console }
        }
    }
}

async fn finish_redirect(
    app: &AppState,
    realm: &Realm,
    query: CallbackQuery,
    cookie: Option<&str>,
    client: &ClientInfo,
    console: &mut bool,
) -> Result<String, String> {
    if let Some(error) = &query.error {
        let description = query.error_description.as_deref().unwrap_or_default();
        let description: String = description.chars().take(200).collect();
        return Err(format!("the provider answered {error} {description}"));
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        return Err("no code or state".into());
    };
    app.rate_limiter
        .check(login_limit(app), client.ip)
        .await
        .map_err(|_| "the login rate limit".to_owned())?;
    let state_hash = sha256(&state);
    let state_hash = &state_hash;
    let flow = realm
        .read(|mut db| Box::pin(async move { Ok(db::take_flow(&mut db, state_hash).await?) }))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("an unknown, used or expired state")?;
    *console = flow.console && realm.id() == RealmId::Slm;
    if cookie.map(sha256) != Some(flow.browser_hash.clone()) {
        return Err("the state belongs to another browser".into());
    }
    let (row, kind) = active_provider(realm, flow.provider_id)
        .await
        .map_err(|_| "the provider is gone or inactive".to_owned())?;
    let timeout = provider_timeout(app);
    let identity = async {
        match Protocol::new(kind, &row.config, &app.settings.seal_keys)? {
            Protocol::Oidc(p) => {
                p.finish(
                    &code,
                    &flow.redirect_uri,
                    &flow.pkce_verifier,
                    &flow.nonce,
                    timeout,
                )
                .await
            }
            Protocol::Github(p) => {
                p.finish(&code, &flow.redirect_uri, &flow.pkce_verifier, timeout)
                    .await
            }
            Protocol::Ldap(_) => anyhow::bail!("not a redirect provider"),
        }
    }
    .await;
    let identity = match identity {
        Ok(identity) => identity,
        Err(err) => {
            let reason = format!("{err:#}");
            refused(realm, &row, client, None, &reason).await;
            return Err(reason);
        }
    };
    match complete(app, realm, &row, &identity, client, None).await {
        Ok(Ok(tokens)) => Ok(tokens.access_token),
        Ok(Err(reason)) => Err(reason.into()),
        Err(err) => Err(format!("{err}")),
    }
}

/// Audits a refused SSO sign-in as `login_failed`, naming the provider, on its own.
async fn refused(
    realm: &Realm,
    row: &ProviderRow,
    client: &ClientInfo,
    target: Option<Uuid>,
    reason: &str,
) {
    let actor = Actor::anonymous(client.clone());
    let detail = json!({"provider_id": row.id, "provider": row.name, "reason": reason});
    let written = realm
        .read(|mut db| {
            Box::pin(async move {
                audit::record(
                    &mut db,
                    realm,
                    &actor,
                    AuditAction::LoginFailed,
                    target,
                    detail,
                )
                .await
            })
        })
        .await;
    if let Err(err) = written {
        tracing::warn!(error = %err, "could not record a refused SSO sign-in");
    }
}

/// A login with a directory's username and password; 401 alike for every refusal.
pub async fn ldap_login(
    app: &AppState,
    realm: &Realm,
    body: LdapLogin,
    client: ClientInfo,
) -> Result<TokenResponse, ApiError> {
    app.rate_limiter.check(login_limit(app), client.ip).await?;
    let (row, kind) = match active_provider(realm, body.provider_id).await {
        Ok((row, kind)) if kind.is_ldap() => (row, kind),
        Ok(_) | Err(ApiError::NotFound(_)) => return Err(INVALID_LOGIN),
        Err(other) => return Err(other),
    };
    let timeout = provider_timeout(app);
    let directory = ldap::Directory::new(
        kind,
        row.config.as_object().unwrap_or(&Default::default()),
        &app.settings.seal_keys,
    )
    .map_err(|err| {
        tracing::warn!(provider = %row.id, error = %format!("{err:#}"), "LDAP provider unusable");
        unavailable()
    })?;
    let down = |err: anyhow::Error| {
        tracing::warn!(provider = %row.id, error = %format!("{err:#}"), "LDAP sign-in failed");
        unavailable()
    };
    let work = async {
        let mut conn = directory.open(timeout).await.map_err(down)?;
        let Some(dn) = conn.locate(&body.username).await.map_err(down)? else {
            return Ok(Err(("unknown_user", None)));
        };
        // A directory user already known here counts towards its account's lockout.
        let external_id = ldap::external_id(&dn);
        let (provider_id, external_id) = (row.id, &external_id);
        let linked = realm
            .read(|mut db| {
                Box::pin(async move { Ok(db::link(&mut db, provider_id, external_id).await?) })
            })
            .await?
            .map(|link| link.user_id);
        let attempt = Uuid::now_v7();
        if let Some(user_id) = linked {
            let turn = take_turn(app, realm, user_id, attempt).await?;
            if !turn.reserved {
                return Ok(Err(("locked", Some(user_id))));
            }
        }
        let verified = conn.verify(&dn, &body.username, &body.password).await;
        let identity = match verified {
            Ok(Some(identity)) => identity,
            Ok(None) | Err(_) => {
                if let Some(user_id) = linked {
                    settle_failure(app, realm, user_id, attempt, verified.is_ok()).await?;
                }
                verified.map_err(down)?;
                return Ok(Err(("invalid_password", linked)));
            }
        };
        let turn = linked.map(|user_id| (user_id, attempt));
        Ok(Ok((identity, turn)))
    };
    let outcome: Result<_, ApiError> = tokio::time::timeout(timeout * 2, work)
        .await
        .unwrap_or_else(|_| Err(unavailable()));
    let (identity, turn) = match outcome? {
        Ok(found) => found,
        Err((reason, target)) => {
            refused(realm, &row, &client, target, reason).await;
            return Err(INVALID_LOGIN);
        }
    };
    match complete(app, realm, &row, &identity, &client, turn).await? {
        Ok(tokens) => Ok(tokens),
        Err(_) => Err(INVALID_LOGIN),
    }
}
