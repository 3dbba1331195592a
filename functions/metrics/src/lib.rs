//! `metrics`: the API-key routes (metrics, surveys, link minting). The handler is
//! `sondeo_http::admin::AdminApp`, shared with local mode; this crate holds the function's
//! configuration ([`config::VARIABLES`] names every environment variable it reads).

pub mod config;
