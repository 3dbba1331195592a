//! Sends through local mode over real HTTP: the same respondent answering two sends counts twice,
//! metrics read every send or one send's own counters, and a send name is checked.

use sondeo_domain::token::{LinkClaims, LinkScope};
use sondeo_local::local::DEMO_SURVEY;
use sondeo_tests::local_http::boot;
use std::time::Duration;

#[tokio::test]
async fn metrics_read_every_send_or_one() {
    let dir = std::env::temp_dir().join(format!("sondeo-sends-{:08x}", rand::random::<u32>()));
    let (stack, server, http) = boot(&dir).await;
    stack.ensure_demo_survey().await.unwrap();
    let now = sondeo_domain::time::now_ms() / 1000;
    let token = |send: &str| {
        stack
            .keyring
            .sign_scoped(
                &LinkClaims {
                    survey: DEMO_SURVEY.into(),
                    touchpoint: "post-purchase".into(),
                    respondent: "ana@example.com".into(),
                    issued_at: now,
                    expires_at: now + 3600,
                },
                &LinkScope {
                    send: send.into(),
                    campaign: false,
                },
            )
            .unwrap()
    };
    let answer = |token: String, score: u8| {
        let http = &http;
        async move {
            let (status, body) = http
                .status_and_body(
                    "POST",
                    &format!("/r/{token}"),
                    &[
                        ("accept", "application/json"),
                        ("content-type", "application/x-www-form-urlencoded"),
                    ],
                    &format!("score={score}"),
                )
                .await;
            assert_eq!(status, 202, "{body}");
        }
    };
    // The default send once; the 2026-q4 send twice (the last answer wins within a send).
    answer(token(""), 6).await;
    answer(token("2026-q4"), 3).await;
    answer(token("2026-q4"), 10).await;
    for _ in 0..400 {
        if stack.store.queue_depth().unwrap().0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let key = format!("Bearer {}", stack.api_key);
    let metrics = |send: Option<&str>| {
        let http = &http;
        let key = key.clone();
        let path = match send {
            Some(s) => format!("/v1/metrics?survey={DEMO_SURVEY}&send={s}"),
            None => format!("/v1/metrics?survey={DEMO_SURVEY}"),
        };
        async move {
            let (status, body) = http
                .status_and_body("GET", &path, &[("authorization", key.as_str())], "")
                .await;
            (
                status,
                serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let (status, all) = metrics(None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["overall"]["total"]["n"], 2, "{all}");
    assert_eq!(all["overall"]["total"]["distribution"]["6"], 1, "{all}");
    assert_eq!(all["overall"]["total"]["distribution"]["10"], 1, "{all}");
    assert_eq!(all["send"], serde_json::Value::Null);
    let (_, q4) = metrics(Some("2026-q4")).await;
    assert_eq!(q4["overall"]["total"]["n"], 1, "{q4}");
    assert_eq!(q4["overall"]["total"]["distribution"]["10"], 1, "{q4}");
    assert_eq!(q4["send"], "2026-q4");
    let (_, none) = metrics(Some("2025-q1")).await;
    assert_eq!(none["overall"]["total"]["n"], 0, "{none}");
    let (status, bad) = metrics(Some("%0A")).await;
    assert_eq!(status, 422, "{bad}");
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("send"),
        "{bad}"
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
