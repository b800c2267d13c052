//! What hostile and busy clients found: logins of one account at once, credentials that outlive
//! a password change or a deactivation, connections that never finish their headers,
//! look-alike e-mails, timing, and one client's burst against everybody else's logins.
use std::time::{Duration, Instant};

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

/// `n` logins of `username` with `password` at once, spread over `replicas`; their statuses.
async fn logins_at_once(
    replicas: &[&TestApp],
    realm: &str,
    username: &str,
    password: impl Fn(usize) -> String,
    n: usize,
) -> Vec<u16> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let app = replicas[i % replicas.len()];
            let (client, url) = (
                app.client.clone(),
                app.url(&format!("/api/{realm}-auth/login")),
            );
            let body = json!({"username": username, "password": password(i)});
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

#[tokio::test]
async fn many_logins_of_one_account_at_once_never_refuse_its_right_password() {
    let dbs = new_database_names();
    let replica = || Options {
        vars: vec![
            ("LOCKOUT_THRESHOLD", "5".into()),
            ("PASSWORD_HASH_QUEUE", "200".into()),
            // A third of it bounds any wait: ample on a loaded test machine.
            ("REQUEST_TIMEOUT_SECONDS", "90".into()),
        ],
        databases: Some(dbs.clone()),
    };
    let one = spawn_app_with(replica()).await;
    let two = spawn_app_with(replica()).await;
    for realm in ["autobot", "slm"] {
        let name = format!("service-{realm}");
        one.create_user(realm, &name, "Sturdy-Pass-9000", &[]).await;
        // A service account used by twenty workers at the same moment, through two replicas.
        let right = logins_at_once(
            &[&one, &two],
            realm,
            &name,
            |_| "Sturdy-Pass-9000".into(),
            20,
        )
        .await;
        assert!(right.iter().all(|s| *s == 200), "{realm}: {right:?}");
        // A hundred wrong passwords at once: exactly the threshold reach the check.
        let wrong = logins_at_once(
            &[&one, &two],
            realm,
            &name,
            |i| format!("Wrong-{i}-xxxx"),
            100,
        )
        .await;
        assert!(wrong.iter().all(|s| *s == 401), "{realm}: {wrong:?}");
        let db = if realm == "slm" {
            &one.slm_db
        } else {
            &one.autobot_db
        };
        let checked: i64 = sqlx::query_scalar(
            r"SELECT count(*) FROM audit_logs
              WHERE action = 'login_failed' AND details->>'reason' = 'invalid_password'",
        )
        .fetch_one(db)
        .await
        .unwrap();
        assert_eq!(
            checked, 5,
            "{realm}: wrong passwords that reached the check"
        );
        let locked: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = 'account_locked'")
                .fetch_one(db)
                .await
                .unwrap();
        assert_eq!(locked, 1, "{realm}");
        assert_eq!(
            one.login(realm, &name, "Sturdy-Pass-9000").await.status,
            401,
            "{realm}: locked"
        );
    }
}

#[tokio::test]
async fn a_password_change_and_a_deactivation_end_api_keys_for_good() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for realm in ["slm", "autobot"] {
        let name = format!("keyed-{realm}");
        let id = app.create_user(realm, &name, "Sturdy-Pass-9000", &[]).await;
        let me = format!("/api/{realm}-auth/me");
        let key = |token: String| {
            let app = &app;
            let path = format!("/api/{realm}-auth/me/api-keys");
            async move {
                let made = app.post(&path, &token, json!({"name": "k"})).await;
                assert_eq!(made.status, 201, "{}", made.body);
                made.body["key"].as_str().unwrap().to_owned()
            }
        };
        // The owner changes the password: keys made before stop working.
        let token = app.token(realm, &name, "Sturdy-Pass-9000").await;
        let before = key(token.clone()).await;
        assert_eq!(app.get(&me, &before).await.status, 200);
        let changed = app
            .post(
                &format!("/api/{realm}-auth/me/password"),
                &token,
                json!({"current_password": "Sturdy-Pass-9000", "new_password": "Another-Pass-9001"}),
            )
            .await;
        assert_eq!(changed.status, 204, "{realm}: {}", changed.body);
        assert_eq!(
            app.get(&me, &before).await.status,
            401,
            "{realm}: self change"
        );
        // An admin sets the password: the same, writes included.
        let token = app.token(realm, &name, "Another-Pass-9001").await;
        let second = key(token).await;
        let reset = app
            .patch(
                &format!("/api/{realm}-users/{id}"),
                &admin,
                json!({"password": "Third-Pass-9002"}),
            )
            .await;
        assert_eq!(reset.status, 200, "{realm}: {}", reset.body);
        assert_eq!(
            app.get(&me, &second).await.status,
            401,
            "{realm}: admin reset"
        );
        let write = app
            .post(
                &format!("/api/{realm}-auth/me/api-keys"),
                &second,
                json!({"name": "after"}),
            )
            .await;
        assert_eq!(write.status, 401, "{realm}: {}", write.body);
        // Deactivated, reset, re-activated after a compromise: the attacker's key stays dead.
        let token = app.token(realm, &name, "Third-Pass-9002").await;
        let stolen = key(token).await;
        for body in [
            json!({"is_active": false}),
            json!({"password": "Fourth-Pass-9003"}),
            json!({"is_active": true}),
        ] {
            let answer = app
                .patch(&format!("/api/{realm}-users/{id}"), &admin, body)
                .await;
            assert_eq!(answer.status, 200, "{realm}: {}", answer.body);
        }
        assert_eq!(
            app.get(&me, &stolen).await.status,
            401,
            "{realm}: re-activated"
        );
        assert_eq!(
            app.login(realm, &name, "Fourth-Pass-9003").await.status,
            200,
            "{realm}: the account itself works again"
        );
    }
}

/// A TCP connection to `app` from the loopback address `source`.
async fn connect_from(app: &TestApp, source: [u8; 4]) -> tokio::net::TcpStream {
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

/// How long until the server closes `stream` (reads end), up to `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn connections_that_never_finish_their_headers_are_closed_and_cannot_crowd_out_others() {
    let app = spawn_app_with(Options {
        vars: vec![
            ("HEADER_READ_TIMEOUT_SECONDS", "2".into()),
            ("MAX_CONNECTIONS_PER_CLIENT", "40".into()),
        ],
        ..Options::default()
    })
    .await;
    // Nothing sent at all, and one header byte every half second: both closed in time.
    let mut silent = connect_from(&app, [127, 0, 0, 3]).await;
    let mut slow = connect_from(&app, [127, 0, 0, 3]).await;
    let dribble = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let started = Instant::now();
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
            .take(40)
        {
            // Once the server has closed, a write fails (at the latest the one after a reset).
            if slow.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        started.elapsed()
    });
    let waited = closed_within(&mut silent, Duration::from_secs(10)).await;
    assert!(
        waited.is_some_and(|w| w < Duration::from_secs(5)),
        "a silent connection stayed open: {waited:?}"
    );
    let dribbled = dribble.await.unwrap();
    assert!(
        dribbled < Duration::from_secs(6),
        "a header sent a byte at a time stayed open for {dribbled:?}"
    );

    // A flood of silent connections from one address: beyond its allowance they are closed at
    // once, and everybody else is answered meanwhile.
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(connect_from(&app, [127, 0, 0, 2]).await);
    }
    let mut refused = 0;
    for stream in flood.iter_mut() {
        if closed_within(stream, Duration::from_millis(20))
            .await
            .is_some()
        {
            refused += 1;
        }
    }
    assert!(refused >= 300 - 40, "only {refused} of 300 refused");
    let started = Instant::now();
    let health = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    app.admin().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?} during the flood",
        started.elapsed()
    );
}

#[tokio::test]
async fn look_alike_emails_are_refused_at_the_api_and_the_access_request_form() {
    // A user the AutoBot backend made before this server (the second replica) started: its
    // e-mail's skeleton is computed at start.
    let dbs = new_database_names();
    let first = spawn_app_with(Options {
        databases: Some(dbs.clone()),
        ..Options::default()
    })
    .await;
    sqlx::query(
        r"INSERT INTO users (id, org_id, email, username, is_active, is_verified, mfa_enabled,
                             is_platform_admin)
          SELECT gen_random_uuid(), id, 'ace@example.com', 'ace', true, true, false, false
          FROM organizations LIMIT 1",
    )
    .execute(&first.autobot_db)
    .await
    .unwrap();
    let app = spawn_app_with(Options {
        databases: Some(dbs.clone()),
        ..Options::default()
    })
    .await;
    let admin = app.admin().await;
    app.create_user("autobot", "carol", "Sturdy-Pass-9000", &["user"])
        .await; // carol@example.com
    let create = |email: &'static str| {
        let (app, admin) = (&app, admin.clone());
        async move {
            app.post(
                "/api/autobot-users",
                &admin,
                json!({"username": format!("u{}", email.len()), "email": email, "password": "Sturdy-Pass-9000"}),
            )
            .await
        }
    };
    let request = |email: &'static str| {
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/api/access-requests",
                None,
                Some(json!({"username": "requester", "email": email, "full_name": "R", "reason": "work"})),
            )
            .await
        }
    };
    // Mixed scripts: a Cyrillic а in the local part, or in the domain.
    for email in ["c\u{430}rol@example.com", "carol@ex\u{430}mple.com"] {
        for answer in [create(email).await, request(email).await] {
            assert_eq!(answer.status, 422, "{email}: {}", answer.body);
            assert_eq!(answer.locs(), [json!(["body", "email"])], "{email}");
        }
    }
    // A whole-script look-alike (Cyrillic а, с, е) of the backend user's address, once the
    // start-up sweep has computed its skeleton.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let swept: i64 = sqlx::query_scalar(
            r"SELECT count(*) FROM slm_server.email_skeletons s JOIN users u ON u.id = s.holder
              WHERE u.username = 'ace'",
        )
        .fetch_one(&app.autobot_db)
        .await
        .unwrap();
        if swept == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the start-up sweep did not run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cyrillic_ace = "\u{430}\u{441}\u{435}@example.com";
    let answer = create(cyrillic_ace).await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert_eq!(answer.detail(), "Email looks like an existing one");
    assert_eq!(request(cyrillic_ace).await.status, 409);
    // A look-alike of a pending request's address, at the API and at the form.
    let pending = request("coe@example.com").await;
    assert_eq!(pending.status, 202, "{}", pending.body);
    let cyrillic_coe = "\u{441}\u{43e}\u{435}@example.com";
    assert_eq!(create(cyrillic_coe).await.status, 409);
    let again = app
        .request(
            Method::POST,
            "/api/access-requests",
            None,
            Some(json!({"username": "other-requester", "email": cyrillic_coe, "full_name": "R", "reason": "x"})),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    // The same address in another case is a duplicate, not a look-alike.
    let dup = create("CAROL@example.com").await;
    assert_eq!(
        (dup.status.as_u16(), dup.detail().as_str()),
        (409, Some("Email already exists"))
    );
}

/// The median of durations.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn a_wrong_password_takes_as_long_whatever_the_stored_hash() {
    let app = spawn_app_with(Options {
        // A realm cost that dwarfs noise, yet keeps the test short.
        vars: vec![("AUTOBOT_BCRYPT_COST", "10".into())],
        ..Options::default()
    })
    .await;
    app.create_user("autobot", "own-hash", "Sturdy-Pass-9000", &["user"])
        .await;
    app.create_user("autobot", "imported", "Sturdy-Pass-9000", &["user"])
        .await;
    // An imported hash at bcrypt's cheapest cost, as another system may have made it.
    sqlx::query("UPDATE users SET password_hash = $1 WHERE username = 'imported'")
        .bind(bcrypt::hash("Sturdy-Pass-9000", 4).unwrap())
        .execute(&app.autobot_db)
        .await
        .unwrap();
    let time = |username: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            let answer = app.login("autobot", username, "Wrong-Pass-0000").await;
            assert_eq!(answer.status, 401);
            started.elapsed()
        }
    };
    let (mut own, mut imported) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        own.push(time("own-hash").await);
        imported.push(time("imported").await);
    }
    let (own, imported) = (median(own), median(imported));
    let ratio = imported.as_secs_f64() / own.as_secs_f64();
    // Without the dummy check, the cheap hash answers about 60 times sooner (cost 4 against
    // 10): a ratio near 0.02. Half is far from that whatever else the machine is doing (the
    // tests share it), and tells that the answer no longer gives the cheap hash away.
    assert!(
        ratio >= 0.5,
        "imported {imported:?} against the realm's own {own:?}"
    );
}

#[tokio::test]
async fn one_clients_burst_of_logins_does_not_hold_up_another_clients() {
    let app = spawn_app_with(Options {
        vars: vec![("AUTOBOT_BCRYPT_COST", "10".into())],
        ..Options::default()
    })
    .await;
    app.create_user("autobot", "bystander", "Sturdy-Pass-9000", &["user"])
        .await;
    let burst_client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = app.url("/api/autobot-auth/login");
    let burst: Vec<_> = (0..100)
        .map(|i| {
            let (client, url) = (burst_client.clone(), url.clone());
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({"username": format!("nobody-{i}"), "password": "Guess-0000-xx"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let login = app.login("autobot", "bystander", "Sturdy-Pass-9000").await;
    let waited = started.elapsed();
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(
        waited < Duration::from_secs(2),
        "the bystander waited {waited:?}"
    );
    for task in burst {
        let status = task.await.unwrap();
        assert!(status == 401 || status == 503, "{status}");
    }
}

/// A TCP proxy to PostgreSQL that can be stopped: its connections are closed and new ones
/// refused, as when the database host is down.
struct StoppableProxy {
    port: u16,
    tasks: tokio::task::JoinSet<()>,
}

impl StoppableProxy {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = pg_address();
        let mut tasks = tokio::task::JoinSet::new();
        let (connections, mut accepted) = tokio::sync::mpsc::unbounded_channel();
        tasks.spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let _ = connections.send(inbound);
            }
        });
        let forwarded = tokio::task::JoinSet::new();
        let mut proxy = Self { port, tasks };
        let mut forwarded = forwarded;
        proxy.tasks.spawn(async move {
            while let Some(mut inbound) = accepted.recv().await {
                let target = target.clone();
                forwarded.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        proxy
    }

    /// Closes every connection and the listening port.
    async fn stop(&mut self) {
        self.tasks.shutdown().await;
    }
}

#[tokio::test]
async fn a_refused_autobot_database_does_not_slow_the_slm_realm() {
    let mut proxy = StoppableProxy::start().await;
    let (slm_db, autobot_db) = new_database_names();
    let through_proxy = pg_base_via(proxy.port);
    let app = spawn_app_with(Options {
        vars: vec![
            (
                "AUTOBOT_DATABASE_URL",
                format!("{through_proxy}/{autobot_db}"),
            ),
            ("AUTOBOT_DB_ACQUIRE_TIMEOUT_MS", "1000".into()),
            ("AUTOBOT_DB_STATEMENT_TIMEOUT_MS", "1000".into()),
        ],
        databases: Some((slm_db, autobot_db)),
    })
    .await;
    let admin = app.admin().await;
    assert_eq!(app.get("/api/autobot-users", &admin).await.status, 200);
    proxy.stop().await;
    // The first request finds out; from then on everything knows at once.
    let first = app.get("/api/autobot-users", &admin).await;
    assert_eq!(first.status, 503, "{}", first.body);
    for _ in 0..3 {
        let started = Instant::now();
        let ready = app.request(Method::GET, "/readyz", None, None).await;
        assert_eq!(
            ready.body["checks"]["autobot_db"], "unavailable",
            "{}",
            ready.body
        );
        let audit = app.get("/api/audit", &admin).await;
        assert_eq!(audit.status, 200, "{}", audit.body);
        assert_eq!(audit.header("x-unavailable-realms"), Some("autobot"));
        let users = app.get("/api/autobot-users", &admin).await;
        assert_eq!(users.status, 503);
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "three requests took {took:?}"
        );
    }
}
