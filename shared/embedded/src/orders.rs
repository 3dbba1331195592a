//! Post-order storage for local mode: store connections (the signing secret in its own column,
//! never read by the list), invitations (one row per connection and order, replaced only by
//! compare-and-set) and the frequency-cap claims of who was invited to which survey when.

use crate::{db_err, EmbeddedStore};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use sondeo_domain::orders::{
    Connection, Invitation, InvitationCursor, InvitationStatus, WebhookSecret,
};
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
        after: Option<&InvitationCursor>,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError> {
        let connection = connection.map(str::to_owned);
        let after = after.cloned();
        let limit = sql_limit(limit);
        let docs = self
            .call(move |conn| {
                // A NULL parameter switches its filter off. The cursor keeps what follows the
                // last listed invitation in the listing order (created_at DESC, connection, ord).
                let (at, after_connection, after_order) = match &after {
                    Some(c) => (
                        Some(c.created_at),
                        Some(c.connection.as_str()),
                        Some(c.order.as_str()),
                    ),
                    None => (None, None, None),
                };
                conn.prepare_cached(
                    "SELECT doc FROM invitations
                     WHERE (?1 IS NULL OR connection = ?1)
                       AND (?2 IS NULL OR created_at < ?2
                            OR (created_at = ?2 AND (connection > ?3
                                OR (connection = ?3 AND ord > ?4))))
                     ORDER BY created_at DESC, connection, ord LIMIT ?5",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![connection, at, after_connection, after_order, limit],
                        |r| r.get(0),
                    )?
                    .collect::<Result<Vec<String>, _>>()
                })
                .map_err(db_err)
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

    async fn release_contact(
        &self,
        survey: &str,
        contact: &str,
        claimant: &str,
    ) -> Result<(), StoreError> {
        let row = (survey.to_owned(), contact.to_owned(), claimant.to_owned());
        self.call(move |conn| {
            conn.prepare_cached(
                "DELETE FROM contacts WHERE survey = ?1 AND contact = ?2 AND claimant = ?3",
            )
            .and_then(|mut s| s.execute(params![row.0, row.1, row.2]))
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The behaviour of both ports is the order store contract's (tests/src/order_store_contract.rs,
    // run on this store by tests/tests/orders_embedded.rs); here only what SQL alone can see.

    #[tokio::test]
    async fn the_secret_has_a_column_of_its_own_and_the_document_never_holds_it() {
        let store = EmbeddedStore::in_memory().unwrap();
        let shop: Connection = serde_json::from_str(
            r#"{"id": "shop", "platform": "shopify", "survey": "s", "touchpoint": "t",
                "sender": "hola@tiendasol.example", "store_name": "Tienda Sol"}"#,
        )
        .unwrap();
        let secret = WebhookSecret::new("shpss_0123456789abcdef").unwrap();
        store.put_connection(&shop, &secret).await.unwrap();
        let (doc, stored): (String, String) = store
            .call(|conn| {
                conn.query_row("SELECT doc, secret FROM connections", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(db_err)
            })
            .await
            .unwrap();
        assert!(!doc.contains("shpss"), "{doc}");
        assert_eq!(serde_json::from_str::<Connection>(&doc).unwrap(), shop);
        assert_eq!(stored, "shpss_0123456789abcdef");
    }
}
