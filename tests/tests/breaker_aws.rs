//! The flood breaker's adapters with the real SDK clients. Lambda reserved concurrency against a
//! moto server on 127.0.0.1. CloudWatch `DescribeAlarms` cannot run against moto: the Rust
//! CloudWatch SDK speaks the RPC v2 CBOR protocol, which moto 5.2.5 does not (see
//! CONVENTIONS.md), so the alarm reader runs the real client over an HTTP connector that answers
//! with a CBOR document written here, byte by byte, and fails on demand.
//!
//! End to end: alarm states (as CloudWatch returns them) → reserved concurrency in moto, for the
//! sequences that used to leave collect switched off (a retried ALARM after OK, a lost OK).

use aws_sdk_cloudwatch::config::{Credentials, Region};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use sondeo_aws::breaker::{CloudWatchAlarms, LambdaFunctions};
use sondeo_domain::breaker::{
    handle, AlarmState, BreakerConfig, BreakerError, FloodAlarms, GuardedFunctions, Reservation,
};
use sondeo_tests::{moto_config, moto_endpoint, unique};
use std::sync::{Arc, Mutex};

/// Creates an IAM role in moto (which checks a function's role exists) with a plain Query API
/// call, so the tests need no IAM SDK crate; returns its ARN.
async fn moto_role(name: &str) -> String {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let body = serde_urlencoded::to_string([
        ("Action", "CreateRole"),
        ("Version", "2010-05-08"),
        ("RoleName", name),
        ("AssumeRolePolicyDocument", trust),
    ])
    .expect("form body");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let req = http::Request::post(moto_endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        // moto routes by the credential scope's service name; it does not check signatures.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(Full::from(body))
        .expect("request");
    let resp = client.request(req).await.expect("moto answers");
    let status = resp.status();
    let text = String::from_utf8_lossy(&resp.into_body().collect().await.expect("body").to_bytes())
        .into_owned();
    assert!(status.is_success(), "CreateRole: {status} {text}");
    let start = text.find("<Arn>").expect("an ARN in the answer") + "<Arn>".len();
    let end = text[start..].find("</Arn>").expect("closing tag") + start;
    text[start..end].to_string()
}

/// The smallest valid zip archive (an empty one): moto stores the code without running it.
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A function in moto; returns its name and ARN.
async fn function(lambda: &aws_sdk_lambda::Client) -> (String, String) {
    let name = unique("sondeo-collect");
    let role = moto_role(&unique("sondeo-role")).await;
    let out = lambda
        .create_function()
        .function_name(&name)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(EMPTY_ZIP.to_vec()))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create function: {}",
                aws_sdk_lambda::error::DisplayErrorContext(&e)
            )
        });
    let arn = out.function_arn().expect("an ARN").to_string();
    (name, arn)
}

async fn reserved(lambda: &aws_sdk_lambda::Client, function: &str) -> Option<i32> {
    lambda
        .get_function_concurrency()
        .function_name(function)
        .send()
        .await
        .expect("get function concurrency")
        .reserved_concurrent_executions()
}

// ------------------------------------------------------------------ CloudWatch over CBOR

/// A CBOR value, as much of it as a `DescribeAlarms` answer needs.
enum Cbor {
    Text(&'static str),
    Owned(String),
    Int(u64),
    Bool(bool),
    Array(Vec<Cbor>),
    Map(Vec<(&'static str, Cbor)>),
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

impl Cbor {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Text(s) => Cbor::text(out, s),
            Cbor::Owned(s) => Cbor::text(out, s),
            Cbor::Int(n) => head(out, 0, *n),
            Cbor::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
            Cbor::Array(items) => {
                head(out, 4, items.len() as u64);
                items.iter().for_each(|i| i.encode(out));
            }
            Cbor::Map(pairs) => {
                head(out, 5, pairs.len() as u64);
                for (k, v) in pairs {
                    Cbor::text(out, k);
                    v.encode(out);
                }
            }
        }
    }
    fn text(out: &mut Vec<u8>, s: &str) {
        head(out, 3, s.len() as u64);
        out.extend(s.as_bytes());
    }
}

/// A flood alarm as `DescribeAlarms` returns it: metric math over the function's Invocations
/// and Throttles, in the given state.
fn metric_alarm(name: &str, state: &'static str, function: &str) -> Cbor {
    let stat = |metric: &'static str| {
        Cbor::Map(vec![
            (
                "Metric",
                Cbor::Map(vec![
                    ("Namespace", Cbor::Text("AWS/Lambda")),
                    ("MetricName", Cbor::Text(metric)),
                    (
                        "Dimensions",
                        Cbor::Array(vec![Cbor::Map(vec![
                            ("Name", Cbor::Text("FunctionName")),
                            ("Value", Cbor::Owned(function.into())),
                        ])]),
                    ),
                ]),
            ),
            ("Period", Cbor::Int(60)),
            ("Stat", Cbor::Text("Sum")),
        ])
    };
    Cbor::Map(vec![
        ("AlarmName", Cbor::Owned(name.into())),
        ("StateValue", Cbor::Text(state)),
        (
            "Metrics",
            Cbor::Array(vec![
                Cbor::Map(vec![
                    ("Id", Cbor::Text("requests")),
                    ("Expression", Cbor::Text("invocations + throttles")),
                    ("ReturnData", Cbor::Bool(true)),
                ]),
                Cbor::Map(vec![
                    ("Id", Cbor::Text("invocations")),
                    ("MetricStat", stat("Invocations")),
                    ("ReturnData", Cbor::Bool(false)),
                ]),
                Cbor::Map(vec![
                    ("Id", Cbor::Text("throttles")),
                    ("MetricStat", stat("Throttles")),
                    ("ReturnData", Cbor::Bool(false)),
                ]),
            ]),
        ),
    ])
}

/// An alarm held by [`CloudWatch`]: its name, state and watched function.
type Alarm = (String, &'static str, String);

/// CloudWatch as an HTTP connector: every `DescribeAlarms` is answered with the alarms' current
/// states (settable), or with a 500 while `failing`; the request bodies are kept.
#[derive(Debug, Clone, Default)]
struct CloudWatch {
    alarms: Arc<Mutex<Vec<Alarm>>>,
    failing: Arc<Mutex<bool>>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl CloudWatch {
    fn set(&self, name: &str, state: &'static str, function: &str) {
        let mut alarms = self.alarms.lock().expect("alarms");
        alarms.retain(|(n, _, _)| n != name);
        alarms.push((name.into(), state, function.into()));
    }
    fn client(&self) -> aws_sdk_cloudwatch::Client {
        let config = aws_sdk_cloudwatch::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .retry_config(aws_sdk_cloudwatch::config::retry::RetryConfig::disabled())
            .http_client(self.clone())
            .build();
        aws_sdk_cloudwatch::Client::from_conf(config)
    }
}

impl HttpConnector for CloudWatch {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = request.body().bytes().unwrap_or_default().to_vec();
        self.requests.lock().expect("requests").push(body);
        let (status, doc) = if *self.failing.lock().expect("failing") {
            (
                500,
                Cbor::Map(vec![
                    ("__type", Cbor::Text("InternalServiceFault")),
                    ("message", Cbor::Text("try again")),
                ]),
            )
        } else {
            let alarms = self.alarms.lock().expect("alarms");
            let found = alarms
                .iter()
                .map(|(n, s, f)| metric_alarm(n, s, f))
                .collect();
            (200, Cbor::Map(vec![("MetricAlarms", Cbor::Array(found))]))
        };
        let mut bytes = Vec::new();
        doc.encode(&mut bytes);
        let status = status.try_into().expect("a status code");
        let mut response = HttpResponse::new(status, SdkBody::from(bytes));
        response
            .headers_mut()
            .insert("content-type", "application/cbor");
        response
            .headers_mut()
            .insert("smithy-protocol", "rpc-v2-cbor");
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for CloudWatch {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// An alarm's Lambda action payload (its state is never acted on: only the alarm's current one).
fn alarm_event(state: &str, alarm: &str, function: &str) -> serde_json::Value {
    json!({
        "source": "aws.cloudwatch",
        "alarmData": {
            "alarmName": alarm,
            "state": {"value": state, "timestamp": "2026-11-23T17:00:00.000+0000"},
            "configuration": {"metrics": [
                {"id": "requests", "expression": "invocations + throttles", "returnData": true},
                {"id": "invocations", "metricStat": {"metric": {"namespace": "AWS/Lambda", "name": "Invocations",
                    "dimensions": {"FunctionName": function}}, "period": 60, "stat": "Sum"}, "returnData": false}
            ]}
        }
    })
}

fn schedule_event() -> serde_json::Value {
    json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn reserved_concurrency_round_trips_through_the_lambda_api() {
    let lambda = aws_sdk_lambda::Client::new(&moto_config().await);
    let (name, arn) = function(&lambda).await;
    let functions = LambdaFunctions::new(lambda.clone());
    assert_eq!(
        functions.reservation(&arn).await.unwrap(),
        Reservation::Unreserved
    );
    functions
        .set_reservation(&arn, Reservation::Reserved(5))
        .await
        .unwrap();
    assert_eq!(reserved(&lambda, &name).await, Some(5));
    assert_eq!(
        functions.reservation(&arn).await.unwrap(),
        Reservation::Reserved(5)
    );
    functions
        .set_reservation(&arn, Reservation::Unreserved)
        .await
        .unwrap();
    assert_eq!(reserved(&lambda, &name).await, None);
    assert_eq!(
        functions.reservation(&arn).await.unwrap(),
        Reservation::Unreserved
    );

    let missing = arn.replace(&name, &unique("no-such-function"));
    let err = functions
        .set_reservation(&missing, Reservation::Reserved(5))
        .await
        .expect_err("unknown");
    assert!(err.is_retryable(), "{err}");
    let err = functions.reservation(&missing).await.expect_err("unknown");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn describe_alarms_reads_each_alarms_state_and_functions_through_the_cbor_client() {
    let cloudwatch = CloudWatch::default();
    cloudwatch.set("s-collect-flood", "ALARM", "s-Collect-1");
    cloudwatch.set("s-metrics-flood", "INSUFFICIENT_DATA", "s-Metrics-2");
    let alarms = CloudWatchAlarms::new(cloudwatch.client());
    let names = vec!["s-collect-flood".to_string(), "s-metrics-flood".to_string()];
    let found = alarms.describe(&names).await.expect("described");
    let seen: Vec<(&str, AlarmState, Vec<String>)> = found
        .iter()
        .map(|a| (a.name.as_str(), a.state, a.functions.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "s-collect-flood",
                AlarmState::Alarm,
                vec!["s-Collect-1".to_string()]
            ),
            (
                "s-metrics-flood",
                AlarmState::InsufficientData,
                vec!["s-Metrics-2".to_string()]
            ),
        ]
    );
    // The request names the alarms (CBOR text strings are their UTF-8 bytes).
    let requests = cloudwatch.requests.lock().expect("requests").clone();
    let sent = requests.last().expect("one request");
    for name in &names {
        assert!(
            sent.windows(name.len()).any(|w| w == name.as_bytes()),
            "{name} not in the request"
        );
    }

    *cloudwatch.failing.lock().expect("failing") = true;
    let err = alarms
        .describe(&names)
        .await
        .expect_err("CloudWatch failed");
    assert!(
        matches!(err, BreakerError::Aws { .. }) && err.is_retryable(),
        "{err}"
    );
}

#[tokio::test]
async fn a_flood_caps_the_function_and_a_retried_alarm_or_a_lost_ok_cannot_keep_it_capped() {
    let lambda = aws_sdk_lambda::Client::new(&moto_config().await);
    let (name, arn) = function(&lambda).await;
    let functions = LambdaFunctions::new(lambda.clone());
    let cloudwatch = CloudWatch::default();
    let alarms = CloudWatchAlarms::new(cloudwatch.client());
    let alarm = unique("sondeo-collect-flood");
    let config = BreakerConfig::parse(&arn, &alarm, Some("25"), "5").unwrap();
    lambda
        .put_function_concurrency()
        .function_name(&name)
        .reserved_concurrent_executions(25)
        .send()
        .await
        .expect("MaxConcurrency as deployed");

    // The flood: collect keeps serving, at most 5 at once; never 0.
    cloudwatch.set(&alarm, "ALARM", &name);
    handle(
        &alarm_event("ALARM", &alarm, &name),
        &config,
        &alarms,
        &functions,
    )
    .await
    .unwrap();
    assert_eq!(reserved(&lambda, &name).await, Some(5), "capped");

    // It ends: OK restores MaxConcurrency.
    cloudwatch.set(&alarm, "OK", &name);
    handle(
        &alarm_event("OK", &alarm, &name),
        &config,
        &alarms,
        &functions,
    )
    .await
    .unwrap();
    assert_eq!(reserved(&lambda, &name).await, Some(25), "restored");

    // The first ALARM again, retried late: the alarm is OK, so nothing changes.
    let outcome = handle(
        &alarm_event("ALARM", &alarm, &name),
        &config,
        &alarms,
        &functions,
    )
    .await
    .unwrap();
    assert!(outcome.reconciled.steps.is_empty());
    assert_eq!(reserved(&lambda, &name).await, Some(25), "still restored");

    // A second flood whose OK is lost: the scheduled run restores MaxConcurrency.
    cloudwatch.set(&alarm, "ALARM", &name);
    handle(&schedule_event(), &config, &alarms, &functions)
        .await
        .unwrap();
    assert_eq!(
        reserved(&lambda, &name).await,
        Some(5),
        "lost ALARM applied"
    );
    cloudwatch.set(&alarm, "OK", &name);
    handle(&schedule_event(), &config, &alarms, &functions)
        .await
        .unwrap();
    assert_eq!(reserved(&lambda, &name).await, Some(25), "lost OK applied");

    // Without MaxConcurrency, the end of a flood removes the reservation.
    let uncapped = BreakerConfig::parse(&arn, &alarm, None, "5").unwrap();
    handle(&schedule_event(), &uncapped, &alarms, &functions)
        .await
        .unwrap();
    assert_eq!(reserved(&lambda, &name).await, None);
}
