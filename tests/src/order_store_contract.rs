//! The behaviour every store of connections and invitations owes the domain
//! ([`ConnectionStore`], [`InvitationStore`]), as one function per behaviour that panics when the
//! store at hand falls short. [`order_store_contract_tests!`](crate::order_store_contract_tests)
//! turns them into one test each against a store; each function expects a fresh, empty store.

use futures::future::join_all;
use sondeo_domain::orders::{
    listing_order, new_invitation, Connection, Invitation, InvitationCursor, InvitationStatus,
    OrderEvent, Platform, WebhookSecret,
};
use sondeo_domain::ports::{ConnectionStore, InvitationStore, StoreError};

const DAY_MS: i64 = 86_400_000;

/// A valid connection feeding the `nps-2026` survey.
pub fn connection(id: &str) -> Connection {
    Connection {
        id: id.into(),
        platform: Platform::Shopify,
        survey: "nps-2026".into(),
        touchpoint: "post-purchase".into(),
        delay_minutes: 4320,
        sender: "Tienda Sol <hola@tiendasol.example>".into(),
        store_name: "Tienda Sol".into(),
    }
}

/// A scheduled invitation of one order to Ana, never attempted, as the domain builds it.
pub fn invitation(connection: &str, order: &str, created_at: i64, due_at: i64) -> Invitation {
    let event = OrderEvent {
        order_id: order.into(),
        order_ref: format!("#{order}"),
        email: Some("ana@example.com".into()),
        name: Some("Ana".into()),
        delivery_id: None,
    };
    let built = new_invitation(&self::connection(connection), &event, created_at).unwrap();
    Invitation { due_at, ..built }
}

/// Saves a connection under each id, for the invitations of all connections to be theirs (what a
/// store lists of an invitation whose connection is gone is no part of the contract).
async fn put_connections<S: ConnectionStore + ?Sized>(store: &S, ids: &[&str]) {
    let secret = WebhookSecret::new("s").unwrap();
    for id in ids {
        store
            .put_connection(&connection(id), &secret)
            .await
            .unwrap();
    }
}

/// The (connection, order) keys of a list, in its order.
fn keys(list: &[Invitation]) -> Vec<(&str, &str)> {
    list.iter()
        .map(|i| (i.connection.as_str(), i.order.as_str()))
        .collect()
}

/// A connection reads back with its secret, lists without it, is replaced whole and deleted once.
pub async fn a_connection_keeps_its_secret_apart_and_the_list_never_carries_it<S>(store: &S)
where
    S: ConnectionStore + ?Sized,
{
    // GIVEN two connections saved with their secrets, out of id order
    let b_shop = connection("b-shop");
    let a_shop = Connection {
        platform: Platform::Woocommerce,
        delay_minutes: 0,
        ..connection("a-shop")
    };
    let secret = WebhookSecret::new("shpss_0123456789abcdef").unwrap();
    store.put_connection(&b_shop, &secret).await.unwrap();
    let other = WebhookSecret::new("wc_secret_0123456789").unwrap();
    store.put_connection(&a_shop, &other).await.unwrap();
    // WHEN one is read back, and all are listed
    let (read, read_secret) = store.get_connection("b-shop").await.unwrap().unwrap();
    let listed = store.list_connections().await.unwrap();
    // THEN the read has the document and its own secret; the list holds the documents (which
    // have no secret) ordered by id
    assert_eq!(read, b_shop);
    assert_eq!(read_secret.expose(), "shpss_0123456789abcdef");
    assert_eq!(listed, vec![a_shop.clone(), b_shop.clone()]);
    assert_eq!(store.get_connection("c-shop").await.unwrap(), None);
    // AND the settings alone (what the mail function reads) are the same document
    let settings = store.get_connection_settings("b-shop").await.unwrap();
    assert_eq!(settings, Some(b_shop.clone()));
    assert_eq!(store.get_connection_settings("c-shop").await.unwrap(), None);
    // AND saving one again replaces its document and its secret, and only its own
    let moved = Connection {
        touchpoint: "delivered".into(),
        ..b_shop
    };
    let rotated = WebhookSecret::new("rotated").unwrap();
    store.put_connection(&moved, &rotated).await.unwrap();
    let (now, now_secret) = store.get_connection("b-shop").await.unwrap().unwrap();
    assert_eq!((now, now_secret.expose()), (moved, "rotated"));
    let (_, kept) = store.get_connection("a-shop").await.unwrap().unwrap();
    assert_eq!(kept.expose(), "wc_secret_0123456789");
    // AND deleting says whether there was one to delete, and leaves the others
    assert!(store.delete_connection("b-shop").await.unwrap());
    assert!(!store.delete_connection("b-shop").await.unwrap());
    assert_eq!(store.get_connection("b-shop").await.unwrap(), None);
    assert_eq!(store.list_connections().await.unwrap(), vec![a_shop]);
}

/// Creating an order's invitation again stores nothing; another connection's same order is apart.
pub async fn an_order_gets_one_invitation_however_often_it_is_created<S>(store: &S)
where
    S: InvitationStore + ?Sized,
{
    let first = invitation("shop", "1001", 1_000, 5_000);
    assert!(store.create_invitation(&first).await.unwrap());
    // A later delivery with other details neither stores nor changes anything.
    let again = Invitation {
        email: "someone-else@example.com".into(),
        created_at: 2_000,
        ..first.clone()
    };
    assert!(!store.create_invitation(&again).await.unwrap());
    assert_eq!(
        store.get_invitation("shop", "1001").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.get_invitation("shop", "1002").await.unwrap(), None);
    // The same order id under another connection is another invitation.
    let elsewhere = Invitation {
        email: "bo@example.com".into(),
        ..invitation("other-shop", "1001", 1_500, 6_000)
    };
    assert!(store.create_invitation(&elsewhere).await.unwrap());
    assert_eq!(
        store.get_invitation("other-shop", "1001").await.unwrap(),
        Some(elsewhere)
    );
    assert_eq!(
        store.get_invitation("shop", "1001").await.unwrap(),
        Some(first)
    );
}

/// Five deliveries creating one order's invitation at once store exactly one, the one read back.
pub async fn an_order_created_by_five_deliveries_at_once_gets_exactly_one_invitation<S>(store: &S)
where
    S: InvitationStore + ?Sized,
{
    // GIVEN five deliveries of one order, each building its own invitation
    let mine: Vec<Invitation> = (0..5)
        .map(|i| Invitation {
            email: format!("delivery-{i}@example.com"),
            ..invitation("shop", "1001", 1_000 + i, 5_000)
        })
        .collect();
    // WHEN they all create it at once
    let stored = join_all(mine.iter().map(|i| store.create_invitation(i))).await;
    // THEN exactly one was stored, and it is the one read back
    let created: Vec<&Invitation> = mine
        .iter()
        .zip(stored)
        .filter_map(|(i, stored)| stored.unwrap().then_some(i))
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        store.get_invitation("shop", "1001").await.unwrap().as_ref(),
        Some(created[0])
    );
    assert_eq!(store.get_invitation("shop", "1002").await.unwrap(), None);
}

/// A replace holds only while status, attempts and lease are as seen, and never moves an invitation.
pub async fn a_replace_holds_only_while_status_attempts_and_lease_are_as_seen<S>(store: &S)
where
    S: InvitationStore + ?Sized,
{
    // GIVEN a stored invitation
    let seen = invitation("shop", "1001", 1_000, 5_000);
    assert!(store.create_invitation(&seen).await.unwrap());
    let claim = |lease| Invitation {
        status: InvitationStatus::Sending,
        attempts: 1,
        lease_until: lease,
        ..seen.clone()
    };
    // WHEN two senders claim it from the same read
    let first = store
        .replace_invitation(&seen, &claim(9_000))
        .await
        .unwrap();
    let second = store
        .replace_invitation(&seen, &claim(9_500))
        .await
        .unwrap();
    // THEN only the first holds
    assert!(first && !second);
    assert_eq!(
        store.get_invitation("shop", "1001").await.unwrap(),
        Some(claim(9_000))
    );
    // AND a read differing only in status, only in attempts or only in lease is stale too
    let sent = Invitation {
        status: InvitationStatus::Sent,
        lease_until: 0,
        sent_at: Some(9_100),
        message_id: Some("m-1".into()),
        ..claim(9_000)
    };
    let stale_status = Invitation {
        status: InvitationStatus::Scheduled,
        ..claim(9_000)
    };
    let stale_attempts = Invitation {
        attempts: 2,
        ..claim(9_000)
    };
    for stale in [stale_status, stale_attempts, claim(9_001)] {
        assert!(
            !store.replace_invitation(&stale, &sent).await.unwrap(),
            "{stale:?}"
        );
    }
    assert_eq!(
        store.get_invitation("shop", "1001").await.unwrap(),
        Some(claim(9_000))
    );
    assert!(store
        .replace_invitation(&claim(9_000), &sent)
        .await
        .unwrap());
    assert_eq!(
        store.get_invitation("shop", "1001").await.unwrap(),
        Some(sent.clone())
    );
    // AND a missing invitation is never replaced (nor created by the attempt)
    let missing = invitation("shop", "404", 0, 0);
    assert!(!store.replace_invitation(&missing, &missing).await.unwrap());
    assert_eq!(store.get_invitation("shop", "404").await.unwrap(), None);
    // AND an invitation cannot become another order's, nor another connection's
    for elsewhere in [missing, invitation("other-shop", "1001", 1_000, 5_000)] {
        assert!(
            matches!(
                store.replace_invitation(&sent, &elsewhere).await,
                Err(StoreError::Permanent(_))
            ),
            "{elsewhere:?}"
        );
    }
    assert_eq!(
        store.get_invitation("shop", "1001").await.unwrap(),
        Some(sent)
    );
    assert_eq!(
        store.get_invitation("other-shop", "1001").await.unwrap(),
        None
    );
}

/// Invitations list newest first, of one connection or of all, whatever their status, up to a limit.
pub async fn invitations_list_newest_first_per_connection_or_all<S>(store: &S)
where
    S: ConnectionStore + InvitationStore + ?Sized,
{
    // GIVEN invitations of two connections, created in no particular order, in various states
    put_connections(store, &["a", "b"]).await;
    for (c, o, created, status) in [
        ("a", "1", 10, InvitationStatus::Sent),
        ("b", "2", 30, InvitationStatus::Scheduled),
        ("a", "3", 20, InvitationStatus::Sending),
        ("b", "4", 40, InvitationStatus::Skipped),
        ("a", "5", 50, InvitationStatus::Failed),
    ] {
        let i = Invitation {
            status,
            ..invitation(c, o, created, created)
        };
        assert!(store.create_invitation(&i).await.unwrap());
    }
    // WHEN they are listed, all or per connection, THEN newest first, up to the limit
    let all = store.list_invitations(None, None, 10).await.unwrap();
    let newest_first = [("a", "5"), ("b", "4"), ("b", "2"), ("a", "3"), ("a", "1")];
    assert_eq!(keys(&all), newest_first);
    let unlimited = store
        .list_invitations(None, None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(unlimited, all);
    let top = store.list_invitations(None, None, 3).await.unwrap();
    assert_eq!(keys(&top), newest_first[..3]);
    let a = store.list_invitations(Some("a"), None, 10).await.unwrap();
    assert_eq!(keys(&a), [("a", "5"), ("a", "3"), ("a", "1")]);
    let top_of_a = store.list_invitations(Some("a"), None, 2).await.unwrap();
    assert_eq!(keys(&top_of_a), [("a", "5"), ("a", "3")]);
    let b = store.list_invitations(Some("b"), None, 10).await.unwrap();
    assert_eq!(keys(&b), [("b", "4"), ("b", "2")]);
    // AND the invitations listed are the ones stored
    assert_eq!(
        Some(&all[0]),
        store.get_invitation("a", "5").await.unwrap().as_ref()
    );
    // AND a connection without invitations, or a limit of 0, lists nothing
    let nothing = [
        store.list_invitations(Some("c"), None, 10).await.unwrap(),
        store.list_invitations(None, None, 0).await.unwrap(),
        store.list_invitations(Some("a"), None, 0).await.unwrap(),
    ];
    assert!(nothing.iter().all(Vec::is_empty), "{nothing:?}");
}

/// Paging with a cursor after the last listed invitation goes through every invitation once, in
/// the order of one long list, also across invitations created in the same millisecond.
pub async fn invitation_pages_after_a_cursor_never_skip_or_repeat<S>(store: &S)
where
    S: ConnectionStore + InvitationStore + ?Sized,
{
    // GIVEN 23 invitations of three connections, many created at the same time
    put_connections(store, &["a", "b", "c"]).await;
    for n in 0..23 {
        let c = ["a", "b", "c"][n % 3];
        let created = [100, 200, 200, 200, 300][n % 5];
        let i = invitation(c, &format!("o{n:02}"), created, created);
        assert!(store.create_invitation(&i).await.unwrap());
    }
    for connection in [None, Some("b")] {
        let whole = store
            .list_invitations(connection, None, 1000)
            .await
            .unwrap();
        assert_eq!(
            whole.len(),
            if connection.is_some() { 8 } else { 23 },
            "{connection:?}"
        );
        let mut sorted = whole.clone();
        sorted.sort_by(listing_order);
        assert_eq!(
            keys(&whole),
            keys(&sorted),
            "one long list is in listing order"
        );
        for limit in [1, 2, 4, 7] {
            // WHEN it is read page by page, each page after the last one's final invitation
            let mut paged: Vec<Invitation> = Vec::new();
            let mut after: Option<InvitationCursor> = None;
            loop {
                let page = store
                    .list_invitations(connection, after.as_ref(), limit)
                    .await
                    .unwrap();
                assert!(page.len() <= limit);
                let Some(last) = page.last() else { break };
                after = Some(InvitationCursor::after(last));
                paged.extend(page);
            }
            // THEN the pages put together are the long list: nothing skipped, nothing twice
            assert_eq!(keys(&paged), keys(&whole), "{connection:?}, {limit} a page");
        }
    }
}

/// Due invitations are the scheduled ones due by now and the sends whose lease ran out, oldest due
/// first, up to a limit.
pub async fn due_invitations_are_scheduled_ones_due_and_stale_sends_oldest_first<S>(store: &S)
where
    S: ConnectionStore + InvitationStore + ?Sized,
{
    // GIVEN invitations of two connections due at various times, in every status, created in an
    // order unlike their due order
    put_connections(store, &["a", "b"]).await;
    let now = 1_000_000;
    let with = |c: &str, order: &str, created, due, status, lease| Invitation {
        status,
        lease_until: lease,
        ..invitation(c, order, created, due)
    };
    use InvitationStatus::{Failed, Scheduled, Sending, Sent, Skipped};
    for i in [
        with("a", "late", 10, now - 10, Scheduled, 0),
        with("b", "exactly-now", 20, now, Scheduled, 0),
        with("a", "future", 30, now + 1, Scheduled, 0),
        with("b", "lease-ran-out", 40, now - 20, Sending, now - 1),
        with("a", "lease-holds", 50, now - 40, Sending, now + 1),
        with("b", "lease-ends-now", 55, now - 45, Sending, now),
        with("b", "sent", 60, now - 60, Sent, 0),
        with("a", "skipped", 65, now - 60, Skipped, 0),
        with("b", "failed", 67, now - 60, Failed, 0),
        with("a", "oldest", 70, now - 30, Scheduled, 0),
    ] {
        assert!(store.create_invitation(&i).await.unwrap());
    }
    // WHEN the due ones are asked for
    let due = store.due_invitations(now, 100).await.unwrap();
    // THEN scheduled ones due by now and sending ones whose lease ran out come, oldest due first,
    // whichever connection they belong to
    let oldest_due_first = [
        ("a", "oldest"),
        ("b", "lease-ran-out"),
        ("a", "late"),
        ("b", "exactly-now"),
    ];
    assert_eq!(keys(&due), oldest_due_first);
    assert_eq!(
        Some(&due[0]),
        store.get_invitation("a", "oldest").await.unwrap().as_ref()
    );
    // AND a limit keeps the oldest
    let first_two = store.due_invitations(now, 2).await.unwrap();
    assert_eq!(keys(&first_two), oldest_due_first[..2]);
    let unlimited = store.due_invitations(now, usize::MAX).await.unwrap();
    assert_eq!(unlimited, due);
    assert!(store.due_invitations(now, 0).await.unwrap().is_empty());
}

/// A contact claim holds against other claimants only within the cap of the holder's last claim.
pub async fn a_contact_claim_holds_against_other_claimants_only_within_the_cap<S>(store: &S)
where
    S: InvitationStore + ?Sized,
{
    let cap = 30 * DAY_MS;
    let t0 = 20_000 * DAY_MS;
    let claim =
        |survey: &'static str, contact: &'static str, claimant: &'static str, at, cap_ms| {
            store.claim_contact(survey, contact, claimant, at, cap_ms)
        };
    // The first claim holds, and so does its repeat (a retried delivery), even a day later.
    assert!(claim("s", "ana@x.co", "inv-a", t0, cap).await.unwrap());
    assert!(claim("s", "ana@x.co", "inv-a", t0, cap).await.unwrap());
    assert!(claim("s", "ana@x.co", "inv-a", t0 + DAY_MS, cap)
        .await
        .unwrap());
    // Another claimant within the cap does not hold: the cap runs from the holder's last claim...
    assert!(!claim("s", "ana@x.co", "inv-b", t0 + DAY_MS, cap)
        .await
        .unwrap());
    assert!(!claim("s", "ana@x.co", "inv-b", t0 + cap, cap)
        .await
        .unwrap());
    // ...up to its last millisecond, however often the other one tried meanwhile.
    assert!(!claim("s", "ana@x.co", "inv-b", t0 + DAY_MS + cap - 1, cap)
        .await
        .unwrap());
    // Once the cap has passed it holds, and then the earlier claimant is the other one.
    let t1 = t0 + DAY_MS + cap;
    assert!(claim("s", "ana@x.co", "inv-b", t1, cap).await.unwrap());
    assert!(!claim("s", "ana@x.co", "inv-a", t1 + 1, cap).await.unwrap());
    // Other surveys and other contacts are claimed apart.
    assert!(claim("t", "ana@x.co", "inv-c", t1, cap).await.unwrap());
    assert!(claim("s", "bo@x.co", "inv-c", t1, cap).await.unwrap());
    // Without a cap every claim holds, and takes nothing from the holder.
    assert!(claim("s", "ana@x.co", "inv-d", t1 + 2, 0).await.unwrap());
    assert!(claim("s", "ana@x.co", "inv-e", t1 + 3, 0).await.unwrap());
    assert!(!claim("s", "ana@x.co", "inv-d", t1 + 4, cap).await.unwrap());
    assert!(claim("s", "ana@x.co", "inv-b", t1 + 5, cap).await.unwrap());
}

/// A claim given back by its holder (its invitation failed) lets another claimant hold within
/// the cap; one given back by anyone else stays.
pub async fn a_contact_claim_given_back_by_its_holder_frees_the_contact<S>(store: &S)
where
    S: InvitationStore + ?Sized,
{
    let cap = 30 * DAY_MS;
    let t0 = 20_000 * DAY_MS;
    assert!(store
        .claim_contact("s", "ana@x.co", "inv-a", t0, cap)
        .await
        .unwrap());
    // Someone else giving it back changes nothing; nor does giving back what nobody holds.
    store
        .release_contact("s", "ana@x.co", "inv-b")
        .await
        .unwrap();
    store
        .release_contact("s", "bo@x.co", "inv-a")
        .await
        .unwrap();
    assert!(!store
        .claim_contact("s", "ana@x.co", "inv-b", t0 + DAY_MS, cap)
        .await
        .unwrap());
    // The holder gives it back: the next order within the cap may invite.
    store
        .release_contact("s", "ana@x.co", "inv-a")
        .await
        .unwrap();
    store
        .release_contact("s", "ana@x.co", "inv-a")
        .await
        .unwrap();
    assert!(store
        .claim_contact("s", "ana@x.co", "inv-b", t0 + DAY_MS, cap)
        .await
        .unwrap());
    assert!(!store
        .claim_contact("s", "ana@x.co", "inv-a", t0 + 2 * DAY_MS, cap)
        .await
        .unwrap());
}

/// One `#[tokio::test]` per contract function, each on a fresh store from `$store` (an expression
/// evaluated inside the async test, so it may `.await`).
#[macro_export]
macro_rules! order_store_contract_tests {
    ($store:expr) => {
        $crate::order_store_contract_tests!(
            $store;
            a_connection_keeps_its_secret_apart_and_the_list_never_carries_it,
            an_order_gets_one_invitation_however_often_it_is_created,
            an_order_created_by_five_deliveries_at_once_gets_exactly_one_invitation,
            a_replace_holds_only_while_status_attempts_and_lease_are_as_seen,
            invitations_list_newest_first_per_connection_or_all,
            invitation_pages_after_a_cursor_never_skip_or_repeat,
            due_invitations_are_scheduled_ones_due_and_stale_sends_oldest_first,
            a_contact_claim_holds_against_other_claimants_only_within_the_cap,
            a_contact_claim_given_back_by_its_holder_frees_the_contact,
        );
    };
    ($store:expr; $($behaviour:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $behaviour() {
                let store = $store;
                $crate::order_store_contract::$behaviour(&store).await;
            }
        )+
    };
}
