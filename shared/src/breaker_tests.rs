use super::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;

const COLLECT: &str = "sondeo-CollectFunction-AbC123";
const METRICS: &str = "sondeo-MetricsFunction-XyZ789";

/// The payload CloudWatch sends a Lambda alarm action for a metric-math alarm over a function's
/// Invocations + Throttles (the template's flood alarms), as documented by AWS.
fn flood_event(state: &str, function: &str) -> Value {
    json!({
        "source": "aws.cloudwatch",
        "alarmArn": "arn:aws:cloudwatch:us-east-1:111122223333:alarm:sondeo-collect-flood",
        "accountId": "111122223333",
        "time": "2026-11-23T17:00:00.000+0000",
        "region": "us-east-1",
        "alarmData": {
            "alarmName": "sondeo-collect-flood",
            "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2026-11-23T17:00:00.000+0000"},
            "previousState": {"value": "OK", "reason": "", "timestamp": "2026-11-23T16:00:00.000+0000"},
            "configuration": {
                "description": "collect flood",
                "metrics": [
                    {"id": "requests", "expression": "invocations + throttles", "label": "requests", "returnData": true},
                    {"id": "invocations", "metricStat": {"metric": {"namespace": "AWS/Lambda", "name": "Invocations",
                        "dimensions": {"FunctionName": function}}, "period": 60, "stat": "Sum"}, "returnData": false},
                    {"id": "throttles", "metricStat": {"metric": {"namespace": "AWS/Lambda", "name": "Throttles",
                        "dimensions": {"FunctionName": function}}, "period": 60, "stat": "Sum"}, "returnData": false}
                ]
            }
        }
    })
}

fn config(cap: Option<u32>) -> BreakerConfig {
    BreakerConfig {
        guarded: vec![COLLECT.into(), METRICS.into()],
        cap,
    }
}

/// Alarm states as CloudWatch would answer them now.
struct FakeAlarms(HashMap<String, AlarmState>);

#[async_trait]
impl AlarmStates for FakeAlarms {
    async fn state(&self, alarm: &str) -> Result<Option<AlarmState>, BreakerError> {
        Ok(self.0.get(alarm).copied())
    }
}

/// Records every reservation change; fails them all when `broken`.
#[derive(Default)]
struct FakeConcurrency {
    calls: Mutex<Vec<(String, Option<u32>)>>,
    broken: bool,
}

#[async_trait]
impl FunctionConcurrency for FakeConcurrency {
    async fn reserve(&self, function: &str, n: u32) -> Result<(), BreakerError> {
        self.record(function, Some(n))
    }
    async fn unreserve(&self, function: &str) -> Result<(), BreakerError> {
        self.record(function, None)
    }
}

impl FakeConcurrency {
    fn record(&self, function: &str, n: Option<u32>) -> Result<(), BreakerError> {
        if self.broken {
            return Err(BreakerError::Aws {
                action: format!("changing {function}"),
                message: "ThrottlingException: Rate exceeded".into(),
            });
        }
        self.calls
            .lock()
            .expect("calls")
            .push((function.to_string(), n));
        Ok(())
    }
    fn calls(&self) -> Vec<(String, Option<u32>)> {
        self.calls.lock().expect("calls").clone()
    }
}

fn alarms_now(state: AlarmState) -> FakeAlarms {
    FakeAlarms(HashMap::from([("sondeo-collect-flood".to_string(), state)]))
}

#[test]
fn reads_the_alarm_name_state_and_function_once_from_a_metric_math_payload() {
    let change = parse_alarm_event(&flood_event("ALARM", COLLECT)).expect("an alarm event");
    assert_eq!(
        change,
        AlarmChange {
            alarm_name: "sondeo-collect-flood".into(),
            state: AlarmState::Alarm,
            functions: vec![COLLECT.into()],
        }
    );
}

#[test]
fn events_that_are_not_alarm_state_changes_are_refused_with_the_reason() {
    let cases = [
        (json!({}), "alarmName"),
        (json!({"alarmData": {"alarmName": ""}}), "alarmName"),
        (json!({"alarmData": {"alarmName": "a"}}), "state.value"),
        (
            json!({"alarmData": {"alarmName": "a", "state": {"value": "PANIC"}}}),
            "PANIC",
        ),
        (json!({"Records": [{"body": "x"}]}), "alarmName"),
    ];
    for (event, why) in cases {
        let err = parse_alarm_event(&event).expect_err("not an alarm");
        assert!(matches!(err, BreakerError::NotAnAlarm(_)), "{err}");
        assert!(err.to_string().contains(why), "{err} should mention {why}");
        assert!(!err.is_retryable());
    }
}

#[test]
fn config_reads_names_and_a_cap_where_zero_or_empty_means_none() {
    let c = BreakerConfig::parse(&format!(" {COLLECT} ,{METRICS},"), Some("25")).expect("valid");
    assert_eq!(c, config(Some(25)));
    assert_eq!(BreakerConfig::parse(COLLECT, Some("0")).expect("valid").cap, None);
    assert_eq!(BreakerConfig::parse(COLLECT, Some("")).expect("valid").cap, None);
    assert_eq!(BreakerConfig::parse(COLLECT, None).expect("valid").cap, None);
    for (names, cap) in [("", None), (" , ", None), (COLLECT, Some("-1")), (COLLECT, Some("ten"))] {
        let err = BreakerConfig::parse(names, cap).expect_err("invalid");
        assert!(matches!(err, BreakerError::Config(_)), "{err}");
    }
}

#[test]
fn plan_throttles_on_alarm_restores_the_cap_on_ok_and_waits_on_insufficient_data() {
    let fs = vec![COLLECT.to_string()];
    assert_eq!(
        plan(AlarmState::Alarm, &fs, &config(Some(20))),
        vec![Step::Throttle {
            function: COLLECT.into()
        }]
    );
    assert_eq!(
        plan(AlarmState::Ok, &fs, &config(Some(20))),
        vec![Step::Restore {
            function: COLLECT.into(),
            cap: Some(20)
        }]
    );
    assert_eq!(
        plan(AlarmState::Ok, &fs, &config(None)),
        vec![Step::Restore {
            function: COLLECT.into(),
            cap: None
        }]
    );
    assert!(plan(AlarmState::InsufficientData, &fs, &config(None)).is_empty());
}

#[tokio::test]
async fn an_alarm_throttles_the_function_to_zero() {
    let concurrency = FakeConcurrency::default();
    let outcome = handle(
        &flood_event("ALARM", COLLECT),
        &config(None),
        &alarms_now(AlarmState::Alarm),
        &concurrency,
    )
    .await
    .expect("handled");
    assert_eq!(outcome.state, AlarmState::Alarm);
    assert_eq!(concurrency.calls(), vec![(COLLECT.to_string(), Some(0))]);
}

#[tokio::test]
async fn ok_restores_the_configured_cap_or_removes_the_reservation() {
    for (cap, want) in [(Some(40), Some(40)), (None, None)] {
        let concurrency = FakeConcurrency::default();
        handle(
            &flood_event("OK", COLLECT),
            &config(cap),
            &alarms_now(AlarmState::Ok),
            &concurrency,
        )
        .await
        .expect("handled");
        assert_eq!(concurrency.calls(), vec![(COLLECT.to_string(), want)]);
    }
}

#[tokio::test]
async fn a_late_alarm_event_after_the_flood_ended_restores_instead_of_throttling() {
    let concurrency = FakeConcurrency::default();
    let outcome = handle(
        &flood_event("ALARM", COLLECT),
        &config(None),
        &alarms_now(AlarmState::Ok),
        &concurrency,
    )
    .await
    .expect("handled");
    assert_eq!(outcome.event_state, AlarmState::Alarm);
    assert_eq!(outcome.state, AlarmState::Ok);
    assert_eq!(concurrency.calls(), vec![(COLLECT.to_string(), None)]);
}

#[tokio::test]
async fn a_deleted_alarm_leaves_no_function_throttled() {
    let concurrency = FakeConcurrency::default();
    handle(
        &flood_event("ALARM", COLLECT),
        &config(Some(10)),
        &FakeAlarms(HashMap::new()),
        &concurrency,
    )
    .await
    .expect("handled");
    assert_eq!(concurrency.calls(), vec![(COLLECT.to_string(), Some(10))]);
}

#[tokio::test]
async fn an_alarm_over_a_function_not_guarded_changes_nothing() {
    let concurrency = FakeConcurrency::default();
    let err = handle(
        &flood_event("ALARM", "someone-elses-function"),
        &config(None),
        &alarms_now(AlarmState::Alarm),
        &concurrency,
    )
    .await
    .expect_err("not guarded");
    assert!(matches!(err, BreakerError::NoGuardedFunction { .. }), "{err}");
    assert!(err.to_string().contains("someone-elses-function"));
    assert!(!err.is_retryable());
    assert!(concurrency.calls().is_empty());
}

#[tokio::test]
async fn a_failed_lambda_call_is_reported_as_retryable() {
    let concurrency = FakeConcurrency {
        broken: true,
        ..FakeConcurrency::default()
    };
    let err = handle(
        &flood_event("ALARM", COLLECT),
        &config(None),
        &alarms_now(AlarmState::Alarm),
        &concurrency,
    )
    .await
    .expect_err("Lambda refused");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("Rate exceeded"));
}
