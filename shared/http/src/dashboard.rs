//! The dashboard: one HTML page of a survey's numbers behind the API key, served by the metrics
//! function and by local mode.
//!
//! - `GET /dashboard` shows the page to a browser holding a session cookie (or to a script sending
//!   `Authorization: Bearer <key>`), and a login form to anyone else.
//! - `POST /dashboard/login` takes the API key in the form body (never in a URL, so never in an
//!   access log), and sets `sondeo_session`: `HttpOnly; Secure; SameSite=Strict; Path=/dashboard`.
//!   The session token is an expiry and an HMAC keyed with the API key
//!   ([`ApiKeys::issue_session`]): it does not hold the key, and removing the key from the list
//!   ends its sessions.
//! - `POST /dashboard/logout` clears the cookie.
//!
//! The page has no script at all: the filters are a plain GET form, the charts are SVG drawn on
//! the server ([`crate::charts`]), and the Content-Security-Policy forbids scripts, external
//! resources and framing. Every piece of respondent or integrator text (comments, properties,
//! touchpoint names, the survey's question) goes through maud's escaping.

use crate::charts::{self, number, MixBucket, TrendPoint, ValueRange};
use crate::insights::{InsightQuery, InsightReport, Insights};
use crate::respond::HttpError;
use crate::routing::buffered;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use maud::{html, Markup, DOCTYPE};
use sondeo_domain::explore::{headline_value, Comparison, StoredResponse};
use sondeo_domain::keys::ApiKeys;
use sondeo_domain::metrics::Summary;
use sondeo_domain::ports::SurveyStore;
use sondeo_domain::report::GroupReport;
use sondeo_domain::survey::{JourneyStage, Survey, SurveyKind};
use sondeo_domain::time::now_ms;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sondeo_session";
/// How long a dashboard session lasts, in seconds (8 hours).
pub const SESSION_SECS: i64 = 8 * 3600;
/// Comments shown on the page.
pub const COMMENTS_SHOWN: usize = 20;
/// Touchpoints given their own trend chart (the rest are in the table).
pub const TOUCHPOINT_CHARTS: usize = 12;
/// The Content-Security-Policy of every dashboard answer: no script, nothing external.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'";
/// The query parameters the page reads (and keeps across a login).
pub const FILTER_PARAMS: [&str; 12] = [
    "survey",
    "from",
    "to",
    "bucket",
    "tz",
    "touchpoint",
    "stage",
    "segment",
    "send",
    "compare_from",
    "compare_to",
    "group_by",
];

/// Everything the dashboard needs.
pub struct DashboardApp {
    /// Survey definitions (the survey selector).
    pub surveys: Arc<dyn SurveyStore>,
    /// Keys that may open the dashboard.
    pub api_keys: ApiKeys,
    /// Reports and responses, as `/v1/metrics` and `/v1/responses` read them.
    pub insights: Arc<Insights>,
}

/// The dashboard's routes: `GET /dashboard`, `POST /dashboard/login`, `POST /dashboard/logout`.
/// They check the key themselves (a session cookie or a bearer key), so they are mounted outside
/// the API-key middleware.
pub fn routes(app: Arc<DashboardApp>) -> Router {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/login", post(login))
        .route("/dashboard/logout", post(logout))
        .with_state(app)
}

/// An HTML answer with the dashboard's security headers.
fn html_page(status: StatusCode, body: Markup) -> http::Response<Bytes> {
    let mut r = http::Response::new(Bytes::from(body.into_string()));
    *r.status_mut() = status;
    secure_headers(r.headers_mut());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// The headers every dashboard answer carries.
fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
}

/// A 303 to the dashboard (with the kept filters), optionally setting a cookie.
fn see_dashboard(query: &str, cookie: String) -> http::Response<Bytes> {
    let location = if query.is_empty() {
        "/dashboard".to_string()
    } else {
        format!("/dashboard?{query}")
    };
    let mut r = http::Response::new(Bytes::new());
    *r.status_mut() = StatusCode::SEE_OTHER;
    secure_headers(r.headers_mut());
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The `Set-Cookie` value of a session.
pub fn session_cookie(token: &str, max_age: i64) -> String {
    format!("{SESSION_COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/dashboard; Max-Age={max_age}")
}

/// The `Set-Cookie` value that ends a session.
fn cleared_cookie() -> String {
    session_cookie("", 0)
}

/// The session cookie's value, if the request has one.
fn session_from(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Who is asking: a valid session or bearer key, a stale session, or nobody.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    Granted,
    Expired,
    Anonymous,
}

fn access(keys: &ApiKeys, headers: &HeaderMap, now_s: i64) -> Access {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    if bearer.is_some_and(|k| keys.accepts(k)) {
        return Access::Granted;
    }
    match session_from(headers) {
        Some(token) if keys.verify_session(token, now_s) => Access::Granted,
        Some(_) => Access::Expired,
        None => Access::Anonymous,
    }
}

/// The kept filter parameters, in a fixed order, without empty values.
fn filter_params(pairs: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter(|(k, v)| FILTER_PARAMS.contains(&k.as_str()) && !v.trim().is_empty())
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect()
}

fn encode_params(p: &BTreeMap<String, String>) -> String {
    serde_urlencoded::to_string(p).unwrap_or_default()
}

async fn page(
    State(app): State<Arc<DashboardApp>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let raw = req.uri().query().unwrap_or("");
    let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(raw);
    let kept = filter_params(pairs.as_ref().cloned().unwrap_or_default());
    let resp = match access(&app.api_keys, req.headers(), now_ms() / 1000) {
        Access::Granted => match pairs {
            Ok(_) => app.dashboard(&kept).await,
            Err(_) => html_page(
                StatusCode::BAD_REQUEST,
                error_page("The query string is not valid URL encoding."),
            ),
        },
        Access::Expired => {
            let mut r = html_page(
                StatusCode::OK,
                login_page(
                    &encode_params(&kept),
                    Some("Your session has ended: log in again."),
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&cleared_cookie()) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Access::Anonymous => html_page(StatusCode::OK, login_page(&encode_params(&kept), None)),
    };
    crate::routing::into_axum(resp)
}

async fn login(
    State(app): State<Arc<DashboardApp>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let resp = match buffered(req)
        .await
        .and_then(|r| crate::respond::parse_form(&r))
    {
        Err(e) => html_page(e.status, login_page("", Some(&e.message))),
        Ok(form) => {
            let back = form
                .get("return")
                .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
                .map(filter_params)
                .map(|p| encode_params(&p))
                .unwrap_or_default();
            let key = form.get("key").map(|k| k.trim()).unwrap_or_default();
            let expires = now_ms() / 1000 + SESSION_SECS;
            match app.api_keys.issue_session(key, expires) {
                Some(token) => see_dashboard(&back, session_cookie(&token, SESSION_SECS)),
                None => html_page(
                    StatusCode::UNAUTHORIZED,
                    login_page(
                        &back,
                        Some("That API key is not valid. Use one of the keys in SONDEO_API_KEYS (local mode prints it) or the stack's API key secret."),
                    ),
                ),
            }
        }
    };
    crate::routing::into_axum(resp)
}

async fn logout() -> axum::response::Response {
    crate::routing::into_axum(see_dashboard("", cleared_cookie()))
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f5f6f8}
header{display:flex;align-items:center;justify-content:space-between;gap:8px;padding:10px 16px;background:#1f2937;color:#fff}
header h1{font-size:18px;margin:0}
header button{background:none;border:1px solid #9ca3af;color:#fff;border-radius:4px;padding:4px 10px;font:inherit}
main{max-width:1100px;margin:0 auto;padding:12px}
section{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:12px 14px;margin:12px 0}
h2{font-size:16px;margin:0 0 8px}
h3{font-size:14px;margin:0 0 4px;word-break:break-all}
form.filters{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px;align-items:end}
label{display:flex;flex-direction:column;font-size:12px;color:#555;gap:2px}
input,select,button{font:inherit;padding:5px 6px;border:1px solid #c5cad1;border-radius:4px;min-width:0;max-width:100%}
button.primary{background:#1f5fbf;color:#fff;border-color:#1f5fbf}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px}
.stages{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px}
.stage{border:1px solid #e3e6ea;border-radius:6px;padding:8px}
.stage.none{color:#888;background:#fafafa}
.big{font-size:34px;font-weight:700}
.muted{color:#666;font-size:13px}
.up{color:#1a7f37}.down{color:#c62828}.flat{color:#666}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #eee;vertical-align:top}
td.num,th.num{text-align:right;white-space:nowrap}
.scroll{overflow-x:auto;margin-bottom:10px}
svg.chart{display:block;max-width:720px}
.error{background:#fdecea;border-color:#f5c2c0;color:#7f1d1d}
ul.comments{list-style:none;margin:0;padding:0}
ul.comments li{border-bottom:1px solid #eee;padding:8px 0}
.score{display:inline-block;min-width:2em;text-align:center;border-radius:4px;padding:0 4px;color:#fff;font-weight:700;background:#555}
.score.promoter{background:#1a7f37}.score.passive{background:#b7950b}.score.detractor{background:#c62828}
.comment{margin:4px 0;white-space:pre-wrap;overflow-wrap:anywhere}
.props{margin:0;font-size:12px;color:#444;overflow-wrap:anywhere}
.props span{display:inline-block;background:#eef1f5;border-radius:3px;padding:0 5px;margin:2px 4px 0 0}
.legend span{margin-right:10px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:3px;vertical-align:middle}
.login{max-width:380px;margin:40px auto}
.login form{display:flex;flex-direction:column;gap:10px}
"#;

/// The page frame: head, inline style, the header (with logout when signed in).
fn shell(title: &str, signed_in: bool, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "Sondeo" }
                    @if signed_in {
                        form method="post" action="/dashboard/logout" {
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// The login form; `back` is the filter query to return to after logging in.
fn login_page(back: &str, message: Option<&str>) -> Markup {
    shell(
        "Sondeo dashboard: log in",
        false,
        html! {
            section class="login" {
                h2 { "Log in to the dashboard" }
                @if let Some(m) = message {
                    p class="error" role="alert" id="login-error" { (m) }
                }
                form method="post" action="/dashboard/login" {
                    label {
                        "API key"
                        input type="password" name="key" id="key" required autocomplete="current-password"
                            minlength="16";
                    }
                    input type="hidden" name="return" value=(back);
                    button class="primary" type="submit" id="login" { "Log in" }
                }
                p class="muted" {
                    "The key is sent in the request body only. The session lasts "
                    (SESSION_SECS / 3600) " hours and ends when the key is revoked."
                }
            }
        },
    )
}

fn error_page(message: &str) -> Markup {
    shell(
        "Sondeo dashboard",
        true,
        html! { section class="error" role="alert" id="query-error" { (message) } },
    )
}

/// The metric a survey kind is read by: its name in reports, and how the page labels it.
pub fn metric_of(kind: SurveyKind) -> (&'static str, &'static str) {
    match kind {
        SurveyKind::Nps => ("nps", "NPS"),
        SurveyKind::Csat => ("satisfied_pct", "% satisfied"),
        SurveyKind::Ces => ("agree_pct", "% agree"),
        SurveyKind::YesNo => ("yes_pct", "% yes"),
        SurveyKind::Likert5 | SurveyKind::Likert7 => ("mean", "mean score"),
        SurveyKind::Duration => ("mean", "mean seconds"),
    }
}

/// The 95% margin of error of a summary's headline metric: the NPS's own, a share's
/// 1.96·√(p(1−p)/n), or a mean's 1.96·sd/√n from the score distribution.
pub fn margin_of(kind: SurveyKind, s: &Summary) -> Option<f64> {
    let n = s.n as f64;
    let share = |pct: Option<f64>| {
        pct.filter(|_| s.n > 0).map(|pct| {
            let p = pct / 100.0;
            100.0 * 1.96 * (p * (1.0 - p) / n).sqrt()
        })
    };
    match kind {
        SurveyKind::Nps => s.margin_of_error,
        SurveyKind::Csat => share(s.satisfied_pct),
        SurveyKind::Ces => share(s.agree_pct),
        SurveyKind::YesNo => share(s.yes_pct),
        SurveyKind::Likert5 | SurveyKind::Likert7 => {
            let mean = s.mean?;
            if s.n < 2 {
                return None;
            }
            let ss: f64 = s
                .distribution
                .iter()
                .filter_map(|(score, c)| {
                    score
                        .parse::<f64>()
                        .ok()
                        .map(|v| *c as f64 * (v - mean).powi(2))
                })
                .sum();
            Some(1.96 * (ss / (n - 1.0)).sqrt() / n.sqrt())
        }
        SurveyKind::Duration => None,
    }
}

/// The value axis of a kind's trend charts.
fn value_range(kind: SurveyKind, groups: &[&GroupReport]) -> ValueRange {
    match kind {
        SurveyKind::Nps => ValueRange::new(-100.0, 100.0),
        SurveyKind::Csat | SurveyKind::Ces | SurveyKind::YesNo => ValueRange::new(0.0, 100.0),
        SurveyKind::Likert5 => ValueRange::new(1.0, 5.0),
        SurveyKind::Likert7 => ValueRange::new(1.0, 7.0),
        SurveyKind::Duration => {
            let top = groups
                .iter()
                .flat_map(|g| g.series.iter())
                .filter_map(|p| p.summary.mean)
                .fold(0.0f64, f64::max);
            ValueRange::new(0.0, (top * 1.1).max(1.0))
        }
    }
}

fn trend_points(kind: SurveyKind, g: &GroupReport) -> Vec<TrendPoint> {
    g.series
        .iter()
        .map(|p| TrendPoint {
            label: p.start.to_string(),
            value: headline_value(kind, &p.summary),
            margin: margin_of(kind, &p.summary),
            n: p.summary.n,
        })
        .collect()
}

/// The class of a score's badge (NPS categories).
fn score_class(kind: SurveyKind, score: i64) -> &'static str {
    match kind {
        SurveyKind::Nps if score >= 9 => "score promoter",
        SurveyKind::Nps if score >= 7 => "score passive",
        SurveyKind::Nps => "score detractor",
        _ => "score",
    }
}

/// The change against the previous period: an arrow, the difference, and whether it is beyond
/// the combined margin of error.
fn change(c: &Comparison) -> Markup {
    match c.difference {
        None => html! { span class="muted flat" title="no answers in one of the periods" { "–" } },
        Some(d) => {
            let (class, arrow) = if number(d) == "0" {
                ("flat", "→")
            } else if d > 0.0 {
                ("up", "▲")
            } else {
                ("down", "▼")
            };
            html! {
                span class=(class) data-difference=(d) {
                    (arrow) " " @if d > 0.0 { "+" } (number(d))
                }
                " "
                span class="muted" {
                    @match c.significant {
                        Some(true) => "beyond the margin of error",
                        Some(false) => "within the margin of error",
                        None => "",
                    }
                }
            }
        }
    }
}

/// One number with its margin and n.
fn metric_cell(kind: SurveyKind, s: &Summary) -> Markup {
    html! {
        @match headline_value(kind, s) {
            Some(v) => {
                (number(v))
                @if let Some(m) = margin_of(kind, s) { span class="muted" { " ± " (number(m)) } }
            }
            None => span class="muted" { "–" },
        }
    }
}

struct PageData<'a> {
    survey: &'a Survey,
    surveys: &'a [Survey],
    params: &'a BTreeMap<String, String>,
    report: &'a InsightReport,
    comments: &'a [StoredResponse],
    zone: &'a sondeo_domain::explore::Zone,
}

impl DashboardApp {
    async fn dashboard(&self, kept: &BTreeMap<String, String>) -> http::Response<Bytes> {
        let surveys = match self.surveys.list_surveys().await {
            Ok(s) => s,
            Err(e) => {
                let e = HttpError::from_store(e);
                return html_page(e.status, error_page(&e.message));
            }
        };
        let chosen = kept
            .get("survey")
            .cloned()
            .or_else(|| surveys.first().map(|s| s.id.clone()));
        let Some(id) = chosen else {
            return html_page(
                StatusCode::OK,
                shell(
                    "Sondeo dashboard",
                    true,
                    html! {
                        section id="no-survey" {
                            h2 { "No survey yet" }
                            p { "Create one with POST /v1/surveys (or `sondeo survey create` locally); its numbers show here." }
                        }
                    },
                ),
            );
        };
        let survey = match surveys.iter().find(|s| s.id == id) {
            Some(s) => s,
            None => {
                return self.problem(
                    &surveys,
                    None,
                    kept,
                    HttpError::not_found("unknown_survey", format!("There is no survey '{id}'.")),
                )
            }
        };
        let mut params = kept.clone();
        if !params.contains_key("compare_from") && !params.contains_key("compare_to") {
            params.insert("compare".into(), "previous".into());
        }
        let q = match InsightQuery::from_params(&params, survey) {
            Ok(q) => q,
            Err(e) => return self.problem(&surveys, Some(survey), kept, e),
        };
        let mut commented = q.clone();
        commented.filter.has_comment = Some(true);
        let (report, comments) = tokio::join!(
            self.insights.report(survey, &q),
            self.insights
                .responses(survey, &commented, None, COMMENTS_SHOWN)
        );
        let (report, comments) = match (report, comments) {
            (Ok(r), Ok(c)) => (r, c),
            (Err(e), _) | (_, Err(e)) => return self.problem(&surveys, Some(survey), kept, e),
        };
        let mut shown = kept.clone();
        shown.insert("from".into(), q.from.to_string());
        shown.insert("to".into(), q.to.to_string());
        shown.insert("tz".into(), q.zone.name().to_string());
        shown.insert("bucket".into(), bucket_name(&report).to_string());
        html_page(
            StatusCode::OK,
            render(&PageData {
                survey,
                surveys: &surveys,
                params: &shown,
                report: &report,
                comments: &comments.responses,
                zone: &q.zone,
            }),
        )
    }

    /// The page with the filters and an error message instead of numbers.
    fn problem(
        &self,
        surveys: &[Survey],
        survey: Option<&Survey>,
        kept: &BTreeMap<String, String>,
        e: HttpError,
    ) -> http::Response<Bytes> {
        html_page(
            e.status,
            shell(
                "Sondeo dashboard",
                true,
                html! {
                    (filters(surveys, survey, kept))
                    section class="error" role="alert" id="query-error" { (e.message) }
                },
            ),
        )
    }
}

fn bucket_name(r: &InsightReport) -> &'static str {
    match r.report.bucket {
        sondeo_domain::time::Bucket::Day => "day",
        sondeo_domain::time::Bucket::Week => "week",
        sondeo_domain::time::Bucket::Month => "month",
    }
}

/// The filter form: a plain GET to `/dashboard`.
fn filters(surveys: &[Survey], survey: Option<&Survey>, p: &BTreeMap<String, String>) -> Markup {
    let val = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    html! {
        section {
            form class="filters" method="get" action="/dashboard" id="filters" {
                label { "Survey"
                    select name="survey" {
                        @for s in surveys {
                            option value=(s.id) selected[survey.is_some_and(|x| x.id == s.id)] { (s.id) }
                        }
                    }
                }
                label { "From" input type="date" name="from" value=(val("from")); }
                label { "To" input type="date" name="to" value=(val("to")); }
                label { "Bucket"
                    select name="bucket" {
                        @for b in ["day", "week", "month"] {
                            option value=(b) selected[val("bucket") == b] { (b) }
                        }
                    }
                }
                label { "Time zone" input type="text" name="tz" value=(val("tz")) placeholder="UTC" list="zones"; }
                label { "Touchpoint"
                    select name="touchpoint" {
                        option value="" { "all" }
                        @if let Some(s) = survey {
                            @for t in &s.touchpoints {
                                option value=(t.slug) selected[val("touchpoint") == t.slug] { (t.slug) }
                            }
                        }
                    }
                }
                label { "Stage"
                    select name="stage" {
                        option value="" { "all" }
                        @for st in JourneyStage::ALL {
                            option value=(st.as_str()) selected[val("stage") == st.as_str()] { (st.as_str()) }
                        }
                    }
                }
                label { "Segment"
                    input type="text" name="segment" value=(val("segment")) placeholder="plan:pro,country:FR";
                }
                label { "Break down by"
                    input type="text" name="group_by" value=(val("group_by")) placeholder="property, e.g. plan";
                }
                button class="primary" type="submit" { "Apply" }
            }
        }
    }
}

fn render(d: &PageData<'_>) -> Markup {
    let kind = d.survey.kind;
    let r = &d.report.report;
    let (metric, label) = metric_of(kind);
    let total = &r.overall.total;
    let groups: Vec<&GroupReport> = std::iter::once(&r.overall)
        .chain(r.touchpoints.values())
        .collect();
    let range = value_range(kind, &groups);
    let comparison = d.report.comparison.as_ref();
    let title = format!("Sondeo dashboard: {}", d.survey.id);
    shell(
        &title,
        true,
        html! {
            (filters(d.surveys, Some(d.survey), d.params))
            section id="headline" {
                h2 { (d.survey.id) }
                p class="muted" id="question" { (d.survey.question) }
                div class="grid" {
                    div {
                        div class="muted" { (label) ", " (r.from.to_string()) " to " (r.to.to_string()) " (" (d.report.time_zone) ")" }
                        div class="big" data-metric=(metric) data-value=[headline_value(kind, total)] id="headline-value" {
                            @match headline_value(kind, total) {
                                Some(v) => (number(v)),
                                None => "–",
                            }
                        }
                        div {
                            @if let Some(m) = margin_of(kind, total) {
                                span data-margin=(m) { "± " (number(m)) } " · "
                            }
                            span data-n=(total.n) id="headline-n" { "n = " (total.n) }
                            @if total.automated > 0 {
                                span class="muted" { " · " (total.automated) " set aside as automated" }
                            }
                        }
                        @if let Some(c) = comparison {
                            div id="comparison" {
                                @if c.overall.difference.is_some() {
                                    (change(&c.overall)) " "
                                    span class="muted" { "vs the previous period, " (c.from.to_string()) " to " (c.to.to_string()) " (n = " (c.overall.previous.n) ")" }
                                } @else {
                                    span class="muted" { "No answers to compare with in the previous period, " (c.from.to_string()) " to " (c.to.to_string()) "." }
                                }
                            }
                        }
                    }
                    @if kind == SurveyKind::Nps {
                        div {
                            table {
                                tr { th { "Promoters (9–10)" } td class="num" data-count="promoters" { (total.promoters.unwrap_or(0)) } }
                                tr { th { "Passives (7–8)" } td class="num" data-count="passives" { (total.passives.unwrap_or(0)) } }
                                tr { th { "Detractors (0–6)" } td class="num" data-count="detractors" { (total.detractors.unwrap_or(0)) } }
                            }
                        }
                    }
                }
            }
            section id="trend" {
                h2 { (label) " trend, with its 95% margin of error" }
                (charts::trend_chart("trend-chart", &format!("{label} per {} for the whole survey", bucket_name(d.report)), label, &trend_points(kind, &r.overall), range))
            }
            section id="mix" {
                @if kind == SurveyKind::Nps {
                    h2 { "Promoters, passives and detractors per " (bucket_name(d.report)) }
                    p class="legend" {
                        span { i style=(format!("background:{}", charts::MIX_COLOURS[0])) {} "promoters" }
                        span { i style=(format!("background:{}", charts::MIX_COLOURS[1])) {} "passives" }
                        span { i style=(format!("background:{}", charts::MIX_COLOURS[2])) {} "detractors" }
                    }
                    (charts::mix_chart("mix-chart", "Promoters, passives and detractors per bucket", &r.overall.series.iter().map(|p| MixBucket {
                        label: p.start.to_string(),
                        promoters: p.summary.promoters.unwrap_or(0),
                        passives: p.summary.passives.unwrap_or(0),
                        detractors: p.summary.detractors.unwrap_or(0),
                    }).collect::<Vec<_>>()))
                } @else {
                    h2 { "Answers per " (bucket_name(d.report)) }
                    (charts::bar_chart("mix-chart", "Answers per bucket", &r.overall.series.iter().map(|p| (p.start.to_string(), p.summary.n)).collect::<Vec<_>>(), "#1f5fbf"))
                }
                h2 { "Score distribution" }
                (charts::bar_chart("distribution-chart", "Answers per score", &distribution(kind, total), "#6b7280"))
            }
            section id="stages" {
                h2 { "Journey stages" }
                div class="stages" {
                    @for stage in JourneyStage::ALL {
                        @let tps: Vec<&str> = d.survey.touchpoints.iter().filter(|t| t.stage == Some(stage)).map(|t| t.slug.as_str()).collect();
                        @let g = r.stages.get(stage.as_str());
                        div class=(if tps.is_empty() { "stage none" } else { "stage" }) data-stage=(stage.as_str()) {
                            h3 { (stage.as_str()) }
                            @match g {
                                Some(g) => {
                                    div class="big" style="font-size:24px" data-value=[headline_value(kind, &g.total)] { (metric_cell(kind, &g.total)) }
                                    div class="muted" { "n = " (g.total.n) }
                                    @if let Some(c) = comparison.and_then(|c| c.stages.get(stage.as_str())).filter(|c| c.difference.is_some()) { div { (change(c)) } }
                                }
                                None => div class="muted" { @if tps.is_empty() { "no touchpoint" } @else { "no answers" } },
                            }
                            @if !tps.is_empty() { div class="muted" { (tps.join(", ")) } }
                        }
                    }
                }
            }
            @if let Some(seg) = &d.report.segments {
                section id="segments" {
                    h2 { (label) " by " (seg.property) }
                    div class="scroll" {
                        table {
                            thead { tr { th { (seg.property) } th class="num" { (label) } th class="num" { "n" } } }
                            tbody {
                                @for (value, g) in &seg.groups {
                                    tr class="segment" {
                                        td class="segment-value" { (value) }
                                        td class="num" data-value=[headline_value(kind, &g.total)] { (metric_cell(kind, &g.total)) }
                                        td class="num" { (g.total.n) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section id="touchpoints" {
                h2 { "Touchpoints" }
                div class="scroll" {
                    table {
                        thead { tr { th { "Touchpoint" } th { "Stage" } th class="num" { (label) } th class="num" { "n" } th title="change against the previous period" { "Δ prev." } } }
                        tbody {
                            @for (tp, g) in &r.touchpoints {
                                tr data-touchpoint=(tp) {
                                    td { (tp) }
                                    td { (g.stage.map(|s| s.as_str()).unwrap_or("–")) }
                                    td class="num" data-value=[headline_value(kind, &g.total)] { (metric_cell(kind, &g.total)) }
                                    td class="num" { (g.total.n) }
                                    td { @if let Some(c) = comparison.and_then(|c| c.touchpoints.get(tp)) { (change(c)) } }
                                }
                            }
                        }
                    }
                }
                div class="grid" {
                    @for (i, (tp, g)) in r.touchpoints.iter().filter(|(_, g)| g.total.n > 0).take(TOUCHPOINT_CHARTS).enumerate() {
                        div class="touchpoint-trend" data-touchpoint=(tp) {
                            h3 { (tp) }
                            (charts::trend_chart(&format!("trend-touchpoint-{i}"), &format!("{label} per bucket at {tp}"), label, &trend_points(kind, g), range))
                        }
                    }
                }
            }
            section id="comments" {
                h2 { "Latest comments" }
                @if d.comments.is_empty() {
                    p class="muted" { "No comments in this range." }
                }
                ul class="comments" {
                    @for c in d.comments {
                        li class="comment-item" {
                            span class=(score_class(kind, c.event.score)) { (c.event.score) } " "
                            strong class="touchpoint" { (c.event.touchpoint) } " "
                            span class="muted" { (short_time(&d.zone.local_time(c.event.answered_at))) }
                            @if c.automated { span class="muted" { " · set aside as automated" } }
                            p class="comment" { (c.event.comment.as_deref().unwrap_or("")) }
                            @if !c.event.properties.is_empty() {
                                p class="props" {
                                    @for (k, v) in &c.event.properties {
                                        span class="prop" { (k) ": " (v) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// `2026-12-02T11:25:46+01:00` as `2026-12-02 11:25 +01:00` (unchanged if it is not that shape).
fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(0..10), rfc3339.get(11..16), rfc3339.get(19..)) {
        (Some(day), Some(hm), Some(offset)) if rfc3339.len() >= 25 => {
            format!("{day} {hm} {offset}")
        }
        _ => rfc3339.to_string(),
    }
}

/// Answers per score of a summary, in score order (log-scale buckets for durations).
fn distribution(kind: SurveyKind, s: &Summary) -> Vec<(String, i64)> {
    let mut bars: Vec<(i64, String, i64)> = s
        .distribution
        .iter()
        .map(|(k, c)| (k.parse::<i64>().unwrap_or(i64::MAX), k.clone(), *c))
        .collect();
    if kind != SurveyKind::Duration {
        let (lo, hi) = kind.range();
        for score in lo..=hi {
            if !bars.iter().any(|b| b.0 == score) {
                bars.push((score, score.to_string(), 0));
            }
        }
    }
    bars.sort();
    bars.into_iter().map(|(_, k, c)| (k, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use sondeo_domain::explore::ResponseCursor;
    use sondeo_domain::ports::{CounterReader, ResponseReader, StoreError};
    use sondeo_domain::report::CounterRow;
    use sondeo_domain::time::Day;
    use tower::ServiceExt;

    const KEY: &str = "0123456789abcdef-dash";

    #[derive(Default)]
    struct Stub {
        surveys: Vec<Survey>,
        rows: Vec<CounterRow>,
        responses: Vec<StoredResponse>,
    }

    #[async_trait]
    impl SurveyStore for Stub {
        async fn get_survey(&self, id: &str) -> Result<Option<Survey>, StoreError> {
            Ok(self.surveys.iter().find(|s| s.id == id).cloned())
        }
        async fn create_survey(&self, _: &Survey) -> Result<(), StoreError> {
            Ok(())
        }
        async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError> {
            Ok(self.surveys.clone())
        }
    }

    #[async_trait]
    impl CounterReader for Stub {
        async fn read_counters(
            &self,
            _: &str,
            from: Day,
            to: Day,
        ) -> Result<Vec<CounterRow>, StoreError> {
            Ok(self
                .rows
                .iter()
                .filter(|r| r.day >= from && r.day <= to)
                .cloned()
                .collect())
        }
    }

    #[async_trait]
    impl ResponseReader for Stub {
        async fn responses_page(
            &self,
            _: &str,
            from_ms: i64,
            to_ms: i64,
            after: Option<&ResponseCursor>,
            limit: usize,
        ) -> Result<Vec<StoredResponse>, StoreError> {
            // Newest first, as the stores answer; one page is enough for these tests.
            if after.is_some() {
                return Ok(Vec::new());
            }
            let mut out: Vec<StoredResponse> = self
                .responses
                .iter()
                .filter(|r| r.event.answered_at >= from_ms && r.event.answered_at < to_ms)
                .cloned()
                .collect();
            out.sort_by_key(|r| std::cmp::Reverse(r.cursor()));
            out.truncate(limit);
            Ok(out)
        }
    }

    fn survey() -> Survey {
        serde_json::from_value(serde_json::json!({
            "id": "nps", "kind": "nps", "question": "How likely <b>are</b> you to recommend us?",
            "touchpoints": [{"slug": "post-purchase", "stage": "conversion"}]
        }))
        .unwrap()
    }

    fn app_over(stub: Stub) -> Router {
        let stub = Arc::new(stub);
        routes(Arc::new(DashboardApp {
            surveys: stub.clone(),
            api_keys: ApiKeys::from_list(KEY).unwrap(),
            insights: Arc::new(Insights {
                surveys: stub.clone(),
                counters: stub.clone(),
                responses: stub,
                export_limits: Default::default(),
            }),
        }))
    }

    fn app() -> Router {
        app_over(Stub {
            surveys: vec![survey()],
            ..Stub::default()
        })
    }

    async fn call(req: http::Request<axum::body::Body>) -> (StatusCode, HeaderMap, String) {
        let resp = app().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = http_body_util::BodyExt::collect(body)
            .await
            .unwrap()
            .to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    fn get(path: &str, headers: &[(&str, &str)]) -> http::Request<axum::body::Body> {
        let mut b = http::Request::builder().uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    fn post_form(path: &str, body: &str) -> http::Request<axum::body::Body> {
        http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap()
    }

    fn assert_secure(h: &HeaderMap) {
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn without_a_session_the_dashboard_is_a_login_form_posting_the_key_in_the_body() {
        let (status, h, body) = call(get("/dashboard?survey=nps&from=2026-11-01", &[])).await;
        assert_eq!(status, StatusCode::OK);
        assert_secure(&h);
        assert!(
            body.contains(r#"<form method="post" action="/dashboard/login">"#),
            "{body}"
        );
        assert!(body.contains(r#"type="password" name="key""#), "{body}");
        // The filters are kept for after the login, as a hidden field, not the key.
        assert!(
            body.contains(r#"name="return" value="from=2026-11-01&amp;survey=nps""#),
            "{body}"
        );
        assert!(
            !body.contains("How likely"),
            "numbers or survey shown without a key"
        );
    }

    #[tokio::test]
    async fn logging_in_sets_a_strict_http_only_secure_cookie_and_never_puts_the_key_in_a_url() {
        let form = format!("key={KEY}&return=survey%3Dnps%26key%3D{KEY}%26to%3D2026-11-30");
        let (status, h, _) = call(post_form("/dashboard/login", &form)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_secure(&h);
        let location = h[header::LOCATION].to_str().unwrap();
        assert_eq!(location, "/dashboard?survey=nps&to=2026-11-30");
        assert!(!location.contains(KEY));
        let cookie = h[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.starts_with("sondeo_session="), "{cookie}");
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/dashboard",
            &format!("Max-Age={SESSION_SECS}"),
        ] {
            assert!(
                cookie.split("; ").any(|a| a == attr),
                "{attr} missing: {cookie}"
            );
        }
        assert!(!cookie.contains(KEY), "{cookie}");
        // The cookie opens the dashboard.
        let token = cookie.split(';').next().unwrap();
        let (status, h, body) = call(get(
            "/dashboard?survey=nps&from=2026-11-01&to=2026-11-30",
            &[("cookie", token)],
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_secure(&h);
        assert!(body.contains(r#"id="trend-chart""#), "{body}");
        assert!(body.contains(r#"data-metric="nps""#), "{body}");
        // The survey's question is text.
        assert!(
            body.contains("How likely &lt;b&gt;are&lt;/b&gt; you"),
            "{body}"
        );
        assert!(body
            .contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#));
        assert!(
            !body.contains("<script") && !body.contains("http://") && !body.contains("https://"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_wrong_key_is_401_with_the_form_and_a_message() {
        let (status, h, body) =
            call(post_form("/dashboard/login", "key=0123456789abcdef-nope")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_secure(&h);
        assert!(h.get(header::SET_COOKIE).is_none());
        assert!(h.get(header::LOCATION).is_none());
        assert!(body.contains("That API key is not valid"), "{body}");
        assert!(body.contains(r#"action="/dashboard/login""#));
        let (status, _, _) = call(post_form("/dashboard/login", "")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn forged_expired_and_revoked_session_tokens_are_refused_and_cleared() {
        let now = now_ms() / 1000;
        let keys = ApiKeys::from_list(KEY).unwrap();
        let good = keys.issue_session(KEY, now + 60).unwrap();
        let forged = good.replacen(&(now + 60).to_string(), &(now + 120).to_string(), 1);
        let expired = keys.issue_session(KEY, now - 1).unwrap();
        let revoked = ApiKeys::from_list("0123456789abcdef-gone")
            .unwrap()
            .issue_session("0123456789abcdef-gone", now + 60)
            .unwrap();
        for token in [forged, expired, revoked, KEY.to_string()] {
            let (status, h, body) = call(get(
                "/dashboard",
                &[("cookie", &format!("{SESSION_COOKIE}={token}"))],
            ))
            .await;
            assert_eq!(status, StatusCode::OK);
            assert!(body.contains("Your session has ended"), "{token}: {body}");
            assert!(!body.contains(r#"id="trend-chart""#), "{token}");
            let cleared = h[header::SET_COOKIE].to_str().unwrap();
            assert!(
                cleared.starts_with("sondeo_session=;") && cleared.contains("Max-Age=0"),
                "{cleared}"
            );
        }
        let (_, _, body) = call(get(
            "/dashboard",
            &[("cookie", &format!("other=1; {SESSION_COOKIE}={good}"))],
        ))
        .await;
        assert!(body.contains(r#"id="trend-chart""#), "{body}");
    }

    #[tokio::test]
    async fn a_bearer_key_opens_the_page_for_scripts_and_a_bad_query_is_a_readable_400() {
        let auth = format!("Bearer {KEY}");
        let (status, _, body) = call(get("/dashboard", &[("authorization", &auth)])).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains(r#"id="trend-chart""#));
        let (status, h, body) = call(get(
            "/dashboard?survey=nps&from=2026-13-45",
            &[("authorization", &auth)],
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_secure(&h);
        assert!(
            body.contains(r#"id="query-error""#) && body.contains("from"),
            "{body}"
        );
        let (status, _, body) = call(get(
            "/dashboard?survey=nps&tz=Mars%2FOlympus",
            &[("authorization", &auth)],
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("Mars/Olympus"), "{body}");
        let (status, _, _) = call(get("/dashboard?survey=nope", &[("authorization", &auth)])).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, _, body) = call(get(
            "/dashboard",
            &[("authorization", "Bearer 0123456789abcdef-nope")],
        ))
        .await;
        assert!(body.contains(r#"action="/dashboard/login""#), "{body}");
    }

    #[tokio::test]
    async fn logging_out_clears_the_cookie() {
        let (status, h, _) = call(post_form("/dashboard/logout", "")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/dashboard");
        let cookie = h[header::SET_COOKIE].to_str().unwrap();
        assert_eq!(
            cookie,
            "sondeo_session=; HttpOnly; Secure; SameSite=Strict; Path=/dashboard; Max-Age=0"
        );
    }

    #[test]
    fn a_change_shows_its_direction_and_whether_it_exceeds_the_margin() {
        use sondeo_domain::explore::compare;
        use sondeo_domain::metrics::Histogram;
        let (mut high, mut low) = (Histogram::default(), Histogram::default());
        for _ in 0..50 {
            high.record(SurveyKind::Nps, 10);
            low.record(SurveyKind::Nps, 0);
        }
        let up = change(&compare(SurveyKind::Nps, &high, &low)).into_string();
        assert!(
            up.contains("▲ +200") && up.contains("beyond the margin of error"),
            "{up}"
        );
        let down = change(&compare(SurveyKind::Nps, &low, &high)).into_string();
        assert!(
            down.contains("▼ -200") && down.contains(r#"class="down""#),
            "{down}"
        );
        let same = change(&compare(SurveyKind::Nps, &high, &high)).into_string();
        assert!(same.contains("→ 0"), "{same}");
        let none = change(&compare(SurveyKind::Nps, &high, &Histogram::default())).into_string();
        assert!(
            none.contains("–") && !none.contains("data-difference"),
            "{none}"
        );
    }

    #[test]
    fn comment_times_are_shown_to_the_minute_with_their_offset() {
        assert_eq!(
            short_time("2026-12-02T11:25:46+01:00"),
            "2026-12-02 11:25 +01:00"
        );
        assert_eq!(short_time("garbage"), "garbage");
    }

    #[tokio::test]
    async fn a_busy_survey_s_page_stays_within_its_weight_budget() {
        // GIVEN twelve touchpoints with answers on each of the 30 days shown, and long comments
        // with properties on the twenty newest answers.
        let touchpoints: Vec<serde_json::Value> = (0..12)
            .map(|i| serde_json::json!({"slug": format!("touchpoint-{i}"), "stage": "retention"}))
            .collect();
        let busy: Survey = serde_json::from_value(serde_json::json!({
            "id": "busy", "kind": "nps", "question": "How likely are you to recommend us?",
            "touchpoints": touchpoints
        }))
        .unwrap();
        let today = Day::from_unix_ms(now_ms());
        let mut rows = Vec::new();
        for i in 0..12 {
            for d in 0..30 {
                let mut histogram = sondeo_domain::metrics::Histogram::default();
                for score in [10, 9, 9, 8, 7, 6, 3, (i + d) % 11] {
                    histogram.record(SurveyKind::Nps, score);
                }
                rows.push(CounterRow {
                    touchpoint: format!("touchpoint-{i}"),
                    send: String::new(),
                    day: today.plus(-d as i32),
                    histogram,
                });
            }
        }
        let responses = (0..40)
            .map(|i| StoredResponse {
                id: format!("{i:032x}"),
                event: serde_json::from_value(serde_json::json!({
                    "event_id": format!("e{i}"), "survey": "busy", "touchpoint": format!("touchpoint-{}", i % 12),
                    "respondent": format!("r{i}@example.com"), "kind": "nps", "score": i % 11,
                    "comment": "The delivery was quick but the parcel was damaged and support took three days to answer my email about it.",
                    "properties": {"plan": "pro", "country": "FR", "order_band": "50-100"},
                    "answered_at": now_ms() - i64::from(i) * 60_000, "source": "api"
                }))
                .unwrap(),
                automated: false,
            })
            .collect();
        let router = app_over(Stub {
            surveys: vec![busy],
            rows,
            responses,
        });
        // WHEN the page is read
        let resp = router
            .oneshot(get(
                "/dashboard",
                &[("authorization", &format!("Bearer {KEY}"))],
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let page = String::from_utf8_lossy(&bytes);
        // THEN it has every chart and twenty comments, in under 128 KB.
        assert_eq!(page.matches("class=\"chart trend\"").count(), 13);
        assert_eq!(
            page.matches("class=\"comment-item\"").count(),
            COMMENTS_SHOWN
        );
        eprintln!("busy dashboard page: {} bytes", bytes.len());
        if let Ok(path) = std::env::var("SONDEO_DASHBOARD_DUMP") {
            std::fs::write(path, &bytes).unwrap();
        }
        assert!(bytes.len() < 128 * 1024, "{} bytes", bytes.len());
    }

    #[test]
    fn margins_follow_each_kind_s_formula() {
        let mut s: Summary = serde_json::from_value(
            serde_json::json!({"n": 100, "distribution": {}, "satisfied_pct": 80.0}),
        )
        .unwrap();
        let m = margin_of(SurveyKind::Csat, &s).unwrap();
        assert!((m - 100.0 * 1.96 * (0.8f64 * 0.2 / 100.0).sqrt()).abs() < 1e-9);
        s = serde_json::from_value(
            serde_json::json!({"n": 4, "mean": 3.0, "distribution": {"1": 1, "3": 2, "5": 1}}),
        )
        .unwrap();
        // sd = sqrt((4 + 0 + 4) / 3)
        let m = margin_of(SurveyKind::Likert5, &s).unwrap();
        assert!((m - 1.96 * (8.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-9);
        assert_eq!(margin_of(SurveyKind::Duration, &s), None);
    }
}
