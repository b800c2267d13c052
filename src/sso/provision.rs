//! The account of an identity a provider vouched for, and its session: the user linked to it;
//! else the user of a verified e-mail when the provider links by e-mail; else a user created
//! through the one user-creation path when the provider creates users. Roles follow
//! `group_mapping`; the session, tokens and audit are those of a password sign-in.

use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::access::db::lockout;
use crate::audit::{self, Actor, AuditAction};
use crate::auth::dto::TokenResponse;
use crate::auth::service::{INVALID_LOGIN, open_session, user_actor};
use crate::domain::{Email, Username};
use crate::http::client::ClientInfo;
use crate::http::error::ApiError;
use crate::realm::Realm;
use crate::sso::Identity;
use crate::sso::db::{self, ProviderRow};
use crate::state::AppState;
use crate::users::roles::RoleInput;
use crate::users::service::{self as users, Credential, NewUser};

/// A wrong password (`counted`), or a check that could not run, of a linked account.
pub async fn settle_failure(
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
pub async fn complete(
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
