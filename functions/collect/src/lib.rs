//! `collect`: one-click link pages and their answers, and the submission API. The handler is
//! `sondeo_http::collect::CollectApp`, shared with local mode; this crate holds the function's
//! configuration ([`config::VARIABLES`] names every environment variable it reads).

pub mod config;
