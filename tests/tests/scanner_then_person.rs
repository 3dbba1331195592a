//! Over real HTTP in local mode, with the aggregator's real 60-second burst window (this test
//! waits it out once): a person who clicks a minute after a scanner opened every link of their
//! email is counted, and a scanner opening every link a minute after the person clicked takes
//! nothing away.

use sondeo_domain::aggregate::BURST_WINDOW_MS;
use sondeo_domain::token::LinkClaims;
use sondeo_local::local::DEMO_SURVEY;
use sondeo_tests::local_http::boot;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_a_minute_after_a_scanner_counts_and_a_scanner_after_a_click_takes_nothing() {
    let dir = std::env::temp_dir().join(format!("sondeo-later-{:08x}", rand::random::<u32>()));
    let (stack, server, http) = boot(&dir).await;
    stack.ensure_demo_survey().await.unwrap();
    let now = sondeo_domain::time::now_ms() / 1000;
    let link = |who: &str, score: i64| {
        let token = stack
            .keyring
            .sign(&LinkClaims {
                survey: DEMO_SURVEY.into(),
                touchpoint: "post-purchase".into(),
                respondent: who.into(),
                issued_at: now,
                expires_at: now + 3600,
            })
            .unwrap();
        format!("/r/{token}?score={score}")
    };
    let scan = |who: &'static str| {
        let urls: Vec<String> = [4, 9, 0, 7, 2, 10, 5, 1, 8, 3, 6]
            .iter()
            .map(|s| link(who, *s))
            .collect();
        let http = &http;
        async move {
            for url in urls {
                assert_eq!(http.send("GET", &url, &[], "").await.status, 200);
            }
        }
    };
    let drained = || async {
        for _ in 0..400 {
            if stack.store.queue_depth_async().await.unwrap().0 == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let key = format!("Bearer {}", stack.api_key);
    let totals = || async {
        let (status, body) = http
            .status_and_body(
                "GET",
                &format!("/v1/metrics?survey={DEMO_SURVEY}"),
                &[("authorization", key.as_str())],
                "",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let t = &v["overall"]["total"];
        (
            t["n"].as_i64().unwrap(),
            t["distribution"].clone(),
            t["automated"].as_i64().unwrap(),
        )
    };

    // First: a scanner on one email, and a person's click on another.
    scan("scanned-first@example.com").await;
    assert_eq!(
        http.send("GET", &link("clicked-first@example.com", 3), &[], "")
            .await
            .status,
        200
    );
    drained().await;
    let (n, dist, automated) = totals().await;
    assert_eq!((n, automated, &dist["3"]), (1, 1, &serde_json::json!(1)));

    // A minute later: the first person clicks, and a scanner opens the second email's links.
    tokio::time::sleep(Duration::from_millis(BURST_WINDOW_MS as u64 + 1_500)).await;
    assert_eq!(
        http.send("GET", &link("scanned-first@example.com", 8), &[], "")
            .await
            .status,
        200
    );
    scan("clicked-first@example.com").await;
    drained().await;
    let (n, dist, automated) = totals().await;
    assert_eq!(n, 2, "both people count: {dist}");
    assert_eq!(
        (&dist["8"], &dist["3"]),
        (&serde_json::json!(1), &serde_json::json!(1))
    );
    assert_eq!(automated, 0, "neither email is set aside any more");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
