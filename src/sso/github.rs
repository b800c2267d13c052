//! GitHub's OAuth 2.0 web flow (with PKCE) and its user API: the account, and its verified
//! primary e-mail only. `api_url` and `oauth_url` point at GitHub Enterprise (or, in the tests,
//! at a stand-in of these three endpoints).

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use openidconnect::reqwest;
use openidconnect::url::Url;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::credentials::seal::SealKeys;
use crate::sso::config;
use crate::sso::oidc::http_client;
use crate::sso::{Identity, Start};

pub struct Github {
    client_id: String,
    client_secret: String,
    api_url: String,
    oauth_url: String,
    org: Option<String>,
}

#[derive(Deserialize)]
struct Token {
    access_token: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Account {
    id: i64,
    login: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    primary: bool,
    verified: bool,
}

#[derive(Deserialize)]
struct Org {
    login: String,
}

impl Github {
    pub fn new(config: &Map<String, Value>, keys: &SealKeys) -> anyhow::Result<Self> {
        let text = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_owned);
        let base = |k: &str, default: &str| {
            text(k)
                .unwrap_or_else(|| default.into())
                .trim_end_matches('/')
                .to_owned()
        };
        Ok(Self {
            client_id: text("client_id").context("the provider has no client_id")?,
            client_secret: config::secret(config, "client_secret", keys)?,
            api_url: base("api_url", "https://api.github.com"),
            oauth_url: base("oauth_url", "https://github.com"),
            org: text("org"),
        })
    }

    /// Where to send the browser.
    pub fn start(&self, start: &Start<'_>) -> anyhow::Result<String> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(start.pkce_verifier.as_bytes()));
        let mut url = Url::parse(&format!("{}/login/oauth/authorize", self.oauth_url))?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", start.redirect_uri)
            .append_pair("scope", "read:user user:email read:org")
            .append_pair("state", start.state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.to_string())
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        http: &reqwest::Client,
        token: &str,
        path: &str,
    ) -> anyhow::Result<T> {
        let response = http
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .send()
            .await
            .with_context(|| format!("GitHub {path}"))?;
        if !response.status().is_success() {
            bail!("GitHub {path} answered {}", response.status());
        }
        let body = response.bytes().await?;
        serde_json::from_slice(&body).with_context(|| format!("GitHub {path}"))
    }

    /// The identity of a redirect back.
    pub async fn finish(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        timeout: Duration,
    ) -> anyhow::Result<Identity> {
        let http = http_client(None, timeout)?;
        let response = http
            .post(format!("{}/login/oauth/access_token", self.oauth_url))
            .header("accept", "application/json")
            .form(&[
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.as_str()),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", pkce_verifier),
            ])
            .send()
            .await
            .context("GitHub's token endpoint")?;
        let body = response.bytes().await?;
        let token: Token = serde_json::from_slice(&body).context("GitHub's token answer")?;
        let token = match (token.access_token, token.error) {
            (Some(token), None) => token,
            (_, error) => {
                return Err(anyhow!(
                    "GitHub refused the code: {}",
                    error.unwrap_or_default()
                ));
            }
        };
        let account: Account = self.get(&http, &token, "/user").await?;
        let emails: Vec<Email> = self.get(&http, &token, "/user/emails").await?;
        let email = emails
            .into_iter()
            .find(|e| e.primary && e.verified)
            .context("the GitHub account has no verified primary e-mail")?;
        if let Some(org) = &self.org {
            let orgs: Vec<Org> = self.get(&http, &token, "/user/orgs").await?;
            if !orgs.iter().any(|o| o.login.eq_ignore_ascii_case(org)) {
                bail!("the GitHub account is not a member of {org}");
            }
        }
        Ok(Identity {
            external_id: account.id.to_string(),
            email: Some(email.email),
            email_verified: true,
            username: Some(account.login),
            display_name: account.name,
            groups: Vec::new(),
        })
    }

    /// The API answers.
    pub async fn test(&self, timeout: Duration) -> anyhow::Result<Value> {
        let http = http_client(None, timeout)?;
        let response = http
            .get(&self.api_url)
            .header("accept", "application/vnd.github+json")
            .send()
            .await
            .context("the GitHub API")?;
        Ok(serde_json::json!({"api_url": self.api_url, "status": response.status().as_u16()}))
    }
}
