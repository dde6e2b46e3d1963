//! `loadtest simulate`: a scenario's simulator sections (optionally with a
//! service-time distribution calibrated from a `run` result) into a
//! forecast, written as JSON and CSV, with a summary on the terminal.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use simulator::model::{Dist, SimConfig};
use simulator::{Forecast, SimError};

use crate::Outcome;
use crate::cli::SimulateArgs;
use crate::scenario::Scenario;

pub fn simulate(a: SimulateArgs) -> anyhow::Result<Outcome> {
    let scn = Scenario::load(&a.scenario)?;
    let mut cfg = sim_config(&scn).map_err(|e| anyhow::anyhow!("{}: {e}", a.scenario.display()))?;
    if let Some(run) = &a.calibrate {
        calibrate(&mut cfg, run)?;
    }
    if let Some(n) = a.replications {
        cfg.simulation.replications = n;
    }
    if let Some(s) = a.seed {
        cfg.simulation.seed = s;
    }
    cfg.check()
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.scenario.display()))?;
    let f = simulator::forecast(&cfg);
    if let Some(p) = &a.json {
        let mut text = serde_json::to_string_pretty(&f)?;
        text.push('\n');
        std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &a.csv {
        std::fs::write(p, simulator::series_csv(&f))
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(render(&f).as_bytes())?;
    let violated = f.slo.violation_minutes.mean > 0.0;
    Ok(if a.fail_on_slo && violated {
        Outcome::Failed
    } else {
        Outcome::Passed
    })
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
    })
}

/// Replaces the service-time model by the latency distribution a `run`
/// measured. Take it from a run at low load, where latency is service time.
fn calibrate(cfg: &mut SimConfig, run: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(run)
        .with_context(|| format!("--calibrate: cannot read {}", run.display()))?;
    let r: loadgen::RunResult = serde_json::from_str(&text).with_context(|| {
        format!(
            "--calibrate: {} is not a `loadtest run --json` result",
            run.display()
        )
    })?;
    let h = r
        .latency_histogram()
        .with_context(|| format!("--calibrate: {} has no latency histogram", run.display()))?;
    if h.is_empty() {
        bail!("--calibrate: {} measured no requests", run.display());
    }
    cfg.service.service_time = empirical(&h);
    eprintln!(
        "loadtest: service time calibrated from {} ({} requests, mean {:.2} ms, p95 {:.2} ms; measured concurrency λW = {:.1})",
        run.display(),
        h.len(),
        h.mean() / 1e3,
        h.value_at_quantile(0.95) as f64 / 1e3,
        r.rps * h.mean() / 1e6
    );
    Ok(())
}

/// An empirical distribution from a latency histogram (µs), one point per
/// recorded bucket.
pub fn empirical(h: &hdrhistogram::Histogram<u64>) -> Dist {
    let points = h
        .iter_recorded()
        .map(|v| {
            (
                h.median_equivalent(v.value_iterated_to()) as f64 / 1e3,
                v.count_at_value(),
            )
        })
        .collect();
    Dist::Empirical { points }
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
        let _ = writeln!(
            s,
            "\n  {:<32} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}",
            "window", "users", "rps", "replicas", "p95 ms", "cpu %", "viol min"
        );
        for w in &f.windows {
            let _ = writeln!(
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
        }
    }
    for c in &f.crossings {
        let _ = writeln!(s, "  ! {}", c.note);
    }
    s
}
