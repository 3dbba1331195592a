//! Local mode: every HTTP route and the aggregator in one process over embedded storage, plus
//! the API client the `sondeo` command uses locally and against a deployed stack.

pub mod bulk;
pub mod client;
pub mod head_check;
pub mod import;
pub mod local;
pub mod report;
pub mod server;
