//! What a batch writes: the stored state of a response record, the record changes planned from
//! it, their counter deltas, and the chunks that commit atomically. Shared by the planner
//! (`aggregate`) and the ledger port (`ports`), which import it and not each other.

use crate::metrics::Histogram;
use crate::response::{AnswerVersion, ResponseEvent, ResponseKey, Source};
use crate::time::Day;
use std::collections::BTreeMap;

/// A provisional click kept on a record: enough to tell a person's click from a scanner's burst.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClickMark {
    /// When the link was opened, Unix ms.
    pub at: i64,
    /// Event id of the click.
    pub event_id: String,
    /// The score the link carried.
    pub score: i64,
}

impl ClickMark {
    /// The mark of a click event.
    pub fn of(event: &ResponseEvent) -> ClickMark {
        ClickMark {
            at: event.answered_at,
            event_id: event.event_id.clone(),
            score: event.score,
        }
    }

    /// Encodes marks as `at:score:event_id` joined by `;` (event ids are hex, scores numbers).
    pub fn encode(marks: &[ClickMark]) -> String {
        let mut out = String::with_capacity(marks.len() * 48);
        for (i, m) in marks.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            out.push_str(&format!("{}:{}:{}", m.at, m.score, m.event_id));
        }
        out
    }

    /// Decodes [`ClickMark::encode`]'s text; damaged entries are skipped.
    pub fn decode(text: &str) -> Vec<ClickMark> {
        text.split(';')
            .filter_map(|part| {
                let mut it = part.splitn(3, ':');
                Some(ClickMark {
                    at: it.next()?.parse().ok()?,
                    score: it.next()?.parse().ok()?,
                    event_id: it.next().filter(|e| !e.is_empty())?.to_string(),
                })
            })
            .collect()
    }
}

/// The stored state of a response record that planning needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordState {
    /// Answer time of the record's answer (counted, or set aside as automated), Unix ms.
    pub answered_at: i64,
    /// Event id of that answer.
    pub event_id: String,
    /// Histogram slot it is counted in.
    pub slot: u16,
    /// Its raw score.
    pub score: i64,
    /// The day whose counter holds it.
    pub day: Day,
    /// Where it came from (None: written before sources were counted, so none is counted).
    pub source: Option<Source>,
    /// Whether the answer is a provisional click rather than an explicit answer.
    pub click: bool,
    /// Whether the answer is set aside as automated (a link scanner's burst) instead of counted.
    pub automated: bool,
    /// Recent clicks on the email's links, oldest first.
    pub clicks: Vec<ClickMark>,
    /// Revision: every write adds one; a write is conditional on the revision it was planned
    /// from (0: a record written before revisions existed).
    pub rev: u64,
    /// The comment of the record's answer, when it is an explicit answer with one: a later
    /// explicit answer without a comment keeps it.
    pub comment: Option<String>,
}

impl RecordState {
    /// The version of the record's answer.
    pub fn version(&self) -> AnswerVersion {
        (self.answered_at, self.event_id.clone())
    }

    /// The state of a record holding just this event, counted.
    pub fn of(event: &ResponseEvent) -> RecordState {
        RecordState {
            answered_at: event.answered_at,
            event_id: event.event_id.clone(),
            slot: event.kind.slot(event.score),
            score: event.score,
            day: Day::from_unix_ms(event.answered_at),
            source: Some(event.source),
            click: event.click,
            automated: false,
            clicks: if event.click {
                vec![ClickMark::of(event)]
            } else {
                Vec::new()
            },
            rev: 1,
            comment: if event.click || !event.has_comment() {
                None
            } else {
                event.comment.clone()
            },
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
    /// The send it counts (empty: the counter of every send).
    pub send: String,
}

impl CounterKey {
    /// The touchpoint as stored: the slug, then `#` and the send for a send's own counter.
    pub fn stored_touchpoint(&self) -> String {
        if self.send.is_empty() {
            self.touchpoint.clone()
        } else {
            format!("{}#{}", self.touchpoint, self.send)
        }
    }
}

/// The events of one response key in a batch, with every message that carried one.
#[derive(Debug, Clone)]
pub struct KeyedEvent {
    /// The response key.
    pub key: ResponseKey,
    /// The batch's events for the key, one per event id.
    pub events: Vec<ResponseEvent>,
    /// Ids of all messages for this key in the batch (acknowledged together).
    pub message_ids: Vec<String>,
}

/// One record change and the counter deltas it implies.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The response key.
    pub key: ResponseKey,
    /// The revision the record must still have (None: it must not exist yet).
    pub expected: Option<u64>,
    /// The record's new answer, or None when it keeps its answer and only its state changes
    /// (clicks, automated, revision).
    pub event: Option<ResponseEvent>,
    /// The record's whole new state (its answer's fields, clicks, revision).
    pub state: RecordState,
    /// The batch's events for the key, planned again if the record changed meanwhile.
    pub events: Vec<ResponseEvent>,
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
