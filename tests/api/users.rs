//! User management, common to both realms (looped).
use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn crud_search_and_paging_in_both_realms() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for realm in ["slm", "autobot"] {
        let base = format!("/api/{realm}-users");
        let created = app
            .post(
                &base,
                &admin,
                json!({"username": "Alice", "password": "wonderland-42x",
                       "email": "Alice@Example.com", "display_name": "Alice Liddell"}),
            )
            .await;
        assert_eq!(created.status, 201, "{realm}: {}", created.body);
        let user = &created.body;
        let id = user["id"].as_str().unwrap().to_owned();
        // SLM_DEFAULT_ROLE: the dashboard's "Add SLM Admin" sends no roles.
        let default_role = if realm == "slm" { "admin" } else { "user" };
        assert_eq!(role_names(user), [default_role], "{realm}");
        let role = &user["roles"][0];
        assert!(
            role["id"].is_string() && role["is_system"] == true,
            "{realm}: {role}"
        );
        assert_eq!(
            user["is_platform_admin"],
            realm == "slm",
            "{realm}: admin by default"
        );
        assert_eq!(
            user["email"], "Alice@example.com",
            "{realm}: the domain is lower-cased"
        );
        assert_eq!(user["display_name"], "Alice Liddell", "{realm}");
        assert!(
            user["org_id"].is_string(),
            "{realm}: the default organization"
        );
        assert_eq!(user["preferences"], json!({}), "{realm}");
        for field in ["bio", "avatar_url", "last_login_at"] {
            assert_eq!(user[field], json!(null), "{realm}: {field}");
        }
        assert_eq!(user["is_verified"], false);
        assert_eq!(user["mfa_enabled"], false);
        assert!(user.get("password_hash").is_none(), "{realm}");

        for (dup, detail) in [
            (
                json!({"username": "ALICE", "email": "a2@example.com", "password": "wonderland-42x"}),
                "Username already exists",
            ),
            (
                json!({"username": "alice2", "email": "alice@EXAMPLE.com", "password": "wonderland-42x"}),
                "Email already exists",
            ),
        ] {
            let answer = app.post(&base, &admin, dup).await;
            assert_eq!(answer.status, 409, "{realm}: {}", answer.body);
            assert_eq!(answer.detail(), &json!(detail), "{realm}");
        }

        for i in 0..3 {
            let bob = app
                .post(
                    &base,
                    &admin,
                    json!({"username": format!("bob{i}"), "email": format!("bob{i}@example.com"),
                           "password": "builder-can-do-42"}),
                )
                .await;
            assert_eq!(bob.status, 201, "{}", bob.body);
        }
        let search = app.get(&format!("{base}?search=LIDDELL"), &admin).await;
        assert_eq!(items(&search, "users").len(), 1, "{realm}: {}", search.body);
        assert_eq!(search.body["total"], 1, "{realm}");
        assert_eq!(search.header("x-total-count"), Some("1"), "{realm}");
        let by_mail = app
            .get(&format!("{base}?search=bob2@EXAMPLE"), &admin)
            .await;
        assert_eq!(items(&by_mail, "users")[0]["username"], "bob2", "{realm}");
        let literal = app.get(&format!("{base}?search=%25"), &admin).await;
        assert_eq!(literal.body["total"], 0, "{realm}: % is matched literally");
        let page = app
            .get(&format!("{base}?search=bob&skip=1&limit=1"), &admin)
            .await;
        assert_eq!(
            (
                &page.body["total"],
                &page.body["limit"],
                &page.body["offset"]
            ),
            (&json!(3), &json!(1), &json!(1)),
            "{realm}: {}",
            page.body
        );
        assert_eq!(
            items(&page, "users")[0]["username"],
            "bob1",
            "{realm}: newest first, stable"
        );
        let offset = app
            .get(&format!("{base}?search=bob&offset=2&limit=1"), &admin)
            .await;
        assert_eq!(
            items(&offset, "users")[0]["username"],
            "bob0",
            "{realm}: offset = skip"
        );

        let got = app.get(&format!("{base}/{id}"), &admin).await;
        assert_eq!(got.body["username"], "Alice", "{realm}");
        let patched = app
            .patch(
                &format!("{base}/{id}"),
                &admin,
                json!({"display_name": "Alice L.", "bio": "Down the hole",
                       "avatar_url": "https://example.com/a.png",
                       "preferences": {"theme": "dark"}, "is_platform_admin": true}),
            )
            .await;
        assert_eq!(patched.status, 200, "{realm}: {}", patched.body);
        assert_eq!(patched.body["display_name"], "Alice L.", "{realm}");
        assert_eq!(patched.body["bio"], "Down the hole", "{realm}");
        assert_eq!(
            patched.body["preferences"],
            json!({"theme": "dark"}),
            "{realm}"
        );
        assert_eq!(patched.body["is_platform_admin"], true, "{realm}");
        assert!(
            role_names(&patched.body).contains(&"admin".to_owned()),
            "{realm}"
        );
        let cleared = app
            .patch(&format!("{base}/{id}"), &admin, json!({"bio": null}))
            .await;
        assert_eq!(cleared.body["bio"], json!(null), "{realm}: null clears");
        assert_eq!(
            cleared.body["display_name"], "Alice L.",
            "{realm}: absent keeps"
        );
        let no_email = app
            .patch(&format!("{base}/{id}"), &admin, json!({"email": null}))
            .await;
        assert_eq!(no_email.status, 422, "{realm}: the e-mail is required");

        let roles = app
            .post(
                &format!("{base}/{id}/roles"),
                &admin,
                json!({"roles": ["manager"]}),
            )
            .await;
        assert!(
            role_names(&roles.body).contains(&"manager".to_owned()),
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
        assert_eq!(
            removed.body["is_platform_admin"], false,
            "{realm}: {}",
            removed.body
        );

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
        let again = app
            .post(
                &base,
                &admin,
                json!({"username": "alice", "email": "alice@example.com", "password": "wonderland-42x"}),
            )
            .await;
        assert_eq!(
            again.status, 201,
            "{realm}: a deleted user's name and e-mail are free again"
        );
    }
}

#[tokio::test]
async fn the_dashboard_creates_users_with_role_ids() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for realm in ["slm", "autobot"] {
        let roles = app.get(&format!("/api/{realm}-roles"), &admin).await;
        assert_eq!(roles.status, 200, "{}", roles.body);
        let listed = items(&roles, "roles");
        assert_eq!(roles.body["total"], listed.len());
        let manager = listed
            .iter()
            .find(|r| r["name"] == "manager")
            .expect("manager role");
        let created = app
            .post(
                &format!("/api/{realm}-users"),
                &admin,
                json!({"email": "dash@example.com", "username": "dash", "password": "Sturdy-Pass-9000",
                       "display_name": "", "role_ids": [manager["id"]]}),
            )
            .await;
        assert_eq!(created.status, 201, "{realm}: {}", created.body);
        assert_eq!(role_names(&created.body), ["manager"], "{realm}");
        let unknown = app
            .post(
                &format!("/api/{realm}-users"),
                &admin,
                json!({"email": "dash2@example.com", "username": "dash2", "password": "Sturdy-Pass-9000",
                       "role_ids": [uuid::Uuid::new_v4()]}),
            )
            .await;
        assert_eq!(
            unknown.locs(),
            vec![json!(["body", "role_ids", 0])],
            "{realm}"
        );
    }
}

#[tokio::test]
async fn password_policy_and_field_validation() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = |extra: serde_json::Value| {
        let mut body = json!({"username": "carol", "email": "carol@example.com",
                              "password": "Sturdy-Pass-9000"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (
            user(json!({"username": "ab"})),
            vec![json!(["body", "username"])],
        ),
        (
            user(json!({"password": "short"})),
            vec![json!(["body", "password"])],
        ),
        (user(json!({"password": "carolcarol"})), vec![]),
        (
            user(
                json!({"username": "carolcarol", "email": "cc@example.com", "password": "CAROLCAROL"}),
            ),
            vec![json!(["body", "password"])],
        ),
        (
            user(json!({"password": "Carol@Example.com"})),
            vec![json!(["body", "password"])],
        ),
        (
            user(json!({"password": "qwerty123"})),
            vec![json!(["body", "password"])],
        ),
        (
            user(json!({"email": "not-an-email"})),
            vec![json!(["body", "email"])],
        ),
        (
            user(json!({"display_name": "x".repeat(256)})),
            vec![json!(["body", "display_name"])],
        ),
        (
            user(json!({"roles": ["nobody"]})),
            vec![json!(["body", "roles", 0])],
        ),
        (
            user(json!({"full_name": "v1 field"})),
            vec![json!(["body", "full_name"])],
        ),
        (
            user(json!({"username": "ab", "email": "bad"})),
            vec![json!(["body", "username"]), json!(["body", "email"])],
        ),
    ];
    for (body, locs) in cases {
        let answer = app.post("/api/slm-users", &admin, body.clone()).await;
        if locs.is_empty() {
            assert_eq!(answer.status, 201, "{body}: {}", answer.body);
            app.delete(
                &format!("/api/slm-users/{}", answer.body["id"].as_str().unwrap()),
                &admin,
            )
            .await;
            continue;
        }
        assert_eq!(answer.status, 422, "{body}: {}", answer.body);
        assert_eq!(answer.locs(), locs, "{body}");
    }
    // bcrypt reads 72 bytes: the AutoBot realm refuses longer passwords rather than
    // accepting two passwords that share a prefix.
    let long = format!("{}-Tail", "Sturdy-Pass-".repeat(6));
    assert!(long.len() > 72);
    let answer = app
        .post(
            "/api/autobot-users",
            &admin,
            user(json!({"password": long})),
        )
        .await;
    assert_eq!(
        answer.locs(),
        vec![json!(["body", "password"])],
        "{}",
        answer.body
    );
    let answer = app
        .post("/api/slm-users", &admin, user(json!({"password": long})))
        .await;
    assert_eq!(
        answer.status, 201,
        "the SLM realm's argon2id has no such limit: {}",
        answer.body
    );
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
                .json(
                    &json!({"username": "racer", "email": format!("racer{i}@example.com"),
                              "password": format!("Racing-Pass-{i:04}")}),
                )
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
        403,
        "the same token, demoted on the very next request"
    );
    let (id, viewer) = app.slm_user("viewer").await;
    assert_eq!(app.get("/api/slm-users", &viewer).await.status, 403);
    let promoted = app
        .post(
            &format!("/api/slm-users/{id}/roles"),
            &admin,
            json!({"roles": ["manager"]}),
        )
        .await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(
        app.get("/api/slm-users", &viewer).await.status,
        200,
        "the same token, promoted on the very next request"
    );
}

#[tokio::test]
async fn preferences_come_back_as_stored_whatever_their_numbers() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for (realm, db) in [("slm", &app.slm_db), ("autobot", &app.autobot_db)] {
        let base = format!("/api/{realm}-users");
        let id = app
            .create_user(realm, "numbers", "many-digits-42x", &[])
            .await;
        // Each is a valid f64 that PostgreSQL prints in full (310 digits for the largest).
        let extremes = json!({"largest": 1.797_693_134_862_315_5e308, "tiny": 3.503_528_682_318_861_4e-42,
                              "negative": -1.868_703_582_880_463e229, "whole": -2498});
        let patched = app
            .patch(
                &format!("{base}/{id}"),
                &admin,
                json!({"preferences": extremes}),
            )
            .await;
        assert_eq!(patched.status, 200, "{realm}: {}", patched.body);
        let got = app.get(&format!("{base}/{id}"), &admin).await;
        assert_eq!(got.body["preferences"], extremes, "{realm}: {}", got.body);

        // The AutoBot backend writes Python integers, which no f64 holds: passed through as is.
        sqlx::query("UPDATE public.users SET preferences = $1::text::jsonb WHERE id = $2::uuid")
            .bind(format!("{{\"big\": 1{}}}", "0".repeat(400)))
            .bind(&id)
            .execute(db)
            .await
            .expect("update");
        let expected = format!("\"big\": 1{}}}", "0".repeat(400));
        let mut paths = vec![format!("{base}/{id}"), base.clone()];
        if realm == "autobot" {
            paths.push(format!("{base}/{id}/export"));
        }
        for path in paths {
            let raw = app
                .client
                .get(app.url(&path))
                .bearer_auth(&admin)
                .send()
                .await
                .expect("sent");
            assert_eq!(raw.status(), 200, "{realm}: {path}");
            let text = raw.text().await.expect("body");
            assert!(text.contains(&expected), "{realm}: {path}: {text}");
        }
    }
}
