//! Alerts through local mode: a rule created over the API, answers aggregated by the shared
//! aggregator, jobs run by the local alert worker against a receiver on 127.0.0.1 (allowed by
//! the allowlist) that fails twice with 503, then answers 200. The signature is checked with the
//! domain's verifier and with the README's own verification snippet (Python). Refusals: literal loopback, metadata and IPv6 loopback addresses, a name that
//! resolves to loopback, and redirects to private addresses (whose listener sees no request).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sondeo_domain::addresses::AddressAllowlist;
use sondeo_domain::alert_delivery::JobOutcome;
use sondeo_domain::alerts::{verify_signature, AlertJob, AlertRule, DeliveryStatus};
use sondeo_domain::ports::{
    AlertLog, AlertQueue, AlertRuleStore, AlertSender, ResponseQueue, SendError,
};
use sondeo_domain::response::{ResponseEvent, Source};
use sondeo_domain::survey::SurveyKind;
use sondeo_domain::time::now_ms;
use sondeo_local::local::{LocalStack, DEMO_SURVEY};
use sondeo_local::server::{deliver_alerts_at, dispatch, drain_once};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    signature: String,
    delivery: String,
    body: String,
    status: u16,
}

/// What a receiver answers to its n-th request (0-based): status and `Location`.
type Behaviour = Arc<dyn Fn(usize) -> (u16, Option<String>) + Send + Sync>;

/// A tiny HTTP/1 server on `bind` recording every request.
async fn receiver(bind: &str, behaviour: Behaviour) -> (SocketAddr, Arc<Mutex<Vec<Hit>>>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let recorded = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let hits = recorded.clone();
            let behaviour = behaviour.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let hits = hits.clone();
                    let behaviour = behaviour.clone();
                    async move {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string()
                        };
                        let (path, signature, delivery) = (
                            req.uri().path().to_string(),
                            header("sondeo-signature"),
                            header("sondeo-delivery"),
                        );
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let n = hits.lock().unwrap().len();
                        let (status, location) = behaviour(n);
                        hits.lock().unwrap().push(Hit {
                            path,
                            signature,
                            delivery,
                            body: String::from_utf8_lossy(&body).to_string(),
                            status,
                        });
                        let mut resp = hyper::Response::builder().status(status);
                        if let Some(l) = location {
                            resp = resp.header("location", l);
                        }
                        Ok::<_, std::convert::Infallible>(
                            resp.body(Full::new(Bytes::from("ok"))).unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sondeo-{name}-{:08x}", rand::random::<u32>()))
}

async fn stack(name: &str, allow: &str) -> LocalStack {
    let stack = LocalStack::open_with(
        &scratch(name),
        None,
        AddressAllowlist::parse(allow).unwrap(),
    )
    .await
    .unwrap();
    stack.ensure_demo_survey().await.unwrap();
    stack
}

async fn api(
    stack: &LocalStack,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", stack.api_key))
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap();
    let resp = dispatch(stack, req).await;
    let status = resp.status().as_u16();
    let value = serde_json::from_slice(resp.body()).unwrap_or(serde_json::Value::Null);
    (status, value)
}

fn answer(
    event_id: &str,
    respondent: &str,
    score: i64,
    at: i64,
    comment: Option<&str>,
) -> ResponseEvent {
    ResponseEvent {
        event_id: event_id.into(),
        survey: DEMO_SURVEY.into(),
        touchpoint: "post-purchase".into(),
        respondent: respondent.into(),
        kind: SurveyKind::Nps,
        score,
        comment: comment.map(str::to_string),
        properties: [("plan".to_string(), "pro".to_string())].into(),
        answered_at: at,
        source: Source::Api,
        send: String::new(),
        click: false,
    }
}

async fn aggregate(stack: &LocalStack, event: &ResponseEvent) {
    stack.store.enqueue(event).await.unwrap();
    while drain_once(stack).await > 0 {}
}

/// The README's verification snippet (Python), run on one delivery: a second implementation of
/// the documented scheme, so the documentation cannot drift from what is sent.
fn readme_verifies(secret: &str, header: &str, body: &str, delivery: &str) -> bool {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("**Verifying a delivery.**")
        .nth(1)
        .expect("README documents verification");
    let snippet = section
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a python block follows");
    let script = format!(
        "{snippet}\nimport json, sys\njob = json.load(sys.stdin)\nprint('ok' if verify(job['secret'], job['header'], job['body'].encode(), set(), job['delivery']) else 'bad', end='')\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let job =
        serde_json::json!({"secret": secret, "header": header, "body": body, "delivery": delivery});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    out.status.success() && out.stdout == b"ok"
}

#[tokio::test]
async fn an_alert_is_retried_signed_and_delivered_once_per_answer_version() {
    // GIVEN a receiver that fails twice with 503 and then accepts, allowed by the allowlist
    let (addr, hits) = receiver(
        "127.0.0.1:0",
        Arc::new(|n| (if n < 2 { 503 } else { 200 }, None)),
    )
    .await;
    let stack = stack("alerts", "127.0.0.1").await;
    let (status, created) = api(
        &stack,
        "POST",
        "/v1/alerts",
        serde_json::json!({"survey": DEMO_SURVEY, "touchpoint": "post-purchase", "min_score": 0,
                           "max_score": 6, "url": format!("http://{addr}/hooks/nps?team=cx"), "kind": "generic"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = api(
        &stack,
        "GET",
        "/v1/alerts?survey=demo",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(&secret),
        "the list never shows the secret"
    );
    let rule: AlertRule = serde_json::from_value(created["alert"].clone()).unwrap();

    // WHEN a detractor answers, and a promoter (matching no rule) answers too
    let t0 = now_ms();
    let first = answer(
        "e1",
        "ann@example.com",
        3,
        t0 - 5_000,
        Some("Late <delivery> & no reply"),
    );
    aggregate(&stack, &first).await;
    aggregate(
        &stack,
        &answer("p1", "bob@example.com", 10, t0 - 5_000, None),
    )
    .await;

    let now = now_ms();
    // THEN the first attempt fails and is retried after 30 s, then 2 min, then delivered
    assert_eq!(
        deliver_alerts_at(&stack, now).await,
        vec![JobOutcome::Retrying(30)]
    );
    assert_eq!(
        deliver_alerts_at(&stack, now + 1_000).await,
        vec![],
        "not due before its delay"
    );
    assert_eq!(
        deliver_alerts_at(&stack, now + 30_000).await,
        vec![JobOutcome::Retrying(120)]
    );
    assert_eq!(
        deliver_alerts_at(&stack, now + 150_000).await,
        vec![JobOutcome::Delivered(200)]
    );
    let got = hits.lock().unwrap().clone();
    assert_eq!(
        got.iter().map(|h| h.status).collect::<Vec<_>>(),
        [503, 503, 200]
    );
    let delivery = AlertJob::new(&rule, &first).delivery_id;
    for hit in &got {
        assert_eq!(hit.path, "/hooks/nps");
        assert_eq!(
            hit.delivery, delivery,
            "every attempt carries the same delivery id"
        );
        let t: i64 = hit
            .signature
            .strip_prefix("t=")
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            verify_signature(&secret, &hit.signature, hit.body.as_bytes(), t, 300),
            Ok(())
        );
        assert!(
            readme_verifies(&secret, &hit.signature, &hit.body, &hit.delivery),
            "Python verifies {}",
            hit.signature
        );
        assert!(
            verify_signature(&secret, &hit.signature, hit.body.as_bytes(), t + 301, 300).is_err(),
            "a replay later is refused"
        );
        assert!(
            !hit.body.contains("ann@example.com"),
            "no respondent id leaves"
        );
        let doc: serde_json::Value = serde_json::from_str(&hit.body).unwrap();
        assert_eq!(
            (doc["score"].as_i64(), doc["touchpoint"].as_str()),
            (Some(3), Some("post-purchase"))
        );
        assert_eq!(doc["comment"], "Late <delivery> & no reply");
        assert_eq!(doc["properties"]["plan"], "pro");
    }
    assert!(
        !readme_verifies(
            "whsec_wrong",
            &got[2].signature,
            &got[2].body,
            &got[2].delivery
        ),
        "the snippet refuses another secret"
    );
    let log = stack
        .store
        .get_delivery(DEMO_SURVEY, &delivery)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((log.status, log.attempts), (DeliveryStatus::Delivered, 3));

    // AND the same answer aggregated again, or its job delivered again, posts nothing more
    aggregate(&stack, &first).await;
    assert_eq!(stack.store.alert_queue_depth().await.unwrap(), 0);
    for attempt in [0, 2, 3] {
        let mut again = AlertJob::new(&rule, &first);
        again.attempt = attempt;
        stack.store.enqueue_alert(&again, 0).await.unwrap();
    }
    let replays = deliver_alerts_at(&stack, now + 200_000).await;
    assert!(
        replays.iter().all(|o| matches!(o, JobOutcome::Skipped(_))),
        "{replays:?}"
    );
    assert_eq!(hits.lock().unwrap().len(), 3);

    // AND the same respondent's second answer version is a second delivery
    let second = answer(
        "e2",
        "ann@example.com",
        1,
        now - 1_000,
        Some("still waiting"),
    );
    aggregate(&stack, &second).await;
    assert_eq!(
        deliver_alerts_at(&stack, now + 200_000).await,
        vec![JobOutcome::Delivered(200)]
    );
    let got = hits.lock().unwrap().clone();
    let delivered: Vec<&Hit> = got.iter().filter(|h| h.status == 200).collect();
    assert_eq!(delivered.len(), 2);
    assert_ne!(delivered[0].delivery, delivered[1].delivery);
    assert_eq!(
        delivered[1].delivery,
        AlertJob::new(&rule, &second).delivery_id
    );

    // AND a removed rule raises nothing more
    let (status, _) = api(
        &stack,
        "DELETE",
        &format!("/v1/alerts/{}", rule.id),
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    assert!(stack
        .store
        .get_alert_rule(&rule.id)
        .await
        .unwrap()
        .is_none());
    let (status, _) = api(
        &stack,
        "DELETE",
        &format!("/v1/alerts/{}", rule.id),
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_slack_rule_posts_escaped_text() {
    let (addr, hits) = receiver("127.0.0.1:0", Arc::new(|_| (200, None))).await;
    let stack = stack("alerts-slack", "127.0.0.1/32").await;
    let (status, created) = api(
        &stack,
        "POST",
        "/v1/alerts",
        serde_json::json!({"survey": DEMO_SURVEY, "has_comment": true, "url": format!("http://{addr}/services/T/B/x"), "kind": "slack"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    aggregate(&stack, &answer("s1", "cy@example.com", 8, now_ms(), None)).await;
    aggregate(
        &stack,
        &answer(
            "s2",
            "di@example.com",
            4,
            now_ms(),
            Some("<!channel> & more"),
        ),
    )
    .await;
    assert_eq!(
        deliver_alerts_at(&stack, now_ms()).await,
        vec![JobOutcome::Delivered(200)]
    );
    let got = hits.lock().unwrap().clone();
    let doc: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    let text = doc["text"].as_str().unwrap();
    assert!(text.contains("&lt;!channel&gt; &amp; more"), "{text}");
}

#[tokio::test]
async fn rules_with_private_literal_addresses_or_bad_fields_are_refused_with_a_reason() {
    let stack = stack("alerts-refused", "").await;
    for (url, code) in [
        ("https://127.0.0.1:8443/hook", "private_address"),
        (
            "https://169.254.169.254/latest/meta-data/",
            "private_address",
        ),
        ("https://[::1]/hook", "private_address"),
        ("https://[::ffff:127.0.0.1]/hook", "private_address"),
        ("https://10.1.2.3/hook", "private_address"),
        ("http://hooks.example.com/hook", "insecure_url"),
        ("hooks.example.com", "invalid_url"),
    ] {
        let (status, body) = api(
            &stack,
            "POST",
            "/v1/alerts",
            serde_json::json!({"survey": DEMO_SURVEY, "url": url}),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some(code)),
            "{url}: {body}"
        );
    }
    for (rule, code) in [
        (
            serde_json::json!({"survey": DEMO_SURVEY, "max_score": 11, "url": "https://hooks.example.com/"}),
            "invalid_score_range",
        ),
        (
            serde_json::json!({"survey": DEMO_SURVEY, "min_score": 7, "max_score": 6, "url": "https://hooks.example.com/"}),
            "invalid_score_range",
        ),
        (
            serde_json::json!({"survey": "nope", "url": "https://hooks.example.com/"}),
            "unknown_survey",
        ),
        (
            serde_json::json!({"survey": DEMO_SURVEY, "touchpoint": "nowhere", "url": "https://hooks.example.com/"}),
            "unknown_touchpoint",
        ),
    ] {
        let (status, body) = api(&stack, "POST", "/v1/alerts", rule.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some(code)),
            "{rule}: {body}"
        );
    }
    let (status, _) = api(
        &stack,
        "POST",
        "/v1/alerts",
        serde_json::json!({"survey": DEMO_SURVEY, "url": "https://hooks.example.com/x"}),
    )
    .await;
    assert_eq!(
        status, 201,
        "a public name is accepted (and checked again at every delivery)"
    );
}

#[tokio::test]
async fn the_client_refuses_loopback_metadata_and_names_resolving_to_them() {
    let (addr, hits) = receiver("127.0.0.1:0", Arc::new(|_| (200, None))).await;
    let client = sondeo_http::outbound::OutboundClient::new(AddressAllowlist::default()).unwrap();
    let port = addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        format!("https://[::1]:{port}/"),
        format!("https://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("https://localhost:{port}/"),
        format!("http://localhost:{port}/"),
    ] {
        let got = client.post(&url, &[], b"{}").await;
        assert!(matches!(got, Err(SendError::Refused(_))), "{url}: {got:?}");
    }
    assert_eq!(
        hits.lock().unwrap().len(),
        0,
        "nothing reached the listener"
    );

    // Through the worker: a rule naming localhost is accepted (a name), and its delivery given up.
    let stack = stack("alerts-dns", "").await;
    let (status, created) = api(
        &stack,
        "POST",
        "/v1/alerts",
        serde_json::json!({"survey": DEMO_SURVEY, "url": format!("https://localhost:{port}/hook")}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    aggregate(&stack, &answer("d1", "ed@example.com", 2, now_ms(), None)).await;
    let outcomes = deliver_alerts_at(&stack, now_ms()).await;
    match outcomes.as_slice() {
        [JobOutcome::GaveUp(reason)] => assert!(reason.contains("loopback"), "{reason}"),
        other => panic!("expected one refusal, got {other:?}"),
    }
    assert_eq!(hits.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn redirects_are_followed_only_to_addresses_that_pass_the_same_checks() {
    // A second listener on 127.0.0.2, not allowed: it must never be requested.
    let (inner, inner_hits) = receiver("127.0.0.2:0", Arc::new(|_| (200, None))).await;
    let to_inner = format!("http://{inner}/steal");
    let (outer, outer_hits) = receiver(
        "127.0.0.1:0",
        Arc::new(move |n| match n {
            0 => (302, Some(to_inner.clone())),
            1 => (307, Some("http://169.254.169.254/latest/meta-data/".into())),
            2 => (308, Some("/moved".into())),
            _ => (200, None),
        }),
    )
    .await;
    let client =
        sondeo_http::outbound::OutboundClient::new(AddressAllowlist::parse("127.0.0.1").unwrap())
            .unwrap();
    let url = format!("http://{outer}/hook");
    for _ in 0..2 {
        let got = client.post(&url, &[], b"{}").await;
        assert!(matches!(got, Err(SendError::Refused(_))), "{got:?}");
    }
    assert_eq!(
        inner_hits.lock().unwrap().len(),
        0,
        "the private redirect target saw nothing"
    );
    // A redirect that passes the checks is followed (so the refusals above are the checks').
    assert_eq!(client.post(&url, &[], b"{}").await, Ok(200));
    let paths: Vec<String> = outer_hits
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.path.clone())
        .collect();
    assert_eq!(paths, ["/hook", "/hook", "/hook", "/moved"]);
}

/// A CA and a leaf certificate for 127.0.0.1 (openssl), as PEM files in `dir`.
fn certificates(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Sondeo test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=receiver",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    run(&[
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
        "ext.cnf",
    ]);
}

#[tokio::test]
async fn https_deliveries_verify_the_certificate_of_the_address_they_pinned() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = scratch("alerts-tls");
    certificates(&dir);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_file(dir.join("leaf.pem")).unwrap()],
            PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = bodies.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        seen.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&body).to_string());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    let allow = AddressAllowlist::parse("127.0.0.1").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    let trusting = sondeo_http::outbound::OutboundClient::with_roots(allow.clone(), roots).unwrap();
    let url = format!("https://{addr}/hook");
    assert_eq!(trusting.post(&url, &[], br#"{"score":3}"#).await, Ok(200));
    assert_eq!(bodies.lock().unwrap().as_slice(), [r#"{"score":3}"#]);
    // Without the CA among its roots the handshake fails (retryable): certificates are checked.
    let untrusting =
        sondeo_http::outbound::OutboundClient::with_roots(allow, rustls::RootCertStore::empty())
            .unwrap();
    let got = untrusting.post(&url, &[], b"{}").await;
    assert!(
        matches!(&got, Err(SendError::Retryable(why)) if why.contains("TLS")),
        "{got:?}"
    );
    assert_eq!(bodies.lock().unwrap().len(), 1);
}
