//! The two-stage solve and the plan document (`optimize --json`).
use std::collections::HashMap;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::input::{Catalog, Demand, InstanceType, Service};
use crate::model::{
    self, Counts, Fixed, Level, Mode, Solved, cheapest_single, check_hour, integral,
};
use crate::{Error, Options, STAGE1_LEVELS, bb};

/// (1-year, 3-year) reservations per type.
type Reserved = Vec<(u32, u32)>;

/// A price per unit of capacity, if the type has that price.
type PricePer = dyn Fn(&InstanceType) -> Option<f64>;

/// Hours in an average month, for the per-month figures.
const MONTH_H: f64 = 730.0;

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanLine {
    /// Instance type.
    pub instance_type: String,
    /// `reserved_1y`, `reserved_3y`, `on_demand` or `spot`.
    pub pricing: String,
    /// Reservations: the count held over the horizon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// On-demand and spot: the count in each hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hourly_counts: Option<Vec<u32>>,
    /// Price per instance-hour.
    pub hourly_price: f64,
    /// Instance-hours over the horizon.
    pub instance_hours: f64,
    /// Cost over the horizon.
    pub cost: f64,
}

/// When a reservation pays for itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakEven {
    /// Instance type.
    pub instance_type: String,
    /// `reserved_1y` or `reserved_3y`.
    pub pricing: String,
    /// Reserved price / on-demand price: the share of hours an instance must
    /// be needed for the reservation to cost less than on-demand.
    pub break_even_utilization: f64,
    /// Reserved instances bought.
    pub count: u32,
    /// Share of the reserved vCPU-hours that demand actually used.
    pub utilization: f64,
}

/// A constraint that binds, with its price from the LP relaxation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    /// Short name, e.g. `spot_max_share`.
    pub constraint: String,
    /// Hours in which it binds.
    pub hours: usize,
    /// Shadow price in `unit`.
    pub shadow_price: f64,
    /// e.g. `$/month per percentage point`.
    pub unit: String,
    /// In words.
    pub note: String,
}

/// Replicas per service, with the N+1 spare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaPlan {
    /// Service.
    pub service: String,
    /// Replicas each hour, including the spare.
    pub hourly_replicas: Vec<u32>,
    /// vCPU per replica.
    pub replica_vcpu: f64,
    /// GiB per replica.
    pub replica_memory_gib: f64,
}

/// Per-hour figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HourlyPlan {
    /// Demand after headroom, vCPU.
    pub demand_vcpu: Vec<f64>,
    /// Demand after headroom, GiB.
    pub demand_memory_gib: Vec<f64>,
    /// Capacity bought, vCPU.
    pub capacity_vcpu: Vec<f64>,
    /// Cost of the hour (reservations amortised per hour).
    pub cost: Vec<f64>,
    /// Cost of the all-on-demand baseline in the hour.
    pub baseline_cost: Vec<f64>,
    /// Share of the demand's vCPU that reservations cover.
    pub commitment_coverage: Vec<f64>,
    /// Share of the reserved vCPU that demand uses.
    pub commitment_utilization: Vec<f64>,
    /// Spot share of the capacity's vCPU.
    pub spot_share: Vec<f64>,
}

/// How the plan was solved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SolverReport {
    /// `highs` (through good_lp).
    pub backend: String,
    /// Hours in the horizon.
    pub hours: usize,
    /// Distinct demand levels (hours that share a solution).
    pub levels: usize,
    /// Demand levels stage 1 decided the reservations over.
    pub stage1_levels: usize,
    /// Seconds: LP relaxation, stage 1, stage 2.
    pub lp_s: f64,
    /// Stage 1 seconds.
    pub stage1_s: f64,
    /// Stage 2 seconds.
    pub stage2_s: f64,
    /// Levels whose solve failed and got the on-demand fallback.
    pub fallbacks: usize,
    /// Notes on anything that did not go to plan.
    pub notes: Vec<String>,
}

/// The `optimize --json` document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `plan`.
    pub kind: String,
    /// Catalog header lines (date, source).
    pub catalog_notes: Vec<String>,
    /// The options the plan respects.
    pub options: Option<Options>,
    /// Cost of the plan over the horizon, USD.
    pub total_cost: f64,
    /// LP-relaxation lower bound on any plan's cost.
    pub lower_bound: f64,
    /// (total_cost − lower_bound) / total_cost.
    pub gap: f64,
    /// All on-demand, cheapest single type each hour.
    pub baseline_cost: f64,
    /// baseline_cost − total_cost.
    pub savings: f64,
    /// savings / baseline_cost.
    pub savings_share: f64,
    /// Cost per average month (730 h).
    pub monthly_cost: f64,
    /// Baseline per month.
    pub monthly_baseline: f64,
    /// Cost by pricing model.
    pub cost_by_pricing: HashMap<String, f64>,
    /// Cost by instance type.
    pub cost_by_type: HashMap<String, f64>,
    /// Where the savings come from, by pricing model (USD over the horizon).
    pub savings_by_source: HashMap<String, f64>,
    /// The lines of the plan.
    pub instances: Vec<PlanLine>,
    /// Reservation break-even per reserved type.
    pub break_even: Vec<BreakEven>,
    /// Constraints that bind.
    pub binding: Vec<Binding>,
    /// Replicas per service (when the demand came from forecasts).
    pub replicas: Vec<ReplicaPlan>,
    /// Per-hour figures.
    pub hourly: HourlyPlan,
    /// How it was solved.
    pub solver: SolverReport,
}

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

/// Solves the plan.
pub fn optimize(
    catalog: &Catalog,
    demand: &[Demand],
    opts: &Options,
    services: &[Service],
) -> Result<Plan, Error> {
    opts.validate()?;
    if demand.is_empty() {
        return Err(Error::Demand("the demand has no hours".into()));
    }
    let types: Vec<InstanceType> = catalog.types.clone();
    let nt = types.len();
    let mut allowed = vec![true; nt];
    // A type must fit one replica of every service.
    if !services.is_empty() {
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
    }
    let hours = demand.len();
    let h = hours as f64;
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
    check_size(&types, &allowed, &scaled)?;
    let (gv, gm) = model::divisors(&types, |i| allowed[i]);
    let rounded: Vec<Demand> = scaled
        .iter()
        .map(|d| Demand {
            vcpu: model::round_up(d.vcpu, gv),
            memory_gib: model::round_up(d.memory_gib, gm),
        })
        .collect();
    let (levels, of_hour) = levels_of(&rounded);
    let first_hour = |li: usize| of_hour.iter().position(|&x| x == li).unwrap_or(0);
    precheck_quota(&types, &allowed, &levels, opts, &first_hour)?;
    let limit = Duration::from_secs_f64(opts.time_limit_s);
    // Names the constraint and the hour when a solve finds no plan.
    let infeasible = || diagnose(&types, &allowed, &levels, h, opts, &first_hour, limit);
    let mut report = SolverReport {
        backend: "highs".into(),
        hours,
        levels: levels.len(),
        ..Default::default()
    };

    // 1. Lower bound and shadow prices.
    let t0 = Instant::now();
    let fixed_all = Fixed {
        allowed: allowed.clone(),
        reserved: vec![(0.0, 0.0); nt],
    };
    let lp = match model::solve(
        &types,
        &levels,
        h,
        opts,
        &fixed_all,
        Mode::Relaxed,
        opts.gap,
        limit,
    ) {
        Ok(s) => s,
        Err(Error::Infeasible(_)) => {
            return Err(infeasible());
        }
        Err(e) => return Err(e),
    };
    // What the survive-spot-loss rule costs, as the LP sees it.
    let survive_cost = if opts.survive_spot_loss && opts.spot_max_share > 0.0 {
        let without = Options {
            survive_spot_loss: false,
            ..opts.clone()
        };
        model::solve(
            &types,
            &levels,
            h,
            &without,
            &fixed_all,
            Mode::Relaxed,
            opts.gap,
            limit,
        )
        .ok()
        .map(|s| (lp.cost - s.cost).max(0.0))
    } else {
        None
    };
    report.lp_s = t0.elapsed().as_secs_f64();

    // Small models are solved exactly, all integer, in one go, when HiGHS
    // proves the optimum within EXACT_LIMIT; otherwise its incumbent
    // competes with the two-stage plan below.
    let t1 = Instant::now();
    let n_allowed = allowed.iter().filter(|&&a| a).count();
    let mut exact: Option<(Vec<Counts>, Reserved)> = None;
    let mut proven: Option<(Vec<Counts>, Reserved)> = None;
    if levels.len() * n_allowed <= EXACT_MAX_CELLS
        && let Ok(s) = model::solve(
            &types,
            &levels,
            h,
            opts,
            &fixed_all,
            Mode::Full,
            1e-6,
            limit.min(EXACT_LIMIT),
        )
        && let Ok(counts) = exact_counts(&types, &levels, opts, &s)
    {
        let reserved: Vec<(u32, u32)> = s
            .reserved
            .iter()
            .map(|&(a, b)| (a.round() as u32, b.round() as u32))
            .collect();
        check_types(&types, &counts, opts)?;
        if matches!(s.status, Some(good_lp::SolutionStatus::Optimal)) {
            report.stage1_s = t1.elapsed().as_secs_f64();
            report
                .notes
                .push("small model: solved exactly as one MILP (every count integer)".into());
            proven = Some((counts, reserved));
        } else {
            exact = Some((counts, reserved));
        }
    }

    let (counts, reserved) = if let Some(x) = proven {
        x
    } else {
        // 2. Reservations and the type set.
        let g = groups(&levels, STAGE1_LEVELS);
        report.stage1_levels = g.len();
        let (reserved, chosen) = match model::solve(
            &types,
            &g,
            h,
            opts,
            &fixed_all,
            Mode::Reservations,
            opts.gap / 20.0,
            limit,
        ) {
            Ok(s) => {
                report.notes.push(format!("stage 1 (integer reservations, hourly counts relaxed) cost {:.2}; LP relaxation {:.2}", s.cost, lp.cost));
                stage1_result(&types, &allowed, &s, opts)?
            }
            Err(Error::Infeasible(_)) => {
                return Err(infeasible());
            }
            Err(e) => {
                report.notes.push(format!(
                    "stage 1 failed ({e}); reservations rounded down from the LP relaxation"
                ));
                lp_fallback(&types, &allowed, &lp, opts)
            }
        };
        report.stage1_s = t1.elapsed().as_secs_f64();

        // 3. Hourly covering problems, in parallel.
        let t2 = Instant::now();
        // The survive rule gains from spreading spot over many pools, so it
        // keeps every chosen type.
        let fixed = Fixed {
            allowed: if opts.survive_spot_loss {
                chosen.clone()
            } else {
                candidates(&types, &chosen, &lp, &reserved)
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
            .map(|l| hourly(&types, l, opts, &fixed, &reserved, limit))
            .collect();
        let mut counts = Vec::with_capacity(levels.len());
        for (li, r) in per_level.into_iter().enumerate() {
            let (c, fell_back) = r.map_err(|e| match e {
                Error::Infeasible(m) => Error::Infeasible(format!("hour {}: {m}", first_hour(li))),
                e => e,
            })?;
            report.fallbacks += fell_back as usize;
            counts.push(c);
        }
        let (reserved, mut counts) = improve_reservations(
            &types,
            &levels,
            h,
            opts,
            &fixed.allowed,
            reserved,
            counts,
            &mut report,
        );
        if chosen != fixed.allowed {
            let n = widen(&types, &levels, opts, &chosen, &reserved, &mut counts);
            if n > 0 {
                report.notes.push(format!(
                    "{n} demand level(s) found a cheaper mix among all {} chosen types",
                    chosen.iter().filter(|&&c| c).count()
                ));
            }
        }
        report.stage2_s = t2.elapsed().as_secs_f64();
        check_types(&types, &counts, opts)?;
        let mut reserved = reserved;
        if let Some((c, r)) = exact
            && plan_cost(&types, &levels, h, &c, &r)
                < plan_cost(&types, &levels, h, &counts, &reserved)
        {
            report.notes.push(
            "the all-integer MILP's incumbent (not proven optimal in time) beat the two-stage plan"
                .into(),
        );
            counts = c;
            reserved = r;
        }
        (counts, reserved)
    };
    if report.fallbacks > 0 {
        report.notes.push(format!(
            "{} demand level(s) fell back to an on-demand cover after the solver failed or ran out of time",
            report.fallbacks
        ));
    }
    Ok(assemble(
        catalog,
        &types,
        &scaled,
        &levels,
        &of_hour,
        &counts,
        &reserved,
        &lp,
        opts,
        services,
        report,
        survive_cost,
    ))
}

/// Types that fit one replica of every service (all, without services).
/// The all-on-demand baseline of one hour: the cheapest single type, as
/// long as it keeps to the plan's caps (`--max-per-type`, `--max-vcpu`);
/// under a cap it binds, the cheapest on-demand mix within the same caps,
/// so a saving is never a cap the baseline ignored.
fn baseline_hour(types: &[InstanceType], allowed: &[bool], d: &Demand, opts: &Options) -> f64 {
    let single = cheapest_single(types, allowed, d);
    let within = |&(i, n, _): &(usize, u32, f64)| {
        opts.max_per_type.is_none_or(|c| n <= c)
            && opts
                .max_vcpu
                .is_none_or(|q| n as f64 * types[i].vcpu <= q + 1e-9)
    };
    if let Some(s) = single.filter(within) {
        return s.2;
    }
    let on_demand = Options {
        spot_max_share: 0.0,
        survive_spot_loss: false,
        ..opts.clone()
    };
    let none = vec![0; types.len()];
    match bb::solve_hour(
        types,
        d,
        &on_demand,
        allowed,
        &none,
        opts.gap,
        bb::NODE_LIMIT,
    ) {
        bb::Outcome::Solved(c) | bb::Outcome::Unproven(c) => types
            .iter()
            .zip(&c[1])
            .map(|(t, &n)| n as f64 * t.on_demand_hourly)
            .sum(),
        // No on-demand fleet keeps to the caps: the uncapped single type.
        bb::Outcome::Infeasible | bb::Outcome::GaveUp => single.map_or(0.0, |s| s.2),
    }
}

fn fits(types: &[InstanceType], services: &[Service]) -> Vec<bool> {
    let need_v = services.iter().map(|s| s.replica_vcpu).fold(0.0, f64::max);
    let need_m = services
        .iter()
        .map(|s| s.replica_memory_gib)
        .fold(0.0, f64::max);
    types
        .iter()
        .map(|t| t.vcpu >= need_v && t.memory_gib >= need_m)
        .collect()
}

/// Before any solve: an hour that needs more vCPU, or more memory, than the
/// quota can carry.
fn precheck_quota(
    types: &[InstanceType],
    allowed: &[bool],
    levels: &[Level],
    opts: &Options,
    first_hour: &dyn Fn(usize) -> usize,
) -> Result<(), Error> {
    let Some(q) = opts.max_vcpu else {
        return Ok(());
    };
    let (best, ratio) = types
        .iter()
        .enumerate()
        .filter(|(i, _)| allowed[*i])
        .map(|(_, t)| (t.instance_type.as_str(), t.memory_gib / t.vcpu))
        .fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
    for (li, l) in levels.iter().enumerate() {
        if l.d.vcpu > q + model::FEAS_TOL {
            return Err(Error::Infeasible(format!(
                "vCPU cover, hour {}: demand {:.1} vCPU exceeds --max-vcpu {q}; raise the quota",
                first_hour(li),
                l.d.vcpu
            )));
        }
        if l.d.memory_gib > q * ratio + model::FEAS_TOL {
            return Err(Error::Infeasible(format!(
                "memory cover, hour {}: demand {:.1} GiB, but {q} vCPU of quota carry at most {:.1} GiB \
                 (all {best}); raise --max-vcpu or add memory-optimised types",
                first_hour(li),
                l.d.memory_gib,
                q * ratio
            )));
        }
    }
    Ok(())
}

/// Names the constraint and the hour that make the model infeasible.
fn diagnose(
    types: &[InstanceType],
    allowed: &[bool],
    levels: &[Level],
    h: f64,
    opts: &Options,
    first_hour: &dyn Fn(usize) -> usize,
    limit: Duration,
) -> Error {
    let fixed = Fixed {
        allowed: allowed.to_vec(),
        reserved: vec![(0.0, 0.0); types.len()],
    };
    // Hardest hours first.
    let mut order: Vec<usize> = (0..levels.len()).collect();
    order.sort_by(|&a, &b| levels[b].d.memory_gib.total_cmp(&levels[a].d.memory_gib));
    let one_type = Options {
        max_types: None,
        ..opts.clone()
    };
    for li in order {
        let l = [levels[li]];
        let lvl = &levels[li].d;
        let hour = first_hour(li);
        if model::solve(
            types,
            &l,
            h,
            &one_type,
            &fixed,
            Mode::Relaxed,
            opts.gap,
            limit,
        )
        .is_err()
        {
            let relaxed = Options {
                survive_spot_loss: false,
                ..one_type.clone()
            };
            let what = if opts.survive_spot_loss
                && model::solve(
                    types,
                    &l,
                    h,
                    &relaxed,
                    &fixed,
                    Mode::Relaxed,
                    opts.gap,
                    limit,
                )
                .is_ok()
            {
                "survive-spot-loss"
            } else if lvl.memory_gib > 0.0 {
                "memory cover"
            } else {
                "vCPU cover"
            };
            return Error::Infeasible(format!(
                "{what}, hour {hour}: {:.1} vCPU / {:.1} GiB cannot be met within {}",
                lvl.vcpu,
                lvl.memory_gib,
                limits(opts)
            ));
        }
        if let Some(k) = opts.max_types
            && model::solve(
                types,
                &l,
                h,
                opts,
                &fixed,
                Mode::Reservations,
                opts.gap,
                limit,
            )
            .is_err()
        {
            return Error::Infeasible(format!(
                "max-types, hour {hour}: {:.1} vCPU / {:.1} GiB cannot be met with {k} instance type(s) \
                 within the quota; allow more types (--max-types) or a larger quota",
                lvl.vcpu, lvl.memory_gib
            ));
        }
    }
    if let Some(k) = opts.max_types {
        return Error::Infeasible(format!(
            "max-types: no {k} instance type(s) cover every hour together (each hour alone can be covered); \
             allow more types (--max-types)"
        ));
    }
    Error::Infeasible("the constraints admit no plan".into())
}

/// Time limit of one hourly problem.
const HOURLY_LIMIT: Duration = Duration::from_secs(2);

/// Most types taken from the LP relaxation's support into the hourly problems.
const CANDIDATES_FROM_LP: usize = 6;

/// The types the hourly problems choose among: the ones the LP relaxation
/// uses most, those reserved, and the two cheapest per vCPU and per GiB at
/// on-demand and at spot prices. A MILP over all 30-60 types per hour is
/// slow to prove and almost never uses a type outside this set.
fn candidates(
    types: &[InstanceType],
    chosen: &[bool],
    lp: &Solved,
    reserved: &[(u32, u32)],
) -> Vec<bool> {
    let mut c = vec![false; types.len()];
    // The LP's most used types (by vCPU-hours), and every reserved one.
    let mut usage: Vec<(usize, f64)> = (0..types.len())
        .filter(|&i| chosen[i])
        .map(|i| {
            let h: f64 = lp.hourly.iter().map(|l| l[i].0 + l[i].1).sum();
            (
                i,
                (h + (lp.reserved[i].0 + lp.reserved[i].1) * lp.hourly.len() as f64)
                    * types[i].vcpu,
            )
        })
        .filter(|x| x.1 > 1e-7)
        .collect();
    usage.sort_by(|a, b| b.1.total_cmp(&a.1));
    for &(i, _) in usage.iter().take(CANDIDATES_FROM_LP) {
        c[i] = true;
    }
    for i in 0..types.len() {
        c[i] |= chosen[i] && reserved[i].0 + reserved[i].1 > 0;
    }
    let price: [&PricePer; 4] = [
        &|t| Some(t.on_demand_hourly / t.vcpu),
        &|t| Some(t.on_demand_hourly / t.memory_gib),
        &|t| t.spot_hourly.map(|p| p / t.vcpu),
        &|t| t.spot_hourly.map(|p| p / t.memory_gib),
    ];
    for f in price {
        let mut order: Vec<(usize, f64)> = (0..types.len())
            .filter(|&i| chosen[i])
            .filter_map(|i| f(&types[i]).map(|p| (i, p)))
            .collect();
        order.sort_by(|a, b| a.1.total_cmp(&b.1));
        for &(i, _) in order.iter().take(2) {
            c[i] = true;
        }
    }
    c
}

/// Most instances any one hour may need, even of the largest type: the
/// model's size (and the branch and bound's memory) grows with the counts.
/// A million is past any real fleet; more is a demand in the wrong units.
pub const MAX_INSTANCES_PER_HOUR: f64 = 1e6;

/// Refuses demand that no fleet this optimizer plans could meet: an hour
/// that needs more than [`MAX_INSTANCES_PER_HOUR`] instances of the
/// largest allowed type, or a value that is not a number.
fn check_size(types: &[InstanceType], allowed: &[bool], demand: &[Demand]) -> Result<(), Error> {
    let kept = || {
        types
            .iter()
            .zip(allowed)
            .filter(|(_, a)| **a)
            .map(|(t, _)| t)
    };
    let most_v = kept().map(|t| t.vcpu).fold(0.0, f64::max);
    let most_m = kept().map(|t| t.memory_gib).fold(0.0, f64::max);
    for (hour, d) in demand.iter().enumerate() {
        if !(d.vcpu.is_finite() && d.memory_gib.is_finite() && d.vcpu >= 0.0 && d.memory_gib >= 0.0)
        {
            return Err(Error::Demand(format!(
                "hour {hour}: the demand ({} vCPU, {} GiB) must be finite numbers >= 0",
                d.vcpu, d.memory_gib
            )));
        }
        let need = (d.vcpu / most_v).max(d.memory_gib / most_m).ceil();
        if need > MAX_INSTANCES_PER_HOUR {
            return Err(Error::Demand(format!(
                "hour {hour} needs at least {need:.3e} instances even of the largest type \
                 ({most_v} vCPU, {most_m} GiB), more than the {MAX_INSTANCES_PER_HOUR:.0} per hour \
                 this optimizer plans: check the demand's units (vCPUs and GiB, not millicores or MiB)"
            )));
        }
    }
    Ok(())
}

/// The horizon-wide rule the hourly checks cannot see: at most K types.
fn check_types(types: &[InstanceType], counts: &[Counts], opts: &Options) -> Result<(), Error> {
    let Some(k) = opts.max_types else {
        return Ok(());
    };
    let used = (0..types.len())
        .filter(|&i| counts.iter().any(|c| c[0][i] + c[1][i] + c[2][i] > 0))
        .count();
    if used > k {
        return Err(Error::Solver(format!(
            "the plan uses {used} instance types, more than --max-types {k}"
        )));
    }
    Ok(())
}

/// Cost of a plan given per-level counts.
fn plan_cost(
    types: &[InstanceType],
    levels: &[Level],
    h: f64,
    counts: &[Counts],
    reserved: &[(u32, u32)],
) -> f64 {
    let mut c = 0.0;
    for (i, t) in types.iter().enumerate() {
        c += h
            * (reserved[i].0 as f64 * t.reserved_1y_hourly.unwrap_or(0.0)
                + reserved[i].1 as f64 * t.reserved_3y_hourly.unwrap_or(0.0));
    }
    for (l, n) in levels.iter().zip(counts) {
        c += l.weight * hour_cost(types, n);
    }
    c
}

/// Time the all-integer MILP of a small model gets.
const EXACT_LIMIT: Duration = Duration::from_secs(5);

/// Largest levels × types solved as one exact MILP.
pub const EXACT_MAX_CELLS: usize = 400;

/// The counts of an all-integer solution, checked hour by hour.
fn exact_counts(
    types: &[InstanceType],
    levels: &[Level],
    opts: &Options,
    s: &Solved,
) -> Result<Vec<Counts>, Error> {
    let nt = types.len();
    let mut r = vec![0; nt];
    for (i, t) in types.iter().enumerate() {
        r[i] = integral(s.reserved[i].0, &format!("reserved_1y {}", t.instance_type))?
            + integral(s.reserved[i].1, &format!("reserved_3y {}", t.instance_type))?;
    }
    levels
        .iter()
        .enumerate()
        .map(|(li, l)| checked_level(types, s, li, &r, &l.d, opts))
        .collect()
}

/// Level `li` of a solution as integer counts (with reservations `r`),
/// checked against every constraint of the hour.
fn checked_level(
    types: &[InstanceType],
    s: &Solved,
    li: usize,
    r: &[u32],
    d: &Demand,
    opts: &Options,
) -> Result<Counts, Error> {
    let nt = types.len();
    let mut o = vec![0; nt];
    let mut sp = vec![0; nt];
    for (i, t) in types.iter().enumerate() {
        o[i] = integral(s.hourly[li][i].0, &format!("on-demand {}", t.instance_type))?;
        sp[i] = integral(s.hourly[li][i].1, &format!("spot {}", t.instance_type))?;
    }
    let c: Counts = [r.to_vec(), o, sp];
    check_hour(types, d, opts, &c)
        .map_err(|m| Error::Solver(format!("the solver's plan fails the check: {m}")))?;
    Ok(c)
}

fn limits(opts: &Options) -> String {
    let mut v = Vec::new();
    if let Some(q) = opts.max_vcpu {
        v.push(format!("--max-vcpu {q}"));
    }
    if let Some(c) = opts.max_per_type {
        v.push(format!("--max-per-type {c}"));
    }
    if opts.survive_spot_loss {
        v.push("--survive-spot-loss".into());
    }
    if v.is_empty() {
        "the catalog's types".into()
    } else {
        v.join(" and ")
    }
}

/// Integer reservations and the chosen type set from stage 1.
fn stage1_result(
    types: &[InstanceType],
    allowed: &[bool],
    s: &Solved,
    opts: &Options,
) -> Result<(Reserved, Vec<bool>), Error> {
    let mut reserved = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        let r1 = integral(s.reserved[i].0, &format!("reserved_1y {}", t.instance_type))?;
        let r3 = integral(s.reserved[i].1, &format!("reserved_3y {}", t.instance_type))?;
        reserved.push((r1, r3));
    }
    let chosen = chosen_types(types, allowed, s, opts, &reserved);
    Ok((reserved, chosen))
}

/// Types in use in a stage-1 (or LP) solution; with `max_types`, the K most
/// used (by vCPU-hours), which always include the reserved ones.
fn chosen_types(
    types: &[InstanceType],
    allowed: &[bool],
    s: &Solved,
    opts: &Options,
    reserved: &[(u32, u32)],
) -> Vec<bool> {
    let Some(k) = opts.max_types else {
        return allowed.to_vec();
    };
    let mut use_: Vec<(usize, f64)> = types
        .iter()
        .enumerate()
        .filter(|(i, _)| allowed[*i])
        .map(|(i, t)| {
            let hourly: f64 = s.hourly.iter().map(|l| l[i].0 + l[i].1).sum();
            let r = (reserved[i].0 + reserved[i].1) as f64 * 1e6;
            (i, (hourly + r) * t.vcpu)
        })
        .collect();
    use_.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut chosen = vec![false; types.len()];
    for &(i, u) in use_.iter().take(k) {
        if u > 0.0 || use_.iter().all(|x| x.1 <= 0.0) {
            chosen[i] = true;
        }
    }
    chosen
}

fn lp_fallback(
    types: &[InstanceType],
    allowed: &[bool],
    lp: &Solved,
    opts: &Options,
) -> (Vec<(u32, u32)>, Vec<bool>) {
    let reserved: Vec<(u32, u32)> = lp
        .reserved
        .iter()
        .map(|&(a, b)| (a.floor() as u32, b.floor() as u32))
        .collect();
    let chosen = chosen_types(types, allowed, lp, opts, &reserved);
    (reserved, chosen)
}

/// One hour by the exact search over the candidate types, proven within a
/// fifth of the gap; `None` if it gave up or its plan fails the checker.
fn hour_bb(
    types: &[InstanceType],
    d: &Demand,
    opts: &Options,
    candidates: &[bool],
    r: &[u32],
) -> Option<Counts> {
    // With the survive rule every chosen type is a candidate and the search
    // rarely closes; HiGHS gets those hours sooner.
    let limit = if opts.survive_spot_loss {
        bb::SURVIVE_NODE_LIMIT
    } else {
        bb::NODE_LIMIT
    };
    match bb::solve_hour(types, d, opts, candidates, r, opts.gap / 5.0, limit) {
        bb::Outcome::Solved(c) => check_hour(types, d, opts, &c).is_ok().then_some(c),
        _ => None,
    }
}

/// The candidate types make the hourly searches fast, but a mix of other
/// sizes can fit an hour's vCPU and memory more closely. This pass
/// searches every chosen type in each hour, under a node limit, and keeps
/// whatever is cheaper and passes the checker.
fn widen(
    types: &[InstanceType],
    levels: &[Level],
    opts: &Options,
    chosen: &[bool],
    reserved: &Reserved,
    counts: &mut [Counts],
) -> usize {
    let r: Vec<u32> = reserved.iter().map(|&(a, b)| a + b).collect();
    let better: Vec<Option<Counts>> = levels
        .par_iter()
        .zip(counts.par_iter())
        .map(|(l, now)| {
            if hour_cost(types, now) == 0.0 {
                return None;
            }
            let gap = opts.gap / 5.0;
            match bb::solve_hour(types, &l.d, opts, chosen, &r, gap, bb::WIDE_NODE_LIMIT) {
                bb::Outcome::Solved(c) | bb::Outcome::Unproven(c)
                    if hour_cost(types, &c) < hour_cost(types, now) - 1e-9
                        && check_hour(types, &l.d, opts, &c).is_ok() =>
                {
                    Some(c)
                }
                _ => None,
            }
        })
        .collect();
    let mut n = 0;
    for (c, b) in counts.iter_mut().zip(better) {
        if let Some(b) = b {
            *c = b;
            n += 1;
        }
    }
    n
}

/// What one hour's on-demand and spot counts cost.
fn hour_cost(types: &[InstanceType], c: &Counts) -> f64 {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            c[1][i] as f64 * t.on_demand_hourly + c[2][i] as f64 * t.spot_hourly.unwrap_or(0.0)
        })
        .sum()
}

/// One level of stage 2: the integer hourly counts given the reservations.
/// Returns the counts and whether the fallback was used.
fn hourly(
    types: &[InstanceType],
    l: &Level,
    opts: &Options,
    fixed: &Fixed,
    reserved: &[(u32, u32)],
    limit: Duration,
) -> Result<(Counts, bool), Error> {
    let nt = types.len();
    let r: Vec<u32> = reserved.iter().map(|&(a, b)| a + b).collect();
    let zero = vec![0; nt];
    let only_reserved: Counts = [r.clone(), zero.clone(), zero.clone()];
    if check_hour(types, &l.d, opts, &only_reserved).is_ok() {
        return Ok((only_reserved, false));
    }
    // The dedicated search first: far cheaper than a MILP solver's set-up
    // on problems this small. Anything it gives up on, or calls
    // infeasible, goes to HiGHS, whose answer names the constraint.
    if let Some(c) = hour_bb(types, &l.d, opts, &fixed.allowed, &r) {
        return Ok((c, false));
    }
    let one = [Level {
        d: l.d,
        weight: 1.0,
    }];
    // Each hourly problem is small; its incumbent after a couple of seconds
    // is as good as it gets in practice, and it is checked below.
    let solved = model::solve(
        types,
        &one,
        1.0,
        opts,
        fixed,
        Mode::Hourly,
        opts.gap / 5.0,
        limit.min(HOURLY_LIMIT),
    );
    let from_solver = solved.and_then(|s| checked_level(types, &s, 0, &r, &l.d, opts));
    match from_solver {
        Ok(c) => Ok((c, false)),
        Err(Error::Infeasible(m)) => Err(Error::Infeasible(m)),
        Err(_) => {
            // A feasible on-demand cover of what the reservations leave.
            let mut cap = Demand::default();
            for (i, t) in types.iter().enumerate() {
                cap.vcpu += r[i] as f64 * t.vcpu;
                cap.memory_gib += r[i] as f64 * t.memory_gib;
            }
            let need = Demand {
                vcpu: (l.d.vcpu - cap.vcpu).max(0.0),
                memory_gib: (l.d.memory_gib - cap.memory_gib).max(0.0),
            };
            let (i, n, _) = cheapest_single(types, &fixed.allowed, &need)
                .ok_or_else(|| Error::Infeasible("no allowed instance type".into()))?;
            let mut o = zero.clone();
            o[i] = n;
            let c: Counts = [r.clone(), o, zero];
            check_hour(types, &l.d, opts, &c).map_err(Error::Infeasible)?;
            Ok((c, true))
        }
    }
}

/// Wall time the local search over the reservations may take.
const LOCAL_SEARCH_BUDGET: Duration = Duration::from_millis(500);

/// Stage 1 decides the reservations against relaxed hourly counts, so they
/// can be one instance off what the integer hours want. A local search
/// fixes that: one more or one fewer reservation of each type the hours
/// may use, every hour re-solved by the exact search, first improvement
/// kept, until no move helps or the budget is spent.
#[allow(clippy::too_many_arguments)]
fn improve_reservations(
    types: &[InstanceType],
    levels: &[Level],
    h: f64,
    opts: &Options,
    allowed: &[bool],
    mut reserved: Reserved,
    mut counts: Vec<Counts>,
    report: &mut SolverReport,
) -> (Reserved, Vec<Counts>) {
    let started = Instant::now();
    let before = plan_cost(types, levels, h, &counts, &reserved);
    let mut best = before;
    let eval = |res: &Reserved| -> Option<Vec<Counts>> {
        let r: Vec<u32> = res.iter().map(|&(a, b)| a + b).collect();
        levels
            .par_iter()
            .map(|l| hour_bb(types, &l.d, opts, allowed, &r))
            .collect()
    };
    let mut moves = 0;
    'search: loop {
        for i in (0..types.len()).filter(|&i| allowed[i] || reserved[i] != (0, 0)) {
            let t = &types[i];
            for term in [0, 1] {
                let offered = if term == 0 {
                    t.reserved_1y_hourly.is_some()
                } else {
                    t.reserved_3y_hourly.is_some() && opts.allow_3y
                };
                if !offered {
                    continue;
                }
                for delta in [1i64, -1] {
                    if started.elapsed() > LOCAL_SEARCH_BUDGET {
                        report.notes.push(format!(
                            "local search over the reservations stopped at its {:?} budget",
                            LOCAL_SEARCH_BUDGET
                        ));
                        break 'search;
                    }
                    let mut trial = reserved.clone();
                    let slot = if term == 0 {
                        &mut trial[i].0
                    } else {
                        &mut trial[i].1
                    };
                    let Some(v) = slot.checked_add_signed(delta as i32) else {
                        continue;
                    };
                    *slot = v;
                    if opts
                        .max_per_type
                        .is_some_and(|cap| trial[i].0 + trial[i].1 > cap)
                    {
                        continue;
                    }
                    let Some(c) = eval(&trial) else { continue };
                    let cost = plan_cost(types, levels, h, &c, &trial);
                    if cost < best - 1e-9 * best.abs().max(1.0) {
                        best = cost;
                        reserved = trial;
                        counts = c;
                        moves += 1;
                        continue 'search;
                    }
                }
            }
        }
        break;
    }
    if moves > 0 {
        report.notes.push(format!(
            "local search over the reservations: {moves} move(s) saved {:.2}",
            before - best
        ));
    }
    (reserved, counts)
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    catalog: &Catalog,
    types: &[InstanceType],
    demand: &[Demand],
    levels: &[Level],
    of_hour: &[usize],
    counts: &[Counts],
    reserved: &[(u32, u32)],
    lp: &Solved,
    opts: &Options,
    services: &[Service],
    solver: SolverReport,
    survive_cost: Option<f64>,
) -> Plan {
    let hours = demand.len();
    let h = hours as f64;
    let mut p = Plan {
        kind: "plan".into(),
        catalog_notes: catalog.notes.clone(),
        options: Some(opts.clone()),
        solver,
        ..Default::default()
    };
    let add =
        |m: &mut HashMap<String, f64>, k: &str, v: f64| *m.entry(k.to_string()).or_insert(0.0) += v;
    // Reservations.
    let mut res_vcpu = 0.0;
    for (i, t) in types.iter().enumerate() {
        for (n, pricing, price) in [
            (reserved[i].0, "reserved_1y", t.reserved_1y_hourly),
            (reserved[i].1, "reserved_3y", t.reserved_3y_hourly),
        ] {
            if n == 0 {
                continue;
            }
            let price = price.unwrap_or(0.0);
            let cost = n as f64 * price * h;
            res_vcpu += n as f64 * t.vcpu;
            p.instances.push(PlanLine {
                instance_type: t.instance_type.clone(),
                pricing: pricing.into(),
                count: Some(n),
                hourly_counts: None,
                hourly_price: price,
                instance_hours: n as f64 * h,
                cost,
            });
            add(&mut p.cost_by_pricing, pricing, cost);
            add(&mut p.cost_by_type, &t.instance_type, cost);
        }
    }
    // Hourly lines.
    for (i, t) in types.iter().enumerate() {
        for (k, pricing, price) in [
            (1, "on_demand", Some(t.on_demand_hourly)),
            (2, "spot", t.spot_hourly),
        ] {
            let series: Vec<u32> = of_hour.iter().map(|&li| counts[li][k][i]).collect();
            let total: u64 = series.iter().map(|&x| x as u64).sum();
            if total == 0 {
                continue;
            }
            let price = price.unwrap_or(0.0);
            let cost = total as f64 * price;
            p.instances.push(PlanLine {
                instance_type: t.instance_type.clone(),
                pricing: pricing.into(),
                count: None,
                hourly_counts: Some(series),
                hourly_price: price,
                instance_hours: total as f64,
                cost,
            });
            add(&mut p.cost_by_pricing, pricing, cost);
            add(&mut p.cost_by_type, &t.instance_type, cost);
        }
    }
    p.total_cost = p.instances.iter().map(|l| l.cost).sum();
    p.lower_bound = lp.cost.min(p.total_cost);
    p.gap = if p.total_cost > 0.0 {
        (p.total_cost - p.lower_bound) / p.total_cost
    } else {
        0.0
    };
    // Baseline and the hourly figures.
    // The baseline may use any type the plan may (all of them fit a replica).
    let all = &fits(types, services);
    let mut hp = HourlyPlan::default();
    let res_cost_h: f64 = p
        .instances
        .iter()
        .filter(|l| l.count.is_some())
        .map(|l| l.cost)
        .sum::<f64>()
        / h;
    for (hr, d) in demand.iter().enumerate() {
        let c = &counts[of_hour[hr]];
        let base = baseline_hour(types, all, d, opts);
        p.baseline_cost += base;
        let mut cap = 0.0;
        let mut spot = 0.0;
        let mut cost = res_cost_h;
        for (i, t) in types.iter().enumerate() {
            cap += (c[0][i] + c[1][i] + c[2][i]) as f64 * t.vcpu;
            spot += c[2][i] as f64 * t.vcpu;
            cost +=
                c[1][i] as f64 * t.on_demand_hourly + c[2][i] as f64 * t.spot_hourly.unwrap_or(0.0);
        }
        hp.demand_vcpu.push(d.vcpu);
        hp.demand_memory_gib.push(d.memory_gib);
        hp.capacity_vcpu.push(cap);
        hp.cost.push(cost);
        hp.baseline_cost.push(base);
        let used = res_vcpu.min(d.vcpu);
        hp.commitment_coverage
            .push(if d.vcpu > 0.0 { used / d.vcpu } else { 1.0 });
        hp.commitment_utilization
            .push(if res_vcpu > 0.0 { used / res_vcpu } else { 0.0 });
        hp.spot_share.push(if cap > 0.0 { spot / cap } else { 0.0 });
    }
    p.savings = p.baseline_cost - p.total_cost;
    p.savings_share = if p.baseline_cost > 0.0 {
        p.savings / p.baseline_cost
    } else {
        0.0
    };
    p.monthly_cost = p.total_cost / h * MONTH_H;
    p.monthly_baseline = p.baseline_cost / h * MONTH_H;
    // Where the savings come from: what the plan's reserved and spot
    // instance-hours would have cost on demand, minus what they cost.
    for l in &p.instances {
        let t = types
            .iter()
            .find(|t| t.instance_type == l.instance_type)
            .expect("plan type is in the catalog");
        let on_demand_equiv = l.instance_hours * t.on_demand_hourly;
        add(
            &mut p.savings_by_source,
            &l.pricing,
            on_demand_equiv - l.cost,
        );
    }
    let mix = p.savings - p.savings_by_source.values().sum::<f64>();
    p.savings_by_source
        .insert("instance_mix_and_capacity".into(), mix);
    // Break-even.
    for l in p.instances.iter().filter(|l| l.count.is_some()) {
        let t = types
            .iter()
            .find(|t| t.instance_type == l.instance_type)
            .expect("plan type is in the catalog");
        p.break_even.push(BreakEven {
            instance_type: l.instance_type.clone(),
            pricing: l.pricing.clone(),
            break_even_utilization: l.hourly_price / t.on_demand_hourly,
            count: l.count.unwrap_or(0),
            utilization: mean(&hp.commitment_utilization),
        });
    }
    p.binding = bindings(levels, lp, opts, h, survive_cost);
    p.hourly = hp;
    p.replicas = services
        .iter()
        .map(|s| ReplicaPlan {
            service: s.name.clone(),
            hourly_replicas: (0..hours)
                .map(|hr| {
                    s.replicas
                        .get(hr)
                        .or(s.replicas.last())
                        .copied()
                        .unwrap_or(0)
                        + 1
                })
                .collect(),
            replica_vcpu: s.replica_vcpu,
            replica_memory_gib: s.replica_memory_gib,
        })
        .collect();
    p
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Binding constraints and their prices, from the LP relaxation's duals.
fn bindings(
    levels: &[Level],
    lp: &Solved,
    opts: &Options,
    h: f64,
    survive_cost: Option<f64>,
) -> Vec<Binding> {
    let Some(d) = &lp.duals else { return vec![] };
    let per_month = MONTH_H / h;
    let mut out = Vec::new();
    let eps = 1e-9;
    let hours_where = |xs: &[f64]| -> (usize, f64) {
        let mut n = 0.0;
        let mut sum = 0.0;
        for (li, &x) in xs.iter().enumerate() {
            if x.abs() > eps {
                n += levels[li].weight;
                // The level's dual already carries its weight (hours).
                sum += x.abs();
            }
        }
        (n as usize, if n > 0.0 { sum / n } else { 0.0 })
    };
    let (n, avg) = hours_where(&d.vcpu);
    if n > 0 {
        out.push(Binding {
            constraint: "vcpu_cover".into(),
            hours: n,
            shadow_price: avg,
            unit: "$ per vCPU-hour".into(),
            note: format!("vCPU demand sets the capacity in {n} hours; one more vCPU of demand in such an hour costs about ${avg:.4}"),
        });
    }
    let (n, avg) = hours_where(&d.memory);
    if n > 0 {
        out.push(Binding {
            constraint: "memory_cover".into(),
            hours: n,
            shadow_price: avg,
            unit: "$ per GiB-hour".into(),
            note: format!("memory demand sets the capacity in {n} hours; one more GiB in such an hour costs about ${avg:.4}"),
        });
    }
    if !d.spot.is_empty() {
        // d(cost)/d(share) = −dual × total vCPU of the hour, per level.
        let mut n = 0.0;
        let mut value = 0.0;
        for (li, &x) in d.spot.iter().enumerate() {
            if x.abs() > eps {
                n += levels[li].weight;
                value += x.abs() * d.total_vcpu[li];
            }
        }
        if n > 0.0 {
            let per_point = value * 0.01 * per_month;
            out.push(Binding {
                constraint: "spot_max_share".into(),
                hours: n as usize,
                shadow_price: per_point,
                unit: "$/month per percentage point".into(),
                note: format!(
                    "the spot cap of {:.0}% binds in {} hours: one more percentage point of allowed spot saves about ${per_point:.2}/month",
                    opts.spot_max_share * 100.0,
                    n as usize
                ),
            });
        }
    }
    if let Some(extra) = survive_cost {
        let n = d
            .survive
            .chunks(2)
            .enumerate()
            .filter(|(_, x)| x.iter().any(|v| v.abs() > eps))
            .map(|(li, _)| levels[li].weight)
            .sum::<f64>();
        out.push(Binding {
            constraint: "survive_spot_loss".into(),
            hours: n as usize,
            shadow_price: extra * per_month,
            unit: "$/month".into(),
            note: format!(
                "surviving the loss of the largest spot pool binds in {} hours and costs about ${:.2}/month (LP relaxation with and without the rule)",
                n as usize,
                extra * per_month
            ),
        });
    }
    out
}
