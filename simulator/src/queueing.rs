//! Queueing theory the simulator is checked against: M/M/c with Erlang C.

/// Erlang C: probability that an arrival waits, for `c` servers at offered
/// load `a = λ/μ` (requires a < c).
pub fn erlang_c(c: u32, a: f64) -> f64 {
    // Erlang B by its stable recurrence, then C from B.
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (k as f64 + a * b);
    }
    let rho = a / c as f64;
    b / (1.0 - rho + rho * b)
}

/// M/M/c figures for arrival rate `lambda` and service rate `mu` per server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MMc {
    /// Servers.
    pub c: u32,
    /// Arrivals per unit time.
    pub lambda: f64,
    /// Services per unit time per server.
    pub mu: f64,
}

impl MMc {
    /// P(wait > 0).
    pub fn p_wait(&self) -> f64 {
        erlang_c(self.c, self.lambda / self.mu)
    }

    /// Mean response time: wait plus service.
    pub fn mean_response(&self) -> f64 {
        self.p_wait() / (self.c as f64 * self.mu - self.lambda) + 1.0 / self.mu
    }

    /// P(response time > t): no wait and service > t, or an Exp(cμ−λ) wait
    /// plus an Exp(μ) service > t.
    pub fn p_response_over(&self, t: f64) -> f64 {
        let (pw, mu) = (self.p_wait(), self.mu);
        let alpha = self.c as f64 * mu - self.lambda;
        let sum_over = if (alpha - mu).abs() < 1e-12 {
            (1.0 + mu * t) * (-mu * t).exp()
        } else {
            (alpha * (-mu * t).exp() - mu * (-alpha * t).exp()) / (alpha - mu)
        };
        (1.0 - pw) * (-mu * t).exp() + pw * sum_over
    }

    /// Response-time quantile, by bisection on the tail.
    pub fn response_quantile(&self, q: f64) -> f64 {
        let (mut lo, mut hi) = (0.0, 1.0 / self.mu);
        while self.p_response_over(hi) > 1.0 - q {
            hi *= 2.0;
        }
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if self.p_response_over(mid) > 1.0 - q {
                lo = mid
            } else {
                hi = mid
            }
        }
        (lo + hi) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_known_values() {
        // M/M/1: P(wait) = ρ.
        assert!((erlang_c(1, 0.8) - 0.8).abs() < 1e-12);
        // A textbook value: c = 2, a = 1 → 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        // M/M/1 mean response 1/(μ−λ); p95 = ln(20)/(μ−λ).
        let q = MMc {
            c: 1,
            lambda: 0.5,
            mu: 1.0,
        };
        assert!((q.mean_response() - 2.0).abs() < 1e-12);
        assert!((q.response_quantile(0.95) - 20f64.ln() / 0.5).abs() < 1e-9);
    }
}
