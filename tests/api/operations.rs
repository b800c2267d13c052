use crate::helpers::*;
use reqwest::Method;

#[tokio::test]
async fn health_ready_metrics_docs() {
    let app = spawn_app().await;
    let health = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (health.status.as_u16(), health.body["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["status"], "ready", "{}", ready.body);
    assert_eq!(ready.body["checks"]["slm_db"], "ok");

    app.admin().await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "db_pool_connections",
        "logins_total",
        "outbox_backlog",
    ] {
        assert!(metrics.contains(needle), "metrics lack {needle}");
    }
    assert!(
        metrics.contains("route=\"/api/slm-auth/login\""),
        "metrics are labelled by route pattern"
    );

    let doc = app.request(Method::GET, "/openapi.json", None, None).await;
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/api/slm-users",
        "/api/slm-users/{user_id}",
        "/api/autobot-users/{user_id}/teams",
        "/api/autobot-teams/{team_id}/members",
        "/api/slm-auth/login",
        "/api/autobot-auth/refresh",
        "/api/access-requests/{id}/approve",
        "/api/audit",
        "/healthz",
    ] {
        assert!(paths.contains_key(path), "openapi lacks {path}");
    }
    assert!(doc.body["components"]["schemas"]["HTTPValidationError"].is_object());
    let ui = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(
        ui.text().await.unwrap().contains("swagger"),
        "Swagger UI served from the binary"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_security_headers() {
    let app = spawn_app().await;
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
    let fresh = app.client.get(app.url("/nope")).send().await.unwrap();
    assert!(fresh.headers().contains_key("x-request-id"));
    assert_eq!(fresh.headers()["x-content-type-options"], "nosniff");
    assert_eq!(fresh.headers()["x-frame-options"], "DENY");
    let login = app.login("slm", "admin", "wrong-password-x").await;
    assert_eq!(login.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn migrations_run_up_and_down_and_up_again() {
    let (slm, autobot) = new_database_names();
    let base = pg_base();
    for (realm, name) in [
        (slm_server::realm::RealmId::Slm, slm),
        (slm_server::realm::RealmId::Autobot, autobot),
    ] {
        let options: sqlx::postgres::PgConnectOptions = format!("{base}/{name}").parse().unwrap();
        slm_server::db::migrate_up(realm, &options)
            .await
            .expect("up");
        slm_server::db::migrate_down(realm, &options)
            .await
            .expect("down");
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
            .await
            .unwrap();
        let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations'")
            .fetch_one(&mut conn).await.unwrap();
        assert_eq!(tables, 0, "{realm:?}: down leaves no table");
        slm_server::db::migrate_up(realm, &options)
            .await
            .expect("up again");
    }
}

#[tokio::test]
async fn search_and_order_use_indexes() {
    let app = spawn_app().await;
    let mut conn = app.slm_db.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar("EXPLAIN SELECT id FROM users u WHERE u.username ILIKE '%lic%' OR u.email ILIKE '%lic%' OR u.full_name ILIKE '%lic%'")
        .fetch_all(&mut *conn).await.unwrap();
    assert!(
        plan.join("\n").contains("trgm_idx"),
        "search uses the trigram indexes:\n{}",
        plan.join("\n")
    );
    let plan: Vec<String> =
        sqlx::query_scalar("EXPLAIN SELECT id FROM users u ORDER BY u.created_at, u.id LIMIT 100")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    assert!(
        plan.join("\n").contains("users_created_at_id_idx"),
        "list order uses its index:\n{}",
        plan.join("\n")
    );
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = spawn_app_with(Options {
        vars: vec![("CORS_ORIGINS", "https://dash.example.com".into())],
        ..Options::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/slm-users"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://dash.example.com").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://dash.example.com")
    );
    let denied = preflight("https://evil.example.com").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_slm-server"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(std::env::temp_dir());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.arg("check").output().expect("binary runs")
    };
    let out = run(&[("ENVIRONMENT", "prod")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("SECRET_KEY"), "{stderr}");
    let out = run(&[("ACCESS_TOKEN_EXPIRE_MINUTES", "soon")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ACCESS_TOKEN_EXPIRE_MINUTES"));
}
