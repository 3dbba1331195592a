//! `POST /v1/imports` (API key): past answers from another tool, in batches, with their original
//! answer times, through the response queue like live answers.
//!
//! Body: `{"survey": "nps", "rows": [{"id": "r1", "respondent": "ana@example.com",
//! "touchpoint": "support", "score": 9, "answered_at": 1710081000000}, ...]}` (at most
//! [`MAX_IMPORT_ROWS`] rows, [`IMPORT_BODY_BYTES`] bytes). Answer:
//! `{"accepted": n, "refused": [{"row": i, "reason": "..."}]}`, `row` counting from 0. A batch
//! that could not be enqueued whole is a 503: sending it again is safe (row identities are
//! deterministic, so a row enqueued twice counts once).

use crate::respond::{json_response, HttpError, Request, Response};
use crate::routing::{buffered_within, into_axum};
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::Router;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use sondeo_domain::import::{ImportRow, IMPORT_BODY_BYTES, MAX_IMPORT_ROWS};
use sondeo_domain::ports::{ResponseQueue, SurveyStore};
use sondeo_domain::survey::{check_slug, clip};
use sondeo_domain::time::now_ms;
use std::sync::Arc;

/// What the import route needs.
pub struct ImportsApi {
    /// Survey definitions.
    pub surveys: Arc<dyn SurveyStore>,
    /// The response queue the aggregator reads.
    pub queue: Arc<dyn ResponseQueue>,
}

/// The route, without the API-key check (the admin router adds it).
pub fn routes(api: ImportsApi) -> Router {
    Router::new()
        .route(
            "/v1/imports",
            post(import).layer(DefaultBodyLimit::max(IMPORT_BODY_BYTES)),
        )
        .with_state(Arc::new(api))
}

async fn import(
    State(api): State<Arc<ImportsApi>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let result = async {
        api.import(&buffered_within(req, IMPORT_BODY_BYTES).await?)
            .await
    }
    .await;
    into_axum(result.unwrap_or_else(|e| e.to_json()))
}

/// The body of `POST /v1/imports`; rows are read one by one so a malformed row is refused alone.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBatch {
    survey: String,
    rows: Vec<serde_json::Value>,
}

/// One refused row of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRow {
    /// Index of the row in the batch, from 0.
    pub row: usize,
    /// Why it was refused.
    pub reason: String,
}

/// The answer to `POST /v1/imports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOutcome {
    /// Rows enqueued.
    pub accepted: usize,
    /// Rows refused, with their reasons.
    pub refused: Vec<RefusedRow>,
}

impl ImportsApi {
    async fn import(&self, req: &Request) -> Result<Response, HttpError> {
        let batch: ImportBatch = crate::respond::parse_json(req)?;
        if batch.rows.len() > MAX_IMPORT_ROWS {
            return Err(HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_rows",
                format!(
                    "{} rows in one batch; the limit is {MAX_IMPORT_ROWS}",
                    batch.rows.len()
                ),
            ));
        }
        check_slug("survey", &batch.survey)
            .map_err(|m| HttpError::unprocessable("invalid_survey", m))?;
        let survey = self
            .surveys
            .get_survey(&batch.survey)
            .await
            .map_err(HttpError::from_store)?
            .ok_or_else(|| {
                HttpError::not_found(
                    "unknown_survey",
                    format!("no survey '{}'", clip(&batch.survey, 64)),
                )
            })?;
        let now = now_ms();
        let mut events = Vec::with_capacity(batch.rows.len());
        let mut refused = Vec::new();
        for (i, value) in batch.rows.into_iter().enumerate() {
            let event = serde_json::from_value::<ImportRow>(value)
                .map_err(|e| format!("malformed row: {e}"))
                .and_then(|row| row.to_event(&survey, now).map_err(|e| e.0));
            match event {
                Ok(e) => events.push(e),
                Err(reason) => refused.push(RefusedRow { row: i, reason }),
            }
        }
        self.queue
            .enqueue_batch(&events)
            .await
            .map_err(HttpError::from_store)?;
        // Debug level: a large import is thousands of batches.
        tracing::debug!(
            survey = %survey.id,
            accepted = events.len(),
            refused = refused.len(),
            "import batch enqueued"
        );
        Ok(json_response(
            StatusCode::OK,
            &ImportOutcome {
                accepted: events.len(),
                refused,
            },
        ))
    }
}
