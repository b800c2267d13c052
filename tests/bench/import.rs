//! Import benchmark (`cargo bench --bench import`): times `slm-server import-users` on a CSV of
//! 100,000 AutoBot users with bcrypt hashes (kept as they are: an import never hashes), into a
//! fresh database. Prints the figure and asserts nothing about speed. Needs PostgreSQL and
//! Redis like the tests. `BENCH_IMPORT_ROWS` changes the size.
#![allow(clippy::unwrap_used, dead_code)]

#[path = "../api/helpers.rs"]
mod helpers;

use std::io::Write as _;
use std::time::Instant;

use helpers::*;
use slm_server::RealmId;
use slm_server::cli;

/// One real bcrypt hash (cost 4), the same on every row: its value does not matter to the import.
const HASH: &str = "$2b$04$abcdefghijklmnopqrstuuJ3p8G2y7q7K5yX0Yxq6s3sCw9zK5v2a";

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("BENCH_IMPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let app = spawn_app().await;
    let file = std::env::temp_dir().join(format!("slm-import-bench-{}.csv", std::process::id()));
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(
            out,
            "username,email,display_name,password_hash,roles,is_active"
        )
        .unwrap();
        for i in 0..rows {
            writeln!(
                out,
                "user{i},user{i}@example.com,\"Doe, Jane {i}\",{HASH},user,true"
            )
            .unwrap();
        }
    }
    let started = Instant::now();
    let imported = cli::import_users(&app.settings(), RealmId::Autobot, &file)
        .await
        .unwrap();
    let took = started.elapsed();
    let _ = std::fs::remove_file(&file);
    println!(
        "import-users: {imported} rows in {:.1} s ({:.0} rows/s), CSV with quoted fields, one role each",
        took.as_secs_f64(),
        imported as f64 / took.as_secs_f64()
    );
}
