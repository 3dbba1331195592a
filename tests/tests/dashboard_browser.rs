//! The dashboard in a phone-sized headless Chromium driven like a person (Debian's
//! `chromium-driver`, WebDriver), over local mode: logging in through the form, the trend chart,
//! the headline NPS equal to `GET /v1/metrics`'s for the same query, and markup in a comment, a
//! property value, the survey's question and a touchpoint name shown as text, never run.

use serde_json::{json, Value};
use sondeo_tests::local_http::{boot, LocalHttp};
use sondeo_tests::webdriver::Driver;
use std::time::{Duration, Instant};

/// Markup a respondent may type: an element with a handler, and a script.
const PAYLOAD: &str = "<img src=x onerror=alert(1)><script>alert(2)</script>";
/// As hostile as a touchpoint slug may be (lowercase letters, digits, '-' and '_').
const TOUCHPOINT: &str = "script-_img_onerror-1";
const SURVEY: &str = "dash-nps";

/// Creates the survey and posts answers through the public API; returns how many were posted.
async fn seed(http: &LocalHttp, key: &str) -> i64 {
    let auth = format!("Bearer {key}");
    let json_headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let survey = json!({"id": SURVEY, "kind": "nps",
        "question": format!("Would you recommend us? {PAYLOAD}"),
        "touchpoints": [{"slug": TOUCHPOINT, "stage": "conversion"}, {"slug": "support", "stage": "retention"}],
        "public_key": "pk_dashboard_test"});
    let (status, body) = http
        .status_and_body("POST", "/v1/surveys", &json_headers, &survey.to_string())
        .await;
    assert_eq!(status, 201, "{body}");
    let answers = [
        (
            TOUCHPOINT,
            10,
            Some(PAYLOAD),
            json!({"plan": PAYLOAD, "country": "FR"}),
        ),
        (TOUCHPOINT, 9, None, json!({"plan": "pro"})),
        (TOUCHPOINT, 3, Some("Too slow"), json!({})),
        (TOUCHPOINT, 7, None, json!({})),
        ("support", 10, Some("Great help"), json!({"plan": "free"})),
        ("support", 6, None, json!({})),
        ("support", 9, None, json!({})),
    ];
    for (i, (tp, score, comment, props)) in answers.iter().enumerate() {
        let mut body = json!({"survey": SURVEY, "touchpoint": tp, "respondent": format!("r{i}@example.com"),
            "score": score, "properties": props, "key": "pk_dashboard_test"});
        if let Some(c) = comment {
            body["comment"] = json!(c);
        }
        let (status, reply) = http
            .status_and_body(
                "POST",
                "/v1/responses",
                &[("content-type", "application/json")],
                &body.to_string(),
            )
            .await;
        assert_eq!(status, 202, "{reply}");
    }
    answers.len() as i64
}

/// `GET /v1/metrics` for the dashboard's default query once the local queue has drained.
async fn metrics_when(http: &LocalHttp, key: &str, n: i64) -> Value {
    let auth = format!("Bearer {key}");
    let started = Instant::now();
    loop {
        let (status, body) = http
            .status_and_body(
                "GET",
                &format!("/v1/metrics?survey={SURVEY}&compare=previous"),
                &[("authorization", &auth)],
                "",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let m: Value = serde_json::from_str(&body).unwrap();
        if m["overall"]["total"]["n"] == n {
            return m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never counted {n}: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_dashboard_shows_the_api_s_numbers_and_respondent_markup_as_text() {
    let dir = std::env::temp_dir().join(format!("sondeo-dash-{:08x}", rand::random::<u32>()));
    let (stack, server, http) = boot(&dir).await;
    let key = stack.api_key.clone();
    let n = seed(&http, &key).await;
    let metrics = metrics_when(&http, &key, n).await;
    let api_nps = metrics["overall"]["total"]["nps"].as_f64().expect("an NPS");

    // The page as a script reads it, for its weight.
    let auth = format!("Bearer {key}");
    let (status, page) = http
        .status_and_body(
            "GET",
            &format!("/dashboard?survey={SURVEY}"),
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(status, 200, "{page}");
    eprintln!(
        "dashboard page weight: {} bytes ({n} answers, {} comments, 30 daily buckets, 2 touchpoints)",
        page.len(),
        page.matches("class=\"comment-item\"").count()
    );

    let driver = Driver::start().await;
    let s = driver.session_keeping_alerts().await;
    let url = format!("{}/dashboard?survey={SURVEY}", http.base);
    driver
        .cmd(&s, "POST", "/url", Some(json!({"url": url})))
        .await;
    // No session: a login form, the key going in the body.
    let field = driver.wait_for(&s, "input[name=key][type=password]").await;
    driver
        .cmd(
            &s,
            "POST",
            &format!("/element/{field}/value"),
            Some(json!({"text": key})),
        )
        .await;
    let login = driver.find(&s, "#login").await;
    driver.click(&s, &login).await;

    // The dashboard, at a URL without the key, for the survey asked before logging in.
    let chart = driver.wait_for(&s, "svg#trend-chart").await;
    let here = driver.cmd(&s, "GET", "/url", None).await;
    let here = here.as_str().unwrap_or_default();
    assert!(!here.contains(&key), "{here}");
    assert!(here.contains(&format!("survey={SURVEY}")), "{here}");
    let cookie_js = driver.script(&s, "return document.cookie").await;
    assert_eq!(cookie_js, json!(""), "the session cookie is HttpOnly");
    assert!(
        driver
            .find_all(&s, "svg#trend-chart polyline.line")
            .await
            .len()
            == 1,
        "the trend line is drawn"
    );
    assert!(
        !driver
            .find_all(&s, "svg#trend-chart polygon.band")
            .await
            .is_empty(),
        "the margin band is drawn"
    );
    let shown = driver
        .cmd(&s, "GET", &format!("/element/{chart}/displayed"), None)
        .await;
    assert_eq!(shown, json!(true));
    assert!(
        !driver
            .find_all(&s, "svg#mix-chart rect.promoters")
            .await
            .is_empty(),
        "stacked promoters are drawn"
    );

    // The headline equals the API's number for the same query.
    let headline = driver.find(&s, "[data-metric=nps]").await;
    let shown_nps: f64 = driver
        .attribute(&s, &headline, "data-value")
        .await
        .expect("a data-value")
        .parse()
        .unwrap();
    assert_eq!(shown_nps, api_nps);
    let text = driver.text(&s, &headline).await;
    assert_eq!(text, sondeo_http::charts::number(api_nps));
    let n_el = driver.find(&s, "#headline-n").await;
    assert_eq!(
        driver.attribute(&s, &n_el, "data-n").await,
        Some(n.to_string())
    );
    for (tp, g) in metrics["touchpoints"].as_object().unwrap() {
        let row = driver
            .find(&s, &format!("tr[data-touchpoint='{tp}'] td[data-value]"))
            .await;
        let v: f64 = driver
            .attribute(&s, &row, "data-value")
            .await
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(Some(v), g["total"]["nps"].as_f64(), "{tp}");
    }

    // Markup is text: no element was injected, no alert was raised, nothing was loaded.
    let injected = driver
        .script(
            &s,
            "return document.querySelectorAll('img, script, iframe, object, embed').length",
        )
        .await;
    assert_eq!(injected, json!(0));
    let alert = driver.try_cmd(&s, "GET", "/alert/text", None).await;
    assert!(
        alert.as_ref().is_err_and(|e| e["error"] == "no such alert"),
        "{alert:?}"
    );
    let loaded = driver
        .script(&s, "return performance.getEntriesByType('resource').length")
        .await;
    assert_eq!(loaded, json!(0), "the page loads nothing else");
    let mut comments = Vec::new();
    for c in driver.find_all(&s, "li.comment-item p.comment").await {
        comments.push(driver.text(&s, &c).await);
    }
    assert!(comments.contains(&PAYLOAD.to_string()), "{comments:?}");
    assert_eq!(comments.len(), 3, "{comments:?}");
    let mut props = Vec::new();
    for p in driver.find_all(&s, "li.comment-item .prop").await {
        props.push(driver.text(&s, &p).await);
    }
    assert!(props.contains(&format!("plan: {PAYLOAD}")), "{props:?}");
    let question = driver.find(&s, "#question").await;
    assert_eq!(
        driver.text(&s, &question).await,
        format!("Would you recommend us? {PAYLOAD}")
    );
    let mut names = Vec::new();
    for t in driver.find_all(&s, "li.comment-item .touchpoint").await {
        names.push(driver.text(&s, &t).await);
    }
    assert!(names.contains(&TOUCHPOINT.to_string()), "{names:?}");

    // SONDEO_SCREENSHOT_DIR keeps what the phone showed, for a person to look at.
    if let Ok(dir) = std::env::var("SONDEO_SCREENSHOT_DIR") {
        use base64::Engine;
        let height = driver
            .script(&s, "return document.documentElement.scrollHeight")
            .await;
        let mut top = 0;
        let mut i = 0;
        while top < height.as_i64().unwrap_or(0) && i < 8 {
            driver
                .script(&s, &format!("window.scrollTo(0, {top}); return 0"))
                .await;
            let png = driver.cmd(&s, "GET", "/screenshot", None).await;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(png.as_str().unwrap_or_default())
                .unwrap();
            std::fs::write(format!("{dir}/dashboard-phone-{i}.png"), bytes).unwrap();
            top += 800;
            i += 1;
        }
        driver.script(&s, "window.scrollTo(0, 0); return 0").await;
    }

    // Readable on a phone: nothing wider than the screen.
    let overflow = driver
        .script(
            &s,
            "return [document.documentElement.scrollWidth, window.innerWidth]",
        )
        .await;
    let (scroll, inner) = (overflow[0].as_i64().unwrap(), overflow[1].as_i64().unwrap());
    assert!(inner <= 400 && scroll <= inner, "{overflow}");

    // A filter is a plain GET form: one touchpoint, and the headline follows the API again.
    driver
        .cmd(
            &s,
            "POST",
            "/url",
            Some(json!({"url": format!("{}/dashboard?survey={SURVEY}&touchpoint=support", http.base)})),
        )
        .await;
    let headline = driver.wait_for(&s, "[data-metric=nps]").await;
    let support: f64 = driver
        .attribute(&s, &headline, "data-value")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        Some(support),
        metrics["touchpoints"]["support"]["total"]["nps"].as_f64()
    );

    // A breakdown by a property: its values, the payload among them, are text too.
    driver
        .cmd(
            &s,
            "POST",
            "/url",
            Some(json!({"url": format!("{}/dashboard?survey={SURVEY}&group_by=plan", http.base)})),
        )
        .await;
    driver.wait_for(&s, "#segments").await;
    let mut values = Vec::new();
    for v in driver.find_all(&s, "#segments td.segment-value").await {
        values.push(driver.text(&s, &v).await);
    }
    for want in [PAYLOAD, "pro", "free", "(none)"] {
        assert!(values.contains(&want.to_string()), "{want}: {values:?}");
    }
    let injected = driver
        .script(&s, "return document.querySelectorAll('img, script').length")
        .await;
    assert_eq!(injected, json!(0));

    // Logging out ends the session.
    let out = driver
        .find(&s, "form[action='/dashboard/logout'] button")
        .await;
    driver.click(&s, &out).await;
    driver.wait_for(&s, "input[name=key]").await;
    assert!(driver.find_all(&s, "svg#trend-chart").await.is_empty());

    driver.cmd(&s, "DELETE", "", None).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
