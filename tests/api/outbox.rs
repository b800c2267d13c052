//! Cache invalidation on Redis through the transactional outbox.
use std::time::Duration;

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn each_autobot_change_publishes_one_message_per_user() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut sub = app.subscribe().await;
    let id = app
        .create_user("autobot", "cached", "Sturdy-Pass-9000", &["user"])
        .await;
    let msgs = receive(&mut sub, 1, Duration::from_secs(1)).await;
    assert_eq!(msgs.len(), 1, "within a second");
    assert_eq!(msgs[0]["user_id"], id.as_str());
    assert_eq!(msgs[0]["realm"], "autobot");
    assert_eq!(msgs[0]["event"], "user.created");
    assert!(msgs[0]["id"].is_string() && msgs[0]["occurred_at"].is_string());

    app.patch(
        &format!("/api/autobot-users/{id}"),
        &admin,
        json!({"full_name": "C"}),
    )
    .await;
    app.post(
        &format!("/api/autobot-users/{id}/roles"),
        &admin,
        json!({"roles": ["manager"]}),
    )
    .await;
    let other = app
        .create_user("autobot", "cached2", "Sturdy-Pass-9000", &["user"])
        .await;
    let team = app
        .post("/api/autobot-teams", &admin, json!({"name": "T"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.patch(
        &format!("/api/autobot-teams/{team}/members"),
        &admin,
        json!({"add": [{"user_id": id}, {"user_id": other}]}),
    )
    .await;
    app.delete(&format!("/api/autobot-users/{id}"), &admin)
        .await;
    let msgs = receive(&mut sub, 6, Duration::from_secs(3)).await;
    let events: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().unwrap().to_owned(),
                m["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(events[0], (id.clone(), "user.updated".to_owned()));
    assert_eq!(events[1], (id.clone(), "user.roles_changed".to_owned()));
    assert_eq!(events[2], (other.clone(), "user.created".to_owned()));
    let mut members = vec![events[3].clone(), events[4].clone()];
    members.sort();
    let mut expected = vec![
        (id.clone(), "team.membership_changed".to_owned()),
        (other.clone(), "team.membership_changed".to_owned()),
    ];
    expected.sort();
    assert_eq!(members, expected, "one message per member");
    assert_eq!(events[5], (id.clone(), "user.deleted".to_owned()));
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&app.autobot_db)
        .await
        .unwrap();
    assert_eq!(pending, 0, "delivered rows are pruned");

    // SLM realm changes publish nothing.
    app.create_user("slm", "quiet", "Sturdy-Pass-9000", &["viewer"])
        .await;
    assert!(
        receive(&mut sub, 1, Duration::from_millis(700))
            .await
            .is_empty()
    );
}

/// A redis-server of the test's own, on a free port.
struct ThrowawayRedis {
    port: u16,
    child: std::process::Child,
}

impl ThrowawayRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/dev installs it)");
        Self { port, child }
    }
    async fn wait_ready(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("throwaway redis did not start");
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn writes_succeed_while_redis_is_down_and_nothing_is_lost() {
    let port = free_port();
    let redis = ThrowawayRedis::start(port);
    redis.wait_ready().await;
    let app = spawn_app_with(Options {
        vars: vec![("REDIS_URL", format!("redis://127.0.0.1:{port}"))],
        ..Options::default()
    })
    .await;
    let admin = app.admin().await;
    drop(redis);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.create_user(
                "autobot",
                &format!("offline{i}"),
                "Sturdy-Pass-9000",
                &["user"],
            )
            .await,
        );
    }
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&app.autobot_db)
        .await
        .unwrap();
    assert_eq!(pending, 5, "the backlog waits for Redis");
    let ready = app
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(ready.body["status"], "degraded");

    let redis = ThrowawayRedis::start(port);
    redis.wait_ready().await;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe(&app.channel).await.unwrap();
    let msgs = receive(&mut sub, 5, Duration::from_secs(15)).await;
    let got: Vec<&str> = msgs
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "all delivered, in order"
    );
    let _ = admin;
}

#[tokio::test]
async fn two_replicas_relay_every_message_once_in_order() {
    let dbs = new_database_names();
    let channel = format!("test:{}:shared", uuid::Uuid::new_v4().simple());
    let replica = |dbs: (String, String)| Options {
        vars: vec![("INVALIDATION_CHANNEL", channel.clone())],
        databases: Some(dbs),
    };
    let one = spawn_app_with(replica(dbs.clone())).await;
    let two = spawn_app_with(replica(dbs.clone())).await;
    let admin_one = one.admin().await;
    let admin_two = two.token("slm", "admin", ADMIN_PASSWORD).await;
    let mut sub = one.subscribe().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (app, token) = if i % 2 == 0 {
            (&one, &admin_one)
        } else {
            (&two, &admin_two)
        };
        let created = app
            .post(
                "/api/autobot-users",
                token,
                json!({"username": format!("rep{i}"), "password": "Sturdy-Pass-9000"}),
            )
            .await;
        assert_eq!(created.status, 201);
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let msgs = receive(&mut sub, 21, Duration::from_secs(5)).await;
    let got: Vec<String> = msgs
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ids, "each message exactly once, in commit order");
}
