//! Local mode end to end over real HTTP: create a survey, mint a link, click it as a browser
//! does, read the metric; change the answer; restart and find everything still there.

use sondeo_tests::local_http::{boot, LocalHttp as Http};
use std::time::Duration;

/// Polls the metrics route until `n` responses are counted (the local queue drains every 50 ms).
async fn metrics_when(http: &Http, key: &str, n: i64) -> serde_json::Value {
    let auth = format!("Bearer {key}");
    for _ in 0..800 {
        let (status, body) = http
            .status_and_body(
                "GET",
                "/v1/metrics?survey=shop-nps&bucket=day",
                &[("authorization", &auth)],
                "",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        if json["overall"]["total"]["n"] == n {
            return json;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("metrics never reached n={n}");
}

/// Clicks a one-click link as a browser does: GET the page, then the page's script POSTs the score.
async fn click(http: &Http, link: &str) -> u16 {
    let path = link.strip_prefix(&http.base).unwrap();
    let (status, page) = http
        .status_and_body("GET", path, &[("accept", "text/html")], "")
        .await;
    assert_eq!(status, 200, "{page}");
    let action = page
        .split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("page has a form");
    let score = link.rsplit("score=").next().unwrap();
    let (status, body) = http
        .status_and_body(
            "POST",
            action,
            &[
                ("accept", "application/json"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &format!("score={score}"),
        )
        .await;
    assert!(body.contains("recorded"), "{body}");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_a_minted_link_and_see_the_metric_then_restart_and_keep_it() {
    let dir = std::env::temp_dir().join(format!("sondeo-e2e-{:08x}", rand::random::<u32>()));
    let (stack, server, http) = boot(&dir).await;
    let key = stack.api_key.clone();
    let auth = format!("Bearer {key}");
    let json = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];

    let survey = serde_json::json!({"id": "shop-nps", "kind": "nps", "question": "Would you recommend our shop?",
        "touchpoints": [{"slug": "post-purchase", "stage": "conversion"}, {"slug": "support-chat", "stage": "retention"}]});
    let (status, body) = http
        .status_and_body("POST", "/v1/surveys", &json, &survey.to_string())
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = http
        .status_and_body("POST", "/v1/surveys", &json, &survey.to_string())
        .await;
    assert_eq!(status, 409, "a survey id is created once");

    let mint = serde_json::json!({"survey": "shop-nps", "touchpoint": "post-purchase", "respondent": "ana@example.com"});
    let (status, body) = http
        .status_and_body("POST", "/v1/links", &json, &mint.to_string())
        .await;
    assert_eq!(status, 201, "{body}");
    let links: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        links["links"].as_array().unwrap().len(),
        11,
        "one link per score on the 0-10 scale"
    );
    let link_for = |score: usize| links["links"][score]["url"].as_str().unwrap().to_string();

    assert_eq!(click(&http, &link_for(6)).await, 202);
    let m = metrics_when(&http, &key, 1).await;
    assert_eq!(m["overall"]["total"]["detractors"], 1);
    assert_eq!(m["stages"]["conversion"]["total"]["nps"], -100.0);

    // The respondent changes their mind: still one response, now a promoter.
    assert_eq!(click(&http, &link_for(9)).await, 202);
    for _ in 0..800 {
        let m = metrics_when(&http, &key, 1).await;
        if m["overall"]["total"]["promoters"] == 1 {
            assert_eq!(m["overall"]["total"]["detractors"], 0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Unknown routes and bad links answer clearly.
    let (status, body) = http.status_and_body("GET", "/nope", &[], "").await;
    assert_eq!(status, 404, "{body}");
    let (status, page) = http
        .status_and_body("GET", "/r/not-a-token?score=9", &[], "")
        .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("not valid") || page.contains("damaged"),
        "{page}"
    );
    let (status, _) = http
        .status_and_body("POST", "/v1/surveys", &json, &"x".repeat(20_000))
        .await;
    assert_eq!(status, 413);

    server.shutdown().await;
    drop(stack);

    // State survives a restart.
    let (_stack2, server2, http2) = boot(&dir).await;
    let m = metrics_when(&http2, &key, 1).await;
    assert_eq!(m["overall"]["total"]["promoters"], 1);
    server2.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
