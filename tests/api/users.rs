//! User management, common to both realms (looped).
use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn crud_search_and_paging_in_both_realms() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for realm in ["slm", "autobot"] {
        let base = format!("/api/{realm}-users");
        let created = app.post(&base, &admin, json!({"username": "Alice", "password": "wonderland-42x", "email": "Alice@Example.com", "full_name": "Alice Liddell"})).await;
        assert_eq!(created.status, 201, "{realm}: {}", created.body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let default_role = if realm == "slm" { "viewer" } else { "user" };
        assert_eq!(created.body["roles"], json!([default_role]), "{realm}");
        assert_eq!(created.body["is_admin"], false, "{realm}");
        assert_eq!(created.body["email"], "Alice@example.com", "{realm}");
        for dup in [
            json!({"username": "ALICE", "password": "wonderland-42x"}),
            json!({"username": "alice2", "password": "wonderland-42x", "email": "alice@EXAMPLE.com"}),
        ] {
            let answer = app.post(&base, &admin, dup).await;
            assert_eq!(answer.status, 409, "{realm}: {}", answer.body);
        }
        assert_eq!(
            app.post(
                &base,
                &admin,
                json!({"username": "alice", "password": "wonderland-42x"})
            )
            .await
            .detail(),
            &json!("Username already exists"),
            "{realm}"
        );
        assert_eq!(app.post(&base, &admin, json!({"username": "zed", "password": "wonderland-42x", "email": "alice@example.com"})).await.detail(), &json!("Email already exists"), "{realm}");

        for i in 0..3 {
            app.post(
                &base,
                &admin,
                json!({"username": format!("bob{i}"), "password": "builder-can-do-42"}),
            )
            .await;
        }
        let search = app.get(&format!("{base}?search=LIDDELL"), &admin).await;
        assert_eq!(
            search.body.as_array().unwrap().len(),
            1,
            "{realm}: {}",
            search.body
        );
        assert_eq!(search.header("x-total-count"), Some("1"), "{realm}");
        let literal = app.get(&format!("{base}?search=%25"), &admin).await;
        assert_eq!(
            literal.header("x-total-count"),
            Some("0"),
            "{realm}: % is matched literally"
        );
        let page = app
            .get(&format!("{base}?search=bob&skip=1&limit=1"), &admin)
            .await;
        assert_eq!(page.header("x-total-count"), Some("3"), "{realm}");
        assert_eq!(
            page.body[0]["username"], "bob1",
            "{realm}: stable order by creation"
        );

        let got = app.get(&format!("{base}/{id}"), &admin).await;
        assert_eq!(got.body["username"], "Alice", "{realm}");
        let patched = app
            .patch(
                &format!("{base}/{id}"),
                &admin,
                json!({"full_name": "Alice L.", "email": null, "is_admin": true}),
            )
            .await;
        assert_eq!(patched.status, 200, "{realm}: {}", patched.body);
        assert_eq!(patched.body["full_name"], "Alice L.", "{realm}");
        assert_eq!(patched.body["email"], json!(null), "{realm}");
        assert_eq!(patched.body["is_admin"], true, "{realm}");
        assert!(
            patched.body["roles"]
                .as_array()
                .unwrap()
                .contains(&json!("admin")),
            "{realm}"
        );

        let roles = app
            .post(
                &format!("{base}/{id}/roles"),
                &admin,
                json!({"roles": ["manager"]}),
            )
            .await;
        assert!(
            roles.body["roles"]
                .as_array()
                .unwrap()
                .contains(&json!("manager")),
            "{realm}: {}",
            roles.body
        );
        let unknown_role = app
            .post(
                &format!("{base}/{id}/roles"),
                &admin,
                json!({"roles": ["wizard"]}),
            )
            .await;
        assert_eq!(
            unknown_role.locs(),
            vec![json!(["body", "roles", 0])],
            "{realm}"
        );
        // Another admin, so that removing Alice's admin role leaves the realm one.
        app.create_user(
            realm,
            &format!("{realm}-spare-admin"),
            "Sturdy-Pass-9000",
            &["admin"],
        )
        .await;
        let removed = app
            .delete(&format!("{base}/{id}/roles/admin"), &admin)
            .await;
        assert_eq!(removed.body["is_admin"], false, "{realm}: {}", removed.body);

        assert_eq!(
            app.delete(&format!("{base}/{id}"), &admin).await.status,
            204,
            "{realm}"
        );
        let gone = app.get(&format!("{base}/{id}"), &admin).await;
        assert_eq!(
            (gone.status.as_u16(), gone.detail()),
            (404, &json!("User not found")),
            "{realm}"
        );
        assert_eq!(
            app.delete(&format!("{base}/{id}"), &admin).await.status,
            404,
            "{realm}"
        );
    }
}

#[tokio::test]
async fn password_policy_and_field_validation() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let cases = [
        (
            json!({"username": "ab", "password": "Sturdy-Pass-9000"}),
            vec![json!(["body", "username"])],
        ),
        (
            json!({"username": "carol", "password": "short"}),
            vec![json!(["body", "password"])],
        ),
        (
            json!({"username": "carol", "password": "carolcarol", }),
            vec![],
        ),
        (
            json!({"username": "carolcarol", "password": "CAROLCAROL"}),
            vec![json!(["body", "password"])],
        ),
        (
            json!({"username": "carol", "password": "qwerty123"}),
            vec![json!(["body", "password"])],
        ),
        (
            json!({"username": "carol", "password": "Sturdy-Pass-9000", "email": "not-an-email"}),
            vec![json!(["body", "email"])],
        ),
        (
            json!({"username": "carol", "password": "Sturdy-Pass-9000", "full_name": "x".repeat(201)}),
            vec![json!(["body", "full_name"])],
        ),
        (
            json!({"username": "carol", "password": "Sturdy-Pass-9000", "roles": ["user"]}),
            vec![json!(["body", "roles", 0])],
        ),
    ];
    for (body, locs) in cases {
        let answer = app.post("/api/slm-users", &admin, body.clone()).await;
        if locs.is_empty() {
            assert_eq!(answer.status, 201, "{body}: {}", answer.body);
            continue;
        }
        assert_eq!(answer.status, 422, "{body}");
        assert_eq!(answer.locs(), locs, "{body}");
    }
}

#[tokio::test]
async fn last_admin_and_self_protection() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let admin_id = app.get("/api/slm-auth/me", &admin).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = "/api/slm-users";
    assert_eq!(
        app.delete(&format!("{base}/{admin_id}"), &admin)
            .await
            .status,
        409,
        "cannot delete self"
    );
    assert_eq!(
        app.patch(
            &format!("{base}/{admin_id}"),
            &admin,
            json!({"is_active": false})
        )
        .await
        .status,
        409,
        "cannot deactivate self"
    );
    let demote = app
        .patch(
            &format!("{base}/{admin_id}"),
            &admin,
            json!({"is_admin": false}),
        )
        .await;
    assert_eq!(
        demote.status, 409,
        "last admin cannot be demoted: {}",
        demote.body
    );
    assert_eq!(
        app.delete(&format!("{base}/{admin_id}/roles/admin"), &admin)
            .await
            .status,
        409
    );

    // AutoBot realm: one admin there too.
    let ab_admin = app
        .create_user("autobot", "ab-admin", "Sturdy-Pass-9000", &["admin"])
        .await;
    let only = app
        .patch(
            &format!("/api/autobot-users/{ab_admin}"),
            &admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(only.status, 409, "{}", only.body);
    assert_eq!(
        app.delete(&format!("/api/autobot-users/{ab_admin}"), &admin)
            .await
            .status,
        409
    );
    app.create_user("autobot", "ab-admin2", "Sturdy-Pass-9000", &["admin"])
        .await;
    assert_eq!(
        app.delete(&format!("/api/autobot-users/{ab_admin}"), &admin)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn fifty_parallel_creates_of_one_username() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = app.client.clone();
        let url = app.url("/api/slm-users");
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(admin)
                .json(&json!({"username": "racer", "password": format!("Racing-Pass-{i:04}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn deactivation_and_revocation_take_effect_on_the_next_request() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for realm in ["slm", "autobot"] {
        let role = if realm == "slm" { "manager" } else { "user" };
        let id = app
            .create_user(
                realm,
                &format!("{realm}-victim"),
                "Sturdy-Pass-9000",
                &[role],
            )
            .await;
        let token = app
            .token(realm, &format!("{realm}-victim"), "Sturdy-Pass-9000")
            .await;
        let me = format!("/api/{realm}-auth/me");
        assert_eq!(app.get(&me, &token).await.status, 200);
        assert_eq!(
            app.request(
                reqwest::Method::POST,
                &format!("/api/{realm}-users/{id}/revoke-sessions"),
                Some(&admin),
                None
            )
            .await
            .status,
            204
        );
        assert_eq!(app.get(&me, &token).await.status, 401, "{realm}: revoked");
        let token = app
            .token(realm, &format!("{realm}-victim"), "Sturdy-Pass-9000")
            .await;
        assert_eq!(
            app.patch(
                &format!("/api/{realm}-users/{id}"),
                &admin,
                json!({"is_active": false})
            )
            .await
            .status,
            200
        );
        assert_eq!(
            app.get(&me, &token).await.status,
            401,
            "{realm}: deactivated"
        );
        assert_eq!(
            app.login(realm, &format!("{realm}-victim"), "Sturdy-Pass-9000")
                .await
                .status,
            401,
            "{realm}"
        );
        assert_eq!(
            app.patch(
                &format!("/api/{realm}-users/{id}"),
                &admin,
                json!({"is_active": true})
            )
            .await
            .status,
            200
        );
        let token = app
            .token(realm, &format!("{realm}-victim"), "Sturdy-Pass-9000")
            .await;
        assert_eq!(
            app.delete(&format!("/api/{realm}-users/{id}"), &admin)
                .await
                .status,
            204
        );
        assert_eq!(app.get(&me, &token).await.status, 401, "{realm}: deleted");
    }
}

#[tokio::test]
async fn role_change_takes_effect_immediately() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (id, manager) = app.slm_user("manager").await;
    assert_eq!(app.get("/api/slm-users", &manager).await.status, 200);
    app.delete(&format!("/api/slm-users/{id}/roles/manager"), &admin)
        .await;
    assert_eq!(
        app.get("/api/slm-users", &manager).await.status,
        401,
        "the session that held the old role has ended"
    );
    let name = app.get(&format!("/api/slm-users/{id}"), &admin).await.body["username"]
        .as_str()
        .unwrap()
        .to_owned();
    let demoted = app.token("slm", &name, "Sturdy-Pass-9000").await;
    assert_eq!(app.get("/api/slm-users", &demoted).await.status, 403);
}
