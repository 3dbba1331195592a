//! One event → invitations delivered or addresses suppressed.
//!
//! - `{"sondeo_invitation": {"connection": C, "order": O}}` (an invitation's schedule): the
//!   invitation is delivered if due and not yet sent. A temporary mail failure fails the
//!   invocation, so Lambda's asynchronous retries try again (the invitation records each
//!   attempt and is marked failed after the last).
//! - An SNS event whose messages are SES bounce or complaint notifications: each permanently
//!   bouncing or complaining address goes on the suppression list.
//! - Anything else is logged and answered, since retrying cannot help.

use lambda_runtime::Error;
use serde_json::{json, Value};
use sondeo_domain::invite::{Courier, Delivery};
use sondeo_domain::orders::{mask_email, Connection, Invitation};
use sondeo_domain::ports::SuppressionList;
use sondeo_domain::response::{suppression_id, Suppression};
use sondeo_domain::survey::Survey;
use sondeo_domain::time::now_ms;
use sondeo_domain::token::LinkKeyring;

/// What the handler needs besides the event.
pub struct MailDeps<'a> {
    /// Delivers invitations.
    pub courier: Courier<'a>,
    /// Where bounces and complaints are recorded.
    pub suppressions: &'a dyn SuppressionList,
    /// Link-signing keys, for the survey links in each email.
    pub keyring: &'a LinkKeyring,
    /// Base URL of the survey links.
    pub base_url: &'a str,
}

/// The invitation an event names: `{"sondeo_invitation": {"connection": C, "order": O}}`.
pub fn invitation_key(event: &Value) -> Option<(String, String)> {
    let key = event.get("sondeo_invitation")?;
    Some((
        key.get("connection")?.as_str()?.to_string(),
        key.get("order")?.as_str()?.to_string(),
    ))
}

/// The SNS messages of an SNS event, if it is one.
pub fn sns_messages(event: &Value) -> Option<Vec<String>> {
    let records = event.get("Records")?.as_array()?;
    records
        .iter()
        .map(|r| {
            let source = r.get("EventSource").and_then(Value::as_str);
            (source == Some("aws:sns"))
                .then(|| r.get("Sns")?.get("Message")?.as_str().map(str::to_string))
                .flatten()
        })
        .collect()
}

/// Handles one event (see the module documentation).
pub async fn handle(event: Value, deps: &MailDeps<'_>) -> Result<Value, Error> {
    if let Some((connection, order)) = invitation_key(&event) {
        return deliver(&connection, &order, deps).await;
    }
    if let Some(messages) = sns_messages(&event) {
        return suppress_bounces(&messages, deps.suppressions).await;
    }
    tracing::warn!("mail function: event is neither an invitation schedule nor an SNS delivery");
    Ok(json!({ "ignored": "not an invitation schedule or an SES notification" }))
}

async fn deliver(connection: &str, order: &str, deps: &MailDeps<'_>) -> Result<Value, Error> {
    let now = now_ms();
    let compose = |survey: &Survey, conn: &Connection, invitation: &Invitation| {
        sondeo_http::compose::compose_invitation(
            deps.keyring,
            deps.base_url,
            survey,
            conn,
            invitation,
            now / 1000,
        )
    };
    let outcome = deps
        .courier
        .deliver(connection, order, now, &compose)
        .await?;
    let (status, invitation) = match &outcome {
        Delivery::Sent(i) => ("sent", Some(i)),
        Delivery::Skipped(i) => ("skipped", Some(i)),
        Delivery::Failed(i) => ("failed", Some(i)),
        Delivery::Settled(i) => ("settled", Some(i)),
        Delivery::NotDue(i) => ("not_due", Some(i)),
        Delivery::Retry(i) => ("retry", Some(i)),
        Delivery::Missing => ("missing", None),
    };
    let email = invitation.map(|i| mask_email(&i.email)).unwrap_or_default();
    let reason = invitation
        .and_then(|i| i.reason.clone())
        .unwrap_or_default();
    tracing::info!(connection, order, email = %email, status, reason = %reason, "invitation");
    if let Delivery::Retry(_) = outcome {
        // Failing the invocation makes Lambda retry it (asynchronous invocation).
        return Err(format!("invitation {connection}/{order} not sent yet: {reason}").into());
    }
    Ok(json!({ "invitation": { "connection": connection, "order": order }, "status": status }))
}

async fn suppress_bounces(messages: &[String], list: &dyn SuppressionList) -> Result<Value, Error> {
    let mut suppressed = 0;
    for message in messages {
        let addresses = match sondeo_aws::ses::ses_notification_addresses(message) {
            Ok(addresses) => addresses,
            Err(why) => {
                tracing::warn!("SNS message is not an SES notification: {why}");
                continue;
            }
        };
        for (address, via) in addresses {
            list.suppress(&Suppression {
                respondent: suppression_id(&address),
                at: now_ms(),
                via: via.to_string(),
            })
            .await?;
            tracing::info!(email = %mask_email(&address), via, "suppressed after SES feedback");
            suppressed += 1;
        }
    }
    Ok(json!({ "suppressed": suppressed }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sondeo_domain::invite::OrderDesk;
    use sondeo_domain::orders::{InvitationStatus, OrderEvent, Platform, WebhookSecret};
    use sondeo_domain::ports::{
        ConnectionStore, InvitationScheduler, InvitationStore, MailError, Mailer, StoreError,
        SurveyStore,
    };
    use sondeo_embedded::outbox::Outbox;
    use sondeo_embedded::EmbeddedStore;

    struct NoClock;

    #[async_trait::async_trait]
    impl InvitationScheduler for NoClock {
        async fn schedule(&self, _: &Invitation) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// Refuses every message as SES does when sending is throttled.
    struct Throttled;

    #[async_trait::async_trait]
    impl Mailer for Throttled {
        async fn send_raw(&self, _: &str, _: &str, _: &[u8]) -> Result<String, MailError> {
            Err(MailError::Transient("TooManyRequestsException".into()))
        }
    }

    async fn store_with_invitation() -> EmbeddedStore {
        let store = EmbeddedStore::in_memory().unwrap();
        let survey: Survey = serde_json::from_value(json!({
            "id": "post-order", "kind": "nps", "question": "How likely are you to recommend us?",
            "touchpoints": [{"slug": "post-purchase"}],
        }))
        .unwrap();
        store.create_survey(&survey).await.unwrap();
        let connection = Connection {
            id: "shop".into(),
            platform: Platform::Stripe,
            survey: "post-order".into(),
            touchpoint: "post-purchase".into(),
            delay_minutes: 0,
            sender: "Shop <hi@shop.example>".into(),
            store_name: "Shop".into(),
        };
        store
            .put_connection(&connection, &WebhookSecret::new("whsec_x").unwrap())
            .await
            .unwrap();
        let desk = OrderDesk {
            invitations: &store,
            suppressions: &store,
            scheduler: &NoClock,
        };
        desk.admit(
            &connection,
            &survey,
            &OrderEvent {
                order_id: "cs_1".into(),
                order_ref: "cs_1".into(),
                email: Some("ana@example.com".into()),
                name: Some("Ana".into()),
                delivery_id: None,
            },
            now_ms() - 1000,
        )
        .await
        .unwrap();
        store
    }

    fn keyring() -> LinkKeyring {
        LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-mail").unwrap()
    }

    #[tokio::test]
    async fn a_schedule_sends_its_invitation_once_and_a_throttled_send_fails_the_invocation() {
        let store = store_with_invitation().await;
        let dir = std::env::temp_dir().join(format!("sondeo-mail-{:08x}", rand_suffix()));
        let outbox = Outbox::new(&dir).unwrap();
        let keyring = keyring();
        let event = json!({"sondeo_invitation": {"connection": "shop", "order": "cs_1"}});

        // SES throttles: the invocation fails (Lambda retries it), the attempt is recorded.
        let throttled = MailDeps {
            courier: Courier {
                invitations: &store,
                suppressions: &store,
                surveys: &store,
                connections: &store,
                mailer: &Throttled,
            },
            suppressions: &store,
            keyring: &keyring,
            base_url: "https://surveys.example.com",
        };
        let err = handle(event.clone(), &throttled).await.unwrap_err();
        assert!(err.to_string().contains("not sent yet"), "{err}");
        let retry = store.get_invitation("shop", "cs_1").await.unwrap().unwrap();
        assert_eq!(
            (retry.status, retry.attempts),
            (InvitationStatus::Scheduled, 1)
        );

        // Make it due again (Lambda's retry comes a minute later), then deliver twice.
        let due = Invitation {
            due_at: now_ms() - 1,
            ..retry.clone()
        };
        assert!(store.replace_invitation(&retry, &due).await.unwrap());
        let deps = MailDeps {
            courier: Courier {
                invitations: &store,
                suppressions: &store,
                surveys: &store,
                connections: &store,
                mailer: &outbox,
            },
            suppressions: &store,
            keyring: &keyring,
            base_url: "https://surveys.example.com",
        };
        assert_eq!(
            handle(event.clone(), &deps).await.unwrap()["status"],
            "sent"
        );
        assert_eq!(handle(event, &deps).await.unwrap()["status"], "settled");
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 1, "one email");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn ses_bounces_and_complaints_through_sns_suppress_the_addresses() {
        let store = EmbeddedStore::in_memory().unwrap();
        let keyring = keyring();
        let deps = MailDeps {
            courier: Courier {
                invitations: &store,
                suppressions: &store,
                surveys: &store,
                connections: &store,
                mailer: &Throttled,
            },
            suppressions: &store,
            keyring: &keyring,
            base_url: "https://surveys.example.com",
        };
        let bounce = json!({
            "eventType": "Bounce",
            "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": "Gone@Example.com"}]},
            "mail": {"messageId": "m1"},
        });
        let complaint = json!({
            "notificationType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": "angry@example.com"}],
                "complaintFeedbackType": "abuse"},
            "mail": {"messageId": "m2"},
        });
        let transient = json!({
            "eventType": "Bounce",
            "bounce": {"bounceType": "Transient", "bouncedRecipients": [{"emailAddress": "full@example.com"}]},
        });
        let sns = |m: &Value| json!({"EventSource": "aws:sns", "Sns": {"Message": m.to_string()}});
        let event = json!({"Records": [sns(&bounce), sns(&complaint), sns(&transient)]});
        assert_eq!(handle(event, &deps).await.unwrap()["suppressed"], 2);
        let mut listed: Vec<(String, String)> = store
            .list_suppressed()
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.respondent, s.via))
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                ("angry@example.com".to_string(), "complaint".to_string()),
                ("gone@example.com".to_string(), "bounce".to_string())
            ]
        );
        // Anything else is answered and ignored.
        assert!(handle(json!({"hello": 1}), &deps).await.unwrap()["ignored"].is_string());
    }

    fn rand_suffix() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
    }
}
