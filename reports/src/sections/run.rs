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
    let mut s = Section::new(
        &format!("run{sfx}"),
        format!("Load test: {name}{}", provenance(&r.started_at, &r.version)),
    );
    let failed: Vec<&ThresholdResult> = r.thresholds.iter().filter(|t| !t.ok).collect();
    s.ok = failed.is_empty() && r.stopped.is_none();
    s.verdict = run_verdict(r, &failed);
    s.figures = run_figures(r);
    s.next = run_next(r, &failed);
    s.charts = run_charts(r, &sfx);
    s.notes = run_notes(r);
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
                .map(|t| format!("{} was {}", t.expr, t.measured()))
                .collect::<Vec<_>>()
                .join("; ")
        )
    } else {
        format!(
            "FAILED: {}",
            failed
                .iter()
                .map(|t| format!("{} (measured {})", t.expr, t.measured()))
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
        (
            "Received / sent".into(),
            format!(
                "{} / {}",
                contracts::units::bytes(r.bytes_received),
                contracts::units::bytes(r.bytes_sent)
            ),
        ),
        ("Target".into(), r.url.clone()),
        ("Seed".into(), r.seed.to_string()),
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
        next.push(format!("Threshold `{}` failed with {}: block the release and look at the latency-over-time chart for when it started.", t.expr, t.measured()));
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
    // A check that no response passed is more often a wrong check (or a
    // changed endpoint) than a failing service.
    for c in r.checks.iter().filter(|c| c.failed > 0) {
        let judged = c.passed + c.failed;
        let what = if c.passed == 0 {
            "failed on every response: is the check (or the endpoint) still right?"
        } else {
            "failed on some responses: see the response checks table."
        };
        next.push(format!(
            "`{}`: `{}` {what} ({} of {judged})",
            c.request, c.check, c.failed
        ));
    }
    next
}

/// Latency percentiles, throughput and errors per second, and the
/// percentile distribution.
fn run_charts(r: &RunDoc, sfx: &str) -> Vec<Chart> {
    let seconds = whole_seconds(r);
    let line = |name: &str, f: &dyn Fn(&SecondRow) -> f64| Line {
        name: name.into(),
        points: seconds.iter().map(|x| (x.t_s as f64, f(x))).collect(),
        ..Default::default()
    };
    let per_second = |id: &str, title: &str, y_label: &str, lines: Vec<Line>| Chart {
        id: format!("{id}{sfx}"),
        title: title.into(),
        x_label: "time since start (s)".into(),
        y_label: y_label.into(),
        body: Body::Lines(lines),
        percentile_x: false,
        y_from_zero: true,
    };
    let mut charts = Vec::new();
    if !seconds.is_empty() {
        charts.push(per_second(
            "latency_over_time",
            "Latency percentiles per second",
            "latency (ms)",
            vec![
                line("p50", &|x| x.p50_ms),
                line("p95", &|x| x.p95_ms),
                line("p99", &|x| x.p99_ms),
            ],
        ));
        let mut rps = vec![line("achieved rps", &|x| x.rps)];
        if r.series.iter().any(|x| x.target_rps.is_some()) {
            rps.push(line("target rps", &|x| x.target_rps.unwrap_or(0.0)));
        }
        charts.push(per_second(
            "throughput",
            "Achieved vs target request rate",
            "requests per second",
            rps,
        ));
        let errs: Vec<Line> = ERROR_CLASSES
            .iter()
            .enumerate()
            .filter(|(k, _)| seconds.iter().any(|x| x.errors_by_class[*k] > 0))
            .map(|(k, c)| line(c, &|x| x.errors_by_class[k] as f64))
            .collect();
        // A chart of zeros says less than a line of text: no chart then
        // (the section says so, see `run_notes`).
        if !errs.is_empty() {
            charts.push(per_second(
                "errors",
                "Errors by class per second",
                "errors per second",
                errs,
            ));
        }
    }
    charts.extend(distribution_chart(r, sfx));
    charts
}

/// Latency by percentile, on a log scale of the tail.
fn distribution_chart(r: &RunDoc, sfx: &str) -> Option<Chart> {
    if r.latency_distribution.is_empty() {
        return None;
    }
    let pts: Vec<(f64, f64)> = r
        .latency_distribution
        .iter()
        .filter(|p| p.percentile < 100.0)
        .map(|p| (-(1.0 - p.percentile / 100.0).log10(), p.ms))
        .collect();
    Some(Chart {
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
    })
}

/// One row per kind of request; their counts sum to the run's.
fn requests_table(r: &RunDoc, sfx: &str) -> Table {
    let q = &r.by_request;
    let mut cols = vec![
        text("request", q.iter().map(|x| x.name.clone()).collect()),
        count("requests", q.iter().map(|x| x.requests).collect()),
        count("ok", q.iter().map(|x| x.ok).collect()),
    ];
    for c in ERROR_CLASSES {
        cols.push(count(
            c,
            q.iter()
                .map(|x| x.errors.get(c).copied().unwrap_or(0))
                .collect(),
        ));
    }
    cols.extend([
        num("error %", q.iter().map(|x| 100.0 * x.error_rate).collect()),
        num("rps", q.iter().map(|x| x.rps).collect()),
        num("p50 ms", q.iter().map(|x| x.latency_ms.p50).collect()),
        num("p95 ms", q.iter().map(|x| x.latency_ms.p95).collect()),
        num("p99 ms", q.iter().map(|x| x.latency_ms.p99).collect()),
    ]);
    Table::new(&format!("run_requests{sfx}"), "Each kind of request", cols)
}

/// Every second of the run, for the export (too long for the page).
fn series_table(r: &RunDoc, sfx: &str) -> Table {
    let col = |f: fn(&SecondRow) -> u64| r.series.iter().map(f).collect::<Vec<u64>>();
    let real = |f: fn(&SecondRow) -> f64| r.series.iter().map(f).collect::<Vec<f64>>();
    let mut cols = vec![
        count("t_s", col(|x| x.t_s)),
        count("requests", col(|x| x.requests)),
        count("ok", col(|x| x.ok)),
        count("errors", col(|x| x.errors)),
        count("dropped", col(|x| x.dropped)),
        num("rps", real(|x| x.rps)),
        num("p50_ms", real(|x| x.p50_ms)),
        num("p95_ms", real(|x| x.p95_ms)),
        num("p99_ms", real(|x| x.p99_ms)),
    ];
    for (k, c) in ERROR_CLASSES.iter().enumerate() {
        cols.push(count(
            c,
            r.series.iter().map(|x| x.errors_by_class[k]).collect(),
        ));
    }
    Table::new(
        &format!("run_series{sfx}"),
        "The run, second by second",
        cols,
    )
    .export_only()
}

/// The seconds a chart draws: the whole seconds of the measured run. The
/// last one, when it is partial (a run of 9.5 s, or the responses that
/// came after the schedule ended), would draw as a collapse to zero.
fn whole_seconds(r: &RunDoc) -> Vec<&SecondRow> {
    let whole = |x: &&SecondRow| x.t_s as f64 + 1.0 <= r.duration_s + 1e-6;
    if r.duration_s > 0.0 && r.series.iter().any(|x| whole(&x)) {
        r.series.iter().filter(whole).collect()
    } else {
        r.series.iter().collect()
    }
}

/// Lines of text in place of the charts that would show nothing.
fn run_notes(r: &RunDoc) -> Vec<String> {
    let mut notes = Vec::new();
    // The seconds the errors chart would draw: no chart, this line.
    let seconds = whole_seconds(r);
    if !seconds.is_empty() && seconds.iter().all(|x| x.errors == 0) {
        notes.push("No request failed in any second of the run: no errors chart.".into());
    }
    notes
}

/// Latency (corrected and not), requests by outcome, thresholds.
fn run_tables(r: &RunDoc, sfx: &str) -> Vec<Table> {
    let mut tables = vec![latency_table(r, sfx)];
    if r.by_request.len() > 1 {
        tables.push(requests_table(r, sfx));
    }
    if !r.checks.is_empty() {
        tables.push(checks_table(r, sfx));
    }
    if !r.status_codes.is_empty() {
        tables.push(Table::new(
            &format!("run_status_codes{sfx}"),
            "Responses by status code",
            vec![
                text("status", r.status_codes.keys().cloned().collect()),
                count("responses", r.status_codes.values().copied().collect()),
            ],
        ));
    }
    tables.push(outcomes_table(r, sfx));
    if !r.shards.is_empty() {
        tables.push(shards_table(r, sfx));
    }
    if !r.thresholds.is_empty() {
        tables.push(thresholds_table(r, sfx));
    }
    if !r.series.is_empty() {
        tables.push(series_table(r, sfx));
    }
    tables
}

/// A merged distributed run's shards, each with its own figures: a
/// generator that could not keep up shows as fewer requests than
/// scheduled, drops or a large send lag.
fn shards_table(r: &RunDoc, sfx: &str) -> Table {
    let s = &r.shards;
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    Table::new(
        &format!("run_shards{sfx}"),
        "Shards of the distributed run (send lag: how late requests went out after their due time)",
        vec![
            count("shard", s.iter().map(|x| u64::from(x.index)).collect()),
            text(
                "scheduled",
                s.iter()
                    .map(|x| opt(x.scheduled.map(|n| n.to_string())))
                    .collect(),
            ),
            count("requests", s.iter().map(|x| x.requests).collect()),
            count("dropped", s.iter().map(|x| x.dropped).collect()),
            num("rps", s.iter().map(|x| x.rps).collect()),
            num(
                "send lag p99 ms",
                s.iter().map(|x| x.send_lag_p99_ms).collect(),
            ),
            text(
                "start offset ms",
                s.iter()
                    .map(|x| opt(x.start_offset_ms.map(|ms| format!("{ms:+.1}"))))
                    .collect(),
            ),
            text(
                "stopped",
                s.iter().map(|x| opt(x.stopped.clone())).collect(),
            ),
        ],
    )
}

/// Each response check, with the responses that passed and failed it.
fn checks_table(r: &RunDoc, sfx: &str) -> Table {
    let c = &r.checks;
    Table::new(
        &format!("run_checks{sfx}"),
        "Response checks (a response that failed one is a `check` error, or http_4xx/http_5xx for those statuses)",
        vec![
            text("request", c.iter().map(|x| x.request.clone()).collect()),
            text("check", c.iter().map(|x| x.check.clone()).collect()),
            count("passed", c.iter().map(|x| x.passed).collect()),
            count("failed", c.iter().map(|x| x.failed).collect()),
            num(
                "failed %",
                c.iter()
                    .map(|x| 100.0 * x.failed as f64 / (x.passed + x.failed).max(1) as f64)
                    .collect(),
            ),
        ],
    )
}

/// Latency from the schedule and from the send, and where the time goes:
/// the first byte of every response, the TCP connect and TLS handshake of
/// every new connection.
fn latency_table(r: &RunDoc, sfx: &str) -> Table {
    let mut rows = vec![
        ("corrected".to_string(), &r.latency_ms),
        ("uncorrected".to_string(), &r.latency_uncorrected_ms),
    ];
    if let Some(p) = &r.phases {
        if p.responses > 0 {
            rows.push(("time to first byte".into(), &p.ttfb_ms));
        }
        if p.new_connections > 0 {
            rows.push((
                format!("tcp connect ({} new connections)", p.new_connections),
                &p.connect_ms,
            ));
            if let Some(t) = &p.tls_handshake_ms {
                rows.push(("tls handshake".into(), t));
            }
        }
    }
    let col = |f: fn(&contracts::run::Latency) -> f64| rows.iter().map(|r| f(r.1)).collect();
    Table::new(
        &format!("run_summary{sfx}"),
        "Latency (ms): from the scheduled time (corrected), from the actual send, and its phases",
        vec![
            text("measure", rows.iter().map(|r| r.0.clone()).collect()),
            num("mean", col(|l| l.mean)),
            num("p50", col(|l| l.p50)),
            num("p90", col(|l| l.p90)),
            num("p95", col(|l| l.p95)),
            num("p99", col(|l| l.p99)),
            num("p99.9", col(|l| l.p999)),
            num("max", col(|l| l.max)),
        ],
    )
}

fn outcomes_table(r: &RunDoc, sfx: &str) -> Table {
    let mut classes: Vec<String> = vec!["ok".into()];
    let mut counts = vec![r.ok];
    for (k, v) in &r.errors {
        classes.push(k.clone());
        counts.push(*v);
    }
    Table::new(
        &format!("run_outcomes{sfx}"),
        "Requests by outcome",
        vec![text("outcome", classes), count("requests", counts)],
    )
}

fn thresholds_table(r: &RunDoc, sfx: &str) -> Table {
    let t = &r.thresholds;
    Table::new(
        &format!("run_thresholds{sfx}"),
        "Thresholds",
        vec![
            text("threshold", t.iter().map(|t| t.expr.clone()).collect()),
            text("measured", t.iter().map(|t| t.measured()).collect()),
            text(
                "verdict",
                t.iter()
                    .map(|t| if t.ok { "passed" } else { "FAILED" }.to_string())
                    .collect(),
            ),
        ],
    )
}

/// A run as a comparison names it: its name and when it started.
fn run_label(r: &RunDoc) -> String {
    let name = if r.name.is_empty() { &r.url } else { &r.name };
    if r.started_at.is_empty() {
        name.clone()
    } else {
        format!("{name} ({})", r.started_at)
    }
}

/// What makes two runs not comparable: another target, another request
/// mix or load model, offered rates more than 10% apart, or a run that
/// stopped early.
pub(super) fn comparability(base: &RunDoc, cur: &RunDoc) -> Vec<String> {
    let mut w = Vec::new();
    if base.url != cur.url {
        w.push(format!(
            "the runs hit different targets ({} and {})",
            base.url, cur.url
        ));
    }
    let mix = |r: &RunDoc| -> Vec<(String, String, u32)> {
        let mut m: Vec<_> = r
            .requests_sent
            .iter()
            .map(|q| (q.method.clone(), q.url.clone(), q.weight))
            .collect();
        m.sort();
        m
    };
    if mix(base) != mix(cur) {
        w.push("the runs sent different request mixes (methods, URLs or weights)".into());
    }
    if base.mode != cur.mode {
        w.push(format!(
            "the runs used different load models ({} and {})",
            base.mode, cur.mode
        ));
    }
    if let (Some(a), Some(b)) = (
        base.offered_rps.or(base.target_rps),
        cur.offered_rps.or(cur.target_rps),
    ) && a > 0.0
        && (b - a).abs() > 0.1 * a
    {
        w.push(format!(
            "the offered rates differ by more than 10% ({a:.1} and {b:.1} rps)"
        ));
    }
    for (which, r) in [("baseline", base), ("current", cur)] {
        if let Some(why) = &r.stopped {
            w.push(format!(
                "the {which} run stopped early ({why}): its figures are partial"
            ));
        }
    }
    w
}

/// (b − a) / a; NaN when there is nothing to compare against.
fn change(a: f64, b: f64) -> f64 {
    if a != 0.0 { (b - a) / a } else { f64::NAN }
}

/// REGRESSION (p95 over the limit, or more errors) or not, with p95's
/// move and the limit.
fn comparison_verdict(
    base: &RunDoc,
    cur: &RunDoc,
    limit: f64,
    regressed: bool,
    err_up: bool,
) -> String {
    let p95_change = change(base.latency_ms.p95, cur.latency_ms.p95);
    if !regressed {
        return format!(
            "No regression: p95 {:.1} → {:.1} ms ({:+.1}%, limit +{:.0}%)",
            base.latency_ms.p95,
            cur.latency_ms.p95,
            100.0 * p95_change,
            100.0 * limit
        );
    }
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
}

pub(super) fn compare_section(base: &RunDoc, cur: &RunDoc, limit: f64) -> Section {
    let mut s = Section::new(
        "comparison",
        format!(
            "Comparison: baseline {} vs current {}",
            run_label(base),
            run_label(cur)
        ),
    );
    s.warnings = comparability(base, cur)
        .into_iter()
        .map(|w| format!("Not comparable: {w}."))
        .collect();
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
    let p95_change = change(base.latency_ms.p95, cur.latency_ms.p95);
    let err_up = cur.error_rate - base.error_rate > 0.001;
    let regressed = p95_change > limit || err_up;
    s.regressed = Some(regressed);
    s.ok = !regressed;
    s.verdict = comparison_verdict(base, cur, limit, regressed, err_up);
    if regressed {
        s.next.push("Find the change between the two builds that moved p95; re-run both at the same rate to rule out noise.".into());
    }
    s.deltas = Some(
        rows.iter()
            .map(|(m, a, b)| {
                let c = change(*a, *b);
                let pct = if c.is_finite() {
                    format!(" ({:+.1}%)", 100.0 * c)
                } else {
                    String::new()
                };
                format!("{m} {a:.2} → {b:.2}{pct}")
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
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
