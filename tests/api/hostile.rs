//! Input no client should send, generated from the server's own OpenAPI document so that a new
//! field or endpoint is covered without a new test: a NUL in every string field, query
//! parameter and path segment; the largest `skip` on every list; instants no RFC 3339 date-time
//! writes in every date-time parameter; requests the HTTP layer itself refuses. Each answer must
//! be a FastAPI-shaped 4xx, never a 5xx.
use std::io::{Read, Write};

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Map, Value, json};

/// The server's own OpenAPI document.
async fn document(app: &TestApp) -> Value {
    app.request(Method::GET, "/openapi.json", None, None)
        .await
        .body
}

/// The operations of the document: (method, path template, operation).
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "patch" => Method::PATCH,
                "put" => Method::PUT,
                "delete" => Method::DELETE,
                _ => continue,
            };
            out.push((method, path.clone(), op.clone()));
        }
    }
    out
}

/// Follows a `$ref` into `components`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().expect("ref name");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn is_string(doc: &Value, schema: &Value) -> bool {
    let schema = resolve(doc, schema);
    let ty = &schema["type"];
    ty == "string" || ty.as_array().is_some_and(|t| t.contains(&json!("string")))
}

/// A path with every `{param}` filled with a valid value for its name.
fn concrete(path: &str, nul_in: Option<&str>) -> String {
    path.split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if Some(name) == nul_in => "a%00b".to_owned(),
                Some(name) if name.ends_with("_id") || name == "id" => {
                    uuid::Uuid::new_v4().to_string()
                }
                Some(_) => "user".to_owned(),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn nul_at(answer: &Answer, loc: &Value) -> bool {
    answer.status == 422 && answer.locs().contains(loc)
}

#[tokio::test]
async fn a_nul_in_any_string_is_a_422_at_that_field() {
    let app = spawn_app().await;
    let slm_admin = app.admin().await;
    app.create_user("autobot", "prober", "Sturdy-Pass-9000", &["user"])
        .await;
    let autobot_user = app.token("autobot", "prober", "Sturdy-Pass-9000").await;
    let doc = document(&app).await;
    let mut probes = 0;
    for (method, path, op) in operations(&doc) {
        // Self-service routes authenticate their own realm's users; the rest an SLM admin.
        let admin = if path.starts_with("/api/autobot-auth") {
            &autobot_user
        } else {
            &slm_admin
        };
        for param in op["parameters"].as_array().cloned().unwrap_or_default() {
            let (name, place) = (
                param["name"].as_str().unwrap(),
                param["in"].as_str().unwrap(),
            );
            let target = match place {
                "path" => concrete(&path, Some(name)),
                "query" if is_string(&doc, &param["schema"]) => {
                    format!("{}?{name}=a%00b", concrete(&path, None))
                }
                _ => continue,
            };
            let answer = app
                .request(method.clone(), &target, Some(admin), None)
                .await;
            assert!(
                nul_at(&answer, &json!([place, name])),
                "{method} {target}: {} {}",
                answer.status,
                answer.body
            );
            probes += 1;
        }
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        let schema = resolve(&doc, body);
        for (field, property) in schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default()
        {
            if !is_string(&doc, &property) {
                continue;
            }
            let target = concrete(&path, None);
            let mut fields = Map::new();
            fields.insert(field.clone(), json!("a\u{0}b"));
            let answer = app
                .request(
                    method.clone(),
                    &target,
                    Some(admin),
                    Some(Value::Object(fields)),
                )
                .await;
            assert!(
                nul_at(&answer, &json!(["body", field])),
                "{method} {target} body.{field}: {} {}",
                answer.status,
                answer.body
            );
            probes += 1;
        }
    }
    assert!(probes > 40, "the document was walked ({probes} probes)");
    // The form of the OAuth2 password flow, without credentials (anonymous).
    let form = app
        .client
        .post(app.url("/api/slm-auth/login"))
        .form(&[("username", "a\u{0}"), ("password", "x")])
        .send()
        .await
        .unwrap();
    let form = Answer::from(form).await;
    assert!(nul_at(&form, &json!(["body", "username"])), "{}", form.body);
    // Nothing was created or changed by any of it.
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.slm_db)
        .await
        .unwrap();
    assert_eq!(users, 1, "only the bootstrap admin");
    let autobot_users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.autobot_db)
        .await
        .unwrap();
    assert_eq!(autobot_users, 1, "only the prober");
}

#[tokio::test]
async fn any_skip_is_fine_on_every_list() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let doc = document(&app).await;
    let mut lists = 0;
    for (method, path, op) in operations(&doc) {
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        if method != Method::GET || !params.iter().any(|p| p["name"] == "skip") {
            continue;
        }
        let target = format!("{}?skip={}", concrete(&path, None), i64::MAX);
        let answer = app.get(&target, &admin).await;
        assert!(
            answer.status == 200 || answer.status == 404,
            "{target}: {} {}",
            answer.status,
            answer.body
        );
        lists += 1;
    }
    assert!(lists >= 5, "every list was tried ({lists})");
}

#[tokio::test]
async fn a_date_time_outside_rfc_3339_is_a_422_there() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let doc = document(&app).await;
    let mut tried = 0;
    for (method, path, op) in operations(&doc) {
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        for param in params
            .iter()
            .filter(|p| p["in"] == "query" && resolve(&doc, &p["schema"])["format"] == "date-time")
        {
            assert_eq!(method, Method::GET, "{path}");
            let name = param["name"].as_str().expect("name");
            // Years PostgreSQL cannot hold (before 4713 BC) or RFC 3339 cannot write.
            for bad in [
                "-12345-01-01T00:00:00Z",
                "%2B12345-01-01T00:00:00Z",
                "2026-02-30T00:00:00Z",
            ] {
                let target = format!("{}?{name}={bad}", concrete(&path, None));
                let answer = app.get(&target, &admin).await;
                assert_eq!(answer.status, 422, "{target}: {}", answer.body);
                assert_eq!(answer.locs(), vec![json!(["query", name])], "{target}");
            }
            // The edges of what RFC 3339 writes, an offset pushing the first into the year -1.
            for good in ["0000-01-01T00:00:00%2B23:59", "9999-12-31T23:59:59.999999Z"] {
                let target = format!("{}?{name}={good}", concrete(&path, None));
                let answer = app.get(&target, &admin).await;
                assert_eq!(answer.status, 200, "{target}: {}", answer.body);
            }
            tried += 1;
        }
    }
    assert!(tried >= 2, "since and until were tried ({tried})");
}

#[tokio::test]
async fn a_bad_role_segment_points_at_the_role() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = app
        .create_user("autobot", "segment", "Sturdy-Pass-9000", &["user"])
        .await;
    let answer = app
        .delete(&format!("/api/autobot-users/{id}/roles/%FF"), &admin)
        .await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(answer.locs(), vec![json!(["path", "role"])]);
}

/// Sends raw bytes and returns the status and body of the answer.
fn raw_exchange(address: &str, request: &[u8]) -> (u16, Value) {
    let host = address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    // A peer that closes before reading everything may reset the connection: ignore it.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn the_http_layers_own_errors_carry_a_detail() {
    let app = spawn_app().await;
    let address = app.address.clone();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GET /api/\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Note: a\x00b\r\n\r\n".to_vec(), 400),
        (
            [
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ".as_slice(),
                &vec![b'a'; 1 << 20],
                b"\r\n\r\n",
            ]
            .concat(),
            431,
        ),
        (
            [
                b"POST /api/slm-auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n".as_slice(),
                &vec![b' '; 70_000],
            ]
            .concat(),
            413,
        ),
    ];
    for (request, expected) in cases {
        let address = address.clone();
        let (status, body) = tokio::task::spawn_blocking(move || raw_exchange(&address, &request))
            .await
            .unwrap();
        assert_eq!(status, expected);
        assert!(body["detail"].is_string(), "{expected}: {body}");
    }
}

/// Every name field refuses a control character anywhere, a tab or a newline at either end
/// included, as its published `pattern` says; a name with plain spaces around it is trimmed.
#[tokio::test]
async fn a_control_character_at_the_edge_of_a_name_is_a_422_there() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app
        .create_user("autobot", "named", "Sturdy-Pass-9000", &["user"])
        .await;
    let team = app
        .post(
            "/api/autobot-teams",
            &admin,
            json!({"name": " Support\u{a0}"}),
        )
        .await;
    assert_eq!(team.status, 201, "{}", team.body);
    assert_eq!(team.body["name"], "Support", "spaces are trimmed");
    let team = team.body["id"].as_str().unwrap().to_owned();
    let doc = document(&app).await;
    let new_user = |name: &str| {
        json!({"username": "edgy", "email": "edgy@example.com", "password": "Sturdy-Pass-9000",
               "display_name": name})
    };
    let request =
        |name: &str| json!({"username": "asker", "email": "asker@example.com", "full_name": name});
    type Body = Box<dyn Fn(&str) -> Value>;
    let cases: Vec<(Method, String, &str, &str, Body)> = vec![
        (
            Method::POST,
            "/api/autobot-teams".into(),
            "CreateTeamRequest",
            "name",
            Box::new(|n| json!({"name": n})),
        ),
        (
            Method::PATCH,
            format!("/api/autobot-teams/{team}"),
            "UpdateTeamRequest",
            "name",
            Box::new(|n| json!({"name": n})),
        ),
        (
            Method::POST,
            "/api/slm-users".into(),
            "CreateUserRequest",
            "display_name",
            Box::new(new_user),
        ),
        (
            Method::PATCH,
            format!("/api/autobot-users/{user}"),
            "UpdateUserRequest",
            "display_name",
            Box::new(|n| json!({"display_name": n})),
        ),
        (
            Method::POST,
            "/api/api-keys".into(),
            "CreateApiKeyRequest",
            "name",
            Box::new(|n| json!({"name": n})),
        ),
        (
            Method::POST,
            "/api/access-requests".into(),
            "CreateAccessRequest",
            "full_name",
            Box::new(request),
        ),
    ];
    for (method, path, schema, field, body) in &cases {
        let pattern = doc["components"]["schemas"][schema]["properties"][field]["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{schema}.{field} has a pattern"));
        assert!(
            pattern.contains(r"\u0000-\u001f"),
            "{schema}.{field}: {pattern}"
        );
        for name in ["Edge\t", "\nEdge", "Edge\r\n", "\u{85}Edge"] {
            let token = (*path != "/api/access-requests").then_some(admin.as_str());
            let answer = app
                .request(method.clone(), path, token, Some(body(name)))
                .await;
            assert_eq!(
                answer.status, 422,
                "{method} {path} {name:?}: {}",
                answer.body
            );
            assert_eq!(
                answer.locs(),
                vec![json!(["body", field])],
                "{method} {path} {name:?}"
            );
        }
    }
    // Nothing was created or renamed.
    let team = app.get(&format!("/api/autobot-teams/{team}"), &admin).await;
    assert_eq!(team.body["name"], "Support");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.slm_db)
        .await
        .unwrap();
    assert_eq!(users, 1, "only the bootstrap admin");
    let requests: i64 = sqlx::query_scalar("SELECT count(*) FROM slm_server.access_requests")
        .fetch_one(&app.slm_db)
        .await
        .unwrap();
    assert_eq!(requests, 0);
}
