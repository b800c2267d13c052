//! Reads, writes, logins and memory against the limits of the machine (`cargo bench --bench
//! reads`): prints figures, asserts nothing about speed (machines are shared and noisy). Needs
//! PostgreSQL and Redis like the tests, and `pgbench`.
//!
//! The server is the release binary in its own process on fresh databases; the load comes from
//! this process over loopback. CPU per request is read from /proc: the server's own process,
//! and every `postgres` process together (so run it on a quiet machine: another program's
//! queries count too).
//!
//! 1. resident memory: fresh, after one login, at the peak of a 16-way login burst, and 10 s
//!    after it;
//! 2. authenticated `GET /api/autobot-users/{id}` by 16 clients, against `pgbench -M prepared`
//!    selecting the same row of the same table by primary key (the limit), with CPU per
//!    request: with a session's token, then with an API key (whose every use is counted);
//! 3. `PATCH` of a user (with its audit event and outbox message), PostgreSQL CPU per request;
//! 4. logins per second against raw Argon2id verifications per second, server CPU per login
//!    against one raw verification;
//! 5. the reads of 2 again on a second server that reaches PostgreSQL as docs/deployment.md
//!    advises for a database on the same host: its Unix socket, pools of two connections per
//!    core (pgbench through the same socket).
#![allow(clippy::unwrap_used, dead_code)]

#[path = "../api/helpers.rs"]
mod helpers;
mod proc;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier as _, Version};
use helpers::*;
use proc::{cpu_of, postgres_cpu, rss_mib};
use serde_json::json;

const SECONDS: u64 = 10;
const CLIENTS: usize = 16;
const PASSWORD: &str = "Bench-Password-123";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How the server reaches PostgreSQL.
struct Transport {
    /// The directory of PostgreSQL's Unix socket, or TCP as the tests connect.
    socket: Option<String>,
    pool: usize,
}

/// A database URL through `transport`'s socket, if it has one.
fn through(url: &str, transport: &Transport) -> String {
    match &transport.socket {
        Some(dir) => format!("{url}?host={dir}"),
        None => url.to_owned(),
    }
}

/// The directory of PostgreSQL's Unix socket, if it has one (`psql` asks it).
fn socket_directory(database_url: &str) -> Option<String> {
    let out = Command::new("psql")
        .args([database_url, "-Atc", "SHOW unix_socket_directories"])
        .output()
        .ok()?;
    let dirs = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let dir = dirs.split(',').next()?.trim().to_owned();
    (out.status.success() && std::path::Path::new(&dir).is_dir()).then_some(dir)
}

async fn start_server(transport: &Transport) -> (TestApp, Server, u32) {
    let mut vars = test_vars(Options {
        vars: vec![
            ("LOCKOUT_THRESHOLD", "1000000".into()),
            ("PASSWORD_HASH_QUEUE", "10000".into()),
            ("SLM_DB_POOL_SIZE", transport.pool.to_string()),
            ("AUTOBOT_DB_POOL_SIZE", transport.pool.to_string()),
        ],
        ..Options::default()
    });
    let port = free_port();
    vars.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
    // The server connects through the transport; this process (set-up, clean-up) by TCP.
    let mut server_vars = vars.clone();
    for url in ["SLM_DATABASE_URL", "AUTOBOT_DATABASE_URL"] {
        server_vars.insert(url.into(), through(&vars[url], transport));
    }
    let log = server_log();
    let child = Command::new(env!("CARGO_BIN_EXE_slm-server"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&server_vars)
        // The allocator's options, to compare them (the server's own choice otherwise).
        .envs(std::env::vars().filter(|(name, _)| name.starts_with("MIMALLOC_")))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let server = Server(child);
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client
        .get(format!("{address}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (TestApp::connect(address, vars).await, server, pid)
}

/// Runs `clients` loops of `op` for `SECONDS`; the number of successful operations.
async fn flood<F, Fut>(clients: usize, op: F) -> u64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    if op().await {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    total
}

fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19_456, 2, 1, None).unwrap(),
    )
}

/// Raw verifications per second, one thread per core, and CPU seconds per verification.
fn raw_verify(cores: usize) -> (f64, f64) {
    use argon2::PasswordHasher as _;
    let hash = argon2()
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let before = cpu_of(std::process::id());
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let hash = hash.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let parsed = PasswordHash::new(&hash).unwrap();
                    assert!(
                        argon2()
                            .verify_password(PASSWORD.as_bytes(), &parsed)
                            .is_ok()
                    );
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let cpu = cpu_of(std::process::id()) - before;
    (total as f64 / SECONDS as f64, cpu / total as f64)
}

/// The pgbench limit: `clients` sessions selecting one row of `users` by primary key.
fn pgbench(database_url: &str, id: &str) -> f64 {
    let script = std::env::temp_dir().join("slm-bench-pk.sql");
    std::fs::write(
        &script,
        format!("SELECT id, username, email FROM users WHERE id = '{id}';\n"),
    )
    .unwrap();
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &CLIENTS.to_string(),
            "-j",
            "2",
            "-T",
            &SECONDS.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(database_url)
        .output()
        .expect("pgbench is installed (postgresql-contrib or the server package)");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("pgbench: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::main]
async fn main() {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let tcp = Transport {
        socket: None,
        pool: 20,
    };
    let (app, _server, pid) = start_server(&tcp).await;
    let mut report = vec![format!(
        "machine: {cores} cores; server, PostgreSQL and this load generator share them"
    )];

    // 1. Memory, each figure a second after the work (the allocator returns what was freed
    // after 200 ms unused).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fresh = rss_mib(pid);
    app.create_user("slm", "bench", PASSWORD, &["viewer"]).await;
    let admin = app.admin().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_login = rss_mib(pid);
    let url = app.url("/api/slm-auth/login");
    let burst: Vec<_> = (0..CLIENTS * 4)
        .map(|_| {
            let (client, url) = (app.client.clone(), url.clone());
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({"username": "bench", "password": PASSWORD}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            })
        })
        .collect();
    let mut peak = 0.0_f64;
    while burst.iter().any(|h| !h.is_finished()) {
        peak = peak.max(rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let settled = rss_mib(pid);
    report.push(format!(
        "resident memory, MiB: fresh {fresh:.0}, after one login {after_login:.0}, \
         peak of {} concurrent logins {peak:.0}, 10 s later {settled:.0}",
        CLIENTS * 4
    ));

    // 2. Authenticated reads against the pgbench limit.
    let target = app
        .create_user("autobot", "read-target", PASSWORD, &["user"])
        .await;
    report.push(reads(&app, pid, ("a session's token", &admin), &target, &tcp).await);
    // 2b. The same reads with an API key, whose every use is counted beside the request.
    let key = app
        .post(
            "/api/slm-auth/me/api-keys",
            &admin,
            json!({"name": "bench", "expires_days": 1}),
        )
        .await;
    let key = key.body["key"].as_str().expect("an API key").to_owned();
    report.push(reads(&app, pid, ("an API key", &key), &target, &tcp).await);
    // 3. PATCH.
    let patches = 500;
    let (server_before, pg_before) = (cpu_of(pid), postgres_cpu());
    for i in 0..patches {
        let answer = app
            .patch(
                &format!("/api/autobot-users/{target}"),
                &admin,
                json!({"display_name": format!("Reader {i}")}),
            )
            .await;
        assert_eq!(answer.status, 200);
    }
    let (server_cpu, pg_cpu) = (cpu_of(pid) - server_before, postgres_cpu() - pg_before);
    report.push(format!(
        "PATCH /api/autobot-users/{{id}} (+ audit + outbox), one client: CPU per request: \
         PostgreSQL {:.3} ms, server {:.3} ms",
        pg_cpu * 1000.0 / patches as f64,
        server_cpu * 1000.0 / patches as f64
    ));

    // 4. Logins against raw verifications.
    let (raw, raw_cpu) = raw_verify(cores);
    let (client, url) = (app.client.clone(), app.url("/api/slm-auth/login"));
    let login = move || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .post(url)
                .json(&json!({"username": "bench", "password": PASSWORD}))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    };
    let server_before = cpu_of(pid);
    let logins = flood(cores * 4, login).await;
    let server_cpu = cpu_of(pid) - server_before;
    let login_rate = logins as f64 / SECONDS as f64;
    report.push(format!(
        "logins {login_rate:.1}/s against {raw:.1} raw Argon2id verifications/s: {:.2}; server CPU \
         per login {:.1} ms = {:.2} × a raw verification ({:.1} ms)",
        login_rate / raw,
        server_cpu * 1000.0 / logins as f64,
        server_cpu / logins as f64 / raw_cpu,
        raw_cpu * 1000.0
    ));

    // 5. The reads again as docs/deployment.md advises for a database on the same host: its
    // Unix socket and pools of two connections per core.
    drop(_server);
    match socket_directory(&app.var("AUTOBOT_DATABASE_URL")) {
        Some(dir) => {
            let local = Transport {
                socket: Some(dir),
                pool: 2 * cores,
            };
            let (app, _server, pid) = start_server(&local).await;
            let admin = app.admin().await;
            let target = app
                .create_user("autobot", "read-target", PASSWORD, &["user"])
                .await;
            report.push(reads(&app, pid, ("a session's token", &admin), &target, &local).await);
        }
        None => report.push("no Unix socket of PostgreSQL found: reads through it skipped".into()),
    }
    for line in report {
        println!("{line}");
    }
    // The servers' log is kept only when a run fails.
    let _ = std::fs::remove_file(server_log());
}

/// Where the servers write their log (its path is named when a server does not start).
fn server_log() -> std::path::PathBuf {
    std::env::temp_dir().join("slm-server-bench-reads.log")
}

/// Authenticated `GET /api/autobot-users/{target}` by `CLIENTS` clients against the pgbench
/// limit through the same transport, with CPU per request.
async fn reads(
    app: &TestApp,
    pid: u32,
    (credential, secret): (&str, &str),
    target: &str,
    transport: &Transport,
) -> String {
    let (client, read_url) = (
        app.client.clone(),
        app.url(&format!("/api/autobot-users/{target}")),
    );
    let token = secret.to_owned();
    let read = move || {
        let (client, url, token) = (client.clone(), read_url.clone(), token.clone());
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    };
    flood(CLIENTS, read.clone()).await; // warm up: pools, plans, caches
    let (server_before, pg_before) = (cpu_of(pid), postgres_cpu());
    let reads = flood(CLIENTS, read).await;
    let (server_cpu, pg_cpu) = (cpu_of(pid) - server_before, postgres_cpu() - pg_before);
    let limit = pgbench(
        &through(&app.var("AUTOBOT_DATABASE_URL"), transport),
        target,
    );
    let rate = reads as f64 / SECONDS as f64;
    // pgbench's sessions have just ended: their CPU reaches the postmaster's count of its
    // ended children when it reaps them, which must not fall into the next window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let how = match &transport.socket {
        Some(_) => "Unix socket",
        None => "TCP as the tests connect",
    };
    format!(
        "GET /api/autobot-users/{{id}} with {credential}, {CLIENTS} clients, {how}, pools of {}: \
         {rate:.0}/s = \
         {:.2} of the pgbench primary-key limit ({limit:.0}/s); CPU per request: PostgreSQL \
         {:.3} ms, server {:.3} ms",
        transport.pool,
        rate / limit,
        pg_cpu * 1000.0 / reads as f64,
        server_cpu * 1000.0 / reads as f64
    )
}
