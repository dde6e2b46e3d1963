//! Issue #12 end to end: the capacity search, goodput and warm-up, and the
//! checks `plan --verify` makes before its first request, against
//! `loadtest serve` on 127.0.0.1.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::prelude::*;
use predicates::prelude::*;
use predicates::str::contains;

mod common;
use common::*;

/// 4 workers × 10 ms is 400 rps at most. The search finds it by itself,
/// within what the mechanism allows: goodput never exceeds the true
/// capacity, and at the plateau (16 connections queueing on 4 workers) it
/// is all but reached.
#[test]
fn find_capacity_finds_the_saturation_throughput_and_the_knee() {
    let _g = serial();
    let s = serve(&["--workers", "4", "--service-time", "const:10ms"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("capacity.json");
    Command::new(BIN)
        .args(["run", "--url", &s.url, "--find-capacity", "--quiet"])
        .args(["--probe", "1s", "--duration", "2s", "--warmup", "0s"])
        .args(["--threshold", "p95<200ms", "--json"])
        .arg(&json)
        .assert()
        .success()
        .stdout(contains("capacity of"));
    let v = read_json(&json);
    assert_eq!(v["kind"], "capacity");
    let x = v["capacity_rps"].as_f64().unwrap();
    assert!((300.0..=404.0).contains(&x), "capacity {x}");
    let steps = v["steps"].as_array().unwrap();
    let rate: Vec<_> = steps.iter().filter(|s| s["phase"] == "rate").collect();
    assert_eq!(rate.len(), 7, "{steps:?}");
    // 110% of the measured capacity falls behind whenever it is more than
    // the 400 rps the workers can serve. On a busy machine the sweep can
    // measure less than that (each 10 ms sleep ran late), and 110% of it
    // may then still be served.
    let offered = rate[6]["offered_rps"].as_f64().unwrap();
    if offered > 404.0 {
        assert_eq!(rate[6]["verdict"], "falling_behind", "{:?}", rate[6]);
    } else {
        assert!(
            rate[6]["goodput_rps"].as_f64().unwrap() <= 404.0,
            "{:?}",
            rate[6]
        );
    }
    let knee = v["knee_rps"].as_f64().unwrap();
    assert!(
        knee >= 0.6 * x && knee <= 1.0 * x + 1.0,
        "knee {knee} of {x}"
    );
}

/// Nothing is sent faster than --max-rate: the concurrency sweep stops
/// before a doubling that could pass it, and no rate step is above it.
#[test]
fn find_capacity_never_passes_max_rate() {
    let _g = serial();
    let s = serve(&["--workers", "8", "--service-time", "const:5ms"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("capacity.json");
    Command::new(BIN)
        .args(["run", "--url", &s.url, "--find-capacity", "--quiet"])
        .args(["--probe", "1s", "--duration", "1s", "--warmup", "0s"])
        .args(["--max-rate", "500", "--json"])
        .arg(&json)
        .assert()
        .success();
    let v = read_json(&json);
    assert_eq!(v["capacity_at_least"], true, "{v}");
    for st in v["steps"].as_array().unwrap() {
        let rps = st["rps"].as_f64().unwrap();
        assert!(rps <= 500.0 * 1.02, "{st}");
        if let Some(o) = st["offered_rps"].as_f64() {
            assert!(o <= 500.0, "{st}");
        }
    }
}

/// A target that fails from the first step: one line naming the step and
/// the rate, exit 2, and nothing after that step.
#[test]
fn a_target_failing_from_the_first_step_is_exit_2() {
    let _g = serial();
    let s = serve(&["--error-rate", "1.0", "--service-time", "const:1ms"]);
    let out = Command::new(BIN)
        .args(["run", "--url", &s.url, "--find-capacity", "--quiet"])
        .args(["--probe", "1s", "--warmup", "0s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("step 1 (1 connection, at most 5000 rps)"),
        "{err}"
    );
    assert!(err.contains("http_5xx"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// Past saturation, `rps` and `goodput_rps` are what was served in the
/// window, not the offered rate: 1 worker × 20 ms serves 50 rps.
#[test]
fn goodput_is_what_was_served_not_what_was_offered() {
    let _g = serial();
    let s = serve(&["--workers", "1", "--service-time", "const:20ms"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    Command::new(BIN)
        .args(["run", "--url", &s.url, "--rate", "100", "--duration", "3s"])
        .args(["--quiet", "--json"])
        .arg(&json)
        .assert()
        .success();
    let v = read_json(&json);
    assert_eq!(v["offered_rps"].as_f64().unwrap(), 100.0);
    let (rps, goodput) = (
        v["rps"].as_f64().unwrap(),
        v["goodput_rps"].as_f64().unwrap(),
    );
    // At most 50 served per second; the 150 drained after the window are
    // not throughput.
    assert!((40.0..=51.0).contains(&goodput), "goodput {goodput}");
    assert!(rps <= 51.0, "rps {rps}");
    assert_eq!(v["requests"].as_u64().unwrap(), 300);
    assert!(!v["started_at"].as_str().unwrap().is_empty());
}

/// The warm-up is sent but not counted.
#[test]
fn the_warm_up_is_not_counted() {
    let _g = serial();
    let s = serve(&["--service-time", "const:1ms"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    Command::new(BIN)
        .args(["run", "--url", &s.url, "--rate", "50", "--duration", "1s"])
        .args(["--warmup", "1s", "--json"])
        .arg(&json)
        .assert()
        .success()
        .stderr(contains("warm-up 1.0 s: 50 requests"));
    assert_eq!(read_json(&json)["requests"].as_u64().unwrap(), 50);
}

/// `--verify` with a URL needs the replicas, and says so before any
/// request; an unreachable replica is found before any request too.
#[test]
fn plan_verify_checks_its_replicas_before_the_first_request() {
    let _g = serial();
    let s = serve(&["--service-time", "const:1ms"]);
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("s.toml");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = root.join("scenarios/catalog/aws-us-east-1.csv");
    let text = std::fs::read_to_string(root.join("scenarios/real-stack.toml"))
        .unwrap()
        .replace("http://127.0.0.1:58081/item", &s.url)
        .replace("\"catalog/aws-us-east-1.csv\"", &format!("{catalog:?}"));
    std::fs::write(&scn, text).unwrap();
    let out = dir.path().join("out");
    Command::new(BIN)
        .args(["plan", scn.to_str().unwrap(), "--verify", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(contains("--replica-url URL for each"));
    // A free port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    Command::new(BIN)
        .args(["plan", scn.to_str().unwrap(), "--verify", "--out"])
        .arg(&out)
        .args(["--replica-url", &s.url, "--replica-url", &dead])
        .assert()
        .code(2)
        .stderr(contains("--replica-url").and(contains("cannot connect")));
    assert!(!out.exists(), "nothing may run before the check");
}

/// Ctrl-C during the search keeps the steps measured so far.
#[cfg(unix)]
#[test]
fn ctrl_c_during_the_search_writes_what_was_measured() {
    let _g = serial();
    let s = serve(&["--workers", "4", "--service-time", "const:5ms"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("capacity.json");
    let child = Command::new(BIN)
        .args(["run", "--url", &s.url, "--find-capacity", "--quiet"])
        .args(["--probe", "1s", "--warmup", "0s", "--json"])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first probes take a second each.
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = read_json(&json);
    assert!(!v["steps"].as_array().unwrap().is_empty());
    assert!(v["ended"].as_str().unwrap().starts_with("stopped"), "{v}");
}
