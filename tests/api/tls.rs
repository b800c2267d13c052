//! TLS to PostgreSQL and Redis, as the deployment guide describes it: one rule for URL and
//! variables, CA files named in every error, `rediss://` with a password.
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::*;
use serde_json::json;
use slm_server::Settings;

/// A throwaway certificate authority and a server certificate for 127.0.0.1 signed by it,
/// made with openssl in a directory of the test's own (removed when dropped).
pub struct TestPki {
    dir: PathBuf,
}

impl TestPki {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("slm-pki-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl is installed (.ci/dev installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=slm-test-ca",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Self { dir }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn settings(vars: &[(&str, String)]) -> Result<Settings, String> {
    let map: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Settings::from_lookup(&|name| map.get(name).cloned()).map_err(|e| e.to_string())
}

/// The test server's certificate, as its own CA (Debian's PostgreSQL serves the "snakeoil"
/// self-signed certificate for `localhost`).
async fn server_certificate() -> String {
    let mut conn =
        <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{}/postgres", pg_base()))
            .await
            .unwrap();
    let (ssl, file): (String, String) =
        sqlx::query_as("SELECT current_setting('ssl'), current_setting('ssl_cert_file')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        ssl, "on",
        "the test PostgreSQL must serve TLS (Debian's does by default)"
    );
    let path = if Path::new(&file).is_absolute() {
        file
    } else {
        let dir: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        format!("{dir}/{file}")
    };
    assert!(
        std::fs::File::open(&path).is_ok(),
        "the server certificate {path} is readable"
    );
    path
}

#[tokio::test]
async fn postgres_tls_follows_one_rule_for_urls_and_variables() {
    let dbs = TestDatabases::new();
    let cert = server_certificate().await;
    let pki = TestPki::new();
    let localhost = pg_base().replace("127.0.0.1", "localhost");
    let url = |db: &str| format!("{localhost}/{db}");

    // The URL's own parameters: verified against the server's certificate, it connects.
    let verified = settings(&[(
        "SLM_DATABASE_URL",
        format!(
            "{}?sslmode=verify-full&sslrootcert={cert}",
            url(&dbs.names.0)
        ),
    )])
    .unwrap();
    assert!(
        verified.slm_db.describe().contains("sslmode=verify-full"),
        "{}",
        verified.slm_db.describe()
    );
    slm_server::migrate_up(slm_server::RealmId::Slm, &verified.slm_db.options)
        .await
        .expect("verify-full against the server's own certificate");

    // The variables apply to a URL too, and win over its parameters: a CA that did not sign
    // the server's certificate fails, and the error names the file.
    let wrong = settings(&[
        (
            "SLM_DATABASE_URL",
            format!("{}?sslmode=disable", url(&dbs.names.0)),
        ),
        ("SLM_POSTGRES_SSLMODE", "verify-full".into()),
        ("SLM_POSTGRES_SSLROOTCERT", pki.path("ca.pem")),
    ])
    .unwrap();
    let described = wrong.slm_db.describe();
    assert!(
        described.contains("sslmode=verify-full") && described.contains(&pki.path("ca.pem")),
        "{described}"
    );
    let err = match slm_server::Application::build(wrong).await {
        Ok(_) => panic!("a CA that did not sign the server's certificate must fail"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains(&pki.path("ca.pem")),
        "the error names the CA file: {err}"
    );

    // A CA file that is not there stops start-up at once, naming it and its variable.
    let missing = format!("{}/no-such-ca.pem", pki.path(""));
    let err = settings(&[
        ("AUTOBOT_DATABASE_URL", url(&dbs.names.1)),
        ("AUTOBOT_POSTGRES_SSLROOTCERT", missing.clone()),
    ])
    .unwrap_err();
    assert!(
        err.contains(&missing) && err.contains("AUTOBOT_POSTGRES_SSLROOTCERT"),
        "{err}"
    );
    let err = settings(&[(
        "AUTOBOT_DATABASE_URL",
        format!(
            "{}?sslmode=verify-ca&sslrootcert={missing}",
            url(&dbs.names.1)
        ),
    )])
    .unwrap_err();
    assert!(
        err.contains(&missing) && err.contains("AUTOBOT_DATABASE_URL"),
        "{err}"
    );
}

#[tokio::test]
async fn redis_over_tls_with_a_password() {
    let pki = TestPki::new();
    let port = free_port();
    let args: Vec<String> = [
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--tls-cert-file",
        &pki.path("server.pem"),
        "--tls-key-file",
        &pki.path("server.key"),
        "--tls-ca-cert-file",
        &pki.path("ca.pem"),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "redis-test-pass",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let redis = ThrowawayRedis::start(port, &args);
    redis.wait_ready().await;
    let url = format!("rediss://:redis-test-pass@127.0.0.1:{port}");
    let app = spawn_app_with(Options {
        vars: vec![
            ("REDIS_URL", url.clone()),
            ("REDIS_CA_FILE", pki.path("ca.pem")),
        ],
        ..Options::default()
    })
    .await;
    let ready = app
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(ready.body["checks"]["redis"], "ok", "{}", ready.body);

    // Invalidations arrive over TLS.
    let client = redis::Client::build_with_tls(
        url.as_str(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(pki.path("ca.pem")).unwrap()),
        },
    )
    .unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe(&app.channel).await.unwrap();
    let id = app
        .create_user("autobot", "over-tls", "Sturdy-Pass-9000", &["user"])
        .await;
    let msgs = receive(&mut sub, 1, std::time::Duration::from_secs(5)).await;
    assert_eq!(msgs.first().map(|m| m["user_id"].clone()), Some(json!(id)));

    // Without the CA, the server's certificate is not trusted: Redis is reported down, and
    // the server still serves (degraded).
    let untrusting = spawn_app_with(Options {
        vars: vec![("REDIS_URL", url)],
        ..Options::default()
    })
    .await;
    let ready = untrusting
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(
        (
            ready.body["status"].as_str(),
            ready.body["checks"]["redis"].as_str()
        ),
        (Some("degraded"), Some("unavailable"))
    );
}
