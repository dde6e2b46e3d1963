//! Reading the report's inputs: the other stages' documents, parsed once
//! through their `kind` into the [`contracts`] types the producers build,
//! or a run's per-second CSV. Values too large to chart are refused here,
//! with their path.
use std::path::Path;

pub use contracts::Doc;
pub(crate) use contracts::forecast::{Estimate, Forecast, WindowSummary};
pub(crate) use contracts::plan::Plan;
pub(crate) use contracts::run::{ERROR_CLASSES, RunResult, SecondRow, ThresholdResult};
pub(crate) use contracts::verify::{Case, Role, Verify};

use crate::Error;

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
        // The value has the kind: the text is parsed once more, typed, for
        // errors with their line, column and field.
        let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        return contracts::read_as(kind, &text).map_err(|e| match e {
            contracts::ReadError::Json {
                line,
                column,
                path,
                why,
            } => Error::Input(format!("{name}:{line}:{column}: `{path}`: {}", cut(&why))),
            kind => Error::Input(format!("{name}: {kind}")),
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
    contracts::cut(s, 200)
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
fn run_csv(name: &str, text: &str) -> Result<RunResult, Error> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n);
    let mut r = RunResult {
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
        // Counts: whole numbers (the generator writes them so).
        let count = |n: &str| -> Result<u64, Error> {
            let x = num(n)?;
            if x >= 0.0 && x.fract() == 0.0 {
                Ok(x as u64)
            } else {
                Err(Error::Input(format!(
                    "{name}:{}: `{n}` = {x} is not a count (a whole number of requests)",
                    i + 2
                )))
            }
        };
        let mut s = SecondRow {
            t_s: count("t_s")?,
            requests: count("requests")?,
            ok: count("ok")?,
            errors: count("errors")?,
            rps: num("rps")?,
            p50_ms: num("p50_ms")?,
            p95_ms: num("p95_ms")?,
            p99_ms: num("p99_ms")?,
            dropped: count("dropped")?,
            target_rps: col("target_rps")
                .and_then(|c| f.get(c))
                .and_then(|s| s.parse().ok()),
            errors_by_class: [0; 7],
        };
        for (k, c) in ERROR_CLASSES.iter().enumerate() {
            s.errors_by_class[k] = count(c)?;
        }
        r.series.push(s);
    }
    let total =
        |f: fn(&SecondRow) -> u64| r.series.iter().fold(0u64, |a, s| a.saturating_add(f(s)));
    r.requests = total(|s| s.requests);
    r.ok = total(|s| s.ok);
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
