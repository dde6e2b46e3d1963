//! The vocabulary every stage writes in the same way: durations (`1.5s`,
//! `1m30s`, `720d`) and the service-time distribution of a replica, which
//! the built-in target serves and the simulator samples. One grammar and
//! one type, so a scenario means the same thing to `serve`, `run` and
//! `simulate`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// A value in one of the small languages below that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitError {
    /// Not a duration.
    Duration(String),
    /// Not a service time.
    Dist(String),
}

impl std::fmt::Display for UnitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnitError::Duration(s) => write!(
                f,
                "bad duration `{s}`: write a number and a unit, e.g. 500ms, 1.5s, 2m, 1h30m"
            ),
            UnitError::Dist(s) => write!(
                f,
                "bad service time `{s}`: write exp:20ms, const:5ms or lognormal:MEAN,P95 with P95 between 1× and 3.87× the mean"
            ),
        }
    }
}

impl std::error::Error for UnitError {}

/// Parses `250ms`, `1.5s`, `2m`, `1h30m` (or `1h 30m`, as humantime
/// writes it), `7d`, `800us`; a bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let bad = || UnitError::Duration(text.to_string());
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
        let scale = match rest[..unit_len].trim_end() {
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
        rest = rest[unit_len..].trim_start();
    }
    if !total_s.is_finite() || total_s > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total_s))
}

/// Reads a duration written as text in a file (serde `deserialize_with`).
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// A byte count for people: `812 B`, `1.2 kB`, `3.4 MB`, `5.6 GB` (SI).
pub fn bytes(n: u64) -> String {
    let x = n as f64;
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", x / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", x / 1e6),
        _ => format!("{:.1} GB", x / 1e9),
    }
}

/// z-score of the 95th percentile of a standard normal.
pub const Z95: f64 = 1.644_853_626_951_472_2;

/// `(mu, sigma)` of the normal under a lognormal with this mean and p95 (in
/// ln of the unit they are given in). From mean = e^(mu+σ²/2) and
/// p95 = e^(mu+zσ): σ²/2 − zσ + ln(p95/mean) = 0, whose smaller root is the
/// one with p95 above the mean. None when no lognormal has them (a p95
/// more than e^(z²/2) ≈ 3.87× the mean).
pub fn lognormal_params(mean: f64, p95: f64) -> Option<(f64, f64)> {
    if !(mean > 0.0 && p95 > mean && p95.is_finite()) {
        return None;
    }
    let disc = Z95 * Z95 - 2.0 * (p95 / mean).ln();
    if disc < 0.0 {
        return None;
    }
    let sigma = Z95 - disc.sqrt();
    Some((mean.ln() - sigma * sigma / 2.0, sigma))
}

/// A distribution of durations, in milliseconds: how long a replica holds
/// a request (its service time, which the built-in target serves and the
/// simulator samples) or takes to start. In a scenario as
/// `service_time = { dist = ... }`, or as `exp:20ms`, `const:5ms`,
/// `lognormal:20ms,60ms` on the command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum Dist {
    /// Exponential.
    Exponential {
        /// Mean, ms.
        mean_ms: f64,
    },
    /// Always the same.
    Constant {
        /// ms.
        ms: f64,
    },
    /// Lognormal fitted to a mean and a 95th percentile.
    Lognormal {
        /// Mean, ms.
        mean_ms: f64,
        /// 95th percentile, ms.
        p95_ms: f64,
    },
    /// Empirical: values with their counts (e.g. from a measured histogram).
    Empirical {
        /// `[value_ms, count]` pairs.
        points: Vec<(f64, u64)>,
    },
}

impl Dist {
    /// Parses `exp:20ms`, `const:5ms`, `lognormal:20ms,60ms`.
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let bad = || UnitError::Dist(text.to_string());
        let (kind, args) = text.trim().split_once(':').ok_or_else(bad)?;
        let ms = |s: &str| -> Result<f64, UnitError> {
            Ok(parse_duration(s).map_err(|_| bad())?.as_secs_f64() * 1e3)
        };
        let dist = match kind {
            "exp" | "exponential" => Dist::Exponential { mean_ms: ms(args)? },
            "const" | "constant" => Dist::Constant { ms: ms(args)? },
            "lognormal" => {
                let (m, p) = args.split_once(',').ok_or_else(bad)?;
                Dist::Lognormal {
                    mean_ms: ms(m)?,
                    p95_ms: ms(p)?,
                }
            }
            _ => return Err(bad()),
        };
        if dist.is_valid() {
            Ok(dist)
        } else {
            Err(bad())
        }
    }

    /// Whether it can be drawn from: finite non-negative times, a lognormal
    /// that exists, an empirical distribution with some weight.
    pub fn is_valid(&self) -> bool {
        match self {
            Dist::Exponential { mean_ms } | Dist::Constant { ms: mean_ms } => {
                mean_ms.is_finite() && *mean_ms >= 0.0
            }
            Dist::Lognormal { mean_ms, p95_ms } => lognormal_params(*mean_ms, *p95_ms).is_some(),
            Dist::Empirical { points } => {
                points.iter().any(|p| p.1 > 0)
                    && points.iter().all(|p| p.0.is_finite() && p.0 >= 0.0)
            }
        }
    }

    /// Mean, ms.
    pub fn mean_ms(&self) -> f64 {
        match self {
            Dist::Exponential { mean_ms } | Dist::Lognormal { mean_ms, .. } => *mean_ms,
            Dist::Constant { ms } => *ms,
            Dist::Empirical { points } => {
                let n: u64 = points.iter().map(|p| p.1).sum();
                let s: f64 = points.iter().map(|p| p.0 * p.1 as f64).sum();
                if n == 0 { 0.0 } else { s / n as f64 }
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
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        for bad in ["", "10", "ms", "5 parsecs", "1..2s", "-1s", "1e400s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn lognormal_matches_mean_and_p95() {
        let d = Dist::parse("lognormal:20ms,60ms").unwrap();
        let Dist::Lognormal { mean_ms, p95_ms } = d else {
            panic!("{d:?}")
        };
        let (mu, sigma) = lognormal_params(mean_ms, p95_ms).unwrap();
        assert!(((mu + sigma * sigma / 2.0).exp() - 20.0).abs() < 1e-9);
        assert!(((mu + Z95 * sigma).exp() - 60.0).abs() < 1e-9);
        // A p95 more than e^(z²/2) ≈ 3.87× the mean has no lognormal.
        assert!(Dist::parse("lognormal:10ms,50ms").is_err());
        assert!(Dist::parse("gamma:10ms").is_err());
        assert_eq!(
            Dist::parse("exp:20ms").unwrap(),
            Dist::Exponential { mean_ms: 20.0 }
        );
    }

    #[test]
    fn byte_counts_read_in_si_units() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(1_234), "1.2 kB");
        assert_eq!(bytes(3_400_000), "3.4 MB");
    }

    /// The file form and the command-line form are one type.
    #[test]
    fn a_scenarios_table_and_a_flag_read_alike() {
        let t: Dist =
            serde_json::from_str(r#"{"dist": "lognormal", "mean_ms": 20.0, "p95_ms": 60.0}"#)
                .unwrap();
        assert_eq!(t, Dist::parse("lognormal:20ms,60ms").unwrap());
        assert_eq!(t.mean_ms(), 20.0);
    }
}
