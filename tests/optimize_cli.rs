//! `loadtest optimize` as a user runs it: the shipped catalogs, exit codes
//! and the plan JSON contract.
use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;
use predicates::str::contains;

const BIN: &str = env!("CARGO_BIN_EXE_loadtest");

fn demand_csv(dir: &std::path::Path, hours: usize) -> std::path::PathBuf {
    let mut s = String::from("hour,vcpu,memory_gib\n");
    for h in 0..hours {
        let v = 40.0 + 25.0 * (h as f64 / 24.0 * std::f64::consts::TAU).sin();
        s.push_str(&format!("{h},{v:.1},{:.1}\n", v * 3.5));
    }
    let p = dir.join("demand.csv");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn every_shipped_catalog_gives_a_plan_with_the_contract_fields() {
    let dir = tempfile::tempdir().unwrap();
    let demand = demand_csv(dir.path(), 48);
    for cat in ["aws-us-east-1", "gcp-us-central1", "azure-eastus"] {
        let json = dir.path().join(format!("{cat}.json"));
        Command::new(BIN)
            .args(["optimize", "--demand"])
            .arg(&demand)
            .args([
                "--catalog",
                &format!("scenarios/catalog/{cat}.csv"),
                "--spot-max-share",
                "0.4",
                "--json",
            ])
            .arg(&json)
            .assert()
            .success()
            .stdout(contains("all on-demand baseline"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        for k in [
            "total_cost",
            "lower_bound",
            "gap",
            "baseline_cost",
            "savings",
            "instances",
        ] {
            assert!(v.get(k).is_some(), "{cat}: no {k}");
        }
        let total = v["total_cost"].as_f64().unwrap();
        assert!(total >= v["lower_bound"].as_f64().unwrap() - 1e-6);
        assert!(
            total < v["baseline_cost"].as_f64().unwrap(),
            "{cat}: no savings"
        );
        assert!(
            v["catalog_notes"][0]
                .as_str()
                .unwrap()
                .contains("APPROXIMATE")
        );
    }
}

#[test]
fn infeasible_exits_1_naming_the_constraint_and_hour() {
    let dir = tempfile::tempdir().unwrap();
    let demand = demand_csv(dir.path(), 24);
    Command::new(BIN)
        .args(["optimize", "--demand"])
        .arg(&demand)
        .args([
            "--catalog",
            "scenarios/catalog/aws-us-east-1.csv",
            "--max-vcpu",
            "32",
        ])
        .assert()
        .code(1)
        .stderr(contains("vCPU cover, hour 0"));
}

#[test]
fn malformed_csv_exits_2_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "hour,vcpu,memory_gib\n0,4,8\n1,4,x8\n").unwrap();
    Command::new(BIN)
        .args(["optimize", "--demand"])
        .arg(&bad)
        .args(["--catalog", "scenarios/catalog/aws-us-east-1.csv"])
        .assert()
        .code(2)
        .stderr(contains("bad.csv:3:5: `memory_gib` = `x8`"));
    Command::new(BIN)
        .args(["optimize", "--demand"])
        .arg(&bad)
        .args([
            "--catalog",
            "scenarios/catalog/aws-us-east-1.csv",
            "--spot-max-share",
            "1.5",
        ])
        .assert()
        .code(2)
        .stderr(contains("--spot-max-share"));
}

/// Inputs that would size the model without bound are refused at once
/// with what is wrong, not solved until memory runs out.
#[test]
fn inputs_past_any_fleet_exit_2_before_solving() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.csv");
    std::fs::write(&huge, "hour,vcpu,memory_gib\n0,4e10,1.6e11\n1,4,8\n").unwrap();
    Command::new(BIN)
        .args(["optimize", "--demand"])
        .arg(&huge)
        .args(["--catalog", "scenarios/catalog/aws-us-east-1.csv"])
        .assert()
        .code(2)
        .stderr(contains("hour 0 needs at least").and(contains("check the demand's units")));
    // A type of 2e-9 vCPU is a unit mistake, named with its place.
    let tiny = dir.path().join("tiny.csv");
    std::fs::write(
        &tiny,
        "provider,region,instance_type,vcpu,memory_gib,on_demand_hourly,reserved_1y_hourly,reserved_3y_hourly,spot_hourly,spot_interruption\n\
         aws,us-east-1,nano,2e-9,0.5,0.01,,,,\n",
    )
    .unwrap();
    let demand = demand_csv(dir.path(), 4);
    Command::new(BIN)
        .args(["optimize", "--demand"])
        .arg(&demand)
        .arg("--catalog")
        .arg(&tiny)
        .assert()
        .code(2)
        .stderr(contains("tiny.csv:2:").and(contains("`vcpu` is 0.000000002, outside 0.1..4096")));
}

/// The all-on-demand baseline keeps to the same caps as the plan: with
/// --max-per-type 1 the cheapest type alone cannot carry 30 vCPU, so the
/// baseline is the cheapest capped on-demand mix, and the savings are
/// never negative (before, $4 against a plan of $8: -$4).
#[test]
fn the_baseline_keeps_to_the_plans_caps() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat.csv");
    std::fs::write(
        &cat,
        "provider,region,instance_type,vcpu,memory_gib,on_demand_hourly,reserved_1y_hourly,reserved_3y_hourly,spot_hourly,spot_interruption\n\
         aws,us-east-1,a.large,16,64,1.0,,,,\n\
         aws,us-east-1,b.large,16,64,3.0,,,,\n",
    )
    .unwrap();
    let demand = dir.path().join("d.csv");
    std::fs::write(&demand, "hour,vcpu,memory_gib\n0,30,60\n1,30,60\n").unwrap();
    let json = dir.path().join("p.json");
    Command::new(BIN)
        .args(["optimize", "--demand"])
        .arg(&demand)
        .arg("--catalog")
        .arg(&cat)
        .args(["--max-per-type", "1", "--json"])
        .arg(&json)
        .assert()
        .success();
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // One of each type per hour: $4 an hour, in the plan and the baseline.
    assert_eq!(p["baseline_cost"].as_f64().unwrap(), 8.0, "{p}");
    assert_eq!(p["total_cost"].as_f64().unwrap(), 8.0);
    assert!(p["savings"].as_f64().unwrap() >= 0.0);
}

/// A catalog path may name any file: its first line is not echoed.
#[test]
fn a_file_that_is_not_a_catalog_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "root:x:0:0:hunter2-password\nmore\n").unwrap();
    let demand = demand_csv(dir.path(), 2);
    let out = Command::new(BIN)
        .args(["optimize", "--demand"])
        .arg(&demand)
        .arg("--catalog")
        .arg(&secret)
        .assert()
        .code(2)
        .stderr(contains("secret.txt:1:1: not a catalog header"))
        .get_output()
        .clone();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
}

/// `optimize` on `demand` with the AWS catalog and `extra` flags, which
/// must succeed: the plan JSON and the terminal's text.
fn aws_plan(demand: &std::path::Path, extra: &[&str]) -> (serde_json::Value, String) {
    let json = demand.with_extension("plan.json");
    let out = Command::new(BIN)
        .args(["optimize", "--demand"])
        .arg(demand)
        .args(["--catalog", "scenarios/catalog/aws-us-east-1.csv", "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{extra:?}: {out:?}");
    let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (v, String::from_utf8(out.stdout).unwrap())
}

/// Plans use x86_64 types unless asked (issue 17): the AWS catalog's c7g
/// (Graviton) only with `--arch arm64|any`, and a plan that uses it says
/// so; `--families` and `--exclude` narrow the types; a name that matches
/// nothing is bad input, exit 2.
#[test]
fn architecture_families_and_exclusions_choose_the_types() {
    let dir = tempfile::tempdir().unwrap();
    let demand = demand_csv(dir.path(), 48);
    let plan = |extra: &[&str]| aws_plan(&demand, extra);
    let types = |v: &serde_json::Value| -> Vec<String> {
        v["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["instance_type"].as_str().unwrap().to_string())
            .collect()
    };
    let (v, out) = plan(&[]);
    assert_eq!(v["options"]["arch"], "x86_64");
    assert!(
        types(&v).iter().all(|t| !t.starts_with("c7g")),
        "{:?}",
        types(&v)
    );
    assert_eq!(v["arm64_types"], serde_json::json!([]));
    assert!(!out.contains("arm64"), "{out}");
    let (v, out) = plan(&["--arch", "arm64"]);
    assert!(!types(&v).is_empty() && types(&v).iter().all(|t| t.starts_with("c7g")));
    assert!(!v["arm64_types"].as_array().unwrap().is_empty());
    assert!(
        out.contains("arm64: the service must ship arm64 images"),
        "{out}"
    );
    let (v, _) = plan(&["--families", "m6i,c6i", "--exclude", "m6i.large"]);
    let t = types(&v);
    assert!(
        t.iter()
            .all(|t| (t.starts_with("m6i.") || t.starts_with("c6i.")) && t != "m6i.large"),
        "{t:?}"
    );
    for (flags, says) in [
        (
            &["--arch", "arm"][..],
            "--arch `arm`: write x86_64, arm64 or any",
        ),
        (
            &["--exclude", "m9.huge"],
            "--exclude: `m9.huge` is not in the catalog",
        ),
        (
            &["--families", "z1"],
            "--families: `z1` is not a family of the catalog",
        ),
        (
            &["--arch", "arm64", "--families", "m6i"],
            "no instance type is left to plan with",
        ),
    ] {
        Command::new(BIN)
            .args(["optimize", "--demand"])
            .arg(&demand)
            .args(["--catalog", "scenarios/catalog/aws-us-east-1.csv"])
            .args(flags)
            .assert()
            .code(2)
            .stderr(contains(says));
    }
}

/// A growing fleet's bill by month, not only its average, and what the
/// reservations still cost after the horizon (issue 17): on the terminal
/// and in the plan, the latter equal to each reservation's remaining term.
#[test]
fn a_growing_fleet_shows_its_first_and_last_month_and_the_commitment_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let hours = 1500;
    let mut s = String::from("hour,vcpu,memory_gib\n");
    for h in 0..hours {
        let v = 8.0 + 56.0 * h as f64 / hours as f64;
        s.push_str(&format!("{h},{v:.1},{:.1}\n", v * 4.0));
    }
    let demand = dir.path().join("grow.csv");
    std::fs::write(&demand, s).unwrap();
    let (v, text) = aws_plan(&demand, &[]);
    let cost: Vec<f64> = v["hourly"]["cost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let (first, last): (f64, f64) = (cost[..730].iter().sum(), cost[hours - 730..].iter().sum());
    // Demand grows eightfold over fixed reservations: each hour costs at
    // least what a smaller one did.
    assert!(last > first, "{first} {last}");
    assert!(
        text.contains(&format!(
            "by month: ${first:.0} in the first 730 h, ${last:.0} in the last"
        )),
        "{text}"
    );
    // Each reservation line with the hours of its term past the horizon.
    let past: Vec<(&serde_json::Value, f64)> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            let term = match l["pricing"].as_str().unwrap() {
                "reserved_1y" => 8760.0,
                "reserved_3y" => 26280.0,
                _ => return None,
            };
            Some((l, term - hours as f64))
        })
        .collect();
    let owed: f64 = past
        .iter()
        .map(|(l, rest)| l["count"].as_f64().unwrap() * l["hourly_price"].as_f64().unwrap() * rest)
        .sum();
    assert!(owed > 0.0, "a growing fleet reserves its base: {text}");
    let got = v["committed_after_horizon"].as_f64().unwrap();
    assert!((got - owed).abs() < 1e-6 * owed, "{got} vs {owed}");
    assert!(
        text.contains(&format!("${owed:.0} more owed (not in the totals)")),
        "{text}"
    );
    // The policy for the terms past the horizon: demand stays at the last
    // month's level, so each reservation replaces its on-demand price for
    // the rest of its term at the last month's utilisation.
    let catalog = std::fs::read_to_string("scenarios/catalog/aws-us-east-1.csv").unwrap();
    let od = |ty: &str| -> f64 {
        let row = catalog
            .lines()
            .find(|l| l.split(',').nth(2) == Some(ty))
            .unwrap();
        row.split(',').nth(5).unwrap().parse().unwrap()
    };
    let used = v["months"].as_array().unwrap().last().unwrap()["commitment_utilization"]
        .as_f64()
        .unwrap();
    let replaces: f64 = past
        .iter()
        .map(|(l, rest)| {
            used * l["count"].as_f64().unwrap() * od(l["instance_type"].as_str().unwrap()) * rest
        })
        .sum();
    let got = v["after_horizon_replaces"].as_f64().unwrap();
    assert!(
        (got - replaces).abs() < 1e-6 * replaces,
        "{got} vs {replaces}"
    );
    // The demand grew past the reservations: they stay fully in use, and
    // replace more on-demand than they still cost.
    assert!(
        (used - 1.0).abs() < 1e-9 && got > owed,
        "{used} {got} {owed}"
    );
    assert!(
        text.contains(&format!(
            "stay 100% in use and replace ${got:.0} of on-demand: worth their cost"
        )),
        "{text}"
    );
}

/// The month-by-month table and the effective savings rate (issue 17):
/// each month's spend is its commitments plus on-demand plus spot, the
/// months add up to the plan, and the ESR is the discount on the usage
/// at on-demand prices. With one type under a constant demand the plan
/// reserves all of it for 3 years, in use every hour: the ESR is exactly
/// 1 − reserved_3y / on_demand.
#[test]
fn months_and_the_effective_savings_rate() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("one.csv");
    std::fs::write(
        &catalog,
        "provider,region,instance_type,vcpu,memory_gib,on_demand_hourly,reserved_1y_hourly,reserved_3y_hourly,spot_hourly,spot_interruption\n\
         aws,us-east-1,m.xlarge,4,16,0.20,0.13,0.08,,\n",
    )
    .unwrap();
    let mut s = String::from("hour,vcpu,memory_gib\n");
    for h in 0..1000 {
        s.push_str(&format!("{h},16,64\n"));
    }
    let demand = dir.path().join("flat.csv");
    std::fs::write(&demand, s).unwrap();
    let json = dir.path().join("plan.json");
    let out = Command::new(BIN)
        .args(["optimize", "--demand"])
        .arg(&demand)
        .arg("--catalog")
        .arg(&catalog)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let esr = v["effective_savings_rate"].as_f64().unwrap();
    assert!(
        (esr - (1.0 - 0.08 / 0.20)).abs() < 1e-9,
        "{esr}: {}",
        v["instances"]
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("effective savings rate: 60.0%"));

    // A growing fleet on the AWS catalog: three months of 730, 730 and 40 h.
    let mut s = String::from("hour,vcpu,memory_gib\n");
    for h in 0..1500 {
        let v = 8.0 + 56.0 * h as f64 / 1500.0;
        s.push_str(&format!("{h},{v:.1},{:.1}\n", v * 4.0));
    }
    let demand = dir.path().join("grow.csv");
    std::fs::write(&demand, s).unwrap();
    let (v, text) = aws_plan(&demand, &[]);
    let months = v["months"].as_array().unwrap();
    let f = |m: &serde_json::Value, k: &str| m[k].as_f64().unwrap();
    let hours: Vec<u64> = months
        .iter()
        .map(|m| m["hours"].as_u64().unwrap())
        .collect();
    assert_eq!(hours, [730, 730, 40]);
    let total = f(&v, "total_cost");
    let sum: f64 = months.iter().map(|m| f(m, "cost")).sum();
    assert!((sum - total).abs() < 1e-6 * total, "{sum} vs {total}");
    for m in months {
        let parts = f(m, "commitments") + f(m, "on_demand") + f(m, "spot");
        assert!((parts - f(m, "cost")).abs() < 1e-9 * f(m, "cost"), "{m}");
        let want = 1.0 - f(m, "cost") / f(m, "on_demand_equivalent");
        assert!((f(m, "effective_savings_rate") - want).abs() < 1e-12, "{m}");
        assert!((0.0..=1.0).contains(&f(m, "commitment_utilization")), "{m}");
    }
    // Fixed reservations under a growing demand: used more each month.
    assert!(f(&months[1], "commitment_utilization") >= f(&months[0], "commitment_utilization"));
    let ode = f(&v, "on_demand_equivalent");
    assert!((f(&v, "effective_savings_rate") - (1.0 - total / ode)).abs() < 1e-12);
    // The savings by source split the same way: commitments and spot are
    // the on-demand equivalent less the cost, the mix the baseline less it.
    let src = v["savings_by_source"].as_object().unwrap();
    let rate: f64 = src
        .iter()
        .filter(|(k, _)| *k != "instance_mix_and_capacity")
        .map(|(_, x)| x.as_f64().unwrap())
        .sum();
    assert!((rate - (ode - total)).abs() < 1e-6 * ode, "{src:?}");
    let mix = src["instance_mix_and_capacity"].as_f64().unwrap();
    assert!(
        (mix - (f(&v, "baseline_cost") - ode)).abs() < 1e-6 * ode,
        "{src:?}"
    );
    assert!(text.contains("effective savings rate: "), "{text}");
}

/// Demand that falls at the end of the horizon leaves the reservations'
/// remaining terms mostly idle, and the plan says how much of what they
/// still cost would be.
#[test]
fn reservations_past_a_falling_demand_are_said_to_idle() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::from("hour,vcpu,memory_gib\n");
    for h in 0..1500 {
        let v = if h < 1400 { 64.0 } else { 8.0 };
        s.push_str(&format!("{h},{v:.1},{:.1}\n", v * 4.0));
    }
    let demand = dir.path().join("fall.csv");
    std::fs::write(&demand, s).unwrap();
    let (v, text) = aws_plan(&demand, &[]);
    let owed = v["committed_after_horizon"].as_f64().unwrap();
    let replaces = v["after_horizon_replaces"].as_f64().unwrap();
    let used = v["months"].as_array().unwrap().last().unwrap()["commitment_utilization"]
        .as_f64()
        .unwrap();
    assert!(owed > 0.0 && used < 0.5, "{owed} {used}: {text}");
    assert!(replaces < owed, "{replaces} {owed}");
    assert!(
        text.contains(&format!("${:.0} of it would be idle", owed - replaces)),
        "{text}"
    );
}
