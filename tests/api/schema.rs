//! The AutoBot schema: a database the AutoBot backend already made is adopted as it is, with its
//! users, roles and hashes; one that lacks a column the server needs is refused before anything
//! changes; reverting never drops the backend's tables.
use crate::helpers::*;
use serde_json::json;
use slm_server::RealmId;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

/// The migration that creates the AutoBot tables: by construction the backend's own DDL.
const AUTOBOT_TABLES: &str = include_str!("../../migrations/20261201000001_public_schema.up.sql");

/// Makes `name` a database as the AutoBot backend leaves it: its tables and a few rows of its
/// own (an organization, its `user` role, a bcrypt user, a team), and nothing of the server.
async fn backend_database(name: &str) -> (PgConnectOptions, uuid::Uuid) {
    let mut admin = PgConnection::connect(&format!("{}/postgres", pg_base()))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    let options: PgConnectOptions = format!("{}/{name}", pg_base()).parse().unwrap();
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    // The migration keeps its bookkeeping in the server's schema; the backend has none.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA slm_server; {AUTOBOT_TABLES}; DROP SCHEMA slm_server CASCADE;"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let (org, role, user, team) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    // The hash as python-bcrypt writes it ($2b$), at the backend's cost.
    let hash = bcrypt::hash("Legacy-Pass-2024", 12).unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        r"INSERT INTO organizations (id, name, slug, max_users, is_active)
              VALUES ('{org}', 'Acme', 'acme', 100, true);
          INSERT INTO roles (id, org_id, name, description, is_system, priority)
              VALUES ('{role}', NULL, 'user', 'The backend''s own user role', true, 50);
          INSERT INTO users (id, org_id, email, username, password_hash, is_active, is_verified,
                             mfa_enabled, is_platform_admin)
              VALUES ('{user}', '{org}', 'legacy@acme.test', 'legacy', '{hash}', true, true,
                      false, false);
          INSERT INTO user_roles (user_id, role_id) VALUES ('{user}', '{role}');
          INSERT INTO teams (id, org_id, name, is_default) VALUES ('{team}', '{org}', 'Ops', false);
          INSERT INTO team_memberships (id, team_id, user_id, role)
              VALUES (gen_random_uuid(), '{team}', '{user}', 'owner');"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    (options, role)
}

#[tokio::test]
async fn a_database_the_backend_made_is_adopted_with_its_users() {
    let dbs = TestDatabases::new();
    let (options, backend_role) = backend_database(&dbs.names.1).await;
    let app = spawn_app_with(Options {
        databases: Some(dbs.names.clone()),
        ..Options::default()
    })
    .await;

    let created: bool =
        sqlx::query_scalar("SELECT created_public_tables FROM slm_server.schema_origin")
            .fetch_one(&app.autobot_db)
            .await
            .unwrap();
    assert!(!created, "the tables were adopted, not created");
    // The backend's own user signs in with the hash it wrote, by name or by e-mail.
    for name in ["legacy", "LEGACY@acme.test"] {
        let login = app.login("autobot", name, "Legacy-Pass-2024").await;
        assert_eq!(login.status, 200, "{name}: {}", login.body);
    }
    let admin = app.admin().await;
    let listed = app.get("/api/autobot-users?search=legacy", &admin).await;
    let legacy = &items(&listed, "users")[0];
    assert_eq!(legacy["email"], "legacy@acme.test");
    assert_eq!(legacy["is_verified"], true);
    assert_eq!(
        legacy["roles"][0]["id"],
        backend_role.to_string(),
        "its role row, as it was"
    );
    let roles_named_user: i64 =
        sqlx::query_scalar("SELECT count(*) FROM roles WHERE name = 'user' AND org_id IS NULL")
            .fetch_one(&app.autobot_db)
            .await
            .unwrap();
    assert_eq!(
        roles_named_user, 1,
        "seeding adds missing roles and keeps existing ones"
    );
    let roles = app.get("/api/autobot-roles", &admin).await;
    let names: Vec<&str> = items(&roles, "roles")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for wanted in ["admin", "manager", "user", "readonly"] {
        assert!(names.contains(&wanted), "{wanted} in {names:?}");
    }
    let teams = app.get("/api/autobot-teams", &admin).await;
    assert_eq!(items(&teams, "teams")[0]["name"], "Ops");
    assert_eq!(items(&teams, "teams")[0]["member_count"], 1);

    // Reverting every migration leaves the backend's tables and rows where they were.
    slm_server::migrate_down(&options, slm_server::RevertTo::Version(0))
        .await
        .expect("down");
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    let users: i64 =
        sqlx::query_scalar("SELECT count(*) FROM public.users WHERE username = 'legacy'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(users, 1, "the backend's data survives a full revert");
    let private_tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'slm_server' AND tablename <> '_sqlx_migrations'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(private_tables, 0, "the server's own tables are gone");
    slm_server::migrate_up(RealmId::Autobot, &options)
        .await
        .expect("and up again");
}

#[tokio::test]
async fn a_database_lacking_a_needed_column_is_refused_in_one_line() {
    let dbs = TestDatabases::new();
    let (options, _) = backend_database(&dbs.names.1).await;
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    sqlx::query("ALTER TABLE users DROP COLUMN is_platform_admin")
        .execute(&mut conn)
        .await
        .unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slm-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .env("SLM_DATABASE_URL", format!("{}/{}", pg_base(), dbs.names.0))
        .env(
            "AUTOBOT_DATABASE_URL",
            format!("{}/{}", pg_base(), dbs.names.1),
        )
        .args(["migrate", "--realm", "autobot"])
        .output()
        .expect("binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("users.is_platform_admin"), "{stderr}");

    let touched: Option<String> = sqlx::query_scalar("SELECT to_regnamespace('slm_server')::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(touched, None, "nothing was changed");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn migrate_status_and_one_step_revert() {
    let dbs = TestDatabases::new();
    let options: PgConnectOptions = format!("{}/{}", pg_base(), dbs.names.0).parse().unwrap();
    slm_server::migrate_up(RealmId::Slm, &options)
        .await
        .expect("up");
    let status = slm_server::migration_status(&options)
        .await
        .expect("status");
    assert!(status.len() >= 3, "{status:?}");
    assert!(status.iter().all(|m| m.applied), "{status:?}");
    let newest = status.last().unwrap().version;

    let undone = slm_server::migrate_down(&options, slm_server::RevertTo::Previous)
        .await
        .expect("one step back");
    assert_eq!(undone, vec![newest]);
    let status = slm_server::migration_status(&options)
        .await
        .expect("status");
    assert!(!status.last().unwrap().applied);
    assert!(status[..status.len() - 1].iter().all(|m| m.applied));

    slm_server::migrate_up(RealmId::Slm, &options)
        .await
        .expect("up again");
    assert!(
        slm_server::migration_status(&options)
            .await
            .unwrap()
            .iter()
            .all(|m| m.applied)
    );
}

/// Runs the binary's `command` against the databases `names`, with nothing else configured.
fn run_binary(names: &(String, String), args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_slm-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .env("SLM_DATABASE_URL", format!("{}/{}", pg_base(), names.0))
        .env("AUTOBOT_DATABASE_URL", format!("{}/{}", pg_base(), names.1))
        .env("REDIS_URL", redis_url())
        .args(args)
        .output()
        .expect("binary runs")
}

#[tokio::test]
async fn live_names_that_clash_in_case_leave_the_autobot_realm_unmigrated_never_broken() {
    let dbs = TestDatabases::new();
    let (options, _) = backend_database(&dbs.names.1).await;
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    // The backend's own unique constraints are case-sensitive: it may hold both. A deleted row
    // never blocks, even one whose name clashes with a live one.
    sqlx::raw_sql(
        r"INSERT INTO teams (id, org_id, name, is_default)
              SELECT gen_random_uuid(), org_id, 'Research', false FROM teams LIMIT 1;
          INSERT INTO teams (id, org_id, name, is_default)
              SELECT gen_random_uuid(), org_id, 'research', false FROM teams LIMIT 1;
          INSERT INTO teams (id, org_id, name, is_default, deleted_at)
              SELECT gen_random_uuid(), org_id, 'ops', false, now() FROM teams LIMIT 1;",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    // `check` names the rows and the fix.
    let check = run_binary(&dbs.names, &["check"]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        out.contains("'Research'") && out.contains("'research'") && out.contains("fix:"),
        "{out}"
    );
    // Migrating says why in one line, and changes nothing.
    let migrate = run_binary(&dbs.names, &["migrate", "--realm", "autobot"]);
    assert!(!migrate.status.success());
    let stderr = String::from_utf8_lossy(&migrate.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("'Research'") && stderr.contains("differ only in case"),
        "{stderr}"
    );

    let app = spawn_app_with(Options {
        databases: Some(dbs.names.clone()),
        ..Options::default()
    })
    .await;
    let ready = app
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["status"], "degraded", "{}", ready.body);
    assert_eq!(ready.body["checks"]["autobot_db"], "unmigrated");
    assert_eq!(ready.body["checks"]["slm_db"], "ok");
    // Every AutoBot endpoint answers 503, never 500; the SLM realm works.
    let admin = app.admin().await;
    let unavailable = json!({"detail": "AutoBot user database unavailable"});
    let login = app.login("autobot", "legacy", "Legacy-Pass-2024").await;
    assert_eq!((login.status.as_u16(), &login.body), (503, &unavailable));
    for path in [
        "/api/autobot-users",
        "/api/autobot-teams",
        "/api/autobot-roles",
        "/api/access-requests",
    ] {
        let answer = app.get(path, &admin).await;
        assert_eq!(
            (answer.status.as_u16(), &answer.body),
            (503, &unavailable),
            "{path}"
        );
    }
    let request = app
        .request(
            reqwest::Method::POST,
            "/api/access-requests",
            None,
            Some(json!({"username": "newbie", "email": "newbie@example.com",
                        "full_name": "New", "reason": "work"})),
        )
        .await;
    assert_eq!(request.status, 503, "{}", request.body);
    let slm = app.get("/api/slm-users", &admin).await;
    assert_eq!(slm.status, 200, "{}", slm.body);
    let audit = app.get("/api/audit", &admin).await;
    assert_eq!(
        audit.status, 200,
        "the SLM half of the audit log: {}",
        audit.body
    );

    // Once an operator deletes one of the two (as the backend does), the realm recovers by
    // itself, with the deleted rows still there.
    sqlx::query("UPDATE teams SET deleted_at = now() WHERE name = 'Research'")
        .execute(&mut conn)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ready = app
            .request(reqwest::Method::GET, "/readyz", None, None)
            .await;
        if ready.body["checks"]["autobot_db"] == "ok" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", ready.body);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let login = app.login("autobot", "legacy", "Legacy-Pass-2024").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let teams = app.get("/api/autobot-teams", &admin).await;
    let names: Vec<&str> = items(&teams, "teams")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["Ops", "research"]);
}

#[tokio::test]
async fn nothing_of_the_server_is_left_among_the_backends_functions() {
    let dbs = TestDatabases::new();
    let (adopted, _) = backend_database(&dbs.names.1).await;
    let fresh: PgConnectOptions = format!("{}/{}", pg_base(), dbs.names.0).parse().unwrap();
    for (realm, options) in [(RealmId::Autobot, &adopted), (RealmId::Slm, &fresh)] {
        slm_server::migrate_up(realm, options).await.expect("up");
        let mut conn = PgConnection::connect_with(options).await.unwrap();
        let in_public: i64 = sqlx::query_scalar(
            r"SELECT (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname = 'public')
                   + (SELECT count(*) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                      WHERE n.nspname = 'public')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(in_public, 0, "{realm:?}: functions or extensions in public");
        let trgm: String = sqlx::query_scalar(
            r"SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
              WHERE e.extname = 'pg_trgm'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(trgm, "slm_server", "{realm:?}");
    }
    // A database that ran 0.2's migrations (pg_trgm in public, unique indexes over every row)
    // is brought to the same state.
    let mut conn = PgConnection::connect_with(&fresh).await.unwrap();
    slm_server::migrate_down(&fresh, slm_server::RevertTo::Version(20261201000003))
        .await
        .expect("back to 0.2");
    let partial: bool = sqlx::query_scalar(
        r"SELECT indpred IS NOT NULL FROM pg_index WHERE indexrelid = 'public.users_username_lower_key'::regclass",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!partial, "0.2's index covers deleted rows");
    slm_server::migrate_up(RealmId::Slm, &fresh)
        .await
        .expect("up");
    let (partial, trgm): (bool, String) = sqlx::query_as(
        r"SELECT (SELECT indpred IS NOT NULL FROM pg_index
                  WHERE indexrelid = 'public.users_username_lower_key'::regclass),
                 (SELECT n.nspname::text FROM pg_extension e
                  JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((partial, trgm.as_str()), (true, "slm_server"));
}
