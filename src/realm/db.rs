//! The SQL of a realm's reference data: its roles, permissions and what each role grants
//! (`roles`, `permissions`, `role_permissions`), and its organizations. Seeded from the
//! realm's policy where missing; read into the [`Catalog`].

use sqlx::PgConnection;
use uuid::Uuid;

use crate::realm::{Catalog, RealmPolicy, Role};

/// The catalog as the database holds it now, unless its fingerprint is still `known`.
pub async fn catalog_if_changed(
    db: &mut PgConnection,
    known: &str,
) -> sqlx::Result<Option<Catalog>> {
    let fingerprint = sqlx::query_scalar!(
        r#"SELECT md5(
               coalesce((SELECT string_agg(concat_ws('|', id, org_id, name, description,
                                                     is_system, priority), ',' ORDER BY id)
                         FROM public.roles), '')
               || '#' || coalesce((SELECT string_agg(concat_ws('|', id, name, description), ','
                                                     ORDER BY id)
                                   FROM public.permissions), '')
               || '#' || coalesce((SELECT string_agg(concat_ws('|', role_id, permission_id), ','
                                                     ORDER BY role_id, permission_id)
                                   FROM public.role_permissions), '')
           ) AS "fingerprint!""#
    )
    .fetch_one(&mut *db)
    .await?;
    if fingerprint == known {
        return Ok(None);
    }
    // A system role first, then the oldest: the one a name stands for (see `Catalog::new`).
    let roles = sqlx::query_as!(
        Role,
        r#"SELECT id, name::text AS "name!", description, is_system, priority, org_id
           FROM public.roles ORDER BY is_system DESC, created_at, id"#
    )
    .fetch_all(&mut *db)
    .await?;
    let permissions = sqlx::query!(
        r#"SELECT name::text AS "name!", coalesce(description, '') AS "description!"
           FROM public.permissions ORDER BY name"#
    )
    .fetch_all(&mut *db)
    .await?
    .into_iter()
    .map(|p| (p.name, p.description))
    .collect();
    let grants = sqlx::query!(
        r#"SELECT rp.role_id, p.name::text AS "permission!"
           FROM public.role_permissions rp JOIN public.permissions p ON p.id = rp.permission_id"#
    )
    .fetch_all(&mut *db)
    .await?
    .into_iter()
    .map(|g| (g.role_id, g.permission))
    .collect();
    Ok(Some(Catalog::new(roles, permissions, grants, fingerprint)))
}

/// Inserts the realm's permissions, system roles, their permissions and a default organization
/// where they are missing. Existing rows are never changed, and a role that grants anything
/// already (an adopted database's own seeding) is left with what it grants.
pub async fn seed(db: &mut PgConnection, policy: &RealmPolicy) -> sqlx::Result<()> {
    sqlx::query!(
        r"INSERT INTO public.organizations (id, name, slug, description, settings,
              subscription_tier, max_users, is_active)
          SELECT gen_random_uuid(), 'Default Organization', 'default',
                 'Created by slm-server', '{}', 'free', -1, true
          WHERE NOT EXISTS (SELECT 1 FROM public.organizations)"
    )
    .execute(&mut *db)
    .await?;
    let column = |f: fn(&crate::realm::PermissionSeed) -> &'static str| -> Vec<String> {
        policy.permissions.iter().map(|p| f(p).to_owned()).collect()
    };
    sqlx::query!(
        r"INSERT INTO public.permissions (id, name, resource, action, description)
          SELECT gen_random_uuid(), * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
          ON CONFLICT (name) DO NOTHING",
        &column(|p| p.name),
        &column(|p| p.resource),
        &column(|p| p.action),
        &column(|p| p.description),
    )
    .execute(&mut *db)
    .await?;
    let names: Vec<String> = policy.roles.iter().map(|r| r.name.to_owned()).collect();
    let descriptions: Vec<String> = policy
        .roles
        .iter()
        .map(|r| r.description.to_owned())
        .collect();
    let priorities: Vec<i32> = policy.roles.iter().map(|r| r.priority).collect();
    sqlx::query!(
        r"INSERT INTO public.roles (id, org_id, name, description, is_system, priority)
          SELECT gen_random_uuid(), NULL, s.name, s.description, true, s.priority
          FROM UNNEST($1::text[], $2::text[], $3::int[]) AS s(name, description, priority)
          WHERE NOT EXISTS (SELECT 1 FROM public.roles r WHERE r.name = s.name AND r.org_id IS NULL)",
        &names,
        &descriptions,
        &priorities,
    )
    .execute(&mut *db)
    .await?;
    let (grant_roles, grant_permissions): (Vec<String>, Vec<String>) = policy
        .roles
        .iter()
        .flat_map(|r| {
            r.permissions
                .iter()
                .map(move |p| (r.name.to_owned(), (*p).to_owned()))
        })
        .unzip();
    sqlx::query!(
        r"INSERT INTO public.role_permissions (role_id, permission_id)
          SELECT r.id, p.id FROM UNNEST($1::text[], $2::text[]) AS g(role, permission)
          JOIN public.roles r ON r.name = g.role AND r.org_id IS NULL
          JOIN public.permissions p ON p.name = g.permission
          -- A role that already grants something keeps exactly what it grants.
          WHERE NOT EXISTS (SELECT 1 FROM public.role_permissions x WHERE x.role_id = r.id)
          ON CONFLICT DO NOTHING",
        &grant_roles,
        &grant_permissions,
    )
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// The organization new users and teams join when none is named: `default`, else the oldest.
pub async fn default_org_id(db: &mut PgConnection) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r"SELECT id FROM public.organizations WHERE deleted_at IS NULL
          ORDER BY (slug = 'default') DESC, created_at, id LIMIT 1"
    )
    .fetch_optional(&mut *db)
    .await
}

/// Whether an organization exists.
pub async fn org_exists(db: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM public.organizations WHERE id = $1 AND deleted_at IS NULL)
           AS "exists!""#,
        id
    )
    .fetch_one(&mut *db)
    .await
}
