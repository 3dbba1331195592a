//! Sondeo's domain: surveys, responses, signed link tokens, metric math, reports, the
//! exactly-once planner and the ports it talks to storage and queues through. No AWS, no SQLite,
//! no HTTP server: adapters live in `sondeo-aws` and `sondeo-embedded`, the HTTP edge in
//! `sondeo-http`.
//!
//! Imports run downward: `time`, `survey`, `addresses` and `mailbox` at the bottom; `response`, `metrics`,
//! `token`; `report`, `recipients`, `orders`, `alerts` and `explore`; `changes`; `ports`;
//! `aggregate`, `cache`, `breaker`, `invite`, `webhooks` and `alert_delivery` on top.

#![warn(missing_docs)]

pub mod addresses;
pub mod aggregate;
pub mod alert_delivery;
pub mod alerts;
pub mod breaker;
pub mod cache;
pub mod changes;
pub mod explore;
pub mod import;
pub mod invite;
pub mod keys;
pub mod mailbox;
pub mod metrics;
pub mod orders;
pub mod ports;
pub mod recipients;
pub mod report;
pub mod response;
pub mod settings;
pub mod survey;
pub mod time;
pub mod token;
pub mod webhooks;
