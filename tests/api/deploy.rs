//! The deployment files, run for real: the machine's own nginx loads `deploy/nginx-slm.conf` (its
//! addresses, certificate and document root pointed at this test's) in front of a test server,
//! and curl talks to it over HTTP/2 as the dashboard's browser does. A server block that this
//! nginx refuses, that sends one of the server's paths elsewhere, or whose `X-Forwarded-For`
//! lets a client name its own address, fails here.
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::*;
use crate::tls::TestPki;
use serde_json::{Value, json};

/// The shipped server block with each machine-specific line replaced; every replaced line must
/// be found exactly once, so that a change to the file cannot leave this test checking less.
fn server_block(dir: &Path, pki: &TestPki, port: u16, server: u16, closed: u16) -> String {
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nginx-slm.conf"
    ))
    .unwrap();
    let www = dir.join("www");
    for (from, to) in [
        ("listen 443 ", format!("listen 127.0.0.1:{port} ")),
        ("/etc/ssl/slm/fullchain.pem", pki.path("server.pem")),
        ("/etc/ssl/slm/privkey.pem", pki.path("server.key")),
        ("/var/www/slm-dashboard", www.to_string_lossy().into_owned()),
        // slm-server, then the SLM backend and the AutoBot backend, neither of which runs here.
        (
            "server 127.0.0.1:8000;",
            format!("server 127.0.0.1:{server};"),
        ),
        (
            "server 127.0.0.1:8001;",
            format!("server 127.0.0.1:{closed};"),
        ),
        (
            "server 172.16.168.20:8001;",
            format!("server 127.0.0.1:{closed};"),
        ),
    ] {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from:?} in deploy/nginx-slm.conf"
        );
        text = text.replace(from, &to);
    }
    text
}

/// nginx in the foreground with everything it writes in `dir`; stopped when dropped.
struct Nginx {
    child: std::process::Child,
    dir: PathBuf,
}

impl Nginx {
    async fn start(pki: &TestPki, server: u16) -> (Self, u16) {
        let dir = std::env::temp_dir().join(format!("slm-nginx-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::write(dir.join("www/index.html"), DASHBOARD_PAGE).unwrap();
        let (port, closed) = (free_port(), free_port());
        std::fs::write(
            dir.join("slm.conf"),
            server_block(&dir, pki, port, server, closed),
        )
        .unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "worker_processes 1;\npid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
                 uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
                 include {d}/slm.conf;\n}}\n"
            ),
        )
        .unwrap();
        let child = std::process::Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", "daemon off;"])
            .spawn()
            .expect("nginx is installed (.ci/dev installs it)");
        let mut nginx = Self { child, dir };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return (nginx, port);
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx refused the server block ({status}): {}", nginx.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nginx did not listen within 10 s: {}", nginx.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM, not KILL: the master ends its worker before it exits; a killed master would leave
        // the worker holding the port.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const DASHBOARD_PAGE: &str = "<!doctype html><title>SLM dashboard</title>";

/// What curl heard: the HTTP version and status of the last answer, its headers (names in lower
/// case) and its body.
struct Heard {
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Heard {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request through nginx with curl over HTTP/2, verifying nginx's certificate.
async fn curl(pki: &TestPki, port: u16, method: &str, path: &str, extra: &[&str]) -> Heard {
    let mut command = std::process::Command::new("curl");
    command
        .args(["-sS", "--http2", "-i", "-X", method, "--cacert"])
        .arg(pki.path("ca.pem"))
        .args(extra)
        .arg(format!("https://127.0.0.1:{port}{path}"));
    // On a thread of its own: the server under test runs on this test's runtime.
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("curl is installed (.ci/dev installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default().to_owned();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Heard {
        version,
        status,
        headers,
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn nginx_with_the_shipped_server_block_routes_each_path_and_names_the_real_client() {
    // As docs/deployment.md sets it up: only nginx, on 127.0.0.1, is believed about the client.
    let app = spawn_app_with(Options {
        vars: vec![("TRUSTED_PROXIES", "127.0.0.1/32".into())],
        ..Options::default()
    })
    .await;
    let admin = app.admin().await; // the bootstrap password changed to ADMIN_PASSWORD
    let server_port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let pki = TestPki::new();
    let (_nginx, port) = Nginx::start(&pki, server_port).await;

    // The dashboard's files, and its own routes answered with its page.
    for path in ["/", "/settings/users"] {
        let page = curl(&pki, port, "GET", path, &[]).await;
        assert_eq!(
            (page.version.as_str(), page.status),
            ("HTTP/2", 200),
            "{path}"
        );
        assert_eq!(page.body, DASHBOARD_PAGE, "{path}");
    }

    // The dashboard's sign-in and its calls reach this server, with nginx's request id. The
    // browser is at 127.0.0.2 and claims another address, which nginx passes on before the
    // browser's own: the audit trail names the browser's.
    let login = curl(
        &pki,
        port,
        "POST",
        "/api/auth/login",
        &[
            "--interface",
            "127.0.0.2",
            "-H",
            "x-forwarded-for: 203.0.113.9",
            "-H",
            "content-type: application/json",
            "-d",
            &json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string(),
        ],
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let request_id = login.header("x-request-id").unwrap_or_default();
    assert!(
        request_id.len() == 32 && request_id.chars().all(|c| c.is_ascii_hexdigit()),
        "nginx's $request_id, passed on and answered: {request_id:?}"
    );
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    let logins = app
        .get("/api/audit?event_type=login_success&limit=1", &admin)
        .await;
    assert_eq!(
        logins.body["events"][0]["ip"], "127.0.0.2",
        "{}",
        logins.body
    );
    let bearer = format!("authorization: Bearer {token}");
    let me = curl(&pki, port, "GET", "/api/auth/me", &["-H", &bearer]).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["username"], "admin");
    for path in [
        "/api/slm-users",
        "/api/autobot-users?limit=1",
        "/api/autobot-teams",
        "/api/api-keys",
        "/api/sso-providers",
        "/api/audit?limit=1",
    ] {
        let answer = curl(&pki, port, "GET", path, &["-H", &bearer]).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }
    // The server's own pages.
    let console = curl(&pki, port, "GET", "/console/", &[]).await;
    assert_eq!(console.status, 303, "{}", console.body);
    let form = curl(&pki, port, "GET", "/request-access", &[]).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("<form"), "{}", form.body);

    // The SLM backend's paths and the AutoBot backend's go to them (not running here: 502),
    // never to this server, which answers such a path itself with a 404.
    let elsewhere = app.get("/api/fleet/nodes", &token).await;
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.body);
    for path in ["/api/fleet/nodes", "/api/authx", "/autobot-api/auth/me"] {
        let answer = curl(&pki, port, "GET", path, &["-H", &bearer]).await;
        assert_eq!(answer.status, 502, "{path}: {}", answer.body);
    }

    // A body over nginx's limit never reaches the server.
    let big = "x".repeat(70 * 1024);
    let refused = curl(
        &pki,
        port,
        "POST",
        "/api/auth/login",
        &["-H", "content-type: application/json", "-d", &big],
    )
    .await;
    assert_eq!(refused.status, 413, "{}", refused.body);
}
