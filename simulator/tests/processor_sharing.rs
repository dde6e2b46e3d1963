//! Replicas whose workers share fewer cores (processor sharing), against
//! queueing theory the engine does not use:
//! - with exponential service the number in the system is a birth-death
//!   process whose death rate in state `k` is the work rate of
//!   `min(k, workers)` busy requests on the cores; its stationary
//!   distribution, summed here directly, gives the mean response time by
//!   Little's law;
//! - M/G/1-PS is insensitive: the mean response time is `S / (1 - ρ)`
//!   whatever the service-time distribution (constant or lognormal here),
//!   where FIFO with constant service would give `S (1 + ρ / (2(1 - ρ)))`;
//! - the CPU metric is busy cores over cores, so it equals `ρ`.

use std::time::Duration;

use simulator::model::*;

mod common;
use common::within;

const MEAN_MS: f64 = 10.0;

fn shared(
    cores: u32,
    workers: u32,
    switch_cost: f64,
    lambda: f64,
    service: Dist,
    requests: f64,
) -> SimConfig {
    let replications = 4;
    let secs = (requests / lambda / replications as f64).ceil() as u64;
    SimConfig {
        name: format!("{workers} workers on {cores} cores"),
        traffic: Traffic {
            rate: Some(lambda),
            ..Traffic::default()
        },
        service: Service {
            replicas: 1,
            workers_per_replica: workers,
            service_time: service,
            queue_limit: None,
            queue_timeout: None,
            balancer: Balancer::RoundRobin,
            cpu_ms_per_request: None,
            latency_floor_ms: 0.0,
            spot: None,
            cores_per_replica: Some(cores),
            switch_cost,
            memory: None,
        },
        autoscaling: None,
        cost: Cost::default(),
        slo: Slo::default(),
        cache: None,
        simulation: Simulation {
            duration: Duration::from_secs(secs + 60),
            warmup: Duration::from_secs(60),
            seed: 5,
            replications,
            windows: Windows::Monthly,
        },
    }
}

/// Mean response time (s) of the birth-death chain: arrivals `lambda`,
/// and in state `k` completions at `mu × m × speed(m)`, `m = min(k, w)`.
fn birth_death_mean_response(cores: u32, workers: u32, switch_cost: f64, lambda: f64) -> f64 {
    let mu = 1e3 / MEAN_MS;
    let rate = |k: u32| {
        let m = k.min(workers) as f64;
        let c = cores as f64;
        mu * if m <= c {
            m
        } else {
            c / (1.0 + switch_cost * (m - c))
        }
    };
    // Unnormalised p_k up to where the tail is negligible.
    let (mut p, mut total, mut mean_n) = (1.0, 1.0, 0.0);
    for k in 1..200_000u32 {
        p *= lambda / rate(k);
        total += p;
        mean_n += k as f64 * p;
        if p < 1e-16 * total && k > workers {
            break;
        }
    }
    mean_n / total / lambda
}

#[test]
fn shared_cores_match_the_birth_death_chain() {
    // (cores, workers, switch cost, load as a share of the saturated rate)
    for (c, w, a, rho) in [(1, 4, 0.0, 0.8), (2, 8, 0.05, 0.7), (1, 3, 0.1, 0.75)] {
        let saturated = 1e3 / MEAN_MS * c as f64 / (1.0 + a * (w - c) as f64);
        let lambda = rho * saturated;
        let cfg = shared(c, w, a, lambda, Dist::Exponential { mean_ms: MEAN_MS }, 4e6);
        cfg.check().unwrap();
        let f = simulator::forecast(&cfg);
        let want = birth_death_mean_response(c, w, a, lambda) * 1e3;
        within(
            &format!("{w} workers on {c} cores, cost {a}, ρ {rho}: mean"),
            f.latency_ms.mean,
            want,
            0.03,
        );
        assert_eq!(f.errors, 0);
    }
}

#[test]
fn one_shared_core_is_insensitive_to_the_service_distribution() {
    let rho = 0.7;
    let lambda = rho * 1e3 / MEAN_MS;
    let want = MEAN_MS / (1.0 - rho);
    for d in [
        Dist::Constant { ms: MEAN_MS },
        Dist::Lognormal {
            mean_ms: MEAN_MS,
            p95_ms: 3.0 * MEAN_MS,
        },
    ] {
        // Workers enough that the queue in front of them almost never forms.
        let cfg = shared(1, 10_000, 0.0, lambda, d.clone(), 3e6);
        let f = simulator::forecast(&cfg);
        within(
            &format!("M/G/1-PS {d:?}: mean"),
            f.latency_ms.mean,
            want,
            0.03,
        );
    }
}

#[test]
fn the_cpu_metric_counts_busy_cores() {
    // 4 workers on 1 core at 60%: the core is busy 60% of the time, while
    // only about a third of the worker-time is (E[min(k, 4)] / 4).
    let lambda = 0.6 * 1e3 / MEAN_MS;
    let cfg = shared(
        1,
        4,
        0.0,
        lambda,
        Dist::Exponential { mean_ms: MEAN_MS },
        1e6,
    );
    let f = simulator::forecast(&cfg);
    within("CPU of 4 workers on 1 core", f.utilization, 0.6, 0.02);
}

#[test]
fn a_replica_with_shared_cores_has_their_capacity() {
    let mut cfg = shared(
        1,
        4,
        0.0,
        300.0,
        Dist::Exponential { mean_ms: MEAN_MS },
        1e5,
    );
    assert_eq!(cfg.service.servers(), 1.0);
    // 4 busy workers on 1 core, each beyond it costing 10%: 1 / 1.3.
    cfg.service.switch_cost = 0.1;
    assert!((cfg.service.servers() - 1.0 / 1.3).abs() < 1e-12);
    cfg.service.switch_cost = 0.0;
    // An HPA at 70% CPU settles where 300 rps × 10 ms fits in 70% of one
    // core per replica: 5 replicas, not the 2 that 4 workers would give.
    cfg.autoscaling = Some(Autoscaling::Hpa {
        min: 1,
        max: 50,
        target_cpu: 0.7,
        sync_period: Duration::from_secs(15),
        tolerance: 0.1,
        behavior: None,
        provisioning: None,
        cpu_initialization_period: Duration::from_secs(300),
        target_memory: None,
    });
    assert_eq!(simulator::steady_replicas(&cfg, 300.0), 5);
    cfg.service.cores_per_replica = None;
    assert_eq!(simulator::steady_replicas(&cfg, 300.0), 2);
}

#[test]
fn the_same_seed_gives_the_same_shared_run() {
    let cfg = shared(
        2,
        6,
        0.02,
        150.0,
        Dist::Exponential { mean_ms: MEAN_MS },
        2e5,
    );
    let a = simulator::forecast(&cfg);
    let b = simulator::forecast(&cfg);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}
