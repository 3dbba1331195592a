//! `webhooks`: store order webhooks (Shopify, WooCommerce, Stripe). The handler is
//! `sondeo_http::webhooks::WebhookApp`, shared with local mode; each verified order becomes at
//! most one invitation, put on EventBridge Scheduler for its due time. This crate holds the
//! function's configuration ([`config::VARIABLES`] names every environment variable it reads).

pub mod config;
