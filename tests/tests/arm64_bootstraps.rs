//! Every function the template deploys, built for arm64 (the template's default architecture),
//! starts under qemu-user and answers one event from a local Lambda Runtime API
//! (`sondeo_tests::runtime_api`): the arm64 binaries are not only linked but run.
//!
//! The binaries are the ones `sam build` compiles (`<target>/lambda/arm64/<binary>/bootstrap`,
//! see the Makefile); `bash scripts/test.sh` builds them (scripts/check-infra.sh) before the cargo
//! tests. Without that directory the test says so and passes: run
//! `bash scripts/check-infra.sh` or `make lambda ARCH=arm64` first. It needs `qemu-aarch64`
//! (Debian: qemu-user) and, for the dynamically linked binaries, the arm64 C library
//! (libc6-arm64-cross, in /usr/aarch64-linux-gnu).
//!
//! Each event needs no AWS call: init runs with `SONDEO_WARM_UP=off` and the keys in the
//! environment, and the endpoints point at `AWS_ENDPOINT_URL` (moto, from the test command) or
//! at a closed local port.

use serde_json::{json, Value};
use sondeo_tests::runtime_api::{Outcome, RuntimeApi};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Where Debian's libc6-arm64-cross puts the arm64 dynamic loader and C library.
const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";
/// Longest wait for one binary to start under emulation and answer.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// ELF `e_machine` of AArch64.
const EM_AARCH64: u16 = 183;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// Where the Makefile's arm64 build leaves each binary, as `<binary>/bootstrap`.
fn arm64_build_dir(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"));
    target.join("lambda").join("arm64")
}

/// The binary of every `AWS::Serverless::Function` (its `Metadata.BuildProperties.Binary`).
fn template_binaries(root: &Path) -> Vec<String> {
    let path = root.join("infra/template.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let template: serde_yaml::Value =
        serde_yaml::from_str(&text).expect("infra/template.yaml is YAML");
    let mut binaries: Vec<String> = template["Resources"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(id, r)| {
            r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id:?} has no Metadata.BuildProperties.Binary"))
                .to_string()
        })
        .collect();
    binaries.sort();
    binaries
}

fn qemu() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    ["qemu-aarch64", "qemu-aarch64-static"]
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "qemu-aarch64 is not installed: `apt-get install qemu-user libc6-arm64-cross` (scripts/test.sh does)"
            )
        })
}

/// Whether the file is an AArch64 ELF executable (little-endian `e_machine` at offset 18).
fn elf_machine(path: &Path) -> Option<u16> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.len() > 20 && bytes.starts_with(b"\x7fELF"))
        .then(|| u16::from_le_bytes([bytes[18], bytes[19]]))
}

fn fixture(name: &str) -> Value {
    let path = repo_root().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// What one binary gets and must answer.
struct Case {
    env: Vec<(&'static str, String)>,
    event: Value,
    /// Describes what is wrong with the response, if anything.
    check: fn(&Value) -> Result<(), String>,
    /// Whether the function streams its answer (a function URL with InvokeMode
    /// RESPONSE_STREAM): a JSON prelude, eight NUL bytes, then the body.
    streamed: bool,
}

/// The eight NUL bytes between a streamed answer's prelude and its body.
const PRELUDE_END: &[u8] = &[0; 8];

fn http_client_error(response: &Value) -> Result<(), String> {
    match response["statusCode"].as_u64() {
        Some(400..=499) => Ok(()),
        other => Err(format!("expected a 4xx statusCode, got {other:?}")),
    }
}

fn case_for(binary: &str, endpoint: &str) -> Case {
    let table = ("SONDEO_TABLE", "sondeo-arm64-smoke".to_string());
    let link_keys = (
        "SONDEO_LINK_KEYS",
        "k1:arm64-smoke-link-signing-key-0123456789abcdef".to_string(),
    );
    match binary {
        // A link whose token is not signed: answered 4xx before any table read.
        "collect" => {
            let mut event = fixture("apigw_get_link.json");
            let path = "/r/not-a-signed-token";
            event["rawPath"] = json!(path);
            event["requestContext"]["http"]["path"] = json!(path);
            Case {
                env: vec![
                    table,
                    link_keys,
                    (
                        "SONDEO_QUEUE_URL",
                        format!("{endpoint}/123456789012/sondeo-arm64-smoke"),
                    ),
                ],
                event,
                check: http_client_error,
                streamed: false,
            }
        }
        // The fixture's API key is not one of the function's: 401 before any table read.
        "metrics" => Case {
            env: vec![
                table,
                link_keys,
                ("SONDEO_API_KEYS", "arm64-smoke-api-key".to_string()),
                ("SONDEO_BASE_URL", "https://surveys.example.com".to_string()),
            ],
            event: fixture("apigw_get_metrics.json"),
            check: |response| match response["statusCode"].as_u64() {
                Some(401) => Ok(()),
                other => Err(format!("expected statusCode 401, got {other:?}")),
            },
            streamed: true,
        },
        // A platform no connection can have: 404 before any table read.
        "webhooks" => {
            let mut event = fixture("apigw_get_link.json");
            let path = "/v1/webhooks/magento/tienda-sol";
            event["rawPath"] = json!(path);
            event["requestContext"]["http"]["path"] = json!(path);
            event["requestContext"]["http"]["method"] = json!("POST");
            Case {
                env: vec![
                    table,
                    (
                        "SONDEO_MAIL_FUNCTION_ARN",
                        "arn:aws:lambda:us-east-1:123456789012:function:sondeo-mail".to_string(),
                    ),
                    (
                        "SONDEO_SCHEDULER_ROLE_ARN",
                        "arn:aws:iam::123456789012:role/sondeo-scheduler".to_string(),
                    ),
                ],
                event,
                check: |response| match response["statusCode"].as_u64() {
                    Some(404) => Ok(()),
                    other => Err(format!("expected statusCode 404, got {other:?}")),
                },
                streamed: false,
            }
        }
        // Neither a schedule's invitation nor an SNS delivery: answered, no AWS call.
        "mail" => Case {
            env: vec![
                table,
                link_keys,
                ("SONDEO_BASE_URL", "https://surveys.example.com".to_string()),
            ],
            event: json!({ "hello": "world" }),
            check: |response| match response["ignored"].as_str() {
                Some(_) => Ok(()),
                None => Err(r#"expected {"ignored": "..."}"#.into()),
            },
            streamed: false,
        },
        // An empty batch: nothing to apply, no failures.
        "aggregate" => Case {
            env: vec![table],
            event: json!({ "Records": [] }),
            check: |response| match response["batchItemFailures"].as_array() {
                Some(failures) if failures.is_empty() => Ok(()),
                _ => Err("expected an empty batchItemFailures".into()),
            },
            streamed: false,
        },
        // An empty batch of alert jobs: nothing to post, no failures.
        "alerts" => Case {
            env: vec![
                table,
                (
                    "SONDEO_ALERT_QUEUE_URL",
                    format!("{endpoint}/123456789012/sondeo-arm64-smoke-alerts"),
                ),
            ],
            event: json!({ "Records": [] }),
            check: |response| match response["batchItemFailures"].as_array() {
                Some(failures) if failures.is_empty() => Ok(()),
                _ => Err("expected an empty batchItemFailures".into()),
            },
            streamed: false,
        },
        // Not an alarm event: logged and ignored, no CloudWatch or Lambda API call.
        "breaker" => Case {
            env: vec![
                (
                    "SONDEO_GUARDED_FUNCTIONS",
                    "arn:aws:lambda:us-east-1:123456789012:function:sondeo-collect,arn:aws:lambda:us-east-1:123456789012:function:sondeo-metrics"
                        .to_string(),
                ),
                (
                    "SONDEO_FLOOD_ALARMS",
                    "sondeo-collect-flood,sondeo-metrics-flood".to_string(),
                ),
                ("SONDEO_FLOOD_CONCURRENCY", "5".to_string()),
            ],
            event: json!({ "alarmData": {} }),
            check: |response| match response["ignored"].as_str() {
                Some(_) => Ok(()),
                None => Err(r#"expected {"ignored": "..."}"#.into()),
            },
            streamed: false,
        },
        other => panic!(
            "the template deploys `{other}`, which this test has no event for: add a case for it in case_for"
        ),
    }
}

/// Starts `binary` under qemu with the case's environment, hands it the event, returns what it
/// answered (or why not), then stops it.
async fn run_under_qemu(
    api: &RuntimeApi,
    qemu: &Path,
    binary: &Path,
    name: &str,
    case: &Case,
    endpoint: &str,
    log_path: &Path,
) -> Result<(), String> {
    let armed = api.arm(case.event.to_string());
    let request_id = armed.request_id.clone();
    let log = std::fs::File::create(log_path).expect("create the function log");
    let mut cmd = tokio::process::Command::new(qemu);
    cmd.arg("-L")
        .arg(ARM64_SYSROOT)
        .arg(binary)
        .env_clear()
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", api.addr().to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/sondeo/smoke/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "arm64".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_SESSION_TOKEN", "test".into()),
            ("AWS_ENDPOINT_URL", endpoint.to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("SONDEO_WARM_UP", "off".into()),
            ("RUST_LOG", "info".into()),
        ])
        .envs(case.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {} under qemu: {e}", binary.display()))?;
    let answered = api.wait(armed, RUN_TIMEOUT).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    api.release();
    let invocation = answered.map_err(|no| {
        format!(
            "no answer within {RUN_TIMEOUT:?} (asked for an event: {})",
            no.saw_next
        )
    })?;
    match invocation.outcome {
        Outcome::Response(body) => {
            if invocation.request_id != request_id {
                return Err(format!(
                    "answered request id {:?}, not {request_id:?}",
                    invocation.request_id
                ));
            }
            let prelude_end = body
                .windows(PRELUDE_END.len())
                .position(|w| w == PRELUDE_END);
            let body = match (case.streamed, prelude_end) {
                (true, Some(end)) => body.slice(..end),
                (false, None) => body,
                (true, None) => return Err("answered without a streaming prelude".into()),
                (false, Some(_)) => return Err("streamed an answer it should buffer".into()),
            };
            let response: Value = serde_json::from_slice(&body).map_err(|e| {
                format!(
                    "answered {} (not JSON: {e})",
                    String::from_utf8_lossy(&body)
                )
            })?;
            (case.check)(&response).map_err(|e| format!("{e}; it answered {response}"))
        }
        Outcome::InvocationError(body) => Err(format!(
            "reported an invocation error: {}",
            String::from_utf8_lossy(&body)
        )),
        Outcome::InitError(body) => Err(format!(
            "failed to initialise: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

#[tokio::test]
async fn every_arm64_bootstrap_answers_an_event_under_qemu() {
    let root = repo_root();
    let build_dir = arm64_build_dir(&root);
    if !build_dir.is_dir() {
        println!(
            "SKIPPED: no arm64 build at {} (bash scripts/check-infra.sh or `make lambda ARCH=arm64` builds it)",
            build_dir.display()
        );
        return;
    }
    let qemu = qemu();
    // Without the test command's moto, a closed port: no call can reach AWS.
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:9".into());
    let log_dir = build_dir.join("smoke-logs");
    std::fs::create_dir_all(&log_dir).expect("create the log directory");
    let api = RuntimeApi::start().await;

    let binaries = template_binaries(&root);
    assert!(!binaries.is_empty(), "the template deploys no function");
    let mut failures = Vec::new();
    for name in &binaries {
        let binary = build_dir.join(name).join("bootstrap");
        match elf_machine(&binary) {
            Some(EM_AARCH64) => {}
            Some(other) => {
                failures.push(format!(
                    "{}: ELF machine {other}, not AArch64",
                    binary.display()
                ));
                continue;
            }
            None => {
                failures.push(format!(
                    "{} is missing or not an ELF file: rebuild with `make lambda ARCH=arm64`",
                    binary.display()
                ));
                continue;
            }
        }
        let case = case_for(name, &endpoint);
        let log_path = log_dir.join(format!("{name}.log"));
        match run_under_qemu(&api, &qemu, &binary, name, &case, &endpoint, &log_path).await {
            Ok(()) => println!("{name}: arm64 bootstrap answered under qemu"),
            Err(e) => {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                failures.push(format!(
                    "{name}: {e}\n  log ({}):\n{tail}",
                    log_path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
