//! Offered load over time: users on their growth curve × requests per user
//! × the daily and weekly shape × flash crowds, or a constant rate. Pure
//! functions of time in seconds from the start of the horizon.

use crate::model::{Curve, Traffic};

const DAY_S: f64 = 86_400.0;

impl Traffic {
    /// Users at `t_s` (1 for a constant rate, which then is per "user").
    pub fn users_at(&self, t_s: f64) -> f64 {
        let Some(u) = &self.users else { return 1.0 };
        let horizon = u.over.as_secs_f64();
        let x = (t_s / horizon).clamp(0.0, 1.0);
        match u.curve {
            Curve::Linear => u.start + (u.end - u.start) * x,
            Curve::Exponential => u.start * (u.end / u.start).powf(x),
            Curve::Logistic => {
                // A logistic S with its midpoint halfway, rescaled to pass
                // through start at 0 and end at the horizon.
                let k = 10.0;
                let s = |y: f64| 1.0 / (1.0 + (-k * (y - 0.5)).exp());
                let f = (s(x) - s(0.0)) / (s(1.0) - s(0.0));
                u.start + (u.end - u.start) * f
            }
        }
    }

    /// Requests per second at `t_s` before the daily and weekly shape.
    pub fn base_rps(&self, t_s: f64) -> f64 {
        match self.rate {
            Some(r) => r,
            None => self.users_at(t_s) * self.requests_per_user_per_s.unwrap_or(0.0),
        }
    }

    /// The daily × weekly × flash-crowd multiplier at `t_s`; its daily and
    /// weekly factors average 1, peak at `peak_hour` and on day 1 of a week.
    pub fn shape(&self, t_s: f64) -> f64 {
        let wave = |ratio: f64, phase: f64| {
            let a = (ratio - 1.0) / (ratio + 1.0);
            1.0 + a * (std::f64::consts::TAU * phase).cos()
        };
        let hour = (t_s / 3600.0).rem_euclid(24.0);
        let day = (t_s / DAY_S).rem_euclid(7.0);
        let mut m = wave(self.daily_peak_to_trough, (hour - self.peak_hour) / 24.0)
            * wave(self.weekly_peak_to_trough, (day.floor() - 1.0) / 7.0);
        for f in &self.flash_crowds {
            let start = f.at.as_secs_f64();
            if t_s >= start && t_s < start + f.duration.as_secs_f64() {
                m *= f.multiplier;
            }
        }
        m
    }

    /// Offered requests per second at `t_s`.
    pub fn rps_at(&self, t_s: f64) -> f64 {
        self.base_rps(t_s) * self.shape(t_s)
    }

    /// An upper bound of the offered rate anywhere on the horizon: the
    /// most users (every curve stays between start and end) × requests per
    /// user × the daily and weekly peaks × every flash crowd at once.
    pub fn peak_rps_bound(&self) -> f64 {
        let base = match (&self.rate, &self.users) {
            (Some(r), _) => *r,
            (None, Some(u)) => u.start.max(u.end) * self.requests_per_user_per_s.unwrap_or(0.0),
            (None, None) => 0.0,
        };
        let peak = |ratio: f64| 2.0 * ratio / (ratio + 1.0);
        let flash: f64 = self
            .flash_crowds
            .iter()
            .map(|f| f.multiplier.max(1.0))
            .product();
        base * peak(self.daily_peak_to_trough) * peak(self.weekly_peak_to_trough) * flash
    }

    /// Length of the horizon, seconds (0 for a constant rate).
    pub fn horizon_s(&self) -> f64 {
        self.users
            .as_ref()
            .map(|u| u.over.as_secs_f64())
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Users;
    use std::time::Duration;

    fn growth(curve: Curve) -> Traffic {
        Traffic {
            users: Some(Users {
                start: 1000.0,
                end: 200_000.0,
                over: Duration::from_secs(720 * 86_400),
                curve,
            }),
            requests_per_user_per_s: Some(0.05),
            ..Traffic::default()
        }
    }

    #[test]
    fn curves_start_and_end_where_told() {
        for c in [Curve::Linear, Curve::Exponential, Curve::Logistic] {
            let t = growth(c);
            assert!((t.users_at(0.0) - 1000.0).abs() < 1e-6, "{c:?}");
            assert!(
                (t.users_at(t.horizon_s()) - 200_000.0).abs() < 1e-6,
                "{c:?}"
            );
        }
        let e = growth(Curve::Exponential);
        // Halfway, exponential growth is the geometric mean.
        assert!((e.users_at(e.horizon_s() / 2.0) - (1000.0f64 * 200_000.0).sqrt()).abs() < 1e-6);
        assert!((e.base_rps(0.0) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn daily_shape_has_the_peak_to_trough_ratio_and_mean_one() {
        let t = Traffic {
            rate: Some(100.0),
            daily_peak_to_trough: 3.0,
            peak_hour: 14.0,
            ..Traffic::default()
        };
        let peak = t.rps_at(14.0 * 3600.0);
        let trough = t.rps_at(2.0 * 3600.0);
        assert!((peak / trough - 3.0).abs() < 1e-9);
        let mean: f64 =
            (0..24 * 60).map(|m| t.rps_at(m as f64 * 60.0)).sum::<f64>() / (24.0 * 60.0);
        assert!((mean - 100.0).abs() < 1e-6);
    }

    #[test]
    fn flash_crowds_multiply() {
        let mut t = Traffic {
            rate: Some(10.0),
            ..Traffic::default()
        };
        t.flash_crowds.push(crate::model::FlashCrowd {
            at: Duration::from_secs(100),
            duration: Duration::from_secs(50),
            multiplier: 4.0,
        });
        assert_eq!(t.rps_at(99.0), 10.0);
        assert_eq!(t.rps_at(120.0), 40.0);
        assert_eq!(t.rps_at(150.0), 10.0);
    }
}
