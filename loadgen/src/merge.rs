//! `loadtest merge`: the shards of a distributed run (`run --shard J/N`)
//! added up into the result one generator sending the whole schedule would
//! have written. Counts and error classes add; the HdrHistograms (whole
//! run, uncorrected, per request, phases, and each second's) add
//! losslessly, so every percentile is the one of the union of the
//! requests; the per-second rows align by time since the agreed start; the
//! thresholds are evaluated again on the merged figures.
//!
//! Pure: results in, a result out. Which file each result came from is the
//! caller's to add to the errors, which name shards by their position in
//! the input.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::result::{
    Connections, RequestResult, RunResult, SecondRow, ShardInfo, ShardRow, ThresholdResult,
    by_class, error_rate, histogram_from_base64, histogram_to_base64, judge_on, latency_of, phases,
    request_result,
};
use crate::spec::{Threshold, parse_threshold};
use crate::stats::{Class, Counts, Interval, PhaseStats, latency_histogram};

/// Why shards cannot be merged. `at` is a shard's position in the input.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no shard results to merge")]
    Empty,
    /// A result that is not a shard of a distributed run.
    #[error("input {at} is not a shard: it was not written by `run --shard J/N`")]
    NotAShard {
        /// Its position.
        at: usize,
    },
    /// A result of another run.
    #[error("input {at} is of another run: its {what} is {got}, the first shard's is {want}")]
    Mismatch {
        /// Its position.
        at: usize,
        /// What differs.
        what: &'static str,
        /// The first shard's.
        want: String,
        /// This one's.
        got: String,
    },
    /// The same shard twice.
    #[error("inputs {first} and {second} are both shard {index}")]
    Duplicate {
        /// The shard.
        index: u32,
        /// Where it came first.
        first: usize,
        /// Where it came again.
        second: usize,
    },
    /// Shards missing.
    #[error("shard {} of {count} missing: merge all {count} (a missing one would undercount the run)", list(.missing))]
    Missing {
        /// The shards not given.
        missing: Vec<u32>,
        /// Shards in the run.
        count: u32,
    },
    /// A histogram that does not decode.
    #[error("input {at}: its {which} histogram does not decode (the file is damaged)")]
    BadHistogram {
        /// Its position.
        at: usize,
        /// Which histogram.
        which: String,
    },
    /// A threshold that does not parse.
    #[error("threshold `{0}` does not parse")]
    BadThreshold(String),
}

fn list(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// A shard's result with its shard info.
struct Part<'a> {
    at: usize,
    r: &'a RunResult,
    s: &'a ShardInfo,
}

/// Adds up the shards `parts` (in any order) into one result, its
/// thresholds those the shards were run with plus `extra`, evaluated on
/// the merged figures. Refuses results of different runs, a missing shard
/// or the same shard twice.
pub fn merge(parts: &[RunResult], extra: &[Threshold]) -> Result<RunResult, MergeError> {
    let mut ps = check(parts)?;
    ps.sort_by_key(|p| p.s.index);
    let first = ps[0].r;
    let window_s = ps.iter().map(|p| p.r.window_s).fold(0.0, f64::max);
    let mut sum = Sums::new(window_s);
    for p in &ps {
        sum.add(p)?;
    }
    let mut thresholds = Vec::new();
    for expr in first.thresholds.iter().map(|t| t.expr.as_str()) {
        thresholds.push(parse_threshold(expr).map_err(|_| MergeError::BadThreshold(expr.into()))?);
    }
    for t in extra {
        if !thresholds.iter().any(|u| u.expr == t.expr) {
            thresholds.push(t.clone());
        }
    }
    let series = merge_series(&ps)?;
    Ok(sum.result(first, &ps, series, &thresholds))
}

/// Every input a shard of one run, each shard once, none missing.
fn check(parts: &[RunResult]) -> Result<Vec<Part<'_>>, MergeError> {
    let mut ps = Vec::with_capacity(parts.len());
    for (at, r) in parts.iter().enumerate() {
        let s = r.shard.as_ref().ok_or(MergeError::NotAShard { at })?;
        ps.push(Part { at, r, s });
    }
    let Some(p0) = ps.first() else {
        return Err(MergeError::Empty);
    };
    let (r0, s0) = (p0.r, p0.s);
    for p in &ps[1..] {
        let fields: [(&'static str, String, String); 5] = [
            (
                "number of shards",
                s0.count.to_string(),
                p.s.count.to_string(),
            ),
            ("seed", r0.seed.to_string(), p.r.seed.to_string()),
            (
                "start time (--start-at)",
                format!("{:?}", s0.start_at),
                format!("{:?}", p.s.start_at),
            ),
            (
                "scenario name",
                format!("`{}`", r0.name),
                format!("`{}`", p.r.name),
            ),
            (
                "scenario digest (target, requests, load, timeout)",
                s0.digest.clone(),
                p.s.digest.clone(),
            ),
        ];
        if let Some((what, want, got)) = fields.into_iter().find(|f| f.1 != f.2) {
            return Err(MergeError::Mismatch {
                at: p.at,
                what,
                want,
                got,
            });
        }
    }
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for p in &ps {
        if let Some(&first) = seen.get(&p.s.index) {
            return Err(MergeError::Duplicate {
                index: p.s.index,
                first,
                second: p.at,
            });
        }
        seen.insert(p.s.index, p.at);
    }
    let missing: Vec<u32> = (0..s0.count).filter(|j| !seen.contains_key(j)).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing {
            missing,
            count: s0.count,
        });
    }
    Ok(ps)
}

/// The whole-run figures, added shard by shard.
struct Sums {
    /// The merged run's measured window, s (the longest shard's).
    window_s: f64,
    counts: Counts,
    status: BTreeMap<String, u64>,
    bytes: (u64, u64),
    rates: (f64, f64, Option<f64>),
    duration_s: f64,
    conns: Connections,
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    phases: PhaseStats,
    kinds: Vec<(Counts, Histogram<u64>, f64)>,
    checks: Vec<(u64, u64)>,
    stopped: Option<String>,
}

/// Counts from `ok` and the failures by class.
fn counts_of(
    ok: u64,
    errors: impl IntoIterator<Item = (Class, u64)>,
    dropped: u64,
    retried: u64,
) -> Counts {
    let mut c = Counts::default();
    c.add_n(Class::Ok, ok);
    for (class, n) in errors {
        c.add_n(class, n);
    }
    c.dropped = dropped;
    c.retried = retried;
    c
}

/// A result's `errors`, by class.
fn classes(errors: &BTreeMap<String, u64>) -> impl Iterator<Item = (Class, u64)> + '_ {
    Class::ERRORS
        .map(|c| (c, errors.get(c.name()).copied().unwrap_or(0)))
        .into_iter()
}

/// Shard `p`'s `which` histogram.
fn decode(p: &Part<'_>, which: &str, text: &str) -> Result<Histogram<u64>, MergeError> {
    histogram_from_base64(text).ok_or_else(|| MergeError::BadHistogram {
        at: p.at,
        which: which.to_string(),
    })
}

impl Sums {
    fn new(window_s: f64) -> Self {
        Sums {
            window_s,
            counts: Counts::default(),
            status: BTreeMap::new(),
            bytes: (0, 0),
            rates: (0.0, 0.0, None),
            duration_s: 0.0,
            conns: Connections::default(),
            corrected: latency_histogram(),
            uncorrected: latency_histogram(),
            phases: PhaseStats::default(),
            kinds: Vec::new(),
            checks: Vec::new(),
            stopped: None,
        }
    }

    /// A shard's rate over its window `w` as its part of the merged
    /// window's: what it completed, per second of the merged window.
    fn per_window(&self, x: f64, w: f64) -> f64 {
        if self.window_s > 0.0 {
            x * w / self.window_s
        } else {
            0.0
        }
    }

    fn add(&mut self, p: &Part<'_>) -> Result<(), MergeError> {
        let (r, h) = (p.r, &p.s.histograms);
        self.counts
            .merge(&counts_of(r.ok, classes(&r.errors), r.dropped, r.retried));
        for (code, n) in &r.status_codes {
            *self.status.entry(code.clone()).or_default() += n;
        }
        self.bytes.0 += r.bytes_sent;
        self.bytes.1 += r.bytes_received;
        self.rates.0 += self.per_window(r.rps, r.window_s);
        self.rates.1 += self.per_window(r.goodput_rps, r.window_s);
        if let Some(o) = r.offered_rps {
            *self.rates.2.get_or_insert(0.0) += o;
        }
        self.duration_s = self.duration_s.max(r.duration_s);
        self.conns.opened += r.connections.opened;
        self.conns.peak += r.connections.peak;
        if let Some(m) = r.connections.max {
            *self.conns.max.get_or_insert(0) += m;
        }
        add(&mut self.corrected, &decode(p, "latency", &r.histogram)?);
        add(
            &mut self.uncorrected,
            &decode(p, "uncorrected", &h.uncorrected)?,
        );
        let ph = &mut self.phases;
        for (acc, (which, text)) in [
            (&mut ph.connect_us, ("connect", &h.connect)),
            (&mut ph.tls_us, ("tls", &h.tls)),
            (&mut ph.ttfb_us, ("ttfb", &h.ttfb)),
        ] {
            add(acc, &decode(p, which, text)?);
        }
        if self.kinds.len() < r.by_request.len() {
            self.kinds.resize_with(r.by_request.len(), || {
                (Counts::default(), latency_histogram(), 0.0)
            });
        }
        for k in 0..r.by_request.len() {
            let q = &r.by_request[k];
            let text = h.by_request.get(k).map_or("", String::as_str);
            let hist = decode(p, &format!("request `{}`", q.name), text)?;
            let rps = self.per_window(q.rps, r.window_s);
            let acc = &mut self.kinds[k];
            add(&mut acc.1, &hist);
            acc.0.merge(&counts_of(q.ok, classes(&q.errors), 0, 0));
            acc.2 += rps;
        }
        if self.checks.len() < r.checks.len() {
            self.checks.resize(r.checks.len(), (0, 0));
        }
        for (acc, c) in self.checks.iter_mut().zip(&r.checks) {
            acc.0 += c.passed;
            acc.1 += c.failed;
        }
        if self.stopped.is_none()
            && let Some(why) = &r.stopped
        {
            self.stopped = Some(format!("shard {}: {why}", p.s.index));
        }
        Ok(())
    }

    /// Each request kind's merged figures, in `first`'s order.
    fn by_request(&self, first: &RunResult) -> Vec<RequestResult> {
        self.kinds
            .iter()
            .zip(&first.by_request)
            .map(|((kc, kh, rps), q)| request_result(&q.name, kc, kh, *rps))
            .collect()
    }

    /// Each threshold on the merged figures: the whole run's, or one
    /// request kind's (`p95{name=cart}`), as a single run judges them.
    fn judge(&self, thresholds: &[Threshold], kinds: &[RequestResult]) -> Vec<ThresholdResult> {
        thresholds
            .iter()
            .map(|t| {
                let figures = match &t.request {
                    None => Some((&self.counts, &self.corrected, self.rates.0)),
                    Some(name) => kinds.iter().position(|q| &q.name == name).map(|k| {
                        let (kc, kh, rps) = &self.kinds[k];
                        (kc, kh, *rps)
                    }),
                };
                judge_on(t, figures)
            })
            .collect()
    }

    fn result(
        self,
        first: &RunResult,
        ps: &[Part<'_>],
        series: Vec<SecondRow>,
        thresholds: &[Threshold],
    ) -> RunResult {
        let by_request = self.by_request(first);
        let thresholds = self.judge(thresholds, &by_request);
        let c = &self.counts;
        RunResult {
            kind: first.kind,
            name: first.name.clone(),
            // The agreed start, to the second, as every result's.
            started_at: ps[0]
                .s
                .start_at
                .as_deref()
                .and_then(|s| humantime::parse_rfc3339(s).ok())
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_else(|| first.started_at.clone()),
            version: first.version.clone(),
            url: first.url.clone(),
            requests_sent: first.requests_sent.clone(),
            mode: first.mode.clone(),
            requests: c.requests(),
            ok: c.get(Class::Ok),
            errors: by_class(c),
            error_rate: error_rate(c),
            dropped: c.dropped,
            status_codes: self.status,
            bytes_sent: self.bytes.0,
            bytes_received: self.bytes.1,
            retried: c.retried,
            duration_s: self.duration_s,
            rps: self.rates.0,
            goodput_rps: self.rates.1,
            offered_rps: self.rates.2,
            window_s: self.window_s,
            target_rps: self.rates.2,
            latency_ms: latency_of(&self.corrected),
            latency_uncorrected_ms: latency_of(&self.uncorrected),
            latency_distribution: crate::result::distribution(&self.corrected),
            connections: self.conns,
            by_request,
            phases: Some(phases(&self.phases)),
            checks: first
                .checks
                .iter()
                .zip(&self.checks)
                .map(|(c, &(passed, failed))| contracts::run::CheckResult {
                    passed,
                    failed,
                    ..c.clone()
                })
                .collect(),
            thresholds,
            seed: first.seed,
            stopped: self.stopped,
            series,
            histogram: histogram_to_base64(&self.corrected),
            shard: None,
            shards: ps.iter().map(shard_row).collect(),
        }
    }
}

fn shard_row(p: &Part<'_>) -> ShardRow {
    ShardRow {
        index: p.s.index,
        scheduled: p.s.scheduled,
        requests: p.r.requests,
        dropped: p.r.dropped,
        rps: p.r.rps,
        send_lag_p99_ms: p.s.send_lag_ms.p99,
        start_offset_ms: p.s.start_offset_ms,
        stopped: p.r.stopped.clone(),
    }
}

/// Same bounds on both sides (every loadtest histogram is 1 µs to 1 h at 3
/// digits), so adding cannot fail; a histogram of other bounds still adds
/// every value it can hold.
fn add(acc: &mut Histogram<u64>, h: &Histogram<u64>) {
    if acc.add(h).is_err() {
        for v in h.iter_recorded() {
            let _ = acc.record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

/// Each second of the run, from every shard's row of that second: the
/// counts added, the percentiles from the second's histograms added. The
/// shards share the agreed start, so second t of one is second t of all.
fn merge_series(ps: &[Part<'_>]) -> Result<Vec<SecondRow>, MergeError> {
    let len = ps.iter().map(|p| p.r.series.len()).max().unwrap_or(0);
    // One interval, reused: each second's counts and histogram added up,
    // then made a row as a single run's collector makes it.
    let mut iv = Interval::empty(0);
    let mut buf = Vec::new();
    let mut rows = Vec::with_capacity(len);
    for s in 0..len {
        iv.second = s as u64;
        iv.counts = Counts::default();
        iv.latency_us.reset();
        let mut target: Option<f64> = None;
        for p in ps {
            let Some(r) = p.r.series.get(s) else {
                continue;
            };
            let errors = Class::ERRORS.into_iter().zip(r.errors_by_class);
            iv.counts.merge(&counts_of(r.ok, errors, r.dropped, 0));
            if let Some(t) = r.target_rps {
                *target.get_or_insert(0.0) += t;
            }
            let bad = || MergeError::BadHistogram {
                at: p.at,
                which: format!("second {s}'s"),
            };
            let text = p.s.seconds.get(s).ok_or_else(bad)?;
            add_plain(&mut iv.latency_us, text, &mut buf).ok_or_else(bad)?;
        }
        rows.push(crate::second_row(&iv, target));
    }
    Ok(rows)
}

/// Adds a histogram written by [`histogram_to_base64_plain`]
/// (uncompressed HdrHistogram V2) into `acc` without building it: a merge
/// reads one per shard per second (60,000 for 100 shards of 10 minutes),
/// and a histogram of loadtest's bounds is a 23,552-count array to
/// allocate, zero and add, where a second's histogram holds a few hundred
/// counts. The payload is the V2 format's run of ZigZag LEB128 numbers: a
/// count for the next index, or a negative run of empty ones.
///
/// [`histogram_to_base64_plain`]: crate::histogram_to_base64_plain
fn add_plain(acc: &mut Histogram<u64>, text: &str, buf: &mut Vec<u8>) -> Option<()> {
    use base64::Engine;
    buf.clear();
    base64::engine::general_purpose::STANDARD
        .decode_vec(text, buf)
        .ok()?;
    let b = buf.as_slice();
    let be32 = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let be64 = |i: usize| Some(u64::from_be_bytes(b.get(i..i + 8)?.try_into().ok()?));
    const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
    let (len, offset, digits, low) = (be32(4)? as usize, be32(8)?, be32(12)?, be64(16)?);
    let ratio = f64::from_bits(be64(32)?);
    if be32(0)? != V2_COOKIE
        || offset != 0
        || ratio != 1.0
        || low == 0
        || !(1..=5).contains(&digits)
    {
        return None;
    }
    // The layout of the counts (HdrHistogram's): 2·10^digits values per
    // bucket, rounded up to a power of two, half of them in each bucket
    // after the first.
    let half_mag = (2.0 * 10f64.powi(digits as i32)).log2().ceil() as u32 - 1;
    let unit_mag = 63 - low.leading_zeros();
    let mut p = b.get(40..40 + len)?;
    let mut index: u64 = 0;
    while !p.is_empty() {
        let (zz, n) = varint(p)?;
        p = &p[n..];
        let v = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
        if v < 0 {
            index += v.unsigned_abs();
            continue;
        }
        if v > 0 {
            let half = 1u64 << half_mag;
            let (bucket, sub) = match (index >> half_mag).checked_sub(1) {
                Some(bucket) => (bucket, (index & (half - 1)) + half),
                None => (0, index & (half - 1)),
            };
            let value = sub.checked_shl(u32::try_from(bucket).ok()? + unit_mag)?;
            acc.record_n(value, v as u64).ok()?;
        }
        index += 1;
    }
    Some(())
}

/// One LEB128 number of HdrHistogram's V2 encoding (at most 9 bytes, the
/// ninth whole) and its length.
fn varint(p: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in p.iter().enumerate().take(9) {
        if i == 8 {
            return Some((v | u64::from(b) << 56, 9));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::exec::{Load, RunOutcome, pick_kind};
    use crate::stats::Recorder;
    use crate::{
        RequestSpec, RunPlan, Schedule, Shard, StartAt, TargetSpec, second_row, summarize,
    };

    const RATE: f64 = 100.0;
    const SECS: u64 = 3;

    fn plan(shard: Shard, distributed: bool) -> RunPlan {
        let req = |name: &str, weight| RequestSpec {
            name: name.into(),
            url: Some(format!("/{name}")),
            weight,
            ..RequestSpec::default()
        };
        RunPlan {
            target: TargetSpec {
                url: "http://127.0.0.1:9/".into(),
                ..TargetSpec::default()
            },
            requests: vec![req("a", 1), req("b", 3)],
            load: Load::Open {
                schedule: Schedule::constant(RATE, Duration::from_secs(SECS)),
                initial_connections: 4,
                max_connections: 100,
            },
            timeout: Duration::from_secs(5),
            workers: 1,
            seed: 9,
            coalesce: Duration::ZERO,
            shard,
            start: distributed.then_some(StartAt {
                at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                tolerance: Duration::from_secs(1),
            }),
        }
    }

    /// What a process sending `plan`'s share would record, each request's
    /// latency and outcome a function of its index: every 97th dropped,
    /// every 50th a 503, latencies spread over three decades.
    fn outcome(plan: &RunPlan) -> RunOutcome {
        let total = (RATE as u64) * SECS;
        let stripe = plan.shard.stripe();
        let mut rec = Recorder::default();
        let (mut series, mut seconds) = (Vec::new(), Vec::new());
        let mut second = 0;
        let n = f64::from(plan.shard.count);
        let mut flush = |rec: &mut Recorder, s: u64| {
            let iv = rec.take_interval(s + 1);
            series.push(second_row(&iv, Some(RATE / n)));
            seconds.push(crate::result::histogram_to_base64_plain(&iv.latency_us));
        };
        let weights = [1u64, 4];
        for k in 0..stripe.count_below(total) {
            let i = stripe.index(k);
            while i / RATE as u64 > second {
                flush(&mut rec, second);
                second += 1;
            }
            if i.is_multiple_of(97) {
                rec.record_dropped();
                continue;
            }
            let class = if i % 50 == 7 {
                Class::Http5xx
            } else {
                Class::Ok
            };
            let us = 200 + (i * 7919) % 200_000;
            rec.record(class, us, us / 2 + 1);
            rec.record_request(pick_kind(&weights, plan.seed, i), class, us);
            rec.record_ttfb(Duration::from_micros(us / 3));
        }
        while second < SECS {
            flush(&mut rec, second);
            second += 1;
        }
        RunOutcome {
            totals: rec,
            series,
            elapsed: Duration::from_secs(SECS),
            sending: Duration::from_secs(SECS),
            connections_opened: 2,
            peak_connections: 2,
            idle_waits: 0,
            kernel_timed: 0,
            stopped: None,
            start_offset_ms: Some(0.5),
            second_histograms: if plan.distributed() {
                seconds
            } else {
                Vec::new()
            },
        }
    }

    /// The sparse reading of a second's histogram gives the histogram the
    /// library's own reader gives, for values across every bucket, and
    /// refuses what is not one.
    #[test]
    fn second_histograms_read_back_exactly() {
        let mut h = crate::stats::latency_histogram();
        let mut x = 12_345u64;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let v = 1 + (x >> 33) % (1 << (1 + (x >> 59)));
            h.record_n(v.min(crate::stats::MAX_LATENCY_US), 1 + x % 3)
                .unwrap();
        }
        h.record(crate::stats::MAX_LATENCY_US).unwrap();
        h.record(1).unwrap();
        let text = crate::result::histogram_to_base64_plain(&h);
        let mut acc = crate::stats::latency_histogram();
        let mut buf = Vec::new();
        add_plain(&mut acc, &text, &mut buf).unwrap();
        add_plain(&mut acc, &text, &mut buf).unwrap();
        let mut twice = histogram_from_base64(&text).unwrap();
        twice.add(&h).unwrap();
        let pairs = |h: &Histogram<u64>| {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&acc), pairs(&twice));
        assert!(pairs(&acc).len() > 1000);
        let deflated = crate::result::histogram_to_base64(&h);
        assert!(add_plain(&mut acc, &deflated, &mut buf).is_none());
        assert!(add_plain(&mut acc, "bm90IGEgaGlzdG9ncmFt", &mut buf).is_none());
        assert!(add_plain(&mut acc, "%%%", &mut buf).is_none());
    }

    fn shards(n: u32) -> Vec<RunResult> {
        let thresholds = [crate::parse_threshold("p95{name=b}<150ms").unwrap()];
        (0..n)
            .map(|index| {
                let p = plan(Shard { index, count: n }, true);
                summarize(&p, &outcome(&p), &thresholds)
            })
            .collect()
    }

    /// The merge of N shards is the result of one process that recorded
    /// every request: the same counts, the same percentiles (whole run, per
    /// request, phases, each second), the same thresholds.
    #[test]
    fn merged_shards_equal_the_whole_run() {
        let whole_plan = plan(Shard::WHOLE, false);
        let thresholds = [
            crate::parse_threshold("p95{name=b}<150ms").unwrap(),
            crate::parse_threshold("p99<190ms").unwrap(),
        ];
        let whole = summarize(&whole_plan, &outcome(&whole_plan), &thresholds);
        for n in [1, 2, 3, 7] {
            let mut parts = shards(n);
            parts.reverse(); // any order
            let m = merge(&parts, &thresholds[1..]).unwrap();
            let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs().max(1.0);
            assert_eq!(
                (m.requests, m.ok, m.dropped, &m.errors, &m.status_codes),
                (
                    whole.requests,
                    whole.ok,
                    whole.dropped,
                    &whole.errors,
                    &whole.status_codes
                ),
                "n={n}"
            );
            assert_eq!(m.latency_ms, whole.latency_ms, "n={n}");
            assert_eq!(m.latency_uncorrected_ms, whole.latency_uncorrected_ms);
            assert_eq!(m.latency_distribution, whole.latency_distribution);
            assert_eq!(m.histogram, whole.histogram);
            assert_eq!(
                m.phases.as_ref().unwrap().ttfb_ms,
                whole.phases.as_ref().unwrap().ttfb_ms
            );
            for (a, b) in m.by_request.iter().zip(&whole.by_request) {
                assert_eq!(
                    (a.requests, a.ok, &a.errors, &a.latency_ms),
                    (b.requests, b.ok, &b.errors, &b.latency_ms)
                );
                assert!(close(a.rps, b.rps), "{} vs {}", a.rps, b.rps);
            }
            assert!(close(m.rps, whole.rps) && close(m.goodput_rps, whole.goodput_rps));
            assert!(close(m.offered_rps.unwrap(), whole.offered_rps.unwrap()));
            assert_eq!(m.series.len(), whole.series.len());
            for (a, b) in m.series.iter().zip(&whole.series) {
                assert_eq!(
                    (
                        a.t_s,
                        a.requests,
                        a.ok,
                        a.dropped,
                        a.errors_by_class,
                        a.p50_ms,
                        a.p95_ms,
                        a.p99_ms
                    ),
                    (
                        b.t_s,
                        b.requests,
                        b.ok,
                        b.dropped,
                        b.errors_by_class,
                        b.p50_ms,
                        b.p95_ms,
                        b.p99_ms
                    ),
                );
                assert!(close(a.target_rps.unwrap(), b.target_rps.unwrap()));
            }
            assert_eq!(m.thresholds, whole.thresholds, "n={n}");
            assert_eq!(m.shards.len(), n as usize);
            let scheduled: u64 = m.shards.iter().map(|s| s.scheduled.unwrap()).sum();
            assert_eq!(scheduled, (RATE as u64) * SECS);
        }
    }

    #[test]
    fn shards_of_other_runs_missing_or_twice_are_refused() {
        let mut parts = shards(3);
        assert!(
            matches!(merge(&parts[..2], &[]), Err(MergeError::Missing { ref missing, count: 3 }) if missing == &[2])
        );
        let twice = vec![parts[0].clone(), parts[1].clone(), parts[1].clone()];
        assert!(matches!(
            merge(&twice, &[]),
            Err(MergeError::Duplicate {
                index: 1,
                first: 1,
                second: 2
            })
        ));
        parts[2].seed = 10;
        let e = merge(&parts, &[]).unwrap_err();
        assert!(
            matches!(
                e,
                MergeError::Mismatch {
                    at: 2,
                    what: "seed",
                    ..
                }
            ),
            "{e}"
        );
        parts[2] = shards(3).remove(2);
        parts[2].shard.as_mut().unwrap().digest = "0".into();
        assert!(matches!(
            merge(&parts, &[]),
            Err(MergeError::Mismatch { at: 2, .. })
        ));
        let other_n = shards(2);
        let mixed = vec![parts[0].clone(), other_n[1].clone()];
        assert!(matches!(
            merge(&mixed, &[]),
            Err(MergeError::Mismatch {
                what: "number of shards",
                ..
            })
        ));
        let mut plain = parts[0].clone();
        plain.shard = None;
        assert!(matches!(
            merge(&[plain], &[]),
            Err(MergeError::NotAShard { at: 0 })
        ));
        assert!(matches!(merge(&[], &[]), Err(MergeError::Empty)));
    }
}
