//! The one-click page on a phone-sized headless Chromium driven like a person (Debian's
//! `chromium-driver`, WebDriver): the clicked score is shown chosen, a comment typed into the page
//! is sent with Send and counted with its score, and markup in the comment is kept as text and
//! never runs.

use serde_json::{json, Value};
use sondeo_domain::token::LinkClaims;
use sondeo_local::local::DEMO_SURVEY;
use sondeo_tests::local_http::boot;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one session of a headless, phone-sized Chromium.
struct Driver {
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

        /// Sends a WebDriver command and returns its `value`.
        pub async fn call(
            &self,
            method: &str,
            url: &str,
            body: Option<Value>,
        ) -> Result<Value, String> {
            let req = http::Request::builder()
                .method(method)
                .uri(url)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(
                    body.map(|b| b.to_string()).unwrap_or_default(),
                )))
                .map_err(|e| e.to_string())?;
            let resp = self.0.request(req).await.map_err(|e| e.to_string())?;
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            if v["value"]["error"].is_string() {
                return Err(v["value"].to_string());
            }
            Ok(v["value"].clone())
        }
    }
}

impl Driver {
    async fn start() -> Driver {
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

    async fn session(&self) -> String {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_path(),
                // A phone's viewport (headless windows are at least 500 px wide).
                "mobileEmulation": {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0}},
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-component-update",
                         "--window-size=390,844"],
            }
        }}});
        let v = self
            .client
            .call("POST", &format!("{}/session", self.base), Some(caps))
            .await
            .expect("a Chromium session");
        v["sessionId"].as_str().expect("session id").to_string()
    }

    async fn cmd(&self, session: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        self.client
            .call(
                method,
                &format!("{}/session/{session}{path}", self.base),
                body,
            )
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn find(&self, session: &str, css: &str) -> String {
        let v = self
            .cmd(
                session,
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {css}: {v}"))
            .to_string()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_clicked_score_shows_and_a_comment_posts_as_text() {
    let dir = std::env::temp_dir().join(format!("sondeo-form-{:08x}", rand::random::<u32>()));
    let (stack, server, _) = boot(&dir).await;
    stack.ensure_demo_survey().await.unwrap();
    let now = sondeo_domain::time::now_ms() / 1000;
    let token = stack
        .keyring
        .sign(&LinkClaims {
            survey: DEMO_SURVEY.into(),
            touchpoint: "post-purchase".into(),
            respondent: "phone@example.com".into(),
            issued_at: now,
            expires_at: now + 3600,
        })
        .unwrap();
    let driver = Driver::start().await;
    let s = driver.session().await;
    let url = format!("http://{}/r/{token}?score=9", server.addr);
    driver
        .cmd(&s, "POST", "/url", Some(json!({"url": url})))
        .await;
    // The clicked score is shown chosen, on a phone-sized window.
    let nine = driver.find(&s, "input[name=score][value='9']").await;
    assert_eq!(
        driver
            .cmd(&s, "GET", &format!("/element/{nine}/selected"), None)
            .await,
        Value::Bool(true)
    );
    let width = driver
        .cmd(
            &s,
            "POST",
            "/execute/sync",
            Some(json!({"script": "return window.innerWidth", "args": []})),
        )
        .await;
    assert!(width.as_i64().unwrap_or(0) <= 400, "{width}");
    // A comment with markup in it, then Send.
    let comment = "Fast <script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\"> delivery";
    let area = driver.find(&s, "textarea[name=comment]").await;
    driver
        .cmd(
            &s,
            "POST",
            &format!("/element/{area}/value"),
            Some(json!({"text": comment})),
        )
        .await;
    let send = driver.find(&s, "button[type=submit]").await;
    driver
        .cmd(
            &s,
            "POST",
            &format!("/element/{send}/click"),
            Some(json!({})),
        )
        .await;
    let started = Instant::now();
    let thanks = loop {
        let source = driver.cmd(&s, "GET", "/source", None).await;
        let source = source.as_str().unwrap_or_default().to_string();
        if source.contains("Your answer has been recorded. You can close this page.") {
            break source;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no thank-you page: {source}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(thanks.contains("9"), "{thanks}");
    let title = driver.cmd(&s, "GET", "/title", None).await;
    assert_ne!(
        title,
        Value::String("pwned".into()),
        "markup in the comment ran"
    );
    driver.cmd(&s, "DELETE", "", None).await;

    // The answer is counted once, at 9, with the comment kept as the text typed.
    let started = Instant::now();
    let answers = loop {
        let answers = stack.store.all_responses_async(DEMO_SURVEY).await.unwrap();
        if answers.iter().any(|a| !a.click) {
            break answers;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{answers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].score, 9);
    assert_eq!(answers[0].comment.as_deref(), Some(comment));
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
