//! `loadtest simulate`: a scenario's simulator sections (optionally with a
//! service-time distribution calibrated from a `run` result) into a
//! forecast, written as JSON and CSV, with a summary on the terminal.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use simulator::model::{Dist, SimConfig};
use simulator::{Forecast, SimError};

use crate::Outcome;
use crate::cli::SimulateArgs;
use crate::scenario::Scenario;

pub fn simulate(a: SimulateArgs) -> anyhow::Result<Outcome> {
    let scn = Scenario::load(&a.scenario)?;
    let mut cfg = sim_config(&scn).map_err(|e| anyhow::anyhow!(scn.placed(&e.to_string())))?;
    let fit = if a.calibrate.is_empty() {
        None
    } else {
        calibrate(&mut cfg, &a.calibrate, false)?
    };
    if let Some(n) = a.replications {
        cfg.simulation.replications = n;
    }
    if let Some(s) = a.seed {
        cfg.simulation.seed = s;
    }
    cfg.check()
        .map_err(|e| anyhow::anyhow!(scn.placed(&e.to_string())))?;
    let started = crate::Started::now();
    let mut f = simulator::forecast(&cfg);
    f.calibration = fit;
    stamp(&mut f, &started);
    if let Some(p) = &a.json {
        crate::write_json(p, &f)?;
    }
    if let Some(p) = &a.csv {
        std::fs::write(p, simulator::series_csv(&f))
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(render(&f).as_bytes())?;
    let violated = f.slo.violation_minutes.mean > 0.0;
    Ok(if a.fail_on_slo && violated {
        eprintln!(
            "loadtest: SLO violated (exit 1): {:.1} of {} minutes over p95 < {} ms",
            f.slo.violation_minutes.mean, f.slo.minutes, f.slo.p95_target_ms
        );
        Outcome::Failed
    } else {
        Outcome::Passed
    })
}

/// When the forecast was made, how long it took, by which version.
pub fn stamp(f: &mut Forecast, started: &crate::Started) {
    f.started_at = started.at.clone();
    f.duration_s = started.seconds();
    f.version = crate::VERSION.into();
}

/// The simulator's input from a parsed scenario.
pub fn sim_config(scn: &Scenario) -> Result<SimConfig, SimError> {
    let need = |what: &str| {
        SimError::Invalid(format!(
            "the scenario has no [{what}] section: `simulate` needs [traffic] and [service]"
        ))
    };
    Ok(SimConfig {
        name: scn.name.clone(),
        traffic: scn.traffic.clone().ok_or_else(|| need("traffic"))?,
        service: scn.service.clone().ok_or_else(|| need("service"))?,
        autoscaling: scn.autoscaling.clone(),
        cost: scn.cost.clone().unwrap_or_default(),
        slo: scn.slo.clone().unwrap_or_default(),
        simulation: scn.simulation.clone().unwrap_or_default(),
        cache: scn.cache.clone(),
    })
}

/// One measurement: a `run --json` result, or an HdrHistogram interval log.
struct Measured {
    path: std::path::PathBuf,
    latency_us: hdrhistogram::Histogram<u64>,
    /// The run result (JSON results only).
    run: Option<loadgen::RunResult>,
}

fn read_measurement(path: &Path) -> anyhow::Result<Measured> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("--calibrate: cannot read {}", path.display()))?;
    if bytes.first() == Some(&b'{') {
        let r: loadgen::RunResult = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "--calibrate: {} is not a `loadtest run --json` result",
                path.display()
            )
        })?;
        let latency_us = loadgen::histogram_from_base64(&r.histogram)
            .with_context(|| format!("--calibrate: {} has no latency histogram", path.display()))?;
        return Ok(Measured {
            path: path.into(),
            latency_us,
            run: Some(r),
        });
    }
    // An interval log (`run --hdr`): the sum of its intervals.
    let mut total = loadgen::stats::latency_histogram();
    let mut deserializer = hdrhistogram::serialization::Deserializer::new();
    for item in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&bytes) {
        let bad = || {
            anyhow::anyhow!(
                "--calibrate: {} is neither a run JSON nor an HdrHistogram interval log",
                path.display()
            )
        };
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(iv) =
            item.map_err(|_| bad())?
        {
            let decoded = base64_decode(iv.encoded_histogram()).ok_or_else(bad)?;
            let h: hdrhistogram::Histogram<u64> = deserializer
                .deserialize(&mut decoded.as_slice())
                .map_err(|_| bad())?;
            total.add(&h).map_err(|_| bad())?;
        }
    }
    Ok(Measured {
        path: path.into(),
        latency_us: total,
        run: None,
    })
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// A run saturated its replica: a closed-model run, or an open-model one
/// that fell behind its offered rate.
fn saturated(r: &loadgen::RunResult) -> bool {
    match r.offered_rps {
        None => true,
        Some(o) => r.goodput_rps < crate::capacity::BEHIND * o,
    }
}

/// A run as a calibration step (open-model JSON results only).
pub fn step_of(
    r: &loadgen::RunResult,
) -> Option<(simulator::calibrate::Measured, Vec<(f64, u64)>)> {
    let offered = r.offered_rps?;
    let h = loadgen::histogram_from_base64(&r.histogram)?;
    Some((
        simulator::calibrate::Measured {
            offered_rps: offered,
            duration_s: r.window_s.max(1e-3),
            p95_ms: r.latency_ms.p95,
            p50_ms: Some(r.latency_ms.p50),
            p99_ms: Some(r.latency_ms.p99),
            goodput_rps: r.goodput_rps,
            replicas: 1,
        },
        points(&h),
    ))
}

/// Fits the service model to measurements of one replica (see
/// `simulator::calibrate`): the saturation throughput is the most goodput
/// any saturated run delivered (a closed-model run, or an open one that
/// fell behind); the open-model runs are the steps the model is fitted to.
/// Without a saturated run the capacity is unknown: the lowest-load run
/// gives the service time and the scenario keeps its workers.
pub fn calibrate(
    cfg: &mut SimConfig,
    paths: &[std::path::PathBuf],
    quiet: bool,
) -> anyhow::Result<Option<simulator::calibrate::Fit>> {
    let runs = paths
        .iter()
        .map(|p| read_measurement(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let capacity = runs
        .iter()
        .filter_map(|m| m.run.as_ref())
        .filter(|r| saturated(r))
        .map(|r| r.goodput_rps)
        .fold(0.0, f64::max);
    let steps: Vec<_> = runs
        .iter()
        .filter_map(|m| m.run.as_ref().and_then(step_of))
        .collect();
    if capacity > 0.0 && !steps.is_empty() {
        let fit = fit_steps(cfg, &steps, capacity, 64, simulator::calibrate::BELOW_KNEE)?;
        if !quiet {
            eprintln!("{}", fit_line(&fit));
        }
        return Ok(Some(fit));
    }
    let low = runs
        .iter()
        .filter(|m| !m.latency_us.is_empty())
        .min_by(|a, b| a.latency_us.mean().total_cmp(&b.latency_us.mean()))
        .with_context(|| "--calibrate: the measurements hold no requests".to_string())?;
    cfg.service.service_time = empirical(&low.latency_us);
    if !quiet {
        eprintln!(
            "loadtest: service time from {} ({} requests, mean {:.2} ms, p95 {:.2} ms); no saturated run (closed model, or an open one that fell behind), so the capacity is not measured and workers stay at {}",
            low.path.display(),
            low.latency_us.len(),
            low.latency_us.mean() / 1e3,
            low.latency_us.value_at_quantile(0.95) as f64 / 1e3,
            cfg.service.workers_per_replica
        );
    }
    Ok(None)
}

/// Fits and applies the model; `fit_below` as in `FitInput`.
pub fn fit_steps(
    cfg: &mut SimConfig,
    steps: &[(simulator::calibrate::Measured, Vec<(f64, u64)>)],
    capacity_rps: f64,
    max_workers: u32,
    fit_below: f64,
) -> anyhow::Result<simulator::calibrate::Fit> {
    let (measured, latencies): (Vec<_>, Vec<_>) = steps.iter().cloned().unzip();
    let input = simulator::calibrate::FitInput {
        base: cfg,
        capacity_rps,
        latencies: &latencies,
        steps: &measured,
        max_workers,
        p95_slo_ms: cfg.slo.p95_ms,
        fit_below,
    };
    let fit = simulator::calibrate::fit(&input).context("calibration: no step to fit")?;
    let shape = simulator::calibrate::shape_source(&input).context("calibration: no latencies")?;
    *cfg = simulator::calibrate::apply(cfg, &fit, &shape);
    Ok(fit)
}

/// The fit in one line.
pub fn fit_line(f: &simulator::calibrate::Fit) -> String {
    format!(
        "loadtest: calibrated: {} per replica, {:.2} ms mean service time: {:.1} rps capacity, + {:.2} ms latency floor; p95 within {:.1}%, goodput within {:.1}% on the steps below 90% of capacity",
        f.concurrency(),
        f.service_mean_ms,
        f.capacity_rps,
        f.latency_floor_ms,
        100.0 * f.max_p95_error,
        100.0 * f.max_goodput_error
    )
}

/// `(ms, count)` points of a latency histogram (µs).
pub fn points(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, u64)> {
    h.iter_recorded()
        .map(|v| {
            (
                h.median_equivalent(v.value_iterated_to()) as f64 / 1e3,
                v.count_at_value(),
            )
        })
        .collect()
}

/// An empirical distribution from a latency histogram (µs), one point per
/// recorded bucket.
pub fn empirical(h: &hdrhistogram::Histogram<u64>) -> Dist {
    Dist::Empirical { points: points(h) }
}

fn render(f: &Forecast) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} (seed {})",
        if f.name.is_empty() {
            "forecast"
        } else {
            &f.name
        },
        f.seed
    );
    let _ = writeln!(s, "  simulated: {}", f.simulated);
    let _ = writeln!(
        s,
        "  {} requests, {} errors ({:.3}%), {:.1}% queued, utilisation {:.1}%, {} events",
        f.requests,
        f.errors,
        100.0 * f.error_rate,
        100.0 * f.waited,
        100.0 * f.utilization,
        f.events
    );
    let l = &f.latency_ms;
    let _ = write!(
        s,
        "  latency ms: mean {:.2}  p50 {:.2}  p95 {:.2}  p99 {:.2}",
        l.mean, l.p50, l.p95, l.p99
    );
    if let Some((p95, p99)) = &f.latency_ci95_ms {
        let _ = write!(
            s,
            "  (per replication: p95 {:.2} ± {:.2}, p99 {:.2} ± {:.2})",
            p95.mean, p95.ci95, p99.mean, p99.ci95
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  replicas: min {} max {} mean {:.2}; cost of the simulated time {:.2}{}",
        f.replicas.min,
        f.replicas.max,
        f.replicas.mean,
        f.cost,
        f.horizon_cost_estimate
            .map(|c| format!("; whole horizon (steady-state estimate) {c:.0}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "  SLO p95 < {} ms per minute: {:.1} ± {:.1} of {} minutes violated",
        f.slo.p95_target_ms,
        f.slo.violation_minutes.mean,
        f.slo.violation_minutes.ci95,
        f.slo.minutes
    );
    if f.windows.len() > 1 {
        s.push_str(&windows_table(f));
    }
    for c in &f.crossings {
        let _ = writeln!(s, "  ! {}", c.note);
    }
    s
}

/// One line per simulated window; with the replicas' memory, its
/// utilisation; with a cache tier, its hit ratio, memory and the database
/// reads its misses make.
fn windows_table(f: &Forecast) -> String {
    use std::fmt::Write as _;
    let cache = f.windows.iter().any(|w| w.cache.is_some());
    let memory = f.windows.iter().any(|w| w.memory_utilization.is_some());
    let mut s = String::new();
    let _ = write!(
        s,
        "\n  {:<32} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}",
        "window", "users", "rps", "replicas", "p95 ms", "cpu %", "viol min"
    );
    if memory {
        let _ = write!(s, " {:>7}", "mem %");
    }
    if cache {
        let _ = write!(s, " {:>7} {:>9} {:>9}", "hit %", "cache MB", "db rd/s");
    }
    let _ = writeln!(s);
    for w in &f.windows {
        let _ = write!(
            s,
            "  {:<32} {:>9.0} {:>9.1} {:>9.1} {:>9.1} {:>7.1} {:>9.1}",
            w.label,
            w.users,
            w.offered_rps,
            w.replicas.mean,
            w.p95_ms.mean,
            100.0 * w.utilization.mean,
            w.violation_minutes.mean
        );
        if let Some(m) = &w.memory_utilization {
            let _ = write!(s, " {:>7.1}", 100.0 * m.mean);
        }
        if let Some(c) = &w.cache {
            let _ = write!(
                s,
                " {:>7.1} {:>9.0} {:>9.1}",
                100.0 * c.hit_ratio,
                c.memory_used_mb,
                c.database_reads_per_s
            );
        }
        let _ = writeln!(s);
    }
    s
}
