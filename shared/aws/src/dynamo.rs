//! DynamoDB adapter: one table (`pk`, `sk`) holding surveys, response records, counters and
//! rejected messages; the ledger commits each chunk with one `TransactWriteItems`.
//!
//! Items: survey `SURVEY`/`<id>`; record `R#<survey>`/`<digest>` with `at`, `eid`, `slot`, `score`,
//! `day`, the event as JSON in `doc`, its source `src`, `click` (a provisional click), `auto` (set
//! aside as automated), the recent clicks `clk` (`at:score:event_id;…`) and the revision `rev`
//! every write is conditional on; counter `C#<survey>`/`<day>#<touchpoint>` with attributes
//! `n`, `sum` and `s<slot>`; rejected message `REJECTED`/`<message id>`; suppression list entry
//! `SUPPRESSED`/`<respondent>` with `at` and `via`; store connections, invitations and
//! frequency-cap claims in `CONN`, `INV#<connection>` and `CONTACT#<survey>` (listed with the
//! actions each method uses above the `ConnectionStore` implementation); alert rules and the
//! alert delivery log in `ALERTRULE` and `ALERTLOG#<survey>` (see the `alerts` module).
//!
//! Response pages read records newest first through the global secondary index [`BY_TIME_INDEX`]
//! (`pk`, `at`), which projects `doc`, `auto` and `x`: every record has `at`, detail items do not.
//!
//! A record is written in a transaction, which costs 2 write units per started KB. When the event
//! with its comment and properties would make the record larger than 1 KB, they move to a detail
//! item `R#<survey>`/`<digest>#<event id>` (attributes `c`: comment, `p`: properties as JSON), written
//! with a plain idempotent `BatchWriteItem` (1 write unit per KB) before the transaction; the record
//! then keeps the event without them and `x = true`. A detail item whose transaction never
//! committed is never referenced (records name their event id) and is ignored.

use crate::sdk_error::classify;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use sha2::{Digest, Sha256};
use sondeo_domain::changes::{Chunk, ClickMark, RecordState};
use sondeo_domain::explore::{ResponseCursor, StoredResponse};
use sondeo_domain::metrics::Histogram;
use sondeo_domain::orders::{
    listing_order, Connection, Invitation, InvitationCursor, InvitationStatus, WebhookSecret,
};
use sondeo_domain::ports::{
    CommitOutcome, ConnectionStore, CounterReader, CounterRow, InvitationStore, ResponseLedger,
    ResponseReader, StoreError, SuppressionList, SurveyStore,
};
use sondeo_domain::report::split_stored_touchpoint;
use sondeo_domain::response::{suppression_id, ResponseEvent, ResponseKey, Source, Suppression};
use sondeo_domain::survey::Survey;
use sondeo_domain::time::{now_ms, Day};
use std::collections::{HashMap, HashSet};

/// The index that lists a survey's records by answer time (`pk`, `at`).
pub const BY_TIME_INDEX: &str = "by_time";
/// Most records one response-page query asks for.
const PAGE_QUERY_MAX: usize = 500;

/// The partition of the suppression list.
const SUPPRESSED_PK: &str = "SUPPRESSED";
/// How long rejected messages are kept, in seconds (90 days).
const REJECTED_TTL_SECS: i64 = 90 * 86_400;
/// Most keys in one BatchGetItem.
const BATCH_GET_MAX: usize = 100;
/// Most puts in one BatchWriteItem.
const BATCH_WRITE_MAX: usize = 25;
/// Largest record kept with its comment and properties: one KB, two write units in a transaction.
const RECORD_INLINE_MAX: usize = 1024;
/// Attempts at items DynamoDB left unprocessed (throttled) in a batch request.
const UNPROCESSED_ATTEMPTS: u32 = 6;

/// The DynamoDB table adapter for surveys, the ledger and counter reads.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: String,
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn attr_str<'a>(
    item: &'a HashMap<String, AttributeValue>,
    name: &str,
) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Permanent(format!("item lacks string attribute '{name}'")))
}

/// Parses an item's JSON `doc` attribute.
pub(crate) fn parse_doc<T: serde::de::DeserializeOwned>(
    item: &HashMap<String, AttributeValue>,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(attr_str(item, "doc")?)
        .map_err(|e| StoreError::Permanent(format!("stored {what} is corrupt: {e}")))
}

/// A stored number as `T`, clamped into `T`'s range (fractions truncated); None when it is not a number.
fn clamped<T: TryFrom<i128> + Bounded>(raw: &str) -> Option<T> {
    let wide: i128 = match raw.parse::<i128>() {
        Ok(v) => v,
        // Up to 38 significant digits, exponents, fractions: f64 keeps the sign and magnitude.
        Err(_) => {
            let f: f64 = raw.parse().ok()?;
            if f.is_nan() {
                return None;
            }
            f as i128 // saturates at the i128 bounds
        }
    };
    Some(T::try_from(wide).unwrap_or(if wide < 0 { T::MIN } else { T::MAX }))
}

/// The least and greatest values of an integer type, for [`clamped`].
trait Bounded {
    const MIN: Self;
    const MAX: Self;
}

macro_rules! bounded {
    ($($t:ty),*) => {$(impl Bounded for $t { const MIN: Self = <$t>::MIN; const MAX: Self = <$t>::MAX; })*};
}
bounded!(i64, i32, u16, u64);

/// A number attribute of a record, clamped into range with a warning naming the item when it does not fit.
fn record_num<T: TryFrom<i128> + Bounded + std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
    sk: &str,
) -> Result<T, StoreError> {
    let raw = item.get(name).and_then(|v| v.as_n().ok()).ok_or_else(|| {
        StoreError::Permanent(format!("record '{sk}' lacks number attribute '{name}'"))
    })?;
    if let Ok(v) = raw.parse::<T>() {
        return Ok(v);
    }
    let v = clamped(raw).ok_or_else(|| {
        StoreError::Permanent(format!("record '{sk}' has a non-number '{name}': {raw}"))
    })?;
    tracing::warn!(pk = %attr_str(item, "pk").unwrap_or("?"), sk, attribute = name, stored = raw, "record number out of range; clamped");
    Ok(v)
}

/// Why a counter item cannot be read as a counter row.
#[derive(Debug, thiserror::Error)]
enum BadCounter {
    /// The sort key is not `<day>#<touchpoint>`.
    #[error("sort key is not <day>#<touchpoint>")]
    Key,
    /// A count or sum is missing, not a number, or does not fit 64 bits.
    #[error("attribute '{0}' is missing or not a 64-bit integer")]
    Number(String),
}

/// A counter item as a row, or why it cannot be one.
fn counter_row(item: &HashMap<String, AttributeValue>, sk: &str) -> Result<CounterRow, BadCounter> {
    let (day, touchpoint) = sk.split_once('#').ok_or(BadCounter::Key)?;
    let day: Day = day.parse().map_err(|_| BadCounter::Key)?;
    let int = |name: &str| -> Result<i64, BadCounter> {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| BadCounter::Number(name.to_string()))
    };
    let mut h = Histogram {
        n: int("n")?,
        sum: int("sum")?,
        slots: Default::default(),
    };
    for name in item.keys() {
        if let Some(slot) = name.strip_prefix('s').and_then(|x| x.parse::<u16>().ok()) {
            let count = int(name)?;
            if count != 0 {
                h.slots.insert(slot, count);
            }
        }
    }
    // A send's own counter is `<day>#<touchpoint>#<send>`.
    let (touchpoint, send) = split_stored_touchpoint(touchpoint);
    Ok(CounterRow {
        touchpoint,
        send,
        day,
        histogram: h,
    })
}

/// Bytes DynamoDB counts for an item: the UTF-8 lengths of attribute names plus the values' sizes.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Bytes DynamoDB counts for one attribute value (the "Item sizes and formats" rules).
fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// Bytes of a number: one per two significant digits (leading and trailing zeros trimmed), plus one.
pub fn number_size(n: &str) -> usize {
    let mantissa = n.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

impl DynamoStore {
    /// An adapter for `table` using an already configured client.
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Every stored response of a survey, as its counted event with comment and properties
    /// (for export and recounts).
    pub async fn all_responses(&self, survey: &str) -> Result<Vec<ResponseEvent>, StoreError> {
        let items = self
            .query_all("query responses", format!("R#{survey}"), None)
            .await?;
        // Records have the digest as sort key, detail items `<digest>#<event id>`.
        let (records, details): (Vec<_>, Vec<_>) = items
            .iter()
            .partition(|item| attr_str(item, "sk").is_ok_and(|sk| !sk.contains('#')));
        let details: HashMap<&str, &HashMap<String, AttributeValue>> = details
            .into_iter()
            .filter_map(|d| Some((attr_str(d, "sk").ok()?, d)))
            .collect();
        let mut out = Vec::with_capacity(records.len());
        for item in records {
            let mut event: ResponseEvent = parse_doc(item, "response")?;
            let sk = attr_str(item, "sk")?;
            if let Some(d) = details.get(detail_sk(sk, &event.event_id).as_str()) {
                event.comment = attr_str(d, "c").ok().map(str::to_string);
                if let Ok(p) = attr_str(d, "p") {
                    event.properties = serde_json::from_str(p).map_err(|e| {
                        StoreError::Permanent(format!(
                            "stored properties of '{sk}' are corrupt: {e}"
                        ))
                    })?;
                }
            } else if item.get("x").is_some() {
                tracing::warn!(survey, sk, event_id = %event.event_id, "record's comment item is missing");
            }
            out.push(event);
        }
        Ok(out)
    }

    /// Every item of a partition, optionally with a sort key in `from..=to`, across pages.
    async fn query_all(
        &self,
        what: &str,
        pk: String,
        sk_between: Option<(String, String)>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        self.query_projected(what, pk, sk_between, None).await
    }

    /// [`DynamoStore::query_all`] reading only the attributes `projection` names, if given.
    pub(crate) async fn query_projected(
        &self,
        what: &str,
        pk: String,
        sk_between: Option<(String, String)>,
        projection: Option<&str>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(&pk))
                .set_projection_expression(projection.map(str::to_string))
                .set_exclusive_start_key(start);
            query = match &sk_between {
                None => query.key_condition_expression("pk = :pk"),
                Some((from, to)) => query
                    .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                    .expression_attribute_values(":from", s(from))
                    .expression_attribute_values(":to", s(to)),
            };
            let page = query.send().await.map_err(|e| classify(what, e))?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// The document (`doc`) of one item and the secret stored beside it (`secret`), if the
    /// item exists: store connections and alert rules.
    pub(crate) async fn get_doc_with_secret<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        pk: &str,
        sk: &str,
    ) -> Result<Option<(T, String)>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(|e| classify(&format!("get {what}"), e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        Ok(Some((
            parse_doc(item, what)?,
            attr_str(item, "secret")?.to_string(),
        )))
    }

    /// Reads the items with these `(pk, sk)` keys (those that exist), 100 per call, retrying
    /// throttled keys; `request` starts each call's projection and read consistency.
    async fn batch_get<'k>(
        &self,
        what: &str,
        keys: impl IntoIterator<Item = &'k (String, String)>,
        request: impl Fn() -> aws_sdk_dynamodb::types::builders::KeysAndAttributesBuilder,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let keys: Vec<&(String, String)> = keys.into_iter().collect();
        let mut items = Vec::with_capacity(keys.len());
        for group in keys.chunks(BATCH_GET_MAX) {
            let mut req = request();
            for (pk, sk) in group {
                req = req.keys(HashMap::from([
                    ("pk".to_string(), s(pk)),
                    ("sk".to_string(), s(sk)),
                ]));
            }
            let mut pending = Some(
                req.build()
                    .map_err(|e| StoreError::Permanent(e.to_string()))?,
            );
            let mut attempt = 0u32;
            while let Some(req) = pending.take() {
                let res = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .send()
                    .await
                    .map_err(|e| classify(what, e))?;
                if let Some(found) = res.responses().and_then(|r| r.get(&self.table)) {
                    items.extend(found.iter().cloned());
                }
                if let Some(rest) = res
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .filter(|r| !r.keys().is_empty())
                {
                    attempt += 1;
                    if attempt > UNPROCESSED_ATTEMPTS {
                        return Err(StoreError::Transient(format!(
                            "{what}: keys still unprocessed after {UNPROCESSED_ATTEMPTS} attempts (throttled)"
                        )));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
                    pending = Some(rest.clone());
                }
            }
        }
        Ok(items)
    }

    /// Puts an item unless one with its key exists; whether it was written.
    async fn put_new(
        &self,
        what: &str,
        item: HashMap<String, AttributeValue>,
    ) -> Result<bool, StoreError> {
        self.put_if(what, item, "attribute_not_exists(pk)", &[], Vec::new())
            .await
    }

    /// Puts an item if `condition` holds (with these `#name` and `:value` placeholders); whether
    /// it was written.
    async fn put_if(
        &self,
        what: &str,
        item: HashMap<String, AttributeValue>,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (placeholder, name) in names {
            put = put.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in values {
            put = put.expression_attribute_values(placeholder, value);
        }
        let res = put.send().await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify(what, e)),
        }
    }

    /// The record's transactional write and, when the comment and properties would make the
    /// record larger than [`RECORD_INLINE_MAX`], the detail item that holds them instead: a put
    /// of the whole record when its answer changes, an update of its state (clicks, automated,
    /// revision) when it keeps its answer.
    fn record_write(
        &self,
        t: &sondeo_domain::changes::Transition,
    ) -> Result<(TransactWriteItem, Option<HashMap<String, AttributeValue>>), StoreError> {
        let state = &t.state;
        let pk = format!("R#{}", t.key.survey);
        let Some(e) = &t.event else {
            let mut u = Update::builder()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s(&t.key.digest))
                .update_expression("SET #rev = :rev, #clk = :clk, #auto = :auto")
                .expression_attribute_names("#rev", "rev")
                .expression_attribute_names("#clk", "clk")
                .expression_attribute_names("#auto", "auto")
                .expression_attribute_values(":rev", n(state.rev))
                .expression_attribute_values(":clk", s(ClickMark::encode(&state.clicks)))
                .expression_attribute_values(":auto", AttributeValue::Bool(state.automated));
            u = match t.expected {
                None | Some(0) => {
                    u.condition_expression("attribute_exists(pk) AND attribute_not_exists(#rev)")
                }
                Some(rev) => u
                    .condition_expression("#rev = :expected")
                    .expression_attribute_values(":expected", n(rev)),
            };
            let u = u
                .build()
                .map_err(|e| StoreError::Permanent(e.to_string()))?;
            return Ok((TransactWriteItem::builder().update(u).build(), None));
        };
        let to_json = |v: &ResponseEvent| {
            serde_json::to_string(v).map_err(|err| StoreError::Permanent(err.to_string()))
        };
        let mut item = HashMap::from([
            ("pk".to_string(), s(&pk)),
            ("sk".to_string(), s(&t.key.digest)),
            ("at".to_string(), n(e.answered_at)),
            ("eid".to_string(), s(&e.event_id)),
            ("slot".to_string(), n(state.slot)),
            ("score".to_string(), n(e.score)),
            ("day".to_string(), n(state.day.days())),
            ("doc".to_string(), s(to_json(e)?)),
            ("rev".to_string(), n(state.rev)),
            ("src".to_string(), s(e.source.as_str())),
        ]);
        if e.click {
            item.insert("click".into(), AttributeValue::Bool(true));
        }
        if state.automated {
            item.insert("auto".into(), AttributeValue::Bool(true));
        }
        if !state.clicks.is_empty() {
            item.insert("clk".into(), s(ClickMark::encode(&state.clicks)));
        }
        let mut detail = None;
        if item_size(&item) > RECORD_INLINE_MAX && (e.comment.is_some() || !e.properties.is_empty())
        {
            let bare = ResponseEvent {
                comment: None,
                properties: Default::default(),
                ..e.clone()
            };
            item.insert("doc".into(), s(to_json(&bare)?));
            item.insert("x".into(), AttributeValue::Bool(true));
            let mut d = HashMap::from([
                ("pk".to_string(), s(&pk)),
                ("sk".to_string(), s(detail_sk(&t.key.digest, &e.event_id))),
            ]);
            if let Some(c) = &e.comment {
                d.insert("c".into(), s(c));
            }
            if !e.properties.is_empty() {
                let p = serde_json::to_string(&e.properties)
                    .map_err(|err| StoreError::Permanent(err.to_string()))?;
                d.insert("p".into(), s(p));
            }
            detail = Some(d);
        }
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        put = match t.expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            // Written before revisions existed: no other writer has given it one since.
            Some(0) => put
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(#rev)")
                .expression_attribute_names("#rev", "rev"),
            Some(rev) => put
                .condition_expression("#rev = :expected")
                .expression_attribute_names("#rev", "rev")
                .expression_attribute_values(":expected", n(rev)),
        };
        let put = put
            .build()
            .map_err(|e| StoreError::Permanent(e.to_string()))?;
        Ok((TransactWriteItem::builder().put(put).build(), detail))
    }

    /// Writes detail items (idempotent plain puts, 1 write unit per KB), retrying unprocessed ones.
    async fn put_details(
        &self,
        details: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<(), StoreError> {
        let mut details = details.into_iter().peekable();
        while details.peek().is_some() {
            let mut pending = Vec::with_capacity(BATCH_WRITE_MAX);
            for item in details.by_ref().take(BATCH_WRITE_MAX) {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| StoreError::Permanent(e.to_string()))?;
                pending.push(WriteRequest::builder().put_request(put).build());
            }
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let res = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| classify("write comments", e))?;
                pending = res
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt > UNPROCESSED_ATTEMPTS {
                        return Err(StoreError::Transient(format!(
                            "comments still unprocessed after {UNPROCESSED_ATTEMPTS} attempts (throttled)"
                        )));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
                }
            }
        }
        Ok(())
    }

    fn counter_update(
        &self,
        key: &sondeo_domain::changes::CounterKey,
        h: &Histogram,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut parts = vec!["#n :n".to_string(), "#sum :sum".to_string()];
        let mut u = Update::builder()
            .table_name(&self.table)
            .key("pk", s(format!("C#{}", key.survey)))
            .key("sk", s(format!("{}#{}", key.day, key.stored_touchpoint())))
            .expression_attribute_names("#n", "n")
            .expression_attribute_names("#sum", "sum")
            .expression_attribute_values(":n", n(h.n))
            .expression_attribute_values(":sum", n(h.sum));
        for (slot, count) in h.slots.iter().filter(|(_, c)| **c != 0) {
            parts.push(format!("#s{slot} :s{slot}"));
            u = u
                .expression_attribute_names(format!("#s{slot}"), format!("s{slot}"))
                .expression_attribute_values(format!(":s{slot}"), n(count));
        }
        let u = u
            .update_expression(format!("ADD {}", parts.join(", ")))
            .build()
            .map_err(|e| StoreError::Permanent(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(u).build())
    }
}

/// The sort key of the detail item holding the comment and properties of one event of a response.
fn detail_sk(digest: &str, event_id: &str) -> String {
    format!("{digest}#{event_id}")
}

/// A token that makes a retried commit of the same chunk idempotent for DynamoDB (≤ 36 chars).
fn request_token(chunk: &Chunk) -> String {
    let mut h = Sha256::new();
    for t in &chunk.transitions {
        h.update(t.key.digest.as_bytes());
        if let Some(e) = &t.event {
            h.update(e.event_id.as_bytes());
        }
        h.update(t.state.rev.to_be_bytes());
        h.update(ClickMark::encode(&t.state.clicks).as_bytes());
    }
    sondeo_domain::response::to_hex(&h.finalize()[..18])
}

#[async_trait]
impl SurveyStore for DynamoStore {
    async fn get_survey(&self, id: &str) -> Result<Option<Survey>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("SURVEY"))
            .key("sk", s(id))
            .send()
            .await
            .map_err(|e| classify("get survey", e))?;
        match out.item() {
            None => Ok(None),
            Some(item) => parse_doc(item, "survey").map(Some),
        }
    }

    async fn create_survey(&self, survey: &Survey) -> Result<(), StoreError> {
        let doc =
            serde_json::to_string(survey).map_err(|e| StoreError::Permanent(e.to_string()))?;
        let item = HashMap::from([
            ("pk".to_string(), s("SURVEY")),
            ("sk".to_string(), s(&survey.id)),
            ("doc".to_string(), s(doc)),
        ]);
        if !self.put_new("create survey", item).await? {
            return Err(StoreError::AlreadyExists(format!("survey '{}'", survey.id)));
        }
        Ok(())
    }

    async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError> {
        let items = self
            .query_all("list surveys", "SURVEY".into(), None)
            .await?;
        items.iter().map(|item| parse_doc(item, "survey")).collect()
    }
}

#[async_trait]
impl SuppressionList for DynamoStore {
    async fn suppress(&self, entry: &Suppression) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_string(), s(SUPPRESSED_PK)),
            ("sk".to_string(), s(suppression_id(&entry.respondent))),
            ("at".to_string(), n(entry.at)),
            ("via".to_string(), s(&entry.via)),
        ]);
        // Already on the list: the first entry stays.
        self.put_new("add to the suppression list", item).await?;
        Ok(())
    }

    async fn unsuppress(&self, respondent: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(SUPPRESSED_PK))
            .key("sk", s(suppression_id(respondent)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify("remove from the suppression list", e))?;
        Ok(out.attributes().is_some_and(|a| !a.is_empty()))
    }

    async fn list_suppressed(&self) -> Result<Vec<Suppression>, StoreError> {
        let items = self
            .query_all("list the suppression list", SUPPRESSED_PK.into(), None)
            .await?;
        items
            .iter()
            .map(|item| {
                Ok(Suppression {
                    respondent: attr_str(item, "sk")?.to_string(),
                    at: item
                        .get("at")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    via: attr_str(item, "via").unwrap_or("").to_string(),
                })
            })
            .collect()
    }

    async fn suppressed_among(
        &self,
        respondents: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let keys: HashSet<(String, String)> = respondents
            .iter()
            .map(|r| (SUPPRESSED_PK.to_string(), suppression_id(r)))
            .collect();
        // Consistent: an address unsubscribed a moment ago gets no new link.
        let request = || {
            KeysAndAttributes::builder()
                .consistent_read(true)
                .projection_expression("sk")
        };
        let items = self
            .batch_get("read the suppression list", &keys, request)
            .await?;
        items
            .iter()
            .map(|item| attr_str(item, "sk").map(str::to_string))
            .collect()
    }
}

#[async_trait]
impl ResponseLedger for DynamoStore {
    async fn load_records(
        &self,
        keys: &[ResponseKey],
    ) -> Result<HashMap<ResponseKey, RecordState>, StoreError> {
        let by_item: HashMap<(String, String), &ResponseKey> = keys
            .iter()
            .map(|k| ((format!("R#{}", k.survey), k.digest.clone()), k))
            .collect();
        let projection = || {
            KeysAndAttributes::builder()
                .consistent_read(true)
                .projection_expression(
                    "pk, sk, #at, eid, slot, score, #day, #rev, #src, #click, #auto, #clk, doc, x",
                )
                .expression_attribute_names("#at", "at")
                .expression_attribute_names("#day", "day")
                .expression_attribute_names("#rev", "rev")
                .expression_attribute_names("#src", "src")
                .expression_attribute_names("#click", "click")
                .expression_attribute_names("#auto", "auto")
                .expression_attribute_names("#clk", "clk")
        };
        let items = self
            .batch_get("read response records", by_item.keys(), projection)
            .await?;
        let mut out = HashMap::new();
        // Explicit answers whose comment sits in a detail item: read those too.
        let mut detail_keys = Vec::new();
        for item in &items {
            let id = (
                attr_str(item, "pk")?.to_string(),
                attr_str(item, "sk")?.to_string(),
            );
            if let Some(key) = by_item.get(&id) {
                let sk = id.1.as_str();
                let flag = |name: &str| matches!(item.get(name), Some(AttributeValue::Bool(true)));
                let mut state = RecordState {
                    answered_at: record_num(item, "at", sk)?,
                    event_id: attr_str(item, "eid")?.to_string(),
                    slot: record_num(item, "slot", sk)?,
                    score: record_num(item, "score", sk)?,
                    day: Day::from_days(record_num(item, "day", sk)?),
                    source: attr_str(item, "src").ok().and_then(Source::parse),
                    click: flag("click"),
                    automated: flag("auto"),
                    clicks: attr_str(item, "clk")
                        .map(ClickMark::decode)
                        .unwrap_or_default(),
                    rev: if item.contains_key("rev") {
                        record_num(item, "rev", sk)?
                    } else {
                        0
                    },
                    comment: None,
                };
                if !state.click {
                    if item.get("x").is_some() {
                        detail_keys.push((
                            (id.0.clone(), detail_sk(sk, &state.event_id)),
                            (*key).clone(),
                        ));
                    } else if let Ok(event) = parse_doc::<ResponseEvent>(item, "response") {
                        if event.has_comment() {
                            state.comment = event.comment;
                        }
                    }
                }
                out.insert((*key).clone(), state);
            }
        }
        if !detail_keys.is_empty() {
            let request = || {
                KeysAndAttributes::builder()
                    .consistent_read(true)
                    .projection_expression("pk, sk, c")
            };
            let details = self
                .batch_get(
                    "read answers' comments",
                    detail_keys.iter().map(|(item, _)| item),
                    request,
                )
                .await?;
            let owner: HashMap<&str, &ResponseKey> = detail_keys
                .iter()
                .map(|((_, sk), key)| (sk.as_str(), key))
                .collect();
            for d in &details {
                let (Ok(sk), Ok(comment)) = (attr_str(d, "sk"), attr_str(d, "c")) else {
                    continue;
                };
                if let Some(state) = owner.get(sk).and_then(|key| out.get_mut(*key)) {
                    state.comment = (!comment.trim().is_empty()).then(|| comment.to_string());
                }
            }
        }
        Ok(out)
    }

    async fn commit(&self, chunk: &Chunk) -> Result<CommitOutcome, StoreError> {
        let mut items = Vec::with_capacity(chunk.action_count());
        let mut details = Vec::new();
        for t in &chunk.transitions {
            let (put, detail) = self.record_write(t)?;
            items.push(put);
            details.extend(detail);
        }
        // Comments first: once the transaction commits, its answers are acknowledged.
        self.put_details(details).await?;
        for (key, h) in &chunk.counters {
            items.push(self.counter_update(key, h)?);
        }
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(request_token(chunk))
            .send()
            .await;
        let err = match res {
            Ok(_) => return Ok(CommitOutcome::Committed),
            Err(e) => e,
        };
        if let Some(cancel) = err.as_service_error().and_then(|se| match se {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
            _ => None,
        }) {
            let reasons = cancel.cancellation_reasons();
            let code_at = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
            let conflicts: Vec<usize> = (0..chunk.transitions.len()).filter(|i| code_at(*i) == "ConditionalCheckFailed").collect();
            let codes: Vec<&str> = (0..reasons.len()).map(code_at).filter(|c| *c != "None").collect();
            if codes.contains(&"TransactionConflict") {
                // Another transaction held one of these items: re-read and try again.
                return Ok(CommitOutcome::Conflicted(conflicts));
            }
            if !conflicts.is_empty() && codes.iter().all(|c| *c == "ConditionalCheckFailed") {
                return Ok(CommitOutcome::Conflicted(conflicts));
            }
            if codes.iter().any(|c| c.contains("Throttl") || *c == "ProvisionedThroughputExceeded") {
                return Err(StoreError::Transient(format!("transaction throttled: {codes:?}")));
            }
            return Err(StoreError::Permanent(format!("transaction cancelled: {codes:?}")));
        }
        Err(classify("commit transaction", err))
    }

    async fn keep_rejected(
        &self,
        message_id: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("REJECTED"))
            .item("sk", s(message_id))
            .item("body", s(body))
            .item("reason", s(reason))
            .item("at", n(now))
            .item("ttl", n(now / 1000 + REJECTED_TTL_SECS))
            .send()
            .await
            .map_err(|e| classify("keep rejected message", e))?;
        Ok(())
    }
}

/// The stored response of a record item read through [`BY_TIME_INDEX`] (without its detail).
fn stored_response(item: &HashMap<String, AttributeValue>) -> Result<StoredResponse, StoreError> {
    let id = attr_str(item, "sk")?.to_string();
    let event: ResponseEvent = parse_doc(item, "response")?;
    let automated = matches!(item.get("auto"), Some(AttributeValue::Bool(true)));
    Ok(StoredResponse {
        id,
        event,
        automated,
    })
}

#[async_trait]
impl ResponseReader for DynamoStore {
    async fn responses_page(
        &self,
        survey: &str,
        from_ms: i64,
        to_ms: i64,
        after: Option<&ResponseCursor>,
        limit: usize,
    ) -> Result<Vec<StoredResponse>, StoreError> {
        let pk = format!("R#{survey}");
        let last = to_ms.saturating_sub(1);
        if limit == 0 || from_ms > last {
            return Ok(Vec::new());
        }
        // A cursor past the range (the range shrank since) starts at the range's end instead.
        let mut start = after.filter(|c| c.answered_at <= last).map(|c| {
            HashMap::from([
                ("pk".to_string(), s(&pk)),
                ("sk".to_string(), s(&c.id)),
                ("at".to_string(), n(c.answered_at)),
            ])
        });
        let mut items = Vec::new();
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_TIME_INDEX)
                .key_condition_expression("pk = :pk AND #at BETWEEN :from AND :to")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":from", n(from_ms))
                .expression_attribute_values(":to", n(last))
                .scan_index_forward(false)
                .limit(i32::try_from((limit - items.len()).min(PAGE_QUERY_MAX)).unwrap_or(1))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("read responses", e))?;
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() || items.len() >= limit {
                break;
            }
        }
        let mut out = Vec::with_capacity(items.len());
        let mut detail_keys = Vec::new();
        for item in &items {
            let r = stored_response(item)?;
            if item.get("x").is_some() {
                detail_keys.push((pk.clone(), detail_sk(&r.id, &r.event.event_id)));
            }
            out.push(r);
        }
        if !detail_keys.is_empty() {
            let details = self
                .batch_get("read comments", &detail_keys, KeysAndAttributes::builder)
                .await?;
            let by_sk: HashMap<&str, &HashMap<String, AttributeValue>> = details
                .iter()
                .filter_map(|d| Some((attr_str(d, "sk").ok()?, d)))
                .collect();
            for r in &mut out {
                if let Some(d) = by_sk.get(detail_sk(&r.id, &r.event.event_id).as_str()) {
                    r.event.comment = attr_str(d, "c").ok().map(str::to_string);
                    if let Ok(p) = attr_str(d, "p") {
                        r.event.properties = serde_json::from_str(p).unwrap_or_else(|e| {
                            tracing::warn!(survey, id = %r.id, error = %e, "stored properties are corrupt; shown without them");
                            Default::default()
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl CounterReader for DynamoStore {
    async fn read_counters(
        &self,
        survey: &str,
        from: Day,
        to: Day,
    ) -> Result<Vec<CounterRow>, StoreError> {
        // '~' sorts after every character a touchpoint slug may contain.
        let range = (from.to_string(), format!("{to}#~"));
        let items = self
            .query_all("read counters", format!("C#{survey}"), Some(range))
            .await?;
        let mut rows = Vec::with_capacity(items.len());
        for item in &items {
            let sk = attr_str(item, "sk")?;
            match counter_row(item, sk) {
                Ok(row) => rows.push(row),
                // One bad item must not break every report covering its day: leave it out, loudly.
                Err(e) => {
                    tracing::warn!(pk = %format!("C#{survey}"), sk, error = %e, "counter item skipped")
                }
            }
        }
        Ok(rows)
    }
}

// Post-order surveys. Partitions and the DynamoDB actions each method uses (the functions' IAM
// statements are written from this list; every partition key below is a `dynamodb:LeadingKeys`):
//
// | method               | action     | partition                                               |
// |----------------------|------------|---------------------------------------------------------|
// | `put_connection`     | PutItem    | `CONN`                                                  |
// | `get_connection`     | GetItem    | `CONN`                                                  |
// | `list_connections`   | Query      | `CONN` (projection `doc`: never the secret)             |
// | `delete_connection`  | DeleteItem | `CONN` (conditional on the item existing)               |
// | `create_invitation`  | PutItem    | `INV#<connection>` (conditional: put-if-absent)         |
// | `get_invitation`     | GetItem    | `INV#<connection>` (consistent read)                    |
// | `replace_invitation` | PutItem    | `INV#<connection>` (conditional: still as seen)         |
// | `list_invitations`   | Query      | `INV#<connection>` on `by_time`; for all, `CONN` first  |
// | `due_invitations`    | Query      | `CONN`, then every `INV#<connection>`                   |
// | `claim_contact`      | PutItem    | `CONTACT#<survey>` (conditional; no call without a cap) |
// | `release_contact`    | DeleteItem | `CONTACT#<survey>` (conditional on the claimant)        |
//
// Items: connection `CONN`/`<id>` with `doc` (the Connection as JSON) and `secret`; invitation
// `INV#<connection>`/`<order>` with `doc` (the Invitation as JSON), `at` (its creation time, for
// the `by_time` index) and, for conditions, `status`, `attempts`, `lease`, `due`, `created`;
// frequency-cap claim `CONTACT#<survey>`/
// `<contact>` with `at`, `by` (the claimant) and `ttl` (when the cap runs out, in seconds).

/// The partition of store connections.
const CONNECTIONS_PK: &str = "CONN";

/// The partition of a connection's invitations.
fn invitations_pk(connection: &str) -> String {
    format!("INV#{connection}")
}

/// The item holding an invitation: its document, and the attributes conditions compare.
fn invitation_item(i: &Invitation) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let doc = serde_json::to_string(i).map_err(|e| StoreError::Permanent(e.to_string()))?;
    Ok(HashMap::from([
        ("pk".to_string(), s(invitations_pk(&i.connection))),
        ("sk".to_string(), s(&i.order)),
        ("doc".to_string(), s(doc)),
        ("status".to_string(), s(i.status.as_str())),
        ("attempts".to_string(), n(i.attempts)),
        ("lease".to_string(), n(i.lease_until)),
        ("due".to_string(), n(i.due_at)),
        ("created".to_string(), n(i.created_at)),
        // Its place in the `by_time` index, which lists a connection's invitations newest first.
        ("at".to_string(), n(i.created_at)),
    ]))
}

impl DynamoStore {
    /// `connection` alone, or every listed connection's id.
    async fn connection_ids(&self, connection: Option<&str>) -> Result<Vec<String>, StoreError> {
        Ok(match connection {
            Some(c) => vec![c.to_string()],
            None => self
                .list_connections()
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect(),
        })
    }

    /// The newest `limit` invitations of one connection after `after` (all of them when the
    /// `limit`-th shares its creation time with others), from the `by_time` index. The index
    /// keeps no order among equal times, so every tie at the boundary is read: merged and sorted,
    /// the first `limit` are then exactly those of [`listing_order`].
    async fn newest_invitations(
        &self,
        connection: &str,
        after: Option<&InvitationCursor>,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError> {
        let mut out: Vec<Invitation> = Vec::new();
        let mut start = None;
        if limit == 0 {
            return Ok(out);
        }
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_TIME_INDEX)
                .expression_attribute_values(":pk", s(invitations_pk(connection)))
                .scan_index_forward(false)
                // One beyond `limit`: it shows whether the `limit`-th has ties left unread.
                .limit(i32::try_from(limit.saturating_add(1).min(PAGE_QUERY_MAX)).unwrap_or(1))
                .set_exclusive_start_key(start.take());
            query = match after {
                Some(cursor) => query
                    .key_condition_expression("pk = :pk AND #at <= :at")
                    .expression_attribute_names("#at", "at")
                    .expression_attribute_values(":at", n(cursor.created_at)),
                None => query.key_condition_expression("pk = :pk"),
            };
            let page = query
                .send()
                .await
                .map_err(|e| classify("list invitations", e))?;
            let mut oldest_read = None;
            for item in page.items() {
                let invitation: Invitation = parse_doc(item, "invitation")?;
                oldest_read = Some(invitation.created_at);
                if after.is_none_or(|cursor| cursor.precedes(&invitation)) {
                    out.push(invitation);
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
            // Enough once `limit` are kept and something older than the `limit`-th was read
            // (the index is newest first, so every tie of the `limit`-th is in).
            if let (Some(boundary), Some(oldest)) = (out.get(limit - 1), oldest_read) {
                if oldest < boundary.created_at {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every invitation of one connection, or of every listed connection.
    async fn invitations_of(
        &self,
        what: &str,
        connection: Option<&str>,
    ) -> Result<Vec<Invitation>, StoreError> {
        let ids = self.connection_ids(connection).await?;
        let mut out = Vec::new();
        for id in ids {
            let items = self.query_all(what, invitations_pk(&id), None).await?;
            for item in &items {
                out.push(parse_doc(item, "invitation")?);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn put_connection(
        &self,
        connection: &Connection,
        secret: &WebhookSecret,
    ) -> Result<(), StoreError> {
        let doc =
            serde_json::to_string(connection).map_err(|e| StoreError::Permanent(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(CONNECTIONS_PK))
            .item("sk", s(&connection.id))
            .item("doc", s(doc))
            .item("secret", s(secret.expose()))
            .send()
            .await
            .map_err(|e| classify("save connection", e))?;
        Ok(())
    }

    async fn get_connection(
        &self,
        id: &str,
    ) -> Result<Option<(Connection, WebhookSecret)>, StoreError> {
        let Some((connection, secret)) = self
            .get_doc_with_secret::<Connection>("connection", CONNECTIONS_PK, id)
            .await?
        else {
            return Ok(None);
        };
        let secret = WebhookSecret::new(secret).map_err(|e| {
            StoreError::Permanent(format!(
                "stored secret of connection '{id}' is unusable: {e}"
            ))
        })?;
        Ok(Some((connection, secret)))
    }

    async fn get_connection_settings(&self, id: &str) -> Result<Option<Connection>, StoreError> {
        // Only the document leaves the table: the mail function's role may read no more.
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(CONNECTIONS_PK))
            .key("sk", s(id))
            .projection_expression("doc")
            .send()
            .await
            .map_err(|e| classify("get connection", e))?;
        out.item()
            .map(|item| parse_doc(item, "connection"))
            .transpose()
    }

    async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
        // Only the documents leave the table: the secrets stay behind.
        let items = self
            .query_projected("list connections", CONNECTIONS_PK.into(), None, Some("doc"))
            .await?;
        items
            .iter()
            .map(|item| parse_doc(item, "connection"))
            .collect()
    }

    async fn delete_connection(&self, id: &str) -> Result<bool, StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(CONNECTIONS_PK))
            .key("sk", s(id))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify("delete connection", e)),
        }
    }
}

#[async_trait]
impl InvitationStore for DynamoStore {
    async fn create_invitation(&self, invitation: &Invitation) -> Result<bool, StoreError> {
        self.put_new("create invitation", invitation_item(invitation)?)
            .await
    }

    async fn get_invitation(
        &self,
        connection: &str,
        order: &str,
    ) -> Result<Option<Invitation>, StoreError> {
        // Consistent: a compare-and-set follows most reads.
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(invitations_pk(connection)))
            .key("sk", s(order))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("get invitation", e))?;
        out.item()
            .map(|item| parse_doc(item, "invitation"))
            .transpose()
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
        // A missing item has none of these attributes, so it is never "as seen".
        self.put_if(
            "replace invitation",
            invitation_item(next)?,
            "#status = :status AND #attempts = :attempts AND #lease = :lease",
            &[
                ("#status", "status"),
                ("#attempts", "attempts"),
                ("#lease", "lease"),
            ],
            vec![
                (":status", s(seen.status.as_str())),
                (":attempts", n(seen.attempts)),
                (":lease", n(seen.lease_until)),
            ],
        )
        .await
    }

    async fn list_invitations(
        &self,
        connection: Option<&str>,
        after: Option<&InvitationCursor>,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError> {
        let ids = self.connection_ids(connection).await?;
        // Each connection's newest `limit` after the cursor, merged: never more than that per
        // connection is read (and the ties at its boundary).
        let mut all = Vec::new();
        for id in ids {
            all.extend(self.newest_invitations(&id, after, limit).await?);
        }
        all.sort_by(listing_order);
        all.truncate(limit);
        Ok(all)
    }

    async fn due_invitations(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<Invitation>, StoreError> {
        let mut due: Vec<Invitation> = self
            .invitations_of("read due invitations", None)
            .await?
            .into_iter()
            .filter(|i| match i.status {
                InvitationStatus::Scheduled => i.due_at <= now_ms,
                InvitationStatus::Sending => i.lease_until < now_ms,
                _ => false,
            })
            .collect();
        due.sort_by(|a, b| {
            a.due_at
                .cmp(&b.due_at)
                .then_with(|| a.connection.cmp(&b.connection))
                .then_with(|| a.order.cmp(&b.order))
        });
        due.truncate(limit);
        Ok(due)
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
        // Kept until the cap runs out (DynamoDB's TTL deletes it within days after).
        let expires = at_ms.saturating_add(cap_ms) / 1000 + 1;
        let item = HashMap::from([
            ("pk".to_string(), s(format!("CONTACT#{survey}"))),
            ("sk".to_string(), s(contact)),
            ("at".to_string(), n(at_ms)),
            ("by".to_string(), s(claimant)),
            ("ttl".to_string(), n(expires)),
        ]);
        self.put_if(
            "claim contact",
            item,
            "attribute_not_exists(pk) OR #at <= :cutoff OR #by = :me",
            &[("#at", "at"), ("#by", "by")],
            vec![(":cutoff", n(cutoff)), (":me", s(claimant))],
        )
        .await
    }

    async fn release_contact(
        &self,
        survey: &str,
        contact: &str,
        claimant: &str,
    ) -> Result<(), StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("CONTACT#{survey}")))
            .key("sk", s(contact))
            .condition_expression("#by = :me")
            .expression_attribute_names("#by", "by")
            .expression_attribute_values(":me", s(claimant))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // Another claimant's, or none: nothing of this invitation's to give back.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(classify("release contact", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_cost_a_byte_per_two_significant_digits_plus_one() {
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("100"), 2);
        assert_eq!(number_size("12345"), 4);
        assert_eq!(number_size("-0.0012"), 2);
        assert_eq!(number_size("99999999999999999999999"), 13);
    }

    #[test]
    fn item_size_counts_names_and_values() {
        let item = HashMap::from([
            ("pk".to_string(), s("R#s")),
            ("at".to_string(), n(1_700_000_000_000i64)),
            ("x".to_string(), AttributeValue::Bool(true)),
        ]);
        // 1_700_000_000_000 has two significant digits: 2 bytes.
        assert_eq!(item_size(&item), (2 + 3) + (2 + 2) + (1 + 1));
    }

    #[test]
    fn stored_numbers_out_of_range_clamp_to_the_type_bounds() {
        assert_eq!(clamped::<i64>("99999999999999999999999"), Some(i64::MAX));
        assert_eq!(clamped::<i32>("-99999999999999"), Some(i32::MIN));
        assert_eq!(clamped::<u16>("70000"), Some(u16::MAX));
        assert_eq!(clamped::<u16>("-1"), Some(0));
        assert_eq!(clamped::<i64>("1E+30"), Some(i64::MAX));
        assert_eq!(clamped::<i64>("12.7"), Some(12));
        assert_eq!(clamped::<i64>("seven"), None);
    }

    #[test]
    fn a_counter_item_that_does_not_fit_is_explained_not_read() {
        let item = |sum: &str| {
            HashMap::from([
                ("pk".to_string(), s("C#s")),
                ("sk".to_string(), s("2026-10-01#tp")),
                ("n".to_string(), n(2)),
                ("sum".to_string(), AttributeValue::N(sum.into())),
                ("s9".to_string(), n(2)),
            ])
        };
        let row = counter_row(&item("18"), "2026-10-01#tp").unwrap();
        assert_eq!((row.histogram.n, row.histogram.sum), (2, 18));
        assert!(matches!(
            counter_row(&item("99999999999999999999999"), "2026-10-01#tp"),
            Err(BadCounter::Number(name)) if name == "sum"
        ));
        assert!(matches!(
            counter_row(&item("18"), "not-a-key"),
            Err(BadCounter::Key)
        ));
    }
}
