//! Embedded storage for local mode: SQLite (bundled) holding surveys, records, counters and a
//! durable queue, implementing the same ports as the DynamoDB and SQS adapters.

#![warn(missing_docs)]

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use sondeo_domain::changes::{Chunk, RecordState};
use sondeo_domain::metrics::Histogram;
use sondeo_domain::ports::{
    CommitOutcome, CounterReader, CounterRow, ResponseLedger, ResponseQueue, StoreError,
    SurveyStore,
};
use sondeo_domain::response::{ResponseEvent, ResponseKey};
use sondeo_domain::survey::Survey;
use sondeo_domain::time::{now_ms, Day};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot};

/// Receives after which a local queue message moves to the dead-letter table (as SQS maxReceiveCount;
/// the literal 5 in the queue SQL matches it, so its partial index applies).
pub const MAX_RECEIVES: i64 = 5;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS surveys (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS responses (
  survey TEXT NOT NULL, digest TEXT NOT NULL, touchpoint TEXT NOT NULL, respondent TEXT NOT NULL,
  score INTEGER NOT NULL, slot INTEGER NOT NULL, day INTEGER NOT NULL,
  answered_at INTEGER NOT NULL, event_id TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (survey, digest));
CREATE TABLE IF NOT EXISTS counters (
  survey TEXT NOT NULL, day INTEGER NOT NULL, touchpoint TEXT NOT NULL, n INTEGER NOT NULL, sum INTEGER NOT NULL,
  PRIMARY KEY (survey, day, touchpoint));
CREATE TABLE IF NOT EXISTS counter_slots (
  survey TEXT NOT NULL, day INTEGER NOT NULL, touchpoint TEXT NOT NULL, slot INTEGER NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY (survey, day, touchpoint, slot));
CREATE TABLE IF NOT EXISTS rejected (message_id TEXT PRIMARY KEY, body TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
  id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, visible_at INTEGER NOT NULL, receives INTEGER NOT NULL DEFAULT 0);
-- Receiving scans the queue in id order (stopping after a batch); only messages received too
-- often are looked up by index, to move them to the dead-letter table.
DROP INDEX IF EXISTS queue_visible;
CREATE INDEX IF NOT EXISTS queue_exhausted ON queue (visible_at) WHERE receives >= 5;
CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY, body TEXT NOT NULL, receives INTEGER NOT NULL, moved_at INTEGER NOT NULL);
";

/// SQLite-backed surveys, ledger, counters and durable queue in one file (or in memory).
#[derive(Clone)]
pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
    writer: Arc<std::sync::OnceLock<mpsc::UnboundedSender<Pending>>>,
}

/// An enqueue waiting for the group commit, and where to say it is durable.
type Pending = (String, oneshot::Sender<Result<(), StoreError>>);

/// Most enqueues written in one group commit.
const GROUP_COMMIT_MAX: usize = 512;

fn db_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Transient(format!("sqlite busy: {f}"))
        }
        other => StoreError::Permanent(format!("sqlite: {other}")),
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Permanent(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        EmbeddedStore::init(Connection::open(path).map_err(db_err)?)
    }

    /// A fresh in-memory database, for tests.
    pub fn in_memory() -> Result<EmbeddedStore, StoreError> {
        EmbeddedStore::init(Connection::open_in_memory().map_err(db_err)?)
    }

    fn init(conn: Connection) -> Result<EmbeddedStore, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        Ok(EmbeddedStore {
            conn: Arc::new(Mutex::new(conn)),
            writer: Arc::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll back).
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes up to `max` visible messages, hiding them for `visibility_ms`; returns (id, body).
    pub fn receive(
        &self,
        max: usize,
        visibility_ms: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let now = now_ms();
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(db_err)?;
        // Messages received too often move to the dead-letter table instead of being delivered.
        tx.execute(
            "INSERT INTO dead_letters (id, body, receives, moved_at)
             SELECT id, body, receives, ?1 FROM queue WHERE receives >= 5 AND visible_at <= ?1",
            params![now],
        )
        .map_err(db_err)?;
        tx.execute(
            "DELETE FROM queue WHERE receives >= 5 AND visible_at <= ?1",
            params![now],
        )
        .map_err(db_err)?;
        let rows = {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE queue SET visible_at = ?1, receives = receives + 1
                     WHERE id IN (SELECT id FROM queue WHERE visible_at <= ?2 ORDER BY id LIMIT ?3)
                     RETURNING id, body",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![now + visibility_ms, now, max as i64], |r| {
                    Ok((r.get::<_, i64>(0)?.to_string(), r.get::<_, String>(1)?))
                })
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            rows
        };
        tx.commit().map_err(db_err)?;
        Ok(rows)
    }

    /// Deletes messages that were applied (or kept as rejected).
    pub fn ack(&self, ids: &[String]) -> Result<(), StoreError> {
        self.lock()
            .prepare_cached("DELETE FROM queue WHERE id IN (SELECT value FROM json_each(?1))")
            .and_then(|mut s| s.execute(params![id_list(ids)]))
            .map_err(db_err)?;
        Ok(())
    }

    /// Makes failed messages visible again after `delay_ms`.
    pub fn retry_later(&self, ids: &[String], delay_ms: i64) -> Result<(), StoreError> {
        self.lock()
            .prepare_cached(
                "UPDATE queue SET visible_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))",
            )
            .and_then(|mut s| s.execute(params![now_ms() + delay_ms, id_list(ids)]))
            .map_err(db_err)?;
        Ok(())
    }

    /// Messages waiting in the queue, and messages moved to the dead-letter table.
    pub fn queue_depth(&self) -> Result<(i64, i64), StoreError> {
        let conn = self.lock();
        let q = conn
            .query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))
            .map_err(db_err)?;
        let d = conn
            .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))
            .map_err(db_err)?;
        Ok((q, d))
    }

    /// Every stored response record, for export and recounts.
    pub fn all_responses(&self, survey: &str) -> Result<Vec<ResponseEvent>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT doc FROM responses WHERE survey = ?1 ORDER BY digest")
            .map_err(db_err)?;
        let docs = stmt
            .query_map(params![survey], |r| r.get::<_, String>(0))
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        docs.iter()
            .map(|d| {
                serde_json::from_str(d)
                    .map_err(|e| StoreError::Permanent(format!("stored response is corrupt: {e}")))
            })
            .collect()
    }
}

/// Queue message ids as a JSON array of numbers, for `json_each` (ids that are not numbers match nothing).
fn id_list(ids: &[String]) -> String {
    let numbers: Vec<i64> = ids.iter().filter_map(|id| id.parse().ok()).collect();
    serde_json::to_string(&numbers).unwrap_or_else(|_| "[]".into())
}

#[async_trait]
impl ResponseQueue for EmbeddedStore {
    async fn enqueue(&self, event: &ResponseEvent) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(event).map_err(|e| StoreError::Permanent(e.to_string()))?;
        // Concurrent enqueues share one SQLite transaction (group commit); each caller returns
        // only once its message is committed.
        let writer = self.writer.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(group_commit(self.conn.clone(), rx));
            tx
        });
        let (done, wait) = oneshot::channel();
        writer
            .send((body, done))
            .map_err(|_| StoreError::Transient("local queue writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Transient("local queue writer stopped".into()))?
    }
}

/// Writes waiting enqueues in batches, one transaction per batch, and acknowledges each.
async fn group_commit(conn: Arc<Mutex<Connection>>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let result = {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            insert_all(&mut conn, &batch)
        };
        for (_, done) in batch {
            let _ = done.send(result.clone());
        }
    }
}

fn insert_all(conn: &mut Connection, batch: &[Pending]) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(db_err)?;
    {
        let mut insert = tx
            .prepare_cached("INSERT INTO queue (body, visible_at) VALUES (?1, 0)")
            .map_err(db_err)?;
        for (body, _) in batch {
            insert.execute(params![body]).map_err(db_err)?;
        }
    }
    tx.commit().map_err(db_err)
}

#[async_trait]
impl SurveyStore for EmbeddedStore {
    async fn get_survey(&self, id: &str) -> Result<Option<Survey>, StoreError> {
        let conn = self.lock();
        let doc: Option<String> = conn
            .prepare_cached("SELECT doc FROM surveys WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
            .map_err(db_err)?;
        doc.map(|d| {
            serde_json::from_str(&d)
                .map_err(|e| StoreError::Permanent(format!("stored survey is corrupt: {e}")))
        })
        .transpose()
    }

    async fn create_survey(&self, survey: &Survey) -> Result<(), StoreError> {
        let doc =
            serde_json::to_string(survey).map_err(|e| StoreError::Permanent(e.to_string()))?;
        let conn = self.lock();
        let inserted = conn
            .execute(
                "INSERT INTO surveys (id, doc) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                params![survey.id, doc],
            )
            .map_err(db_err)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(format!("survey '{}'", survey.id)));
        }
        Ok(())
    }

    async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT doc FROM surveys ORDER BY id")
            .map_err(db_err)?;
        let docs = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        docs.iter()
            .map(|d| {
                serde_json::from_str(d)
                    .map_err(|e| StoreError::Permanent(format!("stored survey is corrupt: {e}")))
            })
            .collect()
    }
}

#[async_trait]
impl ResponseLedger for EmbeddedStore {
    async fn load_records(
        &self,
        keys: &[ResponseKey],
    ) -> Result<HashMap<ResponseKey, RecordState>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT answered_at, event_id, slot, score, day FROM responses WHERE survey = ?1 AND digest = ?2",
            )
            .map_err(db_err)?;
        let mut out = HashMap::with_capacity(keys.len());
        for key in keys {
            let row = stmt
                .query_row(params![key.survey, key.digest], |r| {
                    Ok(RecordState {
                        answered_at: r.get(0)?,
                        event_id: r.get(1)?,
                        slot: r.get(2)?,
                        score: r.get(3)?,
                        day: Day::from_days(r.get(4)?),
                    })
                })
                .optional()
                .map_err(db_err)?;
            if let Some(state) = row {
                out.insert(key.clone(), state);
            }
        }
        Ok(out)
    }

    async fn commit(&self, chunk: &Chunk) -> Result<CommitOutcome, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(db_err)?;
        // Each record is written only if it still has the version it was planned from; if any is
        // not, the transaction is dropped (rolled back): all or nothing, like DynamoDB's.
        let mut conflicts = Vec::new();
        {
            let mut insert_new = tx
                .prepare_cached(
                    "INSERT INTO responses (survey, digest, touchpoint, respondent, score, slot, day, answered_at, event_id, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (survey, digest) DO NOTHING",
                )
                .map_err(db_err)?;
            let mut update_if = tx
                .prepare_cached(
                    "UPDATE responses SET touchpoint = ?3, respondent = ?4, score = ?5, slot = ?6, day = ?7,
                     answered_at = ?8, event_id = ?9, doc = ?10
                     WHERE survey = ?1 AND digest = ?2 AND answered_at = ?11 AND event_id = ?12",
                )
                .map_err(db_err)?;
            for (i, t) in chunk.transitions.iter().enumerate() {
                let e = &t.event;
                let state = RecordState::of(e);
                let doc = serde_json::to_string(e)
                    .map_err(|err| StoreError::Permanent(err.to_string()))?;
                let (survey, digest, day) = (&t.key.survey, &t.key.digest, state.day.days());
                // The columns written either way; an update also names the version it expects.
                let written: [&dyn rusqlite::ToSql; 10] = [
                    survey,
                    digest,
                    &e.touchpoint,
                    &e.respondent,
                    &e.score,
                    &state.slot,
                    &day,
                    &e.answered_at,
                    &e.event_id,
                    &doc,
                ];
                let changed = match &t.expected {
                    None => insert_new.execute(&written[..]),
                    Some((at, eid)) => update_if.execute(rusqlite::params_from_iter(
                        written
                            .iter()
                            .copied()
                            .chain([at as &dyn rusqlite::ToSql, eid]),
                    )),
                }
                .map_err(db_err)?;
                if changed == 0 {
                    conflicts.push(i);
                }
            }
        }
        if !conflicts.is_empty() {
            return Ok(CommitOutcome::Conflicted(conflicts));
        }
        {
            let mut add = tx
                .prepare_cached(
                    "INSERT INTO counters (survey, day, touchpoint, n, sum) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (survey, day, touchpoint) DO UPDATE SET n = n + excluded.n, sum = sum + excluded.sum",
                )
                .map_err(db_err)?;
            let mut add_slot = tx
                .prepare_cached(
                    "INSERT INTO counter_slots (survey, day, touchpoint, slot, count) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (survey, day, touchpoint, slot) DO UPDATE SET count = count + excluded.count",
                )
                .map_err(db_err)?;
            for (k, h) in &chunk.counters {
                add.execute(params![k.survey, k.day.days(), k.touchpoint, h.n, h.sum])
                    .map_err(db_err)?;
                for (slot, count) in &h.slots {
                    add_slot
                        .execute(params![k.survey, k.day.days(), k.touchpoint, slot, count])
                        .map_err(db_err)?;
                }
            }
        }
        tx.commit().map_err(db_err)?;
        Ok(CommitOutcome::Committed)
    }

    async fn keep_rejected(
        &self,
        message_id: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT OR REPLACE INTO rejected (message_id, body, reason, at) VALUES (?1, ?2, ?3, ?4)",
            params![message_id, body, reason, now_ms()],
        )
        .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl CounterReader for EmbeddedStore {
    async fn read_counters(
        &self,
        survey: &str,
        from: Day,
        to: Day,
    ) -> Result<Vec<CounterRow>, StoreError> {
        let conn = self.lock();
        let mut rows: Vec<CounterRow> = Vec::new();
        let mut index: HashMap<(i32, String), usize> = HashMap::new();
        let mut stmt = conn
            .prepare_cached("SELECT day, touchpoint, n, sum FROM counters WHERE survey = ?1 AND day BETWEEN ?2 AND ?3 ORDER BY day, touchpoint")
            .map_err(db_err)?;
        let base = stmt
            .query_map(params![survey, from.days(), to.days()], |r| {
                Ok((
                    r.get::<_, i32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        for (day, tp, n, sum) in base {
            index.insert((day, tp.clone()), rows.len());
            rows.push(CounterRow {
                touchpoint: tp,
                day: Day::from_days(day),
                histogram: Histogram {
                    n,
                    sum,
                    slots: Default::default(),
                },
            });
        }
        let mut stmt = conn
            .prepare_cached("SELECT day, touchpoint, slot, count FROM counter_slots WHERE survey = ?1 AND day BETWEEN ?2 AND ?3 AND count != 0")
            .map_err(db_err)?;
        let slots = stmt
            .query_map(params![survey, from.days(), to.days()], |r| {
                Ok((
                    r.get::<_, i32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u16>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        for (day, tp, slot, count) in slots {
            if let Some(i) = index.get(&(day, tp)) {
                rows[*i].histogram.slots.insert(slot, count);
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sondeo_domain::response::Source;
    use sondeo_domain::survey::SurveyKind;

    fn event(i: usize) -> ResponseEvent {
        ResponseEvent {
            event_id: format!("e{i}"),
            survey: "s".into(),
            touchpoint: "t".into(),
            respondent: format!("r{i}"),
            kind: SurveyKind::Nps,
            score: 9,
            comment: None,
            properties: Default::default(),
            answered_at: 1_000,
            source: Source::Api,
        }
    }

    #[tokio::test]
    async fn a_chunk_planned_from_a_stale_read_is_a_conflict_and_writes_nothing() {
        use sondeo_domain::aggregate::{
            chunk, latest_per_key, plan, Delivery, MAX_TRANSACTION_ACTIONS,
        };
        let store = EmbeddedStore::in_memory().unwrap();
        let (first, mut second) = (event(1), event(1));
        second.event_id = "later".into();
        second.answered_at = 2_000;
        let planned = |e: &ResponseEvent| {
            let d = vec![Delivery {
                message_id: "m".into(),
                event: e.clone(),
            }];
            chunk(
                plan(latest_per_key(d), &HashMap::new()).transitions,
                MAX_TRANSACTION_ACTIONS,
            )
        };
        // Both planned against "no record yet"; the first commits, the second must not.
        let (fresh, stale) = (planned(&first), planned(&second));
        assert_eq!(
            store.commit(&fresh[0]).await.unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(
            store.commit(&stale[0]).await.unwrap(),
            CommitOutcome::Conflicted(vec![0])
        );
        let loaded = store.load_records(&[first.key()]).await.unwrap();
        assert_eq!(loaded[&first.key()].event_id, "e1");
        let day = Day::from_unix_ms(1_000);
        let rows = store.read_counters("s", day, day).await.unwrap();
        assert_eq!(
            rows[0].histogram.n, 1,
            "the conflicting transaction added nothing"
        );
        // Re-planned from a fresh read, the later answer replaces the first.
        let d = vec![Delivery {
            message_id: "m".into(),
            event: second.clone(),
        }];
        let replan = chunk(
            plan(latest_per_key(d), &loaded).transitions,
            MAX_TRANSACTION_ACTIONS,
        );
        assert_eq!(
            store.commit(&replan[0]).await.unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(
            store.load_records(&[first.key()]).await.unwrap()[&first.key()].event_id,
            "later"
        );
    }

    #[tokio::test]
    async fn queue_hides_received_messages_acks_retries_and_dead_letters() {
        let store = EmbeddedStore::in_memory().unwrap();
        for i in 0..3 {
            store.enqueue(&event(i)).await.unwrap();
        }
        let first = store.receive(2, 60_000).unwrap();
        assert_eq!(first.len(), 2);
        // Received messages are hidden; the third is still visible.
        let second = store.receive(10, 60_000).unwrap();
        assert_eq!(second.len(), 1);
        store.ack(&[first[0].0.clone()]).unwrap();
        store
            .retry_later(&[first[1].0.clone(), second[0].0.clone()], 0)
            .unwrap();
        assert_eq!(store.queue_depth().unwrap(), (2, 0));
        // A message received MAX_RECEIVES times moves to the dead-letter table on the next receive.
        for _ in 0..MAX_RECEIVES - 1 {
            let got = store.receive(10, 0).unwrap();
            assert_eq!(got.len(), 2);
        }
        assert!(store.receive(10, 0).unwrap().is_empty());
        assert_eq!(store.queue_depth().unwrap(), (0, 2));
    }
}
