//! `loadtest run --json` and `--csv`: the run result and its per-second
//! rows. `loadgen` builds them; `simulate --calibrate`, `plan` and
//! `report` read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

crate::tag!(
    RunTag,
    "run",
    "`kind = \"run\"`: the document is a run result."
);

/// The error classes, in the order of `errors_by_class` and of the CSV's
/// last columns: every failed request is in exactly one.
pub const ERROR_CLASSES: [&str; 7] = [
    "connect", "timeout", "reset", "http_4xx", "http_5xx", "protocol", "check",
];

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
    /// What its responses must satisfy (`status in 2xx`, `body contains
    /// "ok"`, `json data.id exists`); empty: the default, 1xx-3xx is ok.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
}

/// The phases of requests, as k6 splits them (`http_req_connecting`,
/// `http_req_tls_handshaking`, `http_req_waiting`), in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// New connections opened (each has a connect time).
    pub new_connections: u64,
    /// TCP connect of each new connection.
    pub connect_ms: Latency,
    /// TLS handshake of each new https connection (null for http).
    pub tls_handshake_ms: Option<Latency>,
    /// Responses timed to their first byte.
    pub responses: u64,
    /// From the request's send to the response's first byte (the server's
    /// think time plus one network trip), every response.
    pub ttfb_ms: Latency,
}

/// One response check of one kind of request, and how it fared (k6's
/// `checks`): every response judged either passed it or failed it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The request's name.
    pub request: String,
    /// The check, as described in [`RequestInfo::checks`].
    pub check: String,
    /// Responses that passed it.
    pub passed: u64,
    /// Responses that failed it. A response that failed any check is in
    /// the `check` error class (or in `http_4xx`/`http_5xx` when its status
    /// was one of those).
    pub failed: u64,
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

impl ThresholdResult {
    /// The measured value in the threshold's own unit: `0.300%` for an
    /// error rate (a fraction, compared against a percentage), `812.4 rps`,
    /// `123.45 ms`.
    pub fn measured(&self) -> String {
        let metric = self.expr.trim_start();
        if metric.starts_with("error_rate") {
            format!("{:.3}%", 100.0 * self.value)
        } else if metric.starts_with("rps") {
            format!("{:.1} rps", self.value)
        } else {
            format!("{:.2} ms", self.value)
        }
    }
}

/// One kind of request's figures (a scenario's `[[requests]]`, by name).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestResult {
    /// Its name (default: method and path).
    pub name: String,
    /// Requests sent: `ok + Σ errors`.
    pub requests: u64,
    /// Of which succeeded.
    pub ok: u64,
    /// Failed requests by class.
    pub errors: BTreeMap<String, u64>,
    /// Σ errors / requests.
    pub error_rate: f64,
    /// Requests completed per second of the run's window.
    pub rps: f64,
    /// Latency from the scheduled send time.
    pub latency_ms: Latency,
}

/// The summary `loadtest run --json` writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Kind of document, for tools that read a mix of files.
    pub kind: RunTag,
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
    /// Responses by status code (`"200"`, `"503"`): every response read,
    /// whatever its class.
    #[serde(default)]
    pub status_codes: BTreeMap<String, u64>,
    /// Bytes of requests put on connections (retries included): the whole
    /// request on HTTP/1.1, the body on HTTP/2 (its headers go compressed).
    #[serde(default)]
    pub bytes_sent: u64,
    /// Bytes of responses read: head and body on HTTP/1.1, the body on
    /// HTTP/2.
    #[serde(default)]
    pub bytes_received: u64,
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
    /// Each kind of request on its own, in the order of `requests_sent`;
    /// their counts sum to the run's.
    #[serde(default)]
    pub by_request: Vec<RequestResult>,
    /// Where the time of a request goes: connecting, the TLS handshake,
    /// waiting for the first byte (absent in results written before).
    #[serde(default)]
    pub phases: Option<Phases>,
    /// Each response check and how many responses passed and failed it
    /// (requests that were not answered are not judged).
    #[serde(default)]
    pub checks: Vec<CheckResult>,
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
    /// A shard of a distributed run (`run --shard J/N`): what `loadtest
    /// merge` needs to add the shards up exactly. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// A merged result (`loadtest merge`): each shard's own figures, so a
    /// generator that was itself the bottleneck shows. Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRow>,
}

/// One shard's part of a distributed run, as its result records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// This shard, `0..count`.
    pub index: u32,
    /// Shards in the run.
    pub count: u32,
    /// The agreed start (`--start-at`), UTC, RFC 3339 to the millisecond.
    pub start_at: Option<String>,
    /// When this shard's clock reached the agreed start, minus the agreed
    /// start, ms: how late it began (negative: early).
    pub start_offset_ms: Option<f64>,
    /// A digest of what every shard of one run shares: the target, the
    /// requests, the load, the timeout, the seed, N and the start.
    pub digest: String,
    /// Requests this shard's part of the schedule holds (open model).
    pub scheduled: Option<u64>,
    /// Worker threads of this shard.
    pub workers: usize,
    /// How late requests went out after their due time, ms: this
    /// generator behind, or every connection busy.
    pub send_lag_ms: Latency,
    /// The histograms behind the figures, for an exact merge.
    pub histograms: ShardHistograms,
    /// Each second's corrected histogram (µs), uncompressed HdrHistogram V2
    /// in base64, in the order of `series`.
    pub seconds: Vec<String>,
}

/// The histograms of a shard's figures, HdrHistogram V2 in base64 (µs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardHistograms {
    /// `latency_uncorrected_ms`.
    pub uncorrected: String,
    /// `send_lag_ms`.
    pub send_lag: String,
    /// Each request kind's corrected latency, in `by_request` order.
    pub by_request: Vec<String>,
    /// `phases.connect_ms`.
    pub connect: String,
    /// `phases.tls_handshake_ms`.
    pub tls: String,
    /// `phases.ttfb_ms`.
    pub ttfb: String,
}

/// One shard of a merged result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardRow {
    /// The shard.
    pub index: u32,
    /// Requests its part of the schedule held (open model).
    pub scheduled: Option<u64>,
    /// Requests it sent.
    pub requests: u64,
    /// Scheduled requests it never sent.
    pub dropped: u64,
    /// Requests it completed per second.
    pub rps: f64,
    /// 99th percentile of its send lag, ms.
    pub send_lag_p99_ms: f64,
    /// How late it began, ms.
    pub start_offset_ms: Option<f64>,
    /// Why it ended early, if it did.
    pub stopped: Option<String>,
}

impl RunResult {
    /// True when every threshold held.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.ok)
    }
}

/// One merged second of the run, as rows for the time series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Errors by class, in [`ERROR_CLASSES`] order (results written
    /// before the `check` class have six; it reads as 0).
    #[serde(deserialize_with = "classes")]
    pub errors_by_class: [u64; 7],
}

/// Header of the per-second CSV: the DESIGN.md columns first, then extensions.
pub fn csv_header() -> String {
    format!(
        "t_s,requests,ok,errors,rps,p50_ms,p95_ms,p99_ms,dropped,target_rps,{}",
        ERROR_CLASSES.join(",")
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

/// `errors_by_class`: the classes of [`ERROR_CLASSES`], of which a result
/// may hold a prefix (the later ones were added since); missing ones are 0.
fn classes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u64; 7], D::Error> {
    let v = Vec::<u64>::deserialize(d)?;
    if v.len() > ERROR_CLASSES.len() || v.len() < 6 {
        return Err(serde::de::Error::custom(format!(
            "{} error classes, expected {} ({})",
            v.len(),
            ERROR_CLASSES.len(),
            ERROR_CLASSES.join(", ")
        )));
    }
    let mut out = [0; 7];
    out[..v.len()].copy_from_slice(&v);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A per-second row written before the `check` class reads with it as
    /// 0; a row with more classes than there are is refused.
    #[test]
    fn rows_of_six_classes_still_read() {
        let row = |classes: &str| {
            serde_json::from_str::<SecondRow>(&format!(
                r#"{{"t_s":0,"requests":1,"ok":0,"errors":1,"rps":1,"p50_ms":1,"p95_ms":1,"p99_ms":1,"dropped":0,"target_rps":null,"errors_by_class":{classes}}}"#
            ))
        };
        assert_eq!(
            row("[0,0,0,0,1,0]").unwrap().errors_by_class,
            [0, 0, 0, 0, 1, 0, 0]
        );
        assert_eq!(row("[0,0,0,0,0,0,1]").unwrap().errors_by_class[6], 1);
        let e = row("[0,0,0,0,0,0,0,1]").unwrap_err().to_string();
        assert!(e.contains("8 error classes, expected 7"), "{e}");
        assert!(row("[0,0]").is_err());
    }
}
