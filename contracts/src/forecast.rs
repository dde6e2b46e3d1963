//! `loadtest simulate --json` and `--csv`: the forecast, its windows and
//! crossings, the hourly steady state `optimize --forecast` reads, and the
//! calibration a forecast was made from. `simulator` builds them;
//! `optimize`, `plan` and `report` read them.

use serde::{Deserialize, Serialize};

crate::tag!(
    ForecastTag,
    "forecast",
    "`kind = \"forecast\"`: the document is a forecast."
);

/// A mean and its 95% confidence interval over replications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Mean over replications.
    pub mean: f64,
    /// Half-width of the 95% confidence interval (0 with one replication).
    pub ci95: f64,
}

impl Estimate {
    /// Student-t interval of the mean of `xs`.
    pub fn of(xs: &[f64]) -> Estimate {
        let n = xs.len();
        if n == 0 {
            return Estimate::default();
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Estimate { mean, ci95: 0.0 };
        }
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Estimate {
            mean,
            ci95: t975(n - 1) * (var / n as f64).sqrt(),
        }
    }
}

/// 97.5% quantile of Student's t with `df` degrees of freedom.
fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    T.get(df.saturating_sub(1)).copied().unwrap_or(1.96)
}

/// Latency over the whole simulated time, ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Replica counts over the simulated time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaSummary {
    /// Fewest.
    pub min: u32,
    /// Most.
    pub max: u32,
    /// Time-averaged.
    pub mean: f64,
}

/// SLO figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SloSummary {
    /// The per-minute p95 target, ms.
    pub p95_target_ms: f64,
    /// Minutes whose p95 exceeded it, per replication (summed over windows).
    pub violation_minutes: Estimate,
    /// Minutes simulated after warm-up, per replication.
    pub minutes: u64,
}

/// One simulated window, averaged over replications.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    /// e.g. `month 7, day 193 10:00-12:00`.
    pub label: String,
    /// Start of the statistics, days from the start of the horizon.
    pub day: f64,
    /// Users at the window's centre.
    pub users: f64,
    /// Mean offered rate, requests/s.
    pub offered_rps: f64,
    /// p95 of the window's requests, ms.
    pub p95_ms: Estimate,
    /// p99, ms.
    pub p99_ms: Estimate,
    /// Replicas, time-averaged.
    pub replicas: Estimate,
    /// Most replicas in any replication.
    pub replicas_max: u32,
    /// CPU utilisation.
    pub utilization: Estimate,
    /// Error rate.
    pub error_rate: Estimate,
    /// Minutes over the p95 target.
    pub violation_minutes: Estimate,
    /// Replica cost per hour in the window.
    pub cost_per_hour: Estimate,
    /// Replicas the autoscaler's steady state predicts for the offered rate.
    pub fluid_replicas: f64,
    /// Memory utilisation of the ready replicas, if the scenario gives
    /// their memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_utilization: Option<Estimate>,
    /// The cache tier at the window's users and peak rate, if the
    /// scenario has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheWindow>,
}

/// An LRU cache at one window: what it holds of the working set, and
/// what its misses cost the database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheWindow {
    /// Keys in the working set.
    pub keys: f64,
    /// Share of the working set the cache holds.
    pub held_share: f64,
    /// Share of lookups that hit (Che's approximation for LRU).
    pub hit_ratio: f64,
    /// Memory in use, MB (`maxmemory` once the working set outgrows it).
    pub memory_used_mb: f64,
    /// Keys evicted per second at the window's rate (each miss into a full
    /// cache evicts one).
    pub evictions_per_s: f64,
    /// Database reads per second from the misses.
    pub database_reads_per_s: f64,
    /// Memory an LRU cache needs to keep the scenario's `min_hit_ratio`
    /// at this working set, MB (with a minimum given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_needed_mb: Option<f64>,
}

/// The autoscaler's steady state for each hour of a growth horizon (a
/// fluid estimate between the simulated windows, labelled as such).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hourly {
    /// What these numbers are.
    pub note: String,
    /// Replicas the policy settles at for the hour's mean offered rate.
    pub replicas: Vec<u32>,
    /// Offered requests/s at the middle of the hour.
    pub rps: Vec<f64>,
    /// Users at the middle of the hour.
    pub users: Vec<f64>,
}

/// A threshold and when it is first crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// What is crossed, e.g. `p95 > 200 ms`.
    pub threshold: String,
    /// Days from the start of the horizon (interpolated between windows).
    pub day: f64,
    /// Users then (interpolated).
    pub users: f64,
    /// A sentence for people.
    pub note: String,
}

/// The `simulate --json` document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Kind of document.
    pub kind: ForecastTag,
    /// Scenario name.
    pub name: String,
    /// When the simulation started (UTC, RFC 3339); set by the binary.
    #[serde(default)]
    pub started_at: String,
    /// Wall-clock seconds the simulation took.
    #[serde(default)]
    pub duration_s: f64,
    /// The version of the tool that made it; set by the binary.
    #[serde(default)]
    pub version: String,
    /// Exactly what was simulated.
    pub simulated: String,
    /// Seed of every stream.
    pub seed: u64,
    /// Replications per window.
    pub replications: u32,
    /// Requests that arrived after warm-up, all windows and replications.
    pub requests: u64,
    /// Of which failed (rejected, timed out in the queue, no replica).
    pub errors: u64,
    /// errors / requests.
    pub error_rate: f64,
    /// Share of requests that queued before service.
    pub waited: f64,
    /// Response time (wait + service) over everything simulated, ms.
    pub latency_ms: LatencySummary,
    /// Mean p95 and p99 over replications with 95% intervals, ms.
    pub latency_ci95_ms: Option<(Estimate, Estimate)>,
    /// Busy workers / ready workers.
    pub utilization: f64,
    /// Replicas.
    pub replicas: ReplicaSummary,
    /// Replica cost of the simulated time (mean per replication).
    pub cost: f64,
    /// Growth: replica cost over the whole horizon from the steady-state estimate.
    pub horizon_cost_estimate: Option<f64>,
    /// Growth: the steady-state (fluid) estimate for every hour of the
    /// horizon, which `loadtest optimize --forecast` turns into demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<Hourly>,
    /// The SLO.
    pub slo: SloSummary,
    /// Per window.
    pub windows: Vec<WindowSummary>,
    /// Thresholds and when they are crossed.
    pub crossings: Vec<Crossing>,
    /// Events the engine processed.
    pub events: u64,
    /// The service model's fit to measurements, when it was calibrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Fit>,
    /// One row per window and minute, averaged over replications.
    #[serde(skip)]
    pub series: Vec<SeriesRow>,
}

/// A time-series row for the CSV.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesRow {
    /// Window index.
    pub window: usize,
    /// Seconds from the start of the horizon.
    pub t_s: f64,
    /// Users.
    pub users: f64,
    /// Offered rate.
    pub offered_rps: f64,
    /// Replicas in existence.
    pub replicas: f64,
    /// Replicas ready.
    pub ready: f64,
    /// CPU utilisation.
    pub utilization: f64,
    /// p50, ms.
    pub p50_ms: f64,
    /// p95, ms.
    pub p95_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Errors per second.
    pub errors: f64,
    /// Cost per hour.
    pub cost_per_hour: f64,
}

/// One measured step of one replica (or of `replicas` behind a balancer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Scheduled requests/s.
    pub offered_rps: f64,
    /// The measured window, s.
    pub duration_s: f64,
    /// p95 from the scheduled time, ms.
    pub p95_ms: f64,
    /// p50 from the scheduled time, ms, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// p99 from the scheduled time, ms, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Successful responses/s in the window.
    pub goodput_rps: f64,
    /// Replicas the load was spread over.
    #[serde(default = "one")]
    pub replicas: u32,
}

fn one() -> u32 {
    1
}

/// A prediction of one step next to its measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFit {
    /// The step.
    pub offered_rps: f64,
    /// Replicas.
    pub replicas: u32,
    /// Measured p95, ms.
    pub measured_p95_ms: f64,
    /// Predicted p95, ms.
    pub predicted_p95_ms: f64,
    /// (predicted − measured) / measured.
    pub p95_error: f64,
    /// Measured p50 and p99, ms, when the step recorded them.
    #[serde(default)]
    pub measured_p50_ms: Option<f64>,
    /// See `measured_p50_ms`.
    #[serde(default)]
    pub measured_p99_ms: Option<f64>,
    /// Predicted p50 and p99, ms (absent in forecasts written before).
    #[serde(default)]
    pub predicted_p50_ms: Option<f64>,
    /// See `predicted_p50_ms`.
    #[serde(default)]
    pub predicted_p99_ms: Option<f64>,
    /// Measured goodput, requests/s.
    pub measured_goodput_rps: f64,
    /// Predicted goodput, requests/s.
    pub predicted_goodput_rps: f64,
    /// (predicted − measured) / measured.
    pub goodput_error: f64,
    /// The measurement fell behind (goodput under 95% of offered) or left the SLO.
    pub measured_saturated: bool,
    /// The prediction did.
    pub predicted_saturated: bool,
}

fn one_f64() -> f64 {
    1.0
}

/// One model the calibration tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCandidate {
    /// Concurrent workers per replica.
    pub workers: u32,
    /// Cores they share; absent: a server per worker (FIFO).
    pub cores: Option<u32>,
    /// Throughput lost per runnable request beyond the cores.
    pub switch_cost: f64,
    /// Mean absolute relative error of p95 and goodput over the fitted steps.
    pub score: f64,
}

impl ModelCandidate {
    /// The model in a few words: "4 workers on 1 core, 5% per extra
    /// runnable request" or "2 workers".
    pub fn describe(&self) -> String {
        describe(self.workers, self.cores, self.switch_cost)
    }
}

fn describe(workers: u32, cores: Option<u32>, switch_cost: f64) -> String {
    let w = format!("{workers} worker{}", if workers == 1 { "" } else { "s" });
    match cores {
        Some(c) if c < workers => {
            let cost = if switch_cost > 0.0 {
                format!(
                    ", {:.0}% lost per extra runnable request",
                    100.0 * switch_cost
                )
            } else {
                String::new()
            };
            format!(
                "{w} sharing {c} core{}{cost}",
                if c == 1 { "" } else { "s" }
            )
        }
        _ => w,
    }
}

impl Fit {
    /// The fitted concurrency in a few words (see [`ModelCandidate::describe`]).
    pub fn concurrency(&self) -> String {
        describe(self.workers, self.cores, self.switch_cost)
    }
}

/// The fitted model and how well it predicts each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// What the model is.
    pub family: String,
    /// Concurrent workers per replica.
    pub workers: u32,
    /// Mean service time, ms (`workers / capacity`).
    pub service_mean_ms: f64,
    /// Fixed latency outside the workers, ms.
    pub latency_floor_ms: f64,
    /// Saturation throughput of one replica, requests/s.
    pub capacity_rps: f64,
    /// The low-load mean latency the floor was taken from, ms.
    pub low_load_mean_ms: f64,
    /// Every candidate `workers` with its score (mean absolute relative
    /// error over the fitted steps; lower is better).
    pub candidates: Vec<(u32, f64)>,
    /// Cores the workers share (processor sharing), when the fit chose
    /// that family; absent: each worker is a server of its own.
    #[serde(default)]
    pub cores: Option<u32>,
    /// With shared cores: throughput lost per runnable request beyond them.
    #[serde(default)]
    pub switch_cost: f64,
    /// The service times' deviations from their mean, as a share of the
    /// low-load latency's (1 in fits written before it was fitted).
    #[serde(default = "one_f64")]
    pub spread: f64,
    /// Every model tried, of both families, with its score (fits written
    /// before this list only have `candidates`).
    #[serde(default)]
    pub models: Vec<ModelCandidate>,
    /// Each fitted step.
    pub steps: Vec<StepFit>,
    /// Largest |p95 error| over the steps below 90% of capacity.
    pub max_p95_error: f64,
    /// Largest |goodput error| over the steps below 90% of capacity.
    pub max_goodput_error: f64,
    /// What the model leaves out.
    pub assumes: String,
}
