//! AWS SDK errors as storage errors: retryable for throttling, timeouts and server faults.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use sondeo_domain::ports::StoreError;

/// Maps an SDK error to a storage error, retryable for throttling, timeouts and server faults.
pub fn classify<E>(what: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = err.code().unwrap_or_default().to_string();
    let text = format!("{what}: {}", DisplayErrorContext(&err));
    let transient_codes = [
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "TransactionConflictException",
        "RequestThrottled",
        "ThrottlingError",
    ];
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Transient(text)
        }
        SdkError::ServiceError(_) if transient_codes.contains(&code.as_str()) => {
            StoreError::Transient(text)
        }
        SdkError::ServiceError(ctx) if ctx.raw().status().is_server_error() => {
            StoreError::Transient(text)
        }
        _ => StoreError::Permanent(text),
    }
}
