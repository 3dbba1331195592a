//! SQS adapter for the response queue.

use crate::sdk_error::classify;
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use sondeo_domain::ports::{ResponseQueue, StoreError};
use sondeo_domain::response::ResponseEvent;

/// Sends response events to an SQS queue, one message per event.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    /// An adapter for the queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> SqsQueue {
        SqsQueue {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl ResponseQueue for SqsQueue {
    async fn enqueue(&self, event: &ResponseEvent) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(event).map_err(|e| StoreError::Permanent(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| classify("send to response queue", e))?;
        Ok(())
    }

    /// `SendMessageBatch` of up to 10 messages at a time, the calls of one batch concurrently;
    /// a message SQS refuses fails the call as retryable (the caller sends the batch again;
    /// stable event ids make that safe).
    async fn enqueue_batch(&self, events: &[ResponseEvent]) -> Result<(), StoreError> {
        let mut calls = tokio::task::JoinSet::new();
        for chunk in events.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, event) in chunk.iter().enumerate() {
                let body = serde_json::to_string(event)
                    .map_err(|e| StoreError::Permanent(e.to_string()))?;
                let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| StoreError::Permanent(e.to_string()))?;
                entries.push(entry);
            }
            let call = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries));
            let sent = chunk.len();
            calls.spawn(async move {
                let out = call
                    .send()
                    .await
                    .map_err(|e| classify("send a batch to response queue", e))?;
                match out.failed().first() {
                    Some(failed) => Err(StoreError::Transient(format!(
                        "the response queue refused {} of {sent} messages ({}: {})",
                        out.failed().len(),
                        failed.code(),
                        failed.message().unwrap_or("no message"),
                    ))),
                    None => Ok(()),
                }
            });
        }
        let mut first_error = None;
        while let Some(joined) = calls.join_next().await {
            let result = joined.unwrap_or_else(|e| Err(StoreError::Transient(e.to_string())));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
