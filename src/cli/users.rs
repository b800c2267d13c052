//! `create-admin` and `import-users`: users created through the user service, as over HTTP.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::audit::Actor;
use crate::cli::command_realm;
use crate::domain::{Email, Password, Username, parse_name};
use crate::http::error::plain;
use crate::realm::RealmId;
use crate::users::roles::{self, RoleInput};
use crate::users::service::{self, Credential, NewUser, Prepared};

/// Runs `create-admin`.
pub async fn create_admin(
    settings: &crate::config::Settings,
    realm: RealmId,
    username: &str,
    email: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let username = Username::parse(username).map_err(|m| anyhow::anyhow!("--username: {m}"))?;
    let email = Email::parse(email).map_err(|m| anyhow::anyhow!("--email: {m}"))?;
    let (password, generated) = if password_stdin {
        let mut raw = String::new();
        std::io::stdin().read_to_string(&mut raw)?;
        (raw.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (
            crate::credentials::keys::random_secret()
                .chars()
                .take(24)
                .collect::<String>(),
            true,
        )
    };
    let password = SecretString::from(password);
    let (state, target) = command_realm(settings, realm).await?;
    let parsed = Password::parse(
        &password,
        username.as_str(),
        Some(email.as_str()),
        target.scheme(),
    )
    .map_err(|m| anyhow::anyhow!("password: {m}"))?;
    let new = NewUser {
        username,
        email,
        display_name: None,
        credential: Credential::Password(parsed),
        roles: RoleInput::default(),
        admin: true,
        is_active: true,
        must_change_password: generated,
        org_id: None,
    };
    let user = service::create(&state, &target, &Actor::system("cli:create-admin"), new)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the admin: {}", plain(&e)))?;
    say!(
        "created {} admin {} ({})",
        realm.as_str(),
        user.username,
        user.id
    );
    if generated {
        say!("PASSWORD={}", password.expose_secret());
    }
    Ok(())
}

/// One user of an import file.
#[derive(Debug, Deserialize)]
struct ImportedUser {
    username: Option<String>,
    email: Option<String>,
    #[serde(alias = "full_name")]
    display_name: Option<String>,
    password_hash: Option<String>,
    #[serde(default, deserialize_with = "roles_field")]
    roles: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flag_field")]
    is_active: Option<bool>,
}

/// Roles as a JSON array, or (CSV) a `;`-separated string.
fn roles_field<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Roles {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Option::<Roles>::deserialize(de)? {
        None => None,
        Some(Roles::List(list)) => Some(list),
        Some(Roles::Text(text)) if text.trim().is_empty() => None,
        Some(Roles::Text(text)) => Some(
            text.split(';')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect(),
        ),
    })
}

/// A flag as a JSON boolean, or (CSV) `true`/`false`/`1`/`0`/`yes`/`no`.
fn flag_field<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Option::<Flag>::deserialize(de)? {
        None => Ok(None),
        Some(Flag::Bool(b)) => Ok(Some(b)),
        Some(Flag::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" => Ok(Some(false)),
            other => Err(serde::de::Error::custom(format!(
                "is_active: expected true or false, got {other:?}"
            ))),
        },
    }
}

/// The records of an import file, each with the line it starts on.
fn read_import(path: &Path) -> anyhow::Result<Vec<(u64, Result<ImportedUser, String>)>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if text.trim_start().starts_with('[') {
        let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("line {}: not a JSON array of users: {e}", e.line()))?;
        return Ok(items
            .into_iter()
            .map(|raw| {
                let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
                let line = 1 + text.get(..offset).unwrap_or_default().matches('\n').count() as u64;
                (
                    line,
                    serde_json::from_str(raw.get()).map_err(|e| e.to_string()),
                )
            })
            .collect());
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader.headers()?.clone();
    for required in ["username", "email", "password_hash"] {
        if !headers.iter().any(|h| h.eq_ignore_ascii_case(required)) {
            anyhow::bail!("line 1: the CSV header has no {required} column");
        }
    }
    let headers = csv::StringRecord::from(
        headers
            .iter()
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>(),
    );
    Ok(reader
        .records()
        .map(|record| match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line());
                let fields: serde_json::Map<String, serde_json::Value> = headers
                    .iter()
                    .zip(record.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(h, v)| (h.to_owned(), serde_json::Value::String(v.to_owned())))
                    .collect();
                (
                    line,
                    serde_json::from_value(serde_json::Value::Object(fields))
                        .map_err(|e| e.to_string()),
                )
            }
            Err(err) => {
                let line = err.position().map_or(0, |p| p.line());
                (line, Err(err.to_string()))
            }
        })
        .collect())
}

/// Runs `import-users`: every record is checked first ("line N: reason" for each problem),
/// then all are written in one transaction.
pub async fn import_users(
    settings: &crate::config::Settings,
    realm: RealmId,
    file: &Path,
) -> anyhow::Result<usize> {
    let records = read_import(file)?;
    let (_state, target) = command_realm(settings, realm).await?;
    let mut errors = Vec::new();
    let mut users: Vec<(u64, NewUser)> = Vec::new();
    let (mut names, mut emails) = (HashSet::new(), HashSet::new());
    for (line, record) in records {
        let user = match record {
            Ok(user) => user,
            Err(msg) => {
                errors.push(format!("line {line}: {msg}"));
                continue;
            }
        };
        match parse_imported(user) {
            Ok(new) => {
                if !names.insert(new.username.as_str().to_lowercase()) {
                    errors.push(format!(
                        "line {line}: username {} appears twice in the file",
                        new.username.as_str()
                    ));
                }
                if !emails.insert(new.email.as_str().to_lowercase()) {
                    errors.push(format!(
                        "line {line}: email {} appears twice in the file",
                        new.email.as_str()
                    ));
                }
                if let Err(err) = roles::of_new_user(&target, &new.roles, new.admin) {
                    errors.push(format!("line {line}: {}", plain(&err)));
                }
                users.push((line, new));
            }
            Err(msg) => errors.push(format!("line {line}: {msg}")),
        }
    }
    let taken: HashSet<String> = {
        let names: Vec<String> = names.iter().cloned().collect();
        let emails: Vec<String> = emails.iter().cloned().collect();
        let (names, emails) = (&names, &emails);
        target
            .read(|mut db| Box::pin(async move { service::taken(&mut db, names, emails).await }))
            .await
            .map_err(|e| anyhow::anyhow!("{}", plain(&e)))?
            .into_iter()
            .collect()
    };
    for (line, new) in &users {
        if taken.contains(&new.username.as_str().to_lowercase()) {
            errors.push(format!(
                "line {line}: username {} already exists",
                new.username.as_str()
            ));
        }
        if taken.contains(&new.email.as_str().to_lowercase()) {
            errors.push(format!(
                "line {line}: email {} already exists",
                new.email.as_str()
            ));
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| {
            e.split(':')
                .next()
                .and_then(|l| l.trim_start_matches("line ").parse::<u64>().ok())
        });
        anyhow::bail!(
            "nothing imported, {} problem(s):\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
    let progress = indicatif::ProgressBar::new(users.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} users ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let actor = &Actor::system("cli:import-users");
    let prepared: Vec<Prepared<'_>> = users
        .iter()
        .map(|(_, new)| Prepared {
            new,
            roles: roles::of_new_user(&target, &new.roles, new.admin).unwrap_or_default(),
            password_hash: match &new.credential {
                Credential::Hash(hash) => Some(hash.clone()),
                Credential::Password(_) | Credential::None => None,
            },
        })
        .collect();
    let (prepared, target, progress) = (&prepared, &target, &progress);
    target
        .transaction(|mut tx| {
            Box::pin(async move {
                progress.reset();
                for chunk in prepared.chunks(5000) {
                    service::create_many(&mut tx, target, actor, chunk).await?;
                    progress.inc(chunk.len() as u64);
                }
                Ok(())
            })
        })
        .await
        .map_err(|e| anyhow::anyhow!("nothing imported: {}", plain(&e)))?;
    progress.finish_and_clear();
    say!("imported {} users into {}", users.len(), realm.as_str());
    Ok(users.len())
}

fn parse_imported(user: ImportedUser) -> Result<NewUser, String> {
    let username = Username::parse(user.username.as_deref().ok_or("no username")?)?;
    let email = Email::parse(user.email.as_deref().ok_or("no email")?)?;
    let hash = user.password_hash.ok_or("no password_hash")?;
    let known =
        hash.starts_with("$argon2") || ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
    if !known || hash.len() > 255 {
        return Err("password_hash must be an Argon2 PHC string or a bcrypt hash".into());
    }
    let display_name = match user.display_name.as_deref() {
        None => None,
        Some(raw) => parse_name(raw, 255, "display_name")?,
    };
    Ok(NewUser {
        username,
        email,
        display_name,
        credential: Credential::Hash(hash),
        roles: RoleInput {
            names: user.roles,
            ids: None,
        },
        admin: false,
        is_active: user.is_active.unwrap_or(true),
        must_change_password: false,
        org_id: None,
    })
}
