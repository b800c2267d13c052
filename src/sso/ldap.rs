//! LDAP and Active Directory through `ldap3`: the user found with the search account (or named
//! by a DN template), then a bind as that user with the password given; the groups read for
//! `group_mapping`. LDAPS, or StartTLS on `ldap://` (plain only where the config allows it).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, dn_escape, ldap_escape};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::credentials::seal::SealKeys;
use crate::sso::Identity;
use crate::sso::config::{self, Kind, certificates};

/// LDAP's result code for wrong credentials.
const INVALID_CREDENTIALS: u32 = 49;

pub struct Directory {
    server_uri: String,
    start_tls: bool,
    ca_cert: Option<String>,
    base_dn: String,
    /// The search account.
    account: Option<(String, SecretString)>,
    search_filter: String,
    user_dn_template: Option<String>,
    group_base_dn: Option<String>,
    email_attribute: String,
    active_directory: bool,
}

/// A user's entry.
struct Entry {
    dn: String,
    attrs: std::collections::HashMap<String, Vec<String>>,
}

impl Directory {
    pub fn new(kind: Kind, config: &Map<String, Value>, keys: &SealKeys) -> anyhow::Result<Self> {
        let text = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_owned);
        let active_directory = matches!(
            kind,
            Kind::Ldap {
                active_directory: true
            }
        );
        let server_uri = text("server_uri").context("the provider has no server_uri")?;
        let account = match text("bind_dn") {
            Some(dn) => Some((
                dn,
                SecretString::from(config::secret(config, "bind_password", keys)?),
            )),
            None => None,
        };
        Ok(Self {
            start_tls: server_uri.to_ascii_lowercase().starts_with("ldap://")
                && config.get("start_tls").and_then(Value::as_bool) != Some(false),
            server_uri,
            ca_cert: text("ca_cert"),
            base_dn: text("base_dn").context("the provider has no base_dn")?,
            account,
            search_filter: text("search_filter").unwrap_or_else(|| {
                match active_directory {
                    true => "(sAMAccountName={username})",
                    false => "(uid={username})",
                }
                .into()
            }),
            user_dn_template: text("user_dn_template"),
            group_base_dn: text("group_base_dn"),
            email_attribute: text("email_attribute").unwrap_or_else(|| "mail".into()),
            active_directory,
        })
    }

    async fn connect(&self, timeout: Duration) -> anyhow::Result<Ldap> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_starttls(self.start_tls);
        if let Some(pem) = &self.ca_cert {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(pem).map_err(anyhow::Error::msg)? {
                roots.add(cert)?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            settings = settings.set_config(Arc::new(tls));
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.server_uri)
            .await
            .with_context(|| format!("connecting to {}", self.server_uri))?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    fn attributes(&self) -> Vec<String> {
        let mut attrs = vec![
            self.email_attribute.clone(),
            "cn".into(),
            "displayName".into(),
            "uid".into(),
            "memberOf".into(),
        ];
        if self.active_directory {
            attrs.extend(["sAMAccountName".into(), "userPrincipalName".into()]);
        }
        attrs
    }

    /// The search filter of `username`, its value escaped (RFC 4515). An AD login with `@` is
    /// a user principal name.
    fn filter(&self, username: &str) -> String {
        let escaped = ldap_escape(username);
        match self.active_directory && username.contains('@') {
            true => format!("(userPrincipalName={escaped})"),
            false => self.search_filter.replace("{username}", &escaped),
        }
    }

    async fn bind_account(&self, ldap: &mut Ldap) -> anyhow::Result<()> {
        if let Some((dn, password)) = &self.account {
            ldap.simple_bind(dn, password.expose_secret())
                .await?
                .success()
                .context("the search account's bind failed")?;
        }
        Ok(())
    }

    /// The one entry `filter` finds under `base` (none, or several: none).
    async fn find(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
    ) -> anyhow::Result<Option<Entry>> {
        let (entries, _) = ldap
            .search(base, scope, filter, self.attributes())
            .await?
            .success()
            .context("the search failed")?;
        let mut entries = entries.into_iter().map(SearchEntry::construct);
        Ok(match (entries.next(), entries.next()) {
            (Some(one), None) => Some(Entry {
                dn: one.dn,
                attrs: one.attrs,
            }),
            _ => None,
        })
    }

    /// Connects and binds with the search account (when there is one).
    pub async fn open(&self, timeout: Duration) -> anyhow::Result<Connection<'_>> {
        let mut ldap = self.connect(timeout).await?;
        self.bind_account(&mut ldap).await?;
        Ok(Connection { dir: self, ldap })
    }

    /// The groups of a user: its `memberOf` values, and the groups under `group_base_dn` that
    /// name it; each by DN and by `cn`.
    async fn groups(
        &self,
        ldap: &mut Ldap,
        entry: &Entry,
        username: &str,
    ) -> anyhow::Result<Vec<String>> {
        let mut groups: Vec<String> = entry.attrs.get("memberOf").cloned().unwrap_or_default();
        if let Some(base) = &self.group_base_dn {
            let filter = format!(
                "(|(member={dn})(uniqueMember={dn})(memberUid={user}))",
                dn = ldap_escape(&entry.dn),
                user = ldap_escape(username)
            );
            let (found, _) = ldap
                .search(base, Scope::Subtree, &filter, vec!["cn"])
                .await?
                .success()
                .context("the group search failed")?;
            groups.extend(found.into_iter().map(|g| SearchEntry::construct(g).dn));
        }
        let names: Vec<String> = groups
            .iter()
            .filter_map(|dn| dn.split(',').next())
            .filter_map(|rdn| rdn.split_once('='))
            .filter(|(attr, _)| attr.trim().eq_ignore_ascii_case("cn"))
            .map(|(_, value)| value.trim().to_owned())
            .collect();
        groups.extend(names);
        Ok(groups)
    }

    fn identity(&self, entry: Entry, username: &str, groups: Vec<String>) -> Identity {
        let first = |name: &str| entry.attrs.get(name).and_then(|v| v.first()).cloned();
        let login = match self.active_directory {
            true => first("sAMAccountName"),
            false => first("uid"),
        };
        Identity {
            external_id: external_id(&entry.dn),
            email: first(&self.email_attribute),
            // The directory is the organization's own: its addresses are its to vouch for.
            email_verified: true,
            username: login.or_else(|| Some(username.to_owned())),
            display_name: first("displayName").or_else(|| first("cn")),
            groups,
        }
    }

    /// A bind with the search account and one search.
    pub async fn test(&self, timeout: Duration) -> anyhow::Result<Value> {
        let work = async {
            let mut ldap = self.connect(timeout).await?;
            self.bind_account(&mut ldap).await?;
            let (entries, _) = ldap
                .search(&self.base_dn, Scope::Base, "(objectClass=*)", vec!["1.1"])
                .await?
                .success()
                .context("the search of the base DN failed")?;
            let _ = ldap.unbind().await;
            anyhow::Ok(serde_json::json!({
                "server_uri": self.server_uri,
                "start_tls": self.start_tls,
                "base_dn_found": !entries.is_empty(),
            }))
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| bail!("the directory did not answer in time"))
    }
}

/// A connection to the directory, bound with the search account.
pub struct Connection<'d> {
    dir: &'d Directory,
    ldap: Ldap,
}

impl Connection<'_> {
    /// The DN of the user `username`: found with the search account, or made from the DN
    /// template; `None` when there is no such user under the base.
    pub async fn locate(&mut self, username: &str) -> anyhow::Result<Option<String>> {
        let dir = self.dir;
        if username.trim().is_empty() {
            return Ok(None);
        }
        let dn = match &dir.user_dn_template {
            Some(template) if dir.account.is_none() => {
                template.replace("{username}", &dn_escape(username))
            }
            _ => {
                let filter = dir.filter(username);
                match dir
                    .find(&mut self.ldap, &dir.base_dn, Scope::Subtree, &filter)
                    .await?
                {
                    Some(entry) => entry.dn,
                    None => return Ok(None),
                }
            }
        };
        let inside = dn
            .to_ascii_lowercase()
            .ends_with(&dir.base_dn.to_ascii_lowercase());
        Ok(inside.then_some(dn))
    }

    /// Binds as `dn` with `password`: the user's identity, or `None` for a wrong password.
    pub async fn verify(
        mut self,
        dn: &str,
        username: &str,
        password: &SecretString,
    ) -> anyhow::Result<Option<Identity>> {
        let dir = self.dir;
        // An empty password would be an anonymous bind, which "succeeds".
        if password.expose_secret().is_empty() {
            return Ok(None);
        }
        let bound = self.ldap.simple_bind(dn, password.expose_secret()).await?;
        if bound.rc == INVALID_CREDENTIALS {
            return Ok(None);
        }
        bound.success().context("the user's bind failed")?;
        let Some(entry) = dir
            .find(&mut self.ldap, dn, Scope::Base, "(objectClass=*)")
            .await?
        else {
            bail!("the user's own entry cannot be read");
        };
        let groups = dir.groups(&mut self.ldap, &entry, username).await?;
        let _ = self.ldap.unbind().await;
        Ok(Some(dir.identity(entry, username, groups)))
    }
}

/// The identity key of a directory user: its DN, lower-cased.
pub fn external_id(dn: &str) -> String {
    dn.to_ascii_lowercase()
}
