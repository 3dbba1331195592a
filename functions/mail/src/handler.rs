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
