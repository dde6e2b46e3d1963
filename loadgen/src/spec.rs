//! Parsing of the small languages of a run: thresholds (`p95<200ms`,
//! `error_rate<1%`, `rps>=1000`) and ramp stages (`30s:100,1m:1000`).
//! Durations and service times are the contracts' vocabulary
//! ([`contracts::units`]), re-exported here.
//!
//! Everything here is pure: strings in, checked values out, with errors that
//! say what was expected. Where a value came from (flag or file) is the
//! caller's to add.

use std::fmt;
use std::time::Duration;

use crate::LoadgenError;

pub use contracts::units::{Dist, parse_duration};

/// What a threshold compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A latency percentile in percent (95.0 for p95, 99.9 for p99.9).
    Percentile(f64),
    /// The largest latency.
    Max,
    /// The mean latency.
    Mean,
    /// Failed requests / requests, as a fraction.
    ErrorRate,
    /// Achieved requests per second.
    Rps,
}

/// Comparison operator of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Cmp {
    /// Whether `value <op> limit` holds.
    pub fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Cmp::Lt => value < limit,
            Cmp::Le => value <= limit,
            Cmp::Gt => value > limit,
            Cmp::Ge => value >= limit,
        }
    }
}

/// A pass/fail criterion in k6's spirit, e.g. `p95<200ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The text as the user wrote it, echoed in results.
    pub expr: String,
    /// What is compared.
    pub metric: Metric,
    /// How it is compared.
    pub cmp: Cmp,
    /// The limit: milliseconds for latency, a fraction for error rate, requests/s for rps.
    pub limit: f64,
    /// Only the requests of this name (`p95{name=cart}<300ms`, k6's tag
    /// filter); all of them when None.
    pub request: Option<String>,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

/// Parses `p95<200ms`, `p99.9<=1.5s`, `max<2s`, `mean<50ms`, `error_rate<1%`, `rps>=1000`.
pub fn parse_threshold(text: &str) -> Result<Threshold, LoadgenError> {
    let bad = || LoadgenError::BadThreshold(text.to_string());
    // `{name=cart}` (or k6's `{name:cart}`) after the metric: the name may
    // hold spaces (`GET /cart`), so it is cut out before they are dropped.
    let (text_wo_filter, request) = match (text.find('{'), text.find('}')) {
        (Some(a), Some(b)) if a < b => {
            let inner = text[a + 1..b].trim();
            let name = inner
                .strip_prefix("name")
                .map(str::trim_start)
                .and_then(|r| r.strip_prefix(['=', ':']))
                .map(|n| n.trim().trim_matches(['"', '\'']))
                .filter(|n| !n.is_empty())
                .ok_or_else(bad)?;
            (
                format!("{}{}", &text[..a], &text[b + 1..]),
                Some(name.to_string()),
            )
        }
        (None, None) => (text.to_string(), None),
        _ => return Err(bad()),
    };
    let s: String = text_wo_filter
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let op_at = s.find(['<', '>']).ok_or_else(bad)?;
    let (name, rest) = s.split_at(op_at);
    let (cmp, value) = if let Some(v) = rest.strip_prefix("<=") {
        (Cmp::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Cmp::Ge, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Cmp::Lt, v)
    } else {
        (Cmp::Gt, &rest[1..])
    };
    let metric = match name {
        "max" => Metric::Max,
        "mean" | "avg" => Metric::Mean,
        "error_rate" => Metric::ErrorRate,
        "rps" => Metric::Rps,
        p if p.starts_with('p') => {
            let q: f64 = p[1..].parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&q) {
                return Err(bad());
            }
            Metric::Percentile(q)
        }
        _ => return Err(bad()),
    };
    let limit = match metric {
        Metric::ErrorRate => match value.strip_suffix('%') {
            Some(pct) => pct.parse::<f64>().map_err(|_| bad())? / 100.0,
            None => value.parse::<f64>().map_err(|_| bad())?,
        },
        Metric::Rps => value.parse::<f64>().map_err(|_| bad())?,
        _ => parse_duration(value).map_err(|_| bad())?.as_secs_f64() * 1e3,
    };
    if !limit.is_finite() || limit < 0.0 {
        return Err(bad());
    }
    Ok(Threshold {
        expr: text.trim().to_string(),
        metric,
        cmp,
        limit,
        request,
    })
}

/// One ramp stage: over `duration`, the arrival rate moves linearly from the
/// previous stage's target (0 before the first) to `target_rps`, as in k6's
/// ramping-arrival-rate executor. A `0s` stage jumps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// How long the ramp lasts.
    pub duration: Duration,
    /// Requests per second reached at the end of the stage.
    pub target_rps: f64,
}

/// Parses `30s:100,1m:1000`.
pub fn parse_stages(text: &str) -> Result<Vec<Stage>, LoadgenError> {
    let bad = || LoadgenError::BadStages(text.to_string());
    let mut stages = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (d, r) = part.split_once(':').ok_or_else(bad)?;
        let duration = parse_duration(d).map_err(|_| bad())?;
        let target_rps: f64 = r.trim().parse().map_err(|_| bad())?;
        if !target_rps.is_finite() || target_rps < 0.0 {
            return Err(bad());
        }
        stages.push(Stage {
            duration,
            target_rps,
        });
    }
    if stages.is_empty() || stages.iter().all(|s| s.duration.is_zero()) {
        return Err(bad());
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let t = parse_threshold("p95<200ms").unwrap();
        assert_eq!(t.metric, Metric::Percentile(95.0));
        assert_eq!(t.cmp, Cmp::Lt);
        assert!((t.limit - 200.0).abs() < 1e-9);
        let t = parse_threshold("p99.9 <= 1.5s").unwrap();
        assert_eq!(t.metric, Metric::Percentile(99.9));
        assert_eq!(t.cmp, Cmp::Le);
        assert!((t.limit - 1500.0).abs() < 1e-9);
        let t = parse_threshold("error_rate<1%").unwrap();
        assert!((t.limit - 0.01).abs() < 1e-12);
        let t = parse_threshold("rps>=1000").unwrap();
        assert_eq!((t.metric, t.cmp, t.limit), (Metric::Rps, Cmp::Ge, 1000.0));
        let t = parse_threshold("p95{name=GET /cart}<300ms").unwrap();
        assert_eq!(t.request.as_deref(), Some("GET /cart"));
        assert_eq!((t.metric, t.limit), (Metric::Percentile(95.0), 300.0));
        let t = parse_threshold("error_rate{name:cart} < 1%").unwrap();
        assert_eq!(t.request.as_deref(), Some("cart"));
        assert_eq!(parse_threshold("p95<1s").unwrap().request, None);
        for bad in [
            "p95{name=}<1s",
            "p95{cart}<1s",
            "p95{name=cart<1s",
            "p95",
            "p95<",
            "p101<1s",
            "latency<1s",
            "p95<fast",
            "rps>=lots",
        ] {
            assert!(parse_threshold(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn stages() {
        let s = parse_stages("30s:100, 1m:1000").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].duration, Duration::from_secs(60));
        assert_eq!(s[1].target_rps, 1000.0);
        assert!(parse_stages("30s").is_err());
        assert!(parse_stages("0s:10").is_err());
        assert!(parse_stages("1s:-5").is_err());
    }
}
