//! `mail`: sends post-order invitations and keeps the suppression list in step with SES.
//! Invoked by each invitation's one-time EventBridge schedule (`{"sondeo_invitation": ...}`:
//! the invitation is delivered through `sondeo_domain::invite::Courier`, once) and by the SNS
//! topic SES publishes bounces and complaints to (the addresses are suppressed). This crate holds
//! the function's configuration ([`config::VARIABLES`]) and its event handling ([`handler`]).

pub mod config;
pub mod handler;
