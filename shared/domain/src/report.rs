//! Metrics reports: counter rows merged per touchpoint, journey stage and whole survey, over a
//! date range, in day, week or month buckets.

use crate::metrics::{summarize, Histogram, Summary};
use crate::survey::{JourneyStage, Survey, SurveyKind};
use crate::time::{Bucket, Day};
use serde::Serialize;
use std::collections::BTreeMap;

/// One counter item: the histogram of a touchpoint on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRow {
    /// Touchpoint slug.
    pub touchpoint: String,
    /// The send this row counts alone (empty: the row of every send).
    pub send: String,
    /// UTC day the answers were given.
    pub day: Day,
    /// Score histogram.
    pub histogram: Histogram,
}

/// Splits a stored touchpoint (`slug` or `slug#send`, see `CounterKey::stored_touchpoint`) into
/// the slug and the send.
pub fn split_stored_touchpoint(stored: &str) -> (String, String) {
    match stored.split_once('#') {
        Some((tp, send)) => (tp.to_string(), send.to_string()),
        None => (stored.to_string(), String::new()),
    }
}

/// Longest range a report may span, in days (ten years).
pub const MAX_RANGE_DAYS: i32 = 3660;

/// What a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// First day, inclusive.
    pub from: Day,
    /// Last day, inclusive.
    pub to: Day,
    /// Series bucket size.
    pub bucket: Bucket,
    /// Only this touchpoint.
    pub touchpoint: Option<String>,
    /// Only touchpoints of this stage.
    pub stage: Option<JourneyStage>,
}

/// A range or filter that cannot be reported on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidQuery(pub String);

impl ReportQuery {
    /// Checks the range and filters against the survey.
    pub fn validate(&self, survey: &Survey) -> Result<(), InvalidQuery> {
        if self.from > self.to {
            return Err(InvalidQuery(format!(
                "from ({}) is after to ({})",
                self.from, self.to
            )));
        }
        if self.to.days() - self.from.days() >= MAX_RANGE_DAYS {
            return Err(InvalidQuery(format!(
                "the range may span at most {MAX_RANGE_DAYS} days"
            )));
        }
        if let Some(tp) = &self.touchpoint {
            survey.require_touchpoint(tp).map_err(InvalidQuery)?;
        }
        Ok(())
    }
}

/// Metrics of one group (the whole survey, a touchpoint or a stage): the total and a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    /// The journey stage, for touchpoints that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<JourneyStage>,
    /// Metrics over the whole range.
    pub total: Summary,
    /// Metrics per bucket, one entry per bucket in the range (empty buckets included).
    pub series: Vec<Point>,
}

/// Metrics of one bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// First day of the bucket.
    pub start: Day,
    /// The bucket's ISO week (`2026-W53`), for week buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub week: Option<String>,
    /// Metrics of the bucket.
    #[serde(flatten)]
    pub summary: Summary,
}

/// A full metrics report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Survey id.
    pub survey: String,
    /// Survey kind.
    pub kind: SurveyKind,
    /// First day.
    pub from: Day,
    /// Last day.
    pub to: Day,
    /// Bucket size of the series.
    pub bucket: Bucket,
    /// The whole survey (after filters).
    pub overall: GroupReport,
    /// Per touchpoint.
    pub touchpoints: BTreeMap<String, GroupReport>,
    /// Per journey stage.
    pub stages: BTreeMap<String, GroupReport>,
}

#[derive(Default)]
struct Acc {
    total: Histogram,
    buckets: BTreeMap<Day, Histogram>,
}

impl Acc {
    fn add(&mut self, start: Day, h: &Histogram) {
        self.total.merge(h);
        self.buckets.entry(start).or_default().merge(h);
    }

    fn finish(
        self,
        kind: SurveyKind,
        starts: &[Day],
        stage: Option<JourneyStage>,
        bucket: Bucket,
    ) -> GroupReport {
        let empty = Histogram::default();
        GroupReport {
            stage,
            total: summarize(kind, &self.total),
            series: starts
                .iter()
                .map(|s| Point {
                    start: *s,
                    week: (bucket == Bucket::Week).then(|| s.iso_week()),
                    summary: summarize(kind, self.buckets.get(s).unwrap_or(&empty)),
                })
                .collect(),
        }
    }
}

/// Builds the report of a survey from its counter rows.
pub fn build_report(survey: &Survey, rows: &[CounterRow], q: &ReportQuery) -> Report {
    let stage_of = |tp: &str| survey.touchpoint(tp).and_then(|t| t.stage);
    let mut starts = Vec::new();
    let mut d = q.from.bucket_start(q.bucket);
    while d <= q.to {
        starts.push(d);
        d = match q.bucket {
            Bucket::Day => d.plus(1),
            Bucket::Week => d.plus(7),
            Bucket::Month => d.plus(32).month_start(),
        };
    }
    let mut overall = Acc::default();
    let mut touchpoints: BTreeMap<String, Acc> = BTreeMap::new();
    let mut stages: BTreeMap<JourneyStage, Acc> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.day >= q.from && r.day <= q.to) {
        let stage = stage_of(&row.touchpoint);
        if q.touchpoint.as_ref().is_some_and(|t| *t != row.touchpoint)
            || q.stage.is_some_and(|s| stage != Some(s))
        {
            continue;
        }
        let start = row.day.bucket_start(q.bucket);
        overall.add(start, &row.histogram);
        touchpoints
            .entry(row.touchpoint.clone())
            .or_default()
            .add(start, &row.histogram);
        if let Some(s) = stage {
            stages.entry(s).or_default().add(start, &row.histogram);
        }
    }
    // Every touchpoint of the survey is listed (after filters), with zeros if it has no answers.
    for t in &survey.touchpoints {
        let keep = q.touchpoint.as_ref().is_none_or(|x| *x == t.slug)
            && q.stage.is_none_or(|s| t.stage == Some(s));
        if keep {
            touchpoints.entry(t.slug.clone()).or_default();
        }
    }
    Report {
        survey: survey.id.clone(),
        kind: survey.kind,
        from: q.from,
        to: q.to,
        bucket: q.bucket,
        overall: overall.finish(survey.kind, &starts, None, q.bucket),
        touchpoints: touchpoints
            .into_iter()
            .map(|(tp, acc)| {
                let stage = stage_of(&tp);
                (tp, acc.finish(survey.kind, &starts, stage, q.bucket))
            })
            .collect(),
        stages: stages
            .into_iter()
            .map(|(s, acc)| {
                (
                    s.as_str().to_string(),
                    acc.finish(survey.kind, &starts, Some(s), q.bucket),
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::survey::{Locale, Touchpoint};

    fn survey() -> Survey {
        Survey {
            id: "s".into(),
            kind: SurveyKind::Nps,
            question: "Q?".into(),
            follow_up: String::new(),
            locale: Locale::En,
            touchpoints: vec![
                Touchpoint {
                    slug: "buy".into(),
                    stage: Some(JourneyStage::Conversion),
                },
                Touchpoint {
                    slug: "help".into(),
                    stage: Some(JourneyStage::Retention),
                },
                Touchpoint {
                    slug: "renew".into(),
                    stage: Some(JourneyStage::Retention),
                },
            ],
            public_key: None,
            brand: None,
            frequency_cap_days: None,
        }
    }

    fn row(tp: &str, day: &str, scores: &[i64]) -> CounterRow {
        let mut h = Histogram::default();
        for s in scores {
            h.record(SurveyKind::Nps, *s);
        }
        CounterRow {
            touchpoint: tp.into(),
            send: String::new(),
            day: day.parse().unwrap(),
            histogram: h,
        }
    }

    fn q(from: &str, to: &str, bucket: Bucket) -> ReportQuery {
        ReportQuery {
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            bucket,
            touchpoint: None,
            stage: None,
        }
    }

    #[test]
    fn report_merges_touchpoints_stages_and_weeks() {
        let rows = vec![
            row("buy", "2026-11-02", &[10, 9]), // Monday, week 1
            row("help", "2026-11-03", &[0]),    // week 1
            row("renew", "2026-11-10", &[10]),  // week 2
            row("buy", "2026-10-30", &[0, 0]),  // before the range
        ];
        let r = build_report(
            &survey(),
            &rows,
            &q("2026-11-01", "2026-11-14", Bucket::Week),
        );
        assert_eq!(r.overall.total.n, 4);
        assert_eq!(r.overall.total.nps, Some(50.0));
        assert_eq!(r.stages["retention"].total.n, 2);
        assert_eq!(r.stages["conversion"].total.nps, Some(100.0));
        // Buckets start on the Monday on or before `from`: Oct 26, Nov 2, Nov 9.
        let starts: Vec<String> = r
            .overall
            .series
            .iter()
            .map(|p| p.start.to_string())
            .collect();
        assert_eq!(starts, ["2026-10-26", "2026-11-02", "2026-11-09"]);
        assert_eq!(r.overall.series[1].summary.n, 3);
        assert_eq!(r.touchpoints["renew"].series[2].summary.n, 1);
    }

    #[test]
    fn filters_restrict_every_group_and_empty_touchpoints_still_show() {
        let rows = vec![
            row("buy", "2026-11-02", &[10]),
            row("help", "2026-11-02", &[0]),
        ];
        let mut query = q("2026-11-01", "2026-11-30", Bucket::Month);
        query.stage = Some(JourneyStage::Retention);
        let r = build_report(&survey(), &rows, &query);
        assert_eq!(r.overall.total.n, 1);
        assert_eq!(r.touchpoints.keys().collect::<Vec<_>>(), ["help", "renew"]);
        assert_eq!(r.touchpoints["renew"].total.n, 0);
        assert_eq!(r.overall.series.len(), 1);
    }

    #[test]
    fn bad_ranges_and_unknown_touchpoints_are_refused() {
        assert!(q("2026-11-02", "2026-11-01", Bucket::Day)
            .validate(&survey())
            .is_err());
        assert!(q("2000-01-01", "2026-11-01", Bucket::Day)
            .validate(&survey())
            .is_err());
        let mut x = q("2026-11-01", "2026-11-02", Bucket::Day);
        x.touchpoint = Some("nope".into());
        assert!(x
            .validate(&survey())
            .unwrap_err()
            .0
            .contains("not part of survey"));
    }
}
