//! Parsing of the small languages users type: durations (`1.5s`, `1m30s`),
//! thresholds (`p95<200ms`, `error_rate<1%`, `rps>=1000`), ramp stages
//! (`30s:100,1m:1000`) and service-time distributions (`exp:20ms`).
//!
//! Everything here is pure: strings in, checked values out, with errors that
//! say what was expected. Where a value came from (flag or file) is the
//! caller's to add.

use std::fmt;
use std::time::Duration;

use crate::LoadgenError;

/// Parses `250ms`, `1.5s`, `2m`, `1h30m`, `7d`, `800us`; a bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, LoadgenError> {
    let bad = || LoadgenError::BadDuration(text.to_string());
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_s = 0.0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        total_s += value * scale;
        rest = &rest[unit_len..];
    }
    if !total_s.is_finite() || total_s > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total_s))
}

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
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

/// Parses `p95<200ms`, `p99.9<=1.5s`, `max<2s`, `mean<50ms`, `error_rate<1%`, `rps>=1000`.
pub fn parse_threshold(text: &str) -> Result<Threshold, LoadgenError> {
    let bad = || LoadgenError::BadThreshold(text.to_string());
    let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
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

/// Service-time distribution of the built-in target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceTime {
    /// Exponential with this mean.
    Exponential {
        /// Mean in milliseconds.
        mean_ms: f64,
    },
    /// Always this long.
    Constant {
        /// Milliseconds.
        ms: f64,
    },
    /// Lognormal fitted to a mean and a 95th percentile.
    Lognormal {
        /// Mean in milliseconds.
        mean_ms: f64,
        /// 95th percentile in milliseconds.
        p95_ms: f64,
    },
}

/// z-score of the 95th percentile of a standard normal.
const Z95: f64 = 1.644_853_626_951_472_2;

impl ServiceTime {
    /// Parses `exp:20ms`, `const:5ms`, `lognormal:20ms,60ms`.
    pub fn parse(text: &str) -> Result<Self, LoadgenError> {
        let bad = || LoadgenError::BadServiceTime(text.to_string());
        let (kind, args) = text.trim().split_once(':').ok_or_else(bad)?;
        let ms = |s: &str| -> Result<f64, LoadgenError> {
            Ok(parse_duration(s).map_err(|_| bad())?.as_secs_f64() * 1e3)
        };
        let dist = match kind {
            "exp" | "exponential" => ServiceTime::Exponential { mean_ms: ms(args)? },
            "const" | "constant" => ServiceTime::Constant { ms: ms(args)? },
            "lognormal" => {
                let (m, p) = args.split_once(',').ok_or_else(bad)?;
                ServiceTime::Lognormal {
                    mean_ms: ms(m)?,
                    p95_ms: ms(p)?,
                }
            }
            _ => return Err(bad()),
        };
        dist.lognormal_params().map(|_| dist).ok_or_else(bad)
    }

    /// `(mu, sigma)` of the underlying normal (in ln-milliseconds) for the
    /// lognormal case; `Some((0,0))` for the others when they are valid.
    /// From mean = e^(mu+σ²/2) and p95 = e^(mu+z·σ): σ²/2 − zσ + ln(p95/mean) = 0,
    /// whose smaller root is the one with p95 above the mean.
    pub fn lognormal_params(&self) -> Option<(f64, f64)> {
        match *self {
            ServiceTime::Exponential { mean_ms } | ServiceTime::Constant { ms: mean_ms } => {
                (mean_ms.is_finite() && mean_ms >= 0.0).then_some((0.0, 0.0))
            }
            ServiceTime::Lognormal { mean_ms, p95_ms } => {
                if !(mean_ms > 0.0 && p95_ms > mean_ms && p95_ms.is_finite()) {
                    return None;
                }
                let disc = Z95 * Z95 - 2.0 * (p95_ms / mean_ms).ln();
                if disc < 0.0 {
                    return None;
                }
                let sigma = Z95 - disc.sqrt();
                Some((mean_ms.ln() - sigma * sigma / 2.0, sigma))
            }
        }
    }

    /// Mean service time in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        match *self {
            ServiceTime::Exponential { mean_ms } | ServiceTime::Lognormal { mean_ms, .. } => {
                mean_ms
            }
            ServiceTime::Constant { ms } => ms,
        }
    }

    /// Draws one service time in milliseconds from two uniforms in [0, 1).
    pub fn sample_ms(&self, u1: f64, u2: f64) -> f64 {
        match *self {
            ServiceTime::Exponential { mean_ms } => -mean_ms * (1.0 - u1).ln(),
            ServiceTime::Constant { ms } => ms,
            ServiceTime::Lognormal { .. } => {
                let (mu, sigma) = self.lognormal_params().unwrap_or((0.0, 0.0));
                // Box-Muller: one standard normal from two uniforms.
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (mu + sigma * z).exp()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("720d").unwrap(),
            Duration::from_secs(720 * 86400)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "10", "ms", "5 parsecs", "1..2s", "-1s", "1e400s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

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
        for bad in [
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

    #[test]
    fn lognormal_matches_mean_and_p95() {
        let d = ServiceTime::parse("lognormal:20ms,60ms").unwrap();
        let (mu, sigma) = d.lognormal_params().unwrap();
        assert!(((mu + sigma * sigma / 2.0).exp() - 20.0).abs() < 1e-9);
        assert!(((mu + Z95 * sigma).exp() - 60.0).abs() < 1e-9);
        // A p95 more than e^(z²/2) ≈ 3.87× the mean has no lognormal.
        assert!(ServiceTime::parse("lognormal:10ms,50ms").is_err());
        assert!(ServiceTime::parse("gamma:10ms").is_err());
        assert_eq!(
            ServiceTime::parse("exp:20ms").unwrap(),
            ServiceTime::Exponential { mean_ms: 20.0 }
        );
    }
}
