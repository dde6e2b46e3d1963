//! Discrete-event forecasting of a fleet under growth and autoscaling.
//!
//! `simulator` owns the `simulate` stage: a [`SimConfig`] (traffic, service
//! model, autoscaling policy, prices) in, a [`Forecast`] out. The core is a
//! per-request discrete-event engine in integer nanoseconds ([`engine`]);
//! autoscalers are pure state machines with the documented behaviour of the
//! Kubernetes HPA, our runbook's threshold rule and AWS target tracking
//! ([`autoscale`]); long horizons run as representative windows in parallel
//! with rayon ([`forecast`]). The event queue is a binary heap keyed by time ([`queue`]).
//! It is checked against Erlang C ([`queueing`]).
//! Files and flags belong to the `loadtest` binary.
//!
//! ```
//! use simulator::model::*;
//! let cfg = SimConfig {
//!     name: "m/m/4".into(),
//!     traffic: Traffic { rate: Some(300.0), ..Traffic::default() },
//!     service: Service {
//!         replicas: 1,
//!         workers_per_replica: 4,
//!         service_time: Dist::Exponential { mean_ms: 10.0 },
//!         queue_limit: None,
//!         queue_timeout: None,
//!         balancer: Balancer::RoundRobin,
//!         cpu_ms_per_request: None,
//!         latency_floor_ms: 0.0,
//!         spot: None,
//!         cores_per_replica: None,
//!         switch_cost: 0.0,
//!         memory: None,
//!     },
//!     autoscaling: None,
//!     cost: Cost::default(),
//!     slo: Slo::default(),
//!     cache: None,
//!     simulation: Simulation {
//!         duration: std::time::Duration::from_secs(120),
//!         warmup: std::time::Duration::from_secs(10),
//!         ..Simulation::default()
//!     },
//! };
//! cfg.check()?;
//! let f = simulator::forecast(&cfg);
//! assert!((f.utilization - 0.75).abs() < 0.05);
//! # Ok::<(), simulator::SimError>(())
//! ```
#![deny(missing_docs)]

pub mod autoscale;
pub mod cache;
pub mod calibrate;
pub mod dist;
pub mod engine;
pub mod forecast;
pub mod model;
pub mod queue;
pub mod queueing;
mod traffic;

pub use forecast::{Forecast, forecast, series_csv, steady_replicas};
pub use model::SimConfig;

/// What can be wrong with a simulation's input.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A field out of range; the message names it and the fix.
    #[error("{0}")]
    Invalid(String),
}
