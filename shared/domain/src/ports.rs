//! Ports: the small async traits the domain talks to storage and queues through.

use crate::alerts::{AlertJob, AlertRule, AlertSecret, DeliveryRecord};
use crate::changes::{Chunk, RecordState};
use crate::explore::{ResponseCursor, StoredResponse};
use crate::orders::{Connection, Invitation, InvitationCursor, WebhookSecret};
pub use crate::report::CounterRow;
use crate::response::{ResponseEvent, ResponseKey, Suppression};
use crate::survey::Survey;
use crate::time::Day;
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};

/// A storage or queue failure, saying whether trying again later can succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Throttling, a timeout, a dropped connection: try again later.
    #[error("temporary storage failure: {0}")]
    Transient(String),
    /// The request itself is wrong and will fail every time.
    #[error("storage rejected the request: {0}")]
    Permanent(String),
    /// A create found the item already there.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The disk (or the database's size limit) is full: nothing was written; try again once
    /// space is freed.
    #[error("storage is out of space: {0}")]
    OutOfSpace(String),
}

impl StoreError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Transient(_) | StoreError::OutOfSpace(_))
    }
}

/// What committing one chunk did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Every record and counter in the chunk was written, atomically.
    Committed,
    /// Nothing was written: the records at these transition indexes changed since they were read
    /// (or were being written concurrently); read them again and re-plan.
    Conflicted(Vec<usize>),
}

/// Sends accepted response events to the aggregator.
#[async_trait]
pub trait ResponseQueue: Send + Sync {
    /// Enqueues one event durably; once this returns Ok the event will be applied.
    async fn enqueue(&self, event: &ResponseEvent) -> Result<(), StoreError>;
    /// Enqueues several events; once this returns Ok every one will be applied. On an error
    /// some may have been enqueued (enqueuing them again is safe: their event ids are stable).
    async fn enqueue_batch(&self, events: &[ResponseEvent]) -> Result<(), StoreError> {
        for event in events {
            self.enqueue(event).await?;
        }
        Ok(())
    }
}

/// Reads and writes survey definitions.
#[async_trait]
pub trait SurveyStore: Send + Sync {
    /// The survey with this id, if any.
    async fn get_survey(&self, id: &str) -> Result<Option<Survey>, StoreError>;
    /// Stores a new survey; fails with `AlreadyExists` when the id is taken.
    async fn create_survey(&self, survey: &Survey) -> Result<(), StoreError>;
    /// Every survey, ordered by id.
    async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError>;
}

/// The aggregator's store: response records and counters, written together exactly once.
#[async_trait]
pub trait ResponseLedger: Send + Sync {
    /// The current record of each key that has one.
    async fn load_records(
        &self,
        keys: &[ResponseKey],
    ) -> Result<HashMap<ResponseKey, RecordState>, StoreError>;
    /// Writes a chunk's records (each conditional on the version it was planned from) and its
    /// counter deltas in one atomic transaction.
    async fn commit(&self, chunk: &Chunk) -> Result<CommitOutcome, StoreError>;
    /// Keeps a message that can never be applied, for inspection.
    async fn keep_rejected(
        &self,
        message_id: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), StoreError>;
}

/// The suppression list: respondents who unsubscribed, whom nothing may survey again.
#[async_trait]
pub trait SuppressionList: Send + Sync {
    /// Adds a respondent (normalised with `response::suppression_id`); adding one already on
    /// the list keeps the first entry.
    async fn suppress(&self, entry: &Suppression) -> Result<(), StoreError>;
    /// Removes a respondent; whether it was on the list.
    async fn unsuppress(&self, respondent: &str) -> Result<bool, StoreError>;
    /// Every entry, ordered by respondent.
    async fn list_suppressed(&self) -> Result<Vec<Suppression>, StoreError>;
    /// Which of `respondents` are on the list, in `response::suppression_id` form.
    async fn suppressed_among(&self, respondents: &[String])
        -> Result<HashSet<String>, StoreError>;
}

/// Store connections and their webhook signing secrets.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Creates or replaces a connection and its secret.
    async fn put_connection(
        &self,
        connection: &Connection,
        secret: &WebhookSecret,
    ) -> Result<(), StoreError>;
    /// A connection and its secret, if it exists.
    async fn get_connection(
        &self,
        id: &str,
    ) -> Result<Option<(Connection, WebhookSecret)>, StoreError>;
    /// A connection without its secret, if it exists (for code that never verifies a webhook).
    async fn get_connection_settings(&self, id: &str) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .get_connection(id)
            .await?
            .map(|(connection, _)| connection))
    }
    /// Every connection (without secrets), ordered by id.
    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError>;
    /// Removes a connection; whether it existed.
    async fn delete_connection(&self, id: &str) -> Result<bool, StoreError>;
}

/// Post-order invitations, and who was invited to which survey when (the frequency cap).
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Stores a new invitation unless its connection and order have one; whether it was stored.
    async fn create_invitation(&self, invitation: &Invitation) -> Result<bool, StoreError>;
    /// The invitation of one order, if any.
    async fn get_invitation(
        &self,
        connection: &str,
        order: &str,
    ) -> Result<Option<Invitation>, StoreError>;
    /// Replaces an invitation if it is still as `seen` (same status, attempts and lease);
    /// whether it was replaced.
    async fn replace_invitation(
        &self,
        seen: &Invitation,
        next: &Invitation,
    ) -> Result<bool, StoreError>;
    /// Invitations in [`listing_order`](crate::orders::listing_order) (newest first), at most
    /// `limit`, of one connection or of all; only those after `after` when given.
    async fn list_invitations(
        &self,
        connection: Option<&str>,
        after: Option<&InvitationCursor>,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError>;
    /// Invitations still scheduled (or whose sender's lease ran out) that are due by `now_ms`,
    /// oldest first, at most `limit`.
    async fn due_invitations(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError>;
    /// Records that `contact` is invited to `survey` by `claimant` at `at_ms`, unless another
    /// claimant was within `cap_ms` before it; whether the claim holds (a repeat by the same
    /// claimant holds).
    async fn claim_contact(
        &self,
        survey: &str,
        contact: &str,
        claimant: &str,
        at_ms: i64,
        cap_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Gives back the frequency-cap claim `claimant` holds on `contact` (its invitation failed
    /// and sent nothing), so the contact can be invited again; a claim held by anyone else stays.
    async fn release_contact(
        &self,
        survey: &str,
        contact: &str,
        claimant: &str,
    ) -> Result<(), StoreError>;
}

/// Puts invitations on the clock.
#[async_trait]
pub trait InvitationScheduler: Send + Sync {
    /// Arranges for the invitation to be delivered at its due time; scheduling one that is
    /// already scheduled is not an error.
    async fn schedule(&self, invitation: &Invitation) -> Result<(), StoreError>;
}

/// Why an email was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Throttling, a timeout, an outage: try again later.
    #[error("temporary mail failure: {0}")]
    Transient(String),
    /// The message or its sender is refused and will be every time.
    #[error("mail refused: {0}")]
    Permanent(String),
}

/// Sends emails.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one MIME message (headers and body, CRLF line ends) from `from` to `to`; the
    /// provider's message id.
    async fn send_raw(&self, from: &str, to: &str, mime: &[u8]) -> Result<String, MailError>;
}

/// Reads counters for metrics.
#[async_trait]
pub trait CounterReader: Send + Sync {
    /// Every counter row of a survey with a day in `from..=to`.
    async fn read_counters(
        &self,
        survey: &str,
        from: Day,
        to: Day,
    ) -> Result<Vec<CounterRow>, StoreError>;
}

/// Reads stored responses in answer-time order.
#[async_trait]
pub trait ResponseReader: Send + Sync {
    /// Responses of a survey answered in `from_ms..to_ms` (end excluded), newest first (ties by
    /// record id, descending), strictly after `after` in that order, at most `limit`.
    async fn responses_page(
        &self,
        survey: &str,
        from_ms: i64,
        to_ms: i64,
        after: Option<&ResponseCursor>,
        limit: usize,
    ) -> Result<Vec<StoredResponse>, StoreError>;
}

/// Alert rules and their signing secrets.
#[async_trait]
pub trait AlertRuleStore: Send + Sync {
    /// Creates or replaces a rule and its secret.
    async fn put_alert_rule(
        &self,
        rule: &AlertRule,
        secret: &AlertSecret,
    ) -> Result<(), StoreError>;
    /// A rule and its secret, if it exists.
    async fn get_alert_rule(
        &self,
        id: &str,
    ) -> Result<Option<(AlertRule, AlertSecret)>, StoreError>;
    /// Every rule (without secrets) of one survey, or of all, ordered by id.
    async fn list_alert_rules(&self, survey: Option<&str>) -> Result<Vec<AlertRule>, StoreError>;
    /// Removes a rule; whether it existed.
    async fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError>;
}

/// The alert delivery queue, apart from the response queue so deliveries never slow aggregation.
#[async_trait]
pub trait AlertQueue: Send + Sync {
    /// Enqueues a job, visible after `delay_secs` (an adapter with a shorter limit delivers it
    /// earlier, and the worker puts it back until its `not_before`).
    async fn enqueue_alert(&self, job: &AlertJob, delay_secs: u64) -> Result<(), StoreError>;
}

/// The log of alert deliveries: each attempt of each delivery is claimed once.
#[async_trait]
pub trait AlertLog: Send + Sync {
    /// Claims attempt `attempt` of a delivery: true when no attempt as late was claimed before
    /// and the delivery is still pending (so a redelivered job never posts twice).
    async fn claim_delivery(
        &self,
        survey: &str,
        job: &AlertJob,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Records where a claimed delivery stands.
    async fn record_delivery(
        &self,
        survey: &str,
        record: &DeliveryRecord,
    ) -> Result<(), StoreError>;
    /// A delivery's log entry, if any.
    async fn get_delivery(
        &self,
        survey: &str,
        delivery_id: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError>;
}

/// Why an outbound post did not get an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A timeout, a refused or dropped connection, a DNS failure: try again later.
    #[error("temporary delivery failure: {0}")]
    Retryable(String),
    /// The endpoint may never be called (a private address, a bad URL or redirect).
    #[error("delivery refused: {0}")]
    Refused(String),
}

/// Posts alert payloads to their endpoints.
#[async_trait]
pub trait AlertSender: Send + Sync {
    /// Posts `body` as JSON to `url` with extra `headers`; the endpoint's HTTP status.
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> Result<u16, SendError>;
}

#[cfg(test)]
mod tests {
    use super::StoreError;

    #[test]
    fn a_full_disk_and_a_transient_failure_are_retryable_the_others_are_not() {
        assert!(StoreError::OutOfSpace("disk full".into()).is_retryable());
        assert!(StoreError::Transient("busy".into()).is_retryable());
        assert!(!StoreError::Permanent("bad".into()).is_retryable());
        assert!(!StoreError::AlreadyExists("survey 's'".into()).is_retryable());
    }
}
