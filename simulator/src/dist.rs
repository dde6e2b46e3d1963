//! Sampling durations in integer nanoseconds from a [`Dist`], prepared
//! once so that each draw is a few arithmetic operations.

use rand::Rng;

use crate::model::Dist;

pub use contracts::units::lognormal_params;

/// A distribution ready to draw from.
#[derive(Debug, Clone)]
pub enum Sampler {
    /// Mean in ns.
    Exponential(f64),
    /// ns.
    Constant(u64),
    /// `(mu, sigma)` in ln-ns.
    Lognormal(f64, f64),
    /// Values in ns with cumulative counts.
    Empirical(Vec<u64>, Vec<u64>),
}

impl Sampler {
    /// Prepares a checked distribution.
    pub fn new(d: &Dist) -> Sampler {
        match d {
            Dist::Exponential { mean_ms } => Sampler::Exponential(mean_ms * 1e6),
            Dist::Constant { ms } => Sampler::Constant((ms * 1e6).round() as u64),
            Dist::Lognormal { mean_ms, p95_ms } => {
                let (mu, sigma) =
                    lognormal_params(*mean_ms, *p95_ms).unwrap_or((mean_ms.ln(), 0.0));
                Sampler::Lognormal(mu + 1e6f64.ln(), sigma)
            }
            Dist::Empirical { points } => {
                let mut pts: Vec<(f64, u64)> = points.iter().copied().filter(|p| p.1 > 0).collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut acc = 0;
                let cum = pts.iter().map(|p| {
                    acc += p.1;
                    acc
                });
                let cum: Vec<u64> = cum.collect();
                Sampler::Empirical(
                    pts.iter().map(|p| (p.0 * 1e6).round() as u64).collect(),
                    cum,
                )
            }
        }
    }

    /// Mean in ns.
    pub fn mean_ns(&self) -> f64 {
        match self {
            Sampler::Exponential(m) => *m,
            Sampler::Constant(c) => *c as f64,
            Sampler::Lognormal(mu, s) => (mu + s * s / 2.0).exp(),
            Sampler::Empirical(v, cum) => {
                let total = *cum.last().unwrap_or(&1) as f64;
                let mut prev = 0;
                let mut sum = 0.0;
                for (x, c) in v.iter().zip(cum) {
                    sum += *x as f64 * (c - prev) as f64;
                    prev = *c;
                }
                sum / total
            }
        }
    }

    /// One draw, ns.
    #[inline]
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        match self {
            Sampler::Exponential(m) => exp_ns(*m, rng),
            Sampler::Constant(c) => *c,
            Sampler::Lognormal(mu, sigma) => {
                let z: f64 = rng.sample(rand_distr::StandardNormal);
                (mu + sigma * z).exp() as u64
            }
            Sampler::Empirical(values, cum) => {
                let x = rng.random_range(0..*cum.last().unwrap_or(&1));
                values[cum.partition_point(|&c| c <= x).min(values.len() - 1)]
            }
        }
    }
}

/// An exponential draw with mean `mean_ns`, in ns (ziggurat: no logarithm
/// on the common path).
#[inline]
pub fn exp_ns(mean_ns: f64, rng: &mut impl Rng) -> u64 {
    let e: f64 = rng.sample(rand_distr::Exp1);
    (mean_ns * e) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn mean_of(s: &Sampler, n: usize) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        (0..n).map(|_| s.sample(&mut rng) as f64).sum::<f64>() / n as f64
    }

    #[test]
    fn samples_have_the_stated_means() {
        for d in [
            Dist::Exponential { mean_ms: 20.0 },
            Dist::Constant { ms: 5.0 },
            Dist::Lognormal {
                mean_ms: 40.0,
                p95_ms: 100.0,
            },
            Dist::Empirical {
                points: vec![(10.0, 3), (20.0, 1)],
            },
        ] {
            let s = Sampler::new(&d);
            let m = mean_of(&s, 200_000);
            assert!(
                (m / s.mean_ns() - 1.0).abs() < 0.01,
                "{d:?}: {m} vs {}",
                s.mean_ns()
            );
        }
        assert!(
            (Sampler::new(&Dist::Empirical {
                points: vec![(10.0, 3), (20.0, 1)]
            })
            .mean_ns()
                - 12.5e6)
                .abs()
                < 1.0
        );
    }

    #[test]
    fn lognormal_p95_is_where_it_was_put() {
        let s = Sampler::new(&Dist::Lognormal {
            mean_ms: 40.0,
            p95_ms: 100.0,
        });
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut v: Vec<u64> = (0..100_000).map(|_| s.sample(&mut rng)).collect();
        v.sort_unstable();
        let p95 = v[95_000] as f64 / 1e6;
        assert!((p95 - 100.0).abs() < 2.0, "p95 {p95}");
    }
}
