//! `loadtest plan` and `loadtest validate` as a user runs them, on the
//! shipped smoke scenario against the built-in target on loopback.
mod common;

use std::process::Command;

use assert_cmd::prelude::*;
use common::BIN;
use predicates::str::contains;

#[test]
fn every_shipped_scenario_validates() {
    for e in std::fs::read_dir("scenarios").unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            Command::new(BIN)
                .arg("validate")
                .arg(&p)
                .assert()
                .success()
                .stdout(contains("ok for run, simulate, optimize and plan"));
        }
    }
}

#[test]
fn validate_prints_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("bad.toml");
    let text = std::fs::read_to_string("scenarios/smoke.toml")
        .unwrap()
        .replace(
            "catalog = \"catalog/aws-us-east-1.csv\"",
            "catalog = \"nowhere.csv\"",
        )
        .replace("min = 2\nmax = 10", "min = 12\nmax = 10");
    std::fs::write(&scn, text).unwrap();
    Command::new(BIN)
        .arg("validate")
        .arg(&scn)
        .assert()
        .code(2)
        .stderr(contains("min"))
        .stderr(contains("nowhere.csv"))
        .stderr(contains("2 problem(s)"));
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "name = \"x\"\n[optimize]\nspot_share = 0.4\n").unwrap();
    Command::new(BIN)
        .arg("validate")
        .arg(&typo)
        .assert()
        .code(2)
        .stderr(contains("typo.toml:3:1"));
    // Parse errors in three sections: all three, each with its place.
    let three = dir.path().join("three.toml");
    let text = std::fs::read_to_string("scenarios/smoke.toml")
        .unwrap()
        .replace("rate = 100 ", "rate = \"fast\" ")
        .replace("replicas = 2\n", "replicas = \"two\"\n")
        .replace("cooldown = \"5m\"", "cooldwn = \"5m\"");
    std::fs::write(&three, text).unwrap();
    Command::new(BIN)
        .arg("validate")
        .arg(&three)
        .assert()
        .code(2)
        .stderr(contains("three.toml:14:8: invalid type: string \"fast\""))
        .stderr(contains("three.toml:42:12: invalid type: string \"two\""))
        .stderr(contains("three.toml:47:1: unknown field `cooldwn`"))
        .stderr(contains("3 problem(s)"));
    // Types the catalog does not have are found before anything is measured.
    let types = dir.path().join("types.toml");
    let catalog = std::fs::canonicalize("scenarios/catalog/aws-us-east-1.csv").unwrap();
    let text = std::fs::read_to_string("scenarios/smoke.toml")
        .unwrap()
        .replace(
            "catalog = \"catalog/aws-us-east-1.csv\"",
            &format!(
                "catalog = {:?}\nfamilies = [\"z9\"]",
                catalog.display().to_string()
            ),
        );
    std::fs::write(&types, text).unwrap();
    Command::new(BIN)
        .arg("validate")
        .arg(&types)
        .assert()
        .code(2)
        .stderr(contains(
            "[optimize] --families: `z9` is not a family of the catalog",
        ))
        .stderr(contains("1 problem(s)"));
}

#[test]
fn a_scenario_error_stops_the_plan_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("bad.toml");
    let text = std::fs::read_to_string("scenarios/smoke.toml")
        .unwrap()
        .replace("replica_vcpu = 2", "replica_vcpu = -2");
    std::fs::write(&scn, text).unwrap();
    let out = dir.path().join("out");
    Command::new(BIN)
        .arg("plan")
        .arg(&scn)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        // A check across keys points at its section's key.
        .stderr(contains("bad.toml:67:1: [optimize] replica_vcpu"));
    assert!(!out.exists(), "a stage ran before the scenario was checked");
}

/// The whole pipeline, with the accuracy check: the capacity search finds
/// the built-in target's saturation by itself, and the model fitted on the
/// 20-60% steps predicts the 80% step and both 2-replica steps (p95 within
/// 15%, goodput within 5%) and saturation past 90% within one step.
#[test]
fn smoke_plan_runs_every_stage_and_the_forecast_holds_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    Command::new(BIN)
        .args([
            "plan",
            "scenarios/smoke.toml",
            "--step",
            "6s",
            "--verify",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("1k users: 2 servers"))
        .stdout(contains("cost: $"));
    for f in [
        "capacity.json",
        "run_step1.json",
        "run_step3.json",
        "forecast.json",
        "forecast.csv",
        "plan.json",
        "verify.json",
        "index.html",
    ] {
        assert!(out.join(f).exists(), "no {f}");
    }
    // The search found the built-in target's capacity by itself: 8 workers
    // × lognormal(20 ms) is 400 rps at most, and a knee below it.
    let cap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("capacity.json")).unwrap()).unwrap();
    let x = cap["capacity_rps"].as_f64().unwrap();
    assert!((250.0..=410.0).contains(&x), "capacity {x}");
    assert!(cap["knee_rps"].as_f64().unwrap() <= 1.1 * x);
    // The forecast carries its fit.
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("forecast.json")).unwrap()).unwrap();
    assert_eq!(f["calibration"]["capacity_rps"].as_f64().unwrap(), x);
    // Every file a later stage reads reads back whole (issue 15).
    for f in [
        "run_step1.json",
        "forecast.json",
        "plan.json",
        "verify.json",
    ] {
        common::assert_read_back(&out.join(f));
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("verify.json")).unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    let role = |r: &str| cases.iter().filter(|c| c["role"] == r).count();
    assert!(
        role("held_out") >= 3 && role("saturation") >= 1,
        "{cases:?}"
    );
    assert!(cases.iter().any(|c| c["replicas"] == 2));
    for c in cases.iter().filter(|c| c["role"] != "fitted") {
        eprintln!(
            "{}: p95 error {:+.1}%, throughput error {:+.1}%",
            c["case"],
            100.0 * c["p95_error"].as_f64().unwrap(),
            100.0 * c["rps_error"].as_f64().unwrap()
        );
        assert!(c["ok"].as_bool().unwrap(), "{c}");
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for s in [
        "id=\"run\"",
        "id=\"capacity\"",
        "id=\"finops\"",
        "id=\"verify\"",
    ] {
        assert!(html.contains(s), "report lacks {s}");
    }
    // Any stage re-runs alone from the kept files.
    Command::new(BIN)
        .args([
            "optimize",
            "--scenario",
            "scenarios/smoke.toml",
            "--forecast",
        ])
        .arg(out.join("forecast.json"))
        .assert()
        .success();
    Command::new(BIN)
        .arg("report")
        .arg(out.join(format!(
            "run_step{}.json",
            cap["steps"].as_array().unwrap().len()
        )))
        .arg(out.join("forecast.json"))
        .arg(out.join("plan.json"))
        .arg("--out")
        .arg(dir.path().join("again"))
        .args(["--export", "parquet"])
        .assert()
        .success()
        .stdout(contains("tables as Parquet"));
    let pq = std::fs::read(dir.path().join("again").join("plan_lines.parquet")).unwrap();
    assert!(pq.starts_with(b"PAR1") && pq.ends_with(b"PAR1"));
}
