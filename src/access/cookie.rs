//! The console's session cookie: it carries the access token of a sign-in, so that the
//! session it belongs to ends it like any token (logout, deactivation, revocation). Set by the
//! console's sign-in and by an SSO sign-in started from the console.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::config::Environment;
use crate::state::AppState;

/// The session cookie's name: `__Host-` (Secure, this host only, path `/`) outside
/// `ENVIRONMENT=local`, where plain HTTP is allowed and a browser would refuse the prefix.
pub fn session_cookie(app: &AppState) -> &'static str {
    match app.settings.environment {
        Environment::Prod => "__Host-slm_console",
        Environment::Local => "slm_console",
    }
}

pub fn csrf_cookie(app: &AppState) -> &'static str {
    match app.settings.environment {
        Environment::Prod => "__Host-slm_console_csrf",
        Environment::Local => "slm_console_csrf",
    }
}

/// A cookie of the console with its attributes.
pub fn cookie(app: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(app.settings.environment == Environment::Prod)
        .build()
}

/// Sets the session of a sign-in: its access token in the session cookie.
pub fn signed_in(app: &AppState, jar: CookieJar, access_token: String) -> CookieJar {
    jar.add(cookie(app, session_cookie(app), access_token))
}

/// Ends the console's session cookie.
pub fn signed_out(app: &AppState, jar: CookieJar) -> CookieJar {
    jar.remove(Cookie::build(session_cookie(app)).path("/"))
}
