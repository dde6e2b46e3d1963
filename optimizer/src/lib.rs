//! The `optimize` stage: hourly demand and a price catalog in; the cheapest
//! instance mix, reserved (1- and 3-year) / on-demand / spot split and
//! replica counts out, with the LP lower bound, the gap, the savings
//! against an all-on-demand baseline and the reasons.
//!
//! The full MILP (integer reservations held over the horizon and integer
//! hourly counts) does not close in minutes at 30 types × 168 hours, so it
//! is solved in two stages that follow its structure:
//! 1. **Lower bound** — the LP relaxation over distinct demand levels
//!    (hours with equal demand share a solution, which is exact for the LP).
//!    Its duals give the shadow prices that explain the plan.
//! 2. **Reservations** — a MILP with integer reservations and type choice
//!    over at most [`STAGE1_LEVELS`] demand levels (the exact levels when
//!    there are that few, else weighted groups of the sorted demand), hourly
//!    counts continuous.
//! 3. **Hourly** — with the reservations fixed, one small integer covering
//!    problem per distinct demand level, solved in parallel with rayon by
//!    a dedicated exact branch-and-bound ([`bb`], dense dual simplex; HiGHS
//!    takes any hour it gives up on). A local search then moves single
//!    reservations while that lowers the total, and a last pass searches
//!    every chosen type, not just the candidates, in each hour.
//!
//! Every returned solution is checked here (integrality and every
//! constraint), and every solve runs under a watchdog; a level whose solve
//! fails falls back to a feasible on-demand cover, and the plan says so.
#![deny(missing_docs)]

pub mod bb;
pub mod input;
pub mod model;
mod plan;
pub mod select;
pub mod synthetic;

pub use input::{
    Catalog, Demand, InstanceType, Service, forecast_service, parse_catalog, parse_demand,
    parse_forecast, services_demand,
};
pub use plan::{
    Binding, BreakEven, HourlyPlan, Plan, PlanLine, ReplicaPlan, SolverReport, optimize,
};

/// Most demand levels stage 1 decides the reservations over.
pub const STAGE1_LEVELS: usize = 64;

/// Errors. `Input` is the user's to fix (exit 2), `Infeasible` means no
/// plan meets the constraints (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input, with its file, line and column.
    #[error("{0}")]
    Input(String),
    /// Demand no plan can be made for (no hours, not a number, past any
    /// fleet); the caller names where the demand came from.
    #[error("{0}")]
    Demand(String),
    /// No plan meets the constraints; names the constraint and the hour.
    #[error("infeasible: {0}")]
    Infeasible(String),
    /// The solver failed or returned something the checker rejected.
    #[error("solver: {0}")]
    Solver(String),
    /// The solver did not come back in time.
    #[error("the solver did not finish within {0:?}")]
    Timeout(std::time::Duration),
}

pub use contracts::plan::Constraints;

/// Checks the options' values, naming the flag at fault.
pub fn validate(o: &Constraints) -> Result<(), Error> {
    let bad = |m: &str| Err(Error::Input(m.to_string()));
    if !(0.0..=1.0).contains(&o.spot_max_share) {
        return bad("--spot-max-share must be between 0 and 1 (e.g. 0.4)");
    }
    if !(0.0..=10.0).contains(&o.headroom) {
        return bad("--headroom must be a fraction between 0 and 10 (e.g. 0.2 for 20%)");
    }
    if o.max_types == Some(0) {
        return bad("--max-types must be at least 1");
    }
    if o.max_vcpu.is_some_and(|q| q.is_nan() || q <= 0.0) {
        return bad("--max-vcpu must be above 0");
    }
    if o.max_per_type == Some(0) {
        return bad("--max-per-type must be at least 1");
    }
    if !(o.gap > 0.0 && o.gap < 1.0) {
        return bad("--gap must be between 0 and 1 (e.g. 0.005)");
    }
    if o.time_limit_s.is_nan() || o.time_limit_s <= 0.0 {
        return bad("--time-limit must be above 0");
    }
    Ok(())
}
