//! The AutoBot database being unreachable degrades only the AutoBot realm, and recovery needs
//! no restart.
use std::time::{Duration, Instant};

use crate::helpers::*;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpSocket};

/// A local port of the test's own on which nothing listens yet: connections to it are refused
/// until [`start_proxy`]. Bound from the start, so that no other connection of the machine can
/// take it meanwhile (a port merely found free was once taken before the proxy bound it).
fn reserved_port() -> (TcpSocket, u16) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("a free port");
    let port = socket.local_addr().expect("bound").port();
    (socket, port)
}

/// Forwards the reserved port to PostgreSQL once started: the "database comes back" switch.
async fn start_proxy(socket: TcpSocket) {
    let listener = socket.listen(128).expect("proxy port");
    proxy_to_postgres(listener, |mut inbound, mut outbound| async move {
        let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
    });
}

#[tokio::test]
async fn autobot_database_down_then_back() {
    let (socket, port) = reserved_port();
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
        vars: vec![
            (
                "AUTOBOT_DATABASE_URL",
                format!("postgres://{user_pass}@127.0.0.1:{port}/{autobot_db}"),
            ),
            ("AUTOBOT_DB_ACQUIRE_TIMEOUT_MS", "1000".into()),
            ("AUTOBOT_DB_STATEMENT_TIMEOUT_MS", "1000".into()),
        ],
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

    start_proxy(socket).await;
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

/// A proxy to PostgreSQL that can stop forwarding without closing anything, as a network
/// partition does: bytes are read and dropped, nothing comes back.
struct Partition {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Partition {
    async fn start() -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("proxy port");
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cut.clone();
        proxy_to_postgres(listener, move |inbound, outbound| {
            let flag = flag.clone();
            async move {
                let (mut in_read, mut in_write) = inbound.into_split();
                let (mut out_read, mut out_write) = outbound.into_split();
                let up_flag = flag.clone();
                let up = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = in_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if !up_flag.load(Ordering::SeqCst)
                            && out_write.write_all(&buf[..n]).await.is_err()
                        {
                            break;
                        }
                    }
                };
                let down = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = out_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if !flag.load(Ordering::SeqCst)
                            && in_write.write_all(&buf[..n]).await.is_err()
                        {
                            break;
                        }
                    }
                };
                tokio::join!(up, down);
            }
        });
        Self { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Requests caught by a partition answer 503 within their deadline, and the server recovers
/// once it ends, with no connection of the pool lost to a statement whose answer never came.
#[tokio::test]
async fn a_partition_never_holds_a_request_that_has_a_connection() {
    let partition = Partition::start().await;
    let dbs = TestDatabases::new();
    let (slm_db, autobot_db) = dbs.names.clone();
    // The AutoBot database is created and migrated directly; only the server goes through
    // the proxy.
    let direct: sqlx::postgres::PgConnectOptions =
        format!("{}/{autobot_db}", pg_base()).parse().unwrap();
    slm_server::migrate_up(slm_server::RealmId::Autobot, &direct)
        .await
        .expect("migrated");
    let through_proxy = pg_base_via(partition.port);
    let app = spawn_app_with(Options {
        vars: vec![
            (
                "AUTOBOT_DATABASE_URL",
                format!("{through_proxy}/{autobot_db}"),
            ),
            ("AUTOBOT_DB_STATEMENT_TIMEOUT_MS", "1000".into()),
            ("AUTOBOT_DB_ACQUIRE_TIMEOUT_MS", "1000".into()),
            // One connection, which the partition catches: recovering needs it back, so it
            // may not stay held by a statement whose answer was lost.
            ("AUTOBOT_DB_POOL_SIZE", "1".into()),
        ],
        databases: Some((slm_db, autobot_db)),
    })
    .await;
    let admin = app.admin().await;
    // Warm the pool: its connection is fresh when the partition starts, so it is handed out
    // without a ping and its next statement is the one that hangs; the other requests wait for
    // it and give up. (A connection is back in the pool before its request is answered.)
    let warm =
        futures_util::future::join_all((0..4).map(|_| app.get("/api/autobot-users", &admin))).await;
    assert!(warm.iter().all(|a| a.status == 200));

    partition.set_cut(true);
    let started = Instant::now();
    let answers =
        futures_util::future::join_all((0..4).map(|_| app.get("/api/autobot-users", &admin))).await;
    let elapsed = started.elapsed();
    for answer in &answers {
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert_eq!(
            answer.detail(),
            &serde_json::json!("AutoBot user database unavailable")
        );
    }
    assert!(
        elapsed < Duration::from_secs(4),
        "answered within about a second: {elapsed:?}"
    );
    assert_eq!(
        app.get("/api/slm-users", &admin).await.status,
        200,
        "SLM unaffected"
    );

    partition.set_cut(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = app.get("/api/autobot-users", &admin).await;
        if answer.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not recover after the partition: {} {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// PostgreSQL ends one transaction of a deadlock; the request whose transaction it ended runs
/// again and succeeds, rather than answering 500. The deadlock is built by hand: another
/// connection holds the user's session and then asks for the user's row, which the
/// deactivation holds while it waits to end that session.
#[tokio::test]
async fn a_request_aborted_by_a_deadlock_runs_again() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (user_id, user_token) = app.slm_user("viewer").await;
    let uid: uuid::Uuid = user_id.parse().unwrap();
    let session: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM slm_server.sessions WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(uid)
    .fetch_one(&app.slm_db)
    .await
    .unwrap();

    let mut holder = app.slm_db.begin().await.unwrap();
    // The server's connection, not this one, is the one to find the deadlock and give way.
    sqlx::query("SET LOCAL deadlock_timeout = '60s'")
        .execute(&mut *holder)
        .await
        .unwrap();
    sqlx::query("SELECT 1 FROM slm_server.sessions WHERE id = $1 FOR UPDATE")
        .bind(session)
        .execute(&mut *holder)
        .await
        .unwrap();
    let deactivation = {
        let (client, url, token) = (
            app.client.clone(),
            app.url(&format!("/api/slm-users/{user_id}")),
            admin.clone(),
        );
        tokio::spawn(async move {
            let response = client
                .patch(url)
                .bearer_auth(token)
                .json(&serde_json::json!({"is_active": false}))
                .send()
                .await
                .unwrap();
            Answer::from(response).await
        })
    };
    // The deactivation holds the user's row and waits for the session.
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = Instant::now() + Duration::from_secs(20);
    while sqlx::query_scalar::<_, i64>(waiting)
        .fetch_one(&app.slm_db)
        .await
        .unwrap()
        == 0
    {
        assert!(Instant::now() < deadline, "the deactivation never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Now this connection waits for the user's row: a cycle, which PostgreSQL breaks by
    // ending the deactivation's transaction.
    sqlx::query("SELECT 1 FROM public.users WHERE id = $1 FOR KEY SHARE")
        .bind(uid)
        .execute(&mut *holder)
        .await
        .unwrap();
    holder.rollback().await.unwrap();

    let answer = deactivation.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["is_active"], false);
    let me = app.get("/api/slm-auth/me", &user_token).await;
    assert_eq!(me.status, 401, "the session ended: {}", me.body);
    let revoked: Option<String> =
        sqlx::query_scalar("SELECT revoke_reason FROM slm_server.sessions WHERE id = $1")
            .bind(session)
            .fetch_one(&app.slm_db)
            .await
            .unwrap();
    assert_eq!(revoked.as_deref(), Some("deactivated"));
}

/// A request that finds every connection of its pool busy waits for one at most the acquire
/// timeout, then answers 503, however long its statements would be allowed to run.
#[tokio::test]
async fn a_request_waits_for_a_connection_at_most_the_acquire_timeout() {
    let app = spawn_app_with(Options {
        vars: vec![
            ("AUTOBOT_DB_POOL_SIZE", "1".into()),
            ("AUTOBOT_DB_ACQUIRE_TIMEOUT_MS", "500".into()),
            ("AUTOBOT_DB_STATEMENT_TIMEOUT_MS", "10000".into()),
        ],
        databases: None,
    })
    .await;
    let admin = app.admin().await;
    let id = app
        .create_user("autobot", "held", "Sturdy-Pass-9000", &["user"])
        .await;
    // The test holds the user's row, so that a PATCH of it holds the pool's one connection
    // while it waits for the lock.
    let mut holder = app.autobot_db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(id.parse::<uuid::Uuid>().unwrap())
        .execute(&mut *holder)
        .await
        .unwrap();
    let path = format!("/api/autobot-users/{id}");
    let patch = app.patch(&path, &admin, serde_json::json!({"display_name": "Held"}));
    let waiting = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let answer = app.get("/api/autobot-users", &admin).await;
        let waited = started.elapsed();
        holder.commit().await.unwrap();
        (answer, waited)
    };
    let (patched, (answer, waited)) = tokio::join!(patch, waiting);
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(
        answer.detail(),
        &serde_json::json!("AutoBot user database unavailable")
    );
    assert!(
        waited < Duration::from_secs(3),
        "gave up after about half a second: {waited:?}"
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
}

/// A proxy to PostgreSQL that can go away and come back on the same port, as a restarting
/// database does: while it is stopped, its connections are closed and new ones are refused.
struct Restarting {
    port: u16,
    /// The proxy's task (see [`proxy_to_postgres`]): aborting it closes everything.
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl Restarting {
    fn start() -> Self {
        let socket = Self::socket(0);
        let port = socket.local_addr().expect("bound").port();
        let mut proxy = Self {
            port,
            serving: None,
        };
        proxy.serve(socket);
        proxy
    }

    /// A socket bound to `port` (0: any), which may take the port again while connections of
    /// its previous listener linger.
    fn socket(port: u16) -> TcpSocket {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .expect("the proxy's port");
        socket
    }

    fn serve(&mut self, socket: TcpSocket) {
        let listener = socket.listen(128).expect("listening");
        self.serving = Some(proxy_to_postgres(
            listener,
            |mut inbound, mut outbound| async move {
                let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
            },
        ));
    }

    fn stop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }

    fn restart(&mut self) {
        self.serve(Self::socket(self.port));
    }
}

/// A database that refuses connections for a moment (restarting) is connected to again within
/// the request's acquire timeout: the request waits and succeeds rather than failing at the
/// first refusal.
#[tokio::test]
async fn a_refused_connection_is_tried_again_within_the_acquire_timeout() {
    let mut proxy = Restarting::start();
    let (slm_db, autobot_db) = new_database_names();
    let app = spawn_app_with(Options {
        vars: vec![
            (
                "AUTOBOT_DATABASE_URL",
                format!("{}/{autobot_db}", pg_base_via(proxy.port)),
            ),
            ("AUTOBOT_DB_ACQUIRE_TIMEOUT_MS", "10000".into()),
        ],
        databases: Some((slm_db, autobot_db)),
    })
    .await;
    let admin = app.admin().await;
    assert_eq!(app.get("/api/autobot-users", &admin).await.status, 200);

    proxy.stop();
    // Long enough for the pool to ping its connections before handing them out again: each
    // ping fails, and the pool connects anew.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let request = async {
        let started = Instant::now();
        (
            app.get("/api/autobot-users", &admin).await,
            started.elapsed(),
        )
    };
    let database_back = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        proxy.restart();
    };
    let ((answer, waited), ()) = tokio::join!(request, database_back);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        waited >= Duration::from_millis(800),
        "answered once the database was back: {waited:?}"
    );
}
