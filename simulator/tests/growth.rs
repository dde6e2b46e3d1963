//! A growth horizon end to end: windows at each period's peak, users and
//! rates where the traffic model puts them, and the crossings a capacity
//! planner reads ("p95 exceeds 200 ms at about N users with max = M").

use std::time::Duration;

use simulator::model::*;

fn growth(max: u32) -> SimConfig {
    SimConfig {
        name: "growth".into(),
        traffic: Traffic {
            users: Some(Users {
                start: 1000.0,
                end: 200_000.0,
                over: Duration::from_secs(63 * 86_400),
                curve: Curve::Exponential,
            }),
            requests_per_user_per_s: Some(0.02),
            daily_peak_to_trough: 3.0,
            ..Traffic::default()
        },
        service: Service {
            replicas: 2,
            workers_per_replica: 8,
            service_time: Dist::Lognormal {
                mean_ms: 40.0,
                p95_ms: 100.0,
            },
            queue_limit: Some(200),
            queue_timeout: Some(Duration::from_secs(10)),
            balancer: Balancer::LeastOutstanding,
            cpu_ms_per_request: None,
            latency_floor_ms: 0.0,
            spot: None,
            cores_per_replica: None,
            switch_cost: 0.0,
            memory: None,
        },
        autoscaling: Some(Autoscaling::Hpa {
            min: 2,
            max,
            target_cpu: 0.7,
            sync_period: Duration::from_secs(15),
            tolerance: 0.1,
            behavior: None,
            provisioning: None,
            cpu_initialization_period: Duration::from_secs(300),
            target_memory: None,
        }),
        cost: Cost {
            replica_hourly: 0.192,
        },
        slo: Slo { p95_ms: 200.0 },
        cache: None,
        simulation: Simulation {
            duration: Duration::from_secs(900),
            warmup: Duration::from_secs(300),
            seed: 9,
            replications: 2,
            windows: Windows::Weekly,
        },
    }
}

#[test]
fn weekly_windows_follow_the_users_and_report_crossings() {
    let cfg = growth(10);
    cfg.check().unwrap();
    let f = simulator::forecast(&cfg);
    assert_eq!(f.windows.len(), 9, "63 days in weeks");
    assert!(
        f.simulated.contains("9 windows") && f.simulated.contains("busiest day of each week"),
        "{}",
        f.simulated
    );
    // Users grow exponentially; each window sits at its week's daily peak
    // (1.5× the mean at 0.02 requests per user per second).
    for w in &f.windows {
        assert!(
            (w.offered_rps / (w.users * 0.02 * 1.5) - 1.0).abs() < 0.02,
            "{}: {} rps for {} users",
            w.label,
            w.offered_rps,
            w.users
        );
    }
    assert!(f.windows.windows(2).all(|p| p[1].users > p[0].users));
    // 10 replicas × 8 workers at 40 ms carry 2000 rps flat out; 200k users
    // offer 6000 at the peak: the cap is reached, then p95 breaks.
    let cap = f
        .crossings
        .iter()
        .find(|c| c.threshold == "replicas = max (10)")
        .expect("max reached");
    let p95 = f
        .crossings
        .iter()
        .find(|c| c.threshold == "p95 > 200 ms")
        .expect("p95 broken");
    assert!(
        cap.users < p95.users,
        "cap at {} users, p95 at {}",
        cap.users,
        p95.users
    );
    // At 70% of 2000 rps, 1400 rps ≈ 47k users at the peak: the cap comes near there.
    assert!(
        (25_000.0..60_000.0).contains(&cap.users),
        "cap at {} users",
        cap.users
    );
    assert!(
        p95.note.contains("p95 exceeds 200 ms at about")
            && p95.note.contains("with max = 10 replicas"),
        "{}",
        p95.note
    );
    assert!(
        f.errors > 0,
        "an overloaded fleet rejects or times out requests"
    );
    // Without the cap nothing breaks.
    let free = simulator::forecast(&growth(60));
    assert!(
        free.crossings.iter().all(|c| c.threshold != "p95 > 200 ms"),
        "{:?}",
        free.crossings
    );
    let cost = free.horizon_cost_estimate.unwrap();
    assert!(cost > 0.0);
}

/// A Redis of 256 MB in front of the database, 2 KB a key, 5 keys per
/// user: 131,072 keys fit (256 × 1024 / 2), so the working set outgrows
/// it at 26,214 users.
/// Each window's cache is Che's LRU at its users and peak rate; the
/// crossing is interpolated to that user count, and the hit ratio's fall
/// below 0.8 comes later.
#[test]
fn the_cache_tier_runs_out_where_the_working_set_outgrows_it() {
    let mut cfg = growth(50);
    cfg.cache = Some(Cache {
        memory_mb: 256.0,
        object_kb: 2.0,
        keys: None,
        keys_per_user: Some(5.0),
        zipf: 0.9,
        lookups_per_request: 1.0,
        min_hit_ratio: Some(0.8),
    });
    cfg.check().unwrap();
    let f = simulator::forecast(&cfg);
    let caches: Vec<&simulator::forecast::CacheWindow> = f
        .windows
        .iter()
        .map(|w| w.cache.as_ref().unwrap())
        .collect();
    for (w, c) in f.windows.iter().zip(&caches) {
        assert!((c.keys - 5.0 * w.users).abs() < 1e-6 * c.keys);
        let want = simulator::cache::lru(
            &simulator::cache::Popularity {
                keys: c.keys,
                zipf: 0.9,
            },
            131_072.0,
        );
        assert_eq!(c.hit_ratio, want.hit_ratio);
        assert!((c.database_reads_per_s - w.offered_rps * (1.0 - c.hit_ratio)).abs() < 1e-9);
        assert!(c.memory_used_mb <= 256.0 + 1e-9);
        assert_eq!(c.evictions_per_s > 0.0, c.keys > 131_072.0, "{}", w.label);
        // The memory that keeps 0.8 gives 0.8 (or the working set, if less is never enough).
        let needed_keys = c.memory_needed_mb.unwrap() * 1024.0 / 2.0;
        let at = simulator::cache::lru(
            &simulator::cache::Popularity {
                keys: c.keys,
                zipf: 0.9,
            },
            needed_keys,
        );
        assert!(
            (at.hit_ratio - 0.8).abs() < 1e-6 || needed_keys >= c.keys.floor(),
            "{}",
            w.label
        );
    }
    // The hit ratio only falls as the users grow.
    assert!(caches.windows(2).all(|p| p[1].hit_ratio <= p[0].hit_ratio));
    let full = f
        .crossings
        .iter()
        .find(|c| c.threshold == "cache working set > 256 MB")
        .expect("the cache runs out");
    // Linear between windows in users, and the working set is linear in them.
    assert!((full.users - 26_214.4).abs() < 1.0, "{}", full.users);
    let low = f
        .crossings
        .iter()
        .find(|c| c.threshold == "cache hit ratio < 0.8")
        .expect("the hit ratio falls below 0.8");
    assert!(low.users > full.users && low.day > full.day);
    assert!(low.note.contains("of the working set held"), "{}", low.note);
    // A scenario without a cache has none.
    let plain = simulator::forecast(&growth(50));
    assert!(plain.windows.iter().all(|w| w.cache.is_none()));
    assert!(
        plain
            .crossings
            .iter()
            .all(|c| !c.threshold.starts_with("cache"))
    );
}

/// Memory per replica: each window's utilisation is the base plus the
/// requests in a replica against the limit, and it crosses 80% once the
/// capped fleet (max 10) queues: 8 workers busy and 7 waiting is 82.5%.
#[test]
fn memory_per_replica_crosses_its_bound_when_the_fleet_queues() {
    let mut cfg = growth(10);
    cfg.service.memory = Some(Memory {
        base_mb: 100.0,
        per_request_mb: 50.0,
        limit_mb: 1000.0,
    });
    cfg.check().unwrap();
    let f = simulator::forecast(&cfg);
    let mem: Vec<f64> = f
        .windows
        .iter()
        .map(|w| w.memory_utilization.as_ref().unwrap().mean)
        .collect();
    // Idle it is the base; never more than base + the queue limit's worth.
    assert!(
        mem.iter()
            .all(|m| (0.1..=(100.0 + 50.0 * 208.0) / 1000.0).contains(m))
    );
    assert!(mem[0] < 0.8, "{mem:?}");
    let over = f
        .crossings
        .iter()
        .find(|c| c.threshold == "memory > 80%")
        .expect("memory crosses 80%");
    let cpu = f
        .crossings
        .iter()
        .find(|c| c.threshold == "CPU > 70%")
        .unwrap();
    assert!(over.day >= cpu.day, "{over:?} before {cpu:?}");
    // The capped fleet also sheds requests (queue limit 200, 10 s
    // timeout): the runbook's error alert is a crossing, at the first
    // window over 1%.
    let errors = f
        .crossings
        .iter()
        .find(|c| c.threshold == "error rate > 1%")
        .expect("errors pass 1%");
    let first = f
        .windows
        .iter()
        .position(|w| w.error_rate.mean > 0.01)
        .unwrap();
    assert!(
        errors.day <= f.windows[first].day
            && (first == 0 || errors.day >= f.windows[first - 1].day)
    );
    let plain = simulator::forecast(&growth(10));
    assert!(plain.windows.iter().all(|w| w.memory_utilization.is_none()));
}
