//! The aggregator handler driven by a real SQS event fixture.

use super::*;
use sondeo_domain::ports::CounterReader;
use sondeo_embedded::EmbeddedStore;
use std::collections::BTreeMap;

fn event(fixture: &str) -> LambdaEvent<SqsEvent> {
    let payload: SqsEvent = serde_json::from_str(fixture).expect("fixture is an SQS event");
    LambdaEvent::new(payload, lambda_runtime::Context::default())
}

const FIXTURE: &str = include_str!("../../../tests/fixtures/sqs_event.json");

#[tokio::test]
async fn sqs_fixture_batch_counts_once_and_reports_nothing_failed() {
    let store = EmbeddedStore::in_memory().unwrap();
    let resp = handle(&store, event(FIXTURE), "INFO").await.unwrap();
    assert!(resp.batch_item_failures.is_empty());
    // The same batch delivered again changes nothing.
    let again = handle(&store, event(FIXTURE), "INFO").await.unwrap();
    assert!(again.batch_item_failures.is_empty());
    let day = "2026-11-26".parse().unwrap();
    let rows = store.read_counters("nps-2026", day, day).await.unwrap();
    assert_eq!(rows.len(), 1);
    // Respondent ana answered 6 then 9 (in reverse order in the batch): counted once, as 9.
    assert_eq!(rows[0].histogram.n, 2);
    assert_eq!(rows[0].histogram.slots.get(&9), Some(&1));
    assert_eq!(rows[0].histogram.slots.get(&6), None);
}

#[tokio::test]
async fn a_malformed_message_is_kept_not_retried() {
    let fixture = FIXTURE.replacen("\"body\": \"{", "\"body\": \"{broken", 1);
    let store = EmbeddedStore::in_memory().unwrap();
    let resp = handle(&store, event(&fixture), "INFO").await.unwrap();
    assert!(
        resp.batch_item_failures.is_empty(),
        "a message that can never succeed is not retried"
    );
}

/// Records the `message` spans (their fields) and the `outcome` of each event logged inside one.
#[derive(Clone, Default)]
struct MessageSpans {
    spans: std::sync::Arc<std::sync::Mutex<Vec<BTreeMap<String, String>>>>,
    outcomes: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            format!("{value:?}").trim_matches('"').to_string(),
        );
    }
}

thread_local! {
    /// Whether `message` spans created on this thread are recorded.
    static RECORDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The recorder, installed as the global subscriber once. A scoped subscriber
/// (`with_default`) would race with the other tests: while it is the only dispatcher, callsites
/// first hit on another thread are cached as disabled for every thread.
fn capture() -> &'static MessageSpans {
    use tracing_subscriber::layer::SubscriberExt;
    static CAPTURE: std::sync::OnceLock<MessageSpans> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = MessageSpans::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(capture.clone()),
        )
        .expect("no other test sets a global subscriber");
        capture
    })
}

/// The index of a span in `MessageSpans::spans`, kept in the span's extensions.
struct SpanIndex(usize);

impl<S> tracing_subscriber::Layer<S> for MessageSpans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() != "message" || !RECORDING.with(|r| r.get()) {
            return;
        }
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanIndex(spans.len() - 1));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let index = span.extensions().get::<SpanIndex>().map(|i| i.0);
        if let Some(i) = index {
            values.record(&mut Fields(&mut self.spans.lock().unwrap()[i]));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let (Some(outcome), Some(span)) = (fields.remove("outcome"), ctx.event_span(event)) else {
            return;
        };
        let index = span.extensions().get::<SpanIndex>().map(|i| i.0);
        if let Some(i) = index {
            let id = self.spans.lock().unwrap()[i]["message_id"].clone();
            self.outcomes.lock().unwrap().push((id, outcome));
        }
    }
}

#[tokio::test]
async fn each_message_is_logged_in_its_own_span_with_its_ids_and_outcome() {
    // GIVEN a batch of two answers by ana (e3 newer than e1) and a malformed message.
    let fixture = FIXTURE.replacen(
        "\"body\": \"{\\\"event_id\\\": \\\"e2\\\"",
        "\"body\": \"{broken",
        1,
    );
    assert_ne!(fixture, FIXTURE, "the fixture carries event e2");
    let store = EmbeddedStore::in_memory().unwrap();
    let capture = capture();
    // WHEN the handler applies it (on this thread: the test runtime has one)
    RECORDING.with(|r| r.set(true));
    let response = handle(&store, event(&fixture), "INFO").await;
    RECORDING.with(|r| r.set(false));
    response.unwrap();
    // THEN there is one span per message, with its message id, and its event id when it decodes
    let payload: SqsEvent = serde_json::from_str(&fixture).unwrap();
    let ids: Vec<String> = payload
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    let spans = capture.spans.lock().unwrap().clone();
    let span_ids: Vec<&str> = spans.iter().map(|s| s["message_id"].as_str()).collect();
    assert_eq!(span_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let event_ids: Vec<Option<&str>> = spans
        .iter()
        .map(|s| s.get("event_id").map(String::as_str))
        .collect();
    assert_eq!(event_ids, [Some("e3"), Some("e1"), None]);
    // AND each message's outcome is logged once, inside its own span
    let mut outcomes = capture.outcomes.lock().unwrap().clone();
    outcomes.sort();
    let mut want = vec![
        (ids[0].clone(), "applied".to_string()),
        // e1 is older than e3 for the same respondent: it rides along with e3's commit.
        (ids[1].clone(), "applied".to_string()),
        (ids[2].clone(), "rejected".to_string()),
    ];
    want.sort();
    assert_eq!(outcomes, want);
}

/// A ledger over the embedded store that refuses, permanently, any commit holding a `poison` event.
struct Poisoned(EmbeddedStore, std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl ResponseLedger for Poisoned {
    async fn load_records(
        &self,
        keys: &[sondeo_domain::response::ResponseKey],
    ) -> Result<
        HashMap<sondeo_domain::response::ResponseKey, sondeo_domain::aggregate::RecordState>,
        sondeo_domain::ports::StoreError,
    > {
        self.0.load_records(keys).await
    }
    async fn commit(
        &self,
        chunk: &sondeo_domain::aggregate::Chunk,
    ) -> Result<sondeo_domain::ports::CommitOutcome, sondeo_domain::ports::StoreError> {
        if chunk
            .transitions
            .iter()
            .any(|t| t.event.as_ref().is_some_and(|e| e.event_id == "poison"))
        {
            return Err(sondeo_domain::ports::StoreError::Permanent(
                "ValidationException: the item is refused".into(),
            ));
        }
        self.0.commit(chunk).await
    }
    async fn keep_rejected(
        &self,
        message_id: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), sondeo_domain::ports::StoreError> {
        self.0.keep_rejected(message_id, body, reason).await?;
        self.1.lock().unwrap().push(message_id.to_string());
        Ok(())
    }
}

fn batch_of(n: usize, poison_at: usize) -> LambdaEvent<SqsEvent> {
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let id = if i == poison_at { "poison".to_string() } else { format!("e{i}") };
            let body = serde_json::json!({"event_id": id, "survey": "nps-2026", "touchpoint": "post-purchase",
                "respondent": format!("r{i}"), "kind": "nps", "score": i % 11, "answered_at": 1_795_658_400_000i64, "source": "link"});
            serde_json::json!({"messageId": format!("m{i}"), "receiptHandle": "h", "body": body.to_string(),
                "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
        })
        .collect();
    event(&serde_json::json!({ "Records": records }).to_string())
}

#[tokio::test]
async fn one_poison_message_in_a_batch_of_100_is_kept_alone_and_99_count() {
    let store = Poisoned(EmbeddedStore::in_memory().unwrap(), Default::default());
    let response = handle(&store, batch_of(100, 42), "INFO").await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "nothing goes back to the queue, so nothing reaches the dead-letter queue"
    );
    let day = "2026-11-26".parse().unwrap();
    let rows = store.0.read_counters("nps-2026", day, day).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.histogram.n).sum::<i64>(), 99);
    assert_eq!(*store.1.lock().unwrap(), ["m42"]);
}

#[tokio::test]
async fn a_record_without_a_message_id_fails_the_batch_instead_of_vanishing() {
    let fixture = FIXTURE.replacen(
        "\"messageId\": \"059f36b4-87a3-44ab-83d2-6601ff8f7b1\",",
        "",
        1,
    );
    assert_ne!(fixture, FIXTURE);
    let store = EmbeddedStore::in_memory().unwrap();
    let err = handle(&store, event(&fixture), "INFO").await.unwrap_err();
    assert!(err.to_string().contains("no message id"), "{err}");
    // The redelivered batch (with its id) then counts every answer once.
    handle(&store, event(FIXTURE), "INFO").await.unwrap();
    let day = "2026-11-26".parse().unwrap();
    let rows = store.read_counters("nps-2026", day, day).await.unwrap();
    assert_eq!(rows[0].histogram.n, 2);
}

#[test]
fn the_metrics_line_is_emf_with_a_level_lambda_keeps() {
    let outcome = BatchOutcome {
        applied: vec!["a".into(), "b".into()],
        rejected: vec![("c".into(), "bad".into())],
        items_written: 3,
        ..Default::default()
    };
    let line = metrics_line(&outcome, 0, "WARN", 1_795_658_400_123);
    assert!(!line.contains('\n'), "one line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    // Lambda's filter: a valid level and an RFC 3339 timestamp, else the line counts as INFO.
    assert_eq!(v["level"], "WARN");
    assert_eq!(v["timestamp"], "2026-11-26T02:00:00.123Z");
    // EMF: _aws.Timestamp in ms, and every declared metric is a top-level number.
    assert_eq!(v["_aws"]["Timestamp"], 1_795_658_400_123i64);
    let directive = &v["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Sondeo");
    for dims in directive["Dimensions"].as_array().unwrap() {
        for d in dims.as_array().unwrap() {
            assert!(v[d.as_str().unwrap()].is_string(), "dimension {d}");
        }
    }
    let metrics = directive["Metrics"].as_array().unwrap();
    assert!(metrics.len() >= 6);
    for m in metrics {
        let name = m["Name"].as_str().unwrap();
        assert!(v[name].is_number(), "metric {name} has a value");
    }
    assert_eq!(v["applied"], 2);
    assert_eq!(v["rejected"], 1);
    assert_eq!(v["items_written"], 3);
}

mod alerts {
    use super::*;
    use async_trait::async_trait;
    use sondeo_domain::alert_delivery::{CachedAlertRules, RULES_TTL};
    use sondeo_domain::alerts::{AlertJob, AlertKind, AlertRule, AlertSecret, AlertTarget};
    use sondeo_domain::ports::{AlertQueue, AlertRuleStore, StoreError};
    use std::sync::{Arc, Mutex};

    /// A queue that keeps jobs, or refuses every one.
    #[derive(Default)]
    struct Jobs {
        kept: Mutex<Vec<AlertJob>>,
        refuse: bool,
    }

    #[async_trait]
    impl AlertQueue for Jobs {
        async fn enqueue_alert(&self, job: &AlertJob, _: u64) -> Result<(), StoreError> {
            if self.refuse {
                return Err(StoreError::Transient("queue down".into()));
            }
            self.kept.lock().unwrap().push(job.clone());
            Ok(())
        }
    }

    async fn rules(store: &EmbeddedStore) -> CachedAlertRules {
        let rule = AlertRule {
            id: "al_every".into(),
            survey: "nps-2026".into(),
            touchpoint: None,
            min_score: None,
            max_score: None,
            has_comment: None,
            target: AlertTarget {
                url: "https://hooks.example.com/x".into(),
                kind: AlertKind::Generic,
            },
            created_at: 0,
        };
        store
            .put_alert_rule(&rule, &AlertSecret::generate())
            .await
            .unwrap();
        CachedAlertRules::new(Arc::new(store.clone()), RULES_TTL)
    }

    #[tokio::test]
    async fn each_new_counted_answer_raises_one_job_and_a_redelivered_batch_none() {
        let store = EmbeddedStore::in_memory().unwrap();
        let rules = rules(&store).await;
        let queue = Jobs::default();
        let hook = AlertHook {
            rules: &rules,
            queue: &queue,
        };
        handle_with_alerts(&store, Some(&hook), event(FIXTURE), "INFO")
            .await
            .unwrap();
        let first: Vec<AlertJob> = queue.kept.lock().unwrap().clone();
        // Two respondents counted (ana's 6 is superseded by her 9 in the same batch).
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(first.iter().any(|j| j.answer.score == 9));
        assert!(!first.iter().any(|j| j.answer.score == 6));
        handle_with_alerts(&store, Some(&hook), event(FIXTURE), "INFO")
            .await
            .unwrap();
        assert_eq!(queue.kept.lock().unwrap().len(), 2, "nothing new committed");
    }

    #[tokio::test]
    async fn a_queue_that_refuses_alerts_never_fails_the_batch() {
        let store = EmbeddedStore::in_memory().unwrap();
        let rules = rules(&store).await;
        let queue = Jobs {
            refuse: true,
            ..Default::default()
        };
        let hook = AlertHook {
            rules: &rules,
            queue: &queue,
        };
        let resp = handle_with_alerts(&store, Some(&hook), event(FIXTURE), "INFO")
            .await
            .unwrap();
        assert!(resp.batch_item_failures.is_empty());
        let day = "2026-11-26".parse().unwrap();
        assert_eq!(
            store.read_counters("nps-2026", day, day).await.unwrap()[0]
                .histogram
                .n,
            2
        );
    }
}
