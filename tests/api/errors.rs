use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn fastapi_shaped_errors() {
    let app = spawn_app().await;
    let admin = app.admin().await;

    let missing = app.request(Method::GET, "/api/slm-users", None, None).await;
    assert_eq!(
        (missing.status.as_u16(), missing.detail()),
        (401, &json!("Not authenticated"))
    );
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let invalid = app.get("/api/slm-users", "garbage.token.here").await;
    assert_eq!(
        (invalid.status.as_u16(), invalid.detail()),
        (401, &json!("Could not validate credentials"))
    );
    assert_eq!(invalid.header("www-authenticate"), Some("Bearer"));

    let not_found = app
        .request(Method::GET, "/api/nothing-here", None, None)
        .await;
    assert_eq!(
        (not_found.status.as_u16(), not_found.detail()),
        (404, &json!("Not Found"))
    );
    let wrong_method = app
        .request(Method::PUT, "/api/slm-users", Some(&admin), None)
        .await;
    assert_eq!(
        (wrong_method.status.as_u16(), wrong_method.detail()),
        (405, &json!("Method Not Allowed"))
    );

    let bad_id = app.get("/api/slm-users/not-a-uuid", &admin).await;
    assert_eq!(bad_id.status, 422);
    assert_eq!(bad_id.locs(), vec![json!(["path", "user_id"])]);

    let bad_query = app.get("/api/slm-users?limit=abc", &admin).await;
    assert_eq!(bad_query.status, 422);
    assert_eq!(bad_query.locs(), vec![json!(["query", "limit"])]);
    let too_big = app.get("/api/slm-users?limit=1001", &admin).await;
    assert_eq!(too_big.locs(), vec![json!(["query", "limit"])]);
    let negative = app.get("/api/slm-users?skip=-1", &admin).await;
    assert_eq!(negative.locs(), vec![json!(["query", "skip"])]);

    let malformed = Answer::from(
        app.client
            .post(app.url("/api/slm-users"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(malformed.status, 422);
    assert_eq!(malformed.locs(), vec![json!(["body"])]);

    let missing_field = app
        .post("/api/slm-users", &admin, json!({"username": "bob"}))
        .await;
    assert_eq!(missing_field.status, 422);
    assert_eq!(
        missing_field.locs(),
        vec![json!(["body", "email"]), json!(["body", "password"])],
        "every missing field at once, as FastAPI lists them"
    );
    assert_eq!(missing_field.body["detail"][0]["type"], "missing");

    let wrong_type = app
        .post(
            "/api/slm-users",
            &admin,
            json!({"username": "bob", "email": "bob@example.com", "password": "Sturdy-Pass-9000", "is_active": "yes"}),
        )
        .await;
    assert_eq!(wrong_type.locs(), vec![json!(["body", "is_active"])]);

    let huge = "x".repeat(70 * 1024);
    let too_large = Answer::from(
        app.client
            .post(app.url("/api/slm-users"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(format!("{{\"username\": \"{huge}\"}}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(too_large.status, 413);
    assert!(too_large.detail().is_string());

    let media = Answer::from(
        app.client
            .post(app.url("/api/slm-users"))
            .bearer_auth(&admin)
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        media.status == 415 || media.status == 422,
        "{}",
        media.status
    );

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.slm_db)
        .await
        .unwrap();
    assert_eq!(count, 1, "no bad request created anything");
}

#[tokio::test]
async fn error_bodies_never_leak_internals() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for body in [
        json!({"username": "x'; DROP TABLE users; --", "email": "x@example.com", "password": "Sturdy-Pass-9000"}),
        json!({"username": "okname", "password": "Sturdy-Pass-9000", "email": "a@b.c\u{0}"}),
    ] {
        let answer = app.post("/api/slm-users", &admin, body).await;
        assert_eq!(answer.status, 422, "{}", answer.body);
        let text = answer.body.to_string();
        for leak in ["SELECT", "sqlx", "argon2", "panicked", "$argon2id"] {
            assert!(!text.contains(leak), "{text}");
        }
    }
}

/// A body of whitespace alone is invalid JSON, as FastAPI parses it: it is neither an absent
/// optional body (which would renew the bearer token) nor a missing one.
#[tokio::test]
async fn whitespace_body_is_invalid_json() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let send = |path: &'static str, body: &'static str| {
        let request = app
            .client
            .post(app.url(path))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body);
        async move { Answer::from(request.send().await.unwrap()).await }
    };
    for body in ["\n", "  ", "\r\n\t"] {
        for path in ["/api/auth/refresh", "/api/slm-users"] {
            let answer = send(path, body).await;
            assert_eq!(answer.status, 422, "{path} {body:?}: {}", answer.body);
            assert_eq!(answer.locs(), vec![json!(["body"])], "{path} {body:?}");
            assert_eq!(answer.body["detail"][0]["type"], "json_invalid");
        }
    }
    // An empty body, or JSON `null`, is still the dashboard's token-only refresh.
    for body in ["", "null", " null\n"] {
        let answer = send("/api/auth/refresh", body).await;
        assert_eq!(answer.status, 200, "{body:?}: {}", answer.body);
    }
}
