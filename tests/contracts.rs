//! The contract test (issue 15): each real producer writes its file on a
//! small input, and the readers of the other stages read it back with
//! every number intact: the report reads the run (JSON and CSV), the
//! forecast and the plan, and the optimizer reads the forecast. A field a
//! producer renamed or stopped writing, or a reader that defaults it,
//! fails here by its path. (`verify.json` is read back the same way in
//! `plan_cli.rs`, where `plan --verify` writes one.)
mod common;

use assert_cmd::Command;
use common::{BIN, assert_read_back, read_json, serial, serve};
use contracts::Doc;

fn report_of(docs: Vec<Doc>, out: &std::path::Path) -> Vec<reports::Section> {
    let opts = reports::Options {
        out: out.into(),
        format: reports::Format::Html,
        export_csv: false,
        export_parquet: false,
        regression: 0.1,
        start_date: None,
        title: "contract".into(),
    };
    reports::build(&docs, &opts).unwrap()
}

fn table<'a>(sections: &'a [reports::Section], id: &str) -> &'a reports::Table {
    sections
        .iter()
        .flat_map(|s| &s.tables)
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no table {id}"))
}

#[test]
fn every_producers_file_reads_back_through_every_reader() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    // The run: the built-in target at a low rate for two seconds.
    let target = serve(&["--workers", "4", "--service-time", "const:2ms"]);
    Command::new(BIN)
        .args([
            "run",
            "--url",
            &target.url,
            "--rate",
            "100",
            "--duration",
            "2s",
        ])
        .args(["--threshold", "p95<2s", "--json"])
        .arg(p("run.json"))
        .arg("--csv")
        .arg(p("run.csv"))
        .assert()
        .success();
    drop(target);
    let Doc::Run(run) = assert_read_back(&p("run.json")) else {
        panic!("run.json is not a run")
    };
    assert!(run.requests >= 150 && run.ok == run.requests, "{run:?}");
    // The CSV holds the same seconds as the JSON's series.
    let Doc::Run(csv) = reports::load(&p("run.csv")).unwrap() else {
        panic!("run.csv is not a run")
    };
    assert_eq!(csv.series.len(), run.series.len());
    for (c, j) in csv.series.iter().zip(&run.series) {
        assert_eq!(
            (c.t_s, c.requests, c.ok, c.errors_by_class),
            (j.t_s, j.requests, j.ok, j.errors_by_class)
        );
        assert!((c.p95_ms - j.p95_ms).abs() < 5e-4, "{c:?} vs {j:?}");
    }

    // The forecast, and the plan made from it.
    Command::new(BIN)
        .args(["simulate", "scenarios/smoke.toml", "--json"])
        .arg(p("forecast.json"))
        .assert()
        .success();
    let Doc::Forecast(forecast) = assert_read_back(&p("forecast.json")) else {
        panic!("forecast.json is not a forecast")
    };
    let text = std::fs::read_to_string(p("forecast.json")).unwrap();
    let (service, hourly) = optimizer::parse_forecast("forecast.json", &text, 2.0, 4.0).unwrap();
    let written = read_json(&p("forecast.json"));
    let replicas: Vec<u32> = written["hourly"]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap() as u32)
        .collect();
    assert!(!replicas.is_empty());
    assert_eq!(service.replicas, replicas);
    assert_eq!(hourly.users.len(), replicas.len());
    assert_eq!(service.name, "smoke");

    Command::new(BIN)
        .args([
            "optimize",
            "--scenario",
            "scenarios/smoke.toml",
            "--forecast",
        ])
        .arg(p("forecast.json"))
        .arg("--json")
        .arg(p("plan.json"))
        .assert()
        .success();
    let Doc::Plan(plan) = assert_read_back(&p("plan.json")) else {
        panic!("plan.json is not a plan")
    };
    assert!(plan.total_cost > 0.0 && !plan.instances.is_empty());

    // The numbers reach the report's tables.
    let sections = report_of(
        vec![
            Doc::Run(run.clone()),
            Doc::Forecast(forecast.clone()),
            Doc::Plan(plan.clone()),
        ],
        dir.path(),
    );
    let w = read_json(&p("run.json"));
    let p95 = table(&sections, "run_summary").numbers("p95");
    assert_eq!(p95[0], w["latency_ms"]["p95"].as_f64().unwrap());
    let windows = table(&sections, "windows");
    assert_eq!(windows.df.height(), forecast.windows.len());
    let lines = table(&sections, "plan_lines");
    assert_eq!(lines.df.height(), plan.instances.len());

    // Every document says when it was made and by which version, and the
    // report's headings say which document they are (issue 18).
    let version = env!("CARGO_PKG_VERSION");
    for (what, at, v) in [
        ("run", &run.started_at, &run.version),
        ("forecast", &forecast.started_at, &forecast.version),
        ("plan", &plan.started_at, &plan.version),
    ] {
        assert!(at.starts_with("20") && at.ends_with('Z'), "{what}: {at}");
        assert_eq!(v, version, "{what}");
    }
    assert!(forecast.duration_s > 0.0 && plan.duration_s > 0.0);
    assert_eq!(plan.name, "smoke");
    for s in &sections {
        assert!(
            s.title.contains(", started 20") && s.title.contains(version),
            "{}",
            s.title
        );
    }
}
