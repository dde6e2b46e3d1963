//! Response checks end to end (issue 18): a scenario's `[requests.check]`
//! and the `--check-*` flags against the built-in target, on HTTP/1.1 and
//! HTTP/2, with every failure counted in the `check` class (or in the
//! status's own class), the per-check counts summing to what was judged,
//! and bad checks refused before any load.

mod common;

use assert_cmd::prelude::*;
use common::{loadtest, serial, serve};
use predicates::prelude::*;
use predicates::str::contains;

fn read_run(p: &std::path::Path) -> contracts::RunResult {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn scenario(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let p = dir.join("checks.toml");
    std::fs::write(
        &p,
        format!(
            r#"name = "checks"
[target]
url = "{url}"
[load]
rate = 150
duration = "2s"

[[requests]]
name = "home"
path = "/"
[requests.check]
status = 200
body_contains = "ok"

[[requests]]
name = "created"
path = "/"
[requests.check]
status = [201, "3xx"]

[[requests]]
name = "stats"
path = "/__stats"
[requests.check]
json = "served"
"#
        ),
    )
    .unwrap();
    p
}

/// Counts of one request's error class.
fn class(r: &contracts::run::RequestResult, c: &str) -> u64 {
    r.errors[c]
}

#[test]
fn failed_checks_are_errors_of_their_own_class_and_counted_per_check() {
    let _g = serial();
    // One response in five is a 500: those keep their class, whatever the
    // request's checks say.
    let s = serve(&["--service-time", "const:1ms", "--error-rate", "0.2"]);
    let dir = tempfile::tempdir().unwrap();
    let (json, csv) = (dir.path().join("r.json"), dir.path().join("r.csv"));
    loadtest()
        .arg("run")
        .arg(scenario(dir.path(), &s.url))
        .args(["--quiet", "--json"])
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .assert()
        .success()
        .stdout(
            contains("checks: status in 201,3xx")
                .and(contains("FAIL created: status in 201,3xx"))
                .and(contains("ok   stats: json served exists")),
        );
    let r = read_run(&json);
    let [home, created, stats] = &r.by_request[..] else {
        panic!("{:?}", r.by_request)
    };
    assert!(home.requests > 0 && created.requests > 0 && stats.requests > 0);
    let check = |req: &str, what: &str| {
        r.checks
            .iter()
            .find(|c| c.request == req && c.check.starts_with(what))
            .unwrap_or_else(|| panic!("{req} {what}: {:?}", r.checks))
    };
    // home: only the injected 500s fail, as http_5xx, and fail both checks.
    assert!(class(home, "http_5xx") > 0, "{home:?}");
    assert_eq!(class(home, "check"), 0);
    assert_eq!(home.ok + class(home, "http_5xx"), home.requests);
    for what in ["status", "body"] {
        let c = check("home", what);
        assert_eq!((c.passed, c.failed), (home.ok, class(home, "http_5xx")));
    }
    // created: every 200 is a check error; no response passes.
    assert_eq!(created.ok, 0);
    assert_eq!(
        class(created, "check") + class(created, "http_5xx"),
        created.requests
    );
    let c = check("created", "status");
    assert_eq!((c.passed, c.failed), (0, created.requests));
    // stats: JSON with a `served` field, every time.
    assert_eq!(stats.ok, stats.requests);
    assert_eq!(check("stats", "json").passed, stats.requests);
    // The run's classes are the requests' sums, and the CSV's `check`
    // column the run's.
    assert_eq!(r.errors["check"], class(created, "check"));
    assert_eq!(r.ok, home.ok + stats.ok);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == "check").unwrap();
    let in_csv: u64 = lines
        .map(|l| l.split(',').nth(at).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(in_csv, r.errors["check"]);
}

/// The flags check every request, on HTTP/2 as on HTTP/1.1, and a JSON
/// field with the wrong value never passes.
#[test]
fn check_flags_judge_bodies_on_both_protocols() {
    let _g = serial();
    let s = serve(&["--service-time", "const:1ms"]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}__stats", s.url);
    for http2 in [false, true] {
        for (json_check, all_fail) in [("errors=0", false), ("served=-1", true)] {
            let out = dir.path().join("r.json");
            let mut cmd = loadtest();
            cmd.args(["run", "--url", &url, "--rate", "100", "--duration", "1s"])
                .args([
                    "--quiet",
                    "--check-status",
                    "2xx",
                    "--check-json",
                    json_check,
                ])
                .args(["--check-body", "\"served\"", "--json"])
                .arg(&out);
            if http2 {
                cmd.arg("--http2");
            }
            cmd.assert().success();
            let r = read_run(&out);
            assert!(r.requests >= 90, "{}", r.requests);
            let json = r
                .checks
                .iter()
                .find(|c| c.check.starts_with("json"))
                .unwrap();
            let body = r
                .checks
                .iter()
                .find(|c| c.check.starts_with("body"))
                .unwrap();
            assert_eq!(body.passed, r.requests, "http2 {http2}");
            if all_fail {
                assert_eq!((json.failed, r.errors["check"]), (r.requests, r.requests));
            } else {
                assert_eq!((json.passed, r.ok), (r.requests, r.requests));
            }
        }
    }
}

#[test]
fn bad_checks_are_refused_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let write = |body: &str| {
        let p = dir.path().join("bad.toml");
        std::fs::write(
            &p,
            format!(
                "[target]\nurl = \"http://127.0.0.1:9/\"\n[[requests]]\npath = \"/\"\n[requests.check]\n{body}\n"
            ),
        )
        .unwrap();
        p
    };
    for (body, says) in [
        (
            "status = \"6xx\"",
            "check.status: `6xx` is not a status class",
        ),
        ("status = 99", "check.status: `99` is not a status code"),
        ("equals = 7", "check.equals needs check.json"),
        ("json = \"a..b\"", "check.json: `a..b` is not a JSON path"),
        ("body_contains = \"\"", "check.body_contains is empty"),
        ("colour = \"red\"", "unknown field `colour`"),
    ] {
        loadtest()
            .arg("run")
            .arg(write(body))
            .assert()
            .code(2)
            .stderr(contains("bad.toml").and(contains(says)));
    }
    for (flag, value, says) in [
        ("--check-status", "200-100", "--check-status"),
        ("--check-json", "", "--check-json"),
        ("--check-body", "", "--check-body is empty"),
    ] {
        loadtest()
            .args([
                "run",
                "--url",
                "http://127.0.0.1:9/",
                "--rate",
                "1",
                flag,
                value,
            ])
            .assert()
            .code(2)
            .stderr(contains(says));
    }
}
