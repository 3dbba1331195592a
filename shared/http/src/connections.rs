//! API-key routes for post-order surveys: store connections (`/v1/connections`: the secret goes
//! in, never out) and the invitations their orders made (`/v1/invitations`, addresses masked).
//! The admin router mounts them behind its API-key check.

use crate::respond::{json_response, HttpError, Request, Response};
use crate::routing::{buffered, into_axum};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use serde::Deserialize;
use sondeo_domain::orders::{Connection, InvitationCursor, Platform, WebhookSecret};
use sondeo_domain::ports::{ConnectionStore, InvitationStore, SurveyStore};
use sondeo_domain::survey::clip;
use std::sync::Arc;

/// Most invitations one `GET /v1/invitations` lists.
pub const MAX_INVITATIONS_LISTED: usize = 1000;

/// The fields `POST /v1/connections` takes: the connection's and its signing secret.
const CONNECTION_FIELDS: [&str; 8] = [
    "id",
    "platform",
    "survey",
    "touchpoint",
    "delay_minutes",
    "sender",
    "store_name",
    "secret",
];

/// What the connection and invitation routes need.
pub struct ConnectionsApi {
    /// Store connections and their secrets.
    pub connections: Arc<dyn ConnectionStore>,
    /// Invitations.
    pub invitations: Arc<dyn InvitationStore>,
    /// Survey definitions (a connection must name an existing survey and touchpoint).
    pub surveys: Arc<dyn SurveyStore>,
    /// Base URL of the webhook route (derived from the request when unset).
    pub webhook_base_url: Option<String>,
}

/// The routes, without the API-key check (the admin router adds it).
pub fn routes(api: ConnectionsApi) -> Router {
    Router::new()
        .route("/v1/connections", get(list).post(save).delete(remove))
        .route("/v1/invitations", get(invitations))
        .with_state(Arc::new(api))
}

async fn list(
    State(api): State<Arc<ConnectionsApi>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    answer(async { api.list(&buffered(req).await?).await }.await)
}

async fn save(
    State(api): State<Arc<ConnectionsApi>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    answer(async { api.save(&buffered(req).await?).await }.await)
}

async fn remove(
    State(api): State<Arc<ConnectionsApi>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    answer(async { api.remove(&buffered(req).await?).await }.await)
}

async fn invitations(
    State(api): State<Arc<ConnectionsApi>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    answer(async { api.invitations(&buffered(req).await?).await }.await)
}

fn answer(result: Result<Response, HttpError>) -> axum::response::Response {
    into_axum(result.unwrap_or_else(|e| e.to_json()))
}

impl ConnectionsApi {
    /// The connection as listed: its fields and the URL to paste into the platform.
    fn listed(&self, connection: &Connection, req: &Request) -> serde_json::Value {
        let base = crate::respond::base_url(self.webhook_base_url.as_deref(), req);
        let mut v = serde_json::to_value(connection).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert(
                "webhook_url".into(),
                format!(
                    "{base}/v1/webhooks/{}/{}",
                    connection.platform.as_str(),
                    connection.id
                )
                .into(),
            );
        }
        v
    }

    async fn list(&self, req: &Request) -> Result<Response, HttpError> {
        let list = self
            .connections
            .list_connections()
            .await
            .map_err(HttpError::from_store)?;
        let listed: Vec<serde_json::Value> = list.iter().map(|c| self.listed(c, req)).collect();
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "connections": listed }),
        ))
    }

    /// `POST /v1/connections`: creates or replaces a connection (the secret is required).
    async fn save(&self, req: &Request) -> Result<Response, HttpError> {
        let mut connection: serde_json::Map<String, serde_json::Value> =
            crate::respond::parse_json(req)?;
        if let Some(unknown) = connection
            .keys()
            .find(|k| !CONNECTION_FIELDS.contains(&k.as_str()))
        {
            return Err(HttpError::unprocessable(
                "invalid_connection",
                format!(
                    "unknown field `{}`: a connection has {}",
                    clip(unknown, 40),
                    CONNECTION_FIELDS.join(", ")
                ),
            ));
        }
        let secret =
            match connection.remove("secret") {
                Some(serde_json::Value::String(s)) => s,
                _ => return Err(HttpError::unprocessable(
                    "missing_secret",
                    "secret is required: the webhook signing secret from the platform's settings",
                )),
            };
        if let Some(serde_json::Value::String(p)) = connection.get("platform") {
            if Platform::parse(p).is_none() {
                return Err(HttpError::unprocessable(
                    "invalid_platform",
                    format!(
                        "platform '{}' is not known: use shopify, woocommerce or stripe",
                        clip(p, 32)
                    ),
                ));
            }
        }
        let connection: Connection = serde_json::from_value(serde_json::Value::Object(connection))
            .map_err(|e| HttpError::unprocessable("invalid_connection", e.to_string()))?;
        let connection = connection
            .normalized()
            .map_err(|e| HttpError::unprocessable("invalid_connection", e.0))?;
        let secret = WebhookSecret::new(secret)
            .map_err(|e| HttpError::unprocessable("invalid_secret", e.0))?;
        let survey = self
            .surveys
            .get_survey(&connection.survey)
            .await
            .map_err(HttpError::from_store)?
            .ok_or_else(|| {
                HttpError::unprocessable(
                    "unknown_survey",
                    format!("survey '{}' does not exist", connection.survey),
                )
            })?;
        survey
            .require_touchpoint(&connection.touchpoint)
            .map_err(|e| HttpError::unprocessable("unknown_touchpoint", e.to_string()))?;
        self.connections
            .put_connection(&connection, &secret)
            .await
            .map_err(HttpError::from_store)?;
        Ok(json_response(
            StatusCode::CREATED,
            &self.listed(&connection, req),
        ))
    }

    async fn remove(&self, req: &Request) -> Result<Response, HttpError> {
        let params = crate::respond::query_params(req)?;
        let id = params.get("id").ok_or_else(|| {
            HttpError::bad_request(
                "missing_id",
                "name the connection to remove: DELETE /v1/connections?id=…",
            )
        })?;
        if !self
            .connections
            .delete_connection(id)
            .await
            .map_err(HttpError::from_store)?
        {
            return Err(HttpError::not_found(
                "unknown_connection",
                format!("there is no connection '{}'", clip(id, 64)),
            ));
        }
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "removed": id }),
        ))
    }

    /// `GET /v1/invitations?connection=&limit=&cursor=`: newest first, addresses masked; when
    /// more follow, `next_cursor` names the next page (pass it back as `cursor`).
    async fn invitations(&self, req: &Request) -> Result<Response, HttpError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Query {
            connection: Option<String>,
            limit: Option<usize>,
            cursor: Option<String>,
        }
        let q: Query =
            serde_urlencoded::from_str(req.uri().query().unwrap_or("")).map_err(|e| {
                HttpError::bad_request(
                    "invalid_query",
                    format!(
                        "{e}: pass optionally connection, limit (1 to {MAX_INVITATIONS_LISTED}) \
                         and cursor (the next_cursor of the previous page)"
                    ),
                )
            })?;
        let limit = q.limit.unwrap_or(100);
        if !(1..=MAX_INVITATIONS_LISTED).contains(&limit) {
            return Err(HttpError::unprocessable(
                "invalid_limit",
                format!("limit must be 1 to {MAX_INVITATIONS_LISTED}"),
            ));
        }
        let after = q
            .cursor
            .as_deref()
            .map(InvitationCursor::decode)
            .transpose()
            .map_err(|e| HttpError::bad_request("invalid_cursor", e.to_string()))?;
        // One more than asked shows whether another page follows.
        let mut list = self
            .invitations
            .list_invitations(q.connection.as_deref(), after.as_ref(), limit + 1)
            .await
            .map_err(HttpError::from_store)?;
        let more = list.len() > limit;
        list.truncate(limit);
        let next_cursor = list
            .last()
            .filter(|_| more)
            .map(|last| InvitationCursor::after(last).encode());
        let listed: Vec<serde_json::Value> = list.iter().map(|i| i.listed()).collect();
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "invitations": listed, "next_cursor": next_cursor }),
        ))
    }
}
