//! Behaviour common to both realms' auth endpoints, tested in a loop over the realms.
use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

/// Creates a user of `realm` and returns (username, password).
async fn user_of(app: &TestApp, realm: &str) -> (String, String) {
    let role = if realm == "slm" { "manager" } else { "user" };
    let name = format!("{realm}-person");
    app.create_user(realm, &name, "Sturdy-Pass-9000", &[role])
        .await;
    (name, "Sturdy-Pass-9000".into())
}

#[tokio::test]
async fn login_me_logout_in_both_realms() {
    let app = spawn_app().await;
    for realm in ["slm", "autobot"] {
        let (name, pw) = user_of(&app, realm).await;
        let login = app.login(realm, &name, &pw).await;
        assert_eq!(login.status, 200, "{realm}: {}", login.body);
        assert_eq!(login.body["token_type"], "bearer", "{realm}");
        let ttl = if realm == "slm" { 86_400 } else { 1_800 };
        assert_eq!(login.body["expires_in"], ttl, "{realm}");
        assert!(login.body["refresh_token"].is_string(), "{realm}");
        assert_eq!(login.body["user"]["username"], name.as_str(), "{realm}");
        assert!(login.body["user"].get("password_hash").is_none(), "{realm}");
        let token = login.body["access_token"].as_str().unwrap().to_owned();

        let me = app.get(&format!("/api/{realm}-auth/me"), &token).await;
        assert_eq!(me.status, 200, "{realm}");
        assert!(
            me.body["permissions"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "{realm}: {}",
            me.body
        );

        let logout = app
            .request(
                Method::POST,
                &format!("/api/{realm}-auth/logout"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(logout.status, 204, "{realm}");
        let after = app.get(&format!("/api/{realm}-auth/me"), &token).await;
        assert_eq!(
            (after.status.as_u16(), after.detail()),
            (401, &json!("Could not validate credentials")),
            "{realm}: token dead after logout"
        );
    }
}

#[tokio::test]
async fn form_login_works_for_swagger() {
    let app = spawn_app().await;
    let form = app
        .client
        .post(app.url("/api/slm-auth/login"))
        .form(&[("username", "admin"), ("password", BOOTSTRAP_PASSWORD)])
        .send()
        .await
        .unwrap();
    let answer = Answer::from(form).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["user"]["must_change_password"], true,
        "bootstrap admin must change its password"
    );
}

#[tokio::test]
async fn failed_logins_look_identical() {
    let app = spawn_app().await;
    for realm in ["slm", "autobot"] {
        let (name, _) = user_of(&app, realm).await;
        let unknown = app.login(realm, "nobody-here", "Whatever-123456").await;
        let wrong = app.login(realm, &name, "Wrong-Password-1").await;
        assert_eq!(unknown.status, 401, "{realm}");
        assert_eq!(wrong.status, 401, "{realm}");
        assert_eq!(
            unknown.body,
            json!({"detail": "Invalid username or password"}),
            "{realm}"
        );
        assert_eq!(unknown.body, wrong.body, "{realm}");
    }
}

#[tokio::test]
async fn tokens_of_one_realm_fail_in_the_other() {
    let app = spawn_app().await;
    let (slm_name, pw) = user_of(&app, "slm").await;
    let (ab_name, _) = user_of(&app, "autobot").await;
    let slm_token = app.token("slm", &slm_name, &pw).await;
    let ab_token = app.token("autobot", &ab_name, &pw).await;
    let cross = app.get("/api/autobot-auth/me", &slm_token).await;
    assert_eq!(
        (cross.status.as_u16(), cross.detail()),
        (401, &json!("Could not validate credentials"))
    );
    let cross = app.get("/api/slm-auth/me", &ab_token).await;
    assert_eq!(cross.status, 401);
    let cross = app.get("/api/autobot-users", &ab_token).await;
    assert_eq!(
        cross.status, 401,
        "AutoBot users cannot use management endpoints"
    );
}

#[tokio::test]
async fn password_change_ends_other_sessions() {
    let app = spawn_app().await;
    for realm in ["slm", "autobot"] {
        let (name, pw) = user_of(&app, realm).await;
        let keep = app.token(realm, &name, &pw).await;
        let other = app.token(realm, &name, &pw).await;
        let wrong = app
            .post(
                &format!("/api/{realm}-auth/me/password"),
                &keep,
                json!({"current_password": "nope-nope-nope", "new_password": "Brand-New-Pass-77"}),
            )
            .await;
        assert_eq!(wrong.status, 400, "{realm}");
        let weak = app
            .post(
                &format!("/api/{realm}-auth/me/password"),
                &keep,
                json!({"current_password": pw, "new_password": "password1"}),
            )
            .await;
        assert_eq!(
            weak.locs(),
            vec![json!(["body", "new_password"])],
            "{realm}"
        );
        let ok = app
            .post(
                &format!("/api/{realm}-auth/me/password"),
                &keep,
                json!({"current_password": pw, "new_password": "Brand-New-Pass-77"}),
            )
            .await;
        assert_eq!(ok.status, 204, "{realm}: {}", ok.body);
        assert_eq!(
            app.get(&format!("/api/{realm}-auth/me"), &keep)
                .await
                .status,
            200,
            "{realm}: own session stays"
        );
        assert_eq!(
            app.get(&format!("/api/{realm}-auth/me"), &other)
                .await
                .status,
            401,
            "{realm}: other session ends"
        );
        assert_eq!(app.login(realm, &name, &pw).await.status, 401, "{realm}");
        assert_eq!(
            app.login(realm, &name, "Brand-New-Pass-77").await.status,
            200,
            "{realm}"
        );
    }
}

#[tokio::test]
async fn bootstrap_admin_must_change_its_password_first() {
    let app = spawn_app().await;
    let first = app.token("slm", "admin", BOOTSTRAP_PASSWORD).await;
    let blocked = app.get("/api/slm-users", &first).await;
    assert_eq!(blocked.status, 403);
    assert_eq!(app.get("/api/slm-auth/me", &first).await.status, 200);
    let admin = app.admin().await;
    assert_eq!(app.get("/api/slm-users", &admin).await.status, 200);
}
