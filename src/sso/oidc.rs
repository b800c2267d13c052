//! OpenID Connect through the `openidconnect` crate: discovery, the authorization URL (with
//! `state`, `nonce` and PKCE S256), the code exchange, and the ID token checked against the
//! issuer's keys (signature, `iss`, `aud`, `exp`, `nonce`). Google, Google Workspace and
//! Microsoft Entra are presets of an issuer and a few claims.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet, CoreProviderMetadata,
};
use openidconnect::reqwest;
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::{Map, Value};

use crate::credentials::seal::SealKeys;
use crate::sso::config::{self, Kind};
use crate::sso::{Identity, Start};

/// An OpenID provider as configured.
pub struct Oidc {
    issuer: String,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
    groups_claim: String,
    claim_mapping: Map<String, Value>,
    ca_cert: Option<String>,
    /// Google Workspace: the `hd` claim required.
    domain: Option<String>,
    /// Microsoft Entra for any tenant of a kind (`organizations`, `common`, `consumers`): the
    /// issuer is the signing tenant's, checked against its `tid` claim.
    entra_any_tenant: bool,
}

const MICROSOFT: &str = "https://login.microsoftonline.com";

impl Oidc {
    pub fn new(kind: Kind, config: &Map<String, Value>, keys: &SealKeys) -> anyhow::Result<Self> {
        let text = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_owned);
        let tenant = text("tenant_id").unwrap_or_else(|| "organizations".into());
        let issuer = match kind {
            Kind::Google | Kind::GoogleWorkspace => "https://accounts.google.com".to_owned(),
            Kind::Entra => format!("{MICROSOFT}/{tenant}/v2.0"),
            _ => text("issuer").context("the provider has no issuer")?,
        };
        Ok(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: text("client_id").context("the provider has no client_id")?,
            client_secret: config::secret(config, "client_secret", keys)?,
            scopes: text("scope")
                .unwrap_or_else(|| "openid email profile".into())
                .split_whitespace()
                .filter(|s| *s != "openid")
                .map(str::to_owned)
                .collect(),
            groups_claim: text("groups_claim").unwrap_or_else(|| "groups".into()),
            claim_mapping: config
                .get("claim_mapping")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            ca_cert: text("ca_cert"),
            domain: match kind {
                Kind::GoogleWorkspace => text("domain"),
                _ => None,
            },
            entra_any_tenant: kind == Kind::Entra
                && ["organizations", "common", "consumers"].contains(&tenant.as_str()),
        })
    }

    /// Reads the issuer's metadata and keys.
    async fn discover(&self, http: &reqwest::Client) -> anyhow::Result<CoreProviderMetadata> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let response = http.get(&url).send().await.context("discovery")?;
        if !response.status().is_success() {
            bail!("discovery at {url} answered {}", response.status());
        }
        let body = response.bytes().await.context("discovery")?;
        let metadata: CoreProviderMetadata =
            serde_json::from_slice(&body).context("the discovery document")?;
        let announced = metadata.issuer().as_str().trim_end_matches('/');
        if !self.entra_any_tenant && announced != self.issuer {
            bail!(
                "the discovery document names issuer {announced}, not {}",
                self.issuer
            );
        }
        let jwks: CoreJsonWebKeySet = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), http)
            .await
            .map_err(|e| anyhow!("the issuer's keys: {e}"))?;
        Ok(metadata.set_jwks(jwks))
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
        redirect_uri: &str,
    ) -> anyhow::Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
    > {
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.clone()),
            Some(ClientSecret::new(self.client_secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned())?))
    }

    /// Where to send the browser.
    pub async fn start(&self, start: &Start<'_>, timeout: Duration) -> anyhow::Result<String> {
        let http = http_client(self.ca_cert.as_deref(), timeout)?;
        let client = self.client(self.discover(&http).await?, start.redirect_uri)?;
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            start.pkce_verifier.into(),
        ));
        let state = start.state.to_owned();
        let nonce = start.nonce.to_owned();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(challenge);
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if let Some(domain) = &self.domain {
            request = request.add_extra_param("hd", domain.clone());
        }
        Ok(request.url().0.to_string())
    }

    /// The identity of a redirect back: the code exchanged, the ID token checked.
    pub async fn finish(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        nonce: &str,
        timeout: Duration,
    ) -> anyhow::Result<Identity> {
        let http = http_client(self.ca_cert.as_deref(), timeout)?;
        let client = self.client(self.discover(&http).await?, redirect_uri)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&http)
            .await
            .map_err(|e| anyhow!("the code exchange failed: {e}"))?;
        let id_token = tokens.id_token().context("the provider sent no ID token")?;
        let verifier = client
            .id_token_verifier()
            .require_issuer_match(!self.entra_any_tenant);
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_owned()))
            .map_err(|e| anyhow!("the ID token was refused: {e}"))?;
        // The signature is checked: the other claims of the same token may now be read.
        let raw = payload(&id_token.to_string())?;
        if self.entra_any_tenant {
            let tid = raw.get("tid").and_then(Value::as_str).unwrap_or_default();
            let expected = format!("{MICROSOFT}/{tid}/v2.0");
            if tid.is_empty() || claims.issuer().as_str().trim_end_matches('/') != expected {
                bail!("the ID token's issuer is not its tenant's");
            }
        }
        if let Some(domain) = &self.domain
            && raw.get("hd").and_then(Value::as_str) != Some(domain.as_str())
        {
            bail!("the account is not of the Workspace domain {domain}");
        }
        let claim = |field: &str, default: &str| -> Option<String> {
            let name = self
                .claim_mapping
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or(default);
            raw.get(name).and_then(Value::as_str).map(str::to_owned)
        };
        let groups = match raw.get(&self.groups_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            external_id: claims.subject().to_string(),
            email: claim("email", "email"),
            email_verified: claims.email_verified().unwrap_or(false),
            username: claim("username", "preferred_username"),
            display_name: claim("display_name", "name"),
            groups,
        })
    }

    /// Discovery fetched and the keys read.
    pub async fn test(&self, timeout: Duration) -> anyhow::Result<Value> {
        let http = http_client(self.ca_cert.as_deref(), timeout)?;
        let metadata = self.discover(&http).await?;
        Ok(serde_json::json!({
            "issuer": metadata.issuer().as_str(),
            "authorization_endpoint": metadata.authorization_endpoint().as_str(),
            "keys": metadata.jwks().keys().len(),
        }))
    }
}

/// The claims of a JWT, without checking it (the caller has).
fn payload(jwt: &str) -> anyhow::Result<Map<String, Value>> {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1).context("a malformed ID token")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .context("a malformed ID token")?;
    serde_json::from_slice(&bytes).context("a malformed ID token")
}

/// An HTTP client for a provider: no redirects followed, a deadline, and the provider's own CA
/// when it has one.
pub fn http_client(ca_cert: Option<&str>, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("slm-server/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_cert {
        for cert in reqwest::Certificate::from_pem_bundle(pem.as_bytes())? {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}
