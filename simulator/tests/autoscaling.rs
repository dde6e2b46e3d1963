//! Autoscaling inside the engine: a step in load reaches the replica counts
//! Kubernetes' rules give, at the sync times they give, and scale-down waits
//! for the stabilization window.

use std::time::Duration;

use simulator::engine::{Window, simulate};
use simulator::model::*;

fn stepped(autoscaling: Autoscaling) -> SimConfig {
    SimConfig {
        name: "step".into(),
        traffic: Traffic {
            rate: Some(100.0),
            // ×3 from minute 10 to minute 20.
            flash_crowds: vec![FlashCrowd {
                at: Duration::from_secs(600),
                duration: Duration::from_secs(600),
                multiplier: 3.0,
            }],
            ..Traffic::default()
        },
        service: Service {
            replicas: 10,
            workers_per_replica: 1,
            service_time: Dist::Constant { ms: 50.0 },
            queue_limit: None,
            queue_timeout: None,
            balancer: Balancer::LeastOutstanding,
            cpu_ms_per_request: None,
            latency_floor_ms: 0.0,
            spot: None,
            cores_per_replica: None,
            switch_cost: 0.0,
            memory: None,
        },
        autoscaling: Some(autoscaling),
        cost: Cost {
            replica_hourly: 1.0,
        },
        slo: Slo::default(),
        cache: None,
        simulation: Simulation {
            duration: Duration::from_secs(1800),
            warmup: Duration::from_secs(60),
            ..Simulation::default()
        },
    }
}

/// An HPA at a 50% CPU target with Kubernetes' defaults (15 s sync, 0.1
/// tolerance, no behavior, a 5-minute CPU initialization period).
fn hpa(min: u32, max: u32, provisioning_ms: Option<f64>) -> Autoscaling {
    Autoscaling::Hpa {
        min,
        max,
        target_cpu: 0.5,
        sync_period: Duration::from_secs(15),
        tolerance: 0.1,
        behavior: None,
        provisioning: provisioning_ms.map(|ms| Dist::Constant { ms }),
        cpu_initialization_period: Duration::from_secs(300),
        target_memory: None,
    }
}

/// The runbook's threshold rule: over `cpu` (or the memory or p95 bound)
/// for 10 minutes adds one replica, then a 5-minute cooldown; no scale-down.
fn runbook(cpu: f64, memory: Option<f64>, p95_ms: Option<f64>) -> Autoscaling {
    Autoscaling::Threshold {
        min: 2,
        max: 100,
        scale_up: Step {
            cpu,
            memory,
            p95_ms,
            lasting: Duration::from_secs(600),
            step: 1,
        },
        scale_down: None,
        cooldown: Duration::from_secs(300),
        provisioning: None,
    }
}

/// Every minute in `minutes` had exactly `want` replicas ready.
fn steady(ready: &[f64], minutes: std::ops::Range<usize>, want: f64) {
    for (m, r) in ready
        .iter()
        .enumerate()
        .take(minutes.end)
        .skip(minutes.start)
    {
        assert!(
            (r - want).abs() < 1e-9,
            "minute {m}: {r} ready, want {want}"
        );
    }
}

fn ready_by_minute(cfg: &SimConfig) -> Vec<f64> {
    cfg.check().unwrap();
    let w = Window {
        start_s: 0.0,
        length_ns: 1800 * 1_000_000_000,
        warmup_ns: 60_000_000_000,
        initial_replicas: 10,
    };
    simulate(cfg, &w, 1, 0)
        .minutes
        .iter()
        .map(|m| m.ready)
        .collect()
}

#[test]
fn hpa_step_reaches_its_count_at_the_next_sync_and_waits_five_minutes_to_scale_down() {
    // 1 worker at 50 ms and a 50% target: 10 rps per replica at target,
    // so 100 rps sits at 10 replicas (ratio 1.0).
    let mut cfg = stepped(hpa(2, 100, None));
    cfg.traffic.flash_crowds[0].multiplier = 1.75;
    let ready = ready_by_minute(&cfg);
    steady(&ready, 1..10, 10.0);
    // 175 rps from 600 s: CPU 87.5%, ratio 1.75, ceil(17.5) = 18 at the
    // sync at 615 s (within the 2× cap); then CPU 48.6% is inside the band.
    let want10 = (15.0 * 10.0 + 45.0 * 18.0) / 60.0;
    assert!(
        (ready[10] - want10).abs() < 1e-6,
        "minute 10: {} want {want10}",
        ready[10]
    );
    // Back to 100 rps at 1200 s: recommendations of 18 made up to 1200 s
    // hold it for 300 s; the sync at 1500 s scales down (to 10, or 11 when
    // the sampled CPU lands a hair over 27.8%).
    steady(&ready, 11..25, 18.0);
    assert!(ready[26] <= 11.0 + 1e-9, "minute 26: {}", ready[26]);
}

#[test]
fn hpa_saturated_step_doubles_per_sync_under_the_legacy_cap() {
    let cfg = stepped(hpa(2, 100, None));
    let ready = ready_by_minute(&cfg);
    // 300 rps on 10 replicas saturates them (CPU 100%, ratio 2): 20 at
    // 615 s. The queue built meanwhile keeps CPU at 100% to 630 s: 40 (the
    // cap is 2× current), then the 5-minute window holds 40.
    let want10 = (15.0 * 10.0 + 15.0 * 20.0 + 30.0 * 40.0) / 60.0;
    assert!(
        (ready[10] - want10).abs() < 1e-6,
        "minute 10: {} want {want10}",
        ready[10]
    );
    steady(&ready, 11..15, 40.0);
}

#[test]
fn runbook_rule_waits_ten_minutes_above_70_percent() {
    // 300 rps on 10 single-worker replicas at 50 ms: CPU 100% from minute 10.
    let cfg = stepped(runbook(0.7, None, None));
    let ready = ready_by_minute(&cfg);
    // Datapoints each minute; minutes 11..=20 are above 70%: the 10th, at
    // 1200 s, adds one server. Nothing before.
    steady(&ready, 1..20, 10.0);
    assert!((ready[20] - 11.0).abs() < 1e-9, "minute 20: {}", ready[20]);
}

/// The runbook's memory rule. 130 rps from minute 10 keeps CPU at 65%,
/// under the 70% bound. Memory is a 400 MB base plus 2,000 MB for each
/// request in the replica (one that loads a large document), against a
/// 2,000 MB limit: in-flight 0.65 per replica (least-outstanding
/// balancing keeps queues short) is 85%, over the 80% bound, where 100 rps
/// (0.5) was 70%. Ten minutes over adds a server at 1200 s, as the CPU
/// rule does; without the memory bound nothing happens.
#[test]
fn runbook_memory_rule_adds_a_server_after_ten_minutes_over_80_percent() {
    let rule = |memory| runbook(0.7, memory, None);
    let mut cfg = stepped(rule(Some(0.8)));
    cfg.traffic.flash_crowds[0].multiplier = 1.3;
    cfg.service.memory = Some(Memory {
        base_mb: 400.0,
        per_request_mb: 2000.0,
        limit_mb: 2000.0,
    });
    let ready = ready_by_minute(&cfg);
    steady(&ready, 1..20, 10.0);
    assert!((ready[20] - 11.0).abs() < 1e-9, "minute 20: {}", ready[20]);
    cfg.autoscaling = Some(rule(None));
    let ready = ready_by_minute(&cfg);
    steady(&ready, 1..30, 10.0);
    // A memory bound with no memory to take it against is bad input.
    cfg.autoscaling = Some(rule(Some(0.8)));
    cfg.service.memory = None;
    let e = cfg.check().unwrap_err().to_string();
    assert!(
        e.contains("[autoscaling] scale_up memory needs [service] memory"),
        "{e}"
    );
}

/// An HPA with a memory metric beside CPU takes the larger
/// recommendation, as upstream does with several metrics. Memory is 1,000
/// MB per request in a pod against a 1,000 MB limit, so it is the
/// requests in a pod: evenly spaced arrivals onto 10 single-worker pods at
/// 50 ms give exactly ρ. 100 rps is 50% (target 50%: hold 10, where CPU
/// at a 90% target alone would want 6); 125 rps from 600 s is 62.5%, ratio
/// 1.25, so the sync at 615 s goes to ceil(12.5) = 13, and 13 then sit at
/// 48%, inside the tolerance.
#[test]
fn hpa_with_a_memory_target_scales_on_the_larger_recommendation() {
    let with_memory = |target_memory| Autoscaling::Hpa {
        min: 2,
        max: 100,
        target_cpu: 0.9,
        sync_period: Duration::from_secs(15),
        tolerance: 0.1,
        behavior: None,
        provisioning: None,
        cpu_initialization_period: Duration::from_secs(300),
        target_memory,
    };
    let mut cfg = stepped(with_memory(Some(0.5)));
    cfg.traffic.arrivals = Arrivals::Uniform;
    cfg.traffic.flash_crowds[0].multiplier = 1.25;
    cfg.service.memory = Some(Memory {
        base_mb: 0.0,
        per_request_mb: 1000.0,
        limit_mb: 1000.0,
    });
    let ready = ready_by_minute(&cfg);
    steady(&ready, 1..10, 10.0);
    let want10 = (15.0 * 10.0 + 45.0 * 13.0) / 60.0;
    assert!(
        (ready[10] - want10).abs() < 1e-6,
        "minute 10: {} want {want10}",
        ready[10]
    );
    steady(&ready, 11..20, 13.0);
    // The hourly steady state agrees: memory wants 125 × 0.05 / 0.5 = 12.5
    // pods' worth, CPU 7.
    assert_eq!(simulator::steady_replicas(&cfg, 125.0), 13);
    // CPU alone at a 90% target lets the fleet shrink below 10 before the crowd.
    cfg.autoscaling = Some(with_memory(None));
    let ready = ready_by_minute(&cfg);
    assert!(ready[8] < 10.0, "{ready:?}");
    // A memory target without memory to take it against is bad input.
    cfg.autoscaling = Some(with_memory(Some(0.5)));
    cfg.service.memory = None;
    let e = cfg.check().unwrap_err().to_string();
    assert!(
        e.contains("[autoscaling] target_memory needs [service] memory"),
        "{e}"
    );
}

/// The runbook's response-time rule as a scale-up bound: 300 rps from
/// minute 10 saturates the 10 replicas, so each minute's p95 passes 200 ms
/// (at 100 rps it is about 50 ms). The CPU bound of 1.0 never fires, so
/// the server added at 1200 s, the tenth datapoint over, is p95's.
#[test]
fn runbook_p95_rule_adds_a_server_after_ten_minutes_over_200_ms() {
    let rule = |p95_ms| runbook(1.0, None, p95_ms);
    let ready = ready_by_minute(&stepped(rule(Some(200.0))));
    steady(&ready, 1..20, 10.0);
    assert!((ready[20] - 11.0).abs() < 1e-9, "minute 20: {}", ready[20]);
    let ready = ready_by_minute(&stepped(rule(None)));
    steady(&ready, 1..30, 10.0);
    let e = stepped(rule(Some(-1.0))).check().unwrap_err().to_string();
    assert!(
        e.contains("[autoscaling] scale_up p95_ms must be > 0"),
        "{e}"
    );
}

#[test]
fn provisioning_delay_holds_new_replicas_out_of_service() {
    let cfg = stepped(hpa(2, 100, Some(120_000.0)));
    let ready = ready_by_minute(&cfg);
    // The replicas asked for at 615 s serve from 735 s: minute 11 still has 10 ready.
    assert!((ready[11] - 10.0).abs() < 1e-9, "minute 11: {}", ready[11]);
    assert!(ready[13] > 19.0, "minute 13: {}", ready[13]);
}

fn fixed(spot: Option<Spot>, service_ms: f64, rate: f64, provisioning_ms: f64) -> SimConfig {
    let mut cfg = stepped(hpa(10, 10, Some(provisioning_ms)));
    cfg.traffic = Traffic {
        rate: Some(rate),
        ..Traffic::default()
    };
    cfg.service.service_time = Dist::Constant { ms: service_ms };
    cfg.service.spot = spot;
    cfg
}

#[test]
fn spot_interruptions_replace_replicas_and_lose_work_longer_than_the_notice() {
    let spot = Spot {
        share: 1.0,
        interruptions_per_hour: 4.0,
        notice: Duration::from_secs(120),
    };
    // Short requests drain within the 2-minute notice: nothing lost, but a
    // replacement takes 3 minutes to boot, so fewer than 10 serve at times.
    let cfg = fixed(Some(spot.clone()), 50.0, 100.0, 180_000.0);
    let w = Window {
        start_s: 0.0,
        length_ns: 1800 * 1_000_000_000,
        warmup_ns: 60_000_000_000,
        initial_replicas: 10,
    };
    let run = simulate(&cfg, &w, 1, 0);
    assert_eq!(run.errors, 0);
    assert!(
        run.minutes.iter().any(|m| m.ready < 10.0 - 1e-9),
        "no interruption took a replica out"
    );
    assert!(
        run.minutes.iter().all(|m| m.replicas >= 10.0 - 1e-9),
        "replacements keep 10 in existence"
    );
    // 5-minute requests outlive the notice: those in flight are lost.
    let long = fixed(Some(spot), 300_000.0, 0.02, 0.0);
    let run = simulate(&long, &w, 1, 0);
    assert!(run.errors > 0, "in-flight work was not lost");
    assert!(run.completed > 0);
    // Without spot, nothing is lost.
    assert_eq!(
        simulate(&fixed(None, 300_000.0, 0.02, 0.0), &w, 1, 0).errors,
        0
    );
}

#[test]
fn target_tracking_warmup_leaves_new_instances_out_of_the_metric() {
    // Saturating step with least-outstanding balancing: new, idle instances
    // take the new arrivals while the old ones work off their queues. With
    // the new ones left out, the metric shows the hot old ones and target
    // tracking keeps scaling out.
    let tt = |warmup: u64| {
        stepped(Autoscaling::TargetTracking {
            min: 2,
            max: 100,
            // 100 rps on 10 replicas is 50% CPU: clearly under 60%.
            target_cpu: 0.6,
            warmup: Duration::from_secs(warmup),
            provisioning: None,
        })
    };
    let without = ready_by_minute(&tt(0));
    let with = ready_by_minute(&tt(600));
    steady(&without, 1..12, 10.0);
    steady(&with, 1..12, 10.0);
    // Third datapoint above target at 780 s: ceil(10 × 1.0 / 0.6) = 17 in both.
    steady(&without, 13..14, 17.0);
    steady(&with, 13..14, 17.0);
    let (a, b) = (without[19], with[19]);
    assert!(b > a, "with warm-up {b} replicas at minute 19, without {a}");
}

/// Upstream's CPU initialization period: a pod that became ready less than
/// one metric window before a sync is not ready to that sync. 300 rps on
/// 10 single-worker replicas at 50 ms saturates them (ratio 2); the
/// backlog keeps every replica busy until about 670 s.
#[test]
fn hpa_ignores_pods_ready_for_less_than_a_metric_window() {
    let hpa = |init_s: u64| {
        let mut a = hpa(2, 100, Some(20_000.0));
        if let Autoscaling::Hpa {
            cpu_initialization_period,
            ..
        } = &mut a
        {
            *cpu_initialization_period = Duration::from_secs(init_s);
        }
        stepped(a)
    };
    let ready = ready_by_minute(&hpa(300));
    // 615 s: 10 → 20 (the 2× cap), ready at 635 s. 630 s: 10 starting count
    // at 0%, ratio 2 × 10/20 = 1: hold. 645 s: the 10 new pods have been
    // ready for 10 s, under one 15 s window: still not ready, so again
    // ratio 1: hold. 660 s: all 20 count, at 100%: 40, ready at 680 s.
    let golden = [
        (10, (35.0 * 10.0 + 25.0 * 20.0) / 60.0),
        (11, (20.0 * 20.0 + 40.0 * 40.0) / 60.0),
        (12, 40.0),
    ];
    for (m, want) in golden {
        assert!(
            (ready[m] - want).abs() < 1e-9,
            "minute {m}: {} ready, want {want}",
            ready[m]
        );
    }
    // Counting them at 645 s (no initialization period) scales to 40 a
    // sync early: 40 ready from 665 s, so minute 11 has more.
    let early = ready_by_minute(&hpa(0));
    assert!(
        early[11] >= (5.0 * 20.0 + 55.0 * 40.0) / 60.0 - 1e-9,
        "minute 11: {}",
        early[11]
    );
}

/// A warm-up that ends inside a minute: the statistics count from its end,
/// not from the next whole minute. One fixed replica is one replica on
/// average, and it is paid for the whole counted time.
#[test]
fn a_warm_up_inside_a_minute_counts_the_rest_of_that_minute() {
    let mut cfg = stepped(hpa(1, 1, None));
    cfg.traffic = Traffic {
        rate: Some(5.0),
        ..Traffic::default()
    };
    cfg.simulation.duration = Duration::from_secs(600);
    cfg.simulation.warmup = Duration::from_secs(90);
    cfg.check().unwrap();
    let f = simulator::forecast::forecast(&cfg);
    assert!(
        (f.replicas.mean - 1.0).abs() < 1e-12,
        "mean {}",
        f.replicas.mean
    );
    // 510 s counted at 1.0 an hour, in each replication.
    assert!((f.cost - 510.0 / 3600.0).abs() < 1e-9, "cost {}", f.cost);
    // Requests that arrived after 90 s are in the latency: about 5 × 510.
    let w = Window {
        start_s: 0.0,
        length_ns: 600_000_000_000,
        warmup_ns: 90_000_000_000,
        initial_replicas: 1,
    };
    let run = simulate(&cfg, &w, 1, 0);
    assert_eq!(run.latency_us.len(), run.completed);
}
