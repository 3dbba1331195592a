//! Instructions per click through the HTTP edge, counted by callgrind: stable where wall-clock
//! throughput on a shared machine is not. Each figure is the difference between two runs that
//! drive N1 and N2 clicks in-process (`tower::ServiceExt::oneshot`, as `lambda_http::run` and
//! local mode's `dispatch` do), divided by N2 − N1, so set-up (store, tokens, runtime) cancels out.
//!
//! Targets: the production router (`sondeo_http::local_router`, whose click routes are served by
//! the fast path in front of the axum router), the axum stack with one shared layer left out at a
//! time, the bare axum router, local mode's `dispatch` over the embedded store, and a link
//! token's verification alone in both token versions (the part of a click the edge does not choose). The click routes are `GET /r/{token}?score=9` (the page, which records the score) and
//! `POST /r/{token}` (the answer). CORS is a route layer of `/v1/responses` only, so no click
//! passes through it. Each target runs without a tracing subscriber (as the local benches) and
//! with the Lambda runtime's default subscriber at INFO (as the deployed functions and `sondeo
//! serve`, where the request span is recorded).
//!
//! Run: `cargo bench -p sondeo-tests --bench router_instructions` (needs valgrind; env CLICKS=N1,N2
//! to change the sample, TARGETS=full,bare,... to pick targets).

mod callgrind;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use bytes::Bytes;
use sondeo_domain::keys::ApiKeys;
use sondeo_domain::ports::{CounterReader, CounterRow, ResponseQueue, StoreError, SurveyStore};
use sondeo_domain::response::ResponseEvent;
use sondeo_domain::survey::{Locale, Survey, SurveyKind, Touchpoint};
use sondeo_domain::time::Day;
use sondeo_domain::token::{LinkClaims, LinkKeyring};
use sondeo_http::admin::AdminApp;
use sondeo_http::collect::CollectApp;
use sondeo_http::routing::{self, RandomRequestId, REQUEST_ID_HEADER};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

const SURVEY: &str = "bench";
const LINK_KEYS: &str = "k1:0123456789abcdef0123456789abcdef-bench";
const API_KEY: &str = "0123456789abcdef-bench";

/// The targets, in the order printed, with what each leaves out.
const TARGETS: &[(&str, &str)] = &[
    ("full", "production router (local_router), in-memory store"),
    (
        "axum",
        "as before the click fast path: every click through the axum router and its layers",
    ),
    (
        "per-layer",
        "as before 9eeb09e: one Router::layer per layer, ids by format!",
    ),
    ("no-trace", "without TraceLayer (request span)"),
    ("no-request-id", "without SetRequestId/PropagateRequestId"),
    ("no-normalize", "without NormalizePath"),
    ("no-body-limit", "without DefaultBodyLimit"),
    ("bare", "routes and 404 fallback only, no layer"),
    ("embedded", "local mode dispatch, embedded SQLite store"),
    (
        "token-v1",
        "verify only: a version-1 (HMAC) token, as the links before AES-SIV",
    ),
    (
        "token-v2",
        "verify only: the same claims as a version-2 (AES-SIV) token",
    ),
];

/// The key and claims of the version-1 token minted before version 2 existed (token.rs `GOLDEN_V1`).
const OLD_KEYS: &str = "k1:0123456789abcdef0123456789abcdef-old";
const GOLDEN_V1: &str = "AQJrMQhucHMtMjAyNg1wb3N0LXB1cmNoYXNlIGFuYS5tYXJpYS5sb3BlekBleGFtcGxlLW1haWwuY29tarE7gGrYyIA.Ez_KXz4Ra6KYMO4kHtvepg";
const GOLDEN_NOW: i64 = 1_790_000_100;

/// A store holding one survey that counts what it is given.
struct Memory {
    survey: Survey,
    enqueued: AtomicUsize,
}

#[async_trait::async_trait]
impl SurveyStore for Memory {
    async fn get_survey(&self, id: &str) -> Result<Option<Survey>, StoreError> {
        Ok((id == self.survey.id).then(|| self.survey.clone()))
    }
    async fn create_survey(&self, _: &Survey) -> Result<(), StoreError> {
        Ok(())
    }
    async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError> {
        Ok(vec![self.survey.clone()])
    }
}

#[async_trait::async_trait]
impl ResponseQueue for Memory {
    async fn enqueue(&self, _: &ResponseEvent) -> Result<(), StoreError> {
        self.enqueued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[async_trait::async_trait]
impl CounterReader for Memory {
    async fn read_counters(&self, _: &str, _: Day, _: Day) -> Result<Vec<CounterRow>, StoreError> {
        Ok(Vec::new())
    }
}

fn survey() -> Survey {
    Survey {
        id: SURVEY.into(),
        kind: SurveyKind::Nps,
        question: "How likely are you to recommend us to a friend or colleague?".into(),
        follow_up: "What is the main reason for your score?".into(),
        locale: Locale::En,
        touchpoints: vec![Touchpoint {
            slug: "post-purchase".into(),
            stage: None,
        }],
        public_key: None,
        brand: None,
        frequency_cap_days: None,
    }
}

/// Clicks never schedule invitations.
struct NoSchedule;

#[async_trait::async_trait]
impl sondeo_domain::ports::InvitationScheduler for NoSchedule {
    async fn schedule(
        &self,
        _: &sondeo_domain::orders::Invitation,
    ) -> Result<(), sondeo_domain::ports::StoreError> {
        Ok(())
    }
}

/// The webhook route's app over an empty SQLite store (clicks never reach it).
fn webhooks(store: Arc<sondeo_embedded::EmbeddedStore>) -> sondeo_http::webhooks::WebhookApp {
    sondeo_http::webhooks::WebhookApp {
        connections: store.clone(),
        surveys: store.clone(),
        invitations: store.clone(),
        suppressions: store,
        scheduler: Arc::new(NoSchedule),
    }
}

fn apps(store: Arc<Memory>, keyring: &LinkKeyring) -> (CollectApp, AdminApp) {
    // Clicks never read the suppression list, connections or invitations; an empty SQLite
    // store stands in.
    let suppressions: Arc<sondeo_embedded::EmbeddedStore> =
        Arc::new(sondeo_embedded::EmbeddedStore::in_memory().expect("in-memory store"));
    let collect = CollectApp {
        surveys: store.clone(),
        queue: store.clone(),
        keyring: keyring.clone(),
        allowed_origins: Vec::new(),
        suppressions: suppressions.clone(),
    };
    let admin = AdminApp {
        surveys: store.clone(),
        orders: sondeo_http::admin::OrdersConfig {
            connections: suppressions.clone(),
            invitations: suppressions.clone(),
            webhook_base_url: None,
        },
        responses: suppressions.clone(),
        export_limits: Default::default(),
        alerts: None,
        imports: None,
        suppressions,
        counters: store,
        api_keys: ApiKeys::from_list(API_KEY).expect("api key"),
        keyring: keyring.clone(),
        base_url: None,
    };
    (collect, admin)
}

/// Both apps' routes with the 404 fallbacks `routing::finish` adds, and no layer.
fn routes(collect: CollectApp, admin: AdminApp) -> Router {
    sondeo_http::collect::routes(Arc::new(collect))
        .merge(sondeo_http::admin::routes(admin))
        .fallback(routing::no_route)
        .method_not_allowed_fallback(routing::no_route)
}

fn request_id_header() -> http::HeaderName {
    http::HeaderName::from_static(REQUEST_ID_HEADER)
}

/// Request ids as `routing::RandomRequestId` made them before 9eeb09e (through the formatter).
#[derive(Clone, Copy)]
struct FormattedRequestId;

impl MakeRequestId for FormattedRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        let id = format!("{:016x}", rand::random::<u64>());
        http::HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The request span as `routing::request_span` made it before 9eeb09e (fields looked up first).
fn old_request_span<B>(req: &http::Request<B>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
        .unwrap_or("unmatched");
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %req.method(), route, request_id)
}

fn click(route: &str, token: &str) -> http::Request<Bytes> {
    let builder = http::Request::builder()
        .header("host", "127.0.0.1")
        .header("accept", "application/json");
    match route {
        "get" => builder
            .method("GET")
            .uri(format!("/r/{token}?score=9"))
            .body(Bytes::new()),
        _ => builder
            .method("POST")
            .uri(format!("/r/{token}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from_static(b"score=9")),
    }
    .expect("request")
}

/// Sends the clicks through `svc` one after another, as `dispatch` does; returns the successes.
async fn drive<S>(svc: S, route: &str, tokens: &[String]) -> usize
where
    S: Service<http::Request<Body>, Response = axum::response::Response, Error = Infallible>
        + Clone,
{
    let mut ok = 0;
    for token in tokens {
        let Ok(resp) = svc
            .clone()
            .oneshot(click(route, token).map(Body::from))
            .await;
        let good = resp.status().is_success();
        if axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .is_ok()
            && good
        {
            ok += 1;
        }
    }
    ok
}

/// Child mode: drive `n` clicks of `route` through `target` (signing `max` tokens either way, so
/// the set-up is the same for every `n`).
async fn child(target: &str, route: &str, n: usize, max: usize, subscriber: bool) {
    if subscriber {
        lambda_http::tracing::init_default_subscriber();
    }
    let keyring = LinkKeyring::from_spec(LINK_KEYS).expect("keyring");
    let now = sondeo_domain::time::now_ms() / 1000;
    let sign = |keyring: &LinkKeyring, survey: &str| -> Vec<String> {
        (0..max)
            .map(|i| {
                keyring
                    .sign(&LinkClaims {
                        survey: survey.into(),
                        touchpoint: "post-purchase".into(),
                        respondent: format!("r{i}@example.com"),
                        issued_at: now,
                        expires_at: now + 3600,
                    })
                    .expect("token")
            })
            .collect()
    };
    let store = Arc::new(Memory {
        survey: survey(),
        enqueued: AtomicUsize::new(0),
    });
    let (collect, admin) = apps(store, &keyring);
    let tokens = sign(&keyring, SURVEY);
    let tokens = &tokens[..n];
    let id = request_id_header;
    let body_limit = || DefaultBodyLimit::max(sondeo_http::MAX_BODY_BYTES);
    let trace = || TraceLayer::new_for_http().make_span_with(routing::request_span);
    let set_id = || SetRequestIdLayer::new(id(), RandomRequestId);
    let echo_id = || PropagateRequestIdLayer::new(id());
    let normalize = NormalizePathLayer::trim_trailing_slash;
    // Each variant is `routing::finish` with one layer left out of its ServiceBuilder stack.
    let ok = match target {
        "full" => {
            let empty =
                Arc::new(sondeo_embedded::EmbeddedStore::in_memory().expect("in-memory store"));
            let router = sondeo_http::local_router(collect, admin, webhooks(empty));
            drive(router, route, tokens).await
        }
        "axum" => {
            let r = sondeo_http::collect::routes(Arc::new(collect))
                .merge(sondeo_http::admin::routes(admin));
            drive(routing::finish(r), route, tokens).await
        }
        "per-layer" => {
            let r = routes(collect, admin)
                .layer(body_limit())
                .layer(echo_id())
                .layer(TraceLayer::new_for_http().make_span_with(old_request_span))
                .layer(SetRequestIdLayer::new(id(), FormattedRequestId));
            drive(normalize().layer(r), route, tokens).await
        }
        "no-trace" => {
            let stack = ServiceBuilder::new()
                .layer(set_id())
                .layer(echo_id())
                .layer(body_limit());
            drive(
                normalize().layer(routes(collect, admin).layer(stack)),
                route,
                tokens,
            )
            .await
        }
        "no-request-id" => {
            let stack = ServiceBuilder::new().layer(trace()).layer(body_limit());
            drive(
                normalize().layer(routes(collect, admin).layer(stack)),
                route,
                tokens,
            )
            .await
        }
        "no-normalize" => {
            let stack = ServiceBuilder::new()
                .layer(set_id())
                .layer(trace())
                .layer(echo_id())
                .layer(body_limit());
            drive(routes(collect, admin).layer(stack), route, tokens).await
        }
        "no-body-limit" => {
            let stack = ServiceBuilder::new()
                .layer(set_id())
                .layer(trace())
                .layer(echo_id());
            drive(
                normalize().layer(routes(collect, admin).layer(stack)),
                route,
                tokens,
            )
            .await
        }
        "bare" => drive(routes(collect, admin), route, tokens).await,
        "embedded" => {
            let dir =
                std::env::temp_dir().join(format!("sondeo-instr-{:08x}", rand::random::<u32>()));
            let stack = sondeo_local::local::LocalStack::open(&dir, None)
                .await
                .expect("local stack");
            stack.ensure_demo_survey().await.expect("demo survey");
            let tokens = sign(&stack.keyring, sondeo_local::local::DEMO_SURVEY);
            let mut ok = 0;
            for token in &tokens[..n] {
                let resp = sondeo_local::server::dispatch(&stack, click(route, token)).await;
                ok += usize::from(resp.status().is_success());
            }
            let _ = std::fs::remove_dir_all(&dir);
            ok
        }
        "token-v1" | "token-v2" => {
            let ring = LinkKeyring::from_spec(OLD_KEYS).expect("keyring");
            let token = if target == "token-v1" {
                GOLDEN_V1.to_string()
            } else {
                ring.sign(&LinkClaims {
                    survey: "nps-2026".into(),
                    touchpoint: "post-purchase".into(),
                    respondent: "ana.maria.lopez@example-mail.com".into(),
                    issued_at: 1_790_000_000,
                    expires_at: 1_792_592_000,
                })
                .expect("token")
            };
            (0..n)
                .filter(|_| {
                    ring.verify(std::hint::black_box(&token), GOLDEN_NOW)
                        .is_ok()
                })
                .count()
        }
        other => panic!("unknown target {other}"),
    };
    assert_eq!(ok, n, "{target} {route}: only {ok} of {n} clicks succeeded");
}

/// Instructions callgrind counts for one child run.
fn instructions(target: &str, route: &str, n: usize, max: usize, subscriber: bool) -> u64 {
    let mode = if subscriber { "subscriber" } else { "none" };
    let (n, max) = (n.to_string(), max.to_string());
    callgrind::instructions(&["child", target, route, &n, &max, mode])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let n = args[4].parse().expect("n");
        let max = args[5].parse().expect("max");
        let subscriber = args.get(6).map(String::as_str) == Some("subscriber");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(child(&args[2], &args[3], n, max, subscriber));
        return;
    }
    let (n1, n2) = callgrind::sample("CLICKS", "200,1200");
    let targets: Vec<&(&str, &str)> = TARGETS
        .iter()
        .filter(|(name, _)| callgrind::picked(name))
        .collect();
    println!("instructions per click through the HTTP edge (callgrind, ({n2} clicks − {n1} clicks) / {})", n2 - n1);
    for subscriber in [false, true] {
        println!();
        println!(
            "{}",
            if subscriber {
                "with the Lambda runtime's default tracing subscriber (INFO), as deployed"
            } else {
                "no tracing subscriber, as the local benches"
            }
        );
        println!(
            "{:<15} {:>11} {:>8} {:>11} {:>8}  what",
            "target", "GET page", "vs full", "POST answer", "vs full"
        );
        let mut full: Option<(f64, f64)> = None;
        for (name, what) in &targets {
            let per = |route| {
                let a = instructions(name, route, n1, n2, subscriber);
                let b = instructions(name, route, n2, n2, subscriber);
                b.saturating_sub(a) as f64 / (n2 - n1) as f64
            };
            let (get, post) = (per("get"), per("post"));
            if *name == "full" {
                full = Some((get, post));
            }
            let vs = |x: f64, base: Option<f64>| {
                base.map(|b| format!("{:+.1}%", (x / b - 1.0) * 100.0))
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "{name:<15} {get:>11.0} {:>8} {post:>11.0} {:>8}  {what}",
                vs(get, full.map(|f| f.0)),
                vs(post, full.map(|f| f.1)),
            );
        }
    }
}
