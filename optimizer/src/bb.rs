//! An exact branch-and-bound for one hour of stage 2: with the reservations
//! fixed, the cheapest integer on-demand and spot counts that meet every
//! row of the hour (vCPU and memory cover, spot share, survive-spot-loss,
//! quota, per-type cap).
//!
//! These problems have a handful of integer variables and rows, and a year
//! of hours has thousands of distinct ones. A general MILP solver spends
//! most of its ~10 ms per problem on set-up (presolve, probing, cut
//! rounds); here every node is a dense dual simplex from the all-slack
//! basis, which is dual feasible because every price is non-negative, so
//! no phase 1 is needed. Depth-first, rounding up first, with a rounding
//! heuristic at every node. The caller checks the result with the same
//! independent checker as every HiGHS solution, and falls back to HiGHS
//! when this gives up (node or pivot limit, or a negative price).

use crate::Constraints;
use crate::input::{Demand, InstanceType};
use crate::model::{Counts, big_m, divisors, round_up};

/// How one hour's search ended.
#[derive(Debug, Clone, PartialEq)]
pub enum HourSearch {
    /// Optimal within the relative gap.
    Solved(Counts),
    /// The best found when the node limit was hit.
    Unproven(Counts),
    /// No integer point meets the rows.
    Infeasible,
    /// A limit was hit before the optimum was proven.
    GaveUp,
}

/// Nodes explored before giving up to HiGHS.
pub const NODE_LIMIT: usize = 20_000;
/// Nodes explored over every chosen type, after the candidate types.
pub const WIDE_NODE_LIMIT: usize = 1_000;
/// Nodes explored in an hour under the survive rule before HiGHS takes over.
pub const SURVIVE_NODE_LIMIT: usize = 300;
const TOL: f64 = 1e-7;
const INT_TOL: f64 = 1e-6;

/// `Σ a·x ≥ b` over the hour's variables.
struct Row {
    a: Vec<f64>,
    b: f64,
}

struct Problem {
    /// Per variable: type index and whether it is the spot count.
    var: Vec<(usize, bool)>,
    cost: Vec<f64>,
    rows: Vec<Row>,
    upper: Vec<f64>,
}

/// Solves one hour. `allowed` are the types that may be bought this hour,
/// `reserved` the reservations (held in every hour, of any type).
pub fn solve_hour(
    types: &[InstanceType],
    d: &Demand,
    opts: &Constraints,
    allowed: &[bool],
    reserved: &[u32],
    gap: f64,
    node_limit: usize,
) -> HourSearch {
    let Some(p) = build(types, d, opts, allowed, reserved) else {
        return HourSearch::Infeasible;
    };
    if p.cost.iter().any(|&c| !(c >= 0.0 && c.is_finite())) {
        return HourSearch::GaveUp;
    }
    let counts = |x: Vec<u32>| {
        let nt = types.len();
        let mut c: Counts = [reserved.to_vec(), vec![0; nt], vec![0; nt]];
        for (&(t, spot), v) in p.var.iter().zip(x) {
            c[if spot { 2 } else { 1 }][t] = v;
        }
        c
    };
    match search(&p, gap, node_limit) {
        Search::Found(x) => HourSearch::Solved(counts(x)),
        Search::Infeasible => HourSearch::Infeasible,
        Search::GaveUp(Some(x)) => HourSearch::Unproven(counts(x)),
        Search::GaveUp(None) => HourSearch::GaveUp,
    }
}

/// The hour's rows over the bought counts; `None` when the reservations
/// alone already break a cap no purchase can repair.
fn build(
    types: &[InstanceType],
    d: &Demand,
    opts: &Constraints,
    allowed: &[bool],
    reserved: &[u32],
) -> Option<Problem> {
    let spot_on = opts.spot_max_share > 0.0;
    let mut var = Vec::new();
    let mut cost = Vec::new();
    let mut upper = Vec::new();
    let (mut rv, mut rm) = (0.0, 0.0);
    for (i, t) in types.iter().enumerate() {
        rv += reserved[i] as f64 * t.vcpu;
        rm += reserved[i] as f64 * t.memory_gib;
        if !allowed[i] {
            continue;
        }
        // The MILP's bound on one type's count in an hour.
        let m = big_m(t, d);
        var.push((i, false));
        cost.push(t.on_demand_hourly);
        upper.push(m);
        if let (Some(p), true) = (t.spot_hourly, spot_on) {
            var.push((i, true));
            cost.push(p);
            upper.push(m);
        }
    }
    let n = var.len();
    let col = |f: &dyn Fn(usize, bool) -> f64| -> Vec<f64> {
        var.iter().map(|&(t, s)| f(t, s)).collect()
    };
    // What is bought comes in multiples of the bought types' common
    // divisor, so the residual demand rounds up to one (a valid, tighter
    // relaxation).
    let (gv, gm) = divisors(types, |i| allowed[i]);
    let need_v = round_up((d.vcpu - rv).max(0.0), gv);
    let need_m = round_up((d.memory_gib - rm).max(0.0), gm);
    let cpu = col(&|t, _| types[t].vcpu);
    let mem = col(&|t, _| types[t].memory_gib);
    let mut rows = vec![
        Row {
            a: cpu.clone(),
            b: need_v,
        },
        Row {
            a: mem.clone(),
            b: need_m,
        },
    ];
    if spot_on && opts.spot_max_share < 1.0 {
        // spot vCPU ≤ share × (reserved + bought vCPU)
        let s = opts.spot_max_share;
        rows.push(Row {
            a: col(&|t, spot| {
                let v = types[t].vcpu;
                if spot { -(1.0 - s) * v } else { s * v }
            }),
            b: -s * rv,
        });
    }
    if opts.survive_spot_loss && spot_on {
        for (j, &(u, spot)) in var.iter().enumerate() {
            if !spot {
                continue;
            }
            let mut a = cpu.clone();
            a[j] -= types[u].vcpu;
            rows.push(Row { a, b: d.vcpu - rv });
            let mut a = mem.clone();
            a[j] -= types[u].memory_gib;
            rows.push(Row {
                a,
                b: d.memory_gib - rm,
            });
        }
    }
    if let Some(q) = opts.max_vcpu {
        rows.push(Row {
            a: cpu.iter().map(|x| -x).collect(),
            b: -(q - rv),
        });
    }
    if let Some(cap) = opts.max_per_type {
        for (i, _) in types.iter().enumerate().filter(|(i, _)| allowed[*i]) {
            let room = cap as f64 - reserved[i] as f64;
            if room < 0.0 {
                return None;
            }
            let a = col(&|t, _| if t == i { -1.0 } else { 0.0 });
            rows.push(Row { a, b: -room });
        }
    }
    debug_assert!(rows.iter().all(|r| r.a.len() == n));
    Some(Problem {
        var,
        cost,
        rows,
        upper,
    })
}

enum Search {
    Found(Vec<u32>),
    Infeasible,
    /// With the incumbent, if any.
    GaveUp(Option<Vec<u32>>),
}

/// Depth-first branch-and-bound on the most fractional variable, the
/// rounded-up branch first; a node is pruned once its bound is within
/// `gap` of the incumbent. A child starts from its parent's optimal
/// tableau with the branching bound added as one row, so it is usually a
/// pivot or two from its own optimum.
fn search(p: &Problem, gap: f64, node_limit: usize) -> Search {
    let mut best: Option<(Vec<u32>, f64)> = None;
    let mut stack = vec![Tableau::new(p)];
    let mut nodes = 0;
    while let Some(mut tab) = stack.pop() {
        nodes += 1;
        if nodes > node_limit {
            return Search::GaveUp(best.map(|b| b.0));
        }
        match tab.optimise() {
            Status::Optimal => {}
            Status::Infeasible => continue,
            Status::Limit => return Search::GaveUp(best.map(|b| b.0)),
        }
        let x = tab.solution();
        let z: f64 = p.cost.iter().zip(&x).map(|(c, v)| c * v).sum();
        let cut = best.as_ref().map_or(f64::INFINITY, |b| b.1 * (1.0 - gap));
        if z >= cut - 1e-9 {
            continue;
        }
        let mut branch = None;
        let mut worst = INT_TOL;
        for (j, &v) in x.iter().enumerate() {
            let f = (v - v.floor()).min(v.ceil() - v);
            if f > worst {
                worst = f;
                branch = Some(j);
            }
        }
        let Some(j) = branch else {
            let xi: Vec<u32> = x.iter().map(|v| v.round().max(0.0) as u32).collect();
            if feasible(p, &xi) {
                let c = value(p, &xi);
                if best.as_ref().is_none_or(|b| c < b.1) {
                    best = Some((xi, c));
                }
            }
            continue;
        };
        // Rounding heuristic: on-demand up, spot down.
        let guess: Vec<u32> = x
            .iter()
            .zip(&p.var)
            .map(|(v, &(_, spot))| {
                let r = if spot {
                    (v + INT_TOL).floor()
                } else {
                    (v - INT_TOL).ceil()
                };
                r.max(0.0) as u32
            })
            .collect();
        if feasible(p, &guess) {
            let c = value(p, &guess);
            if best.as_ref().is_none_or(|b| c < b.1) {
                best = Some((guess, c));
            }
        }
        let v = x[j];
        let mut down = tab.clone();
        down.bound(j, v.floor(), false);
        stack.push(down);
        tab.bound(j, v.ceil(), true);
        stack.push(tab);
    }
    match best {
        Some((x, _)) => Search::Found(x),
        None => Search::Infeasible,
    }
}

fn value(p: &Problem, x: &[u32]) -> f64 {
    p.cost.iter().zip(x).map(|(c, &v)| c * v as f64).sum()
}

fn feasible(p: &Problem, x: &[u32]) -> bool {
    x.iter().zip(&p.upper).all(|(&v, &u)| v as f64 <= u)
        && p.rows.iter().all(|r| {
            let lhs: f64 = r.a.iter().zip(x).map(|(a, &v)| a * v as f64).sum();
            lhs >= r.b - 1e-9
        })
}

enum Status {
    Optimal,
    Infeasible,
    Limit,
}

/// A dense simplex tableau in the form `x_B = rhs − T·x_N`, kept dual
/// feasible (every reduced cost ≥ 0) throughout: every row `a·x ≥ b`
/// enters as `−a·x + slack = −b` and every upper bound as
/// `x + slack = u`, and with prices ≥ 0 the slack basis is dual feasible.
#[derive(Clone)]
struct Tableau {
    /// Structural variables.
    n: usize,
    /// Row-major, `cols` wide.
    t: Vec<f64>,
    cols: usize,
    rhs: Vec<f64>,
    dj: Vec<f64>,
    basis: Vec<usize>,
}

impl Tableau {
    fn new(p: &Problem) -> Tableau {
        let n = p.cost.len();
        let m = p.rows.len() + n;
        let cols = n + m;
        let mut t = vec![0.0; m * cols];
        let mut rhs = Vec::with_capacity(m);
        for (i, r) in p.rows.iter().enumerate() {
            let row = &mut t[i * cols..(i + 1) * cols];
            for (x, a) in row.iter_mut().zip(&r.a) {
                *x = -a;
            }
            row[n + i] = 1.0;
            rhs.push(-r.b);
        }
        for j in 0..n {
            let i = p.rows.len() + j;
            t[i * cols + j] = 1.0;
            t[i * cols + n + i] = 1.0;
            rhs.push(p.upper[j]);
        }
        let mut dj = p.cost.clone();
        dj.resize(cols, 0.0);
        Tableau {
            n,
            t,
            cols,
            rhs,
            dj,
            basis: (n..n + m).collect(),
        }
    }

    fn rows(&self) -> usize {
        self.rhs.len()
    }

    /// Adds `x_j ≥ v` (`up`) or `x_j ≤ v` as a row with a new slack, in
    /// terms of the current non-basic variables. `x_j` must be basic.
    fn bound(&mut self, j: usize, v: f64, up: bool) {
        let Some(r) = self.basis.iter().position(|&b| b == j) else {
            return;
        };
        let (old, cols) = (self.cols, self.cols + 1);
        let m = self.rows();
        let mut t = Vec::with_capacity((m + 1) * cols);
        for i in 0..m {
            t.extend_from_slice(&self.t[i * old..(i + 1) * old]);
            t.push(0.0);
        }
        // Row r: x_j + Σ T[r][k] x_k = β. For x_j ≤ v: s − Σ T[r][k] x_k
        // = v − β; for x_j ≥ v: s + Σ T[r][k] x_k = β − v.
        let sign = if up { 1.0 } else { -1.0 };
        for k in 0..old {
            let a = self.t[r * old + k];
            t.push(if k == j { 0.0 } else { sign * a });
        }
        t.push(1.0);
        let beta = self.rhs[r];
        self.rhs.push(if up { beta - v } else { v - beta });
        self.t = t;
        self.cols = cols;
        self.dj.push(0.0);
        self.basis.push(old);
    }

    /// The dual simplex: the most infeasible row leaves, the ratio test
    /// keeps every reduced cost ≥ 0.
    fn optimise(&mut self) -> Status {
        let w = self.cols;
        let mut pivots = 0;
        loop {
            let mut r = usize::MAX;
            let mut most = -TOL;
            for (i, &b) in self.rhs.iter().enumerate() {
                if b < most {
                    most = b;
                    r = i;
                }
            }
            if r == usize::MAX {
                return Status::Optimal;
            }
            let row = &self.t[r * w..(r + 1) * w];
            let mut e = usize::MAX;
            let mut ratio = f64::INFINITY;
            for (j, &a) in row.iter().enumerate() {
                if a < -1e-9 {
                    let q = self.dj[j].max(0.0) / -a;
                    if q < ratio - 1e-12 {
                        ratio = q;
                        e = j;
                    }
                }
            }
            if e == usize::MAX {
                return Status::Infeasible;
            }
            pivots += 1;
            if pivots > 50 * (w + self.rows()) {
                return Status::Limit;
            }
            self.pivot(r, e);
        }
    }

    fn pivot(&mut self, r: usize, e: usize) {
        let w = self.cols;
        let inv = 1.0 / self.t[r * w + e];
        for v in &mut self.t[r * w..(r + 1) * w] {
            *v *= inv;
        }
        self.t[r * w + e] = 1.0;
        self.rhs[r] *= inv;
        let br = self.rhs[r];
        let (before, rest) = self.t.split_at_mut(r * w);
        let (pr, after) = rest.split_at_mut(w);
        let rows = before.chunks_exact_mut(w).chain(after.chunks_exact_mut(w));
        let (rb, ra) = self.rhs.split_at_mut(r);
        let rhs = rb.iter_mut().chain(ra[1..].iter_mut());
        for (row, b) in rows.zip(rhs) {
            let f = row[e];
            if f != 0.0 {
                for (a, p) in row.iter_mut().zip(pr.iter()) {
                    *a -= f * p;
                }
                row[e] = 0.0;
                *b -= f * br;
            }
        }
        let f = self.dj[e];
        if f != 0.0 {
            for (a, p) in self.dj.iter_mut().zip(pr.iter()) {
                *a -= f * p;
            }
            self.dj[e] = 0.0;
        }
        self.basis[r] = e;
    }

    fn solution(&self) -> Vec<f64> {
        let mut x = vec![0.0; self.n];
        for (i, &b) in self.basis.iter().enumerate() {
            if b < self.n {
                x[b] = self.rhs[i].max(0.0);
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(name: &str, vcpu: f64, mem: f64, od: f64, spot: Option<f64>) -> InstanceType {
        InstanceType {
            provider: "t".into(),
            region: "r".into(),
            instance_type: name.into(),
            vcpu,
            memory_gib: mem,
            on_demand_hourly: od,
            reserved_1y_hourly: None,
            reserved_3y_hourly: None,
            spot_hourly: spot,
            spot_interruption: None,
            arch: None,
        }
    }

    /// Every count vector up to `cap` per variable, cheapest feasible.
    fn brute(
        types: &[InstanceType],
        d: &Demand,
        opts: &Constraints,
        reserved: &[u32],
        cap: u32,
    ) -> Option<f64> {
        let nt = types.len();
        let nv = 2 * nt;
        let mut best: Option<f64> = None;
        let mut x = vec![0u32; nv];
        loop {
            let c: Counts = [reserved.to_vec(), x[..nt].to_vec(), x[nt..].to_vec()];
            if crate::model::check_hour(types, d, opts, &c).is_ok() {
                let cost: f64 = (0..nt)
                    .map(|i| {
                        x[i] as f64 * types[i].on_demand_hourly
                            + x[nt + i] as f64 * types[i].spot_hourly.unwrap_or(0.0)
                    })
                    .sum();
                if best.is_none_or(|b| cost < b) {
                    best = Some(cost);
                }
            }
            let mut k = 0;
            loop {
                if k == nv {
                    return best;
                }
                x[k] += 1;
                if x[k] <= cap {
                    break;
                }
                x[k] = 0;
                k += 1;
            }
        }
    }

    fn cost_of(types: &[InstanceType], c: &Counts) -> f64 {
        (0..types.len())
            .map(|i| {
                c[1][i] as f64 * types[i].on_demand_hourly
                    + c[2][i] as f64 * types[i].spot_hourly.unwrap_or(0.0)
            })
            .sum()
    }

    #[test]
    fn matches_brute_force_on_random_hours() {
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for case in 0..30 {
            let types = vec![
                ty("c", 2.0, 4.0, 0.085 * (0.9 + 0.2 * rnd()), Some(0.03)),
                ty("m", 2.0, 8.0, 0.096 * (0.9 + 0.2 * rnd()), Some(0.04)),
                ty("r", 4.0, 32.0, 0.252 * (0.9 + 0.2 * rnd()), Some(0.1)),
            ];
            let d = Demand {
                vcpu: (4.0 + 8.0 * rnd()).round(),
                memory_gib: (8.0 + 32.0 * rnd()).round(),
            };
            let opts = Constraints {
                spot_max_share: [0.0, 0.3, 0.5][case % 3],
                survive_spot_loss: case % 2 == 0,
                max_vcpu: (case % 5 == 0).then_some(40.0),
                // The same cap bounds the enumeration.
                max_per_type: Some(if case % 7 == 0 { 4 } else { 6 }),
                ..Constraints::default()
            };
            let reserved = vec![(case % 2) as u32, 0, 0];
            let want = brute(&types, &d, &opts, &reserved, 6);
            let got = solve_hour(&types, &d, &opts, &[true; 3], &reserved, 1e-9, NODE_LIMIT);
            match (want, got) {
                (Some(w), HourSearch::Solved(c)) => {
                    crate::model::check_hour(&types, &d, &opts, &c).unwrap();
                    let g = cost_of(&types, &c);
                    assert!((g - w).abs() < 1e-9, "case {case}: {g} vs brute force {w}");
                }
                (None, HourSearch::Infeasible) => {}
                (w, g) => panic!("case {case}: brute force {w:?}, search {g:?}"),
            }
        }
    }

    #[test]
    fn reservations_count_and_caps_are_respected() {
        let types = vec![ty("a", 2.0, 8.0, 1.0, None), ty("b", 4.0, 16.0, 1.5, None)];
        let d = Demand {
            vcpu: 10.0,
            memory_gib: 40.0,
        };
        // 2 reserved of b cover 8 vCPU; the rest is one a.
        let got = solve_hour(
            &types,
            &d,
            &Constraints::default(),
            &[true, true],
            &[0, 2],
            1e-9,
            NODE_LIMIT,
        );
        assert_eq!(
            got,
            HourSearch::Solved([vec![0, 2], vec![1, 0], vec![0, 0]])
        );
        // A quota below the demand is infeasible.
        let opts = Constraints {
            max_vcpu: Some(8.0),
            ..Constraints::default()
        };
        let got = solve_hour(&types, &d, &opts, &[true, true], &[0, 0], 1e-9, NODE_LIMIT);
        assert_eq!(got, HourSearch::Infeasible);
    }
}
