//! `loadtest optimize --json`: the purchase plan, with the options it
//! respects. `optimizer` builds it; `plan` and `report` read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

crate::tag!(
    PlanTag,
    "plan",
    "`kind = \"plan\"`: the document is a purchase plan."
);

/// What the plan must respect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    /// Largest share of each hour's vCPU that may be spot (0 = no spot).
    pub spot_max_share: f64,
    /// Losing the largest spot pool (all spot instances of one type) must
    /// still leave the demand covered.
    pub survive_spot_loss: bool,
    /// At most this many instance types over the horizon.
    pub max_types: Option<usize>,
    /// Demand is multiplied by 1 + headroom.
    pub headroom: f64,
    /// Account quota: vCPUs running in any hour.
    pub max_vcpu: Option<f64>,
    /// Capacity limit: instances of any one type in any hour.
    #[serde(default)]
    pub max_per_type: Option<u32>,
    /// Whether 3-year reservations may be bought.
    pub allow_3y: bool,
    /// Relative gap the MILPs stop at.
    pub gap: f64,
    /// Wall-time budget of each solve, seconds.
    pub time_limit_s: f64,
    /// The CPU architecture of the types the plan may use: `x86_64`,
    /// `arm64` or `any` (plans written before this read as `any`: they
    /// could use every type).
    #[serde(default = "any_arch")]
    pub arch: String,
    /// Instance types never to use.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Only types of these families (`m6i`, `n2`, `Dsv5`); empty: any.
    #[serde(default)]
    pub families: Vec<String>,
}

fn any_arch() -> String {
    "any".into()
}

impl Default for Constraints {
    fn default() -> Self {
        Constraints {
            spot_max_share: 0.0,
            survive_spot_loss: false,
            max_types: None,
            headroom: 0.0,
            max_vcpu: None,
            max_per_type: None,
            allow_3y: true,
            gap: 0.005,
            time_limit_s: 30.0,
            arch: "x86_64".into(),
            exclude: Vec::new(),
            families: Vec::new(),
        }
    }
}

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

/// The pricings that are reservations, with their terms in hours.
pub const RESERVATION_TERMS: [(&str, usize); 2] = [("reserved_1y", 8760), ("reserved_3y", 26280)];

impl Plan {
    /// What the plan's reservations of `pricing` (`reserved_1y`,
    /// `reserved_3y`) still cost after the horizon (`solver.hours`), USD:
    /// each is owed for the rest of its term.
    pub fn owed_after_horizon(&self, pricing: &str) -> f64 {
        let Some(left) = self.term_left_after_horizon(pricing) else {
            return 0.0;
        };
        let per_hour: f64 = self
            .instances
            .iter()
            .filter(|l| l.pricing == pricing)
            .filter_map(|l| Some(f64::from(l.count?) * l.hourly_price))
            .sum();
        per_hour * left as f64
    }

    /// The last month's commitment utilisation: what the reservations are
    /// assumed to keep after the horizon (see `after_horizon_replaces`).
    pub fn last_month_utilization(&self) -> f64 {
        self.months.last().map_or(0.0, |m| m.commitment_utilization)
    }

    /// The hours a reservation of `pricing` still runs after the horizon
    /// (`solver.hours`); `None` for a pricing that is not a reservation.
    pub fn term_left_after_horizon(&self, pricing: &str) -> Option<usize> {
        let &(_, term_h) = RESERVATION_TERMS.iter().find(|t| t.0 == pricing)?;
        Some(term_h.saturating_sub(self.solver.hours))
    }

    /// The cost of the first and of the last 730 hours of the horizon,
    /// when it is longer than one such month: a growing fleet's bill is
    /// not its average.
    pub fn first_and_last_month(&self) -> Option<(f64, f64)> {
        const MONTH_H: usize = MONTH_HOURS;
        let c = &self.hourly.cost;
        (c.len() > MONTH_H).then(|| {
            (
                c[..MONTH_H].iter().sum(),
                c[c.len() - MONTH_H..].iter().sum(),
            )
        })
    }
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
    pub kind: PlanTag,
    /// What was planned: the services of the forecasts, or the demand file.
    #[serde(default)]
    pub name: String,
    /// When the solve started (UTC, RFC 3339); set by the binary.
    #[serde(default)]
    pub started_at: String,
    /// Wall-clock seconds the solve took.
    #[serde(default)]
    pub duration_s: f64,
    /// The version of the tool that made it; set by the binary.
    #[serde(default)]
    pub version: String,
    /// Catalog header lines (date, source).
    pub catalog_notes: Vec<String>,
    /// The plan's types that are arm64: the service must ship arm64
    /// images to run on them.
    #[serde(default)]
    pub arm64_types: Vec<String>,
    /// What the reservations cost after the horizon, USD: a term longer
    /// than the horizon is still owed for its remaining hours. Not in
    /// `total_cost`, which counts the horizon's hours only.
    #[serde(default)]
    pub committed_after_horizon: f64,
    /// The policy for those terms: demand is assumed to stay at the last
    /// month's level after the horizon, so the reservations stay in use at
    /// the last month's commitment utilisation and replace this much
    /// on-demand spend over their remaining hours, USD. When it is below
    /// `committed_after_horizon`, the rest of the terms would be idle.
    #[serde(default)]
    pub after_horizon_replaces: f64,
    /// The options the plan respects.
    pub options: Option<Constraints>,
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
    pub cost_by_pricing: BTreeMap<String, f64>,
    /// Cost by instance type.
    pub cost_by_type: BTreeMap<String, f64>,
    /// Where the savings come from, by pricing model (USD over the horizon).
    pub savings_by_source: BTreeMap<String, f64>,
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
    /// What the plan's usage would cost at on-demand prices, USD: the
    /// on-demand and spot instance-hours, and the reserved ones in use
    /// (commitment utilisation by vCPU; idle commitment is spend without
    /// usage, as the FinOps Foundation counts it).
    #[serde(default)]
    pub on_demand_equivalent: f64,
    /// Effective savings rate (FinOps Foundation): (on_demand_equivalent −
    /// total_cost) / on_demand_equivalent, the discount commitments and
    /// spot earn on the usage, net of idle commitments (negative when
    /// those cost more than the discounts save).
    #[serde(default)]
    pub effective_savings_rate: f64,
    /// Month by month (730 h each, the last one what is left): a growing
    /// fleet's bill, commitments and discounts are not their averages.
    #[serde(default)]
    pub months: Vec<PlanMonth>,
    /// How it was solved.
    pub solver: SolverReport,
}

/// One month of a plan (730 hours; the horizon's last may be shorter).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanMonth {
    /// 1 for the horizon's first 730 hours.
    pub month: u32,
    /// Hours in it.
    pub hours: usize,
    /// What the plan pays, USD: `commitments + on_demand + spot`.
    pub cost: f64,
    /// The reservations in force, amortised over their hours, USD.
    pub commitments: f64,
    /// On-demand spend, USD.
    pub on_demand: f64,
    /// Spot spend, USD.
    pub spot: f64,
    /// The month's usage at on-demand prices, USD (see
    /// [`Plan::on_demand_equivalent`]).
    pub on_demand_equivalent: f64,
    /// (on_demand_equivalent − cost) / on_demand_equivalent.
    pub effective_savings_rate: f64,
    /// Mean share of the demand's vCPU the reservations cover.
    pub commitment_coverage: f64,
    /// Mean share of the reserved vCPU in use.
    pub commitment_utilization: f64,
    /// The all-on-demand baseline (cheapest single type each hour), USD.
    pub baseline: f64,
}

/// Hours in a month of a plan.
pub const MONTH_HOURS: usize = 730;
