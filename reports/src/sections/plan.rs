//! The FinOps cost review: what to buy, what it costs against the
//! on-demand baseline, and where each dollar of savings comes from.
use super::*;

pub(super) fn plan_section(p: &PlanDoc, i: usize, forecast: Option<&ForecastDoc>) -> Section {
    let sfx = if i > 0 {
        format!("_{}", i + 1)
    } else {
        String::new()
    };
    let title = match p.name.as_str() {
        "" => "FinOps cost review".to_string(),
        name => format!("FinOps cost review: {name}"),
    };
    let mut s = Section::new(
        &format!("finops{sfx}"),
        title + &provenance(&p.started_at, &p.version),
    );
    s.ok = p.savings >= 0.0;
    s.verdict = format!(
        "${:.0}/month against ${:.0}/month all on-demand: saves ${:.0}/month ({:.1}%), within {:.2}% of the LP lower bound",
        p.monthly_cost,
        p.monthly_baseline,
        p.monthly_baseline - p.monthly_cost,
        100.0 * p.savings_share,
        100.0 * p.gap
    );
    // Horizon figures × this are per month (730 h).
    let month = 730.0 / p.solver.hours.max(1) as f64;
    s.figures = plan_figures(p, forecast);
    s.next = plan_next(p);
    s.charts = cost_charts(p, month, &sfx);
    s.charts.extend(hourly_charts(p, &sfx));
    s.tables = plan_tables(p, month, &sfx);
    s.tables.push(reconciliation_table(p, &sfx));
    s.tables.extend(budget_table(p, &sfx));
    s.next.extend(assumptions(p));
    s
}

/// Cost, baseline, savings, commitment coverage and utilisation, and, with
/// the forecast, the cost per 1k users and per million requests.
fn plan_figures(p: &PlanDoc, forecast: Option<&ForecastDoc>) -> Vec<(String, String)> {
    let h = p.solver.hours.max(1) as f64;
    let mut figures = vec![
        ("Cost per month".into(), format!("${:.0}", p.monthly_cost)),
        (
            "All on-demand per month".into(),
            format!("${:.0}", p.monthly_baseline),
        ),
        ("Savings".into(), format!("{:.1}%", 100.0 * p.savings_share)),
        ("Horizon".into(), format!("{} hours", p.solver.hours)),
    ];
    let cover = mean(&p.hourly.commitment_coverage);
    let util = mean(&p.hourly.commitment_utilization);
    figures.push(("Commitment coverage".into(), pct(cover)));
    figures.push(("Commitment utilisation".into(), pct(util)));
    if p.on_demand_equivalent > 0.0 {
        figures.push((
            "Effective savings rate".into(),
            pct(p.effective_savings_rate),
        ));
    }
    if let Some(f) = forecast
        && let Some(hr) = &f.hourly
        && !hr.users.is_empty()
    {
        let users = mean(&hr.users);
        let requests: f64 =
            hr.rps.iter().map(|r| r * 3600.0).sum::<f64>() * (h / hr.rps.len().max(1) as f64);
        if users > 0.0 {
            figures.push((
                "Cost per 1k users per month".into(),
                format!("${:.2}", p.monthly_cost / (users / 1000.0)),
            ));
        }
        if requests > 0.0 {
            figures.push((
                "Cost per million requests".into(),
                format!("${:.4}", p.total_cost / (requests / 1e6)),
            ));
        }
    }
    figures
}

/// Binding constraints, reservations under their break-even, a gap worth
/// a longer solve, approximate prices.
fn plan_next(p: &PlanDoc) -> Vec<String> {
    let mut next = Vec::new();
    for b in &p.binding {
        next.push(b.note.clone());
    }
    for b in &p.break_even {
        if b.utilization < b.break_even_utilization {
            next.push(format!(
                "{} {}: reserved capacity is {:.0}% used, under the {:.0}% break-even; buy fewer.",
                b.instance_type,
                b.pricing,
                100.0 * b.utilization,
                100.0 * b.break_even_utilization
            ));
        }
    }
    if p.gap > 0.01 {
        next.push(format!("The plan costs {:.1}% more than the LP lower bound. The bound buys fractions of instances, so part of that gap cannot be closed; the rest is what a longer --time-limit could still find.", 100.0 * p.gap));
    }
    next
}

/// Cost by pricing model and by type, and plan vs all on-demand, per month.
fn cost_charts(p: &PlanDoc, month: f64, sfx: &str) -> Vec<Chart> {
    let mut charts = Vec::new();
    let mut by_pricing: Vec<(String, f64)> = p
        .cost_by_pricing
        .iter()
        .map(|(k, v)| (k.clone(), v * month))
        .collect();
    by_pricing.sort_by(|a, b| b.1.total_cmp(&a.1));
    charts.push(Chart {
        id: format!("cost_by_pricing{sfx}"),
        title: "Cost by pricing model".into(),
        x_label: "pricing model".into(),
        y_label: "USD per month".into(),
        body: Body::Bars(by_pricing.clone()),
        percentile_x: false,
        y_from_zero: true,
    });
    let mut by_type: Vec<(String, f64)> = p
        .cost_by_type
        .iter()
        .map(|(k, v)| (k.clone(), v * month))
        .collect();
    by_type.sort_by(|a, b| b.1.total_cmp(&a.1));
    charts.push(Chart {
        id: format!("cost_by_type{sfx}"),
        title: "Cost by instance type".into(),
        x_label: "instance type".into(),
        y_label: "USD per month".into(),
        body: Body::Bars(by_type.clone()),
        percentile_x: false,
        y_from_zero: true,
    });
    charts.push(Chart {
        id: format!("savings{sfx}"),
        title: "Plan vs all on-demand".into(),
        x_label: "".into(),
        y_label: "USD per month".into(),
        body: Body::Bars(vec![
            ("all on-demand".into(), p.monthly_baseline),
            ("plan".into(), p.monthly_cost),
        ]),
        percentile_x: false,
        y_from_zero: true,
    });
    charts
}

/// Commitment coverage, utilisation and spot share, and the cost, per
/// hour of the horizon (or per day, past a month).
fn hourly_charts(p: &PlanDoc, sfx: &str) -> Vec<Chart> {
    let mut charts = Vec::new();
    // Past a month of hours, hourly lines turn into a solid band: plot
    // daily means instead.
    let n_hours = p.hourly.commitment_coverage.len();
    let daily = n_hours > DAILY_AFTER_HOURS;
    let (step, x_unit) = if daily {
        (24, "day of the horizon (daily mean)")
    } else {
        (1, "hour of the horizon")
    };
    let series = |v: &[f64], k: f64| {
        v.chunks(step)
            .enumerate()
            .map(|(i, c)| (i as f64, k * c.iter().sum::<f64>() / c.len() as f64))
            .collect::<Vec<_>>()
    };
    if n_hours > 0 {
        charts.push(Chart {
            id: format!("commitment{sfx}"),
            title: "Commitment coverage and utilisation per hour".into(),
            x_label: x_unit.into(),
            y_label: "percent".into(),
            body: Body::Lines(vec![
                Line {
                    name: "coverage (reserved share of demand)".into(),
                    points: series(&p.hourly.commitment_coverage, 100.0),
                    ..Default::default()
                },
                Line {
                    name: "utilisation (used share of reserved)".into(),
                    points: series(&p.hourly.commitment_utilization, 100.0),
                    ..Default::default()
                },
                Line {
                    name: "spot share of capacity".into(),
                    points: series(&p.hourly.spot_share, 100.0),
                    ..Default::default()
                },
            ]),
            percentile_x: false,
            y_from_zero: true,
        });
        charts.push(Chart {
            id: format!("hourly_cost{sfx}"),
            title: if daily {
                "Cost per hour (daily mean): plan vs all on-demand".into()
            } else {
                "Cost per hour: plan vs all on-demand".into()
            },
            x_label: x_unit.into(),
            y_label: "USD per hour".into(),
            body: Body::Lines(vec![
                Line {
                    name: "all on-demand".into(),
                    points: series(&p.hourly.baseline_cost, 1.0),
                    ..Default::default()
                },
                Line {
                    name: "plan".into(),
                    points: series(&p.hourly.cost, 1.0),
                    ..Default::default()
                },
            ]),
            percentile_x: false,
            y_from_zero: true,
        });
    }
    charts
}

/// What to buy, where the savings come from, break-even, binding constraints.
fn plan_tables(p: &PlanDoc, month: f64, sfx: &str) -> Vec<Table> {
    let mut tables = vec![lines_table(p, month, sfx), savings_table(p, month, sfx)];
    if p.months.len() > 1 {
        tables.push(months_table(p, sfx));
    }
    if !p.break_even.is_empty() {
        tables.push(break_even_table(p, sfx));
    }
    if !p.binding.is_empty() {
        tables.push(binding_table(p, sfx));
    }
    tables
}

fn lines_table(p: &PlanDoc, month: f64, sfx: &str) -> Table {
    let lines = &p.instances;
    Table::new(
        &format!("plan_lines{sfx}"),
        "What to buy",
        vec![
            text(
                "instance type",
                lines.iter().map(|l| l.instance_type.clone()).collect(),
            ),
            text("pricing", lines.iter().map(|l| l.pricing.clone()).collect()),
            text(
                "count",
                lines
                    .iter()
                    .map(|l| match (&l.count, &l.hourly_counts) {
                        (Some(n), _) => format!("{n} held"),
                        (None, Some(v)) => format!(
                            "{}–{} per hour",
                            v.iter().min().unwrap_or(&0),
                            v.iter().max().unwrap_or(&0)
                        ),
                        _ => String::new(),
                    })
                    .collect(),
            ),
            num("$ per hour", lines.iter().map(|l| l.hourly_price).collect()),
            num(
                "instance-hours",
                lines.iter().map(|l| l.instance_hours).collect(),
            ),
            num(
                "$ per month",
                lines.iter().map(|l| l.cost * month).collect(),
            ),
        ],
    )
}

/// Month by month: what the plan pays and for what, the same usage at
/// on-demand prices, the effective savings rate, and the commitments'
/// coverage and utilisation.
fn months_table(p: &PlanDoc, sfx: &str) -> Table {
    let m = &p.months;
    let col = |f: fn(&contracts::plan::PlanMonth) -> f64| m.iter().map(f).collect::<Vec<f64>>();
    Table::new(
        &format!("plan_months{sfx}"),
        "Month by month (730 h each): spend by pricing, the usage at on-demand prices, the effective savings rate (ESR), commitment coverage and utilisation",
        vec![
            count("month", m.iter().map(|x| u64::from(x.month)).collect()),
            num("$ cost", col(|x| x.cost)),
            num("$ commitments", col(|x| x.commitments)),
            num("$ on-demand", col(|x| x.on_demand)),
            num("$ spot", col(|x| x.spot)),
            num("$ at on-demand prices", col(|x| x.on_demand_equivalent)),
            num("ESR %", col(|x| 100.0 * x.effective_savings_rate)),
            num("coverage %", col(|x| 100.0 * x.commitment_coverage)),
            num("utilisation %", col(|x| 100.0 * x.commitment_utilization)),
            num("$ all on-demand", col(|x| x.baseline)),
        ],
    )
}

fn savings_table(p: &PlanDoc, month: f64, sfx: &str) -> Table {
    let src: Vec<(&String, &f64)> = p.savings_by_source.iter().collect();
    Table::new(
        &format!("savings_by_source{sfx}"),
        "Where each dollar of savings comes from (per month; reservations and spot against on-demand prices for the usage they serve, reservations in the share in use, so idle commitment is a negative saving; instance_mix_and_capacity = the all-on-demand baseline minus that usage at on-demand prices: cheaper types than the baseline's, less the extra capacity the spot and survive rules buy)",
        vec![
            text("source", src.iter().map(|x| x.0.clone()).collect()),
            num("$ per month", src.iter().map(|x| x.1 * month).collect()),
        ],
    )
}

fn break_even_table(p: &PlanDoc, sfx: &str) -> Table {
    Table::new(
        &format!("break_even{sfx}"),
        "Reservations: break-even utilisation",
        vec![
            text(
                "instance type",
                p.break_even
                    .iter()
                    .map(|b| b.instance_type.clone())
                    .collect(),
            ),
            text(
                "term",
                p.break_even.iter().map(|b| b.pricing.clone()).collect(),
            ),
            count(
                "count",
                p.break_even.iter().map(|b| u64::from(b.count)).collect(),
            ),
            num(
                "break-even %",
                p.break_even
                    .iter()
                    .map(|b| 100.0 * b.break_even_utilization)
                    .collect(),
            ),
            num(
                "utilisation %",
                p.break_even.iter().map(|b| 100.0 * b.utilization).collect(),
            ),
        ],
    )
}

fn binding_table(p: &PlanDoc, sfx: &str) -> Table {
    Table::new(
        &format!("binding{sfx}"),
        "Constraints that bind (shadow prices from the LP relaxation)",
        vec![
            text(
                "constraint",
                p.binding.iter().map(|b| b.constraint.clone()).collect(),
            ),
            count("hours", p.binding.iter().map(|b| b.hours as u64).collect()),
            num(
                "shadow price",
                p.binding.iter().map(|b| b.shadow_price).collect(),
            ),
            text("unit", p.binding.iter().map(|b| b.unit.clone()).collect()),
        ],
    )
}

/// Hours in a budget month.
const BUDGET_MONTH_H: usize = 730;

/// Month by month (730 h each, the last one partial): the plan's cost, its
/// on-demand, spot and commitment parts, the all-on-demand baseline, and
/// the commitments' utilisation. None without hourly figures.
fn budget_table(p: &PlanDoc, sfx: &str) -> Option<Table> {
    let hours = p.hourly.cost.len();
    if hours == 0 {
        return None;
    }
    // The cost of each pricing model in each hour, from the plan's lines
    // (reservations are held, so each hour carries its share).
    let by = |pricing: &dyn Fn(&str) -> bool| -> Vec<f64> {
        let mut v = vec![0.0; hours];
        for l in p.instances.iter().filter(|l| pricing(&l.pricing)) {
            match (&l.count, &l.hourly_counts) {
                (Some(n), _) => v.iter_mut().for_each(|x| *x += *n as f64 * l.hourly_price),
                (None, Some(c)) => {
                    for (x, n) in v.iter_mut().zip(c) {
                        *x += *n as f64 * l.hourly_price;
                    }
                }
                _ => {}
            }
        }
        v
    };
    let on_demand = by(&|k| k == "on_demand");
    let spot = by(&|k| k == "spot");
    let committed = by(&|k| k.starts_with("reserved") || k.starts_with("savings"));
    let months: Vec<std::ops::Range<usize>> = (0..hours)
        .step_by(BUDGET_MONTH_H)
        .map(|a| a..(a + BUDGET_MONTH_H).min(hours))
        .collect();
    // A file's hourly series need not all be as long as its cost series:
    // a month sums what a series has of it.
    let sum = |v: &[f64]| -> Vec<f64> {
        months
            .iter()
            .map(|m| {
                v.get(m.start.min(v.len())..m.end.min(v.len()))
                    .unwrap_or(&[])
                    .iter()
                    .sum()
            })
            .collect()
    };
    let h = &p.hourly;
    Some(Table::new(
        &format!("budget{sfx}"),
        "Budget by month (730 h each; the last may be partial): the plan and its parts, USD",
        vec![
            text(
                "month",
                months
                    .iter()
                    .enumerate()
                    .map(|(i, m)| format!("{} (hours {}-{})", i + 1, m.start, m.end - 1))
                    .collect(),
            ),
            num("plan", sum(&h.cost)),
            num("on-demand", sum(&on_demand)),
            num("spot", sum(&spot)),
            num("commitments", sum(&committed)),
            num("all on-demand baseline", sum(&h.baseline_cost)),
            num(
                "commitment utilisation %",
                months
                    .iter()
                    .map(|m| 100.0 * mean(h.commitment_utilization.get(m.clone()).unwrap_or(&[])))
                    .collect(),
            ),
        ],
    ))
}

/// The three cost figures of the review in one place: the all-on-demand
/// baseline, the plan, and the LP lower bound no plan can go under.
fn reconciliation_table(p: &PlanDoc, sfx: &str) -> Table {
    let h = p.solver.hours.max(1) as f64;
    let per_month = |x: f64| x / h * 730.0;
    let rows = [
        (
            "all on-demand baseline (cheapest single type each hour)",
            p.baseline_cost,
        ),
        ("the plan", p.total_cost),
        ("LP lower bound (fractional instances)", p.lower_bound),
    ];
    Table::new(
        &format!("reconciliation{sfx}"),
        "Baseline, plan and lower bound: savings = baseline − plan; gap = (plan − bound) / plan",
        vec![
            text("figure", rows.iter().map(|r| r.0.to_string()).collect()),
            num("over the horizon", rows.iter().map(|r| r.1).collect()),
            num("per month", rows.iter().map(|r| per_month(r.1)).collect()),
            num(
                "% of baseline",
                rows.iter()
                    .map(|r| {
                        if p.baseline_cost > 0.0 {
                            100.0 * r.1 / p.baseline_cost
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            ),
        ],
    )
}

/// What the figures rely on, said beside them: commitments whose term runs
/// past the horizon, and the dated list prices.
fn assumptions(p: &PlanDoc) -> Vec<String> {
    let mut out = Vec::new();
    let hours = p.solver.hours;
    for ((term, term_h), name) in contracts::plan::RESERVATION_TERMS
        .into_iter()
        .zip(["1-year", "3-year"])
    {
        let n: u32 = p
            .instances
            .iter()
            .filter(|l| l.pricing == term)
            .filter_map(|l| l.count)
            .sum();
        if n > 0 && hours < term_h {
            let owed = p.owed_after_horizon(term);
            out.push(format!(
                "Assumption: the {n} {name} reservation(s) are costed for the horizon's {hours} hours only; the term runs {term_h} hours, so {} more hours (${owed:.0}) are committed after it and are not in the totals.",
                term_h - hours
            ));
        }
    }
    if p.committed_after_horizon > 0.005 {
        let used = p.last_month_utilization();
        out.push(format!(
            "Assumption: after the horizon, demand stays at the last month's level; the reservations then stay {:.0}% in use and replace ${:.0} of on-demand spend against the ${:.0} still owed.",
            100.0 * used,
            p.after_horizon_replaces,
            p.committed_after_horizon
        ));
    }
    if !p.arm64_types.is_empty() {
        out.push(format!(
            "Assumption: the service ships arm64 images: {} {} arm64 (Graviton, Axion, Ampere or Cobalt).",
            p.arm64_types.join(", "),
            if p.arm64_types.len() == 1 { "is" } else { "are" }
        ));
    }
    if !p.catalog_notes.is_empty() {
        out.push(format!(
            "Assumption: list prices as the catalog states them ({}); check them against the provider's current prices before buying.",
            p.catalog_notes.join("; ")
        ));
    }
    out
}
