//! Sessions and credentials: refresh rotation, reuse detection, lockout, rate limits, API keys, MFA.
use std::time::Duration;

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn refresh_rotation_and_reuse_detection_in_both_realms() {
    let app = spawn_app().await;
    for realm in ["slm", "autobot"] {
        let role = if realm == "slm" { "viewer" } else { "user" };
        app.create_user(realm, &format!("{realm}-r"), "Sturdy-Pass-9000", &[role])
            .await;
        let login = app
            .login(realm, &format!("{realm}-r"), "Sturdy-Pass-9000")
            .await;
        let first = login.body["refresh_token"].as_str().unwrap().to_owned();
        let path = format!("/api/{realm}-auth/refresh");
        let rotated = app
            .request(
                Method::POST,
                &path,
                None,
                Some(json!({"refresh_token": first})),
            )
            .await;
        assert_eq!(rotated.status, 200, "{realm}: {}", rotated.body);
        let second = rotated.body["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(first, second, "{realm}");
        let access = rotated.body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(
            app.get(&format!("/api/{realm}-auth/me"), &access)
                .await
                .status,
            200
        );

        let reuse = app
            .request(
                Method::POST,
                &path,
                None,
                Some(json!({"refresh_token": first})),
            )
            .await;
        assert_eq!(reuse.status, 401, "{realm}: used token refused");
        let after = app
            .request(
                Method::POST,
                &path,
                None,
                Some(json!({"refresh_token": second})),
            )
            .await;
        assert_eq!(
            after.status, 401,
            "{realm}: reuse revoked the whole session"
        );
        assert_eq!(
            app.get(&format!("/api/{realm}-auth/me"), &access)
                .await
                .status,
            401,
            "{realm}: access token died with the session"
        );
        let admin = app.admin().await;
        let audit = app
            .get("/api/audit?event_type=token_reuse_detected", &admin)
            .await;
        assert!(
            audit
                .body
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["realm"] == realm),
            "{realm}: audited"
        );
        let garbage = app
            .request(
                Method::POST,
                &path,
                None,
                Some(json!({"refresh_token": "nonsense"})),
            )
            .await;
        assert_eq!(garbage.status, 401);
    }
}

#[tokio::test]
async fn logout_ends_the_refresh_token_too() {
    let app = spawn_app().await;
    app.create_user("slm", "leaver", "Sturdy-Pass-9000", &["viewer"])
        .await;
    let login = app.login("slm", "leaver", "Sturdy-Pass-9000").await;
    let access = login.body["access_token"].as_str().unwrap();
    let refresh = login.body["refresh_token"].as_str().unwrap();
    app.request(Method::POST, "/api/slm-auth/logout", Some(access), None)
        .await;
    let answer = app
        .request(
            Method::POST,
            "/api/slm-auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn hundred_parallel_wrong_passwords_lock_after_exactly_the_threshold() {
    let app = spawn_app_with(Options {
        vars: vec![
            ("LOCKOUT_THRESHOLD", "5".into()),
            ("PASSWORD_HASH_QUEUE", "200".into()),
        ],
        ..Options::default()
    })
    .await;
    let id = app
        .create_user("autobot", "target", "Sturdy-Pass-9000", &["user"])
        .await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = app.client.clone();
        let url = app.url("/api/autobot-auth/login");
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"username": "target", "password": format!("Wrong-{i}-xxxx")}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 401);
        assert_eq!(body, r#"{"detail":"Invalid username or password"}"#);
    }
    let checked: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE event_type = 'login_failure' AND detail->>'reason' = 'invalid_password'")
        .fetch_one(&app.autobot_db).await.unwrap();
    assert_eq!(
        checked, 5,
        "only the threshold's attempts reached the password check"
    );
    let locked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE event_type = 'account_locked'")
            .fetch_one(&app.autobot_db)
            .await
            .unwrap();
    assert_eq!(locked, 1);
    let right = app.login("autobot", "target", "Sturdy-Pass-9000").await;
    assert_eq!(
        right.body,
        json!({"detail": "Invalid username or password"}),
        "locked looks like a wrong password"
    );
    let admin = app.admin().await;
    assert_eq!(
        app.request(
            Method::POST,
            &format!("/api/autobot-users/{id}/unlock"),
            Some(&admin),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        app.login("autobot", "target", "Sturdy-Pass-9000")
            .await
            .status,
        200,
        "unlocked"
    );
}

#[tokio::test]
async fn login_rate_limit_holds_across_replicas_and_without_redis() {
    let (slm, autobot) = new_database_names();
    let prefix = format!("rl-{}:", uuid::Uuid::new_v4().simple());
    let shared = |dbs: (String, String)| Options {
        vars: vec![
            ("LOGIN_RATE_LIMIT_PER_MINUTE", "3".into()),
            ("REDIS_KEY_PREFIX", prefix.clone()),
        ],
        databases: Some(dbs),
    };
    let one = spawn_app_with(shared((slm.clone(), autobot.clone()))).await;
    let two = spawn_app_with(shared((slm.clone(), autobot.clone()))).await;
    let mut statuses = Vec::new();
    for app in [&one, &two, &one, &two] {
        statuses.push(app.login("slm", "nobody", "Whatever-123456").await);
    }
    assert_eq!(
        statuses
            .iter()
            .map(|a| a.status.as_u16())
            .collect::<Vec<_>>(),
        vec![401, 401, 401, 429]
    );
    assert!(statuses[3].header("retry-after").is_some());

    // Redis unreachable: the limit still applies, in process.
    let offline = spawn_app_with(Options {
        vars: vec![
            ("LOGIN_RATE_LIMIT_PER_MINUTE", "2".into()),
            ("REDIS_URL", "redis://127.0.0.1:1".into()),
        ],
        ..Options::default()
    })
    .await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            offline
                .login("slm", "nobody", "Whatever-123456")
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(codes, vec![401, 401, 429]);
}

#[tokio::test]
async fn api_key_lifecycle() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let created = app
        .post(
            "/api/slm-auth/me/api-keys",
            &admin,
            json!({"name": "ci", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("slmk_") && key.len() > 45, "{key}");
    assert!(key.starts_with(created.body["prefix"].as_str().unwrap()));
    let listed = app.get("/api/slm-auth/me/api-keys", &admin).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert!(listed.body[0].get("key").is_none(), "never shown again");
    assert_eq!(
        app.get("/api/slm-users", &key).await.status,
        200,
        "a key works wherever a JWT does"
    );
    assert_eq!(
        app.get("/api/autobot-auth/me", &key).await.status,
        401,
        "not in the other realm"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys")
            .fetch_one(&app.slm_db)
            .await
            .unwrap();
    assert!(used.is_some(), "last_used_at recorded");
    let kid = created.body["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/slm-auth/me/api-keys/{kid}"), &admin)
            .await
            .status,
        204
    );
    assert_eq!(
        app.get("/api/slm-users", &key).await.status,
        401,
        "revoked at once"
    );
    assert_eq!(
        app.delete(&format!("/api/slm-auth/me/api-keys/{kid}"), &admin)
            .await
            .status,
        404
    );

    // Admin-issued keys for an AutoBot user.
    let uid = app
        .create_user("autobot", "bot-owner", "Sturdy-Pass-9000", &["user"])
        .await;
    let issued = app
        .post(
            &format!("/api/autobot-users/{uid}/api-keys"),
            &admin,
            json!({"name": "tool"}),
        )
        .await;
    assert_eq!(issued.status, 201);
    let bot_key = issued.body["key"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/autobot-auth/me", &bot_key).await.body["username"],
        "bot-owner"
    );
    app.request(
        Method::POST,
        &format!("/api/autobot-users/{uid}/revoke-sessions"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        app.get("/api/autobot-auth/me", &bot_key).await.status,
        401,
        "revoke-sessions ends keys too"
    );
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM api_keys LIMIT 1")
        .fetch_one(&app.autobot_db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32, "stored as a MAC, not the key");
}

fn code_for(secret: &str) -> String {
    let totp = slm_server::auth::mfa::totp(secret, "x", "SLM").unwrap();
    totp.generate_current().to_string()
}

#[tokio::test]
async fn totp_mfa_setup_login_replay_and_recovery() {
    let app = spawn_app().await;
    app.create_user("slm", "mfa-user", "Sturdy-Pass-9000", &["viewer"])
        .await;
    let token = app.token("slm", "mfa-user", "Sturdy-Pass-9000").await;
    let setup = app
        .request(
            Method::POST,
            "/api/slm-auth/me/mfa/setup",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(setup.status, 200);
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    assert!(
        setup.body["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert_eq!(
        app.post(
            "/api/slm-auth/me/mfa/enable",
            &token,
            json!({"code": "000000"})
        )
        .await
        .status,
        400
    );
    let enabled = app
        .post(
            "/api/slm-auth/me/mfa/enable",
            &token,
            json!({"code": code_for(&secret)}),
        )
        .await;
    assert_eq!(enabled.status, 200, "{}", enabled.body);
    let recovery: Vec<String> =
        serde_json::from_value(enabled.body["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT mfa_secret_encrypted FROM users WHERE username = 'mfa-user'")
            .fetch_one(&app.slm_db)
            .await
            .unwrap();
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "encrypted at rest"
    );

    let no_code = app.login("slm", "mfa-user", "Sturdy-Pass-9000").await;
    assert_eq!(
        (no_code.status.as_u16(), no_code.detail()),
        (401, &json!("MFA code required"))
    );
    // The code used to enable is spent: replay within its step is refused.
    let replay = app.request(Method::POST, "/api/slm-auth/login", None, Some(json!({"username": "mfa-user", "password": "Sturdy-Pass-9000", "totp_code": code_for(&secret)}))).await;
    assert_eq!(replay.status, 401, "no replay within a step");
    let with_recovery = app.request(Method::POST, "/api/slm-auth/login", None, Some(json!({"username": "mfa-user", "password": "Sturdy-Pass-9000", "totp_code": recovery[0]}))).await;
    assert_eq!(with_recovery.status, 200, "{}", with_recovery.body);
    let again = app.request(Method::POST, "/api/slm-auth/login", None, Some(json!({"username": "mfa-user", "password": "Sturdy-Pass-9000", "totp_code": recovery[0]}))).await;
    assert_eq!(again.status, 401, "recovery codes are single use");
    let token = with_recovery.body["access_token"].as_str().unwrap();
    assert_eq!(
        app.post(
            "/api/slm-auth/me/mfa/disable",
            token,
            json!({"code": recovery[1]})
        )
        .await
        .status,
        204
    );
    assert_eq!(
        app.login("slm", "mfa-user", "Sturdy-Pass-9000")
            .await
            .status,
        200,
        "MFA off"
    );
}

#[tokio::test]
async fn a_role_change_ends_sessions_and_keys_see_the_new_roles() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for (realm, role, added) in [("slm", "viewer", "manager"), ("autobot", "user", "manager")] {
        let name = format!("{realm}-promoted");
        let id = app
            .create_user(realm, &name, "Sturdy-Pass-9000", &[role])
            .await;
        let login = app.login(realm, &name, "Sturdy-Pass-9000").await;
        let access = login.body["access_token"].as_str().unwrap().to_owned();
        let refresh = login.body["refresh_token"].as_str().unwrap().to_owned();
        let key = app
            .post(
                &format!("/api/{realm}-auth/me/api-keys"),
                &access,
                json!({"name": "tool"}),
            )
            .await
            .body["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let me = format!("/api/{realm}-auth/me");

        let granted = app
            .post(
                &format!("/api/{realm}-users/{id}/roles"),
                &admin,
                json!({"roles": [added]}),
            )
            .await;
        assert_eq!(granted.status, 200, "{}", granted.body);
        assert_eq!(app.get(&me, &access).await.status, 401, "{realm}: access");
        let refreshed = app
            .request(
                Method::POST,
                &format!("/api/{realm}-auth/refresh"),
                None,
                Some(json!({"refresh_token": refresh})),
            )
            .await;
        assert_eq!(refreshed.status, 401, "{realm}: refresh");
        let via_key = app.get(&me, &key).await;
        assert_eq!(via_key.status, 200, "{realm}: the key stays");
        assert!(
            via_key.body["roles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == added),
            "{realm}: the key sees the new role: {}",
            via_key.body
        );

        // Removing a role ends the sessions opened since, too.
        let access = app.token(realm, &name, "Sturdy-Pass-9000").await;
        let removed = app
            .delete(&format!("/api/{realm}-users/{id}/roles/{added}"), &admin)
            .await;
        assert_eq!(removed.status, 200, "{}", removed.body);
        assert_eq!(app.get(&me, &access).await.status, 401, "{realm}: removed");
        assert_eq!(app.get(&me, &key).await.body["roles"], json!([role]));

        // So does `is_admin`; a PATCH that changes no role ends nothing.
        let access = app.token(realm, &name, "Sturdy-Pass-9000").await;
        let patched = app
            .patch(
                &format!("/api/{realm}-users/{id}"),
                &admin,
                json!({"full_name": "Still The Same"}),
            )
            .await;
        assert_eq!(patched.status, 200);
        assert_eq!(
            app.get(&me, &access).await.status,
            200,
            "{realm}: no change"
        );
        let promoted = app
            .patch(
                &format!("/api/{realm}-users/{id}"),
                &admin,
                json!({"is_admin": true}),
            )
            .await;
        assert_eq!(promoted.status, 200, "{}", promoted.body);
        assert_eq!(app.get(&me, &access).await.status, 401, "{realm}: is_admin");
    }
    // The admin who made the changes is still signed in.
    assert_eq!(app.get("/api/slm-auth/me", &admin).await.status, 200);
}

#[tokio::test]
async fn revocation_on_one_replica_holds_on_the_other_at_once() {
    let dbs = new_database_names();
    let replica = || Options {
        vars: vec![],
        databases: Some(dbs.clone()),
    };
    let one = spawn_app_with(replica()).await;
    let two = spawn_app_with(replica()).await;
    let admin = one.admin().await;
    let id = one
        .create_user("autobot", "roaming", "Sturdy-Pass-9000", &["user"])
        .await;
    let me = "/api/autobot-auth/me";

    // Logout through one replica ends the session on the other.
    let token = one.token("autobot", "roaming", "Sturdy-Pass-9000").await;
    assert_eq!(two.get(me, &token).await.status, 200);
    assert_eq!(
        one.request(Method::POST, "/api/autobot-auth/logout", Some(&token), None)
            .await
            .status,
        204
    );
    assert_eq!(two.get(me, &token).await.status, 401, "logout");

    // So do revoke-sessions and deactivation, for tokens and API keys alike.
    let token = two.token("autobot", "roaming", "Sturdy-Pass-9000").await;
    let key = two
        .post(
            "/api/autobot-auth/me/api-keys",
            &token,
            json!({"name": "k"}),
        )
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(two.get(me, &key).await.status, 200);
    one.request(
        Method::POST,
        &format!("/api/autobot-users/{id}/revoke-sessions"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(two.get(me, &token).await.status, 401, "revoke-sessions");
    assert_eq!(two.get(me, &key).await.status, 401, "revoke-sessions: key");

    let token = two.token("autobot", "roaming", "Sturdy-Pass-9000").await;
    let patched = one
        .patch(
            &format!("/api/autobot-users/{id}"),
            &admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(two.get(me, &token).await.status, 401, "deactivation");
}
