//! SQS batch of alert jobs → `run_alert_job` each → partial batch failures.
//!
//! A job is acknowledged once it is delivered, given up, put back for a later attempt, or
//! skipped (its attempt was claimed before, or its rule is gone); only a store or queue failure
//! before anything was posted reports it as a batch item failure, so SQS delivers it again. A
//! body that is not a job is dropped with a log line: retrying cannot help.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use sondeo_domain::alert_delivery::{run_alert_job, AlertWorker, JobOutcome};
use sondeo_domain::alerts::AlertJob;
use sondeo_domain::time::now_ms;

/// Runs one SQS batch of alert jobs; the invocation fails only when every message failed.
pub async fn handle(
    worker: &AlertWorker<'_>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let total = event.payload.records.len();
    let mut failed = Vec::new();
    let mut without_id = 0;
    for record in event.payload.records {
        let Some(id) = record.message_id.filter(|id| !id.is_empty()) else {
            without_id += 1;
            continue;
        };
        let span = tracing::info_span!("alert", message_id = %id, delivery = tracing::field::Empty);
        let _entered = span.enter();
        let job: AlertJob = match serde_json::from_str(record.body.as_deref().unwrap_or_default()) {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(error = %e, "message is not an alert job; dropped");
                continue;
            }
        };
        span.record("delivery", job.delivery_id.as_str());
        let outcome = run_alert_job(&job, worker, now_ms()).await;
        match &outcome {
            JobOutcome::Delivered(status) => {
                tracing::info!(status, rule = %job.rule_id, "alert delivered")
            }
            JobOutcome::Retrying(delay) => tracing::info!(
                delay,
                attempt = job.attempt + 1,
                "alert attempt failed; retrying later"
            ),
            JobOutcome::NotYetDue(wait) => tracing::debug!(wait, "alert not due yet; put back"),
            JobOutcome::GaveUp(reason) => tracing::warn!(%reason, "alert given up"),
            JobOutcome::Skipped(why) => tracing::info!(why, "alert skipped"),
            JobOutcome::RetryLater(error) => {
                tracing::warn!(%error, "alert job failed before posting; it will be delivered again");
                failed.push(id);
            }
        }
    }
    if without_id > 0 {
        // A record without an id cannot be reported alone; claims keep the rest from posting twice.
        return Err(format!(
            "{without_id} of {total} SQS records had no message id; the batch will be retried"
        )
        .into());
    }
    if total > 0 && failed.len() == total {
        return Err(format!("all {total} alert jobs failed; the batch will be retried").into());
    }
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed);
    Ok(response)
}
