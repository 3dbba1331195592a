//! Sondeo's AWS adapters: the DynamoDB store and ledger, the SQS queue, secrets from Secrets
//! Manager, SES mail and EventBridge schedules (feature `mail`), SDK and TLS configuration, and
//! the Lambda glue the functions share.

#![warn(missing_docs)]

pub mod alerts;
#[cfg(feature = "breaker")]
pub mod breaker;
pub mod dynamo;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "mail")]
pub mod scheduler;
pub mod sdk_error;
pub mod secrets;
#[cfg(feature = "mail")]
pub mod ses;
pub mod sqs;
pub mod tls;
