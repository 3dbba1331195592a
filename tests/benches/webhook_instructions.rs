//! Instructions per store webhook, counted by callgrind, against a click as the baseline. As in
//! `router_instructions`, each figure is the difference between two runs of this executable
//! under `valgrind --tool=callgrind` that handle N1 and N2 requests, divided by N2 − N1, so
//! set-up (store, survey, connection, payloads and their signatures, runtime) cancels out: every
//! run prepares N2 requests and sends the first N.
//!
//! Targets (about 2 KB order payloads, signed in the set-up with the `hmac` and `sha2` crates):
//! - `verify-shopify`, `verify-woocommerce`, `verify-stripe`: `sondeo_domain::webhooks::
//!   verify_and_parse` alone (signature in constant time, then the JSON and the order in it).
//! - `route-new-order`: `POST /v1/webhooks/shopify/{connection}` through
//!   `sondeo_http::webhooks::router` (in-process `tower::ServiceExt::oneshot`, as
//!   `lambda_http::run` does) over `EmbeddedStore::in_memory()` and a scheduler that does
//!   nothing; a new order and customer each time, so each request verifies the signature,
//!   creates the invitation, looks the address up in the suppression list, claims the survey's
//!   90-day frequency cap and schedules.
//! - `route-duplicate`: one delivery sent again and again (a platform's retry): the signature,
//!   `create_invitation` finding the order's invitation, `get_invitation`.
//! - `click-baseline`: `GET /r/{token}?score=9` through `sondeo_http::collect::router` over the
//!   same kind of store (the score enqueued), the figure the others are compared with.
//!
//! No tracing subscriber is installed (as in the local benches): the webhook route's INFO line
//! per order is not formatted.
//!
//! Run: `cargo bench -p sondeo-tests --bench webhook_instructions` (needs valgrind; env
//! REQUESTS=N1,N2 to change the sample, default 100,600; TARGETS=route-new-order,... to pick
//! targets; the ratio column needs click-baseline among them).

mod callgrind;

use axum::body::Body;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sondeo_domain::orders::{Connection, Invitation, Platform, WebhookSecret};
use sondeo_domain::ports::{ConnectionStore, InvitationScheduler, StoreError, SurveyStore};
use sondeo_domain::response::to_hex;
use sondeo_domain::survey::{Locale, Survey, SurveyKind, Touchpoint};
use sondeo_domain::token::{LinkClaims, LinkKeyring};
use sondeo_domain::webhooks::{verify_and_parse, WebhookOutcome};
use sondeo_embedded::EmbeddedStore;
use sondeo_http::routing::HttpService;
use std::hint::black_box;
use std::sync::Arc;
use tower::ServiceExt;

const SURVEY: &str = "post-order";
const CONNECTION: &str = "tienda-sol";
const LINK_KEYS: &str = "k1:0123456789abcdef0123456789abcdef-bench";
const SHOPIFY_SECRET: &str = "shpss_0123456789abcdef0123456789abcdef";
/// As WooCommerce generates them (`wp_generate_password(50, true, true)`): no entity to decode.
const WOO_SECRET: &str = "u8K#q2!vR$w9^zT4*eY7(bN1)mX5&cL3-jH6_fD0[gS2]pA7{";
const STRIPE_SECRET: &str = "whsec_test_0123456789abcdefghijklmnop";
/// The Stripe signature's timestamp; `verify-stripe` checks it 5 s later.
const STRIPE_T: i64 = 1_790_000_000;

/// The targets, in the order measured and printed.
const TARGETS: &[(&str, &str)] = &[
    (
        "click-baseline",
        "GET /r/{token}?score=9 through collect::router, score enqueued",
    ),
    (
        "verify-shopify",
        "verify_and_parse alone: Shopify orders/create",
    ),
    (
        "verify-woocommerce",
        "verify_and_parse alone: WooCommerce order.updated, completed",
    ),
    (
        "verify-stripe",
        "verify_and_parse alone: Stripe checkout.session.completed",
    ),
    (
        "route-new-order",
        "POST /v1/webhooks/shopify/{connection}, a new order: invitation scheduled",
    ),
    (
        "route-duplicate",
        "the same delivery again (retry): invitation found",
    ),
];

/// A Shopify `orders/create` payload (about 2 KB), its order and customer numbered `i`.
fn shopify_order(i: usize) -> String {
    let id = 5_981_234_567_890 + i as u64;
    let email = format!("cliente{i}@example.com");
    let address = serde_json::json!({
        "first_name": "Ana", "last_name": "López", "company": null,
        "address1": "Calle Mayor 12", "address2": "3º B", "city": "Madrid", "zip": "28013",
        "province": "Madrid", "province_code": "M", "country": "Spain", "country_code": "ES",
        "phone": "+34 600 000 000", "name": "Ana López",
    });
    let item = |n: u64, title: &str, sku: &str, price: &str, quantity: u32| {
        serde_json::json!({
            "id": 14_001_234_567_000 + n, "admin_graphql_api_id": format!("gid://shopify/LineItem/{}", 14_001_234_567_000 + n),
            "product_id": 8_123_456_789_000 + n, "variant_id": 45_123_456_789_000 + n,
            "title": title, "variant_title": "250 g", "sku": sku, "vendor": "Tienda Sol",
            "quantity": quantity, "price": price, "total_discount": "0.00",
            "requires_shipping": true, "taxable": true, "fulfillment_status": null,
        })
    };
    serde_json::json!({
        "id": id,
        "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
        "app_id": 580_111,
        "browser_ip": "203.0.113.24",
        "buyer_accepts_marketing": false,
        "cancelled_at": null,
        "checkout_id": 36_123_456_789_012_u64 + i as u64,
        "confirmation_number": "K4D7YHQ2P",
        "confirmed": true,
        "contact_email": email,
        "created_at": "2026-05-12T10:41:07+02:00",
        "currency": "EUR",
        "email": email,
        "financial_status": "paid",
        "fulfillment_status": null,
        "landing_site": "/products/cafe-de-colombia",
        "name": format!("#{}", 1001 + i),
        "order_number": 1001 + i,
        "processed_at": "2026-05-12T10:41:06+02:00",
        "source_name": "web",
        "subtotal_price": "84.00",
        "tags": "",
        "taxes_included": true,
        "total_discounts": "0.00",
        "total_price": "92.90",
        "total_tax": "16.12",
        "total_weight": 1500,
        "updated_at": "2026-05-12T10:41:08+02:00",
        "billing_address": address,
        "shipping_address": address,
        "customer": {
            "id": 7_412_345_678_000 + i as u64, "email": email, "first_name": "Ana",
            "last_name": "López", "state": "enabled", "verified_email": true, "currency": "EUR",
            "created_at": "2026-05-12T10:40:51+02:00", "tags": "",
        },
        "line_items": [
            item(1, "Café de Colombia, molido", "CAFE-COL-250", "12.00", 4),
            item(2, "Té verde sencha", "TE-SEN-250", "9.00", 4),
        ],
        "shipping_lines": [{"code": "estandar", "price": "8.90", "title": "Envío estándar", "source": "shopify"}],
    })
    .to_string()
}

/// A completed WooCommerce order (about 2 KB), as its `order.updated` webhook sends it.
fn woocommerce_order() -> String {
    let billing = serde_json::json!({
        "first_name": "Bruno", "last_name": "Costa", "company": "", "address_1": "Rua Augusta 41",
        "address_2": "", "city": "Lisboa", "state": "", "postcode": "1100-048", "country": "PT",
        "email": "bruno.costa@example.com", "phone": "+351 910 000 000",
    });
    let item = |n: u64, name: &str, sku: &str, total: &str| {
        serde_json::json!({
            "id": 900 + n, "name": name, "product_id": 300 + n, "variation_id": 0, "quantity": 2,
            "tax_class": "", "subtotal": total, "subtotal_tax": "0.00", "total": total,
            "total_tax": "0.00", "taxes": [], "meta_data": [], "sku": sku, "price": 12,
        })
    };
    serde_json::json!({
        "id": 5501, "parent_id": 0, "number": "5501", "order_key": "wc_order_Xy7pQ2mZk9LbA",
        "created_via": "checkout", "version": "9.8.1", "status": "completed", "currency": "EUR",
        "date_created": "2026-05-12T10:41:07", "date_created_gmt": "2026-05-12T08:41:07",
        "date_modified": "2026-05-14T16:02:33", "date_modified_gmt": "2026-05-14T14:02:33",
        "discount_total": "0.00", "discount_tax": "0.00", "shipping_total": "4.90",
        "shipping_tax": "0.00", "cart_tax": "0.00", "total": "52.90", "total_tax": "0.00",
        "prices_include_tax": true, "customer_id": 118, "customer_ip_address": "203.0.113.24",
        "customer_user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "customer_note": "", "billing": billing, "shipping": billing,
        "payment_method": "stripe", "payment_method_title": "Tarjeta de crédito",
        "transaction_id": "pi_3PqR5sT6uV7wX8yZ0aB1cD2e", "date_paid": "2026-05-12T10:41:09",
        "date_completed": "2026-05-14T16:02:33", "cart_hash": "9f2c1e0b7a6d5c4b3a2f1e0d9c8b7a6f",
        "meta_data": [{"id": 4411, "key": "_wc_order_attribution_source_type", "value": "typein"}],
        "line_items": [
            item(1, "Café de Colombia, molido 250 g", "CAFE-COL-250", "24.00"),
            item(2, "Té verde sencha 250 g", "TE-SEN-250", "24.00"),
        ],
        "shipping_lines": [{"id": 905, "method_title": "Envío estándar", "method_id": "flat_rate", "total": "4.90", "total_tax": "0.00"}],
        "tax_lines": [], "fee_lines": [], "coupon_lines": [], "refunds": [],
        "currency_symbol": "€",
    })
    .to_string()
}

/// A Stripe `checkout.session.completed` event (about 2 KB), paid.
fn stripe_event() -> String {
    let address = serde_json::json!({
        "city": "Sevilla", "country": "ES", "line1": "Avenida de la Constitución 20",
        "line2": null, "postal_code": "41004", "state": "Sevilla",
    });
    let session = serde_json::json!({
        "id": "cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ0123456789abcdEFGH",
        "object": "checkout.session", "after_expiration": null, "allow_promotion_codes": null,
        "amount_subtotal": 8400, "amount_total": 9290, "automatic_tax": {"enabled": false, "liability": null, "status": null},
        "billing_address_collection": null, "cancel_url": "https://tiendasol.example/cart",
        "client_reference_id": "ORD-2026-0512-0042", "consent": null, "created": STRIPE_T - 60,
        "currency": "eur", "customer": "cus_QhR5sT6uV7wX8y", "customer_creation": "always",
        "customer_details": {
            "address": address,
            "email": "carmen.ruiz@example.com", "name": "Carmen Ruiz", "phone": null,
            "tax_exempt": "none", "tax_ids": [],
        },
        "customer_email": null, "expires_at": STRIPE_T + 86_340, "invoice": null,
        "livemode": false, "locale": "es", "metadata": {"cart": "c_8841"}, "mode": "payment",
        "payment_intent": "pi_3PqR5sT6uV7wX8yZ0aB1cD2e", "payment_link": null,
        "payment_method_collection": "if_required", "payment_method_types": ["card"],
        "payment_status": "paid", "shipping_cost": {"amount_subtotal": 890, "amount_total": 890, "shipping_rate": "shr_1PqR5sT6uV7wX8yZ"},
        "shipping_details": {"address": address, "name": "Carmen Ruiz"},
        "status": "complete", "submit_type": "pay",
        "success_url": "https://tiendasol.example/gracias?session_id={CHECKOUT_SESSION_ID}",
        "total_details": {"amount_discount": 0, "amount_shipping": 890, "amount_tax": 0},
        "ui_mode": "hosted", "url": null,
    });
    serde_json::json!({
        "id": "evt_1PqR5sT6uV7wX8yZ0aB1cD2e", "object": "event", "api_version": "2024-06-20",
        "created": STRIPE_T, "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": "checkout.session.completed",
        "data": {"object": session},
    })
    .to_string()
}

fn mac(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("hmac key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// A delivery as a platform sends it: the platform, its headers and its body.
fn delivery(target: &str) -> (Platform, WebhookSecret, http::HeaderMap, String) {
    let mut headers = http::HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        headers.insert(name, value.parse().expect("header value"));
    };
    set("content-type", "application/json");
    let (platform, secret, body) = match target {
        "verify-shopify" => {
            let body = shopify_order(0);
            for (name, value) in shopify_headers(&body, "d-0") {
                set(name, &value);
            }
            (Platform::Shopify, SHOPIFY_SECRET, body)
        }
        "verify-woocommerce" => {
            let body = woocommerce_order();
            let signature = STANDARD.encode(mac(WOO_SECRET, &[body.as_bytes()]));
            set("x-wc-webhook-signature", &signature);
            set("x-wc-webhook-topic", "order.updated");
            set("x-wc-webhook-resource", "order");
            set("x-wc-webhook-event", "updated");
            set("x-wc-webhook-id", "17");
            set("x-wc-webhook-delivery-id", "77");
            set("x-wc-webhook-source", "https://tiendasol.example/");
            (Platform::Woocommerce, WOO_SECRET, body)
        }
        _ => {
            let body = stripe_event();
            let t = STRIPE_T.to_string();
            let v1 = to_hex(&mac(STRIPE_SECRET, &[t.as_bytes(), b".", body.as_bytes()]));
            set("stripe-signature", &format!("t={t},v1={v1}"));
            set(
                "user-agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            );
            (Platform::Stripe, STRIPE_SECRET, body)
        }
    };
    (
        platform,
        WebhookSecret::new(secret).expect("secret"),
        headers,
        body,
    )
}

/// The headers of a Shopify `orders/create` delivery of `body`.
fn shopify_headers(body: &str, delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "x-shopify-hmac-sha256",
            STANDARD.encode(mac(SHOPIFY_SECRET, &[body.as_bytes()])),
        ),
        ("x-shopify-topic", "orders/create".into()),
        ("x-shopify-webhook-id", delivery.into()),
        ("x-shopify-shop-domain", "tienda-sol.myshopify.com".into()),
        ("x-shopify-api-version", "2025-04".into()),
        ("x-shopify-triggered-at", "2026-05-12T08:41:08.123Z".into()),
    ]
}

/// `verify_and_parse` alone, `n` times over the same delivery; returns the orders found.
fn verify(target: &str, n: usize) -> usize {
    let (platform, secret, headers, body) = delivery(target);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    (0..n)
        .filter(|_| {
            let outcome = verify_and_parse(
                platform,
                &secret,
                &header,
                black_box(body.as_bytes()),
                STRIPE_T + 5,
            );
            matches!(outcome, Ok(WebhookOutcome::Order(_)))
        })
        .count()
}

fn survey() -> Survey {
    Survey {
        id: SURVEY.into(),
        kind: SurveyKind::Nps,
        question: "How likely are you to recommend us to a friend or colleague?".into(),
        follow_up: "What is the main reason for your score?".into(),
        locale: Locale::Es,
        touchpoints: vec![Touchpoint {
            slug: "post-purchase".into(),
            stage: None,
        }],
        public_key: None,
        brand: None,
        frequency_cap_days: Some(90),
    }
}

/// A fresh in-memory store holding the survey.
async fn store() -> Arc<EmbeddedStore> {
    let store = Arc::new(EmbeddedStore::in_memory().expect("in-memory store"));
    store.create_survey(&survey()).await.expect("survey");
    store
}

/// Schedules nothing (the webhook function's EventBridge Scheduler stands here).
struct NoSchedule;

#[async_trait::async_trait]
impl InvitationScheduler for NoSchedule {
    async fn schedule(&self, _: &Invitation) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Sends `req` through `svc`; its body if it succeeded.
async fn send(svc: &HttpService, req: http::Request<Bytes>) -> Option<Bytes> {
    let Ok(resp) = svc.clone().oneshot(req.map(Body::from)).await;
    let good = resp.status().is_success();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await;
    body.ok().filter(|_| good)
}

fn contains(body: &[u8], part: &[u8]) -> bool {
    body.windows(part.len()).any(|w| w == part)
}

/// Whether a webhook answer succeeded with this outcome.
fn outcome(body: Option<Bytes>, outcome: &str) -> bool {
    let part = format!("\"outcome\":\"{outcome}\"");
    body.is_some_and(|b| contains(&b, part.as_bytes()))
}

fn webhook_request(body: &Bytes, headers: &[(&'static str, String)]) -> http::Request<Bytes> {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("/v1/webhooks/shopify/{CONNECTION}"))
        .header("host", "hooks.sondeo.example")
        .header("content-type", "application/json")
        .header("user-agent", "Shopify-Captain-Hook");
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder.body(body.clone()).expect("request")
}

/// `n` Shopify deliveries through the webhook function's router: `max` new orders prepared and
/// the first `n` sent, or (`duplicate`) one order delivered once in the set-up and then `n` times.
async fn route(n: usize, max: usize, duplicate: bool) -> usize {
    let store = store().await;
    let connection = Connection {
        id: CONNECTION.into(),
        platform: Platform::Shopify,
        survey: SURVEY.into(),
        touchpoint: "post-purchase".into(),
        delay_minutes: 60,
        sender: "Tienda Sol <hola@tiendasol.example>".into(),
        store_name: "Tienda Sol".into(),
    };
    let secret = WebhookSecret::new(SHOPIFY_SECRET).expect("secret");
    store
        .put_connection(&connection, &secret)
        .await
        .expect("connection");
    let router = sondeo_http::webhooks::router(sondeo_http::webhooks::WebhookApp {
        connections: store.clone(),
        surveys: store.clone(),
        invitations: store.clone(),
        suppressions: store,
        scheduler: Arc::new(NoSchedule),
    });
    let deliveries: Vec<(Bytes, Vec<(&str, String)>)> = (0..if duplicate { 1 } else { max })
        .map(|i| {
            let body = shopify_order(i);
            let headers = shopify_headers(&body, &format!("b1c2d3e4-{i:04}"));
            (Bytes::from(body), headers)
        })
        .collect();
    if duplicate {
        let (body, headers) = &deliveries[0];
        let first = webhook_request(body, headers);
        assert!(
            outcome(send(&router, first).await, "scheduled"),
            "the first delivery schedules"
        );
        let mut ok = 0;
        for _ in 0..n {
            let again = webhook_request(body, headers);
            ok += usize::from(outcome(send(&router, again).await, "duplicate"));
        }
        ok
    } else {
        let mut ok = 0;
        for (body, headers) in &deliveries[..n] {
            let req = webhook_request(body, headers);
            ok += usize::from(outcome(send(&router, req).await, "scheduled"));
        }
        ok
    }
}

/// `n` score-9 clicks through the collect function's router (`max` links signed either way).
async fn clicks(n: usize, max: usize) -> usize {
    let store = store().await;
    let keyring = LinkKeyring::from_spec(LINK_KEYS).expect("keyring");
    let now = sondeo_domain::time::now_ms() / 1000;
    let tokens: Vec<String> = (0..max)
        .map(|i| {
            keyring
                .sign(&LinkClaims {
                    survey: SURVEY.into(),
                    touchpoint: "post-purchase".into(),
                    respondent: format!("cliente{i}@example.com"),
                    issued_at: now,
                    expires_at: now + 3600,
                })
                .expect("token")
        })
        .collect();
    let router = sondeo_http::collect::router(sondeo_http::collect::CollectApp {
        surveys: store.clone(),
        queue: store.clone(),
        keyring,
        allowed_origins: Vec::new(),
        suppressions: store,
    });
    let mut ok = 0;
    for token in &tokens[..n] {
        let req = http::Request::builder()
            .method("GET")
            .uri(format!("/r/{token}?score=9"))
            .header("host", "127.0.0.1")
            .header("accept", "application/json")
            .body(Bytes::new())
            .expect("request");
        // A page whose click was not queued carries data-unsaved.
        let page = send(&router, req).await;
        ok += usize::from(page.is_some_and(|p| !contains(&p, b"data-unsaved")));
    }
    ok
}

/// Child mode: handle `n` requests of `target` (preparing `max` either way).
async fn child(target: &str, n: usize, max: usize) {
    let ok = match target {
        "verify-shopify" | "verify-woocommerce" | "verify-stripe" => verify(target, n),
        "route-new-order" => route(n, max, false).await,
        "route-duplicate" => route(n, max, true).await,
        "click-baseline" => clicks(n, max).await,
        other => panic!("unknown target {other}"),
    };
    assert_eq!(ok, n, "{target}: only {ok} of {n} requests succeeded");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let n = args[3].parse().expect("n");
        let max = args[4].parse().expect("max");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(child(&args[2], n, max));
        return;
    }
    let (n1, n2) = callgrind::sample("REQUESTS", "100,600");
    println!(
        "instructions per request (callgrind, ({n2} requests − {n1} requests) / {}); payloads: \
         Shopify {} B, WooCommerce {} B, Stripe {} B",
        n2 - n1,
        shopify_order(0).len(),
        woocommerce_order().len(),
        stripe_event().len(),
    );
    println!(
        "{:<19} {:>11} {:>9}  what",
        "target", "instr/req", "vs click"
    );
    let mut click: Option<f64> = None;
    for (name, what) in TARGETS.iter().filter(|(name, _)| callgrind::picked(name)) {
        let (a, b) = (n1.to_string(), n2.to_string());
        let low = callgrind::instructions(&["child", name, &a, &b]);
        let high = callgrind::instructions(&["child", name, &b, &b]);
        let per = high.saturating_sub(low) as f64 / (n2 - n1) as f64;
        if *name == "click-baseline" {
            click = Some(per);
        }
        let ratio = click.map_or_else(|| "-".into(), |c| format!("{:.2}×", per / c));
        println!("{name:<19} {per:>11.0} {ratio:>9}  {what}");
    }
}
