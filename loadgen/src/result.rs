//! The run result a user keeps: the JSON contract of `loadtest run --json`,
//! built from a [`RunOutcome`] by pure functions, and threshold evaluation.

use std::collections::BTreeMap;

use base64::Engine;
pub use contracts::run::{
    CheckResult, Connections, Latency, PercentilePoint, Phases, RequestInfo, RequestResult,
    RunResult, RunTag, SecondRow, ShardHistograms, ShardInfo, ShardRow, ThresholdResult,
    csv_header, csv_row,
};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use crate::RunPlan;
use crate::exec::{Load, RunOutcome};
use crate::net::redact_header;
use crate::spec::{Metric, Threshold};
use crate::stats::{Class, Counts};

/// Latency statistics of a histogram of microseconds; zeros when it is empty.
pub fn latency_of(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1e3;
    Latency {
        mean: h.mean() / 1e3,
        p50: q(0.5),
        p90: q(0.9),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
        max: h.max() as f64 / 1e3,
    }
}

/// A URL with any `user:password@` replaced by `***@`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s && !url[s + 3..at].contains('/') => {
            format!("{}***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Percentiles for the distribution plot: 0, 50, 75, 87.5, ... toward 99.9999.
const DISTRIBUTION: [f64; 15] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// Measures each threshold against counts, a histogram (µs) and the rate.
pub fn evaluate(
    thresholds: &[Threshold],
    counts: &Counts,
    hist: &Histogram<u64>,
    rps: f64,
) -> Vec<ThresholdResult> {
    let lat = |v: u64| v as f64 / 1e3;
    thresholds
        .iter()
        .map(|t| {
            let value = match t.metric {
                Metric::Percentile(p) => lat(hist.value_at_quantile(p / 100.0)),
                Metric::Max => lat(hist.max()),
                Metric::Mean => hist.mean() / 1e3,
                Metric::ErrorRate => error_rate(counts),
                Metric::Rps => rps,
            };
            ThresholdResult {
                expr: t.expr.clone(),
                ok: t.cmp.holds(value, t.limit),
                value,
            }
        })
        .collect()
}

/// Failed requests by class, every class named.
pub(crate) fn by_class(c: &Counts) -> BTreeMap<String, u64> {
    Class::ERRORS
        .iter()
        .map(|o| (o.name().to_string(), c.get(*o)))
        .collect()
}

pub(crate) fn error_rate(c: &Counts) -> f64 {
    if c.requests() == 0 {
        0.0
    } else {
        c.errors() as f64 / c.requests() as f64
    }
}

/// Builds the result document of a finished run.
pub fn summarize(plan: &RunPlan, out: &RunOutcome, thresholds: &[Threshold]) -> RunResult {
    let c = &out.totals.counts;
    // Open model: the rate achieved is what was sent over the schedule (or
    // longer, when the generator fell behind); the last response's latency is
    // latency, not a slower rate. Closed model: to the last response.
    let duration_s = match &plan.load {
        Load::Open { schedule, .. } if out.stopped.is_none() => {
            schedule.duration().max(out.sending).as_secs_f64()
        }
        Load::Open { .. } => out.sending.as_secs_f64(),
        Load::Closed { .. } => out.elapsed.as_secs_f64(),
    };
    let (rps, goodput_rps, window_s) = window_rates(plan, out, duration_s);
    let h = &out.totals.corrected_us;
    let (mode, max) = match &plan.load {
        Load::Open {
            max_connections, ..
        } => ("open", Some(*max_connections)),
        Load::Closed { .. } => ("closed", None),
    };
    RunResult {
        kind: RunTag,
        name: String::new(),
        started_at: String::new(),
        version: String::new(),
        url: redact_url(&plan.target.url),
        requests_sent: plan
            .requests
            .iter()
            .map(|r| request_info(r, &plan.target.url))
            .collect(),
        mode: mode.into(),
        requests: c.requests(),
        ok: c.get(Class::Ok),
        errors: by_class(c),
        error_rate: error_rate(c),
        dropped: c.dropped,
        status_codes: out
            .totals
            .statuses
            .iter()
            .map(|&(code, n)| (code.to_string(), n))
            .collect(),
        bytes_sent: out.totals.bytes_sent,
        bytes_received: out.totals.bytes_received,
        retried: c.retried,
        duration_s,
        rps,
        goodput_rps,
        offered_rps: plan.target_rps(),
        window_s,
        target_rps: plan.target_rps(),
        latency_ms: latency_of(h),
        latency_uncorrected_ms: latency_of(&out.totals.uncorrected_us),
        latency_distribution: distribution(h),
        connections: Connections {
            opened: out.connections_opened,
            peak: out.peak_connections,
            max,
        },
        by_request: by_request(plan, out, window_s),
        phases: Some(phases(&out.totals.phases)),
        checks: checks(plan, out),
        thresholds: thresholds
            .iter()
            .map(|t| judge(t, plan, out, (rps, window_s)))
            .collect(),
        seed: plan.seed,
        stopped: out.stopped.clone(),
        series: out.series.clone(),
        histogram: histogram_to_base64(h),
        shard: plan.distributed().then(|| shard_info(plan, out)),
        shards: Vec::new(),
    }
}

/// What a shard's result carries for an exact merge.
fn shard_info(plan: &RunPlan, out: &RunOutcome) -> ShardInfo {
    let t = &out.totals;
    let b64 = histogram_to_base64;
    let kinds = plan.requests.len();
    ShardInfo {
        index: plan.shard.index,
        count: plan.shard.count,
        start_at: plan
            .start
            .map(|s| humantime::format_rfc3339_millis(s.at).to_string()),
        start_offset_ms: out.start_offset_ms,
        digest: digest(plan),
        scheduled: plan.scheduled(),
        workers: plan.workers,
        send_lag_ms: latency_of(&t.send_lag_us),
        histograms: ShardHistograms {
            uncorrected: b64(&t.uncorrected_us),
            send_lag: b64(&t.send_lag_us),
            by_request: (0..kinds)
                .map(|i| b64(kind_stats(out, i, kinds).1))
                .collect(),
            connect: b64(&t.phases.connect_us),
            tls: b64(&t.phases.tls_us),
            ttfb: b64(&t.phases.ttfb_us),
        },
        seconds: out.second_histograms.clone(),
    }
}

/// A digest (FNV-1a, 64 bits, hex) of what every shard of one distributed
/// run must share: the target, each request as sent (secret values
/// included, hashed), the load, the timeout, the seed, the number of
/// shards and the start. The shard's own index and worker threads are not
/// in it.
pub fn digest(plan: &RunPlan) -> String {
    let load = match &plan.load {
        Load::Open { schedule, .. } => format!("open {schedule:?}"),
        Load::Closed {
            connections,
            think_time,
            duration,
        } => format!("closed {connections} {think_time:?} {duration:?}"),
    };
    let requests: Vec<String> = plan
        .requests
        .iter()
        .map(|r| {
            format!(
                "{} {} {:?} {:?} {:?} {} {:?}",
                r.name,
                r.method,
                r.url,
                r.headers,
                r.body,
                r.weight,
                r.check.names()
            )
        })
        .collect();
    let text = format!(
        "{}|{}|{}|{requests:?}|{load}|{:?}|{}|{}|{:?}",
        plan.target.url,
        plan.target.http2,
        plan.target.insecure,
        plan.timeout,
        plan.seed,
        plan.shard.count,
        plan.start.map(|s| s.at),
    );
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Each kind of request's counts and corrected latency: its own with
/// several kinds, the run's with one.
fn kind_stats(out: &RunOutcome, kind: usize, kinds: usize) -> (&Counts, &Histogram<u64>) {
    match out.totals.per_request.get(kind) {
        Some(k) if kinds > 1 => (&k.counts, &k.corrected_us),
        _ => (&out.totals.counts, &out.totals.corrected_us),
    }
}

/// One row per kind of request (their counts sum to the run's).
fn by_request(plan: &RunPlan, out: &RunOutcome, window_s: f64) -> Vec<RequestResult> {
    let kinds = plan.requests.len();
    let none = Counts::default();
    let empty = crate::stats::latency_histogram();
    plan.requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            // A kind never picked in a run of several has no figures.
            let (c, h) = if kinds > 1 && out.totals.per_request.get(i).is_none() {
                (&none, &empty)
            } else {
                kind_stats(out, i, kinds)
            };
            let rps = if window_s > 0.0 {
                c.requests() as f64 / window_s
            } else {
                0.0
            };
            request_result(&r.name, c, h, rps)
        })
        .collect()
}

/// One kind of request's figures from its counts and corrected latency.
pub(crate) fn request_result(
    name: &str,
    c: &Counts,
    h: &Histogram<u64>,
    rps: f64,
) -> RequestResult {
    RequestResult {
        name: name.to_string(),
        requests: c.requests(),
        ok: c.get(Class::Ok),
        errors: by_class(c),
        error_rate: error_rate(c),
        rps,
        latency_ms: latency_of(h),
    }
}

/// The phases' latencies.
pub(crate) fn phases(p: &crate::stats::PhaseStats) -> Phases {
    Phases {
        new_connections: p.connect_us.len(),
        connect_ms: latency_of(&p.connect_us),
        tls_handshake_ms: (!p.tls_us.is_empty()).then(|| latency_of(&p.tls_us)),
        responses: p.ttfb_us.len(),
        ttfb_ms: latency_of(&p.ttfb_us),
    }
}

/// Each check of each kind of request, with its passes and failures.
fn checks(plan: &RunPlan, out: &RunOutcome) -> Vec<CheckResult> {
    let mut rows = Vec::new();
    for (i, r) in plan.requests.iter().enumerate() {
        let counts = out.totals.checks.get(i).copied().unwrap_or_default();
        for (slot, check) in r.check.names() {
            let failed = counts.failed[slot];
            rows.push(CheckResult {
                request: r.name.clone(),
                check,
                passed: counts.judged - failed,
                failed,
            });
        }
    }
    rows
}

/// A threshold against the whole run, or against the requests it names
/// (`p95{name=cart}<300ms`); a name no request has never holds (the
/// binary refuses such a threshold before the run).
fn judge(
    t: &Threshold,
    plan: &RunPlan,
    out: &RunOutcome,
    (rps, window_s): (f64, f64),
) -> ThresholdResult {
    let Some(name) = &t.request else {
        return judge_on(t, Some((&out.totals.counts, &out.totals.corrected_us, rps)));
    };
    let kinds = plan.requests.len();
    let figures = plan.requests.iter().position(|r| &r.name == name).map(|i| {
        let (c, h) = kind_stats(out, i, kinds);
        let kind_rps = if window_s > 0.0 {
            c.requests() as f64 / window_s
        } else {
            0.0
        };
        (c, h, kind_rps)
    });
    judge_on(t, figures)
}

/// Threshold `t` on the figures it is about (counts, corrected latency,
/// rps); `None`, a request no run has, never holds.
pub(crate) fn judge_on(
    t: &Threshold,
    figures: Option<(&Counts, &Histogram<u64>, f64)>,
) -> ThresholdResult {
    match figures {
        Some((c, h, rps)) => evaluate(std::slice::from_ref(t), c, h, rps).remove(0),
        None => ThresholdResult {
            expr: t.expr.clone(),
            ok: false,
            value: 0.0,
        },
    }
}

/// The corrected latency at each of [`DISTRIBUTION`]'s percentiles.
pub(crate) fn distribution(h: &Histogram<u64>) -> Vec<PercentilePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    DISTRIBUTION
        .iter()
        .map(|&p| PercentilePoint {
            percentile: p,
            ms: h.value_at_quantile(p / 100.0) as f64 / 1e3,
        })
        .collect()
}

/// A kind of request as the result shows it: credentials in its URL and
/// secret header values (named secret, or taken from `${VAR}`) as `***`.
fn request_info(r: &crate::RequestSpec, target_url: &str) -> RequestInfo {
    RequestInfo {
        name: r.name.clone(),
        method: r.method.to_ascii_uppercase(),
        url: redact_url(r.url.as_deref().unwrap_or(target_url)),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| {
                let from_env = r.secret_headers.iter().any(|s| s.eq_ignore_ascii_case(k));
                let shown = if from_env {
                    "***".into()
                } else {
                    redact_header(k, v)
                };
                format!("{k}: {shown}")
            })
            .collect(),
        weight: r.weight,
        checks: r.check.names().into_iter().map(|n| n.1).collect(),
    }
}

/// Completed and successful requests per second of the measured window,
/// and the window. Open model: the schedule's seconds, counted by when each
/// response arrived, so what a saturated service drains after the window
/// (or what was late because the generator fell behind) does not count as
/// throughput. Closed model, or a run stopped early: the whole run.
fn window_rates(plan: &RunPlan, out: &RunOutcome, duration_s: f64) -> (f64, f64, f64) {
    let per_s = |n: u64, w: f64| if w > 0.0 { n as f64 / w } else { 0.0 };
    let c = &out.totals.counts;
    match &plan.load {
        Load::Open { schedule, .. } if out.stopped.is_none() && !out.series.is_empty() => {
            let w = schedule.duration().as_secs_f64();
            // Rows are whole seconds; a fractional last second counts whole.
            let rows = out.series.iter().filter(|r| (r.t_s as f64) < w);
            let (done, ok) = rows.fold((0, 0), |(d, o), r| (d + r.requests, o + r.ok));
            (per_s(done, w), per_s(ok, w), w)
        }
        _ => (
            per_s(c.requests(), duration_s),
            per_s(c.get(Class::Ok), duration_s),
            duration_s,
        ),
    }
}

pub(crate) fn histogram_to_base64(h: &Histogram<u64>) -> String {
    encode(h, &mut V2DeflateSerializer::new())
}

/// `h` serialized by `s`, in base64 ("" if it cannot be).
fn encode<S: Serializer>(h: &Histogram<u64>, s: &mut S) -> String {
    let mut buf = Vec::new();
    match s.serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}

/// `h` as uncompressed HdrHistogram V2, base64 (each second of a shard's
/// result): larger than the deflated form, and read back without
/// inflating it (a merge reads many).
pub fn histogram_to_base64_plain(h: &Histogram<u64>) -> String {
    encode(h, &mut hdrhistogram::serialization::V2Serializer::new())
}

/// Decodes a histogram written by [`summarize`] (either form).
pub fn histogram_from_base64(text: &str) -> Option<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_threshold;
    use crate::stats::{Recorder, latency_histogram};

    #[test]
    fn thresholds_use_the_right_units() {
        let mut r = Recorder::default();
        for ms in 1..=100u64 {
            r.record(
                if ms <= 98 { Class::Ok } else { Class::Http5xx },
                ms * 1000,
                ms * 1000,
            );
        }
        let ts: Vec<_> = [
            "p95<200ms",
            "p50<40ms",
            "error_rate<1%",
            "error_rate<=2%",
            "rps>=1000",
            "max<=100.1ms",
        ]
        .iter()
        .map(|t| parse_threshold(t).unwrap())
        .collect();
        let res = evaluate(&ts, &r.counts, &r.corrected_us, 999.0);
        let oks: Vec<bool> = res.iter().map(|t| t.ok).collect();
        assert_eq!(oks, [true, false, false, true, false, true]);
        assert!((res[0].value - 95.0).abs() < 0.1);
        assert!((res[2].value - 0.02).abs() < 1e-12);
    }

    #[test]
    fn csv_rows_match_the_header() {
        let row = SecondRow {
            t_s: 3,
            requests: 10,
            ok: 9,
            errors: 1,
            rps: 10.0,
            p50_ms: 1.5,
            target_rps: Some(10.0),
            errors_by_class: [0, 0, 0, 0, 1, 0, 0],
            ..SecondRow::default()
        };
        assert_eq!(
            csv_header().split(',').count(),
            csv_row(&row).split(',').count()
        );
        assert!(csv_header().starts_with("t_s,requests,ok,errors,rps,p50_ms,p95_ms,p99_ms"));
        assert_eq!(
            csv_row(&row),
            "3,10,9,1,10.0,1.500,0.000,0.000,0,10.0,0,0,0,0,1,0,0"
        );
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_url("https://bob:pw@staging.example/x"),
            "https://***@staging.example/x"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080/a@b"),
            "http://127.0.0.1:8080/a@b"
        );
    }

    #[test]
    fn histogram_round_trips_through_base64() {
        let mut h = latency_histogram();
        for v in [5u64, 500, 50_000, 5_000_000] {
            h.record(v).unwrap();
        }
        let back = histogram_from_base64(&histogram_to_base64(&h)).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
        assert!(histogram_from_base64("not base64!").is_none());
    }
}
