//! The solve: one [`Problem`] (the demand as the solves see it), its LP
//! lower bound, the exact MILP of a small model, else the two stages
//! (reservations, then the hourly problems and a local search), and the
//! plan document assembled from the counts. The plan's types are the
//! contract's ([`contracts::plan`]).
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use contracts::plan::{
    Binding, BreakEven, HourlyPlan, MONTH_HOURS, Plan, PlanLine, PlanMonth, PlanTag, ReplicaPlan,
    SolverReport,
};
use rayon::prelude::*;

use crate::input::{Catalog, Demand, InstanceType, Service};
use crate::model::{
    self, Counts, Fixed, Level, Mode, Solved, cheapest_single, check_hour, integral,
};
use crate::{Constraints, Error, STAGE1_LEVELS, bb};

mod assemble;
mod checks;
mod search;
mod stages;

use assemble::*;
use checks::*;
use search::*;
use stages::*;

pub use stages::EXACT_MAX_CELLS;

/// (1-year, 3-year) reservations per type.
type Reserved = Vec<(u32, u32)>;

/// A price per unit of capacity, if the type has that price.
type PricePer = dyn Fn(&InstanceType) -> Option<f64>;

/// Hours in an average month, for the per-month figures.
const MONTH_H: f64 = MONTH_HOURS as f64;

fn key(d: &Demand) -> (u64, u64) {
    (d.vcpu.to_bits(), d.memory_gib.to_bits())
}

/// Groups hours by equal demand.
fn levels_of(demand: &[Demand]) -> (Vec<Level>, Vec<usize>) {
    let mut idx: HashMap<(u64, u64), usize> = HashMap::new();
    let mut levels: Vec<Level> = Vec::new();
    let mut of_hour = Vec::with_capacity(demand.len());
    for d in demand {
        let i = *idx.entry(key(d)).or_insert_with(|| {
            levels.push(Level { d: *d, weight: 0.0 });
            levels.len() - 1
        });
        levels[i].weight += 1.0;
        of_hour.push(i);
    }
    (levels, of_hour)
}

/// At most `k` weighted groups of the levels, sorted by vCPU then memory,
/// each group carrying its hour-weighted mean demand.
fn groups(levels: &[Level], k: usize) -> Vec<Level> {
    if levels.len() <= k {
        return levels.to_vec();
    }
    let mut sorted = levels.to_vec();
    sorted.sort_by(|a, b| {
        a.d.vcpu
            .total_cmp(&b.d.vcpu)
            .then(a.d.memory_gib.total_cmp(&b.d.memory_gib))
    });
    let total: f64 = sorted.iter().map(|l| l.weight).sum();
    let per = total / k as f64;
    let mut out = Vec::new();
    let mut acc = Level {
        d: Demand::default(),
        weight: 0.0,
    };
    let mut cum = 0.0;
    for l in &sorted {
        acc.d.vcpu += l.d.vcpu * l.weight;
        acc.d.memory_gib += l.d.memory_gib * l.weight;
        acc.weight += l.weight;
        cum += l.weight;
        if cum >= per * (out.len() + 1) as f64 - 1e-9 {
            out.push(Level {
                d: Demand {
                    vcpu: acc.d.vcpu / acc.weight,
                    memory_gib: acc.d.memory_gib / acc.weight,
                },
                weight: acc.weight,
            });
            acc = Level {
                d: Demand::default(),
                weight: 0.0,
            };
        }
    }
    if acc.weight > 0.0 {
        out.push(Level {
            d: Demand {
                vcpu: acc.d.vcpu / acc.weight,
                memory_gib: acc.d.memory_gib / acc.weight,
            },
            weight: acc.weight,
        });
    }
    // The peak itself always gets its own level, so reservations are never
    // decided on demand smoothed below the horizon's maximum.
    if let Some(peak) = sorted.last() {
        out.push(Level {
            d: peak.d,
            weight: 0.0,
        });
    }
    out
}

/// One optimisation problem: the catalog's types, the demand as the
/// solves see it (with headroom, rounded to the types' common divisors and
/// grouped into levels of equal demand), and the options.
struct Problem<'a> {
    catalog: &'a Catalog,
    types: &'a [InstanceType],
    /// Types that fit one replica of every service.
    allowed: Vec<bool>,
    /// Demand × (1 + headroom), per hour.
    scaled: Vec<Demand>,
    /// The distinct rounded demands, weighted by their hours.
    levels: Vec<Level>,
    /// Each hour's level.
    of_hour: Vec<usize>,
    /// Hours in the horizon.
    h: f64,
    opts: &'a Constraints,
    services: &'a [Service],
    /// Wall-time limit of each solve.
    limit: Duration,
}

impl<'a> Problem<'a> {
    fn new(
        catalog: &'a Catalog,
        demand: &[Demand],
        opts: &'a Constraints,
        services: &'a [Service],
    ) -> Result<Self, Error> {
        let types = &catalog.types[..];
        let allowed = replica_fits(types, services)?;
        let scaled: Vec<Demand> = demand
            .iter()
            .map(|d| Demand {
                vcpu: d.vcpu * (1.0 + opts.headroom),
                memory_gib: d.memory_gib * (1.0 + opts.headroom),
            })
            .collect();
        // Capacity comes in multiples of the allowed types' common divisors, so
        // hours whose demand rounds up to the same multiples have the same
        // integer solutions: one level each (exact, and fewer problems).
        check_size(types, &allowed, &scaled)?;
        let (gv, gm) = model::divisors(types, |i| allowed[i]);
        let rounded: Vec<Demand> = scaled
            .iter()
            .map(|d| Demand {
                vcpu: model::round_up(d.vcpu, gv),
                memory_gib: model::round_up(d.memory_gib, gm),
            })
            .collect();
        let (levels, of_hour) = levels_of(&rounded);
        let p = Problem {
            catalog,
            types,
            allowed,
            scaled,
            levels,
            of_hour,
            h: demand.len() as f64,
            opts,
            services,
            limit: Duration::from_secs_f64(opts.time_limit_s),
        };
        precheck_quota(types, &p.allowed, &p.levels, opts, &|li| p.first_hour(li))?;
        Ok(p)
    }

    /// The first hour of a level, for messages.
    fn first_hour(&self, li: usize) -> usize {
        self.of_hour.iter().position(|&x| x == li).unwrap_or(0)
    }

    /// Names the constraint and the hour when a solve finds no plan.
    fn infeasible(&self) -> Error {
        let first_hour = |li| self.first_hour(li);
        diagnose(
            self.types,
            &self.allowed,
            &self.levels,
            self.h,
            self.opts,
            &first_hour,
            self.limit,
        )
    }

    /// One solve of `levels` (all of them, or stage 1's groups).
    fn solve(
        &self,
        levels: &[Level],
        opts: &Constraints,
        fixed: &Fixed,
        mode: Mode,
        gap: f64,
        limit: Duration,
    ) -> Result<Solved, Error> {
        model::solve(self.types, levels, self.h, opts, fixed, mode, gap, limit)
    }
}

/// A type must fit one replica of every service.
fn replica_fits(types: &[InstanceType], services: &[Service]) -> Result<Vec<bool>, Error> {
    let mut allowed = vec![true; types.len()];
    if services.is_empty() {
        return Ok(allowed);
    }
    let need_v = services.iter().map(|s| s.replica_vcpu).fold(0.0, f64::max);
    let need_m = services
        .iter()
        .map(|s| s.replica_memory_gib)
        .fold(0.0, f64::max);
    for (i, t) in types.iter().enumerate() {
        allowed[i] = t.vcpu >= need_v && t.memory_gib >= need_m;
    }
    if !allowed.iter().any(|&a| a) {
        return Err(Error::Infeasible(format!(
            "no instance type in the catalog fits one replica ({need_v} vCPU, {need_m} GiB); \
             lower the per-replica requests or add larger types"
        )));
    }
    Ok(allowed)
}

/// Solves the plan.
pub fn optimize(
    catalog: &Catalog,
    demand: &[Demand],
    opts: &Constraints,
    services: &[Service],
) -> Result<Plan, Error> {
    crate::validate(opts)?;
    if demand.is_empty() {
        return Err(Error::Demand("the demand has no hours".into()));
    }
    // Only the types the options allow (x86_64 unless asked otherwise).
    let catalog = &crate::select::select(catalog, opts)?;
    let p = Problem::new(catalog, demand, opts, services)?;
    let mut report = SolverReport {
        backend: "highs".into(),
        hours: demand.len(),
        levels: p.levels.len(),
        ..Default::default()
    };
    let fixed_all = Fixed {
        allowed: p.allowed.clone(),
        reserved: vec![(0.0, 0.0); p.types.len()],
    };

    // 1. Lower bound and shadow prices.
    let t0 = Instant::now();
    let (lp, survive_cost) = lower_bound(&p, &fixed_all)?;
    report.lp_s = t0.elapsed().as_secs_f64();

    // Small models are solved exactly, all integer, in one go, when HiGHS
    // proves the optimum within EXACT_LIMIT; otherwise its incumbent
    // competes with the two-stage plan below.
    let t1 = Instant::now();
    let (proven, exact) = exact_milp(&p, &fixed_all)?;
    let (counts, reserved) = match proven {
        Some(x) => {
            report.stage1_s = t1.elapsed().as_secs_f64();
            report
                .notes
                .push("small model: solved exactly as one MILP (every count integer)".into());
            x
        }
        None => two_stage(&p, &fixed_all, &lp, exact, t1, &mut report)?,
    };
    if report.fallbacks > 0 {
        report.notes.push(format!(
            "{} demand level(s) fell back to an on-demand cover after the solver failed or ran out of time",
            report.fallbacks
        ));
    }
    Ok(assemble(&p, &counts, &reserved, &lp, report, survive_cost))
}

/// The LP relaxation over every level, and what the survive-spot-loss rule
/// costs as the LP sees it.
fn lower_bound(p: &Problem, fixed_all: &Fixed) -> Result<(Solved, Option<f64>), Error> {
    let opts = p.opts;
    let lp = match p.solve(&p.levels, opts, fixed_all, Mode::Relaxed, opts.gap, p.limit) {
        Ok(s) => s,
        Err(Error::Infeasible(_)) => return Err(p.infeasible()),
        Err(e) => return Err(e),
    };
    let survive_cost = if opts.survive_spot_loss && opts.spot_max_share > 0.0 {
        let without = Constraints {
            survive_spot_loss: false,
            ..opts.clone()
        };
        p.solve(
            &p.levels,
            &without,
            fixed_all,
            Mode::Relaxed,
            opts.gap,
            p.limit,
        )
        .ok()
        .map(|s| (lp.cost - s.cost).max(0.0))
    } else {
        None
    };
    Ok((lp, survive_cost))
}

/// Counts per level and the reservations.
type Solution = (Vec<Counts>, Reserved);

/// A small model as one all-integer MILP: (proven optimal, or else the
/// incumbent found in time). Neither when the model is too large or the
/// solve fails.
fn exact_milp(
    p: &Problem,
    fixed_all: &Fixed,
) -> Result<(Option<Solution>, Option<Solution>), Error> {
    let n_allowed = p.allowed.iter().filter(|&&a| a).count();
    if p.levels.len() * n_allowed > EXACT_MAX_CELLS {
        return Ok((None, None));
    }
    let limit = p.limit.min(EXACT_LIMIT);
    let Ok(s) = p.solve(&p.levels, p.opts, fixed_all, Mode::Full, 1e-6, limit) else {
        return Ok((None, None));
    };
    let Ok(counts) = exact_counts(p.types, &p.levels, p.opts, &s) else {
        return Ok((None, None));
    };
    let reserved: Reserved = s
        .reserved
        .iter()
        .map(|&(a, b)| (a.round() as u32, b.round() as u32))
        .collect();
    check_types(p.types, &counts, p.opts)?;
    Ok(
        if matches!(s.status, Some(good_lp::SolutionStatus::Optimal)) {
            (Some((counts, reserved)), None)
        } else {
            (None, Some((counts, reserved)))
        },
    )
}

/// Stage 1 (reservations and the type set over grouped levels), stage 2
/// (the hourly problems in parallel, the local search, the widening to
/// every chosen type), then the better of that and the exact MILP's
/// incumbent.
fn two_stage(
    p: &Problem,
    fixed_all: &Fixed,
    lp: &Solved,
    exact: Option<Solution>,
    t1: Instant,
    report: &mut SolverReport,
) -> Result<Solution, Error> {
    let (types, levels, h, opts) = (p.types, &p.levels[..], p.h, p.opts);
    let (reserved, chosen) = stage1(p, fixed_all, lp, report)?;
    report.stage1_s = t1.elapsed().as_secs_f64();

    let t2 = Instant::now();
    // The survive rule gains from spreading spot over many pools, so it
    // keeps every chosen type.
    let fixed = Fixed {
        allowed: if opts.survive_spot_loss {
            chosen.clone()
        } else {
            candidates(types, &chosen, lp, &reserved)
        },
        reserved: reserved
            .iter()
            .map(|&(a, b)| (a as f64, b as f64))
            .collect(),
    };
    report.notes.push(format!(
        "hourly problems over {} candidate types (the LP relaxation's most used, the reserved, and the cheapest per vCPU and per GiB)",
        fixed.allowed.iter().filter(|&&a| a).count()
    ));
    let per_level: Vec<Result<(Counts, bool), Error>> = levels
        .par_iter()
        .map(|l| hourly(types, l, opts, &fixed, &reserved, p.limit))
        .collect();
    let mut counts = Vec::with_capacity(levels.len());
    for (li, r) in per_level.into_iter().enumerate() {
        let (c, fell_back) = r.map_err(|e| match e {
            Error::Infeasible(m) => Error::Infeasible(format!("hour {}: {m}", p.first_hour(li))),
            e => e,
        })?;
        report.fallbacks += fell_back as usize;
        counts.push(c);
    }
    let (mut reserved, mut counts) =
        improve_reservations(p, &fixed.allowed, reserved, counts, report);
    if chosen != fixed.allowed {
        let n = widen(types, levels, opts, &chosen, &reserved, &mut counts);
        if n > 0 {
            report.notes.push(format!(
                "{n} demand level(s) found a cheaper mix among all {} chosen types",
                chosen.iter().filter(|&&c| c).count()
            ));
        }
    }
    report.stage2_s = t2.elapsed().as_secs_f64();
    check_types(types, &counts, opts)?;
    if let Some((c, r)) = exact
        && plan_cost(types, levels, h, &c, &r) < plan_cost(types, levels, h, &counts, &reserved)
    {
        report.notes.push(
            "the all-integer MILP's incumbent (not proven optimal in time) beat the two-stage plan"
                .into(),
        );
        counts = c;
        reserved = r;
    }
    Ok((counts, reserved))
}

/// Stage 1: integer reservations and the type set over at most
/// [`STAGE1_LEVELS`] groups of levels; the LP relaxation rounded down
/// when that solve fails.
fn stage1(
    p: &Problem,
    fixed_all: &Fixed,
    lp: &Solved,
    report: &mut SolverReport,
) -> Result<(Reserved, Vec<bool>), Error> {
    let g = groups(&p.levels, STAGE1_LEVELS);
    report.stage1_levels = g.len();
    let opts = p.opts;
    match p.solve(
        &g,
        opts,
        fixed_all,
        Mode::Reservations,
        opts.gap / 20.0,
        p.limit,
    ) {
        Ok(s) => {
            report.notes.push(format!(
                "stage 1 (integer reservations, hourly counts relaxed) cost {:.2}; LP relaxation {:.2}",
                s.cost, lp.cost
            ));
            stage1_result(p.types, &p.allowed, &s, opts)
        }
        Err(Error::Infeasible(_)) => Err(p.infeasible()),
        Err(e) => {
            report.notes.push(format!(
                "stage 1 failed ({e}); reservations rounded down from the LP relaxation"
            ));
            Ok(lp_fallback(p.types, &p.allowed, lp, opts))
        }
    }
}
