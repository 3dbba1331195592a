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
}
