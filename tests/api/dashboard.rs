//! The SLM admin dashboard's session, call by call, on the dashboard's own paths and with the
//! bodies it sends; every field it reads is checked to be there. (The dashboard talks to
//! `/api/auth`, `/api/mfa`, `/api/api-keys`, `/api/slm-users`, `/api/autobot-users`,
//! `/api/autobot-teams`; see docs/dashboard.md.)
use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Every key the dashboard reads from a value of this shape is present.
fn has_keys(value: &Value, keys: &[&str]) {
    for key in keys {
        assert!(value.get(key).is_some(), "{key} missing from {value}");
    }
}

/// The dashboard's `SlmUserResponse`.
const USER_KEYS: &[&str] = &[
    "id",
    "email",
    "username",
    "display_name",
    "bio",
    "avatar_url",
    "org_id",
    "is_active",
    "is_verified",
    "mfa_enabled",
    "is_platform_admin",
    "preferences",
    "roles",
    "last_login_at",
    "created_at",
    "updated_at",
];
/// Its `TeamResponse`.
const TEAM_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "organization_id",
    "created_at",
    "updated_at",
];

/// `POST /api/auth/login` with the JSON body the login form sends.
async fn sign_in(app: &TestApp, username: &str, password: &str) -> Answer {
    app.request(
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await
}

#[tokio::test]
async fn the_dashboards_session_from_sign_in_to_sign_out() {
    let app = spawn_app().await;
    app.admin().await; // the bootstrap password, changed once as the README says

    // Sign-in, then the current user (the store keeps `username` and `is_admin`).
    let login = sign_in(&app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.body);
    has_keys(
        &login.body,
        &[
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "user",
        ],
    );
    let token = login.body["access_token"].as_str().unwrap().to_owned();
    let me = app.get("/api/auth/me", &token).await;
    assert_eq!(
        (me.body["username"].as_str(), me.body["is_admin"].as_bool()),
        (Some("admin"), Some(true))
    );
    // The store refreshes with the access token alone, no body.
    let refreshed = app
        .request(Method::POST, "/api/auth/refresh", Some(&token), None)
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let token = refreshed.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/auth/me", &token).await.status, 200);

    // Users tab: both lists, as `response.users`, with skip/limit.
    for realm in ["slm", "autobot"] {
        let list = app
            .get(&format!("/api/{realm}-users?skip=0&limit=100"), &token)
            .await;
        assert_eq!(list.status, 200, "{}", list.body);
        has_keys(&list.body, &["users", "total", "limit", "offset"]);
        for user in items(&list, "users") {
            has_keys(user, USER_KEYS);
        }
    }
    // Create an AutoBot user with the form's payload: role ids from the roles list.
    let roles = app.get("/api/autobot-roles", &token).await;
    let user_role = items(&roles, "roles")
        .iter()
        .find(|r| r["name"] == "user")
        .unwrap()
        .clone();
    has_keys(&user_role, &["id", "name", "description", "is_system"]);
    let created = app
        .post(
            "/api/autobot-users",
            &token,
            json!({"email": "chat@example.com", "username": "chatter", "password": "Sturdy-Pass-9000",
                   "display_name": "Chat User", "role_ids": [user_role["id"]]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    has_keys(&created.body, USER_KEYS);
    let user_id = created.body["id"].as_str().unwrap().to_owned();

    // Teams tab: create, add a member the way the dashboard does, list, remove, delete.
    let team = app
        .post(
            "/api/autobot-teams",
            &token,
            json!({"name": "Support", "description": "Front line"}),
        )
        .await;
    assert_eq!(team.status, 201, "{}", team.body);
    has_keys(&team.body, TEAM_KEYS);
    let team_id = team.body["id"].as_str().unwrap().to_owned();
    let added = app
        .post(
            &format!("/api/autobot-teams/{team_id}/members"),
            &token,
            json!({"user_id": user_id, "role": "member"}),
        )
        .await;
    assert!(added.status.is_success(), "{}", added.body);
    let teams = app.get("/api/autobot-teams?skip=0&limit=100", &token).await;
    has_keys(&teams.body, &["teams", "total", "limit", "offset"]);
    let listed = items(&teams, "teams")
        .iter()
        .find(|t| t["id"] == team_id.as_str())
        .unwrap();
    has_keys(listed, TEAM_KEYS);
    assert_eq!(listed["member_count"], 1);
    for (path, what) in [
        (
            format!("/api/autobot-teams/{team_id}/members/{user_id}"),
            "member",
        ),
        (format!("/api/autobot-teams/{team_id}"), "team"),
        (format!("/api/autobot-users/{user_id}"), "user"),
    ] {
        let gone = app.delete(&path, &token).await;
        assert_eq!(gone.status, 204, "{what}: {}", gone.body);
    }

    // Security page: MFA status, setup, verification.
    let status = app.get("/api/mfa/status", &token).await;
    has_keys(
        &status.body,
        &[
            "enabled",
            "method",
            "backup_codes_remaining",
            "last_verified_at",
        ],
    );
    assert_eq!(status.body["enabled"], false);
    let setup = app
        .request(Method::POST, "/api/mfa/setup", Some(&token), None)
        .await;
    assert_eq!(setup.status, 200, "{}", setup.body);
    has_keys(&setup.body, &["secret", "otpauth_uri", "backup_codes"]);
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    let verified = app
        .post(
            "/api/mfa/verify-setup",
            &token,
            json!({"code": totp_code(&secret)}),
        )
        .await;
    assert_eq!(
        (verified.status.as_u16(), &verified.body["success"]),
        (200, &json!(true))
    );
    assert!(verified.body["message"].is_string());

    // Signing in again now takes the second step.
    let first = sign_in(&app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(first.body["requires_mfa"], true, "{}", first.body);
    let temp = first.body["temp_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/auth/me", &temp).await.status,
        401,
        "the temp token is no session"
    );
    // The code just used for the setup is spent (no replay within its 30 s), so this sign-in
    // uses a backup code, which the same field takes.
    let backup = setup.body["backup_codes"][0].as_str().unwrap().to_owned();
    let replayed = app
        .request(
            Method::POST,
            "/api/mfa/verify-login",
            None,
            Some(json!({"code": totp_code(&secret), "temp_token": temp})),
        )
        .await;
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    let second = app
        .request(
            Method::POST,
            "/api/mfa/verify-login",
            None,
            Some(json!({"code": backup, "temp_token": temp})),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
    let token = second.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/auth/me", &token).await.body["username"],
        "admin"
    );
    let codes = app
        .post(
            "/api/mfa/backup-codes",
            &token,
            json!({"password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(
        codes.body["backup_codes"].as_array().map(Vec::len),
        Some(10),
        "{}",
        codes.body
    );
    let disabled = app
        .post(
            "/api/mfa/disable",
            &token,
            json!({"password": ADMIN_PASSWORD}),
        )
        .await;
    assert!(disabled.status.is_success(), "{}", disabled.body);
    assert_eq!(
        app.get("/api/mfa/status", &token).await.body["enabled"],
        false
    );

    // API keys page: scopes, create, list, read, rename, use, revoke.
    let scopes = app.get("/api/api-keys/scopes", &token).await;
    let scope_map = scopes
        .body
        .as_object()
        .expect("a map of scope to description");
    assert!(scope_map.contains_key("slm-users:read"), "{}", scopes.body);
    let key = app
        .post(
            "/api/api-keys",
            &token,
            json!({"name": "ci", "description": "pipeline", "scopes": ["slm-users:read"], "expires_days": 30}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.body);
    has_keys(
        &key.body,
        &[
            "id",
            "key",
            "key_prefix",
            "name",
            "scopes",
            "expires_at",
            "created_at",
        ],
    );
    let key_id = key.body["id"].as_str().unwrap().to_owned();
    let secret_key = key.body["key"].as_str().unwrap().to_owned();
    let keys = app.get("/api/api-keys", &token).await;
    has_keys(&keys.body, &["keys", "total"]);
    for listed in items(&keys, "keys") {
        has_keys(
            listed,
            &[
                "id",
                "key_prefix",
                "name",
                "description",
                "scopes",
                "is_active",
                "expires_at",
                "last_used_at",
                "usage_count",
                "created_at",
            ],
        );
        assert!(listed.get("key").is_none(), "the secret is shown once only");
    }
    let renamed = app
        .patch(
            &format!("/api/api-keys/{key_id}"),
            &token,
            json!({"name": "ci-2", "description": "renamed"}),
        )
        .await;
    assert_eq!(renamed.body["name"], "ci-2", "{}", renamed.body);
    let with_key = Answer::from(
        app.client
            .get(app.url("/api/slm-users"))
            .header("X-API-Key", &secret_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(with_key.status, 200, "X-API-Key: {}", with_key.body);
    // The use is counted beside the request, not before its answer: wait for it.
    let mut read = app.get(&format!("/api/api-keys/{key_id}"), &token).await;
    for _ in 0..50 {
        if read.body["usage_count"] != 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        read = app.get(&format!("/api/api-keys/{key_id}"), &token).await;
    }
    assert_eq!(read.body["usage_count"], 1, "{}", read.body);
    assert_eq!(
        app.delete(&format!("/api/api-keys/{key_id}"), &token)
            .await
            .status,
        204
    );
    let revoked = Answer::from(
        app.client
            .get(app.url("/api/slm-users"))
            .header("X-API-Key", &secret_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(revoked.status, 401);

    // Sign-out ends the session at once.
    let out = app
        .request(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert!(out.status.is_success());
    assert_eq!(app.get("/api/auth/me", &token).await.status, 401);
}

#[tokio::test]
async fn the_dashboards_token_is_accepted_by_python_jose_services() {
    let app = spawn_app().await;
    let token = app.admin().await;
    // What the other SLM services do: jwt.decode(token, SECRET_KEY, algorithms=["HS256"])
    // with python-jose's defaults, which refuse a token with an audience they were not told.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(app.var("SECRET_KEY").as_bytes()),
        &validation,
    )
    .unwrap()
    .claims;
    assert!(claims.get("aud").is_none(), "no audience: {claims}");
    assert_eq!(claims["sub"], "admin", "sub is the username: {claims}");
    for key in ["exp", "iat", "jti", "role"] {
        assert!(claims.get(key).is_some(), "{key} in {claims}");
    }
}

#[tokio::test]
async fn backup_codes_fit_the_dashboards_code_field_and_setup_draws_the_qr_code() {
    let app = spawn_app().await;
    app.create_user("slm", "field-user", "Sturdy-Pass-9000", &["viewer"])
        .await;
    let token = app.token("slm", "field-user", "Sturdy-Pass-9000").await;
    let setup = app
        .request(Method::POST, "/api/mfa/setup", Some(&token), None)
        .await;
    assert_eq!(setup.status, 200, "{}", setup.body);
    let svg = setup.body["qr_svg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    let backup: Vec<String> = serde_json::from_value(setup.body["backup_codes"].clone()).unwrap();
    for code in &backup {
        // The dashboard's MFA field keeps 8 characters; 40 bits from 32 symbols.
        assert_eq!(code.chars().count(), 8, "{code}");
        assert!(
            code.chars()
                .all(|c| c.is_ascii_alphanumeric() && !"01IO".contains(c)),
            "{code}"
        );
    }
    let secret = setup.body["secret"].as_str().unwrap();
    let enabled = app
        .post(
            "/api/mfa/verify-setup",
            &token,
            json!({"code": totp_code(secret)}),
        )
        .await;
    assert_eq!(enabled.status, 200, "{}", enabled.body);
    // Sign-in as the dashboard does it: the challenge, then the code typed into its field (in
    // lower case here: case, spaces and dashes are ignored).
    let challenge = sign_in(&app, "field-user", "Sturdy-Pass-9000").await;
    let temp = challenge.body["temp_token"].as_str().unwrap();
    let typed = backup[0].to_lowercase();
    let signed_in = app
        .request(
            Method::POST,
            "/api/mfa/verify-login",
            None,
            Some(json!({"code": typed, "temp_token": temp})),
        )
        .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert!(signed_in.body["access_token"].is_string());
    let admin = app.admin().await;
    let used = app
        .get("/api/audit?event_type=backup_code_used", &admin)
        .await;
    assert_eq!(used.body["total"], 1, "{}", used.body);
}

/// The claims of a JWT, unverified.
fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn the_dashboards_token_lasts_a_day_and_an_idle_session_still_ends() {
    let app = spawn_app().await;
    app.admin().await;
    let login = sign_in(&app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(login.body["expires_in"], 86_400, "{}", login.body);
    let token = login.body["access_token"].as_str().unwrap().to_owned();
    let refresh = login.body["refresh_token"].as_str().unwrap().to_owned();
    let c = claims(&token);
    let lifetime = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 86_400, "{c}");
    // The AutoBot realm keeps half an hour.
    app.create_user("autobot", "short-lived", "Sturdy-Pass-9000", &["user"])
        .await;
    let autobot = app
        .login("autobot", "short-lived", "Sturdy-Pass-9000")
        .await;
    assert_eq!(autobot.body["expires_in"], 1_800);

    assert_eq!(app.get("/api/auth/me", &token).await.status, 200);
    // Unused for longer than SESSION_IDLE_MINUTES (480): the session has ended, for the
    // access token and for its refresh token alike.
    sqlx::query(
        "UPDATE slm_server.sessions SET last_seen_at = now() - interval '481 minutes' WHERE id = $1::uuid",
    )
    .bind(c["sid"].as_str().unwrap())
    .execute(&app.slm_db)
    .await
    .unwrap();
    let me = app.get("/api/auth/me", &token).await;
    assert_eq!(me.status, 401, "{}", me.body);
    assert_eq!(
        app.get("/api/auth/me", &token).await.status,
        401,
        "the refused request did not revive it"
    );
    let renewed = app
        .request(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(renewed.status, 401, "{}", renewed.body);
    // A session used within the limit lives on.
    let fresh = sign_in(&app, "admin", ADMIN_PASSWORD).await;
    let fresh_token = fresh.body["access_token"].as_str().unwrap();
    sqlx::query(
        "UPDATE slm_server.sessions SET last_seen_at = now() - interval '479 minutes' WHERE id = $1::uuid",
    )
    .bind(claims(fresh_token)["sid"].as_str().unwrap())
    .execute(&app.slm_db)
    .await
    .unwrap();
    assert_eq!(app.get("/api/auth/me", fresh_token).await.status, 200);
}

#[tokio::test]
async fn add_slm_admin_makes_an_admin_and_usernames_stop_at_fifty() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    // Exactly what the dashboard's "Add SLM Admin" modal sends.
    let added = app
        .post(
            "/api/slm-users",
            &admin,
            json!({"username": "second-admin", "email": "second@example.com", "password": "Sturdy-Pass-9000"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.body["is_platform_admin"], true, "{}", added.body);
    let second = app.token("slm", "second-admin", "Sturdy-Pass-9000").await;
    let me = app.get("/api/auth/me", &second).await;
    assert_eq!(me.body["is_admin"], true, "{}", me.body);
    assert_eq!(app.get("/api/slm-users", &second).await.status, 200);

    // The AutoBot backend's login refuses usernames over 50 characters.
    for realm in ["slm", "autobot"] {
        let too_long = app
            .post(
                &format!("/api/{realm}-users"),
                &admin,
                json!({"username": "u".repeat(51), "email": "long@example.com", "password": "Sturdy-Pass-9000"}),
            )
            .await;
        assert_eq!(too_long.status, 422, "{realm}: {}", too_long.body);
        assert_eq!(too_long.locs(), [json!(["body", "username"])], "{realm}");
        let fifty = app
            .post(
                &format!("/api/{realm}-users"),
                &admin,
                json!({"username": "u".repeat(50), "email": format!("fifty-{realm}@example.com"), "password": "Sturdy-Pass-9000"}),
            )
            .await;
        assert_eq!(fifty.status, 201, "{realm}: {}", fifty.body);
    }
    let request = app
        .request(
            Method::POST,
            "/api/access-requests",
            None,
            Some(json!({"username": "r".repeat(51), "email": "req@example.com", "full_name": "R", "reason": "x"})),
        )
        .await;
    assert_eq!(request.status, 422, "{}", request.body);
}

#[tokio::test]
async fn nginx_sends_every_path_of_this_server_here_and_autobot_api_to_the_backend() {
    let app = spawn_app().await;
    let document = app
        .request(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let conf = include_str!("../../deploy/nginx-slm.conf");
    let locations: Vec<Location> = conf
        .split("location ")
        .skip(1)
        .map(|block| {
            let head = block.split('{').next().unwrap().trim();
            let body = block.split('}').next().unwrap();
            let ours = body.contains("proxy_pass http://slm_server");
            match head.split_once(' ') {
                Some(("~", pattern)) => Location::Regex(regex::Regex::new(pattern).unwrap(), ours),
                Some(("^~", prefix)) => Location::Prefix(prefix.to_owned(), true, ours),
                Some(("=", exact)) => Location::Exact(exact.to_owned(), ours),
                _ => Location::Prefix(head.to_owned(), false, ours),
            }
        })
        .collect();
    let paths: Vec<&String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.starts_with("/api/"))
        .collect();
    assert!(paths.len() > 30, "{paths:?}");
    for path in paths {
        assert!(
            routed_here(&locations, path),
            "{path} does not reach slm-server through deploy/nginx-slm.conf"
        );
    }
    // The dashboard's calls to the AutoBot backend have their own block.
    assert!(conf.contains("location /autobot-api/"), "{conf}");
}

/// A `location` block of nginx, and whether it proxies to this server.
enum Location {
    Exact(String, bool),
    /// The prefix, whether it is `^~` (no regex is tried after it), and ours.
    Prefix(String, bool, bool),
    Regex(regex::Regex, bool),
}

/// Whether nginx's choice of location for `path` proxies to this server: an exact match wins;
/// else the longest prefix, if it is `^~`; else the first matching regex; else that prefix.
fn routed_here(locations: &[Location], path: &str) -> bool {
    for location in locations {
        if let Location::Exact(exact, ours) = location
            && exact == path
        {
            return *ours;
        }
    }
    let longest = locations
        .iter()
        .filter_map(|l| match l {
            Location::Prefix(prefix, stop, ours) if path.starts_with(prefix.as_str()) => {
                Some((prefix.len(), *stop, *ours))
            }
            _ => None,
        })
        .max_by_key(|(len, _, _)| *len);
    if let Some((_, true, ours)) = longest {
        return ours;
    }
    for location in locations {
        if let Location::Regex(re, ours) = location
            && re.is_match(path)
        {
            return *ours;
        }
    }
    longest.is_some_and(|(_, _, ours)| ours)
}
