//! Authentication benchmark (`cargo bench --bench auth`): prints figures, asserts nothing about
//! speed (machines are shared and noisy). Needs PostgreSQL and Redis like the tests
//! (`TEST_DATABASE_URL`, `TEST_REDIS_URL`).
//!
//! The server is the real binary in its own process, configured like a test server on fresh
//! databases; the load comes from this process over loopback, so both share the machine, as does
//! PostgreSQL.
//!
//! 1. raw Argon2id verifications per second on every core, with nothing else running, against
//!    logins per second through the server;
//! 2. refreshes per second, of as many users as sessions, and of one user's many sessions;
//! 3. p99 of an authenticated GET idle, and while a login flood runs (another account's GETs),
//!    in rounds; with a control: the same GETs beside busy loops of the lowest priority.
//!
//! `BENCH_ONLY=get` runs only 3, `BENCH_ONLY=logins` only 1 and 2, `BENCH_ONLY=refreshes` only 2.
#![allow(clippy::unwrap_used, dead_code)]

#[path = "../api/helpers.rs"]
mod helpers;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use argon2::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordVerifier as _, Version};
use helpers::*;
use serde_json::json;

const SECONDS: u64 = 10;
const PASSWORD: &str = "Bench-Password-123";
const GET_SAMPLES: usize = 3000;
const ROUNDS: usize = 3;

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)]
}

/// Verifications per second with one thread per core running `verify` in a loop.
fn verify_rate(cores: usize, verify: fn(&str) -> bool) -> f64 {
    let hash = argon2_id_hash(PASSWORD);
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let hash = hash.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    assert!(verify(&hash));
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    total as f64 / SECONDS as f64
}

/// An Argon2id hash with the server's parameters.
fn argon2_id_hash(password: &str) -> String {
    use argon2::PasswordHasher as _;
    server_argon2()
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

fn server_argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19_456, 2, 1, None).unwrap(),
    )
}

/// The argon2 library's own verification, which the server's hashing pool runs.
fn library_verify(hash: &str) -> bool {
    server_argon2()
        .verify_password(PASSWORD.as_bytes(), &PasswordHash::new(hash).unwrap())
        .is_ok()
}

/// Runs `concurrency` loops of `op` for `SECONDS`; returns successful operations per second.
async fn flood<F, Fut>(concurrency: usize, op: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut handles = Vec::new();
    for _ in 0..concurrency {
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                if op().await {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    total as f64 / SECONDS as f64
}

async fn get_latencies(app: &TestApp, token: &str) -> Vec<Duration> {
    let mut out = Vec::with_capacity(GET_SAMPLES);
    for _ in 0..GET_SAMPLES {
        let start = Instant::now();
        let status = app
            .client
            .get(app.url("/api/slm-auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
        out.push(start.elapsed());
    }
    out
}

/// The server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `slm-server serve` on a free port; returns it once it is ready.
async fn start_server() -> (TestApp, Server) {
    let mut vars = test_vars(Options {
        vars: vec![
            ("LOCKOUT_THRESHOLD", "1000000".into()),
            ("PASSWORD_HASH_QUEUE", "10000".into()),
        ],
        ..Options::default()
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    vars.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
    let log = std::env::temp_dir().join("slm-server-bench.log");
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_slm-server"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&vars)
            // The allocator's options, to compare them (the server's own choice otherwise).
            .envs(std::env::vars().filter(|(name, _)| name.starts_with("MIMALLOC_")))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = client
            .get(format!("{address}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not start; see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (TestApp::connect(address, vars).await, server)
}

/// Refreshes per second by `concurrency` clients, each exchanging its own token chain.
async fn refresh_rate(app: &TestApp, tokens: Vec<String>, concurrency: usize) -> f64 {
    let slots = Arc::new(std::sync::Mutex::new(tokens));
    let (client, url) = (app.client.clone(), app.url("/api/slm-auth/refresh"));
    flood(concurrency, move || {
        let (client, url, slots) = (client.clone(), url.clone(), slots.clone());
        async move {
            let Some(token) = slots.lock().unwrap().pop() else {
                return false;
            };
            let answer = client
                .post(url)
                .json(&json!({"refresh_token": token}))
                .send()
                .await
                .unwrap();
            let ok = answer.status() == 200;
            let body: serde_json::Value = answer.json().await.unwrap();
            if let Some(next) = body["refresh_token"].as_str() {
                slots.lock().unwrap().push(next.to_owned());
            }
            ok
        }
    })
    .await
}

#[tokio::main]
async fn main() {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    // BENCH_ONLY=get, logins or refreshes runs one part.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let get_part = only.is_empty() || only == "get";
    let login_part = only.is_empty() || only == "logins";
    let (app, _server) = start_server().await;
    app.create_user("slm", "bench", PASSWORD, &["viewer"]).await;
    // The GETs are another user's, as a flood against one account would be in production.
    app.create_user("slm", "reader", PASSWORD, &["viewer"])
        .await;
    let token = app.token("slm", "reader", PASSWORD).await;

    // GET latency first, on a fresh server (the floods below leave work to autovacuum):
    // rounds of idle, then during a login flood; the ratio of each round, and
    // their median (one round's p99 rests on its 30 slowest requests: noisy).
    let mut rounds = Vec::new();
    for _ in 0..if get_part { ROUNDS } else { 0 } {
        let idle = get_latencies(&app, &token).await;
        let (loaded, flood_rate) = during_login_flood(&app, &token, cores).await;
        rounds.push((idle, loaded, flood_rate));
    }
    let control = if get_part {
        during_busy_loops(&app, &token, cores).await
    } else {
        Vec::new()
    };

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
    // Logins against the raw rate, in rounds measured back to back (the machine's speed drifts
    // over a minute); the median ratio is the figure.
    let mut login_rounds = Vec::new();
    if login_part {
        for _ in 0..ROUNDS {
            let raw = verify_rate(cores, library_verify);
            let logins = flood(cores * 4, login.clone()).await;
            login_rounds.push((raw, logins));
        }
    }

    // Refreshes: as many sessions as clients, first each of its own user (a fleet's users),
    // then all of one user (one person's many devices).
    let refresh_part = only.is_empty() || only == "logins" || only == "refreshes";
    let mut refreshes = Vec::new();
    if refresh_part {
        let sessions = cores * 8;
        for (n, (what, users)) in [
            ("sessions of as many users", sessions),
            ("sessions of one user", 1),
        ]
        .into_iter()
        .enumerate()
        {
            let mut tokens = Vec::new();
            for i in 0..sessions {
                let name = format!("refresher{n}x{}", i % users);
                if i < users {
                    app.create_user("slm", &name, PASSWORD, &["viewer"]).await;
                }
                let pair = app.login("slm", &name, PASSWORD).await;
                tokens.push(pair.body["refresh_token"].as_str().unwrap().to_owned());
            }
            refreshes.push((
                format!("{sessions} {what}"),
                refresh_rate(&app, tokens, sessions).await,
            ));
        }
    }

    println!("machine: {cores} cores; server, PostgreSQL and this load generator share them");
    println!("raw argon2id verify (m=19456,t=2,p=1) with the argon2 library, one thread per core:");
    let mut login_ratios = Vec::new();
    for (i, (raw, logins)) in login_rounds.iter().enumerate() {
        let ratio = logins / raw;
        login_ratios.push(ratio);
        println!(
            "  round {}: raw verify {raw:.1}/s, logins {logins:.1}/s = {:.0}%",
            i + 1,
            100.0 * ratio
        );
    }
    login_ratios.sort_by(f64::total_cmp);
    if let Some(median) = login_ratios.get(login_ratios.len() / 2) {
        println!(
            "logins: median {:.0}% of the raw verify rate (target >= 90%)",
            100.0 * median
        );
    }
    for (what, rate) in &refreshes {
        println!(
            "refreshes, {what}: {rate:.0}/s = {:.0}/s per core (target >= 1000/s per core)",
            rate / cores as f64
        );
    }
    println!("authenticated GET, {GET_SAMPLES} sequential requests per measurement:");
    let mut ratios = Vec::new();
    for (i, (idle, loaded, flood_rate)) in rounds.iter().enumerate() {
        let ratio = percentile(loaded.clone(), 0.99).as_secs_f64()
            / percentile(idle.clone(), 0.99).as_secs_f64();
        ratios.push(ratio);
        println!("  round {}: p99 ratio {ratio:.2}x", i + 1);
        println!("    idle:               {}", spread(idle));
        println!("    login flood ({flood_rate:.0}/s): {}", spread(loaded));
    }
    ratios.sort_by(f64::total_cmp);
    if let Some(median) = ratios.get(ratios.len() / 2) {
        println!("  median p99 ratio, flood / idle: {median:.2}x (no target)");
        println!(
            "  control, no login but a lowest-priority busy loop per core: {}",
            spread(&control)
        );
    }
}

fn spread(samples: &[Duration]) -> String {
    let at = |p| percentile(samples.to_vec(), p);
    format!(
        "p50 {:.2?}, p90 {:.2?}, p99 {:.2?}, max {:.2?}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

/// GET latencies while `cores * 8` clients log in as fast as they can; also the logins per
/// second meanwhile. The flood runs on its own runtime and client, like clients on other
/// machines: it must not delay the measured GETs inside this process.
async fn during_login_flood(app: &TestApp, token: &str, cores: usize) -> (Vec<Duration>, f64) {
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = {
        let (flooding, url) = (flooding.clone(), app.url("/api/slm-auth/login"));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = reqwest::Client::new();
                let mut flooders = Vec::new();
                for _ in 0..(cores * 8) {
                    let (client, url, flooding) = (client.clone(), url.clone(), flooding.clone());
                    flooders.push(tokio::spawn(async move {
                        let mut n = 0u64;
                        while flooding.load(Ordering::Relaxed) {
                            let ok = client
                                .post(&url)
                                .json(&json!({"username": "bench", "password": PASSWORD}))
                                .send()
                                .await
                                .is_ok_and(|r| r.status() == 200);
                            n += u64::from(ok);
                        }
                        n
                    }));
                }
                let mut total = 0;
                for f in flooders {
                    total += f.await.unwrap();
                }
                total
            })
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let loaded = get_latencies(app, token).await;
    let elapsed = started.elapsed().as_secs_f64() + 1.0;
    flooding.store(false, Ordering::Relaxed);
    let logins = flood.join().unwrap();
    (loaded, logins as f64 / elapsed)
}

/// The control: the same GETs while one busy loop per core runs at the lowest priority in this
/// process, with no login at all. It shows what any CPU-bound work costs the tail of a request
/// on this machine, whatever the server does.
async fn during_busy_loops(app: &TestApp, token: &str, cores: usize) -> Vec<Duration> {
    let spinning = Arc::new(AtomicBool::new(true));
    let spinners: Vec<_> = (0..cores)
        .map(|_| {
            let spinning = spinning.clone();
            std::thread::spawn(move || {
                let idle = thread_priority::unix::ThreadSchedulePolicy::Normal(
                    thread_priority::unix::NormalThreadSchedulePolicy::Idle,
                );
                let _ = thread_priority::unix::set_thread_priority_and_policy(
                    thread_priority::unix::thread_native_id(),
                    thread_priority::ThreadPriority::Min,
                    idle,
                );
                let mut x = 0u64;
                while spinning.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            })
        })
        .collect();
    let latencies = get_latencies(app, token).await;
    spinning.store(false, Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
    latencies
}
