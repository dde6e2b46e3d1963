//! The discrete-event core: one window of simulated time, request by
//! request. Poisson arrivals (piecewise-constant rate per minute, exact by
//! memorylessness) → load balancer → replicas with `workers_per_replica`
//! servers and a FIFO queue → departures; plus the autoscaler's ticks and
//! replicas becoming ready. Time is integer nanoseconds.
//!
//! Arrivals, the autoscaler tick and minute boundaries are kept outside the
//! event queue (each has exactly one next time), so the queue (a binary heap on the time key,
//! [`crate::queue`]) holds only departures and replicas coming up. Randomness comes in separate streams for
//! arrivals, service times, balancing and provisioning, so changing one
//! component does not reshuffle the others.

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::autoscale::{Observation, Scaler};
use crate::dist::{Sampler, exp_ns};
use crate::model::{Autoscaling, Balancer, Sharing, SimConfig};
use crate::queue::EventQueue;

const NS: u64 = 1_000_000_000;
const MINUTE: u64 = 60 * NS;

/// One window to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Where the window starts in the traffic horizon, seconds.
    pub start_s: f64,
    /// Its length including warm-up, ns.
    pub length_ns: u64,
    /// Leading part left out of the statistics, ns.
    pub warmup_ns: u64,
    /// Replicas at the start.
    pub initial_replicas: u32,
}

/// One simulated minute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Minute {
    /// Offered rate in the minute, requests/s.
    pub offered_rps: f64,
    /// Requests that arrived.
    pub arrivals: u64,
    /// Requests completed.
    pub completed: u64,
    /// Requests rejected, timed out in the queue, or with no replica to go to.
    pub errors: u64,
    /// Response-time percentiles of the minute's completions, ms.
    pub p50_ms: f64,
    /// p95, ms.
    pub p95_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Mean replicas in existence (cost basis).
    pub replicas: f64,
    /// Mean replicas ready.
    pub ready: f64,
    /// Busy workers / ready workers, time-averaged.
    pub utilization: f64,
}

/// What one window measured.
#[derive(Debug, Clone)]
pub struct WindowRun {
    /// Per minute, warm-up included.
    pub minutes: Vec<Minute>,
    /// Response times (µs) of requests completed after warm-up.
    pub latency_us: Histogram<u64>,
    /// After warm-up: arrivals, completions, errors, requests that waited.
    pub arrivals: u64,
    /// Completed.
    pub completed: u64,
    /// Errors.
    pub errors: u64,
    /// Requests that queued before service.
    pub waited: u64,
    /// Σ busy workers of ready replicas × time after warm-up, ns.
    pub busy_ns: f64,
    /// Σ ready workers × time after warm-up, ns.
    pub capacity_ns: f64,
    /// Σ replicas in existence × time after warm-up, ns (cost basis).
    pub replica_ns: f64,
    /// Σ requests in the system × time after warm-up, ns (Little's law).
    pub in_system_ns: f64,
    /// Fewest and most replicas in existence after warm-up.
    pub replicas_min: u32,
    /// Most.
    pub replicas_max: u32,
    /// Events processed.
    pub events: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Ready,
    Draining,
    Gone,
}

#[derive(Debug, Clone)]
struct Replica {
    state: State,
    busy: u32,
    queue: VecDeque<u64>,
    /// When it was asked for, and when it became ready.
    started_at: u64,
    ready_at: u64,
    /// Counted in the autoscaler's metric from this time: after a target
    /// tracking warm-up, or an HPA's first metric window once ready.
    warm_from: u64,
    /// Whether its busy time is kept (`busy_since_tick`): every replica
    /// under a target-tracking warm-up, an HPA's pods in their first
    /// metric window only.
    tracked: bool,
    /// Busy worker-ns since the last autoscaler tick, up to `busy_last`.
    busy_since_tick: f64,
    busy_last: u64,
    /// Requests in service when the cores are shared.
    ps: Shared,
}

/// A replica's requests in service under processor sharing. Each holds
/// its finish in *virtual time*: the work one request has received since
/// the window opened, which advances at the speed each busy request gets
/// (`Sharing::speed`). The request with the smallest finish departs next;
/// its departure event is re-posted whenever the number in service
/// changes, and `generation` (carried in the event) tells the current one
/// from stale ones.
#[derive(Debug, Clone, Default)]
struct Shared {
    jobs: Vec<Job>,
    virtual_ns: f64,
    since: u64,
    generation: u32,
}

#[derive(Debug, Clone, Copy)]
struct Job {
    finish: f64,
    arrival: u64,
}

impl Replica {
    /// Ready, but not yet counted in the autoscaler's metric: in an HPA's
    /// first metric window, or a target-tracking warm-up.
    fn warming(&self, now: u64) -> bool {
        self.state == State::Ready && now < self.warm_from
    }
}

/// Queue entry, keyed by its time: 8 bytes, so a heap slot with its key
/// is 16 (the heap's sifting dominates the event loop, and moves fewer
/// bytes). `tag` holds the kind (2 bits), whether the request counts in
/// the statistics (after warm-up) and the replica; `us` is a departure's
/// response time in µs, known when service starts (saturating at ~71
/// minutes, beyond the histograms' one-hour ceiling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ev {
    tag: u32,
    us: u32,
}

const KIND_SHIFT: u32 = 30;
const COUNTED: u32 = 1 << 29;
const REPLICA: u32 = COUNTED - 1;

impl Ev {
    fn new(kind: u8, replica: usize) -> Ev {
        debug_assert!(replica <= REPLICA as usize);
        Ev {
            tag: ((kind as u32) << KIND_SHIFT) | replica as u32,
            us: 0,
        }
    }
    fn kind(self) -> u8 {
        (self.tag >> KIND_SHIFT) as u8
    }
    fn replica(self) -> usize {
        (self.tag & REPLICA) as usize
    }
    fn counted(self) -> bool {
        self.tag & COUNTED != 0
    }
}

const DEPART: u8 = 0;
const READY: u8 = 1;
const SPOT_NOTICE: u8 = 2;
const SPOT_GONE: u8 = 3;

/// Rewinds the integrals kept for the metric and statistics.
#[derive(Debug, Clone, Copy, Default)]
struct Integrals {
    // Integer ns × counts: exact, and cheaper than floats on every event
    // (a 2 h window with 1000 busy workers is ~7e15, far inside u64).
    busy_ready: u64,
    workers_ready: u64,
    busy_all: u64,
    replicas: u64,
    ready: u64,
    in_system: u64,
}

struct Engine<'a> {
    cfg: &'a SimConfig,
    service: Sampler,
    provisioning: Option<Sampler>,
    scaler: Option<Scaler>,
    r_arrive: SmallRng,
    r_service: SmallRng,
    r_balance: SmallRng,
    r_provision: SmallRng,
    r_spot: SmallRng,
    workers: u32,
    /// What the CPU metric counts a replica's capacity in: its workers,
    /// or its cores when they are shared.
    slots: u32,
    sharing: Option<Sharing>,
    /// The latency every response carries outside the workers (network,
    /// proxy), µs.
    floor_us: u64,
    now: u64,
    heap: EventQueue<Ev>,
    replicas: Vec<Replica>,
    /// Ready replicas, for the balancer.
    active: Vec<u32>,
    rr: usize,
    /// Σ busy over ready replicas and over all, and requests waiting.
    busy_ready: u32,
    busy_all: u32,
    queued: u64,
    n_existing: u32,
    n_ready: u32,
    n_starting: u32,
    acc: Integrals,
    last_t: u64,
    tick_acc: Integrals,
    tick_completions: u64,
    minute_acc: Integrals,
    /// The integrals when the warm-up ended, if it ended inside a minute:
    /// that minute's statistics count from here.
    warm_acc: Option<Integrals>,
    minute_hist: Histogram<u64>,
    minute: Minute,
    /// Mean gap between arrivals in each minute, ns (0 for no traffic).
    gaps_ns: Vec<f64>,
    /// Evenly spaced arrivals instead of Poisson.
    uniform: bool,
    /// Target tracking with a warm-up needs busy time for every replica.
    per_replica_busy: bool,
    rates: Vec<f64>,
    out: WindowRun,
    warmup: u64,
}

/// SplitMix64's finaliser: spreads consecutive integers over the seed space.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Simulates one window with the random streams numbered `stream`.
pub fn simulate(cfg: &SimConfig, w: &Window, seed: u64, stream: u64) -> WindowRun {
    // One generator per component and job: xoshiro256++ seeded through
    // SplitMix64 from (seed, stream), several times faster than ChaCha8 on
    // this path, and as reproducible.
    let rng = |k: u64| SmallRng::seed_from_u64(splitmix(splitmix(seed) ^ (stream * 5 + k)));
    let minutes = w.length_ns.div_ceil(MINUTE) as usize;
    let rates = (0..=minutes)
        .map(|m| cfg.traffic.rps_at(w.start_s + m as f64 * 60.0 + 30.0))
        .collect();
    let hist = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds");
    let mut e = Engine {
        cfg,
        service: Sampler::new(&cfg.service.service_time),
        provisioning: cfg
            .autoscaling
            .as_ref()
            .and_then(|a| a.provisioning())
            .map(Sampler::new),
        scaler: cfg.autoscaling.clone().map(Scaler::new),
        r_arrive: rng(0),
        r_service: rng(1),
        r_balance: rng(2),
        r_provision: rng(3),
        r_spot: rng(4),
        workers: cfg.service.workers_per_replica,
        slots: cfg.service.slots(),
        sharing: cfg.service.sharing(),
        floor_us: (cfg.service.latency_floor_ms * 1e3) as u64,
        now: 0,
        heap: EventQueue::default(),
        replicas: Vec::new(),
        active: Vec::new(),
        rr: 0,
        busy_ready: 0,
        busy_all: 0,
        queued: 0,
        n_existing: 0,
        n_ready: 0,
        n_starting: 0,
        acc: Integrals::default(),
        last_t: 0,
        tick_acc: Integrals::default(),
        tick_completions: 0,
        minute_acc: Integrals::default(),
        warm_acc: None,
        minute_hist: hist(),
        minute: Minute::default(),
        gaps_ns: Vec::new(),
        uniform: cfg.traffic.arrivals == crate::model::Arrivals::Uniform,
        per_replica_busy: matches!(&cfg.autoscaling, Some(Autoscaling::TargetTracking { warmup, .. }) if !warmup.is_zero()),
        rates,
        out: WindowRun {
            minutes: Vec::with_capacity(minutes),
            latency_us: hist(),
            arrivals: 0,
            completed: 0,
            errors: 0,
            waited: 0,
            busy_ns: 0.0,
            capacity_ns: 0.0,
            replica_ns: 0.0,
            in_system_ns: 0.0,
            replicas_min: u32::MAX,
            replicas_max: 0,
            events: 0,
        },
        warmup: w.warmup_ns,
    };
    let (min, max) = cfg
        .autoscaling
        .as_ref()
        .map(Autoscaling::bounds)
        .unwrap_or((1, u32::MAX));
    for _ in 0..w.initial_replicas.clamp(min, max) {
        let i = e.add_replica();
        e.make_ready(i);
        // Replicas running when the window opens are long past warm-up.
        e.replicas[i].warm_from = 0;
    }
    e.gaps_ns = e
        .rates
        .iter()
        .map(|&r| if r > 0.0 { 1e9 / r } else { 0.0 })
        .collect();
    e.run(w.length_ns);
    e.out
}

impl Engine<'_> {
    fn run(&mut self, end: u64) {
        let mut next_arrival = self.next_arrival(0);
        let period = self
            .scaler
            .as_ref()
            .map(Scaler::period_ns)
            .unwrap_or(u64::MAX);
        let mut next_tick = period;
        let mut next_minute = MINUTE;
        // A warm-up that ends inside a minute: the statistics start there.
        let mut warm_ends = if !self.warmup.is_multiple_of(MINUTE) {
            self.warmup
        } else {
            u64::MAX
        };
        loop {
            let heap_t = self.heap.peek_key().unwrap_or(u64::MAX);
            let boundary = next_minute.min(warm_ends);
            let t = next_arrival.min(heap_t).min(next_tick).min(boundary);
            if t >= end {
                self.advance(end);
                if end > self.minute_start() {
                    self.close_minute();
                }
                break;
            }
            self.advance(t);
            self.out.events += 1;
            if t == warm_ends {
                self.warm_acc = Some(self.acc);
                warm_ends = u64::MAX;
            }
            if t == next_minute {
                self.close_minute();
                next_minute += MINUTE;
            } else if t == next_tick {
                self.tick(period);
                next_tick += period;
            } else if t == next_arrival {
                self.arrive(t);
                next_arrival = self.next_arrival(t);
            } else if let Some((_, ev)) = self.heap.pop() {
                let r = ev.replica();
                match ev.kind() {
                    DEPART => self.depart(r, ev),
                    READY => self.make_ready(r),
                    SPOT_NOTICE => self.spot_notice(r),
                    _ => self.spot_gone(r),
                }
            }
        }
    }

    fn minute_start(&self) -> u64 {
        self.out.minutes.len() as u64 * MINUTE
    }

    /// The next arrival after `from`: exponential gaps at the current
    /// minute's rate; a gap that crosses a minute boundary is redrawn from
    /// the boundary at the next minute's rate (exact for a Poisson process).
    fn next_arrival(&mut self, mut from: u64) -> u64 {
        loop {
            let m = (from / MINUTE) as usize;
            let Some(&gap) = self.gaps_ns.get(m) else {
                return u64::MAX;
            };
            let boundary = (m as u64 + 1) * MINUTE;
            if gap > 0.0 {
                let step = if self.uniform {
                    gap as u64
                } else {
                    exp_ns(gap, &mut self.r_arrive)
                };
                // A gap past the window (a rate near zero) is no arrival.
                let t = from.saturating_add(step.max(1));
                if t < boundary {
                    return t;
                }
            }
            from = boundary;
        }
    }

    fn advance(&mut self, t: u64) {
        let dt = t - self.last_t;
        if dt > 0 {
            let a = &mut self.acc;
            a.busy_ready += self.busy_ready as u64 * dt;
            a.workers_ready += (self.n_ready * self.slots) as u64 * dt;
            a.busy_all += self.busy_all as u64 * dt;
            a.replicas += self.n_existing as u64 * dt;
            a.ready += self.n_ready as u64 * dt;
            a.in_system += (self.busy_all as u64 + self.queued) * dt;
        }
        self.last_t = t;
        self.now = t;
    }

    fn arrive(&mut self, t: u64) {
        self.minute.arrivals += 1;
        let counted = t >= self.warmup;
        if counted {
            self.out.arrivals += 1;
        }
        if self.active.is_empty() {
            return self.error(counted);
        }
        let r = match self.cfg.service.balancer {
            Balancer::RoundRobin => {
                self.rr += 1;
                if self.rr >= self.active.len() {
                    self.rr = 0;
                }
                self.active[self.rr]
            }
            Balancer::Random => self.active[self.r_balance.random_range(0..self.active.len())],
            Balancer::LeastOutstanding => {
                let load = |i: &u32| {
                    let r = &self.replicas[*i as usize];
                    r.busy as usize + r.queue.len()
                };
                *self
                    .active
                    .iter()
                    .min_by_key(|i| load(i))
                    .expect("not empty")
            }
        } as usize;
        let rep = &mut self.replicas[r];
        if rep.busy < self.workers {
            self.start_service(r, t);
        } else if self
            .cfg
            .service
            .queue_limit
            .is_some_and(|l| rep.queue.len() >= l as usize)
        {
            self.error(counted);
        } else {
            rep.queue.push_back(t);
            self.queued += 1;
            if counted {
                self.out.waited += 1;
            }
        }
    }

    fn error(&mut self, counted: bool) {
        self.minute.errors += 1;
        if counted {
            self.out.errors += 1;
        }
    }

    /// Brings replica `r`'s busy time up to now before its busy count changes.
    #[inline]
    fn touch(&mut self, r: usize) {
        let rep = &mut self.replicas[r];
        if !rep.tracked {
            return;
        }
        rep.busy_since_tick += rep.busy.min(self.slots) as f64 * (self.now - rep.busy_last) as f64;
        rep.busy_last = self.now;
    }

    fn start_service(&mut self, r: usize, arrival: u64) {
        self.touch(r);
        if let Some(sharing) = self.sharing {
            return self.start_shared(r, arrival, sharing);
        }
        let rep = &mut self.replicas[r];
        rep.busy += 1;
        self.busy_all += 1;
        if rep.state == State::Ready {
            self.busy_ready += 1;
        }
        let done = self
            .now
            .saturating_add(self.service.sample(&mut self.r_service));
        let mut ev = Ev::new(DEPART, r);
        if arrival >= self.warmup {
            ev.tag |= COUNTED;
        }
        ev.us = ((done - arrival) / 1000 + self.floor_us).clamp(1, u32::MAX as u64) as u32;
        self.heap.push(done, ev);
    }

    fn depart(&mut self, r: usize, ev: Ev) {
        let (us, counted) = match self.sharing {
            None => (ev.us as u64, ev.counted()),
            Some(sharing) => match self.finish_shared(r, ev, sharing) {
                Some(done) => done,
                None => return, // a departure re-posted since
            },
        };
        self.touch(r);
        let slots = self.slots;
        let rep = &mut self.replicas[r];
        rep.busy -= 1;
        self.busy_all -= 1;
        if rep.state == State::Gone {
            // Its spot instance was taken back mid-request.
            if let Some(sharing) = self.sharing {
                self.repost_shared(r, sharing);
            }
            return self.error(counted);
        }
        if rep.state == State::Ready {
            // A core frees only when no waiting worker takes it.
            if rep.busy < slots {
                self.busy_ready -= 1;
            }
            self.tick_completions += 1;
        }
        let us = us.min(3_600_000_000);
        let _ = self.minute_hist.record(us);
        self.minute.completed += 1;
        if counted {
            self.out.completed += 1;
            if self.minute_start() < self.warmup {
                // The minute the warm-up ends in: only what arrived after it.
                let _ = self.out.latency_us.record(us);
            }
        }
        let timeout = self.cfg.service.queue_timeout.map(|d| d.as_nanos() as u64);
        while let Some(next) = self.replicas[r].queue.pop_front() {
            self.queued -= 1;
            if timeout.is_some_and(|to| self.now - next > to) {
                // Gave up while queued: an error, and its slot moves on.
                self.error(next >= self.warmup);
                continue;
            }
            self.start_service(r, next);
            return;
        }
        if let Some(sharing) = self.sharing {
            self.repost_shared(r, sharing);
        }
        if self.replicas[r].state == State::Draining && self.replicas[r].busy == 0 {
            self.retire(r);
        }
    }

    /// Processor sharing: brings replica `r`'s virtual time up to now, at
    /// the speed its requests in service have had since the last change.
    fn advance_shared(&mut self, r: usize, sharing: Sharing) {
        let ps = &mut self.replicas[r].ps;
        let speed = sharing.speed(ps.jobs.len());
        ps.virtual_ns += (self.now - ps.since) as f64 * speed;
        ps.since = self.now;
    }

    /// Processor sharing: a request enters service on replica `r`.
    /// (Never inlined, here and below: the FIFO path stays as small as it was.)
    #[inline(never)]
    fn start_shared(&mut self, r: usize, arrival: u64, sharing: Sharing) {
        self.advance_shared(r, sharing);
        let work = self.service.sample(&mut self.r_service) as f64;
        let rep = &mut self.replicas[r];
        rep.busy += 1;
        self.busy_all += 1;
        if rep.state == State::Ready && rep.busy <= sharing.cores {
            self.busy_ready += 1;
        }
        let finish = rep.ps.virtual_ns + work;
        rep.ps.jobs.push(Job { finish, arrival });
        self.repost_shared(r, sharing);
    }

    /// Processor sharing: the request of replica `r` with the least work
    /// left finishes, if `ev` is the departure posted last; its response
    /// time (µs, with the floor) and whether it counts.
    #[inline(never)]
    fn finish_shared(&mut self, r: usize, ev: Ev, sharing: Sharing) -> Option<(u64, bool)> {
        if ev.us != self.replicas[r].ps.generation {
            return None;
        }
        self.advance_shared(r, sharing);
        let jobs = &mut self.replicas[r].ps.jobs;
        let first = (0..jobs.len()).min_by(|&a, &b| jobs[a].finish.total_cmp(&jobs[b].finish))?;
        let job = jobs.swap_remove(first);
        let us = ((self.now - job.arrival) / 1000 + self.floor_us).max(1);
        Some((us, job.arrival >= self.warmup))
    }

    /// Processor sharing: posts replica `r`'s next departure (the number
    /// in service changed, so every finish moved); earlier posts go stale.
    #[inline(never)]
    fn repost_shared(&mut self, r: usize, sharing: Sharing) {
        let ps = &mut self.replicas[r].ps;
        ps.generation = ps.generation.wrapping_add(1);
        let Some(next) = ps.jobs.iter().map(|j| j.finish).min_by(f64::total_cmp) else {
            return;
        };
        let speed = sharing.speed(ps.jobs.len());
        let wait = ((next - ps.virtual_ns).max(0.0) / speed).ceil() as u64;
        let mut ev = Ev::new(DEPART, r);
        ev.us = ps.generation;
        self.heap.push(self.now.saturating_add(wait.max(1)), ev);
    }

    fn add_replica(&mut self) -> usize {
        self.replicas.push(Replica {
            state: State::Starting,
            busy: 0,
            queue: VecDeque::new(),
            started_at: self.now,
            ready_at: 0,
            warm_from: 0,
            tracked: self.per_replica_busy,
            busy_since_tick: 0.0,
            busy_last: self.now,
            ps: Shared::default(),
        });
        self.n_existing += 1;
        self.n_starting += 1;
        self.replicas.len() - 1
    }

    /// Asks for a new replica: it starts now and is ready after a
    /// provisioning delay.
    fn request_replica(&mut self) {
        let r = self.add_replica();
        let delay = self
            .provisioning
            .as_ref()
            .map_or(0, |p| p.sample(&mut self.r_provision));
        self.heap
            .push(self.now.saturating_add(delay), Ev::new(READY, r));
    }

    fn make_ready(&mut self, r: usize) {
        if self.replicas[r].state != State::Starting {
            return; // cancelled while starting
        }
        self.replicas[r].state = State::Ready;
        self.replicas[r].ready_at = self.now;
        self.replicas[r].warm_from = self.counted_from(r);
        // An HPA leaves its first window out: its busy time is needed.
        if self.replicas[r].warm_from > self.now {
            self.replicas[r].tracked = true;
            self.replicas[r].busy_last = self.now;
        }
        self.n_starting -= 1;
        self.n_ready += 1;
        self.active.push(r as u32);
        if let Some(spot) = &self.cfg.service.spot
            && spot.interruptions_per_hour > 0.0
            && self.r_spot.random::<f64>() < spot.share
        {
            let after = exp_ns(3600e9 / spot.interruptions_per_hour, &mut self.r_spot);
            self.heap
                .push(self.now.saturating_add(after), Ev::new(SPOT_NOTICE, r));
        }
    }

    /// A spot interruption notice: the replica stops taking requests and a
    /// replacement is asked for at once; at the end of the notice whatever
    /// it still holds is lost.
    fn spot_notice(&mut self, r: usize) {
        if self.replicas[r].state != State::Ready {
            return;
        }
        self.drain(r);
        self.request_replica();
        let notice = self
            .cfg
            .service
            .spot
            .as_ref()
            .map_or(0, |s| s.notice.as_nanos() as u64);
        self.heap
            .push(self.now.saturating_add(notice), Ev::new(SPOT_GONE, r));
    }

    fn spot_gone(&mut self, r: usize) {
        if self.replicas[r].state != State::Draining {
            return; // drained within the notice
        }
        let lost: Vec<u64> = self.replicas[r].queue.drain(..).collect();
        self.queued -= lost.len() as u64;
        for arrival in lost {
            self.error(arrival >= self.warmup);
        }
        // Requests in service fail when their departures come due.
        self.retire(r);
    }

    fn retire(&mut self, r: usize) {
        self.replicas[r].state = State::Gone;
        self.n_existing -= 1;
    }

    fn tick(&mut self, period: u64) {
        let d_busy = (self.acc.busy_ready - self.tick_acc.busy_ready) as f64;
        let d_cap = (self.acc.workers_ready - self.tick_acc.workers_ready) as f64;
        let warmup = self.warmup_of_policy();
        // HPA: pods that became ready within the last metric window (and
        // within the CPU initialization period) are not ready to it yet.
        let fresh = match &self.cfg.autoscaling {
            Some(Autoscaling::Hpa { .. }) => {
                self.replicas.iter().filter(|r| r.warming(self.now)).count() as u32
            }
            _ => 0,
        };
        let cpu = match self.cfg.service.cpu_ms_per_request {
            Some(ms) if self.n_ready > 0 => {
                self.tick_completions as f64 * ms * 1e6 / (period as f64 * self.n_ready as f64)
            }
            _ if warmup > 0 => self.cpu_without_warming(period),
            _ if fresh > 0 => self.cpu_less_fresh(d_busy, d_cap),
            _ if d_cap > 0.0 => d_busy / d_cap,
            _ => 0.0,
        };
        let keep_all = self.per_replica_busy;
        for r in 0..self.replicas.len() {
            self.touch(r);
            let rep = &mut self.replicas[r];
            rep.busy_since_tick = 0.0;
            rep.tracked = keep_all || rep.warming(self.now);
        }
        // Memory: the requests in the replicas (in service or queued), per
        // ready replica, over the period.
        let memory = match &self.cfg.service.memory {
            Some(m) if self.n_ready > 0 => {
                let in_flight = (self.acc.in_system - self.tick_acc.in_system) as f64
                    / (period as f64 * self.n_ready as f64);
                m.utilization(in_flight)
            }
            _ => 0.0,
        };
        self.tick_acc = self.acc;
        self.tick_completions = 0;
        let current = self.n_ready + self.n_starting;
        let Some(scaler) = self.scaler.as_mut() else {
            return;
        };
        let desired = scaler.decide(Observation {
            now_ns: self.now,
            current,
            ready: self.n_ready - fresh,
            cpu,
            memory,
            p95_ms: self.out.minutes.last().map_or(0.0, |m| m.p95_ms),
        });
        for _ in current..desired {
            self.request_replica();
        }
        for _ in desired..current {
            self.remove_one();
        }
    }

    /// From when replica `r`, ready now, counts in the autoscaler's metric.
    /// Upstream's HPA ignores a pod's CPU while it is within
    /// `cpu_initialization_period` of its start and its metric window
    /// began before it was ready; the window here is the sync period, over
    /// which the engine averages CPU.
    fn counted_from(&self, r: usize) -> u64 {
        match &self.cfg.autoscaling {
            Some(Autoscaling::Hpa {
                sync_period,
                cpu_initialization_period,
                ..
            }) => {
                let window = sync_period.as_nanos() as u64;
                let init_ends =
                    self.replicas[r].started_at + cpu_initialization_period.as_nanos() as u64;
                self.now + window.min(init_ends.saturating_sub(self.now))
            }
            _ => self.now + self.warmup_of_policy(),
        }
    }

    fn warmup_of_policy(&self) -> u64 {
        match &self.cfg.autoscaling {
            Some(Autoscaling::TargetTracking { warmup, .. }) => warmup.as_nanos() as u64,
            _ => 0,
        }
    }

    /// Mean CPU of the ready replicas past their warm-up (AWS leaves
    /// instances in warm-up out of the metric); 0 when none is.
    fn cpu_without_warming(&mut self, period: u64) -> f64 {
        let (mut busy, mut cap) = (0.0, 0.0);
        for r in 0..self.replicas.len() {
            let rep = &self.replicas[r];
            if rep.state == State::Ready && self.now >= rep.warm_from {
                self.touch(r);
                let rep = &self.replicas[r];
                busy += rep.busy_since_tick;
                cap += (self.slots as u64 * period.min(self.now - rep.ready_at)) as f64;
            }
        }
        if cap > 0.0 { busy / cap } else { 0.0 }
    }

    /// HPA: mean CPU of the ready replicas less those in their first
    /// metric window (each tracked since it became ready, within it).
    fn cpu_less_fresh(&mut self, d_busy: f64, d_cap: f64) -> f64 {
        let (mut busy, mut cap) = (d_busy, d_cap);
        for r in 0..self.replicas.len() {
            if self.replicas[r].warming(self.now) {
                self.touch(r);
                let rep = &self.replicas[r];
                busy -= rep.busy_since_tick;
                cap -= (self.slots as u64 * (self.now - rep.ready_at)) as f64;
            }
        }
        if cap > 0.0 {
            (busy / cap).max(0.0)
        } else {
            0.0
        }
    }

    /// Scale-down takes a replica still starting if there is one (newest
    /// first), else the ready one with the least work, which drains.
    fn remove_one(&mut self) {
        if let Some(r) = (0..self.replicas.len())
            .rev()
            .find(|&i| self.replicas[i].state == State::Starting)
        {
            self.n_starting -= 1;
            self.retire(r);
            return;
        }
        let load = |i: u32| {
            let r = &self.replicas[i as usize];
            r.busy as usize + r.queue.len()
        };
        let Some(pos) = (0..self.active.len()).min_by_key(|&p| load(self.active[p])) else {
            return;
        };
        self.drain(self.active[pos] as usize);
    }

    /// Takes a ready replica out of the balancer; it finishes what it holds.
    fn drain(&mut self, r: usize) {
        if let Some(pos) = self.active.iter().position(|&i| i as usize == r) {
            self.active.swap_remove(pos);
        }
        self.n_ready -= 1;
        let rep = &mut self.replicas[r];
        self.busy_ready -= rep.busy.min(self.slots);
        rep.state = State::Draining;
        if rep.busy == 0 && rep.queue.is_empty() {
            self.retire(r);
        }
    }

    fn close_minute(&mut self) {
        let span = (self.now - self.minute_start()).max(1) as f64;
        let d = |a: u64, b: u64| (a - b) as f64 / span;
        let (a, m) = (self.acc, self.minute_acc);
        let h = &self.minute_hist;
        let q = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(p) as f64 / 1e3
            }
        };
        let minute_index = self.out.minutes.len();
        let mut row = std::mem::take(&mut self.minute);
        row.offered_rps = self.rates.get(minute_index).copied().unwrap_or(0.0);
        row.p50_ms = q(0.5);
        row.p95_ms = q(0.95);
        row.p99_ms = q(0.99);
        row.replicas = d(a.replicas, m.replicas);
        row.ready = d(a.ready, m.ready);
        let cap = (a.workers_ready - m.workers_ready) as f64;
        let busy = (a.busy_ready - m.busy_ready) as f64;
        row.utilization = if cap > 0.0 { busy / cap } else { 0.0 };
        // The statistics count whole minutes after the warm-up, and the
        // part of the minute it ends in.
        let whole = self.minute_start() >= self.warmup;
        let counted_from = self.warm_acc.take().or(whole.then_some(m));
        if let Some(m) = counted_from {
            let (cap, busy) = (
                (a.workers_ready - m.workers_ready) as f64,
                (a.busy_ready - m.busy_ready) as f64,
            );
            let o = &mut self.out;
            o.busy_ns += busy;
            o.capacity_ns += cap;
            o.replica_ns += (a.replicas - m.replicas) as f64;
            o.in_system_ns += (a.in_system - m.in_system) as f64;
            o.replicas_min = o.replicas_min.min(self.n_existing);
            o.replicas_max = o
                .replicas_max
                .max(self.n_existing)
                .max(row.replicas.ceil() as u32);
            // One record per completion: the minute's histogram joins the
            // window's when the minute closes (the warm-up's own minute
            // recorded its counted completions one by one).
            if whole {
                let _ = o.latency_us.add(&self.minute_hist);
            }
        }
        self.minute_acc = self.acc;
        self.minute_hist.reset();
        self.out.minutes.push(row);
    }
}
