//! The one-click page on a phone-sized headless Chromium driven like a person (Debian's
//! `chromium-driver`, WebDriver): the clicked score is shown chosen, a comment typed into the page
//! is sent with Send and counted with its score, and markup in the comment is kept as text and
//! never runs.

use serde_json::{json, Value};
use sondeo_domain::token::LinkClaims;
use sondeo_local::local::DEMO_SURVEY;
use sondeo_tests::local_http::boot;
use sondeo_tests::webdriver::Driver;
use std::time::{Duration, Instant};

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
