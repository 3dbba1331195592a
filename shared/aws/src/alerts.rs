//! Alert adapters: rules and the delivery log in the DynamoDB table, jobs on their own SQS queue.
//!
//! | method               | action     | partition                                  |
//! |----------------------|------------|--------------------------------------------|
//! | `put_alert_rule`     | PutItem    | `ALERTRULE`                                |
//! | `get_alert_rule`     | GetItem    | `ALERTRULE`                                |
//! | `list_alert_rules`   | Query      | `ALERTRULE` (projection `doc`: no secrets) |
//! | `delete_alert_rule`  | DeleteItem | `ALERTRULE` (conditional)                  |
//! | `claim_delivery`     | UpdateItem | `ALERTLOG#<survey>` (conditional)          |
//! | `record_delivery`    | PutItem    | `ALERTLOG#<survey>`                        |
//! | `get_delivery`       | GetItem    | `ALERTLOG#<survey>`                        |
//!
//! Items: rule `ALERTRULE`/`<id>` with `doc` (the rule as JSON), `survey` and `secret`; log
//! entry `ALERTLOG#<survey>`/`<delivery id>` with `rule`, `status`, `attempts`, `detail`, `at`
//! and `ttl` (90 days after its last update, in seconds, for the table's TTL).

use crate::dynamo::{attr_str, n, parse_doc, s, DynamoStore};
use crate::sdk_error::classify;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use sondeo_domain::alerts::{AlertJob, AlertRule, AlertSecret, DeliveryRecord, DeliveryStatus};
use sondeo_domain::ports::{AlertLog, AlertQueue, AlertRuleStore, StoreError};
use std::collections::HashMap;

/// The partition of alert rules.
pub const RULES_PK: &str = "ALERTRULE";
/// How long delivery log entries are kept, in seconds (90 days).
pub const LOG_TTL_SECS: i64 = 90 * 86_400;
/// SQS's longest message delay, in seconds.
pub const MAX_SQS_DELAY_SECS: u64 = 900;

/// The partition of one survey's delivery log.
pub fn log_pk(survey: &str) -> String {
    format!("ALERTLOG#{survey}")
}

fn is_condition_failure<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

#[async_trait]
impl AlertRuleStore for DynamoStore {
    async fn put_alert_rule(
        &self,
        rule: &AlertRule,
        secret: &AlertSecret,
    ) -> Result<(), StoreError> {
        let doc = serde_json::to_string(rule).map_err(|e| StoreError::Permanent(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(RULES_PK))
            .item("sk", s(&rule.id))
            .item("doc", s(doc))
            .item("survey", s(&rule.survey))
            .item("secret", s(secret.expose()))
            .send()
            .await
            .map_err(|e| classify("save alert rule", e))?;
        Ok(())
    }

    async fn get_alert_rule(
        &self,
        id: &str,
    ) -> Result<Option<(AlertRule, AlertSecret)>, StoreError> {
        Ok(self
            .get_doc_with_secret::<AlertRule>("alert rule", RULES_PK, id)
            .await?
            .map(|(rule, secret)| (rule, AlertSecret::new(secret))))
    }

    async fn list_alert_rules(&self, survey: Option<&str>) -> Result<Vec<AlertRule>, StoreError> {
        // Only the documents leave the table: the secrets stay behind.
        let items = self
            .query_projected("list alert rules", RULES_PK.into(), None, Some("doc"))
            .await?;
        let mut rules = Vec::with_capacity(items.len());
        for item in &items {
            let rule: AlertRule = parse_doc(item, "alert rule")?;
            if survey.is_none_or(|s| s == rule.survey) {
                rules.push(rule);
            }
        }
        Ok(rules)
    }

    async fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(RULES_PK))
            .key("sk", s(id))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(classify("delete alert rule", e)),
        }
    }
}

#[async_trait]
impl AlertLog for DynamoStore {
    async fn claim_delivery(
        &self,
        survey: &str,
        job: &AlertJob,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(log_pk(survey)))
            .key("sk", s(&job.delivery_id))
            .condition_expression(
                "attribute_not_exists(pk) OR (#st = :pending AND attempts < :attempts)",
            )
            .update_expression(
                "SET #st = :pending, attempts = :attempts, #rule = :rule, #at = :at, #ttl = :ttl, detail = if_not_exists(detail, :empty)",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#rule", "rule")
            .expression_attribute_names("#at", "at")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":pending", s(DeliveryStatus::Pending.as_str()))
            .expression_attribute_values(":attempts", n(u64::from(job.attempt) + 1))
            .expression_attribute_values(":rule", s(&job.rule_id))
            .expression_attribute_values(":at", n(now_ms))
            .expression_attribute_values(":ttl", n(now_ms / 1000 + LOG_TTL_SECS))
            .expression_attribute_values(":empty", s(""))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(classify("claim alert delivery", e)),
        }
    }

    async fn record_delivery(
        &self,
        survey: &str,
        record: &DeliveryRecord,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(log_pk(survey)))
            .item("sk", s(&record.delivery_id))
            .item("rule", s(&record.rule_id))
            .item("status", s(record.status.as_str()))
            .item("attempts", n(record.attempts))
            .item("detail", s(&record.detail))
            .item("at", n(record.at))
            .item("ttl", n(record.at / 1000 + LOG_TTL_SECS))
            .send()
            .await
            .map_err(|e| classify("record alert delivery", e))?;
        Ok(())
    }

    async fn get_delivery(
        &self,
        survey: &str,
        delivery_id: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(log_pk(survey)))
            .key("sk", s(delivery_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("get alert delivery", e))?;
        out.item().map(delivery_record).transpose()
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Result<i64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Permanent(format!("item lacks number attribute '{name}'")))
}

fn delivery_record(item: &HashMap<String, AttributeValue>) -> Result<DeliveryRecord, StoreError> {
    let status = attr_str(item, "status")?;
    Ok(DeliveryRecord {
        delivery_id: attr_str(item, "sk")?.to_string(),
        rule_id: attr_str(item, "rule")?.to_string(),
        status: DeliveryStatus::parse(status).ok_or_else(|| {
            StoreError::Permanent(format!("stored delivery status '{status}' is unknown"))
        })?,
        attempts: u32::try_from(number(item, "attempts")?).unwrap_or(0),
        detail: attr_str(item, "detail").unwrap_or_default().to_string(),
        at: number(item, "at")?,
    })
}

/// Sends alert jobs to their own SQS queue; delays beyond SQS's 15 minutes are reached by the
/// worker putting a job back until its `not_before`.
#[derive(Clone, Debug)]
pub struct SqsAlertQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsAlertQueue {
    /// An adapter for the queue at `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> SqsAlertQueue {
        SqsAlertQueue {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl AlertQueue for SqsAlertQueue {
    async fn enqueue_alert(&self, job: &AlertJob, delay_secs: u64) -> Result<(), StoreError> {
        let body = serde_json::to_string(job).map_err(|e| StoreError::Permanent(e.to_string()))?;
        let delay = i32::try_from(delay_secs.min(MAX_SQS_DELAY_SECS)).unwrap_or(0);
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .map_err(|e| classify("send to alert queue", e))?;
        Ok(())
    }
}
