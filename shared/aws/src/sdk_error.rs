//! AWS SDK errors as storage errors: retryable for throttling, timeouts, server faults and
//! deployment faults (a missing table or a denied role), permanent only for the request itself.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use sondeo_domain::ports::StoreError;

/// Maps an SDK error to a storage error: permanent only when the request itself can never succeed.
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
        // The deployment, not the message, is wrong (missing table, denied role, bad credentials):
        // retrying succeeds once it is fixed, so these never mark a message as poison.
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "MissingAuthenticationTokenException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "IncompleteSignature",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "KMSThrottlingException",
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_smithy_types::body::SdkBody;

    fn service_error(code: &str, status: u16) -> StoreError {
        let err = TransactWriteItemsError::generic(ErrorMetadata::builder().code(code).build());
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        classify("commit", SdkError::service_error(err, raw))
    }

    #[test]
    fn only_a_request_that_can_never_succeed_is_permanent() {
        assert!(!service_error("ValidationException", 400).is_retryable());
        assert!(!service_error("SerializationException", 400).is_retryable());
        for code in [
            "ThrottlingException",
            "AccessDeniedException",
            "ResourceNotFoundException",
            "UnrecognizedClientException",
            "ExpiredTokenException",
        ] {
            assert!(service_error(code, 400).is_retryable(), "{code}");
        }
        assert!(service_error("Whatever", 503).is_retryable());
    }
}
