//! The run result a user keeps: the JSON contract of `loadtest run --json`,
//! built from a [`RunOutcome`] by pure functions, and threshold evaluation.

use std::collections::BTreeMap;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::RunPlan;
use crate::exec::{Load, RunOutcome, SecondRow};
use crate::net::redact_header;
use crate::spec::{Metric, Threshold};
use crate::stats::{Counts, Outcome};

/// Latency statistics in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// From a histogram of microseconds; zeros when it is empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
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
}

/// One point of the percentile distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PercentilePoint {
    /// Percentile, 0-100.
    pub percentile: f64,
    /// Latency at it, ms.
    pub ms: f64,
}

/// Connection use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Connections {
    /// TCP connections opened.
    pub opened: u64,
    /// Most connections (or HTTP/2 streams) in use at once.
    pub peak: usize,
    /// The cap (open model).
    pub max: Option<usize>,
}

/// A request kind as shown in outputs: secrets redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestInfo {
    /// Label.
    pub name: String,
    /// Method.
    pub method: String,
    /// URL or path.
    pub url: String,
    /// `Name: value` lines, secret values as `***`.
    pub headers: Vec<String>,
    /// Relative frequency.
    pub weight: u32,
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

/// A threshold and whether it held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// As written.
    pub expr: String,
    /// Whether it held.
    pub ok: bool,
    /// The measured value (ms, fraction or rps).
    pub value: f64,
}

/// The summary `loadtest run --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Kind of document, for tools that read a mix of files.
    pub kind: String,
    /// The scenario's name.
    pub name: String,
    /// When the measured run started (UTC, RFC 3339); set by the binary.
    #[serde(default)]
    pub started_at: String,
    /// The version of the tool that measured it; set by the binary.
    #[serde(default)]
    pub version: String,
    /// The target URL (credentials in it replaced by `***`).
    pub url: String,
    /// What was sent, with secret header values shown as `***`.
    pub requests_sent: Vec<RequestInfo>,
    /// `open` or `closed`.
    pub mode: String,
    /// Requests sent: `ok + Σ errors`.
    pub requests: u64,
    /// Requests that got a 1xx-3xx response.
    pub ok: u64,
    /// Failed requests by class.
    pub errors: BTreeMap<String, u64>,
    /// Σ errors / requests.
    pub error_rate: f64,
    /// Scheduled requests never sent (generator behind, or interrupted).
    pub dropped: u64,
    /// Requests sent a second time, once, on a fresh connection, because
    /// the keep-alive connection they first went out on had been closed
    /// by the server while idle, with no response (idempotent methods
    /// only). Each counts once in `requests`, timed from its schedule.
    #[serde(default)]
    pub retried: u64,
    /// Open model: the schedule's length, or until the last send if that
    /// was later (or, when stopped early, until the last send); closed model:
    /// until the last response.
    pub duration_s: f64,
    /// Requests completed (any outcome) per second of the measured window:
    /// the backlog a saturated service drains after the window is not
    /// throughput.
    pub rps: f64,
    /// Successful responses per second of the measured window: what the
    /// service really delivered. Calibration and verification use this.
    #[serde(default)]
    pub goodput_rps: f64,
    /// Scheduled requests per second (null in the closed model).
    #[serde(default)]
    pub offered_rps: Option<f64>,
    /// The measured window, s: the schedule (open model) or the whole run
    /// (closed model, or a run stopped early).
    #[serde(default)]
    pub window_s: f64,
    /// Scheduled requests per second (null in the closed model); the same
    /// as `offered_rps`, kept for readers of earlier results.
    pub target_rps: Option<f64>,
    /// Latency from the scheduled send time (coordinated-omission corrected).
    pub latency_ms: Latency,
    /// Latency from the actual send (what a closed-loop tool would report).
    pub latency_uncorrected_ms: Latency,
    /// Corrected latency by percentile, for distribution plots.
    pub latency_distribution: Vec<PercentilePoint>,
    /// Connection use.
    pub connections: Connections,
    /// Each threshold and its outcome.
    pub thresholds: Vec<ThresholdResult>,
    /// The seed used.
    pub seed: u64,
    /// Why the run ended early, if it did.
    pub stopped: Option<String>,
    /// One row per second.
    pub series: Vec<SecondRow>,
    /// The corrected latency histogram (µs), HdrHistogram V2 compressed, base64.
    pub histogram: String,
}

impl RunResult {
    /// True when every threshold held.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.ok)
    }

    /// The embedded latency histogram (µs).
    pub fn latency_histogram(&self) -> Option<Histogram<u64>> {
        histogram_from_base64(&self.histogram)
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

fn error_rate(c: &Counts) -> f64 {
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
    let distribution = if h.is_empty() {
        Vec::new()
    } else {
        DISTRIBUTION
            .iter()
            .map(|&p| PercentilePoint {
                percentile: p,
                ms: h.value_at_quantile(p / 100.0) as f64 / 1e3,
            })
            .collect()
    };
    let (mode, max) = match &plan.load {
        Load::Open {
            max_connections, ..
        } => ("open", Some(*max_connections)),
        Load::Closed { .. } => ("closed", None),
    };
    RunResult {
        kind: "run".into(),
        name: String::new(),
        started_at: String::new(),
        version: String::new(),
        url: redact_url(&plan.target.url),
        requests_sent: plan
            .requests
            .iter()
            .map(|r| RequestInfo {
                name: r.name.clone(),
                method: r.method.to_ascii_uppercase(),
                url: redact_url(r.url.as_deref().unwrap_or(&plan.target.url)),
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
            })
            .collect(),
        mode: mode.into(),
        requests: c.requests(),
        ok: c.get(Outcome::Ok),
        errors: Outcome::ERRORS
            .iter()
            .map(|o| (o.name().to_string(), c.get(*o)))
            .collect(),
        error_rate: error_rate(c),
        dropped: c.dropped,
        retried: c.retried,
        duration_s,
        rps,
        goodput_rps,
        offered_rps: plan.target_rps(),
        window_s,
        target_rps: plan.target_rps(),
        latency_ms: Latency::from_histogram(h),
        latency_uncorrected_ms: Latency::from_histogram(&out.totals.uncorrected_us),
        latency_distribution: distribution,
        connections: Connections {
            opened: out.connections_opened,
            peak: out.peak_connections,
            max,
        },
        thresholds: evaluate(thresholds, c, h, rps),
        seed: plan.seed,
        stopped: out.stopped.clone(),
        series: out.series.clone(),
        histogram: histogram_to_base64(h),
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
            per_s(c.get(Outcome::Ok), duration_s),
            duration_s,
        ),
    }
}

/// Header of the per-second CSV: the DESIGN.md columns first, then extensions.
pub fn csv_header() -> String {
    let classes: Vec<&str> = Outcome::ERRORS.iter().map(|o| o.name()).collect();
    format!(
        "t_s,requests,ok,errors,rps,p50_ms,p95_ms,p99_ms,dropped,target_rps,{}",
        classes.join(",")
    )
}

/// One CSV row, matching [`csv_header`].
pub fn csv_row(r: &SecondRow) -> String {
    let classes: Vec<String> = r.errors_by_class.iter().map(u64::to_string).collect();
    format!(
        "{},{},{},{},{:.1},{:.3},{:.3},{:.3},{},{},{}",
        r.t_s,
        r.requests,
        r.ok,
        r.errors,
        r.rps,
        r.p50_ms,
        r.p95_ms,
        r.p99_ms,
        r.dropped,
        r.target_rps.map(|t| format!("{t:.1}")).unwrap_or_default(),
        classes.join(",")
    )
}

fn histogram_to_base64(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}

/// Decodes a histogram written by [`summarize`].
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
                if ms <= 98 {
                    Outcome::Ok
                } else {
                    Outcome::Http5xx
                },
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
            errors_by_class: [0, 0, 0, 0, 1, 0],
            ..SecondRow::default()
        };
        assert_eq!(
            csv_header().split(',').count(),
            csv_row(&row).split(',').count()
        );
        assert!(csv_header().starts_with("t_s,requests,ok,errors,rps,p50_ms,p95_ms,p99_ms"));
        assert_eq!(
            csv_row(&row),
            "3,10,9,1,10.0,1.500,0.000,0.000,0,10.0,0,0,0,0,1,0"
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
