//! Respondent and submission routes: one-click link pages, their answers, and the submission API.

use crate::pages::html_error;
use crate::respond::{html_response, json_response, HttpError, Request, Response};
use crate::routing::{buffered, into_axum, BoxFuture, FastRoute, HttpService};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use http::HeaderMap;
use http::HeaderName;
use http::{header, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use sondeo_domain::ports::{ResponseQueue, SuppressionList, SurveyStore};
use sondeo_domain::response::{
    answer_stamp, check_respondent, clean_comment, clean_value, mask_respondent, ResponseEvent,
    Source, Suppression,
};
use sondeo_domain::survey::{check_slug, clip, Locale, Survey, MAX_SLUG_LEN};
use sondeo_domain::time::now_ms;
use sondeo_domain::token::{LinkClaims, LinkKeyring, LinkScope, TokenError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Everything the collect routes need.
pub struct CollectApp {
    /// Survey definitions (cached).
    pub surveys: Arc<dyn SurveyStore>,
    /// Where accepted responses go.
    pub queue: Arc<dyn ResponseQueue>,
    /// Link-signing keys.
    pub keyring: LinkKeyring,
    /// Origins allowed to call `POST /v1/responses` from a browser.
    pub allowed_origins: Vec<String>,
    /// Respondents who unsubscribed.
    pub suppressions: Arc<dyn SuppressionList>,
}

/// The collect function's routes: link pages and their answers, and the submission API with CORS.
pub fn routes(app: Arc<CollectApp>) -> Router {
    let origins = Arc::new(app.allowed_origins.clone());
    let allowed = origins.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin_allowed(&allowed, origin)
        }))
        .allow_methods([Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static("x-sondeo-key"),
        ])
        .max_age(Duration::from_secs(86_400));
    let submissions = post(submit)
        .options(|| async { StatusCode::NO_CONTENT })
        .fallback(|| async {
            into_axum(
                HttpError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "use POST to submit responses",
                )
                .to_json(),
            )
        })
        .route_layer(cors)
        .route_layer(middleware::from_fn(move |req, next| {
            refuse_foreign_origin(origins.clone(), req, next)
        }));
    Router::new()
        .route(
            "/r/{token}",
            get(link_page)
                .post(link_answer)
                .fallback(link_method_not_allowed),
        )
        .route(
            "/u/{token}",
            get(unsubscribe_page)
                .post(unsubscribe)
                .fallback(link_method_not_allowed),
        )
        .route("/v1/responses", submissions)
        .with_state(app)
}

/// The collect function's finished router (shared layers, 404 fallback, the click fast path).
pub fn router(app: CollectApp) -> HttpService {
    let app = Arc::new(app);
    crate::routing::finish_with(routes(app.clone()), Some(clicks(app)))
}

/// The one-click routes (`GET`/`POST /r/{token}`) served in front of the router.
pub fn clicks(app: Arc<CollectApp>) -> Arc<dyn FastRoute> {
    Arc::new(Clicks(app))
}

/// `GET`/`POST /r/{token}` for plain tokens (no escapes, no trailing slash): exactly what the
/// router's `/r/{token}` route does with them. Anything else (HEAD, other methods, escaped
/// or empty tokens) goes to the router.
struct Clicks(Arc<CollectApp>);

impl FastRoute for Clicks {
    fn pattern(&self) -> &'static str {
        "/r/{token}"
    }

    fn serves(&self, method: &Method, path: &str) -> bool {
        (method == Method::GET || method == Method::POST)
            && path
                .strip_prefix("/r/")
                .is_some_and(|t| !t.is_empty() && !t.contains(['/', '%']))
    }

    fn serve(self: Arc<Self>, req: axum::extract::Request) -> BoxFuture {
        Box::pin(async move {
            let action = if req.method() == Method::POST {
                LinkAction::Answer
            } else {
                LinkAction::Page
            };
            let token = req.uri().path()["/r/".len()..].to_string();
            link_route(&self.0, Ok(Path(token)), req, action).await
        })
    }
}

type LinkResult = Result<Response, (HttpError, Locale)>;

/// Renders a link route's outcome: its page, or the error as JSON or an HTML page in the survey's language.
fn render_link(result: LinkResult, wants_json: bool) -> axum::response::Response {
    into_axum(result.unwrap_or_else(|(e, locale)| {
        if wants_json {
            e.to_json()
        } else {
            html_error(&e, locale)
        }
    }))
}

/// What a link route does once its token and body are read.
#[derive(Clone, Copy)]
enum LinkAction {
    /// Show the answer page (GET/HEAD).
    Page,
    /// Record the answer (POST).
    Answer,
    /// Show the unsubscribe confirmation (GET/HEAD).
    UnsubscribePage,
    /// Put the respondent on the suppression list (POST, also RFC 8058 one-click).
    Unsubscribe,
}

async fn unsubscribe_page(
    State(app): State<Arc<CollectApp>>,
    token: Result<Path<String>, PathRejection>,
    req: axum::extract::Request,
) -> axum::response::Response {
    link_route(&app, token, req, LinkAction::UnsubscribePage).await
}

async fn unsubscribe(
    State(app): State<Arc<CollectApp>>,
    token: Result<Path<String>, PathRejection>,
    req: axum::extract::Request,
) -> axum::response::Response {
    link_route(&app, token, req, LinkAction::Unsubscribe).await
}

async fn link_page(
    State(app): State<Arc<CollectApp>>,
    token: Result<Path<String>, PathRejection>,
    req: axum::extract::Request,
) -> axum::response::Response {
    link_route(&app, token, req, LinkAction::Page).await
}

async fn link_answer(
    State(app): State<Arc<CollectApp>>,
    token: Result<Path<String>, PathRejection>,
    req: axum::extract::Request,
) -> axum::response::Response {
    link_route(&app, token, req, LinkAction::Answer).await
}

/// Reads a link request's token and body, runs `action`, and renders the outcome in the
/// respondent's language (or as JSON when asked).
async fn link_route(
    app: &CollectApp,
    token: Result<Path<String>, PathRejection>,
    req: axum::extract::Request,
    action: LinkAction,
) -> axum::response::Response {
    let locale = accept_locale(req.headers());
    let wants_json = crate::respond::wants_json(req.headers());
    let result = async {
        let Path(token) = token.map_err(|e| (bad_token_path(e), locale))?;
        let req = buffered(req).await.map_err(|e| (e, locale))?;
        match action {
            LinkAction::Page => app.link_page(&token, &req, locale).await,
            LinkAction::Answer => app.link_answer(&token, &req, locale).await,
            LinkAction::UnsubscribePage => app.unsubscribe_page(&token, &req, locale).await,
            LinkAction::Unsubscribe => app.unsubscribe(&token, &req, locale).await,
        }
    }
    .await;
    render_link(result, wants_json)
}

async fn link_method_not_allowed(headers: HeaderMap) -> axum::response::Response {
    let e = HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "use GET or POST on survey links",
    );
    render_link(
        Err((e, accept_locale(&headers))),
        crate::respond::wants_json(&headers),
    )
}

fn bad_token_path(e: PathRejection) -> HttpError {
    HttpError::bad_request(
        "invalid_token",
        format!(
            "this survey link is not valid: it was cut short or altered on the way ({})",
            match e {
                PathRejection::FailedToDeserializePathParams(_) => "characters a link never has",
                _ => "no token",
            }
        ),
    )
}

async fn submit(
    State(app): State<Arc<CollectApp>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let result = async {
        let req = buffered(req).await?;
        app.submit(&req).await
    }
    .await;
    into_axum(result.unwrap_or_else(|e| e.to_json()))
}

/// Whether a browser origin may call the submission API (case-insensitive; `*` allows any).
fn origin_allowed(allowed: &[String], origin: &HeaderValue) -> bool {
    let o = origin.to_str().unwrap_or("");
    allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
}

/// Refuses requests from browser origins that are not allowed: the browser would hide the
/// answer from the page, but the submission would still be recorded.
async fn refuse_foreign_origin(
    allowed: Arc<Vec<String>>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    match req.headers().get(header::ORIGIN) {
        Some(origin) if !origin_allowed(&allowed, origin) => into_axum(
            HttpError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                format!(
                    "origin '{}' is not allowed to submit responses",
                    clip(origin.to_str().unwrap_or(""), 100)
                ),
            )
            .to_json(),
        ),
        _ => next.run(req).await,
    }
}

impl CollectApp {
    async fn verified(
        &self,
        token: &str,
        locale: Locale,
    ) -> Result<(LinkClaims, LinkScope, Survey), (HttpError, Locale)> {
        let (claims, scope) = self
            .keyring
            .verify_scoped(token, now_ms() / 1000)
            .map_err(|e| (token_error(e), locale))?;
        let survey = self
            .claimed_survey(&claims)
            .await
            .map_err(|e| (e, locale))?;
        Ok((claims, scope, survey))
    }

    /// The survey a verified token names, if it still runs at the token's touchpoint.
    ///
    /// The answer is the same whether the survey or only the touchpoint has gone, and names
    /// neither: the token hides both from whoever holds the link. (Its page is in the
    /// requester's language in both cases: the survey's would tell that the survey exists.)
    async fn claimed_survey(&self, claims: &LinkClaims) -> Result<Survey, HttpError> {
        let closed = || HttpError::not_found("survey_closed", "this survey is no longer running");
        let survey = self
            .surveys
            .get_survey(&claims.survey)
            .await
            .map_err(HttpError::from_store)?
            .ok_or_else(closed)?;
        survey.touchpoint(&claims.touchpoint).ok_or_else(closed)?;
        Ok(survey)
    }

    /// The survey a public-key submission names, if `given` is its public key.
    ///
    /// Every refusal reads the same whether the survey does not exist, takes no public key, or
    /// has another one, so a caller without the key cannot tell which surveys exist or how they
    /// are set up.
    async fn keyed_survey(
        &self,
        survey_id: &str,
        given: Option<&str>,
    ) -> Result<Survey, HttpError> {
        let Some(given) = given else {
            return Err(HttpError::new(
                StatusCode::UNAUTHORIZED,
                "missing_key",
                "send the survey's public key in the X-Sondeo-Key header or the key field \
                 (a survey without one takes answers only through its signed links)",
            ));
        };
        // An id that cannot exist is not looked up (nor cached).
        let survey = match check_slug("survey", survey_id) {
            Ok(()) => self
                .surveys
                .get_survey(survey_id)
                .await
                .map_err(HttpError::from_store)?,
            Err(_) => None,
        };
        match survey {
            Some(survey)
                if survey.public_key.as_deref().is_some_and(|expected| {
                    sondeo_domain::keys::constant_time_eq(expected.as_bytes(), given.as_bytes())
                }) =>
            {
                Ok(survey)
            }
            _ => Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "wrong_key",
                format!(
                    "survey '{}' does not exist or does not take this key",
                    clip(survey_id, MAX_SLUG_LEN)
                ),
            )),
        }
    }

    /// The respondent and survey an unsubscribe link names (its expiry does not matter), or,
    /// for a campaign link, the page saying it unsubscribes nobody (`status`).
    async fn unsubscriber(
        &self,
        token: &str,
        rid: Option<&String>,
        locale: Locale,
        status: StatusCode,
        req: &Request,
    ) -> Result<Result<(String, LinkScope, Survey), Response>, (HttpError, Locale)> {
        let (claims, scope) = self
            .keyring
            .verify_ignoring_expiry(token)
            .map_err(|e| (token_error(e), locale))?;
        let survey = self
            .claimed_survey(&claims)
            .await
            .map_err(|e| (e, locale))?;
        // Anyone holding a campaign link can put any address in it: unsubscribing through it
        // would let one recipient unsubscribe a whole customer list. The email tool's own
        // unsubscribe link (which the campaign snippet uses) is the recipient's.
        if scope.campaign {
            return Ok(Err(if crate::respond::wants_json(req.headers()) {
                HttpError::new(
                    status,
                    "campaign_link",
                    "a campaign link is shared by every recipient, so it cannot unsubscribe \
                     anyone: use the unsubscribe link of the email tool that sent the email",
                )
                .to_json()
            } else {
                html_response(status, crate::pages::campaign_unsubscribe_page(&survey))
            }));
        }
        let (respondent, _) =
            link_respondent(&claims, &scope, rid).map_err(|e| (e, survey.locale))?;
        Ok(Ok((respondent, scope, survey)))
    }

    async fn unsubscribe_page(
        &self,
        token: &str,
        req: &Request,
        locale: Locale,
    ) -> Result<Response, (HttpError, Locale)> {
        let params = crate::respond::query_params(req).map_err(|e| (e, locale))?;
        let (respondent, scope, survey) = match self
            .unsubscriber(token, params.get("rid"), locale, StatusCode::OK, req)
            .await?
        {
            Ok(found) => found,
            Err(page) => return Ok(page),
        };
        Ok(html_response(
            StatusCode::OK,
            crate::pages::unsubscribe_page(&survey, &page_target(token, &scope, &respondent)),
        ))
    }

    async fn unsubscribe(
        &self,
        token: &str,
        req: &Request,
        locale: Locale,
    ) -> Result<Response, (HttpError, Locale)> {
        let query = crate::respond::query_params(req).map_err(|e| (e, locale))?;
        // RFC 8058: a mail client's one-click POST sends `List-Unsubscribe=One-Click`.
        let form = if req.body().is_empty() {
            BTreeMap::new()
        } else {
            crate::respond::parse_form(req).map_err(|e| (e, locale))?
        };
        let rid = form.get("rid").or_else(|| query.get("rid"));
        let (respondent, _, survey) = match self
            .unsubscriber(token, rid, locale, StatusCode::FORBIDDEN, req)
            .await?
        {
            Ok(found) => found,
            Err(page) => return Ok(page),
        };
        let via = if form.get("List-Unsubscribe").map(String::as_str) == Some("One-Click") {
            "one-click"
        } else {
            "link"
        };
        self.suppressions
            .suppress(&Suppression {
                respondent: sondeo_domain::response::suppression_id(&respondent),
                at: now_ms(),
                via: via.into(),
            })
            .await
            .map_err(|e| (HttpError::from_store(e), survey.locale))?;
        if crate::respond::wants_json(req.headers()) {
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "unsubscribed"}),
            ))
        } else {
            Ok(html_response(
                StatusCode::OK,
                crate::pages::unsubscribed_page(&survey),
            ))
        }
    }

    async fn link_page(
        &self,
        token: &str,
        req: &Request,
        locale: Locale,
    ) -> Result<Response, (HttpError, Locale)> {
        let (claims, scope, survey) = self.verified(token, locale).await?;
        let locale = survey.locale;
        let params = crate::respond::query_params(req).map_err(|e| (e, locale))?;
        let (respondent, source) =
            link_respondent(&claims, &scope, params.get("rid")).map_err(|e| (e, locale))?;
        let score = match params.get("score") {
            None => None,
            Some(raw) => {
                let score = crate::respond::parse_score(raw).map_err(|e| (e, locale))?;
                survey.kind.validate(score).map_err(|e| {
                    (
                        HttpError::bad_request("invalid_score", e.to_string()),
                        locale,
                    )
                })?;
                Some(score)
            }
        };
        // A click on a score in the email counts as a provisional answer: the aggregator sets
        // it aside when several scores of the same email arrive within seconds (a link scanner
        // opening every link), and an explicit answer from the page always beats it. HEAD
        // requests and prefetches record nothing.
        let mut recorded = true;
        if let Some(score) = score {
            if req.method() == Method::GET && !is_prefetch(req) {
                let event = new_event(
                    &survey,
                    &claims.touchpoint,
                    &respondent,
                    score,
                    None,
                    BTreeMap::new(),
                    source,
                    &scope.send,
                    true,
                );
                if let Err(e) = self.accept(&survey, &event).await {
                    // The page still shows, saying the answer is not recorded yet; its script
                    // and its Send button record it explicitly.
                    tracing::warn!(code = e.code, "click not recorded: {}", e.message);
                    recorded = false;
                }
            }
        }
        Ok(html_response(
            StatusCode::OK,
            crate::pages::answer_page(
                &survey,
                &page_target(token, &scope, &respondent),
                score,
                recorded,
            ),
        ))
    }

    async fn link_answer(
        &self,
        token: &str,
        req: &Request,
        locale: Locale,
    ) -> Result<Response, (HttpError, Locale)> {
        let (claims, scope, survey) = self.verified(token, locale).await?;
        let locale = survey.locale;
        if is_prefetch(req) {
            return Err((
                HttpError::new(
                    StatusCode::FORBIDDEN,
                    "prefetch",
                    "prefetch requests do not record answers",
                ),
                locale,
            ));
        }
        let fields: BTreeMap<String, String> = if crate::respond::is_json(req.headers()) {
            let v: BTreeMap<String, serde_json::Value> =
                crate::respond::parse_json(req).map_err(|e| (e, locale))?;
            v.into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        } else {
            crate::respond::parse_form(req).map_err(|e| (e, locale))?
        };
        let raw = fields.get("score").ok_or_else(|| {
            (
                HttpError::bad_request("missing_score", "please choose a score"),
                locale,
            )
        })?;
        let score = crate::respond::parse_score(raw).map_err(|e| (e, locale))?;
        // The page resending a click that could not be queued: still a click, which a scanner's
        // burst sets aside, not an explicit answer.
        let provisional = fields.get("provisional").is_some_and(|v| v == "1");
        let comment = fields.get("comment").cloned().filter(|_| !provisional);
        let query = crate::respond::query_params(req).map_err(|e| (e, locale))?;
        let rid = fields.get("rid").or_else(|| query.get("rid"));
        let (respondent, source) =
            link_respondent(&claims, &scope, rid).map_err(|e| (e, locale))?;
        let event = new_event(
            &survey,
            &claims.touchpoint,
            &respondent,
            score,
            comment,
            BTreeMap::new(),
            source,
            &scope.send,
            provisional,
        );
        self.accept(&survey, &event)
            .await
            .map_err(|e| (e, locale))?;
        if crate::respond::wants_json(req.headers()) {
            Ok(json_response(
                StatusCode::ACCEPTED,
                &serde_json::json!({"status": "recorded", "score": score}),
            ))
        } else {
            Ok(html_response(
                StatusCode::OK,
                crate::pages::thanks_page(&survey, score),
            ))
        }
    }

    async fn submit(&self, req: &Request) -> Result<Response, HttpError> {
        let sub = if crate::respond::is_json(req.headers()) {
            crate::respond::parse_json::<Submission>(req)?
        } else {
            Submission::from_form(crate::respond::parse_form(req)?)?
        };
        let score = match &sub.score {
            Some(serde_json::Value::Number(n)) => n.as_i64().ok_or_else(|| {
                HttpError::bad_request(
                    "invalid_score",
                    format!("score must be a whole number, not {n}"),
                )
            })?,
            Some(serde_json::Value::String(s)) => crate::respond::parse_score(s)?,
            Some(other) => {
                return Err(HttpError::bad_request(
                    "invalid_score",
                    format!("score must be a whole number, not {other}"),
                ))
            }
            None => return Err(HttpError::bad_request("missing_score", "score is required")),
        };
        let (survey, touchpoint, respondent, source, send) = match &sub.token {
            Some(token) => {
                let (c, scope) = self
                    .keyring
                    .verify_scoped(token, now_ms() / 1000)
                    .map_err(token_error)?;
                // Comparing given fields with the sealed ones would let whoever holds a link
                // test guesses at what its token hides (the respondent's email address, say):
                // a token comes alone.
                // A campaign link's respondent comes with the answer, as its URL's `rid` does.
                let respondent = if scope.campaign {
                    &None
                } else {
                    &sub.respondent
                };
                let named = [
                    ("survey", &sub.survey),
                    ("touchpoint", &sub.touchpoint),
                    ("respondent", respondent),
                ]
                .into_iter()
                .filter(|(_, v)| v.is_some())
                .map(|(name, _)| name)
                .collect::<Vec<_>>();
                if !named.is_empty() {
                    return Err(HttpError::bad_request(
                        "token_with_fields",
                        format!(
                            "a token already says which survey, touchpoint and respondent it answers for; send it without {}",
                            named.join(", ")
                        ),
                    ));
                }
                let survey = self.claimed_survey(&c).await?;
                let (respondent, source) = link_respondent(&c, &scope, sub.respondent.as_ref())?;
                (survey, c.touchpoint, respondent, source, scope.send)
            }
            None => {
                let need = |v: &Option<String>, name: &str| {
                    v.clone().ok_or_else(|| {
                        HttpError::bad_request("missing_field", format!("{name} is required"))
                    })
                };
                let survey_id = need(&sub.survey, "survey")?;
                let touchpoint = need(&sub.touchpoint, "touchpoint")?;
                let respondent = need(&sub.respondent, "respondent")?;
                let key = req
                    .headers()
                    .get("x-sondeo-key")
                    .and_then(|v| v.to_str().ok())
                    .or(sub.key.as_deref());
                let survey = self.keyed_survey(&survey_id, key).await?;
                (survey, touchpoint, respondent, Source::Api, String::new())
            }
        };
        let comment = sub.comment;
        let event = new_event(
            &survey,
            &touchpoint,
            &respondent,
            score,
            comment,
            sub.properties.unwrap_or_default(),
            source,
            &send,
            false,
        );
        self.accept(&survey, &event).await?;
        Ok(json_response(
            StatusCode::ACCEPTED,
            &serde_json::json!({"status": "accepted", "event_id": event.event_id}),
        ))
    }

    /// Validates an event against its survey and enqueues it.
    async fn accept(&self, survey: &Survey, event: &ResponseEvent) -> Result<(), HttpError> {
        event
            .validate_for(survey)
            .map_err(|e| HttpError::unprocessable("invalid_response", e.0))?;
        self.queue
            .enqueue(event)
            .await
            .map_err(HttpError::from_store)?;
        // Debug level: one line per answer would be the largest log cost at scale.
        tracing::debug!(
            survey = %event.survey, touchpoint = %event.touchpoint, respondent = %mask_respondent(&event.respondent),
            score = event.score, source = ?event.source, event_id = %event.event_id, "response accepted"
        );
        Ok(())
    }
}

/// A JSON or form submission to `POST /v1/responses`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    survey: Option<String>,
    touchpoint: Option<String>,
    respondent: Option<String>,
    score: Option<serde_json::Value>,
    comment: Option<String>,
    properties: Option<BTreeMap<String, String>>,
    token: Option<String>,
    key: Option<String>,
}

impl Submission {
    fn from_form(mut f: BTreeMap<String, String>) -> Result<Submission, HttpError> {
        let mut props = BTreeMap::new();
        for (k, v) in std::mem::take(&mut f) {
            match k.strip_prefix("properties.") {
                Some(name) => {
                    props.insert(name.to_string(), v);
                }
                None => {
                    f.insert(k, v);
                }
            }
        }
        let sub = Submission {
            survey: f.remove("survey"),
            touchpoint: f.remove("touchpoint"),
            respondent: f.remove("respondent"),
            score: f.remove("score").map(serde_json::Value::String),
            comment: f.remove("comment"),
            properties: Some(props),
            token: f.remove("token"),
            key: f.remove("key"),
        };
        if let Some(unknown) = f.keys().next() {
            return Err(HttpError::bad_request(
                "unknown_field",
                format!("unknown field '{}'", clip(unknown, 40)),
            ));
        }
        Ok(sub)
    }
}

/// The respondent a verified link answers for: the token's own, or a campaign link's `rid`.
fn link_respondent(
    claims: &LinkClaims,
    scope: &LinkScope,
    rid: Option<&String>,
) -> Result<(String, Source), HttpError> {
    if !scope.campaign {
        return Ok((claims.respondent.clone(), Source::Link));
    }
    let rid = rid
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            HttpError::bad_request(
                "missing_rid",
                "this campaign link needs the recipient's id in rid= (the email tool's merge tag \
             fills it in)",
            )
        })?;
    // A merge tag left as it is: a preview or test send, or a tool that does not know the tag.
    if ["*|", "|*", "{{", "}}", "{%", "%}", "[[", "]]", "%%"]
        .iter()
        .any(|tag| rid.contains(tag))
    {
        return Err(HttpError::bad_request(
            "unfilled_rid",
            "this link was not personalised: the email tool left its merge tag in place of the \
             recipient (a preview or test send?), so nothing is recorded",
        ));
    }
    // An email tool that puts an address in the URL unencoded turns its '+' into a space when
    // the query is read; an address cannot hold a space, so it was a '+'. Addresses are one
    // respondent whatever their letter case, as on the suppression list.
    let rid = if rid.contains('@') {
        sondeo_domain::mailbox::canonical_respondent(&rid.replace(' ', "+"))
    } else {
        rid.to_string()
    };
    check_respondent(&rid).map_err(|e| HttpError::bad_request("invalid_rid", e.0))?;
    Ok((rid, Source::Campaign))
}

/// What the page's form posts to: the token, and a campaign link's `rid`.
fn page_target(token: &str, scope: &LinkScope, respondent: &str) -> String {
    if scope.campaign {
        let rid = serde_urlencoded::to_string([("rid", respondent)]).unwrap_or_default();
        format!("{token}?{rid}")
    } else {
        token.to_string()
    }
}

#[allow(clippy::too_many_arguments)]
fn new_event(
    survey: &Survey,
    touchpoint: &str,
    respondent: &str,
    score: i64,
    comment: Option<String>,
    properties: BTreeMap<String, String>,
    source: Source,
    send: &str,
    click: bool,
) -> ResponseEvent {
    // Ordered after every answer this process accepted before: a later answer always wins.
    let (answered_at, event_id) = answer_stamp();
    ResponseEvent {
        event_id,
        survey: survey.id.clone(),
        touchpoint: touchpoint.to_string(),
        respondent: respondent.to_string(),
        kind: survey.kind,
        score,
        comment: comment.as_deref().and_then(clean_comment),
        properties: properties
            .into_iter()
            .map(|(k, v)| (k, clean_value(&v)))
            .collect(),
        answered_at,
        source,
        send: send.to_string(),
        click,
    }
}

fn token_error(e: TokenError) -> HttpError {
    let status = match e {
        TokenError::Expired => StatusCode::GONE,
        _ => StatusCode::BAD_REQUEST,
    };
    let code = match e {
        TokenError::Expired => "link_expired",
        TokenError::UnknownKey => "unknown_key",
        _ => "invalid_link",
    };
    HttpError::new(status, code, e.to_string())
}

/// Whether the browser marked the request as a speculative prefetch, prerender or link preview
/// (Safari's `X-Purpose: preview`), which must not record.
fn is_prefetch(req: &Request) -> bool {
    ["purpose", "sec-purpose", "x-moz", "x-purpose"]
        .iter()
        .any(|h| {
            req.headers()
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    let v = v.to_ascii_lowercase();
                    ["prefetch", "prerender", "preview"]
                        .iter()
                        .any(|p| v.contains(p))
                })
        })
}

/// The page language from Accept-Language, used before the survey is known.
fn accept_locale(headers: &HeaderMap) -> Locale {
    let lang = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if lang.trim_start().starts_with("es") {
        Locale::Es
    } else {
        Locale::En
    }
}
