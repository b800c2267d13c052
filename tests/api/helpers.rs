//! The test harness: the real `Application` on a random port, with fresh databases per test,
//! its own Redis channel and key prefix, and an HTTP client.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use slm_server::{Application, Settings};
use sqlx::PgPool;
use uuid::Uuid;

pub const BOOTSTRAP_PASSWORD: &str = "Bootstrap-Initial-Pass-1";
pub const ADMIN_PASSWORD: &str = "Admin-Changed-Pass-2026";

pub fn pg_base() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            slm_server::telemetry::init_tracing(slm_server::config::Environment::Local, "info");
        }
    });
}

/// A running server and what a test needs around it.
pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub slm_db: PgPool,
    pub autobot_db: PgPool,
    pub channel: String,
    vars: HashMap<String, String>,
    admin_token: tokio::sync::OnceCell<String>,
}

/// Options of a test app.
#[derive(Default)]
pub struct Options {
    pub vars: Vec<(&'static str, String)>,
    /// Reuse these databases instead of creating new ones (two replicas).
    pub databases: Option<(String, String)>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub fn new_database_names() -> (String, String) {
    let id = Uuid::new_v4().simple().to_string();
    (format!("slmtest_{id}_slm"), format!("slmtest_{id}_autobot"))
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    init_logs();
    let vars = test_vars(options);
    let lookup = vars.clone();
    let settings = Settings::from_lookup(&|name| lookup.get(name).cloned()).expect("test settings");
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp::connect(address, vars).await
}

/// The configuration of a test server: fresh databases (unless given), its own Redis key prefix
/// and channel, a random port, and `options.vars` on top.
pub fn test_vars(options: Options) -> HashMap<String, String> {
    let (slm_name, autobot_name) = options.databases.clone().unwrap_or_else(new_database_names);
    let base = pg_base();
    let tag = Uuid::new_v4().simple().to_string();
    let mut vars: HashMap<String, String> = HashMap::from([
        ("SLM_DATABASE_URL".into(), format!("{base}/{slm_name}")),
        (
            "AUTOBOT_DATABASE_URL".into(),
            format!("{base}/{autobot_name}"),
        ),
        ("REDIS_URL".into(), redis_url()),
        ("REDIS_KEY_PREFIX".into(), format!("test:{tag}:")),
        (
            "INVALIDATION_CHANNEL".into(),
            format!("test:{tag}:invalidate"),
        ),
        ("BIND_ADDR".into(), "127.0.0.1:0".into()),
        (
            "SECRET_KEY".into(),
            "test-secret-test-secret-test-secret-0123".into(),
        ),
        ("ADMIN_BOOTSTRAP_PASSWORD".into(), BOOTSTRAP_PASSWORD.into()),
        ("LOGIN_RATE_LIMIT_PER_MINUTE".into(), "0".into()),
        ("ACCESS_REQUEST_RATE_LIMIT_PER_HOUR".into(), "0".into()),
        ("LOCKOUT_THRESHOLD".into(), "50".into()),
    ]);
    for (k, v) in options.vars {
        vars.insert(k.into(), v);
    }
    vars
}

impl TestApp {
    /// A client of the server at `address`, started with `vars` (by this process or another).
    pub async fn connect(address: String, vars: HashMap<String, String>) -> Self {
        let slm_db = PgPool::connect(&vars["SLM_DATABASE_URL"])
            .await
            .expect("slm pool");
        let autobot_db = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy(&vars["AUTOBOT_DATABASE_URL"])
            .expect("autobot pool");
        Self {
            address,
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            slm_db,
            autobot_db,
            channel: vars["INVALIDATION_CHANNEL"].clone(),
            vars,
            admin_token: tokio::sync::OnceCell::new(),
        }
    }
}

/// A decoded response.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub async fn from(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn detail(&self) -> &Value {
        &self.body["detail"]
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `loc`s of a 422 body.
    pub fn locs(&self) -> Vec<Value> {
        self.body["detail"]
            .as_array()
            .map(|a| a.iter().map(|e| e["loc"].clone()).collect())
            .unwrap_or_default()
    }
}

impl TestApp {
    /// The settings this app was built with (for CLI commands on its databases).
    pub fn settings(&self) -> Settings {
        Settings::from_lookup(&|name| self.vars.get(name).cloned()).expect("settings")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Answer::from(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.request(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    pub async fn login(&self, realm: &str, username: &str, password: &str) -> Answer {
        self.request(
            Method::POST,
            &format!("/api/{realm}-auth/login"),
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// Logs in and returns the access token, panicking on failure.
    pub async fn token(&self, realm: &str, username: &str, password: &str) -> String {
        let answer = self.login(realm, username, password).await;
        assert_eq!(
            answer.status, 200,
            "login of {username} in {realm}: {}",
            answer.body
        );
        answer.body["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// The bootstrap admin's token, after the mandatory password change.
    pub async fn admin(&self) -> String {
        self.admin_token
            .get_or_init(|| async {
                let first = self.token("slm", "admin", BOOTSTRAP_PASSWORD).await;
                let changed = self
                    .post("/api/slm-auth/me/password", &first, json!({"current_password": BOOTSTRAP_PASSWORD, "new_password": ADMIN_PASSWORD}))
                    .await;
                assert_eq!(changed.status, 204, "bootstrap password change: {}", changed.body);
                self.token("slm", "admin", ADMIN_PASSWORD).await
            })
            .await
            .clone()
    }

    /// Creates a user in `realm` ("slm" or "autobot") with `roles`; returns its id.
    pub async fn create_user(
        &self,
        realm: &str,
        username: &str,
        password: &str,
        roles: &[&str],
    ) -> String {
        let admin = self.admin().await;
        let answer = self
            .post(&format!("/api/{realm}-users"), &admin, json!({"username": username, "password": password, "email": format!("{username}@example.com"), "roles": roles}))
            .await;
        assert_eq!(
            answer.status, 201,
            "create {username} in {realm}: {}",
            answer.body
        );
        answer.body["id"].as_str().expect("id").to_owned()
    }

    /// A user of the SLM realm with `role`, and its token.
    pub async fn slm_user(&self, role: &str) -> (String, String) {
        let name = format!("{role}-{}", &Uuid::new_v4().simple().to_string()[..8]);
        let id = self
            .create_user("slm", &name, "Sturdy-Pass-9000", &[role])
            .await;
        (id, self.token("slm", &name, "Sturdy-Pass-9000").await)
    }

    /// A Redis subscriber on this app's invalidation channel.
    pub async fn subscribe(&self) -> redis::aio::PubSub {
        let client = redis::Client::open(redis_url()).expect("redis client");
        let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
        pubsub.subscribe(&self.channel).await.expect("subscribe");
        pubsub
    }
}

/// Receives invalidation messages until `n` arrived or `within` passed.
pub async fn receive(pubsub: &mut redis::aio::PubSub, n: usize, within: Duration) -> Vec<Value> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut stream = pubsub.on_message();
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(msg)) => {
                let payload: String = msg.get_payload().expect("payload");
                out.push(serde_json::from_str(&payload).expect("json message"));
            }
            _ => break,
        }
    }
    out
}
