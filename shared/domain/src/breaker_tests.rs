use super::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;

const COLLECT: &str = "sondeo-CollectFunction-AbC123";
const COLLECT_ARN: &str =
    "arn:aws:lambda:us-east-1:111122223333:function:sondeo-CollectFunction-AbC123";
const METRICS_ARN: &str =
    "arn:aws:lambda:us-east-1:111122223333:function:sondeo-MetricsFunction-XyZ789";
/// 2026-11-23T17:00:00.000+0000 in Unix ms.
const AT: i64 = 1_795_453_200_000;

/// The payload CloudWatch sends a Lambda alarm action for a metric-math alarm over a function's
/// Invocations + Throttles (the template's flood alarms), as documented by AWS.
fn flood_event(state: &str, function: &str) -> Value {
    flood_event_at(state, function, "2026-11-23T17:00:00.000+0000")
}

fn flood_event_at(state: &str, function: &str, timestamp: &str) -> Value {
    json!({
        "source": "aws.cloudwatch",
        "alarmArn": "arn:aws:cloudwatch:us-east-1:111122223333:alarm:sondeo-collect-flood",
        "accountId": "111122223333",
        "time": "2026-11-23T17:00:00.000+0000",
        "region": "us-east-1",
        "alarmData": {
            "alarmName": "sondeo-collect-flood",
            "state": {"value": state, "reason": "Threshold Crossed", "timestamp": timestamp},
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
        guarded: vec![COLLECT_ARN.into(), METRICS_ARN.into()],
        cap,
    }
}

/// Guarded functions in memory: every reservation change, and the applied-time records.
#[derive(Default)]
struct FakeFunctions {
    calls: Mutex<Vec<(String, Option<u32>)>>,
    applied: Mutex<HashMap<String, i64>>,
    broken: bool,
}

#[async_trait]
impl GuardedFunctions for FakeFunctions {
    async fn reserve(&self, function: &str, n: u32) -> Result<(), BreakerError> {
        self.record(function, Some(n))
    }
    async fn unreserve(&self, function: &str) -> Result<(), BreakerError> {
        self.record(function, None)
    }
    async fn last_applied(&self, function: &str) -> Result<Option<i64>, BreakerError> {
        Ok(self.applied.lock().expect("applied").get(function).copied())
    }
    async fn record_applied(&self, function: &str, at_ms: i64) -> Result<(), BreakerError> {
        self.applied
            .lock()
            .expect("applied")
            .insert(function.to_string(), at_ms);
        Ok(())
    }
}

impl FakeFunctions {
    fn record(&self, function: &str, n: Option<u32>) -> Result<(), BreakerError> {
        if self.broken {
            return Err(BreakerError::Aws {
                action: format!("changing {function}"),
                message: "TooManyRequestsException: Rate exceeded".into(),
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

#[test]
fn reads_the_alarm_name_state_and_function_once_from_a_metric_math_payload() {
    let change = parse_alarm_event(&flood_event("ALARM", COLLECT)).expect("an alarm event");
    assert_eq!(
        change,
        AlarmChange {
            alarm_name: "sondeo-collect-flood".into(),
            state: AlarmState::Alarm,
            at_ms: AT,
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
            json!({"alarmData": {"alarmName": "a", "state": {"value": "OK"}}}),
            "timestamp",
        ),
        (
            json!({"alarmData": {"alarmName": "a", "state": {"value": "OK", "timestamp": "soon"}}}),
            "soon",
        ),
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
fn config_reads_arns_and_a_cap_where_zero_or_empty_means_none() {
    let c = BreakerConfig::parse(&format!(" {COLLECT_ARN} ,{METRICS_ARN},"), Some("25"))
        .expect("valid");
    assert_eq!(c, config(Some(25)));
    for cap in [Some("0"), Some(""), None] {
        let c = BreakerConfig::parse(COLLECT_ARN, cap).expect("valid");
        assert_eq!(c.cap, None, "{cap:?}");
    }
    for (names, cap) in [
        ("", None),
        (" , ", None),
        (COLLECT, None),
        (COLLECT_ARN, Some("-1")),
        (COLLECT_ARN, Some("ten")),
    ] {
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

#[test]
fn timestamps_in_cloudwatch_form_and_offsets_parse_to_unix_ms() {
    assert_eq!(parse_timestamp("2026-11-23T17:00:00.000+0000"), Some(AT));
    assert_eq!(
        parse_timestamp("2026-11-23T17:00:00.49+0000"),
        Some(AT + 490)
    );
    assert_eq!(parse_timestamp("2026-11-23T18:30:00.000+0130"), Some(AT));
    assert_eq!(parse_timestamp("2026-11-23T17:00:00Z"), Some(AT));
    assert_eq!(parse_timestamp("1970-01-01T00:00:01.000+0000"), Some(1000));
    for bad in [
        "",
        "2026-11-23",
        "2026-13-01T00:00:00+0000",
        "2026-11-23T25:00:00+0000",
        "2026-11-23T17:00:00.000+00",
        "yesterday",
    ] {
        assert_eq!(parse_timestamp(bad), None, "{bad}");
    }
}

#[test]
fn function_names_come_from_arns_only() {
    assert_eq!(function_name(COLLECT_ARN), Some(COLLECT));
    for bad in [
        "",
        COLLECT,
        "arn:aws:lambda:us-east-1:1:function:",
        "arn:aws:lambda:us-east-1:1:function:f:live",
        "x:function:f",
    ] {
        assert_eq!(function_name(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn an_alarm_throttles_the_function_to_zero_and_records_its_time() {
    let functions = FakeFunctions::default();
    let outcome = handle(&flood_event("ALARM", COLLECT), &config(None), &functions)
        .await
        .expect("handled");
    assert_eq!(outcome.state, AlarmState::Alarm);
    assert_eq!(functions.calls(), vec![(COLLECT_ARN.to_string(), Some(0))]);
    assert_eq!(functions.last_applied(COLLECT_ARN).await.unwrap(), Some(AT));
    assert_eq!(functions.last_applied(METRICS_ARN).await.unwrap(), None);
}

#[tokio::test]
async fn ok_restores_the_configured_cap_or_removes_the_reservation() {
    for (cap, want) in [(Some(40), Some(40)), (None, None)] {
        let functions = FakeFunctions::default();
        handle(&flood_event("OK", COLLECT), &config(cap), &functions)
            .await
            .expect("handled");
        assert_eq!(functions.calls(), vec![(COLLECT_ARN.to_string(), want)]);
    }
}

#[tokio::test]
async fn a_late_alarm_after_a_newer_ok_and_a_repeat_change_nothing() {
    let functions = FakeFunctions::default();
    let ok = flood_event_at("OK", COLLECT, "2026-11-23T17:05:00.000+0000");
    handle(&ok, &config(None), &functions).await.expect("ok");
    // The ALARM of 17:00, delivered late (a retry), must not switch collect off again.
    let outcome = handle(&flood_event("ALARM", COLLECT), &config(None), &functions)
        .await
        .expect("late alarm");
    assert_eq!(outcome.stale, vec![COLLECT_ARN.to_string()]);
    assert!(outcome.steps.is_empty());
    // The same OK twice: applied once.
    handle(&ok, &config(None), &functions)
        .await
        .expect("repeat");
    assert_eq!(functions.calls(), vec![(COLLECT_ARN.to_string(), None)]);
    // A newer ALARM applies.
    let later = flood_event_at("ALARM", COLLECT, "2026-11-23T17:09:00.000+0000");
    handle(&later, &config(None), &functions)
        .await
        .expect("new alarm");
    assert_eq!(
        functions.calls().last(),
        Some(&(COLLECT_ARN.to_string(), Some(0)))
    );
}

#[tokio::test]
async fn insufficient_data_changes_nothing_and_records_nothing() {
    let functions = FakeFunctions::default();
    let outcome = handle(
        &flood_event("INSUFFICIENT_DATA", COLLECT),
        &config(None),
        &functions,
    )
    .await
    .expect("handled");
    assert!(outcome.steps.is_empty());
    assert!(functions.calls().is_empty());
    assert_eq!(functions.last_applied(COLLECT_ARN).await.unwrap(), None);
}

#[tokio::test]
async fn an_alarm_over_a_function_not_guarded_changes_nothing() {
    let functions = FakeFunctions::default();
    let err = handle(
        &flood_event("ALARM", "someone-elses-function"),
        &config(None),
        &functions,
    )
    .await
    .expect_err("not guarded");
    assert!(
        matches!(err, BreakerError::NoGuardedFunction { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("someone-elses-function"));
    assert!(!err.is_retryable());
    assert!(functions.calls().is_empty());
}

#[tokio::test]
async fn a_failed_lambda_call_is_retryable_and_records_nothing() {
    let functions = FakeFunctions {
        broken: true,
        ..FakeFunctions::default()
    };
    let err = handle(&flood_event("ALARM", COLLECT), &config(None), &functions)
        .await
        .expect_err("Lambda refused");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("Rate exceeded"));
    // Not recorded, so the retry applies it.
    assert_eq!(functions.last_applied(COLLECT_ARN).await.unwrap(), None);
}
