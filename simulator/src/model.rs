//! The simulator's input: traffic, service, autoscaling, cost and run
//! settings, as they appear in a scenario file's `[traffic]`, `[service]`,
//! `[autoscaling]`, `[cost]`, `[slo]` and `[simulation]` sections. Checked
//! once by [`SimConfig::check`]; the engine assumes checked input.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::SimError;

/// Reads `15s`, `10m`, `720d`, `90ms`: the one duration grammar
/// ([`contracts::units::parse_duration`]).
pub use contracts::units::duration;

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// A distribution of durations, in milliseconds (service and start-up times).
pub use contracts::units::Dist;

/// How users grow over the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Curve {
    /// Straight line.
    Linear,
    /// Constant growth rate.
    Exponential,
    /// S-curve with its midpoint halfway.
    Logistic,
}

/// Users from `start` to `end` over `over`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Users at the start.
    pub start: f64,
    /// Users at the end.
    pub end: f64,
    /// Length of the horizon.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub over: Duration,
    /// Shape of the growth.
    #[serde(default = "linear")]
    pub curve: Curve,
}

fn linear() -> Curve {
    Curve::Linear
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

/// A sudden multiple of the normal traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashCrowd {
    /// Offset from the start of the horizon, e.g. `400d 12h`.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub at: Duration,
    /// How long it lasts.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub duration: Duration,
    /// Traffic multiplier while it lasts.
    pub multiplier: f64,
}

/// Offered traffic: a constant Poisson rate, or growing users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Traffic {
    /// Constant arrival rate, requests/s.
    pub rate: Option<f64>,
    /// Growing users.
    pub users: Option<Users>,
    /// Requests per user per second (with `users`).
    pub requests_per_user_per_s: Option<f64>,
    /// Daily peak / trough (1 = flat).
    pub daily_peak_to_trough: f64,
    /// Hour of the daily peak, 0-24.
    pub peak_hour: f64,
    /// Weekly peak / trough (1 = flat); the peak falls on day 1 of each week.
    pub weekly_peak_to_trough: f64,
    /// Sudden surges.
    pub flash_crowds: Vec<FlashCrowd>,
    /// How requests arrive: `poisson` (independent users, the default) or
    /// `uniform` (evenly spaced, as an open-model load generator such as
    /// `loadtest run`, wrk2 or k6 schedules them).
    pub arrivals: Arrivals,
}

/// The arrival process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Exponential gaps.
    #[default]
    Poisson,
    /// Equal gaps at the current rate.
    Uniform,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            rate: None,
            users: None,
            requests_per_user_per_s: None,
            daily_peak_to_trough: 1.0,
            peak_hour: 14.0,
            weekly_peak_to_trough: 1.0,
            flash_crowds: Vec::new(),
            arrivals: Arrivals::Poisson,
        }
    }
}

/// How the load balancer picks a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    /// In turn.
    #[default]
    RoundRobin,
    /// Uniformly at random.
    Random,
    /// Fewest requests in service or queued.
    LeastOutstanding,
}

/// The service model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Replicas at the start (fixed without autoscaling).
    pub replicas: u32,
    /// Requests each replica serves at once.
    #[serde(default = "one_u32")]
    pub workers_per_replica: u32,
    /// Time a request holds a worker.
    pub service_time: Dist,
    /// Most requests queued per replica; more are rejected.
    pub queue_limit: Option<u32>,
    /// A queued request gives up after this long.
    #[serde(
        default,
        deserialize_with = "opt_duration",
        serialize_with = "ser_opt_duration"
    )]
    pub queue_timeout: Option<Duration>,
    /// Load-balancing rule.
    #[serde(default)]
    pub balancer: Balancer,
    /// CPU per request, ms of one replica's CPU; if absent, CPU = busy workers / workers.
    pub cpu_ms_per_request: Option<f64>,
    /// A fixed latency every response carries without holding a worker
    /// (network, proxy), ms; calibration fits it.
    #[serde(default)]
    pub latency_floor_ms: f64,
    /// Spot capacity that can be taken back.
    #[serde(default)]
    pub spot: Option<Spot>,
    /// CPU cores the workers of a replica share. With fewer cores than
    /// workers, the busy workers share the cores (processor sharing): `k`
    /// busy workers each run at `min(1, cores / k)` of full speed, the
    /// rest of the requests wait in the queue. Absent (or not fewer than
    /// the workers): each worker is a server of its own.
    #[serde(default)]
    pub cores_per_replica: Option<u32>,
    /// With shared cores: the share of throughput lost for each runnable
    /// request beyond the cores (context switches, cache misses), 0..1.
    /// `k` busy workers on `c < k` cores serve at `c / (1 + switch_cost ×
    /// (k - c))` of full speed in total.
    #[serde(default)]
    pub switch_cost: f64,
    /// Memory per replica, for the runbook's memory rule.
    #[serde(default)]
    pub memory: Option<Memory>,
}

/// Memory of one replica: a base plus each request in it (in service or
/// queued), against its limit (a container's `resources.limits.memory`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Resident when idle, MB.
    pub base_mb: f64,
    /// Each request in the replica adds this, MB.
    pub per_request_mb: f64,
    /// The limit the utilisation is taken against, MB.
    pub limit_mb: f64,
}

impl Memory {
    /// Utilisation with `in_flight` requests in a replica on average.
    pub fn utilization(&self, in_flight: f64) -> f64 {
        (self.base_mb + self.per_request_mb * in_flight) / self.limit_mb
    }
}

/// Processor sharing inside a replica: its cores and the cost of each
/// runnable request beyond them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sharing {
    /// Cores, fewer than the workers.
    pub cores: u32,
    /// See [`Service::switch_cost`].
    pub switch_cost: f64,
}

impl Sharing {
    /// Speed of each of `k` busy requests, as a share of full speed.
    #[inline]
    pub fn speed(&self, k: usize) -> f64 {
        let c = self.cores as usize;
        if k <= c {
            1.0
        } else {
            c as f64 / (k as f64 * (1.0 + self.switch_cost * (k - c) as f64))
        }
    }
}

impl Service {
    /// The cores' processor sharing, when the workers outnumber them.
    pub fn sharing(&self) -> Option<Sharing> {
        self.cores_per_replica
            .filter(|&c| c < self.workers_per_replica)
            .map(|cores| Sharing {
                cores,
                switch_cost: self.switch_cost,
            })
    }

    /// What a replica holds busy at once when saturated, in full-speed
    /// servers: its workers, or its shared cores less the switching cost
    /// (so the capacity is `servers / mean service time`).
    pub fn servers(&self) -> f64 {
        match self.sharing() {
            Some(s) => {
                let w = self.workers_per_replica as usize;
                s.speed(w) * w as f64
            }
            None => self.workers_per_replica as f64,
        }
    }

    /// What the CPU metric counts a replica's capacity in: its cores when
    /// they are shared, else its workers.
    pub fn slots(&self) -> u32 {
        self.sharing().map_or(self.workers_per_replica, |s| s.cores)
    }
}

/// Spot replicas: interrupted at random with a notice, then removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spot {
    /// Share of new replicas that run on spot capacity, 0..1.
    pub share: f64,
    /// Interruptions per spot replica-hour.
    pub interruptions_per_hour: f64,
    /// Warning before removal (AWS gives 2 minutes).
    #[serde(
        default = "two_min",
        deserialize_with = "duration",
        serialize_with = "ser_duration"
    )]
    pub notice: Duration,
}

fn two_min() -> Duration {
    Duration::from_secs(120)
}

fn one_u32() -> u32 {
    1
}

/// Kubernetes HPA `behavior` policies (the defaults are Kubernetes' own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behavior {
    /// Scale-up policy: add this many pods per period ...
    pub scale_up_pods: u32,
    /// ... or this percentage, whichever allows more.
    pub scale_up_percent: f64,
    /// Policy period.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub scale_up_period: Duration,
    /// Scale-up stabilization window.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub scale_up_window: Duration,
    /// Scale-down: remove at most this percentage per period.
    pub scale_down_percent: f64,
    /// Scale-down stabilization window.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub scale_down_window: Duration,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            scale_up_pods: 4,
            scale_up_percent: 100.0,
            scale_up_period: fifteen_s(),
            scale_up_window: Duration::ZERO,
            scale_down_percent: 100.0,
            scale_down_window: five_min(),
        }
    }
}

fn fifteen_s() -> Duration {
    Duration::from_secs(15)
}
fn five_min() -> Duration {
    Duration::from_secs(300)
}

/// One side of the runbook's threshold rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// CPU bound (fraction, e.g. 0.7).
    pub cpu: f64,
    /// Memory bound (fraction of `[service] memory.limit_mb`, e.g. 0.8):
    /// scaling up, CPU or memory over its bound counts; scaling down,
    /// both must be under theirs.
    #[serde(default)]
    pub memory: Option<f64>,
    /// p95 bound, ms, over each one-minute datapoint (the runbook's
    /// "response time p95 > 200 ms"): scaling up, over it counts like CPU
    /// or memory over theirs; scaling down, p95 must be under it too.
    #[serde(default)]
    pub p95_ms: Option<f64>,
    /// How long the bound must be crossed.
    #[serde(
        rename = "for",
        deserialize_with = "duration",
        serialize_with = "ser_duration"
    )]
    pub lasting: Duration,
    /// Replicas added or removed.
    #[serde(default = "one_u32")]
    pub step: u32,
}

/// The autoscaling policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Autoscaling {
    /// Kubernetes Horizontal Pod Autoscaler on CPU.
    Hpa {
        /// Fewest replicas.
        min: u32,
        /// Most replicas.
        max: u32,
        /// Target CPU utilisation, fraction.
        target_cpu: f64,
        /// Controller sync period.
        #[serde(
            default = "fifteen_s",
            deserialize_with = "duration",
            serialize_with = "ser_duration"
        )]
        sync_period: Duration,
        /// No change while |ratio − 1| ≤ tolerance.
        #[serde(default = "tenth")]
        tolerance: f64,
        /// `behavior` policies; without it, the legacy rules apply.
        behavior: Option<Behavior>,
        /// Pod start-up: node boot plus pod start.
        provisioning: Option<Dist>,
        /// `--horizontal-pod-autoscaler-cpu-initialization-period`: within
        /// this time of its start, a pod that became ready less than one
        /// metric window (a sync period) ago counts as not ready yet.
        #[serde(
            default = "five_min",
            deserialize_with = "duration",
            serialize_with = "ser_duration"
        )]
        cpu_initialization_period: Duration,
        /// A second metric: target memory utilisation, fraction of
        /// `[service] memory.limit_mb` (a `resource: memory` metric with
        /// `averageUtilization`). With two metrics the HPA takes the larger
        /// recommendation, as upstream does.
        #[serde(default)]
        target_memory: Option<f64>,
    },
    /// "CPU > X for D: add N; CPU < Y for D: remove N", with a cooldown.
    Threshold {
        /// Fewest replicas.
        min: u32,
        /// Most replicas.
        max: u32,
        /// Scale-up rule.
        scale_up: Step,
        /// Scale-down rule.
        scale_down: Option<Step>,
        /// No action for this long after one.
        #[serde(
            default = "five_min",
            deserialize_with = "duration",
            serialize_with = "ser_duration"
        )]
        cooldown: Duration,
        /// Provisioning delay.
        provisioning: Option<Dist>,
    },
    /// AWS target tracking on average CPU.
    TargetTracking {
        /// Fewest replicas.
        min: u32,
        /// Most replicas.
        max: u32,
        /// Target CPU utilisation, fraction.
        target_cpu: f64,
        /// Instances younger than this are left out of the metric.
        #[serde(
            default,
            deserialize_with = "duration",
            serialize_with = "ser_duration"
        )]
        warmup: Duration,
        /// Provisioning delay.
        provisioning: Option<Dist>,
    },
}

fn tenth() -> f64 {
    0.1
}

impl Autoscaling {
    /// `(min, max)` replicas.
    pub fn bounds(&self) -> (u32, u32) {
        match *self {
            Autoscaling::Hpa { min, max, .. }
            | Autoscaling::Threshold { min, max, .. }
            | Autoscaling::TargetTracking { min, max, .. } => (min, max),
        }
    }

    /// The provisioning-delay distribution, if any.
    pub fn provisioning(&self) -> Option<&Dist> {
        match self {
            Autoscaling::Hpa { provisioning, .. }
            | Autoscaling::Threshold { provisioning, .. }
            | Autoscaling::TargetTracking { provisioning, .. } => provisioning.as_ref(),
        }
    }

    /// A threshold rule's steps, named as in the scenario; none for the
    /// other policies.
    fn threshold_steps(&self) -> Vec<(&'static str, &Step)> {
        match self {
            Autoscaling::Threshold {
                scale_up,
                scale_down,
                ..
            } => std::iter::once(("scale_up", scale_up))
                .chain(scale_down.as_ref().map(|d| ("scale_down", d)))
                .collect(),
            _ => vec![],
        }
    }

    /// The memory utilisation it scales up past: a threshold rule's bound
    /// or an HPA's target.
    pub fn memory_bound(&self) -> Option<f64> {
        match self {
            Autoscaling::Hpa { target_memory, .. } => *target_memory,
            Autoscaling::Threshold { scale_up, .. } => scale_up.memory,
            Autoscaling::TargetTracking { .. } => None,
        }
    }

    /// The CPU utilisation the policy settles at.
    pub fn settle_cpu(&self) -> f64 {
        match self {
            Autoscaling::Hpa { target_cpu, .. }
            | Autoscaling::TargetTracking { target_cpu, .. } => *target_cpu,
            Autoscaling::Threshold { scale_up, .. } => scale_up.cpu,
        }
    }
}

/// Prices.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// Price of one replica-hour.
    #[serde(default)]
    pub replica_hourly: f64,
}

/// The service-level objective reported against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Slo {
    /// p95 latency target per minute, ms.
    pub p95_ms: f64,
}

impl Default for Slo {
    fn default() -> Self {
        Slo { p95_ms: 200.0 }
    }
}

/// Which representative windows a growth horizon is simulated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Windows {
    /// The peak of the busiest day of each 30-day month.
    #[default]
    Monthly,
    /// The peak of the busiest day of each week.
    Weekly,
}

/// Run settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Simulation {
    /// Length of a constant-traffic run, or of each growth window.
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub duration: Duration,
    /// Leading time left out of the statistics (the autoscaler still runs).
    #[serde(deserialize_with = "duration", serialize_with = "ser_duration")]
    pub warmup: Duration,
    /// Seed of every random stream.
    pub seed: u64,
    /// Independent replications.
    pub replications: u32,
    /// Growth: which windows.
    pub windows: Windows,
}

impl Default for Simulation {
    fn default() -> Self {
        Simulation {
            duration: two_h(),
            warmup: ten_min(),
            seed: 7,
            replications: 1,
            windows: Windows::Monthly,
        }
    }
}

fn two_h() -> Duration {
    Duration::from_secs(7200)
}
fn ten_min() -> Duration {
    Duration::from_secs(600)
}

/// Everything one forecast needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Scenario name.
    pub name: String,
    /// Offered traffic.
    pub traffic: Traffic,
    /// The service.
    pub service: Service,
    /// Autoscaling (fixed replicas without it).
    pub autoscaling: Option<Autoscaling>,
    /// Prices.
    pub cost: Cost,
    /// The objective.
    pub slo: Slo,
    /// Run settings.
    pub simulation: Simulation,
    /// The cache in front of the database, if the service has one.
    #[serde(default)]
    pub cache: Option<Cache>,
}

/// `[cache]`: an LRU cache (Redis with `maxmemory-policy allkeys-lru`)
/// whose hit ratio follows from its size, the working set and the keys'
/// popularity ([`crate::cache`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// `maxmemory`, MB.
    pub memory_mb: f64,
    /// Memory each cached key takes, value and overhead, KB.
    pub object_kb: f64,
    /// A working set of this many keys, fixed ...
    pub keys: Option<f64>,
    /// ... or growing with the users: keys per user.
    pub keys_per_user: Option<f64>,
    /// Zipf exponent of the keys' popularity.
    #[serde(default = "zipf_default")]
    pub zipf: f64,
    /// Cache lookups per request (each miss reads the database).
    #[serde(default = "one_f64")]
    pub lookups_per_request: f64,
    /// A hit ratio below this is a crossing in the forecast.
    pub min_hit_ratio: Option<f64>,
}

fn zipf_default() -> f64 {
    0.9
}

fn one_f64() -> f64 {
    1.0
}

impl Cache {
    /// Keys the cache holds when full.
    pub fn capacity_keys(&self) -> f64 {
        self.memory_mb * 1024.0 / self.object_kb
    }

    /// The working set at `users`.
    pub fn working_set(&self, users: f64) -> f64 {
        self.keys
            .unwrap_or_else(|| self.keys_per_user.unwrap_or(0.0) * users)
    }
}

/// The longest service, start-up or SLO time a scenario may give, ms.
pub const MAX_TIME_MS: f64 = 3_600_000.0;
/// The highest offered rate the simulator takes (it simulates every
/// request: about 20M events a second on one core).
pub const MAX_SIM_RPS: f64 = 1e6;
/// The longest simulated window.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 86_400);
/// The longest growth horizon.
pub const MAX_HORIZON: Duration = Duration::from_secs(20 * 365 * 86_400);

/// Checks a distribution's parameters; `what` names the field in errors.
pub fn check_dist(d: &Dist, what: &str) -> Result<(), SimError> {
    let bad = |why: &str| Err(SimError::Invalid(format!("{what}: {why}")));
    // Times are integer nanoseconds: an hour is far past any service or
    // start-up time, and keeps every sum of them exact.
    let in_range = |ms: f64| ms.is_finite() && (0.0..=MAX_TIME_MS).contains(&ms);
    match *d {
        Dist::Exponential { mean_ms } | Dist::Constant { ms: mean_ms } => {
            if !in_range(mean_ms) {
                return bad("the time must be a number of ms from 0 to 3600000 (an hour)");
            }
        }
        Dist::Lognormal { mean_ms, p95_ms } => {
            if contracts::units::lognormal_params(mean_ms, p95_ms).is_none() {
                return bad("lognormal needs 0 < mean_ms < p95_ms <= 3.87 × mean_ms");
            }
            if !in_range(p95_ms) {
                return bad("lognormal p95_ms must be at most 3600000 (an hour)");
            }
        }
        Dist::Empirical { ref points } => {
            if points.is_empty() || points.iter().all(|p| p.1 == 0) {
                return bad("empirical needs at least one point with a count");
            }
            if points.iter().any(|p| !in_range(p.0)) {
                return bad("empirical values must be numbers of ms from 0 to 3600000");
            }
        }
    }
    Ok(())
}

impl SimConfig {
    /// Checks every range; errors name the field and the fix.
    pub fn check(&self) -> Result<(), SimError> {
        check_traffic(&self.traffic)?;
        check_service(&self.service)?;
        if let Some(a) = &self.autoscaling {
            check_autoscaling(a)?;
            check_memory_rule(a, &self.service)?;
        }
        if let Some(c) = &self.cache {
            check_cache(c)?;
        }
        check_run(&self.simulation, &self.slo, &self.cost)
    }
}

/// `[traffic]`: a rate or growing users, shapes and the load they reach.
fn check_traffic(t: &Traffic) -> Result<(), SimError> {
    let bad = |s: String| Err(SimError::Invalid(s));
    match (&t.rate, &t.users) {
        (Some(r), None) if !(r.is_finite() && *r > 0.0) => {
            return bad(format!("[traffic] rate must be > 0, got {r}"));
        }
        (Some(_), None) => {}
        (None, Some(u)) => {
            if !(u.start > 0.0 && u.end > 0.0 && u.start.is_finite() && u.end.is_finite()) {
                return bad("[traffic] users.start and users.end must be > 0".into());
            }
            if u.over.is_zero() {
                return bad("[traffic] users.over must be > 0, e.g. \"720d\"".into());
            }
            match t.requests_per_user_per_s {
                Some(r) if r > 0.0 && r.is_finite() => {}
                _ => {
                    return bad("[traffic] requests_per_user_per_s must be > 0 with users".into());
                }
            }
        }
        (Some(_), Some(_)) => {
            return bad("[traffic] give either rate or users, not both".into());
        }
        (None, None) => {
            return bad("[traffic] needs rate (requests/s) or users = { start, end, over }".into());
        }
    }
    if !(t.daily_peak_to_trough >= 1.0
        && t.weekly_peak_to_trough >= 1.0
        && t.daily_peak_to_trough.is_finite()
        && t.weekly_peak_to_trough.is_finite())
    {
        return bad("[traffic] peak_to_trough ratios must be >= 1".into());
    }
    let peak = t.peak_rps_bound();
    if peak.is_nan() || peak > MAX_SIM_RPS {
        return bad(format!(
            "[traffic] the offered load reaches up to {peak:.3e} requests/s, more than the {MAX_SIM_RPS:.0} the simulator takes request by request: lower users, requests_per_user_per_s, rate or the flash crowds"
        ));
    }
    if t.horizon_s() > MAX_HORIZON.as_secs_f64() {
        return bad("[traffic] users.over must be at most 20 years, e.g. \"730d\"".into());
    }
    if !(0.0..24.0).contains(&t.peak_hour) {
        return bad("[traffic] peak_hour must be in 0..24".into());
    }
    if t.flash_crowds
        .iter()
        .any(|f| !(f.multiplier > 0.0 && f.multiplier.is_finite()))
    {
        return bad("[traffic] flash_crowds multiplier must be > 0".into());
    }
    Ok(())
}

/// `[service]`: replicas, workers, service time, spot, CPU, latency floor.
fn check_service(s: &Service) -> Result<(), SimError> {
    let bad = |s: String| Err(SimError::Invalid(s));
    if s.replicas == 0 || s.workers_per_replica == 0 {
        return bad("[service] replicas and workers_per_replica must be >= 1".into());
    }
    if s.replicas > 100_000 || s.workers_per_replica > 100_000 {
        return bad("[service] replicas and workers_per_replica must be at most 100000".into());
    }
    check_dist(&s.service_time, "[service] service_time")?;
    if let Some(sp) = &s.spot
        && !((0.0..=1.0).contains(&sp.share)
            && sp.interruptions_per_hour >= 0.0
            && sp.interruptions_per_hour.is_finite())
    {
        return bad("[service] spot needs 0 <= share <= 1 and interruptions_per_hour >= 0".into());
    }
    if let Some(c) = s.cpu_ms_per_request
        && !(c > 0.0 && c.is_finite())
    {
        return bad("[service] cpu_ms_per_request must be > 0".into());
    }
    if s.cores_per_replica == Some(0) || s.cores_per_replica.is_some_and(|c| c > 100_000) {
        return bad("[service] cores_per_replica must be within 1..=100000 (or left out: one server per worker)".into());
    }
    if let Some(m) = &s.memory
        && !(m.base_mb >= 0.0
            && m.per_request_mb >= 0.0
            && m.limit_mb > 0.0
            && (m.base_mb + m.per_request_mb + m.limit_mb).is_finite())
    {
        return bad(
            "[service] memory needs base_mb >= 0, per_request_mb >= 0 and limit_mb > 0 (MB)".into(),
        );
    }
    if !(0.0..=1.0).contains(&s.switch_cost) {
        return bad(format!(
            "[service] switch_cost must be within 0..1 (the share of throughput each runnable request beyond the cores costs), got {}",
            s.switch_cost
        ));
    }
    if !(s.latency_floor_ms >= 0.0 && s.latency_floor_ms < 3_600_000.0) {
        return bad(format!(
            "[service] latency_floor_ms must be >= 0 and under an hour, got {}",
            s.latency_floor_ms
        ));
    }
    Ok(())
}

/// `[cache]`: sizes, the working set (fixed or per user), popularity.
fn check_cache(c: &Cache) -> Result<(), SimError> {
    let bad = |s: String| Err(SimError::Invalid(s));
    let positive = |x: f64| x > 0.0 && x.is_finite();
    if !(positive(c.memory_mb) && c.memory_mb <= 1e9) {
        return bad(format!(
            "[cache] memory_mb must be > 0 (Redis maxmemory, MB), got {}",
            c.memory_mb
        ));
    }
    if !(positive(c.object_kb) && c.object_kb <= 1e6) {
        return bad(format!(
            "[cache] object_kb must be > 0 (memory per cached key, KB), got {}",
            c.object_kb
        ));
    }
    match (c.keys, c.keys_per_user) {
        (Some(k), None) if positive(k) && k <= 1e12 => {}
        (None, Some(k)) if positive(k) && k <= 1e9 => {}
        (Some(_), Some(_)) | (None, None) => {
            return bad("[cache] keys needs exactly one of keys (a fixed working set) and keys_per_user (one that grows with the users)".into());
        }
        _ => return bad("[cache] keys and keys_per_user must be > 0".into()),
    }
    if !(0.0..=3.0).contains(&c.zipf) {
        return bad(format!(
            "[cache] zipf must be within 0..3 (0: every key alike), got {}",
            c.zipf
        ));
    }
    if !(c.lookups_per_request >= 0.0 && c.lookups_per_request <= 1e3) {
        return bad(format!(
            "[cache] lookups_per_request must be within 0..1000, got {}",
            c.lookups_per_request
        ));
    }
    if let Some(h) = c.min_hit_ratio
        && !(h > 0.0 && h < 1.0)
    {
        return bad(format!(
            "[cache] min_hit_ratio must be within 0..1, got {h}"
        ));
    }
    Ok(())
}

/// `[autoscaling]`: bounds, provisioning, and each policy's parameters.
fn check_autoscaling(a: &Autoscaling) -> Result<(), SimError> {
    let bad = |s: String| Err(SimError::Invalid(s));

    let (min, max) = a.bounds();
    if min == 0 || min > max || max > 100_000 {
        return bad(format!(
            "[autoscaling] needs 1 <= min <= max <= 100000, got min = {min}, max = {max}"
        ));
    }
    if let Some(p) = a.provisioning() {
        check_dist(p, "[autoscaling] provisioning")?;
    }
    let cpu_ok = |c: f64| c > 0.0 && c <= 1.0;
    match a {
        Autoscaling::Hpa {
            target_cpu,
            tolerance,
            sync_period,
            ..
        } => {
            if !cpu_ok(*target_cpu) || !(0.0..1.0).contains(tolerance) || sync_period.is_zero() {
                return bad("[autoscaling] hpa needs 0 < target_cpu <= 1, 0 <= tolerance < 1, sync_period > 0".into());
            }
        }
        Autoscaling::TargetTracking { target_cpu, .. } if !cpu_ok(*target_cpu) => {
            return bad("[autoscaling] target_cpu must be in (0, 1]".into());
        }
        Autoscaling::Threshold {
            scale_up,
            scale_down,
            ..
        } => {
            if !cpu_ok(scale_up.cpu) || scale_up.step == 0 || scale_up.lasting.is_zero() {
                return bad("[autoscaling] scale_up needs 0 < cpu <= 1, step >= 1, for > 0".into());
            }
            for (side, st) in a.threshold_steps() {
                if let Some(p) = st.p95_ms
                    && !(p > 0.0 && p < MAX_TIME_MS)
                {
                    return bad(format!(
                        "[autoscaling] {side} p95_ms must be > 0 and under an hour (ms), got {p}"
                    ));
                }
            }
            if let Some(d) = scale_down
                && (!(d.cpu >= 0.0 && d.cpu < scale_up.cpu) || d.step == 0 || d.lasting.is_zero())
            {
                return bad(
                    "[autoscaling] scale_down needs 0 <= cpu < scale_up.cpu, step >= 1, for > 0"
                        .into(),
                );
            }
        }
        Autoscaling::TargetTracking { .. } => {}
    }
    Ok(())
}

/// Memory bounds of a policy (a threshold rule's, an HPA's target): each
/// within 0..1, and a `[service] memory` to take them against.
fn check_memory_rule(a: &Autoscaling, s: &Service) -> Result<(), SimError> {
    let mut bounds: Vec<(String, f64)> = a
        .threshold_steps()
        .into_iter()
        .filter_map(|(side, st)| st.memory.map(|m| (format!("{side} memory"), m)))
        .collect();
    if let Autoscaling::Hpa {
        target_memory: Some(m),
        ..
    } = a
    {
        bounds.push(("target_memory".into(), *m));
    }
    for (key, m) in bounds {
        if !(m > 0.0 && m <= 1.0) {
            return Err(SimError::Invalid(format!(
                "[autoscaling] {key} must be within 0..1 (a fraction of the limit), got {m}"
            )));
        }
        if s.memory.is_none() {
            return Err(SimError::Invalid(format!(
                "[autoscaling] {key} needs [service] memory = {{ base_mb = …, per_request_mb = …, limit_mb = … }}"
            )));
        }
    }
    Ok(())
}

/// `[simulation]`, `[slo]` and `[cost]`.
fn check_run(sim: &Simulation, slo: &Slo, cost: &Cost) -> Result<(), SimError> {
    let bad = |s: String| Err(SimError::Invalid(s));
    if sim.duration.is_zero() || sim.warmup >= sim.duration {
        return bad(
            "[simulation] needs duration > warmup, e.g. duration = \"2h\", warmup = \"10m\"".into(),
        );
    }
    if sim.duration > MAX_WINDOW {
        return bad("[simulation] duration must be at most 7 days, e.g. \"2h\"".into());
    }
    if sim.replications == 0 || sim.replications > 1000 {
        return bad("[simulation] replications must be from 1 to 1000".into());
    }
    if !(slo.p95_ms > 0.0 && slo.p95_ms <= MAX_TIME_MS) {
        return bad("[slo] p95_ms must be > 0 and at most 3600000 (an hour)".into());
    }
    if !(cost.replica_hourly.is_finite() && cost.replica_hourly >= 0.0) {
        return bad(format!(
            "[cost] replica_hourly must be a price >= 0, got {}",
            cost.replica_hourly
        ));
    }
    Ok(())
}
