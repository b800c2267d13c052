//! Rotating the token secrets and the MFA keys with users signed in and MFA on, as the
//! deployment guide's procedure does it: nobody notices.
use crate::helpers::*;
use reqwest::Method;
use serde_json::json;
use slm_server::cli::{self, RealmOrAll};

const OLD_SECRET: &str = "old-token-secret-old-token-secret-0001";
const NEW_SECRET: &str = "new-token-secret-new-token-secret-0002";
const OLD_MFA: &str = "old-mfa-key-old-mfa-key-old-mfa-key-01";
const NEW_MFA: &str = "new-mfa-key-new-mfa-key-new-mfa-key-02";

/// A server on the shared databases with these secrets.
async fn replica(dbs: &(String, String), secrets: &[(&'static str, &str)]) -> TestApp {
    spawn_app_with(Options {
        vars: secrets.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        databases: Some(dbs.clone()),
    })
    .await
}

/// Signs in with the second factor (a TOTP or backup code), as the dashboard does.
async fn mfa_login(app: &TestApp, username: &str, code: &str) -> reqwest::StatusCode {
    let first = app.login("slm", username, "Sturdy-Pass-9000").await;
    let temp = first.body["temp_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    app.request(
        Method::POST,
        "/api/mfa/verify-login",
        None,
        Some(json!({"code": code, "temp_token": temp})),
    )
    .await
    .status
}

#[tokio::test]
async fn token_secrets_and_mfa_keys_rotate_without_anyone_noticing() {
    let dbs = new_database_names();
    let before = replica(
        &dbs,
        &[("SECRET_KEY", OLD_SECRET), ("MFA_ENCRYPTION_KEYS", OLD_MFA)],
    )
    .await;
    before
        .create_user("slm", "steady", "Sturdy-Pass-9000", &["viewer"])
        .await;
    before
        .create_user("slm", "guarded", "Sturdy-Pass-9000", &["viewer"])
        .await;
    let signed_in = before.token("slm", "steady", "Sturdy-Pass-9000").await;
    // "guarded" turns MFA on under the old key.
    let token = before.token("slm", "guarded", "Sturdy-Pass-9000").await;
    let setup = before
        .request(Method::POST, "/api/mfa/setup", Some(&token), None)
        .await;
    let totp = setup.body["secret"].as_str().unwrap().to_owned();
    let backup = setup.body["backup_codes"][0].as_str().unwrap().to_owned();
    let on = before
        .post(
            "/api/mfa/verify-setup",
            &token,
            json!({"code": totp_code(&totp)}),
        )
        .await;
    assert_eq!(on.status, 200, "{}", on.body);

    // Step 1: the new secret signs, the old one still verifies; the new MFA key seals.
    let during = replica(
        &dbs,
        &[
            ("SECRET_KEY", NEW_SECRET),
            ("SECRET_KEY_PREVIOUS", OLD_SECRET),
            ("MFA_ENCRYPTION_KEYS", &format!("{NEW_MFA},{OLD_MFA}")),
        ],
    )
    .await;
    assert_eq!(
        during.get("/api/slm-auth/me", &signed_in).await.status,
        200,
        "old token accepted"
    );
    let fresh = during.token("slm", "steady", "Sturdy-Pass-9000").await;
    assert_eq!(
        before.get("/api/slm-auth/me", &fresh).await.status,
        401,
        "the new token is signed with the new secret"
    );
    // What the old key sealed still opens (the current TOTP code was spent on the setup).
    assert_eq!(
        mfa_login(&during, "guarded", &backup).await,
        200,
        "MFA login during the change"
    );

    // Step 2: re-encrypt every MFA secret with the newest key.
    cli::reseal_mfa(&during.settings(), RealmOrAll::All)
        .await
        .expect("reseal-mfa");
    let sealed: Vec<String> = sqlx::query_scalar("SELECT secret_encrypted FROM user_mfa")
        .fetch_all(&during.slm_db)
        .await
        .unwrap();
    assert!(!sealed.is_empty());
    let new_id = during.settings().seal_keys.0[0].id().to_owned();
    assert!(
        sealed
            .iter()
            .all(|s| s.starts_with(&format!("v2:{new_id}:"))),
        "{sealed:?}"
    );

    // Step 3, once the old tokens have expired: the old secret and key are gone.
    let after = replica(
        &dbs,
        &[("SECRET_KEY", NEW_SECRET), ("MFA_ENCRYPTION_KEYS", NEW_MFA)],
    )
    .await;
    assert_eq!(after.get("/api/slm-auth/me", &fresh).await.status, 200);
    assert_eq!(
        after.get("/api/slm-auth/me", &signed_in).await.status,
        401,
        "the old secret no longer verifies"
    );
    wait_for_next_totp_step().await;
    assert_eq!(
        mfa_login(&after, "guarded", &totp_code(&totp)).await,
        200,
        "MFA login with the new key alone"
    );
}

/// A TOTP code is single use within its 30-second step.
async fn wait_for_next_totp_step() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tokio::time::sleep(std::time::Duration::from_secs(30 - now % 30 + 1)).await;
}
