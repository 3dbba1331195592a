//! `breaker`: the flood breaker, invoked by the flood alarms of `collect` and `metrics` (their
//! ALARM and OK actions) and every 5 minutes by a schedule. Each run reads the flood alarms'
//! current states and sets each function's reserved concurrency to match: the small
//! `FloodConcurrency` cap while its alarm is in ALARM (it keeps serving, at a bounded cost), its
//! `MaxConcurrency` cap or no reservation otherwise. See `sondeo_domain::breaker`;
//! [`config::VARIABLES`] names every environment variable the function reads.

pub mod config;
pub mod handler;
