//! Reading stored responses: time zones, filters and segments, period comparison, and the
//! response pages the responses API, the CSV export and the dashboard show.
//!
//! Counters are kept per UTC day, so a report in UTC without segments reads counters. A report
//! in another time zone, or restricted to or grouped by a response property, is computed from
//! the stored responses of the range instead: each response is placed on its local day in the
//! asked zone and turned into the same counter rows, so one report builder serves both paths.

use crate::metrics::{source_slot, Histogram, Summary, AUTOMATED_SLOT};
use crate::report::{CounterRow, InvalidQuery};
use crate::response::ResponseEvent;
use crate::survey::{check_slug, JourneyStage, Survey, SurveyKind};
use crate::time::Day;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Most property filters in one query.
pub const MAX_SEGMENT_FILTERS: usize = 5;
/// Most groups a segment breakdown lists (the largest); the rest are summed in one group.
pub const MAX_SEGMENT_GROUPS: usize = 50;
/// The group of responses that lack the grouped property.
pub const NO_VALUE_GROUP: &str = "(none)";
/// The group holding the answers of the groups past [`MAX_SEGMENT_GROUPS`].
pub const OTHER_GROUP: &str = "(other)";

/// An IANA time zone that days, ranges and buckets are read in.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl Zone {
    /// UTC, the zone counters are kept in.
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    /// The zone with this IANA name (`Europe/Paris`, `America/New_York`, `UTC`).
    pub fn parse(name: &str) -> Result<Zone, InvalidQuery> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("utc") || name.eq_ignore_ascii_case("etc/utc") {
            return Ok(Zone::utc());
        }
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            return Err(InvalidQuery(
                "tz must be an IANA time zone name such as Europe/Paris".into(),
            ));
        }
        let tz = jiff::tz::TimeZone::get(name).map_err(|_| {
            InvalidQuery(format!(
                "'{name}' is not a known IANA time zone (for example Europe/Paris, America/New_York, UTC)"
            ))
        })?;
        Ok(Zone {
            name: tz.iana_name().unwrap_or(name).to_string(),
            tz,
        })
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether days in this zone are UTC days (so counters can answer).
    pub fn is_utc(&self) -> bool {
        self.name == "UTC"
    }

    /// The local day of an instant, Unix ms.
    pub fn day_of(&self, ms: i64) -> Day {
        if self.is_utc() {
            return Day::from_unix_ms(ms);
        }
        let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
            return Day::from_unix_ms(ms);
        };
        let date = ts.to_zoned(self.tz.clone()).date();
        Day::from_ymd(
            i32::from(date.year()),
            date.month() as u32,
            date.day() as u32,
        )
        .unwrap_or_else(|| Day::from_unix_ms(ms))
    }

    /// The first instant of a local day, Unix ms (the first valid time when midnight is skipped
    /// by a daylight-saving change).
    pub fn day_start_ms(&self, day: Day) -> i64 {
        let utc = i64::from(day.days()) * 86_400_000;
        if self.is_utc() {
            return utc;
        }
        let (y, m, d) = day.ymd();
        let start = i16::try_from(y)
            .ok()
            .and_then(|y| jiff::civil::Date::new(y, m as i8, d as i8).ok())
            .and_then(|date| date.to_zoned(self.tz.clone()).ok())
            .map(|z| z.timestamp().as_millisecond());
        start.unwrap_or(utc)
    }

    /// The local date and time of an instant, as RFC 3339 with its offset.
    pub fn local_time(&self, ms: i64) -> String {
        match jiff::Timestamp::from_millisecond(ms) {
            Ok(ts) => {
                let z = ts.to_zoned(self.tz.clone());
                z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
            }
            Err(_) => crate::time::rfc3339(ms),
        }
    }
}

/// Where a response page continues: the last response shown (answer time, record id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResponseCursor {
    /// Answer time of the last response shown, Unix ms.
    pub answered_at: i64,
    /// Record id of the last response shown.
    pub id: String,
}

impl ResponseCursor {
    /// The cursor's text form, as given to clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.answered_at, self.id)
    }

    /// Reads a cursor given by a client.
    pub fn decode(text: &str) -> Result<ResponseCursor, InvalidQuery> {
        let bad = || InvalidQuery("cursor is not one this API gave out".into());
        let (at, id) = text.split_once('.').ok_or_else(bad)?;
        let answered_at = at.parse::<i64>().map_err(|_| bad())?;
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(ResponseCursor {
            answered_at,
            id: id.to_string(),
        })
    }
}

/// One stored response: its current answer and whether it is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// Record id (the response key's digest).
    pub id: String,
    /// The answer the record holds, with comment and properties.
    pub event: ResponseEvent,
    /// Whether the answer is set aside as automated (a link scanner) instead of counted.
    pub automated: bool,
}

impl StoredResponse {
    /// The cursor that continues after this response.
    pub fn cursor(&self) -> ResponseCursor {
        ResponseCursor {
            answered_at: self.event.answered_at,
            id: self.id.clone(),
        }
    }

    /// What this response adds to a counter: its score slot and source, or one automated answer.
    pub fn contribution(&self, kind: SurveyKind) -> Histogram {
        let mut h = Histogram::default();
        if self.automated {
            h.slots.insert(AUTOMATED_SLOT, 1);
            return h;
        }
        h.record(kind, self.event.score);
        h.slots.insert(source_slot(self.event.source), 1);
        h
    }
}

/// Which responses a query covers besides its date range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFilter {
    /// Only this touchpoint.
    pub touchpoint: Option<String>,
    /// Only touchpoints of this stage.
    pub stage: Option<JourneyStage>,
    /// Only this send (None: every send).
    pub send: Option<String>,
    /// Only responses whose properties have these values.
    pub properties: Vec<(String, String)>,
    /// Only responses with (true) or without (false) a comment.
    pub has_comment: Option<bool>,
    /// Only scores in this range, inclusive.
    pub scores: Option<(i64, i64)>,
}

impl ResponseFilter {
    /// Reads `segment=plan:pro,country:FR` (every pair must match).
    pub fn parse_segment(text: &str) -> Result<Vec<(String, String)>, InvalidQuery> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once(':').ok_or_else(|| {
                InvalidQuery(format!(
                    "segment '{part}' must be property:value, for example plan:pro"
                ))
            })?;
            check_slug("segment property", k.trim()).map_err(InvalidQuery)?;
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
        if out.len() > MAX_SEGMENT_FILTERS {
            return Err(InvalidQuery(format!(
                "at most {MAX_SEGMENT_FILTERS} segment filters may be combined"
            )));
        }
        Ok(out)
    }

    /// Whether the filter restricts anything counters cannot tell (properties, comments, scores).
    pub fn needs_responses(&self) -> bool {
        !self.properties.is_empty() || self.has_comment.is_some() || self.scores.is_some()
    }

    /// Checks the filter against the survey.
    pub fn validate(&self, survey: &Survey) -> Result<(), InvalidQuery> {
        if let Some(tp) = &self.touchpoint {
            survey.require_touchpoint(tp).map_err(InvalidQuery)?;
        }
        if let Some((lo, hi)) = self.scores {
            if lo > hi {
                return Err(InvalidQuery(format!(
                    "min_score ({lo}) is above max_score ({hi})"
                )));
            }
        }
        Ok(())
    }

    /// Whether a response passes the filter.
    pub fn matches(&self, survey: &Survey, r: &StoredResponse) -> bool {
        let e = &r.event;
        if self.touchpoint.as_ref().is_some_and(|t| *t != e.touchpoint) {
            return false;
        }
        if let Some(stage) = self.stage {
            if survey.touchpoint(&e.touchpoint).and_then(|t| t.stage) != Some(stage) {
                return false;
            }
        }
        if self.send.as_ref().is_some_and(|s| *s != e.send) {
            return false;
        }
        if let Some(want) = self.has_comment {
            let has = e.has_comment();
            if has != want {
                return false;
            }
        }
        if let Some((lo, hi)) = self.scores {
            if r.automated || e.score < lo || e.score > hi {
                return false;
            }
        }
        self.properties
            .iter()
            .all(|(k, v)| e.properties.get(k).is_some_and(|x| x == v))
    }
}

/// Counter rows built from responses: one per touchpoint and local day.
#[derive(Debug, Default)]
pub struct RowBuilder {
    rows: HashMap<(String, Day), Histogram>,
}

impl RowBuilder {
    /// Adds one response on its local day in `zone`.
    pub fn add(&mut self, kind: SurveyKind, zone: &Zone, r: &StoredResponse) {
        let day = zone.day_of(r.event.answered_at);
        self.rows
            .entry((r.event.touchpoint.clone(), day))
            .or_default()
            .merge(&r.contribution(kind));
    }

    /// The rows, as counters would hold them (the row of every send).
    pub fn finish(self) -> Vec<CounterRow> {
        let mut rows: Vec<CounterRow> = self
            .rows
            .into_iter()
            .map(|((touchpoint, day), histogram)| CounterRow {
                touchpoint,
                send: String::new(),
                day,
                histogram,
            })
            .collect();
        rows.sort_by(|a, b| (a.day, &a.touchpoint).cmp(&(b.day, &b.touchpoint)));
        rows
    }
}

/// Counter rows per value of one property, from responses.
#[derive(Debug)]
pub struct SegmentBuilder {
    /// The property grouped by.
    pub property: String,
    groups: BTreeMap<String, RowBuilder>,
    counts: BTreeMap<String, i64>,
}

impl SegmentBuilder {
    /// A breakdown by `property`.
    pub fn new(property: &str) -> Result<SegmentBuilder, InvalidQuery> {
        check_slug("group_by property", property).map_err(InvalidQuery)?;
        Ok(SegmentBuilder {
            property: property.to_string(),
            groups: BTreeMap::new(),
            counts: BTreeMap::new(),
        })
    }

    /// Adds one response to its group.
    pub fn add(&mut self, kind: SurveyKind, zone: &Zone, r: &StoredResponse) {
        let value = r
            .event
            .properties
            .get(&self.property)
            .cloned()
            .unwrap_or_else(|| NO_VALUE_GROUP.to_string());
        *self.counts.entry(value.clone()).or_default() += 1;
        self.groups.entry(value).or_default().add(kind, zone, r);
    }

    /// Each group's rows; past [`MAX_SEGMENT_GROUPS`], the smallest groups are merged into
    /// [`OTHER_GROUP`].
    pub fn finish(self) -> BTreeMap<String, Vec<CounterRow>> {
        let mut by_size: Vec<(&String, &i64)> = self.counts.iter().collect();
        by_size.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let keep: Vec<String> = by_size
            .iter()
            .take(MAX_SEGMENT_GROUPS)
            .map(|(k, _)| (*k).clone())
            .collect();
        let mut out = BTreeMap::new();
        let mut other: Vec<CounterRow> = Vec::new();
        for (value, builder) in self.groups {
            if keep.contains(&value) {
                out.insert(value, builder.finish());
            } else {
                other.extend(builder.finish());
            }
        }
        if !other.is_empty() {
            out.insert(OTHER_GROUP.to_string(), other);
        }
        out
    }
}

/// A survey kind's headline metric over one period, with its 95% margin of error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    /// The metric's name (`nps`, `satisfied_pct`, `agree_pct`, `yes_pct`, `mean`).
    pub metric: &'static str,
    /// Its value (absent without answers).
    pub value: Option<f64>,
    /// Its 95% margin of error (absent without answers).
    pub margin_of_error: Option<f64>,
    /// Answers counted.
    pub n: i64,
}

/// The headline metric of a histogram, with its margin of error.
pub fn headline(kind: SurveyKind, h: &Histogram) -> Headline {
    let n = h.n;
    let share = |lo: i64, hi: i64| -> (Option<f64>, Option<f64>) {
        if n <= 0 {
            return (None, None);
        }
        let k: i64 = h
            .score_slots()
            .filter(|(slot, _)| {
                let s = i64::from(**slot);
                (lo..=hi).contains(&s)
            })
            .map(|(_, c)| *c)
            .sum();
        let p = k as f64 / n as f64;
        (
            Some(100.0 * p),
            Some(100.0 * 1.96 * (p * (1.0 - p) / n as f64).sqrt()),
        )
    };
    let (metric, (value, moe)) = match kind {
        SurveyKind::Nps => {
            let s = crate::metrics::summarize(kind, h);
            ("nps", (s.nps, s.margin_of_error))
        }
        SurveyKind::Csat => ("satisfied_pct", share(4, 5)),
        SurveyKind::Ces => ("agree_pct", share(5, 7)),
        SurveyKind::YesNo => ("yes_pct", share(1, 1)),
        SurveyKind::Likert5 | SurveyKind::Likert7 => ("mean", mean_and_margin(h)),
        SurveyKind::Duration => {
            let mean = (n > 0).then(|| h.sum as f64 / n as f64);
            ("mean", (mean, None))
        }
    };
    Headline {
        metric,
        value,
        margin_of_error: moe,
        n,
    }
}

/// Mean score and its 95% margin of error (1.96 · sd / √n), for scores that are their own slot.
fn mean_and_margin(h: &Histogram) -> (Option<f64>, Option<f64>) {
    if h.n <= 0 {
        return (None, None);
    }
    let n = h.n as f64;
    let mean = h.sum as f64 / n;
    if h.n < 2 {
        return (Some(mean), None);
    }
    let ss: f64 = h
        .score_slots()
        .map(|(slot, c)| *c as f64 * (f64::from(*slot) - mean).powi(2))
        .sum();
    let sd = (ss / (n - 1.0)).sqrt();
    (Some(mean), Some(1.96 * sd / n.sqrt()))
}

/// One metric over two periods: the difference and whether it exceeds the combined margin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The metric compared.
    pub metric: &'static str,
    /// This period.
    pub current: Headline,
    /// The period compared with.
    pub previous: Headline,
    /// current − previous (absent when either has no answers).
    pub difference: Option<f64>,
    /// The combined 95% margin of error of the difference: √(m₁² + m₂²).
    pub combined_margin_of_error: Option<f64>,
    /// Whether |difference| exceeds the combined margin (absent when it cannot be told).
    pub significant: Option<bool>,
}

/// Compares a metric between two periods' histograms.
pub fn compare(kind: SurveyKind, current: &Histogram, previous: &Histogram) -> Comparison {
    let (c, p) = (headline(kind, current), headline(kind, previous));
    let difference = c.value.zip(p.value).map(|(a, b)| a - b);
    let combined = c
        .margin_of_error
        .zip(p.margin_of_error)
        .map(|(a, b)| (a * a + b * b).sqrt());
    let significant = difference.zip(combined).map(|(d, m)| d.abs() > m);
    Comparison {
        metric: c.metric,
        current: c,
        previous: p,
        difference,
        combined_margin_of_error: combined,
        significant,
    }
}

/// The histogram of counter rows in `from..=to`.
pub fn total_of(
    rows: &[CounterRow],
    from: Day,
    to: Day,
    pick: impl Fn(&CounterRow) -> bool,
) -> Histogram {
    let mut h = Histogram::default();
    for r in rows
        .iter()
        .filter(|r| r.day >= from && r.day <= to && pick(r))
    {
        h.merge(&r.histogram);
    }
    h
}

/// The headline value of a summary, for tables and charts.
pub fn headline_value(kind: SurveyKind, s: &Summary) -> Option<f64> {
    match kind {
        SurveyKind::Nps => s.nps,
        SurveyKind::Csat => s.satisfied_pct,
        SurveyKind::Ces => s.agree_pct,
        SurveyKind::YesNo => s.yes_pct,
        _ => s.mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::Source;

    fn ms(y: i32, m: u32, d: u32, hh: i64, mm: i64) -> i64 {
        i64::from(Day::from_ymd(y, m, d).unwrap().days()) * 86_400_000 + (hh * 60 + mm) * 60_000
    }

    fn day(s: &str) -> Day {
        s.parse().unwrap()
    }

    #[test]
    fn local_days_follow_the_zone_across_daylight_saving_changes() {
        let ny = Zone::parse("America/New_York").unwrap();
        // 2026-03-08: clocks go from 02:00 EST to 03:00 EDT. Midnight is EST (UTC−5).
        assert_eq!(ny.day_start_ms(day("2026-03-08")), ms(2026, 3, 8, 5, 0));
        // The next midnight is EDT (UTC−4): that local day lasted 23 hours.
        assert_eq!(ny.day_start_ms(day("2026-03-09")), ms(2026, 3, 9, 4, 0));
        // 2026-11-01: back to EST; that day lasted 25 hours.
        assert_eq!(ny.day_start_ms(day("2026-11-01")), ms(2026, 11, 1, 4, 0));
        assert_eq!(ny.day_start_ms(day("2026-11-02")), ms(2026, 11, 2, 5, 0));
        // 03:30 UTC on the 9th is still the 8th in New York (23:30 EDT).
        assert_eq!(ny.day_of(ms(2026, 3, 9, 3, 30)), day("2026-03-08"));
        assert_eq!(ny.day_of(ms(2026, 3, 9, 4, 0)), day("2026-03-09"));
        // 04:30 UTC on Nov 2 is 23:30 EST on Nov 1.
        assert_eq!(ny.day_of(ms(2026, 11, 2, 4, 30)), day("2026-11-01"));
        assert_eq!(
            ny.local_time(ms(2026, 3, 9, 3, 30)),
            "2026-03-08T23:30:00-04:00"
        );
    }

    #[test]
    fn a_zone_east_of_utc_starts_its_day_the_evening_before_in_utc() {
        let kolkata = Zone::parse("Asia/Kolkata").unwrap();
        assert_eq!(
            kolkata.day_start_ms(day("2027-01-01")),
            ms(2026, 12, 31, 18, 30)
        );
        assert_eq!(kolkata.day_of(ms(2026, 12, 31, 18, 30)), day("2027-01-01"));
        assert_eq!(kolkata.day_of(ms(2026, 12, 31, 18, 29)), day("2026-12-31"));
        assert!(Zone::parse("utc").unwrap().is_utc());
        assert!(Zone::parse("Mars/Olympus").unwrap_err().0.contains("IANA"));
        assert!(Zone::parse("").is_err());
    }

    #[test]
    fn cursors_round_trip_and_foreign_text_is_refused() {
        let c = ResponseCursor {
            answered_at: 1_700_000_000_000,
            id: "ab12".into(),
        };
        assert_eq!(ResponseCursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "x.ab", "12", "12.", "12.zz", "12.ab;drop"] {
            assert!(ResponseCursor::decode(bad).is_err(), "{bad}");
        }
    }

    fn resp(tp: &str, score: i64, at: i64, props: &[(&str, &str)]) -> StoredResponse {
        StoredResponse {
            id: format!("{at:x}"),
            event: ResponseEvent {
                event_id: format!("e{at}"),
                survey: "s".into(),
                touchpoint: tp.into(),
                respondent: "r".into(),
                kind: SurveyKind::Nps,
                score,
                comment: None,
                properties: props
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                answered_at: at,
                source: Source::Link,
                send: String::new(),
                click: false,
            },
            automated: false,
        }
    }

    #[test]
    fn rows_from_responses_land_on_local_days_and_count_like_counters() {
        let ny = Zone::parse("America/New_York").unwrap();
        let mut b = RowBuilder::default();
        // 02:00 UTC Nov 2 = 21:00 EST Nov 1; 12:00 UTC Nov 2 = 07:00 EST Nov 2.
        b.add(
            SurveyKind::Nps,
            &ny,
            &resp("buy", 10, ms(2026, 11, 2, 2, 0), &[]),
        );
        b.add(
            SurveyKind::Nps,
            &ny,
            &resp("buy", 0, ms(2026, 11, 2, 12, 0), &[]),
        );
        let mut auto = resp("buy", 3, ms(2026, 11, 2, 13, 0), &[]);
        auto.automated = true;
        b.add(SurveyKind::Nps, &ny, &auto);
        let rows = b.finish();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].day, rows[0].histogram.n), (day("2026-11-01"), 1));
        assert_eq!(rows[1].histogram.n, 1);
        assert_eq!(rows[1].histogram.automated(), 1);
        assert_eq!(rows[1].histogram.by_source()["link"], 1);
    }

    #[test]
    fn segments_filter_and_group_by_property() {
        let f = ResponseFilter {
            properties: ResponseFilter::parse_segment("plan:pro, country:FR").unwrap(),
            ..Default::default()
        };
        let s = Survey {
            id: "s".into(),
            kind: SurveyKind::Nps,
            question: "Q?".into(),
            follow_up: String::new(),
            locale: crate::survey::Locale::En,
            touchpoints: vec![crate::survey::Touchpoint {
                slug: "buy".into(),
                stage: None,
            }],
            public_key: None,
            brand: None,
            frequency_cap_days: None,
        };
        assert!(f.matches(
            &s,
            &resp("buy", 9, 1, &[("plan", "pro"), ("country", "FR")])
        ));
        assert!(!f.matches(&s, &resp("buy", 9, 1, &[("plan", "pro")])));
        assert!(ResponseFilter::parse_segment("plan").is_err());
        assert!(ResponseFilter::parse_segment("Bad Key:x").is_err());

        let mut g = SegmentBuilder::new("plan").unwrap();
        let utc = Zone::utc();
        g.add(
            SurveyKind::Nps,
            &utc,
            &resp("buy", 10, 1, &[("plan", "pro")]),
        );
        g.add(
            SurveyKind::Nps,
            &utc,
            &resp("buy", 0, 2, &[("plan", "free")]),
        );
        g.add(SurveyKind::Nps, &utc, &resp("buy", 0, 3, &[]));
        let groups = g.finish();
        assert_eq!(groups.keys().collect::<Vec<_>>(), ["(none)", "free", "pro"]);
        assert_eq!(groups["pro"][0].histogram.n, 1);
    }

    fn nps_hist(p: i64, pa: i64, d: i64) -> Histogram {
        let mut h = Histogram::default();
        for (score, k) in [(10, p), (8, pa), (0, d)] {
            for _ in 0..k {
                h.record(SurveyKind::Nps, score);
            }
        }
        h
    }

    #[test]
    fn comparison_tells_a_real_change_from_noise() {
        // 60/20/20 of 100 (NPS 40, moe 196·sqrt((.8−.16)/100) = 15.68) against 40/20/40 of 100
        // (NPS 0, moe 196·sqrt(.8/100) = 17.53): difference 40 > √(15.68² + 17.53²) = 23.52.
        let c = compare(
            SurveyKind::Nps,
            &nps_hist(60, 20, 20),
            &nps_hist(40, 20, 40),
        );
        assert_eq!(c.metric, "nps");
        assert!((c.difference.unwrap() - 40.0).abs() < 1e-9);
        let m = c.combined_margin_of_error.unwrap();
        assert!((m - 23.52).abs() < 0.01, "{m}");
        assert_eq!(c.significant, Some(true));
        // 6/2/2 against 4/2/4: the same shares on 10 answers each are within the noise.
        let small = compare(SurveyKind::Nps, &nps_hist(6, 2, 2), &nps_hist(4, 2, 4));
        assert_eq!(small.significant, Some(false));
        // No answers before: no difference to judge.
        let none = compare(SurveyKind::Nps, &nps_hist(6, 2, 2), &Histogram::default());
        assert_eq!((none.difference, none.significant), (None, None));
    }

    #[test]
    fn shares_and_means_have_hand_computed_margins() {
        // CSAT: 75 of 100 satisfied: 196·sqrt(.75·.25/100) = 8.487.
        let mut h = Histogram::default();
        for (score, k) in [(5, 50), (4, 25), (2, 25)] {
            for _ in 0..k {
                h.record(SurveyKind::Csat, score);
            }
        }
        let c = headline(SurveyKind::Csat, &h);
        assert!((c.value.unwrap() - 75.0).abs() < 1e-9);
        assert!((c.margin_of_error.unwrap() - 8.487).abs() < 0.001);
        // Likert 5: scores 1, 3, 5: mean 3, sd 2, moe 1.96·2/√3 = 2.263.
        let mut l = Histogram::default();
        for s in [1, 3, 5] {
            l.record(SurveyKind::Likert5, s);
        }
        let m = headline(SurveyKind::Likert5, &l);
        assert!((m.value.unwrap() - 3.0).abs() < 1e-9);
        assert!((m.margin_of_error.unwrap() - 2.263).abs() < 0.001);
    }
}
