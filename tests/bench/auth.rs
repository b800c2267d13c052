//! Authentication benchmark (`cargo bench --bench auth`): prints figures, asserts nothing about
//! speed (machines are shared and noisy). Needs PostgreSQL and Redis like the tests
//! (`TEST_DATABASE_URL`, `TEST_REDIS_URL`).
//!
//! 1. raw Argon2id verifications per second on this machine (all cores) vs logins per second;
//! 2. refreshes per second;
//! 3. p99 of an authenticated GET idle, and while a login flood runs.
#![allow(clippy::unwrap_used, dead_code)]

#[path = "../api/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use helpers::*;
use serde_json::json;

const SECONDS: u64 = 5;

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)]
}

async fn raw_verify_rate() -> f64 {
    let hash = slm_server::auth::password::hash_blocking("Bench-Password-123").unwrap();
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut handles = Vec::new();
    for _ in 0..cores {
        let hash = hash.clone();
        handles.push(tokio::task::spawn_blocking(move || {
            let mut n = 0u64;
            while Instant::now() < deadline {
                assert!(
                    slm_server::auth::password::verify_blocking("Bench-Password-123", &hash).ok
                );
                n += 1;
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

/// Runs `concurrency` loops of `op` for `SECONDS`; returns operations per second.
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

async fn get_latencies(app: &TestApp, token: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
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

#[tokio::main]
async fn main() {
    let app = spawn_app_with(Options {
        vars: vec![
            ("LOCKOUT_THRESHOLD", "1000000".into()),
            ("PASSWORD_HASH_QUEUE", "10000".into()),
        ],
        ..Options::default()
    })
    .await;
    app.create_user("slm", "bench", "Bench-Password-123", &["viewer"])
        .await;
    let token = app.token("slm", "bench", "Bench-Password-123").await;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);

    let raw = raw_verify_rate().await;
    let (client, url) = (app.client.clone(), app.url("/api/slm-auth/login"));
    let logins = flood(cores * 4, move || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .post(url)
                .json(&json!({"username": "bench", "password": "Bench-Password-123"}))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;

    let refresh_tokens: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..(cores * 8) {
            v.push(
                app.login("slm", "bench", "Bench-Password-123").await.body["refresh_token"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        v
    };
    let slots = std::sync::Arc::new(tokio::sync::Mutex::new(refresh_tokens));
    let (client, url) = (app.client.clone(), app.url("/api/slm-auth/refresh"));
    let refreshes = flood(cores * 8, move || {
        let (client, url, slots) = (client.clone(), url.clone(), slots.clone());
        async move {
            let Some(token) = slots.lock().await.pop() else {
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
                slots.lock().await.push(next.to_owned());
            }
            ok
        }
    })
    .await;

    let idle = get_latencies(&app, &token, 400).await;
    let (client, url) = (app.client.clone(), app.url("/api/slm-auth/login"));
    let stop = Instant::now() + Duration::from_secs(SECONDS + 2);
    let mut flooders = Vec::new();
    for _ in 0..(cores * 8) {
        let (client, url) = (client.clone(), url.clone());
        flooders.push(tokio::spawn(async move {
            while Instant::now() < stop {
                let _ = client
                    .post(&url)
                    .json(&json!({"username": "bench", "password": "Bench-Password-123"}))
                    .send()
                    .await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = get_latencies(&app, &token, 400).await;
    for f in flooders {
        let _ = f.await;
    }

    let (idle99, loaded99) = (percentile(idle, 0.99), percentile(loaded, 0.99));
    println!("machine: {} cores", cores);
    println!("raw argon2id verify (m=19456,t=2,p=1): {raw:.1}/s");
    println!(
        "logins: {logins:.1}/s = {:.0}% of raw verify (target >= 90%)",
        100.0 * logins / raw
    );
    println!(
        "refreshes: {refreshes:.0}/s = {:.0}/s per core (target >= 1000/s per core)",
        refreshes / cores as f64
    );
    println!(
        "authenticated GET p99: idle {idle99:?}, during login flood {loaded99:?} = {:.1}x (target < 3x)",
        loaded99.as_secs_f64() / idle99.as_secs_f64()
    );
}
