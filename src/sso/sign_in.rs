//! Signing in through a provider: the initiation (a flow in flight, bound to the browser), the
//! provider's redirect back, and the LDAP form; then the account — linked, linked by a verified
//! e-mail, or created through the one user-creation path — and a session like any other.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::access::db::lockout;
use crate::audit::{self, Actor, AuditAction};
use crate::auth::dto::TokenResponse;
use crate::auth::service::{INVALID_LOGIN, open_session, user_actor};
use crate::auth::sign_in::{login_limit, take_turn};
use crate::credentials::keys::{random_secret, sha256};
use crate::domain::{Email, Username};
use crate::http::client::ClientInfo;
use crate::http::error::ApiError;
use crate::realm::{Realm, RealmId};
use crate::sso::config::Kind;
use crate::sso::db::{self, NewFlow, ProviderRow};
use crate::sso::dto::{ActiveProvider, CallbackQuery, LdapLogin, LoginStart};
use crate::sso::providers::{NOT_FOUND, provider_timeout};
use crate::sso::{Identity, Protocol, Start, ldap};
use crate::state::AppState;
use crate::users::roles::RoleInput;
use crate::users::service::{self as users, Credential, NewUser};

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
/// the browser to. `origin` is the origin the browser sees (`PUBLIC_URL`).
pub async fn start(
    app: &AppState,
    realm: &Realm,
    id: Uuid,
    origin: &str,
    cookie: &str,
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

/// The provider's redirect back: where to send the browser (its token in the query, or the
/// login page's error). Every failure is logged with its cause and answered alike.
pub async fn callback(
    app: &AppState,
    realm: &Realm,
    query: CallbackQuery,
    cookie: Option<&str>,
    client: ClientInfo,
) -> String {
    match finish_redirect(app, realm, query, cookie, &client).await {
        Ok(token) => format!("{}?token={token}", landing(app, realm.id())),
        Err(reason) => {
            tracing::warn!(realm = realm.name(), reason = %reason, "SSO sign-in refused");
            FAILED.to_owned()
        }
    }
}

async fn finish_redirect(
    app: &AppState,
    realm: &Realm,
    query: CallbackQuery,
    cookie: Option<&str>,
    client: &ClientInfo,
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

/// A wrong password (`counted`), or a check that could not run, of a linked account.
async fn settle_failure(
    app: &AppState,
    realm: &Realm,
    user_id: Uuid,
    attempt: Uuid,
    counted: bool,
) -> Result<(), ApiError> {
    let policy = app.settings.limits.lockout;
    realm
        .transaction(|mut tx| {
            Box::pin(async move {
                match counted {
                    true => {
                        lockout::failed(
                            &mut tx,
                            user_id,
                            attempt,
                            policy.threshold,
                            policy.duration,
                        )
                        .await?;
                    }
                    false => lockout::release(&mut tx, user_id, attempt).await?,
                }
                Ok(())
            })
        })
        .await
}

/// The account of an identity, and a session for it: the link's user; else the user of a
/// verified e-mail when the provider links by e-mail; else a new user when the provider creates
/// users. `Ok(Err(reason))`: refused, and audited as such. `turn`: the lockout place an LDAP
/// sign-in holds.
async fn complete(
    app: &AppState,
    realm: &Realm,
    row: &ProviderRow,
    identity: &Identity,
    client: &ClientInfo,
    turn: Option<(Uuid, Uuid)>,
) -> Result<Result<TokenResponse, &'static str>, ApiError> {
    let outcome = realm
        .transaction(|mut tx| {
            Box::pin(async move {
                let account = account(&mut tx, realm, row, identity, client).await?;
                let (user_id, provisioned) = match account {
                    Ok(found) => found,
                    Err((reason, target)) => {
                        let actor = Actor::anonymous(client.clone());
                        let detail = json!({"provider_id": row.id, "provider": row.name, "reason": reason});
                        let action = AuditAction::LoginFailed;
                        audit::record(&mut tx, realm, &actor, action, target, detail).await?;
                        return Ok(Err(reason));
                    }
                };
                match turn {
                    Some((_, attempt)) => lockout::succeeded(&mut tx, user_id, attempt).await?,
                    None if lockout::is_locked(&mut tx, user_id).await? => {
                        let actor = Actor::anonymous(client.clone());
                        let detail = json!({"provider_id": row.id, "provider": row.name, "reason": "locked"});
                        audit::record(&mut tx, realm, &actor, AuditAction::LoginFailed, Some(user_id), detail)
                            .await?;
                        return Ok(Err("locked"));
                    }
                    None => {}
                }
                let user = users::fetch(&mut tx, realm, user_id).await?.ok_or(INVALID_LOGIN)?;
                let me = user_actor(realm, user_id, &user.username, client);
                let mapped = mapped_roles(row, identity);
                let mut names = mapped.clone();
                if provisioned {
                    names.extend(row.default_role.clone());
                }
                crate::users::access::apply_provider_roles(&mut tx, realm, &me, user_id, &names, provisioned)
                    .await?;
                let detail = json!({"provider_id": row.id, "provider": row.name,
                    "provider_type": row.provider_type, "groups": mapped});
                let tokens = open_session(&mut tx, realm, &me, user_id, AuditAction::SsoLogin, detail).await?;
                Ok(Ok(tokens))
            })
        })
        .await;
    // A refusal or a failure frees the lockout place an LDAP sign-in held.
    if !matches!(outcome, Ok(Ok(_)))
        && let Some((user_id, attempt)) = turn
    {
        let _ = settle_failure(app, realm, user_id, attempt, false).await;
    }
    outcome
}

/// The roles `group_mapping` gives an identity's groups (DNs compared case-insensitively).
fn mapped_roles(row: &ProviderRow, identity: &Identity) -> Vec<String> {
    let Value::Object(mapping) = &row.group_mapping else {
        return Vec::new();
    };
    let mut roles: Vec<String> = mapping
        .iter()
        .filter(|(group, _)| {
            identity
                .groups
                .iter()
                .any(|g| g.eq_ignore_ascii_case(group))
        })
        .filter_map(|(_, role)| role.as_str().map(str::to_owned))
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

type Account = Result<(Uuid, bool), (&'static str, Option<Uuid>)>;

/// The user an identity signs in as, and whether the provider made it (see [`complete`]).
async fn account(
    db: &mut PgConnection,
    realm: &Realm,
    row: &ProviderRow,
    identity: &Identity,
    client: &ClientInfo,
) -> Result<Account, ApiError> {
    let metadata = |provisioned: bool| {
        json!({"provisioned": provisioned, "username": identity.username,
               "display_name": identity.display_name})
    };
    let email = identity.email.as_deref();
    if let Some(link) = db::link(db, row.id, &identity.external_id).await? {
        let live = users::fetch(db, realm, link.user_id).await?;
        if !live.as_ref().is_some_and(|u| u.is_active) {
            return Ok(Err(("inactive", live.map(|u| u.id))));
        }
        let provisioned = link.metadata["provisioned"].as_bool().unwrap_or(false);
        db::record_link(
            db,
            link.user_id,
            row.id,
            &identity.external_id,
            email,
            &metadata(provisioned),
        )
        .await?;
        return Ok(Ok((link.user_id, provisioned)));
    }
    let link_by_email = row.config["link_by_email"].as_bool().unwrap_or(false);
    let existing = match email {
        Some(email) => users::with_email(db, email).await?,
        None => None,
    };
    let user_id = match existing {
        Some(id) if identity.email_verified && link_by_email => {
            let user = users::fetch(db, realm, id).await?;
            if !user.is_some_and(|u| u.is_active) {
                return Ok(Err(("inactive", Some(id))));
            }
            db::record_link(
                db,
                id,
                row.id,
                &identity.external_id,
                email,
                &metadata(false),
            )
            .await?;
            linked(db, realm, row, identity, id, false, client).await?;
            return Ok(Ok((id, false)));
        }
        // An address held by someone this provider may not vouch for.
        Some(id) => return Ok(Err(("email_of_another_account", Some(id)))),
        None if !row.allow_user_creation => return Ok(Err(("no_account", None))),
        None => {
            let Some(new) = new_user(db, row, identity).await? else {
                return Ok(Err(("no_usable_email", None)));
            };
            let actor = Actor {
                username: Some(format!("sso:{}", row.name)),
                ..Actor::anonymous(client.clone())
            };
            let user = users::create_in(db, realm, &actor, &new, None).await?;
            db::record_link(
                db,
                user.id,
                row.id,
                &identity.external_id,
                email,
                &metadata(true),
            )
            .await?;
            linked(db, realm, row, identity, user.id, true, client).await?;
            user.id
        }
    };
    Ok(Ok((user_id, true)))
}

/// Audits a new link as `sso_linked`.
async fn linked(
    db: &mut PgConnection,
    realm: &Realm,
    row: &ProviderRow,
    identity: &Identity,
    user_id: Uuid,
    created: bool,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    let detail = json!({"provider_id": row.id, "provider": row.name,
        "external_id": identity.external_id, "created": created});
    let actor = Actor::anonymous(client.clone());
    audit::record(
        db,
        realm,
        &actor,
        AuditAction::SsoLinked,
        Some(user_id),
        detail,
    )
    .await
}

/// The user a provider creates for an identity: its username (`preferred_username` when valid
/// and free, else the e-mail's local part with a number added), its e-mail, no password.
async fn new_user(
    db: &mut PgConnection,
    row: &ProviderRow,
    identity: &Identity,
) -> Result<Option<NewUser>, ApiError> {
    let Some(email) = identity.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
        return Ok(None);
    };
    let local: String = email
        .as_str()
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(44)
        .collect();
    let base = format!("{local:_<3}");
    let candidates = identity
        .username
        .iter()
        .cloned()
        .chain(std::iter::once(base.clone()))
        .chain((2..100).map(|n| format!("{base}{n}")));
    let mut username = None;
    for candidate in candidates {
        if let Ok(name) = Username::parse(&candidate)
            && !users::username_taken(db, name.as_str()).await?
        {
            username = Some(name);
            break;
        }
    }
    let Some(username) = username else {
        return Ok(None);
    };
    Ok(Some(NewUser {
        username,
        email,
        display_name: identity.display_name.clone(),
        credential: Credential::None,
        roles: RoleInput {
            names: Some(row.default_role.iter().cloned().collect()),
            ids: None,
        },
        admin: false,
        is_active: true,
        must_change_password: false,
        org_id: row.org_id,
    }))
}
