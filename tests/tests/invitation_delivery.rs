//! Delivering invitations over the embedded store, with a mailer that fails on cue: a send that
//! fails once is retried and sent exactly once; five senders at once send one email; an address
//! unsubscribed after the order is skipped; a refused sender fails for good; the last
//! temporary failure marks the invitation failed.

use async_trait::async_trait;
use sondeo_domain::invite::{Courier, Delivery, OrderDesk, RETRY_BACKOFF_MS};
use sondeo_domain::orders::{
    Admission, Connection, Invitation, InvitationStatus, OrderEvent, Platform, WebhookSecret,
    MAX_SEND_ATTEMPTS,
};
use sondeo_domain::ports::{
    ConnectionStore, InvitationScheduler, InvitationStore, MailError, Mailer, StoreError,
    SuppressionList, SurveyStore,
};
use sondeo_domain::response::Suppression;
use sondeo_domain::survey::Survey;
use sondeo_embedded::EmbeddedStore;
use std::sync::Mutex;

/// Sends nothing; fails the next `fail` calls as told, then records what it is given.
#[derive(Default)]
struct Flaky {
    fail: Mutex<Vec<MailError>>,
    sent: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Mailer for Flaky {
    async fn send_raw(&self, from: &str, to: &str, _: &[u8]) -> Result<String, MailError> {
        if let Some(e) = self.fail.lock().unwrap().pop() {
            return Err(e);
        }
        // Slow enough that concurrent senders overlap.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut sent = self.sent.lock().unwrap();
        sent.push((from.to_string(), to.to_string()));
        Ok(format!("msg-{}", sent.len()))
    }
}

struct NoClock;

#[async_trait]
impl InvitationScheduler for NoClock {
    async fn schedule(&self, _: &Invitation) -> Result<(), StoreError> {
        Ok(())
    }
}

fn compose(_: &Survey, _: &Connection, i: &Invitation) -> Result<Vec<u8>, String> {
    Ok(format!("To: {}\r\n\r\nhello", i.email).into_bytes())
}

async fn setup() -> (EmbeddedStore, Connection) {
    setup_with_cap(None).await
}

async fn setup_with_cap(frequency_cap_days: Option<u32>) -> (EmbeddedStore, Connection) {
    let store = EmbeddedStore::in_memory().unwrap();
    let survey: Survey = serde_json::from_value(serde_json::json!({
        "id": "post-order", "kind": "nps", "question": "How likely are you to recommend us?",
        "touchpoints": [{"slug": "post-purchase"}], "frequency_cap_days": frequency_cap_days,
    }))
    .unwrap();
    store.create_survey(&survey).await.unwrap();
    let connection = Connection {
        id: "shop".into(),
        platform: Platform::Shopify,
        survey: "post-order".into(),
        touchpoint: "post-purchase".into(),
        delay_minutes: 0,
        sender: "Shop <hi@shop.example>".into(),
        store_name: "Shop".into(),
    };
    store
        .put_connection(&connection, &WebhookSecret::new("s3cret").unwrap())
        .await
        .unwrap();
    (store, connection)
}

async fn admit(store: &EmbeddedStore, connection: &Connection, order: &str, email: &str, now: i64) {
    let admitted = admission(store, connection, order, email, now).await;
    assert!(matches!(admitted, Admission::Scheduled(_)), "{admitted:?}");
}

async fn admission(
    store: &EmbeddedStore,
    connection: &Connection,
    order: &str,
    email: &str,
    now: i64,
) -> Admission {
    let survey = store.get_survey("post-order").await.unwrap().unwrap();
    let desk = OrderDesk {
        invitations: store,
        suppressions: store,
        scheduler: &NoClock,
    };
    let admitted = desk
        .admit(
            connection,
            &survey,
            &OrderEvent {
                order_id: order.into(),
                order_ref: format!("#{order}"),
                email: Some(email.into()),
                name: None,
                delivery_id: None,
            },
            now,
        )
        .await
        .unwrap();
    admitted
}

fn courier<'a>(store: &'a EmbeddedStore, mailer: &'a Flaky) -> Courier<'a> {
    Courier {
        invitations: store,
        suppressions: store,
        surveys: store,
        connections: store,
        mailer,
    }
}

#[tokio::test]
async fn a_send_that_fails_once_is_sent_exactly_once() {
    let (store, connection) = setup().await;
    let now = 1_800_000_000_000;
    admit(&store, &connection, "1", "ana@example.com", now).await;
    let mailer = Flaky::default();
    mailer
        .fail
        .lock()
        .unwrap()
        .push(MailError::Transient("throttled".into()));
    let c = courier(&store, &mailer);
    let first = c.deliver("shop", "1", now, &compose).await.unwrap();
    let Delivery::Retry(retry) = first else {
        panic!("{first:?}")
    };
    assert_eq!(retry.status, InvitationStatus::Scheduled);
    assert_eq!(retry.due_at, now + RETRY_BACKOFF_MS);
    assert!(retry.reason.as_deref().unwrap_or("").contains("throttled"));
    // Not yet due again.
    let early = c.deliver("shop", "1", now + 1, &compose).await.unwrap();
    assert!(matches!(early, Delivery::NotDue(_)), "{early:?}");
    let later = now + RETRY_BACKOFF_MS;
    let second = c.deliver("shop", "1", later, &compose).await.unwrap();
    let Delivery::Sent(sent) = second else {
        panic!("{second:?}")
    };
    assert_eq!(sent.attempts, 2);
    assert_eq!(sent.message_id.as_deref(), Some("msg-1"));
    // A repeated schedule (a retried invocation) sends nothing more.
    for _ in 0..3 {
        let again = c.deliver("shop", "1", later + 5, &compose).await.unwrap();
        assert!(matches!(again, Delivery::Settled(_)), "{again:?}");
    }
    assert_eq!(
        mailer.sent.lock().unwrap().as_slice(),
        [(
            "Shop <hi@shop.example>".to_string(),
            "ana@example.com".to_string()
        )]
    );
}

#[tokio::test]
async fn five_senders_at_once_send_one_email() {
    let (store, connection) = setup().await;
    let now = 1_800_000_000_000;
    admit(&store, &connection, "2", "bo@example.com", now).await;
    let mailer = Flaky::default();
    let c = courier(&store, &mailer);
    let outcomes =
        futures::future::join_all((0..5).map(|_| c.deliver("shop", "2", now, &compose))).await;
    let sent = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Delivery::Sent(_))))
        .count();
    assert_eq!(sent, 1, "{outcomes:?}");
    assert_eq!(mailer.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn unsubscribed_after_the_order_refused_sender_and_last_attempt_are_not_sent() {
    let (store, connection) = setup().await;
    let now = 1_800_000_000_000;
    admit(&store, &connection, "3", "cy@example.com", now).await;
    admit(&store, &connection, "4", "dee@example.com", now).await;
    admit(&store, &connection, "5", "eve@example.com", now).await;
    store
        .suppress(&Suppression {
            respondent: "CY@example.com".into(),
            at: now,
            via: "link".into(),
        })
        .await
        .unwrap();
    let mailer = Flaky::default();
    let c = courier(&store, &mailer);
    let skipped = c.deliver("shop", "3", now, &compose).await.unwrap();
    let Delivery::Skipped(skipped) = skipped else {
        panic!("{skipped:?}")
    };
    assert!(skipped.reason.unwrap().contains("unsubscribed"));

    mailer
        .fail
        .lock()
        .unwrap()
        .push(MailError::Permanent("Email address is not verified".into()));
    let failed = c.deliver("shop", "4", now, &compose).await.unwrap();
    let Delivery::Failed(failed) = failed else {
        panic!("{failed:?}")
    };
    assert!(failed.reason.unwrap().contains("not verified"));

    let mut at = now;
    for attempt in 1..=MAX_SEND_ATTEMPTS {
        mailer
            .fail
            .lock()
            .unwrap()
            .push(MailError::Transient("timeout".into()));
        let outcome = c.deliver("shop", "5", at, &compose).await.unwrap();
        if attempt < MAX_SEND_ATTEMPTS {
            let Delivery::Retry(i) = outcome else {
                panic!("{outcome:?}")
            };
            at = i.due_at;
        } else {
            let Delivery::Failed(i) = outcome else {
                panic!("{outcome:?}")
            };
            assert_eq!(i.attempts, MAX_SEND_ATTEMPTS);
        }
    }
    assert!(mailer.sent.lock().unwrap().is_empty());
    let listed = store
        .list_invitations(Some("shop"), None, 10)
        .await
        .unwrap();
    let statuses: Vec<(String, InvitationStatus)> =
        listed.iter().map(|i| (i.order.clone(), i.status)).collect();
    assert!(
        statuses.contains(&("3".into(), InvitationStatus::Skipped)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("4".into(), InvitationStatus::Failed)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("5".into(), InvitationStatus::Failed)),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_failed_invitation_gives_back_its_frequency_cap_claim() {
    let (store, connection) = setup_with_cap(Some(90)).await;
    let now = 1_800_000_000_000;
    admit(&store, &connection, "6", "fay@example.com", now).await;
    // A second order within the cap is skipped while the first invitation may still go out.
    let second = admission(&store, &connection, "7", "Fay@Example.com", now + 1_000).await;
    assert!(matches!(second, Admission::Skipped(_)), "{second:?}");
    // The first one fails for good and sent nothing: the customer's next order may invite.
    let mailer = Flaky::default();
    mailer
        .fail
        .lock()
        .unwrap()
        .push(MailError::Permanent("Email address is not verified".into()));
    let failed = courier(&store, &mailer)
        .deliver("shop", "6", now + 2_000, &compose)
        .await
        .unwrap();
    assert!(matches!(failed, Delivery::Failed(_)), "{failed:?}");
    admit(&store, &connection, "8", "fay@example.com", now + 3_000).await;
}
