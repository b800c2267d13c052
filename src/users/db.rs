//! The SQL of users, their roles, the realm's roles and permissions, organizations, and the
//! server's password state: every statement that touches those tables is here.
//!
//! A row of `users` whose `deleted_at` is set is no user (the AutoBot backend soft-deletes):
//! every query here leaves it out.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::types::Json;
use uuid::Uuid;

use crate::database::Db;
use crate::realm::{ADMIN_ROLE, RealmPolicy};

/// The columns of a [`User`], for `SELECT … FROM users u`. Roles come highest first.
///
/// A user is an admin by the row's `is_platform_admin` flag (what the AutoBot backend's login
/// reads) or by the `admin` role (docs/api.md §3): a row made elsewhere with the flag alone
/// gets the realm's `admin` role among its roles here, so that every reader agrees.
macro_rules! user_columns {
    () => {
        "u.id, u.username, u.email, u.display_name, u.bio, u.avatar_url, u.org_id, u.is_active, \
         u.is_verified, u.mfa_enabled, u.preferences, \
         COALESCE((SELECT json_agg(json_build_object('id', r.id, 'name', r.name, \
                   'description', r.description, 'is_system', r.is_system, 'priority', r.priority) \
                   ORDER BY r.priority DESC, r.name) \
                   FROM public.roles r \
                   WHERE r.id IN (SELECT ur.role_id FROM public.user_roles ur WHERE ur.user_id = u.id) \
                      OR (u.is_platform_admin AND r.name = 'admin' AND r.org_id IS NULL)), \
                  '[]'::json) AS roles, \
         COALESCE((SELECT ps.must_change_password FROM slm_server.password_state ps \
                   WHERE ps.user_id = u.id), false) AS must_change_password, \
         u.last_login_at, u.created_at, u.updated_at"
    };
}
pub(crate) use user_columns;

/// The text searched by `search`: the expression of the trigram index `users_search_trgm_idx`.
macro_rules! search_text {
    () => {
        "(u.username || E'\\x1f' || u.email || E'\\x1f' || coalesce(u.display_name, ''))"
    };
}

/// A role of a realm.
#[derive(Debug, Clone, Deserialize, sqlx::FromRow)]
pub struct Role {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_system: bool,
}

/// A user as stored, without secrets.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub org_id: Option<Uuid>,
    pub is_active: bool,
    pub is_verified: bool,
    pub mfa_enabled: bool,
    /// As PostgreSQL prints it, never parsed: a JSON number may be beyond what `f64` holds (the
    /// AutoBot backend writes Python's integers), and the server does not read preferences.
    pub preferences: Json<Box<serde_json::value::RawValue>>,
    /// Highest priority first.
    pub roles: Json<Vec<Role>>,
    pub must_change_password: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.name == role)
    }

    /// The name of the highest role, if the user has any.
    pub fn highest_role(&self) -> Option<&str> {
        self.roles.first().map(|r| r.name.as_str())
    }

    pub fn role_ids(&self) -> Vec<Uuid> {
        self.roles.iter().map(|r| r.id).collect()
    }
}

/// Unique indexes of `users` and the 409 each means.
pub const USER_CONFLICTS: &[(&str, &str)] = &[
    ("users_username_lower_key", "Username already exists"),
    ("ix_users_username", "Username already exists"),
    ("users_email_lower_key", "Email already exists"),
    ("ix_users_email", "Email already exists"),
];

pub async fn fetch(db: &mut impl Db, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM public.users u WHERE u.id = $1 AND u.deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(db.exec())
    .await
}

/// Fetches and row-locks a user for the rest of the transaction.
pub async fn fetch_for_update(db: &mut impl Db, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as(concat!(
        "SELECT ",
        user_columns!(),
        " FROM public.users u WHERE u.id = $1 AND u.deleted_at IS NULL FOR UPDATE OF u"
    ))
    .bind(id)
    .fetch_optional(db.exec())
    .await
}

/// Which of `ids` are users.
pub async fn existing(db: &mut impl Db, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM public.users WHERE id = ANY($1) AND deleted_at IS NULL")
        .bind(ids)
        .fetch_all(db.exec())
        .await
}

/// Whether a user (or a deleted user's former row) has this username, case-insensitively.
pub async fn username_taken(db: &mut impl Db, username: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM public.users WHERE lower(username) = lower($1))",
    )
    .bind(username)
    .fetch_one(db.exec())
    .await
}

/// Filters and page of a user list.
#[derive(Debug, Default)]
pub struct UserFilter {
    pub search: Option<String>,
    pub is_active: Option<bool>,
    pub role: Option<String>,
    pub skip: i64,
    pub limit: i64,
}

/// Up to this many matches are counted exactly; beyond it, the planner's estimate is the total.
pub const EXACT_COUNT_LIMIT: i64 = 10_000;

/// Escapes `%`, `_` and `\` so that a search string matches itself literally in `ILIKE`.
pub fn like_pattern(search: &str) -> String {
    let mut escaped = String::with_capacity(search.len() + 2);
    escaped.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// The conditions of a list besides the search: $2 is_active, $3 role name.
macro_rules! list_conditions {
    () => {
        r"u.deleted_at IS NULL
          AND ($2::boolean IS NULL OR u.is_active = $2)
          AND ($3::text IS NULL OR EXISTS (
                SELECT 1 FROM public.user_roles ur JOIN public.roles r ON r.id = ur.role_id
                WHERE ur.user_id = u.id AND r.name = $3))"
    };
}

/// A search: one page of the matches, newest first. The planner picks the path from the
/// trigram index's statistics for this very pattern: a rare term is looked up in
/// `users_search_trgm_idx` and its few matches sorted; a common one is found sooner by walking
/// the list order (`users_created_at_id_idx`) and stopping at the page's end. Either path alone
/// is slow for the other kind of term (hundreds of milliseconds at a million users), so the
/// statement is planned afresh for every pattern (see [`list`]). $1 is the ILIKE pattern.
const SEARCH: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM public.users u WHERE ",
    search_text!(),
    " ILIKE $1 AND ",
    list_conditions!(),
    " ORDER BY u.created_at DESC, u.id DESC OFFSET $4 LIMIT $5"
);

const SEARCH_COUNT: &str = concat!(
    "SELECT count(*) FROM (SELECT 1 FROM public.users u WHERE ",
    search_text!(),
    " ILIKE $1 AND ",
    list_conditions!(),
    " LIMIT $4) capped"
);

const SEARCH_ESTIMATE: &str = concat!(
    "EXPLAIN (FORMAT JSON) SELECT 1 FROM public.users u WHERE ",
    search_text!(),
    " ILIKE $1 AND ",
    list_conditions!()
);

/// Without a search, the newest first straight from the `(created_at, id)` index. $1 is unused
/// (NULL), so that both shapes bind the same parameters.
const BROWSE: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM public.users u WHERE ($1::text IS NULL) AND ",
    list_conditions!(),
    " ORDER BY u.created_at DESC, u.id DESC OFFSET $4 LIMIT $5"
);

const BROWSE_COUNT: &str = concat!(
    "SELECT count(*) FROM (SELECT 1 FROM public.users u WHERE ($1::text IS NULL) AND ",
    list_conditions!(),
    " LIMIT $4) capped"
);

const BROWSE_ESTIMATE: &str = concat!(
    "EXPLAIN (FORMAT JSON) SELECT 1 FROM public.users u WHERE ($1::text IS NULL) AND ",
    list_conditions!()
);

/// The two shapes of a list page, for the test that checks their plans use the indexes.
pub const LIST_STATEMENTS: [(&str, &str); 2] = [("search", SEARCH), ("browse", BROWSE)];

/// One page of users, newest first, and the number of all matches. The total is known
/// without counting when the page is the last one; otherwise it is counted exactly when the
/// planner expects at most [`EXACT_COUNT_LIMIT`] matches, and is the planner's estimate when it
/// expects more (counting tens of thousands of matches costs more than the page itself).
///
/// Every statement here is unnamed (`persistent(false)`), so PostgreSQL plans it for the
/// pattern it is given: a cached generic plan would choose one path for every term.
pub async fn list(db: &mut impl Db, filter: &UserFilter) -> sqlx::Result<(Vec<User>, i64)> {
    let pattern = filter.search.as_deref().map(like_pattern);
    let (page, count, estimate) = match pattern {
        Some(_) => (SEARCH, SEARCH_COUNT, SEARCH_ESTIMATE),
        None => (BROWSE, BROWSE_COUNT, BROWSE_ESTIMATE),
    };
    let users: Vec<User> = sqlx::query_as(page)
        .persistent(false)
        .bind(&pattern)
        .bind(filter.is_active)
        .bind(&filter.role)
        .bind(filter.skip)
        .bind(filter.limit)
        .fetch_all(db.exec())
        .await?;
    let seen = filter.skip.saturating_add(users.len() as i64);
    let last_page = (users.len() as i64) < filter.limit && (filter.skip == 0 || !users.is_empty());
    if last_page {
        return Ok((users, seen));
    }
    let plan: Json<serde_json::Value> = sqlx::query_scalar(estimate)
        .persistent(false)
        .bind(&pattern)
        .bind(filter.is_active)
        .bind(&filter.role)
        .fetch_one(db.exec())
        .await?;
    let estimated = plan.0[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64;
    if estimated > EXACT_COUNT_LIMIT {
        return Ok((users, estimated.max(seen)));
    }
    let counted: i64 = sqlx::query_scalar(count)
        .persistent(false)
        .bind(&pattern)
        .bind(filter.is_active)
        .bind(&filter.role)
        .bind(EXACT_COUNT_LIMIT + 1)
        .fetch_one(db.exec())
        .await?;
    if counted <= EXACT_COUNT_LIMIT {
        return Ok((users, counted));
    }
    Ok((users, estimated.max(counted)))
}

/// The columns of a new user row.
pub struct NewUserRow<'a> {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub username: &'a str,
    pub email: &'a str,
    pub display_name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub is_active: bool,
    /// Kept equal to holding `admin` (the roles are granted with the row).
    pub is_platform_admin: bool,
    pub must_change_password: bool,
}

/// Inserts users (without roles) and their password state, in two statements whatever their
/// number.
pub async fn insert_many(db: &mut impl Db, rows: &[NewUserRow<'_>]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let orgs: Vec<Option<Uuid>> = rows.iter().map(|r| r.org_id).collect();
    let emails: Vec<&str> = rows.iter().map(|r| r.email).collect();
    let usernames: Vec<&str> = rows.iter().map(|r| r.username).collect();
    let hashes: Vec<Option<&str>> = rows.iter().map(|r| r.password_hash).collect();
    let names: Vec<Option<&str>> = rows.iter().map(|r| r.display_name).collect();
    let active: Vec<bool> = rows.iter().map(|r| r.is_active).collect();
    let admin: Vec<bool> = rows.iter().map(|r| r.is_platform_admin).collect();
    let must_change: Vec<bool> = rows.iter().map(|r| r.must_change_password).collect();
    sqlx::query(
        r"INSERT INTO public.users (id, org_id, email, username, password_hash, display_name,
              is_active, is_verified, mfa_enabled, is_platform_admin, preferences)
          SELECT id, org_id, email, username, password_hash, display_name, is_active, false, false,
                 is_platform_admin, '{}'
          FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                      $7::boolean[], $8::boolean[])
               AS n(id, org_id, email, username, password_hash, display_name, is_active, is_platform_admin)",
    )
    .bind(&ids)
    .bind(&orgs)
    .bind(&emails)
    .bind(&usernames)
    .bind(&hashes)
    .bind(&names)
    .bind(&active)
    .bind(&admin)
    .execute(db.exec())
    .await?;
    sqlx::query(
        r"INSERT INTO slm_server.password_state (user_id, must_change_password)
          SELECT * FROM UNNEST($1::uuid[], $2::boolean[])",
    )
    .bind(&ids)
    .bind(&must_change)
    .execute(db.exec())
    .await?;
    Ok(())
}

/// Grants role `role_ids[i]` to user `user_ids[i]` for every `i` (new users).
pub async fn grant_roles(
    db: &mut impl Db,
    user_ids: &[Uuid],
    role_ids: &[Uuid],
    assigned_by: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        r"INSERT INTO public.user_roles (user_id, role_id, assigned_by)
          SELECT u, r, $3 FROM UNNEST($1::uuid[], $2::uuid[]) AS g(u, r)
          ON CONFLICT DO NOTHING",
    )
    .bind(user_ids)
    .bind(role_ids)
    .bind(assigned_by)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// Which of these usernames and e-mail addresses are taken, case-insensitively (including by
/// the former rows of deleted users).
pub async fn taken(
    db: &mut impl Db,
    usernames: &[String],
    emails: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        r"SELECT lower(username)::text FROM public.users WHERE lower(username) = ANY($1)
          UNION ALL
          SELECT lower(email)::text FROM public.users WHERE lower(email) = ANY($2)",
    )
    .bind(usernames)
    .bind(emails)
    .fetch_all(db.exec())
    .await
}

/// Changes to the profile columns; `None` leaves a column, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub email: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<Option<String>>,
    pub bio: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub preferences: Option<serde_json::Value>,
    pub is_active: Option<bool>,
}

pub async fn update_profile(
    db: &mut impl Db,
    id: Uuid,
    change: &ProfileChange,
) -> sqlx::Result<()> {
    sqlx::query(
        r"UPDATE public.users SET
              email = COALESCE($2, email),
              username = COALESCE($3, username),
              display_name = CASE WHEN $4 THEN $5 ELSE display_name END,
              bio = CASE WHEN $6 THEN $7 ELSE bio END,
              avatar_url = CASE WHEN $8 THEN $9 ELSE avatar_url END,
              preferences = COALESCE($10, preferences),
              is_active = COALESCE($11, is_active),
              updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(&change.email)
    .bind(&change.username)
    .bind(change.display_name.is_some())
    .bind(change.display_name.clone().flatten())
    .bind(change.bio.is_some())
    .bind(change.bio.clone().flatten())
    .bind(change.avatar_url.is_some())
    .bind(change.avatar_url.clone().flatten())
    .bind(change.preferences.as_ref().map(Json))
    .bind(change.is_active)
    .execute(db.exec())
    .await?;
    Ok(())
}

/// Makes `role_ids` the user's roles, keeping `is_platform_admin` equal to holding `admin`.
/// `assigned_by` must be a user of the same database (the AutoBot schema's foreign key).
pub async fn set_roles(
    db: &mut impl Db,
    user_id: Uuid,
    role_ids: &[Uuid],
    assigned_by: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM public.user_roles WHERE user_id = $1 AND role_id <> ALL($2)")
        .bind(user_id)
        .bind(role_ids)
        .execute(db.exec())
        .await?;
    sqlx::query(
        r"INSERT INTO public.user_roles (user_id, role_id, assigned_by)
          SELECT $1, role_id, $3 FROM UNNEST($2::uuid[]) AS r(role_id)
          ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(role_ids)
    .bind(assigned_by)
    .execute(db.exec())
    .await?;
    sqlx::query(
        r"UPDATE public.users SET updated_at = now(), is_platform_admin = EXISTS (
              SELECT 1 FROM public.user_roles ur JOIN public.roles r ON r.id = ur.role_id
              WHERE ur.user_id = $1 AND r.name = $2)
          WHERE id = $1",
    )
    .bind(user_id)
    .bind(ADMIN_ROLE)
    .execute(db.exec())
    .await?;
    Ok(())
}

/// The realm's roles (those of no particular organization), highest first; one row per name.
pub async fn roles(db: &mut impl Db) -> sqlx::Result<Vec<Role>> {
    sqlx::query_as(
        r"SELECT * FROM (
              SELECT DISTINCT ON (name) id, name, description, is_system, priority
              FROM public.roles WHERE org_id IS NULL
              ORDER BY name, is_system DESC, created_at, id
          ) r ORDER BY priority DESC, name",
    )
    .fetch_all(db.exec())
    .await
}

/// Serialises every change that could remove a realm's last active admin (one realm-wide
/// transaction lock), so that two admins demoting each other cannot both succeed.
pub async fn lock_admin_set(db: &mut impl Db) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(7263511, 1)")
        .execute(db.exec())
        .await
        .map(|_| ())
}

/// Active admins (by the flag or the role) other than `except` (`None`: all of them).
pub async fn count_active_admins(db: &mut impl Db, except: Option<Uuid>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        r"SELECT count(*) FROM public.users u
          WHERE u.is_active AND u.deleted_at IS NULL AND ($1::uuid IS NULL OR u.id <> $1)
            AND (u.is_platform_admin OR EXISTS (
                SELECT 1 FROM public.user_roles ur JOIN public.roles r ON r.id = ur.role_id
                WHERE ur.user_id = u.id AND r.name = $2))",
    )
    .bind(except)
    .bind(ADMIN_ROLE)
    .fetch_one(db.exec())
    .await
}

/// The id of the user with this username, case-insensitively.
pub async fn id_by_username(db: &mut impl Db, username: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM public.users WHERE lower(username) = lower($1) AND deleted_at IS NULL",
    )
    .bind(username)
    .fetch_optional(db.exec())
    .await
}

/// The stored password hash of a user.
pub async fn password_hash(db: &mut impl Db, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT password_hash FROM public.users WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(db.exec())
    .await
    .map(Option::flatten)
}

/// Stores a new password hash and whether the user must change it before anything else.
pub async fn set_password(
    db: &mut impl Db,
    id: Uuid,
    hash: &str,
    must_change_password: bool,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE public.users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(db.exec())
        .await?;
    sqlx::query(
        r"INSERT INTO slm_server.password_state (user_id, must_change_password, changed_at)
          VALUES ($1, $2, now())
          ON CONFLICT (user_id) DO UPDATE SET must_change_password = $2, changed_at = now()",
    )
    .bind(id)
    .bind(must_change_password)
    .execute(db.exec())
    .await?;
    Ok(())
}

/// Replaces a hash by one of the realm's current scheme after a successful login.
pub async fn upgrade_hash(db: &mut impl Db, id: Uuid, hash: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE public.users SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(db.exec())
        .await
        .map(|_| ())
}

/// Stamps a successful login.
pub async fn record_login(db: &mut impl Db, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE public.users SET last_login_at = now() WHERE id = $1")
        .bind(id)
        .execute(db.exec())
        .await
        .map(|_| ())
}

/// Sets the MFA flag the AutoBot model keeps on the user.
pub async fn set_mfa_enabled(db: &mut impl Db, id: Uuid, enabled: bool) -> sqlx::Result<()> {
    sqlx::query("UPDATE public.users SET mfa_enabled = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(enabled)
        .execute(db.exec())
        .await
        .map(|_| ())
}

/// Deletes a user the way the AutoBot model does (`deleted_at`, inactive), and erases what
/// identifies the person: the username and e-mail become placeholders (so both can be used
/// again), the profile and password are cleared, and the roles removed. The row stays, because
/// the audit trail refers to it.
pub async fn soft_delete(db: &mut impl Db, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query(
        r"UPDATE public.users SET deleted_at = now(), is_active = false, is_platform_admin = false,
              mfa_enabled = false,
              username = 'deleted-' || replace(id::text, '-', ''),
              email = 'deleted-' || replace(id::text, '-', '') || '@deleted.invalid',
              display_name = NULL, bio = NULL, avatar_url = NULL, password_hash = NULL,
              preferences = '{}', updated_at = now()
          WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .execute(db.exec())
    .await?;
    sqlx::query("DELETE FROM public.user_roles WHERE user_id = $1")
        .bind(id)
        .execute(db.exec())
        .await?;
    Ok(deleted.rows_affected() == 1)
}

/// The organization new users join when none is named: `default`, else the oldest.
pub async fn default_org_id(db: &mut impl Db) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        r"SELECT id FROM public.organizations WHERE deleted_at IS NULL
          ORDER BY (slug = 'default') DESC, created_at, id LIMIT 1",
    )
    .fetch_optional(db.exec())
    .await
}

/// Whether an organization exists.
pub async fn org_exists(db: &mut impl Db, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM public.organizations WHERE id = $1 AND deleted_at IS NULL)",
    )
    .bind(id)
    .fetch_one(db.exec())
    .await
}

/// Inserts the realm's permissions, system roles, their permissions and a default organization
/// where they are missing. Existing rows are never changed, and a role that grants anything
/// already (an adopted database's own seeding) is left with what it grants.
pub async fn seed(db: &mut impl Db, policy: &RealmPolicy) -> sqlx::Result<()> {
    sqlx::query(
        r"INSERT INTO public.organizations (id, name, slug, description, settings,
              subscription_tier, max_users, is_active)
          SELECT gen_random_uuid(), 'Default Organization', 'default',
                 'Created by slm-server', '{}', 'free', -1, true
          WHERE NOT EXISTS (SELECT 1 FROM public.organizations)",
    )
    .execute(db.exec())
    .await?;
    let column = |f: fn(&crate::realm::PermissionSeed) -> &'static str| -> Vec<&str> {
        policy.permissions.iter().map(f).collect()
    };
    sqlx::query(
        r"INSERT INTO public.permissions (id, name, resource, action, description)
          SELECT gen_random_uuid(), * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
          ON CONFLICT (name) DO NOTHING",
    )
    .bind(column(|p| p.name))
    .bind(column(|p| p.resource))
    .bind(column(|p| p.action))
    .bind(column(|p| p.description))
    .execute(db.exec())
    .await?;
    let names: Vec<&str> = policy.roles.iter().map(|r| r.name).collect();
    let descriptions: Vec<&str> = policy.roles.iter().map(|r| r.description).collect();
    let priorities: Vec<i32> = policy.roles.iter().map(|r| r.priority).collect();
    sqlx::query(
        r"INSERT INTO public.roles (id, org_id, name, description, is_system, priority)
          SELECT gen_random_uuid(), NULL, s.name, s.description, true, s.priority
          FROM UNNEST($1::text[], $2::text[], $3::int[]) AS s(name, description, priority)
          WHERE NOT EXISTS (SELECT 1 FROM public.roles r WHERE r.name = s.name AND r.org_id IS NULL)",
    )
    .bind(&names)
    .bind(&descriptions)
    .bind(&priorities)
    .execute(db.exec())
    .await?;
    let (grant_roles, grant_permissions): (Vec<&str>, Vec<&str>) = policy
        .roles
        .iter()
        .flat_map(|r| r.permissions.iter().map(move |p| (r.name, *p)))
        .unzip();
    sqlx::query(
        r"INSERT INTO public.role_permissions (role_id, permission_id)
          SELECT r.id, p.id FROM UNNEST($1::text[], $2::text[]) AS g(role, permission)
          JOIN public.roles r ON r.name = g.role AND r.org_id IS NULL
          JOIN public.permissions p ON p.name = g.permission
          -- A role that already grants something keeps exactly what it grants.
          WHERE NOT EXISTS (SELECT 1 FROM public.role_permissions x WHERE x.role_id = r.id)
          ON CONFLICT DO NOTHING",
    )
    .bind(&grant_roles)
    .bind(&grant_permissions)
    .execute(db.exec())
    .await?;
    Ok(())
}

/// The names of the permissions of these roles.
pub async fn permissions_of(db: &mut impl Db, role_ids: &[Uuid]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        r"SELECT DISTINCT p.name FROM public.role_permissions rp
          JOIN public.permissions p ON p.id = rp.permission_id
          WHERE rp.role_id = ANY($1) ORDER BY p.name",
    )
    .bind(role_ids)
    .fetch_all(db.exec())
    .await
}

/// Every permission of the realm, with its description (the API-key scopes).
pub async fn all_permissions(db: &mut impl Db) -> sqlx::Result<Vec<(String, Option<String>)>> {
    sqlx::query_as("SELECT name::text, description FROM public.permissions ORDER BY name")
        .fetch_all(db.exec())
        .await
}

/// Whether the bootstrap admin's password was last force-reset to this fingerprint.
pub async fn forced_reset_done(db: &mut impl Db, fingerprint: &[u8]) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM slm_server.bootstrap_state WHERE forced_fingerprint = $1)",
    )
    .bind(fingerprint)
    .fetch_one(db.exec())
    .await
}

/// Records a forced reset of the bootstrap admin's password.
pub async fn record_forced_reset(db: &mut impl Db, fingerprint: &[u8]) -> sqlx::Result<()> {
    sqlx::query(
        r"INSERT INTO slm_server.bootstrap_state (singleton, forced_fingerprint) VALUES (true, $1)
          ON CONFLICT (singleton) DO UPDATE SET forced_fingerprint = $1, forced_at = now()",
    )
    .bind(fingerprint)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// The e-mails of live users whose skeleton is one of `skeletons` and which are none of
/// `emails` (lower-cased), `except`'s aside: look-alikes, not the same address.
pub async fn look_alike_emails(
    db: &mut impl Db,
    skeletons: &[String],
    emails: &[String],
    except: Option<Uuid>,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        r"SELECT u.email::text FROM slm_server.email_skeletons s
          JOIN public.users u ON u.id = s.user_id AND u.email = s.email
          WHERE s.skeleton = ANY($1) AND u.deleted_at IS NULL AND lower(u.email) <> ALL($2)
            AND ($3::uuid IS NULL OR u.id <> $3)
          LIMIT 5",
    )
    .bind(skeletons)
    .bind(emails)
    .bind(except)
    .fetch_all(db.exec())
    .await
}

/// Records the skeletons of users' e-mails (`ids[i]` has `emails[i]` and `skeletons[i]`).
pub async fn store_skeletons(
    db: &mut impl Db,
    ids: &[Uuid],
    emails: &[&str],
    skeletons: &[String],
) -> sqlx::Result<()> {
    sqlx::query(
        r"INSERT INTO slm_server.email_skeletons (user_id, email, skeleton)
          SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[])
          ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, skeleton = EXCLUDED.skeleton",
    )
    .bind(ids)
    .bind(emails)
    .bind(skeletons)
    .execute(db.exec())
    .await
    .map(|_| ())
}

/// Up to `limit` live users whose e-mail has no skeleton yet, or another than when it was
/// computed (rows the AutoBot backend wrote).
pub async fn emails_without_skeleton(
    db: &mut impl Db,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(
        r"SELECT u.id, u.email::text FROM public.users u
          LEFT JOIN slm_server.email_skeletons s ON s.user_id = u.id
          WHERE u.deleted_at IS NULL AND s.email IS DISTINCT FROM u.email
          LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.exec())
    .await
}
