//! `aggregate`: the SQS consumer that applies response events to DynamoDB exactly once. The
//! handler turns a batch into `sondeo_domain::aggregate::apply_batch` and partial batch
//! failures; [`config::VARIABLES`] names every environment variable the function reads.

pub mod config;
pub mod handler;
