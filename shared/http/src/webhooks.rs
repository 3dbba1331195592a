//! `POST /v1/webhooks/{platform}/{connection}`: a store's order webhook. The platform's
//! signature over the raw body is checked first (401 and nothing stored when it fails); a
//! verified order becomes at most one invitation (see `sondeo_domain::invite`).

use crate::respond::{json_response, HttpError, Request, Response};
use crate::routing::{buffered_within, into_axum, HttpService};
use axum::extract::{Path, State};
use axum::routing::post;
use axum::Router;
use http::StatusCode;
use sondeo_domain::invite::OrderDesk;
use sondeo_domain::orders::{mask_email, Admission, Platform};
use sondeo_domain::ports::{
    ConnectionStore, InvitationScheduler, InvitationStore, SuppressionList, SurveyStore,
};
use sondeo_domain::survey::clip;
use sondeo_domain::time::now_ms;
use sondeo_domain::webhooks::{verify_and_parse, WebhookOutcome};
use std::sync::Arc;

/// Largest webhook body taken, in bytes: 5 MiB, under the 6 MB a Lambda function URL takes (a
/// large Shopify order is a few hundred KB; a platform retries a refused delivery for days).
pub const WEBHOOK_BODY_BYTES: usize = 5 << 20;

/// Everything the webhook route needs.
pub struct WebhookApp {
    /// Store connections and their secrets.
    pub connections: Arc<dyn ConnectionStore>,
    /// Survey definitions.
    pub surveys: Arc<dyn SurveyStore>,
    /// Invitations and the frequency cap.
    pub invitations: Arc<dyn InvitationStore>,
    /// Addresses that unsubscribed.
    pub suppressions: Arc<dyn SuppressionList>,
    /// What puts invitations on the clock.
    pub scheduler: Arc<dyn InvitationScheduler>,
}

/// The webhook route.
pub fn routes(app: Arc<WebhookApp>) -> Router {
    Router::new()
        .route("/v1/webhooks/{platform}/{connection}", post(webhook))
        .layer(axum::extract::DefaultBodyLimit::max(WEBHOOK_BODY_BYTES))
        .with_state(app)
}

/// The webhook function's finished router (shared layers, 404 fallback).
pub fn router(app: WebhookApp) -> HttpService {
    crate::routing::finish(routes(Arc::new(app)))
}

async fn webhook(
    State(app): State<Arc<WebhookApp>>,
    Path((platform, connection)): Path<(String, String)>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let answer = async {
        let req = buffered_within(req, WEBHOOK_BODY_BYTES).await?;
        app.receive(&platform, &connection, &req).await
    };
    into_axum(answer.await.unwrap_or_else(|e| e.to_json()))
}

impl WebhookApp {
    async fn receive(
        &self,
        platform: &str,
        connection_id: &str,
        req: &Request,
    ) -> Result<Response, HttpError> {
        let unknown = || {
            HttpError::not_found(
                "unknown_connection",
                "no webhook connection at this address: check the URL `sondeo connections list` prints",
            )
        };
        let platform = Platform::parse(platform).ok_or_else(|| {
            HttpError::not_found(
                "unknown_platform",
                format!(
                    "platform '{}' is not known: use shopify, woocommerce or stripe",
                    clip(platform, 32)
                ),
            )
        })?;
        let (connection, secret) = self
            .connections
            .get_connection(connection_id)
            .await
            .map_err(HttpError::from_store)?
            .ok_or_else(unknown)?;
        if connection.platform != platform {
            return Err(unknown());
        }
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let outcome = verify_and_parse(
            platform,
            &secret,
            &header,
            req.body(),
            now_ms().div_euclid(1000),
        )
        .map_err(|e| {
            tracing::warn!(connection = %connection.id, code = e.code(), "webhook refused: {e}");
            HttpError::new(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                e.code(),
                e.to_string(),
            )
        })?;
        let order = match outcome {
            WebhookOutcome::Ping => {
                return Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({"ok": true, "ping": true}),
                ))
            }
            // Answered 200 so the platform does not retry: nothing here invites.
            WebhookOutcome::Ignored(why) => {
                return Ok(json_response(
                    StatusCode::OK,
                    &serde_json::json!({"ok": true, "ignored": why}),
                ))
            }
            WebhookOutcome::Order(order) => order,
        };
        let Some(survey) = self
            .surveys
            .get_survey(&connection.survey)
            .await
            .map_err(HttpError::from_store)?
        else {
            tracing::error!(connection = %connection.id, survey = %connection.survey, "webhook for a survey that no longer exists");
            return Ok(json_response(
                StatusCode::ACCEPTED,
                &serde_json::json!({"ok": true, "skipped": format!("the survey '{}' no longer exists", connection.survey)}),
            ));
        };
        let desk = OrderDesk {
            invitations: self.invitations.as_ref(),
            suppressions: self.suppressions.as_ref(),
            scheduler: self.scheduler.as_ref(),
        };
        let admission = desk
            .admit(&connection, &survey, &order, now_ms())
            .await
            .map_err(HttpError::from_store)?;
        let (status, outcome, invitation) = match admission {
            Admission::NoEmail(why) => {
                tracing::info!(connection = %connection.id, order = %order.order_id, delivery = ?order.delivery_id, "order without an email address: {why}");
                return Ok(json_response(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({"ok": true, "skipped": why, "order": order.order_id}),
                ));
            }
            Admission::Scheduled(i) => (StatusCode::OK, "scheduled", i),
            Admission::Skipped(i) => (StatusCode::OK, "skipped", i),
            Admission::Duplicate(i) => (StatusCode::OK, "duplicate", i),
        };
        tracing::info!(
            connection = %connection.id,
            order = %invitation.order,
            delivery = ?order.delivery_id,
            email = %mask_email(&invitation.email),
            outcome,
            "webhook order"
        );
        Ok(json_response(
            status,
            &serde_json::json!({"ok": true, "outcome": outcome, "invitation": invitation.listed()}),
        ))
    }
}
