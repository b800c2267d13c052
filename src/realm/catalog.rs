//! The catalog of a realm's roles: every role and the permissions it grants, read from the
//! realm's `roles`, `permissions` and `role_permissions` and held in memory, so that a request
//! resolves its user's roles and permissions without asking the database to build them. The
//! roles a user holds (`user_roles`) are read on every request; only what each role grants is
//! cached, and read again when its fingerprint changed, as soon as a change is announced
//! ([`super::catalog_watch`]).

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

use crate::realm::ADMIN_ROLE;

/// A role of a realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_system: bool,
    /// Higher includes lower.
    pub priority: i32,
    /// The organization of an organization's own role (the AutoBot backend may make them);
    /// `None` for the realm's roles.
    pub org_id: Option<Uuid>,
}

/// Every role and what it grants.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Every role row, by id.
    roles: HashMap<Uuid, Role>,
    /// The realm's roles (of no organization), one per name, highest first.
    listed: Vec<Uuid>,
    /// The permissions each role grants.
    grants: HashMap<Uuid, Vec<String>>,
    /// Every permission of the realm and what it allows.
    permissions: Vec<(String, String)>,
    /// What the catalog was read from: a digest of the three tables.
    fingerprint: String,
}

impl Catalog {
    /// A catalog of these rows: `roles`, `permissions` (name, description) and `grants`
    /// (role id, permission name).
    pub fn new(
        roles: Vec<Role>,
        permissions: Vec<(String, String)>,
        grants: Vec<(Uuid, String)>,
        fingerprint: String,
    ) -> Self {
        // One role per name among the realm's own: a system role wins, then the oldest (the
        // order the rows come in).
        let mut listed: Vec<&Role> = Vec::new();
        for role in roles.iter().filter(|r| r.org_id.is_none()) {
            match listed.iter_mut().find(|l| l.name == role.name) {
                Some(kept) if role.is_system && !kept.is_system => *kept = role,
                Some(_) => {}
                None => listed.push(role),
            }
        }
        listed.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
        let listed = listed.into_iter().map(|r| r.id).collect();
        let mut by_role: HashMap<Uuid, Vec<String>> = HashMap::new();
        for (role, permission) in grants {
            by_role.entry(role).or_default().push(permission);
        }
        Self {
            roles: roles.into_iter().map(|r| (r.id, r)).collect(),
            listed,
            grants: by_role,
            permissions,
            fingerprint,
        }
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The realm's roles, highest first, one per name.
    pub fn roles(&self) -> Vec<&Role> {
        self.listed
            .iter()
            .filter_map(|id| self.roles.get(id))
            .collect()
    }

    /// The realm's role named `name`.
    pub fn named(&self, name: &str) -> Option<&Role> {
        self.roles().into_iter().find(|r| r.name == name)
    }

    /// The role with this id, if the realm has it.
    pub fn role(&self, id: Uuid) -> Option<&Role> {
        self.roles.get(&id)
    }

    /// The roles of a user who holds `role_ids`, highest first. The `is_platform_admin` flag
    /// makes an admin as the `admin` role does (docs/api.md §3): a flag without the role adds
    /// the realm's `admin` role here, so that every reader agrees.
    pub fn roles_of(&self, role_ids: &[Uuid], platform_admin: bool) -> Vec<Role> {
        let mut roles: Vec<Role> = role_ids
            .iter()
            .filter_map(|id| self.roles.get(id))
            .cloned()
            .collect();
        if platform_admin
            && !roles.iter().any(|r| r.name == ADMIN_ROLE)
            && let Some(admin) = self.named(ADMIN_ROLE)
        {
            roles.push(admin.clone());
        }
        roles.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
        roles
    }

    /// The permissions `roles` grant, sorted.
    pub fn permissions_of<'r>(&self, roles: impl IntoIterator<Item = &'r Role>) -> Vec<String> {
        let set: BTreeSet<&String> = roles
            .into_iter()
            .filter_map(|r| self.grants.get(&r.id))
            .flatten()
            .collect();
        set.into_iter().cloned().collect()
    }

    /// Every permission of the realm and what it allows (the scopes an API key may hold).
    pub fn permissions(&self) -> &[(String, String)] {
        &self.permissions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, priority: i32, org: Option<Uuid>, system: bool) -> Role {
        Role {
            id: Uuid::new_v4(),
            name: name.into(),
            description: None,
            is_system: system,
            priority,
            org_id: org,
        }
    }

    #[test]
    fn the_flag_makes_an_admin_and_grants_follow_the_roles() {
        let (user, admin) = (role("user", 50, None, true), role("admin", 100, None, true));
        let own = role("editors", 60, Some(Uuid::new_v4()), false);
        let catalog = Catalog::new(
            vec![user.clone(), admin.clone(), own.clone()],
            vec![],
            vec![
                (user.id, "chat:use".into()),
                (admin.id, "chat:use".into()),
                (admin.id, "users:delete".into()),
            ],
            "f".into(),
        );
        let names = |roles: &[Role]| roles.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&catalog.roles_of(&[user.id], true)),
            ["admin", "user"]
        );
        assert_eq!(
            names(&catalog.roles_of(&[user.id, own.id], false)),
            ["editors", "user"]
        );
        assert_eq!(
            catalog.permissions_of(&catalog.roles_of(&[user.id], true)),
            ["chat:use", "users:delete"]
        );
        assert_eq!(
            catalog.roles().iter().map(|r| &r.name).collect::<Vec<_>>(),
            ["admin", "user"],
            "an organization's own role is not one of the realm's"
        );
    }
}
