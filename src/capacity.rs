//! The capacity search (`loadtest run --find-capacity`, and the first stage
//! of `loadtest plan`): a breakpoint test that finds a service's saturation
//! throughput and its knee by itself, bounded in time and in rate, so it is
//! safe to point at staging.
//!
//! 1. **Concurrency sweep** (closed model): 1, 2, 4, ... connections, each
//!    for a short probe, until doubling the connections adds less than 5%
//!    goodput (the plateau is the saturation throughput), errors pass the
//!    limit, or the next doubling could pass `--max-rate`. A closed system's
//!    throughput grows at most in proportion to its concurrency, so a step
//!    at 2c is run only when twice the goodput at c stays within the cap;
//!    a second that passes it anyway stops the step at once.
//! 2. **Rate sweep** (open model): fixed fractions of that capacity
//!    (20% … 110%), each after an uncounted warm-up, with a verdict per
//!    step: within the SLO, p95 over it, falling behind (goodput under 95%
//!    of the offered rate), or errors over the limit (which ends the search).
//!    The knee is the highest offered rate whose step held.
//!
//! The decisions are pure functions of the steps' summaries (tested below);
//! the runs go through `run_cmd::execute`, so every step is an ordinary run
//! result that calibration reads.

use std::ops::ControlFlow;
use std::time::Duration;

use loadgen::{Load, RunResult, Schedule, StopHandle};
use serde::Serialize;

use crate::run_cmd::{Settings, Sinks};

/// The rate sweep's levels, as fractions of the saturation throughput.
pub const RATE_LEVELS: [f64; 7] = [0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1];

pub use simulator::calibrate::BEHIND;

/// Doubling the connections must add this much goodput, or the sweep has
/// reached the plateau.
const PLATEAU_GAIN: f64 = 1.05;

/// What bounds the search, and what counts as holding.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Nothing is ever sent faster than this, requests/s.
    pub max_rate_rps: f64,
    /// The p95 a step must stay under, ms.
    pub p95_slo_ms: f64,
    /// The error rate (0-1) past which the search stops.
    pub error_limit: f64,
    /// Length of each concurrency probe.
    pub probe: Duration,
    /// Length of each rate step.
    pub step: Duration,
    /// Uncounted warm-up before each rate step (and before the first probe).
    pub warmup: Duration,
    /// Most connections the concurrency sweep tries.
    pub max_connections: usize,
    /// Rate levels as fractions of the saturation throughput.
    pub levels: Vec<f64>,
}

/// How one step came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the SLO, no errors over the limit, keeping up.
    Held,
    /// p95 over the SLO.
    P95OverSlo,
    /// Goodput below 95% of the offered rate: saturated.
    FallingBehind,
    /// Errors over the limit.
    Errors,
}

impl Verdict {
    fn says(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::P95OverSlo => "p95 over the SLO",
            Verdict::FallingBehind => "falling behind",
            Verdict::Errors => "errors over the limit",
        }
    }
}

/// One step of the search, as `capacity.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `concurrency` or `rate`.
    pub phase: &'static str,
    /// Connections (concurrency sweep).
    pub connections: Option<usize>,
    /// Offered requests/s (rate sweep).
    pub offered_rps: Option<f64>,
    /// The rate level, as a fraction of the saturation throughput.
    pub level: Option<f64>,
    /// Completed requests/s in the measured window.
    pub rps: f64,
    /// Successful responses/s in the measured window.
    pub goodput_rps: f64,
    /// Σ errors / requests.
    pub error_rate: f64,
    /// Latency from the scheduled time, ms.
    pub p50_ms: f64,
    /// Latency from the scheduled time, ms.
    pub p95_ms: f64,
    /// Latency from the scheduled time, ms.
    pub p99_ms: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// The step's full run result, where one was written.
    pub file: Option<String>,
}

impl Step {
    fn from_run(phase: &'static str, r: &RunResult, limits: &Limits) -> Self {
        Step {
            phase,
            connections: None,
            offered_rps: r.offered_rps,
            level: None,
            rps: r.rps,
            goodput_rps: r.goodput_rps,
            error_rate: r.error_rate,
            p50_ms: r.latency_ms.p50,
            p95_ms: r.latency_ms.p95,
            p99_ms: r.latency_ms.p99,
            verdict: verdict(
                r.error_rate,
                r.latency_ms.p95,
                r.goodput_rps,
                r.offered_rps,
                limits,
            ),
            file: None,
        }
    }

    fn label(&self) -> String {
        match (self.connections, self.offered_rps) {
            (Some(c), _) => format!("{c} connection{}", if c == 1 { "" } else { "s" }),
            (None, Some(r)) => format!("{r:.0} rps"),
            _ => "step".into(),
        }
    }
}

/// What the search found: `capacity.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// Kind of document.
    pub kind: String,
    /// Scenario name.
    pub name: String,
    /// The target.
    pub url: String,
    /// Start of the search (UTC, RFC 3339).
    pub started_at: String,
    /// Length of the search, s.
    pub duration_s: f64,
    /// The tool version.
    pub version: String,
    /// The bounds it ran under.
    pub max_rate_rps: f64,
    /// The SLO each step is judged by, ms.
    pub p95_slo_ms: f64,
    /// The error limit, 0-1.
    pub error_limit: f64,
    /// Saturation throughput: the most goodput any step delivered.
    pub capacity_rps: f64,
    /// True when `--max-rate` stopped the search before the plateau: the
    /// capacity is at least this.
    pub capacity_at_least: bool,
    /// The highest offered rate whose step held (null if none did).
    pub knee_rps: Option<f64>,
    /// The connections at which the plateau was reached.
    pub saturating_connections: Option<usize>,
    /// Why the search ended.
    pub ended: String,
    /// Every step, in order.
    pub steps: Vec<Step>,
}

/// How a step is judged.
pub fn verdict(
    error_rate: f64,
    p95_ms: f64,
    goodput_rps: f64,
    offered_rps: Option<f64>,
    l: &Limits,
) -> Verdict {
    if error_rate > l.error_limit {
        Verdict::Errors
    } else if offered_rps.is_some_and(|o| goodput_rps < BEHIND * o) {
        Verdict::FallingBehind
    } else if offered_rps.is_some() && p95_ms > l.p95_slo_ms {
        Verdict::P95OverSlo
    } else {
        Verdict::Held
    }
}

/// What the concurrency sweep does after a probe at `c` connections that
/// delivered `x` (the best goodput so far before it was `best`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Probe at this many connections.
    Probe(usize),
    /// The plateau: saturated.
    Plateau,
    /// The next doubling could pass the rate cap.
    RateCap,
    /// The connection cap.
    ConnectionCap,
}

/// The concurrency sweep's next move.
pub fn next_probe(c: usize, x: f64, best_before: f64, l: &Limits) -> Next {
    if c > 1 && x < PLATEAU_GAIN * best_before {
        Next::Plateau
    } else if 2.0 * x > l.max_rate_rps {
        Next::RateCap
    } else if 2 * c > l.max_connections {
        Next::ConnectionCap
    } else {
        Next::Probe(2 * c)
    }
}

/// The offered rates of the rate sweep: the levels of `capacity`, none
/// above the rate cap.
pub fn rate_levels(capacity: f64, l: &Limits) -> Vec<(f64, f64)> {
    l.levels
        .iter()
        .map(|&f| (f, f * capacity))
        .filter(|&(_, r)| r <= l.max_rate_rps && r >= 0.5)
        .collect()
}

/// The highest offered rate whose step held.
pub fn knee<'a>(steps: impl IntoIterator<Item = &'a Step>) -> Option<f64> {
    steps
        .into_iter()
        .filter(|s| s.phase == "rate" && s.verdict == Verdict::Held)
        .filter_map(|s| s.offered_rps)
        .max_by(f64::total_cmp)
}

/// Runs the search. `on_step` sees every step as it ends, with its run
/// result (to write it, and `capacity.json` so far, so an interrupted
/// search keeps what it measured).
pub fn search(
    base: &Settings,
    l: &Limits,
    stop: &StopHandle,
    quiet: bool,
    on_step: impl FnMut(&Found, &RunResult) -> anyhow::Result<()>,
) -> anyhow::Result<(Found, Vec<RunResult>)> {
    let clock = std::time::Instant::now();
    let found = Found {
        kind: "capacity".into(),
        name: base.name.clone(),
        url: loadgen::redact_url(&base.plan.target.url),
        started_at: crate::utc_now(),
        duration_s: 0.0,
        version: crate::VERSION.into(),
        max_rate_rps: l.max_rate_rps,
        p95_slo_ms: l.p95_slo_ms,
        error_limit: l.error_limit,
        capacity_rps: 0.0,
        capacity_at_least: false,
        knee_rps: None,
        saturating_connections: None,
        ended: String::new(),
        steps: Vec::new(),
    };
    let mut sr = Search {
        base,
        l,
        stop,
        quiet,
        on_step,
        found,
        runs: Vec::new(),
        clock,
    };
    // 1. Concurrency sweep, then 2. rate sweep at fractions of the
    // saturation throughput; either ends the search when interrupted.
    if !sr.concurrency_sweep()? || !sr.rate_sweep()? {
        return Ok((sr.found, sr.runs));
    }
    sr.found.duration_s = sr.clock.elapsed().as_secs_f64();
    Ok((sr.found, sr.runs))
}

/// A search under way: its bounds, what it found so far, and every run.
struct Search<'a, F> {
    base: &'a Settings,
    l: &'a Limits,
    stop: &'a StopHandle,
    quiet: bool,
    on_step: F,
    found: Found,
    runs: Vec<RunResult>,
    clock: std::time::Instant,
}

impl<F: FnMut(&Found, &RunResult) -> anyhow::Result<()>> Search<'_, F> {
    fn say(&self, s: &Step) {
        if !self.quiet {
            eprintln!(
                "          {:<11} {:<16} goodput {:>8.1} rps  p95 {:>9.2} ms  errors {:>6.2}%  {}",
                s.phase,
                s.label(),
                s.goodput_rps,
                s.p95_ms,
                100.0 * s.error_rate,
                s.verdict.says()
            );
        }
    }

    /// Records a step and its run, and hands both to the caller. False
    /// when the run was interrupted (the search ends, `found` says why).
    fn record(&mut self, step: Step, r: RunResult) -> anyhow::Result<bool> {
        self.say(&step);
        self.found.steps.push(step);
        self.runs.push(r);
        (self.on_step)(&self.found, self.runs.last().expect("just pushed"))?;
        Ok(interrupted(&self.runs, self.stop, &mut self.found, &self.clock).is_none())
    }

    /// Closed-model steps at 1, 2, 4, ... connections until the goodput
    /// stops growing, errors pass the limit, or a cap is reached. False
    /// when interrupted.
    fn concurrency_sweep(&mut self) -> anyhow::Result<bool> {
        let (base, l, stop) = (self.base, self.l, self.stop);
        let mut c = 1;
        let mut best = 0.0f64;
        loop {
            let mut s = base.clone();
            s.warmup = if c == 1 { l.warmup } else { Duration::ZERO };
            s.plan.load = Load::Closed {
                connections: c,
                think_time: Duration::ZERO,
                duration: l.probe,
            };
            let r = run_step(&s, l.max_rate_rps, stop)?;
            let mut step = Step::from_run("concurrency", &r, l);
            step.connections = Some(c);
            let x = r.goodput_rps;
            self.found.capacity_rps = self.found.capacity_rps.max(x);
            if c == 1 && !stop.is_stopped() && (r.ok == 0 || r.error_rate > l.error_limit) {
                // Reported (and kept) before the search gives up.
                let (rate, classes) = (r.error_rate, error_classes(&r));
                self.record(step, r)?;
                anyhow::bail!(
                    "step 1 (1 connection, at most {:.0} rps): {:.1}% errors ({}): the target fails at the lowest load; check the URL and that the service is healthy",
                    l.max_rate_rps,
                    100.0 * rate,
                    classes
                );
            }
            let errors = c > 1 && r.error_rate > l.error_limit;
            if !self.record(step, r)? {
                return Ok(false);
            }
            let found = &mut self.found;
            if errors {
                found.ended = format!("errors over the limit at {c} connections");
                found.saturating_connections = Some(c / 2);
                return Ok(true);
            }
            match next_probe(c, x, best, l) {
                Next::Probe(n) => c = n,
                Next::Plateau => {
                    found.ended = format!(
                        "plateau: {c} connections delivered less than 5% more than {}",
                        c / 2
                    );
                    found.saturating_connections = Some(c / 2);
                    return Ok(true);
                }
                Next::RateCap => {
                    found.capacity_at_least = true;
                    found.ended = format!(
                        "--max-rate {:.0}: doubling {c} connections could pass it",
                        l.max_rate_rps
                    );
                    return Ok(true);
                }
                Next::ConnectionCap => {
                    found.capacity_at_least = true;
                    found.ended = format!("the connection cap ({}) was reached", l.max_connections);
                    return Ok(true);
                }
            }
            best = best.max(x);
        }
    }

    /// Open-model steps at fractions of the saturation throughput, until
    /// one has errors over the limit. False when interrupted.
    fn rate_sweep(&mut self) -> anyhow::Result<bool> {
        let (base, l, stop) = (self.base, self.l, self.stop);
        for (level, rate) in rate_levels(self.found.capacity_rps, l) {
            let mut s = base.clone();
            s.warmup = l.warmup;
            s.plan.load = open_load(rate, l.step, &base.plan.load);
            let r = run_step(&s, l.max_rate_rps, stop)?;
            let mut step = Step::from_run("rate", &r, l);
            step.level = Some(level);
            let errors = step.verdict == Verdict::Errors;
            self.found.knee_rps = knee(self.found.steps.iter().chain([&step]));
            if !self.record(step, r)? {
                return Ok(false);
            }
            if errors {
                self.found.ended = format!("errors over the limit at {rate:.0} rps");
                break;
            }
        }
        Ok(true)
    }
}

/// The run's open model at `rate` for `len`, with its connection cap.
pub fn open_load(rate: f64, len: Duration, base: &Load) -> Load {
    let max_connections = match base {
        Load::Open {
            max_connections, ..
        } => *max_connections,
        Load::Closed { .. } => 10_000,
    };
    Load::Open {
        schedule: Schedule::constant(rate, len),
        initial_connections: ((rate / 200.0).ceil() as usize).clamp(4, 512),
        max_connections,
    }
}

/// One step, stopped at once by any second faster than the rate cap or
/// with most of its requests failing. The step has its own stop handle, so
/// that such a stop ends the search without looking like Ctrl-C; Ctrl-C
/// (`stop`) reaches it within a second.
fn run_step(s: &Settings, max_rate: f64, stop: &StopHandle) -> anyhow::Result<RunResult> {
    let local = StopHandle::default();
    if stop.is_stopped() {
        local.stop();
    }
    let guard = |row: &loadgen::SecondRow| {
        if stop.is_stopped() {
            ControlFlow::Break("interrupted".into())
        } else if row.rps > max_rate * 1.02 {
            ControlFlow::Break(format!(
                "a second at {:.0} rps passed --max-rate {max_rate:.0}",
                row.rps
            ))
        } else if row.requests >= 10 && 2 * row.errors > row.requests {
            ControlFlow::Break(format!(
                "{} of {} requests in second {} failed",
                row.errors, row.requests, row.t_s
            ))
        } else {
            ControlFlow::Continue(())
        }
    };
    // The search judges each step itself; the scenario's abort-on-fail
    // would cut the steps past the knee short.
    let mut s = s.clone();
    s.abort_on_fail = false;
    let sinks = Sinks {
        quiet: true,
        ..Sinks::default()
    };
    crate::run_cmd::execute_with(&s, &sinks, &local, guard)
}

/// The search ends early when the last step was stopped: by Ctrl-C
/// (`stop`), or by its guard (the rate cap, failing seconds).
fn interrupted(
    runs: &[RunResult],
    stop: &StopHandle,
    found: &mut Found,
    clock: &std::time::Instant,
) -> Option<anyhow::Result<Found>> {
    let last = runs.last()?;
    if !stop.is_stopped() && last.stopped.is_none() {
        return None;
    }
    found.ended = format!(
        "stopped: {}",
        last.stopped.as_deref().unwrap_or("interrupted")
    );
    found.duration_s = clock.elapsed().as_secs_f64();
    Some(Ok(found.clone()))
}

fn error_classes(r: &RunResult) -> String {
    let v: Vec<String> = r
        .errors
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if v.is_empty() {
        "no response was ok".into()
    } else {
        v.join(", ")
    }
}

/// The search's table for the terminal.
pub fn render(f: &Found) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "\ncapacity of {}: {}{:.1} rps (saturation throughput); knee {}\n  {}\n",
        f.url,
        if f.capacity_at_least { "at least " } else { "" },
        f.capacity_rps,
        f.knee_rps
            .map(|k| format!(
                "{k:.1} rps (highest offered rate within p95 < {} ms)",
                f.p95_slo_ms
            ))
            .unwrap_or_else(|| "none: no rate step held".into()),
        f.ended
    );
    let _ = writeln!(
        s,
        "\n  {:<11} {:>16} {:>10} {:>10} {:>10} {:>10} {:>8}  verdict",
        "phase", "load", "rps", "goodput", "p50 ms", "p95 ms", "errors"
    );
    for st in &f.steps {
        let _ = writeln!(
            s,
            "  {:<11} {:>16} {:>10.1} {:>10.1} {:>10.2} {:>10.2} {:>7.2}%  {}",
            st.phase,
            st.label(),
            st.rps,
            st.goodput_rps,
            st.p50_ms,
            st.p95_ms,
            100.0 * st.error_rate,
            st.verdict.says()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_rate_rps: 1000.0,
            p95_slo_ms: 200.0,
            error_limit: 0.01,
            probe: Duration::from_secs(3),
            step: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            max_connections: 256,
            levels: RATE_LEVELS.to_vec(),
        }
    }

    #[test]
    fn a_step_is_judged_errors_first_then_throughput_then_latency() {
        let l = limits();
        assert_eq!(verdict(0.02, 10.0, 100.0, Some(100.0), &l), Verdict::Errors);
        assert_eq!(
            verdict(0.0, 500.0, 90.0, Some(100.0), &l),
            Verdict::FallingBehind
        );
        assert_eq!(
            verdict(0.0, 500.0, 99.0, Some(100.0), &l),
            Verdict::P95OverSlo
        );
        assert_eq!(verdict(0.0, 50.0, 99.0, Some(100.0), &l), Verdict::Held);
        // A concurrency probe has no offered rate: its latency is the
        // closed loop's, not an SLO measurement.
        assert_eq!(verdict(0.0, 500.0, 99.0, None, &l), Verdict::Held);
    }

    #[test]
    fn the_sweep_doubles_until_the_plateau_or_a_cap() {
        let l = limits();
        assert_eq!(next_probe(1, 100.0, 0.0, &l), Next::Probe(2));
        assert_eq!(next_probe(2, 190.0, 100.0, &l), Next::Probe(4));
        // 4% more goodput for twice the connections: saturated.
        assert_eq!(next_probe(8, 312.0, 300.0, &l), Next::Plateau);
        // Twice 600 could pass 1000 rps: never run that probe.
        assert_eq!(next_probe(4, 600.0, 300.0, &l), Next::RateCap);
        let few = Limits {
            max_connections: 4,
            ..l
        };
        assert_eq!(next_probe(4, 300.0, 160.0, &few), Next::ConnectionCap);
    }

    #[test]
    fn rate_levels_never_pass_the_rate_cap() {
        let l = limits();
        let levels = rate_levels(1000.0, &l);
        assert_eq!(levels.len(), 6, "{levels:?}");
        assert!(levels.iter().all(|&(_, r)| r <= 1000.0));
        assert_eq!(levels[0], (0.2, 200.0));
    }

    #[test]
    fn the_knee_is_the_highest_rate_step_that_held() {
        let l = limits();
        let step = |rate: f64, p95: f64, goodput: f64| Step {
            phase: "rate",
            connections: None,
            offered_rps: Some(rate),
            level: None,
            rps: goodput,
            goodput_rps: goodput,
            error_rate: 0.0,
            p50_ms: 1.0,
            p95_ms: p95,
            p99_ms: p95,
            verdict: verdict(0.0, p95, goodput, Some(rate), &l),
            file: None,
        };
        let steps = vec![
            step(100.0, 10.0, 100.0),
            step(200.0, 30.0, 200.0),
            step(300.0, 400.0, 280.0),
            step(250.0, 150.0, 249.0),
        ];
        assert_eq!(knee(&steps), Some(250.0));
        assert_eq!(knee(&steps[2..3]), None);
    }
}
