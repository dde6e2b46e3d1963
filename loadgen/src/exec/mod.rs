//! Executors: who sends which request when, and the collector that merges
//! what the workers measured.
//!
//! Each worker is an OS thread with its own single-threaded tokio runtime,
//! so the hot path has no locks or atomics: connection tasks share the
//! worker's state through `Rc`/`Cell`. Worker *w* of *W* owns requests
//! *w*, *w+W*, *w+2W*, ... of the open-model schedule.
//!
//! Open model: once per timer tick the dispatcher hands every slot due in
//! that tick to an idle connection. When none is idle, every connection is
//! waiting on the server, so it opens a new connection for the slot (up to
//! the worker's share of `max_connections`), as real users keep arriving
//! during a stall. Past the cap the slot waits for the next free connection
//! and its latency still counts from the due time; a slot more than the
//! timeout late is `dropped`, never silently skipped.
//!
//! Closed model: N connections loop as fast as the server answers.
//!
//! Once a second every worker hands its interval to the collector over a
//! channel; the collector merges them and calls the observer (live view,
//! CSV, abort-on-fail).
//!
//! Here: the load models, the stop handle and the run handle that starts
//! the workers ([`worker`]) and the collector ([`collector`]).
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::net::{self, Conn, Connector, Prepared};
use crate::schedule::{Schedule, Stripe};
use crate::stats::{Class, Interval, Recorder};
use crate::{LoadgenError, RunPlan};
use contracts::run::SecondRow;

mod collector;
mod worker;

use collector::collect;
pub use collector::second_row;
use worker::worker_thread;

/// How the arrival of requests is driven.
#[derive(Debug, Clone)]
pub enum Load {
    /// Requests arrive on a schedule regardless of how the server copes.
    Open {
        /// When each request is due.
        schedule: Schedule,
        /// Connections opened before the start.
        initial_connections: usize,
        /// Most connections open at once.
        max_connections: usize,
    },
    /// A fixed number of connections loop as fast as the server answers.
    Closed {
        /// Concurrent connections.
        connections: usize,
        /// Pause after each response.
        think_time: Duration,
        /// How long to run.
        duration: Duration,
    },
}

/// Stops a run from another thread (Ctrl-C). Cheap to clone.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

impl Default for StopHandle {
    fn default() -> Self {
        StopHandle(Arc::new(watch::channel(false).0))
    }
}

impl StopHandle {
    /// Asks every worker to stop sending; in-flight requests still finish.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// Everything a run measured, before it is summarised.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Whole-run counts and histograms of all workers.
    pub totals: Recorder,
    /// One row per second.
    pub series: Vec<SecondRow>,
    /// From the start to the last completed request.
    pub elapsed: Duration,
    /// From the start to the last request sent.
    pub sending: Duration,
    /// TCP connections opened during the run (HTTP/2 streams share one).
    pub connections_opened: u64,
    /// Most connections (or HTTP/2 streams) in use at once.
    pub peak_connections: usize,
    /// Times a worker waited before sleeping ([`RunPlan::coalesce`]).
    pub idle_waits: u64,
    /// Responses timed by the kernel's receive timestamp; the rest were
    /// timed by the clock when the generator read them.
    pub kernel_timed: u64,
    /// Why the run ended early, if it did.
    pub stopped: Option<String>,
    /// With [`RunPlan::start`]: when this process's clock reached the
    /// agreed start, minus the agreed start, ms (how late it began).
    pub start_offset_ms: Option<f64>,
    /// Sharded runs: each second's corrected histogram, HdrHistogram V2
    /// (uncompressed) in base64, in the order of `series`, so that a merge
    /// of shards computes each second's percentiles exactly.
    pub second_histograms: Vec<String>,
}

enum Msg {
    Interval(usize, Interval),
    Done(usize, Box<WorkerEnd>),
}

struct WorkerEnd {
    rec: Recorder,
    last_completion: Option<Instant>,
    last_send: Option<Instant>,
    opened: u64,
    kernel_timed: u64,
    peak: usize,
    idle_waits: u64,
}

struct Shared {
    connector: Connector,
    requests: Vec<Prepared>,
    cum_weights: Vec<u64>,
    plan: RunPlan,
    t0: Instant,
}

/// Runs the plan to completion on `plan.workers` threads, calling
/// `on_second` with each merged second (its histogram and its summary row);
/// `Break(reason)` stops the run.
pub fn run(
    plan: &RunPlan,
    stop: &StopHandle,
    mut on_second: impl FnMut(&Interval, &SecondRow) -> ControlFlow<String>,
) -> Result<RunOutcome, LoadgenError> {
    plan.check()?;
    let target = net::parse_url(&plan.target.url)?;
    let requests = plan
        .requests
        .iter()
        .map(|r| net::prepare(&target, r))
        .collect::<Result<Vec<_>, _>>()?;
    let connector = preflight(&target, plan)?;
    let mut acc = 0u64;
    let cum_weights = plan.requests.iter().map(|r| {
        acc += u64::from(r.weight.max(1));
        acc
    });
    let workers = plan.workers.max(1);
    let t0 = start_instant(plan)?;
    let shared = Arc::new(Shared {
        connector,
        requests,
        cum_weights: cum_weights.collect(),
        plan: plan.clone(),
        t0,
    });
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::with_capacity(workers);
    for id in 0..workers {
        let (sh, tx, stop_rx) = (shared.clone(), tx.clone(), stop.0.subscribe());
        let t = std::thread::Builder::new()
            .name(format!("loadgen-{id}"))
            .spawn(move || worker_thread(id, workers, sh, stop_rx, tx))
            .map_err(LoadgenError::Runtime)?;
        threads.push(t);
    }
    drop(tx);
    let start_offset_ms = plan.start.map(|s| wait_for_start(t0, s.at, stop));
    let mut out = collect(&shared, workers, rx, stop, &mut on_second);
    out.start_offset_ms = start_offset_ms;
    for t in threads {
        let _ = t.join();
    }
    Ok(out)
}

/// Which of the weighted requests (`cum_weights`, running sums of the
/// weights) request `i` of a run seeded `seed` is: a pure function of the
/// two, so request `i` is the same request whichever worker or shard sends
/// it.
pub fn pick_kind(cum_weights: &[u64], seed: u64, i: u64) -> usize {
    let Some(&total) = cum_weights.last() else {
        return 0;
    };
    if cum_weights.len() == 1 {
        return 0;
    }
    let x = splitmix64(splitmix64(seed) ^ i);
    // Scaled to 0..total by the high half of the product: unbiased to
    // within total / 2⁶⁴.
    let r = ((u128::from(x) * u128::from(total)) >> 64) as u64;
    cum_weights.partition_point(|&c| c <= r)
}

/// SplitMix64's finaliser: a bijection of u64 whose outputs pass BigCrush.
fn splitmix64(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// When the schedule starts on the monotonic clock: in 150 ms (time for the
/// workers to start and warm their connections), or at the agreed
/// real-time start of a distributed run. A start already past by less than
/// its tolerance keeps its schedule (the late slots go out at once, timed
/// from their due times); by more, the run is refused.
fn start_instant(plan: &RunPlan) -> Result<Instant, LoadgenError> {
    let now = Instant::now();
    let Some(start) = plan.start else {
        return Ok(now + Duration::from_millis(150));
    };
    match start.at.duration_since(std::time::SystemTime::now()) {
        Ok(ahead) => Ok(now + ahead),
        Err(e) if e.duration() <= start.tolerance => {
            Ok(now.checked_sub(e.duration()).unwrap_or(now))
        }
        Err(e) => Err(LoadgenError::LateStart {
            at: humantime::format_rfc3339_millis(start.at).to_string(),
            late_ms: e.duration().as_secs_f64() * 1e3,
            tolerance_ms: start.tolerance.as_secs_f64() * 1e3,
        }),
    }
}

/// Waits (on this, the collector's thread, while the workers warm up) for
/// the start, and returns how late the real-time clock says it came, ms.
/// A stop ends the wait.
fn wait_for_start(t0: Instant, at: std::time::SystemTime, stop: &StopHandle) -> f64 {
    while !stop.is_stopped() {
        let left = t0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    match std::time::SystemTime::now().duration_since(at) {
        Ok(late) => late.as_secs_f64() * 1e3,
        Err(early) => -early.duration().as_secs_f64() * 1e3,
    }
}

/// Resolves the target and proves it accepts connections, so a wrong URL
/// is a clear error before any load is sent.
fn preflight(target: &hyper::Uri, plan: &RunPlan) -> Result<Connector, LoadgenError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LoadgenError::Runtime)?;
    rt.block_on(async {
        let c = Connector::new(target, &plan.target).await?;
        c.probe(&crate::redact_url(&plan.target.url), plan.timeout)
            .await?;
        Ok(c)
    })
}

#[cfg(test)]
mod tests {
    use super::pick_kind;

    /// Request i's kind depends on (seed, i) alone, and the kinds come in
    /// the proportions of their weights: 1:3:6 over 200,000 indices, each
    /// share within 0.5 points (over 10 standard deviations).
    #[test]
    fn kinds_are_a_function_of_seed_and_index_in_weight_proportion() {
        let cw = [1u64, 4, 10];
        let mut n = [0u64; 3];
        for i in 0..200_000 {
            let k = pick_kind(&cw, 7, i);
            assert_eq!(k, pick_kind(&cw, 7, i));
            n[k] += 1;
        }
        for (got, want) in n.iter().zip([0.1, 0.3, 0.6]) {
            let share = *got as f64 / 200_000.0;
            assert!((share - want).abs() < 0.005, "{n:?}");
        }
        let differ = (0..1000).filter(|&i| pick_kind(&cw, 7, i) != pick_kind(&cw, 8, i));
        assert!(differ.count() > 300, "another seed picks other kinds");
        assert_eq!(pick_kind(&[5], 1, 3), 0);
        assert_eq!(pick_kind(&[], 1, 3), 0);
    }
}
