//! The optimizer against brute force, random instances and trivial cases.
use optimizer::{Catalog, Constraints, Demand, InstanceType, Plan, optimize};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn ty(
    name: &str,
    vcpu: f64,
    mem: f64,
    od: f64,
    r1: Option<f64>,
    r3: Option<f64>,
    spot: Option<f64>,
) -> InstanceType {
    InstanceType {
        provider: "test".into(),
        region: "r".into(),
        instance_type: name.into(),
        vcpu,
        memory_gib: mem,
        on_demand_hourly: od,
        reserved_1y_hourly: r1,
        reserved_3y_hourly: r3,
        spot_hourly: spot,
        spot_interruption: None,
        arch: None,
    }
}

fn catalog(types: Vec<InstanceType>) -> Catalog {
    Catalog {
        notes: vec![],
        types,
    }
}

fn d(vcpu: f64, mem: f64) -> Demand {
    Demand {
        vcpu,
        memory_gib: mem,
    }
}

/// Every hour covered, spot share and survive rule held, integer counts,
/// cost re-added from the lines, and never below the lower bound.
fn check(plan: &Plan, cat: &Catalog, demand: &[Demand], o: &Constraints) {
    let h = demand.len();
    let find = |n: &str| cat.types.iter().find(|t| t.instance_type == n).unwrap();
    let mut cost = 0.0;
    for (hr, dem) in demand.iter().enumerate() {
        let (mut v, mut m, mut sv) = (0.0, 0.0, 0.0);
        let mut spot_pools: Vec<(f64, f64)> = vec![];
        for l in &plan.instances {
            let t = find(&l.instance_type);
            let n = l
                .count
                .unwrap_or_else(|| l.hourly_counts.as_ref().unwrap()[hr])
                as f64;
            v += n * t.vcpu;
            m += n * t.memory_gib;
            if l.pricing == "spot" {
                sv += n * t.vcpu;
                spot_pools.push((n * t.vcpu, n * t.memory_gib));
            }
        }
        let dv = dem.vcpu * (1.0 + o.headroom);
        let dm = dem.memory_gib * (1.0 + o.headroom);
        assert!(
            v + 1e-6 >= dv && m + 1e-6 >= dm,
            "hour {hr}: {v} vCPU {m} GiB < {dv} {dm}"
        );
        assert!(
            sv <= o.spot_max_share * v + 1e-6,
            "hour {hr}: spot {sv} of {v}"
        );
        if o.survive_spot_loss {
            for (pv, pm) in spot_pools {
                assert!(
                    v - pv + 1e-6 >= dv && m - pm + 1e-6 >= dm,
                    "hour {hr}: losing a spot pool uncovers demand"
                );
            }
        }
    }
    for l in &plan.instances {
        let t = find(&l.instance_type);
        let price = match l.pricing.as_str() {
            "reserved_1y" => t.reserved_1y_hourly.unwrap(),
            "reserved_3y" => t.reserved_3y_hourly.unwrap(),
            "on_demand" => t.on_demand_hourly,
            "spot" => t.spot_hourly.unwrap(),
            p => panic!("pricing {p}"),
        };
        cost += match l.count {
            Some(n) => n as f64 * price * h as f64,
            None => l
                .hourly_counts
                .as_ref()
                .unwrap()
                .iter()
                .map(|&n| n as f64 * price)
                .sum(),
        };
    }
    assert!(
        (cost - plan.total_cost).abs() < 1e-6 * cost.max(1.0),
        "{cost} vs {}",
        plan.total_cost
    );
    assert!(
        plan.total_cost + 1e-6 >= plan.lower_bound,
        "cost {} below bound {}",
        plan.total_cost,
        plan.lower_bound
    );
    if let Some(k) = o.max_types {
        let mut used: Vec<&str> = plan
            .instances
            .iter()
            .map(|l| l.instance_type.as_str())
            .collect();
        used.sort();
        used.dedup();
        assert!(used.len() <= k, "{used:?}");
    }
}

/// Brute force: every reservation vector up to `rmax`, each hour's
/// cheapest integer on-demand/spot completion up to `hmax`.
fn brute_force(cat: &Catalog, demand: &[Demand], o: &Constraints, rmax: u32, hmax: u32) -> f64 {
    let types = &cat.types;
    let nt = types.len();
    let h = demand.len() as f64;
    // Reservation choices per type: (r1, r3) pairs.
    let mut best = f64::INFINITY;
    let choices: Vec<(u32, u32)> = (0..=rmax)
        .flat_map(|a| (0..=rmax).map(move |b| (a, b)))
        .collect();
    let mut idx = vec![0usize; nt];
    loop {
        let res: Vec<(u32, u32)> = idx.iter().map(|&i| choices[i]).collect();
        let ok = res.iter().zip(types).all(|(&(a, b), t)| {
            (a == 0 || t.reserved_1y_hourly.is_some()) && (b == 0 || t.reserved_3y_hourly.is_some())
        });
        if ok {
            let mut cost: f64 = res
                .iter()
                .zip(types)
                .map(|(&(a, b), t)| {
                    h * (a as f64 * t.reserved_1y_hourly.unwrap_or(0.0)
                        + b as f64 * t.reserved_3y_hourly.unwrap_or(0.0))
                })
                .sum();
            for dm in demand {
                cost += best_hour(types, &res, dm, o, hmax);
                if cost >= best {
                    break;
                }
            }
            best = best.min(cost);
        }
        // Next reservation vector.
        let mut k = 0;
        loop {
            if k == nt {
                return best;
            }
            idx[k] += 1;
            if idx[k] < choices.len() {
                break;
            }
            idx[k] = 0;
            k += 1;
        }
    }
}

fn best_hour(
    types: &[InstanceType],
    res: &[(u32, u32)],
    dm: &Demand,
    o: &Constraints,
    hmax: u32,
) -> f64 {
    let nt = types.len();
    let mut best = f64::INFINITY;
    let mut x = vec![0u32; 2 * nt];
    loop {
        let (mut v, mut m, mut sv, mut c) = (0.0, 0.0, 0.0, 0.0);
        let mut ok = true;
        for (i, t) in types.iter().enumerate() {
            let n = (res[i].0 + res[i].1 + x[2 * i] + x[2 * i + 1]) as f64;
            v += n * t.vcpu;
            m += n * t.memory_gib;
            sv += x[2 * i + 1] as f64 * t.vcpu;
            c += x[2 * i] as f64 * t.on_demand_hourly;
            match t.spot_hourly {
                Some(p) => c += x[2 * i + 1] as f64 * p,
                None => ok &= x[2 * i + 1] == 0,
            }
        }
        ok &= v + 1e-9 >= dm.vcpu && m + 1e-9 >= dm.memory_gib && sv <= o.spot_max_share * v + 1e-9;
        if o.survive_spot_loss {
            for (i, t) in types.iter().enumerate() {
                let s = x[2 * i + 1] as f64;
                ok &= v - s * t.vcpu + 1e-9 >= dm.vcpu
                    && m - s * t.memory_gib + 1e-9 >= dm.memory_gib;
            }
        }
        if ok {
            best = best.min(c);
        }
        let mut k = 0;
        loop {
            if k == 2 * nt {
                return best;
            }
            x[k] += 1;
            if x[k] <= hmax {
                break;
            }
            x[k] = 0;
            k += 1;
        }
    }
}

fn small_catalog() -> Catalog {
    catalog(vec![
        ty(
            "small",
            2.0,
            4.0,
            0.10,
            Some(0.063),
            Some(0.043),
            Some(0.035),
        ),
        ty("big", 4.0, 16.0, 0.24, Some(0.15), None, Some(0.09)),
    ])
}

#[test]
fn brute_force_agrees_on_small_instances() {
    let mut rng = StdRng::seed_from_u64(11);
    for case in 0..6 {
        let cat = small_catalog();
        let demand: Vec<Demand> = (0..4)
            .map(|_| {
                d(
                    rng.random_range(1.0..9.0f64).round(),
                    rng.random_range(2.0..30.0f64).round(),
                )
            })
            .collect();
        let o = Constraints {
            spot_max_share: [0.0, 0.4, 0.5][case % 3],
            survive_spot_loss: case % 2 == 1,
            ..Constraints::default()
        };
        let plan = optimize(&cat, &demand, &o, &[]).unwrap();
        check(&plan, &cat, &demand, &o);
        let bf = brute_force(&cat, &demand, &o, 5, 5);
        assert!(
            (plan.total_cost - bf).abs() < 1e-6,
            "case {case}: plan {} vs brute force {bf} for {demand:?}",
            plan.total_cost
        );
    }
}

fn random_catalog(rng: &mut StdRng, n: usize) -> Catalog {
    let types = (0..n)
        .map(|i| {
            let vcpu = [2.0, 4.0, 8.0, 16.0][rng.random_range(0..4)];
            let mem = vcpu * [2.0, 4.0, 8.0][rng.random_range(0..3)];
            let od = vcpu * rng.random_range(0.04..0.06) + mem * rng.random_range(0.004..0.006);
            ty(
                &format!("t{i}"),
                vcpu,
                mem,
                od,
                Some(od * 0.62),
                Some(od * 0.42),
                if i % 3 == 2 {
                    None
                } else {
                    Some(od * rng.random_range(0.3..0.45))
                },
            )
        })
        .collect();
    catalog(types)
}

#[test]
fn random_instances_are_feasible_and_above_the_bound() {
    let mut rng = StdRng::seed_from_u64(5);
    for case in 0..6 {
        let cat = random_catalog(&mut rng, 8);
        let base = rng.random_range(20.0..200.0);
        let demand: Vec<Demand> = (0..72)
            .map(|h| {
                let shape = 1.0 + 0.6 * ((h as f64) / 24.0 * std::f64::consts::TAU).sin();
                let v = (base * shape + rng.random_range(0.0..10.0)).round();
                d(v, (v * rng.random_range(2.0..6.0)).round())
            })
            .collect();
        let o = Constraints {
            spot_max_share: 0.4,
            survive_spot_loss: case % 2 == 0,
            max_types: if case >= 3 { Some(2) } else { None },
            headroom: 0.1,
            ..Constraints::default()
        };
        let plan = optimize(&cat, &demand, &o, &[]).unwrap();
        check(&plan, &cat, &demand, &o);
        // With max-types the LP bound relaxes the type choice and is weak.
        if o.max_types.is_none() {
            assert!(plan.gap < 0.02, "case {case}: gap {}", plan.gap);
        }
    }
}

#[test]
fn flat_demand_reserves_everything() {
    let cat = small_catalog();
    let demand = vec![d(8.0, 16.0); 48];
    let plan = optimize(&cat, &demand, &Constraints::default(), &[]).unwrap();
    assert!(
        plan.instances
            .iter()
            .all(|l| l.pricing.starts_with("reserved")),
        "{:?}",
        plan.instances
    );
    // 4 small on the 3-year rate: 4 × 0.043 × 48.
    assert!(
        (plan.total_cost - 4.0 * 0.043 * 48.0).abs() < 1e-9,
        "{}",
        plan.total_cost
    );
}

#[test]
fn a_single_spike_hour_is_bought_by_the_hour() {
    let cat = small_catalog();
    let mut demand = vec![d(0.0, 0.0); 48];
    demand[20] = d(8.0, 16.0);
    for share in [0.0, 0.5] {
        let o = Constraints {
            spot_max_share: share,
            ..Constraints::default()
        };
        let plan = optimize(&cat, &demand, &o, &[]).unwrap();
        assert!(
            plan.instances.iter().all(|l| l.count.is_none()),
            "{:?}",
            plan.instances
        );
        assert!(plan.cost_by_pricing.get("spot").copied().unwrap_or(0.0) > 0.0 || share == 0.0);
    }
}

#[test]
fn memory_beyond_the_quota_is_infeasible_and_named() {
    let cat = small_catalog();
    let mut demand = vec![d(4.0, 8.0); 10];
    demand[7] = d(4.0, 900.0);
    let o = Constraints {
        max_vcpu: Some(64.0),
        ..Constraints::default()
    };
    let e = optimize(&cat, &demand, &o, &[]).unwrap_err().to_string();
    assert!(e.contains("memory cover, hour 7"), "{e}");
}

#[test]
fn too_few_types_is_infeasible_and_named() {
    // At most 4 instances of a type per hour: hour 5's 40 vCPU need both.
    let cat = catalog(vec![
        ty("a", 8.0, 16.0, 0.30, None, None, None),
        ty("b", 4.0, 32.0, 0.40, None, None, None),
    ]);
    let mut demand = vec![d(2.0, 2.0); 6];
    demand[5] = d(40.0, 16.0);
    let o = Constraints {
        max_per_type: Some(4),
        max_types: Some(1),
        ..Constraints::default()
    };
    let e = optimize(&cat, &demand, &o, &[]).unwrap_err().to_string();
    assert!(e.starts_with("infeasible: max-types, hour 5"), "{e}");
    let o = Constraints {
        max_types: Some(2),
        ..o
    };
    let plan = optimize(&cat, &demand, &o, &[]).unwrap();
    check(&plan, &cat, &demand, &o);
}

/// The bench's 30 types × 168 hours at ~440 vCPU/h, where 2-vCPU
/// granularity makes integrality costly: the plan is within the issue's
/// 0.5% of the LP bound. Without the wide pass over all chosen types (the
/// hourly search over the candidate types alone) it is 0.66%.
#[test]
fn thirty_types_for_a_week_is_within_half_a_percent_of_the_bound() {
    let (cat, demand) = optimizer::synthetic::instance(30, 168, 400.0);
    let o = Constraints {
        spot_max_share: 0.4,
        headroom: 0.1,
        ..Constraints::default()
    };
    let plan = optimize(&cat, &demand, &o, &[]).unwrap();
    check(&plan, &cat, &demand, &o);
    assert!(plan.gap < 0.005, "gap {:.3}%", plan.gap * 100.0);
}
