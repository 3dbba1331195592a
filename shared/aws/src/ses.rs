//! Amazon SES (API v2): sending a MIME message, and reading the bounce and complaint
//! notifications SES publishes through SNS into the addresses that must be suppressed.

use crate::sdk_error::classify;
use async_trait::async_trait;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use sondeo_domain::mailbox::Mailbox;
use sondeo_domain::orders::sender_address;
use sondeo_domain::ports::{MailError, Mailer, StoreError};

/// SES error codes that say "not now" rather than "never": sending too fast or past the daily
/// quota, and an account whose sending is paused (not suspended) until it is reviewed.
const TRANSIENT_SES_CODES: [&str; 3] = [
    "TooManyRequestsException",
    "LimitExceededException",
    "SendingPausedException",
];

/// Sends email through SES v2 `SendEmail` with raw MIME content.
#[derive(Clone, Debug)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    configuration_set: Option<String>,
}

impl SesMailer {
    /// A mailer using an already configured client, sending under `configuration_set` if given.
    pub fn new(client: aws_sdk_sesv2::Client, configuration_set: Option<String>) -> SesMailer {
        SesMailer {
            client,
            configuration_set,
        }
    }
}

/// A `SendEmail` failure as a mail error: transient for throttling, quotas, timeouts, server
/// faults and deployment faults (denied role, bad credentials); permanent for a rejected
/// message, an unverified or suspended sender, and any other refusal of the request itself.
fn mail_error(
    err: SdkError<SendEmailError, aws_sdk_sesv2::config::http::HttpResponse>,
) -> MailError {
    if let Some(code) = err.code().filter(|c| TRANSIENT_SES_CODES.contains(c)) {
        return MailError::Transient(format!(
            "send email: {code}: {}",
            err.message().unwrap_or("")
        ));
    }
    match classify("send email", err) {
        StoreError::Transient(why) | StoreError::OutOfSpace(why) => MailError::Transient(why),
        StoreError::Permanent(why) | StoreError::AlreadyExists(why) => MailError::Permanent(why),
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send_raw(&self, from: &str, to: &str, mime: &[u8]) -> Result<String, MailError> {
        let raw = RawMessage::builder()
            .data(Blob::new(mime))
            .build()
            .map_err(|e| MailError::Permanent(format!("raw message: {e}")))?;
        // The bare address names the verified identity (ASCII, its domain in punycode); the
        // display name (which may need MIME encoding) is in the message's own From header.
        let from_address = Mailbox::parse(from).map_or_else(|_| from.to_string(), |m| m.address);
        let out = self
            .client
            .send_email()
            .from_email_address(from_address)
            .destination(Destination::builder().to_addresses(to).build())
            .content(EmailContent::builder().raw(raw).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(mail_error)?;
        out.message_id().map(str::to_string).ok_or_else(|| {
            MailError::Transient("SES accepted the message without a message id".into())
        })
    }
}

/// The addresses an SES bounce or complaint notification says must be suppressed, each with
/// why (`"bounce"` or `"complaint"`).
///
/// `sns_message` is the SNS notification's `Message` (the whole SNS envelope is accepted too),
/// in either format: identity notifications (`notificationType`) or configuration-set event
/// publishing (`eventType`). Only permanent bounces count (a transient or undetermined bounce
/// may deliver next time), and a complaint whose feedback type is `not-spam` does not. Other
/// notifications (deliveries, sends, opens...) give no address.
pub fn ses_notification_addresses(
    sns_message: &str,
) -> Result<Vec<(String, &'static str)>, String> {
    let value: serde_json::Value = serde_json::from_str(sns_message)
        .map_err(|e| format!("the SES notification is not JSON: {e}"))?;
    // An SNS envelope carries the SES notification as a string in `Message`.
    let value = match (value.get("Type"), value.get("Message")) {
        (Some(_), Some(serde_json::Value::String(inner))) => serde_json::from_str(inner)
            .map_err(|e| format!("the SNS message is not an SES notification: {e}"))?,
        _ => value,
    };
    let kind = value
        .get("notificationType")
        .or_else(|| value.get("eventType"))
        .and_then(serde_json::Value::as_str)
        .ok_or("the SES notification has neither notificationType nor eventType")?;
    let (recipients, via) = match kind {
        "Bounce" => {
            let bounce = value
                .get("bounce")
                .ok_or("a Bounce notification without its bounce object")?;
            if bounce.get("bounceType").and_then(serde_json::Value::as_str) != Some("Permanent") {
                return Ok(Vec::new());
            }
            (bounce.get("bouncedRecipients"), "bounce")
        }
        "Complaint" => {
            let complaint = value
                .get("complaint")
                .ok_or("a Complaint notification without its complaint object")?;
            let feedback = complaint
                .get("complaintFeedbackType")
                .and_then(serde_json::Value::as_str);
            if feedback == Some("not-spam") {
                return Ok(Vec::new());
            }
            (complaint.get("complainedRecipients"), "complaint")
        }
        _ => return Ok(Vec::new()),
    };
    let recipients = recipients
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| format!("a {kind} notification without its list of recipients"))?;
    let mut out: Vec<(String, &'static str)> = Vec::with_capacity(recipients.len());
    for r in recipients {
        let Some(raw) = r.get("emailAddress").and_then(serde_json::Value::as_str) else {
            continue;
        };
        let address = sender_address(raw).unwrap_or(raw.trim());
        if !address.is_empty() && !out.iter().any(|(a, _)| a == address) {
            out.push((address.to_string(), via));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::error::ErrorMetadata;
    use aws_smithy_types::body::SdkBody;

    // Samples from the Amazon SES Developer Guide ("Amazon SNS notification examples for
    // Amazon SES" and "Examples of event data that Amazon SES publishes to Amazon SNS"), with
    // the `mail` object shortened.
    const BOUNCE_WITH_DSN: &str = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent",
        "reportingMTA":"dns; email.example.com","bouncedRecipients":[{"emailAddress":"jane@example.com",
        "status":"5.1.1","action":"failed","diagnosticCode":"smtp; 550 5.1.1 <jane@example.com>... User"}],
        "bounceSubType":"General","timestamp":"2016-01-27T14:59:38.237Z",
        "feedbackId":"00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000","remoteMtaIp":"127.0.2.0"},
        "mail":{"timestamp":"2016-01-27T14:59:38.237Z","source":"john@example.com",
        "sourceArn":"arn:aws:ses:us-east-1:888888888888:identity/example.com","sourceIp":"127.0.3.0",
        "sendingAccountId":"123456789012","callerIdentity":"IAM_user_or_role_name",
        "messageId":"00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
        "destination":["jane@example.com","mary@example.com","richard@example.com"]}}"#;
    const BOUNCE_WITHOUT_DSN: &str = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent",
        "bounceSubType":"General","bouncedRecipients":[{"emailAddress":"jane@example.com"},
        {"emailAddress":"richard@example.com"}],"timestamp":"2016-01-27T14:59:38.237Z",
        "feedbackId":"00000137860315fd-869464a4-8680-4114-98d3-716fe35851f9-000000","remoteMtaIp":"127.0.2.0"},
        "mail":{"timestamp":"2016-01-27T14:59:38.237Z",
        "messageId":"00000137860315fd-34208509-5b74-41f3-95c5-22c1edc3c924-000000","source":"john@example.com",
        "destination":["jane@example.com","mary@example.com","richard@example.com"]}}"#;
    const COMPLAINT_WITH_REPORT: &str = r#"{"notificationType":"Complaint","complaint":{
        "userAgent":"AnyCompany Feedback Loop (V0.01)","complainedRecipients":[{"emailAddress":"richard@example.com"}],
        "complaintFeedbackType":"abuse","arrivalDate":"2016-01-27T14:59:38.237Z",
        "timestamp":"2016-01-27T14:59:38.237Z",
        "feedbackId":"000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000"},
        "mail":{"timestamp":"2016-01-27T14:59:38.237Z",
        "messageId":"000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000","source":"john@example.com",
        "destination":["jane@example.com","mary@example.com","richard@example.com"]}}"#;
    const COMPLAINT_WITHOUT_REPORT: &str = r#"{"notificationType":"Complaint","complaint":{
        "complainedRecipients":[{"emailAddress":"richard@example.com"}],"timestamp":"2016-01-27T14:59:38.237Z",
        "feedbackId":"0000013786031775-fea503bc-7497-49e1-881b-a0379bb037d3-000000"},
        "mail":{"timestamp":"2016-01-27T14:59:38.237Z","source":"john@example.com",
        "messageId":"0000013786031775-163e3910-53eb-4c8e-a04a-f29debf88a84-000000",
        "destination":["jane@example.com","mary@example.com","richard@example.com"]}}"#;
    const DELIVERY: &str = r#"{"notificationType":"Delivery","mail":{"timestamp":"2016-01-27T14:59:38.237Z",
        "messageId":"0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000","source":"john@example.com",
        "destination":["jane@example.com"]},"delivery":{"timestamp":"2016-01-27T14:59:38.237Z",
        "recipients":["jane@example.com"],"processingTimeMillis":546,"reportingMTA":"a8-70.smtp-out.amazonses.com",
        "smtpResponse":"250 ok:  Message 64111812 accepted","remoteMtaIp":"127.0.2.0"}}"#;
    const EVENT_BOUNCE: &str = r#"{"eventType":"Bounce","bounce":{"bounceType":"Permanent",
        "bounceSubType":"General","bouncedRecipients":[{"emailAddress":"recipient@example.com",
        "action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}],
        "timestamp":"2017-08-05T00:41:02.669Z",
        "feedbackId":"01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
        "reportingMTA":"dsn; mta.example.com"},"mail":{"timestamp":"2017-08-05T00:40:02.012Z",
        "source":"Sender Name <sender@example.com>",
        "sourceArn":"arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
        "sendingAccountId":"123456789012",
        "messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
        "destination":["recipient@example.com"],"tags":{"ses:configuration-set":["ConfigSet"]}}}"#;
    const EVENT_COMPLAINT: &str = r#"{"eventType":"Complaint","complaint":{"complainedRecipients":[
        {"emailAddress":"recipient@example.com"}],"timestamp":"2017-08-05T00:41:02.669Z",
        "feedbackId":"01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
        "userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0.3112.90 Safari/537.36",
        "complaintFeedbackType":"abuse","arrivalDate":"2017-08-05T00:41:02.669Z"},
        "mail":{"timestamp":"2017-08-05T00:40:01.123Z","source":"Sender Name <sender@example.com>",
        "messageId":"EXAMPLEe4bccb684-777bc8de-afa7-4970-92b0-f515137b1497-000000",
        "destination":["recipient@example.com"]}}"#;

    fn owned(list: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
        list.iter().map(|(a, v)| (a.to_string(), *v)).collect()
    }

    #[test]
    fn permanent_bounces_suppress_every_bounced_recipient() {
        assert_eq!(
            ses_notification_addresses(BOUNCE_WITH_DSN),
            Ok(owned(&[("jane@example.com", "bounce")]))
        );
        assert_eq!(
            ses_notification_addresses(BOUNCE_WITHOUT_DSN),
            Ok(owned(&[
                ("jane@example.com", "bounce"),
                ("richard@example.com", "bounce")
            ]))
        );
        assert_eq!(
            ses_notification_addresses(EVENT_BOUNCE),
            Ok(owned(&[("recipient@example.com", "bounce")]))
        );
    }

    #[test]
    fn transient_and_undetermined_bounces_suppress_nobody() {
        for kind in ["Transient", "Undetermined"] {
            let message = BOUNCE_WITH_DSN.replace("\"Permanent\"", &format!("\"{kind}\""));
            assert_eq!(
                ses_notification_addresses(&message),
                Ok(Vec::new()),
                "{kind}"
            );
            let event = EVENT_BOUNCE.replace("\"Permanent\"", &format!("\"{kind}\""));
            assert_eq!(ses_notification_addresses(&event), Ok(Vec::new()), "{kind}");
        }
    }

    #[test]
    fn complaints_suppress_the_complainant_unless_it_says_not_spam() {
        let richard = owned(&[("richard@example.com", "complaint")]);
        assert_eq!(
            ses_notification_addresses(COMPLAINT_WITH_REPORT),
            Ok(richard.clone())
        );
        assert_eq!(
            ses_notification_addresses(COMPLAINT_WITHOUT_REPORT),
            Ok(richard)
        );
        assert_eq!(
            ses_notification_addresses(EVENT_COMPLAINT),
            Ok(owned(&[("recipient@example.com", "complaint")]))
        );
        let not_spam = COMPLAINT_WITH_REPORT.replace("\"abuse\"", "\"not-spam\"");
        assert_eq!(ses_notification_addresses(&not_spam), Ok(Vec::new()));
    }

    #[test]
    fn deliveries_and_other_events_suppress_nobody_and_garbage_is_an_error() {
        assert_eq!(ses_notification_addresses(DELIVERY), Ok(Vec::new()));
        let open = r#"{"eventType":"Open","mail":{},"open":{"ipAddress":"192.0.2.1"}}"#;
        assert_eq!(ses_notification_addresses(open), Ok(Vec::new()));
        assert!(ses_notification_addresses("not json").is_err());
        assert!(ses_notification_addresses(r#"{"mail":{}}"#).is_err());
        assert!(ses_notification_addresses(r#"{"notificationType":"Bounce"}"#).is_err());
        assert!(ses_notification_addresses(
            r#"{"notificationType":"Complaint","complaint":{"complaintFeedbackType":"abuse"}}"#
        )
        .is_err());
    }

    #[test]
    fn a_whole_sns_envelope_and_named_or_repeated_addresses_are_read_too() {
        let envelope = serde_json::json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-feedback",
            "Message": COMPLAINT_WITH_REPORT,
        })
        .to_string();
        assert_eq!(
            ses_notification_addresses(&envelope),
            Ok(owned(&[("richard@example.com", "complaint")]))
        );
        let named = BOUNCE_WITHOUT_DSN
            .replace(
                r#"{"emailAddress":"jane@example.com"}"#,
                r#"{"emailAddress":"Jane <jane@example.com>"}"#,
            )
            .replace("richard@example.com\"}", "jane@example.com\"}");
        assert_eq!(
            ses_notification_addresses(&named),
            Ok(owned(&[("jane@example.com", "bounce")]))
        );
    }

    fn send_error(code: &str, status: u16) -> MailError {
        let err = SendEmailError::generic(ErrorMetadata::builder().code(code).build());
        let raw = aws_sdk_sesv2::config::http::HttpResponse::new(
            status.try_into().unwrap(),
            SdkBody::empty(),
        );
        mail_error(SdkError::service_error(err, raw))
    }

    #[test]
    fn throttling_quotas_and_outages_are_transient_refusals_are_permanent() {
        for (code, status) in [
            ("TooManyRequestsException", 429),
            ("LimitExceededException", 400),
            ("SendingPausedException", 400),
            ("ThrottlingException", 400),
            ("AccessDeniedException", 403),
            ("InternalFailure", 500),
            ("ServiceUnavailable", 503),
        ] {
            assert!(
                matches!(send_error(code, status), MailError::Transient(_)),
                "{code}"
            );
        }
        for code in [
            "MessageRejected",
            "MailFromDomainNotVerifiedException",
            "AccountSuspendedException",
            "BadRequestException",
            "NotFoundException",
        ] {
            assert!(
                matches!(send_error(code, 400), MailError::Permanent(_)),
                "{code}"
            );
        }
    }
}
