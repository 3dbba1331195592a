//! Store webhooks through local mode over real HTTP, signed by a second implementation
//! (Python's `hmac`): one invitation per order however many deliveries, topics and concurrent
//! retries bring it; every refusal stores nothing; the frequency cap and the suppression list
//! skip with a reason; a due invitation is written to the outbox as an email whose link
//! answers the survey in the order's send.

use sondeo_domain::ports::{InvitationStore, SuppressionList};
use sondeo_domain::response::Suppression;
use sondeo_local::local::DEMO_SURVEY;
use sondeo_tests::local_http::{boot, LocalHttp};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const SHOPIFY_SECRET: &str = "shpss_0123456789abcdef0123456789abcdef";
const WOO_SECRET: &str = "wc&amp;secret-with-&lt;entities&gt;";
const STRIPE_SECRET: &str = "whsec_test_0123456789abcdefghijklmnop";

/// `hmac` in Python: base64 (or hex) HMAC-SHA256 of `message` under `key`.
fn python_hmac(key: &str, message: &[u8], hex: bool) -> String {
    let script = r#"
import base64, hashlib, hmac, json, sys
job = json.load(sys.stdin)
mac = hmac.new(job["key"].encode(), bytes(job["message"]), hashlib.sha256).digest()
print(mac.hex() if job["hex"] else base64.b64encode(mac).decode(), end="")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let job = serde_json::json!({"key": key, "message": message, "hex": hex});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn shopify_order(id: u64, email: Option<&str>) -> String {
    serde_json::json!({
        "id": id,
        "name": format!("#{}", id % 10_000),
        "email": email,
        "currency": "EUR",
        "total_price": "49.00",
        "customer": {"first_name": "Ana", "email": email},
    })
    .to_string()
}

async fn shopify(
    http: &LocalHttp,
    body: &str,
    topic: &str,
    delivery: &str,
    secret: &str,
) -> (u16, serde_json::Value) {
    let signature = python_hmac(secret, body.as_bytes(), false);
    let (status, answer) = http
        .status_and_body(
            "POST",
            "/v1/webhooks/shopify/tienda-sol",
            &[
                ("content-type", "application/json"),
                ("x-shopify-hmac-sha256", &signature),
                ("x-shopify-topic", topic),
                ("x-shopify-webhook-id", delivery),
                ("x-shopify-shop-domain", "tienda-sol.myshopify.com"),
            ],
            body,
        )
        .await;
    (status, serde_json::from_str(&answer).unwrap_or_default())
}

async fn invitations(http: &LocalHttp, key: &str) -> Vec<serde_json::Value> {
    let (status, body) = http
        .status_and_body(
            "GET",
            "/v1/invitations?limit=1000",
            &[("authorization", key)],
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["invitations"].as_array().cloned().unwrap_or_default()
}

/// Local mode in a fresh folder, serving a copy of the demo survey as `post-order` (with a
/// frequency cap of `cap_days`).
async fn post_order_stack(
    cap_days: Option<u32>,
) -> (
    std::path::PathBuf,
    std::sync::Arc<sondeo_local::local::LocalStack>,
    sondeo_local::server::RunningServer,
    LocalHttp,
) {
    let dir = std::env::temp_dir().join(format!("sondeo-hooks-{:08x}", rand::random::<u32>()));
    let (stack, server, http) = boot(&dir).await;
    stack.ensure_demo_survey().await.unwrap();
    let key = format!("Bearer {}", stack.api_key);
    let auth = [
        ("authorization", key.as_str()),
        ("content-type", "application/json"),
    ];
    let mut survey: serde_json::Value = serde_json::from_str(
        &http
            .status_and_body("GET", &format!("/v1/surveys/{DEMO_SURVEY}"), &auth, "")
            .await
            .1,
    )
    .unwrap();
    survey["id"] = "post-order".into();
    if let Some(days) = cap_days {
        survey["frequency_cap_days"] = days.into();
    }
    let (status, body) = http
        .status_and_body("POST", "/v1/surveys", &auth, &survey.to_string())
        .await;
    assert_eq!(status, 201, "{body}");
    (dir, stack, server, http)
}

#[tokio::test]
async fn webhooks_make_one_invitation_per_order_and_the_email_goes_out() {
    // A survey with a 90-day frequency cap, and one connection per platform.
    let (dir, stack, server, http) = post_order_stack(Some(90)).await;
    let key = format!("Bearer {}", stack.api_key);
    let auth = [
        ("authorization", key.as_str()),
        ("content-type", "application/json"),
    ];
    for (id, platform, secret) in [
        ("tienda-sol", "shopify", SHOPIFY_SECRET),
        ("tienda-woo", "woocommerce", WOO_SECRET),
        ("tienda-stripe", "stripe", STRIPE_SECRET),
    ] {
        let connection = serde_json::json!({
            "id": id, "platform": platform, "survey": "post-order",
            "touchpoint": "post-purchase", "delay_minutes": 0,
            "sender": "Tienda Sol <hola@tiendasol.example>", "store_name": "Tienda Sol",
            "secret": secret,
        });
        let (status, body) = http
            .status_and_body("POST", "/v1/connections", &auth, &connection.to_string())
            .await;
        assert_eq!(status, 201, "{body}");
        assert!(
            body.contains(&format!("/v1/webhooks/{platform}/{id}")) && !body.contains(secret),
            "the webhook URL is listed and the secret never comes back: {body}"
        );
    }
    let (_, listed) = http
        .status_and_body("GET", "/v1/connections", &auth, "")
        .await;
    for secret in [SHOPIFY_SECRET, WOO_SECRET, STRIPE_SECRET] {
        assert!(!listed.contains(secret), "{listed}");
    }

    // The same delivery 5 times, then the same order through 5 other deliveries and both
    // topics, each 5 at once: one invitation.
    let order = shopify_order(820982911946154508, Some("ana@example.com"));
    for _ in 0..5 {
        let (status, answer) = shopify(&http, &order, "orders/create", "d-1", SHOPIFY_SECRET).await;
        assert_eq!(status, 200, "{answer}");
    }
    for delivery in 2..7 {
        let topic = if delivery % 2 == 0 {
            "orders/create"
        } else {
            "orders/fulfilled"
        };
        let id = format!("d-{delivery}");
        let calls = (0..5).map(|_| shopify(&http, &order, topic, &id, SHOPIFY_SECRET));
        for (status, answer) in futures::future::join_all(calls).await {
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["outcome"], "duplicate", "{answer}");
        }
    }
    let listed = invitations(&http, &key).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["order"], "820982911946154508");
    assert_eq!(
        listed[0]["email"], "a***@example.com",
        "addresses are masked"
    );

    // Refusals store nothing: a wrong secret, a tampered body, no signature.
    let other = shopify_order(1002, Some("bo@example.com"));
    let (status, answer) = shopify(&http, &other, "orders/create", "d-x", "wrong-secret").await;
    assert_eq!(status, 401, "{answer}");
    let signature = python_hmac(SHOPIFY_SECRET, other.as_bytes(), false);
    let tampered = other.replace("bo@", "eve@");
    for (body, headers) in [
        (
            tampered.as_str(),
            vec![
                ("x-shopify-hmac-sha256", signature.as_str()),
                ("x-shopify-topic", "orders/create"),
            ],
        ),
        (other.as_str(), vec![("x-shopify-topic", "orders/create")]),
    ] {
        let reply = http
            .send("POST", "/v1/webhooks/shopify/tienda-sol", &headers, body)
            .await;
        assert_eq!(reply.status, 401, "{}", reply.body);
    }
    // Valid signature, unusable body: 400 with a reason. Unknown connection or platform: 404.
    let (status, answer) = shopify(&http, "[1,2]", "orders/create", "d-y", SHOPIFY_SECRET).await;
    assert_eq!(status, 400, "{answer}");
    let reply = http
        .send("POST", "/v1/webhooks/shopify/nobody", &[], "{}")
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    let reply = http
        .send("POST", "/v1/webhooks/magento/tienda-sol", &[], "{}")
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    // An order without an email: 202, no invitation.
    let (status, answer) = shopify(
        &http,
        &shopify_order(1003, None),
        "orders/create",
        "d-z",
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(invitations(&http, &key).await.len(), 1);

    // WooCommerce: the creation ping, an order still processing (ignored), then completed.
    let reply = http
        .send(
            "POST",
            "/v1/webhooks/woocommerce/tienda-woo",
            &[("content-type", "application/x-www-form-urlencoded")],
            "webhook_id=17",
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let woo_secret = WOO_SECRET
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    for (status_text, expect) in [("processing", "ignored"), ("completed", "scheduled")] {
        let body = serde_json::json!({
            "id": 5501, "number": "5501", "status": status_text,
            "billing": {"first_name": "Bo", "email": "bo@example.com"},
        })
        .to_string();
        let signature = python_hmac(&woo_secret, body.as_bytes(), false);
        let (status, answer) = http
            .status_and_body(
                "POST",
                "/v1/webhooks/woocommerce/tienda-woo",
                &[
                    ("x-wc-webhook-signature", signature.as_str()),
                    ("x-wc-webhook-topic", "order.updated"),
                    ("x-wc-webhook-delivery-id", "77"),
                ],
                &body,
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer.contains(expect), "{status_text}: {answer}");
    }

    // Stripe: a completed checkout for the same customer as the Shopify order → skipped by
    // the 90-day frequency cap, with the reason; a stale signature → 401.
    let now = sondeo_domain::time::now_ms() / 1000;
    let event = serde_json::json!({
        "id": "evt_1", "type": "checkout.session.completed",
        "data": {"object": {"id": "cs_test_a1", "object": "checkout.session",
            "customer_details": {"email": "ANA@example.com", "name": "Ana Ruiz"}}},
    })
    .to_string();
    let stripe = |t: i64| {
        let signature = python_hmac(STRIPE_SECRET, format!("{t}.{event}").as_bytes(), true);
        format!("t={t},v1={signature}")
    };
    let (status, answer) = http
        .status_and_body(
            "POST",
            "/v1/webhooks/stripe/tienda-stripe",
            &[("stripe-signature", stripe(now - 400).as_str())],
            &event,
        )
        .await;
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = http
        .status_and_body(
            "POST",
            "/v1/webhooks/stripe/tienda-stripe",
            &[("stripe-signature", stripe(now).as_str())],
            &event,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("\"skipped\"") && answer.contains("frequency cap"),
        "{answer}"
    );

    // A suppressed address: skipped, with the reason.
    stack
        .store
        .suppress(&Suppression {
            respondent: "cy@example.com".into(),
            at: 0,
            via: "api".into(),
        })
        .await
        .unwrap();
    let (status, answer) = shopify(
        &http,
        &shopify_order(1004, Some("Cy@Example.com")),
        "orders/create",
        "d-c",
        SHOPIFY_SECRET,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["invitation"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("unsubscribed"),
        "{answer}"
    );

    // Due at once (delay 0): the mail loop writes Ana's and Bo's emails to the outbox.
    let outbox = dir.join("outbox");
    let mut emails = Vec::new();
    for _ in 0..100 {
        emails = std::fs::read_dir(&outbox)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        if emails.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(emails.len(), 2, "{emails:?}");
    let sent = stack
        .store
        .get_invitation("tienda-sol", "820982911946154508")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.status, sondeo_domain::orders::InvitationStatus::Sent);
    let ana = emails
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|m| m.contains("To: ana@example.com"))
        .expect("Ana's email");
    assert!(
        ana.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{ana}"
    );
    // Its score-9 link (the HTML part is encoded: find the URL in the decoded text part).
    let text = decoded_text_part(&ana);
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/r/") && w.ends_with("score=9"))
        .unwrap_or_else(|| panic!("a score-9 link in {text}"))
        .to_string();
    let path = link
        .split_once("127.0.0.1:8787")
        .map_or(link.as_str(), |(_, p)| p);
    let (status, page) = http.status_and_body("GET", path, &[], "").await;
    assert_eq!(status, 200, "{page}");
    let answer_send = sondeo_domain::orders::order_send("tienda-sol", "820982911946154508");
    let mut counted = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, body) = http
            .status_and_body(
                "GET",
                &format!("/v1/metrics?survey=post-order&send={answer_send}"),
                &auth,
                "",
            )
            .await;
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        counted = report["touchpoints"]["post-purchase"]["total"].clone();
        if counted["n"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        counted["n"], 1,
        "the email's link counts in the order's send: {counted}"
    );
    assert_eq!(counted["promoters"], 1, "{counted}");

    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The decoded text/plain part of a MIME message (Python's `email` package).
fn decoded_text_part(mime: &str) -> String {
    let script = r#"
import email, email.policy, sys
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
print(m.get_body(preferencelist=("plain",)).get_content())
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(mime.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// From, To and Subject of a MIME message as Python's `email` package reads them: the From
/// display name and address apart, encoded words decoded.
fn parsed_headers(mime: &str) -> serde_json::Value {
    let script = r#"
import email, email.policy, json, sys
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
frm = m["From"].addresses[0]
print(json.dumps({"from_name": frm.display_name, "from_address": frm.addr_spec,
                  "to": m["To"].addresses[0].addr_spec, "subject": str(m["Subject"])}))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(mime.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn quoted_senders_unicode_addresses_and_stripe_ids_reach_the_email_as_ses_takes_them() {
    let (dir, stack, server, http) = post_order_stack(None).await;
    let key = format!("Bearer {}", stack.api_key);
    let auth = [
        ("authorization", key.as_str()),
        ("content-type", "application/json"),
    ];
    let connection = serde_json::json!({
        "id": "stripe-shop", "platform": "stripe", "survey": "post-order",
        "touchpoint": "post-purchase", "delay_minutes": 0,
        "sender": "\"Tienda, Sol\" <hola@tiendasol.example>", "store_name": "Stripe Shop",
        "secret": STRIPE_SECRET,
    });

    // A negative delay and an unknown field are refused in words that say what is allowed.
    let mut negative = connection.clone();
    negative["delay_minutes"] = (-1).into();
    let mut unknown = connection.clone();
    unknown["colour"] = "blue".into();
    for (body, words) in [
        (
            negative,
            "delay_minutes must be a whole number of minutes from 0 to",
        ),
        (unknown, "secret"),
    ] {
        let (status, answer) = http
            .status_and_body("POST", "/v1/connections", &auth, &body.to_string())
            .await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer.contains(words), "{answer}");
        assert!(!answer.contains("expected u32"), "{answer}");
    }
    let (status, body) = http
        .status_and_body("POST", "/v1/connections", &auth, &connection.to_string())
        .await;
    assert_eq!(
        status, 201,
        "a quoted display name is a valid sender: {body}"
    );

    let now = sondeo_domain::time::now_ms() / 1000;
    let post = |event: serde_json::Value| {
        let event = event.to_string();
        let signature = python_hmac(STRIPE_SECRET, format!("{now}.{event}").as_bytes(), true);
        let header = format!("t={now},v1={signature}");
        let http = &http;
        async move {
            let (status, answer) = http
                .status_and_body(
                    "POST",
                    "/v1/webhooks/stripe/stripe-shop",
                    &[("stripe-signature", header.as_str())],
                    &event,
                )
                .await;
            (
                status,
                serde_json::from_str::<serde_json::Value>(&answer).unwrap_or_default(),
            )
        }
    };
    let checkout = |session: &str, email: &str| {
        serde_json::json!({
            "id": format!("evt_{session}"), "type": "checkout.session.completed",
            "data": {"object": {"id": session, "object": "checkout.session",
                "payment_status": "paid", "customer_details": {"email": email}}},
        })
    };

    // A signed event without an id is not Stripe's: refused with the reason.
    let mut no_id = checkout("cs_live_noid", "ana@example.com");
    no_id.as_object_mut().unwrap().remove("id");
    let (status, answer) = post(no_id).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("no id"), "{answer}");

    // A local part SES cannot send to: the invitation is skipped, with the reason.
    let (status, answer) = post(checkout("cs_live_b2", "josé@example.com")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "skipped", "{answer}");
    assert!(
        answer["invitation"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not plain ASCII"),
        "{answer}"
    );

    // A unicode domain and no client_reference_id: scheduled, sent to the punycode domain,
    // the subject without the session id, From with the quoted name.
    let (status, answer) = post(checkout("cs_live_a1B2c3D4e5F6", "ana@exämple.com")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "scheduled", "{answer}");
    assert_eq!(answer["invitation"]["order"], "cs_live_a1B2c3D4e5F6");
    let outbox = dir.join("outbox");
    let mut emails: Vec<std::path::PathBuf> = Vec::new();
    for _ in 0..100 {
        emails = std::fs::read_dir(&outbox)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        if !emails.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(emails.len(), 1, "{emails:?}");
    let mime = std::fs::read(&emails[0]).unwrap();
    assert!(mime.is_ascii(), "every header and part is 7-bit");
    let mime = String::from_utf8(mime).unwrap();
    assert_eq!(
        parsed_headers(&mime),
        serde_json::json!({
            "from_name": "Tienda, Sol",
            "from_address": "hola@tiendasol.example",
            "to": "ana@xn--exmple-cua.com",
            "subject": "How was your order from Stripe Shop?",
        }),
        "{mime}"
    );
    assert!(!decoded_text_part(&mime).contains("cs_live"), "{mime}");

    // Listed one a page: a cursor leads to the other, then no cursor; a forged one is refused.
    let page = |query: String| {
        let http = &http;
        let key = key.clone();
        async move {
            let (status, body) = http
                .status_and_body(
                    "GET",
                    &format!("/v1/invitations?{query}"),
                    &[("authorization", key.as_str())],
                    "",
                )
                .await;
            (
                status,
                serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default(),
            )
        }
    };
    let (status, first) = page("limit=1".into()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["invitations"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (status, second) = page(format!("limit=1&cursor={cursor}")).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["invitations"].as_array().map(Vec::len),
        Some(1),
        "{second}"
    );
    assert_ne!(
        first["invitations"][0]["order"],
        second["invitations"][0]["order"]
    );
    assert!(second["next_cursor"].is_null(), "{second}");
    let (status, forged) = page("cursor=not-a-cursor".into()).await;
    assert_eq!(
        (status, &forged["error"]["code"]),
        (400, &"invalid_cursor".into()),
        "{forged}"
    );

    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
