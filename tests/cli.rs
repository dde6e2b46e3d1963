//! End to end: the `loadtest` binary as a user runs it, against
//! `loadtest serve` on 127.0.0.1 with a free port.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use predicates::prelude::*;
use predicates::str::contains;

mod common;
use common::*;

#[test]
fn run_passes_thresholds_and_writes_every_output() {
    let _g = serial();
    let s = serve(&["--workers", "8", "--service-time", "exp:5ms"]);
    let dir = tempfile::tempdir().unwrap();
    let (json, csv, hdr) = (
        dir.path().join("o.json"),
        dir.path().join("o.csv"),
        dir.path().join("o.hdr"),
    );
    loadtest()
        .args([
            "run",
            "--url",
            &s.url,
            "--rate",
            "200",
            "--duration",
            "3s",
            "--quiet",
        ])
        .args(["--threshold", "p95<200ms", "--threshold", "error_rate<1%"])
        .args([
            "--json",
            json.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
            "--hdr",
            hdr.to_str().unwrap(),
        ])
        .assert()
        .code(0)
        .stdout(contains("PASS  p95<200ms").and(contains("from schedule")));
    let v = read_json(&json);
    for key in [
        "requests",
        "ok",
        "errors",
        "duration_s",
        "rps",
        "target_rps",
        "dropped",
        "latency_ms",
        "thresholds",
        "seed",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in ["mean", "p50", "p90", "p95", "p99", "p999", "max"] {
        assert!(v["latency_ms"][key].is_f64(), "latency_ms.{key}");
    }
    assert_eq!(v["requests"], 600);
    assert_eq!(v["target_rps"], 200.0);
    assert_eq!(v["thresholds"][0]["expr"], "p95<200ms");
    assert_eq!(v["thresholds"][0]["ok"], true);
    for class in [
        "connect", "timeout", "reset", "http_4xx", "http_5xx", "protocol",
    ] {
        assert_eq!(v["errors"][class], 0, "{class}");
    }
    let csv = std::fs::read_to_string(&csv).unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("t_s,requests,ok,errors,rps,p50_ms,p95_ms,p99_ms")
    );
    let rows: u64 = lines
        .map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(rows, 600);
    let hdr = std::fs::read_to_string(&hdr).unwrap();
    assert!(
        hdr.contains("#[StartTime: ") && hdr.contains("HISTF"),
        "{hdr}"
    );
}

#[test]
fn a_missed_threshold_exits_1() {
    let _g = serial();
    let s = serve(&["--service-time", "const:20ms"]);
    loadtest()
        .args([
            "run",
            "--url",
            &s.url,
            "--rate",
            "50",
            "--duration",
            "1s",
            "--quiet",
            "--threshold",
            "p95<5ms",
        ])
        .assert()
        .code(1)
        .stdout(contains("FAIL  p95<5ms"))
        .stderr(contains("threshold missed (exit 1): p95<5ms"));
}

#[test]
fn abort_on_fail_stops_a_bad_build_early() {
    let _g = serial();
    let s = serve(&["--service-time", "const:30ms", "--error-rate", "0.5"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("o.json");
    let started = Instant::now();
    loadtest()
        .args([
            "run",
            "--url",
            &s.url,
            "--rate",
            "50",
            "--duration",
            "60s",
            "--quiet",
        ])
        .args([
            "--threshold",
            "error_rate<1%",
            "--abort-on-fail",
            "--abort-delay",
            "1s",
        ])
        .args(["--json", json.to_str().unwrap()])
        .assert()
        .code(3)
        .stderr(contains(
            "aborted early (exit 3): abort_on_fail: error_rate<1%",
        ));
    assert!(started.elapsed() < Duration::from_secs(15));
    let v = read_json(&json);
    assert!(v["stopped"].as_str().unwrap().starts_with("abort_on_fail"));
    assert!(v["requests"].as_u64().unwrap() < 500);
}

#[test]
fn scenario_headers_expand_env_and_secrets_stay_hidden() {
    let _g = serial();
    let s = serve(&["--service-time", "const:1ms"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("o.json");
    let scn = dir.path().join("s.toml");
    std::fs::write(
        &scn,
        format!(
            "name = \"secret\"\n[target]\nurl = \"{}\"\n[load]\nrate = 100\nduration = \"1s\"\n\
             [[requests]]\npath = \"/a\"\nheaders = {{ Authorization = \"Bearer ${{API_TOKEN}}\" }}\nweight = 3\n\
             [[requests]]\npath = \"/b\"\nmethod = \"POST\"\nbody = \"x\"\nheaders = {{ X-Custom = \"${{API_TOKEN}}\" }}\n",
            s.url
        ),
    )
    .unwrap();
    let out = loadtest()
        .env("API_TOKEN", "hunter2-very-secret")
        .args([
            "run",
            scn.to_str().unwrap(),
            "--quiet",
            "--json",
            json.to_str().unwrap(),
            // Any header from the environment is a secret, whatever its name.
            "-H",
            "X-Auth: id-${API_TOKEN}",
        ])
        .assert()
        .code(0)
        .stdout(contains("Authorization: ***"))
        .stdout(contains("X-Custom: ***"))
        .stdout(contains("X-Auth: ***"))
        .get_output()
        .clone();
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(!text.contains("hunter2"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["requests"], 100);
    assert_eq!(v["requests_sent"][0]["headers"][0], "Authorization: ***");
    // Unset variables are an error, not an empty secret.
    loadtest()
        .args(["run", scn.to_str().unwrap(), "--quiet"])
        .env_remove("API_TOKEN")
        .assert()
        .code(2)
        .stderr(contains("`API_TOKEN` is not set"));
}

#[cfg(unix)]
#[test]
fn ctrl_c_writes_partial_results() {
    let _g = serial();
    let s = serve(&["--service-time", "const:1ms"]);
    let dir = tempfile::tempdir().unwrap();
    let (json, csv) = (dir.path().join("o.json"), dir.path().join("o.csv"));
    let child = long_run(&s.url, &[("--json", &json), ("--csv", &csv)]);
    std::thread::sleep(Duration::from_millis(2500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted (exit 130)"));
    let v = read_json(&json);
    assert_eq!(v["stopped"], "interrupted");
    let n = v["requests"].as_u64().unwrap();
    assert!((150..=300).contains(&n), "{n} requests");
    assert!(std::fs::read_to_string(&csv).unwrap().lines().count() >= 3);
}

/// A run killed outright (no chance to flush) keeps each second it had
/// finished: the CSV and the HdrHistogram log are written once a second.
#[cfg(unix)]
#[test]
fn a_killed_run_keeps_every_finished_second() {
    let _g = serial();
    let s = serve(&["--service-time", "const:1ms"]);
    let dir = tempfile::tempdir().unwrap();
    let (csv, hdr) = (dir.path().join("o.csv"), dir.path().join("o.hdr"));
    let mut child = long_run(&s.url, &[("--csv", &csv), ("--hdr", &hdr)]);
    // Wait for three finished seconds in the CSV (bounded: 30 s).
    let rows = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count().saturating_sub(1))
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while rows(&csv) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let csv_rows = rows(&csv);
    assert!(csv_rows >= 3, "{csv_rows} CSV rows");
    // Interval lines start with the interval's start time; every second the
    // CSV has, the log has too (the log is written first).
    let log = std::fs::read_to_string(&hdr).unwrap();
    let intervals = log
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert!(
        intervals >= csv_rows,
        "{intervals} intervals, {csv_rows} CSV rows:\n{log}"
    );
}

/// `run --help` gives each flag's default and every exit code.
#[test]
fn run_help_shows_defaults_and_exit_codes() {
    let out = loadtest()
        .args(["run", "--help"])
        .assert()
        .success()
        .get_output()
        .clone();
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "How long to run, e.g. 30s, 2m [default: 30s]",
        "Per-request timeout [default: 10s]",
        "[default: 10000]",
        "3 --abort-on-fail stopped it, 130 interrupted",
    ] {
        assert!(help.contains(want), "`{want}` not in run --help");
    }
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--url", "localhost:8080", "--rate", "10"],
            "bad URL `localhost:8080`",
        ),
        (
            &[
                "run",
                "--url",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--threshold",
                "p95<fast",
            ],
            "bad threshold `p95<fast`",
        ),
        (
            &[
                "run",
                "--url",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--duration",
                "ten",
            ],
            "--duration: bad duration `ten`",
        ),
        (
            &["run", "--url", "http://127.0.0.1:9/", "--rate", "-3"],
            "--rate must be > 0",
        ),
        (&["run", "--url", "http://127.0.0.1:9/"], "no load given"),
        (
            &[
                "run",
                "--url",
                "http://127.0.0.1:9/",
                "--connections",
                "4",
                "--coalesce",
                "5ms",
            ],
            "--coalesce must be at most 1ms",
        ),
        (
            &[
                "run",
                "--url",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--header",
                "Content-Length: 3",
            ],
            "header `Content-Length` is set by loadtest from the body",
        ),
        (&["run", "--rate", "10"], "no target URL"),
        (
            &["run", "--url", "http://127.0.0.1:9/", "--stages", "fast"],
            "bad stages",
        ),
        (
            &["run", "no-such-file.toml"],
            "cannot read scenario no-such-file.toml",
        ),
        (
            &["serve", "--service-time", "gamma:3ms"],
            "bad service time",
        ),
        (&["serve", "--host", "0.0.0.0"], "not a loopback address"),
        // Flags clap parses into durations and enums (issue 15): one line
        // naming the flag, as the others.
        (
            &["report", "x.json", "--out", "x", "--format", "pdf"],
            "--format: `pdf` is not one of html, md",
        ),
        (
            &[
                "plan",
                "scenarios/smoke.toml",
                "--out",
                "x",
                "--step",
                "1parsec",
            ],
            "--step: bad duration `1parsec`",
        ),
        (&["run", "--bogus"], "unexpected argument"),
        // Not the default port under another port's name.
        (
            &["run", "--url", "http://127.0.0.1:99999/", "--rate", "10"],
            "port 99999 is out of range (use 1-65535)",
        ),
        // Rates no generator can send are refused, not run forever.
        (
            &["run", "--url", "http://127.0.0.1:9/", "--rate", "1e9"],
            "at most 10000000 rps",
        ),
        (
            &["run", "--url", "http://127.0.0.1:9/", "--rate", "1e308"],
            "at most 10000000 rps",
        ),
        (
            &[
                "run",
                "--url",
                "http://127.0.0.1:9/",
                "--stages",
                "1s:1e308",
            ],
            "at most 10000000 rps",
        ),
    ];
    for (args, msg) in cases {
        let out = loadtest()
            .args(*args)
            .assert()
            .code(2)
            .stderr(contains(*msg))
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        if !args.contains(&"--bogus") {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
    }
}

#[test]
fn an_unreachable_target_exits_2() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    loadtest()
        .args([
            "run",
            "--url",
            &format!("http://127.0.0.1:{port}/"),
            "--rate",
            "10",
            "--duration",
            "1s",
        ])
        .assert()
        .code(2)
        .stderr(contains("cannot connect to").and(contains("loadtest serve")));
}

/// An output path that cannot be written is bad input found before any
/// load is sent, not a run measured and then lost.
#[test]
fn an_unwritable_output_exits_2_before_the_run() {
    let _g = serial();
    let s = serve(&["--service-time", "const:1ms"]);
    for flag in ["--json", "--csv", "--hdr"] {
        let started = Instant::now();
        let out = loadtest()
            .args(["run", "--url", &s.url, "--rate", "50", "--duration", "10s"])
            .args([flag, "/nonexistent-dir/out.file"])
            .assert()
            .code(2)
            .stderr(contains("cannot create /nonexistent-dir/out.file"))
            .get_output()
            .clone();
        assert!(out.stdout.is_empty(), "{flag}: a summary was printed");
        // Refused at once, not after the 10 s run.
        assert!(started.elapsed() < Duration::from_secs(8), "{flag}");
    }
}

/// A certificate the machine does not trust is one clear error with the
/// way out, before any load, not a run of 100% connect errors.
#[test]
fn an_untrusted_certificate_exits_2_and_says_why() {
    let _g = serial();
    let s = serve(&["--tls", "--service-time", "const:1ms"]);
    assert!(s.url.starts_with("https://"), "{}", s.url);
    let run = || {
        let mut c = loadtest();
        c.args([
            "run",
            "--url",
            &s.url,
            "--rate",
            "10",
            "--duration",
            "1s",
            "--quiet",
        ]);
        c
    };
    run()
        .assert()
        .code(2)
        .stderr(contains("certificate is not trusted").and(contains("use --insecure")));
    run().arg("--insecure").assert().code(0);
}

#[test]
fn scenario_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let scn = dir.path().join("bad.toml");
    std::fs::write(&scn, "[target]\nurl = \"http://127.0.0.1:9/\"\n[load]\nrate = 10\nthresholds = [\"p95<200ms\", \"p99<=soon\"]\n").unwrap();
    loadtest()
        .args(["run", scn.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("bad.toml:5:14:").and(contains("bad threshold `p99<=soon`")));
}

#[test]
fn shipped_smoke_scenario_runs_against_the_built_in_target() {
    let _g = serial();
    let s = serve(&["--workers", "8", "--service-time", "lognormal:20ms,60ms"]);
    let root = env!("CARGO_MANIFEST_DIR");
    loadtest()
        .current_dir(root)
        .args([
            "run",
            "scenarios/smoke.toml",
            "--url",
            &s.url,
            "--duration",
            "2s",
            "--quiet",
        ])
        .assert()
        .code(0)
        .stdout(contains("PASS  p95<200ms").and(contains("POST")));
}

#[test]
fn smoke_scenario_alone_runs_on_the_in_process_built_in_target() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("o.json");
    loadtest()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "scenarios/smoke.toml",
            "--duration",
            "2s",
            "--json",
            json.to_str().unwrap(),
        ])
        .assert()
        .code(0)
        .stderr(contains("built-in target on http://127.0.0.1:"));
    let v = read_json(&json);
    assert_eq!(v["requests"], 200);
    // lognormal service time with mean 20 ms: the median sits below the mean.
    let p50 = v["latency_ms"]["p50"].as_f64().unwrap();
    assert!((10.0..25.0).contains(&p50), "p50 {p50}");
}

fn write_scenario(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `loadtest simulate` of `scenario` (written as s.toml in `dir`) with
/// `--json f.json`, and where that JSON goes.
fn simulate_to_json(dir: &Path, scenario: &str) -> (Command, std::path::PathBuf) {
    let scn = write_scenario(dir, "s.toml", scenario);
    let json = dir.join("f.json");
    let mut cmd = loadtest();
    cmd.args([
        "simulate",
        scn.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    (cmd, json)
}

const SMALL_SIM: &str = r#"name = "small"
[traffic]
rate = 200.0
[service]
replicas = 2
workers_per_replica = 4
service_time = { dist = "exponential", mean_ms = 10.0 }
[autoscaling]
policy = "hpa"
min = 1
max = 6
target_cpu = 0.5
[cost]
replica_hourly = 0.2
[simulation]
duration = "20m"
warmup = "2m"
seed = 5
replications = 3
"#;

/// Workers sharing fewer cores: the forecast is the same with 1 and 2
/// threads, its CPU counts busy cores (4 workers on 1 core run hotter
/// than 4 workers with a core each, so the HPA adds replicas), and a
/// core count of 0 is refused with the key's line.
#[test]
fn simulate_with_shared_cores() {
    let dir = tempfile::tempdir().unwrap();
    let shared = SMALL_SIM.replace(
        "workers_per_replica = 4\n",
        "workers_per_replica = 4\ncores_per_replica = 1\nswitch_cost = 0.05\n",
    );
    assert_ne!(shared, SMALL_SIM);
    let forecast = |text: &str, threads: &str| {
        let (mut cmd, json) = simulate_to_json(dir.path(), text);
        cmd.env("RAYON_NUM_THREADS", threads).assert().code(0);
        let mut v = read_json(&json);
        for k in ["started_at", "duration_s"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    let one = forecast(&shared, "1");
    assert_eq!(
        one,
        forecast(&shared, "2"),
        "differs between 1 and 2 threads"
    );
    let fifo = forecast(SMALL_SIM, "1");
    let mean = |v: &serde_json::Value| v["replicas"]["mean"].as_f64().unwrap();
    assert!(
        mean(&one) > mean(&fifo) + 0.5,
        "{} vs {}",
        mean(&one),
        mean(&fifo)
    );
    let bad = SMALL_SIM.replace(
        "workers_per_replica = 4\n",
        "workers_per_replica = 4\ncores_per_replica = 0\n",
    );
    let (mut cmd, _) = simulate_to_json(dir.path(), &bad);
    cmd.assert()
        .code(2)
        .stderr(contains("s.toml:7:"))
        .stderr(contains("cores_per_replica must be within 1..=100000"));
}

/// A `[cache]` tier: its hit ratio, memory and database reads are in the
/// forecast; a working set given neither fixed nor per user, or an
/// unknown key, is refused with its line.
#[test]
fn simulate_with_a_cache_tier() {
    let dir = tempfile::tempdir().unwrap();
    let cached =
        format!("{SMALL_SIM}[cache]\nmemory_mb = 1\nobject_kb = 2.0\nkeys = 2048\nzipf = 0.8\n");
    let (mut cmd, json) = simulate_to_json(dir.path(), &cached);
    cmd.assert().code(0);
    let v = read_json(&json);
    let c = &v["windows"][0]["cache"];
    // 1 MB of 2 KB keys holds 512 of the 2048: a quarter of the keys,
    // and (popular keys first) more than a quarter of the lookups.
    assert_eq!(c["held_share"], 0.25);
    let hit = c["hit_ratio"].as_f64().unwrap();
    assert!(hit > 0.25 && hit < 1.0, "{hit}");
    assert_eq!(c["memory_used_mb"], 1.0);
    for (bad, says) in [
        (
            "[cache]\nmemory_mb = 1\nobject_kb = 2.0\n",
            "exactly one of keys",
        ),
        (
            "[cache]\nmemory_mb = 1\nobject_kb = 2.0\nkeys = 10\nkeys_per_user = 1\n",
            "exactly one of keys",
        ),
        (
            "[cache]\nmemory_mb = 1\nobject_kb = 2.0\nkeys = 10\nsize = 3\n",
            "unknown field `size`",
        ),
    ] {
        let (mut cmd, _) = simulate_to_json(dir.path(), &format!("{SMALL_SIM}{bad}"));
        cmd.assert()
            .code(2)
            .stderr(contains("s.toml:2"))
            .stderr(contains(says));
    }
}

#[test]
fn simulate_writes_the_forecast_and_is_identical_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let scn = write_scenario(dir.path(), "s.toml", SMALL_SIM);
    let mut outs = Vec::new();
    for threads in ["1", "2"] {
        let json = dir.path().join(format!("f{threads}.json"));
        let csv = dir.path().join(format!("f{threads}.csv"));
        loadtest()
            .env("RAYON_NUM_THREADS", threads)
            .args([
                "simulate",
                scn.to_str().unwrap(),
                "--json",
                json.to_str().unwrap(),
                "--csv",
                csv.to_str().unwrap(),
            ])
            .assert()
            .code(0)
            .stdout(contains("simulated: one window of 20m"));
        // Every byte but when it was made and how long it took.
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        for k in ["started_at", "duration_s"] {
            assert!(v.as_object_mut().unwrap().remove(k).is_some(), "{k}");
        }
        outs.push((
            serde_json::to_vec(&v).unwrap(),
            std::fs::read_to_string(&csv).unwrap(),
        ));
    }
    assert_eq!(outs[0].0, outs[1].0, "JSON differs between 1 and 2 threads");
    let v: serde_json::Value = serde_json::from_slice(&outs[0].0).unwrap();
    for key in ["p50", "p95", "p99", "mean"] {
        assert!(
            v["latency_ms"][key].as_f64().unwrap() > 0.0,
            "latency_ms.{key}"
        );
    }
    for key in ["utilization", "requests", "errors", "cost"] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert!(v["replicas"]["max"].as_u64().unwrap() <= 6);
    assert_eq!(v["slo"]["p95_target_ms"], 200.0);
    assert!(
        v["latency_ci95_ms"].is_array(),
        "3 replications give confidence intervals"
    );
    assert!(
        outs[0]
            .1
            .starts_with("window,t_s,day,users,offered_rps,replicas")
    );
    assert_eq!(outs[0].1.lines().count(), 1 + 20);
}

#[test]
fn simulate_rejects_bad_input_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("rate = 200.0", "rate = -5.0"),
        ("min = 1\nmax = 6", "min = 8\nmax = 6"),
        ("dist = \"exponential\"", "dist = \"gamma\""),
        ("target_cpu = 0.5", "target_cpu = 0.5\ntarget_pcu = 0.5"),
        // Values the engine cannot take are refused, not run for minutes.
        ("rate = 200.0", "rate = 1e9"),
        ("replica_hourly = 0.2", "replica_hourly = nan"),
        ("mean_ms = 10.0", "mean_ms = 1e300"),
        ("duration = \"20m\"", "duration = \"30d\""),
        ("max = 6", "max = 4000000000"),
    ];
    // Inside tagged tables (`policy = ...`, `dist = ...`) the position is the table's.
    let wants = [
        "rate must be > 0, got -5",
        "needs 1 <= min <= max <= 100000, got min = 8, max = 6",
        "s.toml:7:",
        "s.toml:8:1: unknown field `target_pcu`",
        "more than the 1000000 the simulator takes",
        "[cost] replica_hourly must be a price >= 0, got NaN",
        "from 0 to 3600000 (an hour)",
        "[simulation] duration must be at most 7 days",
        "max <= 100000",
    ];
    for ((from, to), want) in cases.iter().zip(wants) {
        let scn = write_scenario(dir.path(), "s.toml", &SMALL_SIM.replace(from, to));
        let out = loadtest()
            .args(["simulate", scn.to_str().unwrap()])
            .assert()
            .code(2)
            .stderr(contains(want))
            .get_output()
            .clone();
        assert_eq!(
            String::from_utf8_lossy(&out.stderr)
                .trim_end()
                .lines()
                .count(),
            1
        );
    }
    let scn = write_scenario(dir.path(), "s.toml", "name = \"x\"\n");
    loadtest()
        .args(["simulate", scn.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("no [traffic] section"));
    // A rate near zero is about no requests: the clock saturates, it does
    // not wrap into made-up arrivals.
    let (mut cmd, json) = simulate_to_json(
        dir.path(),
        &SMALL_SIM.replace("rate = 200.0", "rate = 1e-16"),
    );
    cmd.assert().code(0);
    let f = read_json(&json);
    assert_eq!(f["requests"], 0);
    assert_eq!(f["errors"], 0);
}

/// Every error names a place: the line of a key a cross-field check is
/// about, the first byte that is not UTF-8, and a huge bad value is cut.
#[test]
fn scenario_problems_name_their_line_and_cut_long_values() {
    let dir = tempfile::tempdir().unwrap();
    let scn = write_scenario(
        dir.path(),
        "s.toml",
        &SMALL_SIM.replace("rate = 200.0", "rate = 1e9"),
    );
    loadtest()
        .args(["simulate", scn.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("s.toml:2:1: [traffic] the offered load"));
    let scn = write_scenario(
        dir.path(),
        "s.toml",
        &SMALL_SIM.replace("replica_hourly = 0.2", "replica_hourly = -1.0"),
    );
    loadtest()
        .args(["validate", scn.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains(
            "s.toml:14:1: [cost] replica_hourly must be a price >= 0, got -1",
        ));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"name = \"x\"\n[traffic]\nrate = \xff\xfe\n").unwrap();
    loadtest()
        .args(["simulate", bad.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("bad.toml:3:8: not UTF-8 text"));
    let huge = write_scenario(
        dir.path(),
        "s.toml",
        &SMALL_SIM.replace(
            "rate = 200.0",
            &format!("rate = \"{}\"", "x".repeat(1 << 20)),
        ),
    );
    let out = loadtest()
        .args(["simulate", huge.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("s.toml:3:"))
        .get_output()
        .clone();
    assert!(
        out.stderr.len() < 1000,
        "{} bytes of error",
        out.stderr.len()
    );
}

/// --fail-on-slo gates on the forecast's SLO minutes, and says why.
#[test]
fn simulate_fail_on_slo_exits_1_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let scn = write_scenario(
        dir.path(),
        "s.toml",
        &format!("{SMALL_SIM}[slo]\np95_ms = 1.0\n"),
    );
    loadtest()
        .args(["simulate", scn.to_str().unwrap(), "--fail-on-slo"])
        .assert()
        .code(1)
        .stderr(contains("SLO violated (exit 1):").and(contains("over p95 < 1 ms")));
    loadtest()
        .args(["simulate", scn.to_str().unwrap()])
        .assert()
        .code(0);
}

#[test]
fn simulate_calibrates_service_time_and_workers_from_runs() {
    let _g = serial();
    // The truth: 4 workers, 20 ms each, so 200 rps at most.
    let s = serve(&["--workers", "4", "--service-time", "const:20ms"]);
    let dir = tempfile::tempdir().unwrap();
    let (low, low_hdr, max) = (
        dir.path().join("low.json"),
        dir.path().join("low.hdr"),
        dir.path().join("max.json"),
    );
    loadtest()
        .args([
            "run",
            "--url",
            &s.url,
            "--rate",
            "20",
            "--duration",
            "3s",
            "--quiet",
        ])
        .args([
            "--json",
            low.to_str().unwrap(),
            "--hdr",
            low_hdr.to_str().unwrap(),
        ])
        .assert()
        .code(0);
    loadtest()
        .args([
            "run",
            "--url",
            &s.url,
            "--connections",
            "16",
            "--duration",
            "3s",
            "--quiet",
            "--json",
            max.to_str().unwrap(),
        ])
        .assert()
        .code(0);
    let (mut cmd, json) = simulate_to_json(
        dir.path(),
        &SMALL_SIM.replace("replications = 3", "replications = 1"),
    );
    let scn = dir.path().join("s.toml");
    cmd.args([
        "--calibrate",
        low.to_str().unwrap(),
        "--calibrate",
        max.to_str().unwrap(),
    ])
    .assert()
    .code(0)
    .stderr(contains("calibrated: 4 workers per replica"));
    // The measured ~20-21 ms service time replaces the scenario's 10 ms mean.
    let p50 = read_json(&json)["latency_ms"]["p50"].as_f64().unwrap();
    assert!((19.0..26.0).contains(&p50), "p50 {p50}");
    // The interval log gives the same service time.
    loadtest()
        .args([
            "simulate",
            scn.to_str().unwrap(),
            "--calibrate",
            low_hdr.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ])
        .assert()
        .code(0)
        .stderr(contains("service time from"));
    let p50 = read_json(&json)["latency_ms"]["p50"].as_f64().unwrap();
    assert!((19.0..26.0).contains(&p50), "p50 from the HDR log {p50}");
    loadtest()
        .args([
            "simulate",
            scn.to_str().unwrap(),
            "--calibrate",
            scn.to_str().unwrap(),
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "neither a run JSON nor an HdrHistogram interval log",
        ));
}

#[test]
fn shipped_scenarios_all_parse() {
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")).unwrap()
    {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            // Fails only after the whole file parsed: at the range check, or
            // (a run-only scenario) for want of a [traffic] section.
            loadtest()
                .args(["simulate", p.to_str().unwrap(), "--replications", "0"])
                .assert()
                .code(2)
                .stderr(
                    contains("replications must be from 1 to 1000")
                        .or(contains("no [traffic] section")),
                );
        }
    }
}

/// `report a.json b.json` that finds a regression states the deltas on the
/// terminal (issue 18), and warns when the runs are not comparable.
#[test]
fn a_regression_states_the_deltas_in_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, p95: f64, url: &str| {
        let mut r = contracts::RunResult {
            name: name.into(),
            url: url.into(),
            mode: "open".into(),
            requests: 1000,
            ok: 1000,
            rps: 100.0,
            target_rps: Some(100.0),
            offered_rps: Some(100.0),
            ..Default::default()
        };
        r.latency_ms.p50 = 20.0;
        r.latency_ms.p95 = p95;
        r.latency_ms.p99 = 2.0 * p95;
        let p = dir.path().join(format!("{name}.json"));
        std::fs::write(&p, serde_json::to_string(&r).unwrap()).unwrap();
        p
    };
    let a = run("base", 100.0, "http://127.0.0.1:8080/");
    let b = run("cur", 150.0, "http://127.0.0.1:8080/");
    loadtest()
        .args(["report"])
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(dir.path().join("r1"))
        .assert()
        .code(1)
        .stderr(contains("loadtest: regression (exit 1)"))
        .stderr(contains("p95 ms 100.00 → 150.00 (+50.0%)"))
        .stderr(contains("error rate % 0.00 → 0.00"))
        .stderr(contains("warning").not());
    let c = run("other", 100.0, "http://127.0.0.1:9090/");
    loadtest()
        .args(["report"])
        .arg(&a)
        .arg(&c)
        .arg("--out")
        .arg(dir.path().join("r2"))
        .assert()
        .success()
        .stderr(contains(
            "loadtest: warning: Not comparable: the runs hit different targets",
        ))
        .stderr(contains("loadtest: no regression: p50 ms 20.00 → 20.00"));
}

/// Each kind of request on its own (issue 18): smoke.toml's `home` and
/// `cart` (weights 3:1) in the JSON and on the terminal, their counts
/// summing to the run's, and a threshold on one of them by name.
#[test]
fn each_request_has_its_own_figures_and_thresholds() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    loadtest()
        .args(["run", "scenarios/smoke.toml", "--duration", "4s"])
        .args(["--threshold", "p95{name=cart}<5s", "--json"])
        .arg(&json)
        .assert()
        .success()
        .stdout(
            contains("request")
                .and(contains("cart"))
                .and(contains("home")),
        );
    let r: contracts::RunResult =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let names: Vec<&str> = r.by_request.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["home", "cart"]);
    let sum =
        |f: fn(&contracts::run::RequestResult) -> u64| r.by_request.iter().map(f).sum::<u64>();
    assert_eq!(sum(|q| q.requests), r.requests);
    assert_eq!(sum(|q| q.ok), r.ok);
    // 400 requests drawn 3:1: cart's share is 0.25 ± 5 standard deviations.
    let cart = r.by_request[1].requests as f64 / r.requests as f64;
    assert!(
        (cart - 0.25).abs() < 5.0 * (0.25f64 * 0.75 / 400.0).sqrt(),
        "cart share {cart}"
    );
    let t = r
        .thresholds
        .iter()
        .find(|t| t.expr == "p95{name=cart}<5s")
        .unwrap();
    assert!(t.ok && t.value == r.by_request[1].latency_ms.p95, "{t:?}");
    // A name no request has is bad input, before any load.
    loadtest()
        .args(["run", "scenarios/smoke.toml", "--threshold", "p95{name=checkout}<1s"])
        .assert()
        .code(2)
        .stderr(contains(
            "threshold `p95{name=checkout}<1s`: no request is named `checkout`; the requests are home, cart",
        ));
}
