//! Sends and campaign links through local mode over real HTTP: the same respondent answering two
//! sends counts twice; metrics read every send or one send's own counters; campaign links and
//! email snippets are minted with the tool's merge tags; bad link, send and snippet requests say
//! what to fix.

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

#[tokio::test]
async fn campaign_links_and_snippets_are_minted_and_bad_requests_say_why() {
    let dir = std::env::temp_dir().join(format!("sondeo-snip-{:08x}", rand::random::<u32>()));
    let (stack, server, http) = boot(&dir).await;
    stack.ensure_demo_survey().await.unwrap();
    let key = format!("Bearer {}", stack.api_key);
    let auth = [
        ("authorization", key.as_str()),
        ("content-type", "application/json"),
    ];
    let call = |method: &'static str, path: String, body: String| {
        let http = &http;
        async move {
            let (status, body) = http.status_and_body(method, &path, &auth, &body).await;
            (
                status,
                serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let links = |body: serde_json::Value| call("POST", "/v1/links".into(), body.to_string());

    // A campaign's links end with the email tool's merge tag, left as it is.
    let (status, out) = links(
        serde_json::json!({"survey": DEMO_SURVEY, "touchpoint": "post-purchase",
        "campaign": true, "send": "2026-q4", "rid": "*|EMAIL|*"}),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    assert_eq!(
        (out["campaign"].as_bool(), out["send"].as_str()),
        (Some(true), Some("2026-q4"))
    );
    let url = out["links"][9]["url"].as_str().unwrap();
    assert!(url.ends_with("?score=9&rid=*|EMAIL|*"), "{url}");
    let token = out["token"].as_str().unwrap();
    let (claims, scope) = stack.keyring.verify_ignoring_expiry(token).unwrap();
    assert_eq!((scope.campaign, scope.send.as_str()), (true, "2026-q4"));
    assert_eq!(claims.respondent, sondeo_domain::token::CAMPAIGN_RESPONDENT);
    for (body, code) in [
        (
            serde_json::json!({"survey": DEMO_SURVEY, "touchpoint": "post-purchase"}),
            "missing_respondent",
        ),
        (
            serde_json::json!({"survey": DEMO_SURVEY, "touchpoint": "post-purchase", "campaign": true, "respondent": "a"}),
            "campaign_with_respondent",
        ),
        (
            serde_json::json!({"survey": DEMO_SURVEY, "touchpoint": "post-purchase", "respondent": "a", "rid": "*|EMAIL|*"}),
            "rid_without_campaign",
        ),
        (
            serde_json::json!({"survey": DEMO_SURVEY, "touchpoint": "post-purchase", "respondent": "a", "send": "a\nb"}),
            "invalid_send",
        ),
    ] {
        let (status, out) = links(body).await;
        assert_eq!(
            (status, out["error"]["code"].as_str()),
            (422, Some(code)),
            "{out}"
        );
    }

    // Snippets: per-recipient merge tags, or a minted campaign link with the tool's email tag.
    let snippet = |query: &str| {
        call(
            "GET",
            format!("/v1/snippet?survey={DEMO_SURVEY}&touchpoint=post-purchase&{query}"),
            String::new(),
        )
    };
    let (status, out) = snippet("tool=mailchimp").await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["token_field"], "SONDEOTKN");
    assert!(
        out["html"]
            .as_str()
            .unwrap()
            .contains("*|SONDEOTKN|*?score=10"),
        "{out}"
    );
    let (status, out) = snippet("tool=klaviyo&mode=campaign&send=2026-q4").await;
    assert_eq!(status, 200, "{out}");
    let token = out["campaign_token"].as_str().unwrap();
    assert_eq!(
        stack.keyring.verify_ignoring_expiry(token).unwrap().1.send,
        "2026-q4"
    );
    assert!(
        out["html"].as_str().unwrap().contains("{{ email }}"),
        "{out}"
    );
    for (query, code) in [
        ("tool=outlook", "invalid_tool"),
        ("mode=both", "invalid_mode"),
        ("send=2026-q4", "send_in_token_mode"),
        ("colour=red", "invalid_query"),
    ] {
        let (status, out) = snippet(query).await;
        assert_eq!(out["error"]["code"].as_str(), Some(code), "{query}: {out}");
        assert!((400..500).contains(&status), "{query}: {status}");
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_campaign_link_left_unpersonalised_records_nothing_and_addresses_ignore_case() {
    let dir = std::env::temp_dir().join(format!("sondeo-rid-{:08x}", rand::random::<u32>()));
    let (stack, server, http) = boot(&dir).await;
    stack.ensure_demo_survey().await.unwrap();
    let now = sondeo_domain::time::now_ms() / 1000;
    let campaign = stack
        .keyring
        .sign_scoped(
            &LinkClaims {
                survey: DEMO_SURVEY.into(),
                touchpoint: "post-purchase".into(),
                respondent: sondeo_domain::token::CAMPAIGN_RESPONDENT.into(),
                issued_at: now,
                expires_at: now + 3600,
            },
            &LinkScope {
                send: String::new(),
                campaign: true,
            },
        )
        .unwrap();
    // A preview or test send: the tool's merge tag is still in the URL.
    for rid in [
        "*|EMAIL|*",
        "%7B%7B%20email%20%7D%7D",
        "%7B%25%20x%20%25%7D",
    ] {
        let (status, body) = http
            .status_and_body(
                "GET",
                &format!("/r/{campaign}?score=5&rid={rid}"),
                &[("accept", "application/json")],
                "",
            )
            .await;
        assert_eq!(status, 400, "{rid}: {body}");
        assert!(body.contains("unfilled_rid"), "{body}");
    }
    // One person whatever the letter case of their address: answered twice, counted once.
    for (rid, score) in [("BOB@Example.COM", 3), ("bob@example.com", 9)] {
        let (status, body) = http
            .status_and_body(
                "POST",
                &format!("/r/{campaign}?rid={rid}"),
                &[
                    ("accept", "application/json"),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                &format!("score={score}"),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    for _ in 0..400 {
        if stack.store.queue_depth().unwrap().0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answers = stack.store.all_responses_async(DEMO_SURVEY).await.unwrap();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(
        (answers[0].respondent.as_str(), answers[0].score),
        ("bob@example.com", 9)
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
