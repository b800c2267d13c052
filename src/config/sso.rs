//! The settings of SSO: the origin the browser sees, and where an AutoBot sign-in lands.

use super::{ConfigError, Lookup, config_error, get};

/// Where SSO sends the browser.
#[derive(Clone, Debug)]
pub struct SsoSettings {
    /// `PUBLIC_URL`: the origin (`https://slm.example.org`) of the redirect URIs registered at
    /// providers. Unset: the request's own host (or, from a trusted proxy, its forwarded host
    /// and scheme).
    pub public_url: Option<String>,
    /// `AUTOBOT_SSO_REDIRECT`: the path an AutoBot SSO sign-in lands on with its token.
    pub autobot_redirect: String,
}

impl SsoSettings {
    pub fn read(lookup: Lookup) -> Result<Self, ConfigError> {
        let public_url = match get(lookup, "PUBLIC_URL") {
            None => None,
            Some(raw) => {
                let raw = raw.trim().trim_end_matches('/');
                let ok = openidconnect::url::Url::parse(raw).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.has_host()
                        && u.path() == "/"
                        && u.query().is_none()
                });
                if !ok {
                    return Err(config_error(
                        "PUBLIC_URL",
                        format!("expected an origin like https://slm.example.org, got {raw:?}"),
                    ));
                }
                Some(raw.to_owned())
            }
        };
        let autobot_redirect =
            get(lookup, "AUTOBOT_SSO_REDIRECT").unwrap_or_else(|| "/sso-callback".into());
        if !autobot_redirect.starts_with('/') || autobot_redirect.starts_with("//") {
            return Err(config_error(
                "AUTOBOT_SSO_REDIRECT",
                format!(
                    "expected a path of this origin like /sso-callback, got {autobot_redirect:?}"
                ),
            ));
        }
        Ok(Self {
            public_url,
            autobot_redirect,
        })
    }
}
