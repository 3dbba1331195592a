//! An answer sent after another's acknowledgement wins: 500 respondents each answer 1, wait for
//! the 202, then answer 9 — through the local router and the shared aggregator — and every one of
//! them ends counted as 9. With random event ids breaking same-millisecond ties, about half kept 1.

use bytes::Bytes;
use sondeo_domain::ports::CounterReader;
use sondeo_domain::time::{now_ms, Day};
use sondeo_local::local::LocalStack;
use sondeo_local::server::{dispatch, drain_once};

const RESPONDENTS: usize = 500;

fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> http::Request<Bytes> {
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Bytes::from(body)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_later_acknowledged_answer_wins_within_a_millisecond() {
    let dir = std::env::temp_dir().join(format!("sondeo-order-{:08x}", rand::random::<u32>()));
    let stack = LocalStack::open(&dir, None).await.unwrap();
    let auth = format!("Bearer {}", stack.api_key);
    let json = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let survey = serde_json::json!({"id": "order", "kind": "nps", "question": "Would you recommend us?",
        "touchpoints": [{"slug": "checkout", "stage": "conversion"}]});
    let resp = dispatch(
        &stack,
        request("POST", "/v1/surveys", &json, survey.to_string()),
    )
    .await;
    assert_eq!(resp.status(), 201);

    let mut tokens = Vec::with_capacity(RESPONDENTS);
    for i in 0..RESPONDENTS {
        let mint = serde_json::json!({"survey": "order", "touchpoint": "checkout", "respondent": format!("r{i}@example.com")});
        let resp = dispatch(
            &stack,
            request("POST", "/v1/links", &json, mint.to_string()),
        )
        .await;
        assert_eq!(resp.status(), 201);
        let links: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        let url = links["links"][0]["url"].as_str().unwrap();
        let path = url.split("/r/").nth(1).unwrap().split('?').next().unwrap();
        tokens.push(format!("/r/{path}"));
    }

    let form = [
        ("accept", "application/json"),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let started = now_ms();
    for token in &tokens {
        for score in [1, 9] {
            let resp = dispatch(
                &stack,
                request("POST", token, &form, format!("score={score}")),
            )
            .await;
            assert_eq!(resp.status(), 202, "{:?}", resp.body());
        }
    }
    while drain_once(&stack).await > 0 {}

    let today = Day::from_unix_ms(started);
    let rows = stack
        .store
        .read_counters("order", today, Day::from_unix_ms(now_ms()))
        .await
        .unwrap();
    let count = |slot: u16| -> i64 {
        rows.iter()
            .map(|r| r.histogram.slots.get(&slot).copied().unwrap_or(0))
            .sum()
    };
    assert_eq!(
        rows.iter().map(|r| r.histogram.n).sum::<i64>(),
        RESPONDENTS as i64
    );
    assert_eq!(count(1), 0, "no respondent kept the answer they replaced");
    assert_eq!(count(9), RESPONDENTS as i64);
    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
}
