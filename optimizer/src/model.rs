//! The purchase model, built for HiGHS through good_lp, and an independent
//! checker for every solution it returns.
//!
//! Per instance type `t`: integer reservations `r1_t`, `r3_t` held over the
//! whole horizon; per hour `h`: on-demand `o_{t,h}` and spot `s_{t,h}`.
//! Hours with equal demand share a solution, so the model is built over
//! distinct demand *levels*, each weighted by how many hours it covers.
//!
//! Each level:
//! - cover:   Σ_t vcpu_t·n_t ≥ D_vcpu and Σ_t mem_t·n_t ≥ D_mem, with
//!   n_t = r1_t + r3_t + o_t + s_t
//! - spot:    Σ vcpu_t·s_t ≤ share · Σ vcpu_t·n_t
//! - survive: for every type u, the capacity without u's spot pool still
//!   covers demand (written with z ≥ vcpu_u·s_u for every u, which keeps the
//!   model sparse)
//! - quota:   Σ vcpu_t·n_t ≤ max_vcpu, and n_t ≤ max_per_type
//! - types:   n_t ≤ M_t·y_t, Σ y_t ≤ K  (binary `y`)
use std::time::{Duration, Instant};

use good_lp::constraint::ConstraintReference;
use good_lp::solvers::highs::{HighsParallelType, HighsSolution, highs};
use good_lp::{
    DualValues, Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus,
    SolutionWithDual, SolverModel, Variable, variable,
};

use crate::input::{Demand, InstanceType};
use crate::{Constraints, Error};

/// Above this many levels the LP relaxation uses the interior point method.
pub const IPM_LEVELS: usize = 2_000;

/// Integer tolerance for the solution checker.
pub const INT_TOL: f64 = 1e-6;
/// Constraint tolerance (capacity units) for the checker.
pub const FEAS_TOL: f64 = 1e-6;

/// A distinct demand and how many hours have it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Demand.
    pub d: Demand,
    /// Hours with this demand.
    pub weight: f64,
}

/// How a model is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Everything continuous: the lower bound and the shadow prices.
    Relaxed,
    /// Reservations and type choice integer, hourly counts continuous:
    /// stage 1, which decides the reservations.
    Reservations,
    /// Reservations fixed, hourly counts integer: one level of stage 2.
    Hourly,
    /// Everything integer: the exact MILP, used when it is small.
    Full,
}

/// Which types may be bought, and fixed reservations for `Mode::Hourly`.
#[derive(Debug, Clone)]
pub struct Fixed {
    /// Types allowed.
    pub allowed: Vec<bool>,
    /// (r1, r3) per type.
    pub reserved: Vec<(f64, f64)>,
}

/// Rows whose duals explain the plan.
#[derive(Debug, Clone, Default)]
pub struct Duals {
    /// Per level: vCPU cover.
    pub vcpu: Vec<f64>,
    /// Per level: memory cover.
    pub memory: Vec<f64>,
    /// Per level: spot share (≤ 0 when binding).
    pub spot: Vec<f64>,
    /// Per level: survive-spot-loss vCPU and memory rows.
    pub survive: Vec<f64>,
    /// Per level: total vCPU in the solution (for the spot-share derivative).
    pub total_vcpu: Vec<f64>,
}

/// A solved model.
#[derive(Debug, Clone, Default)]
pub struct Solved {
    /// Objective.
    pub cost: f64,
    /// (r1, r3) per type.
    pub reserved: Vec<(f64, f64)>,
    /// Per level: (on-demand, spot) per type.
    pub hourly: Vec<Vec<(f64, f64)>>,
    /// Whether HiGHS proved optimality (within its gap) or stopped on time.
    pub status: Option<SolutionStatus>,
    /// Duals (relaxed mode only).
    pub duals: Option<Duals>,
}

struct Vars {
    r1: Vec<Option<Variable>>,
    r3: Vec<Option<Variable>>,
    o: Vec<Vec<Option<Variable>>>,
    s: Vec<Vec<Option<Variable>>>,
    y: Vec<Option<Variable>>,
}

fn count_def(integer: bool) -> good_lp::VariableDefinition {
    let v = variable().min(0.0);
    if integer { v.integer() } else { v }
}

/// Upper bound on how many instances of one type an optimal plan can use in
/// one level: enough to cover the demand twice over (the survive rule at
/// worst doubles it), plus one.
pub(crate) fn big_m(t: &InstanceType, d: &Demand) -> f64 {
    let n = (d.vcpu / t.vcpu).max(d.memory_gib / t.memory_gib).ceil();
    2.0 * n + 2.0
}

/// Builds and solves the model. `limit` bounds the wall time: HiGHS gets it
/// as its time limit, and a watchdog returns `Error::Timeout` if HiGHS does
/// not come back within twice that (it has been seen overrunning its own).
#[allow(clippy::too_many_arguments)]
pub fn solve(
    types: &[InstanceType],
    levels: &[Level],
    hours: f64,
    opts: &Constraints,
    fixed: &Fixed,
    mode: Mode,
    gap: f64,
    limit: Duration,
) -> Result<Solved, Error> {
    let types = types.to_vec();
    let levels = levels.to_vec();
    let opts = opts.clone();
    let fixed = fixed.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::Builder::new()
        .name("highs".into())
        .spawn(move || {
            let lp = Lp {
                types: &types,
                levels: &levels,
                hours,
                opts: &opts,
                fixed: &fixed,
                mode,
            };
            let r = solve_now(&lp, gap, limit);
            let _ = tx.send(r);
        })
        .map_err(|e| Error::Solver(format!("cannot start the solver thread: {e}")))?;
    match rx.recv_timeout(limit * 2 + Duration::from_secs(1)) {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(started.elapsed())),
    }
}

/// One model's inputs, as [`solve`] takes them.
struct Lp<'a> {
    types: &'a [InstanceType],
    levels: &'a [Level],
    hours: f64,
    opts: &'a Constraints,
    fixed: &'a Fixed,
    mode: Mode,
}

/// The rows whose duals explain a relaxed plan, per level.
#[derive(Default)]
struct Rows {
    vcpu: Vec<ConstraintReference>,
    memory: Vec<ConstraintReference>,
    spot: Vec<ConstraintReference>,
    survive: Vec<ConstraintReference>,
}

fn solve_now(lp: &Lp, gap: f64, limit: Duration) -> Result<Solved, Error> {
    let mut pv = ProblemVariables::new();
    let mut obj = Expression::with_capacity(lp.types.len() * (2 + 2 * lp.levels.len()));
    let (v, z) = lp.variables(&mut pv, &mut obj);
    let mode = lp.mode;
    let mut m = pv
        .minimise(obj.clone())
        .using(highs)
        .set_parallel(HighsParallelType::Off)
        .set_time_limit(limit.as_secs_f64());
    m = m.set_option("threads", 1).set_option("output_flag", false);
    if mode == Mode::Relaxed && lp.levels.len() > IPM_LEVELS {
        // Thousands of levels with a few types each: the interior point
        // method (with crossover, so the duals are a basic solution's)
        // solves a year of hours in ~60% of the dual simplex's time.
        m = m.set_option("solver", "ipm");
    }
    if mode != Mode::Relaxed {
        m = m
            .set_mip_rel_gap(gap as f32)
            .map_err(|e| Error::Solver(e.to_string()))?;
    }
    let rows = lp.rows(&mut m, &v, &z);
    let sol = match m.solve() {
        Ok(s) => s,
        Err(ResolutionError::Infeasible) => return Err(Error::Infeasible(String::new())),
        Err(e) => return Err(Error::Solver(e.to_string())),
    };
    Ok(lp.read(sol, &v, &obj, rows))
}

impl Lp<'_> {
    /// The variables and the objective: reservations (and type choices)
    /// per type, on-demand and spot counts per level and type, and the
    /// survive rule's largest-pool helpers per level. The order of the
    /// variables is the model's: it stays as it is.
    fn variables(
        &self,
        pv: &mut ProblemVariables,
        obj: &mut Expression,
    ) -> (Vars, Vec<(Variable, Variable)>) {
        let (types, levels, hours, opts, fixed, mode) = (
            self.types,
            self.levels,
            self.hours,
            self.opts,
            self.fixed,
            self.mode,
        );
        let nt = types.len();
        let int_res = matches!(mode, Mode::Reservations | Mode::Full);
        let int_hourly = matches!(mode, Mode::Hourly | Mode::Full);
        let mut v = Vars {
            r1: vec![None; nt],
            r3: vec![None; nt],
            o: vec![],
            s: vec![],
            y: vec![None; nt],
        };
        let spot_on = opts.spot_max_share > 0.0;
        if mode != Mode::Hourly {
            for (i, t) in types.iter().enumerate() {
                if !fixed.allowed[i] {
                    continue;
                }
                if let Some(p) = t.reserved_1y_hourly {
                    let x = pv.add(count_def(int_res));
                    obj.add_mul(hours * p, x);
                    v.r1[i] = Some(x);
                }
                if let (Some(p), true) = (t.reserved_3y_hourly, opts.allow_3y) {
                    let x = pv.add(count_def(int_res));
                    obj.add_mul(hours * p, x);
                    v.r3[i] = Some(x);
                }
                if opts.max_types.is_some() {
                    let y = if int_res {
                        pv.add(variable().binary())
                    } else {
                        pv.add(variable().min(0.0).max(1.0))
                    };
                    v.y[i] = Some(y);
                }
            }
        }
        for l in levels {
            let mut o = vec![None; nt];
            let mut s = vec![None; nt];
            for (i, t) in types.iter().enumerate() {
                if !fixed.allowed[i] {
                    continue;
                }
                let x = pv.add(count_def(int_hourly));
                obj.add_mul(l.weight * t.on_demand_hourly, x);
                o[i] = Some(x);
                if let (Some(p), true) = (t.spot_hourly, spot_on) {
                    let x = pv.add(count_def(int_hourly));
                    obj.add_mul(l.weight * p, x);
                    s[i] = Some(x);
                }
            }
            v.o.push(o);
            v.s.push(s);
        }
        // Survive-spot-loss helper variables, one pair per level.
        let survive = opts.survive_spot_loss && spot_on;
        let z: Vec<(Variable, Variable)> = if survive {
            levels
                .iter()
                .map(|_| (pv.add(variable().min(0.0)), pv.add(variable().min(0.0))))
                .collect()
        } else {
            vec![]
        };
        (v, z)
    }

    /// Instances of type `i` in level `li`, as an expression (the reserved
    /// part is a constant in hourly mode).
    fn count(&self, v: &Vars, li: usize, i: usize) -> Expression {
        let mut e = Expression::from(0.0);
        if self.mode == Mode::Hourly {
            e += self.fixed.reserved[i].0 + self.fixed.reserved[i].1;
        } else {
            if let Some(x) = v.r1[i] {
                e += x;
            }
            if let Some(x) = v.r3[i] {
                e += x;
            }
        }
        if let Some(x) = v.o[li][i] {
            e += x;
        }
        if let Some(x) = v.s[li][i] {
            e += x;
        }
        e
    }

    /// Every constraint, level by level, then the type limit.
    fn rows(&self, m: &mut impl SolverModel, v: &Vars, z: &[(Variable, Variable)]) -> Rows {
        let (types, levels, opts, fixed, mode) =
            (self.types, self.levels, self.opts, self.fixed, self.mode);
        let spot_on = opts.spot_max_share > 0.0;
        let survive = opts.survive_spot_loss && spot_on;
        let mut rows = Rows::default();
        let (gv, gm) = divisors(types, |i| fixed.allowed[i] || mode == Mode::Hourly);
        for (li, l) in levels.iter().enumerate() {
            let mut cap_v = Expression::from(0.0);
            let mut cap_m = Expression::from(0.0);
            let mut spot_v = Expression::from(0.0);
            for (i, t) in types.iter().enumerate() {
                if mode == Mode::Hourly {
                    // Reservations of types not allowed hourly still count.
                    let r = fixed.reserved[i].0 + fixed.reserved[i].1;
                    if !fixed.allowed[i] {
                        cap_v += r * t.vcpu;
                        cap_m += r * t.memory_gib;
                        continue;
                    }
                } else if !fixed.allowed[i] {
                    continue;
                }
                let n = self.count(v, li, i);
                cap_v.add_mul(t.vcpu, n.clone());
                cap_m.add_mul(t.memory_gib, n.clone());
                if let Some(sx) = v.s[li][i] {
                    spot_v.add_mul(t.vcpu, sx);
                    if survive {
                        m.add_constraint((t.vcpu * sx).leq(z[li].0));
                        m.add_constraint((t.memory_gib * sx).leq(z[li].1));
                    }
                }
                if let Some(y) = v.y[i] {
                    let bm = big_m(t, &l.d).min(opts.max_per_type.map_or(f64::INFINITY, f64::from));
                    m.add_constraint(n.clone().leq(bm * y));
                }
                if let Some(cap) = opts.max_per_type {
                    m.add_constraint(n.leq(cap as f64));
                }
            }
            // Capacity comes in multiples of the types' common divisor, so the
            // demand can be rounded up to one: valid for every integer plan, and
            // a tighter relaxation.
            let (dv, dm) = (round_up(l.d.vcpu, gv), round_up(l.d.memory_gib, gm));
            rows.vcpu.push(m.add_constraint(cap_v.clone().geq(dv)));
            rows.memory.push(m.add_constraint(cap_m.clone().geq(dm)));
            if spot_on && opts.spot_max_share < 1.0 {
                rows.spot
                    .push(m.add_constraint(spot_v.leq(opts.spot_max_share * cap_v.clone())));
            }
            if survive {
                rows.survive
                    .push(m.add_constraint((cap_v.clone() - z[li].0).geq(dv)));
                rows.survive
                    .push(m.add_constraint((cap_m - z[li].1).geq(dm)));
            }
            if let Some(q) = opts.max_vcpu {
                m.add_constraint(cap_v.leq(q));
            }
        }
        if let Some(k) = opts.max_types {
            let ys: Vec<Variable> = v.y.iter().flatten().copied().collect();
            if !ys.is_empty() {
                let sum: Expression = ys.iter().copied().sum();
                m.add_constraint(sum.leq(k as f64));
            }
        }
        rows
    }

    /// The solution's values, its cost and, relaxed, the duals.
    fn read(&self, mut sol: HighsSolution, v: &Vars, obj: &Expression, rows: Rows) -> Solved {
        let (types, levels, fixed, mode) = (self.types, self.levels, self.fixed, self.mode);
        let nt = types.len();
        let status = sol.status();
        let val = |x: &Option<Variable>| x.map(|x| sol.value(x)).unwrap_or(0.0);
        let mut out = Solved {
            cost: 0.0,
            reserved: (0..nt).map(|i| (val(&v.r1[i]), val(&v.r3[i]))).collect(),
            hourly: (0..levels.len())
                .map(|li| {
                    (0..nt)
                        .map(|i| (val(&v.o[li][i]), val(&v.s[li][i])))
                        .collect()
                })
                .collect(),
            status: Some(status),
            duals: None,
        };
        if mode == Mode::Hourly {
            out.reserved = fixed.reserved.clone();
        }
        out.cost = obj.eval_with(&sol);
        if mode == Mode::Relaxed {
            let total_vcpu = (0..levels.len())
                .map(|li| {
                    types
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            t.vcpu
                                * (out.reserved[i].0
                                    + out.reserved[i].1
                                    + out.hourly[li][i].0
                                    + out.hourly[li][i].1)
                        })
                        .sum()
                })
                .collect();
            let d = sol.compute_dual();
            out.duals = Some(Duals {
                vcpu: rows.vcpu.into_iter().map(|c| d.dual(c)).collect(),
                memory: rows.memory.into_iter().map(|c| d.dual(c)).collect(),
                spot: rows.spot.into_iter().map(|c| d.dual(c)).collect(),
                survive: rows.survive.into_iter().map(|c| d.dual(c)).collect(),
                total_vcpu,
            });
        }
        out
    }
}

/// The greatest common divisor of sizes that are all whole numbers (else 0:
/// no rounding).
pub fn common_divisor(sizes: impl Iterator<Item = f64>) -> u64 {
    let mut g = 0u64;
    for x in sizes {
        if x.fract() != 0.0 || x <= 0.0 || x > 1e12 {
            return 0;
        }
        let (mut a, mut b) = (g, x as u64);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        g = a;
    }
    g
}

/// The common divisors of the vCPU and of the memory sizes of the types
/// `keep` selects (each 0 when they are not all whole numbers).
pub fn divisors(types: &[InstanceType], keep: impl Fn(usize) -> bool) -> (u64, u64) {
    let kept = || {
        types
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(_, t)| t)
    };
    (
        common_divisor(kept().map(|t| t.vcpu)),
        common_divisor(kept().map(|t| t.memory_gib)),
    )
}

/// `x` rounded up to a multiple of `g` (unchanged when `g` is 0).
pub fn round_up(x: f64, g: u64) -> f64 {
    if g == 0 {
        return x;
    }
    let g = g as f64;
    ((x / g) - 1e-9).ceil().max(0.0) * g
}

/// Rounds a solver value that must be an integer, or says it is not one.
pub fn integral(x: f64, what: &str) -> Result<u32, Error> {
    let r = x.round();
    if (x - r).abs() > INT_TOL || r < 0.0 {
        return Err(Error::Solver(format!(
            "the solver returned {x} for {what}, which is not a non-negative integer"
        )));
    }
    Ok(r as u32)
}

/// Counts of one level's plan: per type (reserved, on-demand, spot).
pub type Counts = [Vec<u32>; 3];

/// Checks one hour's integer plan against every constraint of the model.
/// Returns the first violated constraint in words.
pub fn check_hour(
    types: &[InstanceType],
    d: &Demand,
    opts: &Constraints,
    n: &Counts,
) -> Result<(), String> {
    let [r, o, s] = n;
    let mut cap_v = 0.0;
    let mut cap_m = 0.0;
    let mut spot_v = 0.0;
    let mut used = 0;
    for (i, t) in types.iter().enumerate() {
        let k = (r[i] + o[i] + s[i]) as f64;
        cap_v += k * t.vcpu;
        cap_m += k * t.memory_gib;
        spot_v += s[i] as f64 * t.vcpu;
        if s[i] > 0 && (t.spot_hourly.is_none() || opts.spot_max_share <= 0.0) {
            return Err(format!(
                "spot {} bought where spot is not allowed",
                t.instance_type
            ));
        }
        if r[i] + o[i] + s[i] > 0 {
            used += 1;
        }
    }
    if cap_v + FEAS_TOL < d.vcpu {
        return Err(format!("vCPU {cap_v} < demand {}", d.vcpu));
    }
    if cap_m + FEAS_TOL < d.memory_gib {
        return Err(format!("memory {cap_m} GiB < demand {}", d.memory_gib));
    }
    if spot_v > opts.spot_max_share * cap_v + FEAS_TOL {
        return Err(format!(
            "spot vCPU {spot_v} > {} of {cap_v}",
            opts.spot_max_share
        ));
    }
    if opts.survive_spot_loss {
        for (i, t) in types.iter().enumerate() {
            let lv = cap_v - s[i] as f64 * t.vcpu;
            let lm = cap_m - s[i] as f64 * t.memory_gib;
            if lv + FEAS_TOL < d.vcpu || lm + FEAS_TOL < d.memory_gib {
                return Err(format!(
                    "losing the {} spot pool leaves {lv} vCPU / {lm} GiB",
                    t.instance_type
                ));
            }
        }
    }
    if let Some(q) = opts.max_vcpu
        && cap_v > q + FEAS_TOL
    {
        return Err(format!("{cap_v} vCPU exceeds the quota {q}"));
    }
    if let Some(cap) = opts.max_per_type
        && let Some(i) = (0..types.len()).find(|&i| r[i] + o[i] + s[i] > cap)
    {
        return Err(format!(
            "{} {} instances, more than --max-per-type {cap}",
            r[i] + o[i] + s[i],
            types[i].instance_type
        ));
    }
    if let Some(k) = opts.max_types
        && used > k
    {
        return Err(format!("{used} types in use in one hour, more than {k}"));
    }
    Ok(())
}

/// A feasible on-demand-only cover of the residual demand with the
/// cheapest single allowed type: the fallback when a solve fails or times
/// out, and the all-on-demand baseline.
pub fn cheapest_single(
    types: &[InstanceType],
    allowed: &[bool],
    need: &Demand,
) -> Option<(usize, u32, f64)> {
    types
        .iter()
        .enumerate()
        .filter(|(i, _)| allowed[*i])
        .map(|(i, t)| {
            let n = (need.vcpu / t.vcpu - 1e-9)
                .ceil()
                .max((need.memory_gib / t.memory_gib - 1e-9).ceil())
                .max(0.0);
            (i, n as u32, n * t.on_demand_hourly)
        })
        .min_by(|a, b| a.2.total_cmp(&b.2))
}
