//! Autoscalers as pure state machines: an observation every period in, a
//! desired replica count out. They follow the documented behaviour:
//!
//! - **Kubernetes HPA** (`replica_calculator.go`, `horizontal.go`): every
//!   sync period `desired = ceil(ready × cpu/target)`, nothing inside the
//!   tolerance band; on scale-up, pods that are not ready count as 0% CPU.
//!   Without `behavior`: the highest recommendation of the last 300 s wins
//!   (scale-down stabilization) and scale-up is capped at max(2×current, 4).
//!   With `behavior`: stabilization windows per direction, scale-up limited
//!   to +pods or +percent per period (whichever allows more), scale-down to
//!   −percent per period.
//! - **Threshold rule** (our runbook): CPU above X for D adds N, below Y for
//!   D removes N, then a cooldown.
//! - **AWS target tracking**: 1-minute datapoints; scale out after 3 above
//!   target, scale in after 15 below, to `ceil(current × cpu/target)`;
//!   instances in warm-up are left out of the metric by the engine.

use std::collections::VecDeque;

use crate::model::{Autoscaling, Behavior};

const NS: u64 = 1_000_000_000;

/// What the controller sees at a sync.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Simulated time, ns.
    pub now_ns: u64,
    /// Replicas asked for (ready + starting).
    pub current: u32,
    /// Replicas serving.
    pub ready: u32,
    /// Mean CPU utilisation of the ready replicas over the last period, 0..1.
    pub cpu: f64,
    /// Mean memory utilisation of the ready replicas over the last period,
    /// 0..1 (0 when the service's memory is not modelled).
    pub memory: f64,
    /// p95 of the requests completed in the last whole minute, ms (0
    /// before any).
    pub p95_ms: f64,
}

/// A running autoscaler.
#[derive(Debug, Clone)]
pub struct Scaler {
    policy: Autoscaling,
    /// HPA: recommendations with their times.
    recommendations: VecDeque<(u64, u32)>,
    /// HPA with behavior: replica changes with their times.
    scale_ups: VecDeque<(u64, u32)>,
    scale_downs: VecDeque<(u64, u32)>,
    /// HPA: the first sync has recorded its starting recommendation.
    synced: bool,
    /// Threshold rule and target tracking: time or datapoints spent above / below.
    above_ns: u64,
    below_ns: u64,
    above_points: u32,
    below_points: u32,
    cooldown_until: u64,
}

impl Scaler {
    /// A controller for this (checked) policy.
    pub fn new(policy: Autoscaling) -> Self {
        Scaler {
            policy,
            recommendations: VecDeque::new(),
            scale_ups: VecDeque::new(),
            scale_downs: VecDeque::new(),
            synced: false,
            above_ns: 0,
            below_ns: 0,
            above_points: 0,
            below_points: 0,
            cooldown_until: 0,
        }
    }

    /// How often it looks, ns.
    pub fn period_ns(&self) -> u64 {
        match &self.policy {
            Autoscaling::Hpa { sync_period, .. } => sync_period.as_nanos() as u64,
            Autoscaling::Threshold { .. } | Autoscaling::TargetTracking { .. } => 60 * NS,
        }
    }

    /// The replica count it wants after this observation.
    pub fn decide(&mut self, o: Observation) -> u32 {
        let (min, max) = self.policy.bounds();
        let desired = match self.policy.clone() {
            Autoscaling::Hpa {
                target_cpu,
                tolerance,
                behavior,
                target_memory,
                ..
            } => {
                let mut rec = hpa_recommendation(o, target_cpu, tolerance);
                if let Some(t) = target_memory {
                    // Each metric's own recommendation; the largest wins.
                    let by_memory = Observation { cpu: o.memory, ..o };
                    rec = rec.max(hpa_recommendation(by_memory, t, tolerance));
                }
                match behavior {
                    None => self.hpa_legacy(o, rec, min, max),
                    Some(b) => self.hpa_behavior(o, rec, min, max, &b),
                }
            }
            Autoscaling::Threshold {
                scale_up,
                scale_down,
                cooldown,
                ..
            } => {
                let period = self.period_ns();
                let over = |s: &crate::model::Step| {
                    s.memory.is_some_and(|m| o.memory > m) || s.p95_ms.is_some_and(|p| o.p95_ms > p)
                };
                let under = |s: &crate::model::Step| {
                    s.memory.is_none_or(|m| o.memory < m) && s.p95_ms.is_none_or(|p| o.p95_ms < p)
                };
                self.above_ns = if o.cpu > scale_up.cpu || over(&scale_up) {
                    self.above_ns + period
                } else {
                    0
                };
                self.below_ns = match &scale_down {
                    Some(d) if o.cpu < d.cpu && under(d) => self.below_ns + period,
                    _ => 0,
                };
                let mut desired = o.current;
                if o.now_ns >= self.cooldown_until {
                    if self.above_ns >= scale_up.lasting.as_nanos() as u64 {
                        desired = o.current + scale_up.step;
                    } else if let Some(d) = &scale_down
                        && self.below_ns >= d.lasting.as_nanos() as u64
                    {
                        desired = o.current.saturating_sub(d.step);
                    }
                }
                if desired != o.current {
                    self.above_ns = 0;
                    self.below_ns = 0;
                    self.cooldown_until = o.now_ns + cooldown.as_nanos() as u64;
                }
                desired
            }
            Autoscaling::TargetTracking { target_cpu, .. } => {
                self.above_points = if o.cpu > target_cpu {
                    self.above_points + 1
                } else {
                    0
                };
                self.below_points = if o.cpu < target_cpu {
                    self.below_points + 1
                } else {
                    0
                };
                let wanted = (o.current as f64 * o.cpu / target_cpu).ceil() as u32;
                if self.above_points >= 3 && wanted > o.current {
                    self.above_points = 0;
                    wanted
                } else if self.below_points >= 15 && wanted < o.current {
                    self.below_points = 0;
                    wanted
                } else {
                    o.current
                }
            }
        };
        desired.clamp(min, max)
    }

    /// Upstream's first reconcile of an HPA records the replicas it found
    /// as a recommendation, so no window can scale below them before it
    /// has passed.
    fn first_sync(&mut self, o: Observation) {
        if !self.synced {
            self.synced = true;
            self.recommendations.push_back((o.now_ns, o.current));
        }
    }

    fn hpa_legacy(&mut self, o: Observation, rec: u32, min: u32, max: u32) -> u32 {
        // The highest recommendation in the last 5 minutes, this one
        // included. Upstream drops one only when it is `Before(cutoff)`: a
        // recommendation exactly 300 s old still counts.
        self.first_sync(o);
        self.recommendations
            .retain(|&(t, _)| t + 300 * NS >= o.now_ns);
        let stabilized = self
            .recommendations
            .iter()
            .map(|&(_, r)| r)
            .fold(rec, u32::max);
        self.recommendations.push_back((o.now_ns, rec));
        let scale_up_limit = (2 * o.current).max(4);
        stabilized.clamp(min, max.min(scale_up_limit).max(min))
    }

    fn hpa_behavior(&mut self, o: Observation, rec: u32, min: u32, max: u32, b: &Behavior) -> u32 {
        let up_w = b.scale_up_window.as_nanos() as u64;
        let down_w = b.scale_down_window.as_nanos() as u64;
        let now = o.now_ns;
        self.first_sync(o);
        // Upstream keeps a recommendation for a window while it is
        // `After(cutoff)`: newer than the window.
        self.recommendations
            .retain(|&(t, _)| t + up_w.max(down_w) > now);
        let (mut up, mut down) = (rec, rec);
        for &(t, r) in &self.recommendations {
            if t + up_w > now {
                up = up.min(r);
            }
            if t + down_w > now {
                down = down.max(r);
            }
        }
        self.recommendations.push_back((o.now_ns, rec));
        let stabilized = o.current.max(up).min(down);
        let period = b.scale_up_period.as_nanos() as u64;
        self.scale_ups.retain(|&(t, _)| t + period > now);
        self.scale_downs.retain(|&(t, _)| t + period > now);
        // The replicas at the period's start, as upstream counts them: less
        // what was added in the period, plus what was removed.
        let added: u32 = self.scale_ups.iter().map(|e| e.1).sum();
        let removed: u32 = self.scale_downs.iter().map(|e| e.1).sum();
        let start = (o.current + removed).saturating_sub(added);
        let desired = if stabilized > o.current {
            let by_pods = start + b.scale_up_pods;
            // Rounded up, as upstream: a small fleet must still grow.
            let by_percent = (start as f64 * (1.0 + b.scale_up_percent / 100.0)).ceil() as u32;
            stabilized.min(by_pods.max(by_percent).max(o.current))
        } else if stabilized < o.current {
            // Truncated, as upstream's int32(): 19 at -25% is 14, not 15.
            let floor = (start as f64 * (1.0 - b.scale_down_percent / 100.0)) as u32;
            stabilized.max(floor.min(o.current))
        } else {
            stabilized
        };
        let desired = desired.clamp(min, max);
        if desired > o.current {
            self.scale_ups.push_back((o.now_ns, desired - o.current));
        } else if desired < o.current {
            self.scale_downs.push_back((o.now_ns, o.current - desired));
        }
        desired
    }
}

/// The replica calculator: ready pods at their CPU, pods still starting at
/// 0% when scaling up, and no change inside the tolerance band.
fn hpa_recommendation(o: Observation, target: f64, tolerance: f64) -> u32 {
    let ready = o.ready.max(1) as f64;
    let ratio = o.cpu / target;
    let unready = o.current.saturating_sub(o.ready) as f64;
    if unready == 0.0 || ratio <= 1.0 {
        if (ratio - 1.0).abs() <= tolerance {
            return o.current;
        }
        return (ratio * ready).ceil() as u32;
    }
    let new_ratio = ratio * ready / (ready + unready);
    if (new_ratio - 1.0).abs() <= tolerance || new_ratio < 1.0 {
        return o.current;
    }
    (new_ratio * (ready + unready)).ceil() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Step;
    use std::time::Duration;

    fn hpa(behavior: Option<Behavior>) -> Scaler {
        Scaler::new(Autoscaling::Hpa {
            min: 1,
            max: 100,
            target_cpu: 0.5,
            sync_period: Duration::from_secs(15),
            tolerance: 0.1,
            behavior,
            provisioning: None,
            cpu_initialization_period: Duration::from_secs(300),
            target_memory: None,
        })
    }

    fn obs(t_s: u64, current: u32, cpu: f64) -> Observation {
        Observation {
            now_ns: t_s * NS,
            current,
            ready: current,
            cpu,
            memory: 0.0,
            p95_ms: 0.0,
        }
    }

    #[test]
    fn hpa_tolerance_band_holds_still() {
        let mut s = hpa(None);
        // ratio 1.08 and 0.92 are inside ±0.1.
        assert_eq!(s.decide(obs(15, 10, 0.54)), 10);
        assert_eq!(s.decide(obs(30, 10, 0.46)), 10);
        // ratio 1.2: ceil(1.2 × 10) = 12.
        assert_eq!(s.decide(obs(45, 10, 0.6)), 12);
    }

    #[test]
    fn hpa_legacy_caps_scale_up_at_double_or_four() {
        let mut s = hpa(None);
        // CPU 100% at target 50% wants 2× per sync; from 1 the cap is 4.
        assert_eq!(s.decide(obs(15, 1, 1.0)), 2);
        let mut s = hpa(None);
        assert_eq!(s.decide(obs(15, 1, 5.0 * 0.5)), 4); // wants 5, capped at max(2, 4)
        let mut s = hpa(None);
        assert_eq!(s.decide(obs(15, 10, 2.0)), 20); // wants 40, capped at 2 × 10
    }

    #[test]
    fn hpa_legacy_scales_down_only_after_five_minutes() {
        let mut s = hpa(None);
        assert_eq!(s.decide(obs(0, 10, 0.5)), 10);
        // Load halves at t=15 s: the recommendation is 5 from then on, but
        // the 10 recommended at t=0 holds it while it is at most 300 s old
        // (upstream drops a recommendation only when `Before(cutoff)`).
        for t in (15..=300).step_by(15) {
            assert_eq!(s.decide(obs(t, 10, 0.25)), 10, "t={t}");
        }
        assert_eq!(s.decide(obs(315, 10, 0.25)), 5);
    }

    /// Upstream's first reconcile records the replicas it found: a fleet
    /// that is oversized from the start still waits out the window.
    #[test]
    fn hpa_first_sync_holds_the_starting_replicas_for_the_window() {
        // With behavior (window kept while newer than 300 s): 10 until 315 s.
        let mut s = hpa(Some(Behavior::default()));
        for t in (15..315).step_by(15) {
            assert_eq!(s.decide(obs(t, 10, 0.1)), 10, "t={t}");
        }
        assert_eq!(s.decide(obs(315, 10, 0.1)), 2);
        // Legacy (kept while at most 300 s old): 10 until 330 s.
        let mut s = hpa(None);
        for t in (15..330).step_by(15) {
            assert_eq!(s.decide(obs(t, 10, 0.1)), 10, "t={t}");
        }
        assert_eq!(s.decide(obs(330, 10, 0.1)), 2);
    }

    /// Upstream truncates a Percent scale-down (`int32(start × (1 − p))`)
    /// and counts a period's start from both directions' events.
    #[test]
    fn hpa_behavior_percent_scale_down_truncates() {
        let mut s = hpa(Some(Behavior {
            scale_down_percent: 25.0,
            scale_down_window: Duration::ZERO,
            ..Behavior::default()
        }));
        let mut current = 19;
        let mut trace = vec![current];
        for t in [15, 30, 45] {
            current = s.decide(obs(t, current, 0.01));
            trace.push(current);
        }
        assert_eq!(trace, [19, 14, 10, 7]);
        // A scale-up in the period of a scale-down counts from the period's
        // start, 20 (upstream adds back what was removed): +100% allows 40,
        // where counting from the 10 left would allow 20.
        let mut s = hpa(Some(Behavior {
            scale_down_percent: 50.0,
            scale_down_window: Duration::ZERO,
            scale_up_period: Duration::from_secs(60),
            ..Behavior::default()
        }));
        assert_eq!(s.decide(obs(15, 20, 0.01)), 10);
        assert_eq!(s.decide(obs(30, 10, 5.0)), 40);
    }

    #[test]
    fn hpa_counts_starting_pods_at_zero_on_scale_up() {
        let mut s = hpa(None);
        // 4 ready at 100% and 4 starting: ratio 2 over 4 pods, 1.0 over 8 → no change.
        let o = Observation {
            now_ns: 15 * NS,
            current: 8,
            ready: 4,
            cpu: 1.0,
            memory: 0.0,
            p95_ms: 0.0,
        };
        assert_eq!(s.decide(o), 8);
        // 4 ready at 150% (ratio 3), 2 starting at 0%: 3 × 4/6 = 2 over 6 pods → 12.
        let o = Observation {
            now_ns: 30 * NS,
            current: 6,
            ready: 4,
            cpu: 1.5,
            memory: 0.0,
            p95_ms: 0.0,
        };
        assert_eq!(s.decide(o), 12);
    }

    #[test]
    fn hpa_behavior_adds_four_pods_or_doubles_per_period() {
        let mut s = hpa(Some(Behavior::default()));
        // From 2 at 500% CPU (wants 20): +4 (to 6) beats +100% (to 4).
        assert_eq!(s.decide(obs(15, 2, 5.0)), 6);
        // 15 s later from 6: +100% (12) beats +4 (10).
        assert_eq!(s.decide(obs(30, 6, 5.0 * 6.0 / 6.0)), 12);
        // Within one period, a second sync cannot add beyond the period's budget.
        let mut s = hpa(Some(Behavior {
            scale_up_period: Duration::from_secs(60),
            ..Behavior::default()
        }));
        assert_eq!(s.decide(obs(15, 2, 5.0)), 6);
        assert_eq!(
            s.decide(obs(30, 6, 5.0)),
            6,
            "period start was 2 replicas: at most 6"
        );
        assert_eq!(s.decide(obs(76, 6, 5.0)), 12);
    }

    #[test]
    fn hpa_behavior_scale_down_waits_for_its_window() {
        let mut s = hpa(Some(Behavior::default()));
        assert_eq!(s.decide(obs(0, 10, 0.5)), 10);
        for t in (15..300).step_by(15) {
            assert_eq!(s.decide(obs(t, 10, 0.1)), 10, "t={t}");
        }
        // The 10 from t=0 leaves the window; 100%/15 s lets it drop at once.
        assert_eq!(s.decide(obs(300, 10, 0.1)), 2);
    }

    fn runbook() -> Scaler {
        Scaler::new(Autoscaling::Threshold {
            min: 2,
            max: 50,
            scale_up: Step {
                cpu: 0.7,
                memory: None,
                p95_ms: None,
                lasting: Duration::from_secs(600),
                step: 1,
            },
            scale_down: Some(Step {
                cpu: 0.3,
                memory: None,
                p95_ms: None,
                lasting: Duration::from_secs(600),
                step: 1,
            }),
            cooldown: Duration::from_secs(300),
            provisioning: None,
        })
    }

    #[test]
    fn threshold_rule_adds_a_server_after_ten_minutes_above_70() {
        let mut s = runbook();
        // Datapoints each minute at 85%: the 10th completes 10 minutes.
        for m in 1..10 {
            assert_eq!(s.decide(obs(m * 60, 4, 0.85)), 4, "minute {m}");
        }
        assert_eq!(s.decide(obs(600, 4, 0.85)), 5);
        // Cooldown: still above 70%, but no action for 5 minutes, and the
        // 10-minute clock starts again.
        for m in 11..20 {
            assert_eq!(s.decide(obs(m * 60, 5, 0.85)), 5, "minute {m}");
        }
        assert_eq!(s.decide(obs(1200, 5, 0.85)), 6);
        // One minute under 70% resets the clock.
        let mut s = runbook();
        for m in 1..=9 {
            s.decide(obs(m * 60, 4, 0.85));
        }
        assert_eq!(s.decide(obs(600, 4, 0.6)), 4);
        assert_eq!(s.decide(obs(660, 4, 0.85)), 4);
    }

    #[test]
    fn target_tracking_scales_out_on_the_third_datapoint_and_in_on_the_fifteenth() {
        let mut s = Scaler::new(Autoscaling::TargetTracking {
            min: 1,
            max: 20,
            target_cpu: 0.5,
            warmup: Duration::ZERO,
            provisioning: None,
        });
        assert_eq!(s.decide(obs(60, 4, 0.75)), 4);
        assert_eq!(s.decide(obs(120, 4, 0.75)), 4);
        assert_eq!(s.decide(obs(180, 4, 0.75)), 6); // ceil(4 × 0.75/0.5)
        for m in 1..15 {
            assert_eq!(s.decide(obs(180 + m * 60, 6, 0.2)), 6, "minute {m}");
        }
        assert_eq!(s.decide(obs(180 + 15 * 60, 6, 0.2)), 3); // ceil(6 × 0.4)
    }
}
