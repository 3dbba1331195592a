//! Local mode over real HTTP at its limits: a full disk answers 503 with Retry-After, keeps
//! every answer it accepted and recovers without a restart; requests the HTTP parser refuses
//! get a one-line reason.

use bytes::Bytes;
use sondeo_local::local::LocalStack;
use sondeo_tests::local_http::{boot, LocalHttp as Http, Reply};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn temp_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sondeo-{name}-{:08x}", rand::random::<u32>()))
}

/// Submits one answer through the public API, as a website does.
async fn answer(http: &Http, respondent: usize) -> Reply {
    let body = serde_json::json!({"survey": "disk", "touchpoint": "web", "respondent": format!("r{respondent}@example.com"),
        "score": 9, "key": "pk_disk_test"});
    http.send(
        "POST",
        "/v1/responses",
        &[("content-type", "application/json")],
        &body.to_string(),
    )
    .await
}

/// Responses counted by the metrics route.
async fn counted(http: &Http, auth: &str) -> i64 {
    let r = http
        .send(
            "GET",
            "/v1/metrics?survey=disk",
            &[("authorization", auth)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    json["overall"]["total"]["n"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_with_retry_after_keeps_what_it_accepted_and_recovers() {
    // GIVEN local mode serving a survey
    let dir = temp_dir("full-disk");
    let (stack, server, http) = boot(&dir).await;
    let auth = format!("Bearer {}", stack.api_key);
    let survey = serde_json::json!({"id": "disk", "kind": "nps", "question": "Recommend us?",
        "touchpoints": [{"slug": "web"}], "public_key": "pk_disk_test"});
    let created = http
        .send(
            "POST",
            "/v1/surveys",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            &survey.to_string(),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let mint = serde_json::json!({"survey": "disk", "touchpoint": "web", "respondent": "link@example.com"});
    let minted = http
        .send(
            "POST",
            "/v1/links",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            &mint.to_string(),
        )
        .await;
    let links: serde_json::Value = serde_json::from_str(&minted.body).unwrap();
    let link = links["links"][9]["url"].as_str().unwrap().to_string();
    let link_path = link
        .strip_prefix(&http.base)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();

    // WHEN the database can no longer grow, as on a full disk, and answers keep coming
    stack.store.cap_size(Some(0)).await.unwrap();
    let mut accepted = 0;
    let mut refused = None;
    for respondent in 0..5_000 {
        let r = answer(&http, respondent).await;
        match r.status {
            202 => accepted += 1,
            _ => {
                refused = Some(r);
                break;
            }
        }
    }

    // THEN the refusal is a 503 that says to retry, and why
    let refused = refused.expect("the capped database filled up");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.retry_after.as_deref(), Some("5"));
    let error: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(error["error"]["code"], "out_of_space");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("out of disk space"),
        "{}",
        refused.body
    );
    // AND a respondent's page answers the same, as HTML
    let page = http
        .send(
            "POST",
            &link_path,
            &[("content-type", "application/x-www-form-urlencoded")],
            "score=9",
        )
        .await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert_eq!(page.retry_after.as_deref(), Some("5"));
    assert!(page.body.contains("out of disk space"), "{}", page.body);

    // AND while the disk stays full for longer than five deliveries, nothing is dead-lettered
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(stack.store.queue_depth_async().await.unwrap().1, 0);

    // WHEN space comes back
    stack.store.cap_size(None).await.unwrap();

    // THEN the next answer is accepted without a restart, and every accepted answer is counted
    let next = answer(&http, 99_999).await;
    assert_eq!(next.status, 202, "{}", next.body);
    let want = accepted + 1;
    let mut n = 0;
    for _ in 0..400 {
        n = counted(&http, &auth).await;
        if n == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n, want, "{accepted} accepted while filling, plus one after");
    assert_eq!(stack.store.queue_depth_async().await.unwrap(), (0, 0));
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends raw bytes on a new connection and reads until the server closes it.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8_lossy(&answer).to_string()
}

/// The status and body of each response in `answer`, in order.
fn responses(answer: &str) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    let mut rest = answer;
    while let Some(start) = rest.find("HTTP/1.1 ") {
        rest = &rest[start..];
        let status = rest[9..12].parse().unwrap();
        let (head, after) = rest.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        out.push((status, after[..length].to_string()));
        rest = &after[length..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_http_parser_refuses_get_a_one_line_reason() {
    let dir = temp_dir("refusals");
    let (_stack, server, _http) = boot(&dir).await;
    let addr = server.addr;
    let long_url = format!("GET /r/{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(100_000));
    let many_headers = format!(
        "GET /nope HTTP/1.1\r\nhost: x\r\n{}\r\n",
        (0..200)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    for (request, status, reason) in [
        (
            b"GET /r/a<b>\x7f HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            400,
            "invalid URL",
        ),
        (long_url.into_bytes(), 414, "request line too long"),
        (many_headers.into_bytes(), 431, "too many headers"),
        (
            b"GET /nope HTTP/1.1\r\nhost: x\r\nbad header: v\r\n\r\n".to_vec(),
            400,
            "header name",
        ),
    ] {
        let answer = raw(addr, &request).await;
        let got = responses(&answer);
        assert_eq!(got.len(), 1, "{answer}");
        assert_eq!(got[0].0, status, "{answer}");
        let json: serde_json::Value = serde_json::from_str(&got[0].1).expect(&answer);
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }

    // Requests before the refused one on the same connection are answered first, in order,
    // bodies included; the refused one ends the connection.
    let body = r#"{"survey":"x","score":9}"#;
    let pipelined = format!(
        "POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}\
         GET /nope HTTP/1.1\r\nhost: x\r\n\r\n\
         GET /a<b> HTTP/1.1\r\nhost: x\r\n\r\n\
         GET /never HTTP/1.1\r\nhost: x\r\n\r\n",
        body.len()
    );
    let answer = raw(addr, pipelined.as_bytes()).await;
    let got = responses(&answer);
    let statuses: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [400, 404, 400], "{answer}");
    assert!(got[0].1.contains("touchpoint is required"), "{answer}");
    assert!(got[2].1.contains("invalid URL"), "{answer}");

    // Graceful shutdown still stops the server.
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("the server stops");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Submits one answer in process, through the same router the server runs.
async fn answer_in_process(stack: &LocalStack, respondent: usize) -> u16 {
    let body = serde_json::json!({"survey": "stuck", "touchpoint": "web", "respondent": format!("r{respondent}@example.com"),
        "score": 7, "key": "pk_stuck_test"});
    let req = http::Request::builder()
        .method("POST")
        .uri("/v1/responses")
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap();
    sondeo_local::server::dispatch(stack, req)
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_waiting_out_a_full_disk_are_not_dead_lettered_and_all_count_once_it_clears() {
    use sondeo_domain::ports::SurveyStore;
    use sondeo_local::server::drain_once;
    // GIVEN local mode (its queue drained by hand) with 40 answers applied and 40 waiting,
    // each delivered once already
    let dir = temp_dir("stuck");
    let stack = LocalStack::open(&dir, None).await.unwrap();
    let survey: sondeo_domain::survey::Survey = serde_json::from_value(serde_json::json!({
        "id": "stuck", "kind": "nps", "question": "Recommend us?",
        "touchpoints": [{"slug": "web"}], "public_key": "pk_stuck_test"}))
    .unwrap();
    stack.store.create_survey(&survey).await.unwrap();
    for r in 0..40 {
        assert_eq!(answer_in_process(&stack, r).await, 202);
    }
    while drain_once(&stack).await > 0 {}
    for r in 40..80 {
        assert_eq!(answer_in_process(&stack, r).await, 202);
    }
    let waiting = stack.store.receive_async(100, 0).await.unwrap();
    assert_eq!(waiting.len(), 40);
    let ids: Vec<String> = waiting.into_iter().map(|(id, _)| id).collect();
    stack.store.retry_later_async(&ids, 0).await.unwrap();

    // WHEN the disk is full for more deliveries than the dead-letter limit allows
    stack.store.cap_size(Some(0)).await.unwrap();
    for _ in 0..sondeo_embedded::MAX_RECEIVES + 1 {
        drain_once(&stack).await;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    assert_eq!(
        stack.store.queue_depth_async().await.unwrap(),
        (40, 0),
        "the waiting answers are still queued, none dead-lettered"
    );

    // THEN once space is back every answer is applied, none lost
    stack.store.cap_size(None).await.unwrap();
    for _ in 0..50 {
        if drain_once(&stack).await == 0 && stack.store.queue_depth_async().await.unwrap().0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stack.store.queue_depth_async().await.unwrap(), (0, 0));
    assert_eq!(
        stack
            .store
            .all_responses_async("stuck")
            .await
            .unwrap()
            .len(),
        80
    );
    let _ = std::fs::remove_dir_all(&dir);
}
