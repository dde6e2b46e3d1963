//! What a worker records: per-class counts and latency histograms.
//!
//! Each worker owns one [`Recorder`] (no locks or atomics per request). Once
//! a second it hands the collector an [`Interval`] and keeps going; the
//! collector merges intervals of all workers. Every scheduled request lands
//! in exactly one class, so `requests = ok + Σ errors` holds by construction.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency the histograms hold: one hour, in microseconds.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A fresh histogram for latencies from 1 µs to 1 h at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static bounds are valid")
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A 1xx-3xx response, or one that passed its request's checks.
    Ok,
    /// No connection could be made.
    Connect,
    /// No complete response within the timeout.
    Timeout,
    /// The peer reset or closed the connection mid-exchange.
    Reset,
    /// An HTTP 4xx response.
    Http4xx,
    /// An HTTP 5xx response.
    Http5xx,
    /// A response that did not parse as HTTP.
    Protocol,
    /// A response that failed one of its request's checks (an unexpected
    /// status, a body without the expected text or JSON field).
    Check,
}

impl Class {
    /// The error classes, in report order.
    pub const ERRORS: [Class; 7] = [
        Class::Connect,
        Class::Timeout,
        Class::Reset,
        Class::Http4xx,
        Class::Http5xx,
        Class::Protocol,
        Class::Check,
    ];

    /// The key used in JSON, CSV and tables.
    pub fn name(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Connect => "connect",
            Class::Timeout => "timeout",
            Class::Reset => "reset",
            Class::Http4xx => "http_4xx",
            Class::Http5xx => "http_5xx",
            Class::Protocol => "protocol",
            Class::Check => "check",
        }
    }

    /// Classifies an HTTP status code.
    pub fn from_status(code: u16) -> Class {
        match code {
            400..=499 => Class::Http4xx,
            500..=599 => Class::Http5xx,
            _ => Class::Ok,
        }
    }

    fn index(self) -> usize {
        match self {
            Class::Ok => 0,
            Class::Connect => 1,
            Class::Timeout => 2,
            Class::Reset => 3,
            Class::Http4xx => 4,
            Class::Http5xx => 5,
            Class::Protocol => 6,
            Class::Check => 7,
        }
    }
}

/// Request counts by outcome, plus requests the generator could not send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    by_outcome: [u64; 8],
    /// Scheduled requests never sent: the generator fell more than the
    /// timeout behind (every connection busy at `--max-connections`), or the
    /// run was interrupted.
    pub dropped: u64,
    /// Requests sent again, once, on a fresh connection: the keep-alive
    /// connection they went out on had been closed by the server while
    /// idle, and not a byte of a response came back.
    pub retried: u64,
}

impl Counts {
    /// Count of one outcome.
    pub fn get(&self, o: Class) -> u64 {
        self.by_outcome[o.index()]
    }

    /// Adds one request with this outcome.
    pub fn add(&mut self, o: Class) {
        self.by_outcome[o.index()] += 1;
    }

    /// Counts `n` more of `o`.
    pub fn add_n(&mut self, o: Class, n: u64) {
        self.by_outcome[o.index()] += n;
    }

    /// Requests sent (every outcome, not `dropped`).
    pub fn requests(&self) -> u64 {
        self.by_outcome.iter().sum()
    }

    /// Requests that ended in an error class.
    pub fn errors(&self) -> u64 {
        self.requests() - self.get(Class::Ok)
    }

    /// Adds another count into this one.
    pub fn merge(&mut self, other: &Counts) {
        for (a, b) in self.by_outcome.iter_mut().zip(other.by_outcome) {
            *a += b;
        }
        self.dropped += other.dropped;
        self.retried += other.retried;
    }
}

/// One second of one worker, or of all workers once merged.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Seconds since the start of the run at which the interval begins.
    pub second: u64,
    /// Counts in the interval.
    pub counts: Counts,
    /// Corrected latencies (from the scheduled time), microseconds.
    pub latency_us: Histogram<u64>,
}

impl Interval {
    /// An empty interval starting at `second`.
    pub fn empty(second: u64) -> Self {
        Interval {
            second,
            counts: Counts::default(),
            latency_us: latency_histogram(),
        }
    }

    /// Adds another worker's interval into this one.
    pub fn merge(&mut self, other: &Interval) {
        self.counts.merge(&other.counts);
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }
}

/// One kind of request's whole-run figures (a scenario's `[[requests]]`).
#[derive(Debug, Clone)]
pub struct KindStats {
    /// Its counts by outcome.
    pub counts: Counts,
    /// Its corrected latency (from the scheduled send time), µs.
    pub corrected_us: Histogram<u64>,
}

impl Default for KindStats {
    fn default() -> Self {
        KindStats {
            counts: Counts::default(),
            corrected_us: latency_histogram(),
        }
    }
}

/// A worker's whole-run and current-interval measurements.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Whole-run counts.
    pub counts: Counts,
    /// Whole-run corrected latency (from the scheduled send time), µs.
    pub corrected_us: Histogram<u64>,
    /// Whole-run uncorrected latency (from the actual send), µs.
    pub uncorrected_us: Histogram<u64>,
    /// How late each request went out after its due time (the corrected
    /// minus the uncorrected latency), µs: the generator behind, or every
    /// connection busy.
    pub send_lag_us: Histogram<u64>,
    /// The interval being filled.
    pub interval: Interval,
    /// Responses by status code, whole run (a handful of codes: a short
    /// list beats a map on the hot path).
    pub statuses: Vec<(u16, u64)>,
    /// Bytes of requests put on connections (retries included).
    pub bytes_sent: u64,
    /// Bytes of responses read.
    pub bytes_received: u64,
    /// Per kind of request, by its index, when a run has more than one
    /// (with one, its figures are the whole run's).
    pub per_request: Vec<KindStats>,
    /// Per kind of request with checks, by its index: responses judged,
    /// and failures of each check (status, body, JSON field).
    pub checks: Vec<CheckCounts>,
    /// Where the time of a request goes, whole run.
    pub phases: PhaseStats,
}

/// The phases of requests (k6's `http_req_connecting`,
/// `http_req_tls_handshaking`, `http_req_waiting`), µs.
#[derive(Debug, Clone)]
pub struct PhaseStats {
    /// TCP connect of each new connection.
    pub connect_us: Histogram<u64>,
    /// TLS handshake of each new https connection.
    pub tls_us: Histogram<u64>,
    /// From the send to the response's first byte, every response.
    pub ttfb_us: Histogram<u64>,
}

impl Default for PhaseStats {
    fn default() -> Self {
        PhaseStats {
            connect_us: latency_histogram(),
            tls_us: latency_histogram(),
            ttfb_us: latency_histogram(),
        }
    }
}

impl PhaseStats {
    fn merge(&mut self, o: &PhaseStats) {
        let _ = self.connect_us.add(&o.connect_us);
        let _ = self.tls_us.add(&o.tls_us);
        let _ = self.ttfb_us.add(&o.ttfb_us);
    }
}

fn micros(d: std::time::Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_LATENCY_US)
}

/// One kind of request's check results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckCounts {
    /// Responses judged.
    pub judged: u64,
    /// Of which failed each check, in [`crate::check::Verdict::failed`] order.
    pub failed: [u64; 3],
}

impl CheckCounts {
    fn add(&mut self, o: &CheckCounts) {
        self.judged += o.judged;
        for (x, y) in self.failed.iter_mut().zip(o.failed) {
            *x += y;
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            counts: Counts::default(),
            corrected_us: latency_histogram(),
            uncorrected_us: latency_histogram(),
            send_lag_us: latency_histogram(),
            interval: Interval::empty(0),
            statuses: Vec::new(),
            bytes_sent: 0,
            bytes_received: 0,
            per_request: Vec::new(),
            checks: Vec::new(),
            phases: PhaseStats::default(),
        }
    }
}

impl Recorder {
    /// Records a request that was sent, with both latencies in microseconds.
    pub fn record(&mut self, outcome: Class, corrected_us: u64, uncorrected_us: u64) {
        self.counts.add(outcome);
        self.interval.counts.add(outcome);
        let c = corrected_us.clamp(1, MAX_LATENCY_US);
        // Clamped to the bounds, so recording cannot fail.
        let _ = self.corrected_us.record(c);
        let _ = self.interval.latency_us.record(c);
        let u = uncorrected_us.clamp(1, MAX_LATENCY_US);
        let _ = self.uncorrected_us.record(u);
        let _ = self.send_lag_us.record(c.saturating_sub(u).max(1));
    }

    /// One exchange's bytes: `sent` put on connections (every send, a
    /// retry too), and the response, if one came, by status and size.
    pub fn record_bytes(&mut self, sent: u64, answer: Option<(u16, u64)>) {
        self.bytes_sent += sent;
        let Some((status, received)) = answer else {
            return;
        };
        self.bytes_received += received;
        match self.statuses.iter_mut().find(|s| s.0 == status) {
            Some(s) => s.1 += 1,
            None => self.statuses.push((status, 1)),
        }
    }

    /// A request of kind `kind` (its index), for the per-request figures.
    pub fn record_request(&mut self, kind: usize, outcome: Class, corrected_us: u64) {
        if self.per_request.len() <= kind {
            self.per_request.resize_with(kind + 1, KindStats::default);
        }
        let k = &mut self.per_request[kind];
        k.counts.add(outcome);
        let _ = k.corrected_us.record(corrected_us.clamp(1, MAX_LATENCY_US));
    }

    /// A new connection's TCP connect and, for https, TLS handshake.
    pub fn record_phases(&mut self, tcp: std::time::Duration, tls: Option<std::time::Duration>) {
        let _ = self.phases.connect_us.record(micros(tcp));
        if let Some(t) = tls {
            let _ = self.phases.tls_us.record(micros(t));
        }
    }

    /// A response's time to first byte, from its send.
    pub fn record_ttfb(&mut self, d: std::time::Duration) {
        let _ = self.phases.ttfb_us.record(micros(d));
    }

    /// A response of kind `kind` judged by its checks.
    pub fn record_checks(&mut self, kind: usize, failed: [bool; 3]) {
        if self.checks.len() <= kind {
            self.checks.resize(kind + 1, CheckCounts::default());
        }
        self.checks[kind].add(&CheckCounts {
            judged: 1,
            failed: failed.map(u64::from),
        });
    }

    /// Records a scheduled request that was never sent.
    pub fn record_dropped(&mut self) {
        self.record_dropped_n(1);
    }

    /// A request sent again on a fresh connection ([`Counts::retried`]).
    pub fn record_retry(&mut self) {
        self.counts.retried += 1;
        self.interval.counts.retried += 1;
    }

    /// `n` scheduled requests dropped at once.
    pub fn record_dropped_n(&mut self, n: u64) {
        self.counts.dropped += n;
        self.interval.counts.dropped += n;
    }

    /// Hands over the current interval and starts `next_second`, reusing
    /// nothing of the old one so the collector owns it outright.
    pub fn take_interval(&mut self, next_second: u64) -> Interval {
        std::mem::replace(&mut self.interval, Interval::empty(next_second))
    }

    /// Adds another recorder's whole-run figures (not its open interval).
    pub fn merge(&mut self, other: &Recorder) {
        self.counts.merge(&other.counts);
        for &(code, n) in &other.statuses {
            match self.statuses.iter_mut().find(|s| s.0 == code) {
                Some(s) => s.1 += n,
                None => self.statuses.push((code, n)),
            }
        }
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        if self.per_request.len() < other.per_request.len() {
            self.per_request
                .resize_with(other.per_request.len(), KindStats::default);
        }
        for (a, b) in self.per_request.iter_mut().zip(&other.per_request) {
            a.counts.merge(&b.counts);
            let _ = a.corrected_us.add(&b.corrected_us);
        }
        self.phases.merge(&other.phases);
        if self.checks.len() < other.checks.len() {
            self.checks
                .resize(other.checks.len(), CheckCounts::default());
        }
        for (a, b) in self.checks.iter_mut().zip(&other.checks) {
            a.add(b);
        }
        let _ = self.corrected_us.add(&other.corrected_us);
        let _ = self.uncorrected_us.add(&other.uncorrected_us);
        let _ = self.send_lag_us.add(&other.send_lag_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classes counted here are the run contract's, in its order.
    #[test]
    fn error_classes_are_the_contracts() {
        assert_eq!(
            Class::ERRORS.map(Class::name),
            contracts::run::ERROR_CLASSES
        );
    }

    #[test]
    fn every_request_lands_in_one_class() {
        let mut r = Recorder::default();
        r.record(Class::Ok, 1000, 900);
        r.record(Class::Http5xx, 2000, 2000);
        r.record(Class::Timeout, 5_000_000, 5_000_000);
        r.record_dropped();
        assert_eq!(r.counts.requests(), 3);
        assert_eq!(r.counts.errors(), 2);
        assert_eq!(r.counts.dropped, 1);
        assert_eq!(r.corrected_us.len(), 3);
        let i = r.take_interval(1);
        assert_eq!(i.counts.requests(), 3);
        assert_eq!(r.interval.second, 1);
        assert_eq!(r.interval.counts.requests(), 0);
        // The whole-run figures survive the interval hand-over.
        assert_eq!(r.counts.requests(), 3);
    }

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        a.record(Class::Ok, 10, 10);
        b.record(Class::Reset, 20, 20);
        b.record(Class::Ok, 0, 0); // clamped to 1 µs, still counted
        a.merge(&b);
        assert_eq!(a.counts.requests(), 3);
        assert_eq!(a.counts.get(Class::Reset), 1);
        assert_eq!(a.corrected_us.len(), 3);
        assert_eq!(a.corrected_us.min(), 1);
    }

    #[test]
    fn status_classes() {
        assert_eq!(Class::from_status(200), Class::Ok);
        assert_eq!(Class::from_status(304), Class::Ok);
        assert_eq!(Class::from_status(404), Class::Http4xx);
        assert_eq!(Class::from_status(503), Class::Http5xx);
    }
}
