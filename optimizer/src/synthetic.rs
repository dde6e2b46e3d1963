//! Synthetic instances at the sizes issue #4 names, shared by the
//! criterion bench and the plan-quality test: `n` types in families like
//! m/c/r (4, 2, 8 GiB per vCPU) and sizes 2..64 vCPU priced like AWS list
//! prices with some noise, and a daily and weekly demand shape.
use crate::input::{Catalog, Demand, InstanceType};

/// A deterministic generator (no rand dependency needed here).
pub struct Lcg(pub u64);
impl Lcg {
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` types in families like m/c/r (4, 2, 8 GiB per vCPU) and sizes
/// 2..64 vCPU, priced like AWS list prices with some noise.
pub fn catalog(n: usize, rng: &mut Lcg) -> Catalog {
    let fam = [
        ("m", 4.0, 0.048),
        ("c", 2.0, 0.0425),
        ("r", 8.0, 0.063),
        ("t", 4.0, 0.0416),
        ("x", 16.0, 0.083),
    ];
    let sizes = [2.0, 4.0, 8.0, 16.0, 32.0, 48.0, 64.0];
    let types = (0..n)
        .map(|i| {
            let (f, ratio, per_vcpu) = fam[i % fam.len()];
            let vcpu = sizes[(i / fam.len()) % sizes.len()];
            let generation = i / (fam.len() * sizes.len());
            let od =
                vcpu * per_vcpu * (0.95 + 0.1 * rng.uniform()) * (1.0 - 0.05 * generation as f64);
            InstanceType {
                provider: "bench".into(),
                region: "r".into(),
                instance_type: format!("{f}{}.{}x", 6 + generation, vcpu),
                vcpu,
                memory_gib: vcpu * ratio,
                on_demand_hourly: od,
                reserved_1y_hourly: Some(od * (0.6 + 0.05 * rng.uniform())),
                reserved_3y_hourly: Some(od * (0.4 + 0.05 * rng.uniform())),
                spot_hourly: Some(od * (0.3 + 0.15 * rng.uniform())),
                spot_interruption: Some(0.05),
                arch: None,
            }
        })
        .collect();
    Catalog {
        notes: vec![],
        types,
    }
}

/// A daily and weekly shape around `base` vCPU, with noise, to 0.1 vCPU.
pub fn demand(hours: usize, base: f64, rng: &mut Lcg) -> Vec<Demand> {
    (0..hours)
        .map(|h| {
            let day = (h as f64 / 24.0 * std::f64::consts::TAU).sin();
            let week = if (h / 24) % 7 >= 5 { 0.7 } else { 1.0 };
            let v = base * week * (1.0 + 0.5 * day) * (0.95 + 0.1 * rng.uniform());
            Demand {
                vcpu: (v * 10.0).round() / 10.0,
                memory_gib: (v * (3.0 + rng.uniform()) * 10.0).round() / 10.0,
            }
        })
        .collect()
}

/// The bench's instance: `types` × `hours` around `base` vCPU, seeded by
/// its size.
pub fn instance(types: usize, hours: usize, base: f64) -> (Catalog, Vec<Demand>) {
    let mut rng = Lcg(types as u64 * 1000 + hours as u64);
    let cat = catalog(types, &mut rng);
    let d = demand(hours, base, &mut rng);
    (cat, d)
}
