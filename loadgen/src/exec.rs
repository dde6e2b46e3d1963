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
use crate::stats::{Interval, Outcome, Recorder};
use crate::{LoadgenError, RunPlan};

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

/// One merged second of the run, as rows for the time series.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SecondRow {
    /// Start of the second, from the start of the run.
    pub t_s: u64,
    /// Requests completed in the second.
    pub requests: u64,
    /// Of which succeeded.
    pub ok: u64,
    /// Of which failed.
    pub errors: u64,
    /// Requests per second achieved.
    pub rps: f64,
    /// Median corrected latency, ms.
    pub p50_ms: f64,
    /// 95th percentile corrected latency, ms.
    pub p95_ms: f64,
    /// 99th percentile corrected latency, ms.
    pub p99_ms: f64,
    /// Scheduled requests dropped in the second.
    pub dropped: u64,
    /// Requests due in the second (open model).
    pub target_rps: Option<f64>,
    /// Errors by class, in [`Outcome::ERRORS`] order.
    pub errors_by_class: [u64; 6],
}

impl SecondRow {
    /// Summarises one merged interval.
    pub fn from_interval(iv: &Interval, target_rps: Option<f64>) -> Self {
        let q = |p: f64| iv.latency_us.value_at_quantile(p) as f64 / 1e3;
        let c = &iv.counts;
        SecondRow {
            t_s: iv.second,
            requests: c.requests(),
            ok: c.get(Outcome::Ok),
            errors: c.errors(),
            rps: c.requests() as f64,
            p50_ms: q(0.5),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            dropped: c.dropped,
            target_rps,
            errors_by_class: Outcome::ERRORS.map(|o| c.get(o)),
        }
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

/// A task's connection and its timeout watchdog. The watchdog is one timer
/// per task, re-armed only when it fires (about once per timeout), instead
/// of a timer per request.
struct Link {
    conn: Option<Conn>,
    watchdog: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Link {
    fn new() -> Self {
        Link {
            conn: None,
            watchdog: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
        }
    }

    /// Completes once `deadline` has passed.
    async fn expire(watchdog: &mut std::pin::Pin<Box<tokio::time::Sleep>>, deadline: Instant) {
        loop {
            if watchdog.deadline() > deadline {
                watchdog.as_mut().reset(deadline);
            }
            watchdog.as_mut().await;
            if Instant::now() >= deadline {
                return;
            }
            watchdog.as_mut().reset(deadline);
        }
    }
}

/// How late the dispatcher may wake for a tick while it still trusts that a
/// busy pool means a busy server. Later than this, the generator's own
/// thread is behind, and more connections would only slow it further.
const DISPATCH_LAG_LIMIT: Duration = Duration::from_millis(5);

/// Where the dispatcher leaves an idle connection its next slot (`Some`)
/// or tells it the run is over (`None`).
#[derive(Default)]
struct Mailbox {
    slot: Cell<Option<Option<Instant>>>,
    waker: RefCell<Option<Waker>>,
}

impl Mailbox {
    fn deliver(&self, slot: Option<Instant>) {
        self.slot.set(Some(slot));
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    async fn recv(&self) -> Option<Instant> {
        std::future::poll_fn(|cx| match self.slot.take() {
            Some(slot) => Poll::Ready(slot),
            None => {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// Most connections a worker opens in one tick: enough for a 1 s stall at
/// several thousand rps per worker, few enough that a generator falling
/// behind cannot bury itself in handshakes.
const MAX_NEW_PER_TICK: usize = 8;

thread_local! {
    /// Requests in flight on this worker thread over connections whose
    /// responses carry the kernel's receive time (read by the idle hook).
    static IN_FLIGHT_STAMPED: Cell<usize> = const { Cell::new(0) };
    /// Times this worker thread's idle hook waited.
    static IDLE_WAITS: Cell<u64> = const { Cell::new(0) };
}

/// Fewest timestamped requests in flight for the idle wait: with this many
/// queued, the server has work while the generator waits, and the wait
/// costs neither throughput nor accuracy.
const COALESCE_MIN_IN_FLIGHT: usize = 16;

/// Counts a timestamped request in flight for as long as it lives.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        IN_FLIGHT_STAMPED.with(|n| n.set(n.get() + 1));
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT_STAMPED.with(|n| n.set(n.get() - 1));
    }
}

/// Resolution of tokio's timer wheel.
const TIMER_TICK: Duration = Duration::from_millis(1);

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
            .map_err(|e| LoadgenError::Runtime(e.to_string()))?;
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
        .map_err(|e| LoadgenError::Runtime(e.to_string()))?;
    rt.block_on(async {
        let c = Connector::new(target, &plan.target).await?;
        c.probe(&crate::redact_url(&plan.target.url), plan.timeout)
            .await?;
        Ok(c)
    })
}

fn collect(
    sh: &Shared,
    workers: usize,
    rx: mpsc::Receiver<Msg>,
    stop: &StopHandle,
    on_second: &mut impl FnMut(&Interval, &SecondRow) -> ControlFlow<String>,
) -> RunOutcome {
    let mut pending: BTreeMap<u64, Interval> = BTreeMap::new();
    // Seconds below progress[w] are complete for worker w.
    let mut progress = vec![0u64; workers];
    let mut out = RunOutcome {
        totals: Recorder::default(),
        series: Vec::new(),
        elapsed: Duration::ZERO,
        sending: Duration::ZERO,
        connections_opened: 0,
        kernel_timed: 0,
        peak_connections: 0,
        idle_waits: 0,
        stopped: None,
    };
    let (mut last, mut last_send): (Option<Instant>, Option<Instant>) = (None, None);
    let mut emit = |iv: Interval, out: &mut RunOutcome| {
        let row = SecondRow::from_interval(&iv, target_in_second(&sh.plan, iv.second));
        if out.stopped.is_none()
            && let ControlFlow::Break(reason) = on_second(&iv, &row)
        {
            out.stopped = Some(reason);
            stop.stop();
        }
        out.series.push(row);
    };
    for msg in rx {
        match msg {
            Msg::Interval(w, iv) => {
                progress[w] = iv.second + 1;
                let s = iv.second;
                pending
                    .entry(s)
                    .or_insert_with(|| Interval::empty(s))
                    .merge(&iv);
            }
            Msg::Done(w, end) => {
                progress[w] = u64::MAX;
                out.totals.merge(&end.rec);
                out.connections_opened += end.opened;
                out.kernel_timed += end.kernel_timed;
                out.peak_connections += end.peak;
                out.idle_waits += end.idle_waits;
                last = last.max(end.last_completion);
                last_send = last_send.max(end.last_send);
            }
        }
        let done_below = progress.iter().copied().min().unwrap_or(u64::MAX);
        while let Some(entry) = pending.first_entry() {
            if *entry.key() >= done_below {
                break;
            }
            emit(entry.remove(), &mut out);
        }
    }
    let since_t0 = |t: Option<Instant>| {
        t.map(|l| l.saturating_duration_since(sh.t0))
            .unwrap_or_default()
    };
    out.elapsed = since_t0(last);
    out.sending = since_t0(last_send);
    if out.stopped.is_none() && stop.is_stopped() {
        out.stopped = Some("interrupted".into());
    }
    out
}

fn target_in_second(plan: &RunPlan, s: u64) -> Option<f64> {
    match &plan.load {
        Load::Open { schedule, .. } => {
            let t = s as f64;
            Some(schedule.due_by(t + 1.0) - schedule.due_by(t))
        }
        Load::Closed { .. } => None,
    }
}

fn worker_thread(
    id: usize,
    workers: usize,
    sh: Arc<Shared>,
    stop: watch::Receiver<bool>,
    tx: mpsc::Sender<Msg>,
) {
    let mut b = tokio::runtime::Builder::new_current_thread();
    b.enable_all();
    let wait = sh.plan.coalesce;
    if !wait.is_zero() {
        // Runs when the worker has nothing ready and is about to block in
        // epoll: waiting a little first lets responses pile up, so one
        // wake-up (a context switch, the costliest part of a request on
        // loopback) serves many of them.
        b.on_thread_park(move || {
            if IN_FLIGHT_STAMPED.with(Cell::get) >= COALESCE_MIN_IN_FLIGHT {
                IDLE_WAITS.with(|n| n.set(n.get() + 1));
                std::thread::sleep(wait);
            }
        });
    }
    let rt = match b.build() {
        Ok(rt) => rt,
        Err(_) => {
            let end = WorkerEnd {
                rec: Recorder::default(),
                last_completion: None,
                last_send: None,
                opened: 0,
                kernel_timed: 0,
                peak: 0,
                idle_waits: 0,
            };
            let _ = tx.send(Msg::Done(id, Box::new(end)));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    let w = Rc::new(Worker::new(id, workers, sh, tx));
    local.block_on(&rt, w.clone().main(stop));
}

struct Worker {
    id: usize,
    workers: usize,
    sh: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    rec: RefCell<Recorder>,
    rng: RefCell<ChaCha8Rng>,
    /// Open model: this worker's next slot not yet handed out (ordinal k → request id + kW).
    next_k: Cell<u64>,
    seg: Cell<usize>,
    /// Open model: connections waiting for a slot, most recently used last.
    idle: RefCell<Vec<Rc<Mailbox>>>,
    /// The dispatcher, when it waits for a connection to come back.
    dispatcher: RefCell<Option<Waker>>,
    /// The schedule is exhausted or the run stopped: no more slots.
    dispatch_done: Cell<bool>,
    /// Live connection tasks and the most at once.
    tasks: Cell<usize>,
    peak: Cell<usize>,
    opened: Cell<u64>,
    kernel_timed: Cell<u64>,
    all_done: Notify,
    stopped: Cell<bool>,
    stop_now: Notify,
    last_completion: Cell<Option<Instant>>,
    last_send: Cell<Option<Instant>>,
    /// HTTP/2: one connection carries every task's streams.
    h2: RefCell<Option<Conn>>,
    h2_dial: tokio::sync::Mutex<()>,
}

impl Worker {
    fn new(id: usize, workers: usize, sh: Arc<Shared>, tx: mpsc::Sender<Msg>) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(sh.plan.seed);
        rng.set_stream(id as u64);
        Worker {
            id,
            workers,
            sh,
            tx,
            rec: RefCell::default(),
            rng: RefCell::new(rng),
            next_k: Cell::new(0),
            seg: Cell::new(0),
            idle: RefCell::default(),
            dispatcher: RefCell::default(),
            dispatch_done: Cell::new(false),
            tasks: Cell::new(0),
            peak: Cell::new(0),
            opened: Cell::new(0),
            kernel_timed: Cell::new(0),
            all_done: Notify::new(),
            stopped: Cell::new(false),
            stop_now: Notify::new(),
            last_completion: Cell::new(None),
            last_send: Cell::new(None),
            h2: RefCell::new(None),
            h2_dial: tokio::sync::Mutex::new(()),
        }
    }

    async fn main(self: Rc<Self>, mut stop: watch::Receiver<bool>) {
        let me = self.clone();
        tokio::task::spawn_local(async move {
            let _ = stop.wait_for(|s| *s).await;
            me.stopped.set(true);
            me.stop_now.notify_waiters();
            me.wake_dispatcher();
        });
        tokio::task::spawn_local(self.clone().ticker());
        match &self.sh.plan.load {
            Load::Open {
                initial_connections,
                max_connections,
                ..
            } => {
                let share = |n: usize| n.div_ceil(self.workers).max(1);
                for _ in 0..share(*initial_connections) {
                    self.spawn_task(self.clone().open_task(None, true));
                }
                self.clone().dispatch(share(*max_connections)).await;
            }
            Load::Closed {
                connections,
                think_time,
                duration,
            } => {
                let n =
                    connections / self.workers + usize::from(self.id < connections % self.workers);
                for _ in 0..n {
                    let deadline = self.sh.t0 + *duration;
                    self.spawn_task(self.clone().closed_task(deadline, *think_time));
                }
            }
        }
        while self.tasks.get() > 0 {
            self.all_done.notified().await;
        }
        let mut rec = self.rec.take();
        let second = rec.interval.second;
        let _ = self
            .tx
            .send(Msg::Interval(self.id, rec.take_interval(second + 1)));
        let end = WorkerEnd {
            rec,
            last_completion: self.last_completion.get(),
            last_send: self.last_send.get(),
            opened: self.opened.get(),
            kernel_timed: self.kernel_timed.get(),
            peak: self.peak.get(),
            idle_waits: IDLE_WAITS.with(Cell::get),
        };
        let _ = self.tx.send(Msg::Done(self.id, Box::new(end)));
    }

    fn spawn_task(&self, fut: impl Future<Output = ()> + 'static) {
        self.tasks.set(self.tasks.get() + 1);
        self.peak.set(self.peak.get().max(self.tasks.get()));
        tokio::task::spawn_local(fut);
    }

    fn task_done(&self) {
        self.tasks.set(self.tasks.get() - 1);
        if self.tasks.get() == 0 {
            self.all_done.notify_one();
        }
    }

    async fn ticker(self: Rc<Self>) {
        let mut second = 0u64;
        loop {
            tokio::time::sleep_until(self.sh.t0 + Duration::from_secs(second + 1)).await;
            second += 1;
            let iv = self.rec.borrow_mut().take_interval(second);
            if self.tx.send(Msg::Interval(self.id, iv)).is_err() {
                return;
            }
        }
    }

    /// Sleeps until `at`; false when a stop came first.
    async fn sleep_until(&self, at: Instant) -> bool {
        if self.stopped.get() {
            return false;
        }
        if at <= Instant::now() {
            return true; // already due: no timer needed
        }
        tokio::select! {
            _ = tokio::time::sleep_until(at) => !self.stopped.get(),
            _ = self.stop_now.notified() => false,
        }
    }

    fn due(&self, k: u64) -> Option<Instant> {
        let Load::Open { schedule, .. } = &self.sh.plan.load else {
            return None;
        };
        let mut seg = self.seg.get();
        let ns = schedule.due_ns_from(self.id as u64 + k * self.workers as u64, &mut seg)?;
        self.seg.set(seg);
        Some(self.sh.t0 + Duration::from_nanos(ns))
    }

    fn wake_dispatcher(&self) {
        if let Some(w) = self.dispatcher.borrow_mut().take() {
            w.wake();
        }
    }

    /// Hands out slots. It wakes once per timer tick and gives every slot due
    /// by the end of the tick to an idle connection: one timer per tick, not
    /// per request. With no idle connection, and the dispatcher on time,
    /// every connection is waiting on the server, so a new user opens a new
    /// connection. When the dispatcher woke late, this thread, not the
    /// server, is behind: slots then wait for connections to come back.
    async fn dispatch(self: Rc<Self>, max_tasks: usize) {
        // Whether this thread is behind: its last timer fired more than
        // DISPATCH_LAG_LIMIT after its deadline. Only timed sleeps update
        // it, so a backlog of overdue slots does not count against it.
        let mut behind = false;
        'run: while let Some(first) = {
            self.drop_stale();
            self.due(self.next_k.get())
        } {
            // tokio's timer fires on the first 1 ms tick at or after its
            // deadline; aiming a tick early keeps its rounding out of the
            // latency (see `exchange` for how early sends are timed).
            let wake_at = first.checked_sub(TIMER_TICK).unwrap_or(first);
            if wake_at > Instant::now() {
                if !self.sleep_until(wake_at).await {
                    break;
                }
                behind = wake_at.elapsed() > DISPATCH_LAG_LIMIT;
            }
            let horizon = Instant::now() + TIMER_TICK;
            let mut opened = 0;
            while let Some(due) = self.due(self.next_k.get()).filter(|d| *d <= horizon) {
                if self.stopped.get() {
                    break 'run;
                }
                let idle = self.idle.borrow_mut().pop();
                if let Some(mailbox) = idle {
                    self.next_k.set(self.next_k.get() + 1);
                    mailbox.deliver(Some(due));
                    continue;
                }
                if !behind && opened < MAX_NEW_PER_TICK && self.tasks.get() < max_tasks {
                    opened += 1;
                    self.next_k.set(self.next_k.get() + 1);
                    self.spawn_task(self.clone().open_task(Some(due), false));
                    continue;
                }
                // At a cap, or this thread is behind: the slot waits for the
                // next free connection (its latency counts from its due
                // time), or for the next tick, whose timer tells again
                // whether this thread keeps up.
                let tick = Instant::now() + TIMER_TICK;
                tokio::select! {
                    _ = self.wait_for_idle() => {}
                    _ = tokio::time::sleep_until(tick) => {
                        behind = tick.elapsed() > DISPATCH_LAG_LIMIT;
                        continue 'run;
                    }
                }
            }
        }
        self.dispatch_done.set(true);
        for mailbox in self.idle.borrow_mut().drain(..) {
            mailbox.deliver(None);
        }
        // Slots that came due but found no connection before a stop were
        // still scheduled: they count as dropped, not as never asked for.
        if self.stopped.get() {
            let now = Instant::now();
            let mut k = self.next_k.get();
            while self.due(k).is_some_and(|d| d <= now) {
                self.rec.borrow_mut().record_dropped();
                k += 1;
            }
            self.next_k.set(k);
        }
    }

    /// Counts as dropped, at once, this worker's slots that are already
    /// more than the timeout late (each would be dropped when handed out):
    /// a rate far past what the generator can send ends with its schedule,
    /// not after handing out every slot one by one.
    fn drop_stale(&self) {
        let Load::Open { schedule, .. } = &self.sh.plan.load else {
            return;
        };
        let Some(late_by) = self.sh.t0.elapsed().checked_sub(self.sh.plan.timeout) else {
            return;
        };
        // Slots with index below N(now − timeout) are stale; this worker's
        // slot k has index id + k·workers.
        let stale = schedule.due_by(late_by.as_secs_f64()).floor() as u64;
        let (id, w) = (self.id as u64, self.workers as u64);
        let first_fresh = stale.saturating_sub(id).div_ceil(w);
        let k = self.next_k.get();
        if first_fresh > k {
            self.rec.borrow_mut().record_dropped_n(first_fresh - k);
            self.next_k.set(first_fresh);
        }
    }

    async fn wait_for_idle(&self) {
        std::future::poll_fn(|cx| {
            if !self.idle.borrow().is_empty() || self.stopped.get() {
                return Poll::Ready(());
            }
            *self.dispatcher.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    async fn open_task(self: Rc<Self>, first: Option<Instant>, warm: bool) {
        let mut link = Link::new();
        if warm {
            link.conn = self.dial().await.ok();
        }
        let mailbox = Rc::new(Mailbox::default());
        let mut next = first;
        loop {
            let due = match next.take() {
                Some(due) => due,
                None => {
                    if self.dispatch_done.get() {
                        break;
                    }
                    self.idle.borrow_mut().push(mailbox.clone());
                    self.wake_dispatcher();
                    match mailbox.recv().await {
                        Some(due) => due,
                        None => break,
                    }
                }
            };
            if due.elapsed() > self.sh.plan.timeout {
                self.rec.borrow_mut().record_dropped();
                continue;
            }
            self.exchange(&mut link, Some(due)).await;
        }
        self.task_done();
    }

    async fn closed_task(self: Rc<Self>, deadline: Instant, think: Duration) {
        let mut link = Link::new();
        let _ = self.sleep_until(self.sh.t0).await;
        let mut now = Instant::now();
        while !self.stopped.get() && now < deadline {
            let (outcome, done) = self.exchange(&mut link, None).await;
            now = done;
            // A refused port answers in microseconds; don't spin on it.
            let pause = if outcome == Outcome::Connect {
                think.max(Duration::from_millis(10))
            } else {
                think
            };
            if !pause.is_zero() {
                if !self.sleep_until(now + pause).await {
                    break;
                }
                now = Instant::now();
            }
        }
        self.task_done();
    }

    async fn dial(&self) -> Result<Conn, Outcome> {
        // HTTP/2: tasks that want a connection while one is being opened
        // wait for it and share it, rather than each opening their own.
        let _dialing = if self.sh.plan.target.http2 {
            Some(self.h2_dial.lock().await)
        } else {
            None
        };
        if let Some(Conn::H2(s)) = &*self.h2.borrow()
            && !s.is_closed()
        {
            return Ok(Conn::H2(s.clone()));
        }
        let conn = self.sh.connector.connect(self.sh.plan.timeout).await?;
        self.opened.set(self.opened.get() + 1);
        if let Conn::H2(s) = &conn {
            *self.h2.borrow_mut() = Some(Conn::H2(s.clone()));
        }
        Ok(conn)
    }

    fn pick(&self) -> usize {
        let cw = &self.sh.cum_weights;
        if cw.len() <= 1 {
            return 0;
        }
        let x = self.rng.borrow_mut().random_range(0..cw[cw.len() - 1]);
        cw.partition_point(|&c| c <= x)
    }

    /// One request due at `due` (closed model: `None`, due when sent):
    /// connect if needed, send, read, record. Returns the outcome and the
    /// time it completed.
    async fn exchange(&self, link: &mut Link, mut due: Option<Instant>) -> (Outcome, Instant) {
        let timeout = self.sh.plan.timeout;
        let req = &self.sh.requests[self.pick()];
        let (mut first_send, mut retried) = (None::<Instant>, false);
        let (outcome, sent, arrived) = loop {
            if link.conn.as_ref().is_none_or(Conn::is_closed) {
                let start = Instant::now();
                // A closed-model request waits for its connection too.
                due.get_or_insert(start);
                match self.dial().await {
                    Ok(c) => link.conn = Some(c),
                    Err(o) => break (o, first_send.unwrap_or(start), None),
                }
            }
            let c = link.conn.as_mut().expect("connected above");
            // A retry keeps the first send's time and deadline.
            let sent = *first_send.get_or_insert_with(Instant::now);
            self.last_send.set(Some(sent));
            let _in_flight = c.stamped().then(InFlight::start);
            let r = tokio::select! {
                biased;
                r = c.exchange(req) => r,
                _ = Link::expire(&mut link.watchdog, sent + timeout) => Err(Outcome::Timeout),
            };
            match r {
                Ok((status, arrived)) => break (Outcome::from_status(status), sent, arrived),
                // The server closed this keep-alive connection while it was
                // idle: the request never reached it. Once, on a fresh
                // connection, for a method that may be sent twice (RFC 9110
                // 9.2.2), as browsers and hyper's pool do.
                Err(Outcome::Reset)
                    if req.idempotent
                        && c.failed_unanswered_on_reuse()
                        && sent.elapsed() < timeout
                        && !retried =>
                {
                    retried = true;
                    link.conn = None;
                    self.rec.borrow_mut().record_retry();
                }
                Err(o) => break (o, sent, None),
            }
        };
        if !matches!(outcome, Outcome::Ok | Outcome::Http4xx | Outcome::Http5xx) {
            link.conn = None;
        }
        // The kernel's receive time when the socket gives it: what the
        // generator was busy with meanwhile is not the server's latency.
        if arrived.is_some() {
            self.kernel_timed.set(self.kernel_timed.get() + 1);
        }
        let now = arrived.map_or_else(Instant::now, |at| Instant::from_std(at).max(sent));
        self.last_completion.set(Some(now));
        let us = |from: Instant| now.saturating_duration_since(from).as_micros() as u64;
        // Latency counts from the due time, or from the send when the timer
        // let it go out up to a tick early: lateness is never hidden, and
        // earliness never shortens a latency.
        let from_schedule = due.map_or(sent, |due| due.min(sent));
        self.rec
            .borrow_mut()
            .record(outcome, us(from_schedule), us(sent));
        (outcome, now)
    }
}
