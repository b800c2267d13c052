//! AutoBot realm specifics: teams, memberships, per-user extras, access requests, the shared schema.
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
    let tid = team.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post("/api/autobot-teams", &admin, json!({"name": "research"}))
            .await
            .status,
        409
    );

    let ghost = uuid::Uuid::new_v4();
    let rejected = app
        .patch(
            &format!("/api/autobot-teams/{tid}/members"),
            &admin,
            json!({"add": [{"user_id": u1}, {"user_id": ghost}]}),
        )
        .await;
    assert!(
        rejected.status == 404 || rejected.status == 422,
        "{}",
        rejected.body
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM team_members")
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
    assert_eq!(of_user.body[0]["name"], "Research");

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
    let list = app.get("/api/autobot-teams?search=dev", &admin).await;
    assert_eq!(list.header("x-total-count"), Some("1"));
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
        !export.body.to_string().contains("$argon2id"),
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
async fn stored_hash_is_a_standard_argon2id_phc_string() {
    let app = spawn_app().await;
    app.create_user(
        "autobot",
        "backend-reader",
        "Sturdy-Pass-9000",
        &["manager"],
    )
    .await;
    // Exactly what the AutoBot backend does: plain SQL on the public tables.
    let (hash, active, roles): (String, bool, Vec<String>) = sqlx::query_as(
        "SELECT u.password_hash, u.is_active, ARRAY(SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = u.id) FROM users u WHERE lower(u.username) = 'backend-reader'",
    ).fetch_one(&app.autobot_db).await.unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(active);
    assert_eq!(roles, vec!["manager"]);
    use argon2::PasswordVerifier;
    let parsed = argon2::password_hash::phc::PasswordHash::new(&hash).unwrap();
    assert!(
        argon2::Argon2::default()
            .verify_password(b"Sturdy-Pass-9000", &parsed)
            .is_ok(),
        "a default Argon2 library verifies it"
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
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
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
    assert_eq!(events.body[0]["event_type"], "user_created");
    assert_eq!(events.body[0]["realm"], "autobot");
    let failures = app.get("/api/audit?event_type=login_failure", &admin).await;
    assert!(!failures.body.as_array().unwrap().is_empty());
    let all = app.get("/api/audit?limit=500", &admin).await;
    let times: Vec<&str> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["occurred_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    assert!(
        sqlx::query("DELETE FROM audit_log")
            .execute(&app.autobot_db)
            .await
            .is_err(),
        "append-only"
    );
    assert!(
        sqlx::query("UPDATE audit_log SET event_type = 'x'")
            .execute(&app.slm_db)
            .await
            .is_err(),
        "append-only"
    );
}
