//! Post-order surveys: store connections (a platform's order webhook feeding a survey), the
//! invitation each order gets, and the decision of whether and when it is sent.
//!
//! One order gives at most one invitation, whatever number of deliveries or topics bring it:
//! the invitation's key is its connection and order, created only if absent. Only the request
//! that created it goes on to claim the respondent's frequency cap and schedule it; a retried
//! delivery finds it and repeats those two idempotent steps, so a crash between them is mended
//! by the platform's own retry.

use crate::mailbox::{sendable_address, AddressError, Mailbox};
use crate::response::{check_respondent, suppression_id};
use crate::survey::{check_slug, clip, Survey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest delay between an order and its invitation, in minutes (60 days).
pub const MAX_DELAY_MINUTES: u32 = 60 * 24 * 60;
/// Longest store name, in characters.
pub const MAX_STORE_NAME_CHARS: usize = 80;
/// Sending attempts after which an invitation is marked failed.
pub const MAX_SEND_ATTEMPTS: u32 = 3;
/// How long a sender's claim on an invitation lasts before another attempt may take it over.
pub const SEND_LEASE_MS: i64 = 120_000;

/// The e-commerce platform a connection receives webhooks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Shopify (`X-Shopify-Hmac-Sha256`).
    Shopify,
    /// WooCommerce (`X-WC-Webhook-Signature`).
    Woocommerce,
    /// Stripe (`Stripe-Signature`).
    Stripe,
}

impl Platform {
    /// Every platform, in display order.
    pub const ALL: [Platform; 3] = [Platform::Shopify, Platform::Woocommerce, Platform::Stripe];

    /// The platform's name in URLs and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Shopify => "shopify",
            Platform::Woocommerce => "woocommerce",
            Platform::Stripe => "stripe",
        }
    }

    /// The platform named `name` in a URL or configuration.
    pub fn parse(name: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// A webhook signing secret: never printed, logged or serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Wraps a secret, refusing an empty or implausibly long one.
    pub fn new(secret: impl Into<String>) -> Result<WebhookSecret, InvalidConnection> {
        let secret = secret.into();
        if secret.trim().is_empty() || secret.len() > 512 {
            return Err(InvalidConnection(
                "the signing secret must be 1 to 512 bytes (copy it from the platform's webhook settings)"
                    .into(),
            ));
        }
        Ok(WebhookSecret(secret))
    }

    /// The secret itself, for computing signatures and for storage.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// Why a connection cannot be saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConnection(pub String);

/// A store's order webhook feeding one survey touchpoint (its secret is kept apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Slug naming the connection; the webhook URL ends with it.
    pub id: String,
    /// Where the webhooks come from.
    pub platform: Platform,
    /// The survey orders are invited to.
    pub survey: String,
    /// The touchpoint the answers count under.
    pub touchpoint: String,
    /// Minutes between the order and its invitation (0: as soon as possible).
    #[serde(default, deserialize_with = "delay_minutes")]
    pub delay_minutes: u32,
    /// The From address, such as `Tienda Sol <hola@tiendasol.example>` (a verified SES identity).
    pub sender: String,
    /// The store's name, shown in the email.
    pub store_name: String,
}

impl Connection {
    /// The connection as saved: checked ([`Connection::validate`]) and its sender in the form
    /// SES sends from (a domain that is not ASCII in punycode; the display name unchanged).
    pub fn normalized(mut self) -> Result<Connection, InvalidConnection> {
        self.validate()?;
        self.sender = sendable_sender(&self.sender)?.to_string();
        Ok(self)
    }

    /// Checks the id, the touchpoint's slug, the delay, the sender and the store name.
    pub fn validate(&self) -> Result<(), InvalidConnection> {
        check_slug("connection id", &self.id).map_err(InvalidConnection)?;
        check_slug("survey id", &self.survey).map_err(InvalidConnection)?;
        check_slug("touchpoint", &self.touchpoint).map_err(InvalidConnection)?;
        if self.delay_minutes > MAX_DELAY_MINUTES {
            return Err(InvalidConnection(delay_minutes_rule()));
        }
        sendable_sender(&self.sender)?;
        let chars = self.store_name.chars().count();
        if self.store_name.trim().is_empty()
            || chars > MAX_STORE_NAME_CHARS
            || self.store_name.chars().any(char::is_control)
        {
            return Err(InvalidConnection(format!(
                "store_name must be 1 to {MAX_STORE_NAME_CHARS} printable characters"
            )));
        }
        Ok(())
    }
}

/// What `delay_minutes` may be, in words.
fn delay_minutes_rule() -> String {
    format!(
        "delay_minutes must be a whole number of minutes from 0 to {MAX_DELAY_MINUTES} (60 days)"
    )
}

/// `delay_minutes` read from any number, refused in words (not serde's "expected u32") when it
/// is negative, fractional, too large or not a number.
fn delay_minutes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n <= MAX_DELAY_MINUTES)
        .ok_or_else(|| serde::de::Error::custom(delay_minutes_rule()))
}

/// The address of a sender (`name@domain`, `Name <name@domain>` or `"Quoted, Name" <name@domain>`)
/// as written, if the sender reads as one mailbox (see [`Mailbox::parse`]).
pub fn sender_address(sender: &str) -> Option<&str> {
    let sender = sender.trim();
    Mailbox::parse(sender).ok()?;
    match sender
        .strip_suffix('>')
        .and_then(|inner| inner.rfind('<').and_then(|open| inner.get(open + 1..)))
    {
        Some(address) => Some(address.trim()),
        None => Some(sender),
    }
}

/// The sender as SES can send from it, or why not (in words for the API's 422).
fn sendable_sender(sender: &str) -> Result<Mailbox, InvalidConnection> {
    Mailbox::parse(sender).map_err(|e| {
        let how = match e {
            AddressError::NonAsciiLocalPart => "",
            _ => ": use name@domain, Name <name@domain> or \"Name, Inc.\" <name@domain>",
        };
        InvalidConnection(format!("sender '{}' {e}{how}", clip(sender, 80)))
    })
}

/// An order a webhook announced, as the platform's payload gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    /// The platform's id of the order (the dedupe key within a connection).
    pub order_id: String,
    /// What the customer knows the order by (`#1001`), for the email.
    pub order_ref: String,
    /// The customer's email address, when the order has one.
    pub email: Option<String>,
    /// The customer's first name, when known.
    pub name: Option<String>,
    /// The delivery's own id (`X-Shopify-Webhook-Id`, the Stripe event id...), for the logs.
    pub delivery_id: Option<String>,
}

/// Where an invitation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    /// Waiting for its due time.
    Scheduled,
    /// A sender is sending it now (until its lease runs out).
    Sending,
    /// Sent: the email left through the mailer.
    Sent,
    /// Not sent, on purpose (the reason says why: unsubscribed, frequency cap).
    Skipped,
    /// Not sent after every attempt (the reason says why).
    Failed,
}

impl InvitationStatus {
    /// The status as listed.
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Scheduled => "scheduled",
            InvitationStatus::Sending => "sending",
            InvitationStatus::Sent => "sent",
            InvitationStatus::Skipped => "skipped",
            InvitationStatus::Failed => "failed",
        }
    }
}

/// The survey email one order gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// The connection the order came through.
    pub connection: String,
    /// The platform's order id.
    pub order: String,
    /// What the customer knows the order by.
    pub order_ref: String,
    /// The customer's address (the respondent id of the survey links).
    pub email: String,
    /// The customer's first name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The survey and touchpoint the email asks about.
    pub survey: String,
    /// The touchpoint slug.
    pub touchpoint: String,
    /// When the order arrived, Unix milliseconds.
    pub created_at: i64,
    /// When the email is due, Unix milliseconds.
    pub due_at: i64,
    /// Where it is.
    pub status: InvitationStatus,
    /// Why it was skipped or failed (or why the last attempt failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Sending attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Until when the current sender's claim holds (status `sending`), Unix milliseconds.
    #[serde(default)]
    pub lease_until: i64,
    /// When it was sent, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
    /// The mailer's message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl Invitation {
    /// The send the survey links belong to: the order (one answer per order), in at most 64
    /// bytes (a long order id is shortened with a digest of it).
    pub fn send(&self) -> String {
        order_send(&self.connection, &self.order)
    }

    /// A name unique to the invitation, safe in URLs and in schedule names (letters, digits,
    /// `-`, `_`; at most 64 bytes).
    pub fn schedule_name(&self) -> String {
        let hex = order_digest(&self.connection, &self.order, 12);
        format!("sondeo-{}-{hex}", clip_slug(&self.connection, 32))
    }

    /// The invitation as listed by the API: the address masked.
    pub fn listed(&self) -> serde_json::Value {
        serde_json::json!({
            "connection": self.connection,
            "order": self.order,
            "order_ref": self.order_ref,
            "email": mask_email(&self.email),
            "survey": self.survey,
            "touchpoint": self.touchpoint,
            "created_at": self.created_at,
            "due_at": self.due_at,
            "status": self.status.as_str(),
            "reason": self.reason,
            "attempts": self.attempts,
            "sent_at": self.sent_at,
        })
    }
}

/// The order invitations are listed in: newest first, then by connection and order (a total
/// order, since a connection's order has one invitation).
pub fn listing_order(a: &Invitation, b: &Invitation) -> std::cmp::Ordering {
    b.created_at
        .cmp(&a.created_at)
        .then_with(|| a.connection.cmp(&b.connection))
        .then_with(|| a.order.cmp(&b.order))
}

/// Where a list of invitations stopped: the last invitation listed. The next page holds the
/// invitations after it in [`listing_order`], so paging never skips or repeats one (an
/// invitation created meanwhile is newer and shows on a fresh first page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationCursor {
    /// The last listed invitation's creation time, Unix milliseconds.
    pub created_at: i64,
    /// Its connection.
    pub connection: String,
    /// Its order.
    pub order: String,
}

/// A cursor that was not made by [`InvitationCursor::encode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cursor is not one this API gave out: pass next_cursor from the previous page as it is"
)]
pub struct InvalidCursor;

impl InvitationCursor {
    /// The cursor after `invitation`.
    pub fn after(invitation: &Invitation) -> InvitationCursor {
        InvitationCursor {
            created_at: invitation.created_at,
            connection: invitation.connection.clone(),
            order: invitation.order.clone(),
        }
    }

    /// Whether `invitation` comes after the cursor in [`listing_order`].
    pub fn precedes(&self, invitation: &Invitation) -> bool {
        invitation
            .created_at
            .cmp(&self.created_at)
            .reverse()
            .then_with(|| invitation.connection.as_str().cmp(&self.connection))
            .then_with(|| invitation.order.as_str().cmp(&self.order))
            .is_gt()
    }

    /// The cursor as an opaque URL-safe token.
    pub fn encode(&self) -> String {
        let json = serde_json::json!([self.created_at, self.connection, self.order]).to_string();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a token made by [`InvitationCursor::encode`].
    pub fn decode(token: &str) -> Result<InvitationCursor, InvalidCursor> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| InvalidCursor)?;
        let (created_at, connection, order): (i64, String, String) =
            serde_json::from_slice(&bytes).map_err(|_| InvalidCursor)?;
        Ok(InvitationCursor {
            created_at,
            connection,
            order,
        })
    }
}

/// The first `bytes` bytes of the SHA-256 of a connection's order, in hex.
fn order_digest(connection: &str, order: &str, bytes: usize) -> String {
    let digest = Sha256::digest(format!("{connection}\n{order}").as_bytes());
    digest[..bytes].iter().map(|b| format!("{b:02x}")).collect()
}

/// The send of an order's answers: `order-<id>`, shortened with a digest when long.
pub fn order_send(connection: &str, order: &str) -> String {
    let send = format!("order-{order}");
    if send.len() <= 40 && send.chars().all(|c| !c.is_control()) {
        return send;
    }
    let hex = order_digest(connection, order, 8);
    let head: String = order
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(24)
        .collect();
    format!("order-{head}-{hex}")
}

fn clip_slug(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(max)
        .collect()
}

/// An address as shown in lists and logs: `a***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// What became of an order a webhook announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A new invitation, due at its time.
    Scheduled(Invitation),
    /// A new invitation, skipped at once (its reason says why).
    Skipped(Invitation),
    /// The order already has an invitation (a retried or repeated delivery); nothing new.
    Duplicate(Invitation),
    /// The order has no usable email address: no invitation.
    NoEmail(String),
}

/// Builds the invitation an order gets under `connection` (skipped at once, with the reason,
/// for an address SES cannot send to; a domain that is not ASCII is put in punycode), or says
/// why the order has none.
pub fn new_invitation(
    connection: &Connection,
    order: &OrderEvent,
    now_ms: i64,
) -> Result<Invitation, String> {
    let email = order
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| "the order has no email address".to_string())?;
    if check_respondent(email).is_err() {
        return Err("the order's email address is not valid".into());
    }
    // An address SES cannot send to (SMTPUTF8 local part, a domain IDNA refuses) still gets its
    // invitation, skipped with the reason, so the store sees the order arrived.
    let (email, skipped) = match sendable_address(email) {
        Ok(address) => (address, None),
        Err(AddressError::NotAnAddress) => {
            return Err("the order's email address is not valid".into())
        }
        Err(why) => (email.to_string(), Some(format!("the email address {why}"))),
    };
    Ok(Invitation {
        connection: connection.id.clone(),
        order: order.order_id.clone(),
        order_ref: clip(&order.order_ref, 64).to_string(),
        email,
        name: order
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty() && !n.chars().any(char::is_control))
            .map(|n| clip(n, 64).to_string()),
        survey: connection.survey.clone(),
        touchpoint: connection.touchpoint.clone(),
        created_at: now_ms,
        due_at: now_ms + i64::from(connection.delay_minutes) * 60_000,
        status: if skipped.is_some() {
            InvitationStatus::Skipped
        } else {
            InvitationStatus::Scheduled
        },
        reason: skipped,
        attempts: 0,
        lease_until: 0,
        sent_at: None,
        message_id: None,
    })
}

/// The frequency cap of `survey` in milliseconds (0: none).
pub fn cap_ms(survey: &Survey) -> i64 {
    i64::from(survey.frequency_cap_days.unwrap_or(0)) * 86_400_000
}

/// The frequency-cap key of an address: the suppression list's normal form.
pub fn contact_id(email: &str) -> String {
    suppression_id(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Connection {
        Connection {
            id: "tienda-sol".into(),
            platform: Platform::Shopify,
            survey: "nps-2026".into(),
            touchpoint: "post-purchase".into(),
            delay_minutes: 4320,
            sender: "Tienda Sol <hola@tiendasol.example>".into(),
            store_name: "Tienda Sol".into(),
        }
    }

    #[test]
    fn the_frequency_cap_and_the_suppression_list_see_one_address_however_typed() {
        assert_eq!(contact_id("Bö@Exämple.com"), "bö@xn--exmple-cua.com");
        assert_eq!(
            contact_id(" ana2@XN--EXMPLE-CUA.com"),
            contact_id("Ana2@exämple.com")
        );
    }

    #[test]
    fn a_connection_checks_its_sender_delay_and_names() {
        assert_eq!(connection().validate(), Ok(()));
        for (change, words) in [
            (
                Box::new(|c: &mut Connection| c.sender = "not an address".into())
                    as Box<dyn Fn(&mut Connection)>,
                "sender",
            ),
            (
                Box::new(|c| c.delay_minutes = MAX_DELAY_MINUTES + 1),
                "delay_minutes",
            ),
            (Box::new(|c| c.id = "Bad Id".into()), "connection id"),
            (Box::new(|c| c.store_name = " ".into()), "store_name"),
        ] {
            let mut c = connection();
            change(&mut c);
            assert!(c.validate().unwrap_err().0.contains(words), "{c:?}");
        }
        assert_eq!(
            sender_address("hola@tiendasol.example"),
            Some("hola@tiendasol.example")
        );
        assert_eq!(
            sender_address("Tienda Sol <hola@tiendasol.example>"),
            Some("hola@tiendasol.example")
        );
        assert_eq!(
            sender_address("\"Tienda, Sol\" <a@x.example>"),
            Some("a@x.example")
        );
        for bad in [
            "a@b",
            "a b@c.d",
            "x <a@b.c",
            "\"x <a@b.c>",
            "a@b.c\r\nBcc: e@f.g",
        ] {
            assert_eq!(sender_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_quoted_sender_is_accepted_a_unicode_domain_saved_in_punycode_and_a_unicode_local_part_refused(
    ) {
        for sender in [
            "\"Tienda, Sol\" <a@x.example>",
            "Tienda Sol <a@x.example>",
            "a@x.example",
        ] {
            let c = Connection {
                sender: sender.into(),
                ..connection()
            };
            assert_eq!(c.clone().normalized().map(|c| c.sender), Ok(sender.into()));
        }
        let c = Connection {
            sender: "Tienda Sol <hola@tiendasöl.example>".into(),
            ..connection()
        };
        assert_eq!(
            c.normalized().map(|c| c.sender),
            Ok("Tienda Sol <hola@xn--tiendasl-t4a.example>".into())
        );
        let c = Connection {
            sender: "Tienda Sol <josé@tiendasol.example>".into(),
            ..connection()
        };
        let why = c.validate().unwrap_err().0;
        assert!(why.contains("not plain ASCII"), "{why}");
    }

    #[test]
    fn an_order_address_with_a_unicode_local_part_is_skipped_and_a_unicode_domain_put_in_punycode()
    {
        let order = |email: &str| OrderEvent {
            order_id: "1".into(),
            order_ref: "#1".into(),
            email: Some(email.into()),
            name: None,
            delivery_id: None,
        };
        let inv = new_invitation(&connection(), &order("jose@exämple.com"), 0).unwrap();
        assert_eq!(
            (inv.email.as_str(), inv.status),
            ("jose@xn--exmple-cua.com", InvitationStatus::Scheduled)
        );
        let inv = new_invitation(&connection(), &order("josé@exämple.com"), 0).unwrap();
        assert_eq!(inv.status, InvitationStatus::Skipped);
        let reason = inv.reason.unwrap_or_default();
        assert!(reason.contains("not plain ASCII"), "{reason}");
    }

    #[test]
    fn a_delay_that_is_not_a_whole_number_of_minutes_is_refused_in_words() {
        let with = |delay: &str| {
            serde_json::from_str::<Connection>(&format!(
                r#"{{"id":"c","platform":"stripe","survey":"s","touchpoint":"t","sender":"a@b.co","store_name":"S","delay_minutes":{delay}}}"#
            ))
        };
        assert_eq!(with("4320").map(|c| c.delay_minutes).ok(), Some(4320));
        for bad in ["-1", "1.5", "\"10\"", "86401", "99999999999", "null"] {
            let why = with(bad).unwrap_err().to_string();
            assert!(
                why.starts_with("delay_minutes must be a whole number of minutes from 0 to 86400"),
                "{bad}: {why}"
            );
        }
    }

    #[test]
    fn an_order_without_a_valid_email_gets_no_invitation_and_the_delay_sets_the_due_time() {
        let order = |email: Option<&str>| OrderEvent {
            order_id: "820982911946154508".into(),
            order_ref: "#1001".into(),
            email: email.map(str::to_string),
            name: Some("Ana".into()),
            delivery_id: None,
        };
        let inv = new_invitation(&connection(), &order(Some("ana@example.com")), 1_000).unwrap();
        assert_eq!(inv.due_at, 1_000 + 4320 * 60_000);
        assert_eq!(inv.status, InvitationStatus::Scheduled);
        assert_eq!(inv.send(), "order-820982911946154508");
        assert!(new_invitation(&connection(), &order(None), 0).is_err());
        assert!(new_invitation(&connection(), &order(Some("  ")), 0).is_err());
        assert!(new_invitation(&connection(), &order(Some("nobody")), 0).is_err());
    }

    #[test]
    fn a_cursor_reads_back_and_lets_through_exactly_what_follows_it() {
        let inv = |created_at: i64, connection: &str, order: &str| Invitation {
            created_at,
            connection: connection.into(),
            order: order.into(),
            ..new_invitation(
                &connection_named("x"),
                &OrderEvent {
                    order_id: "o".into(),
                    order_ref: String::new(),
                    email: Some("a@b.co".into()),
                    name: None,
                    delivery_id: None,
                },
                0,
            )
            .unwrap()
        };
        let mut all = [
            inv(5, "b", "1"),
            inv(9, "a", "2"),
            inv(5, "a", "9"),
            inv(5, "a", "10"),
            inv(1, "a", "1"),
        ];
        all.sort_by(listing_order);
        for (i, last) in all.iter().enumerate() {
            let cursor = InvitationCursor::after(last);
            assert_eq!(
                InvitationCursor::decode(&cursor.encode()),
                Ok(cursor.clone())
            );
            let rest: Vec<&Invitation> = all.iter().filter(|x| cursor.precedes(x)).collect();
            assert_eq!(rest, all.iter().skip(i + 1).collect::<Vec<_>>());
        }
        for bad in ["", "!!", "bm90IGpzb24", "WzEsMl0"] {
            assert_eq!(InvitationCursor::decode(bad), Err(InvalidCursor), "{bad}");
        }
    }

    fn connection_named(id: &str) -> Connection {
        Connection {
            id: id.into(),
            ..connection()
        }
    }

    #[test]
    fn long_order_ids_make_short_distinct_sends_and_schedule_names() {
        let a = order_send("c", &"cs_test_".repeat(10));
        let b = order_send("c", &format!("{}x", "cs_test_".repeat(10)));
        assert!(a.len() <= 64 && b.len() <= 64 && a != b, "{a} {b}");
        let mut inv = new_invitation(
            &connection(),
            &OrderEvent {
                order_id: "1".into(),
                order_ref: "#1".into(),
                email: Some("a@b.co".into()),
                name: None,
                delivery_id: None,
            },
            0,
        )
        .unwrap();
        let first = inv.schedule_name();
        inv.order = "2".into();
        assert_ne!(first, inv.schedule_name());
        assert!(first.len() <= 64 && first.starts_with("sondeo-tienda-sol-"));
        assert_eq!(mask_email("ana@example.com"), "a***@example.com");
    }
}
