//! A worker: one OS thread with a single-threaded runtime, its dispatcher,
//! its connection tasks and the exchange of one request on a connection.
use super::*;

/// A task's connection and its timeout watchdog. The watchdog is one timer
/// per task, re-armed only when it fires (about once per timeout), instead
/// of a timer per request.
struct Link {
    conn: Option<Conn>,
    watchdog: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// The last response's body, for requests whose checks read it.
    body: Vec<u8>,
}

impl Link {
    fn new() -> Self {
        Link {
            conn: None,
            watchdog: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
            body: Vec::new(),
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

/// A slot of the open model: request `i` of the schedule, due at `due`.
#[derive(Debug, Clone, Copy)]
struct Slot {
    i: u64,
    due: Instant,
}

/// Where the dispatcher leaves an idle connection its next slot (`Some`)
/// or tells it the run is over (`None`).
#[derive(Default)]
struct Mailbox {
    slot: Cell<Option<Option<Slot>>>,
    waker: RefCell<Option<Waker>>,
}

impl Mailbox {
    fn deliver(&self, slot: Option<Slot>) {
        self.slot.set(Some(slot));
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    async fn recv(&self) -> Option<Slot> {
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

pub(super) fn worker_thread(
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
    /// The request indices this worker sends (of its shard's).
    stripe: Stripe,
    /// Open model: this worker's next slot not yet handed out (ordinal k →
    /// request `stripe.index(k)`); closed model: requests sent so far.
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
        Worker {
            id,
            workers,
            stripe: sh.plan.shard.stripe().split(id, workers),
            sh,
            tx,
            rec: RefCell::default(),
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
                // A shard sends its part of the rate: its part of the warm
                // connections; the cap is each process's own.
                let shard = self.sh.plan.shard;
                let initial = initial_connections.div_ceil(shard.count.max(1) as usize);
                for _ in 0..share(initial) {
                    self.spawn_task(self.clone().open_task(None, true));
                }
                self.clone().dispatch(share(*max_connections)).await;
            }
            Load::Closed {
                connections,
                think_time,
                duration,
            } => {
                let mine = self.sh.plan.shard.share(*connections);
                let n = crate::dealt(mine, self.id, self.workers);
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
        let ns = schedule.due_ns_from(self.stripe.index(k), &mut seg)?;
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
                let slot = Slot {
                    i: self.stripe.index(self.next_k.get()),
                    due,
                };
                let idle = self.idle.borrow_mut().pop();
                if let Some(mailbox) = idle {
                    self.next_k.set(self.next_k.get() + 1);
                    mailbox.deliver(Some(slot));
                    continue;
                }
                if !behind && opened < MAX_NEW_PER_TICK && self.tasks.get() < max_tasks {
                    opened += 1;
                    self.next_k.set(self.next_k.get() + 1);
                    self.spawn_task(self.clone().open_task(Some(slot), false));
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
        // Slots with index below N(now − timeout) are stale.
        let stale = schedule.due_by(late_by.as_secs_f64()).floor() as u64;
        let first_fresh = self.stripe.first_at_or_after(stale);
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

    async fn open_task(self: Rc<Self>, first: Option<Slot>, warm: bool) {
        let mut link = Link::new();
        if warm {
            link.conn = self.dial().await.ok();
        }
        let mailbox = Rc::new(Mailbox::default());
        let mut next = first;
        loop {
            let slot = match next.take() {
                Some(slot) => slot,
                None => {
                    if self.dispatch_done.get() {
                        break;
                    }
                    self.idle.borrow_mut().push(mailbox.clone());
                    self.wake_dispatcher();
                    match mailbox.recv().await {
                        Some(slot) => slot,
                        None => break,
                    }
                }
            };
            if slot.due.elapsed() > self.sh.plan.timeout {
                self.rec.borrow_mut().record_dropped();
                continue;
            }
            self.exchange(&mut link, slot.i, Some(slot.due)).await;
        }
        self.task_done();
    }

    async fn closed_task(self: Rc<Self>, deadline: Instant, think: Duration) {
        let mut link = Link::new();
        let _ = self.sleep_until(self.sh.t0).await;
        let mut now = Instant::now();
        while !self.stopped.get() && now < deadline {
            let k = self.next_k.get();
            self.next_k.set(k + 1);
            let (outcome, done) = self.exchange(&mut link, self.stripe.index(k), None).await;
            now = done;
            // A refused port answers in microseconds; don't spin on it.
            let pause = if outcome == Class::Connect {
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

    async fn dial(&self) -> Result<Conn, Class> {
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
        let (conn, phases) = self.sh.connector.connect(self.sh.plan.timeout).await?;
        self.opened.set(self.opened.get() + 1);
        self.rec.borrow_mut().record_phases(phases.tcp, phases.tls);
        if let Conn::H2(s) = &conn {
            *self.h2.borrow_mut() = Some(Conn::H2(s.clone()));
        }
        Ok(conn)
    }

    /// A response's class by its request's checks (the status alone for
    /// most), with its time to first byte and check results recorded.
    fn judge(&self, kind: usize, a: &crate::net::Answer, sent: Instant, body: &[u8]) -> Class {
        let mut rec = self.rec.borrow_mut();
        if let Some(at) = a.first_byte {
            rec.record_ttfb(at.saturating_duration_since(sent.into_std()));
        }
        let check = &self.sh.requests[kind].check;
        if check.is_default() {
            return Class::from_status(a.status);
        }
        let v = check.judge(a.status, body, a.truncated);
        rec.record_checks(kind, v.failed);
        v.class
    }

    /// Request `i`, due at `due` (closed model: `None`, due when sent):
    /// connect if needed, send, read, record. Returns the outcome and the
    /// time it completed.
    async fn exchange(
        &self,
        link: &mut Link,
        i: u64,
        mut due: Option<Instant>,
    ) -> (Class, Instant) {
        let timeout = self.sh.plan.timeout;
        let kind = pick_kind(&self.sh.cum_weights, self.sh.plan.seed, i);
        let req = &self.sh.requests[kind];
        let (mut first_send, mut retried) = (None::<Instant>, false);
        // Bytes each way and the status, recorded once with the outcome.
        let (mut sent_bytes, mut answer) = (0u64, None::<(u16, u64)>);
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
            sent_bytes += c.request_bytes(req);
            let keep = req.check.needs_body().then_some(&mut link.body);
            let r = tokio::select! {
                biased;
                r = c.exchange(req, keep) => r,
                _ = Link::expire(&mut link.watchdog, sent + timeout) => Err(Class::Timeout),
            };
            match r {
                Ok(a) => {
                    answer = Some((a.status, a.received));
                    let class = self.judge(kind, &a, sent, &link.body);
                    break (class, sent, a.arrived);
                }
                // The server closed this keep-alive connection while it was
                // idle: the request never reached it. Once, on a fresh
                // connection, for a method that may be sent twice (RFC 9110
                // 9.2.2), as browsers and hyper's pool do.
                Err(Class::Reset)
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
        if !matches!(
            outcome,
            Class::Ok | Class::Http4xx | Class::Http5xx | Class::Check
        ) {
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
        let mut rec = self.rec.borrow_mut();
        rec.record(outcome, us(from_schedule), us(sent));
        rec.record_bytes(sent_bytes, answer);
        if self.sh.requests.len() > 1 {
            rec.record_request(kind, outcome, us(from_schedule));
        }
        (outcome, now)
    }
}
