//! `alerts`: the SQS consumer that posts alert jobs (answers matching an alert rule) to their
//! endpoints, signed, through the SSRF-safe outbound client, retrying with backoff. The handler
//! turns a batch into `sondeo_domain::alert_delivery::run_alert_job` calls and partial batch
//! failures; [`config::VARIABLES`] names every environment variable the function reads.

pub mod config;
pub mod handler;
