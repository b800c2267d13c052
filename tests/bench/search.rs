//! User-search benchmark (`cargo bench --bench search`): seeds the AutoBot realm with 10,000,
//! 100,000 and 1,000,000 users and prints p50/p95/p99 of the dashboard's search
//! (`GET /api/autobot-users?search=…&limit=50`) for terms of every frequency (common, about
//! 0.5% of the users, rare, absent) and of the plain list, at each size, each by 16 concurrent
//! clients, with PostgreSQL's CPU per request (every `postgres` process, from /proc: run it on
//! a quiet machine).
//! Asserts nothing about speed (machines are shared and noisy). Needs PostgreSQL and Redis like
//! the tests (`TEST_DATABASE_URL`, `TEST_REDIS_URL`). `BENCH_MAX_USERS` stops earlier.
#![allow(clippy::unwrap_used, dead_code)]

#[path = "../api/helpers.rs"]
mod helpers;
mod proc;

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use helpers::*;

const SAMPLES: usize = 640;
const CLIENTS: usize = 16;
/// Three-letter searches of the kind an admin types; each matches 5% to a third of the users.
const COMMON: &[&str] = &["ali", "son", "mar", "ber", "ann", "tho", "kim", "lee"];
/// Three-character fragments that about 0.4% of the users contain at a million (the numbers in
/// their names), the hardest case for both ways of searching: too many matches to sort cheaply,
/// too few to find 50 soon by walking the newest first.
const MIDDLE: &[&str] = &["123", "456", "789", "314", "271", "618", "905", "842"];
/// Searches for one user or a few.
const RARE: &[&str] = &["4242", "77777", "smith9999", "thomasjones31"];
/// Searches nobody matches.
const ABSENT: &[&str] = &["qqq", "zzx", "nobody-here", "xyzzy"];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Adds users `from..to`: names built from a small vocabulary, as real ones are, so that a
/// three-letter search matches a realistic share of them.
async fn seed(app: &TestApp, from: i64, to: i64) {
    sqlx::query(
        r"WITH first(names) AS (VALUES (ARRAY['alice','bob','carol','mark','anna','thomas','kim',
                 'lee','maria','bernard','jason','olivia','noah','emma','liam','sophia','lucas',
                 'mia','ethan','ava'])),
              last(names) AS (VALUES (ARRAY['smith','johnson','brown','jones','garcia','miller',
                 'davis','wilson','anderson','taylor','moore','jackson','martin','thompson',
                 'white','harris','clark','lewis','robinson','walker']))
          INSERT INTO users (id, org_id, email, username, display_name, is_active, is_verified,
                             mfa_enabled, is_platform_admin, created_at)
          SELECT gen_random_uuid(), (SELECT id FROM organizations LIMIT 1),
                 f || '.' || l || n || '@example.com', f || l || n, initcap(f) || ' ' || initcap(l),
                 true, false, false, false, now() - n * interval '1 second'
          FROM generate_series($1, $2 - 1) n,
               LATERAL (SELECT (SELECT names FROM first)[1 + (n * 7) % 20] AS f,
                               (SELECT names FROM last)[1 + (n * 13 / 20) % 20] AS l) v",
    )
    .bind(from)
    .bind(to)
    .execute(&app.autobot_db)
    .await
    .unwrap();
    // As autovacuum leaves a table in service: statistics, and the trigram index's pending
    // entries merged (a search reads every pending entry until then).
    for table in ["users", "slm_server.user_search"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(&app.autobot_db)
            .await
            .unwrap();
    }
}

/// Latencies of `SAMPLES` requests made by `CLIENTS` concurrent clients, sorted, and
/// PostgreSQL's CPU per request.
async fn latencies(
    app: &TestApp,
    token: &str,
    query: impl Fn(usize) -> String,
) -> (Vec<Duration>, Duration) {
    let pg_before = proc::postgres_cpu();
    let mut samples: Vec<Duration> = futures_util::stream::iter(0..SAMPLES)
        .map(|i| {
            let request = app
                .client
                .get(app.url(&format!("/api/autobot-users?{}", query(i))))
                .bearer_auth(token);
            async move {
                let started = Instant::now();
                let answer = request.send().await.unwrap();
                let status = answer.status();
                let body = answer.bytes().await.unwrap();
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                started.elapsed()
            }
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let pg = (proc::postgres_cpu() - pg_before) / SAMPLES as f64;
    samples.sort();
    (samples, Duration::from_secs_f64(pg.max(0.0)))
}

#[tokio::main]
async fn main() {
    let max: i64 = std::env::var("BENCH_MAX_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let app = spawn_app().await;
    let token = app.admin().await;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    println!("machine: {cores} cores; server, PostgreSQL and this client share them");
    println!(
        "{SAMPLES} requests per figure by {CLIENTS} concurrent clients, limit=50; terms: common \
         {COMMON:?}, middle {MIDDLE:?}, rare {RARE:?}, absent {ABSENT:?}"
    );
    let mut seeded = 0;
    for size in [10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|s| *s <= max)
    {
        let started = Instant::now();
        seed(&app, seeded, size).await;
        seeded = size;
        println!(
            "{size} users (seeded in {:.0} s):",
            started.elapsed().as_secs_f64()
        );
        let term = |terms: &'static [&'static str]| {
            move |i: usize| format!("search={}&limit=50", terms[i % terms.len()])
        };
        // One warm-up pass, so that the figures are of a warm cache, as in service.
        latencies(&app, &token, term(COMMON)).await;
        latencies(&app, &token, term(MIDDLE)).await;
        let figures = [
            (
                "search, common",
                latencies(&app, &token, term(COMMON)).await,
            ),
            (
                "search, middle",
                latencies(&app, &token, term(MIDDLE)).await,
            ),
            ("search, rare  ", latencies(&app, &token, term(RARE)).await),
            (
                "search, absent",
                latencies(&app, &token, term(ABSENT)).await,
            ),
            (
                "list          ",
                latencies(&app, &token, |i| format!("skip={}&limit=50", (i % 20) * 50)).await,
            ),
        ];
        for (what, (samples, pg)) in figures {
            println!(
                "  {what}: p50 {}  p95 {}  p99 {}  PostgreSQL CPU {} per request",
                ms(percentile(&samples, 0.50)),
                ms(percentile(&samples, 0.95)),
                ms(percentile(&samples, 0.99)),
                ms(pg)
            );
        }
    }
}
