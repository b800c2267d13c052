//! A real Chromium, driven through its chromedriver (Debian's `chromium` and
//! `chromium-driver`, installed by the test command), for the console's tests. Pages are used
//! as a person would: fields by their label, buttons and links by their text.
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::free_port;

pub struct Chrome {
    pub client: Client,
    base: String,
    driver: Child,
    /// The driver's and the browser's temporary directory (their profiles), removed on drop:
    /// a driver that is killed leaves its profile behind.
    /// Held for its removal when the browser is dropped.
    _scratch: Scratch,
}

impl Chrome {
    /// A new browser (its own profile) for the server at `base`.
    pub async fn start(base: &str) -> Self {
        let port = free_port();
        let scratch = Scratch::new();
        let mut driver = Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .env("TMPDIR", &scratch.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (.ci/dev installs chromium-driver)");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--no-first-run", "--disable-extensions"],
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let mut client = None;
        for _ in 0..100 {
            let mut builder =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(caps.clone());
            match builder.connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let Some(client) = client else {
            // Ended before its scratch directory goes, or it would write there again.
            let _ = driver.kill();
            let _ = driver.wait();
            panic!("chromedriver did not answer");
        };
        Self {
            client,
            base: base.to_owned(),
            driver,
            _scratch: scratch,
        }
    }

    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Types `value` into the field labelled `label` (the first one, when several are).
    pub async fn fill(&self, label: &str, value: &str) {
        let label = self
            .client
            .find(Locator::XPath(&format!(
                "//label[normalize-space()={}]",
                xpath_string(label)
            )))
            .await
            .unwrap_or_else(|_| panic!("a field labelled {label:?}"));
        let id = label
            .attr("for")
            .await
            .unwrap()
            .expect("the label names its field");
        let input = self.client.find(Locator::Id(&id)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }

    /// Ticks or unticks the checkbox labelled `label`.
    pub async fn check(&self, label: &str, on: bool) {
        let label = self
            .client
            .find(Locator::XPath(&format!(
                "//label[normalize-space()={}]",
                xpath_string(label)
            )))
            .await
            .unwrap_or_else(|_| panic!("a checkbox labelled {label:?}"));
        let id = label.attr("for").await.unwrap().unwrap();
        let input = self.client.find(Locator::Id(&id)).await.unwrap();
        let checked = input.prop("checked").await.unwrap().as_deref() == Some("true");
        if checked != on {
            input.click().await.unwrap();
        }
    }

    /// Presses the button that says `text`, and waits for the page it leads to.
    pub async fn press(&self, text: &str) {
        let button = self
            .client
            .find(Locator::XPath(&format!(
                "//button[normalize-space()={}]",
                xpath_string(text)
            )))
            .await
            .unwrap_or_else(|_| panic!("a button {text:?}"));
        self.navigating(button.click()).await;
    }

    /// Runs a click that leads to another page, and waits until that page is loaded.
    async fn navigating(
        &self,
        click: impl std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
    ) {
        self.client
            .execute("window.__leaving = true", vec![])
            .await
            .unwrap();
        click.await.unwrap();
        for _ in 0..100 {
            let arrived = self
                .client
                .execute(
                    "return window.__leaving === undefined && document.readyState === 'complete'",
                    vec![],
                )
                .await;
            if matches!(arrived, Ok(serde_json::Value::Bool(true))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether a button says `text`.
    pub async fn has_button(&self, text: &str) -> bool {
        !self
            .client
            .find_all(Locator::XPath(&format!(
                "//button[normalize-space()={}]",
                xpath_string(text)
            )))
            .await
            .unwrap()
            .is_empty()
    }

    /// Follows the link that says `text`.
    pub async fn follow(&self, text: &str) {
        let link = self
            .client
            .find(Locator::XPath(&format!(
                "//a[normalize-space()={}]",
                xpath_string(text)
            )))
            .await
            .unwrap_or_else(|_| panic!("a link {text:?} on {}", self.base));
        self.navigating(link.click()).await;
    }

    pub async fn has_link(&self, text: &str) -> bool {
        !self
            .client
            .find_all(Locator::XPath(&format!(
                "//a[normalize-space()={}]",
                xpath_string(text)
            )))
            .await
            .unwrap()
            .is_empty()
    }

    /// Signs in on the console's sign-in page.
    pub async fn sign_in(&self, username: &str, password: &str) {
        self.open("/console/login").await;
        self.fill("Username or e-mail", username).await;
        self.fill("Password", password).await;
        self.press("Sign in").await;
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        // The browser ends with its driver; then its scratch directory goes (a field, dropped
        // after this).
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The directory where chromedriver and Chromium keep their profiles, removed when dropped:
/// after the browser ends, or when starting it failed (no chromedriver installed).
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("slmtest-chrome-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // A browser that just ended may still be writing for a moment.
        for _ in 0..50 {
            if std::fs::remove_dir_all(&self.0).is_ok() || !self.0.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `text` as an XPath string literal.
fn xpath_string(text: &str) -> String {
    match text.contains('\'') {
        false => format!("'{text}'"),
        true => format!("\"{text}\""),
    }
}
