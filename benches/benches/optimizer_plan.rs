//! `loadtest optimize` at the sizes issue #4 names: 30 types × 168 hours,
//! 60 × 720 and 3 × 8,760, with spot capped at 40% and 10% headroom, and
//! 30 × 168 again with the survive-spot-loss rule. Each size prints its plan's gap to the LP lower
//! bound once before it is timed.
use criterion::{Criterion, criterion_group, criterion_main};
use optimizer::{Catalog, Demand, InstanceType, Options, optimize};

/// A deterministic generator (no rand dependency needed here).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` types in families like m/c/r (4, 2, 8 GiB per vCPU) and sizes
/// 2..64 vCPU, priced like AWS list prices with some noise.
fn catalog(n: usize, rng: &mut Lcg) -> Catalog {
    let fam = [
        ("m", 4.0, 0.048),
        ("c", 2.0, 0.0425),
        ("r", 8.0, 0.063),
        ("t", 4.0, 0.0416),
        ("x", 16.0, 0.083),
    ];
    let sizes = [2.0, 4.0, 8.0, 16.0, 32.0, 48.0, 64.0];
    let types = (0..n)
        .map(|i| {
            let (f, ratio, per_vcpu) = fam[i % fam.len()];
            let vcpu = sizes[(i / fam.len()) % sizes.len()];
            let generation = i / (fam.len() * sizes.len());
            let od = vcpu * per_vcpu * (0.95 + 0.1 * rng.next()) * (1.0 - 0.05 * generation as f64);
            InstanceType {
                provider: "bench".into(),
                region: "r".into(),
                instance_type: format!("{f}{}.{}x", 6 + generation, vcpu),
                vcpu,
                memory_gib: vcpu * ratio,
                on_demand_hourly: od,
                reserved_1y_hourly: Some(od * (0.6 + 0.05 * rng.next())),
                reserved_3y_hourly: Some(od * (0.4 + 0.05 * rng.next())),
                spot_hourly: Some(od * (0.3 + 0.15 * rng.next())),
                spot_interruption: Some(0.05),
            }
        })
        .collect();
    Catalog {
        notes: vec![],
        types,
    }
}

/// A daily and weekly shape around `base` vCPU, with noise, to 0.1 vCPU.
fn demand(hours: usize, base: f64, rng: &mut Lcg) -> Vec<Demand> {
    (0..hours)
        .map(|h| {
            let day = (h as f64 / 24.0 * std::f64::consts::TAU).sin();
            let week = if (h / 24) % 7 >= 5 { 0.7 } else { 1.0 };
            let v = base * week * (1.0 + 0.5 * day) * (0.95 + 0.1 * rng.next());
            Demand {
                vcpu: (v * 10.0).round() / 10.0,
                memory_gib: (v * (3.0 + rng.next()) * 10.0).round() / 10.0,
            }
        })
        .collect()
}

fn opts(survive: bool) -> Options {
    Options {
        spot_max_share: 0.4,
        survive_spot_loss: survive,
        headroom: 0.1,
        ..Options::default()
    }
}

fn plans(c: &mut Criterion) {
    let mut g = c.benchmark_group("optimize");
    g.sample_size(10);
    for (types, hours, base, survive) in [
        (30, 168, 400.0, false),
        (30, 168, 2000.0, false),
        (30, 168, 400.0, true),
        (60, 720, 1200.0, false),
        (3, 8760, 300.0, false),
    ] {
        let mut rng = Lcg(types as u64 * 1000 + hours as u64);
        let cat = catalog(types, &mut rng);
        let d = demand(hours, base, &mut rng);
        let o = opts(survive);
        let t = std::time::Instant::now();
        let p = optimize(&cat, &d, &o, &[]).expect("bench plan");
        eprintln!(
            "{types} types x {hours} h, base {base} vCPU, survive {survive}: cost {:.0}, lower bound {:.0}, gap {:.3}%, {} levels, lp {:.2}s stage1 {:.2}s stage2 {:.2}s, first solve {:.2}s, fallbacks {}",
            p.total_cost,
            p.lower_bound,
            p.gap * 100.0,
            p.solver.levels,
            p.solver.lp_s,
            p.solver.stage1_s,
            p.solver.stage2_s,
            t.elapsed().as_secs_f64(),
            p.solver.fallbacks
        );
        g.bench_function(
            format!(
                "{types}x{hours}_base{base}{}",
                if survive { "_survive" } else { "" }
            ),
            |b| b.iter(|| optimize(&cat, &d, &o, &[]).expect("bench plan")),
        );
    }
    g.finish();
}

criterion_group!(benches, plans);
criterion_main!(benches);
