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
    CacheWindow, Crossing, Estimate, Forecast, ForecastTag, Hourly, LatencySummary, ReplicaSummary,
    SeriesRow, SloSummary, WindowSummary,
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
    let per_replica = cfg.service.servers() * a.settle_cpu();
    let (min, max) = a.bounds();
    let by_cpu = (rps * mean_s / per_replica).ceil();
    // A memory bound: the requests in the replicas (rps × service time by
    // Little's law, queueing aside) must leave each under it.
    let by_memory = match (&cfg.service.memory, a.memory_bound()) {
        (Some(m), Some(bound)) if bound * m.limit_mb > m.base_mb => {
            (m.per_request_mb * rps * mean_s / (bound * m.limit_mb - m.base_mb)).ceil()
        }
        _ => 0.0,
    };
    (by_cpu.max(by_memory) as u32).clamp(min, max)
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

/// Sums over every window and replication.
struct Totals {
    all: Histogram<u64>,
    /// Each replication's latency over all windows, for its p95 and p99.
    per_rep: Vec<Histogram<u64>>,
    viol_per_rep: Vec<f64>,
    cost_per_rep: Vec<f64>,
    busy: f64,
    cap: f64,
    replica_ns: f64,
    waited: u64,
    requests: u64,
    errors: u64,
    events: u64,
    rmin: u32,
    rmax: u32,
}

impl Totals {
    fn new(reps: usize) -> Self {
        Totals {
            all: Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds"),
            per_rep: vec![Histogram::<u64>::new(3).expect("3 digits"); reps],
            viol_per_rep: vec![0.0; reps],
            cost_per_rep: vec![0.0; reps],
            busy: 0.0,
            cap: 0.0,
            replica_ns: 0.0,
            waited: 0,
            requests: 0,
            errors: 0,
            events: 0,
            rmin: u32::MAX,
            rmax: 0,
        }
    }

    /// Replication `k`'s run of one window.
    fn add(&mut self, k: usize, r: &WindowRun, viol: f64, price_ns: f64) {
        let _ = self.all.add(&r.latency_us);
        let _ = self.per_rep[k].add(&r.latency_us);
        self.requests += r.arrivals;
        self.errors += r.errors;
        self.events += r.events;
        self.busy += r.busy_ns;
        self.cap += r.capacity_ns;
        self.replica_ns += r.replica_ns;
        self.waited += r.waited;
        self.viol_per_rep[k] += viol;
        self.cost_per_rep[k] += r.replica_ns * price_ns;
        self.rmin = self.rmin.min(r.replicas_min);
        self.rmax = self.rmax.max(r.replicas_max);
    }
}

/// Minutes after warm-up whose p95 was over the SLO.
fn violation_minutes(r: &WindowRun, warm_minutes: usize, slo_ms: f64) -> f64 {
    r.minutes[warm_minutes.min(r.minutes.len())..]
        .iter()
        .filter(|m| m.p95_ms > slo_ms)
        .count() as f64
}

/// `x / n`, or 0 with nothing to divide by.
fn share(x: f64, n: f64) -> f64 {
    if n > 0.0 { x / n } else { 0.0 }
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
    let mut f = Forecast {
        kind: ForecastTag,
        name: cfg.name.clone(),
        simulated,
        seed: cfg.simulation.seed,
        replications: reps as u32,
        ..Forecast::default()
    };
    let mut t = Totals::new(reps);
    for (wi, w) in windows.iter().enumerate() {
        let rs = &runs[wi * reps..(wi + 1) * reps];
        for (k, r) in rs.iter().enumerate() {
            t.add(k, r, violation_minutes(r, warm_minutes, slo), price_ns);
        }
        f.windows.push(window_summary(cfg, w, rs, warm_minutes));
        push_series(&mut f.series, cfg, wi, &w.window, rs);
    }
    let q = |p: f64| {
        if t.all.is_empty() {
            0.0
        } else {
            t.all.value_at_quantile(p) as f64 / 1e3
        }
    };
    f.latency_ms = LatencySummary {
        mean: t.all.mean() / 1e3,
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
        f.latency_ci95_ms = Some((per(&t.per_rep, 0.95), per(&t.per_rep, 0.99)));
    }
    (f.requests, f.errors, f.events) = (t.requests, t.errors, t.events);
    f.error_rate = share(f.errors as f64, f.requests as f64);
    f.waited = share(t.waited as f64, f.requests as f64);
    f.utilization = share(t.busy, t.cap);
    let stats_ns: f64 = windows
        .iter()
        .map(|w| (w.window.length_ns - w.window.warmup_ns) as f64)
        .sum::<f64>()
        * reps as f64;
    f.replicas = ReplicaSummary {
        min: t.rmin.min(t.rmax),
        max: t.rmax,
        mean: t.replica_ns / stats_ns.max(1.0),
    };
    f.cost = Estimate::of(&t.cost_per_rep).mean;
    f.slo = SloSummary {
        p95_target_ms: slo,
        violation_minutes: Estimate::of(&t.viol_per_rep),
        minutes: (stats_ns / reps as f64 / (60.0 * NS as f64)).round() as u64,
    };
    if let Some((hourly, cost)) = hourly_estimate(cfg) {
        f.horizon_cost_estimate = Some(cost);
        f.hourly = Some(hourly);
    }
    f.crossings = crossings(cfg, &f.windows);
    f
}

/// One window's statistics over its replications.
fn window_summary(
    cfg: &SimConfig,
    w: &Planned,
    rs: &[WindowRun],
    warm_minutes: usize,
) -> WindowSummary {
    let stat = |g: &dyn Fn(&WindowRun) -> f64| Estimate::of(&rs.iter().map(g).collect::<Vec<_>>());
    let q = |r: &WindowRun, p: f64| r.latency_us.value_at_quantile(p) as f64 / 1e3;
    let span_ns = (w.window.length_ns - w.window.warmup_ns) as f64;
    let centre_s = w.window.start_s + (w.window.warmup_ns as f64 + span_ns / 2.0) / 1e9;
    let after_warmup = &rs[0].minutes[warm_minutes.min(rs[0].minutes.len())..];
    let offered =
        after_warmup.iter().map(|m| m.offered_rps).sum::<f64>() / after_warmup.len().max(1) as f64;
    WindowSummary {
        label: w.label.clone(),
        day: (w.window.start_s + w.window.warmup_ns as f64 / 1e9) / DAY_S,
        users: cfg.traffic.users_at(centre_s),
        offered_rps: offered,
        p95_ms: stat(&|r| q(r, 0.95)),
        p99_ms: stat(&|r| q(r, 0.99)),
        replicas: stat(&|r| r.replica_ns / span_ns),
        replicas_max: rs.iter().map(|r| r.replicas_max).max().unwrap_or(0),
        utilization: stat(&|r| share(r.busy_ns, r.capacity_ns)),
        error_rate: stat(&|r| share(r.errors as f64, r.arrivals as f64)),
        violation_minutes: stat(&|r| violation_minutes(r, warm_minutes, cfg.slo.p95_ms)),
        cost_per_hour: stat(&|r| r.replica_ns / span_ns * cfg.cost.replica_hourly),
        fluid_replicas: steady_replicas(cfg, offered) as f64,
        memory_utilization: cfg.service.memory.as_ref().map(|m| {
            // Requests in the ready replicas per replica: the in-system
            // integral over the ready replica-time (ready capacity / slots).
            let slots = cfg.service.slots() as f64;
            stat(&|r| m.utilization(share(r.in_system_ns, r.capacity_ns / slots)))
        }),
        cache: cfg
            .cache
            .as_ref()
            .map(|c| cache_window(c, cfg.traffic.users_at(centre_s), offered)),
    }
}

/// The cache tier at `users` and `rps` (see [`crate::cache`]).
pub fn cache_window(c: &crate::model::Cache, users: f64, rps: f64) -> CacheWindow {
    let keys = c.working_set(users);
    let capacity = c.capacity_keys();
    let popularity = crate::cache::Popularity { keys, zipf: c.zipf };
    let o = crate::cache::lru(&popularity, capacity);
    let lookups = rps * c.lookups_per_request;
    let misses = lookups * (1.0 - o.hit_ratio);
    CacheWindow {
        keys,
        held_share: if keys > 0.0 { o.objects / keys } else { 1.0 },
        hit_ratio: o.hit_ratio,
        memory_used_mb: o.objects * c.object_kb / 1024.0,
        evictions_per_s: if keys > capacity { misses } else { 0.0 },
        database_reads_per_s: misses,
        memory_needed_mb: c
            .min_hit_ratio
            .map(|h| crate::cache::capacity_for(&popularity, h) * c.object_kb / 1024.0),
    }
}

/// A growth horizon's steady state for every hour, and its replica cost;
/// None for a constant rate.
fn hourly_estimate(cfg: &SimConfig) -> Option<(Hourly, f64)> {
    // Not positive (or NaN): a constant rate.
    let horizon_s = Some(cfg.traffic.horizon_s()).filter(|&h| h > 0.0)?;
    let hours = (horizon_s / 3600.0).ceil() as usize;
    let mid = |h: usize| h as f64 * 3600.0 + 1800.0;
    let rps: Vec<f64> = (0..hours).map(|h| cfg.traffic.rps_at(mid(h))).collect();
    let replicas: Vec<u32> = rps.iter().map(|&x| steady_replicas(cfg, x)).collect();
    let replica_hours: f64 = replicas.iter().map(|&r| r as f64).sum();
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let hourly = Hourly {
        note: "steady-state (fluid) estimate of the autoscaler for each hour's offered rate, \
               not simulated request by request"
            .into(),
        replicas,
        rps: rps.into_iter().map(round3).collect(),
        users: (0..hours)
            .map(|h| round3(cfg.traffic.users_at(mid(h))))
            .collect(),
    };
    Some((hourly, replica_hours * cfg.cost.replica_hourly))
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
    find(
        "error rate > 1%".into(),
        &|w| w.error_rate.mean,
        0.01,
        &|u, w| {
            format!(
                "the error rate passes 1% (the runbook's alert: investigate at once) at about {} ({})",
                people(u),
                w.label
            )
        },
    );
    if cfg.service.memory.is_some() {
        let bound = cfg
            .autoscaling
            .as_ref()
            .and_then(|a| a.memory_bound())
            .unwrap_or(0.8);
        find(
            format!("memory > {:.0}%", 100.0 * bound),
            &|w| w.memory_utilization.as_ref().map_or(0.0, |m| m.mean),
            bound,
            &|u, w| {
                format!(
                    "mean memory at the peak passes {:.0}% of the limit at about {} ({})",
                    100.0 * bound,
                    people(u),
                    w.label
                )
            },
        );
    }
    if let Some(c) = &cfg.cache {
        let cap = c.capacity_keys();
        let mb = c.memory_mb;
        find(
            format!("cache working set > {mb:.0} MB"),
            &|w| w.cache.as_ref().map_or(0.0, |x| x.keys / cap),
            1.0,
            &|u, w| {
                let hit = w.cache.as_ref().map_or(1.0, |x| x.hit_ratio);
                format!(
                    "the working set outgrows the cache's {mb:.0} MB at about {}: evictions start, and by {} the hit ratio is {hit:.2}",
                    people(u),
                    w.label
                )
            },
        );
        if let Some(min) = c.min_hit_ratio {
            find(
                format!("cache hit ratio < {min}"),
                &|w| w.cache.as_ref().map_or(0.0, |x| 1.0 - x.hit_ratio),
                1.0 - min,
                &|u, w| {
                    let x = w.cache.as_ref().expect("a cache window");
                    format!(
                        "the cache's hit ratio falls below {min} at about {} ({}: {:.0}% of the working set held, {:.0} database reads/s)",
                        people(u),
                        w.label,
                        100.0 * x.held_share,
                        x.database_reads_per_s
                    )
                },
            );
        }
    }
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
