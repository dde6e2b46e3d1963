//! From a scenario to a forecast: which windows to simulate, running every
//! (window, replication) pair in parallel with rayon, and the summary with
//! confidence intervals and the points where thresholds are crossed.
//!
//! A constant-rate scenario is one window of `simulation.duration`. A
//! growth horizon (two years at up to ~20k rps is ~10¹¹ requests) is
//! simulated request by request only in representative windows: around the
//! peak hour of the busiest day of each month (or week). Between windows
//! the replica count and cost follow the autoscaler's steady state for the
//! hourly offered rate (a fluid estimate, reported as such, next to the
//! simulated windows it can be checked against). The output says exactly
//! what was simulated.

pub use contracts::forecast::{
    Crossing, Estimate, Forecast, ForecastTag, Hourly, LatencySummary, ReplicaSummary, SeriesRow,
    SloSummary, WindowSummary,
};
use hdrhistogram::Histogram;
use rayon::prelude::*;

use crate::dist::Sampler;
use crate::engine::{Window, WindowRun, simulate};
use crate::model::{SimConfig, Windows};

const NS: u64 = 1_000_000_000;
const DAY_S: f64 = 86_400.0;

struct Planned {
    label: String,
    window: Window,
}

/// Replicas the policy settles at for `rps`.
pub fn steady_replicas(cfg: &SimConfig, rps: f64) -> u32 {
    let Some(a) = &cfg.autoscaling else {
        return cfg.service.replicas;
    };
    let mean_s = Sampler::new(&cfg.service.service_time).mean_ns() / 1e9;
    let per_replica = cfg.service.workers_per_replica as f64 * a.settle_cpu();
    let (min, max) = a.bounds();
    ((rps * mean_s / per_replica).ceil() as u32).clamp(min, max)
}

fn plan(cfg: &SimConfig) -> (Vec<Planned>, String) {
    let sim = &cfg.simulation;
    let len = sim.duration.as_nanos() as u64;
    let warm = sim.warmup.as_nanos() as u64;
    let horizon = cfg.traffic.horizon_s();
    if horizon == 0.0 {
        let w = Window {
            start_s: 0.0,
            length_ns: len,
            warmup_ns: warm,
            initial_replicas: steady_replicas(cfg, cfg.traffic.rps_at(0.0)),
        };
        let what = format!(
            "one window of {} ({} warm-up) request by request, × {} replications",
            humantime::format_duration(sim.duration),
            humantime::format_duration(sim.warmup),
            sim.replications
        );
        return (
            vec![Planned {
                label: "steady".into(),
                window: w,
            }],
            what,
        );
    }
    let period_days = match sim.windows {
        Windows::Monthly => 30.0,
        Windows::Weekly => 7.0,
    };
    let stats_s = (len - warm) as f64 / 1e9;
    let mut out = Vec::new();
    let mut p = 0.0;
    while p * period_days * DAY_S < horizon {
        let from = p * period_days * DAY_S;
        let to = ((p + 1.0) * period_days * DAY_S).min(horizon);
        // The busiest hour of the period, from the hourly offered rate.
        let peak = (0..((to - from) / 3600.0).ceil() as usize)
            .map(|h| from + h as f64 * 3600.0 + 1800.0)
            .filter(|t| *t < to)
            .max_by(|a, b| cfg.traffic.rps_at(*a).total_cmp(&cfg.traffic.rps_at(*b)))
            .unwrap_or(from);
        let stats_start = (peak - stats_s / 2.0).max(warm as f64 / 1e9);
        let start_s = stats_start - warm as f64 / 1e9;
        let day = stats_start / DAY_S;
        let hh = |s: f64| {
            let h = (s / 3600.0).rem_euclid(24.0);
            format!(
                "{:02}:{:02}",
                h.floor() as u32,
                ((h.fract() * 60.0).round() as u32).min(59)
            )
        };
        let label = format!(
            "{} {}, day {:.0} {}-{}",
            if period_days == 30.0 { "month" } else { "week" },
            p as u32 + 1,
            day.floor(),
            hh(stats_start),
            hh(stats_start + stats_s)
        );
        let window = Window {
            start_s,
            length_ns: len,
            warmup_ns: warm,
            initial_replicas: steady_replicas(cfg, cfg.traffic.rps_at(start_s)),
        };
        out.push(Planned { label, window });
        p += 1.0;
    }
    let what = format!(
        "{} windows request by request, each {} after {} warm-up around the peak hour of the busiest day of each {}, × {} replications; \
         between windows, replicas and cost follow the autoscaler's steady state for the hourly offered rate",
        out.len(),
        humantime::format_duration(std::time::Duration::from_nanos(len - warm)),
        humantime::format_duration(sim.warmup),
        if period_days == 30.0 {
            "30-day month"
        } else {
            "week"
        },
        sim.replications
    );
    (out, what)
}

/// Runs the forecast. The same seed gives the same result with any number
/// of threads: each (window, replication) has its own random streams and
/// results are combined in a fixed order.
pub fn forecast(cfg: &SimConfig) -> Forecast {
    let (windows, simulated) = plan(cfg);
    let reps = cfg.simulation.replications as usize;
    let seed = cfg.simulation.seed;
    let runs: Vec<WindowRun> = (0..windows.len() * reps)
        .into_par_iter()
        .map(|job| simulate(cfg, &windows[job / reps].window, seed, job as u64))
        .collect();
    summarize(cfg, &windows, &runs, simulated)
}

fn summarize(
    cfg: &SimConfig,
    windows: &[Planned],
    runs: &[WindowRun],
    simulated: String,
) -> Forecast {
    let reps = cfg.simulation.replications as usize;
    let slo = cfg.slo.p95_ms;
    let price_ns = cfg.cost.replica_hourly / 3600.0 / 1e9;
    let warm_minutes = cfg.simulation.warmup.as_secs().div_ceil(60) as usize;
    let mut all = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds");
    let mut f = Forecast {
        kind: ForecastTag,
        name: cfg.name.clone(),
        simulated,
        seed: cfg.simulation.seed,
        replications: reps as u32,
        ..Forecast::default()
    };
    let (mut busy, mut cap, mut replica_ns, mut waited) = (0.0, 0.0, 0.0, 0u64);
    let mut viol_per_rep = vec![0.0; reps];
    let mut cost_per_rep = vec![0.0; reps];
    // Each replication's latency over all windows, for its p95 and p99.
    let mut per_rep = vec![Histogram::<u64>::new(3).expect("3 digits"); reps];
    let (mut rmin, mut rmax) = (u32::MAX, 0);
    for (wi, w) in windows.iter().enumerate() {
        let rs = &runs[wi * reps..(wi + 1) * reps];
        let stat =
            |g: &dyn Fn(&WindowRun) -> f64| Estimate::of(&rs.iter().map(g).collect::<Vec<_>>());
        let q = |r: &WindowRun, p: f64| r.latency_us.value_at_quantile(p) as f64 / 1e3;
        let viol = |r: &WindowRun| {
            r.minutes[warm_minutes.min(r.minutes.len())..]
                .iter()
                .filter(|m| m.p95_ms > slo)
                .count() as f64
        };
        let span_ns = (w.window.length_ns - w.window.warmup_ns) as f64;
        for (k, r) in rs.iter().enumerate() {
            let _ = all.add(&r.latency_us);
            let _ = per_rep[k].add(&r.latency_us);
            f.requests += r.arrivals;
            f.errors += r.errors;
            f.events += r.events;
            busy += r.busy_ns;
            cap += r.capacity_ns;
            replica_ns += r.replica_ns;
            waited += r.waited;
            viol_per_rep[k] += viol(r);
            cost_per_rep[k] += r.replica_ns * price_ns;
            rmin = rmin.min(r.replicas_min);
            rmax = rmax.max(r.replicas_max);
        }
        let centre_s = w.window.start_s + (w.window.warmup_ns as f64 + span_ns / 2.0) / 1e9;
        let offered = rs[0].minutes[warm_minutes.min(rs[0].minutes.len())..]
            .iter()
            .map(|m| m.offered_rps)
            .sum::<f64>()
            / (rs[0].minutes.len() - warm_minutes.min(rs[0].minutes.len())).max(1) as f64;
        f.windows.push(WindowSummary {
            label: w.label.clone(),
            day: (w.window.start_s + w.window.warmup_ns as f64 / 1e9) / DAY_S,
            users: cfg.traffic.users_at(centre_s),
            offered_rps: offered,
            p95_ms: stat(&|r| q(r, 0.95)),
            p99_ms: stat(&|r| q(r, 0.99)),
            replicas: stat(&|r| r.replica_ns / span_ns),
            replicas_max: rs.iter().map(|r| r.replicas_max).max().unwrap_or(0),
            utilization: stat(&|r| {
                if r.capacity_ns > 0.0 {
                    r.busy_ns / r.capacity_ns
                } else {
                    0.0
                }
            }),
            error_rate: stat(&|r| {
                if r.arrivals > 0 {
                    r.errors as f64 / r.arrivals as f64
                } else {
                    0.0
                }
            }),
            violation_minutes: stat(&viol),
            cost_per_hour: stat(&|r| r.replica_ns / span_ns * cfg.cost.replica_hourly),
            fluid_replicas: steady_replicas(cfg, offered) as f64,
        });
        push_series(&mut f.series, cfg, wi, &w.window, rs);
    }
    let q = |p: f64| {
        if all.is_empty() {
            0.0
        } else {
            all.value_at_quantile(p) as f64 / 1e3
        }
    };
    f.latency_ms = LatencySummary {
        mean: all.mean() / 1e3,
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
    };
    if reps > 1 {
        let per = |hs: &[Histogram<u64>], p: f64| {
            Estimate::of(
                &hs.iter()
                    .map(|h| h.value_at_quantile(p) as f64 / 1e3)
                    .collect::<Vec<_>>(),
            )
        };
        f.latency_ci95_ms = Some((per(&per_rep, 0.95), per(&per_rep, 0.99)));
    }
    f.error_rate = if f.requests > 0 {
        f.errors as f64 / f.requests as f64
    } else {
        0.0
    };
    f.waited = if f.requests > 0 {
        waited as f64 / f.requests as f64
    } else {
        0.0
    };
    f.utilization = if cap > 0.0 { busy / cap } else { 0.0 };
    let stats_ns: f64 = windows
        .iter()
        .map(|w| (w.window.length_ns - w.window.warmup_ns) as f64)
        .sum::<f64>()
        * reps as f64;
    f.replicas = ReplicaSummary {
        min: rmin.min(rmax),
        max: rmax,
        mean: replica_ns / stats_ns.max(1.0),
    };
    f.cost = Estimate::of(&cost_per_rep).mean;
    f.slo = SloSummary {
        p95_target_ms: slo,
        violation_minutes: Estimate::of(&viol_per_rep),
        minutes: (stats_ns / reps as f64 / (60.0 * NS as f64)).round() as u64,
    };
    if cfg.traffic.horizon_s() > 0.0 {
        let hours = (cfg.traffic.horizon_s() / 3600.0).ceil() as usize;
        let mid = |h: usize| h as f64 * 3600.0 + 1800.0;
        let rps: Vec<f64> = (0..hours).map(|h| cfg.traffic.rps_at(mid(h))).collect();
        let replicas: Vec<u32> = rps.iter().map(|&x| steady_replicas(cfg, x)).collect();
        let replica_hours: f64 = replicas.iter().map(|&r| r as f64).sum();
        f.horizon_cost_estimate = Some(replica_hours * cfg.cost.replica_hourly);
        let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
        f.hourly = Some(Hourly {
            note: "steady-state (fluid) estimate of the autoscaler for each hour's offered rate, \
                   not simulated request by request"
                .into(),
            replicas,
            rps: rps.into_iter().map(round3).collect(),
            users: (0..hours)
                .map(|h| round3(cfg.traffic.users_at(mid(h))))
                .collect(),
        });
    }
    f.crossings = crossings(cfg, &f.windows);
    f
}

fn push_series(out: &mut Vec<SeriesRow>, cfg: &SimConfig, wi: usize, w: &Window, rs: &[WindowRun]) {
    let n = rs.iter().map(|r| r.minutes.len()).min().unwrap_or(0);
    let k = rs.len() as f64;
    for m in 0..n {
        let avg = |g: &dyn Fn(&crate::engine::Minute) -> f64| {
            rs.iter().map(|r| g(&r.minutes[m])).sum::<f64>() / k
        };
        let t_s = w.start_s + m as f64 * 60.0;
        out.push(SeriesRow {
            window: wi,
            t_s,
            users: cfg.traffic.users_at(t_s),
            offered_rps: avg(&|x| x.offered_rps),
            replicas: avg(&|x| x.replicas),
            ready: avg(&|x| x.ready),
            utilization: avg(&|x| x.utilization),
            p50_ms: avg(&|x| x.p50_ms),
            p95_ms: avg(&|x| x.p95_ms),
            p99_ms: avg(&|x| x.p99_ms),
            errors: avg(&|x| x.errors as f64) / 60.0,
            cost_per_hour: avg(&|x| x.replicas) * cfg.cost.replica_hourly,
        });
    }
}

/// The first window where each threshold is crossed, interpolated in days
/// and users from the window before it.
fn crossings(cfg: &SimConfig, ws: &[WindowSummary]) -> Vec<Crossing> {
    let max = cfg.autoscaling.as_ref().map(|a| a.bounds().1);
    let slo = cfg.slo.p95_ms;
    let mut out = Vec::new();
    let mut find = |name: String,
                    value: &dyn Fn(&WindowSummary) -> f64,
                    limit: f64,
                    note: &dyn Fn(f64, &WindowSummary) -> String| {
        let Some(i) = ws.iter().position(|w| value(w) > limit) else {
            return;
        };
        let (day, users) = if i == 0 {
            (ws[0].day, ws[0].users)
        } else {
            let (a, b) = (&ws[i - 1], &ws[i]);
            let x = ((limit - value(a)) / (value(b) - value(a))).clamp(0.0, 1.0);
            (
                a.day + x * (b.day - a.day),
                a.users + x * (b.users - a.users),
            )
        };
        out.push(Crossing {
            threshold: name,
            day,
            users,
            note: note(users, &ws[i]),
        });
    };
    let max_note = max
        .map(|m| format!(" with max = {m} replicas"))
        .unwrap_or_default();
    find(
        format!("p95 > {slo} ms"),
        &|w| w.p95_ms.mean,
        slo,
        &|u, w| {
            format!(
                "p95 exceeds {slo} ms at about {}{max_note} ({})",
                people(u),
                w.label
            )
        },
    );
    find("CPU > 70%".into(), &|w| w.utilization.mean, 0.7, &|u, w| {
        format!(
            "mean CPU at the peak passes 70% at about {} ({})",
            people(u),
            w.label
        )
    });
    if let Some(m) = max {
        find(
            format!("replicas = max ({m})"),
            &|w| w.replicas_max as f64,
            m as f64 - 0.5,
            &|u, w| {
                format!(
                    "the autoscaler reaches its maximum of {m} replicas at about {} ({})",
                    people(u),
                    w.label
                )
            },
        );
    }
    out
}

fn people(u: f64) -> String {
    if u >= 1e6 {
        format!("{:.1}M users", u / 1e6)
    } else if u >= 1e3 {
        format!("{:.0}k users", u / 1e3)
    } else {
        format!("{u:.0} users")
    }
}

/// The CSV of the time series.
pub fn series_csv(f: &Forecast) -> String {
    let mut s = String::from(
        "window,t_s,day,users,offered_rps,replicas,ready,utilization,p50_ms,p95_ms,p99_ms,errors_per_s,cost_per_hour\n",
    );
    for r in &f.series {
        s.push_str(&format!(
            "{},{:.0},{:.3},{:.0},{:.2},{:.2},{:.2},{:.4},{:.3},{:.3},{:.3},{:.3},{:.4}\n",
            r.window,
            r.t_s,
            r.t_s / DAY_S,
            r.users,
            r.offered_rps,
            r.replicas,
            r.ready,
            r.utilization,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.errors,
            r.cost_per_hour
        ));
    }
    s
}
