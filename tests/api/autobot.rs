//! AutoBot realm specifics: teams, memberships, per-user extras, access requests, and the
//! shared schema as the AutoBot backend reads it.
use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn teams_and_all_or_nothing_memberships() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let u1 = app
        .create_user("autobot", "member-one", "Sturdy-Pass-9000", &["user"])
        .await;
    let u2 = app
        .create_user("autobot", "member-two", "Sturdy-Pass-9000", &["user"])
        .await;
    let team = app
        .post(
            "/api/autobot-teams",
            &admin,
            json!({"name": "Research", "description": "R&D"}),
        )
        .await;
    assert_eq!(team.status, 201, "{}", team.body);
    assert_eq!(team.body["member_count"], 0);
    assert!(team.body["organization_id"].is_string(), "{}", team.body);
    let tid = team.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post("/api/autobot-teams", &admin, json!({"name": "research"}))
            .await
            .status,
        409,
        "names are unique case-insensitively"
    );

    let ghost = uuid::Uuid::new_v4();
    let rejected = app
        .patch(
            &format!("/api/autobot-teams/{tid}/members"),
            &admin,
            json!({"add": [{"user_id": u1}, {"user_id": ghost}]}),
        )
        .await;
    assert_eq!(rejected.status, 422, "{}", rejected.body);
    assert_eq!(rejected.locs(), vec![json!(["body", "add", 1, "user_id"])]);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM team_memberships")
        .fetch_one(&app.autobot_db)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing applied");

    let added = app
        .patch(
            &format!("/api/autobot-teams/{tid}/members"),
            &admin,
            json!({"add": [{"user_id": u1, "role": "owner"}, {"user_id": u2}]}),
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.body["member_count"], 2);
    let roles: Vec<&str> = added.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"owner") && roles.contains(&"member"));
    let bad_role = app
        .patch(
            &format!("/api/autobot-teams/{tid}/members"),
            &admin,
            json!({"add": [{"user_id": u1, "role": "boss"}]}),
        )
        .await;
    assert_eq!(bad_role.status, 422);
    // The dashboard's calls: POST a member (an `admin` member here), DELETE one.
    let u3 = app
        .create_user("autobot", "member-three", "Sturdy-Pass-9000", &["user"])
        .await;
    let posted = app
        .post(
            &format!("/api/autobot-teams/{tid}/members"),
            &admin,
            json!({"user_id": u3, "role": "admin"}),
        )
        .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    assert_eq!(posted.body["member_count"], 3);
    let unknown = app
        .post(
            &format!("/api/autobot-teams/{tid}/members"),
            &admin,
            json!({"user_id": ghost}),
        )
        .await;
    assert_eq!(unknown.locs(), vec![json!(["body", "user_id"])]);
    assert_eq!(
        app.delete(&format!("/api/autobot-teams/{tid}/members/{u3}"), &admin)
            .await
            .status,
        204
    );
    assert_eq!(
        app.delete(&format!("/api/autobot-teams/{tid}/members/{u3}"), &admin)
            .await
            .status,
        404,
        "no longer a member"
    );

    let detail = app.get(&format!("/api/autobot-teams/{tid}"), &admin).await;
    assert_eq!(detail.body["members"].as_array().unwrap().len(), 2);
    let alias = app
        .get(&format!("/api/autobot-users/teams/{tid}"), &admin)
        .await;
    assert_eq!(
        alias.status, 200,
        "teams are also served under /api/autobot-users/teams"
    );
    let of_user = app
        .get(&format!("/api/autobot-users/{u1}/teams"), &admin)
        .await;
    assert_eq!(items(&of_user, "teams")[0]["name"], "Research");

    let removed = app
        .patch(
            &format!("/api/autobot-teams/{tid}/members"),
            &admin,
            json!({"remove": [u2]}),
        )
        .await;
    assert_eq!(removed.body["member_count"], 1);
    let renamed = app
        .patch(
            &format!("/api/autobot-teams/{tid}"),
            &admin,
            json!({"name": "Research & Dev"}),
        )
        .await;
    assert_eq!(renamed.body["name"], "Research & Dev");
    app.post("/api/autobot-teams", &admin, json!({"name": "Alpha"}))
        .await;
    let list = app.get("/api/autobot-teams", &admin).await;
    let names: Vec<&str> = items(&list, "teams")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alpha", "Research & Dev"], "ordered by name");
    let found = app.get("/api/autobot-teams?search=dev", &admin).await;
    assert_eq!(found.header("x-total-count"), Some("1"));
    assert_eq!(found.body["total"], 1);
    assert_eq!(
        app.delete(&format!("/api/autobot-teams/{tid}"), &admin)
            .await
            .status,
        204
    );
    assert_eq!(
        app.get(&format!("/api/autobot-teams/{tid}"), &admin)
            .await
            .detail(),
        &json!("Team not found")
    );

    let export = app
        .get(&format!("/api/autobot-users/{u1}/export"), &admin)
        .await;
    assert_eq!(export.status, 200);
    assert_eq!(export.body["user"]["username"], "member-one");
    assert!(
        !export.body.to_string().contains("$2b$"),
        "export never contains the hash"
    );
}

#[tokio::test]
async fn autobot_user_logs_in_and_deactivation_stops_it() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = app
        .create_user("autobot", "chatter", "Sturdy-Pass-9000", &["user"])
        .await;
    let token = app.token("autobot", "chatter", "Sturdy-Pass-9000").await;
    assert_eq!(
        app.get("/api/autobot-auth/me", &token).await.body["username"],
        "chatter"
    );
    app.patch(
        &format!("/api/autobot-users/{id}"),
        &admin,
        json!({"is_active": false}),
    )
    .await;
    assert_eq!(app.get("/api/autobot-auth/me", &token).await.status, 401);
}

#[tokio::test]
async fn the_autobot_backend_reads_every_user_the_server_creates() {
    // The real cost, as the AutoBot backend writes it.
    let app = spawn_app_with(Options {
        vars: vec![("AUTOBOT_BCRYPT_COST", "12".into())],
        ..Options::default()
    })
    .await;
    let admin = app.admin().await;
    let id = app
        .create_user(
            "autobot",
            "Backend-Reader",
            "Sturdy-Pass-9000",
            &["manager"],
        )
        .await;
    // Exactly what the backend's login does: by lower(username) or lower(email), live rows.
    let (hash, active, platform_admin): (Option<String>, bool, bool) = sqlx::query_as(
        r"SELECT password_hash, is_active, is_platform_admin FROM users
          WHERE (lower(username) = lower($1) OR lower(email) = lower($1)) AND deleted_at IS NULL",
    )
    .bind("backend-reader")
    .fetch_one(&app.autobot_db)
    .await
    .unwrap();
    let hash = hash.unwrap();
    assert!(hash.starts_with("$2b$12$"), "bcrypt at cost 12: {hash}");
    assert!(
        bcrypt::verify("Sturdy-Pass-9000", &hash).unwrap(),
        "bcrypt.checkpw accepts it"
    );
    assert!(active);
    assert!(!platform_admin);
    // Its permissions through role_permissions, as its RBAC middleware reads them.
    let permissions: Vec<String> = sqlx::query_scalar(
        r"SELECT DISTINCT p.name::text FROM user_roles ur
          JOIN role_permissions rp ON rp.role_id = ur.role_id
          JOIN permissions p ON p.id = rp.permission_id
          WHERE ur.user_id = $1 ORDER BY 1",
    )
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .fetch_all(&app.autobot_db)
    .await
    .unwrap();
    for wanted in ["chat:use", "knowledge:read", "teams:manage", "users:create"] {
        assert!(
            permissions.iter().any(|p| p == wanted),
            "{wanted} in {permissions:?}"
        );
    }
    assert!(
        !permissions.iter().any(|p| p == "admin:access"),
        "{permissions:?}"
    );

    // is_platform_admin follows the admin role, both ways.
    app.post(
        &format!("/api/autobot-users/{id}/roles"),
        &admin,
        json!({"roles": ["admin"]}),
    )
    .await;
    let flag = |app: &TestApp, id: String| {
        let pool = app.autobot_db.clone();
        async move {
            sqlx::query_scalar::<_, bool>("SELECT is_platform_admin FROM users WHERE id = $1")
                .bind(uuid::Uuid::parse_str(&id).unwrap())
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert!(flag(&app, id.clone()).await, "granting admin sets the flag");
    let last = app
        .delete(&format!("/api/autobot-users/{id}/roles/admin"), &admin)
        .await;
    assert_eq!(
        last.status, 409,
        "the realm's last admin stays: {}",
        last.body
    );
    assert!(flag(&app, id.clone()).await, "and so does the flag");
    app.create_user("autobot", "second-admin", "Sturdy-Pass-9000", &["admin"])
        .await;
    let removed = app
        .delete(&format!("/api/autobot-users/{id}/roles/admin"), &admin)
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(!flag(&app, id.clone()).await, "removing admin clears it");

    // A team membership is a team_memberships row.
    let team = app
        .post("/api/autobot-teams", &admin, json!({"name": "Backend"}))
        .await;
    let tid = team.body["id"].as_str().unwrap();
    app.post(
        &format!("/api/autobot-teams/{tid}/members"),
        &admin,
        json!({"user_id": id, "role": "owner"}),
    )
    .await;
    let (role, org): (String, uuid::Uuid) = sqlx::query_as(
        r"SELECT m.role::text, t.org_id FROM team_memberships m JOIN teams t ON t.id = m.team_id
          WHERE m.user_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .fetch_one(&app.autobot_db)
    .await
    .unwrap();
    assert_eq!(role, "owner");
    let default_org: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM organizations WHERE slug = 'default'")
            .fetch_one(&app.autobot_db)
            .await
            .unwrap();
    assert_eq!(org, default_org, "one default organization");

    // A deleted user is no user: not listed, cannot log in, and its name is free again.
    assert_eq!(
        app.delete(&format!("/api/autobot-users/{id}"), &admin)
            .await
            .status,
        204
    );
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE lower(username) = 'backend-reader' AND deleted_at IS NULL",
    )
    .fetch_one(&app.autobot_db)
    .await
    .unwrap();
    assert_eq!(live, 0);
    assert_eq!(
        app.login("autobot", "Backend-Reader", "Sturdy-Pass-9000")
            .await
            .status,
        401
    );
    let list = app.get("/api/autobot-users?search=backend", &admin).await;
    assert_eq!(list.body["total"], 0);
    app.create_user("autobot", "backend-reader", "Sturdy-Pass-9000", &["user"])
        .await;
}

#[tokio::test]
async fn a_row_the_backend_soft_deleted_is_no_user() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = app
        .create_user("autobot", "gone-by-backend", "Sturdy-Pass-9000", &["admin"])
        .await;
    // The AutoBot backend deletes by setting deleted_at (and is_active false).
    sqlx::query("UPDATE users SET deleted_at = now(), is_active = false WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&id).unwrap())
        .execute(&app.autobot_db)
        .await
        .unwrap();
    assert_eq!(
        app.get(&format!("/api/autobot-users/{id}"), &admin)
            .await
            .status,
        404
    );
    let list = app.get("/api/autobot-users", &admin).await;
    assert_eq!(list.body["total"], 0, "{}", list.body);
    assert_eq!(
        app.login("autobot", "gone-by-backend", "Sturdy-Pass-9000")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn access_request_approval_and_denial() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, viewer) = app.slm_user("viewer").await;
    let submit = |body| {
        app.request(
            reqwest::Method::POST,
            "/api/access-requests",
            None,
            Some(body),
        )
    };
    let sent = submit(json!({"username": "newbie", "email": "newbie@example.com", "full_name": "New Bie", "reason": "research"})).await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    assert_eq!(sent.body["status"], "pending");
    let id = sent.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        submit(json!({"username": "other", "email": "NEWBIE@example.com"}))
            .await
            .status,
        409,
        "pending request for the email"
    );
    app.create_user("autobot", "taken", "Sturdy-Pass-9000", &["user"])
        .await;
    assert_eq!(
        submit(json!({"username": "taken", "email": "t@example.com"}))
            .await
            .status,
        409
    );
    assert_eq!(
        submit(json!({"username": "x", "email": "bad"}))
            .await
            .status,
        422
    );

    assert_eq!(
        app.post(
            &format!("/api/access-requests/{id}/approve"),
            &viewer,
            json!({})
        )
        .await
        .status,
        403
    );
    let listed = app.get("/api/access-requests?status=pending", &admin).await;
    assert_eq!(items(&listed, "requests").len(), 1);
    let approved = app
        .post(
            &format!("/api/access-requests/{id}/approve"),
            &admin,
            json!({"comment": "welcome"}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body["request"]["status"], "approved");
    assert_eq!(approved.body["user"]["must_change_password"], true);
    assert_eq!(approved.body["user"]["display_name"], "New Bie");
    let temp = approved.body["temporary_password"].as_str().unwrap();
    assert_eq!(app.login("autobot", "newbie", temp).await.status, 200);
    assert_eq!(
        app.post(
            &format!("/api/access-requests/{id}/approve"),
            &admin,
            json!({})
        )
        .await
        .status,
        409
    );

    let other = submit(json!({"username": "second", "email": "second@example.com"})).await;
    let oid = other.body["id"].as_str().unwrap();
    for body in [json!({}), json!({"comment": "  "})] {
        let refused = app
            .post(&format!("/api/access-requests/{oid}/deny"), &admin, body)
            .await;
        assert_eq!(
            refused.status, 422,
            "a denial needs a comment: {}",
            refused.body
        );
        assert_eq!(refused.locs(), vec![json!(["body", "comment"])]);
    }
    let denied = app
        .post(
            &format!("/api/access-requests/{oid}/deny"),
            &admin,
            json!({"comment": "no"}),
        )
        .await;
    assert_eq!(denied.body["status"], "denied", "{}", denied.body);
}

#[tokio::test]
async fn audit_log_records_changes_and_is_append_only() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = app
        .create_user("autobot", "audited", "Sturdy-Pass-9000", &["user"])
        .await;
    app.login("slm", "admin", "wrong-password-1").await;
    let events = app.get(&format!("/api/audit?target_id={id}"), &admin).await;
    assert_eq!(events.status, 200);
    let first = &items(&events, "events")[0];
    assert_eq!(first["event_type"], "user_created");
    assert_eq!(first["realm"], "autobot");
    assert_eq!(first["actor_username"], "admin", "the SLM operator, named");
    assert!(first["actor_id"].is_string());
    let failures = app.get("/api/audit?event_type=login_failed", &admin).await;
    assert!(!items(&failures, "events").is_empty());
    assert_eq!(items(&failures, "events")[0]["outcome"], "failure");
    let all = app.get("/api/audit?limit=500", &admin).await;
    let times: Vec<&str> = items(&all, "events")
        .iter()
        .map(|e| e["occurred_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    // One trail with the backend's own events: a row it writes shows up.
    sqlx::query(
        r"INSERT INTO audit_logs (id, action, resource_type, outcome, details)
          VALUES (gen_random_uuid(), 'login_failed', 'user', 'failure', '{}')",
    )
    .execute(&app.autobot_db)
    .await
    .unwrap();
    // Ours and theirs under the one name the backend's AuditAction gives a failed login.
    let both = app.get("/api/audit?event_type=login_failed", &admin).await;
    assert_eq!(both.body["total"], 2, "{}", both.body);
    let realms: Vec<&str> = items(&both, "events")
        .iter()
        .map(|e| e["realm"].as_str().unwrap())
        .collect();
    assert!(
        realms.contains(&"autobot") && realms.contains(&"slm"),
        "{realms:?}"
    );
    for pool in [&app.autobot_db, &app.slm_db] {
        assert!(
            sqlx::query("DELETE FROM audit_logs")
                .execute(pool)
                .await
                .is_err(),
            "append-only"
        );
        assert!(
            sqlx::query("UPDATE audit_logs SET action = 'x'")
                .execute(pool)
                .await
                .is_err(),
            "append-only"
        );
    }
}

#[tokio::test]
async fn audit_events_carry_the_autobot_backends_own_names() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = app
        .create_user("autobot", "named", "Sturdy-Pass-9000", &["user"])
        .await;
    app.login("autobot", "named", "wrong-password-1").await;
    let path = format!("/api/autobot-users/{id}");
    app.post(
        &format!("{path}/roles"),
        &admin,
        json!({"roles": ["manager"]}),
    )
    .await;
    app.delete(&format!("{path}/roles/manager"), &admin).await;
    app.patch(&path, &admin, json!({"is_active": false})).await;
    app.patch(&path, &admin, json!({"is_active": true})).await;
    app.post(&format!("{path}/api-keys"), &admin, json!({"name": "ci"}))
        .await;
    let team = app
        .post("/api/autobot-teams", &admin, json!({"name": "Named"}))
        .await;
    let members = format!(
        "/api/autobot-teams/{}/members",
        team.body["id"].as_str().unwrap()
    );
    app.post(&members, &admin, json!({"user_id": id, "role": "member"}))
        .await;
    app.post(&members, &admin, json!({"user_id": id, "role": "admin"}))
        .await;
    app.delete(&format!("{members}/{id}"), &admin).await;
    // A wrong second factor.
    let token = app.token("autobot", "named", "Sturdy-Pass-9000").await;
    let setup = app
        .request(
            reqwest::Method::POST,
            "/api/autobot-auth/me/mfa/setup",
            Some(&token),
            None,
        )
        .await;
    let secret = setup.body["secret"].as_str().unwrap();
    app.post(
        "/api/autobot-auth/me/mfa/verify-setup",
        &token,
        json!({"code": totp_code(secret)}),
    )
    .await;
    let challenge = app.login("autobot", "named", "Sturdy-Pass-9000").await;
    let wrong = app
        .request(
            reqwest::Method::POST,
            "/api/autobot-auth/me/mfa/verify-login",
            None,
            Some(json!({"code": "000000", "temp_token": challenge.body["temp_token"]})),
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);

    let all = app.get("/api/audit?realm=autobot&limit=500", &admin).await;
    let names: Vec<&str> = items(&all, "events")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    for wanted in [
        "user_created",
        "login_failed",
        "role_assigned",
        "role_revoked",
        "user_deactivated",
        "user_activated",
        "api_key_created",
        "team_created",
        "team_member_added",
        "team_member_role_changed",
        "team_member_removed",
        "mfa_enabled",
        "mfa_failed",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    for retired in [
        "login_failure",
        "api_key_issued",
        "roles_changed",
        "team_members_changed",
    ] {
        assert!(!names.contains(&retired), "{retired} in {names:?}");
    }
    // Outcomes in the backend's words.
    for event in items(&all, "events") {
        let expected = match event["event_type"].as_str().unwrap() {
            "login_failed" | "mfa_failed" => "failure",
            _ => "success",
        };
        assert_eq!(event["outcome"], expected, "{event}");
    }
}
