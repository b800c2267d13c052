//! Identity providers for the SSO tests, each started by the test that needs it and stopped
//! when dropped: a real OpenID provider (the certified `oidc-provider` npm package, run by
//! node, installed under `target/idp` on first use), a real LDAP server (Debian's `slapd`, a
//! private instance with a tree the test loads), a browser (cookies, no automatic redirects),
//! and a stand-in of GitHub's three OAuth endpoints, which no test can reach for real.
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};

use crate::helpers::free_port;
use crate::tls::TestPki;

/// The directory the OpenID provider runs from, its packages installed once per run (`npm ci`
/// when the lock file changed).
fn idp_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/idp");
        std::fs::create_dir_all(&dir).unwrap();
        let lock = std::fs::read(source.join("package-lock.json")).unwrap();
        let installed = std::fs::read(dir.join("package-lock.json")).ok();
        for file in ["package.json", "package-lock.json", "oidc.mjs"] {
            std::fs::copy(source.join(file), dir.join(file)).unwrap();
        }
        if installed.as_deref() != Some(&lock[..])
            || !dir.join("node_modules/oidc-provider").exists()
        {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--silent"])
                .current_dir(&dir)
                .output()
                .expect("npm is installed (.ci/dev installs it)");
            assert!(
                out.status.success(),
                "npm ci: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
}

/// A running process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The OpenID provider: its issuer, its one client, and the accounts it knows.
pub struct OidcProvider {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    _process: Process,
}

impl OidcProvider {
    /// A provider whose client may redirect to `redirect_uris`, with these accounts.
    pub fn start(redirect_uris: &[String], accounts: Value) -> Self {
        let port = free_port();
        let (client_id, client_secret) = ("slm-test".to_owned(), "provider-secret-9f2k".to_owned());
        let clients = json!([{"client_id": client_id, "client_secret": client_secret,
                              "redirect_uris": redirect_uris}]);
        let mut child = Command::new("node")
            .arg("oidc.mjs")
            .current_dir(idp_dir())
            .env("PORT", port.to_string())
            .env("CLIENTS", clients.to_string())
            .env("ACCOUNTS", accounts.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node is installed (.ci/dev installs it)");
        let stdout = child.stdout.take().unwrap();
        let process = Process(child);
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.starts_with("ready"));
        assert!(ready, "the OpenID provider did not start");
        // The rest of its output is read, so that it never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            issuer: format!("http://127.0.0.1:{port}"),
            client_id,
            client_secret,
            _process: process,
        }
    }

    /// From now on, ID tokens are signed with a key the provider does not publish (or again
    /// with its own).
    pub async fn sign_with_another_key(&self, on: bool) {
        let mode = if on { "other_key" } else { "normal" };
        let answer = Client::new()
            .post(format!("{}/__test/mode?id_token={mode}", self.issuer))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204);
    }
}

/// A browser: keeps cookies, follows no redirect by itself.
pub struct Browser {
    pub client: Client,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            client: Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// Where a redirect answer points, made absolute against `url`.
    fn location(url: &str, answer: &reqwest::Response) -> Option<String> {
        let location = answer.headers().get("location")?.to_str().ok()?;
        Some(Url::parse(url).ok()?.join(location).ok()?.to_string())
    }

    /// Follows redirects from `url` until one leads to `stop` (a URL prefix): that URL.
    pub async fn follow_until(&self, mut url: String, stop: &str) -> String {
        for _ in 0..10 {
            if url.starts_with(stop) {
                return url;
            }
            let answer = self.client.get(&url).send().await.unwrap();
            match Self::location(&url, &answer) {
                Some(next) => url = next,
                None => panic!("{url} answered {} without a redirect", answer.status()),
            }
        }
        panic!("too many redirects from {url}");
    }

    /// Signs in at the OpenID provider's login page (any password) as `login`, starting from
    /// the authorization URL; the URL of the redirect back to `callback_prefix`.
    pub async fn sign_in_at_provider(
        &self,
        authorization_url: &str,
        login: &str,
        callback_prefix: &str,
    ) -> String {
        let interaction = self
            .follow_until(authorization_url.to_owned(), "http://127.0.0.1")
            .await;
        let interaction = match interaction.contains("/interaction/") {
            true => interaction,
            false => {
                let answer = self.client.get(&interaction).send().await.unwrap();
                Self::location(&interaction, &answer).expect("the login page")
            }
        };
        let page = self.client.get(&interaction).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "the provider's login page");
        let html = page.text().await.unwrap();
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a login form");
        let action = Url::parse(&interaction)
            .unwrap()
            .join(action)
            .unwrap()
            .to_string();
        let answer = self
            .client
            .post(&action)
            .form(&[("prompt", "login"), ("login", login), ("password", "any")])
            .send()
            .await
            .unwrap();
        let next = Self::location(&action, &answer).expect("a redirect after the login");
        self.follow_until(next, callback_prefix).await
    }

    /// The redirect the server answers `url` with.
    pub async fn redirect_of(&self, url: &str) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let answer = self.client.get(url).send().await.unwrap();
        let location = answer
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (answer.status(), location, answer.headers().clone())
    }
}

/// A private slapd: a tree under `dc=example,dc=org` with people, contractors (outside the
/// search base) and groups; StartTLS with a certificate of the test's own CA, and binds
/// refused without TLS.
pub struct Directory {
    pub port: u16,
    pub ca_pem: String,
    dir: PathBuf,
    _pki: TestPki,
    _process: Process,
}

pub const DIRECTORY_READER: &str = "cn=reader,dc=example,dc=org";
pub const DIRECTORY_READER_PASSWORD: &str = "reader-pw-7Hq2";

impl Directory {
    pub async fn start() -> Self {
        let pki = TestPki::new();
        let dir = std::env::temp_dir().join(format!("slm-ldap-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let config = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
security simple_bind=128
database mdb
suffix \"dc=example,dc=org\"
rootdn \"cn=admin,dc=example,dc=org\"
rootpw admin-pw-unused
directory {dir}/db
maxsize 10485760
access to attrs=userPassword by anonymous auth by * none
access to * by * read
",
            dir = dir.display(),
            ca = pki.path("ca.pem"),
            cert = pki.path("server.pem"),
            key = pki.path("server.key"),
        );
        std::fs::write(dir.join("slapd.conf"), config).unwrap();
        std::fs::write(dir.join("tree.ldif"), TREE).unwrap();
        let load = Command::new("slapadd")
            .args(["-f", "slapd.conf", "-l", "tree.ldif"])
            .current_dir(&dir)
            .output()
            .expect("slapd is installed (.ci/dev installs it)");
        assert!(
            load.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&load.stderr)
        );
        let port = free_port();
        let child = Command::new("slapd")
            .args([
                "-f",
                "slapd.conf",
                "-h",
                &format!("ldap://127.0.0.1:{port}/"),
                "-d",
                "0",
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd is installed (.ci/dev installs it)");
        let process = Process(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ca_pem = std::fs::read_to_string(pki.path("ca.pem")).unwrap();
        Self {
            port,
            ca_pem,
            dir,
            _pki: pki,
            _process: process,
        }
    }

    pub fn uri(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const TREE: &str = "dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: cn=reader,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: reader-pw-7Hq2

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=contractors,dc=example,dc=org
objectClass: organizationalUnit
ou: contractors

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=lena,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: lena
cn: Lena Ldap
sn: Ldap
mail: lena@example.org
userPassword: lena-pw-3Zt8

dn: uid=omar,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: omar
cn: Omar Ops
sn: Ops
mail: omar@example.org
userPassword: omar-pw-5Kd1

dn: uid=carl,ou=contractors,dc=example,dc=org
objectClass: inetOrgPerson
uid: carl
cn: Carl Contractor
sn: Contractor
mail: carl@example.org
userPassword: carl-pw-8Wq4

dn: cn=fleet-ops,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: fleet-ops
member: uid=omar,ou=people,dc=example,dc=org
";

/// A stand-in of GitHub's OAuth token endpoint and its `/user` and `/user/emails` API,
/// answering for one account: GitHub itself cannot be reached from a test.
pub struct GithubStandIn {
    pub url: String,
    state: Arc<Mutex<StandIn>>,
}

#[derive(Default)]
struct StandIn {
    /// The code the next token request may use, with its PKCE challenge.
    codes: HashMap<String, String>,
    emails: Value,
}

impl GithubStandIn {
    pub async fn start(client_id: &str, client_secret: &str) -> Self {
        use axum::extract::{Form, State};
        use axum::routing::{get, post};
        let state = Arc::new(Mutex::new(StandIn {
            emails: json!([{"email": "gina@example.org", "primary": true, "verified": true}]),
            ..StandIn::default()
        }));
        let (id, secret) = (client_id.to_owned(), client_secret.to_owned());
        let token = move |State(s): State<Arc<Mutex<StandIn>>>,
                          Form(form): Form<HashMap<String, String>>| {
            let (id, secret) = (id.clone(), secret.clone());
            async move {
                use base64::Engine as _;
                use sha2::Digest as _;
                let challenge = s
                    .lock()
                    .unwrap()
                    .codes
                    .remove(form.get("code").map_or("", |c| c.as_str()));
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(sha2::Sha256::digest(verifier.as_bytes()));
                let ok = form.get("client_id") == Some(&id)
                    && form.get("client_secret") == Some(&secret)
                    && challenge == Some(computed);
                axum::response::Json(match ok {
                    true => json!({"access_token": "gho_standin", "token_type": "bearer"}),
                    false => json!({"error": "bad_verification_code"}),
                })
            }
        };
        let user = || async {
            axum::response::Json(json!({"id": 4242, "login": "gina-gh", "name": "Gina Hub"}))
        };
        let emails = |State(s): State<Arc<Mutex<StandIn>>>| async move {
            axum::response::Json(s.lock().unwrap().emails.clone())
        };
        let app = axum::Router::new()
            .route("/login/oauth/access_token", post(token))
            .route("/user", get(user))
            .route("/user/emails", get(emails))
            .route("/", get(|| async { "GitHub stand-in" }))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// GitHub's answer to the authorization URL the server made: a code for its challenge.
    pub fn authorize(&self, authorization_url: &str) -> (String, String) {
        let url = Url::parse(authorization_url).unwrap();
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query["code_challenge_method"], "S256");
        let code = format!("code-{}", uuid::Uuid::new_v4().simple());
        self.state
            .lock()
            .unwrap()
            .codes
            .insert(code.clone(), query["code_challenge"].clone());
        (code, query["state"].clone())
    }

    pub fn set_emails(&self, emails: Value) {
        self.state.lock().unwrap().emails = emails;
    }
}
