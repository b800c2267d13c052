//! Signing in to the console (an SLM user): the password, the MFA step, SSO buttons; the forced
//! first password change; signing out. The same services as `/api/auth`.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use maud::{Markup, html};
use secrecy::SecretString;

use crate::access::authz::{Caller, PasswordOwner, SignedIn};
use crate::access::cookie::{signed_in, signed_out};
use crate::auth::dto::LoginResponse;
use crate::auth::{service, sign_in};
use crate::console::layout::{field, form, page};
use crate::console::session::{ConsoleForm, Csrf};
use crate::http::client::ClientInfo;
use crate::http::error::ApiError;
use crate::sso::config::Kind;
use crate::state::Target;

/// The message of a refusal, for the page that shows it (never the cause of a 5xx).
pub fn message(err: &ApiError) -> String {
    match err.status().is_server_error() {
        true => "The server cannot do this right now; try again shortly.".into(),
        false => crate::http::error::plain(err),
    }
}

async fn login_page(target: &Target, csrf: &str, error: Option<&str>) -> Markup {
    let providers = crate::sso::sign_in::active(&target.realm)
        .await
        .unwrap_or_default();
    page(
        "Sign in",
        None,
        html! {
            @if let Some(error) = error { div.problem role="alert" { p { (error) } } }
            section {
                (form("/console/login", csrf, html! {
                    (field("Username or e-mail", "username", "text", None, true))
                    (field("Password", "password", "password", None, true))
                    button type="submit" { "Sign in" }
                }))
            }
            @if !providers.is_empty() {
                section {
                    h2 { "Single sign-on" }
                    @for provider in &providers {
                        @if Kind::of(&provider.provider_type).is_some_and(Kind::is_ldap) {
                            (form(&format!("/console/login/ldap/{}", provider.id), csrf, html! {
                                (field(&format!("{} username", provider.name), "username", "text", None, true))
                                (field(&format!("{} password", provider.name), "password", "password", None, true))
                                button type="submit" { "Sign in with " (provider.name) }
                            }))
                        } @else {
                            (form(&format!("/console/login/sso/{}", provider.id), csrf, html! {
                                button type="submit" { "Sign in with " (provider.name) }
                            }))
                        }
                    }
                }
            }
            p { a href="/request-access" { "No account? Ask for AutoBot access" } }
        },
    )
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    error: Option<String>,
}

pub async fn show_login(
    State(target): State<Target>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    crate::http::extract::ApiQuery(query): crate::http::extract::ApiQuery<LoginQuery>,
) -> Markup {
    let error = query
        .error
        .map(|_| "Single sign-on failed. Try again, or sign in with your password.");
    login_page(&target, &csrf, error).await
}

/// Where a signed-in browser goes: the password first when it must be changed.
fn enter(target: &Target, jar: CookieJar, token: String, must_change: bool) -> Response {
    let jar = signed_in(&target.app, jar, token);
    let next = if must_change {
        "/console/password"
    } else {
        "/console/"
    };
    (jar, Redirect::to(next)).into_response()
}

pub async fn login(
    State(target): State<Target>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    client: ClientInfo,
    jar: CookieJar,
    fields: ConsoleForm,
) -> Response {
    let creds = sign_in::Credentials {
        login: fields.get("username").unwrap_or_default().to_owned(),
        password: SecretString::from(fields.get("password").unwrap_or_default()),
        code: None,
    };
    match sign_in::login(&target.app, &target.realm, creds, client).await {
        Ok(LoginResponse::Tokens(tokens)) => {
            let must_change = tokens.user.must_change_password;
            enter(&target, jar, tokens.access_token, must_change)
        }
        Ok(LoginResponse::Challenge(challenge)) => {
            mfa_page(&csrf, &challenge.temp_token, None).into_response()
        }
        Err(err) => (
            err.status(),
            login_page(&target, &csrf, Some(&message(&err))).await,
        )
            .into_response(),
    }
}

fn mfa_page(csrf: &str, temp_token: &str, error: Option<&str>) -> Markup {
    page(
        "Second factor",
        None,
        html! {
            @if let Some(error) = error { div.problem role="alert" { p { (error) } } }
            section {
                p { "Enter the six-digit code of your authenticator app, or one of your backup codes." }
                (form("/console/login/mfa", csrf, html! {
                    input type="hidden" name="temp_token" value=(temp_token);
                    (field("Code", "code", "text", None, true))
                    button type="submit" { "Verify" }
                }))
            }
        },
    )
}

pub async fn login_mfa(
    State(target): State<Target>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    client: ClientInfo,
    jar: CookieJar,
    fields: ConsoleForm,
) -> Response {
    let temp_token = fields.get("temp_token").unwrap_or_default().to_owned();
    let code = SecretString::from(fields.get("code").unwrap_or_default());
    let outcome = sign_in::verify_login(
        &target.app,
        &target.realm,
        &SecretString::from(temp_token.clone()),
        &code,
        client,
    )
    .await;
    match outcome {
        Ok(tokens) => {
            let must_change = tokens.user.must_change_password;
            enter(&target, jar, tokens.access_token, must_change)
        }
        Err(err) => (
            err.status(),
            mfa_page(&csrf, &temp_token, Some(&message(&err))),
        )
            .into_response(),
    }
}

/// Starts an SSO sign-in that lands in the console.
pub async fn login_sso(
    State(target): State<Target>,
    crate::http::extract::ApiPath(crate::sso::dto::ProviderPath { provider_id }): crate::http::extract::ApiPath<crate::sso::dto::ProviderPath>,
    origin: crate::sso::handlers::Origin,
    jar: CookieJar,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    let crate::sso::handlers::Origin(origin) = origin;
    let (jar, started) =
        crate::sso::handlers::begin(&target, provider_id, &origin, jar, true).await?;
    Ok((jar, Redirect::to(&started.redirect_url)).into_response())
}

pub async fn login_ldap(
    State(target): State<Target>,
    crate::http::extract::ApiPath(crate::sso::dto::ProviderPath { provider_id }): crate::http::extract::ApiPath<crate::sso::dto::ProviderPath>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    client: ClientInfo,
    jar: CookieJar,
    fields: ConsoleForm,
) -> Response {
    let body = crate::sso::dto::LdapLogin {
        provider_id,
        username: fields.get("username").unwrap_or_default().to_owned(),
        password: SecretString::from(fields.get("password").unwrap_or_default()),
    };
    match crate::sso::sign_in::ldap_login(&target.app, &target.realm, body, client).await {
        Ok(tokens) => enter(
            &target,
            jar,
            tokens.access_token,
            tokens.user.must_change_password,
        ),
        Err(err) => (
            err.status(),
            login_page(&target, &csrf, Some(&message(&err))).await,
        )
            .into_response(),
    }
}

pub async fn logout(
    State(target): State<Target>,
    Caller(me): SignedIn,
    jar: CookieJar,
    _fields: ConsoleForm,
) -> Result<Response, ApiError> {
    service::logout(&target.realm, &me).await?;
    Ok((signed_out(&target.app, jar), Redirect::to("/console/login")).into_response())
}

pub async fn show_password(
    Caller(me): PasswordOwner,
    Extension(Csrf(csrf)): Extension<Csrf>,
) -> Markup {
    password_page(&me, &csrf, None)
}

fn password_page(
    me: &crate::access::principal::Principal,
    csrf: &str,
    error: Option<&str>,
) -> Markup {
    page(
        "Change your password",
        Some(me),
        html! {
            @if me.must_change_password {
                div.notice role="status" { p { "Choose your own password before anything else." } }
            }
            @if let Some(error) = error { div.problem role="alert" { p { (error) } } }
            section {
                (form("/console/password", csrf, html! {
                    (field("Current password", "current_password", "password", None, true))
                    (field("New password (8–128 characters, not a common one)", "new_password", "password", None, true))
                    button type="submit" { "Change password" }
                }))
            }
        },
    )
}

pub async fn change_password(
    State(target): State<Target>,
    Caller(me): PasswordOwner,
    Extension(Csrf(csrf)): Extension<Csrf>,
    fields: ConsoleForm,
) -> Response {
    let current = SecretString::from(fields.get("current_password").unwrap_or_default());
    let new = SecretString::from(fields.get("new_password").unwrap_or_default());
    match service::change_password(&target.app, &target.realm, &me, &current, &new).await {
        Ok(()) => Redirect::to("/console/").into_response(),
        Err(err) => (
            err.status(),
            password_page(&me, &csrf, Some(&message(&err))),
        )
            .into_response(),
    }
}
