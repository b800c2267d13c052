//! The kinds of SSO provider and their `config` (docs/api.md §7): each key's type, which are
//! required and which are secrets; checked once, when an admin writes a provider. Secrets are
//! sealed at rest with the MFA key ring and shown as `"********"`; a write that sends
//! `"********"` back keeps the stored secret.

use serde_json::{Map, Value};

use crate::credentials::seal::SealKeys;
use crate::http::error::{ApiError, FieldError, LocItem};

/// What an API answer shows in place of a secret.
pub const MASK: &str = "********";

/// The protocol a provider speaks, and its presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OpenID Connect against `config.issuer` (`oidc`, `generic_oidc`, `okta`, `keycloak`).
    Oidc,
    Google,
    /// Google, and only the Workspace `config.domain`.
    GoogleWorkspace,
    /// Microsoft Entra ID (`microsoft_entra`, `azure_ad`), per `config.tenant_id`.
    Entra,
    /// GitHub's OAuth 2.0 and its user API.
    Github,
    /// LDAP v3 (`ldap`, `active_directory`; the latter with AD's defaults).
    Ldap {
        active_directory: bool,
    },
}

/// The provider types this server speaks, for the 422 that names them.
pub const SUPPORTED: &str = "oidc, generic_oidc, okta, keycloak, google, google_workspace, \
microsoft_entra, azure_ad, github, ldap, active_directory";

impl Kind {
    pub fn of(provider_type: &str) -> Option<Self> {
        Some(match provider_type {
            "oidc" | "generic_oidc" | "okta" | "keycloak" => Self::Oidc,
            "google" => Self::Google,
            "google_workspace" => Self::GoogleWorkspace,
            "microsoft_entra" | "azure_ad" => Self::Entra,
            "github" => Self::Github,
            "ldap" => Self::Ldap {
                active_directory: false,
            },
            "active_directory" => Self::Ldap {
                active_directory: true,
            },
            _ => return None,
        })
    }

    pub fn is_ldap(self) -> bool {
        matches!(self, Self::Ldap { .. })
    }

    /// Whether it is a "social" sign-in by default (a button anyone may have an account at).
    pub fn social_by_default(self) -> bool {
        matches!(self, Self::Google | Self::Github)
    }

    fn keys(self) -> &'static [Key] {
        match self {
            Self::Oidc => OIDC_KEYS,
            Self::Google => GOOGLE_KEYS,
            Self::GoogleWorkspace => WORKSPACE_KEYS,
            Self::Entra => ENTRA_KEYS,
            Self::Github => GITHUB_KEYS,
            Self::Ldap { .. } => LDAP_KEYS,
        }
    }
}

/// What a `config` key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Text,
    Secret,
    Url,
    Flag,
    /// An object of strings.
    Mapping,
    /// A PEM certificate (a private CA).
    Certificate,
}

struct Key {
    name: &'static str,
    shape: Shape,
    required: bool,
}

const fn key(name: &'static str, shape: Shape, required: bool) -> Key {
    Key {
        name,
        shape,
        required,
    }
}

const OIDC_KEYS: &[Key] = &[
    key("issuer", Shape::Url, true),
    key("client_id", Shape::Text, true),
    key("client_secret", Shape::Secret, true),
    key("scope", Shape::Text, false),
    key("groups_claim", Shape::Text, false),
    key("claim_mapping", Shape::Mapping, false),
    key("link_by_email", Shape::Flag, false),
    key("ca_cert", Shape::Certificate, false),
    key("allow_insecure", Shape::Flag, false),
];
const GOOGLE_KEYS: &[Key] = &[
    key("client_id", Shape::Text, true),
    key("client_secret", Shape::Secret, true),
    key("link_by_email", Shape::Flag, false),
];
const WORKSPACE_KEYS: &[Key] = &[
    key("client_id", Shape::Text, true),
    key("client_secret", Shape::Secret, true),
    key("domain", Shape::Text, false),
    key("link_by_email", Shape::Flag, false),
];
const ENTRA_KEYS: &[Key] = &[
    key("client_id", Shape::Text, true),
    key("client_secret", Shape::Secret, true),
    key("tenant_id", Shape::Text, false),
    key("groups_claim", Shape::Text, false),
    key("link_by_email", Shape::Flag, false),
];
const GITHUB_KEYS: &[Key] = &[
    key("client_id", Shape::Text, true),
    key("client_secret", Shape::Secret, true),
    key("api_url", Shape::Url, false),
    key("oauth_url", Shape::Url, false),
    key("org", Shape::Text, false),
    key("link_by_email", Shape::Flag, false),
    key("allow_insecure", Shape::Flag, false),
];
const LDAP_KEYS: &[Key] = &[
    key("server_uri", Shape::Url, true),
    key("start_tls", Shape::Flag, false),
    key("ca_cert", Shape::Certificate, false),
    key("base_dn", Shape::Text, true),
    key("bind_dn", Shape::Text, false),
    key("bind_password", Shape::Secret, false),
    key("search_filter", Shape::Text, false),
    key("user_dn_template", Shape::Text, false),
    key("group_base_dn", Shape::Text, false),
    key("email_attribute", Shape::Text, false),
    key("link_by_email", Shape::Flag, false),
    key("allow_insecure", Shape::Flag, false),
];

fn at(key: &str, msg: impl Into<String>) -> FieldError {
    let loc: Vec<LocItem> = vec!["body".into(), "config".into(), key.into()];
    FieldError::at(loc, msg, "value_error")
}

/// Checks `config` for a provider of `kind`: every key known, of its shape, the required ones
/// present, the rules between keys. `stored` is the provider's current config (sealed), whose
/// secrets a `"********"` keeps. `local` allows plain-text transports (`ENVIRONMENT=local`).
/// Returns the config to store, its secrets sealed.
pub fn checked(
    kind: Kind,
    config: &Map<String, Value>,
    stored: Option<&Map<String, Value>>,
    keys: &SealKeys,
    local: bool,
) -> Result<Map<String, Value>, ApiError> {
    let mut errors = Vec::new();
    let mut out = Map::new();
    for (name, value) in config {
        let Some(spec) = kind.keys().iter().find(|k| k.name == name) else {
            errors.push(at(name, "Not a setting of this provider type"));
            continue;
        };
        let value = match (spec.shape, value) {
            (_, Value::Null) => continue,
            (Shape::Secret, Value::String(s)) if s == MASK => {
                match stored.and_then(|c| c.get(name)) {
                    Some(sealed) => sealed.clone(),
                    None => {
                        errors.push(at(name, "No stored secret to keep"));
                        continue;
                    }
                }
            }
            (Shape::Secret, Value::String(s)) if !s.is_empty() => match keys.seal(s) {
                Ok(sealed) => Value::String(sealed),
                Err(err) => return Err(ApiError::Internal(err)),
            },
            (Shape::Text, Value::String(s)) if !s.trim().is_empty() => {
                Value::String(s.trim().to_owned())
            }
            (Shape::Url, Value::String(s)) => match openidconnect::url::Url::parse(s.trim()) {
                Ok(parsed) if parsed.has_host() => Value::String(s.trim().to_owned()),
                _ => {
                    errors.push(at(name, "Must be an absolute URL"));
                    continue;
                }
            },
            (Shape::Certificate, Value::String(s)) => match certificates(s) {
                Ok(_) => value.clone(),
                Err(msg) => {
                    errors.push(at(name, msg));
                    continue;
                }
            },
            (Shape::Flag, Value::Bool(_)) => value.clone(),
            (Shape::Mapping, Value::Object(map)) if map.values().all(Value::is_string) => {
                value.clone()
            }
            (shape, _) => {
                let expected = match shape {
                    Shape::Flag => "Must be true or false",
                    Shape::Mapping => "Must be an object of strings",
                    _ => "Must be a non-empty string",
                };
                errors.push(at(name, expected));
                continue;
            }
        };
        out.insert(name.clone(), value);
    }
    for spec in kind.keys().iter().filter(|k| k.required) {
        if !out.contains_key(spec.name) && !errors.iter().any(|e| names(e, spec.name)) {
            errors.push(at(spec.name, "Field required"));
        }
    }
    if errors.is_empty() {
        rules(kind, &out, local, &mut errors);
    }
    match errors.is_empty() {
        true => Ok(out),
        false => Err(ApiError::Validation(errors)),
    }
}

fn names(error: &FieldError, key: &str) -> bool {
    error.loc.last() == Some(&LocItem::from(key))
}

/// The rules between keys: transports, the LDAP search or template.
fn rules(kind: Kind, config: &Map<String, Value>, local: bool, errors: &mut Vec<FieldError>) {
    let text = |k: &str| config.get(k).and_then(Value::as_str);
    let flag = |k: &str| config.get(k).and_then(Value::as_bool);
    let insecure_ok = local || flag("allow_insecure") == Some(true);
    let plain = |url: &str, secure: &str| !url.to_ascii_lowercase().starts_with(secure);
    match kind {
        Kind::Oidc => {
            if let Some(issuer) = text("issuer")
                && plain(issuer, "https://")
                && !insecure_ok
            {
                errors.push(at("issuer", "Must be https:// (or set allow_insecure)"));
            }
        }
        Kind::Github => {
            for key in ["api_url", "oauth_url"] {
                if let Some(url) = text(key)
                    && plain(url, "https://")
                    && !insecure_ok
                {
                    errors.push(at(key, "Must be https:// (or set allow_insecure)"));
                }
            }
        }
        Kind::Ldap { .. } => {
            let uri = text("server_uri").unwrap_or_default().to_ascii_lowercase();
            if !(uri.starts_with("ldaps://") || uri.starts_with("ldap://")) {
                errors.push(at("server_uri", "Must be ldaps:// or ldap://"));
            } else if uri.starts_with("ldap://") && flag("start_tls") == Some(false) && !insecure_ok
            {
                errors.push(at(
                    "start_tls",
                    "Plain LDAP sends passwords in clear: use StartTLS or ldaps:// (or set allow_insecure)",
                ));
            }
            let search = config.contains_key("bind_dn") || config.contains_key("bind_password");
            if config.contains_key("bind_dn") != config.contains_key("bind_password") {
                let missing = match config.contains_key("bind_dn") {
                    true => "bind_password",
                    false => "bind_dn",
                };
                errors.push(at(missing, "bind_dn and bind_password go together"));
            }
            match text("user_dn_template") {
                Some(template) if !template.contains("{username}") => {
                    errors.push(at("user_dn_template", "Must contain {username}"))
                }
                None if !search => errors.push(at(
                    "bind_dn",
                    "Give bind_dn and bind_password (a search account), or user_dn_template",
                )),
                _ => {}
            }
            if let Some(filter) = text("search_filter")
                && !filter.contains("{username}")
            {
                errors.push(at("search_filter", "Must contain {username}"));
            }
        }
        Kind::Google | Kind::GoogleWorkspace | Kind::Entra => {}
    }
}

/// The certificates of a PEM text (at least one).
pub fn certificates(pem: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> =
        rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err("Must be one or more PEM certificates".into()),
    }
}

/// `config` as an answer shows it: every secret replaced by [`MASK`].
pub fn masked(kind: Option<Kind>, config: &Value) -> Value {
    let Value::Object(map) = config else {
        return Value::Object(Map::new());
    };
    let secret = |name: &str| match kind {
        Some(kind) => kind
            .keys()
            .iter()
            .any(|k| k.name == name && k.shape == Shape::Secret),
        // A type this server does not speak (written by another program): hide what may be
        // a secret.
        None => name.contains("secret") || name.contains("password"),
    };
    Value::Object(
        map.iter()
            .map(|(k, v)| match secret(k) {
                true => (k.clone(), Value::String(MASK.into())),
                false => (k.clone(), v.clone()),
            })
            .collect(),
    )
}

/// A secret of a stored config, opened.
pub fn secret(config: &Map<String, Value>, name: &str, keys: &SealKeys) -> anyhow::Result<String> {
    let sealed = config
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("the provider has no {name}"))?;
    keys.open(sealed)
        .map_err(|e| anyhow::anyhow!("the provider's {name} cannot be opened: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use serde_json::json;

    fn keys() -> SealKeys {
        SealKeys(vec![crate::credentials::seal::SealKey::new(
            &SecretString::from("a-test-key-of-enough-length-0123456789"),
        )])
    }

    fn check(kind: Kind, config: Value, local: bool) -> Result<Map<String, Value>, Vec<String>> {
        let Value::Object(map) = config else { panic!() };
        checked(kind, &map, None, &keys(), local).map_err(|e| match e {
            ApiError::Validation(errors) => errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        serde_json::to_string(&e.loc).expect("test data"),
                        e.msg
                    )
                })
                .collect(),
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn the_dashboards_form_makes_a_preset() {
        let stored = check(
            Kind::Google,
            json!({"client_id": "id", "client_secret": "s3cret"}),
            false,
        )
        .expect("valid");
        let sealed = stored["client_secret"].as_str().expect("test data");
        assert_ne!(sealed, "s3cret");
        assert_eq!(keys().open(sealed).expect("test data"), "s3cret");
        let shown = masked(Some(Kind::Google), &Value::Object(stored));
        assert_eq!(shown["client_secret"], MASK);
        assert_eq!(shown["client_id"], "id");
    }

    #[test]
    fn each_problem_is_named_at_its_key_without_echoing_a_secret() {
        let errors = check(
            Kind::Oidc,
            json!({"client_secret": 5, "issuer": "not a url", "colour": "red"}),
            false,
        )
        .expect_err("invalid");
        let text = errors.join("\n");
        for expected in [
            r#"["body","config","client_secret"]"#,
            r#"["body","config","issuer"]"#,
            r#"["body","config","colour"]"#,
            r#"["body","config","client_id"]"#,
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
    }

    #[test]
    fn plain_transports_need_local_or_allow_insecure() {
        let oidc = |extra: Value, local| {
            let mut config =
                json!({"issuer": "http://idp.test", "client_id": "a", "client_secret": "b"});
            config
                .as_object_mut()
                .expect("test data")
                .extend(extra.as_object().expect("test data").clone());
            check(Kind::Oidc, config, local)
        };
        assert!(oidc(json!({}), false).is_err());
        assert!(oidc(json!({}), true).is_ok());
        assert!(oidc(json!({"allow_insecure": true}), false).is_ok());
        let ldap = |start_tls: bool| {
            check(
                Kind::Ldap {
                    active_directory: false,
                },
                json!({"server_uri": "ldap://dir.test", "base_dn": "dc=test",
                       "user_dn_template": "uid={username},dc=test", "start_tls": start_tls}),
                false,
            )
        };
        assert!(ldap(true).is_ok());
        assert!(ldap(false).is_err());
    }

    #[test]
    fn ldap_needs_a_search_account_or_a_template() {
        let base = json!({"server_uri": "ldaps://dir.test", "base_dn": "dc=test"});
        let kind = Kind::Ldap {
            active_directory: true,
        };
        assert!(check(kind, base.clone(), false).is_err());
        let mut with_account = base.clone();
        with_account["bind_dn"] = json!("cn=reader,dc=test");
        assert!(
            check(kind, with_account.clone(), false).is_err(),
            "no password"
        );
        with_account["bind_password"] = json!("pw");
        assert!(check(kind, with_account, false).is_ok());
    }

    #[test]
    fn a_mask_keeps_the_stored_secret() {
        let stored = check(
            Kind::Github,
            json!({"client_id": "id", "client_secret": "first"}),
            false,
        )
        .expect("test data");
        let Value::Object(again) = json!({"client_id": "id2", "client_secret": MASK}) else {
            panic!()
        };
        let kept = checked(Kind::Github, &again, Some(&stored), &keys(), false).expect("test data");
        assert_eq!(kept["client_secret"], stored["client_secret"]);
        assert_eq!(kept["client_id"], "id2");
    }
}
