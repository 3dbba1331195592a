//! API-key routes for alert rules: `GET /v1/alerts[?survey=]`, `POST /v1/alerts` (answers the
//! rule and its signing secret, the only time the secret leaves the store) and
//! `DELETE /v1/alerts/{id}`. The admin router mounts them behind its API-key check.

use crate::respond::{json_response, HttpError, Request, Response};
use crate::routing::{buffered, into_axum};
use axum::extract::{Path, State};
use axum::routing::{delete, get};
use axum::Router;
use http::StatusCode;
use serde::Deserialize;
use sondeo_domain::addresses::AddressAllowlist;
use sondeo_domain::alerts::{
    new_rule_id, AlertKind, AlertRule, AlertSecret, AlertTarget, MAX_RULES_PER_SURVEY,
};
use sondeo_domain::ports::{AlertRuleStore, SurveyStore};
use sondeo_domain::survey::clip;
use sondeo_domain::time::now_ms;
use std::sync::Arc;

/// What the alert routes need.
pub struct AlertsApi {
    /// Alert rules and their secrets.
    pub rules: Arc<dyn AlertRuleStore>,
    /// Survey definitions (a rule must name an existing survey and touchpoint).
    pub surveys: Arc<dyn SurveyStore>,
    /// Private addresses rules may target (`SONDEO_ALERT_ALLOW_ADDRESSES`).
    pub allow: AddressAllowlist,
}

/// The routes, without the API-key check (the admin router adds it).
pub fn routes(api: AlertsApi) -> Router {
    Router::new()
        .route("/v1/alerts", get(list).post(create))
        .route("/v1/alerts/{id}", delete(remove))
        .with_state(Arc::new(api))
}

async fn list(
    State(api): State<Arc<AlertsApi>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    answer(async { api.list(&buffered(req).await?).await }.await)
}

async fn create(
    State(api): State<Arc<AlertsApi>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    answer(async { api.create(&buffered(req).await?).await }.await)
}

async fn remove(
    State(api): State<Arc<AlertsApi>>,
    Path(id): Path<String>,
) -> axum::response::Response {
    answer(api.remove(&id).await)
}

fn answer(result: Result<Response, HttpError>) -> axum::response::Response {
    into_axum(result.unwrap_or_else(|e| e.to_json()))
}

/// The body of `POST /v1/alerts`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRule {
    survey: String,
    #[serde(default)]
    touchpoint: Option<String>,
    #[serde(default)]
    min_score: Option<i64>,
    #[serde(default)]
    max_score: Option<i64>,
    #[serde(default)]
    has_comment: Option<bool>,
    url: String,
    #[serde(default)]
    kind: AlertKind,
}

impl AlertsApi {
    /// `GET /v1/alerts?survey=`: rules without their secrets, ordered by id.
    async fn list(&self, req: &Request) -> Result<Response, HttpError> {
        let params = crate::respond::query_params(req)?;
        let rules = self
            .rules
            .list_alert_rules(params.get("survey").map(String::as_str))
            .await
            .map_err(HttpError::from_store)?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "alerts": rules }),
        ))
    }

    /// `POST /v1/alerts`: checks and stores a new rule with a fresh signing secret.
    async fn create(&self, req: &Request) -> Result<Response, HttpError> {
        let new: NewRule = crate::respond::parse_json(req)?;
        let survey = self
            .surveys
            .get_survey(&new.survey)
            .await
            .map_err(HttpError::from_store)?
            .ok_or_else(|| {
                HttpError::unprocessable(
                    "unknown_survey",
                    format!("survey '{}' does not exist", clip(&new.survey, 64)),
                )
            })?;
        let rule = AlertRule {
            id: new_rule_id(),
            survey: new.survey,
            touchpoint: new.touchpoint,
            min_score: new.min_score,
            max_score: new.max_score,
            has_comment: new.has_comment,
            target: AlertTarget {
                url: new.url,
                kind: new.kind,
            },
            created_at: now_ms(),
        };
        if let Some(t) = &rule.touchpoint {
            survey
                .require_touchpoint(t)
                .map_err(|e| HttpError::unprocessable("unknown_touchpoint", e))?;
        }
        rule.validate(&survey, &self.allow)
            .map_err(|e| HttpError::unprocessable(e.code(), e.to_string()))?;
        let existing = self
            .rules
            .list_alert_rules(Some(&survey.id))
            .await
            .map_err(HttpError::from_store)?;
        if existing.len() >= MAX_RULES_PER_SURVEY {
            return Err(HttpError::unprocessable(
                "too_many_rules",
                format!("a survey has at most {MAX_RULES_PER_SURVEY} alert rules"),
            ));
        }
        let secret = AlertSecret::generate();
        self.rules
            .put_alert_rule(&rule, &secret)
            .await
            .map_err(HttpError::from_store)?;
        tracing::info!(rule = %rule.id, survey = %rule.survey, "alert rule created");
        Ok(json_response(
            StatusCode::CREATED,
            &serde_json::json!({
                "alert": rule,
                "secret": secret.expose(),
                "note": "keep the secret: it signs every delivery (Sondeo-Signature) and is not shown again",
            }),
        ))
    }

    /// `DELETE /v1/alerts/{id}`.
    async fn remove(&self, id: &str) -> Result<Response, HttpError> {
        if !self
            .rules
            .delete_alert_rule(id)
            .await
            .map_err(HttpError::from_store)?
        {
            return Err(HttpError::not_found(
                "unknown_alert",
                format!("there is no alert rule '{}'", clip(id, 64)),
            ));
        }
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "removed": id }),
        ))
    }
}
