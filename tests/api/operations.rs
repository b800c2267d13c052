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
    let redirect_free = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ui = redirect_free.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(ui.status(), 200, "/docs itself, no redirect");
    let css = redirect_free
        .get(app.url("/docs/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
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
    let dbs = TestDatabases::new();
    let (slm, autobot) = dbs.names.clone();
    let base = pg_base();
    for (realm, name) in [
        (slm_server::RealmId::Slm, slm),
        (slm_server::RealmId::Autobot, autobot),
    ] {
        let options: sqlx::postgres::PgConnectOptions = format!("{base}/{name}").parse().unwrap();
        slm_server::migrate_up(realm, &options).await.expect("up");
        slm_server::migrate_down(&options, slm_server::RevertTo::Version(0))
            .await
            .expect("down");
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
            .await
            .unwrap();
        let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations'")
            .fetch_one(&mut conn).await.unwrap();
        assert_eq!(tables, 0, "{realm:?}: down leaves no table");
        slm_server::migrate_up(realm, &options)
            .await
            .expect("up again");
    }
}

/// A rare search term is looked up in the trigram index; a common one walks the list order and
/// stops at the page's end (either path alone is slow for the other kind of term); browsing
/// walks the list order. No shape scans the table. Totals are exact for few matches, the
/// planner's estimate for many, and a lower bound when the planner expected few.
#[tokio::test]
async fn search_and_order_use_indexes() {
    let app = spawn_app().await;
    // Enough rows that a sequential scan costs more than the indexes, as in production.
    sqlx::query(
        r"INSERT INTO users (id, email, username, is_active, is_verified, mfa_enabled,
                            is_platform_admin, created_at)
          SELECT gen_random_uuid(), 'user' || n || '@example.com', 'user' || n, true, false,
                 false, false, now() - n * interval '1 second'
          FROM generate_series(1, 30000) n",
    )
    .execute(&app.slm_db)
    .await
    .unwrap();
    sqlx::query("ANALYZE slm_server.user_search")
        .execute(&app.slm_db)
        .await
        .unwrap();
    let (search, browse) = (
        slm_server::user_list_statement(true),
        slm_server::user_list_statement(false),
    );
    for (statement, pattern, index) in [
        (&search, Some("%er2999%"), "user_search_haystack_trgm_idx"),
        (&search, Some("%user%"), "user_search_created_at_idx"),
        (&browse, None, "user_search_created_at_idx"),
    ] {
        let plan: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {statement}")))
                .bind(pattern)
                .bind(None::<bool>)
                .bind(None::<String>)
                .bind(0_i64)
                .bind(50_i64)
                .fetch_all(&app.slm_db)
                .await
                .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains(index), "{pattern:?} uses {index}:\n{plan}");
        assert!(
            !plan.contains("Seq Scan on user_search"),
            "{pattern:?}:\n{plan}"
        );
    }

    let admin = app.admin().await;
    // user2999 and user29990..user29999.
    let rare = app
        .get("/api/slm-users?search=er2999&limit=5", &admin)
        .await;
    assert_eq!(rare.body["total"], 11, "{}", rare.body);
    assert_eq!(rare.header("x-total-count"), Some("11"));
    assert_eq!(items(&rare, "users").len(), 5);
    // user29, user290–299, user2900–2999 and user29000–29999: counted exactly, on a page and
    // past the last one.
    let middle = app.get("/api/slm-users?search=er29&limit=5", &admin).await;
    assert_eq!(middle.body["total"], 1111, "{}", middle.body);
    assert_eq!(
        items(&middle, "users")[0]["username"],
        "user29",
        "newest first"
    );
    let past = app
        .get("/api/slm-users?search=er29&skip=5000&limit=5", &admin)
        .await;
    assert_eq!(past.body["total"], 1111, "{}", past.body);
    assert!(items(&past, "users").is_empty());
    // All 30,000 seeded users match: beyond the exact limit, the total is the planner's estimate.
    let common = app.get("/api/slm-users?search=user&limit=5", &admin).await;
    let total = common.body["total"].as_i64().unwrap();
    assert!((25_000..=35_000).contains(&total), "estimate {total}");
    assert_eq!(items(&common, "users").len(), 5);
    assert_eq!(
        items(&common, "users")[0]["username"],
        "user1",
        "newest first"
    );

    // 12,000 more users the statistics do not know of: the planner expects a few matches, and
    // the count stops past the exact limit, so the total says "more than 10,000".
    sqlx::query("ALTER TABLE slm_server.user_search SET (autovacuum_enabled = false)")
        .execute(&app.slm_db)
        .await
        .unwrap();
    sqlx::query(
        r"INSERT INTO users (id, email, username, is_active, is_verified, mfa_enabled,
                            is_platform_admin, created_at)
          SELECT gen_random_uuid(), 'unseen' || n || '@example.com', 'unseen' || n, true,
                 false, false, false, now() - interval '1 day' - n * interval '1 second'
          FROM generate_series(1, 12000) n",
    )
    .execute(&app.slm_db)
    .await
    .unwrap();
    let unseen = app
        .get("/api/slm-users?search=unseen&limit=5", &admin)
        .await;
    assert_eq!(
        unseen.body["total"], 10_001,
        "a lower bound: {}",
        unseen.body
    );
    assert_eq!(items(&unseen, "users")[0]["username"], "unseen1");
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

#[tokio::test]
async fn metrics_can_have_an_address_of_their_own() {
    let app = spawn_app_with(Options {
        vars: vec![("METRICS_ADDR", "127.0.0.1:0".into())],
        ..Options::default()
    })
    .await;
    app.login("slm", "admin", "not-the-password").await;
    let public = app.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(public.status, 404, "not on the public port");
    let own = app.metrics_address.clone().expect("a metrics listener");
    let text = app
        .client
        .get(format!("{own}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    let doc = app.request(Method::GET, "/openapi.json", None, None).await;
    assert!(
        doc.body["paths"].get("/metrics").is_none(),
        "and not in the document"
    );
}

/// Each realm's database is listened to (NOTIFY) on one connection of the server's own, outside
/// its request pool: at rest no connection of either pool is in use, and each database has one
/// listening connection, for the catalog and the outbox alike.
#[tokio::test]
async fn each_database_has_one_listener_outside_the_request_pool() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    assert_eq!(app.get("/api/autobot-users", &admin).await.status, 200);
    for (realm, db) in [("slm", &app.slm_db), ("autobot", &app.autobot_db)] {
        app.until_pool_at_rest(realm).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let listening: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
            .fetch_one(db)
            .await
            .unwrap();
            if listening == 1 {
                break;
            }
            assert!(
                listening == 0 && std::time::Instant::now() < deadline,
                "{realm}: {listening} listening connections"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// A proxy to PostgreSQL that counts the `Sync` messages its clients send: one per statement
/// of the extended protocol and one per ping, so one per round trip.
struct RoundTrips {
    port: u16,
    syncs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl RoundTrips {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("proxy port");
        let port = listener.local_addr().unwrap().port();
        let syncs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = syncs.clone();
        proxy_to_postgres(listener, move |inbound, outbound| {
            let counter = counter.clone();
            async move {
                let (mut from_client, mut to_client) = inbound.into_split();
                let (mut from_server, mut to_server) = outbound.into_split();
                let up = Self::forward_counting(&mut from_client, &mut to_server, &counter);
                let down = tokio::io::copy(&mut from_server, &mut to_client);
                let _ = tokio::join!(up, down);
            }
        });
        Self { port, syncs }
    }

    /// Forwards a client's bytes, counting its `Sync` messages: after the untyped start-up
    /// messages (length first), each message is a type byte and a length that counts itself.
    async fn forward_counting(
        from: &mut tokio::net::tcp::OwnedReadHalf,
        to: &mut tokio::net::tcp::OwnedWriteHalf,
        syncs: &std::sync::atomic::AtomicUsize,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const SSL_REQUEST: u32 = 80_877_103;
        let length = |bytes: &[u8]| u32::from_be_bytes(bytes.try_into().unwrap()) as usize;
        let (mut pending, mut started) = (Vec::new(), false);
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 || to.write_all(&buf[..n]).await.is_err() {
                return;
            }
            pending.extend_from_slice(&buf[..n]);
            loop {
                let size = match started {
                    false if pending.len() >= 8 => length(&pending[..4]),
                    true if pending.len() >= 5 => 1 + length(&pending[1..5]),
                    _ => break,
                };
                if pending.len() < size {
                    break;
                }
                if !started {
                    started = length(&pending[4..8]) as u32 != SSL_REQUEST;
                } else if pending[0] == b'S' {
                    syncs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                pending.drain(..size);
            }
        }
    }

    fn count(&self) -> usize {
        self.syncs.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An authenticated read of an AutoBot user costs PostgreSQL two round trips, one statement
/// each: the session check in the SLM database and the target in the AutoBot one. A connection
/// goes back to its pool without the ping sqlx's own pool sends each connection given back,
/// which made it four. (A connection idle for over a second is pinged before use, which a slow
/// machine may cause now and then between two requests: hence the margin.)
#[tokio::test]
async fn an_authenticated_read_costs_two_round_trips() {
    let proxy = RoundTrips::start().await;
    let dbs = TestDatabases::new();
    let (slm_db, autobot_db) = dbs.names.clone();
    let mut through_proxy = Vec::new();
    for (realm, name) in [
        (slm_server::RealmId::Slm, &slm_db),
        (slm_server::RealmId::Autobot, &autobot_db),
    ] {
        let direct: sqlx::postgres::PgConnectOptions =
            format!("{}/{name}", pg_base()).parse().unwrap();
        slm_server::migrate_up(realm, &direct)
            .await
            .expect("migrated");
        // Plain text, so that the proxy can read the messages.
        through_proxy.push(format!(
            "{}/{name}?sslmode=disable",
            pg_base_via(proxy.port)
        ));
    }
    let app = spawn_app_with(Options {
        vars: vec![
            ("SLM_DATABASE_URL", through_proxy[0].clone()),
            ("AUTOBOT_DATABASE_URL", through_proxy[1].clone()),
        ],
        databases: Some((slm_db, autobot_db)),
    })
    .await;
    let admin = app.admin().await;
    let id = app
        .create_user("autobot", "counted", "Sturdy-Pass-9000", &["user"])
        .await;
    let path = format!("/api/autobot-users/{id}");
    assert_eq!(app.get(&path, &admin).await.status, 200);
    // Nothing else uses the database meanwhile: the relay has sent the creation's message.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
        let text = metrics.text().await.unwrap();
        if text.lines().any(|line| line == "outbox_backlog 0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "outbox not relayed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.until_pool_at_rest("autobot").await;
    app.until_pool_at_rest("slm").await;

    let reads = 20;
    let before = proxy.count();
    for _ in 0..reads {
        let answer = app.get(&path, &admin).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let round_trips = proxy.count() - before;
    assert!(
        (2 * reads..2 * reads + reads / 2).contains(&round_trips),
        "{round_trips} round trips for {reads} reads"
    );
}
