//! The load-test section, and the comparison of a baseline run with the
//! current one.
use super::*;

pub(super) fn run_section(r: &RunDoc, i: usize, n: usize) -> Section {
    let sfx = suffix(i, n);
    let name = if r.name.is_empty() {
        r.url.clone()
    } else {
        r.name.clone()
    };
    let mut s = Section::new(&format!("run{sfx}"), format!("Load test: {name}"));
    let failed: Vec<&ThresholdResult> = r.thresholds.iter().filter(|t| !t.ok).collect();
    s.ok = failed.is_empty() && r.stopped.is_none();
    s.verdict = run_verdict(r, &failed);
    s.figures = run_figures(r);
    s.next = run_next(r, &failed);
    s.charts = run_charts(r, &sfx);
    s.tables = run_tables(r, &sfx);
    if s.next.is_empty() && s.ok {
        s.next.push(
            "Nothing to act on: keep this run as the baseline for the next comparison.".into(),
        );
    }
    s
}

/// PASSED or FAILED with each threshold's measurement, or the headline
/// figures when there are no thresholds; and why the run stopped early.
fn run_verdict(r: &RunDoc, failed: &[&ThresholdResult]) -> String {
    let mut verdict = if r.thresholds.is_empty() {
        format!(
            "{} requests at {:.1} rps, p95 {:.1} ms, errors {}",
            r.requests,
            r.rps,
            r.latency_ms.p95,
            pct(r.error_rate)
        )
    } else if failed.is_empty() {
        format!(
            "PASSED: all {} thresholds held ({})",
            r.thresholds.len(),
            r.thresholds
                .iter()
                .map(|t| format!("{} was {}", t.expr, short(t.value)))
                .collect::<Vec<_>>()
                .join("; ")
        )
    } else {
        format!(
            "FAILED: {}",
            failed
                .iter()
                .map(|t| format!("{} (measured {})", t.expr, short(t.value)))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    if let Some(why) = &r.stopped {
        verdict.push_str(&format!(" — run stopped early: {why}"));
    }
    verdict
}

fn run_figures(r: &RunDoc) -> Vec<(String, String)> {
    let mut figures = vec![
        ("Requests".into(), r.requests.to_string()),
        ("Throughput".into(), format!("{:.1} rps", r.rps)),
        ("p95 latency".into(), format!("{:.1} ms", r.latency_ms.p95)),
        ("p99 latency".into(), format!("{:.1} ms", r.latency_ms.p99)),
        ("Error rate".into(), pct(r.error_rate)),
    ];
    if let Some(t) = r.target_rps {
        figures.push(("Target rate".into(), format!("{t:.0} rps")));
    }
    figures
}

/// What to do: a rate the service did not keep up with, queueing the
/// uncorrected latency hides, failed thresholds, errors over 1%.
fn run_next(r: &RunDoc, failed: &[&ThresholdResult]) -> Vec<String> {
    let mut next = Vec::new();
    if let Some(t) = r.target_rps
        && r.rps < 0.97 * t
    {
        next.push(format!(
            "Achieved {:.0} rps of the {t:.0} rps scheduled: the service (or the generator) saturated; check `dropped` ({}) and the server's CPU before trusting the latency figures.",
            r.rps, r.dropped
        ));
    }
    let gap = r.latency_ms.p99 - r.latency_uncorrected_ms.p99;
    if r.latency_uncorrected_ms.p99 > 0.0 && gap > 0.2 * r.latency_uncorrected_ms.p99 {
        next.push(format!(
            "Requests queued behind slow ones: p99 from the scheduled time is {:.1} ms, from the actual send {:.1} ms. A closed-loop tool would have reported the lower figure.",
            r.latency_ms.p99, r.latency_uncorrected_ms.p99
        ));
    }
    for t in failed {
        next.push(format!("Threshold `{}` failed with {}: block the release and look at the latency-over-time chart for when it started.", t.expr, short(t.value)));
    }
    if r.error_rate > 0.01 {
        let worst = r
            .errors
            .iter()
            .max_by_key(|e| e.1)
            .map(|e| e.0.clone())
            .unwrap_or_default();
        next.push(format!(
            "Error rate {} is over 1% (alert level); most errors are `{worst}`.",
            pct(r.error_rate)
        ));
    }
    next
}

/// Latency percentiles, throughput and errors per second, and the
/// percentile distribution.
fn run_charts(r: &RunDoc, sfx: &str) -> Vec<Chart> {
    let mut charts = Vec::new();
    let xs: Vec<f64> = r.series.iter().map(|x| x.t_s as f64).collect();
    let line = |name: &str, f: &dyn Fn(&SecondRow) -> f64| Line {
        name: name.into(),
        points: r.series.iter().map(|x| (x.t_s as f64, f(x))).collect(),
        ..Default::default()
    };
    if !xs.is_empty() {
        charts.push(Chart {
            id: format!("latency_over_time{sfx}"),
            title: "Latency percentiles per second".into(),
            x_label: "time since start (s)".into(),
            y_label: "latency (ms)".into(),
            body: Body::Lines(vec![
                line("p50", &|x| x.p50_ms),
                line("p95", &|x| x.p95_ms),
                line("p99", &|x| x.p99_ms),
            ]),
            percentile_x: false,
            y_from_zero: true,
        });
        let mut rps = vec![line("achieved rps", &|x| x.rps)];
        if r.series.iter().any(|x| x.target_rps.is_some()) {
            rps.push(line("target rps", &|x| x.target_rps.unwrap_or(0.0)));
        }
        charts.push(Chart {
            id: format!("throughput{sfx}"),
            title: "Achieved vs target request rate".into(),
            x_label: "time since start (s)".into(),
            y_label: "requests per second".into(),
            body: Body::Lines(rps),
            percentile_x: false,
            y_from_zero: true,
        });
        let mut errs: Vec<Line> = ERROR_CLASSES
            .iter()
            .enumerate()
            .filter(|(k, _)| r.series.iter().any(|x| x.errors_by_class[*k] > 0))
            .map(|(k, c)| line(c, &|x| x.errors_by_class[k] as f64))
            .collect();
        if errs.is_empty() {
            errs.push(line("all classes (none)", &|x| x.errors as f64));
        }
        charts.push(Chart {
            id: format!("errors{sfx}"),
            title: "Errors by class per second".into(),
            x_label: "time since start (s)".into(),
            y_label: "errors per second".into(),
            body: Body::Lines(errs),
            percentile_x: false,
            y_from_zero: true,
        });
    }
    if !r.latency_distribution.is_empty() {
        let pts: Vec<(f64, f64)> = r
            .latency_distribution
            .iter()
            .filter(|p| p.percentile < 100.0)
            .map(|p| (-(1.0 - p.percentile / 100.0).log10(), p.ms))
            .collect();
        charts.push(Chart {
            id: format!("latency_distribution{sfx}"),
            title: "Latency by percentile (from the scheduled send time)".into(),
            x_label: "percentile (log scale)".into(),
            y_label: "latency (ms)".into(),
            body: Body::Lines(vec![Line {
                name: "latency".into(),
                points: pts,
                markers: true,
                ..Default::default()
            }]),
            percentile_x: true,
            y_from_zero: true,
        });
    }
    charts
}

/// Latency (corrected and not), requests by outcome, thresholds.
fn run_tables(r: &RunDoc, sfx: &str) -> Vec<Table> {
    let mut tables = Vec::new();
    let l = &r.latency_ms;
    let u = &r.latency_uncorrected_ms;
    tables.push(Table::new(
        &format!("run_summary{sfx}"),
        "Latency (ms): from the scheduled time (corrected) and from the actual send",
        vec![
            text("measure", vec!["corrected".into(), "uncorrected".into()]),
            num("mean", vec![l.mean, u.mean]),
            num("p50", vec![l.p50, u.p50]),
            num("p90", vec![l.p90, u.p90]),
            num("p95", vec![l.p95, u.p95]),
            num("p99", vec![l.p99, u.p99]),
            num("p99.9", vec![l.p999, u.p999]),
            num("max", vec![l.max, u.max]),
        ],
    ));
    let mut classes: Vec<String> = vec!["ok".into()];
    let mut counts = vec![r.ok as f64];
    for (k, v) in &r.errors {
        classes.push(k.clone());
        counts.push(*v as f64);
    }
    tables.push(Table::new(
        &format!("run_outcomes{sfx}"),
        "Requests by outcome",
        vec![text("outcome", classes), num("requests", counts)],
    ));
    if !r.thresholds.is_empty() {
        tables.push(Table::new(
            &format!("run_thresholds{sfx}"),
            "Thresholds",
            vec![
                text(
                    "threshold",
                    r.thresholds.iter().map(|t| t.expr.clone()).collect(),
                ),
                num("measured", r.thresholds.iter().map(|t| t.value).collect()),
                text(
                    "verdict",
                    r.thresholds
                        .iter()
                        .map(|t| if t.ok { "passed" } else { "FAILED" }.to_string())
                        .collect(),
                ),
            ],
        ));
    }
    tables
}

pub(super) fn compare_section(base: &RunDoc, cur: &RunDoc, limit: f64) -> Section {
    let mut s = Section::new("comparison", "Comparison: baseline vs current run".into());
    let rows: Vec<(&str, f64, f64)> = vec![
        ("p50 ms", base.latency_ms.p50, cur.latency_ms.p50),
        ("p95 ms", base.latency_ms.p95, cur.latency_ms.p95),
        ("p99 ms", base.latency_ms.p99, cur.latency_ms.p99),
        ("max ms", base.latency_ms.max, cur.latency_ms.max),
        ("rps", base.rps, cur.rps),
        (
            "error rate %",
            100.0 * base.error_rate,
            100.0 * cur.error_rate,
        ),
    ];
    let change = |a: f64, b: f64| if a != 0.0 { (b - a) / a } else { f64::NAN };
    let p95_change = change(base.latency_ms.p95, cur.latency_ms.p95);
    let err_up = cur.error_rate - base.error_rate > 0.001;
    let regressed = p95_change > limit || err_up;
    s.regressed = Some(regressed);
    s.ok = !regressed;
    s.verdict = if regressed {
        format!(
            "REGRESSION: p95 {:.1} → {:.1} ms ({:+.1}%, limit +{:.0}%){}",
            base.latency_ms.p95,
            cur.latency_ms.p95,
            100.0 * p95_change,
            100.0 * limit,
            if err_up {
                format!(
                    "; error rate {} → {}",
                    pct(base.error_rate),
                    pct(cur.error_rate)
                )
            } else {
                String::new()
            }
        )
    } else {
        format!(
            "No regression: p95 {:.1} → {:.1} ms ({:+.1}%, limit +{:.0}%)",
            base.latency_ms.p95,
            cur.latency_ms.p95,
            100.0 * p95_change,
            100.0 * limit
        )
    };
    if regressed {
        s.next.push("Find the change between the two builds that moved p95; re-run both at the same rate to rule out noise.".into());
    }
    s.tables.push(Table::new(
        "comparison",
        "Baseline vs current",
        vec![
            text("measure", rows.iter().map(|r| r.0.to_string()).collect()),
            num("baseline", rows.iter().map(|r| r.1).collect()),
            num("current", rows.iter().map(|r| r.2).collect()),
            num("delta", rows.iter().map(|r| r.2 - r.1).collect()),
            num(
                "change %",
                rows.iter().map(|r| 100.0 * change(r.1, r.2)).collect(),
            ),
        ],
    ));
    s
}
