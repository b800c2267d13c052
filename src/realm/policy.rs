//! What differs between the realms, as data: their roles and permissions (seeded into each
//! database's `roles`, `permissions` and `role_permissions`), which permission each management
//! action needs, and a few names.

/// A permission row: `name` is `resource:action`.
#[derive(Debug)]
pub struct PermissionSeed {
    pub name: &'static str,
    pub resource: &'static str,
    pub action: &'static str,
    pub description: &'static str,
}

/// A system role and the permissions it grants.
#[derive(Debug)]
pub struct RoleSeed {
    pub name: &'static str,
    pub description: &'static str,
    /// Higher includes lower (docs/api.md §2).
    pub priority: i32,
    pub permissions: &'static [&'static str],
}

/// Everything that differs between the realms.
#[derive(Debug)]
pub struct RealmPolicy {
    /// The realm's system roles, lowest first; the last is the admin role.
    pub roles: &'static [RoleSeed],
    pub permissions: &'static [PermissionSeed],
    /// Role given to a new user when none is named.
    pub default_role: &'static str,
    /// The SLM permission needed to read this realm's users (and teams) remotely.
    pub read_permission: &'static str,
    /// The SLM permission needed to change this realm's users, teams and roles below admin.
    pub write_permission: &'static str,
    /// The SLM permission needed to grant or withdraw this realm's `admin`, or change an admin.
    pub admin_permission: &'static str,
    /// Whether committed user changes are announced to AutoBot's caches (docs/api.md §5).
    pub publishes_invalidations: bool,
    /// The 503 detail when the realm's database cannot be reached.
    pub unavailable_detail: &'static str,
    /// Prefix of API keys issued in this realm, so that a leaked key is recognisable.
    pub api_key_prefix: &'static str,
    /// Name of the database when none is configured.
    pub default_database: &'static str,
    /// Human name of the realm (TOTP issuer).
    pub display_name: &'static str,
}

/// The name of the admin role in every realm.
pub const ADMIN_ROLE: &str = "admin";

const fn permission(
    name: &'static str,
    resource: &'static str,
    action: &'static str,
    description: &'static str,
) -> PermissionSeed {
    PermissionSeed {
        name,
        resource,
        action,
        description,
    }
}

/// The management permissions of SLM users: what they may do to either realm.
const SLM_PERMISSIONS: &[PermissionSeed] = &[
    permission(
        "autobot-users:read",
        "autobot-users",
        "read",
        "Read AutoBot users and teams",
    ),
    permission(
        "autobot-users:write",
        "autobot-users",
        "write",
        "Create, update and delete AutoBot users, teams and memberships; grant roles up to manager",
    ),
    permission(
        "autobot-users:admin",
        "autobot-users",
        "admin",
        "Grant or withdraw AutoBot admin and change AutoBot admins",
    ),
    permission(
        "access-requests:review",
        "access-requests",
        "review",
        "Approve and deny requests for an AutoBot account",
    ),
    permission("slm-users:read", "slm-users", "read", "Read SLM users"),
    permission(
        "slm-users:write",
        "slm-users",
        "write",
        "Create, update and delete SLM users and their roles",
    ),
    permission(
        "audit:read",
        "audit",
        "read",
        "Read the audit log of both realms",
    ),
];

const SLM_VIEWER: &[&str] = &["autobot-users:read"];
const SLM_MANAGER: &[&str] = &[
    "autobot-users:read",
    "autobot-users:write",
    "access-requests:review",
    "slm-users:read",
];
const SLM_ADMIN: &[&str] = &[
    "autobot-users:read",
    "autobot-users:write",
    "autobot-users:admin",
    "access-requests:review",
    "slm-users:read",
    "slm-users:write",
    "audit:read",
];

/// The AutoBot backend's own system permissions (its `SYSTEM_PERMISSIONS`), which its
/// permission checks look up through `role_permissions`.
const AUTOBOT_PERMISSIONS: &[PermissionSeed] = &[
    permission("users:read", "users", "read", "View users"),
    permission("users:create", "users", "create", "Create users"),
    permission("users:update", "users", "update", "Update users"),
    permission("users:delete", "users", "delete", "Delete users"),
    permission("teams:read", "teams", "read", "View teams"),
    permission("teams:create", "teams", "create", "Create teams"),
    permission("teams:manage", "teams", "manage", "Manage team members"),
    permission("teams:delete", "teams", "delete", "Delete teams"),
    permission("knowledge:read", "knowledge", "read", "View knowledge base"),
    permission(
        "knowledge:write",
        "knowledge",
        "write",
        "Add/edit knowledge",
    ),
    permission(
        "knowledge:delete",
        "knowledge",
        "delete",
        "Delete knowledge entries",
    ),
    permission("chat:use", "chat", "use", "Use chat functionality"),
    permission("chat:history", "chat", "history", "View chat history"),
    permission("files:view", "files", "view", "View files"),
    permission("files:upload", "files", "upload", "Upload files"),
    permission("files:download", "files", "download", "Download files"),
    permission("files:delete", "files", "delete", "Delete files"),
    permission("settings:read", "settings", "read", "View settings"),
    permission("settings:write", "settings", "write", "Modify settings"),
    permission("admin:access", "admin", "access", "Access admin panel"),
    permission("admin:users", "admin", "users", "Manage all users"),
    permission(
        "admin:organization",
        "admin",
        "organization",
        "Manage organization",
    ),
    permission("audit:read", "audit", "read", "View audit logs"),
    permission(
        "audit:write",
        "audit",
        "write",
        "Manage audit logs (cleanup)",
    ),
];

/// The AutoBot backend's `readonly`, `user` and `admin` roles, and `manager` between the last
/// two (docs/api.md §2): a user who also manages users and teams.
const AUTOBOT_READONLY: &[&str] = &[
    "users:read",
    "teams:read",
    "knowledge:read",
    "chat:history",
    "files:view",
    "files:download",
    "settings:read",
];
const AUTOBOT_USER: &[&str] = &[
    "users:read",
    "teams:read",
    "knowledge:read",
    "knowledge:write",
    "chat:use",
    "chat:history",
    "files:view",
    "files:upload",
    "files:download",
    "settings:read",
];
const AUTOBOT_MANAGER: &[&str] = &[
    "users:read",
    "users:create",
    "users:update",
    "teams:read",
    "teams:create",
    "teams:manage",
    "knowledge:read",
    "knowledge:write",
    "chat:use",
    "chat:history",
    "files:view",
    "files:upload",
    "files:download",
    "settings:read",
];
const AUTOBOT_ADMIN: &[&str] = &[
    "users:read",
    "users:create",
    "users:update",
    "users:delete",
    "teams:read",
    "teams:create",
    "teams:manage",
    "teams:delete",
    "knowledge:read",
    "knowledge:write",
    "knowledge:delete",
    "chat:use",
    "chat:history",
    "files:view",
    "files:upload",
    "files:download",
    "files:delete",
    "settings:read",
    "settings:write",
    "admin:access",
    "admin:users",
    "admin:organization",
    "audit:read",
    "audit:write",
];

pub(super) static SLM_POLICY: RealmPolicy = RealmPolicy {
    roles: &[
        RoleSeed {
            name: "viewer",
            description: "Reads AutoBot users and teams",
            priority: 10,
            permissions: SLM_VIEWER,
        },
        RoleSeed {
            name: "manager",
            description: "Manages AutoBot users, teams and access requests; reads SLM users",
            priority: 50,
            permissions: SLM_MANAGER,
        },
        RoleSeed {
            name: ADMIN_ROLE,
            description: "Manages everything, including SLM users and the audit log",
            priority: 100,
            permissions: SLM_ADMIN,
        },
    ],
    permissions: SLM_PERMISSIONS,
    default_role: "viewer",
    read_permission: "slm-users:read",
    write_permission: "slm-users:write",
    admin_permission: "slm-users:write",
    publishes_invalidations: false,
    unavailable_detail: "SLM user database unavailable",
    api_key_prefix: "slmk_",
    default_database: "slm_users",
    display_name: "SLM",
};

pub(super) static AUTOBOT_POLICY: RealmPolicy = RealmPolicy {
    roles: &[
        RoleSeed {
            name: "readonly",
            description: "Read-only access",
            priority: 10,
            permissions: AUTOBOT_READONLY,
        },
        RoleSeed {
            name: "user",
            description: "Standard user access",
            priority: 50,
            permissions: AUTOBOT_USER,
        },
        RoleSeed {
            name: "manager",
            description: "Standard access, and manages users and teams",
            priority: 75,
            permissions: AUTOBOT_MANAGER,
        },
        RoleSeed {
            name: ADMIN_ROLE,
            description: "Full administrative access",
            priority: 100,
            permissions: AUTOBOT_ADMIN,
        },
    ],
    permissions: AUTOBOT_PERMISSIONS,
    default_role: "user",
    read_permission: "autobot-users:read",
    write_permission: "autobot-users:write",
    admin_permission: "autobot-users:admin",
    publishes_invalidations: true,
    unavailable_detail: "AutoBot user database unavailable",
    api_key_prefix: "abk_",
    default_database: "autobot_users",
    display_name: "AutoBot",
};

impl RealmPolicy {
    /// The seed of the role named `name`, if the realm has it.
    pub fn role(&self, name: &str) -> Option<&RoleSeed> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// The realm's role names, lowest first.
    pub fn role_names(&self) -> Vec<&'static str> {
        self.roles.iter().map(|r| r.name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_grants_only_known_permissions_and_includes_the_ones_below() {
        for policy in [&SLM_POLICY, &AUTOBOT_POLICY] {
            let known: Vec<&str> = policy.permissions.iter().map(|p| p.name).collect();
            for pair in policy.roles.windows(2) {
                let (lower, higher) = (&pair[0], &pair[1]);
                assert!(lower.priority < higher.priority);
                for p in lower.permissions {
                    assert!(higher.permissions.contains(p), "{} lacks {p}", higher.name);
                }
            }
            for role in policy.roles {
                for p in role.permissions {
                    assert!(known.contains(p), "{} grants unknown {p}", role.name);
                }
            }
            assert_eq!(policy.roles.last().map(|r| r.name), Some(ADMIN_ROLE));
            let admin = policy.roles.last().expect("admin");
            assert_eq!(
                admin.permissions.len(),
                known.len(),
                "admin holds every permission"
            );
            assert!(policy.role(policy.default_role).is_some());
        }
        let names: Vec<_> = AUTOBOT_POLICY.role_names();
        assert_eq!(names, ["readonly", "user", "manager", "admin"]);
    }
}
