//! The one-click page on a phone-sized headless Chromium driven like a person (Debian's
//! `chromium-driver`, WebDriver): the clicked score is shown chosen, a comment typed into the page
//! is sent with Send and counted with its score, and markup in the comment is kept as text and
//! never runs; after Send, going Back and changing the score keeps the comment, and opening the
//! email link again shows the score the person gave.

use serde_json::{json, Value};
use sondeo_domain::token::LinkClaims;
use sondeo_local::local::DEMO_SURVEY;
use sondeo_tests::local_http::boot;
use sondeo_tests::webdriver::Driver;
use std::time::{Duration, Instant};

/// Local mode in a fresh folder with the demo survey, served on a loopback port, and a link of
/// `respondent`'s.
async fn demo_with_link(
    name: &str,
    respondent: &str,
) -> (
    std::path::PathBuf,
    std::sync::Arc<sondeo_local::local::LocalStack>,
    sondeo_local::server::RunningServer,
    String,
) {
    let dir = std::env::temp_dir().join(format!("sondeo-{name}-{:08x}", rand::random::<u32>()));
    let (stack, server, _) = boot(&dir).await;
    stack.ensure_demo_survey().await.unwrap();
    let now = sondeo_domain::time::now_ms() / 1000;
    let token = stack
        .keyring
        .sign(&LinkClaims {
            survey: DEMO_SURVEY.into(),
            touchpoint: "post-purchase".into(),
            respondent: respondent.into(),
            issued_at: now,
            expires_at: now + 3600,
        })
        .unwrap();
    (dir, stack, server, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_clicked_score_shows_and_a_comment_posts_as_text() {
    let (dir, stack, server, token) = demo_with_link("form", "phone@example.com").await;
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

/// Polls the local store until `done` holds for the survey's answers (10 s at most).
async fn answers_until(
    stack: &sondeo_local::local::LocalStack,
    done: impl Fn(&[sondeo_domain::response::ResponseEvent]) -> bool,
) -> Vec<sondeo_domain::response::ResponseEvent> {
    let started = Instant::now();
    loop {
        let answers = stack.store.all_responses_async(DEMO_SURVEY).await.unwrap();
        if done(&answers) {
            return answers;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{answers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_then_another_score_keeps_the_comment_and_the_email_link_shows_the_score_given() {
    let (dir, stack, server, token) = demo_with_link("back", "back@example.com").await;
    let driver = Driver::start().await;
    // A person's browser: the page's script runs as it would for them.
    let s = driver.session_as_person().await;
    assert_eq!(
        driver.script(&s, "return navigator.webdriver").await,
        Value::Bool(false)
    );
    let link = format!("http://{}/r/{token}?score=9", server.addr);
    driver
        .cmd(&s, "POST", "/url", Some(json!({"url": link})))
        .await;
    // The person writes a comment and presses Send.
    let comment = "my important comment";
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
    driver.click(&s, &send).await;
    answers_until(&stack, |a| {
        a.iter()
            .any(|a| !a.click && a.comment.as_deref() == Some(comment))
    })
    .await;
    // Back to the page, where they pick 7 instead.
    driver.cmd(&s, "POST", "/back", Some(json!({}))).await;
    driver.wait_for(&s, "input[name=score][value='7']").await;
    driver
        .script(
            &s,
            "document.querySelector(\"input[name=score][value='7']\").click(); return true",
        )
        .await;
    let answers = answers_until(&stack, |a| a.iter().any(|a| !a.click && a.score == 7)).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(
        (answers[0].score, answers[0].comment.as_deref()),
        (7, Some(comment)),
        "changing the score after Back erased the comment"
    );
    // Opening the email's link again shows 7, the score they gave, and records nothing over it.
    driver
        .cmd(&s, "POST", "/url", Some(json!({"url": link})))
        .await;
    let seven = driver.find(&s, "input[name=score][value='7']").await;
    assert_eq!(
        driver
            .cmd(&s, "GET", &format!("/element/{seven}/selected"), None)
            .await,
        Value::Bool(true),
        "the page shows the link's score, not the one given"
    );
    let status = driver.find(&s, "#status").await;
    assert!(
        driver.text(&s, &status).await.contains("before"),
        "no word that the earlier score is shown"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = answers_until(&stack, |a| !a.is_empty()).await;
    assert_eq!(
        (
            answers[0].score,
            answers[0].click,
            answers[0].comment.as_deref()
        ),
        (7, false, Some(comment))
    );
    driver.cmd(&s, "DELETE", "", None).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
