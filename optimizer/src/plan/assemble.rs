//! The plan document from the solved counts: its lines, the baseline,
//! the hourly figures, where the savings come from, the break-even and the
//! binding constraints.
use std::collections::BTreeMap;

use super::*;

/// The plan document from the solved counts per level and the reservations.
pub(super) fn assemble(
    p: &Problem,
    counts: &[Counts],
    reserved: &[(u32, u32)],
    lp: &Solved,
    solver: SolverReport,
    survive_cost: Option<f64>,
) -> Plan {
    let mut plan = Plan {
        kind: PlanTag,
        catalog_notes: p.catalog.notes.clone(),
        options: Some(p.opts.clone()),
        solver,
        ..Default::default()
    };
    plan.instances = reservation_lines(p, reserved);
    plan.instances.extend(hourly_lines(p, counts));
    for l in &plan.instances {
        let arm =
            p.catalog.types.iter().any(|t| {
                t.instance_type == l.instance_type && crate::select::arch_of(t) == "arm64"
            });
        if arm && !plan.arm64_types.contains(&l.instance_type) {
            plan.arm64_types.push(l.instance_type.clone());
        }
    }
    for l in &plan.instances {
        add(&mut plan.cost_by_pricing, &l.pricing, l.cost);
        add(&mut plan.cost_by_type, &l.instance_type, l.cost);
    }
    plan.total_cost = plan.instances.iter().map(|l| l.cost).sum();
    plan.committed_after_horizon = contracts::plan::RESERVATION_TERMS
        .iter()
        .map(|(pricing, _)| plan.owed_after_horizon(pricing))
        .sum();
    plan.lower_bound = lp.cost.min(plan.total_cost);
    plan.gap = if plan.total_cost > 0.0 {
        (plan.total_cost - plan.lower_bound) / plan.total_cost
    } else {
        0.0
    };
    let (hourly, baseline_cost, months) = hourly_figures(p, counts, reserved, &plan.instances);
    plan.on_demand_equivalent = months.iter().map(|m| m.on_demand_equivalent).sum();
    plan.effective_savings_rate = esr(plan.on_demand_equivalent, plan.total_cost);
    plan.months = months;
    plan.after_horizon_replaces = after_horizon_replaces(p, &plan);
    plan.baseline_cost = baseline_cost;
    plan.savings = plan.baseline_cost - plan.total_cost;
    plan.savings_share = if plan.baseline_cost > 0.0 {
        plan.savings / plan.baseline_cost
    } else {
        0.0
    };
    plan.monthly_cost = plan.total_cost / p.h * MONTH_H;
    plan.monthly_baseline = plan.baseline_cost / p.h * MONTH_H;
    let utilization = mean(&hourly.commitment_utilization);
    plan.savings_by_source = savings_by_source(p, &plan, utilization);
    plan.break_even = break_even(p, &plan.instances, utilization);
    plan.binding = bindings(&p.levels, lp, p.opts, p.h, survive_cost);
    plan.hourly = hourly;
    plan.replicas = replica_plans(p);
    plan
}

fn add(m: &mut BTreeMap<String, f64>, k: &str, v: f64) {
    *m.entry(k.to_string()).or_insert(0.0) += v;
}

/// One line per reserved (type, term), held over the horizon.
fn reservation_lines(p: &Problem, reserved: &[(u32, u32)]) -> Vec<PlanLine> {
    let mut out = Vec::new();
    for (i, t) in p.types.iter().enumerate() {
        for (n, pricing, price) in [
            (reserved[i].0, "reserved_1y", t.reserved_1y_hourly),
            (reserved[i].1, "reserved_3y", t.reserved_3y_hourly),
        ] {
            if n == 0 {
                continue;
            }
            let price = price.unwrap_or(0.0);
            out.push(PlanLine {
                instance_type: t.instance_type.clone(),
                pricing: pricing.into(),
                count: Some(n),
                hourly_counts: None,
                hourly_price: price,
                instance_hours: n as f64 * p.h,
                cost: n as f64 * price * p.h,
            });
        }
    }
    out
}

/// One line per (type, on-demand or spot) used in any hour, with its count
/// in each hour.
fn hourly_lines(p: &Problem, counts: &[Counts]) -> Vec<PlanLine> {
    let mut out = Vec::new();
    for (i, t) in p.types.iter().enumerate() {
        for (k, pricing, price) in [
            (1, "on_demand", Some(t.on_demand_hourly)),
            (2, "spot", t.spot_hourly),
        ] {
            let series: Vec<u32> = p.of_hour.iter().map(|&li| counts[li][k][i]).collect();
            let total: u64 = series.iter().map(|&x| x as u64).sum();
            if total == 0 {
                continue;
            }
            let price = price.unwrap_or(0.0);
            out.push(PlanLine {
                instance_type: t.instance_type.clone(),
                pricing: pricing.into(),
                count: None,
                hourly_counts: Some(series),
                hourly_price: price,
                instance_hours: total as f64,
                cost: total as f64 * price,
            });
        }
    }
    out
}

/// Per hour: demand, capacity, cost, the baseline's cost, commitment
/// coverage and utilisation, spot share; and the baseline over the horizon.
fn hourly_figures(
    p: &Problem,
    counts: &[Counts],
    reserved: &[(u32, u32)],
    lines: &[PlanLine],
) -> (HourlyPlan, f64, Vec<PlanMonth>) {
    let types = p.types;
    // Reserved vCPU, summed as the lines are (from +0.0, in type order).
    let res_vcpu = types
        .iter()
        .zip(reserved)
        .flat_map(|(t, &(a, b))| [a as f64 * t.vcpu, b as f64 * t.vcpu])
        .fold(0.0, |acc, v| acc + v);
    // The baseline may use any type the plan may (all of them fit a replica).
    let all = &fits(types, p.services);
    let mut hp = HourlyPlan::default();
    let mut baseline = 0.0;
    let res_cost_h: f64 = lines
        .iter()
        .filter(|l| l.count.is_some())
        .map(|l| l.cost)
        .sum::<f64>()
        / p.h;
    // The reserved instances at on-demand prices, per hour.
    let res_od_h: f64 = types
        .iter()
        .zip(reserved)
        .map(|(t, &(a, b))| f64::from(a + b) * t.on_demand_hourly)
        .sum();
    let mut months: Vec<PlanMonth> = Vec::new();
    for (hr, d) in p.scaled.iter().enumerate() {
        let c = &counts[p.of_hour[hr]];
        let base = baseline_hour(types, all, d, p.opts);
        baseline += base;
        let HourSpend {
            cap,
            spot,
            cost,
            od_cost,
            spot_cost,
            od_equiv,
        } = hour_spend(types, c, res_cost_h);
        hp.demand_vcpu.push(d.vcpu);
        hp.demand_memory_gib.push(d.memory_gib);
        hp.capacity_vcpu.push(cap);
        hp.cost.push(cost);
        hp.baseline_cost.push(base);
        let used = res_vcpu.min(d.vcpu);
        hp.commitment_coverage
            .push(if d.vcpu > 0.0 { used / d.vcpu } else { 1.0 });
        let util = if res_vcpu > 0.0 { used / res_vcpu } else { 0.0 };
        hp.commitment_utilization.push(util);
        hp.spot_share.push(if cap > 0.0 { spot / cap } else { 0.0 });
        add_hour(
            &mut months,
            hr,
            PlanMonth {
                cost,
                commitments: res_cost_h,
                on_demand: od_cost,
                spot: spot_cost,
                on_demand_equivalent: od_equiv + util * res_od_h,
                commitment_coverage: hp.commitment_coverage[hr],
                commitment_utilization: util,
                baseline: base,
                ..PlanMonth::default()
            },
        );
    }
    for m in &mut months {
        m.commitment_coverage /= m.hours as f64;
        m.commitment_utilization /= m.hours as f64;
        m.effective_savings_rate = esr(m.on_demand_equivalent, m.cost);
    }
    (hp, baseline, months)
}

/// One hour of a plan over the types.
struct HourSpend {
    /// vCPU bought, and of it on spot.
    cap: f64,
    spot: f64,
    /// What the hour costs (from the reservations' share), on demand and on spot.
    cost: f64,
    od_cost: f64,
    spot_cost: f64,
    /// The on-demand and spot instances at on-demand prices.
    od_equiv: f64,
}

/// Hour counts `c`'s capacity and spend, its cost counted from
/// `reserved_cost` (the reservations' hourly share).
fn hour_spend(types: &[InstanceType], c: &Counts, reserved_cost: f64) -> HourSpend {
    let mut h = HourSpend {
        cap: 0.0,
        spot: 0.0,
        cost: reserved_cost,
        od_cost: 0.0,
        spot_cost: 0.0,
        od_equiv: 0.0,
    };
    for (i, t) in types.iter().enumerate() {
        h.cap += (c[0][i] + c[1][i] + c[2][i]) as f64 * t.vcpu;
        h.spot += c[2][i] as f64 * t.vcpu;
        let (o, s) = (
            c[1][i] as f64 * t.on_demand_hourly,
            c[2][i] as f64 * t.spot_hourly.unwrap_or(0.0),
        );
        h.cost += o + s;
        h.od_cost += o;
        h.spot_cost += s;
        h.od_equiv += (c[1][i] + c[2][i]) as f64 * t.on_demand_hourly;
    }
    h
}

/// Adds hour `hr`'s figures to its month (the means still to be divided).
fn add_hour(months: &mut Vec<PlanMonth>, hr: usize, h: PlanMonth) {
    if hr.is_multiple_of(MONTH_HOURS) {
        months.push(PlanMonth {
            month: (hr / MONTH_HOURS) as u32 + 1,
            ..PlanMonth::default()
        });
    }
    let m = months.last_mut().expect("pushed at the month's first hour");
    m.hours += 1;
    m.cost += h.cost;
    m.commitments += h.commitments;
    m.on_demand += h.on_demand;
    m.spot += h.spot;
    m.on_demand_equivalent += h.on_demand_equivalent;
    m.commitment_coverage += h.commitment_coverage;
    m.commitment_utilization += h.commitment_utilization;
    m.baseline += h.baseline;
}

/// What the reservations' terms after the horizon replace of on-demand
/// spend, if demand stays at the last month's level: each reserved
/// instance at its on-demand price, for the rest of its term, at the last
/// month's commitment utilisation.
fn after_horizon_replaces(p: &Problem, plan: &Plan) -> f64 {
    let used = plan.last_month_utilization();
    plan.instances
        .iter()
        .filter_map(|l| {
            let rest = plan.term_left_after_horizon(&l.pricing)? as f64;
            Some(used * f64::from(l.count?) * on_demand_price(p, &l.instance_type) * rest)
        })
        .sum()
}

/// The effective savings rate of spending `cost` on usage worth
/// `on_demand_equivalent` at on-demand prices.
fn esr(on_demand_equivalent: f64, cost: f64) -> f64 {
    if on_demand_equivalent > 0.0 {
        (on_demand_equivalent - cost) / on_demand_equivalent
    } else {
        0.0
    }
}

/// Where the savings come from: what the plan's reserved (in the share in
/// use, `utilization`) and spot instance-hours would have cost on demand,
/// minus what they cost; these add up to the on-demand equivalent minus
/// the cost, as the effective savings rate counts them. The rest, the
/// baseline minus the on-demand equivalent, is the instance mix and
/// capacity. Idle reservations are a negative saving of their term.
fn savings_by_source(p: &Problem, plan: &Plan, utilization: f64) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for l in &plan.instances {
        let in_use = if l.count.is_some() { utilization } else { 1.0 };
        let on_demand_equiv = in_use * l.instance_hours * on_demand_price(p, &l.instance_type);
        add(&mut out, &l.pricing, on_demand_equiv - l.cost);
    }
    let mix = plan.savings - out.values().sum::<f64>();
    out.insert("instance_mix_and_capacity".into(), mix);
    out
}

fn on_demand_price(p: &Problem, instance_type: &str) -> f64 {
    p.types
        .iter()
        .find(|t| t.instance_type == instance_type)
        .expect("plan type is in the catalog")
        .on_demand_hourly
}

/// Each reservation's break-even utilisation, next to the plan's.
fn break_even(p: &Problem, lines: &[PlanLine], utilization: f64) -> Vec<BreakEven> {
    lines
        .iter()
        .filter(|l| l.count.is_some())
        .map(|l| BreakEven {
            instance_type: l.instance_type.clone(),
            pricing: l.pricing.clone(),
            break_even_utilization: l.hourly_price / on_demand_price(p, &l.instance_type),
            count: l.count.unwrap_or(0),
            utilization,
        })
        .collect()
}

/// Replicas per service each hour, with the N+1 spare.
fn replica_plans(p: &Problem) -> Vec<ReplicaPlan> {
    let hours = p.scaled.len();
    p.services
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
        .collect()
}

pub(super) fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Binding constraints and their prices, from the LP relaxation's duals.
pub(super) fn bindings(
    levels: &[Level],
    lp: &Solved,
    opts: &Constraints,
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
