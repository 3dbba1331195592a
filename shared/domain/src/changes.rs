//! What a batch writes: the stored state of a response record, the record changes planned from
//! it, their counter deltas, and the chunks that commit atomically. Shared by the planner
//! (`aggregate`) and the ledger port (`ports`), which import it and not each other.

use crate::metrics::Histogram;
use crate::response::{AnswerVersion, ResponseEvent, ResponseKey};
use crate::time::Day;
use std::collections::BTreeMap;

/// The stored state of a response record that planning needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordState {
    /// Answer time of the counted answer, Unix ms.
    pub answered_at: i64,
    /// Event id of the counted answer.
    pub event_id: String,
    /// Histogram slot it is counted in.
    pub slot: u16,
    /// Its raw score.
    pub score: i64,
    /// The day whose counter holds it.
    pub day: Day,
}

impl RecordState {
    /// The version of the counted answer.
    pub fn version(&self) -> AnswerVersion {
        (self.answered_at, self.event_id.clone())
    }

    /// The state a record has after this event is applied.
    pub fn of(event: &ResponseEvent) -> RecordState {
        RecordState {
            answered_at: event.answered_at,
            event_id: event.event_id.clone(),
            slot: event.kind.slot(event.score),
            score: event.score,
            day: Day::from_unix_ms(event.answered_at),
        }
    }
}

/// Names one counter item: a touchpoint's histogram on one day.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    /// Survey id.
    pub survey: String,
    /// Touchpoint slug.
    pub touchpoint: String,
    /// UTC day of the answers.
    pub day: Day,
}

/// The latest event of one response key in a batch, with every message that carried an event for it.
#[derive(Debug, Clone)]
pub struct KeyedEvent {
    /// The response key.
    pub key: ResponseKey,
    /// The latest event for the key in the batch.
    pub event: ResponseEvent,
    /// Ids of all messages for this key in the batch (acknowledged together).
    pub message_ids: Vec<String>,
}

/// One record change and the counter deltas it implies.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The response key.
    pub key: ResponseKey,
    /// The version the record must still have (None: it must not exist yet).
    pub expected: Option<AnswerVersion>,
    /// The event that becomes the record.
    pub event: ResponseEvent,
    /// Counter deltas: +1 at the new answer, −1 at the replaced one.
    pub deltas: Vec<(CounterKey, Histogram)>,
    /// Messages acknowledged when this transition commits.
    pub message_ids: Vec<String>,
}

/// Transitions and merged counter deltas that commit together in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    /// Record writes, each conditional on its expected version.
    pub transitions: Vec<Transition>,
    /// Counter deltas merged per key; keys whose deltas cancel out are left out.
    pub counters: BTreeMap<CounterKey, Histogram>,
}

impl Chunk {
    /// Number of items the transaction writes.
    pub fn action_count(&self) -> usize {
        self.transitions.len() + self.counters.len()
    }
}
