//! `loadtest optimize` at the sizes issue #4 names: 30 types × 168 hours,
//! 60 × 720 and 3 × 8,760, with spot capped at 40% and 10% headroom, and
//! 30 × 168 again with the survive-spot-loss rule. Each size prints its plan's gap to the LP lower
//! bound once before it is timed.
use criterion::{Criterion, criterion_group, criterion_main};
use optimizer::synthetic::instance;
use optimizer::{Constraints, optimize};

fn opts(survive: bool) -> Constraints {
    Constraints {
        spot_max_share: 0.4,
        survive_spot_loss: survive,
        headroom: 0.1,
        ..Constraints::default()
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
        let (cat, d) = instance(types, hours, base);
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
