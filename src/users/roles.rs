//! Roles named in a request, resolved against the realm's catalog: by name or by id, with a
//! 422 pointing at each unknown entry.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::http::error::{ApiError, FieldError, LocItem};
use crate::realm::{ADMIN_ROLE, Catalog, Realm, Role};

/// Roles named in a request, by name or by id.
#[derive(Debug, Default, Clone)]
pub struct RoleInput {
    pub names: Option<Vec<String>>,
    pub ids: Option<Vec<Uuid>>,
}

impl RoleInput {
    /// The roles named `names`.
    pub fn named(names: &[&str]) -> Self {
        Self {
            names: Some(names.iter().map(|n| (*n).to_owned()).collect()),
            ids: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.as_ref().is_none_or(Vec::is_empty) && self.ids.as_ref().is_none_or(Vec::is_empty)
    }
}

/// The realm's roles named by `input`, or 422s pointing at each unknown entry
/// (`["body", "roles", i]` or `["body", "role_ids", i]`).
pub fn resolve(catalog: &Catalog, input: &RoleInput) -> Result<Vec<Role>, ApiError> {
    let known = catalog.roles();
    let mut picked: BTreeMap<Uuid, Role> = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, name) in input.names.iter().flatten().enumerate() {
        match known.iter().find(|r| &r.name == name) {
            Some(role) => {
                picked.insert(role.id, (*role).clone());
            }
            None => errors.push(FieldError::at(
                vec!["body".into(), "roles".into(), LocItem::Index(i)],
                format!(
                    "Unknown role {name:?}; expected one of: {}",
                    known
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "value_error",
            )),
        }
    }
    for (i, id) in input.ids.iter().flatten().enumerate() {
        match known.iter().find(|r| &r.id == id) {
            Some(role) => {
                picked.insert(role.id, (*role).clone());
            }
            None => errors.push(FieldError::at(
                vec!["body".into(), "role_ids".into(), LocItem::Index(i)],
                "Role not found",
                "value_error",
            )),
        }
    }
    match errors.is_empty() {
        true => Ok(picked.into_values().collect()),
        false => Err(ApiError::Validation(errors)),
    }
}

/// The roles a new user gets: those named, the realm's role for users created without roles
/// when none is, and `admin` when asked for with the flag.
pub fn of_new_user(realm: &Realm, named: &RoleInput, admin: bool) -> Result<Vec<Role>, ApiError> {
    let catalog = realm.catalog();
    let named = match named.is_empty() {
        true => RoleInput::named(&[realm.new_user_role()]),
        false => named.clone(),
    };
    let mut roles = resolve(&catalog, &named)?;
    if admin && !roles.iter().any(|r| r.name == ADMIN_ROLE) {
        roles.extend(catalog.named(ADMIN_ROLE).cloned());
    }
    Ok(roles)
}

/// The realm's role named `name`.
pub fn named(realm: &Realm, name: &str) -> Result<Role, ApiError> {
    realm.catalog().named(name).cloned().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "the realm has no {name} role (not seeded?)"
        ))
    })
}
