//! The flood breaker's Lambda adapter against a moto server on 127.0.0.1, with the real SDK
//! client: a flood alarm's ALARM and OK switch a function's reserved concurrency to 0 and back,
//! in the order of the alarm's state times, whatever order the events arrive in.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use sondeo_aws::breaker::{LambdaFunctions, APPLIED_TAG};
use sondeo_domain::breaker::{handle, BreakerConfig, GuardedFunctions};
use sondeo_tests::{moto_config, moto_endpoint, unique};

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

fn event(state: &str, timestamp: &str, function: &str) -> serde_json::Value {
    json!({
        "source": "aws.cloudwatch",
        "alarmData": {
            "alarmName": "sondeo-collect-flood",
            "state": {"value": state, "timestamp": timestamp},
            "configuration": {"metrics": [
                {"id": "requests", "expression": "invocations + throttles", "returnData": true},
                {"id": "invocations", "metricStat": {"metric": {"namespace": "AWS/Lambda", "name": "Invocations",
                    "dimensions": {"FunctionName": function}}, "period": 60, "stat": "Sum"}, "returnData": false}
            ]}
        }
    })
}

#[tokio::test]
async fn reserved_concurrency_and_the_applied_time_round_trip_through_the_lambda_api() {
    let lambda = aws_sdk_lambda::Client::new(&moto_config().await);
    let (name, arn) = function(&lambda).await;
    let functions = LambdaFunctions::new(lambda.clone());
    functions.reserve(&arn, 0).await.unwrap();
    assert_eq!(reserved(&lambda, &name).await, Some(0));
    functions.reserve(&arn, 12).await.unwrap();
    assert_eq!(reserved(&lambda, &name).await, Some(12));
    functions.unreserve(&arn).await.unwrap();
    assert_eq!(reserved(&lambda, &name).await, None);

    assert_eq!(functions.last_applied(&arn).await.unwrap(), None);
    functions
        .record_applied(&arn, 1_795_453_200_000)
        .await
        .unwrap();
    assert_eq!(
        functions.last_applied(&arn).await.unwrap(),
        Some(1_795_453_200_000)
    );
    let tags = lambda.list_tags().resource(&arn).send().await.unwrap();
    assert_eq!(
        tags.tags()
            .and_then(|t| t.get(APPLIED_TAG))
            .map(String::as_str),
        Some("1795453200000")
    );

    let missing = arn.replace(&name, &unique("no-such-function"));
    let err = functions.reserve(&missing, 0).await.expect_err("unknown");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_flood_alarm_switches_the_function_off_and_ok_restores_its_cap_in_state_order() {
    let lambda = aws_sdk_lambda::Client::new(&moto_config().await);
    let (name, arn) = function(&lambda).await;
    let functions = LambdaFunctions::new(lambda.clone());
    let capped = BreakerConfig::parse(&arn, Some("25")).unwrap();

    let alarm = event("ALARM", "2026-11-23T17:00:00.000+0000", &name);
    let ok = event("OK", "2026-11-23T17:04:00.000+0000", &name);
    handle(&alarm, &capped, &functions).await.unwrap();
    assert_eq!(reserved(&lambda, &name).await, Some(0), "switched off");
    handle(&ok, &capped, &functions).await.unwrap();
    assert_eq!(reserved(&lambda, &name).await, Some(25), "cap restored");

    // The 17:00 ALARM again (a retry delivered late): collect stays on.
    let outcome = handle(&alarm, &capped, &functions).await.unwrap();
    assert_eq!(outcome.stale, vec![arn.clone()]);
    assert_eq!(reserved(&lambda, &name).await, Some(25), "still on");

    // A new flood, then OK without a cap: the reservation is removed.
    let uncapped = BreakerConfig::parse(&arn, None).unwrap();
    let again = event("ALARM", "2026-11-23T18:00:00.000+0000", &name);
    let calm = event("OK", "2026-11-23T18:03:00.000+0000", &name);
    handle(&again, &uncapped, &functions).await.unwrap();
    assert_eq!(reserved(&lambda, &name).await, Some(0));
    handle(&calm, &uncapped, &functions).await.unwrap();
    assert_eq!(reserved(&lambda, &name).await, None);
}
