//! `sondeo report`: a metrics report (the JSON of `GET /v1/metrics`) as a terminal table per
//! touchpoint and journey stage: n, the survey's metric, its margin of error, and the change
//! against the compared period with an arrow.

use serde_json::Value;
use std::fmt::Write;

/// The metric's column title for a survey kind's headline metric name.
fn metric_title(metric: &str) -> &'static str {
    match metric {
        "nps" => "NPS",
        "satisfied_pct" => "CSAT %",
        "agree_pct" => "CES agree %",
        "yes_pct" => "yes %",
        _ => "mean",
    }
}

/// The headline metric name of a kind (as `/v1/metrics` names the comparison's metric).
fn metric_of(kind: &str) -> &'static str {
    match kind {
        "nps" => "nps",
        "csat" => "satisfied_pct",
        "ces" => "agree_pct",
        "yes_no" | "yesno" => "yes_pct",
        _ => "mean",
    }
}

/// A number with one decimal and its sign for NPS, or `-` when absent.
fn number(v: Option<f64>, signed: bool) -> String {
    match v {
        Some(x) if signed => format!("{x:+.1}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

/// The change column: an arrow, the difference, and whether it exceeds the combined margin.
fn change(c: &Value) -> String {
    let Some(d) = c["difference"].as_f64() else {
        return if c.is_null() {
            String::new()
        } else {
            "  (no answers to compare)".into()
        };
    };
    let arrow = if d > 0.0 {
        '↑'
    } else if d < 0.0 {
        '↓'
    } else {
        '→'
    };
    let verdict = match c["significant"].as_bool() {
        Some(true) => "significant",
        Some(false) => "within the margin",
        None => "margin unknown",
    };
    format!("  {arrow} {d:+.1} ({verdict})")
}

/// One table row.
fn row(out: &mut String, label: &str, total: &Value, metric: &str, cmp: &Value) {
    let signed = metric == "nps";
    let moe = if metric == "nps" {
        total["margin_of_error"].as_f64()
    } else {
        cmp["current"]["margin_of_error"].as_f64()
    };
    let _ = writeln!(
        out,
        "  {label:<30} {:>7} {:>8} {:>8}{}",
        total["n"].as_i64().unwrap_or(0),
        number(total[metric].as_f64(), signed),
        moe.map(|m| format!("±{m:.1}"))
            .unwrap_or_else(|| "-".into()),
        change(cmp),
    );
}

/// Renders a report as a table.
pub fn render(rep: &Value) -> String {
    let kind = rep["kind"].as_str().unwrap_or_default();
    let metric = metric_of(kind);
    let cmp = &rep["comparison"];
    let mut out = String::new();
    let _ = write!(
        out,
        "{} ({kind}) from {} to {}, days in {}",
        rep["survey"].as_str().unwrap_or_default(),
        rep["from"].as_str().unwrap_or_default(),
        rep["to"].as_str().unwrap_or_default(),
        rep["time_zone"].as_str().unwrap_or("UTC"),
    );
    if !cmp.is_null() {
        let _ = write!(
            out,
            "; change against {} to {}",
            cmp["from"].as_str().unwrap_or_default(),
            cmp["to"].as_str().unwrap_or_default()
        );
    }
    out.push('\n');
    if let Some(seg) = rep["segment"].as_object().filter(|s| !s.is_empty()) {
        let pairs: Vec<String> = seg
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        let _ = writeln!(out, "segment: {}", pairs.join(", "));
    }
    let _ = writeln!(
        out,
        "  {:<30} {:>7} {:>8} {:>8}{}",
        "",
        "n",
        metric_title(metric),
        "margin",
        if cmp.is_null() { "" } else { "  change" }
    );
    row(
        &mut out,
        "all",
        &rep["overall"]["total"],
        metric,
        &cmp["overall"],
    );
    for (group, title) in [("stages", "stage"), ("touchpoints", "touchpoint")] {
        for (name, g) in rep[group].as_object().into_iter().flatten() {
            row(
                &mut out,
                &format!("{title} {name}"),
                &g["total"],
                metric,
                &cmp[group][name],
            );
        }
    }
    if let Some(groups) = rep["segments"]["groups"].as_object() {
        let prop = rep["segments"]["property"].as_str().unwrap_or_default();
        for (value, g) in groups {
            row(
                &mut out,
                &format!("{prop} = {value}"),
                &g["total"],
                metric,
                &Value::Null,
            );
        }
    }
    let automated = rep["overall"]["total"]["automated"].as_i64().unwrap_or(0);
    let sources: Vec<String> = rep["overall"]["total"]["sources"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    if !sources.is_empty() || automated > 0 {
        let _ = writeln!(
            out,
            "  answers by source: {}; set aside as automated: {automated}",
            if sources.is_empty() {
                "-".to_string()
            } else {
                sources.join(", ")
            }
        );
    }
    let _ = writeln!(out, "  by {}:", rep["bucket"].as_str().unwrap_or_default());
    for p in rep["overall"]["series"].as_array().into_iter().flatten() {
        let label = match p["week"].as_str() {
            Some(w) => format!("{} ({w})", p["start"].as_str().unwrap_or_default()),
            None => p["start"].as_str().unwrap_or_default().to_string(),
        };
        row(&mut out, &label, p, metric, &Value::Null);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_prints_one_row_per_group_with_the_change_and_its_arrow() {
        let rep = serde_json::json!({
            "survey": "shop", "kind": "nps", "from": "2026-03-01", "to": "2026-03-31",
            "time_zone": "Europe/Madrid", "bucket": "month", "segment": {},
            "overall": {"total": {"n": 20, "nps": 0.0, "margin_of_error": 43.83, "sources": {"api": 20}, "automated": 2},
                        "series": [{"start": "2026-03-01", "n": 20, "nps": 0.0, "margin_of_error": 43.83}]},
            "stages": {"conversion": {"total": {"n": 20, "nps": 0.0, "margin_of_error": 43.83}}},
            "touchpoints": {"checkout": {"total": {"n": 20, "nps": 0.0, "margin_of_error": 43.83}},
                            "support": {"total": {"n": 0}}},
            "comparison": {"from": "2026-01-29", "to": "2026-02-28",
                "overall": {"difference": 50.0, "significant": false},
                "stages": {"conversion": {"difference": 50.0, "significant": false}},
                "touchpoints": {"checkout": {"difference": -12.5, "significant": true},
                                "support": {"difference": null}}}
        });
        let text = render(&rep);
        assert!(text.contains("days in Europe/Madrid; change against 2026-01-29 to 2026-02-28"));
        let line = |start: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(start))
                .unwrap_or_else(|| panic!("no line {start} in\n{text}"))
                .to_string()
        };
        assert!(
            line("all").contains("↑ +50.0 (within the margin)"),
            "{text}"
        );
        assert!(line("all").contains("±43.8"));
        assert!(line("touchpoint checkout").contains("↓ -12.5 (significant)"));
        assert!(line("touchpoint support").contains("(no answers to compare)"));
        assert!(line("stage conversion").contains("+0.0"));
        assert!(text.contains("set aside as automated: 2"));
    }
}
