//! The report's sections: load test, comparison, capacity plan, FinOps cost
//! review and forecast verification; each a verdict, next steps, charts and
//! tables. Then the page around them.
use crate::charts::{Body, Chart, Line, short};
use crate::docs::{Doc, ERROR_CLASSES, ForecastDoc, PlanDoc, RunDoc, VerifyCase, VerifyDoc};
use crate::table::{Table, num, text};
use crate::{Error, Options, escape};

/// One part of the report.
#[derive(Debug, Clone)]
pub struct Section {
    /// Anchor id.
    pub id: String,
    /// Heading.
    pub title: String,
    /// One-line verdict.
    pub verdict: String,
    /// Whether the verdict is good news.
    pub ok: bool,
    /// Headline figures: (label, value).
    pub figures: Vec<(String, String)>,
    /// What to do next.
    pub next: Vec<String>,
    /// Charts.
    pub charts: Vec<Chart>,
    /// Tables.
    pub tables: Vec<Table>,
    /// Comparison: whether the current run regressed.
    pub regressed: Option<bool>,
}

impl Section {
    fn new(id: &str, title: String) -> Section {
        Section {
            id: id.into(),
            title,
            verdict: String::new(),
            ok: true,
            figures: vec![],
            next: vec![],
            charts: vec![],
            tables: vec![],
            regressed: None,
        }
    }
}

/// The sections for the inputs, in order: runs, comparison, forecasts, plans, checks.
pub fn build(docs: &[Doc], opts: &Options) -> Result<Vec<Section>, Error> {
    if docs.is_empty() {
        return Err(Error::Input(
            "no inputs: give run, simulate or optimize output files".into(),
        ));
    }
    let runs: Vec<&RunDoc> = docs
        .iter()
        .filter_map(|d| {
            if let Doc::Run(r) = d {
                Some(&**r)
            } else {
                None
            }
        })
        .collect();
    let forecasts: Vec<&ForecastDoc> = docs
        .iter()
        .filter_map(|d| {
            if let Doc::Forecast(f) = d {
                Some(&**f)
            } else {
                None
            }
        })
        .collect();
    let mut out = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        out.push(run_section(r, i, runs.len()));
    }
    if runs.len() >= 2 {
        out.push(compare_section(
            runs[0],
            runs[runs.len() - 1],
            opts.regression,
        ));
    }
    for (i, f) in forecasts.iter().enumerate() {
        out.push(forecast_section(f, i, opts));
    }
    let mut plans = 0;
    for d in docs {
        match d {
            Doc::Plan(p) => {
                out.push(plan_section(p, plans, forecasts.first().copied()));
                plans += 1;
            }
            Doc::Verify(v) => out.push(verify_section(v)),
            _ => {}
        }
    }
    Ok(out)
}

fn suffix(i: usize, n: usize) -> String {
    if n > 1 {
        format!("_{}", i + 1)
    } else {
        String::new()
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn run_section(r: &RunDoc, i: usize, n: usize) -> Section {
    let sfx = suffix(i, n);
    let name = if r.name.is_empty() {
        r.url.clone()
    } else {
        r.name.clone()
    };
    let mut s = Section::new(&format!("run{sfx}"), format!("Load test: {name}"));
    let failed: Vec<_> = r.thresholds.iter().filter(|t| !t.ok).collect();
    s.ok = failed.is_empty() && r.stopped.is_none();
    s.verdict = if r.thresholds.is_empty() {
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
        s.verdict.push_str(&format!(" — run stopped early: {why}"));
    }
    s.figures = vec![
        ("Requests".into(), r.requests.to_string()),
        ("Throughput".into(), format!("{:.1} rps", r.rps)),
        ("p95 latency".into(), format!("{:.1} ms", r.latency_ms.p95)),
        ("p99 latency".into(), format!("{:.1} ms", r.latency_ms.p99)),
        ("Error rate".into(), pct(r.error_rate)),
    ];
    if let Some(t) = r.target_rps {
        s.figures
            .push(("Target rate".into(), format!("{t:.0} rps")));
        if r.rps < 0.97 * t {
            s.next.push(format!(
                "Achieved {:.0} rps of the {t:.0} rps scheduled: the service (or the generator) saturated; check `dropped` ({}) and the server's CPU before trusting the latency figures.",
                r.rps, r.dropped
            ));
        }
    }
    let gap = r.latency_ms.p99 - r.latency_uncorrected_ms.p99;
    if r.latency_uncorrected_ms.p99 > 0.0 && gap > 0.2 * r.latency_uncorrected_ms.p99 {
        s.next.push(format!(
            "Requests queued behind slow ones: p99 from the scheduled time is {:.1} ms, from the actual send {:.1} ms. A closed-loop tool would have reported the lower figure.",
            r.latency_ms.p99, r.latency_uncorrected_ms.p99
        ));
    }
    for t in &failed {
        s.next.push(format!("Threshold `{}` failed with {}: block the release and look at the latency-over-time chart for when it started.", t.expr, short(t.value)));
    }
    if r.error_rate > 0.01 {
        let worst = r
            .errors
            .iter()
            .max_by_key(|e| e.1)
            .map(|e| e.0.clone())
            .unwrap_or_default();
        s.next.push(format!(
            "Error rate {} is over 1% (alert level); most errors are `{worst}`.",
            pct(r.error_rate)
        ));
    }
    let xs: Vec<f64> = r.series.iter().map(|x| x.t_s).collect();
    let line = |name: &str, f: &dyn Fn(&crate::docs::Second) -> f64| Line {
        name: name.into(),
        points: r.series.iter().map(|x| (x.t_s, f(x))).collect(),
        ..Default::default()
    };
    if !xs.is_empty() {
        s.charts.push(Chart {
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
        s.charts.push(Chart {
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
            .filter(|(k, _)| r.series.iter().any(|x| x.errors_by_class[*k] > 0.0))
            .map(|(k, c)| line(c, &|x| x.errors_by_class[k]))
            .collect();
        if errs.is_empty() {
            errs.push(line("all classes (none)", &|x| x.errors));
        }
        s.charts.push(Chart {
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
        s.charts.push(Chart {
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
    let l = &r.latency_ms;
    let u = &r.latency_uncorrected_ms;
    s.tables.push(Table::new(
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
    s.tables.push(Table::new(
        &format!("run_outcomes{sfx}"),
        "Requests by outcome",
        vec![text("outcome", classes), num("requests", counts)],
    ));
    if !r.thresholds.is_empty() {
        s.tables.push(Table::new(
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
    if s.next.is_empty() && s.ok {
        s.next.push(
            "Nothing to act on: keep this run as the baseline for the next comparison.".into(),
        );
    }
    s
}

fn compare_section(base: &RunDoc, cur: &RunDoc, limit: f64) -> Section {
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

/// Days since 1970-01-01 → `YYYY-MM-DD` (proleptic Gregorian).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD` → days since 1970-01-01.
pub fn days_from_civil(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let (y, m, d): (i64, i64, i64) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn forecast_section(f: &ForecastDoc, i: usize, opts: &Options) -> Section {
    let sfx = if i > 0 {
        format!("_{}", i + 1)
    } else {
        String::new()
    };
    let mut s = Section::new(
        &format!("capacity{sfx}"),
        format!(
            "Capacity plan: {}",
            if f.name.is_empty() {
                "forecast"
            } else {
                &f.name
            }
        ),
    );
    let start = opts.start_date.as_deref().and_then(days_from_civil);
    let when = |day: f64| match start {
        Some(d0) => format!("{} (day {day:.0})", civil(d0 + day.floor() as i64)),
        None => format!("day {day:.0} (month {:.0})", day / 30.4375 + 1.0),
    };
    s.ok = f.crossings.is_empty() && f.slo.violation_minutes.mean == 0.0;
    s.verdict = match f.crossings.first() {
        Some(c) => format!(
            "First threshold crossed: {} at {} with about {:.0} users",
            c.threshold,
            when(c.day),
            c.users
        ),
        None => "No threshold is crossed over the horizon".into(),
    };
    let last = f.windows.last();
    s.figures = vec![
        ("Simulated".into(), f.simulated.clone()),
        (
            "Peak users".into(),
            last.map(|w| short(w.users)).unwrap_or_default(),
        ),
        (
            "Peak rps".into(),
            last.map(|w| format!("{:.0}", w.offered_rps))
                .unwrap_or_default(),
        ),
        (
            "Peak replicas".into(),
            f.windows
                .iter()
                .map(|w| w.replicas_max)
                .max()
                .unwrap_or(0)
                .to_string(),
        ),
        (
            "SLO-violation minutes".into(),
            format!(
                "{:.1} ± {:.1}",
                f.slo.violation_minutes.mean, f.slo.violation_minutes.ci95
            ),
        ),
        ("Error rate".into(), pct(f.error_rate)),
    ];
    if let Some(c) = f.horizon_cost_estimate {
        s.figures.push((
            "Replica cost over the horizon (steady-state estimate)".into(),
            format!("${c:.0}"),
        ));
    }
    for c in &f.crossings {
        s.next
            .push(format!("{} — at {}: {}", c.threshold, when(c.day), c.note));
    }
    if f.crossings
        .iter()
        .any(|c| c.threshold.starts_with("replicas"))
    {
        s.next.push("Raise the autoscaler's max (and the account quota) before that date, or the SLO breaks with it.".into());
    }
    let day = |w: &crate::docs::Window| w.day;
    let ws = &f.windows;
    let band = |g: &dyn Fn(&crate::docs::Window) -> crate::docs::Estimate| -> Vec<(f64, f64, f64)> {
        if f.replications > 1 {
            ws.iter()
                .map(|w| (day(w), g(w).mean - g(w).ci95, g(w).mean + g(w).ci95))
                .collect()
        } else {
            vec![]
        }
    };
    let pts = |g: &dyn Fn(&crate::docs::Window) -> f64| {
        ws.iter().map(|w| (day(w), g(w))).collect::<Vec<_>>()
    };
    let sparse = ws.len() < 40;
    if !ws.is_empty() {
        s.charts.push(Chart {
            id: format!("users_rps{sfx}"),
            title: "Users and offered load at each window's peak".into(),
            x_label: "days from the start of the horizon".into(),
            y_label: "users (thousands) / requests per second".into(),
            body: Body::Lines(vec![
                Line {
                    name: "users (thousands)".into(),
                    points: pts(&|w| w.users / 1000.0),
                    markers: sparse,
                    ..Default::default()
                },
                Line {
                    name: "offered rps".into(),
                    points: pts(&|w| w.offered_rps),
                    markers: sparse,
                    ..Default::default()
                },
            ]),
            percentile_x: false,
            y_from_zero: true,
        });
        s.charts.push(Chart {
            id: format!("replicas{sfx}"),
            title: "Replicas (simulated mean with 95% interval; steady-state estimate)".into(),
            x_label: "days from the start of the horizon".into(),
            y_label: "replicas".into(),
            body: Body::Lines(vec![
                Line {
                    name: "simulated mean".into(),
                    points: pts(&|w| w.replicas.mean),
                    band: band(&|w| w.replicas),
                    markers: sparse,
                },
                Line {
                    name: "most in any replication".into(),
                    points: pts(&|w| w.replicas_max as f64),
                    ..Default::default()
                },
                Line {
                    name: "steady-state estimate".into(),
                    points: pts(&|w| w.fluid_replicas),
                    ..Default::default()
                },
            ]),
            percentile_x: false,
            y_from_zero: true,
        });
        let mut p95 = vec![Line {
            name: "p95 (95% interval)".into(),
            points: pts(&|w| w.p95_ms.mean),
            band: band(&|w| w.p95_ms),
            markers: sparse,
        }];
        if f.slo.p95_target_ms > 0.0 {
            let x0 = ws.first().map(day).unwrap_or(0.0);
            let x1 = ws.last().map(day).unwrap_or(1.0);
            p95.push(Line {
                name: format!("target {} ms", f.slo.p95_target_ms),
                points: vec![(x0, f.slo.p95_target_ms), (x1, f.slo.p95_target_ms)],
                ..Default::default()
            });
        }
        s.charts.push(Chart {
            id: format!("p95{sfx}"),
            title: "p95 latency in each window".into(),
            x_label: "days from the start of the horizon".into(),
            y_label: "p95 latency (ms)".into(),
            body: Body::Lines(p95),
            percentile_x: false,
            y_from_zero: true,
        });
        s.charts.push(Chart {
            id: format!("cost_over_time{sfx}"),
            title: "Replica cost per month at each window's peak rate".into(),
            x_label: "days from the start of the horizon".into(),
            y_label: "USD per month (730 h)".into(),
            body: Body::Lines(vec![Line {
                name: "cost at the peak rate".into(),
                points: pts(&|w| w.cost_per_hour.mean * 730.0),
                band: band(&|w| crate::docs::Estimate {
                    mean: w.cost_per_hour.mean * 730.0,
                    ci95: w.cost_per_hour.ci95 * 730.0,
                }),
                markers: sparse,
            }]),
            percentile_x: false,
            y_from_zero: true,
        });
        s.tables.push(Table::new(
            &format!("windows{sfx}"),
            "Simulated windows (mean over replications, ± 95% interval)",
            vec![
                text("window", ws.iter().map(|w| w.label.clone()).collect()),
                num("users", ws.iter().map(|w| w.users).collect()),
                num("rps", ws.iter().map(|w| w.offered_rps).collect()),
                num("replicas", ws.iter().map(|w| w.replicas.mean).collect()),
                num("replicas ±", ws.iter().map(|w| w.replicas.ci95).collect()),
                num("p95 ms", ws.iter().map(|w| w.p95_ms.mean).collect()),
                num("p95 ±", ws.iter().map(|w| w.p95_ms.ci95).collect()),
                num(
                    "cpu %",
                    ws.iter().map(|w| 100.0 * w.utilization.mean).collect(),
                ),
                num(
                    "SLO-violation min",
                    ws.iter().map(|w| w.violation_minutes.mean).collect(),
                ),
                num("$/hour", ws.iter().map(|w| w.cost_per_hour.mean).collect()),
            ],
        ));
    }
    if !f.crossings.is_empty() {
        s.tables.push(Table::new(
            &format!("crossings{sfx}"),
            "When each threshold is crossed",
            vec![
                text(
                    "threshold",
                    f.crossings.iter().map(|c| c.threshold.clone()).collect(),
                ),
                text("when", f.crossings.iter().map(|c| when(c.day)).collect()),
                num(
                    "users",
                    f.crossings.iter().map(|c| c.users.round()).collect(),
                ),
            ],
        ));
    }
    s
}

fn plan_section(p: &PlanDoc, i: usize, forecast: Option<&ForecastDoc>) -> Section {
    let sfx = if i > 0 {
        format!("_{}", i + 1)
    } else {
        String::new()
    };
    let mut s = Section::new(&format!("finops{sfx}"), "FinOps cost review".into());
    s.ok = p.savings >= 0.0;
    s.verdict = format!(
        "${:.0}/month against ${:.0}/month all on-demand: saves ${:.0}/month ({:.1}%), within {:.2}% of the LP lower bound",
        p.monthly_cost,
        p.monthly_baseline,
        p.monthly_baseline - p.monthly_cost,
        100.0 * p.savings_share,
        100.0 * p.gap
    );
    let h = p.solver.hours.max(1) as f64;
    let month = 730.0 / h;
    s.figures = vec![
        ("Cost per month".into(), format!("${:.0}", p.monthly_cost)),
        (
            "All on-demand per month".into(),
            format!("${:.0}", p.monthly_baseline),
        ),
        ("Savings".into(), format!("{:.1}%", 100.0 * p.savings_share)),
        ("Horizon".into(), format!("{} hours", p.solver.hours)),
    ];
    let cover = mean(&p.hourly.commitment_coverage);
    let util = mean(&p.hourly.commitment_utilization);
    s.figures.push(("Commitment coverage".into(), pct(cover)));
    s.figures.push(("Commitment utilisation".into(), pct(util)));
    if let Some(f) = forecast
        && let Some(hr) = &f.hourly
        && !hr.users.is_empty()
    {
        let users = mean(&hr.users);
        let requests: f64 =
            hr.rps.iter().map(|r| r * 3600.0).sum::<f64>() * (h / hr.rps.len().max(1) as f64);
        if users > 0.0 {
            s.figures.push((
                "Cost per 1k users per month".into(),
                format!("${:.2}", p.monthly_cost / (users / 1000.0)),
            ));
        }
        if requests > 0.0 {
            s.figures.push((
                "Cost per million requests".into(),
                format!("${:.4}", p.total_cost / (requests / 1e6)),
            ));
        }
    }
    for b in &p.binding {
        s.next.push(b.note.clone());
    }
    for b in &p.break_even {
        if b.utilization < b.break_even_utilization {
            s.next.push(format!(
                "{} {}: reserved capacity is {:.0}% used, under the {:.0}% break-even; buy fewer.",
                b.instance_type,
                b.pricing,
                100.0 * b.utilization,
                100.0 * b.break_even_utilization
            ));
        }
    }
    if p.gap > 0.01 {
        s.next.push(format!("The plan costs {:.1}% more than the LP lower bound. The bound buys fractions of instances, so part of that gap cannot be closed; the rest is what a longer --time-limit could still find.", 100.0 * p.gap));
    }
    for n in &p.catalog_notes {
        if n.to_lowercase().contains("approximate") {
            s.next.push(format!("Prices: {n}"));
        }
    }
    let mut by_pricing: Vec<(String, f64)> = p
        .cost_by_pricing
        .iter()
        .map(|(k, v)| (k.clone(), v * month))
        .collect();
    by_pricing.sort_by(|a, b| b.1.total_cmp(&a.1));
    s.charts.push(Chart {
        id: format!("cost_by_pricing{sfx}"),
        title: "Cost by pricing model".into(),
        x_label: "pricing model".into(),
        y_label: "USD per month".into(),
        body: Body::Bars(by_pricing.clone()),
        percentile_x: false,
        y_from_zero: true,
    });
    let mut by_type: Vec<(String, f64)> = p
        .cost_by_type
        .iter()
        .map(|(k, v)| (k.clone(), v * month))
        .collect();
    by_type.sort_by(|a, b| b.1.total_cmp(&a.1));
    s.charts.push(Chart {
        id: format!("cost_by_type{sfx}"),
        title: "Cost by instance type".into(),
        x_label: "instance type".into(),
        y_label: "USD per month".into(),
        body: Body::Bars(by_type.clone()),
        percentile_x: false,
        y_from_zero: true,
    });
    s.charts.push(Chart {
        id: format!("savings{sfx}"),
        title: "Plan vs all on-demand".into(),
        x_label: "".into(),
        y_label: "USD per month".into(),
        body: Body::Bars(vec![
            ("all on-demand".into(), p.monthly_baseline),
            ("plan".into(), p.monthly_cost),
        ]),
        percentile_x: false,
        y_from_zero: true,
    });
    // Past a month of hours, hourly lines turn into a solid band: plot
    // daily means instead.
    let n_hours = p.hourly.commitment_coverage.len();
    let daily = n_hours > DAILY_AFTER_HOURS;
    let (step, x_unit) = if daily {
        (24, "day of the horizon (daily mean)")
    } else {
        (1, "hour of the horizon")
    };
    let series = |v: &[f64], k: f64| {
        v.chunks(step)
            .enumerate()
            .map(|(i, c)| (i as f64, k * c.iter().sum::<f64>() / c.len() as f64))
            .collect::<Vec<_>>()
    };
    if n_hours > 0 {
        s.charts.push(Chart {
            id: format!("commitment{sfx}"),
            title: "Commitment coverage and utilisation per hour".into(),
            x_label: x_unit.into(),
            y_label: "percent".into(),
            body: Body::Lines(vec![
                Line {
                    name: "coverage (reserved share of demand)".into(),
                    points: series(&p.hourly.commitment_coverage, 100.0),
                    ..Default::default()
                },
                Line {
                    name: "utilisation (used share of reserved)".into(),
                    points: series(&p.hourly.commitment_utilization, 100.0),
                    ..Default::default()
                },
                Line {
                    name: "spot share of capacity".into(),
                    points: series(&p.hourly.spot_share, 100.0),
                    ..Default::default()
                },
            ]),
            percentile_x: false,
            y_from_zero: true,
        });
        s.charts.push(Chart {
            id: format!("hourly_cost{sfx}"),
            title: if daily {
                "Cost per hour (daily mean): plan vs all on-demand".into()
            } else {
                "Cost per hour: plan vs all on-demand".into()
            },
            x_label: x_unit.into(),
            y_label: "USD per hour".into(),
            body: Body::Lines(vec![
                Line {
                    name: "all on-demand".into(),
                    points: series(&p.hourly.baseline_cost, 1.0),
                    ..Default::default()
                },
                Line {
                    name: "plan".into(),
                    points: series(&p.hourly.cost, 1.0),
                    ..Default::default()
                },
            ]),
            percentile_x: false,
            y_from_zero: true,
        });
    }
    let lines = &p.instances;
    s.tables.push(Table::new(
        &format!("plan_lines{sfx}"),
        "What to buy",
        vec![
            text(
                "instance type",
                lines.iter().map(|l| l.instance_type.clone()).collect(),
            ),
            text("pricing", lines.iter().map(|l| l.pricing.clone()).collect()),
            text(
                "count",
                lines
                    .iter()
                    .map(|l| match (&l.count, &l.hourly_counts) {
                        (Some(n), _) => format!("{n} held"),
                        (None, Some(v)) => format!(
                            "{}–{} per hour",
                            v.iter().min().unwrap_or(&0),
                            v.iter().max().unwrap_or(&0)
                        ),
                        _ => String::new(),
                    })
                    .collect(),
            ),
            num("$ per hour", lines.iter().map(|l| l.hourly_price).collect()),
            num(
                "instance-hours",
                lines.iter().map(|l| l.instance_hours).collect(),
            ),
            num(
                "$ per month",
                lines.iter().map(|l| l.cost * month).collect(),
            ),
        ],
    ));
    let src: Vec<(&String, &f64)> = p.savings_by_source.iter().collect();
    s.tables.push(Table::new(
        &format!("savings_by_source{sfx}"),
        "Where each dollar of savings comes from (per month, against on-demand prices for the same instance-hours; instance_mix_and_capacity = the rest: cheaper types than the baseline's, less the extra capacity the spot and survive rules buy)",
        vec![text("source", src.iter().map(|x| x.0.clone()).collect()), num("$ per month", src.iter().map(|x| x.1 * month).collect())],
    ));
    if !p.break_even.is_empty() {
        s.tables.push(Table::new(
            &format!("break_even{sfx}"),
            "Reservations: break-even utilisation",
            vec![
                text(
                    "instance type",
                    p.break_even
                        .iter()
                        .map(|b| b.instance_type.clone())
                        .collect(),
                ),
                text(
                    "term",
                    p.break_even.iter().map(|b| b.pricing.clone()).collect(),
                ),
                num(
                    "count",
                    p.break_even.iter().map(|b| b.count as f64).collect(),
                ),
                num(
                    "break-even %",
                    p.break_even
                        .iter()
                        .map(|b| 100.0 * b.break_even_utilization)
                        .collect(),
                ),
                num(
                    "utilisation %",
                    p.break_even.iter().map(|b| 100.0 * b.utilization).collect(),
                ),
            ],
        ));
    }
    if !p.binding.is_empty() {
        s.tables.push(Table::new(
            &format!("binding{sfx}"),
            "Constraints that bind (shadow prices from the LP relaxation)",
            vec![
                text(
                    "constraint",
                    p.binding.iter().map(|b| b.constraint.clone()).collect(),
                ),
                num("hours", p.binding.iter().map(|b| b.hours as f64).collect()),
                num(
                    "shadow price",
                    p.binding.iter().map(|b| b.shadow_price).collect(),
                ),
                text("unit", p.binding.iter().map(|b| b.unit.clone()).collect()),
            ],
        ));
    }
    s
}

fn verify_section(v: &VerifyDoc) -> Section {
    let mut s = Section::new("verify", "Forecast vs measurement".into());
    let judged: Vec<&VerifyCase> = v.cases.iter().filter(|c| c.role != "fitted").collect();
    let missed = judged.iter().filter(|c| !c.ok).count();
    s.ok = missed == 0;
    s.verdict = if s.ok {
        format!(
            "The calibrated model predicted all {} measurements it was not fitted on within tolerance (p95 ±15%, throughput ±5%; saturation within one step)",
            judged.len()
        )
    } else {
        format!(
            "The calibrated model MISSED {missed} of {} measurements it was not fitted on: treat the forecast with caution",
            judged.len()
        )
    };
    if !v.note.is_empty() {
        s.next.push(v.note.clone());
    }
    let verdict = |c: &VerifyCase| match (c.role.as_str(), c.ok) {
        ("fitted", _) => "fitted on",
        (_, true) => "within",
        (_, false) => "MISSED",
    };
    s.tables.push(Table::new(
        "verify",
        "Predicted vs measured: the fitted steps, then those the model did not see",
        vec![
            text("case", v.cases.iter().map(|c| c.case.clone()).collect()),
            text(
                "role",
                v.cases
                    .iter()
                    .map(|c| {
                        if c.role.is_empty() {
                            "held_out".into()
                        } else {
                            c.role.clone()
                        }
                    })
                    .collect(),
            ),
            num(
                "predicted p95 ms",
                v.cases.iter().map(|c| c.predicted_p95_ms).collect(),
            ),
            num(
                "measured p95 ms",
                v.cases.iter().map(|c| c.measured_p95_ms).collect(),
            ),
            num(
                "p95 error %",
                v.cases.iter().map(|c| 100.0 * c.p95_error).collect(),
            ),
            num(
                "predicted rps",
                v.cases.iter().map(|c| c.predicted_rps).collect(),
            ),
            num(
                "measured rps",
                v.cases.iter().map(|c| c.measured_rps).collect(),
            ),
            num(
                "rps error %",
                v.cases.iter().map(|c| 100.0 * c.rps_error).collect(),
            ),
            text(
                "verdict",
                v.cases.iter().map(|c| verdict(c).to_string()).collect(),
            ),
        ],
    ));
    s
}

/// Hourly plan charts switch to daily means beyond this many hours.
const DAILY_AFTER_HOURS: usize = 24 * 31;

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#111;line-height:1.45}\
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #222;padding-bottom:.2em;margin-top:2em}\
.verdict{padding:.7em 1em;border-left:8px solid;font-weight:600;margin:1em 0}\
.ok{border-color:#1f3c88;background:#eef2fb}.bad{border-color:#000;background:#fde8d7;border-left-style:double}\
.figures{display:flex;flex-wrap:wrap;gap:.6em;margin:1em 0}.fig{border:1px solid #bbb;padding:.4em .8em;min-width:9em}\
.fig b{display:block;font-size:1.25em}.next{background:#f6f6f6;padding:.6em 1.2em;border:1px solid #ddd}\
table{border-collapse:collapse;margin:1em 0;font-size:.9em;width:100%}caption{text-align:left;font-weight:600;padding:.3em 0}\
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}th:first-child,td:first-child{text-align:left}\
th{background:#eee}svg{max-width:100%;height:auto;display:block;margin:1em 0}nav a{margin-right:1em}";

/// The self-contained HTML page.
pub fn html(sections: &[Section], svgs: &[Vec<String>], opts: &Options) -> String {
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    s.push_str(&format!(
        "<title>{}</title><style>{CSS}</style></head><body>\n",
        escape(&opts.title)
    ));
    s.push_str(&format!("<h1>{}</h1>\n<nav>", escape(&opts.title)));
    for sec in sections {
        s.push_str(&format!(
            "<a href=\"#{}\">{}</a>",
            escape(&sec.id),
            escape(&sec.title)
        ));
    }
    s.push_str("</nav>\n");
    for (k, sec) in sections.iter().enumerate() {
        s.push_str(&format!(
            "<section id=\"{}\">\n<h2>{}</h2>\n",
            escape(&sec.id),
            escape(&sec.title)
        ));
        s.push_str(&format!(
            "<p class=\"verdict {}\">{}</p>\n",
            if sec.ok { "ok" } else { "bad" },
            escape(&sec.verdict)
        ));
        if !sec.figures.is_empty() {
            s.push_str("<div class=\"figures\">");
            for (l, v) in &sec.figures {
                s.push_str(&format!(
                    "<div class=\"fig\">{}<b>{}</b></div>",
                    escape(l),
                    escape(v)
                ));
            }
            s.push_str("</div>\n");
        }
        if !sec.next.is_empty() {
            s.push_str("<div class=\"next\"><h3>What to do next</h3><ul>");
            for n in &sec.next {
                s.push_str(&format!("<li>{}</li>", escape(n)));
            }
            s.push_str("</ul></div>\n");
        }
        for (c, svg) in sec.charts.iter().zip(&svgs[k]) {
            s.push_str(&format!("<figure id=\"{}\">", escape(&c.id)));
            // plotters writes the document with an XML declaration; inline
            // SVG starts at the element.
            let body = svg.find("<svg").map(|i| &svg[i..]).unwrap_or(svg);
            s.push_str(body);
            s.push_str("</figure>\n");
        }
        for t in &sec.tables {
            s.push_str(&t.html());
        }
        s.push_str("</section>\n");
    }
    s.push_str("<footer><p>Generated by loadtest. Charts are inline SVG; PNG and SVG copies are beside this file.</p></footer></body></html>\n");
    s
}

/// The Markdown page (charts as PNG links). Markdown renders inline HTML,
/// so every text from the inputs is HTML-escaped here too.
pub fn markdown(sections: &[Section], opts: &Options) -> String {
    let e = |t: &str| escape(t);
    let mut s = format!("# {}\n\n", e(&opts.title));
    for sec in sections {
        s.push_str(&format!(
            "## {}\n\n**{}**\n\n",
            e(&sec.title),
            e(&sec.verdict)
        ));
        for (l, v) in &sec.figures {
            s.push_str(&format!("- {}: **{}**\n", e(l), e(v)));
        }
        if !sec.next.is_empty() {
            s.push_str("\n### What to do next\n\n");
            for n in &sec.next {
                s.push_str(&format!("- {}\n", e(n)));
            }
        }
        s.push('\n');
        for c in &sec.charts {
            let title = e(&c.title).replace(['[', ']'], "");
            s.push_str(&format!("![{title}]({}.png)\n\n", c.id));
        }
        for t in &sec.tables {
            s.push_str(&t.markdown());
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(role: &str, ok: bool) -> VerifyCase {
        VerifyCase {
            case: format!("{role} {ok}"),
            role: role.into(),
            ok,
            ..VerifyCase::default()
        }
    }

    /// The steps the model was fitted on are shown but not judged; a miss
    /// on a step it did not see fails the section.
    #[test]
    fn fitted_steps_are_shown_not_judged() {
        let doc = |cases| VerifyDoc {
            note: String::new(),
            cases,
        };
        let s = verify_section(&doc(vec![case("fitted", false), case("held_out", true)]));
        assert!(s.ok, "{}", s.verdict);
        assert!(s.verdict.contains("all 1 measurements"), "{}", s.verdict);
        let s = verify_section(&doc(vec![case("fitted", true), case("saturation", false)]));
        assert!(!s.ok);
        assert!(s.verdict.contains("MISSED 1 of 1"), "{}", s.verdict);
    }
}
