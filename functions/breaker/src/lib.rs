//! `breaker`: the flood breaker, invoked by the flood alarms of `collect` and `metrics`. On
//! ALARM it reserves 0 concurrency for the function (Lambda answers 429, nothing is billed); on
//! OK it restores the `MaxConcurrency` cap or removes the reservation. See `sondeo_domain::breaker`;
//! [`config::VARIABLES`] names every environment variable the function reads.

pub mod config;
pub mod handler;
