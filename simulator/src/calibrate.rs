//! Fitting the service model to measurements of one replica, and
//! predicting a measurement from a model.
//!
//! The model of a replica is `c` FIFO workers holding a request for a
//! service time `S` (the shape of the measured low-load latency), plus a
//! fixed latency floor `L` that holds no worker (network, proxy). Two
//! measurements pin it for any `c`:
//! - the saturation throughput `X`: `c / E[S] = X`, so `E[S] = c / X`
//!   exactly, with no rounding of `c` that loses capacity;
//! - the low-load mean latency `R0 = L + E[S]`, so `L = R0 - E[S]`
//!   (clamped to `[0, the fastest 1% of responses]`).
//!
//! `c` is the model family's one free parameter, and it is what separates
//! a service limited by its workers from one limited by its cores: a CPU-
//! bound service with 8 workers on one core behaves like `c = 1` (the core
//! is the server; its workers share it), not `c = 8`. It is chosen by how
//! well each candidate predicts the measured steps (p95 and goodput,
//! simulated exactly as the generator sent them: evenly spaced requests
//! for the step's length, from an idle replica). The shape comes from the
//! steps below half of `X`, merged, less any whose p95 stands out (a
//! stall in one low-load run does not become the service time).
//!
//! Replicas are modelled as independent: a tier they share (one database,
//! one host) is not in this model, and a fit says so.

pub use contracts::forecast::{Fit, Measured, ModelCandidate, StepFit};

use crate::engine::{Window, simulate};
use crate::model::{Arrivals, Balancer, Dist, SimConfig, Traffic};

/// A step that delivers less than this share of its offered rate is
/// falling behind: saturated.
pub const BEHIND: f64 = 0.95;

/// Steps offered less than this fraction of capacity are "below the knee":
/// the fit is judged on them, and the higher ones test saturation.
pub const BELOW_KNEE: f64 = 0.9;

/// What the fit needs.
#[derive(Debug, Clone)]
pub struct FitInput<'a> {
    /// The service model to fit (its service time, workers and floor are replaced).
    pub base: &'a SimConfig,
    /// Saturation throughput of one replica, requests/s.
    pub capacity_rps: f64,
    /// Latency `(ms, count)` points of each step, by step.
    pub latencies: &'a [Vec<(f64, u64)>],
    /// The steps.
    pub steps: &'a [Measured],
    /// Largest `workers` to try.
    pub max_workers: u32,
    /// The SLO the saturation verdict uses, ms.
    pub p95_slo_ms: f64,
    /// Steps offered less than this fraction of capacity (× replicas)
    /// choose `workers`; the rest are predicted, not fitted ([`BELOW_KNEE`]
    /// by default; lower to hold more steps out).
    pub fit_below: f64,
}

/// A replica's model for one candidate (its score is not used), with
/// the latency floor `floor` (clamped to the fastest 1% of the shape), or
/// if `None` the low-load mean less the mean service time; and the
/// service times' deviations from their mean scaled by `spread` (≤ 1).
fn model(
    base: &SimConfig,
    shape: &[(f64, u64)],
    capacity_rps: f64,
    m: &ModelCandidate,
    (floor, spread): (Option<f64>, f64),
) -> Built {
    let mut cfg = base.clone();
    cfg.service.workers_per_replica = m.workers;
    cfg.service.cores_per_replica = m.cores;
    cfg.service.switch_cost = m.switch_cost;
    let total: u64 = shape.iter().map(|p| p.1).sum();
    let mean = shape.iter().map(|p| p.0 * p.1 as f64).sum::<f64>() / total.max(1) as f64;
    let fastest = quantile(shape, 0.01);
    // Saturated, the replica holds `servers` full-speed servers busy (its
    // workers, or its shared cores less the switching cost).
    let service_mean = 1e3 * cfg.service.servers() / capacity_rps;
    let floor = floor.unwrap_or(mean - service_mean).clamp(0.0, fastest);
    // Service time: the latency net of the floor, scaled to its mean.
    let net_mean = (mean - floor).max(1e-6);
    let k = service_mean / net_mean;
    let points = shape
        .iter()
        .map(|&(ms, n)| {
            let net = (ms - floor).max(0.0) * k;
            ((service_mean + spread * (net - service_mean)).max(1e-3), n)
        })
        .collect();
    cfg.service.service_time = Dist::Empirical { points };
    cfg.service.latency_floor_ms = floor;
    Built {
        cfg,
        service_mean,
        floor,
        spread,
    }
}

/// A candidate's model and the parameters it was built with.
struct Built {
    cfg: SimConfig,
    service_mean: f64,
    floor: f64,
    spread: f64,
}

fn quantile(points: &[(f64, u64)], q: f64) -> f64 {
    let total: u64 = points.iter().map(|p| p.1).sum();
    let want = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for &(ms, n) in points {
        seen += n;
        if seen >= want {
            return ms;
        }
    }
    points.last().map_or(0.0, |p| p.0)
}

/// What the model predicts for one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Latency percentiles from the scheduled time, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p95_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// Successful responses per second.
    pub goodput_rps: f64,
    /// Mean latency from the scheduled time, ms.
    pub mean_ms: f64,
}

/// Predicts one step: `replicas` of `cfg` behind round-robin, offered
/// `rate` evenly spaced for `duration_s` from idle, `reps` replications.
pub fn predict(cfg: &SimConfig, m: &Measured, reps: u32) -> Prediction {
    let mut v = cfg.clone();
    v.traffic = Traffic {
        rate: Some(m.offered_rps),
        arrivals: Arrivals::Uniform,
        ..Traffic::default()
    };
    v.autoscaling = None;
    v.service.replicas = m.replicas.max(1);
    v.service.balancer = Balancer::RoundRobin;
    v.service.spot = None;
    let w = Window {
        start_s: 0.0,
        length_ns: (m.duration_s * 1e9) as u64,
        warmup_ns: 0,
        initial_replicas: v.service.replicas,
    };
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .expect("static bounds");
    let mut ok = 0u64;
    for i in 0..reps.max(1) {
        let run = simulate(&v, &w, v.simulation.seed, u64::from(i));
        let _ = h.add(&run.latency_us);
        ok += run.completed;
    }
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1e3;
    Prediction {
        p50_ms: q(0.5),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        goodput_rps: ok as f64 / (m.duration_s * reps.max(1) as f64),
        mean_ms: h.mean() / 1e3,
    }
}

/// Compares a model's predictions with the steps.
pub fn compare(cfg: &SimConfig, steps: &[Measured], p95_slo_ms: f64, reps: u32) -> Vec<StepFit> {
    steps
        .iter()
        .map(|m| {
            let p = predict(cfg, m, reps);
            let (p95, goodput) = (p.p95_ms, p.goodput_rps);
            let rel = |p: f64, x: f64| if x > 0.0 { (p - x) / x } else { 0.0 };
            let saturated =
                |p95: f64, goodput: f64| goodput < BEHIND * m.offered_rps || p95 > p95_slo_ms;
            StepFit {
                offered_rps: m.offered_rps,
                replicas: m.replicas,
                measured_p95_ms: m.p95_ms,
                predicted_p95_ms: p95,
                p95_error: rel(p95, m.p95_ms),
                measured_p50_ms: m.p50_ms,
                measured_p99_ms: m.p99_ms,
                predicted_p50_ms: Some(p.p50_ms),
                predicted_p99_ms: Some(p.p99_ms),
                measured_goodput_rps: m.goodput_rps,
                predicted_goodput_rps: goodput,
                goodput_error: rel(goodput, m.goodput_rps),
                measured_saturated: saturated(m.p95_ms, m.goodput_rps),
                predicted_saturated: saturated(p95, goodput),
            }
        })
        .collect()
}

/// Replications per predicted step.
const REPS: u32 = 6;

/// Scores within this of the best (mean relative error) are a tie.
const TIE: f64 = 0.01;

/// Every candidate model with its score on the `fitted` steps and its
/// settled model, scored in parallel (each on its own, so the result is
/// the same on any number of threads).
fn score_models(
    input: &FitInput<'_>,
    shape: &[(f64, u64)],
    low: &[usize],
    fitted: &[Measured],
) -> Vec<(ModelCandidate, Built)> {
    use rayon::prelude::*;
    let score = |fits: &[StepFit]| {
        fits.iter()
            .map(|f| f.p95_error.abs() + f.goodput_error.abs())
            .sum::<f64>()
            / fits.len().max(1) as f64
    };
    candidate_models(input.base, input.max_workers)
        .into_par_iter()
        .map(|mut m| {
            let built = settled(input, shape, low, &m);
            m.score = score(&compare(&built.cfg, fitted, input.p95_slo_ms, REPS));
            (m, built)
        })
        .collect()
}

/// The best-scoring model, its settled model, and every model tried (in
/// their order). Steps that cannot tell candidates apart (all
/// at low load) leave several within a point of the best: then the
/// smallest floor wins, i.e. the latency is taken to be service time
/// (Little's law at saturation, c = X × R0); then the simpler model: a
/// server per worker before shared cores, no switching cost before one,
/// fewer workers or cores.
fn choose(
    models: Vec<(ModelCandidate, Built)>,
) -> Option<(ModelCandidate, Built, Vec<ModelCandidate>)> {
    let best = models
        .iter()
        .map(|c| c.0.score)
        .fold(f64::INFINITY, f64::min);
    let simpler = |m: &ModelCandidate| {
        (
            m.cores.is_some(),
            m.switch_cost.to_bits(),
            m.workers,
            m.cores,
        )
    };
    let pick = models
        .iter()
        .enumerate()
        .filter(|(_, c)| c.0.score <= best + TIE)
        .min_by(|(_, a), (_, b)| {
            a.1.floor
                .total_cmp(&b.1.floor)
                .then(simpler(&a.0).cmp(&simpler(&b.0)))
        })
        .map(|(i, _)| i)?;
    let all = models.iter().map(|m| m.0.clone()).collect();
    let (chosen, built) = models.into_iter().nth(pick)?;
    Some((chosen, built, all))
}

/// Fits the model to the steps (see the module doc).
pub fn fit(input: &FitInput<'_>) -> Option<Fit> {
    let x = input.capacity_rps;
    if !(x > 0.0 && x.is_finite()) || input.steps.is_empty() {
        return None;
    }
    let shape = shape_source(input)?;
    let total: u64 = shape.iter().map(|p| p.1).sum();
    let low_mean = shape.iter().map(|p| p.0 * p.1 as f64).sum::<f64>() / total.max(1) as f64;
    // Steps below 90% of capacity are fitted on; saturated ones only test
    // the saturation verdict, which every candidate shares (same X).
    let fitted: Vec<Measured> = input
        .steps
        .iter()
        .filter(|m| m.offered_rps < input.fit_below * x * m.replicas as f64)
        .cloned()
        .collect();
    let low = shape_steps(input);
    let (chosen, built, models) = choose(score_models(input, &shape, &low, &fitted))?;
    let candidates: Vec<(u32, f64)> = models
        .iter()
        .filter(|m| m.cores.is_none())
        .map(|m| (m.workers, m.score))
        .collect();
    let Built {
        cfg,
        service_mean: service_mean_ms,
        floor: latency_floor_ms,
        spread,
    } = built;
    let workers = chosen.workers;
    let steps = compare(&cfg, input.steps, input.p95_slo_ms, REPS);
    let within = |f: &&StepFit| f.offered_rps < BELOW_KNEE * x * f.replicas as f64;
    let max_of = |g: fn(&StepFit) -> f64| {
        steps
            .iter()
            .filter(within)
            .map(|f| g(f).abs())
            .fold(0.0, f64::max)
    };
    let family = match chosen.cores {
        None => format!(
            "{workers} FIFO worker(s) per replica, empirical service time scaled to {workers}/capacity, plus a fixed latency floor"
        ),
        Some(c) => format!(
            "{workers} worker(s) per replica sharing {c} core(s) (processor sharing, {:.0}% of throughput lost per runnable request beyond the cores), empirical service time scaled to the cores' capacity, plus a fixed latency floor",
            100.0 * chosen.switch_cost
        ),
    };
    Some(Fit {
        family,
        workers,
        cores: chosen.cores,
        switch_cost: chosen.switch_cost,
        spread,
        models,
        service_mean_ms,
        latency_floor_ms,
        capacity_rps: x,
        low_load_mean_ms: low_mean,
        candidates,
        max_p95_error: max_of(|f| f.p95_error),
        max_goodput_error: max_of(|f| f.goodput_error),
        steps,
        assumes: "replicas are independent: a tier they share (database, cache, host) is not modelled, so capacity scales with replicas".into(),
    })
}

/// The model with a fit applied.
pub fn apply(base: &SimConfig, fit: &Fit, shape: &[(f64, u64)]) -> SimConfig {
    let m = ModelCandidate {
        workers: fit.workers,
        cores: fit.cores,
        switch_cost: fit.switch_cost,
        score: 0.0,
    };
    model(
        base,
        shape,
        fit.capacity_rps,
        &m,
        (Some(fit.latency_floor_ms), fit.spread),
    )
    .cfg
}

/// A candidate's model with its latency floor and spread settled by
/// simulation. The low-load latency is not service time plus a floor
/// alone: those steps already queue a little (several requests sharing a
/// core at 40% load, say), which would otherwise go into the floor and
/// widen the service times. So the steps the shape comes from are
/// simulated without a floor; the floor is the measured mean less the
/// simulated one, and the deviations from the mean shrink by the ratio of
/// the measured to the simulated p95 excess over the mean (never widen).
/// Three rounds, each from the last one's model.
fn settled(input: &FitInput<'_>, shape: &[(f64, u64)], low: &[usize], m: &ModelCandidate) -> Built {
    let x = input.capacity_rps;
    let mut built = model(input.base, shape, x, m, (None, 1.0));
    for _ in 0..3 {
        let mut bare = built.cfg.clone();
        bare.service.latency_floor_ms = 0.0;
        let (mut meas, mut sim, mut n) = ((0.0, 0.0), (0.0, 0.0), 0.0);
        for &i in low {
            let pts = &input.latencies[i];
            let w = pts.iter().map(|p| p.1).sum::<u64>() as f64;
            let p = predict(&bare, &input.steps[i], REPS);
            meas.0 += pts.iter().map(|p| p.0 * p.1 as f64).sum::<f64>();
            meas.1 += w * input.steps[i].p95_ms;
            sim.0 += w * p.mean_ms;
            sim.1 += w * p.p95_ms;
            n += w;
        }
        if n == 0.0 {
            break;
        }
        let (meas_excess, sim_excess) = ((meas.1 - meas.0) / n, (sim.1 - sim.0) / n);
        let spread = if sim_excess > 0.0 && meas_excess > 0.0 {
            (built.spread * meas_excess / sim_excess).clamp(0.05, 1.0)
        } else {
            built.spread
        };
        built = model(
            input.base,
            shape,
            x,
            m,
            (Some((meas.0 - sim.0) / n), spread),
        );
    }
    built
}

/// Switching costs the shared-cores family tries.
const SWITCH_COSTS: [f64; 4] = [0.0, 0.05, 0.1, 0.2];

/// The models to try: a FIFO server per worker for each count of
/// [`worker_candidates`]; and, when the scenario's replica has more than
/// one worker, those workers sharing fewer cores (the scenario's
/// `cores_per_replica` if it gives one, else each count below the
/// workers) at each of [`SWITCH_COSTS`]. A CPU-bound service with 8
/// workers on one core is the second kind: its workers are not servers.
pub fn candidate_models(base: &SimConfig, max_workers: u32) -> Vec<ModelCandidate> {
    let fifo = |workers| ModelCandidate {
        workers,
        cores: None,
        switch_cost: 0.0,
        score: f64::NAN,
    };
    let mut v: Vec<ModelCandidate> = worker_candidates(max_workers)
        .into_iter()
        .map(fifo)
        .collect();
    let w = base.service.workers_per_replica;
    let cores: Vec<u32> = match base.service.cores_per_replica {
        Some(c) if c < w => vec![c],
        Some(_) => vec![],
        None => worker_candidates(w.saturating_sub(1))
            .into_iter()
            .filter(|&c| c < w)
            .collect(),
    };
    for c in cores {
        for switch_cost in SWITCH_COSTS {
            v.push(ModelCandidate {
                cores: Some(c),
                switch_cost,
                ..fifo(w)
            });
        }
    }
    v
}

/// The latency points the shape comes from: the one-replica steps below
/// half of capacity (the lowest-load step if none is), merged, leaving out
/// any whose p95 is more than 1.25× the smallest of them: a stall in one
/// run is not service time. Merging rather than picking the smallest p95
/// keeps the shape free of the bias a minimum over noisy runs has.
pub fn shape_source(input: &FitInput<'_>) -> Option<Vec<(f64, u64)>> {
    let points: Vec<(f64, u64)> = shape_steps(input)
        .into_iter()
        .flat_map(|i| input.latencies[i].iter().copied())
        .collect();
    (!points.is_empty()).then_some(points)
}

/// The steps [`shape_source`] takes its points from.
fn shape_steps(input: &FitInput<'_>) -> Vec<usize> {
    let usable: Vec<usize> = (0..input.steps.len())
        .filter(|&i| input.steps[i].replicas == 1)
        .filter(|&i| !input.latencies.get(i).is_none_or(|l| l.is_empty()))
        .collect();
    let mut low: Vec<usize> = usable
        .iter()
        .copied()
        .filter(|&i| input.steps[i].offered_rps < 0.5 * input.capacity_rps)
        .collect();
    if low.is_empty() {
        low.extend(usable.iter().copied().min_by(|&a, &b| {
            input.steps[a]
                .offered_rps
                .total_cmp(&input.steps[b].offered_rps)
        }));
    }
    let least = low
        .iter()
        .map(|&i| input.steps[i].p95_ms)
        .fold(f64::INFINITY, f64::min);
    low.retain(|&i| input.steps[i].p95_ms <= 1.25 * least);
    low
}

/// 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, ... up to `max`.
fn worker_candidates(max: u32) -> Vec<u32> {
    let mut v = vec![1, 2, 3];
    let mut c = 4;
    while c <= max.max(1) {
        v.push(c);
        v.push(c + c / 2);
        c *= 2;
    }
    v.retain(|&c| c <= max.max(1));
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn base() -> SimConfig {
        SimConfig {
            name: "fit".into(),
            traffic: Traffic {
                rate: Some(10.0),
                ..Traffic::default()
            },
            service: Service {
                replicas: 1,
                workers_per_replica: 1,
                service_time: Dist::Constant { ms: 1.0 },
                queue_limit: None,
                queue_timeout: None,
                balancer: Balancer::RoundRobin,
                cpu_ms_per_request: None,
                latency_floor_ms: 0.0,
                spot: None,
                cores_per_replica: None,
                switch_cost: 0.0,
                memory: None,
            },
            autoscaling: None,
            cost: Cost::default(),
            slo: Slo::default(),
            cache: None,
            simulation: Simulation::default(),
        }
    }

    /// Steps measured by the simulator itself of a known service, offered
    /// `fractions` of `capacity` evenly spaced for 60 s: the steps and
    /// their latency points.
    fn measure(
        truth: &SimConfig,
        capacity: f64,
        fractions: &[f64],
    ) -> (Vec<Measured>, Vec<Vec<(f64, u64)>>) {
        let mut steps = Vec::new();
        let mut latencies = Vec::new();
        for f in fractions {
            let m = Measured {
                offered_rps: f * capacity,
                duration_s: 60.0,
                p95_ms: 0.0,
                p50_ms: None,
                p99_ms: None,
                goodput_rps: 0.0,
                replicas: 1,
            };
            let mut v = truth.clone();
            v.traffic.rate = Some(m.offered_rps);
            v.traffic.arrivals = Arrivals::Uniform;
            let w = Window {
                start_s: 0.0,
                length_ns: 60_000_000_000,
                warmup_ns: 0,
                initial_replicas: 1,
            };
            let run = simulate(&v, &w, 99, 0);
            let h = &run.latency_us;
            latencies.push(
                h.iter_recorded()
                    .map(|x| (x.value_iterated_to() as f64 / 1e3, x.count_at_value()))
                    .collect(),
            );
            steps.push(Measured {
                p95_ms: h.value_at_quantile(0.95) as f64 / 1e3,
                goodput_rps: run.completed as f64 / 60.0,
                ..m
            });
        }
        (steps, latencies)
    }

    fn fit_of(base: &SimConfig, capacity: f64, steps: &[Measured], lat: &[Vec<(f64, u64)>]) -> Fit {
        fit(&FitInput {
            base,
            capacity_rps: capacity,
            latencies: lat,
            steps,
            max_workers: 16,
            p95_slo_ms: 200.0,
            fit_below: 0.9,
        })
        .expect("fits")
    }

    /// Measurements made by the simulator itself of a known service
    /// (4 workers, exponential 20 ms, a 2 ms floor): the fit recovers the
    /// workers, the floor and the capacity, and predicts the steps. The
    /// scenario declares 4 workers, so shared-core models compete too,
    /// and lose.
    #[test]
    fn the_fit_recovers_a_known_service() {
        let mut truth = base();
        truth.service.workers_per_replica = 4;
        truth.service.service_time = Dist::Exponential { mean_ms: 20.0 };
        truth.service.latency_floor_ms = 2.0;
        let capacity = 4.0 / 0.020;
        let (steps, latencies) = measure(&truth, capacity, &[0.2, 0.4, 0.6, 0.8]);
        let mut b = base();
        b.service.workers_per_replica = 4;
        let fit = fit_of(&b, capacity, &steps, &latencies);
        assert!(fit.models.iter().any(|m| m.cores.is_some()));
        assert_eq!((fit.workers, fit.cores), (4, None), "{:?}", fit.models);
        assert!((fit.service_mean_ms - 20.0).abs() < 1e-9);
        // The floor is what the low-load mean has beyond 20 ms of service.
        assert!(
            (fit.latency_floor_ms - 2.0).abs() < 1.5,
            "{}",
            fit.latency_floor_ms
        );
        assert!(fit.max_p95_error < 0.15, "{:?}", fit.steps);
        assert!(fit.max_goodput_error < 0.05, "{:?}", fit.steps);
    }

    /// A CPU-bound service: 4 workers sharing one core, lognormal 4 ms of
    /// CPU each, a 1 ms floor. Its workers are not servers: the fit
    /// chooses the shared core over every FIFO worker count, and predicts
    /// the steps up to 80% within the tolerance `plan` holds it to.
    #[test]
    fn the_fit_finds_workers_sharing_a_core() {
        let mut truth = base();
        truth.service.workers_per_replica = 4;
        truth.service.cores_per_replica = Some(1);
        truth.service.service_time = Dist::Lognormal {
            mean_ms: 4.0,
            p95_ms: 12.0,
        };
        truth.service.latency_floor_ms = 1.0;
        let capacity = 1.0 / 0.004;
        let (steps, latencies) = measure(&truth, capacity, &[0.2, 0.4, 0.6, 0.7, 0.8]);
        let mut b = base();
        b.service.workers_per_replica = 4;
        let fit = fit_of(&b, capacity, &steps, &latencies);
        assert_eq!((fit.workers, fit.cores), (4, Some(1)), "{:?}", fit.models);
        assert_eq!(
            fit.switch_cost,
            0.0,
            "{:#?}",
            (&fit.models, fit.latency_floor_ms, &fit.steps)
        );
        assert!((fit.service_mean_ms - 4.0).abs() < 1e-9);
        assert!(fit.max_p95_error < 0.15, "{:?}", fit.steps);
        assert!(fit.max_goodput_error < 0.05, "{:?}", fit.steps);
        let best_fifo = fit
            .candidates
            .iter()
            .map(|c| c.1)
            .fold(f64::INFINITY, f64::min);
        let chosen = fit
            .models
            .iter()
            .find(|m| m.cores == Some(1) && m.switch_cost == 0.0)
            .unwrap();
        assert!(chosen.score < best_fifo, "{:?}", fit.models);
    }

    /// Workers × service time reproduces the capacity whatever the
    /// candidate: no rounding loses throughput.
    #[test]
    fn every_candidate_keeps_the_measured_capacity() {
        let shape = vec![(3.0, 10), (5.0, 80), (9.0, 10)];
        for c in [1, 3, 7] {
            let m = ModelCandidate {
                workers: c,
                cores: None,
                switch_cost: 0.0,
                score: 0.0,
            };
            let Built {
                cfg,
                service_mean: mean,
                floor,
                ..
            } = model(&base(), &shape, 240.0, &m, (None, 1.0));
            assert!((c as f64 / (mean / 1e3) - 240.0).abs() < 1e-9);
            let s = crate::dist::Sampler::new(&cfg.service.service_time);
            let got = s.mean_ns() / 1e6;
            assert!((got - mean).abs() / mean < 0.02, "c={c}: {got} vs {mean}");
            assert!((0.0..=3.0).contains(&floor));
        }
    }

    /// A 0.5 s stall inside one low-load run (5% of its requests) does not
    /// become service time: the shape leaves that run out, and the fit is
    /// the same as without the stall.
    #[test]
    fn a_stall_in_one_low_load_run_does_not_change_the_fit() {
        let clean = vec![(18.0, 50), (20.0, 400), (25.0, 50)];
        let mut stalled = clean.clone();
        stalled.push((500.0, 25));
        let step = |rate: f64, p95: f64| Measured {
            offered_rps: rate,
            duration_s: 10.0,
            p95_ms: p95,
            p50_ms: None,
            p99_ms: None,
            goodput_rps: rate,
            replicas: 1,
        };
        let b = base();
        let fit_with = |second: &Vec<(f64, u64)>, p95: f64| {
            let lat = vec![clean.clone(), second.clone()];
            let steps = vec![step(20.0, 25.0), step(40.0, p95)];
            let input = FitInput {
                base: &b,
                capacity_rps: 200.0,
                latencies: &lat,
                steps: &steps,
                max_workers: 16,
                p95_slo_ms: 200.0,
                fit_below: 0.9,
            };
            (fit(&input).unwrap(), shape_source(&input).unwrap())
        };
        let (f_clean, s_clean) = fit_with(&clean, 25.0);
        let (f_stall, s_stall) = fit_with(&stalled, 480.0);
        assert!(s_stall.iter().all(|p| p.0 < 100.0), "{s_stall:?}");
        assert_eq!(s_clean.len(), 2 * clean.len());
        assert_eq!(f_stall.workers, f_clean.workers);
        assert!((f_stall.latency_floor_ms - f_clean.latency_floor_ms).abs() < 0.5);
    }

    #[test]
    fn worker_candidates_cover_the_range() {
        assert_eq!(worker_candidates(1), vec![1]);
        assert_eq!(worker_candidates(8), vec![1, 2, 3, 4, 6, 8]);
        assert_eq!(worker_candidates(20), vec![1, 2, 3, 4, 6, 8, 12, 16]);
    }
}
