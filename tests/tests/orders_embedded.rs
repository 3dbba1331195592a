//! The local-mode store of connections, invitations and frequency-cap claims (SQLite) against
//! the order store contract, and what it keeps across a reopening of its file.

use sondeo_domain::orders::{Invitation, InvitationStatus, WebhookSecret};
use sondeo_domain::ports::{ConnectionStore, InvitationStore};
use sondeo_embedded::EmbeddedStore;
use sondeo_tests::order_store_contract::{connection, invitation};

sondeo_tests::order_store_contract_tests!(EmbeddedStore::in_memory().unwrap());

#[tokio::test]
async fn connections_invitations_and_claims_outlive_the_store_that_wrote_them() {
    // GIVEN a store in a file, holding a connection, an invitation claimed by a sender and a
    // contact claim
    let dir = std::env::temp_dir().join(format!("sondeo-orders-{:08x}", rand::random::<u32>()));
    let path = dir.join("sondeo.db");
    let cap = 30 * 86_400_000;
    let shop = connection("tienda-sol");
    let seen = invitation("tienda-sol", "1001", 1_000, 5_000);
    let claimed = Invitation {
        status: InvitationStatus::Sending,
        attempts: 1,
        lease_until: 9_000,
        ..seen.clone()
    };
    {
        let store = EmbeddedStore::open(&path).unwrap();
        let secret = WebhookSecret::new("shpss_0123456789abcdef").unwrap();
        store.put_connection(&shop, &secret).await.unwrap();
        assert!(store.create_invitation(&seen).await.unwrap());
        assert!(store.replace_invitation(&seen, &claimed).await.unwrap());
        assert!(store
            .claim_contact("nps-2026", "ana@example.com", "tienda-sol/1001", 2_000, cap)
            .await
            .unwrap());
    }
    // WHEN the file is opened again
    let store = EmbeddedStore::open(&path).unwrap();
    // THEN all of it is there: the connection with its secret, the invitation as last replaced
    // (and still only replaceable from that state), and the claim, still held
    let (read, secret) = store.get_connection("tienda-sol").await.unwrap().unwrap();
    assert_eq!((read, secret.expose()), (shop, "shpss_0123456789abcdef"));
    assert_eq!(
        store.get_invitation("tienda-sol", "1001").await.unwrap(),
        Some(claimed.clone())
    );
    assert_eq!(
        store.list_invitations(None, None, 10).await.unwrap(),
        std::slice::from_ref(&claimed)
    );
    assert!(store.due_invitations(9_000, 10).await.unwrap().is_empty());
    assert_eq!(
        store.due_invitations(9_001, 10).await.unwrap(),
        std::slice::from_ref(&claimed)
    );
    assert!(!store.create_invitation(&seen).await.unwrap());
    assert!(!store.replace_invitation(&seen, &claimed).await.unwrap());
    assert!(!store
        .claim_contact("nps-2026", "ana@example.com", "tienda-sol/1002", 3_000, cap)
        .await
        .unwrap());
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
