//! The parts of the other stages' outputs a report reads. The stage crates
//! never depend on each other, so these mirror the JSON and CSV contracts
//! (DESIGN.md) rather than import them; every field has a default, so a
//! newer producer with more fields still reads.
#![allow(missing_docs)] // field for field the producers' documented JSON (DESIGN.md)
use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::Error;

/// Latency percentiles, ms.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// One second of a run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Second {
    pub t_s: f64,
    pub requests: f64,
    pub ok: f64,
    pub errors: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub dropped: f64,
    pub target_rps: Option<f64>,
    /// connect, timeout, reset, http_4xx, http_5xx, protocol.
    pub errors_by_class: [f64; 6],
}

/// The error classes of `errors_by_class`, in order.
pub const ERROR_CLASSES: [&str; 6] = [
    "connect", "timeout", "reset", "http_4xx", "http_5xx", "protocol",
];

/// A threshold and its verdict.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Threshold {
    pub expr: String,
    pub ok: bool,
    pub value: f64,
}

/// A point of the percentile distribution.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PercentilePoint {
    pub percentile: f64,
    pub ms: f64,
}

/// `loadtest run --json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RunDoc {
    pub name: String,
    pub url: String,
    pub mode: String,
    pub requests: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub error_rate: f64,
    pub dropped: u64,
    pub duration_s: f64,
    pub rps: f64,
    pub target_rps: Option<f64>,
    pub latency_ms: Latency,
    pub latency_uncorrected_ms: Latency,
    pub latency_distribution: Vec<PercentilePoint>,
    pub thresholds: Vec<Threshold>,
    pub stopped: Option<String>,
    pub series: Vec<Second>,
}

/// A mean with its 95% interval half-width.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Estimate {
    pub mean: f64,
    pub ci95: f64,
}

/// One simulated window.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Window {
    pub label: String,
    pub day: f64,
    pub users: f64,
    pub offered_rps: f64,
    pub p95_ms: Estimate,
    pub p99_ms: Estimate,
    pub replicas: Estimate,
    pub replicas_max: u32,
    pub utilization: Estimate,
    pub error_rate: Estimate,
    pub violation_minutes: Estimate,
    pub cost_per_hour: Estimate,
    pub fluid_replicas: f64,
}

/// A threshold crossing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Crossing {
    pub threshold: String,
    pub day: f64,
    pub users: f64,
    pub note: String,
}

/// Steady state per hour.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Hourly {
    pub note: String,
    pub replicas: Vec<u32>,
    pub rps: Vec<f64>,
    pub users: Vec<f64>,
}

/// The SLO part.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Slo {
    pub p95_target_ms: f64,
    pub violation_minutes: Estimate,
    pub minutes: u64,
}

/// `loadtest simulate --json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ForecastDoc {
    pub name: String,
    pub simulated: String,
    pub seed: u64,
    pub replications: u32,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub utilization: f64,
    pub cost: f64,
    pub horizon_cost_estimate: Option<f64>,
    pub hourly: Option<Hourly>,
    pub slo: Slo,
    pub windows: Vec<Window>,
    pub crossings: Vec<Crossing>,
}

/// A plan line.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PlanLine {
    pub instance_type: String,
    pub pricing: String,
    pub count: Option<u32>,
    pub hourly_counts: Option<Vec<u32>>,
    pub hourly_price: f64,
    pub instance_hours: f64,
    pub cost: f64,
}

/// A binding constraint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Binding {
    pub constraint: String,
    pub hours: usize,
    pub shadow_price: f64,
    pub unit: String,
    pub note: String,
}

/// Reservation break-even.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BreakEven {
    pub instance_type: String,
    pub pricing: String,
    pub break_even_utilization: f64,
    pub count: u32,
    pub utilization: f64,
}

/// Per-hour plan figures.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PlanHourly {
    pub demand_vcpu: Vec<f64>,
    pub capacity_vcpu: Vec<f64>,
    pub cost: Vec<f64>,
    pub baseline_cost: Vec<f64>,
    pub commitment_coverage: Vec<f64>,
    pub commitment_utilization: Vec<f64>,
    pub spot_share: Vec<f64>,
}

/// Solver notes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Solver {
    pub hours: usize,
    pub levels: usize,
    pub notes: Vec<String>,
}

/// `loadtest optimize --json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PlanDoc {
    pub catalog_notes: Vec<String>,
    pub total_cost: f64,
    pub lower_bound: f64,
    pub gap: f64,
    pub baseline_cost: f64,
    pub savings: f64,
    pub savings_share: f64,
    pub monthly_cost: f64,
    pub monthly_baseline: f64,
    pub cost_by_pricing: BTreeMap<String, f64>,
    pub cost_by_type: BTreeMap<String, f64>,
    pub savings_by_source: BTreeMap<String, f64>,
    pub instances: Vec<PlanLine>,
    pub break_even: Vec<BreakEven>,
    pub binding: Vec<Binding>,
    pub hourly: PlanHourly,
    pub solver: Solver,
}

/// A forecast-vs-measurement check (`loadtest plan --verify`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VerifyCase {
    pub case: String,
    /// `fitted` (chose the model: shown, not judged), `held_out` or
    /// `saturation`; empty in files from before roles, all held out.
    pub role: String,
    pub predicted_p95_ms: f64,
    pub measured_p95_ms: f64,
    pub p95_error: f64,
    pub predicted_rps: f64,
    pub measured_rps: f64,
    pub rps_error: f64,
    pub ok: bool,
}

/// `loadtest plan --verify` output.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VerifyDoc {
    pub note: String,
    pub cases: Vec<VerifyCase>,
}

/// Any input.
#[derive(Debug, Clone)]
pub enum Doc {
    /// A load test.
    Run(Box<RunDoc>),
    /// A forecast.
    Forecast(Box<ForecastDoc>),
    /// A purchase plan.
    Plan(Box<PlanDoc>),
    /// A forecast checked against measurements.
    Verify(Box<VerifyDoc>),
}

/// Reads one input: a JSON document of any stage (told apart by its
/// `kind`), or a run's per-second CSV.
pub fn load(path: &Path) -> Result<Doc, Error> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Input(format!("{name}: cannot read: {e}")))?;
    let bad =
        |e: serde_json::Error| Error::Input(format!("{name}:{}:{}: {e}", e.line(), e.column()));
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
        if let Some((at, x)) = out_of_range(&v, &mut String::new()) {
            return Err(Error::Input(format!(
                "{name}: `{at}` is {x:e}, past any measurement or price (at most {MAX_VALUE:e} \
                 in size): regenerate the file with loadtest"
            )));
        }
        let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        // Read again from the text, so an error has its line, column and
        // the field's path.
        fn typed<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<Box<T>, Error> {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de)
                .map(Box::new)
                .map_err(|e| {
                    let (path, inner) = (e.path().to_string(), e.inner());
                    let (line, column) = (inner.line(), inner.column());
                    let why = inner.to_string();
                    let why = why
                        .strip_suffix(&format!(" at line {line} column {column}"))
                        .unwrap_or(&why);
                    Error::Input(format!("{name}:{line}:{column}: `{path}`: {}", cut(why)))
                })
        }
        return Ok(match kind {
            "run" => Doc::Run(typed(&name, &text)?),
            "forecast" => Doc::Forecast(typed(&name, &text)?),
            "plan" => Doc::Plan(typed(&name, &text)?),
            "verify" => Doc::Verify(typed(&name, &text)?),
            other => {
                return Err(Error::Input(format!(
                    "{name}: `kind` is `{other}`; expected the JSON of `loadtest run`, `simulate`, `optimize` or `plan --verify`"
                )));
            }
        });
    }
    if text.starts_with("t_s,requests,ok,errors,rps") {
        return run_csv(&name, &text).map(|r| Doc::Run(Box::new(r)));
    }
    Err(Error::Input(format!(
        "{name}:1:1: not a loadtest output; give the JSON of run, simulate or optimize, or a run's --csv"
    )))
}

/// At most 200 characters of a message that may quote the input.
fn cut(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The largest magnitude a fractional value in an input may have: 1e15
/// ms is 30,000 years, $1e15 a thousand times the world's GDP. Past it a
/// chart's range padding overflows to infinity.
pub const MAX_VALUE: f64 = 1e15;

/// The path and value of the first fractional number too large to chart.
fn out_of_range(v: &serde_json::Value, path: &mut String) -> Option<(String, f64)> {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::INFINITY);
            (x.is_nan() || x.abs() > MAX_VALUE).then(|| (path.clone(), x))
        }
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = out_of_range(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(fields) => fields.iter().find_map(|(k, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            let found = out_of_range(item, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// A run's per-second CSV as a run with only its series.
fn run_csv(name: &str, text: &str) -> Result<RunDoc, Error> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n);
    let mut r = RunDoc {
        name: name.to_string(),
        ..Default::default()
    };
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let num = |n: &str| -> Result<f64, Error> {
            let Some(c) = col(n) else { return Ok(0.0) };
            let s = f.get(c).copied().unwrap_or("");
            if s.is_empty() {
                return Ok(0.0);
            }
            match s.parse::<f64>() {
                Ok(x) if x.is_finite() && x.abs() <= MAX_VALUE => Ok(x),
                _ => Err(Error::Input(format!(
                    "{name}:{}:{}: `{n}` = `{}` is not a number up to {MAX_VALUE:e}",
                    i + 2,
                    f[..c].iter().map(|x| x.len() + 1).sum::<usize>() + 1,
                    cut(s)
                ))),
            }
        };
        let mut s = Second {
            t_s: num("t_s")?,
            requests: num("requests")?,
            ok: num("ok")?,
            errors: num("errors")?,
            rps: num("rps")?,
            p50_ms: num("p50_ms")?,
            p95_ms: num("p95_ms")?,
            p99_ms: num("p99_ms")?,
            dropped: num("dropped")?,
            target_rps: col("target_rps")
                .and_then(|c| f.get(c))
                .and_then(|s| s.parse().ok()),
            errors_by_class: [0.0; 6],
        };
        for (k, c) in ERROR_CLASSES.iter().enumerate() {
            s.errors_by_class[k] = num(c)?;
        }
        r.series.push(s);
    }
    r.requests = r.series.iter().map(|s| s.requests).sum::<f64>() as u64;
    r.ok = r.series.iter().map(|s| s.ok).sum::<f64>() as u64;
    r.duration_s = r.series.len() as f64;
    r.rps = if r.duration_s > 0.0 {
        r.requests as f64 / r.duration_s
    } else {
        0.0
    };
    r.error_rate = if r.requests > 0 {
        1.0 - r.ok as f64 / r.requests as f64
    } else {
        0.0
    };
    Ok(r)
}
