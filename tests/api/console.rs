//! The console (docs/api.md §8): in a real Chromium, by labels and button texts, from a first
//! sign-in to a working AutoBot user; and over HTTP, its security headers, cookies, CSRF and
//! sessions.
use reqwest::{Client, StatusCode};
use serde_json::json;

use crate::browser::Chrome;
use crate::helpers::*;

#[tokio::test]
async fn from_the_first_sign_in_to_a_working_autobot_user_in_a_browser() {
    let app = spawn_app().await;
    let chrome = Chrome::start(&app.address).await;
    // The bootstrap admin must choose a password before anything else.
    chrome.sign_in("admin", BOOTSTRAP_PASSWORD).await;
    assert_eq!(chrome.path().await, "/console/password");
    assert!(chrome.text().await.contains("Choose your own password"));
    chrome.fill("Current password", BOOTSTRAP_PASSWORD).await;
    chrome
        .fill(
            "New password (8–128 characters, not a common one)",
            ADMIN_PASSWORD,
        )
        .await;
    chrome.press("Change password").await;
    assert_eq!(chrome.path().await, "/console/");

    // An AutoBot user with a role.
    chrome.follow("AutoBot users").await;
    chrome.follow("Create a user").await;
    chrome
        .fill("Username (3–50 letters, digits, . _ -)", "carmen")
        .await;
    chrome.fill("E-mail", "carmen@example.org").await;
    chrome.fill("Display name", "Carmen Console").await;
    chrome.fill("Password", "Carmen-Console-Pass-1").await;
    chrome.check("manager", true).await;
    chrome.press("Create user").await;
    let page = chrome.text().await;
    assert!(
        page.contains("carmen@example.org") && page.contains("manager"),
        "{page}"
    );
    let carmen_path = chrome.path().await;
    // It signs in through the API, as AutoBot would.
    assert_eq!(
        app.login("autobot", "carmen", "Carmen-Console-Pass-1")
            .await
            .status,
        200
    );

    // A team with carmen in it.
    chrome.follow("Teams").await;
    chrome.fill("Team name", "Night shift").await;
    chrome.press("Create team").await;
    chrome.fill("Username", "carmen").await;
    chrome.press("Add member").await;
    assert!(chrome.text().await.contains("carmen"));

    // Deactivated, it no longer signs in.
    chrome.open(&carmen_path).await;
    chrome.press("Deactivate").await;
    assert!(chrome.text().await.contains("Activate"));
    assert_eq!(
        app.login("autobot", "carmen", "Carmen-Console-Pass-1")
            .await
            .status,
        401
    );

    // The audit page shows what was done.
    chrome.follow("Audit log").await;
    let log = chrome.text().await;
    for event in [
        "password_changed",
        "user_created",
        "team_member_added",
        "user_deactivated",
    ] {
        assert!(log.contains(event), "{event} in the audit page:\n{log}");
    }
    chrome.close().await;
}

#[tokio::test]
async fn mfa_enrolment_by_the_secret_shown_and_a_sign_in_with_a_code() {
    let app = spawn_app().await;
    let _ = app.admin().await;
    let chrome = Chrome::start(&app.address).await;
    chrome.sign_in("admin", ADMIN_PASSWORD).await;
    chrome.follow("My account (admin)").await;
    chrome.press("Set up two-factor authentication").await;
    let page = chrome.text().await;
    assert!(page.contains("Backup codes"), "{page}");
    let secret = page
        .lines()
        .find_map(|l| l.strip_prefix("Secret: "))
        .expect("the secret is shown")
        .trim()
        .to_owned();
    chrome
        .fill("A code from the app, to confirm", &totp_code(&secret))
        .await;
    chrome.press("Turn two-factor on").await;
    assert!(
        chrome
            .text()
            .await
            .contains("Two-factor authentication is on.")
    );
    chrome.press("Sign out").await;

    chrome.sign_in("admin", ADMIN_PASSWORD).await;
    assert!(chrome.text().await.contains("Enter the six-digit code"));
    // The code just used is spent: wait for the next one.
    let used = totp_code(&secret);
    let mut code = totp_code(&secret);
    while code == used {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        code = totp_code(&secret);
    }
    chrome.fill("Code", &code).await;
    chrome.press("Verify").await;
    assert_eq!(chrome.path().await, "/console/");
    chrome.close().await;
}

#[tokio::test]
async fn a_public_access_request_approved_by_a_manager() {
    let app = spawn_app().await;
    let _ = app.admin().await;
    let name = format!("mgr{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    app.create_user("slm", &name, "Manager-Pass-4242", &["manager"])
        .await;
    let chrome = Chrome::start(&app.address).await;
    chrome.open("/request-access").await;
    chrome
        .fill("Username (3–50 letters, digits, . _ -)", "newcomer")
        .await;
    chrome.fill("E-mail", "newcomer@example.org").await;
    chrome.fill("Full name", "New Comer").await;
    chrome
        .fill("Why you need access", "I run the night shift's reports")
        .await;
    chrome.press("Send request").await;
    assert!(chrome.text().await.contains("your request is waiting"));

    chrome.sign_in(&name, "Manager-Pass-4242").await;
    chrome.follow("Access requests").await;
    assert!(chrome.text().await.contains("newcomer@example.org"));
    chrome.press("Approve newcomer").await;
    let page = chrome.text().await;
    assert!(page.contains("Temporary password"), "{page}");
    let password = page
        .lines()
        .skip_while(|l| !l.contains("Temporary password"))
        .nth(1)
        .expect("the password shown")
        .trim()
        .to_owned();
    // The new user signs in with it and must change it.
    let login = app.login("autobot", "newcomer", &password).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["user"]["must_change_password"], true);
    chrome.close().await;
}

#[tokio::test]
async fn a_viewer_sees_no_button_it_cannot_use_and_a_crafted_post_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let target = app
        .create_user("autobot", "target-user", "Target-User-Pass-1", &["user"])
        .await;
    let name = format!("viewer{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    app.create_user("slm", &name, "Viewer-Pass-4242", &["viewer"])
        .await;
    let chrome = Chrome::start(&app.address).await;
    chrome.sign_in(&name, "Viewer-Pass-4242").await;
    chrome.follow("AutoBot users").await;
    assert!(!chrome.has_link("Create a user").await);
    chrome.follow("target-user").await;
    for button in ["Deactivate", "Delete user", "Save roles", "Unlock"] {
        assert!(!chrome.has_button(button).await, "{button}");
    }
    assert!(!chrome.has_link("SLM users").await && !chrome.has_link("Audit log").await);
    chrome.close().await;

    // The same viewer, posting the form by hand with a valid CSRF token: 403, nothing done.
    let (client, csrf) = console_session(&app, &name, "Viewer-Pass-4242").await;
    let answer = client
        .post(app.url(&format!("/console/autobot-users/{target}/deactivate")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let user = app
        .get(&format!("/api/autobot-users/{target}"), &admin)
        .await;
    assert_eq!(user.body["is_active"], true);
}

/// A signed-in console session over plain HTTP: the client (with its cookies) and the CSRF
/// token of its forms.
async fn console_session(app: &TestApp, username: &str, password: &str) -> (Client, String) {
    let client = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(app.url("/console/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let signed = client
        .post(app.url("/console/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    (client, csrf)
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the form")
        .to_owned()
}

#[tokio::test]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let app = spawn_app().await;
    let _ = app.admin().await;
    let (client, csrf) = console_session(&app, "admin", ADMIN_PASSWORD).await;
    fn form(token: Option<&str>) -> Vec<(&'static str, String)> {
        let mut fields: Vec<(&'static str, String)> = [
            ("username", "ghost-user"),
            ("email", "ghost@example.org"),
            ("password", "Ghost-User-Pass-1"),
            ("roles", "user"),
            ("is_active", "on"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
        if let Some(token) = token {
            fields.push(("csrf", token.to_owned()));
        }
        fields
    }
    for token in [None, Some("0000"), Some(&csrf[..csrf.len() - 1])] {
        let answer = client
            .post(app.url("/console/autobot-users"))
            .form(&form(token))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{token:?}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE username = 'ghost-user'")
        .fetch_one(&app.autobot_db)
        .await
        .unwrap();
    assert_eq!(users, 0);
    // With it, the same form works.
    let answer = client
        .post(app.url("/console/autobot-users"))
        .form(&form(Some(&csrf)))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_console_page_carries_the_security_headers_and_a_strict_cookie() {
    let app = spawn_app().await;
    let _ = app.admin().await;
    let (client, _) = console_session(&app, "admin", ADMIN_PASSWORD).await;
    for path in [
        "/console/",
        "/console/account",
        "/console/slm-users",
        "/console/autobot-users",
        "/console/autobot-users/new",
        "/console/teams",
        "/console/access-requests",
        "/console/audit",
        "/console/sso",
        "/console/password",
        "/request-access",
        "/console/login",
        "/console/autobot-users/not-a-uuid",
    ] {
        let answer = client.get(app.url(path)).send().await.unwrap();
        assert!(
            answer.status().as_u16() < 500,
            "{path}: {}",
            answer.status()
        );
        let headers = answer.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        let body = answer.text().await.unwrap();
        assert!(!body.contains("<script"), "{path} has a script");
    }

    // ENVIRONMENT=local (plain HTTP allowed): HttpOnly and SameSite=Strict, without Secure, so
    // without the __Host- prefix a browser would refuse.
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(app.url("/console/login")).send().await.unwrap();
    let key = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = csrf_of(&page.text().await.unwrap());
    let signed = client
        .post(app.url("/console/login"))
        .header("cookie", key)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let session = signed.headers()["set-cookie"].to_str().unwrap();
    assert!(session.starts_with("slm_console="), "{session}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    assert!(!session.contains("Secure"), "{session}");

    // A CSRF token made for another browser's key is refused.
    let other = client
        .post(app.url("/console/login"))
        .header("cookie", format!("slm_console_csrf={}", "x".repeat(43)))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn in_production_the_cookie_is_host_only_and_secure() {
    let app = spawn_app_with(Options {
        vars: vec![
            ("ENVIRONMENT", "prod".into()),
            ("METRICS_ADDR", "api".into()),
            (
                "MFA_ENCRYPTION_KEYS",
                "prod-test-mfa-key-0123456789abcdefghij".into(),
            ),
        ],
        ..Options::default()
    })
    .await;
    let _ = app.admin().await;
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(app.url("/console/login")).send().await.unwrap();
    let csrf_cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        csrf_cookie.starts_with("__Host-slm_console_csrf="),
        "{csrf_cookie}"
    );
    let key = csrf_cookie.split(';').next().unwrap().to_owned();
    let csrf = csrf_of(&page.text().await.unwrap());
    let signed = client
        .post(app.url("/console/login"))
        .header("cookie", key)
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let session = signed.headers()["set-cookie"].to_str().unwrap();
    assert!(session.starts_with("__Host-slm_console="), "{session}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    assert!(!session.contains("Domain"), "{session}");
}

#[tokio::test]
async fn a_session_ended_through_the_api_ends_the_console_one_at_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let name = format!("ops{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let id = app
        .create_user("slm", &name, "Ops-User-Pass-4242", &["manager"])
        .await;
    let (client, _) = console_session(&app, &name, "Ops-User-Pass-4242").await;
    let home = client.get(app.url("/console/")).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let revoked = app
        .post(
            &format!("/api/slm-users/{id}/revoke-sessions"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(revoked.status, 204);
    let home = client.get(app.url("/console/")).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(home.headers()["location"], "/console/login");
}
