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

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::net::{self, Conn, Connector, Prepared};
use crate::schedule::Schedule;
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
    let shared = Arc::new(Shared {
        connector,
        requests,
        cum_weights: cum_weights.collect(),
        plan: plan.clone(),
        // Leave the workers time to start and warm their connections.
        t0: Instant::now() + Duration::from_millis(150),
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
    let out = collect(&shared, workers, rx, stop, &mut on_second);
    for t in threads {
        let _ = t.join();
    }
    Ok(out)
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
