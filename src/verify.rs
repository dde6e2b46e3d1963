//! `loadtest plan --verify`: the calibrated model against measurements it
//! was not fitted on. One replica: the fit chose its model on the steps
//! below 70% of capacity, so the 80% step is predicted (p95 within 15%,
//! goodput within 5%) and the steps from 90% on test the saturation
//! verdict (saturated where the measurement is, within one step). Several
//! replicas: predicted from the one-replica fit, then measured against two
//! built-in targets, a list of replica URLs (each sent its share), or a
//! load balancer's URL with the number of replicas behind it.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use contracts::verify::{Case, Role, Verify as Doc, VerifyTag};
use loadgen::{RunResult, StopHandle};
use simulator::calibrate::{BELOW_KNEE, Fit, Measured, StepFit};
use simulator::model::SimConfig;

use crate::run_cmd::{Settings, Sinks};

/// Tolerances of the verification: p95 within 15%, throughput within 5%.
pub const P95_TOL: f64 = 0.15;
/// See [`P95_TOL`].
pub const RPS_TOL: f64 = 0.05;

/// The fit chooses its model on steps below this fraction of capacity
/// when `--verify` holds the others out.
pub const FIT_BELOW: f64 = 0.7;

/// How the multi-replica case reaches its replicas.
#[derive(Debug, Clone)]
pub enum Replicas {
    /// Each URL is one replica, sent its share by its own generator.
    Each(Vec<String>),
    /// One load balancer in front of this many replicas.
    Balancer(String, u32),
}

impl Replicas {
    fn count(&self) -> u32 {
        match self {
            Replicas::Each(u) => u.len() as u32,
            Replicas::Balancer(_, n) => *n,
        }
    }
}

/// Judges the one-replica steps of the fit.
pub fn one_replica_cases(fit: &Fit) -> Vec<Case> {
    let x = fit.capacity_rps;
    let mut cases: Vec<Case> = fit
        .steps
        .iter()
        .filter(|s| s.replicas == 1)
        .map(|s| {
            let level = s.offered_rps / x;
            let role = if level >= BELOW_KNEE {
                Role::Saturation
            } else if level < FIT_BELOW {
                Role::Fitted
            } else {
                Role::HeldOut
            };
            case(s, level, role)
        })
        .collect();
    // Saturation: the first level each side calls saturated, within one step.
    let first = |pred: bool| {
        cases.iter().position(|c| {
            c.role == Role::Saturation
                && (if pred {
                    c.predicted_saturated
                } else {
                    c.measured_saturated
                })
        })
    };
    let n = cases.len();
    let (m, p) = (first(false).unwrap_or(n), first(true).unwrap_or(n));
    let agree = m.abs_diff(p) <= 1;
    for c in cases.iter_mut().filter(|c| c.role == Role::Saturation) {
        c.ok = agree;
    }
    cases
}

fn case(s: &StepFit, level: f64, role: Role) -> Case {
    let within = s.p95_error.abs() <= P95_TOL && s.goodput_error.abs() <= RPS_TOL;
    Case {
        case: format!(
            "{} replica{} at {:.0} rps ({:.0}% of capacity)",
            s.replicas,
            if s.replicas == 1 { "" } else { "s" },
            s.offered_rps,
            100.0 * level
        ),
        replicas: s.replicas,
        offered_rps: s.offered_rps,
        level,
        role,
        predicted_p95_ms: s.predicted_p95_ms,
        measured_p95_ms: s.measured_p95_ms,
        p95_error: s.p95_error,
        predicted_rps: s.predicted_goodput_rps,
        measured_rps: s.measured_goodput_rps,
        rps_error: s.goodput_error,
        predicted_saturated: s.predicted_saturated,
        measured_saturated: s.measured_saturated,
        ok: within,
    }
}

/// What a verification needs: the one-replica model and its fit, the run
/// settings the steps reuse, and where and how long to measure.
pub struct Check<'a> {
    /// The one-replica model the fit produced.
    pub cfg: &'a SimConfig,
    /// The fit.
    pub fit: &'a Fit,
    /// The scenario's run settings; each step sets its target and load.
    pub base: &'a Settings,
    /// Length of each measured step.
    pub step: Duration,
    /// Uncounted warm-up before each.
    pub warmup: Duration,
    /// Where each step's result goes.
    pub out: &'a Path,
    /// Ctrl-C.
    pub stop: &'a StopHandle,
    /// No progress lines.
    pub quiet: bool,
}

impl Check<'_> {
    /// Every case: the one-replica steps of the fit, then `replicas`
    /// measured at each of `levels` of their combined capacity.
    pub fn run(&self, replicas: &Replicas, levels: &[f64]) -> anyhow::Result<Doc> {
        let started = crate::Started::now();
        let mut cases = one_replica_cases(self.fit);
        cases.extend(self.multi_replica_cases(replicas, levels)?);
        Ok(Doc {
            kind: VerifyTag,
            name: self.base.name.clone(),
            started_at: started.at.clone(),
            duration_s: started.seconds(),
            version: crate::VERSION.into(),
            note: format!(
                "one replica: the model was chosen on the steps below {:.0}% of the measured capacity; higher steps and the multi-replica case are predictions (evenly spaced requests for each step's length, from idle, 6 replications). {}",
                100.0 * FIT_BELOW,
                self.fit.assumes
            ),
            cases,
        })
    }

    /// Measures the multi-replica case at each level and compares it with
    /// the prediction from the one-replica model.
    fn multi_replica_cases(
        &self,
        replicas: &Replicas,
        levels: &[f64],
    ) -> anyhow::Result<Vec<Case>> {
        let n = replicas.count();
        let mut cases = Vec::new();
        for (i, &level) in levels.iter().enumerate() {
            let rate = level * self.fit.capacity_rps * n as f64;
            if !self.quiet {
                eprintln!(
                    "          verify: {n} replicas at {rate:.0} rps ({:.0}% of their capacity)",
                    100.0 * level
                );
            }
            let json = self.out.join(format!("verify_{n}x_step{}.json", i + 1));
            let (q, goodput, window) = self.measure(replicas, rate, &json)?;
            if self.stop.is_stopped() {
                break;
            }
            let m = Measured {
                offered_rps: rate,
                duration_s: window,
                p95_ms: q[1],
                p50_ms: Some(q[0]),
                p99_ms: Some(q[2]),
                goodput_rps: goodput,
                replicas: n,
            };
            let s = simulator::calibrate::compare(self.cfg, &[m], self.cfg.slo.p95_ms, 6).remove(0);
            let role = if level < BELOW_KNEE {
                Role::HeldOut
            } else {
                Role::Saturation
            };
            let mut c = case(&s, level, role);
            if role == Role::Saturation {
                c.ok = c.predicted_saturated == c.measured_saturated;
            }
            cases.push(c);
        }
        Ok(cases)
    }

    /// One multi-replica measurement: ([p50, p95, p99] ms, goodput rps, window s).
    fn measure(
        &self,
        replicas: &Replicas,
        rate: f64,
        json: &Path,
    ) -> anyhow::Result<([f64; 3], f64, f64)> {
        let (base, stop) = (self.base, self.stop);
        let settings_for = |url: &str, rate: f64| {
            let mut s = base.clone();
            s.plan.target.url = url.to_string();
            s.plan.load = crate::capacity::open_load(rate, self.step, &base.plan.load);
            s.warmup = self.warmup;
            s
        };
        let quiet = Sinks {
            quiet: true,
            ..Sinks::default()
        };
        let runs: Vec<RunResult> = match replicas {
            Replicas::Balancer(url, _) => {
                let sinks = Sinks {
                    json: Some(json),
                    ..quiet
                };
                vec![crate::run_cmd::execute(
                    &settings_for(url, rate),
                    &sinks,
                    stop,
                )?]
            }
            Replicas::Each(urls) => {
                let share = rate / urls.len() as f64;
                std::thread::scope(|sc| {
                    let handles: Vec<_> = urls
                        .iter()
                        .map(|u| {
                            let s = settings_for(u, share);
                            sc.spawn(move || crate::run_cmd::execute(&s, &quiet, stop))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join()
                                .map_err(|_| anyhow::anyhow!("a verify generator panicked"))?
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })?
            }
        };
        let mut h = loadgen::stats::latency_histogram();
        for r in &runs {
            h.add(
                loadgen::histogram_from_base64(&r.histogram)
                    .context("verify: a run has no histogram")?,
            )
            .map_err(|e| anyhow::anyhow!("verify: cannot merge histograms: {e:?}"))?;
        }
        if let Replicas::Each(_) = replicas {
            crate::write_json(json, &runs)?;
        }
        let goodput = runs.iter().map(|r| r.goodput_rps).sum();
        let window = runs.iter().map(|r| r.window_s).fold(0.0, f64::max);
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1e3;
        Ok(([q(0.5), q(0.95), q(0.99)], goodput, window))
    }
}

/// The verification's table for the terminal.
pub fn render(d: &Doc) -> String {
    use std::fmt::Write as _;
    let mut s = String::from(
        "\nverify: predicted vs measured (p95 within 15%, goodput within 5%; past 90%: saturated where measured, within one step)\n",
    );
    let _ = writeln!(
        s,
        "  {:>3} {:>9} {:>6} {:<10} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8}  verdict",
        "rep",
        "rate",
        "level",
        "role",
        "p95 pred",
        "p95 meas",
        "err",
        "gput pred",
        "gput meas",
        "err"
    );
    for c in &d.cases {
        let verdict = match (c.role, c.ok) {
            (Role::Fitted, _) => "fitted on".to_string(),
            (Role::Saturation, true) => format!(
                "ok ({})",
                if c.measured_saturated {
                    "saturated"
                } else {
                    "keeps up"
                }
            ),
            (Role::Saturation, false) => format!(
                "MISS: measured {}, predicted {}",
                if c.measured_saturated {
                    "saturated"
                } else {
                    "keeps up"
                },
                if c.predicted_saturated {
                    "saturated"
                } else {
                    "keeps up"
                }
            ),
            (_, true) => "ok".into(),
            (_, false) => "MISS".into(),
        };
        let _ = writeln!(
            s,
            "  {:>3} {:>9.1} {:>5.0}% {:<10} {:>10.2} {:>10.2} {:>7.1}% {:>10.1} {:>10.1} {:>7.1}%  {verdict}",
            c.replicas,
            c.offered_rps,
            100.0 * c.level,
            c.role.as_str(),
            c.predicted_p95_ms,
            c.measured_p95_ms,
            100.0 * c.p95_error,
            c.predicted_rps,
            c.measured_rps,
            100.0 * c.rps_error
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: f64, p95_err: f64, meas_sat: bool, pred_sat: bool) -> StepFit {
        StepFit {
            offered_rps: rate,
            replicas: 1,
            measured_p95_ms: 10.0,
            predicted_p95_ms: 10.0 * (1.0 + p95_err),
            p95_error: p95_err,
            measured_p50_ms: None,
            measured_p99_ms: None,
            predicted_p50_ms: None,
            predicted_p99_ms: None,
            measured_goodput_rps: rate,
            predicted_goodput_rps: rate,
            goodput_error: 0.0,
            measured_saturated: meas_sat,
            predicted_saturated: pred_sat,
        }
    }

    fn fit(steps: Vec<StepFit>) -> Fit {
        Fit {
            family: String::new(),
            workers: 1,
            service_mean_ms: 10.0,
            latency_floor_ms: 0.0,
            capacity_rps: 100.0,
            low_load_mean_ms: 10.0,
            candidates: vec![],
            cores: None,
            switch_cost: 0.0,
            models: vec![],
            spread: 1.0,
            steps,
            max_p95_error: 0.0,
            max_goodput_error: 0.0,
            assumes: String::new(),
        }
    }

    #[test]
    fn steps_are_fitted_held_out_or_judged_on_saturation() {
        let cases = one_replica_cases(&fit(vec![
            step(20.0, 0.5, false, false),
            step(80.0, 0.2, false, false),
            step(90.0, 0.0, false, false),
            step(100.0, 0.0, true, false),
            step(110.0, 0.0, true, true),
        ]));
        let roles: Vec<Role> = cases.iter().map(|c| c.role).collect();
        assert_eq!(
            roles,
            [
                Role::Fitted,
                Role::HeldOut,
                Role::Saturation,
                Role::Saturation,
                Role::Saturation
            ]
        );
        // The fitted step is not judged; the held-out one misses by 20%.
        let d = Doc {
            cases,
            ..Doc::default()
        };
        let misses: Vec<f64> = d.misses().map(|c| c.offered_rps).collect();
        // Saturation at 100 measured, 110 predicted: within one step.
        assert_eq!(misses, [80.0]);
    }

    #[test]
    fn saturation_two_steps_late_is_a_miss() {
        let cases = one_replica_cases(&fit(vec![
            step(90.0, 0.0, true, false),
            step(100.0, 0.0, true, false),
            step(110.0, 0.0, true, true),
        ]));
        assert!(cases.iter().all(|c| !c.ok));
    }
}
