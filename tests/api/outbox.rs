//! Cache invalidation on Redis through the transactional outbox.
use std::time::Duration;

use crate::helpers::*;
use serde_json::{Value, json};

/// What one step published: (user_id, event) on the seed channel, and the user ids on the
/// AutoBot backend's RBAC channel.
async fn published(
    sub: &mut redis::aio::PubSub,
    rbac: &mut redis::aio::PubSub,
    n: usize,
) -> (Vec<(String, String)>, Vec<Value>) {
    let msgs = receive(sub, n, Duration::from_secs(3)).await;
    let mut events: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            assert_eq!(m["realm"], "autobot");
            assert!(m["id"].is_string() && m["occurred_at"].is_string(), "{m}");
            (
                m["user_id"].as_str().unwrap().to_owned(),
                m["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    events.sort();
    let mut rbac = receive(rbac, n, Duration::from_secs(3)).await;
    rbac.sort_by_key(|m| m["user_id"].as_str().map(str::to_owned));
    (events, rbac)
}

#[tokio::test]
async fn every_kind_of_autobot_change_reaches_both_caches() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut sub = app.subscribe().await;
    let mut rbac = app
        .subscribe_to(&app.var("RBAC_INVALIDATION_CHANNEL"))
        .await;
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut cache = redis.get_multiplexed_async_connection().await.unwrap();
    let cache_key = |id: &str| app.var("RBAC_CACHE_KEY").replace("{user_id}", id);

    let id = app
        .create_user("autobot", "cached", "Sturdy-Pass-9000", &["user"])
        .await;
    let other = app
        .create_user("autobot", "cached2", "Sturdy-Pass-9000", &["user"])
        .await;
    let (events, _) = published(&mut sub, &mut rbac, 2).await;
    let mut created = vec![
        (id.clone(), "user.created".to_owned()),
        (other.clone(), "user.created".to_owned()),
    ];
    created.sort();
    assert_eq!(events, created);

    let team = app
        .post("/api/autobot-teams", &admin, json!({"name": "T"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // (what, method, path, body, the users it changes, the event)
    type Step<'a> = (
        &'a str,
        reqwest::Method,
        String,
        Option<Value>,
        Vec<&'a String>,
        &'a str,
    );
    let steps: Vec<Step> = vec![
        (
            "update",
            reqwest::Method::PATCH,
            format!("/api/autobot-users/{id}"),
            Some(json!({"display_name": "C"})),
            vec![&id],
            "user.updated",
        ),
        (
            "roles",
            reqwest::Method::POST,
            format!("/api/autobot-users/{id}/roles"),
            Some(json!({"roles": ["manager"]})),
            vec![&id],
            "user.roles_changed",
        ),
        (
            "password",
            reqwest::Method::PATCH,
            format!("/api/autobot-users/{id}"),
            Some(json!({"password": "Another-Pass-9000"})),
            vec![&id],
            "user.password_changed",
        ),
        (
            "sessions",
            reqwest::Method::POST,
            format!("/api/autobot-users/{id}/revoke-sessions"),
            None,
            vec![&id],
            "user.sessions_revoked",
        ),
        (
            "team",
            reqwest::Method::PATCH,
            format!("/api/autobot-teams/{team}/members"),
            Some(json!({"add": [{"user_id": id}, {"user_id": other}]})),
            vec![&id, &other],
            "team.membership_changed",
        ),
        (
            "deactivation",
            reqwest::Method::PATCH,
            format!("/api/autobot-users/{other}"),
            Some(json!({"is_active": false})),
            vec![&other],
            "user.deactivated",
        ),
        (
            "delete",
            reqwest::Method::DELETE,
            format!("/api/autobot-users/{id}"),
            None,
            vec![&id],
            "user.deleted",
        ),
    ];
    for (what, method, path, body, users, event) in steps {
        for user in &users {
            let _: () = redis::AsyncCommands::set(&mut cache, cache_key(user), "[\"stale\"]")
                .await
                .unwrap();
        }
        let answer = app.request(method, &path, Some(&admin), body).await;
        assert!(
            answer.status.is_success(),
            "{what}: {} {}",
            answer.status,
            answer.body
        );
        let (events, rbac_msgs) = published(&mut sub, &mut rbac, users.len()).await;
        let mut expected: Vec<(String, String)> = users
            .iter()
            .map(|u| ((*u).clone(), event.to_owned()))
            .collect();
        expected.sort();
        assert_eq!(
            events, expected,
            "{what}: one message per user on the seed channel"
        );
        let mut expected_rbac: Vec<Value> = users.iter().map(|u| json!({"user_id": u})).collect();
        expected_rbac.sort_by_key(|m| m["user_id"].as_str().map(str::to_owned));
        assert_eq!(
            rbac_msgs, expected_rbac,
            "{what}: exactly {{\"user_id\"}} on the RBAC channel"
        );
        for user in &users {
            let cached: Option<String> = redis::AsyncCommands::get(&mut cache, cache_key(user))
                .await
                .unwrap();
            assert_eq!(
                cached, None,
                "{what}: the cached permissions of {user} are gone"
            );
        }
    }
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM slm_server.outbox")
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

#[tokio::test]
async fn each_cache_target_can_be_turned_off() {
    let app = spawn_app_with(Options {
        vars: vec![
            ("RBAC_INVALIDATION_CHANNEL", "off".into()),
            ("RBAC_CACHE_KEY", "off".into()),
        ],
        ..Options::default()
    })
    .await;
    let mut sub = app.subscribe().await;
    let mut rbac = app.subscribe_to("autobot:rbac:invalidate").await;
    let id = app
        .create_user("autobot", "seed-only", "Sturdy-Pass-9000", &["user"])
        .await;
    let msgs = receive(&mut sub, 1, Duration::from_secs(3)).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["user_id"], id.as_str());
    assert!(
        receive(&mut rbac, 1, Duration::from_millis(700))
            .await
            .is_empty(),
        "the RBAC channel is off, and not replaced by its default"
    );
}

#[tokio::test]
async fn writes_succeed_while_redis_is_down_and_nothing_is_lost() {
    let port = free_port();
    let redis = ThrowawayRedis::start(port, &[]);
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
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM slm_server.outbox")
        .fetch_one(&app.autobot_db)
        .await
        .unwrap();
    assert_eq!(pending, 5, "the backlog waits for Redis");
    let ready = app
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(ready.body["status"], "degraded");

    let redis = ThrowawayRedis::start(port, &[]);
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
                json!({"username": format!("rep{i}"), "email": format!("rep{i}@example.com"),
                       "password": "Sturdy-Pass-9000"}),
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

/// The relay's deletion of what it delivered commits without waiting for the disk (a crash can
/// only make it deliver again), while the change that queued the message commits durably; the
/// relay's setting ends with its transaction and never reaches the next change on the same
/// pooled connection.
#[tokio::test]
async fn only_the_relays_bookkeeping_commits_without_waiting_for_the_disk() {
    let app = spawn_app().await;
    // A trigger notes the commit mode of every transaction that queues or deletes a message.
    sqlx::raw_sql(
        r"CREATE TABLE public.outbox_commit_modes (n serial, op text, mode text);
          CREATE FUNCTION public.note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
              INSERT INTO public.outbox_commit_modes (op, mode)
              VALUES (TG_OP, current_setting('synchronous_commit'));
              RETURN NULL;
          END $$;
          CREATE TRIGGER note_commit_mode AFTER INSERT OR DELETE ON slm_server.outbox
              FOR EACH ROW EXECUTE FUNCTION public.note_commit_mode();",
    )
    .execute(&app.autobot_db)
    .await
    .unwrap();
    let mut sub = app.subscribe().await;
    for name in ["durable1", "durable2"] {
        app.create_user("autobot", name, "Sturdy-Pass-9000", &["user"])
            .await;
        assert_eq!(receive(&mut sub, 1, Duration::from_secs(3)).await.len(), 1);
        // The message is published before the deletion commits.
        let pending: i64 = polled(
            &app.autobot_db,
            "SELECT count(*) FROM slm_server.outbox",
            |n| *n == 0,
        )
        .await;
        assert_eq!(pending, 0, "the relay deleted what it delivered");
    }
    let modes: Vec<(String, String)> =
        sqlx::query_as("SELECT op, mode FROM public.outbox_commit_modes ORDER BY n")
            .fetch_all(&app.autobot_db)
            .await
            .unwrap();
    let expected = [("INSERT", "on"), ("DELETE", "off")].repeat(2);
    assert_eq!(
        modes,
        expected
            .iter()
            .map(|(op, mode)| (op.to_string(), mode.to_string()))
            .collect::<Vec<_>>()
    );
}
