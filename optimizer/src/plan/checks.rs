//! Checks before and after the solves: what no plan can meet (named by
//! its constraint and hour), the all-on-demand baseline, and the checker
//! every returned solution passes.
use super::*;

/// Types that fit one replica of every service (all, without services).
/// The all-on-demand baseline of one hour: the cheapest single type, as
/// long as it keeps to the plan's caps (`--max-per-type`, `--max-vcpu`);
/// under a cap it binds, the cheapest on-demand mix within the same caps,
/// so a saving is never a cap the baseline ignored.
pub(super) fn baseline_hour(
    types: &[InstanceType],
    allowed: &[bool],
    d: &Demand,
    opts: &Constraints,
) -> f64 {
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
    let on_demand = Constraints {
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
        bb::HourSearch::Solved(c) | bb::HourSearch::Unproven(c) => types
            .iter()
            .zip(&c[1])
            .map(|(t, &n)| n as f64 * t.on_demand_hourly)
            .sum(),
        // No on-demand fleet keeps to the caps: the uncapped single type.
        bb::HourSearch::Infeasible | bb::HourSearch::GaveUp => single.map_or(0.0, |s| s.2),
    }
}

pub(super) fn fits(types: &[InstanceType], services: &[Service]) -> Vec<bool> {
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
pub(super) fn precheck_quota(
    types: &[InstanceType],
    allowed: &[bool],
    levels: &[Level],
    opts: &Constraints,
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
pub(super) fn diagnose(
    types: &[InstanceType],
    allowed: &[bool],
    levels: &[Level],
    h: f64,
    opts: &Constraints,
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
    let one_type = Constraints {
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
            let relaxed = Constraints {
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

/// Refuses demand that no fleet this optimizer plans could meet: an hour
/// that needs more than [`MAX_INSTANCES_PER_HOUR`] instances of the
/// largest allowed type, or a value that is not a number.
pub(super) fn check_size(
    types: &[InstanceType],
    allowed: &[bool],
    demand: &[Demand],
) -> Result<(), Error> {
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
pub(super) fn check_types(
    types: &[InstanceType],
    counts: &[Counts],
    opts: &Constraints,
) -> Result<(), Error> {
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

pub(super) fn limits(opts: &Constraints) -> String {
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
