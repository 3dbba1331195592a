//! Sondeo's shared crate: the survey domain, metric math, signed link tokens, exactly-once
//! aggregation, the storage and queue ports, and their DynamoDB, SQS and embedded adapters.

pub mod aggregate;
pub mod dynamo;
pub mod embedded;
pub mod metrics;
pub mod ports;
pub mod response;
pub mod sqs;
pub mod survey;
pub mod time;
pub mod token;
