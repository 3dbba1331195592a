//! The post-order adapters against a moto server on 127.0.0.1, with the real SDK clients: store
//! connections, invitations and frequency-cap claims in DynamoDB, mail through SES v2 and
//! schedules in EventBridge Scheduler.

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sondeo_aws::dynamo::DynamoStore;
use sondeo_aws::scheduler::{at_expression, invitation_key, EventBridgeScheduler};
use sondeo_aws::ses::SesMailer;
use sondeo_domain::orders::{Connection, Invitation, InvitationStatus, Platform, WebhookSecret};
use sondeo_domain::ports::{
    ConnectionStore, InvitationScheduler, InvitationStore, MailError, Mailer, StoreError,
};
use sondeo_domain::time::now_ms;
use sondeo_tests::*;

const DAY_MS: i64 = 86_400_000;

async fn store() -> (DynamoStore, aws_sdk_dynamodb::Client) {
    let client = aws_sdk_dynamodb::Client::new(&moto_config().await);
    let table = create_table(&client, &unique("orders")).await;
    (DynamoStore::new(client.clone(), table), client)
}

fn connection(id: &str) -> Connection {
    Connection {
        id: id.into(),
        platform: Platform::Woocommerce,
        survey: "nps-2026".into(),
        touchpoint: "post-purchase".into(),
        delay_minutes: 4320,
        sender: "Tienda Sol <hola@tiendasol.example>".into(),
        store_name: "Tienda Sol".into(),
    }
}

fn invitation(connection: &str, order: &str, created_at: i64, due_at: i64) -> Invitation {
    Invitation {
        connection: connection.into(),
        order: order.into(),
        order_ref: format!("#{order}"),
        email: "ana@example.com".into(),
        name: Some("Ana".into()),
        survey: "nps-2026".into(),
        touchpoint: "post-purchase".into(),
        created_at,
        due_at,
        status: InvitationStatus::Scheduled,
        reason: None,
        attempts: 0,
        lease_until: 0,
        sent_at: None,
        message_id: None,
    }
}

fn orders(list: &[Invitation]) -> Vec<(&str, &str)> {
    list.iter()
        .map(|i| (i.connection.as_str(), i.order.as_str()))
        .collect()
}

#[tokio::test]
async fn a_connection_keeps_its_secret_apart_and_the_list_never_carries_it() {
    // GIVEN two connections saved with their secrets
    let (s, client) = store().await;
    let secret = WebhookSecret::new("wc_secret_0123456789").unwrap();
    s.put_connection(&connection("b-shop"), &secret)
        .await
        .unwrap();
    s.put_connection(&connection("a-shop"), &WebhookSecret::new("other").unwrap())
        .await
        .unwrap();
    // WHEN one is read back and all are listed
    let (read, read_secret) = s.get_connection("b-shop").await.unwrap().unwrap();
    let listed = s.list_connections().await.unwrap();
    // THEN the read has both; the list is ordered by id, and the stored document has no secret
    assert_eq!(read, connection("b-shop"));
    assert_eq!(read_secret.expose(), "wc_secret_0123456789");
    assert_eq!(listed, vec![connection("a-shop"), connection("b-shop")]);
    let item = client
        .get_item()
        .table_name(s.table())
        .key("pk", AttributeValue::S("CONN".into()))
        .key("sk", AttributeValue::S("b-shop".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!item["doc"].as_s().unwrap().contains("wc_secret"));
    assert_eq!(item["secret"].as_s().unwrap(), "wc_secret_0123456789");
    // AND saving again replaces the secret; deleting says whether there was one to delete
    s.put_connection(
        &connection("b-shop"),
        &WebhookSecret::new("rotated").unwrap(),
    )
    .await
    .unwrap();
    let (_, rotated) = s.get_connection("b-shop").await.unwrap().unwrap();
    assert_eq!(rotated.expose(), "rotated");
    assert!(s.delete_connection("b-shop").await.unwrap());
    assert!(!s.delete_connection("b-shop").await.unwrap());
    assert_eq!(s.get_connection("b-shop").await.unwrap(), None);
    assert_eq!(
        s.list_connections().await.unwrap(),
        vec![connection("a-shop")]
    );
}

#[tokio::test]
async fn an_order_created_by_five_deliveries_at_once_gets_exactly_one_invitation() {
    // GIVEN five deliveries of one order, each building its own invitation
    let (s, _) = store().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..5 {
        let s = s.clone();
        tasks.spawn(async move {
            let mut mine = invitation("shop", "1001", 1_000 + i, 5_000);
            mine.email = format!("delivery-{i}@example.com");
            (s.create_invitation(&mine).await.unwrap(), mine)
        });
    }
    // WHEN they all create it at once
    let mut created = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (stored, mine) = done.unwrap();
        if stored {
            created.push(mine);
        }
    }
    // THEN exactly one was stored, and it is the one read back
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        s.get_invitation("shop", "1001").await.unwrap(),
        Some(created.remove(0))
    );
    assert_eq!(s.get_invitation("shop", "1002").await.unwrap(), None);
}

#[tokio::test]
async fn a_replace_holds_only_while_status_attempts_and_lease_are_as_seen() {
    // GIVEN a stored invitation
    let (s, client) = store().await;
    let seen = invitation("shop", "1001", 1_000, 5_000);
    assert!(s.create_invitation(&seen).await.unwrap());
    let claim = |lease| Invitation {
        status: InvitationStatus::Sending,
        attempts: 1,
        lease_until: lease,
        ..seen.clone()
    };
    // WHEN two senders claim it from the same read
    let first = s.replace_invitation(&seen, &claim(9_000)).await.unwrap();
    let second = s.replace_invitation(&seen, &claim(9_500)).await.unwrap();
    // THEN only the first holds, and the condition attributes follow the document
    assert!(first && !second);
    assert_eq!(
        s.get_invitation("shop", "1001").await.unwrap(),
        Some(claim(9_000))
    );
    let item = client
        .get_item()
        .table_name(s.table())
        .key("pk", AttributeValue::S("INV#shop".into()))
        .key("sk", AttributeValue::S("1001".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["status"].as_s().unwrap(), "sending");
    assert_eq!(item["attempts"].as_n().unwrap(), "1");
    assert_eq!(item["lease"].as_n().unwrap(), "9000");
    assert_eq!(item["due"].as_n().unwrap(), "5000");
    assert_eq!(item["created"].as_n().unwrap(), "1000");
    // AND a read differing only in attempts, or only in lease, is stale too
    let sent = Invitation {
        status: InvitationStatus::Sent,
        lease_until: 0,
        sent_at: Some(9_100),
        message_id: Some("m-1".into()),
        ..claim(9_000)
    };
    let stale_attempts = Invitation {
        attempts: 2,
        ..claim(9_000)
    };
    assert!(!s.replace_invitation(&stale_attempts, &sent).await.unwrap());
    assert!(!s.replace_invitation(&claim(9_001), &sent).await.unwrap());
    assert!(s.replace_invitation(&claim(9_000), &sent).await.unwrap());
    assert_eq!(s.get_invitation("shop", "1001").await.unwrap(), Some(sent));
    // AND a missing invitation is never replaced, nor one by another order's
    let missing = invitation("shop", "404", 0, 0);
    assert!(!s.replace_invitation(&missing, &missing).await.unwrap());
    assert_eq!(s.get_invitation("shop", "404").await.unwrap(), None);
    assert!(matches!(
        s.replace_invitation(&seen, &missing).await,
        Err(StoreError::Permanent(_))
    ));
}

#[tokio::test]
async fn invitations_list_newest_first_and_due_ones_come_oldest_first() {
    // GIVEN two connections with invitations in every state
    let (s, _) = store().await;
    let secret = WebhookSecret::new("s").unwrap();
    for id in ["a", "b"] {
        s.put_connection(&connection(id), &secret).await.unwrap();
    }
    let now = 1_000_000;
    let with = |c: &str, order: &str, created, due, status, lease| Invitation {
        status,
        lease_until: lease,
        ..invitation(c, order, created, due)
    };
    for i in [
        with("a", "late", 10, now - 10, InvitationStatus::Scheduled, 0),
        with("b", "exactly-now", 20, now, InvitationStatus::Scheduled, 0),
        with("a", "future", 30, now + 1, InvitationStatus::Scheduled, 0),
        with(
            "b",
            "lease-ran-out",
            40,
            now - 20,
            InvitationStatus::Sending,
            now - 1,
        ),
        with(
            "a",
            "lease-holds",
            50,
            now - 40,
            InvitationStatus::Sending,
            now + 1,
        ),
        with(
            "b",
            "lease-ends-now",
            55,
            now - 45,
            InvitationStatus::Sending,
            now,
        ),
        with("b", "sent", 60, now - 50, InvitationStatus::Sent, 0),
        with(
            "a",
            "oldest-due",
            70,
            now - 30,
            InvitationStatus::Scheduled,
            0,
        ),
    ] {
        assert!(s.create_invitation(&i).await.unwrap());
    }
    // WHEN they are listed, and the due ones asked for
    let all = s.list_invitations(None, 100).await.unwrap();
    let top = s.list_invitations(None, 3).await.unwrap();
    let of_a = s.list_invitations(Some("a"), 2).await.unwrap();
    let due = s.due_invitations(now, 100).await.unwrap();
    let first_due = s.due_invitations(now, 2).await.unwrap();
    // THEN lists run newest first, per connection or across all, up to the limit
    assert_eq!(
        orders(&all),
        [
            ("a", "oldest-due"),
            ("b", "sent"),
            ("b", "lease-ends-now"),
            ("a", "lease-holds"),
            ("b", "lease-ran-out"),
            ("a", "future"),
            ("b", "exactly-now"),
            ("a", "late"),
        ]
    );
    assert_eq!(orders(&top), orders(&all[..3]));
    assert_eq!(orders(&of_a), [("a", "oldest-due"), ("a", "lease-holds")]);
    assert!(s.list_invitations(Some("c"), 10).await.unwrap().is_empty());
    // AND due ones are the scheduled ones due by now and the sends whose lease ran out,
    // oldest due first
    assert_eq!(
        orders(&due),
        [
            ("a", "oldest-due"),
            ("b", "lease-ran-out"),
            ("a", "late"),
            ("b", "exactly-now"),
        ]
    );
    assert_eq!(orders(&first_due), orders(&due[..2]));
}

#[tokio::test]
async fn a_contact_claim_holds_against_other_claimants_only_within_the_cap() {
    let (s, client) = store().await;
    let cap = 30 * DAY_MS;
    let t0 = 20_000 * DAY_MS;
    // The first claim holds, and so does a repeat by the same claimant (a retried delivery).
    assert!(s
        .claim_contact("s", "ana@x.co", "inv-a", t0, cap)
        .await
        .unwrap());
    assert!(s
        .claim_contact("s", "ana@x.co", "inv-a", t0, cap)
        .await
        .unwrap());
    // Another claimant within the cap does not hold, up to the last millisecond of it.
    assert!(!s
        .claim_contact("s", "ana@x.co", "inv-b", t0 + DAY_MS, cap)
        .await
        .unwrap());
    assert!(!s
        .claim_contact("s", "ana@x.co", "inv-b", t0 + cap - 1, cap)
        .await
        .unwrap());
    // The record is the holder's, kept until its cap runs out.
    let item = client
        .get_item()
        .table_name(s.table())
        .key("pk", AttributeValue::S("CONTACT#s".into()))
        .key("sk", AttributeValue::S("ana@x.co".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["by"].as_s().unwrap(), "inv-a");
    assert_eq!(item["at"].as_n().unwrap(), &t0.to_string());
    assert_eq!(
        item["ttl"].as_n().unwrap(),
        &((t0 + cap) / 1000 + 1).to_string()
    );
    // Once the cap has passed the other claimant holds, and the first is now the other one.
    assert!(s
        .claim_contact("s", "ana@x.co", "inv-b", t0 + cap, cap)
        .await
        .unwrap());
    assert!(!s
        .claim_contact("s", "ana@x.co", "inv-a", t0 + cap + 1, cap)
        .await
        .unwrap());
    // Other surveys and contacts are apart, and without a cap every claim holds.
    assert!(s
        .claim_contact("t", "ana@x.co", "inv-c", t0, cap)
        .await
        .unwrap());
    assert!(s
        .claim_contact("s", "bo@x.co", "inv-c", t0, cap)
        .await
        .unwrap());
    assert!(s
        .claim_contact("s", "ana@x.co", "inv-d", t0 + cap + 2, 0)
        .await
        .unwrap());
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
