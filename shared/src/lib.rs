//! Sondeo's shared crate: the survey domain, metric math, signed link tokens, exactly-once
//! aggregation, the storage and queue ports, and their DynamoDB, SQS and embedded adapters.

#![warn(missing_docs)]

pub mod aggregate;
pub mod aws;
pub mod breaker;
pub mod cache;
pub mod config;
pub mod dynamo;
pub mod embedded;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod metrics;
pub mod ports;
pub mod report;
pub mod response;
pub mod sqs;
pub mod survey;
pub mod time;
pub mod token;
pub mod web;
