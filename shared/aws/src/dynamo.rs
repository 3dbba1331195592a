//! DynamoDB adapter: one table (`pk`, `sk`) holding surveys, response records, counters and
//! rejected messages; the ledger commits each chunk with one `TransactWriteItems`.
//!
//! Items: survey `SURVEY`/`<id>`; record `R#<survey>`/`<digest>`; counter `C#<survey>`/`<day>#<touchpoint>`
//! with attributes `n`, `sum` and `s<slot>`; rejected message `REJECTED`/`<message id>`.

use crate::sdk_error::classify;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use sha2::{Digest, Sha256};
use sondeo_domain::changes::{Chunk, RecordState};
use sondeo_domain::metrics::Histogram;
use sondeo_domain::ports::{
    CommitOutcome, CounterReader, CounterRow, ResponseLedger, StoreError, SurveyStore,
};
use sondeo_domain::response::{ResponseEvent, ResponseKey};
use sondeo_domain::survey::Survey;
use sondeo_domain::time::{now_ms, Day};
use std::collections::HashMap;

/// How long rejected messages are kept, in seconds (90 days).
const REJECTED_TTL_SECS: i64 = 90 * 86_400;
/// Most keys in one BatchGetItem.
const BATCH_GET_MAX: usize = 100;

/// The DynamoDB table adapter for surveys, the ledger and counter reads.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn attr_str<'a>(
    item: &'a HashMap<String, AttributeValue>,
    name: &str,
) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Permanent(format!("item lacks string attribute '{name}'")))
}

/// Parses an item's JSON `doc` attribute.
fn parse_doc<T: serde::de::DeserializeOwned>(
    item: &HashMap<String, AttributeValue>,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(attr_str(item, "doc")?)
        .map_err(|e| StoreError::Permanent(format!("stored {what} is corrupt: {e}")))
}

fn attr_num<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
) -> Result<T, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Permanent(format!("item lacks number attribute '{name}'")))
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

    /// Every stored response record of a survey (for export and recounts).
    pub async fn all_responses(&self, survey: &str) -> Result<Vec<ResponseEvent>, StoreError> {
        let items = self
            .query_all("query responses", format!("R#{survey}"), None)
            .await?;
        items
            .iter()
            .map(|item| parse_doc(item, "response"))
            .collect()
    }

    /// Every item of a partition, optionally with a sort key in `from..=to`, across pages.
    async fn query_all(
        &self,
        what: &str,
        pk: String,
        sk_between: Option<(String, String)>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(&pk))
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

    fn record_put(
        &self,
        t: &sondeo_domain::changes::Transition,
    ) -> Result<TransactWriteItem, StoreError> {
        let e = &t.event;
        let state = RecordState::of(e);
        let doc = serde_json::to_string(e).map_err(|err| StoreError::Permanent(err.to_string()))?;
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(format!("R#{}", t.key.survey)))
            .item("sk", s(&t.key.digest))
            .item("at", n(e.answered_at))
            .item("eid", s(&e.event_id))
            .item("slot", n(state.slot))
            .item("score", n(e.score))
            .item("day", n(state.day.days()))
            .item("doc", s(doc));
        put = match &t.expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some((at, eid)) => put
                .condition_expression("#at = :at AND #eid = :eid")
                .expression_attribute_names("#at", "at")
                .expression_attribute_names("#eid", "eid")
                .expression_attribute_values(":at", n(at))
                .expression_attribute_values(":eid", s(eid)),
        };
        let put = put
            .build()
            .map_err(|e| StoreError::Permanent(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
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
            .key("sk", s(format!("{}#{}", key.day, key.touchpoint)))
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

/// A token that makes a retried commit of the same chunk idempotent for DynamoDB (≤ 36 chars).
fn request_token(chunk: &Chunk) -> String {
    let mut h = Sha256::new();
    for t in &chunk.transitions {
        h.update(t.key.digest.as_bytes());
        h.update(t.event.event_id.as_bytes());
        if let Some((at, eid)) = &t.expected {
            h.update(at.to_be_bytes());
            h.update(eid.as_bytes());
        }
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
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("SURVEY"))
            .item("sk", s(&survey.id))
            .item("doc", s(doc))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::AlreadyExists(format!("survey '{}'", survey.id)))
            }
            Err(e) => Err(classify("create survey", e)),
        }
    }

    async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError> {
        let items = self
            .query_all("list surveys", "SURVEY".into(), None)
            .await?;
        items.iter().map(|item| parse_doc(item, "survey")).collect()
    }
}

#[async_trait]
impl ResponseLedger for DynamoStore {
    async fn load_records(
        &self,
        keys: &[ResponseKey],
    ) -> Result<HashMap<ResponseKey, RecordState>, StoreError> {
        let mut out = HashMap::new();
        for group in keys.chunks(BATCH_GET_MAX) {
            let by_item: HashMap<(String, String), &ResponseKey> = group
                .iter()
                .map(|k| ((format!("R#{}", k.survey), k.digest.clone()), k))
                .collect();
            let mut request = KeysAndAttributes::builder()
                .consistent_read(true)
                .projection_expression("pk, sk, #at, eid, slot, score, #day")
                .expression_attribute_names("#at", "at")
                .expression_attribute_names("#day", "day");
            for (pk, sk) in by_item.keys() {
                request = request.keys(HashMap::from([
                    ("pk".to_string(), s(pk)),
                    ("sk".to_string(), s(sk)),
                ]));
            }
            let mut pending = Some(
                request
                    .build()
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
                    .map_err(|e| classify("read response records", e))?;
                for item in res
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let id = (
                        attr_str(item, "pk")?.to_string(),
                        attr_str(item, "sk")?.to_string(),
                    );
                    if let Some(key) = by_item.get(&id) {
                        let state = RecordState {
                            answered_at: attr_num(item, "at")?,
                            event_id: attr_str(item, "eid")?.to_string(),
                            slot: attr_num(item, "slot")?,
                            score: attr_num(item, "score")?,
                            day: Day::from_days(attr_num(item, "day")?),
                        };
                        out.insert((*key).clone(), state);
                    }
                }
                if let Some(rest) = res
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .filter(|r| !r.keys().is_empty())
                {
                    attempt += 1;
                    if attempt > 6 {
                        return Err(StoreError::Transient(
                            "records still unprocessed after 6 attempts (throttled)".into(),
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
                    pending = Some(rest.clone());
                }
            }
        }
        Ok(out)
    }

    async fn commit(&self, chunk: &Chunk) -> Result<CommitOutcome, StoreError> {
        let mut items = Vec::with_capacity(chunk.action_count());
        for t in &chunk.transitions {
            items.push(self.record_put(t)?);
        }
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
            let (day, touchpoint) = sk
                .split_once('#')
                .ok_or_else(|| StoreError::Permanent(format!("bad counter key '{sk}'")))?;
            let day: Day = day
                .parse()
                .map_err(|e: sondeo_domain::time::DayParseError| {
                    StoreError::Permanent(e.to_string())
                })?;
            let mut h = Histogram {
                n: attr_num(item, "n")?,
                sum: attr_num(item, "sum")?,
                slots: Default::default(),
            };
            for (name, v) in item {
                if let Some(slot) = name.strip_prefix('s').and_then(|x| x.parse::<u16>().ok()) {
                    let count: i64 = v.as_n().ok().and_then(|c| c.parse().ok()).unwrap_or(0);
                    if count != 0 {
                        h.slots.insert(slot, count);
                    }
                }
            }
            rows.push(CounterRow {
                touchpoint: touchpoint.to_string(),
                day,
                histogram: h,
            });
        }
        Ok(rows)
    }
}
