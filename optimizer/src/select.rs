//! Which of a catalog's instance types a plan may use: by CPU architecture
//! (x86_64 unless the user asks for arm64, since a service ships images for
//! the architectures it was built for), by family, and by name.
//!
//! A type's architecture is the catalog's `arch` column when it has one;
//! otherwise it follows from the provider's naming:
//! - AWS: a `g` among the letters after the generation digit is Graviton
//!   (`c7g`, `m6gd`, `c6gn`, `t4g`, `im4gn`);
//! - GCP: a series named letter-digits-`a` is Arm (`t2a`, `c4a`, `n4a`);
//! - Azure: a `p` among the feature letters after the vCPU count is Ampere
//!   or Cobalt (`D2ps_v5`, `E4pds_v6`, `B2pls_v2`).
//!
//! A type's family is the part of its name before the size: `m6i` for
//! `m6i.xlarge`, `n2` for `n2-standard-4`, `Dsv5` for `D2s_v5` (the vCPU
//! count and underscores removed, as Microsoft names its series).

use crate::{Catalog, Constraints, Error, InstanceType};

/// The architecture a type runs: `x86_64` or `arm64`.
pub fn arch_of(t: &InstanceType) -> &str {
    if let Some(a) = t.arch.as_deref() {
        return a;
    }
    let name = t.instance_type.as_str();
    let arm = match t.provider.to_ascii_lowercase().as_str() {
        "aws" => {
            let family = name.split('.').next().unwrap_or(name);
            family
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .split('-')
                .next()
                .is_some_and(|suffix| suffix.contains('g'))
        }
        "gcp" => {
            let series = name.split('-').next().unwrap_or(name);
            let b = series.as_bytes();
            b.len() >= 3
                && b[0].is_ascii_alphabetic()
                && b[b.len() - 1] == b'a'
                && b[1..b.len() - 1].iter().all(u8::is_ascii_digit)
        }
        "azure" => {
            let n = name.strip_prefix("Standard_").unwrap_or(name);
            n.trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .split('_')
                .next()
                .is_some_and(|features| features.contains('p'))
        }
        _ => false,
    };
    if arm { "arm64" } else { "x86_64" }
}

/// A type's family (see the module doc).
pub fn family_of(t: &InstanceType) -> String {
    let name = t.instance_type.as_str();
    match t.provider.to_ascii_lowercase().as_str() {
        "aws" => name.split('.').next().unwrap_or(name).to_string(),
        "gcp" => name.split('-').next().unwrap_or(name).to_string(),
        "azure" => {
            let n = name.strip_prefix("Standard_").unwrap_or(name);
            let letters = n.len()
                - n.trim_start_matches(|c: char| c.is_ascii_alphabetic())
                    .len();
            let rest = n[letters..].trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{}{}", &n[..letters], rest.replace('_', ""))
        }
        _ => name.split(['.', '-']).next().unwrap_or(name).to_string(),
    }
}

/// The catalog without the types `opts` rules out, or why nothing is left
/// or a name matches nothing (each error names its flag and the choices).
pub fn select(catalog: &Catalog, opts: &Constraints) -> Result<Catalog, Error> {
    check_names(catalog, opts)?;
    let types: Vec<InstanceType> = catalog
        .types
        .iter()
        .filter(|t| opts.arch == "any" || arch_of(t) == opts.arch)
        .filter(|t| {
            !opts
                .exclude
                .iter()
                .any(|x| x.eq_ignore_ascii_case(&t.instance_type))
        })
        .filter(|t| {
            opts.families.is_empty()
                || opts
                    .families
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&family_of(t)))
        })
        .cloned()
        .collect();
    if types.is_empty() {
        let arm = catalog
            .types
            .iter()
            .filter(|t| arch_of(t) == "arm64")
            .count();
        return Err(Error::Input(format!(
            "no instance type is left to plan with (--arch {}, {} excluded, families {}); the catalog has {} x86_64 and {arm} arm64 types",
            opts.arch,
            opts.exclude.len(),
            if opts.families.is_empty() {
                "any".to_string()
            } else {
                opts.families.join(",")
            },
            catalog.types.len() - arm
        )));
    }
    Ok(Catalog {
        notes: catalog.notes.clone(),
        types,
    })
}

/// The architecture is one there is, and every excluded type and family
/// is the catalog's.
fn check_names(catalog: &Catalog, opts: &Constraints) -> Result<(), Error> {
    let bad = |m: String| Err(Error::Input(m));
    if !["x86_64", "arm64", "any"].contains(&opts.arch.as_str()) {
        return bad(format!(
            "--arch `{}`: write x86_64, arm64 or any",
            opts.arch
        ));
    }
    let names: Vec<&str> = catalog
        .types
        .iter()
        .map(|t| t.instance_type.as_str())
        .collect();
    for x in &opts.exclude {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(x)) {
            return bad(format!(
                "--exclude: `{x}` is not in the catalog; its types are {}",
                names.join(", ")
            ));
        }
    }
    let mut families: Vec<String> = Vec::new();
    for f in catalog.types.iter().map(family_of) {
        if !families.contains(&f) {
            families.push(f);
        }
    }
    for f in &opts.families {
        if !families.iter().any(|g| g.eq_ignore_ascii_case(f)) {
            return bad(format!(
                "--families: `{f}` is not a family of the catalog; its families are {}",
                families.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(provider: &str, name: &str) -> InstanceType {
        InstanceType {
            provider: provider.into(),
            region: "r".into(),
            instance_type: name.into(),
            vcpu: 2.0,
            memory_gib: 8.0,
            on_demand_hourly: 0.1,
            reserved_1y_hourly: None,
            reserved_3y_hourly: None,
            spot_hourly: None,
            spot_interruption: None,
            arch: None,
        }
    }

    #[test]
    fn architectures_follow_the_providers_names() {
        for (p, n, arch) in [
            ("aws", "c7g.xlarge", "arm64"),
            ("aws", "m6gd.large", "arm64"),
            ("aws", "c6gn.2xlarge", "arm64"),
            ("aws", "t4g.micro", "arm64"),
            ("aws", "im4gn.large", "arm64"),
            ("aws", "m6i.xlarge", "x86_64"),
            ("aws", "c5n.large", "x86_64"),
            ("aws", "m7i-flex.large", "x86_64"),
            ("aws", "g5.xlarge", "x86_64"),
            ("aws", "m7a.large", "x86_64"),
            ("gcp", "t2a-standard-4", "arm64"),
            ("gcp", "c4a-highcpu-8", "arm64"),
            ("gcp", "n2-standard-4", "x86_64"),
            ("gcp", "n2d-standard-4", "x86_64"),
            ("gcp", "a2-highgpu-1g", "x86_64"),
            ("azure", "D2ps_v5", "arm64"),
            ("azure", "Standard_E4pds_v6", "arm64"),
            ("azure", "D2s_v5", "x86_64"),
            ("azure", "F4s_v2", "x86_64"),
        ] {
            assert_eq!(arch_of(&ty(p, n)), arch, "{p} {n}");
        }
        let mut t = ty("aws", "c7g.xlarge");
        t.arch = Some("x86_64".into());
        assert_eq!(arch_of(&t), "x86_64", "the column wins");
        assert_eq!(family_of(&ty("aws", "m6i.xlarge")), "m6i");
        assert_eq!(family_of(&ty("gcp", "n2-standard-4")), "n2");
        assert_eq!(family_of(&ty("azure", "D2s_v5")), "Dsv5");
        assert_eq!(family_of(&ty("azure", "Standard_D4pds_v5")), "Dpdsv5");
    }

    #[test]
    fn selection_by_arch_family_and_name() {
        let cat = Catalog {
            notes: vec![],
            types: ["m6i.large", "m6i.xlarge", "c7g.xlarge", "c6i.large"]
                .map(|n| ty("aws", n))
                .to_vec(),
        };
        let names = |o: &Constraints| -> Vec<String> {
            select(&cat, o)
                .unwrap()
                .types
                .into_iter()
                .map(|t| t.instance_type)
                .collect()
        };
        let d = Constraints::default();
        assert_eq!(d.arch, "x86_64");
        assert_eq!(names(&d), ["m6i.large", "m6i.xlarge", "c6i.large"]);
        let any = Constraints {
            arch: "any".into(),
            ..d.clone()
        };
        assert_eq!(names(&any).len(), 4);
        let arm = Constraints {
            arch: "arm64".into(),
            ..d.clone()
        };
        assert_eq!(names(&arm), ["c7g.xlarge"]);
        let some = Constraints {
            families: vec!["M6I".into()],
            exclude: vec!["m6i.large".into()],
            ..d.clone()
        };
        assert_eq!(names(&some), ["m6i.xlarge"]);
        let e = |o: Constraints| select(&cat, &o).unwrap_err().to_string();
        assert!(
            e(Constraints {
                exclude: vec!["m9.large".into()],
                ..d.clone()
            })
            .contains("--exclude: `m9.large` is not in the catalog")
        );
        assert!(
            e(Constraints {
                families: vec!["r7".into()],
                ..d.clone()
            })
            .contains("its families are m6i, c7g, c6i")
        );
        assert!(
            e(Constraints {
                arch: "arm".into(),
                ..d.clone()
            })
            .contains("--arch `arm`: write x86_64, arm64 or any")
        );
        let none = e(Constraints {
            arch: "arm64".into(),
            exclude: vec!["c7g.xlarge".into()],
            ..d
        });
        assert!(none.contains("no instance type is left"), "{none}");
        assert!(none.contains("3 x86_64 and 1 arm64"), "{none}");
    }
}
