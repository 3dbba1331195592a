//! The numbers API against hand-computed fixtures: metrics in a time zone across a daylight-saving
//! change, ISO weeks across a year boundary, segments, period comparison, response pages and the
//! CSV export (formula cells neutralised, UTF-8 with a byte-order mark), through the metrics
//! router over the embedded store.

use http::StatusCode;
use http_body_util::BodyExt;
use sondeo_domain::keys::ApiKeys;
use sondeo_domain::ports::SurveyStore;
use sondeo_domain::response::{ResponseEvent, Source};
use sondeo_domain::survey::{JourneyStage, Locale, Survey, SurveyKind, Touchpoint};
use sondeo_domain::time::Day;
use sondeo_domain::token::LinkKeyring;
use sondeo_embedded::EmbeddedStore;
use sondeo_http::admin::{AdminApp, OrdersConfig};
use sondeo_http::insights::ExportLimits;
use sondeo_http::HttpService;
use sondeo_tests::deliver_in_order;
use std::collections::BTreeMap;
use std::sync::Arc;
use tower::ServiceExt;

const KEY: &str = "insights-api-key-0123456789abcdef";

fn survey() -> Survey {
    Survey {
        id: "shop".into(),
        kind: SurveyKind::Nps,
        question: "How likely are you to recommend us?".into(),
        follow_up: "Why?".into(),
        locale: Locale::En,
        touchpoints: vec![
            Touchpoint {
                slug: "checkout".into(),
                stage: Some(JourneyStage::Conversion),
            },
            Touchpoint {
                slug: "support".into(),
                stage: Some(JourneyStage::Retention),
            },
        ],
        public_key: None,
        brand: None,
        frequency_cap_days: None,
    }
}

/// Unix ms of a UTC date and time.
fn at(date: &str, hh: i64, mm: i64) -> i64 {
    let day: Day = date.parse().unwrap();
    i64::from(day.days()) * 86_400_000 + (hh * 60 + mm) * 60_000
}

/// An answer; respondents are unique per call.
fn answer(
    tp: &str,
    score: i64,
    when: i64,
    props: &[(&str, &str)],
    comment: Option<&str>,
) -> ResponseEvent {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ResponseEvent {
        event_id: format!("{n:032x}"),
        survey: "shop".into(),
        touchpoint: tp.into(),
        respondent: format!("r{n}"),
        kind: SurveyKind::Nps,
        score,
        comment: comment.map(str::to_string),
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        answered_at: when,
        source: Source::Api,
        send: String::new(),
        click: false,
    }
}

struct Api {
    router: HttpService,
}

impl Api {
    async fn new(events: &[ResponseEvent]) -> Api {
        Api::with_limits(events, Default::default()).await
    }

    async fn with_limits(events: &[ResponseEvent], limits: ExportLimits) -> Api {
        let store = EmbeddedStore::in_memory().unwrap();
        store.create_survey(&survey()).await.unwrap();
        deliver_in_order(&store, events, 50).await;
        let shared = Arc::new(store);
        let router = sondeo_http::admin::router(AdminApp {
            surveys: shared.clone(),
            counters: shared.clone(),
            responses: shared.clone(),
            export_limits: limits,
            api_keys: ApiKeys::from_list(KEY).unwrap(),
            keyring: LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-insights")
                .unwrap(),
            base_url: None,
            alerts: None,
            imports: None,
            suppressions: shared.clone(),
            orders: OrdersConfig {
                connections: shared.clone(),
                invitations: shared,
                webhook_base_url: None,
            },
        });
        Api { router }
    }

    async fn get(&self, path: &str) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let req = http::Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {KEY}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    async fn json(&self, path: &str) -> serde_json::Value {
        let (status, _, body) = self.get(path).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn error(&self, path: &str) -> (StatusCode, String) {
        let (status, _, body) = self.get(path).await;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (
            status,
            json["error"]["message"].as_str().unwrap_or("").to_string(),
        )
    }
}

fn nps(v: &serde_json::Value) -> f64 {
    v["nps"].as_f64().unwrap_or(f64::NAN)
}

#[tokio::test]
async fn days_in_new_york_follow_the_clock_change_and_differ_from_utc_days() {
    // New York left EST for EDT at 2026-03-08 07:00 UTC (02:00 EST).
    let events = vec![
        // 2026-03-08 04:30 UTC = 23:30 EST on March 7.
        answer("checkout", 10, at("2026-03-08", 4, 30), &[], None),
        // 2026-03-08 05:00 UTC = 00:00 EST on March 8 (the first instant of that local day).
        answer("checkout", 0, at("2026-03-08", 5, 0), &[], None),
        // 2026-03-09 03:59 UTC = 23:59 EDT on March 8 (a 23-hour day).
        answer("checkout", 9, at("2026-03-09", 3, 59), &[], None),
        // 2026-03-09 04:00 UTC = 00:00 EDT on March 9.
        answer("checkout", 8, at("2026-03-09", 4, 0), &[], None),
    ];
    let api = Api::new(&events).await;
    let ny = api
        .json(
            "/v1/metrics?survey=shop&from=2026-03-07&to=2026-03-09&bucket=day&tz=America/New_York",
        )
        .await;
    assert_eq!(ny["time_zone"], "America/New_York");
    assert_eq!(ny["read_from"], "responses");
    let series = ny["overall"]["series"].as_array().unwrap();
    let n: Vec<i64> = series.iter().map(|p| p["n"].as_i64().unwrap()).collect();
    // March 7: the 10. March 8: the 0 and the 9 (NPS 0). March 9: the 8.
    assert_eq!(n, [1, 2, 1]);
    assert_eq!(nps(&series[0]), 100.0);
    assert_eq!(nps(&series[1]), 0.0);
    assert_eq!(nps(&series[2]), 0.0);
    // The same answers in UTC days, from counters: two on March 8, two on March 9.
    let utc = api
        .json("/v1/metrics?survey=shop&from=2026-03-07&to=2026-03-09&bucket=day")
        .await;
    assert_eq!(utc["read_from"], "counters");
    let n: Vec<i64> = utc["overall"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["n"].as_i64().unwrap())
        .collect();
    assert_eq!(n, [0, 2, 2]);
    // A range in New York starts at local midnight: from March 8 leaves the 23:30 EST answer out.
    let from8 = api
        .json("/v1/metrics?survey=shop&from=2026-03-08&to=2026-03-09&tz=America/New_York")
        .await;
    assert_eq!(from8["overall"]["total"]["n"], 3);
}

#[tokio::test]
async fn iso_weeks_run_monday_to_sunday_across_the_new_year_in_any_zone() {
    // ISO week 2026-W53 runs Monday 2026-12-28 to Sunday 2027-01-03; 2027-W01 starts 2027-01-04.
    let events = vec![
        answer("support", 10, at("2026-12-27", 12, 0), &[], None), // Sunday of W52
        answer("support", 10, at("2026-12-28", 12, 0), &[], None), // Monday of W53
        answer("support", 0, at("2027-01-03", 12, 0), &[], None),  // Sunday of W53, 2027
        answer("support", 9, at("2027-01-04", 12, 0), &[], None),  // Monday of 2027-W01
        // 2027-01-04 02:00 UTC is still Sunday 2027-01-03 in Los Angeles (18:00 PST).
        answer("support", 0, at("2027-01-04", 2, 0), &[], None),
    ];
    let api = Api::new(&events).await;
    let utc = api
        .json("/v1/metrics?survey=shop&from=2026-12-21&to=2027-01-10&bucket=week")
        .await;
    let weeks: Vec<(String, i64)> = utc["overall"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_str().unwrap().to_string(),
                p["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        weeks,
        [
            ("2026-12-21".to_string(), 1),
            ("2026-12-28".to_string(), 2),
            ("2027-01-04".to_string(), 2),
        ]
    );
    assert_eq!(utc["overall"]["series"][1]["week"], "2026-W53");
    assert_eq!(utc["overall"]["series"][2]["week"], "2027-W01");
    let la = api
        .json("/v1/metrics?survey=shop&from=2026-12-21&to=2027-01-10&bucket=week&tz=America/Los_Angeles")
        .await;
    let n: Vec<i64> = la["overall"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["n"].as_i64().unwrap())
        .collect();
    // In Los Angeles the 02:00 UTC answer belongs to W53.
    assert_eq!(n, [1, 3, 1]);
    // W53 there: 10, 0, 0: NPS (1 − 2) / 3 = −33.3.
    assert!((nps(&la["overall"]["series"][1]) + 100.0 / 3.0).abs() < 1e-9);
}

#[tokio::test]
async fn segments_filter_and_break_down_by_a_property_and_comparison_weighs_the_noise() {
    let d = |day: &str| at(day, 12, 0);
    let mut events = Vec::new();
    // March: pro 8 promoters + 2 detractors (NPS 60); free 2 promoters + 8 detractors (NPS −60).
    for i in 0..10 {
        let pro = if i < 8 { 10 } else { 0 };
        let free = if i < 2 { 9 } else { 3 };
        events.push(answer(
            "checkout",
            pro,
            d("2026-03-10"),
            &[("plan", "pro")],
            None,
        ));
        events.push(answer(
            "checkout",
            free,
            d("2026-03-11"),
            &[("plan", "free")],
            None,
        ));
    }
    events.push(answer("support", 7, d("2026-03-12"), &[], None));
    // February: 5 promoters and 15 detractors on checkout (NPS −50).
    for i in 0..20 {
        events.push(answer(
            "checkout",
            if i < 5 { 10 } else { 0 },
            d("2026-02-10"),
            &[],
            None,
        ));
    }
    let api = Api::new(&events).await;
    let base = "/v1/metrics?survey=shop&from=2026-03-01&to=2026-03-31&bucket=month";
    let pro = api.json(&format!("{base}&segment=plan:pro")).await;
    assert_eq!(pro["read_from"], "responses");
    assert_eq!(pro["segment"]["plan"], "pro");
    assert_eq!(pro["overall"]["total"]["n"], 10);
    assert_eq!(nps(&pro["overall"]["total"]), 60.0);
    let grouped = api.json(&format!("{base}&group_by=plan")).await;
    let groups = &grouped["segments"]["groups"];
    assert_eq!(grouped["segments"]["property"], "plan");
    assert_eq!(nps(&groups["pro"]["total"]), 60.0);
    assert_eq!(nps(&groups["free"]["total"]), -60.0);
    assert_eq!(groups["(none)"]["total"]["n"], 1);
    assert_eq!(grouped["overall"]["total"]["n"], 21);

    // March checkout (20 answers: 10 promoters, 10 detractors, NPS 0) against February
    // (NPS −50): margins 196·sqrt(1/20) = 43.83 and 196·sqrt((.25+.75−.25)/20) = 37.96, combined
    // sqrt(43.83² + 37.96²) = 57.98 > 50: not significant.
    let cmp = api
        .json(
            "/v1/metrics?survey=shop&from=2026-03-01&to=2026-03-31&touchpoint=checkout\
             &compare_from=2026-02-01&compare_to=2026-02-28",
        )
        .await;
    let o = &cmp["comparison"]["overall"];
    assert_eq!(o["metric"], "nps");
    assert_eq!(o["current"]["value"], 0.0);
    assert_eq!(o["previous"]["value"], -50.0);
    assert_eq!(o["difference"], 50.0);
    let m = o["combined_margin_of_error"].as_f64().unwrap();
    assert!((m - 57.98).abs() < 0.01, "{m}");
    assert_eq!(o["significant"], false);
    assert_eq!(
        cmp["comparison"]["touchpoints"]["checkout"]["difference"],
        50.0
    );
    // compare=previous: the 31 days before March 1.
    let prev = api
        .json("/v1/metrics?survey=shop&from=2026-03-01&to=2026-03-31&compare=previous")
        .await;
    assert_eq!(prev["comparison"]["from"], "2026-01-29");
    assert_eq!(prev["comparison"]["to"], "2026-02-28");
    assert_eq!(prev["comparison"]["overall"]["previous"]["n"], 20);
}

#[tokio::test]
async fn bad_zones_segments_and_comparisons_are_refused_with_a_reason() {
    let api = Api::new(&[]).await;
    for (query, says) in [
        ("tz=Mars/Olympus", "IANA"),
        ("segment=plan", "property:value"),
        ("group_by=Not%20A%20Slug", "group_by"),
        ("compare=last-year", "previous"),
        ("compare_from=2026-01-01", "both"),
        ("has_comment=maybe", "true or false"),
        ("min_score=9&max_score=2", "above"),
    ] {
        let (status, message) = api.error(&format!("/v1/metrics?survey=shop&{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {message}");
        assert!(message.contains(says), "{query}: {message}");
    }
    for query in ["cursor=nope", "limit=0", "limit=501"] {
        let (status, _) = api
            .error(&format!("/v1/responses?survey=shop&{query}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }
}

#[tokio::test]
async fn responses_come_newest_first_in_cursor_pages_filtered_like_metrics() {
    let mut events = Vec::new();
    for i in 0..25 {
        let comment = (i % 2 == 0).then_some("because");
        events.push(answer(
            "checkout",
            i % 11,
            at("2026-05-01", 8, i),
            &[("plan", "pro")],
            comment,
        ));
    }
    events.push(answer(
        "support",
        10,
        at("2026-05-02", 8, 0),
        &[("plan", "free")],
        Some("great"),
    ));
    let api = Api::new(&events).await;
    let base = "/v1/responses?survey=shop&from=2026-05-01&to=2026-05-31&touchpoint=checkout&has_comment=true&limit=5";
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}&cursor={c}"),
            None => base.to_string(),
        };
        let page = api.json(&path).await;
        for r in page["responses"].as_array().unwrap() {
            assert_eq!(r["touchpoint"], "checkout");
            assert_eq!(r["comment"], "because");
            assert_eq!(r["properties"]["plan"], "pro");
            assert_eq!(r["stage"], "conversion");
            seen.push(r["answered_at"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    // 13 commented checkout answers (even minutes 0..24), newest first, none twice.
    assert_eq!(seen.len(), 13);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted);
    sorted.dedup();
    assert_eq!(sorted.len(), 13);
    // Local times come in the asked zone.
    let tokyo = api
        .json("/v1/responses?survey=shop&from=2026-05-01&to=2026-05-31&touchpoint=support&tz=Asia/Tokyo")
        .await;
    assert_eq!(
        tokyo["responses"][0]["local_time"],
        "2026-05-02T17:00:00+09:00"
    );
}

#[tokio::test]
async fn the_export_is_utf8_with_a_bom_and_neutralises_formula_cells() {
    let hostile = [
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
        "Très bien, 谢谢 😀, \"quoted\"\nsecond line",
    ];
    let events: Vec<ResponseEvent> = hostile
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // Property values may not hold control characters; the others go in as they are.
            let plan = if c.chars().any(char::is_control) {
                "pro"
            } else {
                c
            };
            answer(
                "checkout",
                9,
                at("2026-06-01", 9, i as i64),
                &[("plan", plan)],
                Some(c),
            )
        })
        .collect();
    let api = Api::new(&events).await;
    let (status, headers, body) = api
        .get("/v1/responses.csv?survey=shop&from=2026-06-01&to=2026-06-01")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("sondeo-shop-2026-06-01-2026-06-01.csv"));
    assert!(
        body.starts_with("\u{feff}".as_bytes()),
        "no byte-order mark"
    );
    let text = std::str::from_utf8(&body[3..]).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), hostile.len());
    for row in &rows {
        let comment = &row[col("comment")];
        let original = hostile
            .iter()
            .find(|h| comment == **h || comment.strip_prefix('\'') == Some(**h))
            .unwrap_or_else(|| panic!("unexpected cell {comment:?}"));
        let dangerous = matches!(
            original.chars().next(),
            Some('=' | '+' | '-' | '@' | '\t' | '\r')
        );
        assert_eq!(comment.starts_with('\''), dangerous, "{comment:?}");
        // Properties are one JSON cell: it starts with `{`, never a formula character.
        assert!(row[col("properties")].starts_with('{'));
        assert_eq!(&row[col("score")], "9");
    }
    // A bad query is refused before anything is streamed, as JSON.
    let (status, _) = api
        .error("/v1/responses.csv?survey=shop&tz=Nowhere/Land")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_export_past_its_limit_ends_with_the_cursor_to_continue_from() {
    let events: Vec<ResponseEvent> = (0..600)
        .map(|i| {
            answer(
                "checkout",
                i % 11,
                at("2026-07-01", 0, 0) + i * 1000,
                &[],
                None,
            )
        })
        .collect();
    // One byte: the export stops after its first page of 500.
    let limits = ExportLimits {
        bytes: Some(1),
        time: None,
    };
    let api = Api::with_limits(&events, limits).await;
    let path = "/v1/responses.csv?survey=shop&from=2026-07-01&to=2026-07-01";
    let (status, _, body) = api.get(path).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body[3..].to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Header, 500 rows, the continuation row.
    assert_eq!(lines.len(), 502, "{}", lines.last().unwrap());
    let last = lines[501];
    assert!(
        last.contains("# export continues: 500 rows so far"),
        "{last}"
    );
    let cursor = last
        .split("cursor=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    let (_, _, rest) = api.get(&format!("{path}&cursor={cursor}")).await;
    let rest = String::from_utf8(rest[3..].to_vec()).unwrap();
    // Header and the 100 older answers; the two parts hold every answer once.
    assert_eq!(rest.lines().count(), 101);
    let ids = |t: &str| -> Vec<String> {
        t.lines()
            .skip(1)
            .filter(|l| !l.starts_with('"') && !l.starts_with('#'))
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    let mut all = ids(&text);
    all.extend(ids(&rest));
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (600, 600));
}
