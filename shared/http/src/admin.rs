//! API-key routes: metrics, survey management and link minting.

use crate::insights::{ExportLimits, Insights};
use crate::respond::{json_response, HttpError, Request, Response};
use crate::routing::{buffered, buffered_within, into_axum, ChunkStream, HttpService};
use crate::snippet::{snippet_json, InvalidSnippetLinks, MergeTool, SnippetLinks};
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use http::{header, HeaderValue, StatusCode};
use serde::Deserialize;
use sondeo_domain::keys::ApiKeys;
use sondeo_domain::ports::{
    ConnectionStore, CounterReader, InvitationStore, ResponseReader, SuppressionList, SurveyStore,
};
use sondeo_domain::recipients::{
    added_columns, mint_csv, recipient_ids, BadRows, LinkColumns, Minter, RecipientsError,
};
use sondeo_domain::response::{check_respondent, check_send, suppression_id, Suppression};
use sondeo_domain::survey::Survey;
use sondeo_domain::time::now_ms;
use sondeo_domain::token::{LinkClaims, LinkKeyring, LinkScope, CAMPAIGN_RESPONDENT};
use std::sync::Arc;

/// Longest validity of a minted link, in days.
pub const MAX_LINK_DAYS: i64 = 365;
/// Validity of a minted link when none is asked for, in days.
pub const DEFAULT_LINK_DAYS: i64 = 30;
/// Most recipient rows in one `POST /v1/links/bulk`: with 11 score URLs a row, about 21 MB of
/// answer, streamed (Lambda streams up to 200 MB, the first 6 MB at full speed, then 2 MB/s).
pub const MAX_BULK_ROWS: u64 = 10_000;
/// Largest recipients CSV one `POST /v1/links/bulk` takes, in bytes (Lambda takes requests up
/// to 6 MB).
pub const BULK_BODY_BYTES: usize = 4 << 20;
/// Bytes of answer gathered before a chunk of the bulk answer is sent.
const BULK_CHUNK_BYTES: usize = 64 << 10;

/// Everything the API-key routes need.
pub struct AdminApp {
    /// Survey definitions.
    pub surveys: Arc<dyn SurveyStore>,
    /// Counter rows for metrics.
    pub counters: Arc<dyn CounterReader>,
    /// Keys allowed to call these routes.
    pub api_keys: ApiKeys,
    /// Link-signing keys, for minting links.
    pub keyring: LinkKeyring,
    /// Public base URL of the collect routes (derived from the request when unset).
    pub base_url: Option<String>,
    /// Respondents who unsubscribed.
    pub suppressions: Arc<dyn SuppressionList>,
    /// Store connections, their invitations, and where the webhook route is.
    pub orders: OrdersConfig,
    /// Stored responses by answer time (response pages, export, zoned metrics, dashboard).
    pub responses: Arc<dyn ResponseReader>,
    /// How much one CSV export request may stream.
    pub export_limits: ExportLimits,
    /// Alert rules (None: the `/v1/alerts` routes are not served).
    pub alerts: Option<AlertsConfig>,
    /// The response queue imports go through (None: `POST /v1/imports` is not served).
    pub imports: Option<Arc<dyn sondeo_domain::ports::ResponseQueue>>,
}

/// The alert part of the API: rules, and the private addresses they may target.
pub struct AlertsConfig {
    /// Alert rules and their secrets.
    pub rules: Arc<dyn sondeo_domain::ports::AlertRuleStore>,
    /// Private addresses rules may target (`SONDEO_ALERT_ALLOW_ADDRESSES`).
    pub allow: sondeo_domain::addresses::AddressAllowlist,
}

/// The post-order part of the API: connections and invitations.
pub struct OrdersConfig {
    /// Store connections and their secrets.
    pub connections: Arc<dyn ConnectionStore>,
    /// Invitations.
    pub invitations: Arc<dyn InvitationStore>,
    /// Base URL of the webhook route (derived from the request when unset).
    pub webhook_base_url: Option<String>,
}

/// The metrics function's routes: metrics, responses, surveys and link minting, each behind an
/// API key, and the dashboard (its own login).
pub fn routes(app: AdminApp) -> Router {
    let orders = crate::connections::routes(crate::connections::ConnectionsApi {
        connections: app.orders.connections.clone(),
        invitations: app.orders.invitations.clone(),
        surveys: app.surveys.clone(),
        webhook_base_url: app.orders.webhook_base_url.clone(),
    });
    let insights = Arc::new(Insights {
        surveys: app.surveys.clone(),
        counters: app.counters.clone(),
        responses: app.responses.clone(),
        export_limits: app.export_limits,
    });
    let dashboard = crate::dashboard::routes(Arc::new(crate::dashboard::DashboardApp {
        surveys: app.surveys.clone(),
        api_keys: app.api_keys.clone(),
        insights: insights.clone(),
    }));
    let alerts = app.alerts.as_ref().map(|a| {
        crate::alerts::routes(crate::alerts::AlertsApi {
            rules: a.rules.clone(),
            surveys: app.surveys.clone(),
            allow: a.allow.clone(),
        })
    });
    let imports = app.imports.as_ref().map(|queue| {
        crate::imports::routes(crate::imports::ImportsApi {
            surveys: app.surveys.clone(),
            queue: queue.clone(),
        })
    });
    let app = Arc::new(app);
    let keys = app.clone();
    let router = Router::new()
        .route("/v1/surveys", get(list_surveys).post(create_survey))
        .route("/v1/surveys/{id}", get(show_survey))
        .route("/v1/links", post(mint_link))
        .route("/v1/snippet", get(snippet))
        .route(
            "/v1/suppressions",
            get(list_suppressed).post(suppress).delete(unsuppress),
        )
        .route(
            "/v1/links/bulk",
            post(mint_bulk).layer(DefaultBodyLimit::max(BULK_BODY_BYTES)),
        )
        .with_state(app)
        .merge(orders)
        .merge(crate::insights::routes(insights));
    let router = match alerts {
        Some(alerts) => router.merge(alerts),
        None => router,
    };
    let router = match imports {
        Some(imports) => router.merge(imports),
        None => router,
    };
    router
        .route_layer(middleware::from_fn(move |req, next| {
            require_api_key(keys.clone(), req, next)
        }))
        .merge(dashboard)
}

/// The metrics function's finished router (shared layers, 404 fallback).
pub fn router(app: AdminApp) -> HttpService {
    crate::routing::finish(routes(app))
}

/// The error as JSON; a 401 also names the scheme to use.
fn render(result: Result<Response, HttpError>) -> axum::response::Response {
    into_axum(result.unwrap_or_else(|e| {
        let mut r = e.to_json();
        if e.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }))
}

/// Lets a request through only with a valid API key; answers 401 otherwise.
async fn require_api_key(
    app: Arc<AdminApp>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    match app.authorize(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => render(Err(e)),
    }
}

async fn list_surveys(State(app): State<Arc<AdminApp>>) -> axum::response::Response {
    render(
        app.surveys
            .list_surveys()
            .await
            .map_err(HttpError::from_store)
            .map(|list| json_response(StatusCode::OK, &serde_json::json!({ "surveys": list }))),
    )
}

async fn create_survey(
    State(app): State<Arc<AdminApp>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    render(async { app.create_survey(&buffered(req).await?).await }.await)
}

async fn show_survey(
    State(app): State<Arc<AdminApp>>,
    id: Result<Path<String>, PathRejection>,
) -> axum::response::Response {
    render(
        async {
            let Path(id) =
                id.map_err(|e| HttpError::bad_request("invalid_survey_id", e.body_text()))?;
            Ok(json_response(StatusCode::OK, &app.survey(&id).await?))
        }
        .await,
    )
}

async fn mint_link(
    State(app): State<Arc<AdminApp>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    render(async { app.links(&buffered(req).await?).await }.await)
}

async fn list_suppressed(State(app): State<Arc<AdminApp>>) -> axum::response::Response {
    render(
        app.suppressions
            .list_suppressed()
            .await
            .map_err(HttpError::from_store)
            .map(|list| {
                json_response(StatusCode::OK, &serde_json::json!({ "suppressions": list }))
            }),
    )
}

async fn suppress(
    State(app): State<Arc<AdminApp>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    render(
        async {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Add {
                respondent: String,
                via: Option<String>,
            }
            let add: Add = crate::respond::parse_json(&buffered(req).await?)?;
            check_respondent(&add.respondent)
                .map_err(|e| HttpError::unprocessable("invalid_respondent", e.0))?;
            let via = match add.via.as_deref() {
                None => "api",
                Some("cli") => "cli",
                Some(_) => {
                    return Err(HttpError::unprocessable(
                        "invalid_via",
                        "via is cli or left out",
                    ))
                }
            };
            let entry = Suppression {
                respondent: suppression_id(&add.respondent),
                at: now_ms(),
                via: via.into(),
            };
            app.suppressions
                .suppress(&entry)
                .await
                .map_err(HttpError::from_store)?;
            Ok(json_response(StatusCode::CREATED, &entry))
        }
        .await,
    )
}

async fn unsuppress(
    State(app): State<Arc<AdminApp>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    render(
        async {
            let req = buffered(req).await?;
            let params = crate::respond::query_params(&req)?;
            let respondent = params.get("respondent").ok_or_else(|| {
                HttpError::bad_request(
                    "missing_respondent",
                    "name the respondent to remove: DELETE /v1/suppressions?respondent=…",
                )
            })?;
            let removed = app
                .suppressions
                .unsuppress(respondent)
                .await
                .map_err(HttpError::from_store)?;
            if !removed {
                return Err(HttpError::not_found(
                    "not_suppressed",
                    "that respondent is not on the suppression list",
                ));
            }
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"removed": suppression_id(respondent)}),
            ))
        }
        .await,
    )
}

async fn snippet(
    State(app): State<Arc<AdminApp>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    render(async { app.snippet(&buffered(req).await?).await }.await)
}

async fn mint_bulk(
    State(app): State<Arc<AdminApp>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let answer = async {
        let req = buffered_within(req, BULK_BODY_BYTES).await?;
        app.bulk_links(&req).await
    };
    match answer.await {
        Ok(streamed) => streamed,
        Err(e) => render(Err(e)),
    }
}

impl AdminApp {
    async fn create_survey(&self, req: &Request) -> Result<Response, HttpError> {
        let survey: Survey = crate::respond::parse_json(req)?;
        survey
            .validate()
            .map_err(|e| HttpError::unprocessable("invalid_survey", e.0))?;
        self.surveys
            .create_survey(&survey)
            .await
            .map_err(HttpError::from_store)?;
        Ok(json_response(StatusCode::CREATED, &survey))
    }

    fn authorize(&self, h: &http::HeaderMap) -> Result<(), HttpError> {
        let given = h
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_credentials)
            .or_else(|| h.get("x-api-key").and_then(|v| v.to_str().ok()));
        match given {
            None => Err(HttpError::new(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "send an API key as 'Authorization: Bearer <key>'",
            )),
            Some(k) if self.api_keys.accepts(k.trim()) => Ok(()),
            Some(_) => Err(HttpError::new(
                StatusCode::UNAUTHORIZED,
                "bad_api_key",
                "that API key is not valid",
            )),
        }
    }

    async fn survey(&self, id: &str) -> Result<Survey, HttpError> {
        crate::insights::load_survey(self.surveys.as_ref(), id).await
    }

    /// The survey and touchpoint links are minted for, and their expiry (now + days), checked.
    async fn link_target(
        &self,
        survey: &str,
        touchpoint: &str,
        days: Option<i64>,
    ) -> Result<(Survey, i64, i64), HttpError> {
        let survey = self.survey(survey).await?;
        survey.require_touchpoint(touchpoint).map_err(|e| {
            // An API key reads the survey anyway: list its touchpoints.
            let known: Vec<&str> = survey.touchpoints.iter().map(|t| t.slug.as_str()).collect();
            HttpError::unprocessable(
                "unknown_touchpoint",
                format!("{e} (it has: {})", known.join(", ")),
            )
        })?;
        let days = days.unwrap_or(DEFAULT_LINK_DAYS);
        if !(1..=MAX_LINK_DAYS).contains(&days) {
            return Err(HttpError::unprocessable(
                "invalid_expiry",
                format!("expires_in_days must be 1 to {MAX_LINK_DAYS}"),
            ));
        }
        let now = now_ms() / 1000;
        Ok((survey, now, now + days * 86_400))
    }

    /// `GET /v1/snippet`: the email block for a survey touchpoint, with per-recipient token merge
    /// tags or a campaign link minted for it.
    async fn snippet(&self, req: &Request) -> Result<Response, HttpError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct SnippetQuery {
            survey: String,
            touchpoint: String,
            tool: Option<String>,
            mode: Option<String>,
            send: Option<String>,
            expires_in_days: Option<i64>,
        }
        let q: SnippetQuery =
            serde_urlencoded::from_str(req.uri().query().unwrap_or("")).map_err(|e| {
                HttpError::bad_request(
                    "invalid_query",
                    format!(
                        "{e}: pass survey, touchpoint and optionally tool (mailchimp, klaviyo, \
                         hubspot, brevo, plain), mode (token or campaign), send and \
                         expires_in_days"
                    ),
                )
            })?;
        let tool: MergeTool = q
            .tool
            .as_deref()
            .unwrap_or("plain")
            .parse()
            .map_err(|e: InvalidSnippetLinks| HttpError::unprocessable("invalid_tool", e.0))?;
        let (survey, issued_at, expires_at) = self
            .link_target(&q.survey, &q.touchpoint, q.expires_in_days)
            .await?;
        let base = crate::respond::base_url(self.base_url.as_deref(), req);
        let send = check_send_param(q.send)?;
        let invalid = |e: InvalidSnippetLinks| HttpError::unprocessable("invalid_snippet", e.0);
        let (links, extra) = match q.mode.as_deref().unwrap_or("token") {
            "token" => {
                if !send.is_empty() {
                    return Err(HttpError::unprocessable(
                        "send_in_token_mode",
                        "per-recipient tokens carry their send already: mint them with \
                         `sondeo links --send`, or use mode=campaign",
                    ));
                }
                (
                    SnippetLinks::per_recipient(&base, tool).map_err(invalid)?,
                    serde_json::json!({"token_field": tool.token_field()}),
                )
            }
            "campaign" => {
                let claims = LinkClaims {
                    survey: survey.id.clone(),
                    touchpoint: q.touchpoint.clone(),
                    respondent: CAMPAIGN_RESPONDENT.to_string(),
                    issued_at,
                    expires_at,
                };
                let token = self
                    .keyring
                    .sign_scoped(
                        &claims,
                        &LinkScope {
                            send: send.clone(),
                            campaign: true,
                        },
                    )
                    .map_err(|e| HttpError::unprocessable("unmintable", e.to_string()))?;
                (
                    SnippetLinks::campaign(&base, &token, tool).map_err(invalid)?,
                    serde_json::json!({"campaign_token": token, "expires_at": expires_at}),
                )
            }
            other => {
                return Err(HttpError::unprocessable(
                    "invalid_mode",
                    format!(
                        "mode '{}' is not known: use token or campaign",
                        sondeo_domain::survey::clip(other, 32)
                    ),
                ))
            }
        };
        let mut body = snippet_json(&survey, &links);
        if let (Some(out), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            out.extend(extra.clone());
            out.insert("tool".into(), tool.as_str().into());
            out.insert("send".into(), send.into());
        }
        Ok(json_response(StatusCode::OK, &body))
    }

    /// `POST /v1/links/bulk`: a recipients CSV in, the same rows with their links out, streamed
    /// as they are minted; a row that gets no links keeps its place with the reason in the
    /// `sondeo_error` column, and input columns named like the added ones are replaced by them.
    /// Everything that can refuse the whole file is checked first.
    async fn bulk_links(
        self: &Arc<Self>,
        req: &Request,
    ) -> Result<axum::response::Response, HttpError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct BulkQuery {
            survey: String,
            touchpoint: String,
            expires_in_days: Option<i64>,
            format: Option<String>,
            id_column: Option<String>,
            send: Option<String>,
        }
        let q: BulkQuery =
            serde_urlencoded::from_str(req.uri().query().unwrap_or("")).map_err(|e| {
                HttpError::bad_request(
                    "invalid_query",
                    format!(
                        "{e}: pass survey, touchpoint and optionally expires_in_days, \
                         format (urls or token), id_column and send"
                    ),
                )
            })?;
        let links = match q.format.as_deref() {
            None | Some("urls") => LinkColumns::Urls {
                base: crate::respond::base_url(self.base_url.as_deref(), req),
            },
            Some("token") => LinkColumns::Token,
            Some(other) => {
                return Err(HttpError::unprocessable(
                    "invalid_format",
                    format!(
                        "format '{}' is not known: use urls or token",
                        sondeo_domain::survey::clip(other, 32)
                    ),
                ))
            }
        };
        let send = check_send_param(q.send)?;
        let (survey, issued_at, expires_at) = self
            .link_target(&q.survey, &q.touchpoint, q.expires_in_days)
            .await?;
        let input = req.body().clone();
        // Input columns named like these are replaced by the fresh ones.
        let added = added_columns(&survey, &links, BadRows::Explain);
        let ids = recipient_ids(&input, q.id_column.as_deref(), &added, Some(MAX_BULK_ROWS))
            .map_err(|e| match e {
                RecipientsError::TooManyRows(_) => HttpError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_many_rows",
                    e.to_string(),
                ),
                e => HttpError::unprocessable("invalid_recipients", e.to_string()),
            })?;
        // Nothing is minted for a respondent who unsubscribed.
        let suppressed = self
            .suppressions
            .suppressed_among(&ids)
            .await
            .map_err(HttpError::from_store)?;
        let (chunks, body) = ChunkBody::channel();
        let app = Arc::clone(self);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _request = span.enter();
            let minter = Minter {
                keyring: &app.keyring,
                survey: &survey,
                touchpoint: &q.touchpoint,
                send,
                suppressed,
                issued_at,
                expires_at,
                links,
            };
            let mut out = chunks;
            let minted = mint_csv(
                &input,
                &mut out,
                &minter,
                q.id_column.as_deref(),
                BadRows::Explain,
                Some(MAX_BULK_ROWS),
                |_| {},
            );
            match minted {
                Ok(summary) => tracing::debug!(
                    survey = %survey.id,
                    minted = summary.minted,
                    rejected = summary.rejected,
                    "bulk links streamed"
                ),
                // The header was checked: only a client that went away ends here. The answer
                // is cut short, which the client sees as a failed transfer.
                Err(e) => {
                    tracing::warn!(survey = %survey.id, error = %e, "bulk links cut short");
                    out.fail(e.to_string());
                }
            }
        });
        let mut resp = axum::response::Response::new(axum::body::Body::new(body));
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(resp)
    }

    async fn links(&self, req: &Request) -> Result<Response, HttpError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct LinkRequest {
            survey: String,
            touchpoint: String,
            respondent: Option<String>,
            expires_in_days: Option<i64>,
            send: Option<String>,
            #[serde(default)]
            campaign: bool,
            rid: Option<String>,
        }
        let r: LinkRequest = crate::respond::parse_json(req)?;
        let (survey, issued_at, expires_at) = self
            .link_target(&r.survey, &r.touchpoint, r.expires_in_days)
            .await?;
        let scope = LinkScope {
            send: check_send_param(r.send)?,
            campaign: r.campaign,
        };
        let respondent = match (r.campaign, r.respondent) {
            (false, Some(respondent)) => {
                check_respondent(&respondent)
                    .map_err(|e| HttpError::unprocessable("invalid_respondent", e.0))?;
                respondent
            }
            (false, None) => {
                return Err(HttpError::unprocessable(
                    "missing_respondent",
                    "respondent is required (or campaign: true for one link whose respondent \
                     comes from the URL)",
                ))
            }
            (true, None) => CAMPAIGN_RESPONDENT.to_string(),
            (true, Some(_)) => return Err(HttpError::unprocessable(
                "campaign_with_respondent",
                "a campaign link takes its respondent from the URL (rid=); leave respondent out",
            )),
        };
        if r.rid.is_some() && !r.campaign {
            return Err(HttpError::unprocessable(
                "rid_without_campaign",
                "rid is the respondent placeholder of a campaign link: send campaign: true",
            ));
        }
        // Whoever unsubscribed gets no new links, one at a time as in a mail merge.
        if !r.campaign
            && !self
                .suppressions
                .suppressed_among(std::slice::from_ref(&respondent))
                .await
                .map_err(HttpError::from_store)?
                .is_empty()
        {
            return Err(HttpError::unprocessable(
                "suppressed",
                "this respondent unsubscribed (they are on the suppression list), so no links \
                 are minted for them; remove them from the list only if they asked to hear from \
                 you again",
            ));
        }
        let claims = LinkClaims {
            survey: survey.id.clone(),
            touchpoint: r.touchpoint,
            respondent,
            issued_at,
            expires_at,
        };
        let token = self
            .keyring
            .sign_scoped(&claims, &scope)
            .map_err(|e| HttpError::unprocessable("unmintable", e.to_string()))?;
        let base = crate::respond::base_url(self.base_url.as_deref(), req);
        let page = format!("{base}/r/{token}");
        // A campaign link's URLs end with the email tool's merge tag, left as it is for the
        // tool to fill in.
        let rid = r
            .campaign
            .then(|| format!("rid={}", r.rid.as_deref().unwrap_or("{rid}")));
        let page_url = match &rid {
            Some(rid) => format!("{page}?{rid}"),
            None => page.clone(),
        };
        let (min, max) = survey.kind.range();
        let links: Vec<serde_json::Value> = if survey.kind.is_discrete() {
            (min..=max)
                .map(|s| {
                    let url = match &rid {
                        Some(rid) => format!("{page}?score={s}&{rid}"),
                        None => format!("{page}?score={s}"),
                    };
                    serde_json::json!({"score": s, "url": url})
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(json_response(
            StatusCode::CREATED,
            &serde_json::json!({
                "token": token,
                "expires_at": claims.expires_at,
                "send": scope.send,
                "campaign": scope.campaign,
                "page": page_url,
                "links": links,
            }),
        ))
    }
}

/// A send name given to a minting route, checked (none: the default send).
fn check_send_param(send: Option<String>) -> Result<String, HttpError> {
    match send {
        None => Ok(String::new()),
        Some(send) => {
            check_send(&send).map_err(|e| HttpError::unprocessable("invalid_send", e.0))?;
            Ok(send)
        }
    }
}

/// The credentials of a `Bearer` authorization header; the scheme name is case-insensitive
/// (RFC 9110 §11.1) and may be followed by several spaces.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start())
}

/// The writing end of a streamed answer: what a blocking task writes goes out in chunks.
struct ChunkBody {
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChunkBody {
    /// A writer and the body it feeds; a few chunks may wait for a slow client.
    fn channel() -> (ChunkBody, ChunkStream) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        (
            ChunkBody {
                tx,
                buf: Vec::with_capacity(BULK_CHUNK_BYTES * 2),
            },
            ChunkStream::from(rx),
        )
    }

    /// Ends the answer with an error, so the client does not take a short answer for a whole one.
    fn fail(self, why: String) {
        let _ = self.tx.blocking_send(Err(std::io::Error::other(why)));
    }
}

impl std::io::Write for ChunkBody {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BULK_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(BULK_CHUNK_BYTES * 2));
        self.tx.blocking_send(Ok(chunk.into())).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_credentials;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in [
            "Bearer k1",
            "bearer k1",
            "BEARER k1",
            "BeArEr   k1",
            " Bearer k1",
        ] {
            assert_eq!(bearer_credentials(header), Some("k1"), "{header}");
        }
        for header in ["Basic k1", "Bearerk1", "Bearer", "Token k1"] {
            assert_eq!(bearer_credentials(header), None, "{header}");
        }
    }
}
