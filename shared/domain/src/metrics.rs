//! Metric math: every metric is computed at read time from a histogram of scores.

use crate::response::Source;
use crate::survey::SurveyKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts of responses per score slot, with their number and sum; merges by adding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Number of responses.
    pub n: i64,
    /// Sum of the raw scores (exact, so means are exact even for durations).
    pub sum: i64,
    /// Responses per slot (the score itself, or a duration bucket).
    pub slots: BTreeMap<u16, i64>,
}

/// First of the slots that count something other than scores: answers set aside as automated,
/// and counted answers per source. Score slots stay far below it (durations use about 60).
pub const TAG_SLOT_BASE: u16 = 65_000;
/// The slot counting answers set aside as automated (a link scanner's burst of clicks).
pub const AUTOMATED_SLOT: u16 = TAG_SLOT_BASE;

/// The slot counting the counted answers from a source.
pub fn source_slot(source: Source) -> u16 {
    TAG_SLOT_BASE
        + 1
        + match source {
            Source::Link => 0,
            Source::Campaign => 1,
            Source::Api => 2,
            Source::Webhook => 3,
            Source::Import => 4,
        }
}

impl Histogram {
    /// Slots that count scores (not tags), with their counts.
    pub fn score_slots(&self) -> impl Iterator<Item = (&u16, &i64)> {
        self.slots.range(..TAG_SLOT_BASE)
    }

    /// Answers set aside as automated.
    pub fn automated(&self) -> i64 {
        self.slots.get(&AUTOMATED_SLOT).copied().unwrap_or(0)
    }

    /// Counted answers per source, for the sources that have any.
    pub fn by_source(&self) -> BTreeMap<String, i64> {
        Source::ALL
            .iter()
            .filter_map(|s| {
                let c = self.slots.get(&source_slot(*s)).copied().unwrap_or(0);
                (c != 0).then(|| (s.as_str().to_string(), c))
            })
            .collect()
    }

    /// Adds one response with this score.
    pub fn record(&mut self, kind: SurveyKind, score: i64) {
        self.n += 1;
        self.sum = self.sum.saturating_add(score);
        *self.slots.entry(kind.slot(score)).or_default() += 1;
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        // Saturating: a damaged stored value degrades one figure instead of failing the read.
        self.n = self.n.saturating_add(other.n);
        self.sum = self.sum.saturating_add(other.sum);
        for (slot, count) in &other.slots {
            let c = self.slots.entry(*slot).or_default();
            *c = c.saturating_add(*count);
        }
        self.slots.retain(|_, c| *c != 0);
    }

    /// Responses in slots `lo..=hi`.
    fn count_between(&self, lo: u16, hi: u16) -> i64 {
        self.slots
            .range(lo..=hi)
            .fold(0i64, |acc, (_, c)| acc.saturating_add(*c))
    }
}

/// Metrics read from one histogram; fields that do not apply to the kind are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of responses.
    pub n: i64,
    /// Mean score (seconds, for durations); absent without responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Net Promoter Score, −100..100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nps: Option<f64>,
    /// 95% margin of error of the NPS, in NPS points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin_of_error: Option<f64>,
    /// Responses scoring 9–10 (NPS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoters: Option<i64>,
    /// Responses scoring 7–8 (NPS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passives: Option<i64>,
    /// Responses scoring 0–6 (NPS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detractors: Option<i64>,
    /// Percentage of 4–5 answers (CSAT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub satisfied_pct: Option<f64>,
    /// Percentage of 5–7 answers (CES).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agree_pct: Option<f64>,
    /// Percentage of yes answers (yes/no).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yes_pct: Option<f64>,
    /// Median duration in seconds, from the log-scale buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median: Option<f64>,
    /// 90th percentile duration in seconds, from the log-scale buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90: Option<f64>,
    /// Responses per score (per bucket floor in seconds, for durations).
    pub distribution: BTreeMap<String, i64>,
    /// Counted responses per source (link, campaign, api, webhook); answers recorded before
    /// sources were counted are in `n` only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, i64>,
    /// Answers set aside as automated (link scanners), not in `n`.
    #[serde(default)]
    pub automated: i64,
}

/// 95% margin of error of an NPS: 100 × 1.96 × sqrt((p + d − (p − d)²) / n).
pub fn nps_margin_of_error(promoters: i64, detractors: i64, n: i64) -> f64 {
    if n <= 0 {
        return 0.0;
    }
    let (p, d, n) = (
        promoters as f64 / n as f64,
        detractors as f64 / n as f64,
        n as f64,
    );
    let variance = (p + d - (p - d).powi(2)).max(0.0);
    100.0 * 1.96 * (variance / n).sqrt()
}

/// Computes the metrics of a survey kind from a histogram.
pub fn summarize(kind: SurveyKind, h: &Histogram) -> Summary {
    let mut s = Summary {
        n: h.n,
        mean: None,
        nps: None,
        margin_of_error: None,
        promoters: None,
        passives: None,
        detractors: None,
        satisfied_pct: None,
        agree_pct: None,
        yes_pct: None,
        median: None,
        p90: None,
        distribution: distribution(kind, h),
        sources: h.by_source(),
        automated: h.automated(),
    };
    if h.n <= 0 {
        return s;
    }
    let n = h.n as f64;
    let pct = |count: i64| 100.0 * count as f64 / n;
    s.mean = Some(h.sum as f64 / n);
    match kind {
        SurveyKind::Nps => {
            let (p, pa, d) = (
                h.count_between(9, 10),
                h.count_between(7, 8),
                h.count_between(0, 6),
            );
            s.nps = Some(100.0 * (p as f64 - d as f64) / n);
            s.margin_of_error = Some(nps_margin_of_error(p, d, h.n));
            s.promoters = Some(p);
            s.passives = Some(pa);
            s.detractors = Some(d);
        }
        SurveyKind::Csat => s.satisfied_pct = Some(pct(h.count_between(4, 5))),
        SurveyKind::Ces => s.agree_pct = Some(pct(h.count_between(5, 7))),
        SurveyKind::YesNo => s.yes_pct = Some(pct(h.count_between(1, 1))),
        SurveyKind::Likert5 | SurveyKind::Likert7 => {}
        SurveyKind::Duration => {
            s.median = duration_quantile(h, 0.5);
            s.p90 = duration_quantile(h, 0.9);
        }
    }
    s
}

fn distribution(kind: SurveyKind, h: &Histogram) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    if kind.is_discrete() {
        let (min, max) = kind.range();
        for score in min..=max {
            out.insert(
                score.to_string(),
                h.slots.get(&kind.slot(score)).copied().unwrap_or(0),
            );
        }
    } else {
        for (slot, count) in h.score_slots() {
            out.insert(kind.slot_floor(*slot).to_string(), *count);
        }
    }
    out
}

/// The quantile q of a duration histogram, as the geometric middle of the bucket holding it.
fn duration_quantile(h: &Histogram, q: f64) -> Option<f64> {
    if h.n <= 0 {
        return None;
    }
    // Nearest-rank: the smallest bucket whose cumulative count reaches ceil(q·n).
    let rank = ((q * h.n as f64).ceil() as i64).max(1);
    let mut seen: i64 = 0;
    for (slot, count) in h.score_slots() {
        seen = seen.saturating_add(*count);
        if seen >= rank {
            return Some(bucket_middle(*slot));
        }
    }
    None
}

/// The representative value of a duration bucket: its geometric middle (0 for the zero bucket).
fn bucket_middle(slot: u16) -> f64 {
    if slot == 0 {
        return 0.0;
    }
    let lo = SurveyKind::Duration.slot_floor(slot) as f64;
    let hi = SurveyKind::Duration.slot_floor(slot + 1) as f64;
    if hi <= lo + 1.0 {
        lo
    } else {
        (lo * (hi - 1.0)).sqrt()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn extreme_stored_counts_degrade_instead_of_failing() {
        use super::*;
        let huge = Histogram {
            n: i64::MAX,
            sum: i64::MAX,
            slots: BTreeMap::from([(9u16, i64::MAX), (3u16, i64::MIN)]),
        };
        let mut total = Histogram::default();
        for _ in 0..3 {
            total.merge(&huge);
        }
        assert_eq!(total.n, i64::MAX);
        for kind in SurveyKind::ALL {
            let s = summarize(kind, &total);
            assert_eq!(s.n, i64::MAX);
            assert!(s.mean.is_some_and(f64::is_finite), "{kind}");
        }
        use crate::survey::MAX_DURATION_SECS;
        let sum = Histogram {
            n: 2,
            sum: MAX_DURATION_SECS * 2,
            slots: BTreeMap::from([(SurveyKind::Duration.slot(MAX_DURATION_SECS), 2)]),
        };
        assert_eq!(
            summarize(SurveyKind::Duration, &sum).mean,
            Some(MAX_DURATION_SECS as f64)
        );
    }

    use super::*;

    fn hist(kind: SurveyKind, scores: &[(i64, i64)]) -> Histogram {
        let mut h = Histogram::default();
        for (score, times) in scores {
            for _ in 0..*times {
                h.record(kind, *score);
            }
        }
        h
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn nps_and_margin_match_hand_computed_values() {
        // 50 promoters, 30 passives, 20 detractors: NPS 30;
        // p=.5, d=.2: 100·1.96·sqrt((.7 − .09)/100) = 196·sqrt(.0061) = 15.308.
        let h = hist(
            SurveyKind::Nps,
            &[(10, 25), (9, 25), (8, 15), (7, 15), (6, 10), (0, 10)],
        );
        let s = summarize(SurveyKind::Nps, &h);
        assert_eq!(s.n, 100);
        assert!(close(s.nps.unwrap(), 30.0));
        assert!(
            close(s.margin_of_error.unwrap(), 15.308),
            "{:?}",
            s.margin_of_error
        );
        assert_eq!(
            (s.promoters, s.passives, s.detractors),
            (Some(50), Some(30), Some(20))
        );
        // All promoters: NPS 100 with zero margin; one of each extreme: NPS 0, margin 196·sqrt(1/2).
        let all = summarize(SurveyKind::Nps, &hist(SurveyKind::Nps, &[(10, 7)]));
        assert!(close(all.nps.unwrap(), 100.0) && close(all.margin_of_error.unwrap(), 0.0));
        let split = summarize(SurveyKind::Nps, &hist(SurveyKind::Nps, &[(10, 1), (0, 1)]));
        assert!(close(split.nps.unwrap(), 0.0));
        assert!(
            close(split.margin_of_error.unwrap(), 138.593),
            "{:?}",
            split.margin_of_error
        );
    }

    #[test]
    fn empty_histogram_has_no_headline_metric() {
        let s = summarize(SurveyKind::Nps, &Histogram::default());
        assert_eq!(s.n, 0);
        assert_eq!(s.nps, None);
        assert_eq!(s.distribution.len(), 11);
    }

    #[test]
    fn csat_ces_likert_and_yes_no_shares() {
        let csat = summarize(
            SurveyKind::Csat,
            &hist(SurveyKind::Csat, &[(5, 2), (4, 1), (3, 1)]),
        );
        assert!(close(csat.satisfied_pct.unwrap(), 75.0) && close(csat.mean.unwrap(), 4.25));
        let ces = summarize(
            SurveyKind::Ces,
            &hist(SurveyKind::Ces, &[(7, 1), (5, 1), (4, 1), (1, 1)]),
        );
        assert!(close(ces.agree_pct.unwrap(), 50.0) && close(ces.mean.unwrap(), 4.25));
        let lik = summarize(
            SurveyKind::Likert7,
            &hist(SurveyKind::Likert7, &[(7, 1), (1, 2)]),
        );
        assert!(close(lik.mean.unwrap(), 3.0) && lik.nps.is_none());
        let yn = summarize(
            SurveyKind::YesNo,
            &hist(SurveyKind::YesNo, &[(1, 1), (0, 3)]),
        );
        assert!(close(yn.yes_pct.unwrap(), 25.0));
    }

    #[test]
    fn duration_median_and_p90_land_in_the_right_bucket() {
        // 9 answers of 60 s and 1 of 3600 s: median ~60, p90 ~60 (nearest rank 9), mean exact 414.
        let h = hist(SurveyKind::Duration, &[(60, 9), (3600, 1)]);
        let s = summarize(SurveyKind::Duration, &h);
        assert!(close(s.mean.unwrap(), 414.0));
        let m = s.median.unwrap();
        assert!((45.0..=91.0).contains(&m), "{m}");
        let h2 = hist(SurveyKind::Duration, &[(60, 8), (3600, 2)]);
        let p90 = summarize(SurveyKind::Duration, &h2).p90.unwrap();
        assert!((2896.0..=4096.0).contains(&p90), "{p90}");
        // Every bucket's middle is inside the bucket, so the error is under one bucket (±19%).
        for slot in (1..100u16).filter(|s| {
            SurveyKind::Duration.slot_floor(*s) < SurveyKind::Duration.slot_floor(s + 1)
        }) {
            let mid = bucket_middle(slot);
            assert!(mid >= SurveyKind::Duration.slot_floor(slot) as f64);
            assert!(mid < SurveyKind::Duration.slot_floor(slot + 1) as f64);
        }
    }

    #[test]
    fn merging_histograms_equals_recording_everything_in_one() {
        let a = hist(SurveyKind::Nps, &[(1, 3), (9, 2)]);
        let b = hist(SurveyKind::Nps, &[(9, 1), (10, 4)]);
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged, hist(SurveyKind::Nps, &[(1, 3), (9, 3), (10, 4)]));
    }
}
