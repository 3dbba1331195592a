//! The post-order adapters against a moto server on 127.0.0.1, with the real SDK clients: store
//! connections, invitations and frequency-cap claims in DynamoDB (the order store contract, and
//! the items it writes), mail through SES v2 and schedules in EventBridge Scheduler.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sondeo_aws::dynamo::DynamoStore;
use sondeo_aws::scheduler::{at_expression, invitation_key, EventBridgeScheduler};
use sondeo_aws::ses::SesMailer;
use sondeo_domain::orders::{Invitation, InvitationStatus, WebhookSecret};
use sondeo_domain::ports::{
    ConnectionStore, InvitationScheduler, InvitationStore, MailError, Mailer,
};
use sondeo_domain::time::now_ms;
use sondeo_tests::order_store_contract::{connection, invitation};
use sondeo_tests::*;

const DAY_MS: i64 = 86_400_000;

async fn store() -> (DynamoStore, aws_sdk_dynamodb::Client) {
    moto_store("orders").await
}

sondeo_tests::order_store_contract_tests!(store().await.0);

#[tokio::test]
async fn a_connection_item_keeps_the_secret_out_of_its_document() {
    let (s, client) = store().await;
    let secret = WebhookSecret::new("wc_secret_0123456789").unwrap();
    s.put_connection(&connection("b-shop"), &secret)
        .await
        .unwrap();
    let item = raw_item(&client, s.table(), "CONN", "b-shop").await;
    assert!(
        !item["doc"].as_s().unwrap().contains("wc_secret"),
        "{item:?}"
    );
    assert_eq!(item["secret"].as_s().unwrap(), "wc_secret_0123456789");
}

#[tokio::test]
async fn an_invitation_item_carries_its_condition_attributes_as_its_document_says() {
    // GIVEN an invitation claimed by a sender
    let (s, client) = store().await;
    let seen = invitation("shop", "1001", 1_000, 5_000);
    assert!(s.create_invitation(&seen).await.unwrap());
    let claimed = Invitation {
        status: InvitationStatus::Sending,
        attempts: 1,
        lease_until: 9_000,
        ..seen.clone()
    };
    assert!(s.replace_invitation(&seen, &claimed).await.unwrap());
    // THEN the attributes the compare-and-set and the due scan read follow the document
    let item = raw_item(&client, s.table(), "INV#shop", "1001").await;
    let attribute = |name: &str| item[name].as_s().or(item[name].as_n()).unwrap().as_str();
    let read = ["status", "attempts", "lease", "due", "created"].map(attribute);
    assert_eq!(read, ["sending", "1", "9000", "5000", "1000"]);
}

#[tokio::test]
async fn a_contact_claim_item_is_the_holders_and_expires_with_its_cap() {
    // GIVEN a claim held, and another claimant refused within its cap
    let (s, client) = store().await;
    let cap = 30 * DAY_MS;
    let t0 = 20_000 * DAY_MS;
    assert!(s
        .claim_contact("s", "ana@x.co", "inv-a", t0, cap)
        .await
        .unwrap());
    assert!(!s
        .claim_contact("s", "ana@x.co", "inv-b", t0 + cap - 1, cap)
        .await
        .unwrap());
    // THEN the item is the holder's, unchanged by the refusal, and lives until its cap runs out
    let item = raw_item(&client, s.table(), "CONTACT#s", "ana@x.co").await;
    assert_eq!(item["by"].as_s().unwrap(), "inv-a");
    assert_eq!(item["at"].as_n().unwrap(), &t0.to_string());
    assert_eq!(
        item["ttl"].as_n().unwrap(),
        &((t0 + cap) / 1000 + 1).to_string()
    );
}

/// Every raw message moto's SES backend holds, from its model dump (`/moto-api/data.json`):
/// (message id, source, destinations, raw data).
async fn moto_raw_messages() -> Vec<(String, String, Vec<String>, String)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let url = format!(
        "{}/moto-api/data.json",
        moto_endpoint().trim_end_matches('/')
    );
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let data: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    data["ses"]["RawMessage"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let destinations = m["destinations"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (
                text(m, "id"),
                text(m, "source"),
                destinations,
                text(m, "raw_data"),
            )
        })
        .collect()
}

#[tokio::test]
async fn ses_sends_the_raw_message_from_a_verified_identity_and_refuses_an_unverified_one() {
    // GIVEN a verified sender address
    let config = moto_config().await;
    let ses = aws_sdk_sesv2::Client::new(&config);
    let local = unique("hola");
    let sender = format!("{local}@tiendasol.example");
    ses.create_email_identity()
        .email_identity(&sender)
        .send()
        .await
        .unwrap();
    let mailer = SesMailer::new(ses.clone(), Some("sondeo".into()));
    let to = format!("{}@example.com", unique("ana"));
    let mime = format!(
        "From: Tienda Sol <{sender}>\r\nTo: {to}\r\nSubject: =?UTF-8?Q?=C2=BFQu=C3=A9_tal?=\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nHola Ana\r\n"
    );
    // WHEN a message is sent from it, named as the connection names it
    let id = mailer
        .send_raw(&format!("Tienda Sol <{sender}>"), &to, mime.as_bytes())
        .await
        .unwrap();
    // THEN SES took it: the message kept by moto has its id, its sender, its recipient and
    // exactly its bytes
    let sent = moto_raw_messages().await;
    let kept = sent
        .iter()
        .find(|m| m.0 == id)
        .unwrap_or_else(|| panic!("message {id} not among {} sent", sent.len()));
    assert_eq!(kept.1, sender);
    assert!(kept.2.contains(&to), "{:?}", kept.2);
    assert_eq!(kept.3, mime);
    // AND a sender that is not a verified identity is refused for good
    let stranger = format!("{}@unverified.example", unique("nobody"));
    let refused = mailer
        .send_raw(&stranger, &to, mime.as_bytes())
        .await
        .unwrap_err();
    assert!(matches!(refused, MailError::Permanent(_)), "{refused:?}");
}

#[tokio::test]
async fn an_invitation_is_scheduled_once_at_its_due_time_with_its_key_as_input() {
    // GIVEN a schedule group and a scheduler targeting the mail function
    let config = moto_config().await;
    let client = aws_sdk_scheduler::Client::new(&config);
    let group = unique("sondeo");
    client
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .unwrap();
    let target = "arn:aws:lambda:us-east-1:123456789012:function:sondeo-mail";
    let role = "arn:aws:iam::123456789012:role/sondeo-scheduler";
    let scheduler = EventBridgeScheduler::new(client.clone(), target, role, Some(group.clone()));
    let due = now_ms() + 3 * DAY_MS + 250;
    let inv = invitation("tienda-sol", "820982911946154508", now_ms(), due);
    // WHEN it is scheduled, twice (a retried delivery)
    scheduler.schedule(&inv).await.unwrap();
    scheduler.schedule(&inv).await.unwrap();
    // THEN one schedule, named after the invitation, fires at its due time with its key
    let got = client
        .get_schedule()
        .name(inv.schedule_name())
        .group_name(&group)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.schedule_expression(),
        Some(at_expression(due, 0).as_str())
    );
    assert_eq!(got.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        got.action_after_completion().map(|a| a.as_str()),
        Some("DELETE")
    );
    assert_eq!(
        got.flexible_time_window().map(|w| w.mode().as_str()),
        Some("OFF")
    );
    let t = got.target().unwrap();
    assert_eq!((t.arn(), t.role_arn()), (target, role));
    let input: serde_json::Value = serde_json::from_str(t.input().unwrap()).unwrap();
    assert_eq!(
        invitation_key(&input),
        Some(("tienda-sol".into(), "820982911946154508".into()))
    );
    assert_eq!(
        t.retry_policy().and_then(|r| r.maximum_retry_attempts()),
        Some(10)
    );
    let listed = client
        .list_schedules()
        .group_name(&group)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = listed.schedules().iter().filter_map(|s| s.name()).collect();
    assert_eq!(names, [inv.schedule_name().as_str()]);
    // AND an invitation already due fires a minute from now
    let before = now_ms();
    let overdue = invitation("tienda-sol", "1002", before - DAY_MS, before - 1_000);
    scheduler.schedule(&overdue).await.unwrap();
    let after = now_ms();
    let expression = client
        .get_schedule()
        .name(overdue.schedule_name())
        .group_name(&group)
        .send()
        .await
        .unwrap()
        .schedule_expression
        .unwrap();
    // The format sorts as time does: it lies between the two bounds.
    assert!(
        at_expression(before + 60_000, 0) <= expression
            && expression <= at_expression(after + 60_000, 0),
        "{expression}"
    );
}
