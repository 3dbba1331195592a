//! Exactly-once aggregation: from a batch of queue messages to atomic record and counter writes.
//!
//! Each response key has one record holding its current answer and the version (answer time,
//! event id) it reflects. A batch is reduced to the latest event per key, compared with the stored
//! record, and turned into transitions: the new record, conditional on the stored version, and
//! the counter deltas it implies (+1 on the new score, −1 on the old one). Transitions are packed
//! into chunks of at most 100 actions with deltas merged per counter key, and each chunk commits
//! atomically. A condition that fails means someone else moved the record: re-read and re-plan.
//! Duplicates and older answers change nothing, so redelivery in any order is harmless.

pub use crate::changes::{Chunk, ClickMark, CounterKey, KeyedEvent, RecordState, Transition};
use crate::metrics::{source_slot, Histogram, AUTOMATED_SLOT};
use crate::ports::{CommitOutcome, ResponseLedger};
use crate::response::{ResponseEvent, ResponseKey};
use crate::time::Day;
use std::collections::{BTreeMap, HashMap};

/// Most actions in one DynamoDB transaction.
pub const MAX_TRANSACTION_ACTIONS: usize = 100;
/// Read-plan-commit rounds before conflicted messages are handed back to the queue.
const MAX_ROUNDS: usize = 4;

/// A queue message decoded into an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The queue's id of this message.
    pub message_id: String,
    /// The event it carries.
    pub event: ResponseEvent,
}

/// The result of planning a batch against stored records.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Record changes to commit.
    pub transitions: Vec<Transition>,
    /// Messages whose events are already reflected or older than the stored answer.
    pub superseded: Vec<String>,
}

/// What applying a batch did with each message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Messages whose event was written.
    pub applied: Vec<String>,
    /// Messages that changed nothing: duplicates or older answers.
    pub superseded: Vec<String>,
    /// Messages that can never be applied, kept for inspection, with the reason.
    pub rejected: Vec<(String, String)>,
    /// Messages to deliver again later (nothing of theirs was written).
    pub failed: Vec<String>,
    /// Items written, summed over committed transactions.
    pub items_written: usize,
    /// Transactions committed.
    pub transactions: usize,
    /// Chunks that found a record changed since it was read, and were re-planned.
    pub conflicts: usize,
    /// Chunks the store refused permanently and that were split to isolate the refused answer.
    pub isolations: usize,
    /// The new counted answers that committed (not the ones set aside as automated, not the
    /// state-only changes): what alert rules are matched against, once per answer version.
    pub counted: Vec<ResponseEvent>,
}

/// Decodes and checks a queue message body; the error says why it can never be applied.
pub fn decode_message(message_id: &str, body: &str) -> Result<Delivery, String> {
    let event: ResponseEvent =
        serde_json::from_str(body).map_err(|e| format!("not a response event: {e}"))?;
    event.validate_shape().map_err(|e| e.0)?;
    Ok(Delivery {
        message_id: message_id.to_string(),
        event,
    })
}

/// Groups deliveries per response key (one event per event id), keeping every message id.
pub fn latest_per_key(deliveries: Vec<Delivery>) -> Vec<KeyedEvent> {
    let mut by_key: HashMap<ResponseKey, KeyedEvent> = HashMap::new();
    for d in deliveries {
        let key = d.event.key();
        let k = by_key.entry(key.clone()).or_insert_with(|| KeyedEvent {
            key,
            events: Vec::new(),
            message_ids: Vec::new(),
        });
        k.message_ids.push(d.message_id);
        if !k.events.iter().any(|e| e.event_id == d.event.event_id) {
            k.events.push(d.event);
        }
    }
    let mut out: Vec<KeyedEvent> = by_key.into_values().collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Clicks on one email's links closer together than this (from the first) form one burst, Unix ms.
pub const BURST_WINDOW_MS: i64 = 60_000;
/// Most clicks a record keeps (the newest).
pub const MAX_CLICKS: usize = 32;

/// The answer a record resolves to.
enum Winner {
    /// The stored answer stays.
    Stored,
    /// This event becomes the answer.
    New(ResponseEvent),
}

/// Which answer a record holds, given its stored state and a batch's events for it.
///
/// - An explicit answer (sent from the page or the API) always beats a click; the latest
///   explicit answer wins.
/// - Without one, clicks are grouped in bursts (each click within [`BURST_WINDOW_MS`] of the
///   burst's first). A burst with two or more different scores is a link scanner opening the
///   email's links; one with a single score (a click, a reload, the email opened again) is a
///   person. The latest click of a person's burst wins and counts; when every burst is a
///   scanner's, the latest click is kept but set aside as automated.
///
/// The result depends only on the set of events, never on their order of arrival.
fn resolve(
    stored: Option<&RecordState>,
    events: &[ResponseEvent],
) -> Option<(Winner, RecordState)> {
    let template = events.first()?;
    let mut clicks: Vec<ClickMark> = stored.map(|s| s.clicks.clone()).unwrap_or_default();
    for e in events.iter().filter(|e| e.click) {
        if !clicks.iter().any(|c| c.event_id == e.event_id) {
            clicks.push(ClickMark::of(e));
        }
    }
    clicks.sort();
    if clicks.len() > MAX_CLICKS {
        clicks.drain(..clicks.len() - MAX_CLICKS);
    }
    let stored_explicit = stored.filter(|s| !s.click);
    let batch_explicit = events
        .iter()
        .filter(|e| !e.click)
        .max_by_key(|e| e.version());
    let explicit_winner = match (stored_explicit, batch_explicit) {
        (Some(s), Some(e)) if e.version() > s.version() => Some(Winner::New(e.clone())),
        (Some(_), _) => Some(Winner::Stored),
        (None, Some(e)) => Some(Winner::New(e.clone())),
        (None, None) => None,
    };
    let (winner, automated) = match explicit_winner {
        Some(w) => (w, false),
        None => {
            let (mark, automated) = decide_clicks(&clicks)?;
            let winner = if stored.is_some_and(|s| s.event_id == mark.event_id) {
                Winner::Stored
            } else if let Some(e) = events.iter().find(|e| e.event_id == mark.event_id) {
                Winner::New(e.clone())
            } else {
                // A click kept on the record: the same respondent's click, rebuilt.
                Winner::New(ResponseEvent {
                    event_id: mark.event_id.clone(),
                    score: mark.score,
                    answered_at: mark.at,
                    comment: None,
                    properties: BTreeMap::new(),
                    click: true,
                    ..template.clone()
                })
            };
            (winner, automated)
        }
    };
    // An explicit answer without a comment (a score changed on the page, a form sent again
    // with an empty box) keeps the comment of the explicit answers it replaces.
    let winner = match winner {
        Winner::New(mut e) if !e.click && !e.has_comment() => {
            e.comment = earlier_comment(stored, events, &e);
            Winner::New(e)
        }
        w => w,
    };
    let mut state = match (&winner, stored) {
        (Winner::New(e), _) => RecordState::of(e),
        (Winner::Stored, Some(s)) => s.clone(),
        (Winner::Stored, None) => return None,
    };
    state.automated = automated;
    state.clicks = clicks;
    state.rev = stored.map_or(1, |s| s.rev + 1);
    Some((winner, state))
}

/// The latest comment among the explicit answers older than `answer`: the stored one and the
/// batch's.
fn earlier_comment(
    stored: Option<&RecordState>,
    events: &[ResponseEvent],
    answer: &ResponseEvent,
) -> Option<String> {
    let version = answer.version();
    let from_batch = events
        .iter()
        .filter(|e| !e.click && e.has_comment() && e.version() < version)
        .max_by_key(|e| e.version())
        .map(|e| (e.version(), e.comment.clone()));
    let from_stored = stored
        .filter(|s| !s.click && s.comment.is_some() && s.version() < version)
        .map(|s| (s.version(), s.comment.clone()));
    from_batch.into_iter().chain(from_stored).max()?.1
}

/// The click that wins among `clicks` (sorted), and whether it is set aside as automated.
fn decide_clicks(clicks: &[ClickMark]) -> Option<(&ClickMark, bool)> {
    let mut latest_person: Option<&ClickMark> = None;
    let mut start = 0;
    while start < clicks.len() {
        let first = clicks[start].at;
        let end = clicks[start..]
            .iter()
            .position(|c| c.at - first > BURST_WINDOW_MS)
            .map_or(clicks.len(), |i| start + i);
        let burst = &clicks[start..end];
        if burst.iter().all(|c| c.score == burst[0].score) {
            latest_person = burst.last();
        }
        start = end;
    }
    match latest_person {
        Some(c) => Some((c, false)),
        None => clicks.last().map(|c| (c, true)),
    }
}

/// What a record state adds to the counters: its answer in its score slot and source, or one
/// answer set aside as automated.
fn contribution(state: &RecordState, sign: i64) -> Histogram {
    if state.automated {
        return Histogram {
            n: 0,
            sum: 0,
            slots: BTreeMap::from([(AUTOMATED_SLOT, sign)]),
        };
    }
    let mut h = one(state.slot, state.score, sign);
    if let Some(source) = state.source {
        h.slots.insert(source_slot(source), sign);
    }
    h
}

/// Compares the batch's events with the stored records and plans the record changes.
pub fn plan(batch: Vec<KeyedEvent>, current: &HashMap<ResponseKey, RecordState>) -> Plan {
    let mut plan = Plan::default();
    for k in batch {
        let stored = current.get(&k.key);
        let Some((winner, state)) = resolve(stored, &k.events) else {
            plan.superseded.extend(k.message_ids);
            continue;
        };
        // Clicks after an explicit answer are not kept: they can never win.
        let unchanged = stored.is_some_and(|s| {
            s.event_id == state.event_id
                && s.automated == state.automated
                && (!state.click || s.clicks == state.clicks)
        });
        if unchanged {
            plan.superseded.extend(k.message_ids);
            continue;
        }
        // Every answer counts in its touchpoint's counter of all sends; an answer in a named
        // send also counts in that send's own counter, so one wave can be read alone.
        let send = &k.events[0].send;
        let counter = |day: Day, send: &str| CounterKey {
            survey: k.events[0].survey.clone(),
            touchpoint: k.events[0].touchpoint.clone(),
            day,
            send: send.to_string(),
        };
        let sends: &[&str] = if send.is_empty() { &[""] } else { &["", send] };
        let mut deltas = Vec::with_capacity(4);
        for send in sends {
            deltas.push((counter(state.day, send), contribution(&state, 1)));
            if let Some(old) = stored {
                deltas.push((counter(old.day, send), contribution(old, -1)));
            }
        }
        plan.transitions.push(Transition {
            key: k.key,
            expected: stored.map(|s| s.rev),
            event: match winner {
                Winner::New(e) => Some(e),
                Winner::Stored => None,
            },
            state,
            events: k.events,
            deltas,
            message_ids: k.message_ids,
        });
    }
    plan
}

fn one(slot: u16, score: i64, sign: i64) -> Histogram {
    Histogram {
        n: sign,
        sum: sign * score,
        slots: BTreeMap::from([(slot, sign)]),
    }
}

/// Packs transitions into chunks of at most `max_actions` items, merging counter deltas per key.
///
/// Transitions that share their first counter go whole into one chunk whenever they fit in one,
/// so a counter item is written once per batch rather than once in each of two chunks.
pub fn chunk(mut transitions: Vec<Transition>, max_actions: usize) -> Vec<Chunk> {
    // Transitions that touch the same counters sit together, so chunks share counter items.
    transitions.sort_by(|a, b| first_counter(a).cmp(&first_counter(b)));
    let max_actions = max_actions.max(3);
    let mut chunks = Vec::new();
    let mut current = Chunk::default();
    let mut rest = transitions.into_iter().peekable();
    while let Some(first) = rest.next() {
        let mut group = vec![first];
        while let Some(next) = rest.next_if(|t| first_counter(t) == first_counter(&group[0])) {
            group.push(next);
        }
        let keys: std::collections::BTreeSet<&CounterKey> = group
            .iter()
            .flat_map(|t| t.deltas.iter().map(|d| &d.0))
            .collect();
        let alone = group.len() + keys.len();
        let added = group.len()
            + keys
                .iter()
                .filter(|k| !current.counters.contains_key(**k))
                .count();
        if !current.transitions.is_empty()
            && current.action_count() + added > max_actions
            && alone <= max_actions
        {
            chunks.push(finish(std::mem::take(&mut current)));
        }
        for t in group {
            let new_keys = t
                .deltas
                .iter()
                .filter(|(k, _)| !current.counters.contains_key(k))
                .count();
            if !current.transitions.is_empty()
                && current.transitions.len() + current.counters.len() + 1 + new_keys > max_actions
            {
                chunks.push(finish(std::mem::take(&mut current)));
            }
            for (key, delta) in &t.deltas {
                current
                    .counters
                    .entry(key.clone())
                    .or_default()
                    .merge(delta);
            }
            current.transitions.push(t);
        }
    }
    if !current.transitions.is_empty() {
        chunks.push(finish(current));
    }
    chunks
}

/// The counter a transition adds its new answer to.
fn first_counter(t: &Transition) -> Option<&CounterKey> {
    t.deltas.first().map(|d| &d.0)
}

fn finish(mut chunk: Chunk) -> Chunk {
    chunk
        .counters
        .retain(|_, h| !(h.n == 0 && h.sum == 0 && h.slots.values().all(|c| *c == 0)));
    chunk
}

/// Applies a batch of queue messages `(message id, body)` to the ledger, exactly once per response.
///
/// A message that can never be applied is kept as rejected with its reason and acknowledged; it
/// never takes its neighbours down: a chunk the store refuses permanently is split in halves until
/// the refused answer stands alone, and every other answer commits.
pub async fn apply_batch<L: ResponseLedger + ?Sized>(
    ledger: &L,
    messages: Vec<(String, String)>,
) -> BatchOutcome {
    let mut out = BatchOutcome::default();
    let mut bodies: HashMap<String, String> = HashMap::with_capacity(messages.len());
    let mut deliveries: HashMap<String, Delivery> = HashMap::with_capacity(messages.len());
    for (id, body) in messages {
        match decode_message(&id, &body) {
            Ok(d) => {
                deliveries.insert(id.clone(), d);
                bodies.insert(id, body);
            }
            Err(reason) => reject(ledger, &mut out, &id, &body, reason).await,
        }
    }
    let mut pending = latest_per_key(deliveries.values().cloned().collect());
    // Messages older than the batch's latest for their key are superseded once that one commits;
    // they stay attached to it so they are retried with it if it fails.
    for round in 0..MAX_ROUNDS {
        if pending.is_empty() {
            break;
        }
        if round > 0 {
            let jitter: u64 = rand::random::<u64>() % 20;
            tokio::time::sleep(std::time::Duration::from_millis(10 * (1 << round) + jitter)).await;
        }
        let keys: Vec<ResponseKey> = pending.iter().map(|k| k.key.clone()).collect();
        let current = match ledger.load_records(&keys).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not read response records; batch will be retried");
                break;
            }
        };
        let plan = plan(std::mem::take(&mut pending), &current);
        out.superseded.extend(plan.superseded);
        let mut replan = Vec::new();
        // Chunks still to commit; a permanently refused chunk comes back as its two halves.
        let mut work = chunk(plan.transitions, MAX_TRANSACTION_ACTIONS);
        work.reverse();
        while let Some(chunk) = work.pop() {
            match ledger.commit(&chunk).await {
                Ok(CommitOutcome::Committed) => {
                    out.transactions += 1;
                    out.items_written += chunk.action_count();
                    out.counted.extend(
                        chunk
                            .transitions
                            .iter()
                            .filter_map(|t| t.event.clone().filter(|_| !t.state.automated)),
                    );
                    // Every message of a committed key is done: its event won or is older.
                    out.applied
                        .extend(chunk.transitions.into_iter().flat_map(|t| t.message_ids));
                }
                Ok(CommitOutcome::Conflicted(indexes)) => {
                    out.conflicts += 1;
                    tracing::info!(
                        conflicts = indexes.len(),
                        round,
                        "records changed since read; re-planning chunk"
                    );
                    pending.extend(chunk.transitions.into_iter().map(|t| KeyedEvent {
                        key: t.key,
                        events: t.events,
                        message_ids: t.message_ids,
                    }));
                }
                Err(e) if !e.is_retryable() && chunk.transitions.len() > 1 => {
                    // Some answer in here can never be written: find it by halving.
                    out.isolations += 1;
                    tracing::warn!(error = %e, transitions = chunk.transitions.len(), "chunk refused; splitting it to isolate the refused answer");
                    let mut transitions = chunk.transitions;
                    let second = transitions.split_off(transitions.len() / 2);
                    for half in [second, transitions] {
                        let mut halves = self::chunk(half, MAX_TRANSACTION_ACTIONS);
                        halves.reverse();
                        work.extend(halves);
                    }
                }
                Err(e) if !e.is_retryable() => {
                    let Some(t) = chunk.transitions.into_iter().next() else {
                        continue;
                    };
                    let reason = format!("the store refuses this answer: {e}");
                    for id in t.message_ids {
                        let Some(d) = deliveries.get(&id) else {
                            continue;
                        };
                        // The answer being written is refused (or, when only the record's
                        // state changed, every event that changed it).
                        let refused = t
                            .event
                            .as_ref()
                            .is_none_or(|w| w.event_id == d.event.event_id);
                        if refused {
                            let body = bodies.get(&id).map(String::as_str).unwrap_or_default();
                            reject(ledger, &mut out, &id, body, reason.clone()).await;
                        } else {
                            // An older answer of the same respondent may still be applied.
                            replan.push(d.clone());
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "chunk not committed; its messages will be retried");
                    out.failed
                        .extend(chunk.transitions.into_iter().flat_map(|t| t.message_ids));
                }
            }
        }
        pending.extend(latest_per_key(replan));
    }
    out.failed
        .extend(pending.into_iter().flat_map(|k| k.message_ids));
    out
}

/// Keeps a message that can never be applied, or hands it back to the queue when keeping it fails.
async fn reject<L: ResponseLedger + ?Sized>(
    ledger: &L,
    out: &mut BatchOutcome,
    id: &str,
    body: &str,
    reason: String,
) {
    match ledger.keep_rejected(id, body, &reason).await {
        Ok(()) => {
            tracing::warn!(message_id = %id, %reason, "rejected message kept for inspection");
            out.rejected.push((id.to_string(), reason));
        }
        Err(e) => {
            tracing::error!(message_id = %id, error = %e, "could not keep rejected message; will retry");
            out.failed.push(id.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::Source;
    use crate::survey::SurveyKind;

    fn ev(id: &str, respondent: &str, score: i64, at: i64) -> ResponseEvent {
        ResponseEvent {
            event_id: id.into(),
            survey: "s".into(),
            touchpoint: "t".into(),
            respondent: respondent.into(),
            kind: SurveyKind::Nps,
            score,
            comment: None,
            properties: Default::default(),
            answered_at: at,
            source: Source::Api,
            send: String::new(),
            click: false,
        }
    }

    fn deliver(events: &[ResponseEvent]) -> Vec<Delivery> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| Delivery {
                message_id: format!("m{i}"),
                event: e.clone(),
            })
            .collect()
    }

    #[test]
    fn latest_answer_wins_regardless_of_batch_order() {
        let a = ev("a", "r", 6, 1_000);
        let b = ev("b", "r", 9, 2_000);
        for order in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
            let latest = latest_per_key(deliver(&order));
            assert_eq!(latest.len(), 1);
            assert_eq!(latest[0].message_ids.len(), 2);
            let p = plan(latest, &HashMap::new());
            assert_eq!(p.transitions[0].event.as_ref().map(|e| e.score), Some(9));
        }
    }

    #[test]
    fn stored_newer_answer_supersedes_an_older_event() {
        let latest = latest_per_key(deliver(&[ev("a", "r", 6, 1_000)]));
        let key = latest[0].key.clone();
        let stored = RecordState::of(&ev("b", "r", 9, 2_000));
        let p = plan(latest, &HashMap::from([(key, stored)]));
        assert!(p.transitions.is_empty());
        assert_eq!(p.superseded, vec!["m0".to_string()]);
    }

    #[test]
    fn changed_answer_moves_one_count_between_slots() {
        let latest = latest_per_key(deliver(&[ev("b", "r", 9, 2_000)]));
        let key = latest[0].key.clone();
        let stored = RecordState::of(&ev("a", "r", 6, 1_000));
        let p = plan(latest, &HashMap::from([(key, stored)]));
        let chunks = chunk(p.transitions, MAX_TRANSACTION_ACTIONS);
        assert_eq!(chunks.len(), 1);
        // Same day: the two deltas merge into one counter item, n unchanged, 6 → 9.
        let (_, h) = chunks[0].counters.iter().next().unwrap();
        assert_eq!(h.n, 0);
        assert_eq!(h.sum, 3);
        assert_eq!(h.slots.get(&9), Some(&1));
        assert_eq!(h.slots.get(&6), Some(&-1));
        assert_eq!(chunks[0].transitions[0].expected, Some(1));
        assert_eq!(chunks[0].transitions[0].state.rev, 2);
    }

    #[test]
    fn resubmitting_the_same_score_writes_no_counter() {
        let latest = latest_per_key(deliver(&[ev("b", "r", 6, 2_000)]));
        let key = latest[0].key.clone();
        let p = plan(
            latest,
            &HashMap::from([(key, RecordState::of(&ev("a", "r", 6, 1_000)))]),
        );
        let chunks = chunk(p.transitions, MAX_TRANSACTION_ACTIONS);
        assert_eq!(
            chunks[0].action_count(),
            1,
            "only the record (new comment/version) is written"
        );
    }

    #[test]
    fn chunks_never_exceed_the_action_limit_and_share_counters() {
        let events: Vec<ResponseEvent> = (0..250)
            .map(|i| ev(&format!("e{i}"), &format!("r{i}"), i % 11, 1_000))
            .collect();
        let p = plan(latest_per_key(deliver(&events)), &HashMap::new());
        let chunks = chunk(p.transitions, MAX_TRANSACTION_ACTIONS);
        assert!(chunks
            .iter()
            .all(|c| c.action_count() <= MAX_TRANSACTION_ACTIONS));
        assert_eq!(
            chunks.iter().map(|c| c.transitions.len()).sum::<usize>(),
            250
        );
        // One survey, touchpoint and day: one counter item per chunk.
        assert!(chunks.iter().all(|c| c.counters.len() == 1));
        assert_eq!(chunks.len(), 3);
    }

    /// An in-memory ledger that refuses, permanently, any chunk holding a `poison…` event.
    #[derive(Default)]
    struct PoisonLedger {
        records: std::sync::Mutex<HashMap<ResponseKey, RecordState>>,
        counted: std::sync::Mutex<i64>,
        rejected: std::sync::Mutex<Vec<(String, String)>>,
        commits: std::sync::Mutex<usize>,
        /// Whether keeping a rejected message fails too.
        cannot_keep: bool,
    }

    #[async_trait::async_trait]
    impl ResponseLedger for PoisonLedger {
        async fn load_records(
            &self,
            keys: &[ResponseKey],
        ) -> Result<HashMap<ResponseKey, RecordState>, crate::ports::StoreError> {
            let records = self.records.lock().unwrap();
            Ok(keys
                .iter()
                .filter_map(|k| records.get(k).map(|r| (k.clone(), r.clone())))
                .collect())
        }

        async fn commit(&self, chunk: &Chunk) -> Result<CommitOutcome, crate::ports::StoreError> {
            *self.commits.lock().unwrap() += 1;
            if chunk.transitions.iter().any(|t| {
                t.event
                    .as_ref()
                    .is_some_and(|e| e.event_id.starts_with("poison"))
            }) {
                return Err(crate::ports::StoreError::Permanent(
                    "ValidationException: item refused".into(),
                ));
            }
            let mut records = self.records.lock().unwrap();
            for t in &chunk.transitions {
                records.insert(t.key.clone(), t.state.clone());
            }
            *self.counted.lock().unwrap() += chunk.counters.values().map(|h| h.n).sum::<i64>();
            Ok(CommitOutcome::Committed)
        }

        async fn keep_rejected(
            &self,
            message_id: &str,
            _body: &str,
            reason: &str,
        ) -> Result<(), crate::ports::StoreError> {
            if self.cannot_keep {
                return Err(crate::ports::StoreError::Transient(
                    "table unreachable".into(),
                ));
            }
            self.rejected
                .lock()
                .unwrap()
                .push((message_id.into(), reason.into()));
            Ok(())
        }
    }

    fn messages(events: &[ResponseEvent]) -> Vec<(String, String)> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("m{i}"), serde_json::to_string(e).unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn one_poison_message_is_rejected_alone_and_its_neighbours_count() {
        let mut events: Vec<ResponseEvent> = (0..100)
            .map(|i| ev(&format!("e{i}"), &format!("r{i}"), i % 11, 1_000))
            .collect();
        events[37].event_id = "poison-37".into();
        let ledger = PoisonLedger::default();
        let out = apply_batch(&ledger, messages(&events)).await;
        assert_eq!(out.applied.len(), 99);
        assert_eq!(*ledger.counted.lock().unwrap(), 99);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].0, "m37");
        assert!(out.rejected[0].1.contains("refuses this answer"));
        assert_eq!(ledger.rejected.lock().unwrap().len(), 1);
        assert!(out.failed.is_empty(), "nothing goes back to the queue");
        // Halving finds it in about 2·log2(100) commits, not 100.
        assert!(*ledger.commits.lock().unwrap() <= 16);
    }

    #[tokio::test]
    async fn an_older_answer_of_a_poisoned_respondent_still_counts() {
        let older = ev("e-old", "r", 6, 1_000);
        let mut poison = ev("poison", "r", 9, 2_000);
        poison.comment = Some("refused".into());
        let other = ev("e-other", "q", 10, 1_500);
        let ledger = PoisonLedger::default();
        let out = apply_batch(&ledger, messages(&[older, poison, other])).await;
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].0, "m1");
        let mut applied = out.applied.clone();
        applied.sort();
        assert_eq!(applied, vec!["m0".to_string(), "m2".to_string()]);
        assert_eq!(*ledger.counted.lock().unwrap(), 2);
        let key = ev("x", "r", 0, 0).key();
        assert_eq!(ledger.records.lock().unwrap()[&key].score, 6);
        assert!(out.failed.is_empty());
    }

    #[tokio::test]
    async fn a_poison_message_that_cannot_be_kept_goes_back_to_the_queue() {
        let good = ev("e-good", "q", 10, 1_000);
        let poison = ev("poison", "r", 9, 1_000);
        let ledger = PoisonLedger {
            cannot_keep: true,
            ..Default::default()
        };
        let out = apply_batch(&ledger, messages(&[good, poison])).await;
        assert_eq!(out.applied, vec!["m0".to_string()]);
        assert_eq!(out.failed, vec!["m1".to_string()], "retried, never dropped");
        assert!(out.rejected.is_empty());
    }

    #[tokio::test]
    async fn a_temporary_failure_is_retried_not_rejected() {
        struct Down;
        #[async_trait::async_trait]
        impl ResponseLedger for Down {
            async fn load_records(
                &self,
                _: &[ResponseKey],
            ) -> Result<HashMap<ResponseKey, RecordState>, crate::ports::StoreError> {
                Ok(HashMap::new())
            }
            async fn commit(&self, _: &Chunk) -> Result<CommitOutcome, crate::ports::StoreError> {
                Err(crate::ports::StoreError::Transient("throttled".into()))
            }
            async fn keep_rejected(
                &self,
                _: &str,
                _: &str,
                _: &str,
            ) -> Result<(), crate::ports::StoreError> {
                panic!("nothing is rejected on a temporary failure")
            }
        }
        let events: Vec<ResponseEvent> = (0..10)
            .map(|i| ev(&format!("e{i}"), &format!("r{i}"), 7, 1_000))
            .collect();
        let out = apply_batch(&Down, messages(&events)).await;
        assert_eq!(out.failed.len(), 10);
        assert!(out.rejected.is_empty());
        assert_eq!(out.isolations, 0);
    }

    #[test]
    fn a_counter_is_written_once_when_its_answers_fit_in_one_chunk() {
        // 100 answers over 15 counters (3 surveys × 5 touchpoints): 115 actions, two chunks, and
        // no counter item in both.
        let events: Vec<ResponseEvent> = (0..100)
            .map(|i| {
                let mut e = ev(&format!("e{i}"), &format!("r{i}"), i % 11, 1_000);
                e.survey = format!("s{}", i % 3);
                e.touchpoint = format!("t{}", (i / 3) % 5);
                e
            })
            .collect();
        let p = plan(latest_per_key(deliver(&events)), &HashMap::new());
        let chunks = chunk(p.transitions, MAX_TRANSACTION_ACTIONS);
        assert_eq!(chunks.len(), 2);
        assert!(chunks
            .iter()
            .all(|c| c.action_count() <= MAX_TRANSACTION_ACTIONS));
        assert_eq!(chunks.iter().map(Chunk::action_count).sum::<usize>(), 115);
        assert_eq!(
            chunks.iter().map(|c| c.transitions.len()).sum::<usize>(),
            100
        );
    }

    #[test]
    fn undecodable_and_invalid_messages_are_explained() {
        assert!(decode_message("m", "{not json")
            .unwrap_err()
            .contains("not a response event"));
        let bad = serde_json::to_string(&ev("a", "r", 11, 1)).unwrap();
        assert!(decode_message("m", &bad).unwrap_err().contains("outside"));
    }

    /// A ledger in memory: records and merged counters, committing whole chunks.
    #[derive(Default)]
    struct Memory {
        records: std::sync::Mutex<HashMap<ResponseKey, (RecordState, Option<ResponseEvent>)>>,
        counters: std::sync::Mutex<BTreeMap<CounterKey, Histogram>>,
    }

    #[async_trait::async_trait]
    impl ResponseLedger for Memory {
        async fn load_records(
            &self,
            keys: &[ResponseKey],
        ) -> Result<HashMap<ResponseKey, RecordState>, crate::ports::StoreError> {
            let records = self.records.lock().unwrap();
            Ok(keys
                .iter()
                .filter_map(|k| records.get(k).map(|r| (k.clone(), r.0.clone())))
                .collect())
        }

        async fn commit(&self, chunk: &Chunk) -> Result<CommitOutcome, crate::ports::StoreError> {
            let mut records = self.records.lock().unwrap();
            for t in &chunk.transitions {
                let rev = records.get(&t.key).map(|r| r.0.rev);
                assert_eq!(rev, t.expected, "planned from the stored revision");
                let answer = match &t.event {
                    Some(e) => Some(e.clone()),
                    None => records.get(&t.key).and_then(|r| r.1.clone()),
                };
                records.insert(t.key.clone(), (t.state.clone(), answer));
            }
            let mut counters = self.counters.lock().unwrap();
            for (k, h) in &chunk.counters {
                counters.entry(k.clone()).or_default().merge(h);
            }
            Ok(CommitOutcome::Committed)
        }

        async fn keep_rejected(
            &self,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<(), crate::ports::StoreError> {
            Ok(())
        }
    }

    /// Counted answers, per-score counts, and answers set aside as automated.
    type Totals = (i64, BTreeMap<u16, i64>, i64);

    impl Memory {
        /// All counters merged: (counted answers, per-score counts, automated).
        fn totals(&self) -> Totals {
            let mut all = Histogram::default();
            for h in self.counters.lock().unwrap().values() {
                all.merge(h);
            }
            let scores = all.score_slots().map(|(k, v)| (*k, *v)).collect();
            (all.n, scores, all.automated())
        }

        /// The answer the one record holds, with whether it is set aside.
        fn answer(&self) -> (i64, Option<String>, bool) {
            let records = self.records.lock().unwrap();
            let (state, event) = records.values().next().unwrap();
            (
                state.score,
                event.as_ref().and_then(|e| e.comment.clone()),
                state.automated,
            )
        }
    }

    const T0: i64 = 1_790_000_000_000;

    fn click(id: &str, score: i64, at: i64) -> ResponseEvent {
        ResponseEvent {
            click: true,
            source: Source::Link,
            ..ev(id, "ana", score, at)
        }
    }

    fn answer(id: &str, score: i64, at: i64, comment: Option<&str>) -> ResponseEvent {
        ResponseEvent {
            comment: comment.map(str::to_string),
            source: Source::Link,
            ..ev(id, "ana", score, at)
        }
    }

    /// Applies the events in every batch split and order given, checking each outcome equals
    /// the first; returns the ledger of the first.
    async fn applied(events: &[ResponseEvent]) -> Memory {
        let orders: Vec<Vec<ResponseEvent>> = vec![
            events.to_vec(),
            events.iter().rev().cloned().collect(),
            events
                .iter()
                .step_by(2)
                .chain(events.iter().skip(1).step_by(2))
                .cloned()
                .collect(),
        ];
        let mut first: Option<(Memory, Totals)> = None;
        for order in orders {
            for batch in [1, 2, order.len().max(1)] {
                let ledger = Memory::default();
                for chunk in order.chunks(batch) {
                    let out = apply_batch(&ledger, messages(chunk)).await;
                    assert!(out.failed.is_empty() && out.rejected.is_empty(), "{out:?}");
                }
                // Every message delivered a second time changes nothing.
                apply_batch(&ledger, messages(&order)).await;
                let totals = ledger.totals();
                match &first {
                    None => first = Some((ledger, totals)),
                    Some((_, t)) => assert_eq!(&totals, t, "order or batching changed the count"),
                }
            }
        }
        first.unwrap().0
    }

    #[tokio::test]
    async fn a_single_click_counts() {
        let ledger = applied(&[click("c1", 9, T0)]).await;
        assert_eq!(ledger.totals(), (1, BTreeMap::from([(9, 1)]), 0));
    }

    #[tokio::test]
    async fn a_scanner_opening_every_link_within_seconds_counts_nothing() {
        let all: Vec<ResponseEvent> = (0..=10)
            .map(|s| click(&format!("c{s}"), s, T0 + (s * 37 % 11) * 300))
            .collect();
        let ledger = applied(&all).await;
        assert_eq!(ledger.totals(), (0, BTreeMap::new(), 1));
        let some = [
            click("a", 10, T0),
            click("b", 0, T0 + 1_500),
            click("c", 6, T0 + 900),
        ];
        assert_eq!(applied(&some).await.totals(), (0, BTreeMap::new(), 1));
    }

    #[tokio::test]
    async fn a_person_clicking_after_a_scanner_is_counted_and_before_one_too() {
        let mut events: Vec<ResponseEvent> = (0..=10)
            .map(|s| click(&format!("scan{s}"), s, T0 + s * 100))
            .collect();
        events.push(click("person", 8, T0 + 20 * 60_000));
        let ledger = applied(&events).await;
        assert_eq!(ledger.totals(), (1, BTreeMap::from([(8, 1)]), 0));
        // The person first, then a scanner (the email forwarded to a filtered mailbox).
        let mut events = vec![click("person", 3, T0)];
        events.extend((0..=10).map(|s| click(&format!("scan{s}"), s, T0 + 3_600_000 + s * 100)));
        let ledger = applied(&events).await;
        assert_eq!(ledger.totals(), (1, BTreeMap::from([(3, 1)]), 0));
    }

    #[tokio::test]
    async fn reloads_and_reopening_the_email_never_revert_an_explicit_answer_or_its_comment() {
        let events = [
            click("c1", 9, T0),
            answer("a1", 7, T0 + 5_000, Some("slow delivery")),
            click("reload", 9, T0 + 8_000),
            click("reopen", 9, T0 + 86_400_000),
            click("other", 2, T0 + 86_400_500),
        ];
        let ledger = applied(&events).await;
        assert_eq!(ledger.totals(), (1, BTreeMap::from([(7, 1)]), 0));
        assert_eq!(ledger.answer(), (7, Some("slow delivery".into()), false));
        // A later explicit answer still wins over the earlier one; without a comment of its
        // own (the score changed on the page, after Back) it keeps the earlier comment.
        let mut more = events.to_vec();
        more.push(answer("a2", 10, T0 + 90_000_000, None));
        let kept = (10, Some("slow delivery".to_string()), false);
        assert_eq!(applied(&more).await.answer(), kept);
        more.push(answer("a3", 8, T0 + 90_000_100, Some(" ")));
        assert_eq!(applied(&more).await.answer().1, kept.1);
        // A new comment replaces it.
        more.push(answer("a4", 8, T0 + 90_000_200, Some("sorted out")));
        assert_eq!(
            applied(&more).await.answer(),
            (8, Some("sorted out".into()), false)
        );
    }

    #[tokio::test]
    async fn an_answer_without_a_comment_keeps_the_latest_earlier_comment_in_one_batch() {
        let events = [
            answer("a1", 9, T0, Some("first")),
            answer("a2", 8, T0 + 1_000, Some("second")),
            answer("a3", 7, T0 + 2_000, None),
        ];
        let ledger = Memory::default();
        apply_batch(&ledger, messages(&events)).await;
        assert_eq!(ledger.answer(), (7, Some("second".into()), false));
        // An older answer arriving late changes nothing.
        apply_batch(&ledger, messages(&[answer("a0", 3, T0 - 1, Some("zero"))])).await;
        assert_eq!(ledger.answer(), (7, Some("second".into()), false));
    }

    #[tokio::test]
    async fn an_explicit_answer_beats_a_scanner_burst_and_reloads_of_one_score_are_a_person() {
        let mut events: Vec<ResponseEvent> = (0..=10)
            .map(|s| click(&format!("scan{s}"), s, T0 + s * 100))
            .collect();
        events.push(answer("send", 4, T0 + 2_000, Some("ok")));
        let ledger = applied(&events).await;
        assert_eq!(ledger.totals(), (1, BTreeMap::from([(4, 1)]), 0));
        let reloads = [
            click("c1", 6, T0),
            click("c2", 6, T0 + 2_000),
            click("c3", 6, T0 + 4_000),
        ];
        assert_eq!(
            applied(&reloads).await.totals(),
            (1, BTreeMap::from([(6, 1)]), 0)
        );
    }

    #[tokio::test]
    async fn sources_are_counted_and_set_aside_answers_leave_them() {
        let ledger = applied(&[click("c1", 9, T0)]).await;
        let all =
            ledger
                .counters
                .lock()
                .unwrap()
                .values()
                .fold(Histogram::default(), |mut a, h| {
                    a.merge(h);
                    a
                });
        assert_eq!(all.by_source(), BTreeMap::from([("link".to_string(), 1)]));
        let ledger = applied(&[click("c1", 9, T0), click("c2", 1, T0 + 10)]).await;
        let all =
            ledger
                .counters
                .lock()
                .unwrap()
                .values()
                .fold(Histogram::default(), |mut a, h| {
                    a.merge(h);
                    a
                });
        assert!(all.by_source().is_empty(), "{all:?}");
        assert_eq!(all.automated(), 1);
    }
    /// Merged counters of a ledger, with the answer each record holds by respondent score.
    fn merged(ledger: &Memory) -> Histogram {
        ledger
            .counters
            .lock()
            .unwrap()
            .values()
            .fold(Histogram::default(), |mut a, h| {
                a.merge(h);
                a
            })
    }

    #[tokio::test]
    async fn an_import_racing_live_answers_for_the_same_respondents_keeps_the_last_by_time() {
        use crate::import::ImportRow;
        let survey = crate::survey::Survey {
            id: "s".into(),
            kind: SurveyKind::Nps,
            question: "q".into(),
            follow_up: String::new(),
            locale: Default::default(),
            touchpoints: vec![crate::survey::Touchpoint {
                slug: "t".into(),
                stage: None,
            }],
            public_key: None,
            brand: None,
            frequency_cap_days: None,
        };
        let imported = |who: &str, score: i64, at: i64| {
            ImportRow {
                id: Some(format!("old-{who}")),
                respondent: Some(who.into()),
                touchpoint: "t".into(),
                score,
                comment: None,
                answered_at: at,
                send: None,
                properties: Default::default(),
            }
            .to_event(&survey, T0 + 10_000_000)
            .unwrap()
        };
        let live = |id: &str, who: &str, score: i64, at: i64| ResponseEvent {
            source: Source::Link,
            ..ev(id, who, score, at)
        };
        // GIVEN ana answered live after her imported answer, bo's import is the later one,
        // and cy only has an imported answer
        let events = [
            imported("ana", 2, T0 - 86_400_000),
            live("l-ana", "ana", 9, T0),
            imported("bo", 10, T0 + 5_000),
            live("l-bo", "bo", 4, T0),
            imported("cy", 7, T0 - 1),
        ];
        // WHEN they are applied in every order and batching, each delivered twice
        let ledger = applied(&events).await;
        // THEN each respondent counts once, with the answer latest by time
        let all = merged(&ledger);
        assert_eq!(all.n, 3);
        let scores: BTreeMap<u16, i64> = all.score_slots().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(scores, BTreeMap::from([(7, 1), (9, 1), (10, 1)]));
        assert_eq!(
            all.by_source(),
            BTreeMap::from([("import".to_string(), 2), ("link".to_string(), 1)])
        );
        // AND importing the same rows again changes nothing
        for e in &events {
            let out = apply_batch(&ledger, messages(std::slice::from_ref(e))).await;
            assert!(out.failed.is_empty() && out.rejected.is_empty(), "{out:?}");
        }
        assert_eq!(merged(&ledger), all);
    }
}
