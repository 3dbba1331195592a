//! Embedded storage for local mode: SQLite (bundled) holding surveys, records, counters, a
//! durable queue and post-order invitations, implementing the same ports as the DynamoDB and SQS
//! adapters.

#![warn(missing_docs)]

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use sondeo_domain::changes::{Chunk, ClickMark, CounterKey, RecordState};
use sondeo_domain::metrics::Histogram;
use sondeo_domain::ports::{
    CommitOutcome, CounterReader, CounterRow, ResponseLedger, ResponseQueue, StoreError,
    SuppressionList, SurveyStore,
};
use sondeo_domain::report::split_stored_touchpoint;
use sondeo_domain::response::{suppression_id, ResponseEvent, ResponseKey, Source, Suppression};
use sondeo_domain::survey::Survey;
use sondeo_domain::time::{now_ms, Day};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use tokio::sync::oneshot;

mod alerts;
mod explore;
mod orders;
pub mod outbox;

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
  source TEXT, click INTEGER NOT NULL DEFAULT 0, automated INTEGER NOT NULL DEFAULT 0,
  clicks TEXT NOT NULL DEFAULT '', rev INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (survey, digest));
-- Response pages, exports and zoned metrics read a survey's responses newest first.
CREATE INDEX IF NOT EXISTS responses_time ON responses (survey, answered_at DESC, digest DESC);
CREATE TABLE IF NOT EXISTS counters (
  survey TEXT NOT NULL, day INTEGER NOT NULL, touchpoint TEXT NOT NULL, n INTEGER NOT NULL, sum INTEGER NOT NULL,
  PRIMARY KEY (survey, day, touchpoint));
CREATE TABLE IF NOT EXISTS counter_slots (
  survey TEXT NOT NULL, day INTEGER NOT NULL, touchpoint TEXT NOT NULL, slot INTEGER NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY (survey, day, touchpoint, slot));
CREATE TABLE IF NOT EXISTS suppressions (respondent TEXT PRIMARY KEY, at INTEGER NOT NULL, via TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (message_id TEXT PRIMARY KEY, body TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
  id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, visible_at INTEGER NOT NULL, receives INTEGER NOT NULL DEFAULT 0);
-- Receiving scans the queue in id order (stopping after a batch); only messages received too
-- often are looked up by index, to move them to the dead-letter table.
DROP INDEX IF EXISTS queue_visible;
CREATE INDEX IF NOT EXISTS queue_exhausted ON queue (visible_at) WHERE receives >= 5;
CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY, body TEXT NOT NULL, receives INTEGER NOT NULL, moved_at INTEGER NOT NULL);
-- Post-order surveys: store connections (the signing secret apart from the listed document),
-- one invitation per connection and order, and who was invited to which survey when.
CREATE TABLE IF NOT EXISTS connections (id TEXT PRIMARY KEY, doc TEXT NOT NULL, secret TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS invitations (
  connection TEXT NOT NULL, ord TEXT NOT NULL, created_at INTEGER NOT NULL, due_at INTEGER NOT NULL,
  status TEXT NOT NULL, attempts INTEGER NOT NULL, lease_until INTEGER NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (connection, ord));
CREATE INDEX IF NOT EXISTS invitations_due ON invitations (status, due_at);
CREATE INDEX IF NOT EXISTS invitations_created ON invitations (created_at);
CREATE INDEX IF NOT EXISTS invitations_connection_created ON invitations (connection, created_at);
CREATE TABLE IF NOT EXISTS contacts (
  survey TEXT NOT NULL, contact TEXT NOT NULL, at INTEGER NOT NULL, claimant TEXT NOT NULL,
  PRIMARY KEY (survey, contact));
";

/// SQLite-backed surveys, ledger, counters and durable queue in one file (or in memory).
///
/// The connection belongs to one thread of the store's own, and every statement runs there: a
/// slow disk or a lock held by another process delays the caller that waits for the answer, never
/// the async runtime's threads. Enqueues waiting at the same time share one transaction (group
/// commit), so many concurrent answers cost one fsync.
#[derive(Clone)]
pub struct EmbeddedStore {
    jobs: std_mpsc::Sender<Job>,
    group_commits: Arc<AtomicU64>,
}

/// Work for the store's thread.
enum Job {
    /// Statements to run on the connection; the closure sends its own answer.
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
    /// A message body to enqueue, and where to say it is durable.
    Enqueue(String, oneshot::Sender<Result<(), StoreError>>),
}

/// SQLite's largest `max_page_count` (its default): no cap.
const UNCAPPED_PAGES: u64 = 0xffff_fffe;

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
        rusqlite::Error::SqliteFailure(f, message) if is_out_of_space(&f, message.as_deref()) => {
            StoreError::OutOfSpace(format!(
                "sqlite: {}",
                message.unwrap_or_else(|| f.to_string())
            ))
        }
        other => StoreError::Permanent(format!("sqlite: {other}")),
    }
}

/// Whether SQLite failed for want of space: SQLITE_FULL (a full disk, or the size cap of
/// [`EmbeddedStore::cap_size`]), or an I/O error while writing or syncing, which is how a
/// full quota (EDQUOT) or a full network file system (ENOSPC from fsync) reaches SQLite.
fn is_out_of_space(f: &rusqlite::ffi::Error, message: Option<&str>) -> bool {
    use rusqlite::ffi;
    f.code == rusqlite::ErrorCode::DiskFull
        || matches!(
            f.extended_code,
            ffi::SQLITE_IOERR_WRITE | ffi::SQLITE_IOERR_FSYNC
        )
        || message.is_some_and(|m| m.contains("database or disk is full"))
}

/// Creates the database file readable by its owner only, or makes an existing one so (SQLite
/// gives its journal files the database file's permissions).
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    options.open(path)?;
    Ok(())
}

fn stopped() -> StoreError {
    StoreError::Transient("the local store's thread stopped".into())
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Permanent(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        restrict_to_owner(path)
            .map_err(|e| StoreError::Permanent(format!("cannot create {}: {e}", path.display())))?;
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
        conn.execute_batch(alerts::SCHEMA).map_err(db_err)?;
        migrate(&conn)?;
        let (jobs, inbox) = std_mpsc::channel();
        let group_commits = Arc::new(AtomicU64::new(0));
        let commits = group_commits.clone();
        std::thread::Builder::new()
            .name("sondeo-sqlite".into())
            .spawn(move || run_jobs(conn, inbox, &commits))
            .map_err(|e| StoreError::Permanent(format!("cannot start the store's thread: {e}")))?;
        Ok(EmbeddedStore {
            jobs,
            group_commits,
        })
    }

    /// Runs `f` on the store's thread and waits for its answer without blocking the runtime.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (answer, wait) = oneshot::channel();
        self.jobs
            .send(Job::Run(Box::new(move |conn| {
                let _ = answer.send(f(conn));
            })))
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }

    /// Runs `f` on the store's thread and blocks the calling thread until it answers. On a
    /// multi-thread runtime's worker, the worker's other tasks move to another thread meanwhile.
    fn call_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (answer, wait) = std_mpsc::sync_channel(1);
        self.jobs
            .send(Job::Run(Box::new(move |conn| {
                let _ = answer.send(f(conn));
            })))
            .map_err(|_| stopped())?;
        let on_multi_thread_runtime = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let answer = if on_multi_thread_runtime {
            tokio::task::block_in_place(|| wait.recv())
        } else {
            wait.recv()
        };
        answer.map_err(|_| stopped())?
    }

    /// Takes up to `max` visible messages, hiding them for `visibility_ms`; returns (id, body).
    /// Blocks the calling thread; async code should call [`EmbeddedStore::receive_async`].
    pub fn receive(
        &self,
        max: usize,
        visibility_ms: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.call_blocking(move |conn| receive_on(conn, max, visibility_ms))
    }

    /// [`EmbeddedStore::receive`] without blocking the calling thread.
    pub async fn receive_async(
        &self,
        max: usize,
        visibility_ms: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.call(move |conn| receive_on(conn, max, visibility_ms))
            .await
    }

    /// Deletes messages that were applied (or kept as rejected).
    /// Blocks the calling thread; async code should call [`EmbeddedStore::ack_async`].
    pub fn ack(&self, ids: &[String]) -> Result<(), StoreError> {
        let ids = id_list(ids);
        self.call_blocking(move |conn| ack_on(conn, &ids))
    }

    /// [`EmbeddedStore::ack`] without blocking the calling thread.
    pub async fn ack_async(&self, ids: &[String]) -> Result<(), StoreError> {
        let ids = id_list(ids);
        self.call(move |conn| ack_on(conn, &ids)).await
    }

    /// Makes failed messages visible again after `delay_ms`.
    /// Blocks the calling thread; async code should call [`EmbeddedStore::retry_later_async`].
    pub fn retry_later(&self, ids: &[String], delay_ms: i64) -> Result<(), StoreError> {
        let ids = id_list(ids);
        self.call_blocking(move |conn| retry_later_on(conn, &ids, delay_ms))
    }

    /// [`EmbeddedStore::retry_later`] without blocking the calling thread.
    pub async fn retry_later_async(&self, ids: &[String], delay_ms: i64) -> Result<(), StoreError> {
        let ids = id_list(ids);
        self.call(move |conn| retry_later_on(conn, &ids, delay_ms))
            .await
    }

    /// Messages waiting in the queue, and messages moved to the dead-letter table.
    /// Blocks the calling thread; async code should call [`EmbeddedStore::queue_depth_async`].
    pub fn queue_depth(&self) -> Result<(i64, i64), StoreError> {
        self.call_blocking(queue_depth_on)
    }

    /// [`EmbeddedStore::queue_depth`] without blocking the calling thread.
    pub async fn queue_depth_async(&self) -> Result<(i64, i64), StoreError> {
        self.call(queue_depth_on).await
    }

    /// Every stored response record, for export and recounts.
    /// Blocks the calling thread; async code should call [`EmbeddedStore::all_responses_async`].
    pub fn all_responses(&self, survey: &str) -> Result<Vec<ResponseEvent>, StoreError> {
        let survey = survey.to_owned();
        self.call_blocking(move |conn| all_responses_on(conn, &survey))
    }

    /// [`EmbeddedStore::all_responses`] without blocking the calling thread.
    pub async fn all_responses_async(
        &self,
        survey: &str,
    ) -> Result<Vec<ResponseEvent>, StoreError> {
        let survey = survey.to_owned();
        self.call(move |conn| all_responses_on(conn, &survey)).await
    }

    /// Makes messages visible again after `delay_ms` without counting the failed delivery toward
    /// [`MAX_RECEIVES`]: for failures of the store itself (such as a full disk), which say
    /// nothing about the message and must not move it to the dead-letter table.
    pub async fn retry_uncounted_async(
        &self,
        ids: &[String],
        delay_ms: i64,
    ) -> Result<(), StoreError> {
        let ids = id_list(ids);
        self.call(move |conn| {
            conn.prepare_cached(
                "UPDATE queue SET visible_at = ?1, receives = max(receives - 1, 0)
                 WHERE id IN (SELECT value FROM json_each(?2))",
            )
            .and_then(|mut s| s.execute(params![now_ms() + delay_ms, ids]))
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    /// Caps the database's size at `max_bytes` (never below its current size; `None` lifts the
    /// cap), with SQLite's `max_page_count`: a write past the cap fails with
    /// [`StoreError::OutOfSpace`] exactly as on a full disk. Returns the cap in bytes.
    pub async fn cap_size(&self, max_bytes: Option<u64>) -> Result<u64, StoreError> {
        self.call(move |conn| {
            let page_size: u64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(db_err)?;
            let pages = match max_bytes {
                // SQLite keeps the cap at least at the current size; 0 would mean "unchanged".
                Some(bytes) => (bytes / page_size.max(1)).max(1),
                None => UNCAPPED_PAGES,
            };
            let capped: u64 = conn
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                    r.get(0)
                })
                .map_err(db_err)?;
            Ok(capped.saturating_mul(page_size))
        })
        .await
    }

    /// Transactions the group commit has written so far: enqueues divided by this is the number
    /// of messages that shared one fsync.
    pub fn group_commits(&self) -> u64 {
        self.group_commits.load(Ordering::Relaxed)
    }
}

/// The store's thread: runs jobs in order until every handle to the store is dropped. An enqueue
/// takes every enqueue queued right behind it into the same transaction.
fn run_jobs(mut conn: Connection, inbox: std_mpsc::Receiver<Job>, group_commits: &AtomicU64) {
    let mut held_back = None;
    loop {
        let job = match held_back.take() {
            Some(job) => job,
            None => match inbox.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Run(statements) => statements(&mut conn),
            Job::Enqueue(body, done) => {
                let mut batch = vec![(body, done)];
                while batch.len() < GROUP_COMMIT_MAX {
                    match inbox.try_recv() {
                        Ok(Job::Enqueue(body, done)) => batch.push((body, done)),
                        Ok(other) => {
                            held_back = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let result = insert_all(&mut conn, &batch);
                group_commits.fetch_add(1, Ordering::Relaxed);
                for (_, done) in batch {
                    let _ = done.send(result.clone());
                }
            }
        }
    }
}

fn receive_on(
    conn: &mut Connection,
    max: usize,
    visibility_ms: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let now = now_ms();
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

fn ack_on(conn: &mut Connection, id_list: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM queue WHERE id IN (SELECT value FROM json_each(?1))")
        .and_then(|mut s| s.execute(params![id_list]))
        .map_err(db_err)?;
    Ok(())
}

fn retry_later_on(conn: &mut Connection, id_list: &str, delay_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE queue SET visible_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))",
    )
    .and_then(|mut s| s.execute(params![now_ms() + delay_ms, id_list]))
    .map_err(db_err)?;
    Ok(())
}

fn queue_depth_on(conn: &mut Connection) -> Result<(i64, i64), StoreError> {
    let q = conn
        .query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))
        .map_err(db_err)?;
    let d = conn
        .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))
        .map_err(db_err)?;
    Ok((q, d))
}

fn all_responses_on(conn: &mut Connection, survey: &str) -> Result<Vec<ResponseEvent>, StoreError> {
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
        // Enqueues waiting together share one SQLite transaction (group commit); each caller
        // returns only once its message is committed.
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Enqueue(body, done))
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }

    async fn enqueue_batch(&self, events: &[ResponseEvent]) -> Result<(), StoreError> {
        // Every message handed over before any is awaited, so they share group commits.
        let mut waits = Vec::with_capacity(events.len());
        for event in events {
            let body =
                serde_json::to_string(event).map_err(|e| StoreError::Permanent(e.to_string()))?;
            let (done, wait) = oneshot::channel();
            self.jobs
                .send(Job::Enqueue(body, done))
                .map_err(|_| stopped())?;
            waits.push(wait);
        }
        for wait in waits {
            wait.await.map_err(|_| stopped())??;
        }
        Ok(())
    }
}

fn insert_all(
    conn: &mut Connection,
    batch: &[(String, oneshot::Sender<Result<(), StoreError>>)],
) -> Result<(), StoreError> {
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
impl SuppressionList for EmbeddedStore {
    async fn suppress(&self, entry: &Suppression) -> Result<(), StoreError> {
        let e = entry.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO suppressions (respondent, at, via) VALUES (?1, ?2, ?3)
                 ON CONFLICT (respondent) DO NOTHING",
                params![suppression_id(&e.respondent), e.at, e.via],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn unsuppress(&self, respondent: &str) -> Result<bool, StoreError> {
        let id = suppression_id(respondent);
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM suppressions WHERE respondent = ?1",
                params![id],
            )
            .map(|n| n > 0)
            .map_err(db_err)
        })
        .await
    }

    async fn list_suppressed(&self) -> Result<Vec<Suppression>, StoreError> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT respondent, at, via FROM suppressions ORDER BY respondent")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Suppression {
                        respondent: r.get(0)?,
                        at: r.get(1)?,
                        via: r.get(2)?,
                    })
                })
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            Ok(rows)
        })
        .await
    }

    async fn suppressed_among(
        &self,
        respondents: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let ids: Vec<String> = respondents.iter().map(|r| suppression_id(r)).collect();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT 1 FROM suppressions WHERE respondent = ?1")
                .map_err(db_err)?;
            let mut found = HashSet::new();
            for id in ids {
                if stmt.exists(params![id]).map_err(db_err)? {
                    found.insert(id);
                }
            }
            Ok(found)
        })
        .await
    }
}

#[async_trait]
impl SurveyStore for EmbeddedStore {
    async fn get_survey(&self, id: &str) -> Result<Option<Survey>, StoreError> {
        let id = id.to_owned();
        let doc: Option<String> = self
            .call(move |conn| {
                conn.prepare_cached("SELECT doc FROM surveys WHERE id = ?1")
                    .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
                    .map_err(db_err)
            })
            .await?;
        doc.map(|d| {
            serde_json::from_str(&d)
                .map_err(|e| StoreError::Permanent(format!("stored survey is corrupt: {e}")))
        })
        .transpose()
    }

    async fn create_survey(&self, survey: &Survey) -> Result<(), StoreError> {
        let doc =
            serde_json::to_string(survey).map_err(|e| StoreError::Permanent(e.to_string()))?;
        let id = survey.id.clone();
        let inserted = self
            .call({
                let id = id.clone();
                move |conn| {
                    conn.execute(
                        "INSERT INTO surveys (id, doc) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                        params![id, doc],
                    )
                    .map_err(db_err)
                }
            })
            .await?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(format!("survey '{id}'")));
        }
        Ok(())
    }

    async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError> {
        let docs = self
            .call(|conn| {
                let mut stmt = conn
                    .prepare_cached("SELECT doc FROM surveys ORDER BY id")
                    .map_err(db_err)?;
                let docs = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(db_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_err)?;
                Ok(docs)
            })
            .await?;
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
        let keys = keys.to_vec();
        self.call(move |conn| load_records_on(conn, keys)).await
    }

    async fn commit(&self, chunk: &Chunk) -> Result<CommitOutcome, StoreError> {
        // Serialised here, so the store's thread only runs statements.
        let records = chunk
            .transitions
            .iter()
            .map(|t| {
                Ok(RecordRow {
                    key: t.key.clone(),
                    answer: t
                        .event
                        .as_ref()
                        .map(|e| {
                            Ok::<_, StoreError>((
                                e.touchpoint.clone(),
                                e.respondent.clone(),
                                serde_json::to_string(e)
                                    .map_err(|err| StoreError::Permanent(err.to_string()))?,
                            ))
                        })
                        .transpose()?,
                    state: t.state.clone(),
                    expected: t.expected,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let counters = chunk.counters.clone();
        self.call(move |conn| commit_on(conn, &records, &counters))
            .await
    }

    async fn keep_rejected(
        &self,
        message_id: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let row = (message_id.to_owned(), body.to_owned(), reason.to_owned());
        self.call(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO rejected (message_id, body, reason, at) VALUES (?1, ?2, ?3, ?4)",
                params![row.0, row.1, row.2, now_ms()],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

/// Columns added to `responses` after its first release, added to databases made before.
const RESPONSE_COLUMNS: &[(&str, &str)] = &[
    ("source", "TEXT"),
    ("click", "INTEGER NOT NULL DEFAULT 0"),
    ("automated", "INTEGER NOT NULL DEFAULT 0"),
    ("clicks", "TEXT NOT NULL DEFAULT ''"),
    ("rev", "INTEGER NOT NULL DEFAULT 0"),
];

/// Brings a database made by an earlier version up to this schema.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info('responses')")
        .map_err(db_err)?;
    let have: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    for (name, decl) in RESPONSE_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE responses ADD COLUMN {name} {decl}"))
                .map_err(db_err)?;
        }
    }
    Ok(())
}

/// The comment of a stored answer's event document, if it has one.
fn answer_comment(doc: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(doc).ok()?;
    let comment = event.get("comment")?.as_str()?;
    (!comment.trim().is_empty()).then(|| comment.to_string())
}

fn load_records_on(
    conn: &mut Connection,
    keys: Vec<ResponseKey>,
) -> Result<HashMap<ResponseKey, RecordState>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT answered_at, event_id, slot, score, day, source, click, automated, clicks, rev,
                    CASE WHEN click THEN NULL ELSE doc END
             FROM responses WHERE survey = ?1 AND digest = ?2",
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
                    source: r
                        .get::<_, Option<String>>(5)?
                        .as_deref()
                        .and_then(Source::parse),
                    click: r.get(6)?,
                    automated: r.get(7)?,
                    clicks: ClickMark::decode(&r.get::<_, String>(8)?),
                    rev: r.get(9)?,
                    comment: r
                        .get::<_, Option<String>>(10)?
                        .as_deref()
                        .and_then(answer_comment),
                })
            })
            .optional()
            .map_err(db_err)?;
        if let Some(state) = row {
            out.insert(key, state);
        }
    }
    Ok(out)
}

/// A response record as written by a commit, with the revision it must still have.
struct RecordRow {
    key: ResponseKey,
    /// Touchpoint, respondent and event JSON of a new answer (None: the answer stays).
    answer: Option<(String, String, String)>,
    state: RecordState,
    expected: Option<u64>,
}

fn commit_on(
    conn: &mut Connection,
    records: &[RecordRow],
    counters: &BTreeMap<CounterKey, Histogram>,
) -> Result<CommitOutcome, StoreError> {
    let tx = conn.transaction().map_err(db_err)?;
    // Each record is written only if it still has the version it was planned from; if any is
    // not, the transaction is dropped (rolled back): all or nothing, like DynamoDB's.
    let mut conflicts = Vec::new();
    {
        let mut insert_new = tx
            .prepare_cached(
                "INSERT INTO responses (survey, digest, touchpoint, respondent, score, slot, day, answered_at, event_id, doc,
                   source, click, automated, clicks, rev)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT (survey, digest) DO NOTHING",
            )
            .map_err(db_err)?;
        let mut update_if = tx
            .prepare_cached(
                "UPDATE responses SET touchpoint = ?3, respondent = ?4, score = ?5, slot = ?6, day = ?7,
                 answered_at = ?8, event_id = ?9, doc = ?10, source = ?11, click = ?12, automated = ?13,
                 clicks = ?14, rev = ?15
                 WHERE survey = ?1 AND digest = ?2 AND rev = ?16",
            )
            .map_err(db_err)?;
        let mut update_state_if = tx
            .prepare_cached(
                "UPDATE responses SET automated = ?3, clicks = ?4, rev = ?5
                 WHERE survey = ?1 AND digest = ?2 AND rev = ?6",
            )
            .map_err(db_err)?;
        for (i, r) in records.iter().enumerate() {
            let state = &r.state;
            let (survey, digest, day) = (&r.key.survey, &r.key.digest, state.day.days());
            let clicks = ClickMark::encode(&state.clicks);
            let rev = state.rev as i64;
            let changed = match (&r.answer, r.expected) {
                (Some((touchpoint, respondent, doc)), expected) => {
                    let source = state.source.map(Source::as_str);
                    // The columns written either way; an update also names the revision it expects.
                    let written: [&dyn rusqlite::ToSql; 15] = [
                        survey,
                        digest,
                        touchpoint,
                        respondent,
                        &state.score,
                        &state.slot,
                        &day,
                        &state.answered_at,
                        &state.event_id,
                        doc,
                        &source,
                        &state.click,
                        &state.automated,
                        &clicks,
                        &rev,
                    ];
                    match expected {
                        None => insert_new.execute(&written[..]),
                        Some(expected) => {
                            let expected = expected as i64;
                            update_if.execute(rusqlite::params_from_iter(
                                written
                                    .iter()
                                    .copied()
                                    .chain([&expected as &dyn rusqlite::ToSql]),
                            ))
                        }
                    }
                }
                (None, expected) => update_state_if.execute(params![
                    survey,
                    digest,
                    state.automated,
                    clicks,
                    rev,
                    expected.unwrap_or(0) as i64
                ]),
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
        // SQLite turns an integer sum that overflows into a REAL; each upsert returns whether its
        // counters are still integers, and one that is not drops the whole transaction.
        let mut add = tx
            .prepare_cached(
                "INSERT INTO counters (survey, day, touchpoint, n, sum) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (survey, day, touchpoint) DO UPDATE SET n = n + excluded.n, sum = sum + excluded.sum
                 RETURNING typeof(n) = 'integer' AND typeof(sum) = 'integer'",
            )
            .map_err(db_err)?;
        let mut add_slot = tx
            .prepare_cached(
                "INSERT INTO counter_slots (survey, day, touchpoint, slot, count) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (survey, day, touchpoint, slot) DO UPDATE SET count = count + excluded.count
                 RETURNING typeof(count) = 'integer'",
            )
            .map_err(db_err)?;
        let overflow = |k: &CounterKey, what: &str| {
            StoreError::Permanent(format!(
                "the {what} counter of survey '{}', touchpoint '{}', day {} would overflow a 64-bit integer; nothing was written",
                k.survey,
                k.touchpoint,
                k.day.days()
            ))
        };
        for (k, h) in counters {
            let whole: bool = add
                .query_row(
                    params![k.survey, k.day.days(), k.stored_touchpoint(), h.n, h.sum],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            if !whole {
                return Err(overflow(k, "count or sum"));
            }
            for (slot, count) in &h.slots {
                let whole: bool = add_slot
                    .query_row(
                        params![k.survey, k.day.days(), k.stored_touchpoint(), slot, count],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                if !whole {
                    return Err(overflow(k, &format!("slot {slot}")));
                }
            }
        }
    }
    tx.commit().map_err(db_err)?;
    Ok(CommitOutcome::Committed)
}

#[async_trait]
impl CounterReader for EmbeddedStore {
    async fn read_counters(
        &self,
        survey: &str,
        from: Day,
        to: Day,
    ) -> Result<Vec<CounterRow>, StoreError> {
        let survey = survey.to_owned();
        self.call(move |conn| read_counters_on(conn, &survey, from, to))
            .await
    }
}

fn read_counters_on(
    conn: &mut Connection,
    survey: &str,
    from: Day,
    to: Day,
) -> Result<Vec<CounterRow>, StoreError> {
    let mut rows: Vec<CounterRow> = Vec::new();
    let mut index: HashMap<(i32, String), usize> = HashMap::new();
    let mut stmt = conn
            .prepare_cached("SELECT day, touchpoint, n, sum FROM counters WHERE survey = ?1 AND day BETWEEN ?2 AND ?3 ORDER BY day, touchpoint")
            .map_err(db_err)?;
    let base = stmt
        .query_map(params![survey, from.days(), to.days()], |r| {
            Ok(counter_row(r, survey).and_then(|(day, tp, n, sum)| {
                (n >= 0).then_some((day, tp, n, sum)).or_else(|| {
                    tracing::warn!(survey, day, n, "counter row with a negative count skipped");
                    None
                })
            }))
        })
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    for (day, tp, n, sum) in base.into_iter().flatten() {
        index.insert((day, tp.clone()), rows.len());
        rows.push(CounterRow {
            touchpoint: tp,
            send: String::new(),
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
            Ok(counter_row(r, survey).and_then(|(day, tp, slot, count)| {
                match (u16::try_from(slot), count >= 0) {
                    (Ok(slot), true) => Some((day, tp, slot, count)),
                    _ => {
                        tracing::warn!(
                            survey,
                            day,
                            slot,
                            count,
                            "counter slot out of range skipped"
                        );
                        None
                    }
                }
            }))
        })
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    for (day, tp, slot, count) in slots.into_iter().flatten() {
        if let Some(i) = index.get(&(day, tp)) {
            rows[*i].histogram.slots.insert(slot, count);
        }
    }
    // A send's own counter is stored under `touchpoint#send`.
    for row in &mut rows {
        (row.touchpoint, row.send) = split_stored_touchpoint(&row.touchpoint);
    }
    Ok(rows)
}

/// A counter row's day, touchpoint and two integer columns; `None` (with a warning) when a
/// column holds something else (a REAL from an old overflow, text, a day out of range), so one
/// bad row degrades the report instead of failing it.
fn counter_row(r: &rusqlite::Row<'_>, survey: &str) -> Option<(i32, String, i64, i64)> {
    use rusqlite::types::ValueRef;
    let int = |i: usize| match r.get_ref(i) {
        Ok(ValueRef::Integer(v)) => Some(v),
        _ => None,
    };
    let day = int(0).and_then(|d| i32::try_from(d).ok());
    let touchpoint = match r.get_ref(1) {
        Ok(ValueRef::Text(t)) => std::str::from_utf8(t).ok().map(str::to_owned),
        _ => None,
    };
    match (day, touchpoint, int(2), int(3)) {
        (Some(day), Some(tp), Some(a), Some(b)) => Some((day, tp, a, b)),
        _ => {
            let kinds: Vec<String> = (0..4)
                .map(|i| {
                    r.get_ref(i)
                        .map(|v| format!("{:?}", v.data_type()))
                        .unwrap_or_default()
                })
                .collect();
            tracing::warn!(survey, columns = ?kinds, "counter row holding a value that is not a valid integer skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sondeo_domain::response::Source;
    use sondeo_domain::survey::SurveyKind;
    use std::cell::Cell;
    use std::time::{Duration, Instant};

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
            send: String::new(),
            click: false,
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

    /// A fresh database file in its own temporary folder.
    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sondeo-embedded-{name}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        dir.join("sondeo.db")
    }

    /// Another connection (as another process would) takes the database's write lock now and
    /// releases it after `hold`.
    fn hold_write_lock(path: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
        let other = Connection::open(path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(hold);
            other.execute_batch("COMMIT").unwrap();
        })
    }

    const HOLD: Duration = Duration::from_millis(500);
    const TICK: Duration = Duration::from_millis(10);

    #[tokio::test]
    async fn a_write_waiting_for_a_locked_database_does_not_stall_the_runtime() {
        // GIVEN a store whose database another connection keeps write-locked for a while
        let path = temp_db("locked");
        let store = EmbeddedStore::open(&path).unwrap();
        let holder = hold_write_lock(&path, HOLD);
        // WHEN an enqueue waits for the lock on a single-threaded runtime, beside a ticking task
        let ticks = Cell::new(0u32);
        let ticker = async {
            loop {
                tokio::time::sleep(TICK).await;
                ticks.set(ticks.get() + 1);
            }
        };
        let answer = event(1);
        let started = Instant::now();
        let written = tokio::select! {
            written = store.enqueue(&answer) => written,
            never = ticker => never,
        };
        let waited = started.elapsed();
        holder.join().unwrap();
        // THEN the enqueue succeeds once the lock is released, and the runtime kept ticking
        written.unwrap();
        assert!(
            waited >= HOLD / 2,
            "the enqueue waited for the lock ({waited:?})"
        );
        assert!(
            ticks.get() >= 10,
            "the runtime ran other tasks while SQLite waited: {} ticks in {waited:?}",
            ticks.get()
        );
        assert_eq!(store.queue_depth_async().await.unwrap(), (1, 0));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocking_call_on_a_runtime_worker_lets_the_worker_s_other_tasks_run() {
        // GIVEN a store whose database another connection keeps write-locked for a while
        let path = temp_db("blocking");
        let store = EmbeddedStore::open(&path).unwrap();
        let holder = hold_write_lock(&path, HOLD);
        // WHEN a task on the runtime's only worker calls the blocking receive, beside a ticking task
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    tokio::time::sleep(TICK).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let blocked = tokio::spawn(async move { store.receive(10, 1_000) });
        let received = blocked.await.unwrap();
        let ticked = ticks.load(Ordering::Relaxed);
        ticker.abort();
        holder.join().unwrap();
        // THEN the receive answers once the lock is released, and the other task kept ticking
        assert!(received.unwrap().is_empty());
        assert!(
            ticked >= 10,
            "the worker's other task ran while SQLite waited: {ticked} ticks"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn enqueues_waiting_together_share_one_transaction() {
        // GIVEN a store whose database is write-locked, so enqueues pile up behind the first
        let path = temp_db("group");
        let store = EmbeddedStore::open(&path).unwrap();
        let holder = hold_write_lock(&path, HOLD);
        // WHEN 200 answers are enqueued concurrently
        let mut enqueues = tokio::task::JoinSet::new();
        for i in 0..200 {
            let store = store.clone();
            enqueues.spawn(async move { store.enqueue(&event(i)).await });
        }
        while let Some(done) = enqueues.join_next().await {
            done.unwrap().unwrap();
        }
        holder.join().unwrap();
        // THEN all are stored, in at most two transactions (the first one, then all the others)
        assert_eq!(store.queue_depth_async().await.unwrap(), (200, 0));
        assert!(
            store.group_commits() <= 2,
            "200 enqueues took {} transactions",
            store.group_commits()
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// The chunk that applies `e` to a ledger holding no record of its respondent yet.
    fn first_chunk(e: &ResponseEvent) -> Chunk {
        use sondeo_domain::aggregate::{
            chunk, latest_per_key, plan, Delivery, MAX_TRANSACTION_ACTIONS,
        };
        let d = vec![Delivery {
            message_id: "m".into(),
            event: e.clone(),
        }];
        chunk(
            plan(latest_per_key(d), &HashMap::new()).transitions,
            MAX_TRANSACTION_ACTIONS,
        )
        .remove(0)
    }

    /// Runs raw SQL on the store's connection, as a damaged or hand-edited database would hold.
    async fn raw_sql(store: &EmbeddedStore, sql: &'static str) {
        store
            .call(move |conn| conn.execute_batch(sql).map_err(db_err))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_counter_update_that_would_overflow_is_refused_and_writes_nothing() {
        // GIVEN a day whose score sum is a few points short of i64::MAX
        let store = EmbeddedStore::in_memory().unwrap();
        let answer = event(1);
        let day = Day::from_unix_ms(answer.answered_at).days();
        let sql = format!(
            "INSERT INTO counters (survey, day, touchpoint, n, sum) VALUES ('s', {day}, 't', 1, {});",
            i64::MAX - 5
        );
        raw_sql(&store, Box::leak(sql.into_boxed_str())).await;
        // WHEN an answer scoring 9 is committed on that day
        let refused = store.commit(&first_chunk(&answer)).await;
        // THEN it is refused for good, and neither its record nor any counter changed
        match refused {
            Err(e @ StoreError::Permanent(_)) => assert!(e.to_string().contains("overflow"), "{e}"),
            other => panic!("expected a permanent refusal, got {other:?}"),
        }
        assert!(store
            .load_records(&[answer.key()])
            .await
            .unwrap()
            .is_empty());
        let (kind, sum): (String, i64) = store
            .call(|conn| {
                conn.query_row("SELECT typeof(sum), sum FROM counters", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(db_err)
            })
            .await
            .unwrap();
        assert_eq!((kind.as_str(), sum), ("integer", i64::MAX - 5));
        let d = Day::from_days(day);
        let rows = store.read_counters("s", d, d).await.unwrap();
        assert_eq!((rows[0].histogram.n, rows[0].histogram.slots.len()), (1, 0));
    }

    #[tokio::test]
    async fn counter_rows_holding_reals_text_or_out_of_range_values_are_skipped_not_fatal() {
        // GIVEN one sound row and rows holding what an old overflow or a hand edit leaves behind
        let store = EmbeddedStore::in_memory().unwrap();
        raw_sql(
            &store,
            "INSERT INTO counters VALUES ('s', 10, 'good', 2, 15);
             INSERT INTO counter_slots VALUES ('s', 10, 'good', 6, 1);
             INSERT INTO counter_slots VALUES ('s', 10, 'good', 9, 1);
             INSERT INTO counter_slots VALUES ('s', 10, 'good', 70000, 1);
             INSERT INTO counter_slots VALUES ('s', 10, 'good', 7, 1.5);
             INSERT INTO counter_slots VALUES ('s', 10, 'good', 8, -3);
             INSERT INTO counters VALUES ('s', 11, 'real-sum', 1, 9.3e18 * 2);
             INSERT INTO counter_slots VALUES ('s', 11, 'real-sum', 9, 1);
             INSERT INTO counters VALUES ('s', 12, 'text-n', 'many', 9);
             INSERT INTO counters VALUES ('s', 13, 'negative-n', -1, 9);
             INSERT INTO counters VALUES ('s', 14, x'ff00', 1, 9);",
        )
        .await;
        // WHEN the counters are read
        let rows = store
            .read_counters("s", Day::from_days(0), Day::from_days(100))
            .await
            .unwrap();
        // THEN the sound row comes back with its sound slots, and the others are skipped
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].touchpoint, "good");
        assert_eq!((rows[0].histogram.n, rows[0].histogram.sum), (2, 15));
        assert_eq!(
            rows[0]
                .histogram
                .slots
                .iter()
                .map(|(s, c)| (*s, *c))
                .collect::<Vec<_>>(),
            vec![(6, 1), (9, 1)]
        );
    }

    #[tokio::test]
    async fn a_full_database_refuses_enqueues_as_out_of_space_keeps_the_rest_and_recovers() {
        // GIVEN a store on disk capped at its current size, as a full disk would leave it
        let path = temp_db("full");
        let store = EmbeddedStore::open(&path).unwrap();
        store.cap_size(Some(0)).await.unwrap();
        // WHEN answers are enqueued (concurrently, so they share group commits) until one fails
        let mut accepted = 0;
        let mut refusal = None;
        for round in 0..200 {
            let mut enqueues = tokio::task::JoinSet::new();
            for i in 0..20 {
                let store = store.clone();
                enqueues.spawn(async move { store.enqueue(&event(round * 20 + i)).await });
            }
            while let Some(done) = enqueues.join_next().await {
                match done.unwrap() {
                    Ok(()) => accepted += 1,
                    Err(e) => refusal = Some(e),
                }
            }
            if refusal.is_some() {
                break;
            }
        }
        // THEN the refusal is a retryable out-of-space error, and every accepted answer is kept
        let refusal = refusal.expect("the capped database filled up");
        assert!(
            matches!(refusal, StoreError::OutOfSpace(_)) && refusal.is_retryable(),
            "{refusal:?}"
        );
        assert_eq!(store.queue_depth_async().await.unwrap(), (accepted, 0));
        // AND once space is back the next enqueue succeeds without reopening the store
        store.cap_size(None).await.unwrap();
        store.enqueue(&event(99_999)).await.unwrap();
        assert_eq!(store.queue_depth_async().await.unwrap(), (accepted + 1, 0));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn sqlite_full_and_write_errors_are_out_of_space_busy_is_transient_the_rest_permanent() {
        let failure = |code: i32, message: &str| {
            db_err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                Some(message.into()),
            ))
        };
        use rusqlite::ffi;
        for (code, message) in [
            (ffi::SQLITE_FULL, "database or disk is full"),
            (ffi::SQLITE_IOERR_WRITE, "disk I/O error"),
            (ffi::SQLITE_IOERR_FSYNC, "disk I/O error"),
            (ffi::SQLITE_CANTOPEN, "database or disk is full"),
        ] {
            assert!(
                matches!(failure(code, message), StoreError::OutOfSpace(_)),
                "{code} {message}"
            );
        }
        assert!(matches!(
            failure(ffi::SQLITE_BUSY, "database is locked"),
            StoreError::Transient(_)
        ));
        assert!(matches!(
            failure(ffi::SQLITE_IOERR_READ, "disk I/O error"),
            StoreError::Permanent(_)
        ));
        assert!(matches!(
            failure(ffi::SQLITE_CONSTRAINT, "constraint"),
            StoreError::Permanent(_)
        ));
    }

    #[tokio::test]
    async fn an_uncounted_retry_never_moves_a_message_to_the_dead_letter_table() {
        let store = EmbeddedStore::in_memory().unwrap();
        store.enqueue(&event(1)).await.unwrap();
        for _ in 0..MAX_RECEIVES * 2 {
            let got = store.receive_async(10, 60_000).await.unwrap();
            assert_eq!(got.len(), 1);
            store
                .retry_uncounted_async(&[got[0].0.clone()], 0)
                .await
                .unwrap();
        }
        assert_eq!(store.queue_depth_async().await.unwrap(), (1, 0));
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
