//! Alert storage for local mode: rules (the signing secret in its own column, never read by the
//! list), the alert job queue (apart from the response queue, with a due time per job) and the
//! delivery log whose claims make each attempt of each delivery run once.

use crate::{db_err, EmbeddedStore};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use sondeo_domain::alerts::{AlertJob, AlertRule, AlertSecret, DeliveryRecord, DeliveryStatus};
use sondeo_domain::ports::{AlertLog, AlertQueue, AlertRuleStore, StoreError};
use sondeo_domain::time::now_ms;

/// The alert tables, created with the store.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_rules (id TEXT PRIMARY KEY, survey TEXT NOT NULL, doc TEXT NOT NULL, secret TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alert_rules_survey ON alert_rules (survey, id);
CREATE TABLE IF NOT EXISTS alert_jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, visible_at INTEGER NOT NULL, receives INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS alert_jobs_visible ON alert_jobs (visible_at);
CREATE TABLE IF NOT EXISTS alert_log (
  survey TEXT NOT NULL, delivery_id TEXT NOT NULL, rule_id TEXT NOT NULL, status TEXT NOT NULL,
  attempts INTEGER NOT NULL, detail TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (survey, delivery_id));
";

/// Receives after which a local alert job is dropped (a job that keeps crashing its worker).
const MAX_ALERT_RECEIVES: i64 = 5;

fn parse_rule(doc: &str) -> Result<AlertRule, StoreError> {
    serde_json::from_str(doc)
        .map_err(|e| StoreError::Permanent(format!("stored alert rule is corrupt: {e}")))
}

impl EmbeddedStore {
    /// Takes up to `max` alert jobs due at `now` (Unix ms), hiding them for `visibility_ms`;
    /// returns (id, job). Jobs that do not decode, or were received too often, are dropped with
    /// a log line.
    pub async fn receive_alert_jobs(
        &self,
        max: usize,
        visibility_ms: i64,
        now: i64,
    ) -> Result<Vec<(String, AlertJob)>, StoreError> {
        let rows: Vec<(i64, String)> = self
            .call(move |conn| {
                let tx = conn.transaction().map_err(db_err)?;
                let dropped = tx
                    .execute(
                        "DELETE FROM alert_jobs WHERE receives >= ?1 AND visible_at <= ?2",
                        params![MAX_ALERT_RECEIVES, now],
                    )
                    .map_err(db_err)?;
                if dropped > 0 {
                    tracing::warn!(dropped, "alert jobs received too often were dropped");
                }
                let rows = {
                    let mut stmt = tx
                        .prepare_cached(
                            "UPDATE alert_jobs SET visible_at = ?1, receives = receives + 1
                             WHERE id IN (SELECT id FROM alert_jobs WHERE visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3)
                             RETURNING id, body",
                        )
                        .map_err(db_err)?;
                    let rows = stmt
                        .query_map(
                            params![now + visibility_ms, now, i64::try_from(max).unwrap_or(i64::MAX)],
                            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                        )
                        .map_err(db_err)?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(db_err)?;
                    rows
                };
                tx.commit().map_err(db_err)?;
                Ok(rows)
            })
            .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        let mut corrupt = Vec::new();
        for (id, body) in rows {
            match serde_json::from_str::<AlertJob>(&body) {
                Ok(job) => jobs.push((id.to_string(), job)),
                Err(e) => {
                    tracing::warn!(error = %e, "an alert job does not decode; dropped");
                    corrupt.push(id.to_string());
                }
            }
        }
        if !corrupt.is_empty() {
            self.ack_alert_jobs(&corrupt).await?;
        }
        Ok(jobs)
    }

    /// Deletes handled alert jobs.
    pub async fn ack_alert_jobs(&self, ids: &[String]) -> Result<(), StoreError> {
        let ids: Vec<i64> = ids.iter().filter_map(|id| id.parse().ok()).collect();
        let list = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        self.call(move |conn| {
            conn.prepare_cached(
                "DELETE FROM alert_jobs WHERE id IN (SELECT value FROM json_each(?1))",
            )
            .and_then(|mut s| s.execute(params![list]))
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    /// Alert jobs waiting (due or not).
    pub async fn alert_queue_depth(&self) -> Result<i64, StoreError> {
        self.call(|conn| {
            conn.query_row("SELECT COUNT(*) FROM alert_jobs", [], |r| r.get(0))
                .map_err(db_err)
        })
        .await
    }
}

#[async_trait]
impl AlertRuleStore for EmbeddedStore {
    async fn put_alert_rule(
        &self,
        rule: &AlertRule,
        secret: &AlertSecret,
    ) -> Result<(), StoreError> {
        let doc = serde_json::to_string(rule).map_err(|e| StoreError::Permanent(e.to_string()))?;
        let (id, survey, secret) = (
            rule.id.clone(),
            rule.survey.clone(),
            secret.expose().to_owned(),
        );
        self.call(move |conn| {
            conn.prepare_cached(
                "INSERT INTO alert_rules (id, survey, doc, secret) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET survey = excluded.survey, doc = excluded.doc, secret = excluded.secret",
            )
            .and_then(|mut s| s.execute(params![id, survey, doc, secret]))
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_alert_rule(
        &self,
        id: &str,
    ) -> Result<Option<(AlertRule, AlertSecret)>, StoreError> {
        let id = id.to_owned();
        let row: Option<(String, String)> = self
            .call(move |conn| {
                conn.prepare_cached("SELECT doc, secret FROM alert_rules WHERE id = ?1")
                    .and_then(|mut s| {
                        s.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(db_err)
            })
            .await?;
        row.map(|(doc, secret)| Ok((parse_rule(&doc)?, AlertSecret::new(secret))))
            .transpose()
    }

    async fn list_alert_rules(&self, survey: Option<&str>) -> Result<Vec<AlertRule>, StoreError> {
        let survey = survey.map(str::to_owned);
        let docs: Vec<String> = self
            .call(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT doc FROM alert_rules WHERE ?1 IS NULL OR survey = ?1 ORDER BY id",
                    )
                    .map_err(db_err)?;
                let docs = stmt
                    .query_map(params![survey], |r| r.get::<_, String>(0))
                    .map_err(db_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_err)?;
                Ok(docs)
            })
            .await?;
        docs.iter().map(|d| parse_rule(d)).collect()
    }

    async fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.prepare_cached("DELETE FROM alert_rules WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id]))
                .map(|n| n > 0)
                .map_err(db_err)
        })
        .await
    }
}

#[async_trait]
impl AlertQueue for EmbeddedStore {
    async fn enqueue_alert(&self, job: &AlertJob, delay_secs: u64) -> Result<(), StoreError> {
        let body = serde_json::to_string(job).map_err(|e| StoreError::Permanent(e.to_string()))?;
        // No delay limit here: a later attempt waits for exactly its due time.
        let delay_ms = i64::try_from(delay_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
        let visible_at = if job.not_before > 0 {
            job.not_before
        } else {
            now_ms().saturating_add(delay_ms)
        };
        self.call(move |conn| {
            conn.prepare_cached("INSERT INTO alert_jobs (body, visible_at) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![body, visible_at]))
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl AlertLog for EmbeddedStore {
    async fn claim_delivery(
        &self,
        survey: &str,
        job: &AlertJob,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (survey, delivery, rule) = (
            survey.to_owned(),
            job.delivery_id.clone(),
            job.rule_id.clone(),
        );
        let attempts = i64::from(job.attempt) + 1;
        self.call(move |conn| {
            conn.prepare_cached(
                "INSERT INTO alert_log (survey, delivery_id, rule_id, status, attempts, detail, at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, '', ?5)
                 ON CONFLICT (survey, delivery_id) DO UPDATE SET attempts = excluded.attempts, at = excluded.at
                 WHERE alert_log.status = 'pending' AND alert_log.attempts < excluded.attempts",
            )
            .and_then(|mut s| s.execute(params![survey, delivery, rule, attempts, now_ms]))
            .map(|n| n == 1)
            .map_err(db_err)
        })
        .await
    }

    async fn record_delivery(
        &self,
        survey: &str,
        record: &DeliveryRecord,
    ) -> Result<(), StoreError> {
        let survey = survey.to_owned();
        let r = record.clone();
        self.call(move |conn| {
            conn.prepare_cached(
                "INSERT INTO alert_log (survey, delivery_id, rule_id, status, attempts, detail, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (survey, delivery_id) DO UPDATE SET status = excluded.status,
                   attempts = excluded.attempts, detail = excluded.detail, at = excluded.at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    survey,
                    r.delivery_id,
                    r.rule_id,
                    r.status.as_str(),
                    i64::from(r.attempts),
                    r.detail,
                    r.at
                ])
            })
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_delivery(
        &self,
        survey: &str,
        delivery_id: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let (survey, delivery) = (survey.to_owned(), delivery_id.to_owned());
        let row: Option<(String, String, String, i64, String, i64)> = self
            .call(move |conn| {
                conn.prepare_cached(
                    "SELECT delivery_id, rule_id, status, attempts, detail, at FROM alert_log
                     WHERE survey = ?1 AND delivery_id = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![survey, delivery], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    })
                    .optional()
                })
                .map_err(db_err)
            })
            .await?;
        row.map(|(delivery_id, rule_id, status, attempts, detail, at)| {
            Ok(DeliveryRecord {
                delivery_id,
                rule_id,
                status: DeliveryStatus::parse(&status).ok_or_else(|| {
                    StoreError::Permanent(format!("stored delivery status '{status}' is unknown"))
                })?,
                attempts: u32::try_from(attempts).unwrap_or(0),
                detail,
                at,
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sondeo_domain::alerts::{AlertAnswer, AlertKind, AlertTarget};
    use sondeo_domain::response::Source;
    use sondeo_domain::survey::SurveyKind;

    fn job(attempt: u32) -> AlertJob {
        AlertJob {
            rule_id: "al_1".into(),
            delivery_id: "d1".into(),
            answer: AlertAnswer {
                survey: "nps".into(),
                touchpoint: "t".into(),
                kind: SurveyKind::Nps,
                score: 2,
                comment: None,
                properties: Default::default(),
                send: String::new(),
                answered_at: 1,
                source: Source::Api,
                event_id: "e".into(),
            },
            attempt,
            not_before: 0,
        }
    }

    #[tokio::test]
    async fn each_attempt_is_claimed_once_and_a_finished_delivery_never_again() {
        let store = EmbeddedStore::in_memory().unwrap();
        assert!(store.claim_delivery("nps", &job(0), 1).await.unwrap());
        assert!(!store.claim_delivery("nps", &job(0), 2).await.unwrap());
        assert!(store.claim_delivery("nps", &job(1), 3).await.unwrap());
        assert!(!store.claim_delivery("nps", &job(1), 4).await.unwrap());
        assert!(!store.claim_delivery("nps", &job(0), 4).await.unwrap());
        let record = DeliveryRecord {
            delivery_id: "d1".into(),
            rule_id: "al_1".into(),
            status: DeliveryStatus::Delivered,
            attempts: 2,
            detail: "HTTP 200".into(),
            at: 5,
        };
        store.record_delivery("nps", &record).await.unwrap();
        assert!(!store.claim_delivery("nps", &job(2), 6).await.unwrap());
        assert_eq!(store.get_delivery("nps", "d1").await.unwrap(), Some(record));
    }

    #[tokio::test]
    async fn rules_are_listed_per_survey_without_secrets_and_jobs_wait_for_their_delay() {
        let store = EmbeddedStore::in_memory().unwrap();
        let rule = |id: &str, survey: &str| AlertRule {
            id: id.into(),
            survey: survey.into(),
            touchpoint: None,
            min_score: None,
            max_score: Some(6),
            has_comment: None,
            target: AlertTarget {
                url: "https://example.com/h".into(),
                kind: AlertKind::Generic,
            },
            created_at: 0,
        };
        let secret = AlertSecret::generate();
        store
            .put_alert_rule(&rule("al_b", "nps"), &secret)
            .await
            .unwrap();
        store
            .put_alert_rule(&rule("al_a", "nps"), &secret)
            .await
            .unwrap();
        store
            .put_alert_rule(&rule("al_c", "csat"), &secret)
            .await
            .unwrap();
        let ids = |v: Vec<AlertRule>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.list_alert_rules(Some("nps")).await.unwrap()),
            ["al_a", "al_b"]
        );
        assert_eq!(store.list_alert_rules(None).await.unwrap().len(), 3);
        let (got, s) = store.get_alert_rule("al_c").await.unwrap().unwrap();
        assert_eq!((got.survey.as_str(), s), ("csat", secret));
        assert!(store.delete_alert_rule("al_c").await.unwrap());
        assert!(!store.delete_alert_rule("al_c").await.unwrap());

        store.enqueue_alert(&job(0), 0).await.unwrap();
        store.enqueue_alert(&job(1), 3600).await.unwrap();
        let got = store
            .receive_alert_jobs(10, 30_000, now_ms())
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, job(0));
        assert!(store
            .receive_alert_jobs(10, 30_000, now_ms())
            .await
            .unwrap()
            .is_empty());
        store.ack_alert_jobs(&[got[0].0.clone()]).await.unwrap();
        assert_eq!(store.alert_queue_depth().await.unwrap(), 1);
    }
}
