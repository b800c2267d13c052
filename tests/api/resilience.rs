//! The AutoBot database being unreachable degrades only the AutoBot realm, and recovery needs
//! no restart.
use std::time::{Duration, Instant};

use crate::helpers::*;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

/// Forwards `port` to PostgreSQL once started: the "database comes back" switch.
async fn start_proxy(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("proxy port");
    let upstream: sqlx::postgres::PgConnectOptions = pg_base().parse().unwrap();
    let target = format!("{}:{}", upstream.get_host(), upstream.get_port());
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

#[tokio::test]
async fn autobot_database_down_then_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (slm_db, autobot_db) = new_database_names();
    let user_pass = pg_base()
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    let app = spawn_app_with(Options {
        vars: vec![(
            "AUTOBOT_DATABASE_URL",
            format!("postgres://{user_pass}@127.0.0.1:{port}/{autobot_db}"),
        )],
        databases: Some((slm_db, autobot_db)),
    })
    .await;
    let admin = app.admin().await;
    let ready = app
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(
        (ready.status.as_u16(), ready.body["status"].as_str()),
        (200, Some("degraded"))
    );
    assert_eq!(ready.body["checks"]["autobot_db"], "unavailable");

    let started = Instant::now();
    let down = app.get("/api/autobot-users", &admin).await;
    assert_eq!(down.status, 503);
    assert_eq!(
        down.detail(),
        &serde_json::json!("AutoBot user database unavailable")
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered quickly: {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.login("autobot", "anyone", "Whatever-123456")
            .await
            .status,
        503
    );
    assert_eq!(
        app.get("/api/slm-users", &admin).await.status,
        200,
        "SLM realm unaffected"
    );

    start_proxy(port).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = app
            .request(reqwest::Method::GET, "/readyz", None, None)
            .await;
        let users = app.get("/api/autobot-users", &admin).await;
        if ready.body["status"] == "ready" && users.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not recover: {} / {}",
            ready.body,
            users.status
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    app.create_user("autobot", "after-recovery", "Sturdy-Pass-9000", &["user"])
        .await;
}
