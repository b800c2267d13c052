//! Single sign-on (docs/api.md §7, docs/sso.md): the providers an SLM admin configures
//! (`sso_providers`), and signing in through them — OpenID Connect (with the Google, Google
//! Workspace and Microsoft Entra presets), GitHub, and LDAP / Active Directory — into either
//! realm, with the same sessions, tokens, lockout and audit as a password sign-in. A person
//! met for the first time is created through the one user-creation path.

pub mod config;
mod db;
pub mod dto;
mod github;
pub mod handlers;
mod ldap;
mod oidc;
pub mod providers;
mod provision;
pub mod sign_in;

use std::time::Duration;

use serde_json::{Map, Value};

use crate::credentials::seal::SealKeys;
use crate::sso::config::Kind;

/// Who a provider says signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The provider's stable id of the person (OIDC `sub`, GitHub's id, the LDAP DN).
    pub external_id: String,
    pub email: Option<String>,
    /// The provider vouches for the e-mail.
    pub email_verified: bool,
    /// The name the person goes by at the provider (`preferred_username`, the login).
    pub username: Option<String>,
    pub display_name: Option<String>,
    /// Groups, as `group_mapping` names them.
    pub groups: Vec<String>,
}

/// What an authorization URL is made of.
pub struct Start<'a> {
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
}

/// A provider's protocol, ready to speak.
enum Protocol {
    Oidc(oidc::Oidc),
    Github(github::Github),
    Ldap(ldap::Directory),
}

impl Protocol {
    fn new(kind: Kind, config: &Value, keys: &SealKeys) -> anyhow::Result<Self> {
        let empty = Map::new();
        let config = config.as_object().unwrap_or(&empty);
        Ok(match kind {
            Kind::Github => Self::Github(github::Github::new(config, keys)?),
            Kind::Ldap { .. } => Self::Ldap(ldap::Directory::new(kind, config, keys)?),
            _ => Self::Oidc(oidc::Oidc::new(kind, config, keys)?),
        })
    }

    /// Checks that the provider answers as configured (the admin's test).
    async fn test(&self, timeout: Duration) -> anyhow::Result<Value> {
        match self {
            Self::Oidc(p) => p.test(timeout).await,
            Self::Github(p) => p.test(timeout).await,
            Self::Ldap(p) => p.test(timeout).await,
        }
    }
}
