//! Unsubscribe through local mode over real HTTP: opening the link changes nothing (scanners open
//! links), the page's button and a mail client's RFC 8058 one-click POST put the respondent on
//! the suppression list, an expired survey link still unsubscribes, campaign links unsubscribe
//! their `rid`, and the API lists, adds and removes entries; minting links leaves them out.

use sondeo_domain::ports::SuppressionList;
use sondeo_domain::token::{LinkClaims, LinkScope, CAMPAIGN_RESPONDENT};
use sondeo_local::local::DEMO_SURVEY;
use sondeo_tests::local_http::boot;

#[tokio::test]
async fn unsubscribe_links_one_click_and_the_suppression_list() {
    let dir = std::env::temp_dir().join(format!("sondeo-unsub-{:08x}", rand::random::<u32>()));
    let (stack, server, http) = boot(&dir).await;
    stack.ensure_demo_survey().await.unwrap();
    let now = sondeo_domain::time::now_ms() / 1000;
    let token = |who: &str, expires_at: i64, campaign: bool| {
        stack
            .keyring
            .sign_scoped(
                &LinkClaims {
                    survey: DEMO_SURVEY.into(),
                    touchpoint: "post-purchase".into(),
                    respondent: who.into(),
                    issued_at: now - 7200,
                    expires_at,
                },
                &LinkScope {
                    send: String::new(),
                    campaign,
                },
            )
            .unwrap()
    };
    let listed = || async {
        let mut v: Vec<String> = stack
            .store
            .list_suppressed()
            .await
            .unwrap()
            .into_iter()
            .map(|s| format!("{} {}", s.respondent, s.via))
            .collect();
        v.sort();
        v
    };

    // Opening the link shows a confirmation and changes nothing; HEAD neither.
    let ana = token("Ana@Example.com", now + 3600, false);
    let (status, page) = http
        .status_and_body("GET", &format!("/u/{ana}"), &[], "")
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("action=\"/u/{ana}\"")) && page.contains("Unsubscribe me"),
        "{page}"
    );
    assert_eq!(
        http.send("HEAD", &format!("/u/{ana}"), &[], "")
            .await
            .status,
        200
    );
    assert!(listed().await.is_empty());

    // The page's button (a form POST with no body).
    let (status, page) = http
        .status_and_body("POST", &format!("/u/{ana}"), &[], "")
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You are unsubscribed"), "{page}");
    assert_eq!(listed().await, ["ana@example.com link"]);

    // A mail client's one-click POST (RFC 8058), with a survey link that has expired.
    let bo = token("bo@example.com", now - 60, false);
    let reply = http
        .send(
            "POST",
            &format!("/u/{bo}"),
            &[("content-type", "application/x-www-form-urlencoded")],
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        listed().await,
        ["ana@example.com link", "bo@example.com one-click"]
    );

    // A campaign link is every recipient's: through it, anyone could name anyone. It
    // unsubscribes nobody, and its page says to use the email tool's own link.
    let campaign = token(CAMPAIGN_RESPONDENT, now + 3600, true);
    for (method, accept) in [
        ("GET", "text/html"),
        ("POST", "text/html"),
        ("POST", "application/json"),
    ] {
        for target in [
            format!("/u/{campaign}"),
            format!("/u/{campaign}?rid=victim@customer.example"),
        ] {
            let (status, body) = http
                .status_and_body(method, &target, &[("accept", accept)], "")
                .await;
            let want = if method == "GET" { 200 } else { 403 };
            assert_eq!(status, want, "{method} {target}: {body}");
            assert!(body.contains("email tool"), "{method} {target}: {body}");
            assert!(!body.contains("<form"), "{body}");
        }
    }
    // A forged token unsubscribes nobody.
    let (status, _) = http
        .status_and_body(
            "POST",
            "/u/AgJrMQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &[],
            "",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(listed().await.len(), 2);

    // The API: list, add, remove, and a clear 404 for someone not on it.
    let key = format!("Bearer {}", stack.api_key);
    let auth = [
        ("authorization", key.as_str()),
        ("content-type", "application/json"),
    ];
    let (status, body) = http
        .status_and_body("GET", "/v1/suppressions", &auth, "")
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("bo@example.com"), "{body}");
    let (status, body) = http
        .status_and_body(
            "POST",
            "/v1/suppressions",
            &auth,
            r#"{"respondent":" Dee@Example.com "}"#,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = http
        .status_and_body(
            "DELETE",
            "/v1/suppressions?respondent=bo%40example.com",
            &auth,
            "",
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = http
        .status_and_body("DELETE", "/v1/suppressions?respondent=nobody", &auth, "")
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        listed().await,
        ["ana@example.com link", "dee@example.com api"]
    );

    // Minting a mail merge leaves out whoever is on the list (any case), with the reason.
    let (status, csv) = http
        .status_and_body(
            "POST",
            &format!("/v1/links/bulk?survey={DEMO_SURVEY}&touchpoint=post-purchase&format=token"),
            &[
                ("authorization", key.as_str()),
                ("content-type", "text/csv"),
            ],
            "email\nANA@example.com\nbo@example.com\n",
        )
        .await;
    assert_eq!(status, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[1].starts_with("ANA@example.com,,") && lines[1].contains("unsubscribed"),
        "{csv}"
    );
    assert!(
        lines[2].starts_with("bo@example.com,") && lines[2].ends_with(','),
        "{csv}"
    );
    // And so does minting one respondent's links; someone not on the list gets theirs.
    for (respondent, want) in [("Ana@Example.com", 422), ("bo@example.com", 201)] {
        let (status, body) = http
            .status_and_body(
                "POST",
                "/v1/links",
                &auth,
                &serde_json::json!({"survey": DEMO_SURVEY, "touchpoint": "post-purchase",
                    "respondent": respondent})
                .to_string(),
            )
            .await;
        assert_eq!(status, want, "{respondent}: {body}");
        if want == 422 {
            assert!(body.contains("suppression list"), "{body}");
        }
    }

    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
