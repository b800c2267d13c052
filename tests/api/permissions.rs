//! The permission matrix of docs/api.md §2.
use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn permission_matrix() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, viewer) = app.slm_user("viewer").await;
    let (_, manager) = app.slm_user("manager").await;
    let ab_user = app
        .create_user("autobot", "ab-someone", "Sturdy-Pass-9000", &["user"])
        .await;
    let slm_target = app
        .create_user("slm", "slm-target", "Sturdy-Pass-9000", &["viewer"])
        .await;

    // (who, method+path, body, expected status)
    let who = [
        ("viewer", &viewer),
        ("manager", &manager),
        ("admin", &admin),
    ];
    let expect = |v: u16, m: u16, a: u16| [v, m, a];
    let checks: Vec<(&str, &str, serde_json::Value, [u16; 3])> = vec![
        (
            "GET",
            "/api/autobot-users".into(),
            json!(null),
            expect(200, 200, 200),
        ),
        (
            "GET",
            "/api/autobot-teams".into(),
            json!(null),
            expect(200, 200, 200),
        ),
        (
            "GET",
            "/api/slm-users".into(),
            json!(null),
            expect(403, 200, 200),
        ),
        (
            "GET",
            "/api/access-requests".into(),
            json!(null),
            expect(403, 200, 200),
        ),
        (
            "GET",
            "/api/audit".into(),
            json!(null),
            expect(403, 403, 200),
        ),
        (
            "POST",
            "/api/autobot-users".into(),
            json!({"username": "USERNAME", "email": "USERNAME@example.com", "password": "Sturdy-Pass-9000"}),
            expect(403, 201, 201),
        ),
        (
            "POST",
            "/api/autobot-users".into(),
            json!({"username": "USERNAME", "email": "USERNAME@example.com", "password": "Sturdy-Pass-9000", "roles": ["manager"]}),
            expect(403, 201, 201),
        ),
        (
            "POST",
            "/api/autobot-users".into(),
            json!({"username": "USERNAME", "email": "USERNAME@example.com", "password": "Sturdy-Pass-9000", "is_admin": true}),
            expect(403, 403, 201),
        ),
        (
            "POST",
            "/api/slm-users".into(),
            json!({"username": "USERNAME", "email": "USERNAME@example.com", "password": "Sturdy-Pass-9000"}),
            expect(403, 403, 201),
        ),
        (
            "POST",
            "/api/autobot-teams".into(),
            json!({"name": "USERNAME"}),
            expect(403, 201, 201),
        ),
        // Permission is checked before the body: who may not act learns nothing of its rules.
        (
            "POST",
            "/api/slm-users".into(),
            json!({}),
            expect(403, 403, 422),
        ),
        (
            "PATCH",
            format!("/api/slm-users/{slm_target}"),
            json!({"email": 7}),
            expect(403, 403, 422),
        ),
    ]
    .into_iter()
    .map(
        |(m, p, b, e): (&str, String, serde_json::Value, [u16; 3])| {
            (m, Box::leak(p.into_boxed_str()) as &str, b, e)
        },
    )
    .collect();
    for (method, path, body, expected) in checks {
        for (i, (name, token)) in who.iter().enumerate() {
            let body = if body.is_null() {
                None
            } else {
                Some(
                    serde_json::from_str(&body.to_string().replace(
                        "USERNAME",
                        &format!("u-{name}-{}", uuid::Uuid::new_v4().simple()),
                    ))
                    .unwrap(),
                )
            };
            let answer = app
                .request(method.parse().unwrap(), path, Some(token), body)
                .await;
            assert_eq!(
                answer.status.as_u16(),
                expected[i],
                "{name} {method} {path}: {}",
                answer.body
            );
            if expected[i] == 403 {
                assert_eq!(answer.detail(), &json!("Not enough permissions"));
            }
        }
    }
    // Role grants: a manager may grant AutoBot roles up to manager, never admin.
    let grant = |role: &'static str| json!({"roles": [role]});
    assert_eq!(
        app.post(
            &format!("/api/autobot-users/{ab_user}/roles"),
            &manager,
            grant("manager")
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.post(
            &format!("/api/autobot-users/{ab_user}/roles"),
            &manager,
            grant("admin")
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.post(
            &format!("/api/autobot-users/{ab_user}/roles"),
            &viewer,
            grant("manager")
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.post(
            &format!("/api/slm-users/{slm_target}/roles"),
            &manager,
            grant("manager")
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.patch(
            &format!("/api/slm-users/{slm_target}"),
            &manager,
            json!({"full_name": "x"})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.delete(&format!("/api/slm-users/{slm_target}"), &manager)
            .await
            .status,
        403
    );
    assert_eq!(
        app.delete(&format!("/api/autobot-users/{ab_user}"), &viewer)
            .await
            .status,
        403
    );
    assert_eq!(
        app.delete(&format!("/api/autobot-users/{ab_user}"), &manager)
            .await
            .status,
        204
    );
}

/// Until `path` answers `want` to `token` on `app`; fails after 3 s, far less than the minute
/// between the catalog's periodic checks, so only the database's announcement can make it.
async fn until_status(app: &TestApp, path: &str, token: &str, want: u16) {
    let started = std::time::Instant::now();
    loop {
        let status = app.get(path, token).await.status;
        if status == want {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{path} still answers {status}, not {want}, 3 s after the grant changed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// What a role grants is held in each replica's memory; a grant written straight into the
/// database (as the AutoBot backend writes its roles) counts on every replica at once, and so
/// does its withdrawal.
#[tokio::test]
async fn a_grant_written_into_the_database_counts_on_every_replica_at_once() {
    let (one, two) = spawn_replicas().await;
    let (_, viewer) = one.slm_user("viewer").await;
    for app in [&one, &two] {
        assert_eq!(app.get("/api/audit", &viewer).await.status, 403);
    }
    let grant = r"INSERT INTO role_permissions (role_id, permission_id)
                  SELECT r.id, p.id FROM roles r, permissions p
                  WHERE r.name = 'viewer' AND r.org_id IS NULL AND p.name = 'audit:read'";
    sqlx::query(grant).execute(&one.slm_db).await.unwrap();
    for app in [&one, &two] {
        until_status(app, "/api/audit", &viewer, 200).await;
    }
    let withdraw = r"DELETE FROM role_permissions
                     WHERE role_id IN (SELECT id FROM roles WHERE name = 'viewer')
                       AND permission_id IN (SELECT id FROM permissions WHERE name = 'audit:read')";
    sqlx::query(withdraw).execute(&one.slm_db).await.unwrap();
    for app in [&one, &two] {
        until_status(app, "/api/audit", &viewer, 403).await;
    }
}
