//! Cold start of each Lambda function binary, measured against a hello-world `lambda_http`
//! binary built in the same run (`hello-lambda`, the baseline).
//!
//! ```text
//! cargo bench -p sondeo-tests --bench cold_start
//! ```
//!
//! A small Lambda Runtime API emulator (`sondeo_tests::runtime_api`, on 127.0.0.1) stands in
//! for the Lambda service and a moto server for DynamoDB and SQS, over TLS by default so a first
//! request that opens its connection pays the handshake as on AWS. Each release binary is started
//! RUNS times with `AWS_LAMBDA_RUNTIME_API` pointing at the emulator and the environment the
//! function gets on Lambda, then measured:
//! - init: process spawn → its first `GET /runtime/invocation/next` (what Lambda calls Init);
//! - first invocation: that `/next` hands out one real event (API Gateway v2 or SQS) → the
//!   function's `POST /runtime/invocation/{id}/response`;
//! - the CPU time the process used for each (all its threads, from /proc/<pid>/task/*/schedstat):
//!   on Lambda a function gets memory/1769 MB of a vCPU, so CPU time, not wall time here, is
//!   what grows at small memory sizes.
//!
//! Environment knobs:
//! - `COLD_START_RUNS` (default 20) starts per binary;
//! - `COLD_START_SKIP_BUILD=1` uses the release binaries already in the target directory
//!   instead of running `cargo build --release -p collect -p aggregate -p metrics -p sondeo-tests --bin collect --bin aggregate --bin metrics --bin hello-lambda`;
//! - `COLD_START_BIN_DIR=<dir>` measures the binaries in that directory instead (implies no
//!   build), to compare two builds;
//! - `COLD_START_TLS=0` talks plain HTTP to moto;
//! - `COLD_START_SECRETS=manager` gives collect and metrics their keys through Secrets Manager
//!   (in moto), as on Lambda, instead of `SONDEO_LINK_KEYS` / `SONDEO_API_KEYS` (the rows other
//!   than "deployed", which always fetch them);
//! - `COLD_START_WRAPPER="valgrind --tool=callgrind"` starts each binary under that command
//!   (instruction profiles of init; the times it prints are then the wrapper's);
//! - `MOTO_SERVER` the moto_server executable (default `.venv/bin/moto_server`, from
//!   `bash scripts/install-tools.sh`).
//!
//! collect and metrics each start in three set-ups: the default (warm-up on, keys as
//! `COLD_START_SECRETS` says), the binary's own init (`SONDEO_WARM_UP=off`, keys in the
//! environment unless `COLD_START_SECRETS=manager`: no call leaves the process), and the
//! deployed configuration: the environment exactly as `infra/template.yaml` sets it (Globals and
//! the function's own variables and LoggingConfig, parameters at their defaults, so warm-up on
//! and both key sets as Secrets Manager ARNs read at init, here from secrets seeded in moto; the
//! table and queue are moto's). A last table sets the own-init and deployed rows side by side as
//! ratios to hello-lambda.
//!
//! Logs of the functions and of moto go to `<target>/cold-start/`.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use serde_json::{json, Value};
use sondeo_aws::dynamo::DynamoStore;
use sondeo_domain::ports::SurveyStore;
use sondeo_domain::survey::{Survey, SurveyKind, Touchpoint};
use sondeo_domain::token::{LinkClaims, LinkKeyring};
use sondeo_tests::runtime_api::{cpu_time, Outcome, RuntimeApi};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const TABLE: &str = "sondeo-bench";
const QUEUE: &str = "sondeo-bench-responses";
const SURVEY: &str = "nps-2026";
const TOUCHPOINT: &str = "post-purchase";
const LINK_KEYS: &str = "k1:cold-start-bench-link-signing-key-0123456789";
const API_KEY: &str = "cold-start-bench-api-key";
/// The template's default memory size, passed as `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
const MEMORY_MB: &str = "128";
/// Longest wait for one process to initialise and answer its first event.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// Goal from issue 4: each function's init at most this multiple of hello-lambda's.
const INIT_RATIO_GOAL: f64 = 1.3;
/// Goal from issue 4: each zipped function at most this many bytes.
const ZIP_GOAL_BYTES: u64 = 5 * 1024 * 1024;

fn main() {
    let runs: usize = std::env::var("COLD_START_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20);
    let tls = std::env::var("COLD_START_TLS").map_or(true, |v| v != "0");
    let secrets_manager = std::env::var("COLD_START_SECRETS").is_ok_and(|v| v == "manager");
    let root = repo_root();
    let target = target_dir(&root);
    let out_dir = target.join("cold-start");
    std::fs::create_dir_all(&out_dir).expect("create the cold-start output directory");

    let bin_dir = std::env::var_os("COLD_START_BIN_DIR").map(PathBuf::from);
    if bin_dir.is_none() && std::env::var("COLD_START_SKIP_BUILD").map_or(true, |v| v != "1") {
        build_release(&root);
    }
    let release = bin_dir.unwrap_or_else(|| target.join("release"));
    // (binary, kind, set-up): collect and metrics also start with `SONDEO_WARM_UP=off`, which
    // shows the binary's own init apart from its calls, and in the deployed configuration.
    let functions = [
        ("hello-lambda", Kind::Hello, Setup::Default),
        ("collect", Kind::Collect, Setup::Default),
        ("collect", Kind::Collect, Setup::OwnInit),
        ("collect", Kind::Collect, Setup::Deployed),
        ("aggregate", Kind::Aggregate, Setup::Default),
        ("metrics", Kind::Metrics, Setup::Default),
        ("metrics", Kind::Metrics, Setup::OwnInit),
        ("metrics", Kind::Metrics, Setup::Deployed),
    ];
    let template = Template::read(&root);
    for (binary, _, _) in &functions {
        let path = release.join(binary);
        assert!(
            path.is_file(),
            "{} is missing: build it with `cargo build --release -p collect -p aggregate -p metrics -p sondeo-tests --bin collect --bin aggregate --bin metrics --bin hello-lambda`",
            path.display()
        );
    }

    // TLS material first: the SDK reads SSL_CERT_FILE when it builds its first HTTPS client,
    // and the variable must be set before any other thread exists.
    let tls_bundle = tls.then(|| make_tls_material(&out_dir));
    if let Some(material) = &tls_bundle {
        std::env::set_var("SSL_CERT_FILE", &material.ca);
        std::env::remove_var("SSL_CERT_DIR");
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let moto = Moto::start(&root, &out_dir, tls_bundle.as_ref()).await;
        let backend = Backend::create(&moto, secrets_manager, tls_bundle.as_ref()).await;
        // The deployed configuration's environment per function, resolved once.
        let deployed: Vec<(String, Vec<(String, String)>)> = ["collect", "metrics"]
            .into_iter()
            .map(|binary| (binary.to_string(), template.environment(binary, &backend)))
            .collect();
        for (binary, env) in &deployed {
            let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
            println!(
                "cold start: {binary} deployed environment from the template: {}",
                names.join(", ")
            );
        }
        let emulator = Emulator::start().await;
        println!(
            "cold start: {runs} runs per binary, moto at {} ({}), keys from {}, runtime API at {}",
            moto.endpoint,
            if tls { "TLS" } else { "plain HTTP" },
            if secrets_manager {
                "Secrets Manager"
            } else {
                "the environment"
            },
            emulator.addr
        );

        let mut results: Vec<Measured> = functions
            .iter()
            .map(|(binary, kind, setup)| Measured::new(binary, *kind, *setup))
            .collect();
        for m in &results {
            let _ = std::fs::remove_file(out_dir.join(format!("{}.log", m.binary)));
        }
        // One untimed start each, so every binary is in the page cache before timing.
        for m in &results {
            let spec = RunSpec::new(
                m,
                &release,
                &moto,
                &backend,
                &deployed,
                tls_bundle.as_ref(),
                usize::MAX,
            );
            emulator.run(&spec, &out_dir).await;
        }
        // Interleaved, so drift on the machine spreads over every binary alike.
        for run in 0..runs {
            for m in results.iter_mut() {
                let spec = RunSpec::new(
                    m,
                    &release,
                    &moto,
                    &backend,
                    &deployed,
                    tls_bundle.as_ref(),
                    run,
                );
                let sample = emulator.run(&spec, &out_dir).await;
                m.samples.push(sample);
            }
        }
        report(&results, &release, runs);
        report_setups(&results, secrets_manager);
        drop(moto);
    });
}

// ---------------------------------------------------------------------------- set-up

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

fn build_release(root: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let args = [
        "build",
        "--release",
        "-p",
        "collect",
        "-p",
        "aggregate",
        "-p",
        "metrics",
        "-p",
        "sondeo-tests",
        // `--bin` applies to every selected package: name all four, or only hello-lambda builds.
        "--bin",
        "collect",
        "--bin",
        "aggregate",
        "--bin",
        "metrics",
        "--bin",
        "hello-lambda",
    ];
    println!("cold start: cargo {}", args.join(" "));
    let started = Instant::now();
    let status = std::process::Command::new(cargo)
        .args(args)
        .current_dir(root)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --release failed");
    println!(
        "cold start: release build took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

struct TlsMaterial {
    cert: PathBuf,
    key: PathBuf,
    /// The bench CA, the one root the functions trust here (on Lambda: the five Amazon roots).
    ca: PathBuf,
}

/// A CA and a certificate for localhost/127.0.0.1 signed by it (RSA 2048, like AWS endpoints').
fn make_tls_material(out_dir: &Path) -> TlsMaterial {
    let dir = out_dir.join("tls");
    std::fs::create_dir_all(&dir).expect("create tls dir");
    let ext = dir.join("leaf.ext");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write leaf.ext");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl is installed (or run with COLD_START_TLS=0)");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sondeo cold-start bench CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    TlsMaterial {
        cert: dir.join("leaf.pem"),
        key: dir.join("leaf.key"),
        ca: dir.join("ca.pem"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A moto server for the run's duration (killed on drop).
struct Moto {
    endpoint: String,
    /// The Python next to moto_server (its virtualenv's, with boto3).
    python: PathBuf,
    _child: tokio::process::Child,
}

impl Moto {
    async fn start(root: &Path, out_dir: &Path, tls: Option<&TlsMaterial>) -> Moto {
        let exe = std::env::var_os("MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".venv/bin/moto_server"));
        assert!(
            exe.is_file(),
            "{} not found: run `bash scripts/install-tools.sh` (and `.venv/bin/pip install 'moto[server]'` if it lacks the server)",
            exe.display()
        );
        let port = free_port();
        let log = std::fs::File::create(out_dir.join("moto.log")).expect("create moto.log");
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if let Some(tls) = tls {
            cmd.arg("-c").arg(&tls.cert).arg("-k").arg(&tls.key);
        }
        let child = cmd
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "moto did not listen on port {port} within 30 s (see moto.log)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let endpoint = if tls.is_some() {
            format!("https://localhost:{port}")
        } else {
            format!("http://127.0.0.1:{port}")
        };
        Moto {
            endpoint,
            python: exe.with_file_name("python"),
            _child: child,
        }
    }
}

/// The table, queue and survey the functions use, and the key secrets in Secrets Manager.
struct Backend {
    queue_url: String,
    keyring: LinkKeyring,
    link_keys_arn: String,
    api_keys_arn: String,
    /// Whether the rows other than "deployed" read their keys from Secrets Manager too.
    secrets_manager: bool,
}

impl Backend {
    async fn create(moto: &Moto, secrets_manager: bool, tls: Option<&TlsMaterial>) -> Backend {
        let endpoint = moto.endpoint.as_str();
        let sdk = sondeo_aws::tls::config_loader()
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "bench",
            ))
            .load()
            .await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("key schema")
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition")
        };
        dynamo
            .create_table()
            .table_name(TABLE)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("sk"))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create table: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                )
            });
        let store = DynamoStore::new(dynamo, TABLE);
        store
            .create_survey(&Survey {
                id: SURVEY.into(),
                kind: SurveyKind::Nps,
                question: "How likely are you to recommend us to a friend?".into(),
                follow_up: "What is the main reason for your score?".into(),
                locale: Default::default(),
                touchpoints: vec![Touchpoint {
                    slug: TOUCHPOINT.into(),
                    stage: None,
                }],
                public_key: None,
                brand: None,
                frequency_cap_days: None,
            })
            .await
            .expect("create the survey");
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name(QUEUE)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create queue: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )
            })
            .queue_url
            .expect("queue URL");
        // The secrets in the shape the template's GenerateSecretString gives them.
        let (kid, secret) = LINK_KEYS.split_once(':').expect("kid:secret");
        let link = json!({ "active": kid, kid: secret }).to_string();
        let api = json!({ "api_key": API_KEY }).to_string();
        Backend {
            queue_url,
            keyring: LinkKeyring::from_spec(LINK_KEYS).expect("bench link keys"),
            link_keys_arn: create_secret(moto, tls, "sondeo-bench-link-keys", &link),
            api_keys_arn: create_secret(moto, tls, "sondeo-bench-api-keys", &api),
            secrets_manager,
        }
    }
}

/// `infra/template.yaml`, for the deployed configuration's environment.
struct Template(serde_yaml::Value);

/// What the bench stands in for the collect function URL (`!GetAtt CollectFunctionUrl.FunctionUrl`),
/// which only exists once deployed.
const COLLECT_FUNCTION_URL: &str = "https://cold-start-bench.lambda-url.us-east-1.on.aws/";

impl Template {
    fn read(root: &Path) -> Template {
        let path = root.join("infra/template.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Template(serde_yaml::from_str(&text).expect("infra/template.yaml is YAML"))
    }

    /// The variables Lambda gives the function whose build binary is `binary`, as the template
    /// sets them (Globals' variables, then the function's own; LoggingConfig as the
    /// `AWS_LAMBDA_LOG_*` variables Lambda derives from it), with parameters at their defaults,
    /// the table, queue and secrets as this bench's.
    fn environment(&self, binary: &str, backend: &Backend) -> Vec<(String, String)> {
        let (_, function) = self.0["Resources"]
            .as_mapping()
            .into_iter()
            .flatten()
            .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
            .unwrap_or_else(|| panic!("no function in the template builds {binary}"));
        let globals = &self.0["Globals"]["Function"];
        let properties = &function["Properties"];
        let mut env: Vec<(String, String)> = Vec::new();
        let mut put = |name: &str, value: Option<String>| {
            env.retain(|(k, _)| k != name);
            if let Some(value) = value {
                env.push((name.to_string(), value));
            }
        };
        for scope in [globals, properties] {
            for (name, value) in scope["Environment"]["Variables"]
                .as_mapping()
                .into_iter()
                .flatten()
            {
                let name = name.as_str().expect("variable names are strings");
                put(name, self.resolve(value, backend));
            }
            let logging = &scope["LoggingConfig"];
            if !logging["LogFormat"].is_null() {
                put(
                    "AWS_LAMBDA_LOG_FORMAT",
                    self.resolve(&logging["LogFormat"], backend),
                );
            }
            if !logging["ApplicationLogLevel"].is_null() {
                put(
                    "AWS_LAMBDA_LOG_LEVEL",
                    self.resolve(&logging["ApplicationLogLevel"], backend),
                );
            }
        }
        env
    }

    /// A template value as the string CloudFormation would give the function; `None` for
    /// `AWS::NoValue` (the variable is not set).
    fn resolve(&self, value: &serde_yaml::Value, backend: &Backend) -> Option<String> {
        use serde_yaml::Value;
        let list = |v: &Value| -> Vec<Value> { v.as_sequence().cloned().unwrap_or_default() };
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Tagged(tagged) => {
                let arg = &tagged.value;
                match tagged.tag.to_string().trim_start_matches('!') {
                    "Ref" => self.reference(arg.as_str().expect("!Ref names a string"), backend),
                    "GetAtt" => {
                        let target = arg.as_str().map(str::to_string).unwrap_or_else(|| {
                            list(arg)
                                .iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect::<Vec<_>>()
                                .join(".")
                        });
                        match target.as_str() {
                            "CollectFunctionUrl.FunctionUrl" => {
                                Some(COLLECT_FUNCTION_URL.to_string())
                            }
                            other => panic!("the bench has no stand-in for !GetAtt {other}"),
                        }
                    }
                    "If" => {
                        let args = list(arg);
                        let name = args[0].as_str().expect("!If names a condition");
                        let branch = if self.condition(name, backend) { 1 } else { 2 };
                        self.resolve(&args[branch], backend)
                    }
                    "Sub" => {
                        let (text, vars) = match arg {
                            Value::String(s) => (s.clone(), Value::Null),
                            _ => {
                                let args = list(arg);
                                (
                                    args[0].as_str().expect("!Sub text").to_string(),
                                    args.get(1).cloned().unwrap_or(Value::Null),
                                )
                            }
                        };
                        let mut out = String::new();
                        let mut rest = text.as_str();
                        while let Some(start) = rest.find("${") {
                            out.push_str(&rest[..start]);
                            let end = rest[start..].find('}').expect("closed ${") + start;
                            let name = &rest[start + 2..end];
                            let value = match vars.get(name) {
                                Some(v) => self.resolve(v, backend),
                                None => self.reference(name, backend),
                            };
                            out.push_str(&value.unwrap_or_default());
                            rest = &rest[end + 1..];
                        }
                        out.push_str(rest);
                        Some(out)
                    }
                    "Select" => {
                        let args = list(arg);
                        let index = self
                            .resolve(&args[0], backend)
                            .and_then(|i| i.parse::<usize>().ok())
                            .expect("!Select index");
                        let items: Vec<Option<String>> = match &args[1] {
                            Value::Tagged(t)
                                if t.tag.to_string().trim_start_matches('!') == "Split" =>
                            {
                                let split = list(&t.value);
                                let delimiter =
                                    self.resolve(&split[0], backend).unwrap_or_default();
                                let text = self.resolve(&split[1], backend).unwrap_or_default();
                                text.split(delimiter.as_str())
                                    .map(|s| Some(s.to_string()))
                                    .collect()
                            }
                            items => list(items)
                                .iter()
                                .map(|v| self.resolve(v, backend))
                                .collect(),
                        };
                        items.into_iter().nth(index).flatten()
                    }
                    "FindInMap" => {
                        let args: Vec<String> = list(arg)
                            .iter()
                            .map(|v| self.resolve(v, backend).expect("!FindInMap key"))
                            .collect();
                        let value = self.0["Mappings"][&args[0]][&args[1]][&args[2]].clone();
                        self.resolve(&value, backend)
                    }
                    other => panic!("the bench cannot resolve !{other} in the template"),
                }
            }
            other => panic!("the bench cannot resolve {other:?} in the template"),
        }
    }

    /// `!Ref name`: a parameter's default, a pseudo parameter, or one of the bench's resources.
    fn reference(&self, name: &str, backend: &Backend) -> Option<String> {
        if let Some(parameter) = self.0["Parameters"].get(name) {
            return self.resolve(&parameter["Default"], backend);
        }
        match name {
            "AWS::NoValue" => None,
            "AWS::Region" => Some("us-east-1".into()),
            "AWS::StackName" => Some("sondeo-bench".into()),
            _ => {
                let kind = self.0["Resources"][name]["Type"].as_str().unwrap_or("");
                match kind {
                    "AWS::DynamoDB::Table" => Some(TABLE.into()),
                    // An SQS queue's Ref is its URL.
                    "AWS::SQS::Queue" => Some(backend.queue_url.clone()),
                    "AWS::SecretsManager::Secret" if name == "LinkKeysSecret" => {
                        Some(backend.link_keys_arn.clone())
                    }
                    "AWS::SecretsManager::Secret" if name == "ApiKeysSecret" => {
                        Some(backend.api_keys_arn.clone())
                    }
                    _ => panic!("the bench has no stand-in for !Ref {name} ({kind})"),
                }
            }
        }
    }

    /// A condition of the template's Conditions, with parameters at their defaults.
    fn condition(&self, name: &str, backend: &Backend) -> bool {
        let value = self.0["Conditions"][name].clone();
        self.truth(&value, backend)
    }

    fn truth(&self, value: &serde_yaml::Value, backend: &Backend) -> bool {
        let serde_yaml::Value::Tagged(tagged) = value else {
            panic!("the bench cannot evaluate the condition {value:?}");
        };
        let args = tagged.value.as_sequence().cloned().unwrap_or_default();
        match tagged.tag.to_string().trim_start_matches('!') {
            "Not" => !self.truth(&args[0], backend),
            "And" => args.iter().all(|a| self.truth(a, backend)),
            "Or" => args.iter().any(|a| self.truth(a, backend)),
            "Equals" => self.resolve(&args[0], backend) == self.resolve(&args[1], backend),
            "Condition" => self.condition(tagged.value.as_str().unwrap_or(""), backend),
            other => panic!("the bench cannot evaluate !{other}"),
        }
    }
}

/// Creates a secret in moto with boto3 (this crate does not depend on the Secrets Manager SDK);
/// returns its ARN.
fn create_secret(moto: &Moto, tls: Option<&TlsMaterial>, name: &str, value: &str) -> String {
    let script = "import sys, boto3\n\
c = boto3.client('secretsmanager', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
    aws_access_key_id='test', aws_secret_access_key='test', verify=sys.argv[2] or None)\n\
print(c.create_secret(Name=sys.argv[3], SecretString=sys.argv[4])['ARN'])\n";
    let verify = tls
        .map(|t| t.ca.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = std::process::Command::new(&moto.python)
        .args(["-c", script, &moto.endpoint, &verify, name, value])
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", moto.python.display()));
    assert!(
        out.status.success(),
        "create secret {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---------------------------------------------------------------------------- functions

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Hello,
    Collect,
    Aggregate,
    Metrics,
}

/// One start of one binary: its command line, environment and the event it gets.
struct RunSpec {
    binary: PathBuf,
    name: String,
    env: Vec<(String, String)>,
    event: Value,
    kind: Kind,
}

impl RunSpec {
    fn new(
        m: &Measured,
        release: &Path,
        moto: &Moto,
        backend: &Backend,
        deployed: &[(String, Vec<(String, String)>)],
        tls: Option<&TlsMaterial>,
        run: usize,
    ) -> RunSpec {
        let mut env: Vec<(String, String)> = [
            ("AWS_LAMBDA_FUNCTION_NAME", m.binary.as_str()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/sondeo/bench"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_SESSION_TOKEN", "test"),
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("RUST_LOG", "info"),
            ("TZ", ":UTC"),
            ("LANG", "en_US.UTF-8"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(tls) = tls {
            // Only the bench CA, as on Lambda the functions trust only the Amazon roots.
            env.push((
                "SSL_CERT_FILE".into(),
                tls.ca.to_string_lossy().into_owned(),
            ));
        }
        if m.setup == Setup::OwnInit {
            env.push(("SONDEO_WARM_UP".into(), "off".into()));
        }
        let template_env = deployed
            .iter()
            .find(|(binary, _)| m.setup == Setup::Deployed && *binary == m.binary)
            .map(|(_, env)| env);
        if let Some(template_env) = template_env {
            // What the template sets replaces the bench's defaults (log format and level, RUST_LOG).
            env.retain(|(k, _)| template_env.iter().all(|(t, _)| t != k));
        }
        let mut set = |k: &str, v: &str| env.push((k.to_string(), v.to_string()));
        let event = match m.kind {
            Kind::Hello => api_event("GET", "/", "/", None, &[]),
            Kind::Collect => {
                if template_env.is_none() {
                    set("SONDEO_TABLE", TABLE);
                    set("SONDEO_QUEUE_URL", &backend.queue_url);
                    if backend.secrets_manager {
                        set("SONDEO_LINK_KEYS_SECRET_ARN", &backend.link_keys_arn);
                    } else {
                        set("SONDEO_LINK_KEYS", LINK_KEYS);
                    }
                }
                let now = sondeo_domain::time::now_ms() / 1000;
                let token = backend
                    .keyring
                    .sign(&LinkClaims {
                        survey: SURVEY.into(),
                        touchpoint: TOUCHPOINT.into(),
                        respondent: format!("cold-start-{run}@example.com"),
                        issued_at: now,
                        expires_at: now + 86_400,
                    })
                    .expect("mint a link token");
                // The respondent's answer from the link page: a GetItem and a SendMessage.
                api_event(
                    "POST",
                    "/r/{token}",
                    &format!("/r/{token}"),
                    Some("score=9&comment=fast+delivery"),
                    &[("content-type", "application/x-www-form-urlencoded")],
                )
            }
            Kind::Metrics => {
                if template_env.is_none() {
                    set("SONDEO_TABLE", TABLE);
                    if backend.secrets_manager {
                        set("SONDEO_LINK_KEYS_SECRET_ARN", &backend.link_keys_arn);
                        set("SONDEO_API_KEYS_SECRET_ARN", &backend.api_keys_arn);
                    } else {
                        set("SONDEO_LINK_KEYS", LINK_KEYS);
                        set("SONDEO_API_KEYS", API_KEY);
                    }
                    set("SONDEO_BASE_URL", "https://surveys.example.com");
                }
                // A GetItem (the survey) and a Query (its counters).
                let mut e = api_event(
                    "GET",
                    "/v1/metrics",
                    "/v1/metrics",
                    None,
                    &[("x-api-key", API_KEY), ("accept", "application/json")],
                );
                e["rawQueryString"] = json!(format!("survey={SURVEY}"));
                e["queryStringParameters"] = json!({ "survey": SURVEY });
                e
            }
            Kind::Aggregate => {
                set("SONDEO_TABLE", TABLE);
                sqs_event(run)
            }
        };
        env.extend(template_env.into_iter().flatten().cloned());
        RunSpec {
            binary: release.join(&m.binary),
            name: m.binary.clone(),
            env,
            event,
            kind: m.kind,
        }
    }

    /// Whether the function's response is the success this event should produce.
    fn check(&self, response: &Value) -> Result<(), String> {
        let ok = match self.kind {
            Kind::Aggregate => response["batchItemFailures"]
                .as_array()
                .is_some_and(|f| f.is_empty()),
            _ => response["statusCode"].as_u64() == Some(200),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} answered {}",
                self.name,
                clip(&response.to_string(), 600)
            ))
        }
    }
}

fn clip(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// An API Gateway HTTP API (payload 2.0) event.
fn api_event(
    method: &str,
    route: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Value {
    let domain = "abc123.execute-api.us-east-1.amazonaws.com";
    let mut h = json!({
        "host": domain,
        "accept": "text/html,application/xhtml+xml",
        "accept-language": "en-US,en;q=0.9",
        "user-agent": "Mozilla/5.0 (cold-start bench)",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
    });
    for (k, v) in headers {
        h[*k] = json!(v);
    }
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {route}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": h,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": domain,
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "Mozilla/5.0 (cold-start bench)"
            },
            "requestId": "cold-start-request",
            "routeKey": format!("{method} {route}"),
            "stage": "$default",
            "time": "26/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_654_800_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// The SQS fixture batch with event ids and respondents unique to this run, so every run
/// applies new responses (not duplicates of an earlier run's).
fn sqs_event(run: usize) -> Value {
    let fixture = std::fs::read_to_string(repo_root().join("tests/fixtures/sqs_event.json"))
        .expect("read tests/fixtures/sqs_event.json");
    let mut event: Value = serde_json::from_str(&fixture).expect("the fixture is JSON");
    for record in event["Records"].as_array_mut().into_iter().flatten() {
        let suffix = format!("-run{run}");
        if let Some(id) = record["messageId"].as_str() {
            record["messageId"] = json!(format!("{id}{suffix}"));
        }
        let mut body: Value = record["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .expect("fixture bodies are JSON");
        for field in ["event_id", "respondent"] {
            if let Some(v) = body[field].as_str() {
                body[field] = json!(format!("{v}{suffix}"));
            }
        }
        record["body"] = json!(body.to_string());
    }
    event
}

// ---------------------------------------------------------------------------- a run under the Runtime API

/// The local Lambda Runtime API the binaries talk to (`sondeo_tests::runtime_api`).
struct Emulator {
    api: RuntimeApi,
    addr: SocketAddr,
}

/// One start's measurements.
struct Sample {
    init: Duration,
    invoke: Duration,
    init_cpu: Option<Duration>,
    invoke_cpu: Option<Duration>,
    peak_rss_kb: Option<u64>,
}

impl Emulator {
    async fn start() -> Emulator {
        let api = RuntimeApi::start().await;
        let addr = api.addr();
        Emulator { api, addr }
    }

    /// Starts the binary, hands it the event, waits for its answer, stops it.
    async fn run(&self, spec: &RunSpec, out_dir: &Path) -> Sample {
        let armed = self.api.arm(spec.event.to_string());
        let request_id = armed.request_id.clone();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out_dir.join(format!("{}.log", spec.name)))
            .expect("open the function log");
        let wrapper = std::env::var("COLD_START_WRAPPER").unwrap_or_default();
        let mut wrapper = wrapper.split_whitespace();
        let mut cmd = match wrapper.next() {
            Some(program) => {
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(wrapper).arg(&spec.binary);
                cmd
            }
            None => tokio::process::Command::new(&spec.binary),
        };
        cmd.env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", spec.binary.display()));
        let pid = child.id();
        self.api.watch_process(pid);
        let answered = self.api.wait(armed, RUN_TIMEOUT).await;
        // The process now waits on its second /next: its counters are those of init + one event.
        let total_cpu = pid.and_then(cpu_time);
        let peak_rss_kb = pid.and_then(peak_rss_kb);
        if let (Some(pid), true) = (pid, std::env::var_os("COLD_START_WRAPPER").is_some()) {
            // A wrapper such as valgrind writes its report on SIGTERM, not on SIGKILL.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
            let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
        }
        let _ = child.start_kill();
        let _ = child.wait().await;
        self.api.release();
        let invocation = answered.unwrap_or_else(|no| {
            panic!(
                "{} did not answer within {RUN_TIMEOUT:?} (first /next seen: {}); see {}",
                spec.name,
                no.saw_next,
                out_dir.join(format!("{}.log", spec.name)).display()
            )
        });
        match &invocation.outcome {
            Outcome::Response(body) => {
                assert_eq!(
                    invocation.request_id, request_id,
                    "{} answered another request id",
                    spec.name
                );
                let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                if let Err(e) = spec.check(&value) {
                    panic!("{e}");
                }
            }
            Outcome::InvocationError(body) => panic!(
                "{} reported an invocation error: {}",
                spec.name,
                String::from_utf8_lossy(body)
            ),
            Outcome::InitError(body) => panic!(
                "{} failed to initialise: {}",
                spec.name,
                String::from_utf8_lossy(body)
            ),
        }
        let Some(first_next) = invocation.first_next else {
            panic!(
                "{}: the emulator saw no /next before the outcome",
                spec.name
            );
        };
        let init_cpu = invocation.init_cpu;
        Sample {
            init: first_next.duration_since(spawned),
            invoke: invocation.finished.duration_since(first_next),
            init_cpu,
            invoke_cpu: total_cpu.zip(init_cpu).map(|(t, i)| t.saturating_sub(i)),
            peak_rss_kb,
        }
    }
}

/// Peak resident set size of a live process, from /proc (Linux).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------------- report

/// The environment a binary starts with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Setup {
    /// Warm-up on, keys as `COLD_START_SECRETS` says.
    Default,
    /// `SONDEO_WARM_UP=off`: the binary's own init, without its warm-up calls.
    OwnInit,
    /// The environment `infra/template.yaml` sets: warm-up on, keys from Secrets Manager.
    Deployed,
}

struct Measured {
    binary: String,
    kind: Kind,
    setup: Setup,
    samples: Vec<Sample>,
}

impl Measured {
    fn new(binary: &str, kind: Kind, setup: Setup) -> Measured {
        Measured {
            binary: binary.to_string(),
            kind,
            setup,
            samples: Vec::new(),
        }
    }

    /// The row's name: the binary, marked when its set-up is not the default.
    fn label(&self) -> String {
        match self.setup {
            Setup::Default => self.binary.clone(),
            Setup::OwnInit => format!("{} (no warm-up)", self.binary),
            Setup::Deployed => format!("{} (deployed)", self.binary),
        }
    }

    fn init_ms(&self) -> Vec<f64> {
        sorted(self.samples.iter().map(|s| ms(s.init)))
    }

    fn invoke_ms(&self) -> Vec<f64> {
        sorted(self.samples.iter().map(|s| ms(s.invoke)))
    }

    fn init_cpu_ms(&self) -> Vec<f64> {
        sorted(self.samples.iter().filter_map(|s| s.init_cpu).map(ms))
    }

    fn invoke_cpu_ms(&self) -> Vec<f64> {
        sorted(self.samples.iter().filter_map(|s| s.invoke_cpu).map(ms))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The q-quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Size of the binary zipped as Lambda receives it (`bootstrap`, deflate level 9).
fn zipped_size(binary: &Path) -> Option<u64> {
    let dir = std::env::temp_dir().join(format!("sondeo-cold-start-zip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let bootstrap = dir.join("bootstrap");
    let archive = dir.join("function.zip");
    let _ = std::fs::remove_file(&archive);
    std::fs::copy(binary, &bootstrap).ok()?;
    let zipped = std::process::Command::new("zip")
        .args(["-q", "-9", "-X"])
        .arg(&archive)
        .arg("bootstrap")
        .current_dir(&dir)
        .status()
        .ok()
        .filter(|s| s.success())
        .or_else(|| {
            // No zip(1): Python's zipfile does the same deflate.
            std::process::Command::new("python3")
                .args([
                    "-c",
                    "import sys, zipfile; zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED, compresslevel=9).write(sys.argv[2], 'bootstrap')",
                ])
                .arg(&archive)
                .arg(&bootstrap)
                .status()
                .ok()
                .filter(|s| s.success())
        });
    let size = zipped
        .and_then(|_| std::fs::metadata(&archive).ok())
        .map(|m| m.len());
    let _ = std::fs::remove_dir_all(&dir);
    size
}

fn report(results: &[Measured], release: &Path, runs: usize) {
    let hello = results.iter().find(|m| m.kind == Kind::Hello);
    let baseline = hello.map(|m| median(&m.init_ms())).unwrap_or(f64::NAN);
    let baseline_cpu = hello.map(|m| median(&m.init_cpu_ms())).unwrap_or(f64::NAN);
    let header = [
        "binary",
        "init p50",
        "init p90",
        "ratio",
        "init CPU",
        "CPU ratio",
        "1st inv p50",
        "1st inv p90",
        "1st CPU",
        "peak RSS",
        "binary",
        "zipped",
    ];
    let units = [
        "", "ms", "ms", "x hello", "ms", "x hello", "ms", "ms", "ms", "MiB", "bytes", "bytes",
    ];
    println!();
    for row in [header, units] {
        println!(
            "{:<24} {:>9} {:>9} {:>8} {:>9} {:>9} {:>11} {:>11} {:>9} {:>9} {:>10} {:>10}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
            row[9],
            row[10],
            row[11]
        );
    }
    let mut misses = Vec::new();
    for m in results {
        let init = m.init_ms();
        let invoke = m.invoke_ms();
        let init_cpu = median(&m.init_cpu_ms());
        let ratio = median(&init) / baseline;
        let rss = m
            .samples
            .iter()
            .filter_map(|s| s.peak_rss_kb)
            .max()
            .map(|kb| format!("{:.1}", kb as f64 / 1024.0))
            .unwrap_or_else(|| "?".into());
        let binary = release.join(&m.binary);
        let raw = std::fs::metadata(&binary).map(|md| md.len()).ok();
        let zipped = zipped_size(&binary);
        println!(
            "{:<24} {:>9.2} {:>9.2} {:>8.2} {:>9.2} {:>9.2} {:>11.2} {:>11.2} {:>9.2} {:>9} {:>10} {:>10}",
            m.label(),
            median(&init),
            quantile(&init, 0.9),
            ratio,
            init_cpu,
            init_cpu / baseline_cpu,
            median(&invoke),
            quantile(&invoke, 0.9),
            median(&m.invoke_cpu_ms()),
            rss,
            raw.map_or("?".into(), |b| b.to_string()),
            zipped.map_or("?".into(), |b| b.to_string()),
        );
        if m.kind != Kind::Hello && ratio > INIT_RATIO_GOAL {
            misses.push(format!(
                "{} init is {ratio:.2}x hello-lambda's (goal <= {INIT_RATIO_GOAL}x)",
                m.label()
            ));
        }
        if zipped.is_some_and(|z| z > ZIP_GOAL_BYTES) {
            misses.push(format!(
                "{} zipped is over {ZIP_GOAL_BYTES} bytes",
                m.binary
            ));
        }
    }
    println!();
    println!(
        "{runs} runs each (medians and p90). init = spawn -> first GET /next; 1st inv = that /next -> POST response;"
    );
    println!(
        "CPU = CPU time of all the process's threads in that span (at 128 MB Lambda grants 128/1769 of a vCPU);"
    );
    println!("peak RSS = largest VmHWM after the first invocation; zipped = `bootstrap` deflated at level 9.");
    if misses.is_empty() {
        println!(
            "goals met: init <= {INIT_RATIO_GOAL}x hello-lambda, zipped <= {ZIP_GOAL_BYTES} bytes"
        );
    } else {
        println!("goals missed:\n  - {}", misses.join("\n  - "));
        println!(
            "(init includes the calls a function makes at init, warm-up and secrets, to a local Python moto: the CPU ratio shows the in-process work)"
        );
    }
}

/// The binary's own init beside the deployed configuration, each as a ratio to hello-lambda
/// (medians, as the table above).
fn report_setups(results: &[Measured], secrets_manager: bool) {
    let Some(hello) = results.iter().find(|m| m.kind == Kind::Hello) else {
        return;
    };
    let baseline = median(&hello.init_ms());
    let baseline_cpu = median(&hello.init_cpu_ms());
    println!();
    println!("init as a ratio to hello-lambda (medians: init wall time, init CPU time)");
    println!(
        "{:<10} {:<62} {:>9} {:>9} {:>9} {:>9}",
        "function", "configuration", "init ms", "x hello", "CPU ms", "x hello"
    );
    for m in results
        .iter()
        .filter(|m| matches!(m.setup, Setup::OwnInit | Setup::Deployed))
    {
        let what = match m.setup {
            Setup::OwnInit if secrets_manager => {
                "binary's own init (SONDEO_WARM_UP=off, keys from Secrets Manager)"
            }
            Setup::OwnInit => "binary's own init (SONDEO_WARM_UP=off, keys in env: no call)",
            _ => "deployed (template env: warm-up on, keys from Secrets Manager)",
        };
        let (init, cpu) = (median(&m.init_ms()), median(&m.init_cpu_ms()));
        println!(
            "{:<10} {:<62} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            m.binary,
            what,
            init,
            init / baseline,
            cpu,
            cpu / baseline_cpu
        );
    }
}
