//! The capacity-planning section: a forecast's windows, crossings and
//! the servers each growth step needs.
use super::*;

pub(super) fn forecast_section(f: &ForecastDoc, i: usize, opts: &Options) -> Section {
    let sfx = if i > 0 {
        format!("_{}", i + 1)
    } else {
        String::new()
    };
    let mut s = Section::new(
        &format!("capacity{sfx}"),
        format!(
            "Capacity plan: {} (seed {}){}",
            if f.name.is_empty() {
                "forecast"
            } else {
                &f.name
            },
            f.seed,
            provenance(&f.started_at, &f.version)
        ),
    );
    let start = opts.start_date.as_deref().and_then(days_from_civil);
    let when = |day: f64| when(start, day);
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
    s.figures = forecast_figures(f);
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
    if !f.windows.is_empty() {
        let w = WindowSeries {
            ws: &f.windows,
            replicated: f.replications > 1,
        };
        s.charts = vec![
            users_chart(&w, &sfx),
            rps_chart(&w, &sfx),
            replicas_chart(&w, &sfx),
            p95_chart(&w, f.slo.p95_target_ms, &sfx),
            cost_chart(&w, &sfx),
        ];
        s.tables.push(windows_table(&f.windows, &sfx));
        s.tables.extend(cache_table(&f.windows, &sfx));
    }
    s.charts.extend(knee_chart(f, &sfx));
    s.tables.extend(models_table(f, &sfx));
    s.tables.extend(servers_table(f, &sfx, &when));
    if !f.crossings.is_empty() {
        s.tables.push(crossings_table(f, &sfx, &when));
    }
    s
}

/// p50, p95 and p99 against offered load at the measured steps the model
/// was fitted to, next to what the model predicts for the same rates: the
/// knee. Only a calibrated forecast has them; one written before p50 and
/// p99 were kept shows p95 alone.
fn knee_chart(f: &ForecastDoc, sfx: &str) -> Option<Chart> {
    use contracts::forecast::StepFit;
    let fit = f.calibration.as_ref()?;
    let mut steps: Vec<_> = fit.steps.iter().collect();
    if steps.is_empty() {
        return None;
    }
    steps.sort_by(|a, b| a.offered_rps.total_cmp(&b.offered_rps));
    type Get = fn(&StepFit) -> Option<f64>;
    let quantiles: [(&str, Get, Get); 3] = [
        ("p50", |s| s.measured_p50_ms, |s| s.predicted_p50_ms),
        (
            "p95",
            |s| Some(s.measured_p95_ms),
            |s| Some(s.predicted_p95_ms),
        ),
        ("p99", |s| s.measured_p99_ms, |s| s.predicted_p99_ms),
    ];
    let mut lines = Vec::new();
    // One colour per percentile: the measurement solid, the model dashed.
    for (who, pick, dash) in [("measured", 1, 0), ("model", 2, 6)] {
        for (colour, (q, measured, predicted)) in [0, 1, 4].into_iter().zip(quantiles) {
            let g = if pick == 1 { measured } else { predicted };
            // A quantile some step lacks is left out, not drawn as zero.
            let Some(points) = steps
                .iter()
                .map(|s| g(s).map(|v| (s.offered_rps, v)))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            lines.push(Line {
                name: format!("{who} {q}{}", if dash > 0 { " (dashed)" } else { "" }),
                points,
                markers: true,
                colour: Some(colour),
                dash: Some(dash),
                ..Default::default()
            });
        }
    }
    Some(Chart {
        id: format!("knee{sfx}"),
        title: format!(
            "Latency against offered load: measured steps and the model ({} per replica)",
            fit.concurrency()
        ),
        x_label: "offered load (requests per second)".into(),
        y_label: "latency from the scheduled time (ms)".into(),
        body: Body::Lines(lines),
        percentile_x: false,
        y_from_zero: true,
    })
}

/// The user counts a capacity plan reports servers at (the growth figures
/// of our infrastructure documents).
pub const USER_MARKS: [f64; 4] = [1_000.0, 10_000.0, 50_000.0, 200_000.0];

/// The servers a forecast needs when the users first reach a count.
#[derive(Debug, Clone, PartialEq)]
pub struct ServersNeeded {
    /// The user count.
    pub users: f64,
    /// The hour of the horizon they are first reached in.
    pub hour: usize,
    /// Servers the autoscaler's steady state settles at in the busiest hour
    /// within a day of it (the count may first be reached at night, or on
    /// the horizon's last evening).
    pub servers: u32,
    /// The most replicas any replication simulated in the first window
    /// with that many users, when one was simulated.
    pub simulated_peak: Option<u32>,
    /// The cache tier in that window, when the scenario has one.
    pub cache: Option<contracts::forecast::CacheWindow>,
}

/// The servers needed at `users`, from the forecast's hourly steady
/// state; None when the horizon does not reach them (or has no hours).
pub fn servers_needed(f: &ForecastDoc, users: f64) -> Option<ServersNeeded> {
    let h = f.hourly.as_ref()?;
    // The horizon ends on its last hour's middle: allow 0.1% short.
    let i = h.users.iter().position(|&u| u >= users * 0.999)?;
    let (from, to) = (i.saturating_sub(23), (i + 24).min(h.replicas.len()));
    let window = f.windows.iter().find(|w| w.users >= users * 0.99);
    Some(ServersNeeded {
        users,
        hour: i,
        servers: h.replicas.get(from..to)?.iter().max().copied().unwrap_or(0),
        simulated_peak: window.map(|w| w.replicas_max),
        cache: window.and_then(|w| w.cache.clone()),
    })
}

/// Servers needed at each of [`USER_MARKS`] and at each crossing, with
/// the day, the month and (with `--start-date`) the date.
fn servers_table(f: &ForecastDoc, sfx: &str, when: &dyn Fn(f64) -> String) -> Option<Table> {
    let mut rows: Vec<(String, ServersNeeded)> = USER_MARKS
        .iter()
        .filter_map(|&u| servers_needed(f, u).map(|s| (format!("{:.0}k users", u / 1000.0), s)))
        .collect();
    rows.extend(
        f.crossings
            .iter()
            .filter_map(|c| servers_needed(f, c.users).map(|s| (c.threshold.clone(), s))),
    );
    if rows.is_empty() {
        return None;
    }
    rows.sort_by_key(|r| r.1.hour);
    let day = |s: &ServersNeeded| s.hour as f64 / 24.0;
    Some(Table::new(
        &format!("servers{sfx}"),
        "Servers needed as the users grow (app tier; the autoscaler's steady state at the busiest hour of that day, simulated peak beside it)",
        vec![
            text("reached", rows.iter().map(|r| r.0.clone()).collect()),
            num("users", rows.iter().map(|r| r.1.users.round()).collect()),
            text("when", rows.iter().map(|r| when(day(&r.1))).collect()),
            count(
                "servers",
                rows.iter().map(|r| u64::from(r.1.servers)).collect(),
            ),
            text(
                "simulated peak",
                rows.iter()
                    .map(|r| {
                        r.1.simulated_peak
                            .map(|p| p.to_string())
                            .unwrap_or_default()
                    })
                    .collect(),
            ),
        ]
        .into_iter()
        .chain(cache_columns(&rows))
        .collect(),
    ))
}

/// With a cache tier: its hit ratio in the window each row's simulated
/// peak is from, and the memory that keeps the minimum hit ratio there.
fn cache_columns(rows: &[(String, ServersNeeded)]) -> Vec<polars::prelude::Column> {
    if rows.iter().all(|r| r.1.cache.is_none()) {
        return vec![];
    }
    let cell = |g: &dyn Fn(&contracts::forecast::CacheWindow) -> Option<String>| {
        rows.iter()
            .map(|r| r.1.cache.as_ref().and_then(g).unwrap_or_default())
            .collect()
    };
    vec![
        text(
            "cache hit ratio",
            cell(&|c| Some(format!("{:.2}", c.hit_ratio))),
        ),
        text(
            "cache MB for the minimum hit ratio",
            cell(&|c| c.memory_needed_mb.map(|m| format!("{m:.0}"))),
        ),
    ]
}

/// A day of the horizon as a date (with `--start-date`) or a month.
fn when(start: Option<i64>, day: f64) -> String {
    match start {
        Some(d0) => format!("{} (day {day:.0})", civil(d0 + day.floor() as i64)),
        None => format!("day {day:.0} (month {:.0})", day / 30.4375 + 1.0),
    }
}

fn forecast_figures(f: &ForecastDoc) -> Vec<(String, String)> {
    let last = f.windows.last();
    let mut figures = vec![
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
    if let Some(fit) = &f.calibration {
        figures.push((
            "Calibrated model".into(),
            format!(
                "{} per replica, {:.2} ms mean service time, {:.2} ms latency floor: {:.0} rps per replica",
                fit.concurrency(),
                fit.service_mean_ms,
                fit.latency_floor_ms,
                fit.capacity_rps
            ),
        ));
    }
    if let Some(c) = f.horizon_cost_estimate {
        figures.push((
            "Replica cost over the horizon (steady-state estimate)".into(),
            format!("${c:.0}"),
        ));
    }
    figures
}

/// The simulated windows as points against their day, with the 95%
/// interval as a band when there are replications to have one.
struct WindowSeries<'a> {
    ws: &'a [WindowSummary],
    replicated: bool,
}

impl WindowSeries<'_> {
    fn pts(&self, g: &dyn Fn(&WindowSummary) -> f64) -> Vec<(f64, f64)> {
        self.ws.iter().map(|w| (w.day, g(w))).collect()
    }

    fn band(&self, g: &dyn Fn(&WindowSummary) -> Estimate) -> Vec<(f64, f64, f64)> {
        if !self.replicated {
            return vec![];
        }
        self.ws
            .iter()
            .map(|w| (w.day, g(w).mean - g(w).ci95, g(w).mean + g(w).ci95))
            .collect()
    }

    /// Few windows get a marker each.
    fn sparse(&self) -> bool {
        self.ws.len() < 40
    }
}

/// One quantity against the day of the horizon: users and requests per
/// second are different units, so each has its own chart and axis.
fn window_chart(
    series: &WindowSeries,
    (id, title, y_label): (String, &str, &str),
    name: &str,
    g: &dyn Fn(&WindowSummary) -> f64,
) -> Chart {
    Chart {
        id,
        title: title.into(),
        x_label: "days from the start of the horizon".into(),
        y_label: y_label.into(),
        body: Body::Lines(vec![Line {
            name: name.into(),
            points: series.pts(g),
            markers: series.sparse(),
            ..Default::default()
        }]),
        percentile_x: false,
        y_from_zero: true,
    }
}

fn users_chart(series: &WindowSeries, sfx: &str) -> Chart {
    let what = (
        format!("users{sfx}"),
        "Users at each window's peak",
        "users",
    );
    window_chart(series, what, "users", &|w| w.users)
}

fn rps_chart(series: &WindowSeries, sfx: &str) -> Chart {
    let what = (
        format!("offered_rps{sfx}"),
        "Offered load at each window's peak",
        "requests per second",
    );
    window_chart(series, what, "offered rps", &|w| w.offered_rps)
}

fn replicas_chart(series: &WindowSeries, sfx: &str) -> Chart {
    let pts = |g: &dyn Fn(&WindowSummary) -> f64| series.pts(g);
    let sparse = series.sparse();
    let band = |g: &dyn Fn(&WindowSummary) -> Estimate| series.band(g);
    Chart {
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
                ..Default::default()
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
    }
}

fn p95_chart(series: &WindowSeries, p95_target_ms: f64, sfx: &str) -> Chart {
    let pts = |g: &dyn Fn(&WindowSummary) -> f64| series.pts(g);
    let sparse = series.sparse();
    let band = |g: &dyn Fn(&WindowSummary) -> Estimate| series.band(g);
    let (ws, day) = (series.ws, |w: &WindowSummary| w.day);
    let mut p95 = vec![Line {
        name: "p95 (95% interval)".into(),
        points: pts(&|w| w.p95_ms.mean),
        band: band(&|w| w.p95_ms),
        markers: sparse,
        ..Default::default()
    }];
    if p95_target_ms > 0.0 {
        let x0 = ws.first().map(day).unwrap_or(0.0);
        let x1 = ws.last().map(day).unwrap_or(1.0);
        p95.push(Line {
            name: format!("target {} ms", p95_target_ms),
            points: vec![(x0, p95_target_ms), (x1, p95_target_ms)],
            ..Default::default()
        });
    }
    Chart {
        id: format!("p95{sfx}"),
        title: "p95 latency in each window".into(),
        x_label: "days from the start of the horizon".into(),
        y_label: "p95 latency (ms)".into(),
        body: Body::Lines(p95),
        percentile_x: false,
        y_from_zero: true,
    }
}

fn cost_chart(series: &WindowSeries, sfx: &str) -> Chart {
    let pts = |g: &dyn Fn(&WindowSummary) -> f64| series.pts(g);
    let sparse = series.sparse();
    let band = |g: &dyn Fn(&WindowSummary) -> Estimate| series.band(g);
    Chart {
        id: format!("cost_over_time{sfx}"),
        title: "Replica cost per month at each window's peak rate".into(),
        x_label: "days from the start of the horizon".into(),
        y_label: "USD per month (730 h)".into(),
        body: Body::Lines(vec![Line {
            name: "cost at the peak rate".into(),
            points: pts(&|w| w.cost_per_hour.mean * 730.0),
            band: band(&|w| Estimate {
                mean: w.cost_per_hour.mean * 730.0,
                ci95: w.cost_per_hour.ci95 * 730.0,
            }),
            markers: sparse,
            ..Default::default()
        }]),
        percentile_x: false,
        y_from_zero: true,
    }
}

fn windows_table(ws: &[WindowSummary], sfx: &str) -> Table {
    Table::new(
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
    )
}

/// Every model the calibration tried, best first, with its score: how
/// far the chosen one stands from the others of either family.
fn models_table(f: &ForecastDoc, sfx: &str) -> Option<Table> {
    let fit = f.calibration.as_ref()?;
    let mut models: Vec<_> = fit.models.iter().collect();
    if models.is_empty() {
        return None;
    }
    models.sort_by(|a, b| a.score.total_cmp(&b.score));
    let chosen = |m: &contracts::forecast::ModelCandidate| {
        m.workers == fit.workers && m.cores == fit.cores && m.switch_cost == fit.switch_cost
    };
    Some(Table::new(
        &format!("models{sfx}"),
        "Service models tried by the calibration (score: mean relative error of p95 and goodput over the fitted steps)",
        vec![
            text("model", models.iter().map(|m| m.describe()).collect()),
            num(
                "score %",
                models
                    .iter()
                    .map(|m| (1e3 * m.score).round() / 10.0)
                    .collect(),
            ),
            text(
                "chosen",
                models
                    .iter()
                    .map(|m| {
                        if chosen(m) {
                            "yes".into()
                        } else {
                            String::new()
                        }
                    })
                    .collect(),
            ),
        ],
    ))
}

/// The cache tier per window: the working set, what the cache holds of
/// it, its hit ratio and memory, and what its misses cost the database.
fn cache_table(ws: &[WindowSummary], sfx: &str) -> Option<Table> {
    let rows: Vec<(&WindowSummary, &contracts::forecast::CacheWindow)> = ws
        .iter()
        .filter_map(|w| w.cache.as_ref().map(|c| (w, c)))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let col = |g: &dyn Fn(&contracts::forecast::CacheWindow) -> f64| {
        rows.iter().map(|(_, c)| g(c)).collect::<Vec<f64>>()
    };
    Some(Table::new(
        &format!("cache{sfx}"),
        "Cache tier (LRU, Che's approximation) at each window's users and peak rate",
        vec![
            text(
                "window",
                rows.iter().map(|(w, _)| w.label.clone()).collect(),
            ),
            num("users", rows.iter().map(|(w, _)| w.users.round()).collect()),
            num("keys", col(&|c| c.keys.round())),
            num("held %", col(&|c| (1e3 * c.held_share).round() / 10.0)),
            num("hit ratio", col(&|c| (1e3 * c.hit_ratio).round() / 1e3)),
            num("memory MB", col(&|c| c.memory_used_mb.round())),
            num(
                "evictions/s",
                col(&|c| (10.0 * c.evictions_per_s).round() / 10.0),
            ),
            num(
                "database reads/s",
                col(&|c| (10.0 * c.database_reads_per_s).round() / 10.0),
            ),
        ],
    ))
}

fn crossings_table(f: &ForecastDoc, sfx: &str, when: &dyn Fn(f64) -> String) -> Table {
    Table::new(
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
    )
}
