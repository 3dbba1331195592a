//! Post-order storage for local mode: store connections (the signing secret in its own column,
//! never read by the list), invitations (one row per connection and order, replaced only by
//! compare-and-set) and the frequency-cap claims of who was invited to which survey when.

use crate::{db_err, EmbeddedStore};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use sondeo_domain::orders::{Connection, Invitation, InvitationStatus, WebhookSecret};
use sondeo_domain::ports::{ConnectionStore, InvitationStore, StoreError};

/// Why a document cannot be stored.
fn unserialisable(e: serde_json::Error) -> StoreError {
    StoreError::Permanent(e.to_string())
}

/// A stored connection document.
fn parse_connection(doc: &str) -> Result<Connection, StoreError> {
    serde_json::from_str(doc)
        .map_err(|e| StoreError::Permanent(format!("stored connection is corrupt: {e}")))
}

/// A stored invitation document.
fn parse_invitation(doc: &str) -> Result<Invitation, StoreError> {
    serde_json::from_str(doc)
        .map_err(|e| StoreError::Permanent(format!("stored invitation is corrupt: {e}")))
}

/// Stored invitation documents as invitations.
fn invitations(docs: Vec<String>) -> Result<Vec<Invitation>, StoreError> {
    docs.iter().map(|d| parse_invitation(d)).collect()
}

/// A row count as a SQL `LIMIT` (anything beyond `i64::MAX` is no limit at all).
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl ConnectionStore for EmbeddedStore {
    async fn put_connection(
        &self,
        connection: &Connection,
        secret: &WebhookSecret,
    ) -> Result<(), StoreError> {
        let doc = serde_json::to_string(connection).map_err(unserialisable)?;
        let id = connection.id.clone();
        let secret = secret.expose().to_owned();
        self.call(move |conn| {
            conn.prepare_cached(
                "INSERT INTO connections (id, doc, secret) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, secret = excluded.secret",
            )
            .and_then(|mut s| s.execute(params![id, doc, secret]))
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_connection(
        &self,
        id: &str,
    ) -> Result<Option<(Connection, WebhookSecret)>, StoreError> {
        let id = id.to_owned();
        let row: Option<(String, String)> = self
            .call(move |conn| {
                conn.prepare_cached("SELECT doc, secret FROM connections WHERE id = ?1")
                    .and_then(|mut s| {
                        s.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(db_err)
            })
            .await?;
        let Some((doc, secret)) = row else {
            return Ok(None);
        };
        let connection = parse_connection(&doc)?;
        let secret = WebhookSecret::new(secret).map_err(|e| {
            StoreError::Permanent(format!(
                "stored secret of connection '{}' is unusable: {e}",
                connection.id
            ))
        })?;
        Ok(Some((connection, secret)))
    }

    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        let docs: Vec<String> = self
            .call(|conn| {
                let mut stmt = conn
                    .prepare_cached("SELECT doc FROM connections ORDER BY id")
                    .map_err(db_err)?;
                let docs = stmt
                    .query_map([], |r| r.get(0))
                    .map_err(db_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_err)?;
                Ok(docs)
            })
            .await?;
        docs.iter().map(|d| parse_connection(d)).collect()
    }

    async fn delete_connection(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.prepare_cached("DELETE FROM connections WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id]))
                .map(|n| n > 0)
                .map_err(db_err)
        })
        .await
    }
}

#[async_trait]
impl InvitationStore for EmbeddedStore {
    async fn create_invitation(&self, invitation: &Invitation) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(invitation).map_err(unserialisable)?;
        let i = invitation.clone();
        self.call(move |conn| {
            conn.prepare_cached(
                "INSERT INTO invitations
                   (connection, ord, created_at, due_at, status, attempts, lease_until, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (connection, ord) DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    i.connection,
                    i.order,
                    i.created_at,
                    i.due_at,
                    i.status.as_str(),
                    i.attempts,
                    i.lease_until,
                    doc
                ])
            })
            .map(|n| n > 0)
            .map_err(db_err)
        })
        .await
    }

    async fn get_invitation(
        &self,
        connection: &str,
        order: &str,
    ) -> Result<Option<Invitation>, StoreError> {
        let key = (connection.to_owned(), order.to_owned());
        let doc: Option<String> = self
            .call(move |conn| {
                conn.prepare_cached(
                    "SELECT doc FROM invitations WHERE connection = ?1 AND ord = ?2",
                )
                .and_then(|mut s| s.query_row(params![key.0, key.1], |r| r.get(0)).optional())
                .map_err(db_err)
            })
            .await?;
        doc.as_deref().map(parse_invitation).transpose()
    }

    async fn replace_invitation(
        &self,
        seen: &Invitation,
        next: &Invitation,
    ) -> Result<bool, StoreError> {
        if (&seen.connection, &seen.order) != (&next.connection, &next.order) {
            return Err(StoreError::Permanent(format!(
                "an invitation cannot move from order '{}' of '{}' to order '{}' of '{}'",
                seen.order, seen.connection, next.order, next.connection
            )));
        }
        let doc = serde_json::to_string(next).map_err(unserialisable)?;
        let (seen, next) = (seen.clone(), next.clone());
        self.call(move |conn| {
            conn.prepare_cached(
                "UPDATE invitations SET created_at = ?3, due_at = ?4, status = ?5, attempts = ?6,
                   lease_until = ?7, doc = ?8
                 WHERE connection = ?1 AND ord = ?2
                   AND status = ?9 AND attempts = ?10 AND lease_until = ?11",
            )
            .and_then(|mut s| {
                s.execute(params![
                    next.connection,
                    next.order,
                    next.created_at,
                    next.due_at,
                    next.status.as_str(),
                    next.attempts,
                    next.lease_until,
                    doc,
                    seen.status.as_str(),
                    seen.attempts,
                    seen.lease_until
                ])
            })
            .map(|n| n > 0)
            .map_err(db_err)
        })
        .await
    }

    async fn list_invitations(
        &self,
        connection: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError> {
        let connection = connection.map(str::to_owned);
        let limit = sql_limit(limit);
        let docs = self
            .call(move |conn| {
                let docs = match &connection {
                    Some(c) => conn
                        .prepare_cached(
                            "SELECT doc FROM invitations WHERE connection = ?1
                             ORDER BY created_at DESC, connection, ord LIMIT ?2",
                        )
                        .and_then(|mut s| {
                            s.query_map(params![c, limit], |r| r.get(0))?
                                .collect::<Result<Vec<String>, _>>()
                        }),
                    None => conn
                        .prepare_cached(
                            "SELECT doc FROM invitations
                             ORDER BY created_at DESC, connection, ord LIMIT ?1",
                        )
                        .and_then(|mut s| {
                            s.query_map(params![limit], |r| r.get(0))?
                                .collect::<Result<Vec<String>, _>>()
                        }),
                };
                docs.map_err(db_err)
            })
            .await?;
        invitations(docs)
    }

    async fn due_invitations(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError> {
        let limit = sql_limit(limit);
        let (scheduled, sending) = (
            InvitationStatus::Scheduled.as_str(),
            InvitationStatus::Sending.as_str(),
        );
        let docs = self
            .call(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT doc FROM invitations
                         WHERE (status = ?1 AND due_at <= ?3) OR (status = ?2 AND lease_until < ?3)
                         ORDER BY due_at, connection, ord LIMIT ?4",
                    )
                    .map_err(db_err)?;
                let docs = stmt
                    .query_map(params![scheduled, sending, now_ms, limit], |r| r.get(0))
                    .map_err(db_err)?
                    .collect::<Result<Vec<String>, _>>()
                    .map_err(db_err)?;
                Ok(docs)
            })
            .await?;
        invitations(docs)
    }

    async fn claim_contact(
        &self,
        survey: &str,
        contact: &str,
        claimant: &str,
        at_ms: i64,
        cap_ms: i64,
    ) -> Result<bool, StoreError> {
        // Without a cap there is nothing to hold against anyone, and nothing to remember.
        if cap_ms <= 0 {
            return Ok(true);
        }
        let cutoff = at_ms.saturating_sub(cap_ms);
        let row = (survey.to_owned(), contact.to_owned(), claimant.to_owned());
        self.call(move |conn| {
            // One statement: the check and the write cannot be split by another claim.
            conn.prepare_cached(
                "INSERT INTO contacts (survey, contact, at, claimant) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (survey, contact) DO UPDATE SET at = excluded.at, claimant = excluded.claimant
                 WHERE contacts.claimant = excluded.claimant OR contacts.at <= ?5",
            )
            .and_then(|mut s| s.execute(params![row.0, row.1, at_ms, row.2, cutoff]))
            .map(|n| n > 0)
            .map_err(db_err)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sondeo_domain::orders::Platform;

    const DAY_MS: i64 = 86_400_000;

    fn connection(id: &str) -> Connection {
        Connection {
            id: id.into(),
            platform: Platform::Shopify,
            survey: "nps-2026".into(),
            touchpoint: "post-purchase".into(),
            delay_minutes: 60,
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

    fn keys(list: &[Invitation]) -> Vec<(&str, &str)> {
        list.iter()
            .map(|i| (i.connection.as_str(), i.order.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn a_connection_keeps_its_secret_apart_and_the_list_never_carries_it() {
        // GIVEN two connections saved with their secrets
        let store = EmbeddedStore::in_memory().unwrap();
        let secret = WebhookSecret::new("shpss_0123456789abcdef").unwrap();
        store
            .put_connection(&connection("b-shop"), &secret)
            .await
            .unwrap();
        store
            .put_connection(&connection("a-shop"), &WebhookSecret::new("other").unwrap())
            .await
            .unwrap();
        // WHEN one is read back, and all are listed
        let (read, read_secret) = store.get_connection("b-shop").await.unwrap().unwrap();
        let listed = store.list_connections().await.unwrap();
        // THEN the read has the document and the secret; the list is ordered and holds no secret
        assert_eq!(read, connection("b-shop"));
        assert_eq!(read_secret.expose(), "shpss_0123456789abcdef");
        assert_eq!(listed, vec![connection("a-shop"), connection("b-shop")]);
        let docs: Vec<String> = store
            .call(|conn| {
                let mut stmt = conn
                    .prepare("SELECT doc FROM connections")
                    .map_err(db_err)?;
                let docs = stmt
                    .query_map([], |r| r.get(0))
                    .map_err(db_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_err)?;
                Ok(docs)
            })
            .await
            .unwrap();
        assert!(docs.iter().all(|d| !d.contains("shpss")), "{docs:?}");
        // AND replacing a connection replaces its secret; deleting says whether it existed
        let rotated = WebhookSecret::new("rotated").unwrap();
        store
            .put_connection(&connection("b-shop"), &rotated)
            .await
            .unwrap();
        let (_, now) = store.get_connection("b-shop").await.unwrap().unwrap();
        assert_eq!(now.expose(), "rotated");
        assert!(store.delete_connection("b-shop").await.unwrap());
        assert!(!store.delete_connection("b-shop").await.unwrap());
        assert_eq!(store.get_connection("b-shop").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_order_gets_one_invitation_however_often_it_is_created() {
        let store = EmbeddedStore::in_memory().unwrap();
        let first = invitation("shop", "1001", 1_000, 5_000);
        assert!(store.create_invitation(&first).await.unwrap());
        let mut again = first.clone();
        again.email = "someone-else@example.com".into();
        assert!(!store.create_invitation(&again).await.unwrap());
        assert_eq!(
            store.get_invitation("shop", "1001").await.unwrap(),
            Some(first)
        );
        assert_eq!(store.get_invitation("shop", "1002").await.unwrap(), None);
        // The same order id under another connection is another invitation.
        assert!(store
            .create_invitation(&invitation("other-shop", "1001", 1_000, 5_000))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_replace_holds_only_while_status_attempts_and_lease_are_as_seen() {
        // GIVEN a stored invitation
        let store = EmbeddedStore::in_memory().unwrap();
        let seen = invitation("shop", "1001", 1_000, 5_000);
        store.create_invitation(&seen).await.unwrap();
        // WHEN two senders both claim it from the same read
        let claim = |lease| Invitation {
            status: InvitationStatus::Sending,
            attempts: 1,
            lease_until: lease,
            ..seen.clone()
        };
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
        // AND a replace from a read that differs only in attempts, or only in lease, fails too
        let stale_attempts = Invitation {
            attempts: 2,
            ..claim(9_000)
        };
        let stale_lease = claim(9_001);
        let sent = Invitation {
            status: InvitationStatus::Sent,
            ..claim(0)
        };
        assert!(!store
            .replace_invitation(&stale_attempts, &sent)
            .await
            .unwrap());
        assert!(!store.replace_invitation(&stale_lease, &sent).await.unwrap());
        assert!(store
            .replace_invitation(&claim(9_000), &sent)
            .await
            .unwrap());
        // AND an invitation cannot be replaced by another order's, nor a missing one replaced
        let other = invitation("shop", "1002", 1_000, 5_000);
        assert!(matches!(
            store.replace_invitation(&sent, &other).await,
            Err(StoreError::Permanent(_))
        ));
        assert!(!store.replace_invitation(&other, &other).await.unwrap());
    }

    #[tokio::test]
    async fn invitations_list_newest_first_per_connection_or_all() {
        let store = EmbeddedStore::in_memory().unwrap();
        for (c, o, created) in [
            ("a", "1", 10),
            ("b", "2", 30),
            ("a", "3", 20),
            ("b", "4", 40),
        ] {
            store
                .create_invitation(&invitation(c, o, created, created))
                .await
                .unwrap();
        }
        let all = store.list_invitations(None, 10).await.unwrap();
        assert_eq!(keys(&all), [("b", "4"), ("b", "2"), ("a", "3"), ("a", "1")]);
        let top = store.list_invitations(None, 2).await.unwrap();
        assert_eq!(keys(&top), [("b", "4"), ("b", "2")]);
        let a = store.list_invitations(Some("a"), 10).await.unwrap();
        assert_eq!(keys(&a), [("a", "3"), ("a", "1")]);
        assert!(store
            .list_invitations(Some("c"), 10)
            .await
            .unwrap()
            .is_empty());
        assert!(store.list_invitations(None, 0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn due_invitations_are_scheduled_ones_due_and_stale_sends_oldest_first() {
        // GIVEN invitations due at various times, in every status
        let store = EmbeddedStore::in_memory().unwrap();
        let now = 100_000;
        let with = |order: &str, due, status, lease| Invitation {
            status,
            lease_until: lease,
            ..invitation("shop", order, 0, due)
        };
        for i in [
            with("late", now - 10, InvitationStatus::Scheduled, 0),
            with("exactly-now", now, InvitationStatus::Scheduled, 0),
            with("future", now + 1, InvitationStatus::Scheduled, 0),
            with("oldest", now - 50, InvitationStatus::Scheduled, 0),
            with(
                "lease-ran-out",
                now - 20,
                InvitationStatus::Sending,
                now - 1,
            ),
            with("lease-ends-now", now - 30, InvitationStatus::Sending, now),
            with("lease-holds", now - 40, InvitationStatus::Sending, now + 1),
            with("sent", now - 60, InvitationStatus::Sent, 0),
            with("skipped", now - 60, InvitationStatus::Skipped, 0),
            with("failed", now - 60, InvitationStatus::Failed, 0),
        ] {
            store.create_invitation(&i).await.unwrap();
        }
        // WHEN the due ones are asked for
        let due = store.due_invitations(now, 10).await.unwrap();
        // THEN scheduled ones due by now and sending ones whose lease ran out come, oldest due first
        let orders: Vec<&str> = due.iter().map(|i| i.order.as_str()).collect();
        assert_eq!(orders, ["oldest", "lease-ran-out", "late", "exactly-now"]);
        let first_two = store.due_invitations(now, 2).await.unwrap();
        assert_eq!(
            keys(&first_two),
            [("shop", "oldest"), ("shop", "lease-ran-out")]
        );
    }

    #[tokio::test]
    async fn a_contact_claim_holds_against_other_claimants_only_within_the_cap() {
        let store = EmbeddedStore::in_memory().unwrap();
        let cap = 30 * DAY_MS;
        let t0 = 1_000 * DAY_MS;
        // The first claim holds, and so does its repeat (a retried delivery), even later.
        assert!(store
            .claim_contact("s", "ana@x.co", "inv-a", t0, cap)
            .await
            .unwrap());
        assert!(store
            .claim_contact("s", "ana@x.co", "inv-a", t0, cap)
            .await
            .unwrap());
        assert!(store
            .claim_contact("s", "ana@x.co", "inv-a", t0 + DAY_MS, cap)
            .await
            .unwrap());
        // Another claimant within the cap of the last claim does not hold...
        assert!(!store
            .claim_contact("s", "ana@x.co", "inv-b", t0 + cap, cap)
            .await
            .unwrap());
        // ...nor changes the record: the cap still runs from the first claimant's last claim.
        assert!(!store
            .claim_contact("s", "ana@x.co", "inv-b", t0 + DAY_MS + cap - 1, cap)
            .await
            .unwrap());
        // Once the cap has passed it holds, and then the earlier claimant is the other one.
        assert!(store
            .claim_contact("s", "ana@x.co", "inv-b", t0 + DAY_MS + cap, cap)
            .await
            .unwrap());
        assert!(!store
            .claim_contact("s", "ana@x.co", "inv-a", t0 + DAY_MS + cap + 1, cap)
            .await
            .unwrap());
        // Other surveys and other contacts are claimed apart; without a cap every claim holds.
        assert!(store
            .claim_contact("t", "ana@x.co", "inv-c", t0, cap)
            .await
            .unwrap());
        assert!(store
            .claim_contact("s", "bo@x.co", "inv-c", t0, cap)
            .await
            .unwrap());
        assert!(store
            .claim_contact("s", "ana@x.co", "inv-d", t0 + DAY_MS + cap + 2, 0)
            .await
            .unwrap());
    }
}
