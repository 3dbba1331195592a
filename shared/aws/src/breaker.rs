//! The flood breaker's AWS adapter: reserved concurrency and a tag on each function, through the Lambda API.
use async_trait::async_trait;
use sondeo_domain::breaker::{BreakerError, GuardedFunctions};

/// The tag holding the alarm-state time (Unix ms) last applied to a function.
pub const APPLIED_TAG: &str = "sondeo:breaker-applied-ms";

fn aws_error(action: String, e: impl std::error::Error) -> BreakerError {
    BreakerError::Aws {
        action,
        message: aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
    }
}

/// Guarded functions switched through the Lambda API.
pub struct LambdaFunctions {
    client: aws_sdk_lambda::Client,
}

impl LambdaFunctions {
    /// Functions switched with this client.
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        LambdaFunctions { client }
    }
}

#[async_trait]
impl GuardedFunctions for LambdaFunctions {
    async fn reserve(&self, function_arn: &str, n: u32) -> Result<(), BreakerError> {
        let n = i32::try_from(n).map_err(|_| {
            BreakerError::Config(format!("reserved concurrency {n} is out of range"))
        })?;
        self.client
            .put_function_concurrency()
            .function_name(function_arn)
            .reserved_concurrent_executions(n)
            .send()
            .await
            .map_err(|e| aws_error(format!("reserving {n} for {function_arn}"), e))?;
        Ok(())
    }

    async fn unreserve(&self, function_arn: &str) -> Result<(), BreakerError> {
        self.client
            .delete_function_concurrency()
            .function_name(function_arn)
            .send()
            .await
            .map_err(|e| aws_error(format!("removing {function_arn}'s reservation"), e))?;
        Ok(())
    }

    async fn last_applied(&self, function_arn: &str) -> Result<Option<i64>, BreakerError> {
        let out = self
            .client
            .list_tags()
            .resource(function_arn)
            .send()
            .await
            .map_err(|e| aws_error(format!("reading {function_arn}'s tags"), e))?;
        Ok(out
            .tags()
            .and_then(|t| t.get(APPLIED_TAG))
            .and_then(|v| v.parse().ok()))
    }

    async fn record_applied(&self, function_arn: &str, at_ms: i64) -> Result<(), BreakerError> {
        self.client
            .tag_resource()
            .resource(function_arn)
            .tags(APPLIED_TAG, at_ms.to_string())
            .send()
            .await
            .map_err(|e| aws_error(format!("tagging {function_arn}"), e))?;
        Ok(())
    }
}
