//! SSO against real identity providers started by the tests (docs/api.md §7): an OpenID
//! provider, an LDAP server, and a stand-in of GitHub. Everything goes through HTTP, as the
//! dashboard and a browser would.
use serde_json::{Value, json};

use crate::helpers::*;
use crate::idp::*;

/// The callback URL of the SLM realm on the test server.
fn callback(app: &TestApp) -> String {
    app.url("/api/auth/sso/callback")
}

fn accounts() -> Value {
    json!({
        "alice": {"email": "alice@example.org", "email_verified": true,
                  "preferred_username": "alice", "name": "Alice Idp", "groups": ["ops", "staff"]},
        "bert": {"email": "bert@example.org", "email_verified": true,
                 "preferred_username": "bert", "name": "Bert Idp", "groups": []}
    })
}

/// Creates an OIDC provider of `idp` on the test server; its id.
async fn oidc_provider(app: &TestApp, admin: &str, idp: &OidcProvider, extra: Value) -> String {
    let mut body = json!({
        "provider_type": "oidc",
        "name": "Company IdP",
        "config": {"issuer": idp.issuer, "client_id": idp.client_id,
                   "client_secret": idp.client_secret},
        "allow_user_creation": true,
        "default_role": "user",
        "group_mapping": {"ops": "manager"},
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let created = app.post("/api/sso-providers", admin, body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

/// Starts a sign-in in `browser`; the provider's authorization URL.
async fn start(app: &TestApp, browser: &Browser, provider: &str) -> String {
    let answer = browser
        .client
        .get(app.url(&format!("/api/auth/sso/{provider}/login")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let cookie = answer
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["provider_id"], provider);
    let url = body["redirect_url"].as_str().unwrap().to_owned();
    for part in [
        "state=",
        "nonce=",
        "code_challenge=",
        "code_challenge_method=S256",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    url
}

/// A whole sign-in of `login` at the provider; where the server sends the browser at last.
async fn sign_in(app: &TestApp, browser: &Browser, provider: &str, login: &str) -> String {
    let authorization = start(app, browser, provider).await;
    let back = browser
        .sign_in_at_provider(&authorization, login, &callback(app))
        .await;
    let (status, location, headers) = browser.redirect_of(&back).await;
    assert_eq!(status, 302);
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    location
}

fn token_of(location: &str) -> String {
    location
        .strip_prefix("/sso-callback?token=")
        .unwrap_or_else(|| panic!("a token in {location}"))
        .to_owned()
}

#[tokio::test]
async fn an_openid_sign_in_creates_the_user_maps_its_groups_and_reuses_the_link() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let idp = OidcProvider::start(&[callback(&app)], accounts());
    let provider = oidc_provider(&app, &admin, &idp, json!({})).await;

    // The login page's list: a bare array of active providers.
    let listed = app.get("/api/auth/sso/providers", "").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body[0]["id"], provider.as_str());
    assert_eq!(listed.body[0]["provider_type"], "oidc");

    let browser = Browser::new();
    let location = sign_in(&app, &browser, &provider, "alice").await;
    let token = token_of(&location);
    let me = app.get("/api/auth/me", &token).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["username"], "alice");
    assert_eq!(me.body["email"], "alice@example.org");
    // `user` means the SLM realm's least privilege, plus what the `ops` group maps to.
    let mut roles = role_names(&me.body);
    roles.sort();
    assert_eq!(roles, ["manager", "viewer"]);
    let alice = me.body["id"].as_str().unwrap().to_owned();

    // A second sign-in reuses the link: no other user, a second sso_login.
    let again = token_of(&sign_in(&app, &Browser::new(), &provider, "alice").await);
    assert_eq!(
        app.get("/api/auth/me", &again).await.body["id"],
        alice.as_str()
    );
    let users: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE lower(email) = 'alice@example.org'")
            .fetch_one(&app.slm_db)
            .await
            .unwrap();
    assert_eq!(users, 1);
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT action::text FROM audit_logs WHERE resource_id = $1::uuid ORDER BY created_at",
    )
    .bind(&alice)
    .fetch_all(&app.slm_db)
    .await
    .unwrap();
    for expected in ["user_created", "sso_linked", "sso_login"] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected} in {events:?}"
        );
    }
    assert_eq!(events.iter().filter(|e| *e == "sso_login").count(), 2);
    assert_eq!(events.iter().filter(|e| *e == "sso_linked").count(), 1);

    // The link is the AutoBot model's.
    let linked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM user_sso_links WHERE provider_id = $1::uuid AND user_id = $2::uuid",
    )
    .bind(&provider)
    .bind(&alice)
    .fetch_one(&app.slm_db)
    .await
    .unwrap();
    assert_eq!(linked, 1);
}

#[tokio::test]
async fn openid_sign_ins_that_must_fail_land_on_the_login_page() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let idp = OidcProvider::start(&[callback(&app)], accounts());
    let provider = oidc_provider(&app, &admin, &idp, json!({})).await;
    let failed = "/login?error=sso_failed";

    // A replayed state: the same redirect back twice.
    let browser = Browser::new();
    let authorization = start(&app, &browser, &provider).await;
    let back = browser
        .sign_in_at_provider(&authorization, "bert", &callback(&app))
        .await;
    let (_, first, _) = browser.redirect_of(&back).await;
    assert!(first.starts_with("/sso-callback?token="), "{first}");
    let (status, second, _) = browser.redirect_of(&back).await;
    assert_eq!((status.as_u16(), second.as_str()), (302, failed));

    // The redirect back in another browser than the one that started the sign-in.
    let browser = Browser::new();
    let authorization = start(&app, &browser, &provider).await;
    let back = browser
        .sign_in_at_provider(&authorization, "bert", &callback(&app))
        .await;
    assert_eq!(Browser::new().redirect_of(&back).await.1, failed);

    // A nonce changed on the way to the provider: the ID token carries another one.
    let browser = Browser::new();
    let authorization = start(&app, &browser, &provider).await;
    let tampered = authorization.replace("nonce=", "nonce=tampered");
    let back = browser
        .sign_in_at_provider(&tampered, "bert", &callback(&app))
        .await;
    assert_eq!(browser.redirect_of(&back).await.1, failed);

    // An ID token signed by a key the issuer does not publish.
    idp.sign_with_another_key(true).await;
    let browser = Browser::new();
    let authorization = start(&app, &browser, &provider).await;
    let back = browser
        .sign_in_at_provider(&authorization, "bert", &callback(&app))
        .await;
    assert_eq!(browser.redirect_of(&back).await.1, failed);
    idp.sign_with_another_key(false).await;

    // The provider's own refusal.
    let (_, refused, _) = Browser::new()
        .redirect_of(&app.url("/api/auth/sso/callback?error=access_denied&state=x"))
        .await;
    assert_eq!(refused, failed);

    // A deactivated user cannot sign in by SSO.
    let bert = sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM users WHERE username = 'bert'")
        .fetch_one(&app.slm_db)
        .await
        .unwrap();
    let off = app
        .patch(
            &format!("/api/slm-users/{bert}"),
            &admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(
        sign_in(&app, &Browser::new(), &provider, "bert").await,
        failed
    );

    // Each refusal is audited as login_failed with the provider named.
    let refusals: Vec<Value> = sqlx::query_scalar(
        "SELECT details FROM audit_logs WHERE action = 'login_failed' ORDER BY created_at",
    )
    .fetch_all(&app.slm_db)
    .await
    .unwrap();
    assert!(refusals.len() >= 3, "{refusals:?}");
    assert!(
        refusals.iter().all(|d| d["provider"] == "Company IdP"),
        "{refusals:?}"
    );

    // An inactive provider cannot be started: 404.
    let off = app
        .patch(
            &format!("/api/sso-providers/{provider}"),
            &admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(off.status, 200);
    let answer = app
        .get(&format!("/api/auth/sso/{provider}/login"), "")
        .await;
    assert_eq!(answer.status, 404);
}

#[tokio::test]
async fn providers_are_managed_by_slm_admins_with_secrets_never_shown() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    // The dashboard's form: only a client id and secret.
    let created = app
        .post(
            "/api/sso-providers",
            &admin,
            json!({"provider_type": "microsoft_entra", "name": "Entra",
                   "config": {"client_id": "app-id", "client_secret": "entra-secret-Q7x"},
                   "is_active": true, "allow_user_creation": true, "default_role": "user"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["config"]["client_secret"], "********");
    assert_eq!(created.body["default_role"], "viewer");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let stored: Value = sqlx::query_scalar("SELECT config FROM sso_providers WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.slm_db)
        .await
        .unwrap();
    assert!(
        !stored.to_string().contains("entra-secret-Q7x"),
        "sealed at rest: {stored}"
    );

    for answer in [
        app.get("/api/sso-providers", &admin).await,
        app.get(&format!("/api/sso-providers/{id}"), &admin).await,
    ] {
        assert_eq!(answer.status, 200);
        assert!(!answer.body.to_string().contains("entra-secret-Q7x"));
    }
    // "********" keeps the stored secret; a new name is taken.
    let renamed = app
        .patch(
            &format!("/api/sso-providers/{id}"),
            &admin,
            json!({"name": "Entra ID", "config": {"client_id": "app-id", "client_secret": "********"}}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    let kept: Value = sqlx::query_scalar("SELECT config FROM sso_providers WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.slm_db)
        .await
        .unwrap();
    assert_eq!(kept["client_secret"], stored["client_secret"]);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE action = 'settings_updated' AND resource_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&app.slm_db)
    .await
    .unwrap();
    assert_eq!(audited, 2);

    // Types this server does not speak, missing and malformed keys: 422 where they are, and
    // never the secret sent.
    let saml = app
        .post(
            "/api/sso-providers",
            &admin,
            json!({"provider_type": "saml", "name": "X", "config": {}}),
        )
        .await;
    assert_eq!(saml.status, 422);
    assert_eq!(saml.locs(), [json!(["body", "provider_type"])]);
    let bad = app
        .post(
            "/api/sso-providers",
            &admin,
            json!({"provider_type": "oidc", "name": "X",
                   "config": {"client_secret": "never-shown-5Tz", "issuer": "ftp//x"}}),
        )
        .await;
    assert_eq!(bad.status, 422);
    let locs = bad.locs();
    assert!(
        locs.contains(&json!(["body", "config", "issuer"])),
        "{locs:?}"
    );
    assert!(
        locs.contains(&json!(["body", "config", "client_id"])),
        "{locs:?}"
    );
    assert!(!bad.body.to_string().contains("never-shown-5Tz"));

    // A manager may not.
    let (_, manager) = app.slm_user("manager").await;
    assert_eq!(app.get("/api/sso-providers", &manager).await.status, 403);

    // The test of a provider that cannot be reached is an answer, not an error.
    let tested = app
        .get(&format!("/api/sso-providers/{id}/test"), &admin)
        .await;
    assert_eq!(tested.status, 200);
    assert!(tested.body["success"].is_boolean());

    assert_eq!(
        app.delete(&format!("/api/sso-providers/{id}"), &admin)
            .await
            .status,
        204
    );
    assert_eq!(
        app.get(&format!("/api/sso-providers/{id}"), &admin)
            .await
            .status,
        404
    );
}

/// An LDAP provider of `directory` on the test server.
async fn ldap_provider(app: &TestApp, admin: &str, directory: &Directory, extra: Value) -> String {
    let mut config = json!({
        "server_uri": directory.uri(),
        "ca_cert": directory.ca_pem,
        "base_dn": "ou=people,dc=example,dc=org",
        "bind_dn": DIRECTORY_READER,
        "bind_password": DIRECTORY_READER_PASSWORD,
        "group_base_dn": "ou=groups,dc=example,dc=org",
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let created = app
        .post(
            "/api/sso-providers",
            admin,
            json!({"provider_type": "ldap", "name": "Directory", "config": config,
                   "allow_user_creation": true, "group_mapping": {"fleet-ops": "manager"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["config"]["bind_password"], "********");
    created.body["id"].as_str().unwrap().to_owned()
}

async fn ldap_login(app: &TestApp, provider: &str, username: &str, password: &str) -> Answer {
    app.post(
        "/api/auth/sso/ldap/login",
        "",
        json!({"provider_id": provider, "username": username, "password": password}),
    )
    .await
}

#[tokio::test]
async fn ldap_sign_in_over_starttls_with_groups_and_refusals_alike() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let directory = Directory::start().await;
    let provider = ldap_provider(&app, &admin, &directory, json!({})).await;

    let tested = app
        .get(&format!("/api/sso-providers/{provider}/test"), &admin)
        .await;
    assert_eq!(tested.body["success"], true, "{}", tested.body);

    let signed = ldap_login(&app, &provider, "omar", "omar-pw-5Kd1").await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    assert_eq!(signed.body["token_type"], "bearer");
    let me = app
        .get(
            "/api/auth/me",
            signed.body["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(me.body["username"], "omar");
    let mut roles = role_names(&me.body);
    roles.sort();
    assert_eq!(roles, ["manager", "viewer"], "fleet-ops maps to manager");

    // A wrong password, an unknown user, a user outside the search base: the same 401.
    for (username, password) in [
        ("omar", "wrong-password"),
        ("nobody", "whatever-pw"),
        ("carl", "carl-pw-8Wq4"),
        ("lena", ""),
    ] {
        let refused = ldap_login(&app, &provider, username, password).await;
        assert_eq!(refused.status, 401, "{username}: {}", refused.body);
        assert_eq!(refused.detail(), "Invalid username or password");
    }
    // A filter's special characters are escaped, not obeyed.
    assert_eq!(
        ldap_login(&app, &provider, "*", "omar-pw-5Kd1")
            .await
            .status,
        401
    );

    // The directory refuses binds without TLS: a provider that does not use StartTLS fails.
    let plain = ldap_provider(&app, &admin, &directory, json!({"start_tls": false})).await;
    let answer = ldap_login(&app, &plain, "lena", "lena-pw-3Zt8").await;
    assert_ne!(answer.status, 200, "{}", answer.body);
    let test = app
        .get(&format!("/api/sso-providers/{plain}/test"), &admin)
        .await;
    assert_eq!(test.body["success"], false);
    assert!(!test.body.to_string().contains(DIRECTORY_READER_PASSWORD));
}

#[tokio::test]
async fn github_through_its_stand_in_needs_a_verified_primary_email() {
    let app = spawn_app_with(Options {
        vars: vec![("PUBLIC_URL", "http://sso.test".into())],
        ..Options::default()
    })
    .await;
    let admin = app.admin().await;
    let github = GithubStandIn::start("gh-client", "gh-secret-4Lp").await;
    let created = app
        .post(
            "/api/sso-providers",
            &admin,
            json!({"provider_type": "github", "name": "GitHub",
                   "config": {"client_id": "gh-client", "client_secret": "gh-secret-4Lp",
                              "api_url": github.url, "oauth_url": github.url},
                   "allow_user_creation": true}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["is_social"], true);
    let provider = created.body["id"].as_str().unwrap().to_owned();

    let sign_in = |browser: Browser| {
        let (app, github, provider) = (&app, &github, &provider);
        async move {
            let answer = browser
                .client
                .get(app.url(&format!("/api/auth/sso/{provider}/login")))
                .send()
                .await
                .unwrap();
            let body: Value = answer.json().await.unwrap();
            let url = body["redirect_url"].as_str().unwrap();
            assert!(
                url.starts_with(&format!("{}/login/oauth/authorize", github.url)),
                "{url}"
            );
            assert!(
                url.contains("redirect_uri=http%3A%2F%2Fsso.test%2Fapi%2Fauth%2Fsso%2Fcallback"),
                "{url}"
            );
            let (code, state) = github.authorize(url);
            let back = app.url(&format!("/api/auth/sso/callback?code={code}&state={state}"));
            browser.redirect_of(&back).await.1
        }
    };
    let location = sign_in(Browser::new()).await;
    let me = app.get("/api/auth/me", &token_of(&location)).await;
    assert_eq!(me.body["username"], "gina-gh");
    assert_eq!(me.body["email"], "gina@example.org");

    // An account whose primary e-mail is not verified is refused.
    github.set_emails(json!([{"email": "ghost@example.org", "primary": true, "verified": false}]));
    assert_eq!(sign_in(Browser::new()).await, "/login?error=sso_failed");
}

#[tokio::test]
async fn the_autobot_realm_has_providers_of_its_own_and_its_own_landing() {
    let app = spawn_app_with(Options {
        vars: vec![("AUTOBOT_SSO_REDIRECT", "/chat/sso".into())],
        ..Options::default()
    })
    .await;
    let admin = app.admin().await;
    let github = GithubStandIn::start("ab-client", "ab-secret-6Rm").await;
    let created = app
        .post(
            "/api/autobot-sso-providers",
            &admin,
            json!({"provider_type": "github", "name": "GitHub for chat",
                   "config": {"client_id": "ab-client", "client_secret": "ab-secret-6Rm",
                              "api_url": github.url, "oauth_url": github.url},
                   "allow_user_creation": true, "default_role": "user"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.body["default_role"], "user",
        "the AutoBot realm's own role"
    );
    let provider = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/auth/sso/providers", "").await.body, json!([]));
    let listed = app.get("/api/autobot-auth/sso/providers", "").await;
    assert_eq!(listed.body[0]["id"], provider.as_str());

    let browser = Browser::new();
    let started: Value = browser
        .client
        .get(app.url(&format!("/api/autobot-auth/sso/{provider}/login")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = started["redirect_url"].as_str().unwrap();
    assert!(
        url.contains("%2Fapi%2Fautobot-auth%2Fsso%2Fcallback"),
        "{url}"
    );
    let (code, state) = github.authorize(url);
    let back = app.url(&format!(
        "/api/autobot-auth/sso/callback?code={code}&state={state}"
    ));
    let location = browser.redirect_of(&back).await.1;
    let token = location
        .strip_prefix("/chat/sso?token=")
        .unwrap_or_else(|| panic!("{location}"));
    let me = app.get("/api/autobot-auth/me", token).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(role_names(&me.body), ["user"]);
    // Not an SLM token.
    assert_eq!(app.get("/api/auth/me", token).await.status, 401);
}

#[tokio::test]
async fn an_sso_sign_in_started_in_the_console_lands_in_its_session() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let idp = OidcProvider::start(&[callback(&app)], accounts());
    let provider = oidc_provider(&app, &admin, &idp, json!({})).await;
    let browser = Browser::new();
    let login = browser
        .client
        .get(app.url("/console/login"))
        .send()
        .await
        .unwrap();
    let page = login.text().await.unwrap();
    assert!(page.contains("Sign in with Company IdP"), "{page}");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let started = browser
        .client
        .post(app.url(&format!("/console/login/sso/{provider}")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 303);
    let authorization = started.headers()["location"].to_str().unwrap().to_owned();
    let back = browser
        .sign_in_at_provider(&authorization, "alice", &callback(&app))
        .await;
    let landed = browser.client.get(&back).send().await.unwrap();
    // A page of this origin moves on to the console, so that the SameSite=Strict session
    // cookie goes with it; no token in any URL.
    assert_eq!(landed.status(), 200);
    let cookie = landed.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("slm_console=") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(landed.text().await.unwrap().contains("url=/console/"));
    let home = browser
        .client
        .get(app.url("/console/"))
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    assert!(home.text().await.unwrap().contains("Signed in as"));
}
