//! What the AutoBot backend does to the shared tables with its own code, done here the way its
//! SQLAlchemy models do it, and what this server must make of it: hard deletes under the
//! append-only audit trail, soft-deleted names taken again, admins by the flag alone or by the
//! role alone (docs/api.md §3 and §6).
use crate::helpers::*;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// The two realms: the name in their paths and a pool on their database.
fn realms(app: &TestApp) -> [(&'static str, &PgPool); 2] {
    [("slm", &app.slm_db), ("autobot", &app.autobot_db)]
}

/// Each audit row naming `user_id` as its actor, as JSON without `user_id`.
async fn audit_rows_of(pool: &PgPool, ids: &[Uuid]) -> Vec<serde_json::Value> {
    sqlx::query_scalar(
        "SELECT to_jsonb(a) - 'user_id' FROM audit_logs a WHERE id = ANY($1) ORDER BY id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_hard_delete_keeps_the_audit_trail_which_refuses_every_other_change() {
    let app = spawn_app().await;
    for (realm, pool) in realms(&app) {
        let id: Uuid = app
            .create_user(realm, &format!("gone-{realm}"), "Sturdy-Pass-9000", &[])
            .await
            .parse()
            .unwrap();
        // Its own logins make audit rows whose actor (user_id) it is.
        app.token(realm, &format!("gone-{realm}"), "Sturdy-Pass-9000")
            .await;
        app.login(realm, &format!("gone-{realm}"), "wrong-password-1")
            .await;
        let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM audit_logs WHERE user_id = $1")
            .bind(id)
            .fetch_all(pool)
            .await
            .unwrap();
        assert!(!ids.is_empty(), "{realm}: the user acted");
        let before = audit_rows_of(pool, &ids).await;

        // By hand, while the user exists, even the foreign key's own change is refused.
        for statement in [
            "UPDATE audit_logs SET user_id = NULL WHERE user_id = $1",
            "UPDATE audit_logs SET action = 'rewritten' WHERE user_id = $1",
            "UPDATE audit_logs SET details = '{}' WHERE user_id = $1",
            "DELETE FROM audit_logs WHERE user_id = $1",
        ] {
            let refused = sqlx::query(statement).bind(id).execute(pool).await;
            assert!(refused.is_err(), "{realm}: {statement} was allowed");
        }
        assert!(
            sqlx::query("TRUNCATE audit_logs")
                .execute(pool)
                .await
                .is_err(),
            "{realm}: TRUNCATE was allowed"
        );

        // The backend's `delete_user(hard_delete=True)`: the row goes, its children with it
        // (cascades), and the audit rows stay with user_id NULL, nothing else changed.
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{realm}: the hard delete failed: {e}"));
        let actors: Vec<Option<Uuid>> =
            sqlx::query_scalar("SELECT user_id FROM audit_logs WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(actors.len(), ids.len(), "{realm}: every row stays");
        assert!(actors.iter().all(Option::is_none), "{realm}: {actors:?}");
        assert_eq!(audit_rows_of(pool, &ids).await, before, "{realm}");
        // Still append-only for the rows that lost their actor.
        let refused = sqlx::query("UPDATE audit_logs SET outcome = 'x' WHERE id = ANY($1)")
            .bind(&ids)
            .execute(pool)
            .await;
        assert!(refused.is_err(), "{realm}");
    }

    // The backend's hard delete of an organization: its users go (cascade), and the audit
    // rows naming either lose only those names.
    let pool = &app.autobot_db;
    let (org, user) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        r"INSERT INTO organizations (id, name, slug, max_users, is_active)
          VALUES ($1, 'Short-lived', 'short-lived', 10, true)",
    )
    .bind(org)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        r"INSERT INTO users (id, org_id, email, username, is_active, is_verified, mfa_enabled,
                             is_platform_admin)
          VALUES ($1, $2, 'temp@example.com', 'temp-user', true, false, false, false)",
    )
    .bind(user)
    .bind(org)
    .execute(pool)
    .await
    .unwrap();
    let event = Uuid::new_v4();
    sqlx::query(
        r"INSERT INTO audit_logs (id, org_id, user_id, action, resource_type, outcome, details)
          VALUES ($1, $2, $3, 'login_success', 'user', 'success', '{}')",
    )
    .bind(event)
    .bind(org)
    .bind(user)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM organizations WHERE id = $1")
        .bind(org)
        .execute(pool)
        .await
        .expect("the backend's hard delete of an organization");
    let (org_after, user_after, action): (Option<Uuid>, Option<Uuid>, String) =
        sqlx::query_as("SELECT org_id, user_id, action::text FROM audit_logs WHERE id = $1")
            .bind(event)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((org_after, user_after), (None, None));
    assert_eq!(action, "login_success");
}

#[tokio::test]
async fn names_of_soft_deleted_rows_are_free_again_whatever_their_case() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for (realm, pool) in realms(&app) {
        let id = app
            .create_user(realm, &format!("Carol-{realm}"), "Sturdy-Pass-9000", &[])
            .await;
        // The backend's soft delete: deleted_at and inactive, the names left as they were.
        sqlx::query("UPDATE users SET deleted_at = now(), is_active = false WHERE id = $1::uuid")
            .bind(&id)
            .execute(pool)
            .await
            .unwrap();
        let again = app
            .post(
                &format!("/api/{realm}-users"),
                &admin,
                json!({"username": format!("carol-{realm}"), "password": "Sturdy-Pass-9000",
                       "email": format!("CAROL-{realm}@EXAMPLE.COM")}),
            )
            .await;
        assert_eq!(again.status, 201, "{realm}: {}", again.body);
        // Among live users the names are still unique case-insensitively.
        let twice = app
            .post(
                &format!("/api/{realm}-users"),
                &admin,
                json!({"username": format!("CAROL-{realm}"), "password": "Sturdy-Pass-9000",
                       "email": format!("other-{realm}@example.com")}),
            )
            .await;
        assert_eq!(twice.status, 409, "{realm}: {}", twice.body);
    }
    let team = app
        .post("/api/autobot-teams", &admin, json!({"name": "Research"}))
        .await;
    assert_eq!(team.status, 201, "{}", team.body);
    sqlx::query("UPDATE teams SET deleted_at = now() WHERE id = $1::uuid")
        .bind(team.body["id"].as_str().unwrap())
        .execute(&app.autobot_db)
        .await
        .unwrap();
    let again = app
        .post("/api/autobot-teams", &admin, json!({"name": "research"}))
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    let twice = app
        .post("/api/autobot-teams", &admin, json!({"name": "RESEARCH"}))
        .await;
    assert_eq!(twice.status, 409, "{}", twice.body);
}

/// Inserts a user as the backend's `create_user` does, with or without the flag and the
/// `admin` role; returns its id.
async fn backend_user(pool: &PgPool, username: &str, flag: bool, role: bool) -> Uuid {
    let id = Uuid::new_v4();
    let hash = bcrypt::hash("Backend-Pass-2026", 4).unwrap();
    sqlx::query(
        r"INSERT INTO users (id, org_id, email, username, password_hash, is_active, is_verified,
                             mfa_enabled, is_platform_admin)
          SELECT $1, (SELECT id FROM organizations LIMIT 1), $2 || '@example.com', $2, $3,
                 true, true, false, $4",
    )
    .bind(id)
    .bind(username)
    .bind(hash)
    .bind(flag)
    .execute(pool)
    .await
    .unwrap();
    if role {
        sqlx::query(
            r"INSERT INTO user_roles (user_id, role_id)
              SELECT $1, id FROM roles WHERE name = 'admin' AND org_id IS NULL",
        )
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    }
    id
}

#[tokio::test]
async fn the_flag_alone_or_the_role_alone_makes_an_admin() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for (realm, pool) in realms(&app) {
        let flag_only = backend_user(pool, &format!("flag-{realm}"), true, false).await;
        let role_only = backend_user(pool, &format!("role-{realm}"), false, true).await;
        let neither = backend_user(pool, &format!("plain-{realm}"), false, false).await;
        for (id, expected) in [(flag_only, true), (role_only, true), (neither, false)] {
            let user = app.get(&format!("/api/{realm}-users/{id}"), &admin).await;
            assert_eq!(user.status, 200, "{realm}: {}", user.body);
            assert_eq!(
                user.body["is_platform_admin"], expected,
                "{realm}: {}",
                user.body
            );
            assert_eq!(
                role_names(&user.body).contains(&"admin".to_owned()),
                expected,
                "{realm}: {}",
                user.body
            );
        }
        // Signed in, the flag-only admin is an admin: in its token, /me and what it may do.
        let token = app
            .token(realm, &format!("flag-{realm}"), "Backend-Pass-2026")
            .await;
        let me = app.get(&format!("/api/{realm}-auth/me"), &token).await;
        assert_eq!(me.body["is_admin"], true, "{realm}: {}", me.body);
        assert_eq!(me.body["role"], "admin", "{realm}: {}", me.body);
        let claims = jwt_claims(&token);
        assert_eq!(claims["admin"], true, "{realm}");
        if realm == "slm" {
            let audit = app.get("/api/audit?limit=1", &token).await;
            assert_eq!(
                audit.status, 200,
                "an admin reads the audit log: {}",
                audit.body
            );
        }
    }
    // The last-admin rule counts admins of either kind: with the flag-only SLM admin there,
    // the bootstrap admin may be demoted; the flag-only one then may not be.
    let slm_flag: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = 'flag-slm'")
        .fetch_one(&app.slm_db)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET is_active = false WHERE username = 'role-slm'")
        .execute(&app.slm_db)
        .await
        .unwrap();
    let flag_token = app.token("slm", "flag-slm", "Backend-Pass-2026").await;
    let bootstrap: String =
        sqlx::query_scalar("SELECT id::text FROM users WHERE username = 'admin'")
            .fetch_one(&app.slm_db)
            .await
            .unwrap();
    let demoted = app
        .patch(
            &format!("/api/slm-users/{bootstrap}"),
            &flag_token,
            json!({"is_platform_admin": false}),
        )
        .await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    assert_eq!(demoted.body["is_platform_admin"], false);
    let last = app
        .patch(
            &format!("/api/slm-users/{slm_flag}"),
            &flag_token,
            json!({"is_platform_admin": false}),
        )
        .await;
    assert_eq!(last.status, 409, "the last admin stays: {}", last.body);
    // A write keeps the flag and the role equal: granting a role to the flag-only admin
    // gives it the admin role row too.
    let granted = app
        .post(
            &format!("/api/slm-users/{slm_flag}/roles"),
            &flag_token,
            json!({"roles": ["viewer"]}),
        )
        .await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    let (flag, rows): (bool, i64) = sqlx::query_as(
        r"SELECT u.is_platform_admin, (SELECT count(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                                      WHERE ur.user_id = u.id AND r.name = 'admin')
          FROM users u WHERE u.id = $1",
    )
    .bind(slm_flag)
    .fetch_one(&app.slm_db)
    .await
    .unwrap();
    assert_eq!((flag, rows), (true, 1));
}

/// The claims of a JWT, unverified.
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The usernames a search of `realm`'s users answers, with `query` after `search=`.
async fn search(app: &TestApp, realm: &str, query: &str) -> Vec<String> {
    let answer = app
        .get(
            &format!("/api/{realm}-users?search={query}"),
            &app.admin().await,
        )
        .await;
    assert_eq!(answer.status, 200, "{realm} {query}: {}", answer.body);
    items(&answer, "users")
        .iter()
        .map(|user| user["username"].as_str().unwrap().to_owned())
        .collect()
}

/// Searches read the server's own table (`slm_server.user_search`), which triggers on `users`
/// keep in step whoever writes: the backend's insert, rename, deactivation, soft delete,
/// restore and hard delete each show in the very next search, and a writer with no privilege
/// at all on the server's schema, as the backend's own role may be, is not refused.
#[tokio::test]
async fn searches_follow_every_write_of_the_backend_at_once() {
    let app = spawn_app().await;
    for (realm, pool) in realms(&app) {
        let id = backend_user(pool, &format!("Zebra-{realm}"), false, false).await;
        let write = |statement: &'static str| async move {
            sqlx::query(statement).bind(id).execute(pool).await.unwrap();
        };
        assert_eq!(
            search(&app, realm, "ZEBRA").await,
            [format!("Zebra-{realm}")]
        );

        write("UPDATE users SET display_name = 'Striped Okapi' WHERE id = $1").await;
        assert_eq!(
            search(&app, realm, "d%20OKA").await,
            [format!("Zebra-{realm}")]
        );
        write("UPDATE users SET username = 'quagga-' || username WHERE id = $1").await;
        assert_eq!(
            search(&app, realm, "quagga-zebra").await,
            [format!("quagga-Zebra-{realm}")]
        );
        write("UPDATE users SET is_active = false WHERE id = $1").await;
        assert!(
            search(&app, realm, "quagga&is_active=true")
                .await
                .is_empty()
        );
        assert_eq!(search(&app, realm, "quagga&is_active=false").await.len(), 1);
        write("UPDATE users SET deleted_at = now() WHERE id = $1").await;
        assert!(search(&app, realm, "quagga").await.is_empty(), "{realm}");
        write("UPDATE users SET deleted_at = NULL WHERE id = $1").await;
        assert_eq!(search(&app, realm, "quagga").await.len(), 1, "{realm}");
        write("DELETE FROM users WHERE id = $1").await;
        assert!(search(&app, realm, "quagga").await.is_empty(), "{realm}");
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM slm_server.user_search WHERE user_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(left, 0, "{realm}");

        // A role that may write the public tables and nothing else, in a transaction rolled
        // back at the end (the role too: nothing is left behind).
        let mut tx = pool.begin().await.unwrap();
        let role = format!("backend_{}", Uuid::new_v4().simple());
        for statement in [
            format!("CREATE ROLE {role}"),
            format!("GRANT USAGE ON SCHEMA public TO {role}"),
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
            ),
            format!("SET LOCAL ROLE {role}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        sqlx::query("SAVEPOINT probe")
            .execute(&mut *tx)
            .await
            .unwrap();
        let refused = sqlx::query("SELECT 1 FROM slm_server.user_search")
            .execute(&mut *tx)
            .await;
        assert!(
            refused.is_err(),
            "{realm}: the role reads the server's table"
        );
        sqlx::query("ROLLBACK TO SAVEPOINT probe")
            .execute(&mut *tx)
            .await
            .unwrap();
        let other = Uuid::new_v4();
        sqlx::query(
            r"INSERT INTO users (id, email, username, is_active, is_verified, mfa_enabled,
                                 is_platform_admin)
              VALUES ($1, 'ostrich@example.com', 'Ostrich', true, true, false, false)",
        )
        .bind(other)
        .execute(&mut *tx)
        .await
        .expect("the backend's role inserts a user");
        sqlx::query("UPDATE users SET username = 'Emu' WHERE id = $1")
            .bind(other)
            .execute(&mut *tx)
            .await
            .expect("the backend's role renames a user");
        sqlx::query("RESET ROLE").execute(&mut *tx).await.unwrap();
        let haystack: String =
            sqlx::query_scalar("SELECT haystack FROM slm_server.user_search WHERE user_id = $1")
                .bind(other)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(haystack, "emu\u{1f}ostrich@example.com\u{1f}", "{realm}");
        tx.rollback().await.unwrap();
    }
}
