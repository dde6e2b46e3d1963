//! `loadtest optimize`: demand (CSV, or forecasts turned into demand) and a
//! price catalog into a purchase plan, written as JSON, with a summary on
//! the terminal. An infeasible plan exits 1 and names the constraint and
//! the hour; malformed input exits 2 with the file, line and column.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use optimizer::{Catalog, Constraints, Demand, Plan, Service};

use crate::Outcome;
use crate::cli::OptimizeArgs;
use crate::scenario::{OptimizeSection, Scenario};

/// Everything a solve needs, read and checked.
pub struct Prepared {
    pub catalog: Catalog,
    pub demand: Vec<Demand>,
    /// Where the demand came from (files), for the errors about it.
    pub source: String,
    pub services: Vec<Service>,
    pub opts: Constraints,
}

pub fn optimize(a: OptimizeArgs) -> anyhow::Result<Outcome> {
    let section = match &a.scenario {
        Some(p) => Scenario::load(p)?.optimize.map(|s| (s, p.clone())),
        None => None,
    };
    let prepared = prepare(&a, section.as_ref().map(|(s, p)| (s, p.as_path())))?;
    let (outcome, plan) = execute(&prepared, a.json.as_deref())?;
    if let Some(plan) = plan {
        std::io::stdout()
            .lock()
            .write_all(render(&plan).as_bytes())?;
    }
    Ok(outcome)
}

/// The catalog path from the flag, else from `[optimize] catalog` relative
/// to the scenario file.
pub fn catalog_path(
    flag: Option<&Path>,
    section: Option<(&OptimizeSection, &Path)>,
) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some((s, scn)) = section
        && let Some(c) = &s.catalog
    {
        return Ok(scn.parent().unwrap_or(Path::new(".")).join(c));
    }
    anyhow::bail!(
        "--catalog: no price catalog given; pass --catalog FILE (e.g. scenarios/catalog/aws-us-east-1.csv) or set [optimize] catalog in the scenario"
    )
}

/// Constraints from the scenario's `[optimize]` section, overridden by the
/// flags when there are any (`plan` and `validate` have none), else the
/// defaults.
pub fn options(
    a: Option<&OptimizeArgs>,
    s: Option<&OptimizeSection>,
) -> anyhow::Result<Constraints> {
    let d = Constraints::default();
    let time_limit_s = a.map_or(d.time_limit_s, |a| a.time_limit.as_secs_f64());
    let o = Constraints {
        spot_max_share: a
            .and_then(|a| a.spot_max_share)
            .or(s.and_then(|s| s.spot_max_share))
            .unwrap_or(d.spot_max_share),
        survive_spot_loss: a.is_some_and(|a| a.survive_spot_loss)
            || s.and_then(|s| s.survive_spot_loss).unwrap_or(false),
        max_types: a.and_then(|a| a.max_types).or(s.and_then(|s| s.max_types)),
        headroom: a
            .and_then(|a| a.headroom)
            .or(s.and_then(|s| s.headroom))
            .unwrap_or(d.headroom),
        max_vcpu: a.and_then(|a| a.max_vcpu).or(s.and_then(|s| s.max_vcpu)),
        max_per_type: a
            .and_then(|a| a.max_per_type)
            .or(s.and_then(|s| s.max_per_type)),
        allow_3y: !a.is_some_and(|a| a.no_3y) && s.and_then(|s| s.allow_3y).unwrap_or(d.allow_3y),
        gap: a.map_or(d.gap, |a| a.gap),
        time_limit_s,
        arch: a
            .and_then(|a| a.arch.clone())
            .or(s.and_then(|s| s.arch.clone()))
            .unwrap_or(d.arch),
        exclude: match a.map(|a| &a.exclude) {
            Some(x) if !x.is_empty() => x.clone(),
            _ => s.and_then(|s| s.exclude.clone()).unwrap_or_default(),
        },
        families: match a.map(|a| &a.families) {
            Some(x) if !x.is_empty() => x.clone(),
            _ => s.and_then(|s| s.families.clone()).unwrap_or_default(),
        },
    };
    optimizer::validate(&o)?;
    Ok(o)
}

/// Reads and checks a price catalog.
pub fn read_catalog(path: &Path) -> anyhow::Result<Catalog> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--catalog: cannot read {}", path.display()))?;
    Ok(optimizer::parse_catalog(
        &path.display().to_string(),
        &text,
    )?)
}

/// What `plan` solves: the scenario's options and catalog, and the
/// forecast it has just made, in memory (`source` names it in errors).
pub fn prepare_forecast(
    section: &OptimizeSection,
    catalog: Catalog,
    forecast: &contracts::Forecast,
    source: &str,
) -> anyhow::Result<Prepared> {
    let (Some(rv), Some(rm)) = (section.replica_vcpu, section.replica_memory_gib) else {
        anyhow::bail!(
            "[optimize] replica_vcpu and replica_memory_gib must be set above 0 (what each replica requests)"
        );
    };
    let source = source.to_string();
    let (svc, _) = optimizer::forecast_service(&source, forecast, rv, rm)?;
    let services = vec![svc];
    Ok(Prepared {
        catalog,
        demand: optimizer::services_demand(&services, 1),
        source,
        services,
        opts: options(None, Some(section))?,
    })
}

pub fn prepare(
    a: &OptimizeArgs,
    section: Option<(&OptimizeSection, &Path)>,
) -> anyhow::Result<Prepared> {
    let s = section.map(|x| x.0);
    let opts = options(Some(a), s)?;
    let catalog = read_catalog(&catalog_path(a.catalog.as_deref(), section)?)?;
    let mut services = Vec::new();
    let demand = if let Some(p) = &a.demand {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("--demand: cannot read {}", p.display()))?;
        optimizer::parse_demand(&p.display().to_string(), &text)?
    } else if !a.forecast.is_empty() {
        let rv = a.replica_vcpu.or(s.and_then(|s| s.replica_vcpu)).context(
            "--replica-vcpu: a forecast is turned into demand through each replica's requests; give --replica-vcpu (e.g. 2) or [optimize] replica_vcpu",
        )?;
        let rm = a.replica_memory_gib.or(s.and_then(|s| s.replica_memory_gib)).context(
            "--replica-memory-gib: give each replica's memory request (e.g. 4) or [optimize] replica_memory_gib",
        )?;
        if !(rv > 0.0 && rm > 0.0) {
            anyhow::bail!("--replica-vcpu and --replica-memory-gib must be above 0");
        }
        for p in &a.forecast {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("--forecast: cannot read {}", p.display()))?;
            let (svc, _) = optimizer::parse_forecast(&p.display().to_string(), &text, rv, rm)?;
            services.push(svc);
        }
        optimizer::services_demand(&services, 1)
    } else {
        anyhow::bail!(
            "--demand or --forecast: give the hourly demand (a CSV hour,vcpu,memory_gib) or a forecast JSON from `loadtest simulate --json`"
        );
    };
    let source = match &a.demand {
        Some(p) => p.display().to_string(),
        None => a
            .forecast
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    Ok(Prepared {
        catalog,
        demand,
        source,
        services,
        opts,
    })
}

/// Solves, writes the JSON, and maps the outcome: infeasible → exit 1 with
/// the reason on stderr.
pub fn execute(p: &Prepared, json: Option<&Path>) -> anyhow::Result<(Outcome, Option<Plan>)> {
    let started = crate::Started::now();
    match optimizer::optimize(&p.catalog, &p.demand, &p.opts, &p.services) {
        Ok(mut plan) => {
            plan.name = if p.services.is_empty() {
                p.source.clone()
            } else {
                let names: Vec<&str> = p.services.iter().map(|s| s.name.as_str()).collect();
                names.join(", ")
            };
            plan.duration_s = started.seconds();
            plan.started_at = started.at;
            plan.version = crate::VERSION.into();
            if let Some(path) = json {
                crate::write_json(path, &plan)?;
            }
            Ok((Outcome::Passed, Some(plan)))
        }
        // What is wrong with the demand names the file it came from.
        Err(optimizer::Error::Demand(m)) => Err(anyhow::anyhow!("{}: {m}", p.source)),
        Err(e @ optimizer::Error::Input(_)) => Err(e.into()),
        Err(e) => {
            eprintln!("loadtest: no plan: {e}");
            Ok((Outcome::Failed, None))
        }
    }
}

/// The first and last month's cost (a growing fleet's bill is not its
/// average), and what the reservations still cost after the horizon; each
/// line starts with `indent`.
pub fn month_and_commitment_lines(p: &Plan, indent: &str) -> String {
    let mut s = String::new();
    if let Some((first, last)) = p.first_and_last_month() {
        s.push_str(&format!(
            "{indent}by month: ${first:.0} in the first 730 h, ${last:.0} in the last (${:.0} on average)\n",
            p.monthly_cost
        ));
    }
    if p.committed_after_horizon > 0.005 {
        s.push_str(&format!(
            "{indent}after the horizon: the reservations' terms run on, ${:.0} more owed (not in the totals)\n",
            p.committed_after_horizon
        ));
        s.push_str(&format!(
            "{indent}  at the last month's demand they stay {:.0}% in use and replace ${:.0} of on-demand: {}\n",
            100.0 * p.last_month_utilization(),
            p.after_horizon_replaces,
            if p.after_horizon_replaces >= p.committed_after_horizon {
                "worth their cost".to_string()
            } else {
                format!(
                    "${:.0} of it would be idle",
                    p.committed_after_horizon - p.after_horizon_replaces
                )
            }
        ));
    }
    if p.on_demand_equivalent > 0.0 {
        s.push_str(&format!(
            "{indent}effective savings rate: {:.1}% (the ${:.0} paid for usage worth ${:.0} at on-demand prices)\n",
            100.0 * p.effective_savings_rate,
            p.total_cost,
            p.on_demand_equivalent
        ));
    }
    s
}

/// The line saying which of the plan's types are arm64, if any.
fn arm64_note(p: &Plan) -> String {
    match p.arm64_types.as_slice() {
        [] => String::new(),
        [one] => {
            format!("  note: {one} is arm64: the service must ship arm64 images to run on it\n")
        }
        many => format!(
            "  note: {} are arm64: the service must ship arm64 images to run on them\n",
            many.join(", ")
        ),
    }
}

pub fn render(p: &Plan) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let h = p.solver.hours;
    let _ = writeln!(
        s,
        "plan for {h} hours ({} distinct demand levels): ${:.2} total, ${:.2}/month",
        p.solver.levels, p.total_cost, p.monthly_cost
    );
    let _ = writeln!(
        s,
        "  all on-demand baseline ${:.2} (${:.2}/month): saves ${:.2} ({:.1}%)",
        p.baseline_cost,
        p.monthly_baseline,
        p.savings,
        100.0 * p.savings_share
    );
    let _ = writeln!(
        s,
        "  lower bound ${:.2} (LP relaxation): within {:.2}% of optimal",
        p.lower_bound,
        100.0 * p.gap
    );
    s.push_str(&month_and_commitment_lines(p, "  "));
    s.push_str(&lines_table(p));
    s.push_str(&arm64_note(p));
    let mut src: Vec<_> = p
        .savings_by_source
        .iter()
        .filter(|(_, v)| v.abs() > 0.005)
        .collect();
    src.sort_by(|a, b| b.1.total_cmp(a.1));
    if !src.is_empty() {
        let parts: Vec<String> = src.iter().map(|(k, v)| format!("{k} ${v:.2}")).collect();
        let _ = writeln!(s, "\n  savings by source: {}", parts.join(", "));
    }
    for b in &p.break_even {
        let _ = writeln!(
            s,
            "  {} {}: pays off above {:.0}% utilisation; this plan's reserved vCPU is {:.0}% used",
            b.instance_type,
            b.pricing,
            100.0 * b.break_even_utilization,
            100.0 * b.utilization
        );
    }
    for b in &p.binding {
        let _ = writeln!(s, "  binding: {}", b.note);
    }
    for r in &p.replicas {
        let max = r.hourly_replicas.iter().max().copied().unwrap_or(0);
        let min = r.hourly_replicas.iter().min().copied().unwrap_or(0);
        let _ = writeln!(s, "  replicas of {} (N+1): {min} to {max}", r.service);
    }
    for n in &p.solver.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

/// The plan's lines: type, pricing, count (held, or the hourly range),
/// price and cost.
fn lines_table(p: &Plan) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n  {:<16} {:<12} {:>10} {:>12} {:>12}",
        "type", "pricing", "count", "$/hour", "cost"
    );
    for l in &p.instances {
        let count = match (&l.count, &l.hourly_counts) {
            (Some(n), _) => n.to_string(),
            (None, Some(v)) => {
                let max = v.iter().max().copied().unwrap_or(0);
                let min = v.iter().min().copied().unwrap_or(0);
                if min == max {
                    format!("{max}")
                } else {
                    format!("{min}-{max}")
                }
            }
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {:<16} {:<12} {:>10} {:>12.4} {:>12.2}",
            l.instance_type, l.pricing, count, l.hourly_price, l.cost
        );
    }
    s
}
