//! Order webhooks from Shopify, WooCommerce and Stripe: each platform's signature over the raw
//! body, checked in constant time, and the order its payload announces.
//!
//! The signature is checked over the bytes exactly as received, before any JSON is read:
//! - Shopify: `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(secret, body)).
//! - WooCommerce: `X-WC-Webhook-Signature` = base64(HMAC-SHA256(secret as WordPress decodes it
//!   with `wp_specialchars_decode($secret, ENT_QUOTES)`, body)), as `WC_Webhook::generate_signature`
//!   computes it. The unsigned `webhook_id=<n>` POST sent when a webhook is created is a ping.
//! - Stripe: `Stripe-Signature` = `t=<unix>,v1=<hex>...`, each v1 = hex(HMAC-SHA256(the whole
//!   signing secret, `whsec_` prefix included, `"{t}.{body}"`)), the timestamp within
//!   [`STRIPE_TOLERANCE_SECS`] of now.

use crate::orders::{OrderEvent, Platform, WebhookSecret};
use crate::survey::clip;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Seconds a Stripe signature's timestamp may be away from now.
pub const STRIPE_TOLERANCE_SECS: i64 = 300;

const SHOPIFY_SIGNATURE: &str = "x-shopify-hmac-sha256";
const SHOPIFY_TOPIC: &str = "x-shopify-topic";
const SHOPIFY_DELIVERY: &str = "x-shopify-webhook-id";
const WOO_SIGNATURE: &str = "x-wc-webhook-signature";
const WOO_TOPIC: &str = "x-wc-webhook-topic";
const WOO_DELIVERY: &str = "x-wc-webhook-delivery-id";
const STRIPE_SIGNATURE: &str = "stripe-signature";

/// Longest order reference and first name kept, in characters.
const MAX_TEXT_CHARS: usize = 64;
/// Longest delivery id kept, in characters.
const MAX_DELIVERY_CHARS: usize = 128;
/// Longest order id accepted, in bytes.
const MAX_ORDER_ID_BYTES: usize = 255;
/// Length of an HMAC-SHA256 written in hex.
const SHA256_HEX_LEN: usize = 64;

/// What a verified delivery announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// An order whose customer is invited to the survey.
    Order(OrderEvent),
    /// WooCommerce's unsigned test delivery, sent when the webhook is created.
    Ping,
    /// A genuine delivery that invites nobody, and why (its topic, event type or order status).
    Ignored(String),
}

/// Why a webhook delivery is refused (permanent: a retry of the same request fails the same way).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WebhookError {
    /// The request has no signature header (its lowercase name).
    #[error(
        "the request has no {0} header, so nothing shows it comes from the platform; \
         point only the platform's webhook at this address"
    )]
    MissingSignature(&'static str),
    /// No signature in the request matches the body under the connection's secret.
    #[error(
        "the webhook signature does not match the body and this connection's signing secret \
         (for Stripe: no v1 signature matched, or the header carries no v1 signature); \
         check the secret saved for the connection against the platform's webhook settings"
    )]
    BadSignature,
    /// The signature header cannot be read (what is wrong): unauthenticated, like a bad one.
    #[error("the webhook signature header cannot be read: {0}")]
    UnreadableSignature(&'static str),
    /// The Stripe signature's timestamp is more than [`STRIPE_TOLERANCE_SECS`] away from now.
    #[error("{}", stale_message(*.age_secs))]
    StaleTimestamp {
        /// Seconds from the signature's timestamp to now (negative: in the future).
        age_secs: i64,
    },
    /// The delivery is signed but is not a payload the platform sends (what is wrong).
    #[error("the webhook delivery cannot be read: {0}")]
    Malformed(String),
}

impl WebhookError {
    /// The HTTP status answering the error.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::MissingSignature(_)
            | WebhookError::BadSignature
            | WebhookError::UnreadableSignature(_)
            | WebhookError::StaleTimestamp { .. } => 401,
            WebhookError::Malformed(_) => 400,
        }
    }

    /// The error's machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::MissingSignature(_) => "missing_signature",
            WebhookError::BadSignature => "bad_signature",
            WebhookError::UnreadableSignature(_) => "unreadable_signature",
            WebhookError::StaleTimestamp { .. } => "stale_timestamp",
            WebhookError::Malformed(_) => "malformed",
        }
    }
}

fn stale_message(age_secs: i64) -> String {
    if age_secs >= 0 {
        format!(
            "the Stripe-Signature timestamp is {age_secs} s old, more than the \
             {STRIPE_TOLERANCE_SECS} s allowed: a replayed or long-delayed delivery"
        )
    } else {
        format!(
            "the Stripe-Signature timestamp is {} s in the future, more than the \
             {STRIPE_TOLERANCE_SECS} s allowed: check this server's clock",
            age_secs.unsigned_abs()
        )
    }
}

fn malformed(what: impl Into<String>) -> WebhookError {
    WebhookError::Malformed(what.into())
}

/// What a delivery announces, once its signature is shown genuine (`now_secs`: Unix seconds).
pub fn verify_and_parse(
    platform: Platform,
    secret: &WebhookSecret,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    now_secs: i64,
) -> Result<WebhookOutcome, WebhookError> {
    match platform {
        Platform::Shopify => verify_shopify(secret, header, body),
        Platform::Woocommerce => verify_woocommerce(secret, header, body),
        Platform::Stripe => verify_stripe(secret, header, body, now_secs),
    }
}

fn verify_shopify(
    secret: &WebhookSecret,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<WebhookOutcome, WebhookError> {
    let signature = present(header, SHOPIFY_SIGNATURE)
        .ok_or(WebhookError::MissingSignature(SHOPIFY_SIGNATURE))?;
    check_base64_signature(&signature, secret.expose().as_bytes(), body)?;
    let topic = present(header, SHOPIFY_TOPIC)
        .ok_or_else(|| malformed("the x-shopify-topic header is missing"))?;
    if topic != "orders/create" && topic != "orders/fulfilled" {
        return Ok(ignored_topic("topic", &topic));
    }
    let order = json_object(body)?;
    let order_id =
        id_of(order.get("id")).ok_or_else(|| malformed("the Shopify order has no id"))?;
    let order_ref = text_at(&order, &["name"])
        .map(str::to_string)
        .or_else(|| id_of(order.get("order_number")))
        .unwrap_or_else(|| order_id.clone());
    let email = text_at(&order, &["email"])
        .or_else(|| text_at(&order, &["contact_email"]))
        .or_else(|| text_at(&order, &["customer", "email"]));
    let name = text_at(&order, &["customer", "first_name"])
        .or_else(|| text_at(&order, &["billing_address", "first_name"]));
    Ok(order_outcome(
        order_id,
        &order_ref,
        email,
        name,
        present(header, SHOPIFY_DELIVERY),
    ))
}

fn verify_woocommerce(
    secret: &WebhookSecret,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<WebhookOutcome, WebhookError> {
    let Some(signature) = present(header, WOO_SIGNATURE) else {
        return if is_woocommerce_ping(body) {
            Ok(WebhookOutcome::Ping)
        } else {
            Err(WebhookError::MissingSignature(WOO_SIGNATURE))
        };
    };
    let key = wp_specialchars_decode(secret.expose());
    check_base64_signature(&signature, key.as_bytes(), body)?;
    let topic = present(header, WOO_TOPIC)
        .ok_or_else(|| malformed("the x-wc-webhook-topic header is missing"))?;
    if topic != "order.created" && topic != "order.updated" {
        return Ok(ignored_topic("topic", &topic));
    }
    let order = json_object(body)?;
    let order_id =
        id_of(order.get("id")).ok_or_else(|| malformed("the WooCommerce order has no id"))?;
    match text_at(&order, &["status"]) {
        Some("completed") => {}
        status => {
            return Ok(WebhookOutcome::Ignored(format!(
                "order status is {}, not completed",
                clip(status.unwrap_or("missing"), MAX_TEXT_CHARS)
            )))
        }
    }
    let order_ref = text_at(&order, &["number"])
        .map(str::to_string)
        .or_else(|| id_of(order.get("number")))
        .unwrap_or_else(|| order_id.clone());
    Ok(order_outcome(
        order_id,
        &order_ref,
        text_at(&order, &["billing", "email"]),
        text_at(&order, &["billing", "first_name"]),
        present(header, WOO_DELIVERY),
    ))
}

fn verify_stripe(
    secret: &WebhookSecret,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    now_secs: i64,
) -> Result<WebhookOutcome, WebhookError> {
    let value = present(header, STRIPE_SIGNATURE)
        .ok_or(WebhookError::MissingSignature(STRIPE_SIGNATURE))?;
    let (timestamp, candidates) = parse_stripe_signature(&value)?;
    if candidates.is_empty() {
        return Err(WebhookError::BadSignature);
    }
    // The key is the whole signing secret, `whsec_` prefix included: stripe-python's
    // `WebhookSignature._compute_signature` keys HMAC with `secret.encode("utf-8")` and
    // stripe-node's `computeHMACSignature` with the secret string, neither strips the prefix.
    // The signed payload uses the timestamp as an integer, as both libraries format it.
    let mut mac = keyed_mac(secret.expose().as_bytes())?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matched = candidates
        .iter()
        .filter_map(|candidate| hex_decode(candidate))
        .any(|claimed| mac.clone().verify_slice(&claimed).is_ok());
    if !matched {
        return Err(WebhookError::BadSignature);
    }
    let age_secs = now_secs.saturating_sub(timestamp);
    if age_secs.unsigned_abs() > STRIPE_TOLERANCE_SECS.unsigned_abs() {
        return Err(WebhookError::StaleTimestamp { age_secs });
    }

    let event = json_object(body)?;
    let kind = text_at(&event, &["type"]).ok_or_else(|| malformed("the event has no type"))?;
    // Stripe sends an `evt_…` id with every event: a signed event without one is not Stripe's.
    let delivery_id = text_at(&event, &["id"])
        .map(str::to_string)
        .ok_or_else(|| malformed("the event has no id (Stripe gives every event an evt_… id)"))?;
    // Where each event type keeps the order's reference, the customer's email (first found) and
    // full name.
    type Path = &'static [&'static str];
    let (ref_path, email_paths, name_path): (Path, &[Path], Path) = match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => (
            &["client_reference_id"],
            &[&["customer_details", "email"], &["customer_email"]],
            &["customer_details", "name"],
        ),
        "invoice.paid" => (&["number"], &[&["customer_email"]], &["customer_name"]),
        other => return Ok(ignored_topic("event type", other)),
    };
    let object = event
        .get("data")
        .and_then(|data| data.get("object"))
        .filter(|object| object.is_object())
        .ok_or_else(|| malformed(format!("the {kind} event has no data.object")))?;
    // A session paid by a delayed method (a bank debit) completes unpaid: its
    // async_payment_succeeded event invites once the money arrives.
    if kind == "checkout.session.completed"
        && text_at(object, &["payment_status"]) == Some("unpaid")
    {
        return Ok(WebhookOutcome::Ignored(
            "the checkout session is not paid yet (checkout.session.async_payment_succeeded invites when it is)"
                .into(),
        ));
    }
    let order_id = id_of(object.get("id"))
        .ok_or_else(|| malformed(format!("the {kind} event's object has no id")))?;
    // The reference the customer knows (the shop's own `client_reference_id`, the invoice
    // number), or none: a Stripe object id (`cs_…`, `in_…`) means nothing to a customer, so the
    // email then speaks of "your order" alone. The order id stays the dedupe key either way.
    let order_ref = text_at(object, ref_path).unwrap_or_default();
    let email = email_paths.iter().find_map(|path| text_at(object, path));
    let name = text_at(object, name_path).and_then(|full| full.split_whitespace().next());
    Ok(order_outcome(
        order_id,
        order_ref,
        email,
        name,
        Some(delivery_id),
    ))
}

/// The timestamp and the v1 signatures of a `Stripe-Signature` header (other schemes left out).
fn parse_stripe_signature(value: &str) -> Result<(i64, Vec<&str>), WebhookError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let Some((scheme, content)) = item.trim().split_once('=') else {
            continue;
        };
        match scheme {
            "t" if timestamp.is_some() => {
                return Err(WebhookError::UnreadableSignature(
                    "the Stripe-Signature header has more than one t= timestamp",
                ))
            }
            "t" => {
                timestamp = Some(content.trim().parse::<i64>().map_err(|_| {
                    WebhookError::UnreadableSignature(
                        "the Stripe-Signature header's t= is not a Unix timestamp",
                    )
                })?)
            }
            "v1" => v1.push(content.trim()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::UnreadableSignature(
        "the Stripe-Signature header has no t= timestamp",
    ))?;
    Ok((timestamp, v1))
}

/// Whether `body` is WooCommerce's creation ping: exactly `webhook_id=<digits>`.
fn is_woocommerce_ping(body: &[u8]) -> bool {
    body.strip_prefix(b"webhook_id=")
        .is_some_and(|id| !id.is_empty() && id.len() <= 20 && id.iter().all(u8::is_ascii_digit))
}

/// The secret as WordPress's `wp_specialchars_decode($secret, ENT_QUOTES)` returns it, the key
/// WooCommerce signs with.
///
/// WordPress first strips zero padding from the numeric forms of `'` `"` `<` `>` `&`
/// (`&#0*39;`, `&#x0*27;`, `&#0*34;`, `&#x0*22;`, `&#0*60;`, `&#0*62;`, `&#0*38;`, `&#x0*26;`,
/// the `x` in either case), then replaces `&#039;` `&#x27;` `&quot;` `&#034;` `&#x22;` `&lt;`
/// `&#060;` `&gt;` `&#062;` `&amp;` `&#038;` `&#x26;` with `strtr`, in one pass (so `&amp;lt;`
/// becomes `&lt;`). No other entity is decoded (`&eacute;`, `&nbsp;` stay as written).
fn wp_specialchars_decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        match decode_entity(tail) {
            Some((ch, len)) => {
                out.push(ch);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character an entity at the start of `text` (which starts with `&`) stands for, and the
/// entity's length, when WordPress decodes it.
fn decode_entity(text: &str) -> Option<(char, usize)> {
    let end = text.find(';')?;
    let name = text.get(1..end)?;
    let ch = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        _ => {
            let number = name.strip_prefix('#')?;
            if let Some(hex) = number
                .strip_prefix('x')
                .or_else(|| number.strip_prefix('X'))
            {
                match hex.trim_start_matches('0') {
                    "27" => '\'',
                    "22" => '"',
                    "26" => '&',
                    _ => return None,
                }
            } else {
                match number.trim_start_matches('0') {
                    "39" => '\'',
                    "34" => '"',
                    "60" => '<',
                    "62" => '>',
                    "38" => '&',
                    _ => return None,
                }
            }
        }
    };
    Some((ch, end + 1))
}

fn keyed_mac(key: &[u8]) -> Result<HmacSha256, WebhookError> {
    // HMAC accepts keys of any length; the error cannot happen, and is not a panic if it did.
    <HmacSha256 as Mac>::new_from_slice(key).map_err(|_| WebhookError::BadSignature)
}

/// Checks a base64 HMAC-SHA256 of `body` under `key`, in constant time.
fn check_base64_signature(signature: &str, key: &[u8], body: &[u8]) -> Result<(), WebhookError> {
    let claimed = STANDARD
        .decode(signature)
        .map_err(|_| WebhookError::BadSignature)?;
    let mut mac = keyed_mac(key)?;
    mac.update(body);
    mac.verify_slice(&claimed)
        .map_err(|_| WebhookError::BadSignature)
}

/// The bytes a 64-digit hex string spells (either case), or None.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if text.len() != SHA256_HEX_LEN {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| match pair {
            [high, low] => Some((digit(*high)? << 4) | digit(*low)?),
            _ => None,
        })
        .collect()
}

/// A header's trimmed value, when present and not empty.
fn present(header: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    header(name)
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

/// The body as a JSON object.
fn json_object(body: &[u8]) -> Result<Value, WebhookError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the body is not JSON ({e})")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(malformed("the body is JSON but not an object"))
    }
}

/// The non-empty text at `path`, trimmed.
fn text_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |at, key| at.get(key))?
        .as_str()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// An id given as an integer or as a string, written as text.
fn id_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => n
            .as_u64()
            .map(|n| n.to_string())
            .or_else(|| n.as_i64().map(|n| n.to_string())),
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty() && s.len() <= MAX_ORDER_ID_BYTES && !s.chars().any(char::is_control))
                .then(|| s.to_string())
        }
        _ => None,
    }
}

fn ignored_topic(what: &str, topic: &str) -> WebhookOutcome {
    WebhookOutcome::Ignored(format!(
        "{what} {} does not invite",
        clip(topic, MAX_TEXT_CHARS)
    ))
}

fn order_outcome(
    order_id: String,
    order_ref: &str,
    email: Option<&str>,
    name: Option<&str>,
    delivery_id: Option<String>,
) -> WebhookOutcome {
    WebhookOutcome::Order(OrderEvent {
        order_id,
        order_ref: clip(order_ref, MAX_TEXT_CHARS),
        email: email.map(str::to_string),
        name: name.map(|name| clip(name, MAX_TEXT_CHARS)),
        delivery_id: delivery_id.map(|id| clip(&id, MAX_DELIVERY_CHARS)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::new(s).unwrap()
    }

    fn hmac_bytes(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn b64_hmac(key: &str, body: &[u8]) -> String {
        STANDARD.encode(hmac_bytes(key.as_bytes(), &[body]))
    }

    fn stripe_v1(key: &str, t: i64, body: &[u8]) -> String {
        hex(&hmac_bytes(
            key.as_bytes(),
            &[t.to_string().as_bytes(), b".", body],
        ))
    }

    fn run(
        platform: Platform,
        key: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_string())
        };
        verify_and_parse(platform, &secret(key), &lookup, body, NOW)
    }

    fn order(outcome: Result<WebhookOutcome, WebhookError>) -> OrderEvent {
        match outcome {
            Ok(WebhookOutcome::Order(order)) => order,
            other => panic!("expected an order, got {other:?}"),
        }
    }

    const SHOPIFY_KEY: &str = "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";
    const SHOPIFY_BODY: &[u8] = br##"{"id":820982911946154508,"email":"jon@example.com","name":"#9999","order_number":1234,"customer":{"email":"john@example.com","first_name":"John"}}"##;

    fn shopify(
        key: &str,
        sig: Option<&str>,
        topic: &str,
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        let mut headers = vec![
            ("X-Shopify-Topic", topic),
            (
                "X-Shopify-Webhook-Id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ),
        ];
        if let Some(sig) = sig {
            headers.push(("X-Shopify-Hmac-Sha256", sig));
        }
        run(Platform::Shopify, key, &headers, body)
    }

    #[test]
    fn shopify_accepts_its_signature_and_reads_the_order() {
        let sig = b64_hmac(SHOPIFY_KEY, SHOPIFY_BODY);
        let got = order(shopify(
            SHOPIFY_KEY,
            Some(&sig),
            "orders/create",
            SHOPIFY_BODY,
        ));
        assert_eq!(
            got,
            OrderEvent {
                order_id: "820982911946154508".into(),
                order_ref: "#9999".into(),
                email: Some("jon@example.com".into()),
                name: Some("John".into()),
                delivery_id: Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".into()),
            }
        );
        assert!(matches!(
            shopify(SHOPIFY_KEY, Some(&sig), "orders/fulfilled", SHOPIFY_BODY),
            Ok(WebhookOutcome::Order(_))
        ));
    }

    #[test]
    fn shopify_refuses_a_wrong_secret_a_tampered_body_and_a_missing_header() {
        let sig = b64_hmac(SHOPIFY_KEY, SHOPIFY_BODY);
        let wrong = b64_hmac("shpss_another", SHOPIFY_BODY);
        assert_eq!(
            shopify(SHOPIFY_KEY, Some(&wrong), "orders/create", SHOPIFY_BODY),
            Err(WebhookError::BadSignature)
        );
        let tampered = SHOPIFY_BODY
            .to_vec()
            .into_iter()
            .map(|b| if b == b'9' { b'8' } else { b })
            .collect::<Vec<_>>();
        assert_eq!(
            shopify(SHOPIFY_KEY, Some(&sig), "orders/create", &tampered),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            shopify(SHOPIFY_KEY, None, "orders/create", SHOPIFY_BODY),
            Err(WebhookError::MissingSignature("x-shopify-hmac-sha256"))
        );
        assert_eq!(
            shopify(
                SHOPIFY_KEY,
                Some("not base64!"),
                "orders/create",
                SHOPIFY_BODY
            ),
            Err(WebhookError::BadSignature)
        );
        // The hex form of the right MAC is not Shopify's encoding.
        let hex_sig = hex(&hmac_bytes(SHOPIFY_KEY.as_bytes(), &[SHOPIFY_BODY]));
        assert_eq!(
            shopify(SHOPIFY_KEY, Some(&hex_sig), "orders/create", SHOPIFY_BODY),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn shopify_ignores_topics_that_do_not_invite_and_falls_back_for_ref_email_and_name() {
        let sig = b64_hmac(SHOPIFY_KEY, SHOPIFY_BODY);
        assert_eq!(
            shopify(SHOPIFY_KEY, Some(&sig), "orders/paid", SHOPIFY_BODY),
            Ok(WebhookOutcome::Ignored(
                "topic orders/paid does not invite".into()
            ))
        );
        let body = br#"{"id":"450789469","order_number":1001,"contact_email":"ana@example.com","billing_address":{"first_name":"Ana"}}"#;
        let got = order(shopify(
            SHOPIFY_KEY,
            Some(&b64_hmac(SHOPIFY_KEY, body)),
            "orders/create",
            body,
        ));
        assert_eq!(
            (got.order_id.as_str(), got.order_ref.as_str()),
            ("450789469", "1001")
        );
        assert_eq!(got.email.as_deref(), Some("ana@example.com"));
        assert_eq!(got.name.as_deref(), Some("Ana"));
        let body = br#"{"id":7,"email":"","customer":{"email":"c@example.com","first_name":" "}}"#;
        let got = order(shopify(
            SHOPIFY_KEY,
            Some(&b64_hmac(SHOPIFY_KEY, body)),
            "orders/create",
            body,
        ));
        assert_eq!(got.order_ref, "7");
        assert_eq!(got.email.as_deref(), Some("c@example.com"));
        assert_eq!(got.name, None);
    }

    #[test]
    fn a_signed_body_that_is_not_an_order_is_malformed_and_a_missing_email_is_not_an_error() {
        for body in [
            &b"[1,2]"[..],
            b"not json",
            br#"{"email":"a@b.co"}"#,
            br#"{"id":1.5}"#,
        ] {
            let err = shopify(
                SHOPIFY_KEY,
                Some(&b64_hmac(SHOPIFY_KEY, body)),
                "orders/create",
                body,
            )
            .unwrap_err();
            assert_eq!((err.status(), err.code()), (400, "malformed"), "{err}");
        }
        let body = br##"{"id":5,"name":"#5"}"##;
        let got = order(shopify(
            SHOPIFY_KEY,
            Some(&b64_hmac(SHOPIFY_KEY, body)),
            "orders/create",
            body,
        ));
        assert_eq!((got.email, got.name), (None, None));
    }

    #[test]
    fn long_refs_and_names_are_clipped_to_64_characters() {
        let body = format!(
            r#"{{"id":1,"name":"{}","customer":{{"first_name":"{}"}}}}"#,
            "R".repeat(100),
            "Ñ".repeat(100)
        );
        let got = order(shopify(
            SHOPIFY_KEY,
            Some(&b64_hmac(SHOPIFY_KEY, body.as_bytes())),
            "orders/create",
            body.as_bytes(),
        ));
        assert_eq!(got.order_ref.chars().count(), 65, "64 and an ellipsis");
        assert!(got.order_ref.starts_with(&"R".repeat(64)));
        assert_eq!(got.name.unwrap().chars().filter(|c| *c == 'Ñ').count(), 64);
    }

    const WOO_BODY: &[u8] = br#"{"id":727,"number":"727","status":"completed","billing":{"first_name":"John","email":"john.doe@example.com"}}"#;

    fn woo(
        key: &str,
        sig: Option<&str>,
        topic: &str,
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        let mut headers = vec![
            ("X-WC-Webhook-Topic", topic),
            ("X-WC-Webhook-Delivery-ID", "0c8e6d1ad9c5b0f2"),
        ];
        if let Some(sig) = sig {
            headers.push(("X-WC-Webhook-Signature", sig));
        }
        run(Platform::Woocommerce, key, &headers, body)
    }

    #[test]
    fn woocommerce_accepts_its_signature_and_refuses_wrong_secret_tampered_body_and_missing_header()
    {
        let key = "ck_9f8e7d6c5b4a";
        let sig = b64_hmac(key, WOO_BODY);
        let got = order(woo(key, Some(&sig), "order.updated", WOO_BODY));
        assert_eq!(
            got,
            OrderEvent {
                order_id: "727".into(),
                order_ref: "727".into(),
                email: Some("john.doe@example.com".into()),
                name: Some("John".into()),
                delivery_id: Some("0c8e6d1ad9c5b0f2".into()),
            }
        );
        assert_eq!(
            woo("ck_other", Some(&sig), "order.updated", WOO_BODY),
            Err(WebhookError::BadSignature)
        );
        let mut tampered = WOO_BODY.to_vec();
        tampered[7] = b'8';
        assert_eq!(
            woo(key, Some(&sig), "order.updated", &tampered),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            woo(key, None, "order.updated", WOO_BODY),
            Err(WebhookError::MissingSignature("x-wc-webhook-signature"))
        );
    }

    #[test]
    fn woocommerce_signs_with_the_secret_as_wordpress_decodes_it() {
        let sig = b64_hmac("a&b", WOO_BODY);
        assert!(matches!(
            woo("a&amp;b", Some(&sig), "order.created", WOO_BODY),
            Ok(WebhookOutcome::Order(_))
        ));
        let raw = b64_hmac("a&amp;b", WOO_BODY);
        assert_eq!(
            woo("a&amp;b", Some(&raw), "order.created", WOO_BODY),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn wp_specialchars_decode_decodes_what_wordpress_decodes_and_nothing_else() {
        for (stored, decoded) in [
            ("a&amp;b", "a&b"),
            ("&lt;&gt;&quot;&#039;&#39;&#x27;", "<>\"'''"),
            ("&#0039;&#X27;&#x027;&#34;&#x22;&#034;", "'''\"\"\""),
            ("&#60;&#062;&#38;&#x26;&#X0026;", "<>&&&"),
            ("&amp;lt;", "&lt;"),
            ("&&amp;;", "&&;"),
            (
                "&eacute;&nbsp;&#40;&#x41;&AMP;&amp",
                "&eacute;&nbsp;&#40;&#x41;&AMP;&amp",
            ),
            ("ñ&amp;€", "ñ&€"),
            ("no entities", "no entities"),
        ] {
            assert_eq!(wp_specialchars_decode(stored), decoded, "{stored}");
        }
    }

    #[test]
    fn woocommerce_ping_is_answered_only_in_its_exact_shape() {
        assert_eq!(
            woo("k", None, "", b"webhook_id=42"),
            Ok(WebhookOutcome::Ping)
        );
        for body in [
            &b"webhook_id="[..],
            b"webhook_id=42&x=1",
            b"webhook_id=4a",
            b" webhook_id=42",
            b"{}",
            b"",
        ] {
            assert_eq!(
                woo("k", None, "", body),
                Err(WebhookError::MissingSignature("x-wc-webhook-signature")),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn woocommerce_ignores_orders_not_completed_and_other_topics() {
        let key = "k";
        let body =
            br#"{"id":728,"number":"728","status":"processing","billing":{"email":"a@b.co"}}"#;
        assert_eq!(
            woo(key, Some(&b64_hmac(key, body)), "order.created", body),
            Ok(WebhookOutcome::Ignored(
                "order status is processing, not completed".into()
            ))
        );
        assert_eq!(
            woo(
                key,
                Some(&b64_hmac(key, WOO_BODY)),
                "order.deleted",
                WOO_BODY
            ),
            Ok(WebhookOutcome::Ignored(
                "topic order.deleted does not invite".into()
            ))
        );
        let body = br#"{"id":729}"#;
        assert_eq!(
            woo(key, Some(&b64_hmac(key, body)), "order.updated", body),
            Ok(WebhookOutcome::Ignored(
                "order status is missing, not completed".into()
            ))
        );
    }

    const STRIPE_KEY: &str = "whsec_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH";
    #[test]
    fn an_unpaid_checkout_waits_for_its_async_payment_event() {
        let secret = WebhookSecret::new("whsec_unpaid").unwrap();
        let now = 1_700_000_000;
        let sign = |body: &[u8]| {
            let mut mac =
                <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes()).unwrap();
            mac.update(format!("{now}.").as_bytes());
            mac.update(body);
            let hex: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("t={now},v1={hex}")
        };
        let unpaid = br#"{"id":"evt_u","type":"checkout.session.completed","data":{"object":{"id":"cs_u","payment_status":"unpaid","customer_details":{"email":"u@example.com"}}}}"#;
        let paid = br#"{"id":"evt_p","type":"checkout.session.async_payment_succeeded","data":{"object":{"id":"cs_u","payment_status":"paid","customer_details":{"email":"u@example.com"}}}}"#;
        for (body, invites) in [(&unpaid[..], false), (&paid[..], true)] {
            let header = sign(body);
            let outcome = verify_and_parse(
                Platform::Stripe,
                &secret,
                &|name: &str| (name == "stripe-signature").then(|| header.clone()),
                body,
                now,
            )
            .unwrap();
            match outcome {
                WebhookOutcome::Order(order) => {
                    assert!(invites);
                    assert_eq!(order.order_id, "cs_u");
                }
                WebhookOutcome::Ignored(why) => {
                    assert!(!invites);
                    assert!(why.contains("not paid yet"), "{why}");
                }
                WebhookOutcome::Ping => panic!("not a ping"),
            }
        }
    }

    const CHECKOUT: &[u8] = br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"checkout.session.completed","data":{"object":{"id":"cs_test_a1b2","object":"checkout.session","client_reference_id":"order-1001","customer_details":{"email":"jenny.rosen@example.com","name":"Jenny Rosen"},"customer_email":null}}}"#;

    fn stripe(
        key: &str,
        header: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        let headers: Vec<(&str, &str)> = header
            .map(|h| ("Stripe-Signature", h))
            .into_iter()
            .collect();
        run(Platform::Stripe, key, &headers, body)
    }

    #[test]
    fn stripe_accepts_its_signature_keyed_with_the_whole_secret_and_reads_the_session() {
        let header = format!("t={NOW},v1={}", stripe_v1(STRIPE_KEY, NOW, CHECKOUT));
        let got = order(stripe(STRIPE_KEY, Some(&header), CHECKOUT));
        assert_eq!(
            got,
            OrderEvent {
                order_id: "cs_test_a1b2".into(),
                order_ref: "order-1001".into(),
                email: Some("jenny.rosen@example.com".into()),
                name: Some("Jenny".into()),
                delivery_id: Some("evt_1NG8Du2eZvKYlo2CUI79vXWy".into()),
            }
        );
        let without_prefix = STRIPE_KEY.trim_start_matches("whsec_");
        let header = format!("t={NOW},v1={}", stripe_v1(without_prefix, NOW, CHECKOUT));
        assert_eq!(
            stripe(STRIPE_KEY, Some(&header), CHECKOUT),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn stripe_reads_a_paid_invoice_and_ignores_other_events() {
        let body = br#"{"id":"evt_2","type":"invoice.paid","data":{"object":{"id":"in_1","number":"ABCD-0001","customer_email":"j@example.com","customer_name":"  Jenny  Rosen "}}}"#;
        let header = format!("t={NOW},v1={}", stripe_v1(STRIPE_KEY, NOW, body));
        let got = order(stripe(STRIPE_KEY, Some(&header), body));
        assert_eq!(
            (
                got.order_id.as_str(),
                got.order_ref.as_str(),
                got.email.as_deref(),
                got.name.as_deref()
            ),
            ("in_1", "ABCD-0001", Some("j@example.com"), Some("Jenny"))
        );
        let body = br#"{"id":"evt_3","type":"checkout.session.completed","data":{"object":{"id":"cs_2","customer_email":"k@example.com","customer_details":{"email":null}}}}"#;
        let header = format!("t={NOW},v1={}", stripe_v1(STRIPE_KEY, NOW, body));
        let got = order(stripe(STRIPE_KEY, Some(&header), body));
        assert_eq!(
            (
                got.order_id.as_str(),
                got.order_ref.as_str(),
                got.email.as_deref(),
                got.name
            ),
            ("cs_2", "", Some("k@example.com"), None)
        );
        let body = br#"{"id":"evt_6","type":"invoice.paid","data":{"object":{"id":"in_2","customer_email":"j@example.com"}}}"#;
        let header = format!("t={NOW},v1={}", stripe_v1(STRIPE_KEY, NOW, body));
        let got = order(stripe(STRIPE_KEY, Some(&header), body));
        assert_eq!(
            (got.order_id.as_str(), got.order_ref.as_str()),
            ("in_2", "")
        );
        let body =
            br#"{"id":"evt_4","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}"#;
        let header = format!("t={NOW},v1={}", stripe_v1(STRIPE_KEY, NOW, body));
        assert_eq!(
            stripe(STRIPE_KEY, Some(&header), body),
            Ok(WebhookOutcome::Ignored(
                "event type payment_intent.succeeded does not invite".into()
            ))
        );
        let body = br#"{"id":"evt_5","type":"invoice.paid","data":{}}"#;
        let header = format!("t={NOW},v1={}", stripe_v1(STRIPE_KEY, NOW, body));
        assert_eq!(
            stripe(STRIPE_KEY, Some(&header), body).unwrap_err().code(),
            "malformed"
        );
        let body = br#"{"type":"checkout.session.completed","data":{"object":{"id":"cs_3","client_reference_id":"order-7","customer_email":"k@example.com"}}}"#;
        let header = format!("t={NOW},v1={}", stripe_v1(STRIPE_KEY, NOW, body));
        let refused = stripe(STRIPE_KEY, Some(&header), body).unwrap_err();
        assert_eq!((refused.code(), refused.status()), ("malformed", 400));
        assert!(refused.to_string().contains("no id"), "{refused}");
    }

    #[test]
    fn stripe_accepts_one_valid_v1_among_several_and_refuses_v0_only() {
        let good = stripe_v1(STRIPE_KEY, NOW, CHECKOUT);
        let other = stripe_v1("whsec_old", NOW, CHECKOUT);
        for header in [
            format!("t={NOW},v1={other},v1={good}"),
            format!("t={NOW},v1={good},v1={other},v0={other}"),
            format!("v1=zz,t={NOW}, v1={}", good.to_uppercase()),
        ] {
            assert!(
                matches!(
                    stripe(STRIPE_KEY, Some(&header), CHECKOUT),
                    Ok(WebhookOutcome::Order(_))
                ),
                "{header}"
            );
        }
        for header in [
            format!("t={NOW},v0={good}"),
            format!("t={NOW},v1={other},v1={other}"),
            format!("t={NOW}"),
        ] {
            assert_eq!(
                stripe(STRIPE_KEY, Some(&header), CHECKOUT),
                Err(WebhookError::BadSignature),
                "{header}"
            );
        }
    }

    #[test]
    fn stripe_refuses_timestamps_more_than_300_s_away_and_accepts_exactly_300() {
        for (offset, ok) in [(-301, false), (301, false), (-300, true), (300, true)] {
            let t = NOW + offset;
            let header = format!("t={t},v1={}", stripe_v1(STRIPE_KEY, t, CHECKOUT));
            let got = stripe(STRIPE_KEY, Some(&header), CHECKOUT);
            if ok {
                assert!(
                    matches!(got, Ok(WebhookOutcome::Order(_))),
                    "{offset}: {got:?}"
                );
            } else {
                assert_eq!(
                    got,
                    Err(WebhookError::StaleTimestamp { age_secs: -offset }),
                    "{offset}"
                );
            }
        }
        // The timestamp is signed: moving it into the window breaks the signature.
        let old = NOW - 3_600;
        let header = format!("t={NOW},v1={}", stripe_v1(STRIPE_KEY, old, CHECKOUT));
        assert_eq!(
            stripe(STRIPE_KEY, Some(&header), CHECKOUT),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn stripe_refuses_a_missing_or_unreadable_header() {
        assert_eq!(
            stripe(STRIPE_KEY, None, CHECKOUT),
            Err(WebhookError::MissingSignature("stripe-signature"))
        );
        assert_eq!(
            stripe(STRIPE_KEY, Some("  "), CHECKOUT),
            Err(WebhookError::MissingSignature("stripe-signature"))
        );
        let good = stripe_v1(STRIPE_KEY, NOW, CHECKOUT);
        for header in [
            format!("v1={good}"),
            format!("t=yesterday,v1={good}"),
            format!("t={NOW},t={NOW},v1={good}"),
            "garbage".to_string(),
        ] {
            assert_eq!(
                stripe(STRIPE_KEY, Some(&header), CHECKOUT)
                    .unwrap_err()
                    .code(),
                "unreadable_signature",
                "{header}"
            );
        }
        let mut tampered = CHECKOUT.to_vec();
        tampered[10] ^= 1;
        let header = format!("t={NOW},v1={good}");
        assert_eq!(
            stripe(STRIPE_KEY, Some(&header), &tampered),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn errors_carry_their_status_and_code_and_never_show_the_secret_or_the_expected_signature() {
        let good = stripe_v1(STRIPE_KEY, NOW, CHECKOUT);
        let b64_good = b64_hmac(SHOPIFY_KEY, SHOPIFY_BODY);
        let errors = [
            WebhookError::MissingSignature(STRIPE_SIGNATURE),
            WebhookError::BadSignature,
            WebhookError::StaleTimestamp { age_secs: 301 },
            WebhookError::StaleTimestamp { age_secs: -301 },
            WebhookError::StaleTimestamp { age_secs: i64::MIN },
            WebhookError::UnreadableSignature("x"),
            malformed("x"),
        ];
        let expected = [
            (401, "missing_signature"),
            (401, "bad_signature"),
            (401, "stale_timestamp"),
            (401, "stale_timestamp"),
            (401, "stale_timestamp"),
            (401, "unreadable_signature"),
            (400, "malformed"),
        ];
        for (err, want) in errors.iter().zip(expected) {
            assert_eq!((err.status(), err.code()), want);
        }
        assert!(errors[2].to_string().contains("301 s old"));
        assert!(errors[3].to_string().contains("301 s in the future"));
        let mut shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        for header in [
            format!("t={NOW},v1={}", "0".repeat(64)),
            format!("t={},v1={good}", NOW - 999),
            "t=x".into(),
        ] {
            shown.push(
                stripe(STRIPE_KEY, Some(&header), CHECKOUT)
                    .unwrap_err()
                    .to_string(),
            );
        }
        shown.push(
            shopify("wrong", Some(&b64_good), "orders/create", SHOPIFY_BODY)
                .unwrap_err()
                .to_string(),
        );
        for text in shown {
            for secret in [
                STRIPE_KEY,
                "5WbX5kEWLlfz",
                SHOPIFY_KEY,
                "wrong",
                good.as_str(),
                b64_good.as_str(),
            ] {
                assert!(!text.contains(secret), "{text}");
            }
        }
    }
}
