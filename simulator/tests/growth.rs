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
        }),
        cost: Cost {
            replica_hourly: 0.192,
        },
        slo: Slo { p95_ms: 200.0 },
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
