//! The open model's arrival schedule: when request *i* is due.
//!
//! The schedule is a piecewise-linear rate r(t) (k6's ramping arrival rate;
//! a constant rate is one flat stage). Its integral N(t) counts the requests
//! due by t, and request *i* is due at N⁻¹(i). Latency is measured from this
//! time, not from when a connection became free: that is the
//! coordinated-omission correction. Pure arithmetic, no clock.

use std::time::Duration;

use crate::spec::Stage;

#[derive(Debug, Clone, Copy)]
struct Segment {
    start_s: f64,
    len_s: f64,
    r0: f64,
    r1: f64,
    /// Requests due before this segment starts.
    n0: f64,
}

/// Due times of an open-model run.
#[derive(Debug, Clone)]
pub struct Schedule {
    segments: Vec<Segment>,
    total: u64,
}

impl Schedule {
    /// A constant `rate_rps` for `duration`.
    pub fn constant(rate_rps: f64, duration: Duration) -> Self {
        Self::ramp(
            rate_rps,
            &[Stage {
                duration,
                target_rps: rate_rps,
            }],
        )
    }

    /// Ramps from `start_rps` through each stage's target in turn.
    pub fn ramp(start_rps: f64, stages: &[Stage]) -> Self {
        let mut segments = Vec::with_capacity(stages.len());
        let (mut t, mut n, mut r) = (0.0, 0.0, start_rps);
        for st in stages {
            let len_s = st.duration.as_secs_f64();
            if len_s > 0.0 {
                segments.push(Segment {
                    start_s: t,
                    len_s,
                    r0: r,
                    r1: st.target_rps,
                    n0: n,
                });
                n += (r + st.target_rps) / 2.0 * len_s;
                t += len_s;
            }
            r = st.target_rps;
        }
        // Request i exists when N(end) > i; a float total like 9999.999999 is 10000.
        let total = (n - 1e-6).ceil().max(0.0) as u64;
        Schedule { segments, total }
    }

    /// How many requests the schedule holds.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Length of the whole schedule.
    pub fn duration(&self) -> Duration {
        self.segments
            .last()
            .map(|s| Duration::from_secs_f64(s.start_s + s.len_s))
            .unwrap_or_default()
    }

    /// The highest rate anywhere in the schedule (NaN if a rate is).
    pub fn peak_rps(&self) -> f64 {
        self.segments
            .iter()
            .flat_map(|s| [s.r0, s.r1])
            .fold(
                0.0,
                |m: f64, r| if r.is_nan() { f64::NAN } else { m.max(r) },
            )
    }

    /// Mean rate over the whole schedule.
    pub fn mean_rps(&self) -> f64 {
        let d = self.duration().as_secs_f64();
        if d > 0.0 { self.total as f64 / d } else { 0.0 }
    }

    /// A cursor for increasing indices (each worker asks in order).
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            schedule: self,
            seg: 0,
        }
    }

    /// Due time of request `i` from the start, in nanoseconds; `None` past the end.
    pub fn due_ns(&self, i: u64) -> Option<u64> {
        self.cursor().due_ns(i)
    }

    /// Requests due by `t_s` seconds from the start: the integral N(t).
    pub fn due_by(&self, t_s: f64) -> f64 {
        let mut n = 0.0;
        for s in &self.segments {
            let tau = (t_s - s.start_s).clamp(0.0, s.len_s);
            if tau <= 0.0 {
                break;
            }
            n = s.n0 + s.r0 * tau + (s.r1 - s.r0) / (2.0 * s.len_s) * tau * tau;
        }
        n.min(self.total as f64)
    }
}

/// Walks the segments forward for increasing request indices, so each
/// lookup is O(1) amortised on the hot path.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    schedule: &'a Schedule,
    seg: usize,
}

impl Cursor<'_> {
    /// Due time of request `i`; indices must not decrease between calls.
    pub fn due_ns(&mut self, i: u64) -> Option<u64> {
        self.schedule.due_ns_from(i, &mut self.seg)
    }
}

impl Schedule {
    /// Due time of request `i`, starting the segment search at `*seg` and
    /// leaving it at `i`'s segment (for callers that keep their own cursor).
    pub fn due_ns_from(&self, i: u64, seg: &mut usize) -> Option<u64> {
        if i >= self.total {
            return None;
        }
        let x = i as f64;
        let segs = &self.segments;
        while *seg + 1 < segs.len() && segs[*seg + 1].n0 <= x {
            *seg += 1;
        }
        let s = segs.get(*seg)?;
        let k = x - s.n0;
        // Solve r0·τ + (r1−r0)/(2L)·τ² = k for τ ≥ 0, in the form that stays
        // exact when the slope is tiny (no cancellation).
        let a = (s.r1 - s.r0) / (2.0 * s.len_s);
        let disc = (s.r0 * s.r0 + 4.0 * a * k).max(0.0);
        let denom = s.r0 + disc.sqrt();
        let tau = if denom > 0.0 { 2.0 * k / denom } else { 0.0 };
        Some(((s.start_s + tau.min(s.len_s)) * 1e9).round() as u64)
    }
}

/// Which request indices one sender owns: `offset`, `offset + stride`,
/// `offset + 2·stride`, ... Shard *j* of *N* with *W* workers gives worker
/// *w* the stripe `(j + N·w, N·W)`: the stripes of every worker of every
/// shard partition the indices, so their union is the whole schedule with
/// the same due times whether one process sends it or many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stripe {
    /// The first index.
    pub offset: u64,
    /// The step between indices (≥ 1).
    pub stride: u64,
}

impl Stripe {
    /// The `k`-th index of the stripe.
    pub fn index(self, k: u64) -> u64 {
        self.offset + k * self.stride
    }

    /// The ordinal of the stripe's first index at or after `i`.
    pub fn first_at_or_after(self, i: u64) -> u64 {
        i.saturating_sub(self.offset).div_ceil(self.stride)
    }

    /// How many of the indices below `n` the stripe holds.
    pub fn count_below(self, n: u64) -> u64 {
        self.first_at_or_after(n)
    }

    /// Worker `w` of `workers` within this stripe.
    pub fn split(self, w: usize, workers: usize) -> Stripe {
        Stripe {
            offset: self.offset + self.stride * w as u64,
            stride: self.stride * workers.max(1) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let s = Schedule::constant(500.0, Duration::from_secs(20));
        assert_eq!(s.total(), 10_000);
        assert_eq!(s.due_ns(0), Some(0));
        assert_eq!(s.due_ns(1), Some(2_000_000));
        assert_eq!(s.due_ns(9_999), Some(19_998_000_000));
        assert_eq!(s.due_ns(10_000), None);
        assert!((s.mean_rps() - 500.0).abs() < 1e-9);
        assert!((s.due_by(1.0) - 500.0).abs() < 1e-9);
        assert!((s.due_by(30.0) - 10_000.0).abs() < 1e-9);
    }

    #[test]
    fn linear_ramp_follows_the_integral() {
        // 0 -> 100 rps over 10 s: N(t) = 5 t², so 500 requests; request i at sqrt(i/5).
        let st = [Stage {
            duration: Duration::from_secs(10),
            target_rps: 100.0,
        }];
        let s = Schedule::ramp(0.0, &st);
        assert_eq!(s.total(), 500);
        let mut c = s.cursor();
        for i in [0u64, 1, 20, 125, 499] {
            let want = (i as f64 / 5.0).sqrt();
            let got = c.due_ns(i).unwrap() as f64 / 1e9;
            assert!((got - want).abs() < 1e-6, "i={i} got {got} want {want}");
        }
    }

    #[test]
    fn stages_chain_and_jumps_work() {
        // 0s:100 jumps to 100 rps, held 1 s, then ramps 100 -> 300 over 1 s.
        let st = [
            Stage {
                duration: Duration::ZERO,
                target_rps: 100.0,
            },
            Stage {
                duration: Duration::from_secs(1),
                target_rps: 100.0,
            },
            Stage {
                duration: Duration::from_secs(1),
                target_rps: 300.0,
            },
        ];
        let s = Schedule::ramp(0.0, &st);
        assert_eq!(s.total(), 100 + 200);
        assert_eq!(s.due_ns(50), Some(500_000_000));
        assert_eq!(s.due_ns(100), Some(1_000_000_000));
        // N(1+τ) = 100 + 100τ + 100τ²; request 200 at τ = (−1+√5)/2.
        let tau = (5f64.sqrt() - 1.0) / 2.0;
        let got = s.due_ns(200).unwrap() as f64 / 1e9;
        assert!((got - 1.0 - tau).abs() < 1e-6);
        // Due times never decrease.
        let mut c = s.cursor();
        let times: Vec<u64> = (0..s.total()).map(|i| c.due_ns(i).unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    /// The stripes of every worker of every shard hold each index of the
    /// schedule exactly once, with its own due time: for a constant rate
    /// and for ramps, N = 1, 2, 3, 7 shards of 1 to 3 workers each. So do
    /// the stale slots a late sender drops at once.
    #[test]
    fn shards_and_workers_partition_the_schedule() {
        let ramps = [
            Schedule::constant(997.0, Duration::from_secs(3)),
            Schedule::ramp(
                0.0,
                &[
                    Stage {
                        duration: Duration::from_secs(2),
                        target_rps: 700.0,
                    },
                    Stage {
                        duration: Duration::ZERO,
                        target_rps: 150.0,
                    },
                    Stage {
                        duration: Duration::from_millis(1500),
                        target_rps: 1300.0,
                    },
                ],
            ),
        ];
        for s in &ramps {
            let full: Vec<(u64, u64)> = (0..s.total()).map(|i| (i, s.due_ns(i).unwrap())).collect();
            for n in [1u64, 2, 3, 7] {
                for workers in 1..=3usize {
                    let mut got = Vec::new();
                    let mut stale = 0;
                    let cut = s.total() / 3;
                    for j in 0..n {
                        let shard = Stripe {
                            offset: j,
                            stride: n,
                        };
                        let mut owned = 0;
                        for w in 0..workers {
                            let st = shard.split(w, workers);
                            let mut seg = 0;
                            let mut k = 0;
                            while let Some(due) = s.due_ns_from(st.index(k), &mut seg) {
                                got.push((st.index(k), due));
                                k += 1;
                            }
                            owned += k;
                            stale += st.count_below(cut);
                        }
                        assert_eq!(owned, shard.count_below(s.total()), "shard {j}/{n}");
                    }
                    got.sort_unstable();
                    assert_eq!(got, full, "n={n} workers={workers}");
                    assert_eq!(stale, cut, "n={n} workers={workers}");
                }
            }
        }
    }
}
