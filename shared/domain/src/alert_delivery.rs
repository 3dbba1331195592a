//! Alert delivery: after a chunk commits, the aggregator turns its new counted answers into
//! alert jobs on the alert queue ([`raise_alerts`]); a worker takes each job, claims it in the
//! alert log (so a redelivered job never posts twice), posts the signed payload, and retries
//! with backoff ([`run_alert_job`]). Neither step can fail or slow the aggregation batch.

use crate::alerts::{
    classify_status, payload, retry_delay_secs, sign, AlertJob, AlertRule, DeliveryRecord,
    DeliveryStatus, StatusClass, DELIVERY_HEADER, SIGNATURE_HEADER,
};
use crate::ports::{AlertLog, AlertQueue, AlertRuleStore, AlertSender, SendError, StoreError};
use crate::response::ResponseEvent;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the aggregator keeps a survey's rules before reading them again.
pub const RULES_TTL: Duration = Duration::from_secs(60);

/// A read-through cache of each survey's alert rules, so the aggregator reads them at most once
/// a minute per survey.
pub struct CachedAlertRules {
    inner: Arc<dyn AlertRuleStore>,
    ttl: Duration,
    entries: Mutex<HashMap<String, CachedRules>>,
}

/// One survey's rules and when they were read.
type CachedRules = (Instant, Arc<Vec<AlertRule>>);

/// Most surveys kept in the cache before it is cleared.
const MAX_SURVEYS: usize = 10_000;

impl CachedAlertRules {
    /// A cache in front of `inner` keeping each survey's rules for `ttl`.
    pub fn new(inner: Arc<dyn AlertRuleStore>, ttl: Duration) -> CachedAlertRules {
        CachedAlertRules {
            inner,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The rules of one survey.
    pub async fn rules_for(&self, survey: &str) -> Result<Arc<Vec<AlertRule>>, StoreError> {
        {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, rules)) = entries.get(survey) {
                if at.elapsed() < self.ttl {
                    return Ok(rules.clone());
                }
            }
        }
        let rules = Arc::new(self.inner.list_alert_rules(Some(survey)).await?);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_SURVEYS {
            entries.clear();
        }
        entries.insert(survey.to_string(), (Instant::now(), rules.clone()));
        Ok(rules)
    }
}

/// What raising alerts for a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaisedAlerts {
    /// Jobs enqueued.
    pub enqueued: usize,
    /// Jobs that could not be enqueued (logged; the answers stay counted).
    pub failed: usize,
}

/// The alert jobs of answers that match their survey's rules.
pub async fn alert_jobs(
    answers: &[ResponseEvent],
    rules: &CachedAlertRules,
) -> (Vec<AlertJob>, usize) {
    let mut jobs = Vec::new();
    let mut unread = 0;
    for answer in answers {
        match rules.rules_for(&answer.survey).await {
            Ok(list) => jobs.extend(
                list.iter()
                    .filter(|r| r.matches(answer))
                    .map(|r| AlertJob::new(r, answer)),
            ),
            Err(e) => {
                unread += 1;
                tracing::warn!(error = %e, survey = %answer.survey, "alert rules could not be read; no alert for this answer");
            }
        }
    }
    (jobs, unread)
}

/// Enqueues an alert job for every committed answer matching a rule of its survey. Failures are
/// logged (no respondent, no URL, no secret) and never returned: the batch is already applied.
pub async fn raise_alerts(
    answers: &[ResponseEvent],
    rules: &CachedAlertRules,
    queue: &dyn AlertQueue,
) -> RaisedAlerts {
    let (jobs, unread) = alert_jobs(answers, rules).await;
    let mut out = RaisedAlerts {
        failed: unread,
        ..Default::default()
    };
    for job in jobs {
        match queue.enqueue_alert(&job, 0).await {
            Ok(()) => out.enqueued += 1,
            Err(e) => {
                out.failed += 1;
                tracing::error!(error = %e, rule = %job.rule_id, delivery = %job.delivery_id, "alert could not be enqueued; it is not sent");
            }
        }
    }
    out
}

/// What the worker needs to run a job.
pub struct AlertWorker<'a> {
    /// Rules and their secrets.
    pub rules: &'a dyn AlertRuleStore,
    /// The delivery log.
    pub log: &'a dyn AlertLog,
    /// Where later attempts go.
    pub queue: &'a dyn AlertQueue,
    /// Posts payloads.
    pub sender: &'a dyn AlertSender,
}

/// What running one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The endpoint answered 2xx.
    Delivered(u16),
    /// A later attempt is queued after this many seconds.
    Retrying(u64),
    /// The job is not due yet and went back to the queue for this many seconds.
    NotYetDue(u64),
    /// Given up, with the reason (also in the log).
    GaveUp(String),
    /// Nothing to do: the attempt was claimed before, or the rule is gone.
    Skipped(&'static str),
    /// A store or queue failed before anything was posted: deliver the message again.
    RetryLater(String),
}

/// Longest text kept from a failure in the log.
const MAX_DETAIL_CHARS: usize = 300;

/// Runs one alert job at `now_ms` (see the module documentation).
pub async fn run_alert_job(job: &AlertJob, worker: &AlertWorker<'_>, now_ms: i64) -> JobOutcome {
    if job.not_before > now_ms {
        let wait = u64::try_from(job.not_before.saturating_sub(now_ms).saturating_add(999) / 1000)
            .unwrap_or(1);
        return match worker.queue.enqueue_alert(job, wait).await {
            Ok(()) => JobOutcome::NotYetDue(wait),
            Err(e) => JobOutcome::RetryLater(e.to_string()),
        };
    }
    let (rule, secret) = match worker.rules.get_alert_rule(&job.rule_id).await {
        Ok(Some(found)) => found,
        Ok(None) => return JobOutcome::Skipped("the rule was removed"),
        Err(e) => return JobOutcome::RetryLater(e.to_string()),
    };
    let survey = job.answer.survey.as_str();
    match worker.log.claim_delivery(survey, job, now_ms).await {
        Ok(true) => {}
        Ok(false) => return JobOutcome::Skipped("this attempt was already made"),
        Err(e) => return JobOutcome::RetryLater(e.to_string()),
    }
    let body = payload(rule.target.kind, job);
    let headers = [
        (
            SIGNATURE_HEADER,
            sign(&secret, now_ms / 1000, body.as_bytes()),
        ),
        (DELIVERY_HEADER, job.delivery_id.clone()),
    ];
    let attempts = job.attempt.saturating_add(1);
    let record = |status, detail: String| DeliveryRecord {
        delivery_id: job.delivery_id.clone(),
        rule_id: job.rule_id.clone(),
        status,
        attempts,
        detail: detail.chars().take(MAX_DETAIL_CHARS).collect(),
        at: now_ms,
    };
    let failure = match worker
        .sender
        .post(&rule.target.url, &headers, body.as_bytes())
        .await
    {
        Ok(status) => match classify_status(status) {
            StatusClass::Delivered => {
                log_record(
                    worker,
                    survey,
                    &record(DeliveryStatus::Delivered, format!("HTTP {status}")),
                )
                .await;
                return JobOutcome::Delivered(status);
            }
            StatusClass::Retry => Err(format!("HTTP {status}")),
            StatusClass::GiveUp => Ok(format!("HTTP {status}")),
        },
        Err(SendError::Retryable(why)) => Err(why),
        Err(SendError::Refused(why)) => Ok(why),
    };
    let reason = match failure {
        // Permanent: record and stop.
        Ok(reason) => reason,
        Err(reason) => match retry_delay_secs(job.attempt) {
            Some(delay) => {
                let next = job.next_attempt(
                    now_ms.saturating_add(i64::try_from(delay * 1000).unwrap_or(i64::MAX)),
                );
                match worker.queue.enqueue_alert(&next, delay).await {
                    Ok(()) => {
                        log_record(worker, survey, &record(DeliveryStatus::Pending, reason)).await;
                        return JobOutcome::Retrying(delay);
                    }
                    Err(e) => format!("{reason}; the next attempt could not be queued: {e}"),
                }
            }
            None => format!("{reason} after {attempts} attempts"),
        },
    };
    tracing::warn!(rule = %job.rule_id, delivery = %job.delivery_id, attempts, reason = %reason, "alert delivery given up");
    log_record(
        worker,
        survey,
        &record(DeliveryStatus::Failed, reason.clone()),
    )
    .await;
    JobOutcome::GaveUp(reason)
}

async fn log_record(worker: &AlertWorker<'_>, survey: &str, record: &DeliveryRecord) {
    if let Err(e) = worker.log.record_delivery(survey, record).await {
        tracing::warn!(error = %e, delivery = %record.delivery_id, "alert delivery outcome could not be logged");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertAnswer, AlertKind, AlertSecret, AlertTarget, MAX_ATTEMPTS};
    use crate::response::Source;
    use crate::survey::SurveyKind;
    use async_trait::async_trait;

    /// Rules, log and queue in memory; the sender answers from a script.
    #[derive(Default)]
    struct Fakes {
        claims: Mutex<HashMap<String, (DeliveryStatus, u32)>>,
        queued: Mutex<Vec<(AlertJob, u64)>>,
        answers: Mutex<Vec<Result<u16, SendError>>>,
        posts: Mutex<usize>,
        queue_down: bool,
    }

    fn rule() -> AlertRule {
        AlertRule {
            id: "al_1".into(),
            survey: "nps".into(),
            touchpoint: None,
            min_score: None,
            max_score: Some(6),
            has_comment: None,
            target: AlertTarget {
                url: "https://hooks.example.com/x".into(),
                kind: AlertKind::Generic,
            },
            created_at: 0,
        }
    }

    #[async_trait]
    impl AlertRuleStore for Fakes {
        async fn put_alert_rule(&self, _: &AlertRule, _: &AlertSecret) -> Result<(), StoreError> {
            Ok(())
        }
        async fn get_alert_rule(
            &self,
            id: &str,
        ) -> Result<Option<(AlertRule, AlertSecret)>, StoreError> {
            Ok((id == "al_1").then(|| (rule(), AlertSecret::new("whsec_test"))))
        }
        async fn list_alert_rules(&self, _: Option<&str>) -> Result<Vec<AlertRule>, StoreError> {
            Ok(vec![rule()])
        }
        async fn delete_alert_rule(&self, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
    }

    #[async_trait]
    impl AlertLog for Fakes {
        async fn claim_delivery(
            &self,
            _: &str,
            job: &AlertJob,
            _: i64,
        ) -> Result<bool, StoreError> {
            let mut claims = self.claims.lock().unwrap();
            let want = job.attempt + 1;
            match claims.get(&job.delivery_id) {
                Some((DeliveryStatus::Pending, n)) if *n < want => {}
                Some(_) => return Ok(false),
                None => {}
            }
            claims.insert(job.delivery_id.clone(), (DeliveryStatus::Pending, want));
            Ok(true)
        }
        async fn record_delivery(&self, _: &str, r: &DeliveryRecord) -> Result<(), StoreError> {
            self.claims
                .lock()
                .unwrap()
                .insert(r.delivery_id.clone(), (r.status, r.attempts));
            Ok(())
        }
        async fn get_delivery(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<DeliveryRecord>, StoreError> {
            Ok(None)
        }
    }

    #[async_trait]
    impl AlertQueue for Fakes {
        async fn enqueue_alert(&self, job: &AlertJob, delay: u64) -> Result<(), StoreError> {
            if self.queue_down {
                return Err(StoreError::Transient("queue down".into()));
            }
            self.queued.lock().unwrap().push((job.clone(), delay));
            Ok(())
        }
    }

    #[async_trait]
    impl AlertSender for Fakes {
        async fn post(
            &self,
            _: &str,
            headers: &[(&'static str, String)],
            _: &[u8],
        ) -> Result<u16, SendError> {
            assert!(headers
                .iter()
                .any(|(n, v)| *n == SIGNATURE_HEADER && v.starts_with("t=")));
            *self.posts.lock().unwrap() += 1;
            self.answers.lock().unwrap().remove(0)
        }
    }

    fn job() -> AlertJob {
        AlertJob {
            rule_id: "al_1".into(),
            delivery_id: "d1".into(),
            answer: AlertAnswer {
                survey: "nps".into(),
                touchpoint: "t".into(),
                kind: SurveyKind::Nps,
                score: 3,
                comment: None,
                properties: Default::default(),
                send: String::new(),
                answered_at: 0,
                source: Source::Api,
                event_id: "e1".into(),
            },
            attempt: 0,
            not_before: 0,
        }
    }

    fn worker(f: &Fakes) -> AlertWorker<'_> {
        AlertWorker {
            rules: f,
            log: f,
            queue: f,
            sender: f,
        }
    }

    fn answering(answers: Vec<Result<u16, SendError>>) -> Fakes {
        Fakes {
            answers: Mutex::new(answers),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_retryable_failure_queues_the_next_attempt_with_its_backoff() {
        let f = answering(vec![
            Ok(503),
            Err(SendError::Retryable("reset".into())),
            Ok(204),
        ]);
        let mut j = job();
        for want in [JobOutcome::Retrying(30), JobOutcome::Retrying(120)] {
            assert_eq!(
                run_alert_job(&j, &worker(&f), j.not_before.max(1_000)).await,
                want
            );
            let (next, _) = f.queued.lock().unwrap().pop().unwrap();
            assert_eq!(next.attempt, j.attempt + 1);
            j = next;
        }
        assert_eq!(j.not_before, 1_000 + 30_000 + 120_000);
        assert_eq!(
            run_alert_job(&j, &worker(&f), j.not_before).await,
            JobOutcome::Delivered(204)
        );
        assert_eq!(
            f.claims.lock().unwrap()["d1"],
            (DeliveryStatus::Delivered, 3)
        );
    }

    #[tokio::test]
    async fn a_job_before_its_time_goes_back_without_posting() {
        let f = answering(vec![]);
        let mut j = job();
        j.not_before = 10_000_000;
        assert_eq!(
            run_alert_job(&j, &worker(&f), 1_000).await,
            JobOutcome::NotYetDue(9_999)
        );
        assert_eq!(*f.posts.lock().unwrap(), 0);
        assert_eq!(f.queued.lock().unwrap()[0].0, j);
    }

    #[tokio::test]
    async fn permanent_failures_and_the_last_attempt_give_up_and_are_logged() {
        for answer in [Ok(404), Ok(302), Err(SendError::Refused("loopback".into()))] {
            let f = answering(vec![answer]);
            assert!(matches!(
                run_alert_job(&job(), &worker(&f), 0).await,
                JobOutcome::GaveUp(_)
            ));
            assert!(f.queued.lock().unwrap().is_empty());
            assert_eq!(f.claims.lock().unwrap()["d1"].0, DeliveryStatus::Failed);
        }
        let f = answering(vec![Ok(500)]);
        let mut last = job();
        last.attempt = MAX_ATTEMPTS - 1;
        match run_alert_job(&last, &worker(&f), 0).await {
            JobOutcome::GaveUp(reason) => assert!(reason.contains("after 6 attempts"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_claimed_attempt_or_a_removed_rule_posts_nothing() {
        let f = answering(vec![Ok(200)]);
        assert_eq!(
            run_alert_job(&job(), &worker(&f), 0).await,
            JobOutcome::Delivered(200)
        );
        assert!(matches!(
            run_alert_job(&job(), &worker(&f), 0).await,
            JobOutcome::Skipped(_)
        ));
        let mut gone = job();
        gone.rule_id = "al_gone".into();
        assert!(matches!(
            run_alert_job(&gone, &worker(&f), 0).await,
            JobOutcome::Skipped(_)
        ));
        assert_eq!(*f.posts.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_queue_that_cannot_take_the_next_attempt_gives_up_with_the_reason() {
        let f = Fakes {
            queue_down: true,
            ..answering(vec![Ok(503)])
        };
        match run_alert_job(&job(), &worker(&f), 0).await {
            JobOutcome::GaveUp(reason) => {
                assert!(reason.contains("could not be queued"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn raising_alerts_enqueues_matching_answers_and_survives_a_queue_outage() {
        let f = Fakes::default();
        let rules = CachedAlertRules::new(Arc::new(Fakes::default()), RULES_TTL);
        let answer = |score: i64| ResponseEvent {
            event_id: format!("e{score}"),
            survey: "nps".into(),
            touchpoint: "t".into(),
            respondent: "r".into(),
            kind: SurveyKind::Nps,
            score,
            comment: None,
            properties: Default::default(),
            answered_at: 0,
            source: Source::Api,
            send: String::new(),
            click: false,
        };
        let raised = raise_alerts(&[answer(2), answer(9)], &rules, &f).await;
        assert_eq!(
            raised,
            RaisedAlerts {
                enqueued: 1,
                failed: 0
            }
        );
        let down = Fakes {
            queue_down: true,
            ..Default::default()
        };
        let raised = raise_alerts(&[answer(2)], &rules, &down).await;
        assert_eq!(
            raised,
            RaisedAlerts {
                enqueued: 0,
                failed: 1
            }
        );
    }
}
