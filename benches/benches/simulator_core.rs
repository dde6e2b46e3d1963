//! The discrete-event core on one core: events per second of a fixed
//! window (M/M/32 at 80%, the shipped scenario's service under HPA at
//! its 200k-user peak, and workers sharing cores), and the event queue
//! against std's BinaryHeap.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use simulator::engine::{Window, simulate};
use simulator::model::*;
use simulator::queue::EventQueue;

fn config(rate: f64, workers: u32, service: Dist, autoscaling: Option<Autoscaling>) -> SimConfig {
    SimConfig {
        name: "bench".into(),
        traffic: Traffic {
            rate: Some(rate),
            ..Traffic::default()
        },
        service: Service {
            replicas: 1,
            workers_per_replica: workers,
            service_time: service,
            queue_limit: None,
            queue_timeout: None,
            balancer: Balancer::Random,
            cpu_ms_per_request: None,
            latency_floor_ms: 0.0,
            spot: None,
            cores_per_replica: None,
            switch_cost: 0.0,
            memory: None,
        },
        autoscaling,
        cost: Cost::default(),
        slo: Slo::default(),
        cache: None,
        simulation: Simulation::default(),
    }
}

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("des");
    g.sample_size(10);
    let mmc = config(2560.0, 32, Dist::Exponential { mean_ms: 10.0 }, None);
    let peak = config(
        6000.0,
        8,
        Dist::Lognormal {
            mean_ms: 40.0,
            p95_ms: 100.0,
        },
        Some(Autoscaling::Hpa {
            min: 2,
            max: 50,
            target_cpu: 0.7,
            sync_period: Duration::from_secs(15),
            tolerance: 0.1,
            behavior: None,
            provisioning: None,
            cpu_initialization_period: Duration::from_secs(300),
            target_memory: None,
        }),
    );
    // 8 workers sharing 2 cores (processor sharing) at 80% of the cores.
    let mut shared = config(1600.0, 8, Dist::Exponential { mean_ms: 10.0 }, None);
    shared.service.cores_per_replica = Some(2);
    for (name, cfg, replicas) in [
        ("M/M/32 at 80%, 10 min", &mmc, 1),
        ("6000 rps, HPA, 43 pods, 10 min", &peak, 43),
        (
            "8 workers sharing 2 cores at 80%, 10 pods, 10 min",
            &shared,
            10,
        ),
    ] {
        let w = Window {
            start_s: 0.0,
            length_ns: 600_000_000_000,
            warmup_ns: 60_000_000_000,
            initial_replicas: replicas,
        };
        let events = simulate(cfg, &w, 1, 0).events;
        g.throughput(Throughput::Elements(events));
        g.bench_function(name, |b| b.iter(|| simulate(black_box(cfg), &w, 1, 0)));
    }
    g.finish();
}

fn queue(c: &mut Criterion) {
    // Hold ~350 pending departures (43 pods × 8 workers) and cycle pop+push.
    let gaps: Vec<u64> = (0..100_000u64)
        .map(|i| 1 + (i * 2_654_435_761) % 80_000_000)
        .collect();
    let mut g = c.benchmark_group("event queue, 350 pending");
    g.throughput(Throughput::Elements(gaps.len() as u64));
    g.bench_function("EventQueue (key-only ordering)", |b| {
        b.iter(|| {
            let mut q = EventQueue::default();
            for (i, gap) in gaps.iter().take(350).enumerate() {
                q.push(*gap, i as u32);
            }
            for gap in &gaps {
                let (t, v) = q.pop().unwrap();
                q.push(t + gap, v);
            }
            q.len()
        })
    });
    g.bench_function("std BinaryHeap of (time, payload) tuples", |b| {
        b.iter(|| {
            let mut q = std::collections::BinaryHeap::new();
            for (i, gap) in gaps.iter().take(350).enumerate() {
                q.push(std::cmp::Reverse((*gap, i as u32)));
            }
            for gap in &gaps {
                let std::cmp::Reverse((t, v)) = q.pop().unwrap();
                q.push(std::cmp::Reverse((t + gap, v)));
            }
            q.len()
        })
    });
    g.finish();
}

criterion_group!(benches, engine, queue);
criterion_main!(benches);
