//! Distributed runs end to end: shards of one schedule as separate
//! processes on loopback against `loadtest serve`, started together by
//! `--start-at` and added up by `loadtest merge`; the refusals; and the
//! Kubernetes manifests against the API's schema.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::{BIN, loadtest, read_json, serial, serve};

/// An RFC 3339 time `secs` from now.
fn in_secs(secs: f64) -> String {
    let t = SystemTime::now() + Duration::from_secs_f64(secs);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Two weighted kinds of request, so the test also shows each index
/// sends the same kind whichever shard sends it.
const SCENARIO: &str = r#"
name = "sharded"
[load]
timeout = "5s"
seed = 3
[[requests]]
name = "home"
path = "/"
weight = 3
[[requests]]
name = "cart"
path = "/cart"
weight = 1
"#;

/// Shard `j` of `n` of `rate` rps for `secs` in the background, its JSON
/// to `json` (`-`: its stdout and stderr, as a pod's log, to `log`).
fn shard(
    dir: &Path,
    url: &str,
    (j, n): (u32, u32),
    (rate, secs): (u32, u32),
    start: &str,
    json: &str,
) -> Child {
    let mut c = Command::new(BIN);
    c.args(["run", dir.join("s.toml").to_str().unwrap(), "--url", url])
        .args([
            "--rate",
            &rate.to_string(),
            "--duration",
            &format!("{secs}s"),
        ])
        .args(["--shard", &format!("{j}/{n}"), "--start-at", start])
        .args(["--workers", "1", "--quiet", "--json", json]);
    if json == "-" {
        let log = std::fs::File::create(dir.join(format!("shard{j}.log"))).unwrap();
        c.stdout(log.try_clone().unwrap()).stderr(log);
    } else {
        c.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    c.spawn().unwrap()
}

fn wait_ok(c: Child) {
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn whole_run(dir: &Path, url: &str, (rate, secs): (u32, u32)) -> serde_json::Value {
    let out = loadtest()
        .args(["run", dir.join("s.toml").to_str().unwrap(), "--url", url])
        .args([
            "--rate",
            &rate.to_string(),
            "--duration",
            &format!("{secs}s"),
        ])
        .args(["--workers", "1", "--quiet", "--json"])
        .arg(dir.join("whole.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_json(&dir.join("whole.json"))
}

/// Three shards of `load` (rps, seconds) started together by `--start-at`
/// (shard `log`, if any, printing its result as a pod's log), then the
/// same load unsharded, then the merge: its output, the merged result and
/// the unsharded one.
fn three_shards_then_whole(
    dir: &Path,
    url: &str,
    load: (u32, u32),
    log: Option<u32>,
) -> (Output, serde_json::Value, serde_json::Value) {
    let start = in_secs(3.0);
    let name = |j: u32| match Some(j) == log {
        true => format!("shard{j}.log"),
        false => format!("shard{j}.json"),
    };
    let shards: Vec<Child> = (0..3)
        .map(|j| {
            let json = match Some(j) == log {
                true => "-".to_string(),
                false => dir.join(name(j)).display().to_string(),
            };
            shard(dir, url, (j, 3), load, &start, &json)
        })
        .collect();
    shards.into_iter().for_each(wait_ok);
    let whole = whole_run(dir, url, load);
    let merged = dir.join("merged.json");
    let out = merge_ok((0..3).map(|j| dir.join(name(j))), &merged);
    (out, read_json(&merged), whole)
}

/// `loadtest merge INPUTS --json JSON`, which must succeed.
fn merge_ok(inputs: impl IntoIterator<Item = std::path::PathBuf>, json: &Path) -> Output {
    let out = loadtest()
        .arg("merge")
        .args(inputs)
        .arg("--json")
        .arg(json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Three shards of 300 rps × 5 s, merged: exactly the unsharded run's
/// 1,500 requests, each kind of request exactly as often (the kind is a
/// function of the seed and the index), and percentiles that agree with
/// the unsharded run's. The bound: with exponential service times of mean
/// 10 ms and 1,500 samples, one run's p50 and p95 have a standard error of
/// about 3.5%, the difference of two runs about 5%; 25% is five of those
/// standard errors, plus 3 ms for a busy 2-core machine running three
/// generators and the target at once.
#[test]
fn three_shards_merge_to_the_unsharded_run() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), SCENARIO).unwrap();
    let srv = serve(&["--workers", "64", "--service-time", "exp:10ms"]);
    let (out, m, whole) = three_shards_then_whole(dir.path(), &srv.url, (300, 5), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("send lag p99") && stdout.contains("start offset"),
        "{stdout}"
    );
    assert_eq!(m["requests"], 1500);
    assert_eq!(m["requests"], whole["requests"]);
    assert_eq!((&m["dropped"], &whole["dropped"]), (&0.into(), &0.into()));
    for k in 0..2 {
        assert_eq!(
            m["by_request"][k]["requests"], whole["by_request"][k]["requests"],
            "kind {k}"
        );
    }
    for p in ["p50", "p95"] {
        let (a, b) = (
            m["latency_ms"][p].as_f64().unwrap(),
            whole["latency_ms"][p].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 0.25 * b + 3.0,
            "{p}: merged {a} ms, one run {b} ms"
        );
    }
    let rows = m["shards"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert_eq!(r["scheduled"], 500);
        // Ready before the start, each began on time to within its tolerance.
        assert!(r["start_offset_ms"].as_f64().unwrap().abs() < 1000.0, "{r}");
    }
    let per_second: u64 = m["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(per_second, 1500);
    // `loadtest report` reads the merged result as any run.
    let rep = dir.path().join("rep");
    let out = loadtest()
        .arg("report")
        .arg(dir.path().join("merged.json"))
        .arg("--out")
        .arg(&rep)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(rep.join("index.html")).unwrap();
    assert!(
        page.contains("Shards of the distributed run"),
        "no shards table"
    );
    assert!(page.contains("send lag p99 ms"), "no send lag column");
}

/// A target that stalls for 1 s every 3 s: the requests due during a stall
/// wait for it, so about a sixth of them take over half a second. The
/// merged tail shows it as one run's does.
#[test]
fn a_stall_shows_in_the_merged_tail() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), SCENARIO).unwrap();
    let srv = serve(&[
        "--workers",
        "64",
        "--service-time",
        "const:2ms",
        "--stall",
        "1s/3s",
    ]);
    let (_, m, whole) = three_shards_then_whole(dir.path(), &srv.url, (150, 6), None);
    for r in [&m, &whole] {
        let lat = &r["latency_ms"];
        assert!(lat["p50"].as_f64().unwrap() < 100.0, "{lat}");
        assert!(lat["p90"].as_f64().unwrap() > 300.0, "{lat}");
        assert!(lat["p99"].as_f64().unwrap() > 600.0, "{lat}");
    }
    assert_eq!(m["requests"], whole["requests"]);
}

fn one_line_exit(out: &Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    err
}

/// Bad shards, a start in the past, a start missed by the warm-up (exit
/// 5), a threshold a shard misses (exit 0: the merge decides) and merges
/// of shards that do not make one run (exit 2).
#[test]
fn bad_shards_late_starts_and_mismatched_merges_are_refused() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), SCENARIO).unwrap();
    let srv = serve(&["--workers", "16", "--service-time", "const:1ms"]);
    // 50 rps for 1 s.
    let base = || {
        let mut c = loadtest();
        c.args(["run", "--url", &srv.url, "--rate", "50", "--duration", "1s"])
            .arg("--quiet");
        c
    };
    let run = |extra: &[&str]| base().args(extra).output().unwrap();
    for (shard, says) in [
        ("8/8", "numbered 0 to 7"),
        ("0/0", "at least 1 shard"),
        ("x", "J/N"),
    ] {
        let e = one_line_exit(&run(&["--shard", shard]), 2);
        assert!(e.contains("--shard") && e.contains(says), "{e}");
    }
    let e = one_line_exit(
        &run(&["--shard", "0/2", "--start-at", "2020-01-01T00:00:00Z"]),
        2,
    );
    assert!(e.contains("--start-at") && e.contains("in the past"), "{e}");
    let e = one_line_exit(&run(&["--start-at", "yesterday"]), 2);
    assert!(e.contains("RFC 3339"), "{e}");
    // Ready only after the start: the 1.5 s warm-up outlasts the 0.5 s to
    // it by about 1 s, five times the tolerance.
    let late = run(&[
        "--shard",
        "0/2",
        "--start-at",
        &in_secs(0.5),
        "--start-tolerance",
        "200ms",
        "--warmup",
        "1500ms",
    ]);
    let e = one_line_exit(&late, 5);
    assert!(e.contains("exit 5") && e.contains("sent nothing"), "{e}");

    // Two shards that miss an impossible threshold exit 0; their merge, 1.
    let start = in_secs(2.5);
    let kids: Vec<Child> = (0..2)
        .map(|j| {
            base()
                .args(["--shard", &format!("{j}/2"), "--start-at", &start])
                .args(["--threshold", "p50<1us", "--json"])
                .arg(dir.path().join(format!("s{j}.json")))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(
            err.contains("loadtest merge") && err.contains("p50<1us"),
            "{err}"
        );
    }
    let merge = |files: &[&str]| {
        loadtest()
            .arg("merge")
            .args(files.iter().map(|f| dir.path().join(f)))
            .output()
            .unwrap()
    };
    let out = merge(&["s0.json", "s1.json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("p50<1us"));
    // A shard's --abort-on-fail stopped the run: the merge exits 3, as the
    // run would have.
    let mut aborted: serde_json::Value = read_json(&dir.path().join("s1.json"));
    aborted["stopped"] = "abort_on_fail: p50<1us (measured 2.10 ms)".into();
    std::fs::write(dir.path().join("aborted.json"), aborted.to_string()).unwrap();
    let out = merge(&["s0.json", "aborted.json"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard 1: abort_on_fail"));
    let e = one_line_exit(&merge(&["s0.json"]), 2);
    assert!(e.contains("shard 1 of 2 missing"), "{e}");
    let e = one_line_exit(&merge(&["s0.json", "s0.json"]), 2);
    assert!(e.contains("both shard 0"), "{e}");
    let mut other: serde_json::Value = read_json(&dir.path().join("s1.json"));
    other["seed"] = 99.into();
    std::fs::write(dir.path().join("other.json"), other.to_string()).unwrap();
    let e = one_line_exit(&merge(&["s0.json", "other.json"]), 2);
    assert!(e.contains("other.json") && e.contains("seed"), "{e}");
    let whole = run(&["--json", dir.path().join("whole.json").to_str().unwrap()]);
    assert!(whole.status.success());
    let e = one_line_exit(&merge(&["s0.json", "whole.json"]), 2);
    assert!(e.contains("whole.json") && e.contains("not a shard"), "{e}");
    std::fs::write(dir.path().join("junk.log"), "no result here\n").unwrap();
    let e = one_line_exit(&merge(&["s0.json", "junk.log"]), 2);
    assert!(e.contains("junk.log") && e.contains("no run result"), "{e}");
}

/// The rendered manifests: as in the golden copy, and valid against the
/// Kubernetes 1.31 API schema of v1 ConfigMap and batch/v1 Job, strictly
/// (no unknown field), by `kubernetes-validate` (PyPI; scripts/setup.sh
/// installs it).
#[test]
fn k8s_render_matches_its_golden_copy_and_the_api_schema() {
    let render = |n: &str, extra: &[&str]| {
        loadtest()
            .args([
                "k8s",
                "render",
                "scenarios/distributed.toml",
                "--parallelism",
                n,
            ])
            .args([
                "--image",
                "registry.example/loadtest:0.1",
                "--namespace",
                "load",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = render("8", &["--start-at", "2027-01-05T10:00:00Z"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    // The deadline counts from now; the rest is fixed by the flags.
    let deadline_line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("activeDeadlineSeconds:"))
        .unwrap();
    let deadline: u64 = deadline_line
        .split(':')
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let until_start = humantime::parse_rfc3339("2027-01-05T10:00:00Z")
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs();
    // The start, the 30 s warm-up, the 10 min run, the 5 s timeout, 10 min spare.
    assert!(
        deadline.abs_diff(until_start + 30 + 600 + 5 + 600) <= 5,
        "{deadline}"
    );
    let normalised = yaml.replace(deadline_line, "  activeDeadlineSeconds: DEADLINE");
    let golden = Path::new("tests/golden/k8s-render.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, &normalised).unwrap();
    }
    assert_eq!(
        normalised,
        std::fs::read_to_string(golden).unwrap(),
        "UPDATE_GOLDEN=1 rewrites it"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &yaml).unwrap();
    let check = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "-k", "1.31.0"])
        .arg(file.path())
        .output()
        .expect("python3 runs");
    let said = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(
        !said.contains("No module named"),
        "kubernetes-validate is missing: run `bash scripts/setup.sh`"
    );
    assert!(check.status.success(), "{said}");
    assert_eq!(said.matches("passed for resource").count(), 2, "{said}");
    // A schema violation is caught: the checker is not a formality.
    std::fs::write(file.path(), yaml.replace("completionMode", "completionMod")).unwrap();
    let bad = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "-k", "1.31.0"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());

    // The pods' command line is one `loadtest run` accepts: each flag
    // parses (shown by the start check, which comes after every other; a
    // start in the past stops it before any connection).
    let out = render("3", &["--start-in", "1m", "--start-tolerance", "1500ms"]);
    let yaml = String::from_utf8(out.stdout).unwrap();
    let args: Vec<String> = yaml
        .lines()
        .skip_while(|l| l.trim() != "- args:")
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- \""))
        .map(|l| serde_json::from_str::<String>(l.trim().trim_start_matches("- ")).unwrap())
        .map(|a| {
            a.replace("$(JOB_COMPLETION_INDEX)", "2")
                .replace("/scenario/scenario.toml", "scenarios/distributed.toml")
        })
        .collect();
    assert!(args.contains(&"1500ms".to_string()), "{args:?}");
    let at = args.iter().position(|a| a == "--start-at").unwrap() + 1;
    let mut past = args.clone();
    past[at] = "2020-01-01T00:00:00.000Z".into();
    let e = one_line_exit(&loadtest().args(&past).output().unwrap(), 2);
    assert!(e.contains("--start-at") && e.contains("in the past"), "{e}");

    // Bad input: one line, exit 2.
    let e = one_line_exit(&render("0", &[]), 2);
    assert!(e.contains("--parallelism"), "{e}");
    let out = loadtest()
        .args([
            "k8s",
            "render",
            "scenarios/smoke.toml",
            "--parallelism",
            "2",
            "--image",
            "x",
        ])
        .output()
        .unwrap();
    let e = one_line_exit(&out, 2);
    assert!(e.contains("reach") || e.contains("url"), "{e}");
}

/// Kubernetes stops a pod with SIGTERM (when the Job fails, or is
/// deleted): the shard stops sending, and still prints what it measured
/// as its last line, stopped as interrupted (exit 130).
#[cfg(unix)]
#[test]
fn a_terminated_shard_still_prints_its_partial_result() {
    let _g = serial();
    let srv = serve(&["--service-time", "const:1ms"]);
    let child = Command::new(BIN)
        .args([
            "run",
            "--url",
            &srv.url,
            "--rate",
            "100",
            "--duration",
            "60s",
        ])
        .args([
            "--shard",
            "1/2",
            "--start-at",
            &in_secs(1.0),
            "--quiet",
            "--json",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["stopped"], "interrupted");
    // About 2 s at 50 rps (this shard's half of 100).
    let n = v["requests"].as_u64().unwrap();
    assert!((40..=150).contains(&n), "{n} requests");
    assert_eq!(v["shard"]["index"], 1);
}

/// A ramp (k6's ramping arrival rate) split over three shards: 0 → 100 rps
/// over 1 s, then 100 → 300 rps over 2 s, 50 + 400 = 450 requests. The
/// merge holds every one of them, and each second's scheduled rate adds up
/// to the ramp's.
#[test]
fn a_ramp_split_over_shards_sends_its_whole_integral() {
    let _g = serial();
    let srv = serve(&["--workers", "32", "--service-time", "const:1ms"]);
    let dir = tempfile::tempdir().unwrap();
    let start = in_secs(2.5);
    let kids: Vec<Child> = (0..3)
        .map(|j| {
            Command::new(BIN)
                .args(["run", "--url", &srv.url, "--stages", "1s:100,2s:300"])
                .args(["--shard", &format!("{j}/3"), "--start-at", &start])
                .args(["--workers", "1", "--quiet", "--json"])
                .arg(dir.path().join(format!("r{j}.json")))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    kids.into_iter().for_each(wait_ok);
    let merged = dir.path().join("merged.json");
    merge_ok(
        (0..3).map(|j| dir.path().join(format!("r{j}.json"))),
        &merged,
    );
    let m = read_json(&merged);
    assert_eq!(
        (m["requests"].as_u64(), m["dropped"].as_u64()),
        (Some(450), Some(0))
    );
    let scheduled: Vec<u64> = m["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scheduled"].as_u64().unwrap())
        .collect();
    assert_eq!(scheduled, [150, 150, 150]);
    // Seconds 0, 1, 2 of the ramp: 50, 150 and 250 requests due.
    let due: Vec<f64> = m["series"].as_array().unwrap()[..3]
        .iter()
        .map(|r| r["target_rps"].as_f64().unwrap())
        .collect();
    for (got, want) in due.iter().zip([50.0, 150.0, 250.0]) {
        assert!((got - want).abs() < 1e-6, "{due:?}");
    }
}
