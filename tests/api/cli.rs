//! The command line's database commands, run against fresh databases.
use crate::helpers::*;
use serde_json::json;
use slm_server::RealmId;
use slm_server::cli;

#[tokio::test]
async fn create_admin_and_import_users_with_hash_upgrade() {
    let app = spawn_app().await;
    let settings = app.settings();
    let mut sub = app.subscribe().await;
    cli::create_admin(
        &settings,
        RealmId::Autobot,
        "ops-admin",
        "ops@example.com",
        false,
    )
    .await
    .expect("create-admin");
    let (must_change, platform_admin): (bool, bool) = sqlx::query_as(
        r"SELECT ps.must_change_password, u.is_platform_admin FROM users u
          JOIN slm_server.password_state ps ON ps.user_id = u.id WHERE u.username = 'ops-admin'",
    )
    .fetch_one(&app.autobot_db)
    .await
    .unwrap();
    assert!(must_change, "a generated password must be changed");
    assert!(platform_admin, "is_platform_admin follows the admin role");
    // The same rows as any other creation: an audit event and an invalidation message.
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE action = 'user_created' AND details->>'username' = 'ops-admin'",
    )
    .fetch_one(&app.autobot_db)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE username = 'ops-admin'")
        .fetch_one(&app.autobot_db)
        .await
        .unwrap();
    let published = receive(&mut sub, 1, std::time::Duration::from_secs(5)).await;
    assert_eq!(
        published.len(),
        1,
        "one invalidation, relayed by the running server"
    );
    assert_eq!(published[0]["user_id"], id.to_string());
    assert_eq!(published[0]["event"], "user.created");
    assert!(
        cli::create_admin(
            &settings,
            RealmId::Autobot,
            "ops-admin",
            "other@example.com",
            false
        )
        .await
        .is_err(),
        "duplicate refused"
    );

    let legacy = bcrypt::hash("legacy-secret-9", 4).unwrap();
    let file = std::env::temp_dir().join(format!("import-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, json!([
        {"username": "legacy1", "email": "l1@example.com", "password_hash": legacy, "roles": ["manager"]},
        {"username": "legacy2", "email": "l2@example.com", "password_hash": argon2_hash("argon-secret-9")}
    ]).to_string()).unwrap();
    assert_eq!(
        cli::import_users(&settings, RealmId::Autobot, &file)
            .await
            .expect("import"),
        2
    );
    let login = app.login("autobot", "legacy1", "legacy-secret-9").await;
    assert_eq!(login.status, 200, "bcrypt hash accepted: {}", login.body);
    assert_eq!(role_names(&login.body["user"]), ["manager"]);
    assert_eq!(
        app.login("autobot", "legacy2", "argon-secret-9")
            .await
            .status,
        200
    );
    let upgraded: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'legacy2'")
            .fetch_one(&app.autobot_db)
            .await
            .unwrap();
    assert!(
        upgraded.starts_with("$2b$04$"),
        "an Argon2 hash becomes the realm's bcrypt on login: {upgraded}"
    );

    // A CSV with quoted fields; one bad row imports nothing, and every problem names its line.
    std::fs::write(
        &file,
        "username,email,display_name,password_hash\n\
         fresh1,f1@example.com,\"Doe, Jane\",$2b$04$abcdefghijklmnopqrstuuJ3p8G2y7q7K5yX0Yxq6s3sCw9zK5v2a\n\
         bad name,f2@example.com,,$2b$04$x\n\
         fresh3,not-an-email,,$2b$04$x\n",
    )
    .unwrap();
    let err = cli::import_users(&settings, RealmId::Autobot, &file)
        .await
        .expect_err("bad rows");
    let message = err.to_string();
    assert!(message.contains("line 3:"), "{message}");
    assert!(message.contains("line 4:"), "{message}");
    assert!(
        !message.contains("line 2:"),
        "the quoted comma is one field: {message}"
    );
    let fresh: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE username = 'fresh1'")
        .fetch_one(&app.autobot_db)
        .await
        .unwrap();
    assert_eq!(fresh, 0, "all or nothing");
    std::fs::write(
        &file,
        "username,email,display_name,password_hash\nfresh1,f1@example.com,\"Doe, Jane\",$2b$04$abcdefghijklmnopqrstuuJ3p8G2y7q7K5yX0Yxq6s3sCw9zK5v2a\n",
    )
    .unwrap();
    cli::import_users(&settings, RealmId::Autobot, &file)
        .await
        .expect("a quoted comma imports");
    let name: Option<String> =
        sqlx::query_scalar("SELECT display_name FROM users WHERE username = 'fresh1'")
            .fetch_one(&app.autobot_db)
            .await
            .unwrap();
    assert_eq!(name.as_deref(), Some("Doe, Jane"));
    let _ = std::fs::remove_file(&file);
    assert!(
        cli::check(&settings).await.unwrap(),
        "check reports the SLM database reachable"
    );
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let untrusted = spawn_app_with(Options {
        vars: vec![("LOGIN_RATE_LIMIT_PER_MINUTE", "1".into())],
        ..Options::default()
    })
    .await;
    let send = |app: &TestApp, ip: &'static str| {
        app.client
            .post(app.url("/api/slm-auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": "x-user", "password": "Whatever-123456"}))
            .send()
    };
    assert_eq!(send(&untrusted, "10.1.1.1").await.unwrap().status(), 401);
    assert_eq!(
        send(&untrusted, "10.2.2.2").await.unwrap().status(),
        429,
        "a spoofed header does not escape the limit"
    );

    let trusted = spawn_app_with(Options {
        vars: vec![
            ("LOGIN_RATE_LIMIT_PER_MINUTE", "1".into()),
            ("TRUSTED_PROXIES", "127.0.0.0/8".into()),
        ],
        ..Options::default()
    })
    .await;
    assert_eq!(send(&trusted, "10.1.1.1").await.unwrap().status(), 401);
    assert_eq!(
        send(&trusted, "10.2.2.2").await.unwrap().status(),
        401,
        "behind a trusted proxy each client has its own limit"
    );
    assert_eq!(send(&trusted, "10.1.1.1").await.unwrap().status(), 429);
}

#[tokio::test]
async fn a_login_flood_beyond_the_hashing_queue_gets_503_with_retry_after() {
    let app = spawn_app_with(Options {
        vars: vec![
            ("PASSWORD_HASH_CONCURRENCY", "1".into()),
            ("PASSWORD_HASH_QUEUE", "1".into()),
        ],
        ..Options::default()
    })
    .await;
    // From twenty addresses: one client alone waits for its own turn and never fills the queue.
    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 1, i + 1]))
            .build()
            .unwrap();
        let url = app.url("/api/slm-auth/login");
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"username": "nobody", "password": "Whatever-123456"}))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.headers().get("retry-after").is_some(),
            )
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert!(results.iter().any(|(s, _)| *s == 401), "{results:?}");
    assert!(
        results.iter().any(|(s, retry)| *s == 503 && *retry),
        "queue full → 503 + Retry-After: {results:?}"
    );
    assert!(
        results.iter().all(|(s, _)| *s == 401 || *s == 503),
        "{results:?}"
    );
    let health = app
        .request(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(health.status, 200);
}

/// A lost admin password is recovered with `ADMIN_BOOTSTRAP_PASSWORD_FORCE`, once: a restart
/// with the setting still there does not undo the password chosen since.
#[tokio::test]
async fn the_forced_bootstrap_reset_happens_once() {
    let dbs = new_database_names();
    let first = spawn_app_with(Options {
        databases: Some(dbs.clone()),
        ..Options::default()
    })
    .await;
    first.admin().await;
    let forced = || Options {
        vars: vec![
            ("ADMIN_BOOTSTRAP_PASSWORD", "Recovered-Pass-2026-x".into()),
            ("ADMIN_BOOTSTRAP_PASSWORD_FORCE", "1".into()),
        ],
        databases: Some(dbs.clone()),
    };

    let second = spawn_app_with(forced()).await;
    assert_eq!(
        second.login("slm", "admin", ADMIN_PASSWORD).await.status,
        401,
        "the forced reset replaced the lost password"
    );
    let token = second.token("slm", "admin", "Recovered-Pass-2026-x").await;
    assert_eq!(
        second.get("/api/slm-users", &token).await.detail(),
        "Password change required",
        "the reset password is to be changed"
    );
    let changed = second
        .post(
            "/api/slm-auth/me/password",
            &token,
            json!({"current_password": "Recovered-Pass-2026-x", "new_password": "Chosen-After-Reset-77"}),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.body);

    // The setting is still in the environment at the next start: nothing happens.
    let third = spawn_app_with(forced()).await;
    assert_eq!(
        third
            .login("slm", "admin", "Recovered-Pass-2026-x")
            .await
            .status,
        401
    );
    third.token("slm", "admin", "Chosen-After-Reset-77").await;
}
