//! The test harness: the real `Application` on a random port, with fresh databases per test
//! (copies of template databases migrated once per run), its own Redis channel and key prefix,
//! and an HTTP client. Whatever a test creates is dropped when its `TestApp` (or
//! [`TestDatabases`]) goes out of scope, whether the test passed or failed.

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

/// Where PostgreSQL listens, `host:port`: what the tests' proxies forward to.
pub fn pg_address() -> String {
    let options: sqlx::postgres::PgConnectOptions = pg_base().parse().expect("a PostgreSQL URL");
    format!("{}:{}", options.get_host(), options.get_port())
}

/// [`pg_base`] through a proxy listening on `port` of the same host.
pub fn pg_base_via(port: u16) -> String {
    let options: sqlx::postgres::PgConnectOptions = pg_base().parse().expect("a PostgreSQL URL");
    pg_base().replacen(&format!(":{}", options.get_port()), &format!(":{port}"), 1)
}

/// Serves `listener` until the returned task is aborted (or the test ends): each connection it
/// accepts is handed to `relay` with a new connection to PostgreSQL. The task owns the relays,
/// so aborting it closes every connection it forwards.
pub fn proxy_to_postgres<R, F>(
    listener: tokio::net::TcpListener,
    relay: R,
) -> tokio::task::JoinHandle<()>
where
    R: Fn(tokio::net::TcpStream, tokio::net::TcpStream) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let target = pg_address();
    tokio::spawn(async move {
        let mut relays = tokio::task::JoinSet::new();
        while let Ok((inbound, _)) = listener.accept().await {
            while relays.try_join_next().is_some() {}
            let (target, relay) = (target.clone(), relay.clone());
            relays.spawn(async move {
                if let Ok(outbound) = tokio::net::TcpStream::connect(target).await {
                    relay(inbound, outbound).await;
                }
            });
        }
    })
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            slm_server::init_tracing(slm_server::Environment::Local, "info");
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
    /// Where `/metrics` is served when it has a listener of its own (`METRICS_ADDR`).
    pub metrics_address: Option<String>,
    vars: HashMap<String, String>,
    admin_token: tokio::sync::OnceCell<String>,
    _cleanup: Cleanup,
}

/// The databases and Redis keys a test made, removed when dropped (also on panic).
struct Cleanup {
    databases: Vec<String>,
    redis_prefixes: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let databases = std::mem::take(&mut self.databases);
        let prefixes = std::mem::take(&mut self.redis_prefixes);
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with
        // its own.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                drop_databases(&databases).await;
                delete_redis_keys(&prefixes).await;
            });
        });
        let _ = done.join();
    }
}

/// A connection to the `postgres` database, for creating and dropping test databases. The
/// parallel tests share PostgreSQL's connection limit, so a refusal is tried again for a while.
async fn maintenance() -> Option<sqlx::PgConnection> {
    let url = format!("{}/postgres", pg_base());
    for _ in 0..50 {
        if let Ok(conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
            return Some(conn);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

async fn drop_databases(names: &[String]) {
    let Some(mut conn) = maintenance().await else {
        return;
    };
    for name in names {
        // FORCE ends the server's own connections, which may still be open; one that the
        // server opens at that very moment makes the drop fail, so it is tried again.
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        for _ in 0..20 {
            let dropped = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut conn)
                .await;
            if dropped.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

async fn delete_redis_keys(prefixes: &[String]) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    for prefix in prefixes {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> =
                redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
    }
}

/// Databases a test names itself (not through [`spawn_app`]), dropped with this value.
pub struct TestDatabases {
    pub names: (String, String),
    _cleanup: Cleanup,
}

impl TestDatabases {
    pub fn new() -> Self {
        let names = new_database_names();
        Self {
            _cleanup: Cleanup {
                databases: vec![names.0.clone(), names.1.clone()],
                redis_prefixes: Vec::new(),
            },
            names,
        }
    }
}

/// The name of the template database of each realm, migrated once per test run.
async fn templates() -> &'static (String, String) {
    static TEMPLATES: tokio::sync::OnceCell<(String, String)> = tokio::sync::OnceCell::const_new();
    TEMPLATES
        .get_or_init(|| async {
            // The test command names the run, so that it can drop the templates afterwards.
            let run = std::env::var("TEST_RUN_ID")
                .unwrap_or_else(|_| Uuid::new_v4().simple().to_string());
            let names = (
                format!("slmtest_tpl_{run}_slm"),
                format!("slmtest_tpl_{run}_autobot"),
            );
            // Migrated on a thread of its own, so that no connection of this test's runtime
            // outlives it (a template must have no connection when it is copied).
            let (slm, autobot) = names.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    for (realm, name) in [
                        (slm_server::RealmId::Slm, slm),
                        (slm_server::RealmId::Autobot, autobot),
                    ] {
                        let options: sqlx::postgres::PgConnectOptions =
                            format!("{}/{name}", pg_base()).parse().expect("url");
                        slm_server::migrate_up(realm, &options)
                            .await
                            .expect("template migrated");
                    }
                });
            })
            .join()
            .expect("template thread");
            names
        })
        .await
}

/// Creates `name` as a copy of `template` unless it exists.
async fn create_from_template(name: &str, template: &str) {
    let mut conn = maintenance().await.expect("maintenance connection");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .expect("lookup");
    if !exists {
        let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("copy of the template");
    }
}

/// The database name at the end of a URL on the test server, if it is one.
fn test_database(url: &str) -> Option<String> {
    let (server, name) = url.rsplit_once('/')?;
    (server == pg_base() && name.starts_with("slmtest_")).then(|| name.to_owned())
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

/// Two servers on the same databases, as two replicas behind a load balancer.
pub async fn spawn_replicas() -> (TestApp, TestApp) {
    let dbs = new_database_names();
    let replica = || Options {
        vars: vec![],
        databases: Some(dbs.clone()),
    };
    (
        spawn_app_with(replica()).await,
        spawn_app_with(replica()).await,
    )
}

pub fn new_database_names() -> (String, String) {
    let id = Uuid::new_v4().simple().to_string();
    (format!("slmtest_{id}_slm"), format!("slmtest_{id}_autobot"))
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    init_logs();
    let vars = test_vars(options);
    let (slm_template, autobot_template) = templates().await;
    for (var, template) in [
        ("SLM_DATABASE_URL", slm_template),
        ("AUTOBOT_DATABASE_URL", autobot_template),
    ] {
        if let Some(name) = test_database(&vars[var]) {
            create_from_template(&name, template).await;
        }
    }
    let lookup = vars.clone();
    let settings = Settings::from_lookup(&|name| lookup.get(name).cloned()).expect("test settings");
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
    tokio::spawn(app.run_until_stopped());
    let mut test_app = TestApp::connect(address, vars).await;
    test_app.metrics_address = metrics_address;
    test_app
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
        // The parallel tests share PostgreSQL's 100 connections; a test's requests queue for
        // these instead (the defaults, 20 and 40, are for one server on its own). With 8 each,
        // eight tests at once reached 97 of the 100 (each server also holds two listening
        // connections per realm, and each test three of its own per database).
        ("SLM_DB_POOL_SIZE".into(), "4".into()),
        ("AUTOBOT_DB_POOL_SIZE".into(), "4".into()),
        // Eight tests at once on two cores can make a statement or a wait for a connection
        // outlast the realms' default deadlines (1 s for AutoBot, 2 s for SLM), which answers
        // 503 in a test about something else. The tests of the deadlines set their own.
        ("SLM_DB_ACQUIRE_TIMEOUT_MS".into(), "10000".into()),
        ("SLM_DB_STATEMENT_TIMEOUT_MS".into(), "10000".into()),
        ("AUTOBOT_DB_ACQUIRE_TIMEOUT_MS".into(), "10000".into()),
        ("AUTOBOT_DB_STATEMENT_TIMEOUT_MS".into(), "10000".into()),
        (
            "SECRET_KEY".into(),
            "test-secret-test-secret-test-secret-0123".into(),
        ),
        ("ADMIN_BOOTSTRAP_PASSWORD".into(), BOOTSTRAP_PASSWORD.into()),
        ("LOGIN_RATE_LIMIT_PER_MINUTE".into(), "0".into()),
        ("ACCESS_REQUEST_RATE_LIMIT_PER_HOUR".into(), "0".into()),
        ("LOCKOUT_THRESHOLD".into(), "50".into()),
        // bcrypt at cost 12 takes a quarter of a second; tests that need the real cost set it.
        ("AUTOBOT_BCRYPT_COST".into(), "4".into()),
        (
            "RBAC_INVALIDATION_CHANNEL".into(),
            format!("test:{tag}:rbac"),
        ),
        (
            "RBAC_CACHE_KEY".into(),
            format!("test:{tag}:rbac:perm:{{user_id}}"),
        ),
    ]);
    for (k, v) in options.vars {
        vars.insert(k.into(), v);
    }
    vars
}

impl TestApp {
    /// A client of the server at `address`, started with `vars` (by this process or another).
    pub async fn connect(address: String, vars: HashMap<String, String>) -> Self {
        let slm_db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(3)
            .connect(&vars["SLM_DATABASE_URL"])
            .await
            .expect("slm pool");
        // Lazy, for the tests whose AutoBot database is out of reach; 10 s, as the test server's
        // deadlines, for a machine running eight tests on two cores (2 s timed out once).
        let autobot_db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy(&vars["AUTOBOT_DATABASE_URL"])
            .expect("autobot pool");
        let databases = ["SLM_DATABASE_URL", "AUTOBOT_DATABASE_URL"]
            .iter()
            .filter_map(|var| vars[*var].rsplit('/').next())
            .filter(|name| name.starts_with("slmtest_"))
            .map(str::to_owned)
            .collect();
        let redis_prefixes = vec![vars["REDIS_KEY_PREFIX"].clone()];
        Self {
            address,
            // Idle connections are dropped before the server's 20-s keep-alive limit, as
            // nginx's upstream does: a request sent on one the server is closing is lost.
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_idle_timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            slm_db,
            autobot_db,
            channel: vars["INVALIDATION_CHANNEL"].clone(),
            metrics_address: None,
            vars,
            admin_token: tokio::sync::OnceCell::new(),
            _cleanup: Cleanup {
                databases,
                redis_prefixes,
            },
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

    /// How many connections of `realm`'s request pool are in use, as `/metrics` says.
    pub async fn pool_in_use(&self, realm: &str) -> u32 {
        let metrics = self.client.get(self.url("/metrics")).send().await;
        let text = metrics
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        let labels = [format!("realm=\"{realm}\""), "state=\"in_use\"".to_owned()];
        let line = text
            .lines()
            .find(|l| l.starts_with("db_pool_connections{") && labels.iter().all(|x| l.contains(x)))
            .unwrap_or_else(|| panic!("no pool gauge of {realm} in {text}"));
        let value = line.rsplit(' ').next().unwrap_or_default();
        value.parse::<f64>().expect("a number") as u32
    }

    /// Waits (up to 10 s) until no connection of `realm`'s request pool is in use: a
    /// connection goes back to the pool after its request has been answered.
    pub async fn until_pool_at_rest(&self, realm: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.pool_in_use(realm).await > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{realm}'s pool never at rest"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

    /// Presents `refresh_token` to the realm's refresh endpoint.
    pub async fn refresh(&self, realm: &str, refresh_token: &str) -> Answer {
        self.request(
            Method::POST,
            &format!("/api/{realm}-auth/refresh"),
            None,
            Some(json!({"refresh_token": refresh_token})),
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
        self.subscribe_to(&self.channel).await
    }

    /// A Redis subscriber on `channel`.
    pub async fn subscribe_to(&self, channel: &str) -> redis::aio::PubSub {
        let client = redis::Client::open(redis_url()).expect("redis client");
        let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
        pubsub.subscribe(channel).await.expect("subscribe");
        pubsub
    }

    /// A setting the server was started with.
    pub fn var(&self, name: &str) -> String {
        self.vars[name].clone()
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

/// Reads the one value of `sql` every 100 ms, for at most 5 s, until `done` holds of it: for
/// what the server writes beside a request (a key's use) or after answering it (the relay's
/// deletion). The last value read.
pub async fn polled<T>(pool: &PgPool, sql: &'static str, done: impl Fn(&T) -> bool) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    let mut value = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
    for _ in 0..50 {
        if done(&value) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        value = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
    }
    value
}

/// The current TOTP code of a base32 secret (RFC 6238: SHA-1, 6 digits, 30 s), computed as an
/// authenticator app would.
pub fn totp_code(secret_b32: &str) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).expect("base32 secret");
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(secret)
        .build()
        .expect("totp")
        .generate_current()
        .to_string()
}

/// An Argon2id hash with the argon2 crate's defaults, as another system might have made it.
pub fn argon2_hash(password: &str) -> String {
    use argon2::PasswordHasher as _;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2")
        .to_string()
}

/// The role names of a user in an answer (roles are objects).
pub fn role_names(user: &Value) -> Vec<String> {
    user["roles"]
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The items of a list envelope (`{"users": [...], "total", ...}`).
pub fn items<'a>(answer: &'a Answer, key: &str) -> &'a Vec<Value> {
    answer.body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} list in {}", answer.body))
}

/// A redis-server of the test's own, on a free port.
pub struct ThrowawayRedis {
    pub port: u16,
    child: std::process::Child,
}

impl ThrowawayRedis {
    /// `extra` arguments after the defaults (TLS, a password).
    pub fn start(port: u16, extra: &[String]) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/dev installs it)");
        Self { port, child }
    }
    pub async fn wait_ready(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("throwaway redis did not start");
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
