//! The HTTP functions' routers driven by real API Gateway HTTP API (payload 2.0) events, through
//! the same conversions `lambda_http::run` applies; enqueued events land in an embedded queue.

use sondeo_domain::keys::ApiKeys;
use sondeo_domain::ports::SurveyStore;
use sondeo_domain::response::ResponseEvent;
use sondeo_domain::survey::{JourneyStage, Locale, Survey, SurveyKind, Touchpoint};
use sondeo_domain::time::now_ms;
use sondeo_domain::token::{LinkClaims, LinkKeyring};
use sondeo_embedded::EmbeddedStore;
use sondeo_http::admin::AdminApp;
use sondeo_http::collect::CollectApp;
use sondeo_http::HttpService;
use std::sync::Arc;
use tower::ServiceExt;

const KEYS: &str = "k1:0123456789abcdef0123456789abcdef-handlers";
const API_KEY: &str = "0123456789abcdef-test-key";

struct Fixture {
    store: EmbeddedStore,
    collect: Function,
    admin: Function,
    keyring: LinkKeyring,
}

/// A function's router, called as `lambda_http::run` calls it.
struct Function(HttpService);

impl Function {
    /// The Lambda response to an event, as the runtime sends it back.
    async fn lambda(&self, req: lambda_http::Request) -> http::Response<lambda_http::Body> {
        let resp = match self.0.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        lambda_http::IntoResponse::into_response(resp).await
    }

    /// The response to an event, with its body as bytes.
    async fn handle(&self, req: lambda_http::Request) -> sondeo_http::Response {
        self.lambda(req).await.map(|body| match body {
            lambda_http::Body::Empty => bytes::Bytes::new(),
            lambda_http::Body::Text(t) => bytes::Bytes::from(t),
            lambda_http::Body::Binary(b) => bytes::Bytes::from(b),
            _ => bytes::Bytes::new(),
        })
    }
}

async fn fixture() -> Fixture {
    fixture_with_queue(None).await
}

/// The fixture, with another queue in front of collect when one is given.
async fn fixture_with_queue(
    queue: Option<Arc<dyn sondeo_domain::ports::ResponseQueue>>,
) -> Fixture {
    let store = EmbeddedStore::in_memory().unwrap();
    let survey = Survey {
        id: "nps-2026".into(),
        kind: SurveyKind::Nps,
        question: "How likely are you to recommend Tienda Sol?".into(),
        follow_up: "Why?".into(),
        locale: Locale::En,
        touchpoints: vec![
            Touchpoint {
                slug: "post-purchase".into(),
                stage: Some(JourneyStage::Conversion),
            },
            Touchpoint {
                slug: "support-chat".into(),
                stage: Some(JourneyStage::Retention),
            },
        ],
        public_key: Some("pk_live_0123456789".into()),
        brand: None,
        frequency_cap_days: None,
    };
    store.create_survey(&survey).await.unwrap();
    let keyring = LinkKeyring::from_spec(KEYS).unwrap();
    let shared = Arc::new(store.clone());
    Fixture {
        collect: Function(sondeo_http::collect::router(CollectApp {
            surveys: shared.clone(),
            queue: queue.unwrap_or_else(|| shared.clone()),
            keyring: keyring.clone(),
            allowed_origins: vec!["https://shop.example.com".into()],
            suppressions: shared.clone(),
        })),
        admin: Function(sondeo_http::admin::router(AdminApp {
            orders: sondeo_http::admin::OrdersConfig {
                connections: shared.clone(),
                invitations: shared.clone(),
                webhook_base_url: None,
            },
            alerts: None,
            imports: None,
            surveys: shared.clone(),
            suppressions: shared.clone(),
            responses: shared.clone(),
            export_limits: Default::default(),
            counters: shared,
            api_keys: ApiKeys::from_list(API_KEY).unwrap(),
            keyring: keyring.clone(),
            base_url: None,
        })),
        store,
        keyring,
    }
}

fn token(keyring: &LinkKeyring, touchpoint: &str, expires_in: i64) -> String {
    let now = now_ms() / 1000;
    keyring
        .sign(&LinkClaims {
            survey: "nps-2026".into(),
            touchpoint: touchpoint.into(),
            respondent: "ana@example.com".into(),
            issued_at: now - 100,
            expires_at: now + expires_in,
        })
        .unwrap()
}

/// The token with one character changed.
fn altered(token: &str, at: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// Unpadded URL-safe base64, to look for a value's encoding in a token.
fn base64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Whether `value` can be read from `token`: as text, or base64-encoded at any alignment.
fn readable_in(token: &str, value: &str) -> bool {
    token.contains(value)
        || (0..3).any(|shift| {
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(value.as_bytes());
            let b64 = base64url(&shifted);
            // Characters that depend only on the value's bytes.
            let inner = &b64[(shift * 4).div_ceil(3) + 1..b64.len() - 2];
            token.contains(inner)
        })
}

fn event(fixture_json: &str) -> lambda_http::Request {
    lambda_http::request::from_str(fixture_json).expect("fixture is an API Gateway v2 event")
}

fn queued(store: &EmbeddedStore) -> Vec<ResponseEvent> {
    store
        .receive(100, 60_000)
        .unwrap()
        .into_iter()
        .map(|(_, body)| serde_json::from_str(&body).unwrap())
        .collect()
}

fn body_json(resp: &sondeo_http::Response) -> serde_json::Value {
    serde_json::from_slice(resp.body())
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(resp.body())))
}

const GET_LINK: &str = include_str!("../fixtures/apigw_get_link.json");
const POST_LINK: &str = include_str!("../fixtures/apigw_post_link_answer.json");
const POST_RESPONSE: &str = include_str!("../fixtures/apigw_post_response.json");
const GET_METRICS: &str = include_str!("../fixtures/apigw_get_metrics.json");

#[tokio::test]
async fn link_click_shows_the_answer_page_and_records_a_provisional_click() {
    let f = fixture().await;
    let t = token(&f.keyring, "post-purchase", 3600);
    let lambda_resp = f
        .collect
        .lambda(event(&GET_LINK.replace("{{TOKEN}}", &t)))
        .await;
    assert_eq!(lambda_resp.status(), 200);
    let html = match lambda_resp.body() {
        lambda_http::Body::Text(t) => t.clone(),
        other => panic!("expected a text body, got {other:?}"),
    };
    assert!(html.contains("How likely are you to recommend Tienda Sol?"));
    assert!(
        html.contains("value=\"9\" checked"),
        "the clicked score is preselected"
    );
    assert!(html.contains(&format!("action=\"/r/{t}\"")));
    assert_eq!(lambda_resp.headers()["referrer-policy"], "no-referrer");
    // The click is queued as provisional: the aggregator counts it unless other scores of the
    // same email arrive within seconds (a scanner), and any explicit answer beats it.
    let q = queued(&f.store);
    assert_eq!(q.len(), 1);
    assert!(
        q[0].click && q[0].score == 9 && q[0].comment.is_none(),
        "{q:?}"
    );
    // HEAD requests and prefetches record nothing.
    let mut head = event(&GET_LINK.replace("{{TOKEN}}", &t));
    *head.method_mut() = http::Method::HEAD;
    assert_eq!(f.collect.lambda(head).await.status(), 200);
    let mut prefetch = event(&GET_LINK.replace("{{TOKEN}}", &t));
    prefetch
        .headers_mut()
        .insert("sec-purpose", http::HeaderValue::from_static("prefetch"));
    assert_eq!(f.collect.lambda(prefetch).await.status(), 200);
    assert!(
        queued(&f.store).is_empty(),
        "HEAD and prefetch recorded a click"
    );
}

#[tokio::test]
async fn link_answer_post_enqueues_the_signed_respondent_with_score_and_comment() {
    let f = fixture().await;
    let t = token(&f.keyring, "post-purchase", 3600);
    let resp = f
        .collect
        .handle(event(&POST_LINK.replace("{{TOKEN}}", &t)))
        .await;
    assert_eq!(
        resp.status(),
        202,
        "{}",
        String::from_utf8_lossy(resp.body())
    );
    assert_eq!(body_json(&resp)["status"], "recorded");
    let q = queued(&f.store);
    assert_eq!(q.len(), 1);
    assert_eq!(
        (
            q[0].respondent.as_str(),
            q[0].touchpoint.as_str(),
            q[0].score
        ),
        ("ana@example.com", "post-purchase", 6)
    );
    assert_eq!(q[0].comment.as_deref(), Some("Late delivery"));
}

#[tokio::test]
async fn submission_api_fixture_is_accepted_with_properties() {
    let f = fixture().await;
    let resp = f.collect.handle(event(POST_RESPONSE)).await;
    assert_eq!(
        resp.status(),
        202,
        "{}",
        String::from_utf8_lossy(resp.body())
    );
    let q = queued(&f.store);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].properties.get("plan").map(String::as_str), Some("pro"));
    assert_eq!(q[0].source, sondeo_domain::response::Source::Api);
    assert_eq!(body_json(&resp)["event_id"], q[0].event_id.as_str());
}

/// Every bad input gets a 4xx with a message a person understands, and nothing is enqueued.
#[tokio::test]
async fn bad_submissions_get_clear_4xx_and_enqueue_nothing() {
    let f = fixture().await;
    let base: serde_json::Value = serde_json::from_str(POST_RESPONSE).unwrap();
    let body = |v: serde_json::Value| {
        let mut e = base.clone();
        e["body"] = serde_json::Value::String(v.to_string());
        e.to_string()
    };
    let good = serde_json::json!({"survey": "nps-2026", "touchpoint": "support-chat", "respondent": "cust-1", "score": 9});
    let with = |k: &str, v: serde_json::Value| {
        let mut g = good.clone();
        g[k] = v;
        body(g)
    };
    let expired = token(&f.keyring, "support-chat", -10);
    let forged = altered(&token(&f.keyring, "support-chat", 3600), 20);
    let mut malformed = base.clone();
    malformed["body"] = serde_json::Value::String("{\"survey\": \"nps-2026\", ".into());
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "score above the scale",
            with("score", 11.into()),
            422,
            "outside this nps survey's scale of 0 to 10",
        ),
        (
            "score below the scale",
            with("score", (-1).into()),
            422,
            "outside",
        ),
        (
            "score not a number",
            with("score", "nine".into()),
            400,
            "whole number",
        ),
        (
            "fractional score",
            with("score", 9.5.into()),
            400,
            "whole number",
        ),
        (
            "missing score",
            body(
                serde_json::json!({"survey": "nps-2026", "touchpoint": "support-chat", "respondent": "x"}),
            ),
            400,
            "score is required",
        ),
        (
            "unknown survey",
            with("survey", "nope".into()),
            403,
            "survey 'nope' does not exist or does not take this key",
        ),
        (
            "unknown touchpoint",
            with("touchpoint", "checkout".into()),
            422,
            "touchpoint 'checkout' is not part of survey 'nps-2026'",
        ),
        (
            "oversized comment",
            with("comment", "x".repeat(2001).into()),
            422,
            "the limit is 2000",
        ),
        (
            "too many properties",
            with(
                "properties",
                serde_json::json!((0..21)
                    .map(|i| (format!("p{i}"), "v"))
                    .collect::<std::collections::BTreeMap<_, _>>()),
            ),
            422,
            "the limit is 20",
        ),
        (
            "unknown field",
            with("scroe", 9.into()),
            400,
            "unknown field",
        ),
        (
            "malformed JSON",
            malformed.to_string(),
            400,
            "could not be read",
        ),
        (
            "expired token",
            body(serde_json::json!({"token": expired, "score": 9})),
            410,
            "expired",
        ),
        (
            "forged token",
            body(serde_json::json!({"token": forged, "score": 9})),
            400,
            "not valid",
        ),
        (
            "token for someone else",
            body(
                serde_json::json!({"token": token(&f.keyring, "support-chat", 3600), "respondent": "mallory", "score": 9}),
            ),
            400,
            "send it without respondent",
        ),
    ];
    for (what, ev, status, message) in cases {
        let resp = f.collect.handle(event(&ev)).await;
        let json = body_json(&resp);
        assert_eq!(resp.status().as_u16(), status, "{what}: {json}");
        let msg = json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(message),
            "{what}: message '{msg}' should mention '{message}'"
        );
        assert!(json["error"]["code"].is_string(), "{what}");
    }
    // Wrong or missing public key.
    let mut no_key = base.clone();
    no_key["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-sondeo-key");
    let resp = f.collect.handle(event(&no_key.to_string())).await;
    assert_eq!(resp.status(), 401);
    let mut wrong_key = base.clone();
    wrong_key["headers"]["x-sondeo-key"] = "pk_live_guessed000".into();
    assert_eq!(
        f.collect
            .handle(event(&wrong_key.to_string()))
            .await
            .status(),
        403
    );
    assert!(queued(&f.store).is_empty(), "nothing bad was enqueued");
}

#[tokio::test]
async fn bad_links_get_an_html_error_page_and_record_nothing() {
    let f = fixture().await;
    let good = token(&f.keyring, "post-purchase", 3600);
    let tampered = altered(&good, 10);
    let other_key = LinkKeyring::from_spec("k9:another-key-another-key-another-key-x").unwrap();
    let unknown_kid = other_key
        .sign(&LinkClaims {
            survey: "nps-2026".into(),
            touchpoint: "post-purchase".into(),
            respondent: "a".into(),
            issued_at: 0,
            expires_at: 4_000_000_000,
        })
        .unwrap();
    for (what, t, query, status) in [
        ("tampered", tampered.as_str(), "score=9", 400),
        (
            "expired",
            &token(&f.keyring, "post-purchase", -1),
            "score=9",
            410,
        ),
        ("unknown key id", &unknown_kid, "score=9", 400),
        ("garbage", "hello", "score=9", 400),
        ("score out of range", &good, "score=12", 400),
        ("score not a number", &good, "score=nine", 400),
    ] {
        let ev = GET_LINK.replace("{{TOKEN}}", t).replace("score=9", query);
        let resp = f.collect.handle(event(&ev)).await;
        assert_eq!(resp.status().as_u16(), status, "{what}");
        assert_eq!(
            resp.headers()["content-type"],
            "text/html; charset=utf-8",
            "{what}"
        );
        let html = String::from_utf8_lossy(resp.body()).to_string();
        assert!(html.contains("<h1>Sorry</h1>"), "{what}: {html}");
        if t != good {
            // Posting an answer with a bad link is refused as well.
            let post = POST_LINK.replace("{{TOKEN}}", t);
            assert_eq!(
                f.collect.handle(event(&post)).await.status().as_u16(),
                status,
                "{what} (POST)"
            );
        }
    }
    assert!(queued(&f.store).is_empty());
}

#[tokio::test]
async fn cors_allows_configured_origins_and_refuses_others() {
    let f = fixture().await;
    let mut ev: serde_json::Value = serde_json::from_str(POST_RESPONSE).unwrap();
    ev["headers"]["origin"] = "https://shop.example.com".into();
    let resp = f.collect.handle(event(&ev.to_string())).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    ev["headers"]["origin"] = "https://evil.example.net".into();
    let resp = f.collect.handle(event(&ev.to_string())).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(queued(&f.store).len(), 1);
}

#[tokio::test]
async fn metrics_fixture_needs_the_api_key_and_reports_per_touchpoint_and_stage() {
    let f = fixture().await;
    let resp = f.admin.handle(event(GET_METRICS)).await;
    assert_eq!(
        resp.status(),
        200,
        "{}",
        String::from_utf8_lossy(resp.body())
    );
    let json = body_json(&resp);
    assert_eq!(json["survey"], "nps-2026");
    assert_eq!(json["bucket"], "week");
    assert!(json["touchpoints"]["post-purchase"]["total"]["n"] == 0);
    assert_eq!(json["overall"]["series"][0]["start"], "2026-10-26");
    let mut unauth: serde_json::Value = serde_json::from_str(GET_METRICS).unwrap();
    unauth["headers"]["authorization"] = "Bearer wrong-key-wrong-key".into();
    let resp = f.admin.handle(event(&unauth.to_string())).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    for (q, msg) in [
        ("survey=nps-2026&from=2026-11-31", "is not a date"),
        (
            "survey=nps-2026&bucket=year",
            "bucket must be day, week or month",
        ),
        ("survey=nps-2026&from=2026-11-10&to=2026-11-01", "is after"),
        ("survey=nps-2026&stage=loyalty", "unknown journey stage"),
        ("from=2026-11-01", "give the survey id"),
    ] {
        let mut ev: serde_json::Value = serde_json::from_str(GET_METRICS).unwrap();
        ev["rawQueryString"] = q.into();
        let resp = f.admin.handle(event(&ev.to_string())).await;
        assert_eq!(resp.status(), 400, "{q}");
        assert!(
            body_json(&resp)["error"]["message"]
                .as_str()
                .unwrap()
                .contains(msg),
            "{q}"
        );
    }
}

const URL_POST_LINK: &str = include_str!("../fixtures/function_url_post_link_answer.json");

#[tokio::test]
async fn function_url_events_reach_the_same_handler() {
    let f = fixture().await;
    let t = token(&f.keyring, "post-purchase", 3600);
    let resp = f
        .collect
        .handle(event(&URL_POST_LINK.replace("{{TOKEN}}", &t)))
        .await;
    assert_eq!(
        resp.status(),
        202,
        "{}",
        String::from_utf8_lossy(resp.body())
    );
    let q = queued(&f.store);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].score, 6);
    // Links minted behind a function URL point at the host the request came to, over https.
    let mint = serde_json::json!({"survey": "nps-2026", "touchpoint": "post-purchase", "respondent": "luis"});
    let mut ev: serde_json::Value = serde_json::from_str(URL_POST_LINK).unwrap();
    ev["rawPath"] = "/v1/links".into();
    ev["requestContext"]["http"]["path"] = "/v1/links".into();
    ev["headers"]["content-type"] = "application/json".into();
    ev["headers"]["authorization"] = format!("Bearer {API_KEY}").into();
    ev["body"] = mint.to_string().into();
    let resp = f.admin.handle(event(&ev.to_string())).await;
    assert_eq!(
        resp.status(),
        201,
        "{}",
        String::from_utf8_lossy(resp.body())
    );
    let page = body_json(&resp)["page"].as_str().unwrap().to_string();
    assert!(
        page.starts_with("https://a1b2c3d4e5f6g7h8i9j0klmnopqrstuv.lambda-url.us-east-1.on.aws/r/"),
        "{page}"
    );
}

#[tokio::test]
async fn admin_routes_explain_bad_surveys_and_link_requests() {
    let f = fixture().await;
    let call = |method: &str, path: &str, body: String| {
        let mut ev: serde_json::Value = serde_json::from_str(GET_METRICS).unwrap();
        ev["rawPath"] = path.into();
        ev["rawQueryString"] = "".into();
        ev.as_object_mut().unwrap().remove("queryStringParameters");
        ev["requestContext"]["http"]["method"] = method.into();
        ev["requestContext"]["http"]["path"] = path.into();
        ev["headers"]["content-type"] = "application/json".into();
        ev["body"] = body.into();
        event(&ev.to_string())
    };
    let survey = |id: &str, kind: &str, touchpoints: serde_json::Value| {
        serde_json::json!({"id": id, "kind": kind, "question": "Q?", "touchpoints": touchpoints})
            .to_string()
    };
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("POST", "/v1/surveys", survey("Bad Id", "nps", serde_json::json!([{"slug": "a"}])), 422, "lowercase letters"),
        ("POST", "/v1/surveys", survey("ok", "nps", serde_json::json!([])), 422, "1 to 100 touchpoints"),
        ("POST", "/v1/surveys", survey("ok", "stars", serde_json::json!([{"slug": "a"}])), 400, "could not be read"),
        ("POST", "/v1/surveys", survey("nps-2026", "nps", serde_json::json!([{"slug": "a"}])), 409, "already exists"),
        ("GET", "/v1/surveys/nope", String::new(), 404, "there is no survey 'nope'"),
        ("POST", "/v1/links", serde_json::json!({"survey": "nps-2026", "touchpoint": "checkout", "respondent": "a"}).to_string(), 422, "not part of survey 'nps-2026' (it has: post-purchase, support-chat)"),
        ("POST", "/v1/links", serde_json::json!({"survey": "nps-2026", "touchpoint": "post-purchase", "respondent": "a", "expires_in_days": 400}).to_string(), 422, "1 to 365"),
        ("POST", "/v1/links", serde_json::json!({"survey": "nps-2026", "touchpoint": "post-purchase", "respondent": ""}).to_string(), 422, "respondent must be"),
        ("DELETE", "/v1/surveys", String::new(), 405, "does not take DELETE"),
        ("GET", "/v1/nowhere", String::new(), 404, "no route"),
    ];
    for (method, path, body, status, message) in cases {
        let resp = f.admin.handle(call(method, path, body)).await;
        let json = body_json(&resp);
        assert_eq!(resp.status().as_u16(), status, "{method} {path}: {json}");
        let msg = json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(message),
            "{method} {path}: '{msg}' should mention '{message}'"
        );
    }
}

/// A queue that is down: every enqueue fails as SQS does under throttling or an outage.
struct DownQueue;

#[async_trait::async_trait]
impl sondeo_domain::ports::ResponseQueue for DownQueue {
    async fn enqueue(&self, _: &ResponseEvent) -> Result<(), sondeo_domain::ports::StoreError> {
        Err(sondeo_domain::ports::StoreError::Transient(
            "throttled".into(),
        ))
    }
}

#[tokio::test]
async fn a_queue_outage_answers_503_and_a_click_page_says_it_is_not_recorded_yet() {
    let f = fixture_with_queue(Some(Arc::new(DownQueue))).await;
    let resp = f.collect.handle(event(POST_RESPONSE)).await;
    assert_eq!(resp.status(), 503);
    let json = body_json(&resp);
    assert_eq!(json["error"]["code"], "unavailable");
    assert!(
        !json.to_string().contains("throttled"),
        "storage details stay in the logs: {json}"
    );
    // The link page's answer gets the same status, as JSON for the page's script.
    let t = token(&f.keyring, "post-purchase", 3600);
    let resp = f
        .collect
        .handle(event(&POST_LINK.replace("{{TOKEN}}", &t)))
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(body_json(&resp)["error"]["code"], "unavailable");

    // A click still opens its page, with the score chosen, but the page does not thank: it
    // says the answer is not recorded yet, and its script records it on load.
    let resp = f
        .collect
        .handle(event(&GET_LINK.replace("{{TOKEN}}", &t)))
        .await;
    assert_eq!(resp.status(), 200);
    let html = String::from_utf8_lossy(resp.body()).to_string();
    assert!(html.contains("value=\"9\" checked"), "{html}");
    assert!(!html.contains("Thank you"), "{html}");
    assert!(
        html.contains("data-unsaved=\"1\"")
            && html
                .contains(">Your answer could not be recorded yet; press Send to try again.</p>"),
        "{html}"
    );
    // When the click is queued, the page thanks and its script records nothing on load.
    let ok = fixture().await;
    let t = token(&ok.keyring, "post-purchase", 3600);
    let resp = ok
        .collect
        .handle(event(&GET_LINK.replace("{{TOKEN}}", &t)))
        .await;
    let html = String::from_utf8_lossy(resp.body()).to_string();
    assert!(html.contains("Thank you! Your answer:"), "{html}");
    assert!(!html.contains("data-unsaved"), "{html}");
    // What that script sends on load is the click again, not an explicit answer: a scanner's
    // browser loading every link during an outage is still a burst to set aside.
    let resend = POST_LINK.replace("{{TOKEN}}", &t).replace(
        "score=6&comment=Late+delivery",
        "score=9&provisional=1&comment=x",
    );
    let resp = ok.collect.handle(event(&resend)).await;
    assert_eq!(resp.status(), 202);
    let q = queued(&ok.store);
    let last = q.last().unwrap();
    assert_eq!(
        (last.score, last.click, last.comment.as_deref()),
        (9, true, None)
    );
}

/// What an anonymous caller (a public key, a forwarded link) is told never lists a survey's
/// touchpoints, and never tells a wrong key from a survey that does not exist.
#[tokio::test]
async fn public_key_refusals_do_not_tell_whether_a_survey_exists_or_list_its_touchpoints() {
    let f = fixture().await;
    // A survey that takes answers only through signed links.
    f.store
        .create_survey(&Survey {
            id: "links-only".into(),
            kind: SurveyKind::Csat,
            question: "How was it?".into(),
            follow_up: String::new(),
            locale: Locale::En,
            touchpoints: vec![Touchpoint {
                slug: "secret-pilot".into(),
                stage: None,
            }],
            public_key: None,
            brand: None,
            frequency_cap_days: None,
        })
        .await
        .unwrap();
    let base: serde_json::Value = serde_json::from_str(POST_RESPONSE).unwrap();
    let submit = |survey: &str, key: Option<&str>| {
        let mut e = base.clone();
        let headers = e["headers"].as_object_mut().unwrap();
        headers.remove("x-sondeo-key");
        if let Some(k) = key {
            headers.insert("x-sondeo-key".into(), k.into());
        }
        e["body"] = serde_json::json!({"survey": survey, "touchpoint": "post-purchase", "respondent": "cust-1", "score": 9})
            .to_string()
            .into();
        event(&e.to_string())
    };
    // With a key: nonexistent, link-only, wrong key, and an id that cannot exist read alike.
    let mut wrong = Vec::new();
    for (survey, key) in [
        ("nope", "pk_live_0123456789"),
        ("links-only", "pk_live_0123456789"),
        ("nps-2026", "pk_live_guessed000"),
        ("Not A Slug!", "pk_live_0123456789"),
    ] {
        let resp = f.collect.handle(submit(survey, Some(key))).await;
        let json = body_json(&resp);
        assert_eq!(resp.status(), 403, "{survey}: {json}");
        wrong.push(json.to_string().replace(survey, "<id>"));
    }
    assert!(wrong.iter().all(|w| *w == wrong[0]), "{wrong:#?}");
    // Without a key: the same answer whatever the survey.
    let mut missing = Vec::new();
    for survey in ["nope", "links-only", "nps-2026"] {
        let resp = f.collect.handle(submit(survey, None)).await;
        assert_eq!(resp.status(), 401, "{survey}");
        missing.push(body_json(&resp));
    }
    assert!(missing.iter().all(|m| *m == missing[0]), "{missing:#?}");
    // With the right key, an unknown touchpoint is named, the survey's own are not.
    let mut e = base.clone();
    e["body"] = serde_json::json!({"survey": "nps-2026", "touchpoint": "checkout", "respondent": "cust-1", "score": 9})
        .to_string()
        .into();
    let resp = f.collect.handle(event(&e.to_string())).await;
    assert_eq!(resp.status(), 422);
    let json = body_json(&resp);
    assert_eq!(
        json["error"]["message"],
        "touchpoint 'checkout' is not part of survey 'nps-2026'"
    );
    for body in wrong
        .iter()
        .chain(
            missing
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .iter(),
        )
        .chain([json.to_string()].iter())
    {
        for hidden in [
            "post-purchase",
            "support-chat",
            "secret-pilot",
            "links-only",
        ] {
            assert!(!body.contains(hidden), "{hidden} in {body}");
        }
    }
    assert!(queued(&f.store).is_empty());
}

/// A link's holder learns nothing its token hides: not the respondent, survey or touchpoint from
/// the link itself, not which of survey or touchpoint has gone, and no way to test a guess.
#[tokio::test]
async fn links_hide_their_claims_and_their_errors_do_not_reveal_them() {
    let f = fixture().await;
    let respondent = "maria.fernandez@correo-mail.es";
    let mint = |survey: &str, touchpoint: &str| {
        let now = now_ms() / 1000;
        f.keyring
            .sign(&LinkClaims {
                survey: survey.into(),
                touchpoint: touchpoint.into(),
                respondent: respondent.into(),
                issued_at: now - 100,
                expires_at: now + 3600,
            })
            .unwrap()
    };
    // Minted by the API: neither the link nor the token shows who, which survey or where.
    let mut ev: serde_json::Value = serde_json::from_str(GET_METRICS).unwrap();
    ev["rawPath"] = "/v1/links".into();
    ev["rawQueryString"] = "".into();
    ev.as_object_mut().unwrap().remove("queryStringParameters");
    ev["requestContext"]["http"]["method"] = "POST".into();
    ev["requestContext"]["http"]["path"] = "/v1/links".into();
    ev["headers"]["content-type"] = "application/json".into();
    ev["body"] = serde_json::json!({"survey": "nps-2026", "touchpoint": "post-purchase", "respondent": respondent})
        .to_string()
        .into();
    let resp = f.admin.handle(event(&ev.to_string())).await;
    assert_eq!(
        resp.status(),
        201,
        "{}",
        String::from_utf8_lossy(resp.body())
    );
    let minted = body_json(&resp);
    let token = minted["token"].as_str().unwrap().to_string();
    for value in [respondent, "nps-2026", "post-purchase"] {
        assert!(!readable_in(&token, value), "{value} readable in {token}");
        let page = minted["page"].as_str().unwrap();
        assert!(!readable_in(page, value), "{value} readable in {page}");
    }
    // The check does find a value that is there.
    assert!(readable_in(
        &format!("x{}y", base64url(respondent.as_bytes())),
        respondent
    ));
    // And the link works: the answer is recorded for the sealed respondent.
    let resp = f
        .collect
        .handle(event(&POST_LINK.replace("{{TOKEN}}", &token)))
        .await;
    assert_eq!(
        resp.status(),
        202,
        "{}",
        String::from_utf8_lossy(resp.body())
    );
    assert_eq!(queued(&f.store)[0].respondent, respondent);

    // A survey that is gone and a touchpoint that is gone read alike, naming neither.
    let gone_survey = mint("gone-survey", "post-purchase");
    let gone_touchpoint = mint("nps-2026", "gone-touchpoint");
    let mut bodies = Vec::new();
    for t in [&gone_survey, &gone_touchpoint] {
        // The answer page (HTML, asked for in Spanish: the survey is in English), the page's
        // script (JSON), and the submission API.
        let mut get: serde_json::Value =
            serde_json::from_str(&GET_LINK.replace("{{TOKEN}}", t)).unwrap();
        get["headers"]["accept-language"] = "es-ES,es;q=0.9".into();
        let page = f.collect.handle(event(&get.to_string())).await;
        assert_eq!(page.status(), 404);
        let mut post: serde_json::Value =
            serde_json::from_str(&POST_LINK.replace("{{TOKEN}}", t)).unwrap();
        post["headers"]["accept"] = "application/json".into();
        let script = f.collect.handle(event(&post.to_string())).await;
        assert_eq!(script.status(), 404);
        let mut api: serde_json::Value = serde_json::from_str(POST_RESPONSE).unwrap();
        api["body"] = serde_json::json!({"token": t, "score": 9})
            .to_string()
            .into();
        let api = f.collect.handle(event(&api.to_string())).await;
        assert_eq!(api.status(), 404);
        bodies.push(
            [page, script, api]
                .iter()
                .map(|r| String::from_utf8_lossy(r.body()).to_string())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(bodies[0], bodies[1]);
    for body in bodies.concat() {
        for hidden in [
            "gone-survey",
            "gone-touchpoint",
            "nps-2026",
            "post-purchase",
            "support-chat",
            respondent,
        ] {
            assert!(!body.contains(hidden), "{hidden} in {body}");
        }
    }

    // Naming the respondent beside a token is refused whether the guess is right or wrong.
    let t = mint("nps-2026", "post-purchase");
    let mut answers = Vec::new();
    for guess in [respondent, "someone.else@correo-mail.es"] {
        let mut api: serde_json::Value = serde_json::from_str(POST_RESPONSE).unwrap();
        api["body"] = serde_json::json!({"token": t, "respondent": guess, "score": 9})
            .to_string()
            .into();
        let resp = f.collect.handle(event(&api.to_string())).await;
        answers.push((resp.status(), body_json(&resp)));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 400);
    assert!(
        queued(&f.store).is_empty(),
        "nothing was recorded after the first answer"
    );
}
