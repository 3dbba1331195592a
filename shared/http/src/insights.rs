//! Reading the numbers: metrics reports (time zones, segments, period comparison), response
//! pages and the streamed CSV export, behind the API key. The dashboard reads the same.
//!
//! A report in UTC without property, comment or score filters is read from the daily counters
//! (a few items per touchpoint and day); any other report is computed from the stored responses
//! of its range (one item per response), as `sondeo_domain::explore` describes.

use crate::respond::{json_response, query_params, HttpError, Request, Response};
use crate::routing::{buffered, into_axum};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;
use sondeo_domain::explore::{
    compare, total_of, Comparison, ResponseCursor, ResponseFilter, RowBuilder, SegmentBuilder,
    StoredResponse, Zone,
};
use sondeo_domain::ports::{CounterReader, CounterRow, ResponseReader, SurveyStore};
use sondeo_domain::report::{build_report, GroupReport, ReportQuery};
use sondeo_domain::response::check_send;
use sondeo_domain::survey::{check_slug, JourneyStage, Survey};
use sondeo_domain::time::{now_ms, rfc3339, Bucket, Day};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Responses read from the store per page.
const STORE_PAGE: usize = 500;
/// Most responses one report may compute from; past it the query asks for a shorter range.
pub const MAX_REPORT_RESPONSES: usize = 2_000_000;
/// Most stored responses one page request examines before answering with what it found.
const MAX_PAGE_SCAN: usize = 20_000;
/// Most responses on one page of `GET /v1/responses`.
pub const MAX_PAGE_LIMIT: usize = 500;
/// Responses on one page when no limit is given.
pub const DEFAULT_PAGE_LIMIT: usize = 50;

/// What a metrics report, a response page or an export covers.
#[derive(Debug, Clone)]
pub struct InsightQuery {
    /// First local day, inclusive.
    pub from: Day,
    /// Last local day, inclusive.
    pub to: Day,
    /// Series bucket size.
    pub bucket: Bucket,
    /// The zone days are read in.
    pub zone: Zone,
    /// Which responses count.
    pub filter: ResponseFilter,
    /// A response property to break the report down by.
    pub group_by: Option<String>,
    /// The period to compare with, if any.
    pub compare: Option<(Day, Day)>,
}

impl InsightQuery {
    /// Reads the query parameters shared by `/v1/metrics`, `/v1/responses`, the export and the
    /// dashboard, checked against the survey.
    pub fn from_params(
        p: &BTreeMap<String, String>,
        survey: &Survey,
    ) -> Result<InsightQuery, HttpError> {
        let bad = |code: &'static str| move |e: String| HttpError::bad_request(code, e);
        let get = |name: &str| p.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let zone = match get("tz") {
            Some(name) => {
                Zone::parse(name).map_err(|e| HttpError::bad_request("invalid_tz", e.0))?
            }
            None => Zone::utc(),
        };
        let day = |name: &str| -> Result<Option<Day>, HttpError> {
            get(name)
                .map(|v| {
                    v.parse::<Day>()
                        .map_err(|e| HttpError::bad_request("invalid_date", format!("{name}: {e}")))
                })
                .transpose()
        };
        let to = day("to")?.unwrap_or_else(|| zone.day_of(now_ms()));
        let from = day("from")?.unwrap_or_else(|| to.plus(-29));
        let bucket = get("bucket")
            .map(|b| b.parse::<Bucket>())
            .transpose()
            .map_err(bad("invalid_bucket"))?
            .unwrap_or_default();
        let stage: Option<JourneyStage> = get("stage")
            .map(|s| s.parse())
            .transpose()
            .map_err(bad("invalid_stage"))?;
        // Checked as given: a send that is only blank or control characters is refused, not
        // read as "every send".
        let send = p
            .get("send")
            .filter(|s| !s.is_empty())
            .map(|s| {
                check_send(s).map_err(|e| HttpError::unprocessable("invalid_send", e.0))?;
                Ok::<_, HttpError>(s.clone())
            })
            .transpose()?;
        let properties = get("segment")
            .map(ResponseFilter::parse_segment)
            .transpose()
            .map_err(|e| HttpError::bad_request("invalid_segment", e.0))?
            .unwrap_or_default();
        let has_comment = get("has_comment")
            .map(|v| match v {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(HttpError::bad_request(
                    "invalid_has_comment",
                    "has_comment must be true or false",
                )),
            })
            .transpose()?;
        let score = |name: &str| -> Result<Option<i64>, HttpError> {
            get(name)
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        HttpError::bad_request(
                            "invalid_score",
                            format!("{name} must be a whole number"),
                        )
                    })
                })
                .transpose()
        };
        let (lo, hi) = survey.kind.range();
        let scores = match (score("min_score")?, score("max_score")?) {
            (None, None) => None,
            (a, b) => Some((a.unwrap_or(lo), b.unwrap_or(hi))),
        };
        let filter = ResponseFilter {
            touchpoint: get("touchpoint").map(str::to_string),
            stage,
            send,
            properties,
            has_comment,
            scores,
        };
        let group_by = get("group_by")
            .map(|g| {
                check_slug("group_by property", g)
                    .map_err(|e| HttpError::bad_request("invalid_group_by", e))?;
                Ok::<_, HttpError>(g.to_string())
            })
            .transpose()?;
        let compare = match (get("compare"), day("compare_from")?, day("compare_to")?) {
            (_, Some(f), Some(t)) => Some((f, t)),
            (_, Some(_), None) | (_, None, Some(_)) => {
                return Err(HttpError::bad_request(
                    "invalid_compare",
                    "give both compare_from and compare_to, or compare=previous",
                ))
            }
            (Some("previous"), None, None) => {
                let len = to.days() - from.days() + 1;
                Some((from.plus(-len), from.plus(-1)))
            }
            (Some(other), None, None) => {
                return Err(HttpError::bad_request(
                    "invalid_compare",
                    format!("compare must be 'previous' (not '{other}'), or give compare_from and compare_to"),
                ))
            }
            (None, None, None) => None,
        };
        let q = InsightQuery {
            from,
            to,
            bucket,
            zone,
            filter,
            group_by,
            compare,
        };
        q.report_query()
            .validate(survey)
            .map_err(|e| HttpError::bad_request("invalid_query", e.0))?;
        q.filter
            .validate(survey)
            .map_err(|e| HttpError::bad_request("invalid_query", e.0))?;
        if let Some((f, t)) = q.compare {
            ReportQuery {
                from: f,
                to: t,
                ..q.report_query()
            }
            .validate(survey)
            .map_err(|e| {
                HttpError::bad_request("invalid_compare", format!("comparison period: {}", e.0))
            })?;
        }
        Ok(q)
    }

    /// The report part of the query.
    pub fn report_query(&self) -> ReportQuery {
        ReportQuery {
            from: self.from,
            to: self.to,
            bucket: self.bucket,
            touchpoint: self.filter.touchpoint.clone(),
            stage: self.filter.stage,
        }
    }

    /// Whether counters can answer: UTC days, no property, comment or score filter, no breakdown.
    pub fn counters_answer(&self) -> bool {
        self.zone.is_utc() && !self.filter.needs_responses() && self.group_by.is_none()
    }

    /// The instants the local days `from..=to` cover, Unix ms (end excluded).
    pub fn instants(&self, from: Day, to: Day) -> (i64, i64) {
        (
            self.zone.day_start_ms(from),
            self.zone.day_start_ms(to.plus(1)),
        )
    }
}

/// A breakdown of a report by the values of one response property.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentReport {
    /// The property.
    pub property: String,
    /// Metrics per value (`(none)`: responses without the property).
    pub groups: BTreeMap<String, GroupReport>,
}

/// The report's metric against another period, overall, per touchpoint and per stage.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodComparison {
    /// First day of the other period.
    pub from: Day,
    /// Last day of the other period.
    pub to: Day,
    /// The whole survey (after filters).
    pub overall: Comparison,
    /// Per touchpoint.
    pub touchpoints: BTreeMap<String, Comparison>,
    /// Per journey stage.
    pub stages: BTreeMap<String, Comparison>,
}

/// A metrics report with what it was read in and from: the JSON of `GET /v1/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct InsightReport {
    /// The report.
    #[serde(flatten)]
    pub report: sondeo_domain::report::Report,
    /// The send it is restricted to (null: every send).
    pub send: Option<String>,
    /// The time zone of its days.
    pub time_zone: String,
    /// `counters` or `responses`.
    pub read_from: &'static str,
    /// The property filters applied.
    pub segment: BTreeMap<String, String>,
    /// The breakdown by a property, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<SegmentReport>,
    /// The comparison with another period, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<PeriodComparison>,
}

/// One page of responses, newest first.
#[derive(Debug, Clone)]
pub struct ResponsePage {
    /// The responses.
    pub responses: Vec<StoredResponse>,
    /// Where the next page starts (None: this was the last).
    pub next: Option<ResponseCursor>,
}

/// Reads reports and responses for the API, the export and the dashboard.
pub struct Insights {
    /// Survey definitions.
    pub surveys: Arc<dyn SurveyStore>,
    /// Daily counters.
    pub counters: Arc<dyn CounterReader>,
    /// Stored responses by answer time.
    pub responses: Arc<dyn ResponseReader>,
    /// How much one CSV export request may stream.
    pub export_limits: ExportLimits,
}

/// How much one CSV export request streams before it ends with a row saying where to continue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportLimits {
    /// Largest export, in bytes (None: no limit; Lambda streams at most 200 MB).
    pub bytes: Option<u64>,
    /// Longest export (None: no limit; a Lambda function has a timeout).
    pub time: Option<Duration>,
}

/// The survey with this id from `store`: 400 for an id that cannot be one, 404 for none.
pub(crate) async fn load_survey(store: &dyn SurveyStore, id: &str) -> Result<Survey, HttpError> {
    check_slug("survey", id).map_err(|e| HttpError::bad_request("invalid_survey_id", e))?;
    store
        .get_survey(id)
        .await
        .map_err(HttpError::from_store)?
        .ok_or_else(|| HttpError::not_found("unknown_survey", format!("there is no survey '{id}'")))
}

/// Counter rows gathered for a report: the asked period's and the compared period's.
struct Rows {
    current: Vec<CounterRow>,
    previous: Vec<CounterRow>,
    groups: Option<BTreeMap<String, Vec<CounterRow>>>,
}

impl Insights {
    /// The survey with this id, or 404.
    pub async fn survey(&self, id: &str) -> Result<Survey, HttpError> {
        load_survey(self.surveys.as_ref(), id).await
    }

    /// The metrics report of a survey for a query.
    pub async fn report(
        &self,
        survey: &Survey,
        q: &InsightQuery,
    ) -> Result<InsightReport, HttpError> {
        let (rows, read_from) = if q.counters_answer() {
            (self.counter_rows(survey, q).await?, "counters")
        } else {
            (self.response_rows(survey, q).await?, "responses")
        };
        let rq = q.report_query();
        let report = build_report(survey, &rows.current, &rq);
        let segments = rows.groups.map(|groups| SegmentReport {
            property: q.group_by.clone().unwrap_or_default(),
            groups: groups
                .into_iter()
                .map(|(value, rows)| (value, build_report(survey, &rows, &rq).overall))
                .collect(),
        });
        let comparison = q.compare.map(|(pf, pt)| {
            let kind = survey.kind;
            let stage_of = |tp: &str| survey.touchpoint(tp).and_then(|t| t.stage);
            let overall = |r: &CounterRow| {
                q.filter
                    .touchpoint
                    .as_ref()
                    .is_none_or(|t| *t == r.touchpoint)
                    && q.filter
                        .stage
                        .is_none_or(|s| stage_of(&r.touchpoint) == Some(s))
            };
            let cmp = |pick: &dyn Fn(&CounterRow) -> bool| {
                compare(
                    kind,
                    &total_of(&rows.current, q.from, q.to, pick),
                    &total_of(&rows.previous, pf, pt, pick),
                )
            };
            PeriodComparison {
                from: pf,
                to: pt,
                overall: cmp(&overall),
                touchpoints: report
                    .touchpoints
                    .keys()
                    .map(|tp| (tp.clone(), cmp(&|r: &CounterRow| r.touchpoint == *tp)))
                    .collect(),
                stages: report
                    .stages
                    .iter()
                    .filter_map(|(name, g)| Some((name.clone(), g.stage?)))
                    .map(|(name, stage)| {
                        let pick =
                            |r: &CounterRow| overall(r) && stage_of(&r.touchpoint) == Some(stage);
                        (name, cmp(&pick))
                    })
                    .collect(),
            }
        });
        Ok(InsightReport {
            report,
            send: q.filter.send.clone(),
            time_zone: q.zone.name().to_string(),
            read_from,
            segment: q.filter.properties.iter().cloned().collect(),
            segments,
            comparison,
        })
    }

    /// Counter rows of the asked (and compared) period, restricted to the send.
    async fn counter_rows(&self, survey: &Survey, q: &InsightQuery) -> Result<Rows, HttpError> {
        let send = q.filter.send.clone().unwrap_or_default();
        let read = |from: Day, to: Day| {
            let send = send.clone();
            async move {
                let mut rows = self
                    .counters
                    .read_counters(&survey.id, from, to)
                    .await
                    .map_err(HttpError::from_store)?;
                rows.retain(|r| r.send == send);
                Ok::<_, HttpError>(rows)
            }
        };
        let current = read(q.from, q.to).await?;
        let previous = match q.compare {
            Some((f, t)) => read(f, t).await?,
            None => Vec::new(),
        };
        Ok(Rows {
            current,
            previous,
            groups: None,
        })
    }

    /// Counter rows computed from the stored responses of the asked (and compared) period.
    async fn response_rows(&self, survey: &Survey, q: &InsightQuery) -> Result<Rows, HttpError> {
        let mut current = RowBuilder::default();
        let mut groups = match &q.group_by {
            Some(p) => Some(
                SegmentBuilder::new(p)
                    .map_err(|e| HttpError::bad_request("invalid_group_by", e.0))?,
            ),
            None => None,
        };
        self.each_response(survey, q, q.from, q.to, |r| {
            current.add(survey.kind, &q.zone, r);
            if let Some(g) = groups.as_mut() {
                g.add(survey.kind, &q.zone, r);
            }
        })
        .await?;
        let mut previous = RowBuilder::default();
        if let Some((f, t)) = q.compare {
            self.each_response(survey, q, f, t, |r| previous.add(survey.kind, &q.zone, r))
                .await?;
        }
        Ok(Rows {
            current: current.finish(),
            previous: previous.finish(),
            groups: groups.map(SegmentBuilder::finish),
        })
    }

    /// Calls `f` on every stored response of the local days `from..=to` that passes the filter.
    async fn each_response(
        &self,
        survey: &Survey,
        q: &InsightQuery,
        from: Day,
        to: Day,
        mut f: impl FnMut(&StoredResponse),
    ) -> Result<(), HttpError> {
        let (start, end) = q.instants(from, to);
        let mut after: Option<ResponseCursor> = None;
        let mut seen = 0usize;
        loop {
            let page = self
                .responses
                .responses_page(&survey.id, start, end, after.as_ref(), STORE_PAGE)
                .await
                .map_err(HttpError::from_store)?;
            seen += page.len();
            if seen > MAX_REPORT_RESPONSES {
                return Err(HttpError::unprocessable(
                    "too_many_responses",
                    format!(
                        "this report would be computed from more than {MAX_REPORT_RESPONSES} responses; \
                         ask for a shorter range, or read it in UTC without segment filters (from counters)"
                    ),
                ));
            }
            for r in page.iter().filter(|r| q.filter.matches(survey, r)) {
                f(r);
            }
            if page.len() < STORE_PAGE {
                return Ok(());
            }
            after = page.last().map(StoredResponse::cursor);
        }
    }

    /// A page of the responses that pass the query's filter, newest first.
    pub async fn responses(
        &self,
        survey: &Survey,
        q: &InsightQuery,
        after: Option<ResponseCursor>,
        limit: usize,
    ) -> Result<ResponsePage, HttpError> {
        let limit = limit.clamp(1, MAX_PAGE_LIMIT);
        // Read ahead of the page a little: a filter may pass only some of what is read.
        let want = STORE_PAGE.min(limit * 4);
        let (start, end) = q.instants(q.from, q.to);
        let mut after = after;
        let mut out = Vec::new();
        let mut scanned = 0usize;
        loop {
            let page = self
                .responses
                .responses_page(&survey.id, start, end, after.as_ref(), want)
                .await
                .map_err(HttpError::from_store)?;
            scanned += page.len();
            let exhausted = page.len() < want;
            for r in page {
                after = Some(r.cursor());
                if q.filter.matches(survey, &r) {
                    out.push(r);
                    if out.len() == limit {
                        // More may follow this one.
                        return Ok(ResponsePage {
                            responses: out,
                            next: after,
                        });
                    }
                }
            }
            if exhausted {
                return Ok(ResponsePage {
                    responses: out,
                    next: None,
                });
            }
            if scanned >= MAX_PAGE_SCAN {
                // A sparse filter: answer with what was found and where to go on.
                return Ok(ResponsePage {
                    responses: out,
                    next: after,
                });
            }
        }
    }
}

/// The API routes that read the numbers: `/v1/metrics`, `/v1/responses`, `/v1/responses.csv`
/// (mounted behind the API key by `admin::routes`).
pub fn routes(insights: Arc<Insights>) -> Router {
    Router::new()
        .route("/v1/metrics", get(metrics))
        .route("/v1/responses", get(responses))
        .route("/v1/responses.csv", get(export))
        .with_state(insights)
}

fn render(result: Result<Response, HttpError>) -> axum::response::Response {
    into_axum(result.unwrap_or_else(|e| e.to_json()))
}

/// The survey and query of a request.
async fn survey_and_query(
    app: &Insights,
    req: &Request,
) -> Result<(Survey, InsightQuery, BTreeMap<String, String>), HttpError> {
    let p = query_params(req)?;
    let id = p.get("survey").ok_or_else(|| {
        HttpError::bad_request("missing_survey", "give the survey id as ?survey=<id>")
    })?;
    let survey = app.survey(id).await?;
    let q = InsightQuery::from_params(&p, &survey)?;
    Ok((survey, q, p))
}

async fn metrics(
    State(app): State<Arc<Insights>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    render(
        async {
            let req = buffered(req).await?;
            let (survey, q, _) = survey_and_query(&app, &req).await?;
            let report = app.report(&survey, &q).await?;
            Ok(json_response(StatusCode::OK, &report))
        }
        .await,
    )
}

/// One response as the API shows it.
#[derive(Serialize)]
struct ResponseView<'a> {
    id: &'a str,
    touchpoint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<JourneyStage>,
    send: &'a str,
    score: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
    properties: &'a BTreeMap<String, String>,
    source: &'static str,
    answered_at: String,
    local_time: String,
    click: bool,
    automated: bool,
}

fn view<'a>(survey: &Survey, zone: &Zone, r: &'a StoredResponse) -> ResponseView<'a> {
    let e = &r.event;
    ResponseView {
        id: &r.id,
        touchpoint: &e.touchpoint,
        stage: survey.touchpoint(&e.touchpoint).and_then(|t| t.stage),
        send: &e.send,
        score: e.score,
        comment: e.comment.as_deref(),
        properties: &e.properties,
        source: e.source.as_str(),
        answered_at: rfc3339(e.answered_at),
        local_time: zone.local_time(e.answered_at),
        click: e.click,
        automated: r.automated,
    }
}

/// The page size and cursor of a request.
fn paging(p: &BTreeMap<String, String>) -> Result<(usize, Option<ResponseCursor>), HttpError> {
    let limit = match p.get("limit") {
        None => DEFAULT_PAGE_LIMIT,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE_LIMIT).contains(l))
            .ok_or_else(|| {
                HttpError::bad_request(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_PAGE_LIMIT}"),
                )
            })?,
    };
    let cursor = p
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| ResponseCursor::decode(c))
        .transpose()
        .map_err(|e| HttpError::bad_request("invalid_cursor", e.0))?;
    Ok((limit, cursor))
}

async fn responses(
    State(app): State<Arc<Insights>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    render(
        async {
            let req = buffered(req).await?;
            let (survey, q, p) = survey_and_query(&app, &req).await?;
            let (limit, cursor) = paging(&p)?;
            let page = app.responses(&survey, &q, cursor, limit).await?;
            let views: Vec<ResponseView> = page
                .responses
                .iter()
                .map(|r| view(&survey, &q.zone, r))
                .collect();
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "survey": survey.id,
                    "time_zone": q.zone.name(),
                    "responses": views,
                    "next_cursor": page.next.map(|c| c.encode()),
                }),
            ))
        }
        .await,
    )
}

/// A text cell as written to a spreadsheet: one that a spreadsheet would read as a formula
/// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// The export's header row.
pub const EXPORT_COLUMNS: [&str; 12] = [
    "id",
    "answered_at",
    "local_time",
    "touchpoint",
    "stage",
    "send",
    "score",
    "comment",
    "properties",
    "source",
    "click",
    "automated",
];

/// One response as an export row (text cells made spreadsheet-safe).
pub fn export_row(survey: &Survey, zone: &Zone, r: &StoredResponse) -> Vec<String> {
    let e = &r.event;
    let props = if e.properties.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&e.properties).unwrap_or_default()
    };
    let stage = survey
        .touchpoint(&e.touchpoint)
        .and_then(|t| t.stage)
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    vec![
        r.id.clone(),
        rfc3339(e.answered_at),
        zone.local_time(e.answered_at),
        spreadsheet_safe(&e.touchpoint).into_owned(),
        stage,
        spreadsheet_safe(&e.send).into_owned(),
        e.score.to_string(),
        spreadsheet_safe(e.comment.as_deref().unwrap_or("")).into_owned(),
        spreadsheet_safe(&props).into_owned(),
        e.source.as_str().to_string(),
        e.click.to_string(),
        r.automated.to_string(),
    ]
}

async fn export(
    State(app): State<Arc<Insights>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let started = async {
        let req = buffered(req).await?;
        let (survey, q, p) = survey_and_query(&app, &req).await?;
        let (_, cursor) = paging(&p)?;
        Ok::<_, HttpError>((survey, q, cursor))
    };
    let (survey, q, cursor) = match started.await {
        Ok(x) => x,
        Err(e) => return render(Err(e)),
    };
    let filename = format!("sondeo-{}-{}-{}.csv", survey.id, q.from, q.to);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    tokio::spawn(stream_export(app, survey, q, cursor, tx));
    let mut resp =
        axum::response::Response::new(axum::body::Body::new(crate::routing::ChunkStream::from(rx)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Writes the export to `tx`, page by page: a UTF-8 byte-order mark (so Excel reads UTF-8), the
/// header row, then every response newest first. Stops early, with a last row saying where to
/// continue, when the byte or time budget runs out; ends the body with an error if the store
/// fails midway, so a client never takes a short export for a whole one.
async fn stream_export(
    app: Arc<Insights>,
    survey: Survey,
    q: InsightQuery,
    mut after: Option<ResponseCursor>,
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
) {
    let started = Instant::now();
    let (start, end) = q.instants(q.from, q.to);
    let mut sent: u64 = 0;
    let mut rows: u64 = 0;
    // The byte-order mark and the header row go out with the first page.
    let mut head = "\u{feff}".as_bytes().to_vec();
    head.extend_from_slice(EXPORT_COLUMNS.join(",").as_bytes());
    head.extend_from_slice(b"\r\n");
    let mut pending = Some(head);
    loop {
        let page = match app
            .responses
            .responses_page(&survey.id, start, end, after.as_ref(), STORE_PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(survey = %survey.id, error = %e, rows, "export failed midway");
                let _ = tx
                    .send(Err(std::io::Error::other(
                        "storage failed during the export",
                    )))
                    .await;
                return;
            }
        };
        let last_page = page.len() < STORE_PAGE;
        let mut out = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::CRLF)
            .from_writer(pending.take().unwrap_or_default());
        for r in &page {
            after = Some(r.cursor());
            if !q.filter.matches(&survey, r) {
                continue;
            }
            if out.write_record(export_row(&survey, &q.zone, r)).is_err() {
                return;
            }
            rows += 1;
        }
        let Ok(mut buf) = out.into_inner() else {
            return;
        };
        let over_budget = app
            .export_limits
            .bytes
            .is_some_and(|b| sent + buf.len() as u64 >= b)
            || app
                .export_limits
                .time
                .is_some_and(|t| started.elapsed() >= t);
        if !last_page && over_budget {
            if let Some(c) = &after {
                let note = format!(
                    "# export continues: {rows} rows so far; this request's limit was reached. \
                     Ask again with cursor={} for the rest",
                    c.encode()
                );
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(buf);
                let _ = w.write_record([note]);
                let Ok(b) = w.into_inner() else {
                    return;
                };
                buf = b;
            }
        }
        sent += buf.len() as u64;
        if !buf.is_empty() && tx.send(Ok(bytes::Bytes::from(buf))).await.is_err() {
            return; // the client went away
        }
        if last_page || over_budget {
            tracing::info!(survey = %survey.id, rows, bytes = sent, "export streamed");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_are_neutralised() {
        for (cell, safe) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tcmd", "'\tcmd"),
            ("\rcmd", "'\rcmd"),
            ("fine = ok", "fine = ok"),
            ("", ""),
            ("émoji 😀", "émoji 😀"),
        ] {
            assert_eq!(spreadsheet_safe(cell), safe, "{cell:?}");
        }
    }
}

#[cfg(test)]
mod export_failure_tests {
    use super::*;
    use async_trait::async_trait;
    use http_body_util::BodyExt;
    use sondeo_domain::ports::StoreError;
    use sondeo_domain::response::{ResponseEvent, Source};
    use sondeo_domain::survey::{Locale, SurveyKind, Touchpoint};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    /// One survey; one full page of responses, then a storage failure.
    struct FailsOnSecondPage(AtomicUsize);

    fn survey() -> Survey {
        Survey {
            id: "s".into(),
            kind: SurveyKind::Nps,
            question: "Q?".into(),
            follow_up: String::new(),
            locale: Locale::En,
            touchpoints: vec![Touchpoint {
                slug: "tp".into(),
                stage: None,
            }],
            public_key: None,
            brand: None,
            frequency_cap_days: None,
        }
    }

    #[async_trait]
    impl SurveyStore for FailsOnSecondPage {
        async fn get_survey(&self, _: &str) -> Result<Option<Survey>, StoreError> {
            Ok(Some(survey()))
        }
        async fn create_survey(&self, _: &Survey) -> Result<(), StoreError> {
            Ok(())
        }
        async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError> {
            Ok(vec![survey()])
        }
    }

    #[async_trait]
    impl CounterReader for FailsOnSecondPage {
        async fn read_counters(
            &self,
            _: &str,
            _: Day,
            _: Day,
        ) -> Result<Vec<CounterRow>, StoreError> {
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl ResponseReader for FailsOnSecondPage {
        async fn responses_page(
            &self,
            _: &str,
            _: i64,
            to_ms: i64,
            _: Option<&ResponseCursor>,
            limit: usize,
        ) -> Result<Vec<StoredResponse>, StoreError> {
            if self.0.fetch_add(1, Ordering::SeqCst) > 0 {
                return Err(StoreError::Transient("throttled".into()));
            }
            Ok((0..limit)
                .map(|i| StoredResponse {
                    id: format!("{i:04x}"),
                    event: ResponseEvent {
                        event_id: format!("e{i}"),
                        survey: "s".into(),
                        touchpoint: "tp".into(),
                        respondent: format!("r{i}"),
                        kind: SurveyKind::Nps,
                        score: 9,
                        comment: None,
                        properties: BTreeMap::new(),
                        answered_at: to_ms - 1 - i as i64,
                        source: Source::Api,
                        send: String::new(),
                        click: false,
                    },
                    automated: false,
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn a_storage_failure_midway_ends_the_export_with_an_error_not_a_short_file() {
        let store = Arc::new(FailsOnSecondPage(AtomicUsize::new(0)));
        let router = routes(Arc::new(Insights {
            surveys: store.clone(),
            counters: store.clone(),
            responses: store,
            export_limits: ExportLimits::default(),
        }));
        let req = http::Request::builder()
            .uri("/v1/responses.csv?survey=s&from=2026-01-01&to=2026-01-31")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = router.oneshot(req).await.unwrap();
        // The head went out before the failure: 200, then the body breaks off.
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await;
        assert!(body.is_err(), "a broken export must not read as complete");
    }
}
