//! Response pages for local mode: a survey's stored responses newest first, through the
//! `responses_time` index.

use crate::{db_err, EmbeddedStore};
use async_trait::async_trait;
use rusqlite::params;
use sondeo_domain::explore::{ResponseCursor, StoredResponse};
use sondeo_domain::ports::{ResponseReader, StoreError};
use sondeo_domain::response::ResponseEvent;

#[async_trait]
impl ResponseReader for EmbeddedStore {
    async fn responses_page(
        &self,
        survey: &str,
        from_ms: i64,
        to_ms: i64,
        after: Option<&ResponseCursor>,
        limit: usize,
    ) -> Result<Vec<StoredResponse>, StoreError> {
        let survey = survey.to_string();
        // Without a cursor, start just past the newest possible key at `to_ms`.
        let (at, id) = match after {
            Some(c) => (c.answered_at.min(to_ms), c.id.clone()),
            None => (to_ms, String::new()),
        };
        let strict_at = after.is_none() || at < after.map_or(i64::MAX, |c| c.answered_at);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT digest, doc, automated FROM responses
                     WHERE survey = ?1 AND answered_at >= ?2
                       AND (answered_at < ?3 OR (answered_at = ?3 AND ?4 = 0 AND digest < ?5))
                     ORDER BY answered_at DESC, digest DESC LIMIT ?6",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![survey, from_ms, at, strict_at, id, limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, bool>(2)?,
                    ))
                })
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            rows.into_iter()
                .map(|(id, doc, automated)| {
                    let event: ResponseEvent = serde_json::from_str(&doc).map_err(|e| {
                        StoreError::Permanent(format!("stored response '{id}' is corrupt: {e}"))
                    })?;
                    Ok(StoredResponse {
                        id,
                        event,
                        automated,
                    })
                })
                .collect()
        })
        .await
    }
}
