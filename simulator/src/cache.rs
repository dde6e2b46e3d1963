//! An LRU cache (Redis with `maxmemory-policy allkeys-lru`) in front of
//! the database: its hit ratio from its size, the working set and the
//! keys' popularity, by Che's approximation (Che, Tung and Wang, 2002;
//! Fricker, Robert and Roberts, 2012, for why it is so accurate).
//!
//! Requests ask for key `i` of `n` at rate `λ_i ∝ i^(−s)` (Zipf with
//! exponent `s`), independently (the independent reference model). An
//! LRU cache of `c` objects keeps a key while fewer than `c` other keys
//! have been asked for since its last request; Che's approximation treats
//! that time as a constant `T` (the characteristic time), the root of
//! `Σ_i (1 − e^(−λ_i T)) = c`. Key `i` is then in the cache with
//! probability `1 − e^(−λ_i T)` and the hit ratio is
//! `Σ_i λ_i (1 − e^(−λ_i T)) / Σ_i λ_i`.
//!
//! Working sets of 10⁸ keys and more are summed in rank buckets: the
//! first 4,096 ranks one by one, then geometric buckets 0.2% wide, each
//! taken at its mean rate (the rates within one differ by less than
//! 0.2 × s percent).

/// A working set and how popular its keys are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Popularity {
    /// Distinct keys asked for.
    pub keys: f64,
    /// Zipf exponent `s` (0 = every key alike; 0.6–1.2 is typical of web
    /// objects).
    pub zipf: f64,
}

/// What a cache of a given size holds of a working set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Occupancy {
    /// Share of lookups that hit.
    pub hit_ratio: f64,
    /// Objects the cache holds (its size, or the working set if smaller).
    pub objects: f64,
    /// Che's characteristic time, in mean inter-request times of the
    /// whole stream (∞ when the working set fits).
    pub characteristic_time: f64,
}

/// Rank buckets: (number of keys, their mean rate), rates summing to 1.
fn buckets(p: &Popularity) -> Vec<(f64, f64)> {
    let n = p.keys.max(1.0).floor();
    let mut v = Vec::new();
    let exact = n.min(4096.0) as u64;
    for i in 1..=exact {
        v.push((1.0, (i as f64).powf(-p.zipf)));
    }
    let mut lo = exact as f64 + 1.0;
    while lo <= n {
        let hi = (lo * 1.002).floor().max(lo).min(n);
        let count = hi - lo + 1.0;
        // The mean of i^(−s) over [lo, hi], by the midpoint of the ranks.
        let rate = ((lo + hi) / 2.0).powf(-p.zipf);
        v.push((count, rate));
        lo = hi + 1.0;
    }
    let total: f64 = v.iter().map(|b| b.0 * b.1).sum();
    for b in &mut v {
        b.1 /= total;
    }
    v
}

/// The hit ratio of an LRU cache of `capacity` objects (see the module
/// doc). A working set that fits is all hits (cold misses aside).
pub fn lru(p: &Popularity, capacity: f64) -> Occupancy {
    let keys = p.keys.max(0.0);
    if keys < 1.0 {
        return Occupancy {
            hit_ratio: 0.0,
            objects: 0.0,
            characteristic_time: f64::INFINITY,
        };
    }
    if capacity >= keys.floor() {
        return Occupancy {
            hit_ratio: 1.0,
            objects: keys.floor(),
            characteristic_time: f64::INFINITY,
        };
    }
    if capacity <= 0.0 {
        return Occupancy {
            hit_ratio: 0.0,
            objects: 0.0,
            characteristic_time: 0.0,
        };
    }
    let b = buckets(p);
    let t = characteristic_time(&b, held, capacity).unwrap_or(f64::INFINITY);
    let hit_ratio = hit(&b, t);
    Occupancy {
        hit_ratio: hit_ratio.clamp(0.0, 1.0),
        objects: capacity,
        characteristic_time: t,
    }
}

/// The smallest LRU cache, in objects, whose hit ratio is `hit_ratio`
/// by Che's approximation: the characteristic time that gives that hit
/// ratio, then the objects held at it (one root, as the hit ratio rises
/// with `T`). The whole working set when it is needed (or `hit_ratio` is 1).
pub fn capacity_for(p: &Popularity, hit_ratio: f64) -> f64 {
    let keys = p.keys.max(0.0).floor();
    if keys < 1.0 || hit_ratio <= 0.0 {
        return 0.0;
    }
    if hit_ratio >= 1.0 {
        return keys;
    }
    let b = buckets(p);
    match characteristic_time(&b, hit, hit_ratio) {
        Some(t) => held(&b, t).min(keys),
        None => keys,
    }
}

/// Keys held at characteristic time `t`: `Σ_i (1 − e^(−λ_i T))`.
fn held(b: &[(f64, f64)], t: f64) -> f64 {
    b.iter().map(|&(n, r)| n * -(-r * t).exp_m1()).sum()
}

/// Hit ratio at characteristic time `t`: `Σ_i λ_i (1 − e^(−λ_i T))`.
fn hit(b: &[(f64, f64)], t: f64) -> f64 {
    b.iter().map(|&(n, r)| n * r * -(-r * t).exp_m1()).sum()
}

/// The `T` where `f(T)` (rising in `T`: [`held`] or [`hit`]) reaches
/// `target`, by bisection on a log scale; None if no `T` up to 1e30 does.
fn characteristic_time(
    b: &[(f64, f64)],
    f: fn(&[(f64, f64)], f64) -> f64,
    target: f64,
) -> Option<f64> {
    let (mut lo, mut hi) = (1e-12_f64, 1.0_f64);
    while f(b, hi) < target {
        hi *= 2.0;
        if hi > 1e30 {
            return None;
        }
    }
    for _ in 0..200 {
        let mid = (lo * hi).sqrt();
        if f(b, mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi / lo < 1.0 + 1e-12 {
            break;
        }
    }
    Some((lo * hi).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exact LRU of `capacity` keys driven by a Zipf key stream: a
    /// separate, simple program (an ordered map from last use to key),
    /// not the approximation. Hits are counted after a warm-up of 50
    /// requests per cached key (the cache is full long before).
    fn exact_lru(keys: usize, zipf: f64, capacity: usize, requests: usize, seed: u64) -> f64 {
        use rand::{Rng, SeedableRng};
        use std::collections::{BTreeMap, HashMap};
        let weights: Vec<f64> = (1..=keys).map(|i| (i as f64).powf(-zipf)).collect();
        let mut cdf = Vec::with_capacity(keys);
        let mut acc = 0.0;
        for w in &weights {
            acc += w;
            cdf.push(acc);
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut last_use: HashMap<usize, u64> = HashMap::new();
        let mut by_age: BTreeMap<u64, usize> = BTreeMap::new();
        let warmup = 50 * capacity;
        let (mut hits, mut counted) = (0u64, 0u64);
        for t in 0..(requests + warmup) as u64 {
            let u = rng.random::<f64>() * acc;
            let key = cdf.partition_point(|&c| c < u).min(keys - 1);
            let hit = if let Some(old) = last_use.insert(key, t) {
                by_age.remove(&old);
                true
            } else {
                if by_age.len() == capacity {
                    let (_, evicted) = by_age.pop_first().expect("full");
                    last_use.remove(&evicted);
                }
                false
            };
            by_age.insert(t, key);
            if t as usize >= warmup {
                counted += 1;
                hits += hit as u64;
            }
        }
        hits as f64 / counted as f64
    }

    #[test]
    fn che_matches_an_exact_lru_within_two_points() {
        for (keys, zipf, capacity) in [
            (20_000, 0.8, 1_000),
            (20_000, 1.0, 500),
            (50_000, 0.6, 10_000),
            (10_000, 1.2, 100),
            (10_000, 0.0, 4_000),
        ] {
            let che = lru(
                &Popularity {
                    keys: keys as f64,
                    zipf,
                },
                capacity as f64,
            )
            .hit_ratio;
            let exact = exact_lru(keys, zipf, capacity, 1_000_000, 7);
            eprintln!("{keys} keys, s = {zipf}, {capacity} cached: Che {che:.4}, exact {exact:.4}");
            assert!(
                (che - exact).abs() < 0.02,
                "{keys} keys, s = {zipf}, {capacity} cached: Che {che:.4}, exact LRU {exact:.4}"
            );
        }
    }

    /// Uniform popularity: the cache holds `c` of `n` keys at random, so
    /// the hit ratio is `c / n` exactly.
    #[test]
    fn uniform_keys_hit_in_proportion_to_the_cache() {
        let o = lru(
            &Popularity {
                keys: 1e6,
                zipf: 0.0,
            },
            2.5e5,
        );
        assert!((o.hit_ratio - 0.25).abs() < 1e-9, "{}", o.hit_ratio);
    }

    /// Buckets stand for every rank: a working set of 10⁹ keys sums to the
    /// same hit ratio as its exact sum would, within 0.1 point, checked on
    /// 10⁶ keys summed both ways.
    #[test]
    fn buckets_keep_the_sum() {
        let p = Popularity {
            keys: 1e6,
            zipf: 0.9,
        };
        let b = buckets(&p);
        assert!(b.len() < 10_000, "{}", b.len());
        assert!((b.iter().map(|x| x.0).sum::<f64>() - 1e6).abs() < 0.5);
        let rates: Vec<f64> = (1..=1_000_000).map(|i| (i as f64).powf(-0.9)).collect();
        let total: f64 = rates.iter().sum();
        let exact_held = |t: f64| {
            rates
                .iter()
                .map(|r| -(-r / total * t).exp_m1())
                .sum::<f64>()
        };
        let o = lru(&p, 50_000.0);
        assert!((exact_held(o.characteristic_time) - 50_000.0).abs() / 50_000.0 < 1e-3);
        let big = lru(
            &Popularity {
                keys: 1e9,
                zipf: 0.9,
            },
            1e6,
        );
        assert!(big.hit_ratio > 0.0 && big.hit_ratio < o.hit_ratio);
    }

    /// The size for a hit ratio is the inverse of the hit ratio for a size.
    #[test]
    fn capacity_for_inverts_the_hit_ratio() {
        let p = Popularity {
            keys: 2e6,
            zipf: 0.9,
        };
        for h in [0.5, 0.8, 0.95] {
            let c = capacity_for(&p, h);
            let back = lru(&p, c).hit_ratio;
            assert!((back - h).abs() < 1e-6, "{h}: {c} objects give {back}");
        }
        assert_eq!(capacity_for(&p, 1.0), 2e6);
        assert_eq!(capacity_for(&p, 0.0), 0.0);
    }

    #[test]
    fn a_working_set_that_fits_is_all_hits() {
        let p = Popularity {
            keys: 1000.0,
            zipf: 0.9,
        };
        assert_eq!(lru(&p, 1000.0).hit_ratio, 1.0);
        assert_eq!(lru(&p, 0.0).hit_ratio, 0.0);
        let a = lru(&p, 100.0).hit_ratio;
        let b = lru(&p, 200.0).hit_ratio;
        assert!(0.0 < a && a < b && b < 1.0);
    }
}
