use super::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;

const COLLECT: &str = "sondeo-CollectFunction-AbC123";
const METRICS: &str = "sondeo-MetricsFunction-XyZ789";
const COLLECT_ARN: &str =
    "arn:aws:lambda:us-east-1:111122223333:function:sondeo-CollectFunction-AbC123";
const METRICS_ARN: &str =
    "arn:aws:lambda:us-east-1:111122223333:function:sondeo-MetricsFunction-XyZ789";
const COLLECT_ALARM: &str = "sondeo-collect-flood";
const METRICS_ALARM: &str = "sondeo-metrics-flood";
/// 2026-11-23T17:00:00.000+0000 in Unix ms.
const AT: i64 = 1_795_453_200_000;

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
            "alarmName": COLLECT_ALARM,
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

/// The event an EventBridge schedule rule sends.
fn schedule_event() -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "111122223333",
        "time": "2026-11-23T17:05:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:111122223333:rule/sondeo-breaker-reconcile"],
        "detail": {}
    })
}

fn config(normal: Option<u32>, flood: u32) -> BreakerConfig {
    BreakerConfig {
        guarded: vec![COLLECT_ARN.into(), METRICS_ARN.into()],
        alarms: vec![COLLECT_ALARM.into(), METRICS_ALARM.into()],
        normal,
        flood,
    }
}

type Hook = Box<dyn FnOnce(&Fake) + Send>;

/// CloudWatch alarms and Lambda functions in memory. `hooks[n]` runs right after the n-th read of
/// the alarms (0-based), standing in for what happens elsewhere meanwhile (another breaker run,
/// the alarm changing state).
#[derive(Default)]
struct Fake {
    alarms: Mutex<HashMap<String, AlarmState>>,
    reservations: Mutex<HashMap<String, Reservation>>,
    writes: Mutex<Vec<(String, Reservation)>>,
    reads: Mutex<u32>,
    hooks: Mutex<HashMap<u32, Hook>>,
    broken: bool,
    /// Functions for which Lambda refuses any reservation (a low account quota).
    refusing: Vec<String>,
}

impl Fake {
    fn with(collect: AlarmState, metrics: AlarmState) -> Fake {
        let fake = Fake::default();
        fake.set_alarm(COLLECT_ALARM, collect);
        fake.set_alarm(METRICS_ALARM, metrics);
        fake
    }
    fn set_alarm(&self, name: &str, state: AlarmState) {
        self.alarms
            .lock()
            .expect("alarms")
            .insert(name.into(), state);
    }
    fn force(&self, function: &str, to: Reservation) {
        self.reservations
            .lock()
            .expect("reservations")
            .insert(function.into(), to);
    }
    fn after_read(&self, n: u32, hook: impl FnOnce(&Fake) + Send + 'static) {
        self.hooks.lock().expect("hooks").insert(n, Box::new(hook));
    }
    fn now(&self, function: &str) -> Reservation {
        self.reservations
            .lock()
            .expect("reservations")
            .get(function)
            .copied()
            .unwrap_or(Reservation::Unreserved)
    }
    fn writes(&self) -> Vec<(String, Reservation)> {
        self.writes.lock().expect("writes").clone()
    }
}

#[async_trait]
impl FloodAlarms for Fake {
    async fn describe(&self, names: &[String]) -> Result<Vec<FloodAlarm>, BreakerError> {
        let found: Vec<FloodAlarm> = {
            let alarms = self.alarms.lock().expect("alarms");
            names
                .iter()
                .filter_map(|name| {
                    let state = *alarms.get(name)?;
                    let function = if name == COLLECT_ALARM {
                        COLLECT
                    } else {
                        METRICS
                    };
                    Some(FloodAlarm {
                        name: name.clone(),
                        state,
                        functions: vec![function.into()],
                    })
                })
                .collect()
        };
        let n = {
            let mut reads = self.reads.lock().expect("reads");
            *reads += 1;
            *reads - 1
        };
        let hook = self.hooks.lock().expect("hooks").remove(&n);
        if let Some(hook) = hook {
            hook(self);
        }
        Ok(found)
    }
}

#[async_trait]
impl GuardedFunctions for Fake {
    async fn reservation(&self, function: &str) -> Result<Reservation, BreakerError> {
        Ok(self.now(function))
    }
    async fn set_reservation(&self, function: &str, to: Reservation) -> Result<(), BreakerError> {
        if self.broken {
            return Err(BreakerError::Aws {
                action: format!("changing {function}"),
                message: "TooManyRequestsException: Rate exceeded".into(),
            });
        }
        if self.refusing.iter().any(|f| f == function) && to != Reservation::Unreserved {
            return Err(BreakerError::CannotReserve {
                function: function.into(),
                message: "InvalidParameterValueException: Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [10].".into(),
            });
        }
        self.force(function, to);
        self.writes
            .lock()
            .expect("writes")
            .push((function.into(), to));
        Ok(())
    }
}

use AlarmState::{Alarm, InsufficientData, Ok as Calm};
use Reservation::{Reserved, Unreserved};

async fn run(event: &Value, config: &BreakerConfig, fake: &Fake) -> Outcome {
    handle(event, config, fake, fake).await.expect("handled")
}

#[test]
fn reads_the_alarm_name_state_and_function_once_from_a_metric_math_payload() {
    let change = parse_alarm_event(&flood_event("ALARM", COLLECT)).expect("an alarm event");
    assert_eq!(
        change,
        AlarmChange {
            alarm_name: COLLECT_ALARM.into(),
            state: Alarm,
            at_ms: AT,
            functions: vec![COLLECT.into()],
        }
    );
}

#[test]
fn a_scheduled_event_is_the_reconcile_trigger_and_an_alarm_event_is_not() {
    assert_eq!(parse_trigger(&schedule_event()).unwrap(), Trigger::Schedule);
    assert!(matches!(
        parse_trigger(&flood_event("OK", COLLECT)).unwrap(),
        Trigger::Alarm(AlarmChange { state: Calm, .. })
    ));
    // Other EventBridge events are not the schedule.
    let mut other = schedule_event();
    other["detail-type"] = json!("EC2 Instance State-change Notification");
    assert!(matches!(
        parse_trigger(&other),
        Err(BreakerError::NotAnAlarm(_))
    ));
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
        let err = parse_trigger(&event).expect_err("not an alarm");
        assert!(matches!(err, BreakerError::NotAnAlarm(_)), "{err}");
        assert!(err.to_string().contains(why), "{err} should mention {why}");
        assert!(!err.is_retryable());
    }
}

#[test]
fn config_reads_arns_alarms_and_caps_and_never_accepts_a_flood_cap_of_zero() {
    let c = BreakerConfig::parse(
        &format!(" {COLLECT_ARN} ,{METRICS_ARN},"),
        &format!("{COLLECT_ALARM}, {METRICS_ALARM}"),
        Some("25"),
        "5",
    )
    .expect("valid");
    assert_eq!(c, config(Some(25), 5));
    for normal in [Some("0"), Some(""), None] {
        let c = BreakerConfig::parse(COLLECT_ARN, COLLECT_ALARM, normal, "5").expect("valid");
        assert_eq!(c.normal, None, "{normal:?}");
    }
    // The flood cap never raises a lower MaxConcurrency.
    let c = BreakerConfig::parse(COLLECT_ARN, COLLECT_ALARM, Some("3"), "5").expect("valid");
    assert_eq!((c.normal, c.flood), (Some(3), 3));
    for (names, alarms, normal, flood) in [
        ("", COLLECT_ALARM, None, "5"),
        (" , ", COLLECT_ALARM, None, "5"),
        (COLLECT, COLLECT_ALARM, None, "5"),
        (COLLECT_ARN, " , ", None, "5"),
        (COLLECT_ARN, COLLECT_ALARM, Some("-1"), "5"),
        (COLLECT_ARN, COLLECT_ALARM, Some("ten"), "5"),
        (COLLECT_ARN, COLLECT_ALARM, None, "0"),
        (COLLECT_ARN, COLLECT_ALARM, None, ""),
        (COLLECT_ARN, COLLECT_ALARM, None, "-5"),
    ] {
        let err = BreakerConfig::parse(names, alarms, normal, flood).expect_err("invalid");
        assert!(matches!(err, BreakerError::Config(_)), "{err}");
    }
}

#[test]
fn a_flood_caps_at_the_flood_concurrency_and_never_at_zero() {
    for (normal, flood) in [(None, 5), (Some(40), 5), (Some(2), 5), (None, 1)] {
        let c = BreakerConfig::parse(
            COLLECT_ARN,
            COLLECT_ALARM,
            normal.map(|n: u32| n.to_string()).as_deref(),
            &flood.to_string(),
        )
        .expect("valid");
        let Reserved(n) = c.wanted(true) else {
            panic!("a flood must reserve a cap: {c:?}");
        };
        assert!(
            n >= 1 && n <= flood && normal.is_none_or(|m| n <= m),
            "{c:?}"
        );
        let calm = normal.map_or(Unreserved, Reserved);
        assert_eq!(c.wanted(false), calm);
    }
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
    for bad in ["", "2026-11-23", "2026-13-01T00:00:00+0000", "yesterday"] {
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
async fn an_alarm_caps_the_flooded_function_and_leaves_the_other_alone() {
    let fake = Fake::with(Alarm, Calm);
    let out = run(&flood_event("ALARM", COLLECT), &config(None, 5), &fake).await;
    assert_eq!(fake.writes(), vec![(COLLECT_ARN.to_string(), Reserved(5))]);
    assert_eq!(fake.now(METRICS_ARN), Unreserved);
    assert!(out.reconciled.settled);
    assert_eq!(
        out.reconciled.steps,
        vec![Step {
            function: COLLECT_ARN.into(),
            from: Unreserved,
            to: Reserved(5),
            flooded: true
        }]
    );
}

#[tokio::test]
async fn ok_restores_max_concurrency_or_removes_the_reservation() {
    for (normal, want) in [(Some(40), Reserved(40)), (None, Unreserved)] {
        let fake = Fake::with(Calm, Calm);
        fake.force(COLLECT_ARN, Reserved(5));
        if let Some(n) = normal {
            fake.force(METRICS_ARN, Reserved(n));
        }
        run(&flood_event("OK", COLLECT), &config(normal, 5), &fake).await;
        assert_eq!(fake.writes(), vec![(COLLECT_ARN.to_string(), want)]);
    }
}

#[tokio::test]
async fn the_state_acted_on_is_the_alarms_current_one_not_the_events() {
    // A retried ALARM delivered after the alarm went back to OK: nothing is capped.
    let fake = Fake::with(Calm, Calm);
    let out = run(&flood_event("ALARM", COLLECT), &config(None, 5), &fake).await;
    assert!(out.reconciled.steps.is_empty());
    assert!(fake.writes().is_empty());
    // A late OK delivered while a new flood is on: collect stays capped.
    let fake = Fake::with(Alarm, Calm);
    fake.force(COLLECT_ARN, Reserved(5));
    run(&flood_event("OK", COLLECT), &config(None, 5), &fake).await;
    assert_eq!(fake.now(COLLECT_ARN), Reserved(5));
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn alarm_ok_then_a_retried_alarm_leaves_the_function_serving_uncapped() {
    let fake = Fake::with(Alarm, Calm);
    let c = config(None, 5);
    run(&flood_event("ALARM", COLLECT), &c, &fake).await;
    assert_eq!(fake.now(COLLECT_ARN), Reserved(5));
    fake.set_alarm(COLLECT_ALARM, Calm);
    run(&flood_event("OK", COLLECT), &c, &fake).await;
    assert_eq!(fake.now(COLLECT_ARN), Unreserved);
    // The first ALARM again (Lambda's retry after a timeout, delivered late).
    run(&flood_event("ALARM", COLLECT), &c, &fake).await;
    assert_eq!(fake.now(COLLECT_ARN), Unreserved);
    assert_eq!(
        fake.writes(),
        vec![
            (COLLECT_ARN.to_string(), Reserved(5)),
            (COLLECT_ARN.to_string(), Unreserved)
        ]
    );
}

#[tokio::test]
async fn a_lost_ok_is_made_good_by_the_scheduled_reconcile() {
    let fake = Fake::with(Alarm, Calm);
    let c = config(Some(40), 5);
    fake.force(COLLECT_ARN, Reserved(40));
    fake.force(METRICS_ARN, Reserved(40));
    run(&flood_event("ALARM", COLLECT), &c, &fake).await;
    assert_eq!(fake.now(COLLECT_ARN), Reserved(5));
    // The flood ends; the OK action's invocation is lost (or fails every retry).
    fake.set_alarm(COLLECT_ALARM, Calm);
    let out = run(&schedule_event(), &c, &fake).await;
    assert_eq!(out.trigger, Trigger::Schedule);
    assert_eq!(fake.now(COLLECT_ARN), Reserved(40));
    assert_eq!(fake.now(METRICS_ARN), Reserved(40));
    // A lost ALARM is made good the same way.
    fake.set_alarm(METRICS_ALARM, Alarm);
    run(&schedule_event(), &c, &fake).await;
    assert_eq!(fake.now(METRICS_ARN), Reserved(5));
}

#[tokio::test]
async fn an_alarm_run_racing_an_ok_run_ends_uncapped() {
    // Run A (the ALARM) reads the alarm in ALARM; before it writes, the alarm goes OK and run B
    // (the OK) reads and removes the reservation; then A writes its cap from its stale reading.
    let fake = Fake::with(Alarm, Calm);
    fake.after_read(0, |f| {
        f.set_alarm(COLLECT_ALARM, Calm);
        f.force(COLLECT_ARN, Unreserved);
    });
    let out = run(&flood_event("ALARM", COLLECT), &config(None, 5), &fake).await;
    // A reads again after writing, sees OK, and undoes its own stale cap.
    assert_eq!(fake.now(COLLECT_ARN), Unreserved);
    assert_eq!(
        fake.writes(),
        vec![
            (COLLECT_ARN.to_string(), Reserved(5)),
            (COLLECT_ARN.to_string(), Unreserved)
        ]
    );
    assert_eq!(out.reconciled.reads, 3);
    assert!(out.reconciled.settled);
}

#[tokio::test]
async fn an_ok_run_racing_a_new_flood_ends_capped() {
    let fake = Fake::with(Calm, Calm);
    fake.force(COLLECT_ARN, Reserved(5));
    // Between B's read (OK) and its write, a new flood starts and A caps the function.
    fake.after_read(0, |f| {
        f.set_alarm(COLLECT_ALARM, Alarm);
        f.force(COLLECT_ARN, Reserved(5));
    });
    run(&flood_event("OK", COLLECT), &config(None, 5), &fake).await;
    assert_eq!(fake.now(COLLECT_ARN), Reserved(5));
}

#[tokio::test]
async fn a_flapping_alarm_stops_after_max_reads_unsettled() {
    let fake = Fake::with(Alarm, Calm);
    for n in 0..MAX_READS {
        let next = if n % 2 == 0 { Calm } else { Alarm };
        fake.after_read(n, move |f| f.set_alarm(COLLECT_ALARM, next));
    }
    let out = run(&schedule_event(), &config(None, 5), &fake).await;
    assert_eq!(out.reconciled.reads, MAX_READS);
    assert!(!out.reconciled.settled);
    assert_eq!(out.reconciled.steps.len(), MAX_READS as usize);
}

#[tokio::test]
async fn insufficient_data_is_not_a_flood() {
    let fake = Fake::with(InsufficientData, InsufficientData);
    fake.force(COLLECT_ARN, Reserved(5));
    run(&schedule_event(), &config(None, 5), &fake).await;
    assert_eq!(fake.now(COLLECT_ARN), Unreserved);
}

#[tokio::test]
async fn a_repeated_event_changes_nothing_more() {
    let fake = Fake::with(Alarm, Calm);
    let c = config(None, 5);
    for _ in 0..3 {
        run(&flood_event("ALARM", COLLECT), &c, &fake).await;
    }
    assert_eq!(fake.writes(), vec![(COLLECT_ARN.to_string(), Reserved(5))]);
}

#[tokio::test]
async fn an_alarm_over_a_function_not_guarded_changes_nothing() {
    let fake = Fake::with(Alarm, Alarm);
    let err = handle(
        &flood_event("ALARM", "someone-elses-function"),
        &config(None, 5),
        &fake,
        &fake,
    )
    .await
    .expect_err("not guarded");
    assert!(
        matches!(err, BreakerError::NoGuardedFunction { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("someone-elses-function"));
    assert!(!err.is_retryable());
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn a_missing_alarm_or_an_unwatched_function_is_a_configuration_error() {
    let fake = Fake::default();
    fake.set_alarm(COLLECT_ALARM, Alarm);
    let err = handle(&schedule_event(), &config(None, 5), &fake, &fake)
        .await
        .expect_err("metrics alarm missing");
    assert!(matches!(err, BreakerError::Alarms(_)), "{err}");
    assert!(err.to_string().contains(METRICS_ALARM), "{err}");
    assert!(!err.is_retryable());
    assert!(fake.writes().is_empty());

    let only_collect = BreakerConfig {
        alarms: vec![COLLECT_ALARM.into()],
        ..config(None, 5)
    };
    let err = handle(&schedule_event(), &only_collect, &fake, &fake)
        .await
        .expect_err("metrics unwatched");
    assert!(err.to_string().contains(METRICS), "{err}");
}

#[tokio::test]
async fn a_failed_lambda_call_is_retryable() {
    let fake = Fake {
        broken: true,
        ..Fake::with(Alarm, Calm)
    };
    let err = handle(
        &flood_event("ALARM", COLLECT),
        &config(None, 5),
        &fake,
        &fake,
    )
    .await
    .expect_err("Lambda refused");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("Rate exceeded"));
}

#[tokio::test]
async fn a_reservation_the_account_cannot_afford_is_reported_and_the_rest_still_applied() {
    let fake = Fake {
        refusing: vec![COLLECT_ARN.into()],
        ..Fake::with(Alarm, Alarm)
    };
    let out = run(&schedule_event(), &config(None, 5), &fake).await;
    assert_eq!(out.reconciled.refused.len(), 1);
    assert_eq!(out.reconciled.refused[0].0, COLLECT_ARN);
    assert!(out.reconciled.refused[0].1.contains("minimum value"));
    assert_eq!(fake.now(COLLECT_ARN), Unreserved);
    assert_eq!(fake.now(METRICS_ARN), Reserved(5));
    assert!(out.reconciled.settled);
}
