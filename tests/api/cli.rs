//! The command line's database commands, run against fresh databases.
use crate::helpers::*;
use serde_json::json;
use slm_server::cli;
use slm_server::realm::RealmId;

#[tokio::test]
async fn create_admin_and_import_users_with_bcrypt_upgrade() {
    let app = spawn_app().await;
    let settings = app.settings();
    cli::create_admin(
        &settings,
        RealmId::Autobot,
        "ops-admin",
        Some("ops@example.com"),
        false,
    )
    .await
    .expect("create-admin");
    let must_change: bool =
        sqlx::query_scalar("SELECT must_change_password FROM users WHERE username = 'ops-admin'")
            .fetch_one(&app.autobot_db)
            .await
            .unwrap();
    assert!(must_change, "a generated password must be changed");
    assert!(
        cli::create_admin(&settings, RealmId::Autobot, "ops-admin", None, false)
            .await
            .is_err(),
        "duplicate refused"
    );

    let legacy = bcrypt::hash("legacy-secret-9", 4).unwrap();
    let file = std::env::temp_dir().join(format!("import-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, json!([
        {"username": "legacy1", "email": "l1@example.com", "password_hash": legacy, "roles": ["manager"]},
        {"username": "legacy2", "password_hash": slm_server::auth::password::hash_blocking("argon-secret-9").unwrap()}
    ]).to_string()).unwrap();
    cli::import_users(&settings, RealmId::Autobot, &file)
        .await
        .expect("import");
    let login = app.login("autobot", "legacy1", "legacy-secret-9").await;
    assert_eq!(login.status, 200, "bcrypt hash accepted: {}", login.body);
    assert_eq!(login.body["user"]["roles"], json!(["manager"]));
    let upgraded: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'legacy1'")
            .fetch_one(&app.autobot_db)
            .await
            .unwrap();
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "upgraded on login: {upgraded}"
    );
    assert_eq!(
        app.login("autobot", "legacy2", "argon-secret-9")
            .await
            .status,
        200
    );

    // All or nothing: one bad row imports nothing.
    std::fs::write(&file, "username,password_hash\nfresh1,$2b$04$abcdefghijklmnopqrstuuJ3p8G2y7q7K5yX0Yxq6s3sCw9zK5v2a\nbad name,$2b$04$x\n").unwrap();
    assert!(
        cli::import_users(&settings, RealmId::Autobot, &file)
            .await
            .is_err()
    );
    let fresh: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE username = 'fresh1'")
        .fetch_one(&app.autobot_db)
        .await
        .unwrap();
    assert_eq!(fresh, 0);
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
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (client, url) = (app.client.clone(), app.url("/api/slm-auth/login"));
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
