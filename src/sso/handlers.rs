//! SSO endpoints: the providers of a realm (`/api/sso-providers`, `/api/autobot-sso-providers`,
//! SLM admins), and signing in through them (`…/auth/sso/…` of each realm, anyone).

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::access::authz::CanManageSso;
use crate::credentials::keys::random_secret;
use crate::http::client::ClientInfo;
use crate::http::error::{ApiError, HTTPValidationError, HttpError};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::raw_errors::Peer;
use crate::sso::dto::{
    ActiveProvider, CallbackQuery, CreateProvider, LdapLogin, LdapToken, LoginStart, ProviderList,
    ProviderListQuery, ProviderPath, ProviderResponse, TestResponse, UpdateProvider,
};
use crate::sso::providers;
use crate::sso::sign_in::{self, FLOW_TTL, Landing};
use crate::state::Target;

/// The cookie that binds a sign-in in flight to the browser that started it.
pub const FLOW_COOKIE: &str = "slm_sso";

/// List the realm's SSO providers (secrets masked).
#[utoipa::path(get, path = "", params(ProviderListQuery),
    responses((status = 200, body = ProviderList)), security(("bearer" = [])))]
pub async fn list_providers(
    State(target): State<Target>,
    op: CanManageSso,
    ApiQuery(query): ApiQuery<ProviderListQuery>,
) -> Result<ApiJson<ProviderList>, ApiError> {
    let active_only = query.active_only.unwrap_or(false);
    let providers = providers::list(&target.realm, &op, query.org_id, active_only).await?;
    let total = i64::try_from(providers.len()).unwrap_or(i64::MAX);
    Ok(ApiJson(ProviderList { providers, total }))
}

/// Add an SSO provider; its `config` is checked for its type and its secrets sealed.
#[utoipa::path(post, path = "", request_body = CreateProvider,
    responses((status = 201, body = ProviderResponse), (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn create_provider(
    State(target): State<Target>,
    op: CanManageSso,
    ApiJson(body): ApiJson<CreateProvider>,
) -> Result<impl IntoResponse, ApiError> {
    let created = providers::create(&target.app, &target.realm, &op, body).await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// One SSO provider (secrets masked).
#[utoipa::path(get, path = "/{provider_id}", params(ProviderPath),
    responses((status = 200, body = ProviderResponse), (status = 404, body = HttpError)),
    security(("bearer" = [])))]
pub async fn get_provider(
    State(target): State<Target>,
    op: CanManageSso,
    ApiPath(path): ApiPath<ProviderPath>,
) -> Result<ApiJson<ProviderResponse>, ApiError> {
    providers::get(&target.realm, &op, path.provider_id)
        .await
        .map(ApiJson)
}

/// Change an SSO provider; `"********"` for a secret keeps the stored one.
#[utoipa::path(patch, path = "/{provider_id}", params(ProviderPath), request_body = UpdateProvider,
    responses((status = 200, body = ProviderResponse), (status = 404, body = HttpError),
              (status = 422, body = HTTPValidationError)),
    security(("bearer" = [])))]
pub async fn update_provider(
    State(target): State<Target>,
    op: CanManageSso,
    ApiPath(path): ApiPath<ProviderPath>,
    ApiJson(body): ApiJson<UpdateProvider>,
) -> Result<ApiJson<ProviderResponse>, ApiError> {
    let updated = providers::update(&target.app, &target.realm, &op, path.provider_id, body);
    updated.await.map(ApiJson)
}

/// Delete an SSO provider (and its users' links to it).
#[utoipa::path(delete, path = "/{provider_id}", params(ProviderPath),
    responses((status = 204), (status = 404, body = HttpError)), security(("bearer" = [])))]
pub async fn delete_provider(
    State(target): State<Target>,
    op: CanManageSso,
    ApiPath(path): ApiPath<ProviderPath>,
) -> Result<StatusCode, ApiError> {
    providers::delete(&target.realm, &op, path.provider_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Try a provider as configured: OIDC discovery and keys, GitHub's API, an LDAP bind and search.
#[utoipa::path(get, path = "/{provider_id}/test", params(ProviderPath),
    responses((status = 200, body = TestResponse), (status = 404, body = HttpError)),
    security(("bearer" = [])))]
pub async fn test_provider(
    State(target): State<Target>,
    op: CanManageSso,
    ApiPath(path): ApiPath<ProviderPath>,
) -> Result<ApiJson<TestResponse>, ApiError> {
    providers::test(&target.app, &target.realm, &op, path.provider_id)
        .await
        .map(ApiJson)
}

/// The active providers, for the login page (a bare array).
#[utoipa::path(get, path = "/sso/providers", responses((status = 200, body = Vec<ActiveProvider>)))]
pub async fn list_active_providers(
    State(target): State<Target>,
) -> Result<ApiJson<Vec<ActiveProvider>>, ApiError> {
    sign_in::active(&target.realm).await.map(ApiJson)
}

/// The origin the browser sees: `PUBLIC_URL`; else the request's host, or from a trusted
/// proxy its forwarded host and scheme.
pub struct Origin(pub String);

impl FromRequestParts<Target> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Target) -> Result<Self, ApiError> {
        if let Some(public) = &state.app.settings.sso.public_url {
            return Ok(Self(public.clone()));
        }
        let trusted =
            parts
                .extensions
                .get::<ConnectInfo<Peer>>()
                .is_some_and(|ConnectInfo(Peer(peer))| {
                    state
                        .app
                        .trusted_proxies
                        .0
                        .iter()
                        .any(|net| net.contains(&peer.ip()))
                });
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_owned())
        };
        let forwarded = |name| trusted.then(|| header(name)).flatten();
        let scheme = forwarded("x-forwarded-proto").unwrap_or_else(|| "http".into());
        let host = forwarded("x-forwarded-host")
            .or_else(|| header("host"))
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .ok_or_else(|| ApiError::BadRequest("Set PUBLIC_URL, or send a Host header".into()))?;
        match scheme.as_str() {
            "http" | "https" => Ok(Self(format!("{scheme}://{host}"))),
            _ => Err(ApiError::BadRequest("Unknown forwarded scheme".into())),
        }
    }
}

/// Starts a sign-in in this browser: the flow's cookie (one per browser, so that sign-ins
/// started in two tabs both complete) and where to send the browser.
pub async fn begin(
    target: &Target,
    provider_id: uuid::Uuid,
    origin: &str,
    jar: CookieJar,
    console: bool,
) -> Result<(CookieJar, LoginStart), ApiError> {
    let value = jar
        .get(FLOW_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| {
            v.len() == 43
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        })
        .unwrap_or_else(random_secret);
    let started = sign_in::start(
        &target.app,
        &target.realm,
        provider_id,
        origin,
        &value,
        console,
    )
    .await?;
    let cookie = Cookie::build((FLOW_COOKIE, value))
        .path("/api")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(origin.starts_with("https://"))
        .max_age(time::Duration::seconds(FLOW_TTL.as_secs() as i64))
        .build();
    Ok((jar.add(cookie), started))
}

/// Start signing in at a provider: where to send the browser. Sets the cookie that binds the
/// sign-in to this browser.
#[utoipa::path(get, path = "/sso/{provider_id}/login", params(ProviderPath),
    responses((status = 200, body = LoginStart), (status = 400, body = HttpError),
              (status = 404, body = HttpError), (status = 503, body = HttpError)))]
pub async fn start_sso_login(
    State(target): State<Target>,
    ApiPath(path): ApiPath<ProviderPath>,
    Origin(origin): Origin,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    let (jar, started) = begin(&target, path.provider_id, &origin, jar, false).await?;
    Ok((jar, ApiJson(started)).into_response())
}

/// The provider's redirect back: 302 to the landing page with the token, or to
/// `/login?error=sso_failed`.
#[utoipa::path(get, path = "/sso/callback", params(CallbackQuery),
    responses((status = 302, description = "To /sso-callback?token=… or /login?error=sso_failed")))]
pub async fn sso_callback(
    State(target): State<Target>,
    client: ClientInfo,
    jar: CookieJar,
    ApiQuery(query): ApiQuery<CallbackQuery>,
) -> Response {
    let cookie = jar.get(FLOW_COOKIE).map(|c| c.value().to_owned());
    let landing =
        sign_in::callback(&target.app, &target.realm, query, cookie.as_deref(), client).await;
    let location = landing.location(&target.app, target.realm.id());
    // A console sign-in lands in the console's session. The flow's cookie stays until it
    // expires: other sign-ins of this browser may be in flight.
    if let Landing::Console(token) = landing {
        return console_landing(&target, jar, token);
    }
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    (StatusCode::FOUND, jar, headers).into_response()
}

/// Sign in with a directory's username and password (LDAP, Active Directory).
#[utoipa::path(post, path = "/sso/ldap/login", request_body = LdapLogin,
    responses((status = 200, body = LdapToken), (status = 401, body = HttpError),
              (status = 422, body = HTTPValidationError), (status = 429, body = HttpError)))]
pub async fn ldap_login(
    State(target): State<Target>,
    client: ClientInfo,
    ApiJson(body): ApiJson<LdapLogin>,
) -> Result<ApiJson<LdapToken>, ApiError> {
    let tokens = sign_in::ldap_login(&target.app, &target.realm, body, client).await?;
    Ok(ApiJson(LdapToken {
        access_token: tokens.access_token,
        token_type: "bearer",
        expires_in: tokens.expires_in,
        refresh_token: tokens.refresh_token.unwrap_or_default(),
    }))
}

/// The end of a console sign-in: the session cookie, and a page that moves on to the console.
/// (A redirect would not do: the browser comes from the provider, and a `SameSite=Strict`
/// cookie is not sent on a redirect that another site started; a page of this origin moving on
/// is this site's own navigation.)
fn console_landing(target: &Target, jar: CookieJar, token: String) -> Response {
    let jar = crate::access::cookie::signed_in(&target.app, jar, token);
    let page = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
        <meta http-equiv=\"refresh\" content=\"0;url=/console/\"><title>Signed in</title></head>\
        <body><p><a href=\"/console/\">Continue to the console</a></p></body></html>";
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
    ];
    (StatusCode::OK, jar, headers, page).into_response()
}
