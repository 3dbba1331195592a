//! A tap on the DynamoDB client's HTTP connection: it meters the capacity units every request
//! that DynamoDB accepted would be billed (from the request bodies, as DynamoDB sizes items), and
//! it can inject faults (a cancelled transaction with chosen cancellation reasons, a permanent
//! `ValidationException` for transactions carrying a chosen event id) without the request
//! reaching moto.
//!
//! Units, from the AWS "Item sizes and formats" and capacity pages: an item's size is the sum of
//! its attribute names' UTF-8 lengths and its values' sizes (strings: UTF-8 bytes; numbers: one
//! byte per two significant digits plus one; booleans and nulls: 1; lists and maps: 3 plus one per
//! element plus the elements). Writes bill per started KB (1,024 bytes) of each item: 2 units in a
//! `TransactWriteItems`, 1 in `PutItem`/`BatchWriteItem`. An update bills the larger of the item
//! before and after; Sondeo's only updates are counter items (at most `n`, `sum`, `s0`–`s10`, 13
//! numbers of at most 21 bytes), so an update is sized as its key plus 13 × 25 bytes. Consistent
//! reads bill 1 unit per started 4 KB of each item; records are under 4 KB, so 1 per key read.

use aws_sdk_dynamodb::config::http::{HttpRequest, HttpResponse};
use aws_sdk_dynamodb::config::{HttpClient, RuntimeComponents, SharedHttpClient};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes an update of a counter item may be billed for beyond its key: 13 numbers of ≤ 21 bytes with ≤ 4-byte names.
const COUNTER_UPDATE_ALLOWANCE: usize = 13 * 25;

/// Capacity units and requests counted by a [`DynamoTap`], for requests DynamoDB accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireCounts {
    /// Accepted requests by operation name (`TransactWriteItems`, `BatchGetItem`, ...).
    pub requests: BTreeMap<String, u64>,
    /// Items written by accepted `TransactWriteItems`.
    pub transact_items: u64,
    /// Write units of accepted `TransactWriteItems`: 2 per started KB of each item.
    pub transact_wcu: u64,
    /// Items written by accepted `PutItem` and `BatchWriteItem` requests.
    pub plain_items: u64,
    /// Write units of those: 1 per started KB of each item.
    pub plain_wcu: u64,
    /// Keys read by accepted `BatchGetItem` and `GetItem` requests.
    pub keys_read: u64,
    /// Read units of those: consistent reads, 1 per key (items under 4 KB).
    pub rcu: u64,
    /// Largest item written, in bytes.
    pub largest_item: usize,
}

impl WireCounts {
    /// Write units of every kind.
    pub fn wcu(&self) -> u64 {
        self.transact_wcu + self.plain_wcu
    }

    /// Accepted requests of one operation.
    pub fn count(&self, operation: &str) -> u64 {
        self.requests.get(operation).copied().unwrap_or(0)
    }
}

/// Which action of a cancelled transaction a cancellation reason belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The action at this index of `TransactItems`.
    Index(usize),
    /// The record put carrying this event id (`eid`), wherever the planner placed it.
    Event(String),
}

/// Work a fault runs before it answers, standing for what another writer did meanwhile.
pub type Meanwhile = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A fault the tap injects.
#[derive(Clone)]
pub enum Fault {
    /// The `nth` `TransactWriteItems` through the tap (1-based) is answered with a
    /// `TransactionCanceledException` whose reasons carry these codes at these actions (`"None"`
    /// elsewhere); it never reaches the server. `meanwhile` runs first.
    Cancel {
        /// Which transaction, counting from 1.
        nth: usize,
        /// Cancellation codes (`ConditionalCheckFailed`, `TransactionConflict`, `ThrottlingError`, ...).
        reasons: Vec<(Action, String)>,
        /// What another writer does before the answer arrives.
        meanwhile: Option<Meanwhile>,
    },
    /// Every `TransactWriteItems` carrying this event id fails with a `ValidationException`.
    RejectEvent(String),
}

#[derive(Default)]
struct TapState {
    counts: WireCounts,
    faults: Vec<Fault>,
    transactions_seen: usize,
    faults_injected: usize,
}

/// Meters and perturbs the DynamoDB requests of the clients built with [`DynamoTap::client`].
#[derive(Clone, Default)]
pub struct DynamoTap {
    state: Arc<Mutex<TapState>>,
}

impl std::fmt::Debug for DynamoTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynamoTap")
    }
}

impl DynamoTap {
    /// A tap with no faults.
    pub fn new() -> DynamoTap {
        DynamoTap::default()
    }

    fn state(&self) -> MutexGuard<'_, TapState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A DynamoDB client for `sdk` whose requests pass through this tap.
    pub fn client(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
        let inner = sdk
            .http_client()
            .expect("the SDK configuration has an HTTP client");
        let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
            .http_client(TappedClient {
                inner,
                tap: self.clone(),
            })
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    /// Cancels the `nth` transaction (1-based) with `reasons`; see [`Fault::Cancel`].
    pub fn cancel_transaction(&self, nth: usize, reasons: &[(Action, &str)]) {
        self.add(Fault::Cancel {
            nth,
            reasons: reasons
                .iter()
                .map(|(a, c)| (a.clone(), c.to_string()))
                .collect(),
            meanwhile: None,
        });
    }

    /// Like [`DynamoTap::cancel_transaction`], running `meanwhile` (another writer's work) first.
    pub fn cancel_transaction_after<F, Fut>(
        &self,
        nth: usize,
        reasons: &[(Action, &str)],
        meanwhile: F,
    ) where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let meanwhile: Meanwhile = Arc::new(move || Box::pin(meanwhile()));
        self.add(Fault::Cancel {
            nth,
            reasons: reasons
                .iter()
                .map(|(a, c)| (a.clone(), c.to_string()))
                .collect(),
            meanwhile: Some(meanwhile),
        });
    }

    /// Fails every transaction that carries `event_id` with a permanent `ValidationException`.
    pub fn reject_event(&self, event_id: &str) {
        self.add(Fault::RejectEvent(event_id.to_string()));
    }

    /// Adds a fault.
    pub fn add(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Units and requests counted so far.
    pub fn counts(&self) -> WireCounts {
        self.state().counts.clone()
    }

    /// Forgets the counts (faults and the transaction count stay).
    pub fn reset_counts(&self) {
        self.state().counts = WireCounts::default();
    }

    /// `TransactWriteItems` requests seen, answered by the server or by a fault.
    pub fn transactions_seen(&self) -> usize {
        self.state().transactions_seen
    }

    /// Faults injected so far.
    pub fn faults_injected(&self) -> usize {
        self.state().faults_injected
    }
}

#[derive(Debug)]
struct TappedClient {
    inner: SharedHttpClient,
    tap: DynamoTap,
}

impl HttpClient for TappedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(TappedConnector {
            inner: self.inner.http_connector(settings, components),
            tap: self.tap.clone(),
        })
    }
}

#[derive(Debug)]
struct TappedConnector {
    inner: SharedHttpConnector,
    tap: DynamoTap,
}

/// What a fault answers instead of the server.
struct Injected {
    meanwhile: Option<Meanwhile>,
    response: HttpResponse,
}

impl HttpConnector for TappedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or_default()
            .to_string();
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let usage = usage(&operation, &body);
        let injected = if operation == "TransactWriteItems" {
            self.tap.fault_for(&body)
        } else {
            None
        };
        let tap = self.tap.clone();
        match injected {
            Some(Injected {
                meanwhile,
                response,
            }) => HttpConnectorFuture::new(async move {
                if let Some(work) = meanwhile {
                    work().await;
                }
                Ok(response)
            }),
            None => {
                let sent = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    let response = sent.await?;
                    if response.status().is_success() {
                        let mut state = tap.state();
                        *state.counts.requests.entry(operation).or_default() += 1;
                        usage.add_to(&mut state.counts);
                    }
                    Ok(response)
                })
            }
        }
    }
}

impl DynamoTap {
    /// The fault for this transaction, if any (counting it either way).
    fn fault_for(&self, body: &Value) -> Option<Injected> {
        let actions = body
            .get("TransactItems")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut state = self.state();
        state.transactions_seen += 1;
        let seen = state.transactions_seen;
        let mut injected = None;
        for fault in &state.faults {
            match fault {
                Fault::Cancel {
                    nth,
                    reasons,
                    meanwhile,
                } if *nth == seen => {
                    let mut codes = vec!["None".to_string(); actions.len()];
                    for (action, code) in reasons {
                        let index = match action {
                            Action::Index(i) => Some(*i),
                            Action::Event(id) => actions.iter().position(|a| carries(a, id)),
                        };
                        if let Some(slot) = index.and_then(|i| codes.get_mut(i)) {
                            *slot = code.clone();
                        }
                    }
                    injected = Some(Injected {
                        meanwhile: meanwhile.clone(),
                        response: cancelled(&codes),
                    });
                    break;
                }
                Fault::RejectEvent(id) if actions.iter().any(|a| carries(a, id)) => {
                    injected = Some(Injected {
                        meanwhile: None,
                        response: error_response(
                            "com.amazon.coral.validate#ValidationException",
                            &format!(
                                "One or more parameter values were invalid: event {id} (injected)"
                            ),
                            None,
                        ),
                    });
                    break;
                }
                _ => {}
            }
        }
        if injected.is_some() {
            state.faults_injected += 1;
        }
        injected
    }
}

/// Whether a transaction action is the record put of this event.
fn carries(action: &Value, event_id: &str) -> bool {
    action
        .pointer("/Put/Item/eid/S")
        .and_then(Value::as_str)
        .is_some_and(|eid| eid == event_id)
}

fn cancelled(codes: &[String]) -> HttpResponse {
    let reasons: Vec<Value> = codes
        .iter()
        .map(|c| match c.as_str() {
            "None" => serde_json::json!({ "Code": "None" }),
            _ => serde_json::json!({ "Code": c, "Message": format!("{c} (injected)") }),
        })
        .collect();
    error_response(
        "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        &format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        Some(reasons),
    )
}

fn error_response(kind: &str, message: &str, reasons: Option<Vec<Value>>) -> HttpResponse {
    let mut body = serde_json::json!({ "__type": kind, "Message": message });
    if let Some(r) = reasons {
        body["CancellationReasons"] = Value::Array(r);
    }
    let status = StatusCode::try_from(400u16).expect("400 is a status code");
    let mut response = HttpResponse::new(status, SdkBody::from(body.to_string()));
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
        .headers_mut()
        .insert("x-amzn-requestid", "injected-fault");
    response
}

/// Units one request is billed when DynamoDB accepts it.
#[derive(Debug, Default)]
struct Usage {
    transact_items: u64,
    transact_wcu: u64,
    plain_items: u64,
    plain_wcu: u64,
    keys_read: u64,
    largest_item: usize,
}

impl Usage {
    fn add_to(&self, c: &mut WireCounts) {
        c.transact_items += self.transact_items;
        c.transact_wcu += self.transact_wcu;
        c.plain_items += self.plain_items;
        c.plain_wcu += self.plain_wcu;
        c.keys_read += self.keys_read;
        c.rcu += self.keys_read;
        c.largest_item = c.largest_item.max(self.largest_item);
    }

    fn plain_put(&mut self, item: &Value) {
        let size = item_size(item);
        self.plain_items += 1;
        self.plain_wcu += kb_units(size);
        self.largest_item = self.largest_item.max(size);
    }
}

fn kb_units(size: usize) -> u64 {
    size.div_ceil(1024).max(1) as u64
}

fn usage(operation: &str, body: &Value) -> Usage {
    let mut u = Usage::default();
    match operation {
        "TransactWriteItems" => {
            for action in body
                .get("TransactItems")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let size = if let Some(item) = action.pointer("/Put/Item") {
                    item_size(item)
                } else if let Some(key) = action.pointer("/Update/Key") {
                    item_size(key) + COUNTER_UPDATE_ALLOWANCE
                } else {
                    ["/Delete/Key", "/ConditionCheck/Key"]
                        .iter()
                        .find_map(|p| action.pointer(p))
                        .map(item_size)
                        .unwrap_or(0)
                };
                u.transact_items += 1;
                u.transact_wcu += 2 * kb_units(size);
                u.largest_item = u.largest_item.max(size);
            }
        }
        "PutItem" => {
            if let Some(item) = body.get("Item") {
                u.plain_put(item);
            }
        }
        "BatchWriteItem" => {
            let tables = body.get("RequestItems").and_then(Value::as_object);
            for request in tables
                .into_iter()
                .flat_map(|t| t.values())
                .flat_map(|r| r.as_array().into_iter().flatten())
            {
                if let Some(item) = request.pointer("/PutRequest/Item") {
                    u.plain_put(item);
                }
            }
        }
        "BatchGetItem" => {
            let tables = body.get("RequestItems").and_then(Value::as_object);
            u.keys_read = tables
                .into_iter()
                .flat_map(|t| t.values())
                .filter_map(|t| t.get("Keys").and_then(Value::as_array))
                .map(|k| k.len() as u64)
                .sum();
        }
        "GetItem" => u.keys_read = 1,
        _ => {}
    }
    u
}

/// Bytes DynamoDB counts for an item in wire JSON (`{"name": {"S": "..."}, ...}`).
pub fn item_size(item: &Value) -> usize {
    item.as_object()
        .into_iter()
        .flatten()
        .map(|(name, v)| name.len() + value_size(v))
        .sum()
}

fn value_size(v: &Value) -> usize {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let strings = || {
        inner
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => inner.as_str().map_or(0, sondeo_aws::dynamo::number_size),
        "B" => inner.as_str().map_or(0, base64_len),
        "BOOL" | "NULL" => 1,
        "SS" => strings().map(str::len).sum(),
        "NS" => strings().map(sondeo_aws::dynamo::number_size).sum(),
        "BS" => strings().map(base64_len).sum(),
        "L" => {
            3 + inner
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| 1 + value_size(e))
                .sum::<usize>()
        }
        "M" => {
            3 + inner
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// Raw length of base64 text.
fn base64_len(b64: &str) -> usize {
    let padding = b64.bytes().rev().take_while(|c| *c == b'=').count();
    (b64.len() / 4 * 3).saturating_sub(padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_sizes_follow_the_documented_rules() {
        // "pk"+"R#s" = 5, "n"+ 12345 (3 digit pairs → 3 + 1) = 5, "b"+BOOL = 2, "m"+{"x": S "ab"} = 1+3+1+1+2.
        let item = serde_json::json!({
            "pk": {"S": "R#s"},
            "n": {"N": "12345"},
            "b": {"BOOL": true},
            "m": {"M": {"x": {"S": "ab"}}}
        });
        assert_eq!(item_size(&item), 5 + 5 + 2 + 8);
        assert_eq!(kb_units(1024), 1);
        assert_eq!(kb_units(1025), 2);
    }

    #[test]
    fn a_transaction_costs_two_units_per_started_kilobyte_of_each_item() {
        let big = "x".repeat(2000);
        let body = serde_json::json!({ "TransactItems": [
            { "Put": { "Item": { "pk": {"S": "a"}, "c": {"S": big} } } },
            { "Put": { "Item": { "pk": {"S": "b"} } } },
        ]});
        let u = usage("TransactWriteItems", &body);
        assert_eq!((u.transact_items, u.transact_wcu), (2, 4 + 2));
    }
}
