//! A headless, phone-sized Chromium driven over WebDriver (Debian's `chromium-driver`), for the
//! browser tests: a chromedriver process, sessions, and the few commands the tests use.

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one session of a headless, phone-sized Chromium.
pub struct Driver {
    process: Child,
    base: String,
    client: webdriver_wire::Client,
}

/// A minimal JSON-over-HTTP client for the WebDriver protocol.
mod webdriver_wire {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::{connect::HttpConnector, Client as Hyper};
    use hyper_util::rt::TokioExecutor;
    use serde_json::Value;

    pub struct Client(Hyper<HttpConnector, Full<Bytes>>);

    impl Client {
        pub fn new() -> Client {
            Client(Hyper::builder(TokioExecutor::new()).build_http())
        }

        /// Sends a WebDriver command and returns its `value` (or the error object).
        pub async fn call(
            &self,
            method: &str,
            url: &str,
            body: Option<Value>,
        ) -> Result<Value, Value> {
            let req = http::Request::builder()
                .method(method)
                .uri(url)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(
                    body.map(|b| b.to_string()).unwrap_or_default(),
                )))
                .map_err(|e| Value::String(e.to_string()))?;
            let resp = self
                .0
                .request(req)
                .await
                .map_err(|e| Value::String(e.to_string()))?;
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| Value::String(e.to_string()))?
                .to_bytes();
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| Value::String(e.to_string()))?;
            if v["value"]["error"].is_string() {
                return Err(v["value"].clone());
            }
            Ok(v["value"].clone())
        }
    }
}

impl Driver {
    pub async fn start() -> Driver {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let process = Command::new(driver_path())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver (apt install chromium-driver; scripts/test.sh installs it)");
        let base = format!("http://127.0.0.1:{port}");
        let client = webdriver_wire::Client::new();
        let started = Instant::now();
        while client
            .call("GET", &format!("{base}/status"), None)
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver {
            process,
            base,
            client,
        }
    }

    /// A new session of a headless, phone-sized (390 × 844) Chromium.
    pub async fn session(&self) -> String {
        self.open(json!({})).await
    }

    /// A new session that leaves a page's alerts open, so a test can see whether one was raised.
    pub async fn session_keeping_alerts(&self) -> String {
        self.open(json!({"unhandledPromptBehavior": "ignore"}))
            .await
    }

    /// A new session of a Chromium that does not announce automation (`navigator.webdriver` is
    /// false, as for a person or a scanner that hides itself): pages' scripts behave as for a
    /// person.
    pub async fn session_as_person(&self) -> String {
        self.open_with(json!({}), |options| {
            options["excludeSwitches"] = json!(["enable-automation"]);
            if let Some(args) = options["args"].as_array_mut() {
                args.push(json!("--disable-blink-features=AutomationControlled"));
            }
        })
        .await
    }

    async fn open(&self, extra: Value) -> String {
        self.open_with(extra, |_| {}).await
    }

    async fn open_with(&self, extra: Value, options: impl FnOnce(&mut Value)) -> String {
        let mut always = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_path(),
                // A phone's viewport (headless windows are at least 500 px wide).
                "mobileEmulation": {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0}},
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-component-update",
                         "--window-size=390,844"],
            }
        });
        options(&mut always["goog:chromeOptions"]);
        if let (Some(a), Some(e)) = (always.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        let caps = json!({"capabilities": {"alwaysMatch": always}});
        let v = self
            .client
            .call("POST", &format!("{}/session", self.base), Some(caps))
            .await
            .expect("a Chromium session");
        v["sessionId"].as_str().expect("session id").to_string()
    }

    pub async fn try_cmd(
        &self,
        session: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        self.client
            .call(
                method,
                &format!("{}/session/{session}{path}", self.base),
                body,
            )
            .await
    }

    pub async fn cmd(&self, session: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(session, method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub async fn find_all(&self, session: &str, css: &str) -> Vec<String> {
        let v = self
            .cmd(
                session,
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_string))
            .collect()
    }

    pub async fn find(&self, session: &str, css: &str) -> String {
        self.find_all(session, css)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element for {css}"))
    }

    pub async fn text(&self, session: &str, element: &str) -> String {
        self.cmd(session, "GET", &format!("/element/{element}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn attribute(&self, session: &str, element: &str, name: &str) -> Option<String> {
        self.cmd(
            session,
            "GET",
            &format!("/element/{element}/attribute/{name}"),
            None,
        )
        .await
        .as_str()
        .map(str::to_string)
    }

    pub async fn script(&self, session: &str, script: &str) -> Value {
        self.cmd(
            session,
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Waits until an element matches `css`.
    pub async fn wait_for(&self, session: &str, css: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(e) = self.find_all(session, css).await.into_iter().next() {
                return e;
            }
            let source = self.cmd(session, "GET", "/source", None).await;
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "no {css} in: {source}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, session: &str, element: &str) {
        self.cmd(
            session,
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn driver_path() -> &'static str {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("chromedriver")
}

fn chromium_path() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("chromium")
}
