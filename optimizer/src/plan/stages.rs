//! The solves behind the two stages: the candidate types, stage 1's
//! reservations, the hourly covering problems and their fallbacks.
use super::*;

/// Time limit of one hourly problem.
pub(super) const HOURLY_LIMIT: Duration = Duration::from_secs(2);

/// Most types taken from the LP relaxation's support into the hourly problems.
pub(super) const CANDIDATES_FROM_LP: usize = 6;

/// The types the hourly problems choose among: the ones the LP relaxation
/// uses most, those reserved, and the two cheapest per vCPU and per GiB at
/// on-demand and at spot prices. A MILP over all 30-60 types per hour is
/// slow to prove and almost never uses a type outside this set.
pub(super) fn candidates(
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

/// Cost of a plan given per-level counts.
pub(super) fn plan_cost(
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
pub(super) const EXACT_LIMIT: Duration = Duration::from_secs(5);

/// Largest levels × types solved as one exact MILP.
pub const EXACT_MAX_CELLS: usize = 400;

/// The counts of an all-integer solution, checked hour by hour.
pub(super) fn exact_counts(
    types: &[InstanceType],
    levels: &[Level],
    opts: &Constraints,
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
pub(super) fn checked_level(
    types: &[InstanceType],
    s: &Solved,
    li: usize,
    r: &[u32],
    d: &Demand,
    opts: &Constraints,
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

/// Integer reservations and the chosen type set from stage 1.
pub(super) fn stage1_result(
    types: &[InstanceType],
    allowed: &[bool],
    s: &Solved,
    opts: &Constraints,
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
pub(super) fn chosen_types(
    types: &[InstanceType],
    allowed: &[bool],
    s: &Solved,
    opts: &Constraints,
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

pub(super) fn lp_fallback(
    types: &[InstanceType],
    allowed: &[bool],
    lp: &Solved,
    opts: &Constraints,
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
pub(super) fn hour_bb(
    types: &[InstanceType],
    d: &Demand,
    opts: &Constraints,
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
        bb::HourSearch::Solved(c) => check_hour(types, d, opts, &c).is_ok().then_some(c),
        _ => None,
    }
}

/// The candidate types make the hourly searches fast, but a mix of other
/// sizes can fit an hour's vCPU and memory more closely. This pass
/// searches every chosen type in each hour, under a node limit, and keeps
/// whatever is cheaper and passes the checker.
pub(super) fn widen(
    types: &[InstanceType],
    levels: &[Level],
    opts: &Constraints,
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
                bb::HourSearch::Solved(c) | bb::HourSearch::Unproven(c)
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
pub(super) fn hour_cost(types: &[InstanceType], c: &Counts) -> f64 {
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
pub(super) fn hourly(
    types: &[InstanceType],
    l: &Level,
    opts: &Constraints,
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
