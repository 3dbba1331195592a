//! The alert adapters against a moto server on 127.0.0.1, with the real SDK clients: rules and
//! the delivery log in DynamoDB (the items they write, the claims that make each attempt run
//! once), jobs on SQS (delays capped at SQS's 15 minutes), and the worker over both.

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sondeo_aws::alerts::SqsAlertQueue;
use sondeo_aws::dynamo::DynamoStore;
use sondeo_domain::addresses::AddressAllowlist;
use sondeo_domain::alert_delivery::{run_alert_job, AlertWorker, JobOutcome};
use sondeo_domain::alerts::{
    AlertAnswer, AlertJob, AlertKind, AlertRule, AlertSecret, AlertTarget, DeliveryRecord,
    DeliveryStatus,
};
use sondeo_domain::ports::{AlertLog, AlertQueue, AlertRuleStore};
use sondeo_domain::response::Source;
use sondeo_domain::survey::SurveyKind;
use sondeo_domain::time::now_ms;
use sondeo_tests::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

async fn store() -> (DynamoStore, aws_sdk_dynamodb::Client) {
    moto_store("alerts").await
}

fn rule(id: &str, survey: &str, url: &str) -> AlertRule {
    AlertRule {
        id: id.into(),
        survey: survey.into(),
        touchpoint: None,
        min_score: Some(0),
        max_score: Some(6),
        has_comment: None,
        target: AlertTarget {
            url: url.into(),
            kind: AlertKind::Generic,
        },
        created_at: 1,
    }
}

fn job(rule_id: &str, attempt: u32) -> AlertJob {
    AlertJob {
        rule_id: rule_id.into(),
        delivery_id: format!("d-{rule_id}"),
        answer: AlertAnswer {
            survey: "nps".into(),
            touchpoint: "checkout".into(),
            kind: SurveyKind::Nps,
            score: 2,
            comment: Some("slow".into()),
            properties: Default::default(),
            send: String::new(),
            answered_at: 1_700_000_000_000,
            source: Source::Api,
            event_id: "e1".into(),
        },
        attempt,
        not_before: 0,
    }
}

#[tokio::test]
async fn rules_keep_their_secret_out_of_the_document_and_list_per_survey() {
    let (s, client) = store().await;
    let secret = AlertSecret::generate();
    s.put_alert_rule(&rule("al_b", "nps", "https://a.example/x"), &secret)
        .await
        .unwrap();
    s.put_alert_rule(&rule("al_a", "nps", "https://b.example/x"), &secret)
        .await
        .unwrap();
    s.put_alert_rule(&rule("al_c", "csat", "https://c.example/x"), &secret)
        .await
        .unwrap();
    let item = raw_item(&client, s.table(), "ALERTRULE", "al_a").await;
    assert!(!item["doc"].as_s().unwrap().contains(secret.expose()));
    assert_eq!(item["secret"].as_s().unwrap(), secret.expose());
    let ids = |v: Vec<AlertRule>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_alert_rules(Some("nps")).await.unwrap()),
        ["al_a", "al_b"]
    );
    assert_eq!(s.list_alert_rules(None).await.unwrap().len(), 3);
    let (got, got_secret) = s.get_alert_rule("al_c").await.unwrap().unwrap();
    assert_eq!((got.survey.as_str(), got_secret), ("csat", secret));
    assert!(s.get_alert_rule("al_x").await.unwrap().is_none());
    assert!(s.delete_alert_rule("al_c").await.unwrap());
    assert!(!s.delete_alert_rule("al_c").await.unwrap());
}

#[tokio::test]
async fn each_attempt_is_claimed_once_and_a_finished_delivery_never_again() {
    let (s, client) = store().await;
    let now = now_ms();
    assert!(s.claim_delivery("nps", &job("al_1", 0), now).await.unwrap());
    assert!(!s.claim_delivery("nps", &job("al_1", 0), now).await.unwrap());
    assert!(s.claim_delivery("nps", &job("al_1", 1), now).await.unwrap());
    assert!(!s.claim_delivery("nps", &job("al_1", 0), now).await.unwrap());
    let item = raw_item(&client, s.table(), "ALERTLOG#nps", "d-al_1").await;
    assert_eq!(item["attempts"].as_n().unwrap(), "2");
    let ttl: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
    assert!(ttl > now / 1000 + 89 * 86_400, "kept about 90 days: {ttl}");
    let record = DeliveryRecord {
        delivery_id: "d-al_1".into(),
        rule_id: "al_1".into(),
        status: DeliveryStatus::Delivered,
        attempts: 2,
        detail: "HTTP 200".into(),
        at: now,
    };
    s.record_delivery("nps", &record).await.unwrap();
    assert!(!s.claim_delivery("nps", &job("al_1", 2), now).await.unwrap());
    assert_eq!(s.get_delivery("nps", "d-al_1").await.unwrap(), Some(record));
    assert!(s.get_delivery("csat", "d-al_1").await.unwrap().is_none());
}

#[tokio::test]
async fn the_sqs_alert_queue_carries_the_job_and_caps_the_delay() {
    let client = aws_sdk_sqs::Client::new(&moto_config().await);
    let url = create_queue(&client, "alerts").await;
    let queue = SqsAlertQueue::new(client.clone(), url.clone());
    queue.enqueue_alert(&job("al_now", 0), 0).await.unwrap();
    // Two hours is more than SQS allows: sent with its 15 minutes, not refused.
    queue
        .enqueue_alert(&job("al_later", 5), 7200)
        .await
        .unwrap();
    let got = client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let jobs: Vec<AlertJob> = got
        .messages()
        .iter()
        .filter_map(|m| serde_json::from_str(m.body()?).ok())
        .collect();
    assert_eq!(
        jobs,
        vec![job("al_now", 0)],
        "the delayed job is not visible yet"
    );
}

#[tokio::test]
async fn the_worker_over_dynamodb_and_sqs_delivers_once_and_retries_a_503() {
    // A receiver answering 503 once, then 200.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: hyper::Request<hyper::body::Incoming>| {
                    let n = counted.fetch_add(1, Ordering::SeqCst);
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(if n == 0 { 503 } else { 200 })
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let (s, _) = store().await;
    let sqs = aws_sdk_sqs::Client::new(&moto_config().await);
    let url = create_queue(&sqs, "alerts").await;
    let queue = SqsAlertQueue::new(sqs, url);
    let sender =
        sondeo_http::outbound::OutboundClient::new(AddressAllowlist::parse("127.0.0.1").unwrap())
            .unwrap();
    s.put_alert_rule(
        &rule("al_w", "nps", &format!("http://{addr}/hook")),
        &AlertSecret::generate(),
    )
    .await
    .unwrap();
    let worker = AlertWorker {
        rules: &s,
        log: &s,
        queue: &queue,
        sender: &sender,
    };
    let now = now_ms();
    let first = job("al_w", 0);
    assert_eq!(
        run_alert_job(&first, &worker, now).await,
        JobOutcome::Retrying(30)
    );
    assert_eq!(
        run_alert_job(&first, &worker, now).await,
        JobOutcome::Skipped("this attempt was already made"),
        "a redelivered message posts nothing"
    );
    let second = first.next_attempt(now + 30_000);
    assert_eq!(
        run_alert_job(&second, &worker, now + 30_000).await,
        JobOutcome::Delivered(200)
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let log = s
        .get_delivery("nps", &first.delivery_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((log.status, log.attempts), (DeliveryStatus::Delivered, 2));
    assert!(matches!(
        run_alert_job(&second.next_attempt(now), &worker, now + 31_000).await,
        JobOutcome::Skipped(_)
    ));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}
