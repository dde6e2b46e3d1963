//! HTTP load generation with honest latency.
//!
//! `loadgen` owns the `run` stage: a target and a load profile in, a
//! [`RunResult`] out. It drives its connections directly (HTTP/1.1 on its
//! own hot path, HTTP/2 with hyper's connection API) on one
//! single-threaded runtime per worker, measures latency from each request's
//! *scheduled* send time (the coordinated-omission correction) as well as
//! from the actual send, and records per-worker HdrHistograms that a
//! collector merges once a second. It also ships the built-in target
//! service ([`target`]) that every example and test runs against.
//!
//! Files, the terminal, signals and exit codes belong to the `loadtest`
//! binary; this crate returns data.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use std::time::Duration;
//! use loadgen::{Load, RequestSpec, RunPlan, Schedule, StopHandle, TargetSpec};
//!
//! let plan = RunPlan {
//!     target: TargetSpec { url: "http://127.0.0.1:8080/".into(), ..TargetSpec::default() },
//!     requests: vec![RequestSpec::default()],
//!     load: Load::Open {
//!         schedule: Schedule::constant(200.0, Duration::from_secs(5)),
//!         initial_connections: 4,
//!         max_connections: 10_000,
//!     },
//!     timeout: Duration::from_secs(5),
//!     workers: 1,
//!     seed: 1,
//!     coalesce: loadgen::DEFAULT_COALESCE,
//!     shard: loadgen::Shard::WHOLE,
//!     start: None,
//! };
//! let outcome = loadgen::run(&plan, &StopHandle::default(), |_, _| ControlFlow::Continue(()))?;
//! let thresholds = vec![loadgen::parse_threshold("p95<200ms")?];
//! let result = loadgen::summarize(&plan, &outcome, &thresholds);
//! println!("p95 = {} ms, passed: {}", result.latency_ms.p95, result.passed());
//! # Ok::<(), loadgen::LoadgenError>(())
//! ```
#![deny(missing_docs)]

pub mod check;
mod exec;
mod h1;
pub mod merge;
pub mod net;
mod result;
pub mod schedule;
pub mod spec;
pub mod stats;
pub mod target;

use std::time::Duration;

pub use exec::{Load, RunOutcome, StopHandle, pick_kind, run, second_row};
pub use result::{
    Connections, Latency, PercentilePoint, RequestInfo, RunResult, SecondRow, ThresholdResult,
    csv_header, csv_row, digest, evaluate, histogram_from_base64, histogram_to_base64_plain,
    latency_of, redact_url, summarize,
};
pub use schedule::{Schedule, Stripe};
pub use spec::{Stage, Threshold, parse_duration, parse_stages, parse_threshold};

/// Everything that can be wrong with a run's input or its set-up.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// A duration or a service time that does not parse.
    #[error(transparent)]
    Unit(#[from] contracts::units::UnitError),
    /// A threshold that does not parse.
    #[error(
        "bad threshold `{0}`: write e.g. p95<200ms, p99.9<=1s, max<2s, mean<50ms, error_rate<1%, rps>=1000"
    )]
    BadThreshold(String),
    /// A stage list that does not parse.
    #[error("bad stages `{0}`: write DURATION:RPS pairs, e.g. 30s:100,1m:1000")]
    BadStages(String),
    /// A URL that does not parse or is not http(s).
    #[error("bad URL `{url}`: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// An HTTP method that is not a token.
    #[error("bad HTTP method `{0}`: use GET, POST, PUT, ...")]
    BadMethod(String),
    /// A header that is not `Name: value`.
    #[error("bad header `{0}`: write 'Name: value' with a valid name and printable value")]
    BadHeader(String),
    /// A header that loadtest derives from the body itself.
    #[error("header `{0}` is set by loadtest from the body: remove it from the request")]
    FramingHeader(String),
    /// A load option out of range.
    #[error("{0}")]
    BadLoad(String),
    /// The target refused or ignored the first connection.
    #[error(
        "cannot connect to {url}: {why}; is the service running? (`loadtest serve` starts a local one)"
    )]
    Unreachable {
        /// The target URL.
        url: String,
        /// The OS's reason.
        why: String,
    },
    /// The target accepted TCP but refused the TLS handshake.
    #[error("{url} refused the first connection: {why}")]
    Refused {
        /// The target URL.
        url: String,
        /// What the handshake said.
        why: String,
    },
    /// TLS could not be set up.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// `--start-at` passed before this process was ready to send.
    #[error(
        "started {late_ms:.0} ms after --start-at {at}, more than the {tolerance_ms:.0} ms tolerance: this shard sent nothing rather than shift its schedule; start the shards earlier (a longer `k8s render --start-in`) or raise --start-tolerance"
    )]
    LateStart {
        /// The agreed start, RFC 3339.
        at: String,
        /// How late this process was ready.
        late_ms: f64,
        /// The tolerance.
        tolerance_ms: f64,
    },
    /// Threads or runtimes could not start.
    #[error("cannot start the load generator")]
    Runtime(#[source] std::io::Error),
}

/// Where requests go and how.
#[derive(Debug, Clone, Default)]
pub struct TargetSpec {
    /// Base URL; request paths starting with `/` are joined to it.
    pub url: String,
    /// HTTP/2: prior knowledge (h2c) for http://, offered by ALPN for https://.
    pub http2: bool,
    /// Accept any TLS certificate (self-signed staging).
    pub insecure: bool,
}

/// One kind of request; a run picks among them by weight.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// Label for reports.
    pub name: String,
    /// Full URL, a path joined to the target, or `None` for the target URL.
    pub url: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Headers, values already expanded.
    pub headers: Vec<(String, String)>,
    /// Names of the headers whose values came from the environment
    /// (`${VAR}`): shown as `***` wherever the request is described,
    /// whatever the name (the usual secret names always are).
    pub secret_headers: Vec<String>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Relative frequency.
    pub weight: u32,
    /// What its responses must satisfy to count as ok.
    pub check: check::Check,
}

impl Default for RequestSpec {
    fn default() -> Self {
        RequestSpec {
            name: "default".into(),
            url: None,
            method: "GET".into(),
            headers: Vec::new(),
            secret_headers: Vec::new(),
            body: Vec::new(),
            weight: 1,
            check: check::Check::default(),
        }
    }
}

/// A complete, checked description of one run.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Where to send.
    pub target: TargetSpec,
    /// What to send.
    pub requests: Vec<RequestSpec>,
    /// When to send.
    pub load: Load,
    /// Per-request timeout, from the actual send.
    pub timeout: Duration,
    /// Worker threads.
    pub workers: usize,
    /// Seed for the choice among weighted requests.
    pub seed: u64,
    /// Idle wait: with many requests in flight on timestamped connections,
    /// a worker about to sleep waits this long first, so that it wakes once
    /// for a batch of responses rather than once per response. Latencies
    /// are unaffected: those responses are timed by the kernel's receive
    /// timestamps. Zero turns it off.
    pub coalesce: Duration,
    /// Which part of the schedule this process sends (all of it by default).
    pub shard: Shard,
    /// Distributed runs: when the schedule starts, on the real-time clock.
    pub start: Option<StartAt>,
}

/// One part of a distributed run: shard `index` of `count` sends the
/// requests whose index *i* has *i* mod `count` = `index`, at the due times
/// the whole run would use; a closed model's shard opens its share of the
/// connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// Shards in the run.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl Shard {
    /// The whole run, unsharded.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `J/N` with `0 <= J < N`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let not_j_n = || format!("`{text}` is not J/N: write e.g. 2/8 for shard 2 of 8 (0-based)");
        let (j, n) = text.split_once('/').ok_or_else(not_j_n)?;
        let num = |x: &str| x.trim().parse::<u32>().ok();
        match (num(j), num(n)) {
            (Some(j), Some(n)) if n >= 1 && j < n => Ok(Shard { index: j, count: n }),
            (Some(j), Some(n)) if n >= 1 => Err(format!(
                "shard {j} of {n} does not exist: shards are numbered 0 to {}",
                n - 1
            )),
            (Some(_), Some(_)) => Err("a run has at least 1 shard: write J/N with N >= 1".into()),
            _ => Err(not_j_n()),
        }
    }

    /// The request indices this shard owns.
    pub fn stripe(self) -> Stripe {
        Stripe {
            offset: u64::from(self.index),
            stride: u64::from(self.count.max(1)),
        }
    }

    /// This shard's part of `n` things dealt out in turn (connections):
    /// the parts of all shards add up to `n`.
    pub fn share(self, n: usize) -> usize {
        dealt(n, self.index as usize, self.count as usize)
    }

    /// Whether this is a part of a run of several.
    pub fn is_sharded(self) -> bool {
        self.count > 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Party `j`'s part of `n` things dealt out in turn to `c` parties (shards,
/// or a shard's workers): the parts add up to `n`.
pub(crate) fn dealt(n: usize, j: usize, c: usize) -> usize {
    let c = c.max(1);
    n / c + usize::from(j < n % c)
}

/// The start of a distributed run on the real-time clock: every shard warms
/// up, then waits for `at`, and runs on the monotonic clock from then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartAt {
    /// The agreed start.
    pub at: std::time::SystemTime,
    /// How late a shard may be ready and still run (its late requests go
    /// out at once, timed from their due times); later, it sends nothing.
    pub tolerance: Duration,
}

/// The highest rate a run may ask for. One generator process sends at most
/// a few hundred thousand requests a second (benches/compare.sh); ten
/// million is past any of them, and keeps a schedule's arithmetic exact.
pub const MAX_RATE_RPS: f64 = 1e7;

/// The default idle wait ([`RunPlan::coalesce`]).
pub const DEFAULT_COALESCE: Duration = Duration::from_micros(50);

impl RunPlan {
    /// Checks ranges the types cannot express.
    pub fn check(&self) -> Result<(), LoadgenError> {
        let bad = |s: &str| Err(LoadgenError::BadLoad(s.to_string()));
        if self.requests.is_empty() {
            return bad("no requests to send: give --url or a [[requests]] table");
        }
        if self.timeout.is_zero() {
            return bad("--timeout must be > 0, e.g. 5s");
        }
        if self.coalesce > Duration::from_millis(1) {
            return bad("--coalesce must be at most 1ms (default 50us; 0 turns it off)");
        }
        if self.shard.count == 0 || self.shard.index >= self.shard.count {
            return bad("--shard J/N needs 0 <= J < N");
        }
        match &self.load {
            Load::Open {
                schedule,
                max_connections,
                ..
            } => {
                let peak = schedule.peak_rps();
                if peak.is_nan() || peak > MAX_RATE_RPS {
                    return bad(&format!(
                        "a rate of {peak:.3e} rps is more than one generator can send: at most {MAX_RATE_RPS:.0} rps (lower --rate or the --stages targets)"
                    ));
                }
                if schedule.total() == 0 {
                    return bad(
                        "the schedule sends no requests: give --rate > 0 and --duration > 0",
                    );
                }
                if *max_connections == 0 {
                    return bad("--max-connections must be >= 1");
                }
            }
            Load::Closed {
                connections,
                duration,
                ..
            } => {
                if *connections == 0 {
                    return bad("--connections must be >= 1");
                }
                if self.shard.share(*connections) == 0 {
                    return bad(&format!(
                        "--shard {}: {connections} connections split over {} shards leave this one none; give --connections >= {}",
                        self.shard, self.shard.count, self.shard.count
                    ));
                }
                if duration.is_zero() {
                    return bad("--duration must be > 0, e.g. 30s");
                }
            }
        }
        Ok(())
    }

    /// Target request rate of this process's part of the run (the whole
    /// run unless sharded), for an open model.
    pub fn target_rps(&self) -> Option<f64> {
        match &self.load {
            Load::Open { schedule, .. } => {
                Some(schedule.mean_rps() / f64::from(self.shard.count.max(1)))
            }
            Load::Closed { .. } => None,
        }
    }

    /// Whether this is a part of a distributed run (`--shard` or
    /// `--start-at`): its result then carries what a merge needs.
    pub fn distributed(&self) -> bool {
        self.shard.is_sharded() || self.start.is_some()
    }

    /// Requests this process's part of the schedule holds (open model).
    pub fn scheduled(&self) -> Option<u64> {
        match &self.load {
            Load::Open { schedule, .. } => Some(self.shard.stripe().count_below(schedule.total())),
            Load::Closed { .. } => None,
        }
    }
}
