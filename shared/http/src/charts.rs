//! Charts for the dashboard, drawn on the server as inline SVG with maud (no script, no external
//! resource): a metric's trend with its 95% margin of error as a shaded band, stacked
//! promoters / passives / detractors per bucket, and plain bars.
//!
//! Every label goes through maud's escaping: touchpoint names, property values and anything else
//! a respondent or an integrator chose are text, never markup. Charts have a `viewBox` and
//! `width="100%"`, so they shrink to a phone's width.

use maud::{html, Markup};

/// Width of every chart's coordinate system.
pub const WIDTH: f64 = 480.0;
/// Height of a trend or bar chart's coordinate system.
pub const HEIGHT: f64 = 200.0;
const LEFT: f64 = 36.0;
const RIGHT: f64 = 6.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// Colours of promoters, passives and detractors.
pub const MIX_COLOURS: [&str; 3] = ["#1a7f37", "#b7950b", "#c62828"];
const LINE_COLOUR: &str = "#1f5fbf";

/// The range of the value axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueRange {
    /// Bottom of the axis.
    pub min: f64,
    /// Top of the axis.
    pub max: f64,
}

impl ValueRange {
    /// A range; an empty or inverted one is widened to span at least 1.
    pub fn new(min: f64, max: f64) -> ValueRange {
        if max.partial_cmp(&min) == Some(std::cmp::Ordering::Greater) {
            ValueRange { min, max }
        } else {
            ValueRange {
                min,
                max: min + 1.0,
            }
        }
    }

    fn clamp(&self, v: f64) -> f64 {
        v.clamp(self.min, self.max)
    }
}

/// One bucket of a trend: the metric and its 95% margin of error, if the bucket has answers.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    /// The bucket's label (its first day).
    pub label: String,
    /// The metric (absent: no answers in the bucket).
    pub value: Option<f64>,
    /// Its 95% margin of error (absent: unknown, drawn as no band).
    pub margin: Option<f64>,
    /// Answers in the bucket.
    pub n: i64,
}

/// The plot area's geometry: where bucket `i` of `count` and a value are drawn.
#[derive(Debug, Clone, Copy)]
pub struct Plot {
    count: usize,
    range: ValueRange,
}

impl Plot {
    /// A plot of `count` buckets over `range`.
    pub fn new(count: usize, range: ValueRange) -> Plot {
        Plot { count, range }
    }

    /// The x coordinate of bucket `i`'s centre.
    pub fn x(&self, i: usize) -> f64 {
        let w = (WIDTH - LEFT - RIGHT) / self.count.max(1) as f64;
        LEFT + w * (i as f64 + 0.5)
    }

    /// The width given to each bucket.
    pub fn slot(&self) -> f64 {
        (WIDTH - LEFT - RIGHT) / self.count.max(1) as f64
    }

    /// The y coordinate of a value (clamped to the range).
    pub fn y(&self, v: f64) -> f64 {
        let r = self.range;
        let t = (r.clamp(v) - r.min) / (r.max - r.min);
        TOP + (1.0 - t) * (HEIGHT - TOP - BOTTOM)
    }
}

/// The margin-of-error band of a trend: one polygon per run of consecutive buckets that have
/// both a value and a margin. Each polygon runs along value + margin from left to right, then
/// back along value − margin, both clamped to the range. A run of one bucket is a small
/// rectangle a third of a bucket wide.
pub fn band_polygons(points: &[TrendPoint], plot: &Plot) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(usize, f64, f64)>> = Vec::new();
    let mut current: Vec<(usize, f64, f64)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        match (p.value, p.margin) {
            (Some(v), Some(m)) if v.is_finite() && m.is_finite() => current.push((i, v, m.abs())),
            _ => {
                if !current.is_empty() {
                    runs.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs.into_iter()
        .map(|run| {
            if let [(i, v, m)] = run[..] {
                let half = plot.slot() / 6.0;
                let (x, hi, lo) = (plot.x(i), plot.y(v + m), plot.y(v - m));
                return vec![
                    (x - half, hi),
                    (x + half, hi),
                    (x + half, lo),
                    (x - half, lo),
                ];
            }
            let upper = run.iter().map(|(i, v, m)| (plot.x(*i), plot.y(v + m)));
            let lower = run
                .iter()
                .rev()
                .map(|(i, v, m)| (plot.x(*i), plot.y(v - m)));
            upper.chain(lower).collect()
        })
        .collect()
}

/// The metric's line: one polyline per run of consecutive buckets with a value.
pub fn line_runs(points: &[TrendPoint], plot: &Plot) -> Vec<Vec<(f64, f64)>> {
    let mut runs = Vec::new();
    let mut current = Vec::new();
    for (i, p) in points.iter().enumerate() {
        match p.value.filter(|v| v.is_finite()) {
            Some(v) => current.push((plot.x(i), plot.y(v))),
            None => {
                if !current.is_empty() {
                    runs.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// SVG `points` text, one decimal per coordinate.
pub fn points_attr(points: &[(f64, f64)]) -> String {
    points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A number as a chart or table shows it: whole when it is, else one decimal.
pub fn number(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 {
        "0".to_string()
    } else if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// Which buckets get an x-axis label: at most four, evenly spaced, always the first.
fn label_every(count: usize) -> usize {
    count.div_ceil(4).max(1)
}

/// The value axis: grid lines and labels at the range's ends and middle (and 0 when inside).
fn value_axis(plot: &Plot) -> Markup {
    let r = plot.range;
    let mut ticks = vec![r.min, (r.min + r.max) / 2.0, r.max];
    if r.min < 0.0 && r.max > 0.0 && !ticks.contains(&0.0) {
        ticks.push(0.0);
    }
    html! {
        g class="axis" {
            @for t in &ticks {
                @let y = plot.y(*t);
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(format!("{y:.1}")) y2=(format!("{y:.1}"))
                    stroke="#ddd" stroke-width="1" {}
                text x=(LEFT - 4.0) y=(format!("{:.1}", y + 4.0)) text-anchor="end" font-size="13" fill="#555" {
                    (number(*t))
                }
            }
        }
    }
}

/// The bucket axis: the labels of some buckets under the plot.
fn bucket_axis(labels: &[&str], plot: &Plot) -> Markup {
    let every = label_every(labels.len());
    html! {
        g class="buckets" {
            @for (i, label) in labels.iter().enumerate() {
                @if i % every == 0 {
                    text x=(format!("{:.1}", plot.x(i))) y=(HEIGHT - 6.0) text-anchor="middle"
                        font-size="13" fill="#555" { (label) }
                }
            }
        }
    }
}

/// A trend chart: the metric per bucket as a line with dots, and its margin of error as a band.
/// `id` names the SVG element; `title` (escaped) is its accessible name; `metric` names the
/// value in each dot's tooltip.
pub fn trend_chart(
    id: &str,
    title: &str,
    metric: &str,
    points: &[TrendPoint],
    range: ValueRange,
) -> Markup {
    let plot = Plot::new(points.len(), range);
    let labels: Vec<&str> = points.iter().map(|p| p.label.as_str()).collect();
    let answered = points.iter().any(|p| p.value.is_some());
    html! {
        svg id=(id) class="chart trend" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) width="100%"
            role="img" aria-label=(title) {
            title { (title) }
            (value_axis(&plot))
            @for band in band_polygons(points, &plot) {
                polygon class="band" points=(points_attr(&band)) fill=(LINE_COLOUR)
                    fill-opacity="0.18" stroke="none" {}
            }
            @for run in line_runs(points, &plot) {
                polyline class="line" points=(points_attr(&run)) fill="none" stroke=(LINE_COLOUR)
                    stroke-width="2" {}
            }
            g class="dots" fill=(LINE_COLOUR) {
                @for (i, p) in points.iter().enumerate() {
                    @if let Some(v) = p.value.filter(|v| v.is_finite()) {
                        circle cx=(format!("{:.1}", plot.x(i))) cy=(format!("{:.1}", plot.y(v))) r="3" {
                            title {
                                (p.label) ": " (metric) " " (number(v))
                                @if let Some(m) = p.margin { " ± " (number(m)) }
                                " (n=" (p.n) ")"
                            }
                        }
                    }
                }
            }
            (bucket_axis(&labels, &plot))
            @if !answered {
                text x=(WIDTH / 2.0) y=(HEIGHT / 2.0) text-anchor="middle" font-size="14" fill="#777" {
                    "No answers in this range"
                }
            }
        }
    }
}

/// Promoters, passives and detractors of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixBucket {
    /// The bucket's label (its first day).
    pub label: String,
    /// Answers scoring 9–10.
    pub promoters: i64,
    /// Answers scoring 7–8.
    pub passives: i64,
    /// Answers scoring 0–6.
    pub detractors: i64,
}

/// A stacked bar per bucket: detractors at the bottom, passives, then promoters, in answers.
pub fn mix_chart(id: &str, title: &str, buckets: &[MixBucket]) -> Markup {
    let top = buckets
        .iter()
        .map(|b| b.promoters + b.passives + b.detractors)
        .max()
        .unwrap_or(0);
    let plot = Plot::new(buckets.len(), ValueRange::new(0.0, even_top(top)));
    let labels: Vec<&str> = buckets.iter().map(|b| b.label.as_str()).collect();
    let bar = (plot.slot() * 0.7).max(1.0);
    html! {
        svg id=(id) class="chart mix" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) width="100%"
            role="img" aria-label=(title) {
            title { (title) }
            (value_axis(&plot))
            @for (i, b) in buckets.iter().enumerate() {
                @let n = b.promoters + b.passives + b.detractors;
                @let parts = [("detractors", b.detractors, MIX_COLOURS[2]), ("passives", b.passives, MIX_COLOURS[1]), ("promoters", b.promoters, MIX_COLOURS[0])];
                g class="bucket" data-n=(n) {
                    title {
                        (b.label) ": " (b.promoters) " promoters, " (b.passives) " passives, "
                        (b.detractors) " detractors"
                    }
                    @for (k, (name, count, colour)) in parts.iter().enumerate() {
                        @if *count > 0 {
                            @let below: i64 = parts[..k].iter().map(|p| p.1).sum();
                            @let y_top = plot.y((below + count) as f64);
                            @let y_bottom = plot.y(below as f64);
                            rect class=(name) x=(format!("{:.1}", plot.x(i) - bar / 2.0))
                                y=(format!("{y_top:.1}")) width=(format!("{bar:.1}"))
                                height=(format!("{:.1}", y_bottom - y_top)) fill=(colour)
                                data-count=(count) {}
                        }
                    }
                }
            }
            (bucket_axis(&labels, &plot))
        }
    }
}

/// The top of a count axis: even (so its middle tick is a whole count) and at least 2.
fn even_top(top: i64) -> f64 {
    (top + top % 2).max(2) as f64
}

/// One bar per label (answers per bucket, or per score).
pub fn bar_chart(id: &str, title: &str, bars: &[(String, i64)], colour: &str) -> Markup {
    let top = bars.iter().map(|b| b.1).max().unwrap_or(0);
    let plot = Plot::new(bars.len(), ValueRange::new(0.0, even_top(top)));
    let labels: Vec<&str> = bars.iter().map(|b| b.0.as_str()).collect();
    let width = (plot.slot() * 0.7).max(1.0);
    html! {
        svg id=(id) class="chart bars" viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) width="100%"
            role="img" aria-label=(title) {
            title { (title) }
            (value_axis(&plot))
            @for (i, (label, count)) in bars.iter().enumerate() {
                @if *count > 0 {
                    @let y = plot.y(*count as f64);
                    rect x=(format!("{:.1}", plot.x(i) - width / 2.0)) y=(format!("{y:.1}"))
                        width=(format!("{width:.1}")) height=(format!("{:.1}", plot.y(0.0) - y))
                        fill=(colour) data-count=(count) {
                        title { (label) ": " (count) }
                    }
                }
            }
            (bucket_axis(&labels, &plot))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(label: &str, value: Option<f64>, margin: Option<f64>) -> TrendPoint {
        TrendPoint {
            label: label.into(),
            value,
            margin,
            n: 10,
        }
    }

    #[test]
    fn the_band_runs_along_value_plus_margin_then_back_along_value_minus_margin() {
        // GIVEN three buckets on the NPS axis, with a plot area 166 units tall (10..176).
        let range = ValueRange::new(-100.0, 100.0);
        let plot = Plot::new(3, range);
        let points = [
            point("a", Some(0.0), Some(10.0)),
            point("b", Some(50.0), Some(20.0)),
            point("c", Some(-20.0), Some(5.0)),
        ];
        // WHEN the band is computed
        let bands = band_polygons(&points, &plot);
        // THEN it is one polygon: upper edge left to right, lower edge right to left.
        assert_eq!(bands.len(), 1);
        let y = |v: f64| 10.0 + (1.0 - (v + 100.0) / 200.0) * 166.0;
        let (x0, x1, x2) = (plot.x(0), plot.x(1), plot.x(2));
        let expected = [
            (x0, y(10.0)),
            (x1, y(70.0)),
            (x2, y(-15.0)),
            (x2, y(-25.0)),
            (x1, y(30.0)),
            (x0, y(-10.0)),
        ];
        assert_eq!(bands[0].len(), expected.len());
        for (got, want) in bands[0].iter().zip(expected) {
            assert!(
                (got.0 - want.0).abs() < 1e-9 && (got.1 - want.1).abs() < 1e-9,
                "{got:?} vs {want:?}"
            );
        }
        // Buckets are evenly spaced across the plot area (36..474).
        assert!((x0 - (36.0 + 438.0 / 6.0)).abs() < 1e-9);
        assert!((x1 - x0 - 438.0 / 3.0).abs() < 1e-9);
        // The band's upper edge is above the line (smaller y) everywhere.
        assert!(bands[0][1].1 < plot.y(50.0) && bands[0][4].1 > plot.y(50.0));
    }

    #[test]
    fn the_band_is_clamped_to_the_axis_and_split_at_buckets_without_answers() {
        let plot = Plot::new(5, ValueRange::new(-100.0, 100.0));
        let points = [
            point("a", Some(90.0), Some(30.0)),
            point("b", Some(80.0), Some(40.0)),
            point("c", None, None),
            point("d", Some(10.0), Some(5.0)),
            point("e", Some(10.0), None),
        ];
        let bands = band_polygons(&points, &plot);
        assert_eq!(bands.len(), 2, "{bands:?}");
        // 90 + 30 is drawn at the top of the axis, not above it.
        assert!((bands[0][0].1 - plot.y(100.0)).abs() < 1e-9);
        assert!((bands[0][0].1 - 10.0).abs() < 1e-9);
        // A lone bucket with a margin is a rectangle around its x.
        assert_eq!(bands[1].len(), 4);
        assert!(bands[1][0].0 < plot.x(3) && bands[1][1].0 > plot.x(3));
        assert!((bands[1][0].1 - plot.y(15.0)).abs() < 1e-9);
        assert!((bands[1][2].1 - plot.y(5.0)).abs() < 1e-9);
        // The line has two runs as well: a-b and d-e.
        let lines = line_runs(&points, &plot);
        assert_eq!(lines.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2]);
    }

    #[test]
    fn an_empty_series_draws_axes_and_says_there_are_no_answers() {
        let svg =
            trend_chart("t", "Trend", "NPS", &[], ValueRange::new(-100.0, 100.0)).into_string();
        assert!(svg.contains("No answers in this range"), "{svg}");
        assert!(
            !svg.contains("<polygon") && !svg.contains("<polyline"),
            "{svg}"
        );
        assert!(svg.contains(r#"viewBox="0 0 480 200""#) && svg.contains(r#"width="100%""#));
        let unanswered = [point("2026-11-02", None, None)];
        assert!(band_polygons(&unanswered, &Plot::new(1, ValueRange::new(0.0, 100.0))).is_empty());
        let mix = mix_chart("m", "Mix", &[]).into_string();
        assert!(mix.starts_with("<svg") && !mix.contains("<rect"), "{mix}");
        let bars = bar_chart("b", "n", &[], "#000").into_string();
        assert!(!bars.contains("<rect"), "{bars}");
    }

    #[test]
    fn labels_are_escaped_as_text() {
        let hostile = "<script>alert(1)</script>\"'&";
        let points = [point(hostile, Some(10.0), Some(2.0))];
        let svg = trend_chart(
            "t",
            hostile,
            hostile,
            &points,
            ValueRange::new(-100.0, 100.0),
        )
        .into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(
            svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{svg}"
        );
        // In an attribute, quotes are escaped too.
        assert!(
            svg.contains(r#"aria-label="&lt;script&gt;alert(1)&lt;/script&gt;&quot;'&amp;""#),
            "{svg}"
        );
        let mix = mix_chart(
            "m",
            "Mix",
            &[MixBucket {
                label: hostile.into(),
                promoters: 1,
                passives: 0,
                detractors: 2,
            }],
        )
        .into_string();
        assert!(!mix.contains("<script>"), "{mix}");
        let bars = bar_chart("b", "n", &[(hostile.into(), 3)], "#000").into_string();
        assert!(!bars.contains("<script>"), "{bars}");
    }

    #[test]
    fn stacked_bars_put_detractors_passives_and_promoters_on_top_of_each_other() {
        let svg = mix_chart(
            "m",
            "Mix",
            &[
                MixBucket {
                    label: "w1".into(),
                    promoters: 5,
                    passives: 3,
                    detractors: 2,
                },
                MixBucket {
                    label: "w2".into(),
                    promoters: 0,
                    passives: 0,
                    detractors: 0,
                },
            ],
        )
        .into_string();
        // Three segments for the first bucket, none for the empty one; the tallest bar reaches
        // the top of the axis (10 answers).
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        let plot = Plot::new(2, ValueRange::new(0.0, 10.0));
        assert!(
            svg.contains(&format!(
                r#"class="promoters" x="{:.1}" y="10.0""#,
                plot.x(0) - plot.slot() * 0.35
            )),
            "{svg}"
        );
        assert!(
            svg.contains(&format!(
                r#"class="detractors" x="{:.1}" y="{:.1}""#,
                plot.x(0) - plot.slot() * 0.35,
                plot.y(2.0)
            )),
            "{svg}"
        );
        assert!(svg.contains(r#"data-count="5""#) && svg.contains(r#"data-n="10""#));
    }

    #[test]
    fn numbers_show_whole_or_with_one_decimal() {
        assert_eq!(number(33.333), "33.3");
        assert_eq!(number(-20.0), "-20");
        assert_eq!(number(12.96), "13");
        assert_eq!(number(0.04), "0");
        assert_eq!(number(-0.04), "0");
    }
}
