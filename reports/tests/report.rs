//! Golden checks on the report: structure, the numbers in the tables,
//! valid non-trivial PNGs, escaping, Markdown and the comparison verdict.
use std::path::Path;

use reports::{Doc, Format, Options, load, write};
use serde_json::json;

/// `partial` over the serialized default document: a fixture states the
/// numbers its test is about, and is still a whole document of the
/// contract the producers write.
fn complete<T: Default + serde::Serialize>(partial: serde_json::Value) -> serde_json::Value {
    fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }
    let mut v = serde_json::to_value(T::default()).unwrap();
    merge(&mut v, partial);
    v
}

fn run_json(name: &str, p95: f64, error_rate: f64) -> serde_json::Value {
    let series: Vec<_> = (0..30)
        .map(|t| {
            json!({"t_s": t, "requests": 100, "ok": 99, "errors": 1, "rps": 100.0, "p50_ms": 20.0,
                   "p95_ms": p95, "p99_ms": p95 * 1.5, "dropped": 0, "target_rps": 100.0,
                   "errors_by_class": [0, 1, 0, 0, 0, 0]})
        })
        .collect();
    complete::<contracts::RunResult>(json!({
        "kind": "run", "name": name, "url": "http://127.0.0.1:8080/", "mode": "open",
        "requests": 3000, "ok": 2970, "errors": {"timeout": 30}, "error_rate": error_rate,
        "dropped": 0, "duration_s": 30.0, "rps": 100.0, "target_rps": 100.0,
        "latency_ms": {"mean": 25.0, "p50": 20.0, "p90": 40.0, "p95": p95, "p99": p95 * 1.5, "p999": 90.0, "max": 120.0},
        "latency_uncorrected_ms": {"mean": 24.0, "p50": 20.0, "p90": 39.0, "p95": p95, "p99": p95 * 1.4, "p999": 80.0, "max": 110.0},
        "latency_distribution": [{"percentile": 50.0, "ms": 20.0}, {"percentile": 90.0, "ms": 40.0}, {"percentile": 99.0, "ms": p95 * 1.5}, {"percentile": 99.9, "ms": 90.0}],
        "thresholds": [{"expr": "p95<200ms", "ok": p95 < 200.0, "value": p95}],
        "series": series
    }))
}

fn forecast_json() -> serde_json::Value {
    let windows: Vec<_> = (0..24)
        .map(|m| {
            let users = 1000.0 * 1.25f64.powi(m);
            json!({"label": format!("month {}", m + 1), "day": m as f64 * 30.0, "users": users, "offered_rps": users * 0.02,
                   "p95_ms": {"mean": 90.0 + m as f64 * 6.0, "ci95": 4.0}, "p99_ms": {"mean": 150.0, "ci95": 5.0},
                   "replicas": {"mean": 2.0 + m as f64, "ci95": 0.5}, "replicas_max": 3 + m,
                   "utilization": {"mean": 0.5, "ci95": 0.02}, "error_rate": {"mean": 0.0, "ci95": 0.0},
                   "violation_minutes": {"mean": 0.0, "ci95": 0.0}, "cost_per_hour": {"mean": 0.2 * (2.0 + m as f64), "ci95": 0.05},
                   "fluid_replicas": 2.0 + m as f64})
        })
        .collect();
    complete::<contracts::Forecast>(
        json!({"kind": "forecast", "name": "growth <script>alert(1)</script>", "simulated": "24 monthly windows", "replications": 4,
           "slo": {"p95_target_ms": 200.0, "violation_minutes": {"mean": 0.0, "ci95": 0.0}, "minutes": 1000},
           "windows": windows,
           "crossings": [{"threshold": "p95 > 200 ms", "day": 600.0, "users": 38000.0, "note": "p95 exceeds 200 ms at about 38k users"}],
           "hourly": {"note": "", "replicas": [2, 2, 3], "rps": [20.0, 20.0, 30.0], "users": [1000.0, 1000.0, 1500.0]}}),
    )
}

fn plan_json() -> serde_json::Value {
    complete::<contracts::Plan>(
        json!({"kind": "plan", "catalog_notes": ["AWS, APPROXIMATE prices"], "total_cost": 73.0, "lower_bound": 72.5, "gap": 0.0068,
           "baseline_cost": 146.0, "savings": 73.0, "savings_share": 0.5, "monthly_cost": 730.0, "monthly_baseline": 1460.0,
           "cost_by_pricing": {"reserved_1y": 50.0, "on_demand": 15.0, "spot": 8.0},
           "cost_by_type": {"m6i.large": 65.0, "c6i.large": 8.0},
           "savings_by_source": {"reserved_1y": 30.0, "spot": 20.0, "instance_mix_and_capacity": 23.0},
           "instances": [{"instance_type": "m6i.large", "pricing": "reserved_1y", "count": 8, "hourly_price": 0.0625, "instance_hours": 800.0, "cost": 50.0},
                          {"instance_type": "m6i.large", "pricing": "on_demand", "hourly_counts": [1, 2, 3], "hourly_price": 0.096, "instance_hours": 156.25, "cost": 15.0},
                          {"instance_type": "c6i.large", "pricing": "spot", "hourly_counts": [0, 1, 2], "hourly_price": 0.032, "instance_hours": 250.0, "cost": 8.0}],
           "break_even": [{"instance_type": "m6i.large", "pricing": "reserved_1y", "break_even_utilization": 0.65, "count": 8, "utilization": 0.9}],
           "binding": [{"constraint": "spot_max_share", "hours": 40, "shadow_price": 12.5, "unit": "$/month per percentage point", "note": "the spot cap binds"}],
           "hourly": {"demand_vcpu": [10.0, 12.0, 14.0], "capacity_vcpu": [10.0, 12.0, 14.0], "cost": [0.6, 0.7, 0.8], "baseline_cost": [1.0, 1.2, 1.4],
                      "commitment_coverage": [1.0, 0.9, 0.8], "commitment_utilization": [0.8, 0.9, 1.0], "spot_share": [0.0, 0.1, 0.2]},
           "solver": {"hours": 100, "levels": 3, "notes": []}}),
    )
}

fn save(dir: &Path, name: &str, v: &serde_json::Value) -> Doc {
    let p = dir.join(name);
    std::fs::write(&p, v.to_string()).unwrap();
    load(&p).unwrap()
}

fn opts(out: &Path, format: Format) -> Options {
    Options {
        out: out.into(),
        format,
        export_csv: true,
        export_parquet: false,
        regression: 0.10,
        start_date: Some("2027-01-01".into()),
        title: "Q3 <review>".into(),
    }
}

#[test]
fn html_has_every_section_chart_and_table_and_escapes_input() {
    let dir = tempfile::tempdir().unwrap();
    let docs = vec![
        save(dir.path(), "run.json", &run_json("checkout", 120.0, 0.01)),
        save(dir.path(), "f.json", &forecast_json()),
        save(dir.path(), "plan.json", &plan_json()),
    ];
    let out = dir.path().join("out");
    let w = write(&docs, &opts(&out, Format::Html)).unwrap();
    let html = std::fs::read_to_string(&w.page).unwrap();
    // Structure.
    assert!(html.starts_with("<!DOCTYPE html>"));
    for id in ["run", "capacity", "finops"] {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "no section {id}"
        );
    }
    for chart in [
        "latency_over_time",
        "latency_distribution",
        "throughput",
        "errors",
        "users",
        "offered_rps",
        "replicas",
        "p95",
        "cost_over_time",
        "cost_by_pricing",
        "cost_by_type",
        "savings",
        "commitment",
    ] {
        assert!(
            html.contains(&format!("<figure id=\"{chart}\"><svg")),
            "no inline chart {chart}"
        );
        for ext in ["svg", "png"] {
            assert!(
                out.join(format!("{chart}.{ext}")).exists(),
                "no {chart}.{ext}"
            );
        }
    }
    // Self-contained: no external scripts, styles or fonts.
    for bad in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(bad), "external reference {bad}");
    }
    // Escaped input.
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("growth &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("<title>Q3 &lt;review&gt;</title>"));
    // Verdicts and dated crossings.
    assert!(html.contains("PASSED: all 1 thresholds held (p95&lt;200ms was 120.00 ms)"));
    assert!(html.contains("2028-08-23 (day 600)"), "crossing date");
    assert!(
        html.contains("$730/month against $1460/month all on-demand: saves $730/month (50.0%)")
    );
    // Numbers in the tables (the CSV export is the same table).
    let csv = std::fs::read_to_string(out.join("run_summary.csv")).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        "measure,mean,p50,p90,p95,p99,p99.9,max"
    );
    assert_eq!(
        csv.lines().nth(1).unwrap(),
        "corrected,25,20,40,120,180,90,120"
    );
    let lines = std::fs::read_to_string(out.join("plan_lines.csv")).unwrap();
    // 100 hours → 7.3 months: $50 over the horizon is $365/month.
    assert!(
        lines.contains("m6i.large,reserved_1y,8 held,0.0625,800,365"),
        "{lines}"
    );
    assert!(lines.contains("c6i.large,spot,0–2 per hour"), "{lines}");
    assert!(html.contains("<td>8 held</td>"));
}

#[test]
fn pngs_are_valid_and_not_trivial() {
    let dir = tempfile::tempdir().unwrap();
    let docs = vec![save(dir.path(), "run.json", &run_json("a", 50.0, 0.0))];
    let out = dir.path().join("out");
    let w = write(&docs, &opts(&out, Format::Html)).unwrap();
    let pngs: Vec<_> = w
        .charts
        .iter()
        .filter(|p| p.extension().unwrap() == "png")
        .collect();
    assert_eq!(pngs.len(), 4);
    for p in pngs {
        let b = std::fs::read(p).unwrap();
        assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{}", p.display());
        assert!(
            b.len() > 10_000,
            "{} is only {} bytes",
            p.display(),
            b.len()
        );
        // IHDR: 900 × 420.
        assert_eq!(u32::from_be_bytes(b[16..20].try_into().unwrap()), 900);
        assert_eq!(u32::from_be_bytes(b[20..24].try_into().unwrap()), 420);
    }
}

#[test]
fn comparison_flags_a_p95_regression() {
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "a.json", &run_json("base", 100.0, 0.0));
    let slower = save(dir.path(), "b.json", &run_json("cur", 115.0, 0.0));
    let same = save(dir.path(), "c.json", &run_json("cur", 105.0, 0.0));
    let out = dir.path().join("o1");
    let w = write(&[base.clone(), slower], &opts(&out, Format::Html)).unwrap();
    assert_eq!(w.regressed, Some(true));
    let html = std::fs::read_to_string(&w.page).unwrap();
    assert!(
        html.contains("REGRESSION: p95 100.0 → 115.0 ms (+15.0%, limit +10%)"),
        "verdict"
    );
    let w = write(&[base, same], &opts(&dir.path().join("o2"), Format::Html)).unwrap();
    assert_eq!(w.regressed, Some(false));
    // Comparable runs: no warning; the deltas in one line (issue 18).
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);
    let d = w.deltas.unwrap();
    assert!(d.contains("p95 ms 100.00 → 105.00 (+5.0%)"), "{d}");
    assert!(d.contains("rps 100.00 → 100.00 (+0.0%)"), "{d}");
}

/// Two runs of another target, at another rate, one stopped early: the
/// comparison says so in the report and to the caller, whatever its
/// verdict (issue 18).
#[test]
fn a_comparison_of_incomparable_runs_warns() {
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "a.json", &run_json("base", 100.0, 0.0));
    let mut other = run_json("cur", 100.0, 0.0);
    other["url"] = json!("http://127.0.0.1:9090/");
    other["target_rps"] = json!(200.0);
    other["stopped"] = json!("interrupted");
    let other = save(dir.path(), "b.json", &other);
    let w = write(&[base, other], &opts(&dir.path().join("o"), Format::Html)).unwrap();
    let all = w.warnings.join("\n");
    for part in [
        "Not comparable: the runs hit different targets",
        "the offered rates differ by more than 10% (100.0 and 200.0 rps)",
        "the current run stopped early (interrupted)",
    ] {
        assert!(all.contains(part), "{part} in {all}");
    }
    let html = std::fs::read_to_string(&w.page).unwrap();
    assert!(html.contains("Not comparable: the runs hit different targets"));
    assert!(html.contains("Comparison: baseline base vs current cur"));
}

#[test]
fn markdown_links_the_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let docs = vec![save(dir.path(), "plan.json", &plan_json())];
    let out = dir.path().join("md");
    let w = write(&docs, &opts(&out, Format::Markdown)).unwrap();
    assert!(w.page.ends_with("index.md"));
    let md = std::fs::read_to_string(&w.page).unwrap();
    assert!(md.contains("![Cost by pricing model](cost_by_pricing.png)"));
    assert!(md.contains("| instance type | pricing | count |"));
    assert!(out.join("cost_by_pricing.png").exists());
}

#[test]
fn a_foreign_json_is_rejected_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.json");
    std::fs::write(&p, r#"{"kind": "weather"}"#).unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("x.json: `kind` is `weather`"), "{e}");
}

#[test]
fn long_plans_chart_daily_means() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = plan_json();
    let n = 24 * 40;
    let series: Vec<f64> = (0..n)
        .map(|h| if h % 24 < 12 { 1.0 } else { 0.5 })
        .collect();
    for k in [
        "demand_vcpu",
        "capacity_vcpu",
        "cost",
        "baseline_cost",
        "commitment_coverage",
        "commitment_utilization",
        "spot_share",
    ] {
        p["hourly"][k] = json!(series);
    }
    let docs = vec![save(dir.path(), "plan.json", &p)];
    let sections = reports::build(&docs, &opts(dir.path(), Format::Html)).unwrap();
    let c = sections[0]
        .charts
        .iter()
        .find(|c| c.id == "commitment")
        .unwrap();
    assert_eq!(c.x_label, "day of the horizon (daily mean)");
    let reports::charts::Body::Lines(lines) = &c.body else {
        panic!("lines")
    };
    assert_eq!(lines[0].points.len(), 40);
    assert!(
        (lines[0].points[0].1 - 75.0).abs() < 1e-9,
        "{:?}",
        lines[0].points[0]
    );
}

/// Markdown renders inline HTML: text from the inputs is escaped there too.
#[test]
fn markdown_escapes_html_from_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let docs = vec![save(dir.path(), "f.json", &forecast_json())];
    let w = write(&docs, &opts(&dir.path().join("md"), Format::Markdown)).unwrap();
    let md = std::fs::read_to_string(&w.page).unwrap();
    assert!(!md.contains("<script>"), "{md}");
    assert!(!md.contains("<review>"));
    assert!(md.contains("&lt;script&gt;") || md.contains("&lt;review&gt;"));
}

/// A value near f64::MAX made the chart's range padding overflow and the
/// report never finish: it is refused with the field that holds it.
#[test]
fn a_value_past_any_measurement_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = run_json("huge", 50.0, 0.001);
    r["series"][3]["p95_ms"] = json!(1.7e308);
    let p = dir.path().join("huge.json");
    std::fs::write(&p, r.to_string()).unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(
        e.contains("huge.json: `series[3].p95_ms` is 1.7e308"),
        "{e}"
    );
    // In a run's CSV: line and column.
    let csv = dir.path().join("huge.csv");
    std::fs::write(
        &csv,
        "t_s,requests,ok,errors,rps,p50_ms,p95_ms,p99_ms,dropped\n0,1,1,0,1,2,3,4,0\n1,1,1,0,1,2,1e308,4,0\n",
    )
    .unwrap();
    let e = load(&csv).unwrap_err().to_string();
    assert!(e.contains("huge.csv:3:13: `p95_ms` = `1e308`"), "{e}");
}

/// A field of the wrong type is named by its path, line and column, and a
/// long bad value is cut.
#[test]
fn a_bad_field_is_named_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = run_json("bad", 50.0, 0.001);
    r["series"][1]["p95_ms"] = json!("x".repeat(1_000_000));
    let p = dir.path().join("bad.json");
    std::fs::write(&p, serde_json::to_string_pretty(&r).unwrap()).unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(
        e.contains("bad.json:") && e.contains("`series[1].p95_ms`: invalid type: string"),
        "{}",
        &e[..300.min(e.len())]
    );
    assert!(!e.contains(":0:0:"), "{}", &e[..300.min(e.len())]);
    assert!(e.len() < 500, "{} characters", e.len());
}

/// An error rate is a fraction compared against a percentage: the verdict
/// shows it as a percentage, never `error_rate<0.1% (measured 0.003)`,
/// which reads like a pass (issue 18).
#[test]
fn a_failed_error_rate_reads_as_a_percentage() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = run_json("errors", 50.0, 0.003);
    r["thresholds"] = json!([{"expr": "error_rate<0.1%", "ok": false, "value": 0.003}]);
    let docs = vec![save(dir.path(), "r.json", &r)];
    let sections = reports::build(&docs, &opts(dir.path(), Format::Html)).unwrap();
    assert!(
        sections[0]
            .verdict
            .contains("FAILED: error_rate<0.1% (measured 0.300%)"),
        "{}",
        sections[0].verdict
    );
    let t = sections[0]
        .tables
        .iter()
        .find(|t| t.id == "run_thresholds")
        .unwrap();
    assert_eq!(t.cells().1[0][1], "0.300%");
}

/// Response checks (issue 18): their own table, the phases under the
/// latency table, and what to do next when a check failed.
#[test]
fn checks_and_phases_are_shown_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = run_json("checks", 50.0, 0.0);
    r["checks"] = json!([
        {"request": "home", "check": "status in 200", "passed": 90, "failed": 10},
        {"request": "cart", "check": "json cart.id exists", "passed": 0, "failed": 25},
        {"request": "cart", "check": "status in 2xx", "passed": 25, "failed": 0}
    ]);
    let lat = json!({"mean": 2.0, "p50": 2.0, "p90": 3.0, "p95": 3.5, "p99": 4.0, "p999": 5.0, "max": 6.0});
    r["phases"] = json!({"new_connections": 4, "connect_ms": lat, "tls_handshake_ms": null,
                         "responses": 3000, "ttfb_ms": lat});
    let docs = vec![save(dir.path(), "r.json", &r)];
    let sections = reports::build(&docs, &opts(dir.path(), Format::Html)).unwrap();
    let s = &sections[0];
    let t = s.tables.iter().find(|t| t.id == "run_checks").unwrap();
    assert_eq!(t.numbers("passed"), [90.0, 0.0, 25.0]);
    assert_eq!(t.numbers("failed %"), [10.0, 100.0, 0.0]);
    let next = s.next.join("\n");
    assert!(
        next.contains("`cart`: `json cart.id exists` failed on every response"),
        "{next}"
    );
    assert!(
        next.contains("`home`: `status in 200` failed on some responses"),
        "{next}"
    );
    assert!(!next.contains("status in 2xx"), "{next}");
    let lat = s.tables.iter().find(|t| t.id == "run_summary").unwrap();
    let measures: Vec<String> = lat.cells().1.iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        measures,
        [
            "corrected",
            "uncorrected",
            "time to first byte",
            "tcp connect (4 new connections)"
        ]
    );
}

/// Charts a reader can trust (issue 18): one unit per axis (users and rps
/// had shared one, the users line flat at zero); no errors chart of zeros,
/// a line of text instead; no collapse to zero in the last, partial
/// second of a run.
#[test]
fn charts_have_one_unit_and_draw_no_empty_or_partial_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = run_json("clean", 50.0, 0.0);
    for x in r["series"].as_array_mut().unwrap() {
        x["ok"] = json!(100);
        x["errors"] = json!(0);
        x["errors_by_class"] = json!([0, 0, 0, 0, 0, 0]);
    }
    // The responses that arrived after the 30 s schedule ended.
    r["series"].as_array_mut().unwrap().push(json!({
        "t_s": 30, "requests": 3, "ok": 3, "errors": 0, "rps": 3.0, "p50_ms": 20.0,
        "p95_ms": 50.0, "p99_ms": 75.0, "dropped": 0, "target_rps": null,
        "errors_by_class": [0, 0, 0, 0, 0, 0]}));
    let docs = vec![
        save(dir.path(), "r.json", &r),
        save(dir.path(), "f.json", &forecast_json()),
        save(dir.path(), "p.json", &plan_json()),
    ];
    let sections = reports::build(&docs, &opts(dir.path(), Format::Html)).unwrap();
    for c in sections.iter().flat_map(|s| &s.charts) {
        assert!(!c.y_label.contains(" / "), "{}: {}", c.id, c.y_label);
    }
    let charts: Vec<&str> = sections[0].charts.iter().map(|c| c.id.as_str()).collect();
    assert!(!charts.contains(&"errors"), "{charts:?}");
    assert!(
        sections[0]
            .notes
            .iter()
            .any(|n| n.contains("No request failed"))
    );
    let throughput = sections[0]
        .charts
        .iter()
        .find(|c| c.id == "throughput")
        .unwrap();
    let reports::charts::Body::Lines(lines) = &throughput.body else {
        panic!("lines")
    };
    let last = lines[0].points.last().unwrap();
    assert_eq!(*last, (29.0, 100.0), "the partial 31st second is not drawn");
    let users = sections[1].charts.iter().find(|c| c.id == "users").unwrap();
    assert_eq!(users.y_label, "users");
}

/// The capacity plan's table of servers as the users grow (issue 18): a
/// row per mark the horizon reaches, dated with --start-date.
#[test]
fn the_capacity_plan_tabulates_servers_by_users() {
    let dir = tempfile::tempdir().unwrap();
    let docs = vec![save(dir.path(), "f.json", &forecast_json())];
    let mut o = opts(dir.path(), Format::Html);
    o.start_date = Some("2027-01-01".into());
    let sections = reports::build(&docs, &o).unwrap();
    let t = sections[0]
        .tables
        .iter()
        .find(|t| t.id == "servers")
        .expect("a servers table");
    let (head, rows) = t.cells();
    assert_eq!(head[0], "reached");
    // The fixture's hours reach 1,000 users in hour 0 (and no more than
    // 1,500): 3 servers, the most in the day around it.
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "1k users");
    assert_eq!(rows[0][2], "2027-01-01 (day 0)");
    assert_eq!(t.numbers("servers"), [3.0]);
    assert_eq!(rows[0][4], "3");
}

/// A calibrated forecast draws p50, p95 and p99 against offered load,
/// measured and predicted at the same rates (issue 18: the knee); one
/// written before p50 and p99 were kept draws p95 alone.
#[test]
fn a_calibrated_forecast_draws_the_knee() {
    use contracts::forecast::{Fit, StepFit};
    let dir = tempfile::tempdir().unwrap();
    let step = |rps: f64, measured: f64, predicted: f64| StepFit {
        offered_rps: rps,
        replicas: 1,
        measured_p95_ms: measured,
        predicted_p95_ms: predicted,
        p95_error: predicted / measured - 1.0,
        measured_p50_ms: Some(measured / 2.0),
        measured_p99_ms: Some(measured * 2.0),
        predicted_p50_ms: Some(predicted / 2.0),
        predicted_p99_ms: Some(predicted * 2.0),
        measured_goodput_rps: rps,
        predicted_goodput_rps: rps,
        goodput_error: 0.0,
        measured_saturated: false,
        predicted_saturated: false,
    };
    let fit = Fit {
        family: "c FIFO workers".into(),
        workers: 8,
        service_mean_ms: 20.0,
        latency_floor_ms: 1.0,
        capacity_rps: 400.0,
        low_load_mean_ms: 21.0,
        candidates: vec![(8, 0.05)],
        cores: None,
        switch_cost: 0.0,
        models: vec![],
        spread: 1.0,
        steps: vec![step(300.0, 80.0, 90.0), step(100.0, 40.0, 41.0)],
        max_p95_error: 0.125,
        max_goodput_error: 0.0,
        assumes: "independent replicas".into(),
    };
    let mut f = forecast_json();
    f["calibration"] = serde_json::to_value(&fit).unwrap();
    let docs = vec![save(dir.path(), "f.json", &f)];
    let sections = reports::build(&docs, &opts(dir.path(), Format::Html)).unwrap();
    let knee = sections[0].charts.iter().find(|c| c.id == "knee").unwrap();
    assert_eq!(knee.x_label, "offered load (requests per second)");
    let reports::charts::Body::Lines(lines) = &knee.body else {
        panic!("lines")
    };
    let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "measured p50",
            "measured p95",
            "measured p99",
            "model p50 (dashed)",
            "model p95 (dashed)",
            "model p99 (dashed)"
        ]
    );
    assert_eq!(lines[0].points, [(100.0, 20.0), (300.0, 40.0)]);
    assert_eq!(lines[1].points, [(100.0, 40.0), (300.0, 80.0)]);
    assert_eq!(lines[2].points, [(100.0, 80.0), (300.0, 160.0)]);
    assert_eq!(lines[4].points, [(100.0, 41.0), (300.0, 90.0)]);
    assert_eq!(lines[5].points, [(100.0, 82.0), (300.0, 180.0)]);
    // Each percentile has one colour: the measurement solid, the model dashed.
    assert_eq!((lines[1].colour, lines[4].colour), (Some(1), Some(1)));
    assert_eq!((lines[1].dash, lines[4].dash), (Some(0), Some(6)));
    // A forecast from before p50 and p99 were kept: p95 alone.
    let mut old = f.clone();
    for s in old["calibration"]["steps"].as_array_mut().unwrap() {
        for k in [
            "measured_p50_ms",
            "measured_p99_ms",
            "predicted_p50_ms",
            "predicted_p99_ms",
        ] {
            s.as_object_mut().unwrap().remove(k);
        }
    }
    let docs = vec![save(dir.path(), "old.json", &old)];
    let sections = reports::build(&docs, &opts(dir.path(), Format::Html)).unwrap();
    let knee = sections[0].charts.iter().find(|c| c.id == "knee").unwrap();
    let reports::charts::Body::Lines(lines) = &knee.body else {
        panic!("lines")
    };
    let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["measured p95", "model p95 (dashed)"]);
    // Without a calibration there is nothing to draw it from.
    let plain = vec![save(dir.path(), "g.json", &forecast_json())];
    let sections = reports::build(&plain, &opts(dir.path(), Format::Html)).unwrap();
    assert!(sections[0].charts.iter().all(|c| c.id != "knee"));
}

/// A calibration that chose workers sharing a core: the figures name the
/// model, and the table lists every model tried, best first, marking the
/// chosen one; a fit written before the list has no table.
#[test]
fn a_calibrated_forecast_shows_the_models_tried() {
    use contracts::forecast::{Fit, ModelCandidate};
    let dir = tempfile::tempdir().unwrap();
    let m = |workers, cores, switch_cost, score| ModelCandidate {
        workers,
        cores,
        switch_cost,
        score,
    };
    let fit = Fit {
        family: String::new(),
        workers: 4,
        service_mean_ms: 1.63,
        latency_floor_ms: 0.0,
        capacity_rps: 1025.0,
        low_load_mean_ms: 2.0,
        candidates: vec![(1, 0.048), (2, 0.3)],
        cores: Some(2),
        switch_cost: 0.1,
        spread: 0.9,
        models: vec![
            m(1, None, 0.0, 0.048),
            m(2, None, 0.0, 0.3),
            m(4, Some(2), 0.1, 0.031),
            m(4, Some(1), 0.0, 0.1),
        ],
        steps: vec![],
        max_p95_error: 0.1,
        max_goodput_error: 0.0,
        assumes: String::new(),
    };
    let mut f = forecast_json();
    f["calibration"] = serde_json::to_value(&fit).unwrap();
    let docs = vec![save(dir.path(), "f.json", &f)];
    let sections = reports::build(&docs, &opts(dir.path(), Format::Html)).unwrap();
    let figure = sections[0]
        .figures
        .iter()
        .find(|(k, _)| k == "Calibrated model")
        .unwrap();
    assert!(
        figure.1.starts_with(
            "4 workers sharing 2 cores, 10% lost per extra runnable request per replica"
        ),
        "{}",
        figure.1
    );
    let t = sections[0]
        .tables
        .iter()
        .find(|t| t.id == "models")
        .unwrap();
    assert_eq!(t.numbers("score %"), [3.1, 4.8, 10.0, 30.0]);
    let (_, rows) = t.cells();
    assert_eq!(
        rows[0][0],
        "4 workers sharing 2 cores, 10% lost per extra runnable request"
    );
    assert_eq!(rows[0][2], "yes");
    assert_eq!(rows[1][0], "1 worker");
    assert!(rows[1..].iter().all(|r| r[2].is_empty()));
    let mut old = f.clone();
    old["calibration"].as_object_mut().unwrap().remove("models");
    let docs = vec![save(dir.path(), "old.json", &old)];
    let sections = reports::build(&docs, &opts(dir.path(), Format::Html)).unwrap();
    assert!(sections[0].tables.iter().all(|t| t.id != "models"));
}

/// A forecast with a cache tier gets a table of it per window, and one
/// without has none.
#[test]
fn a_forecast_with_a_cache_tier_tabulates_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = forecast_json();
    for (i, w) in f["windows"].as_array_mut().unwrap().iter_mut().enumerate() {
        let users = w["users"].as_f64().unwrap();
        w["cache"] = json!({"keys": 5.0 * users, "held_share": 1.0 - i as f64 / 48.0, "hit_ratio": 1.0 - i as f64 / 100.0,
                            "memory_used_mb": 256.0, "evictions_per_s": i as f64, "database_reads_per_s": 2.0 * i as f64});
    }
    let docs = vec![save(dir.path(), "f.json", &f)];
    let sections = reports::build(&docs, &opts(dir.path(), Format::Html)).unwrap();
    let t = sections[0].tables.iter().find(|t| t.id == "cache").unwrap();
    assert_eq!(t.numbers("users").len(), 24);
    assert_eq!(t.numbers("hit ratio")[10], 0.9);
    assert_eq!(t.numbers("held %")[24 - 1], 52.1);
    assert_eq!(t.numbers("database reads/s")[3], 6.0);
    // The servers table carries the cache of the window each row's peak is from.
    let servers = sections[0]
        .tables
        .iter()
        .find(|t| t.id == "servers")
        .unwrap();
    let (head, rows) = servers.cells();
    let col = head.iter().position(|h| h == "cache hit ratio").unwrap();
    assert_eq!(rows[0][col], "1.00");
    assert!(
        head.iter()
            .any(|h| h == "cache MB for the minimum hit ratio")
    );
    let plain = vec![save(dir.path(), "g.json", &forecast_json())];
    let sections = reports::build(&plain, &opts(dir.path(), Format::Html)).unwrap();
    assert!(sections[0].tables.iter().all(|t| t.id != "cache"));
    let servers = sections[0]
        .tables
        .iter()
        .find(|t| t.id == "servers")
        .unwrap();
    assert!(servers.cells().0.iter().all(|h| !h.starts_with("cache")));
}

/// The cost review month by month, its three figures reconciled, and what
/// the figures assume said beside them (issue 18).
#[test]
fn the_cost_review_has_a_monthly_budget_and_its_assumptions() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = plan_json();
    // 40 days of hours: a whole 730-hour month and a partial second.
    let n = 24 * 40;
    for k in [
        "demand_vcpu",
        "capacity_vcpu",
        "commitment_coverage",
        "commitment_utilization",
        "spot_share",
    ] {
        p["hourly"][k] = json!(vec![0.5; n]);
    }
    p["hourly"]["cost"] = json!(vec![1.0; n]);
    p["hourly"]["baseline_cost"] = json!(vec![2.0; n]);
    p["solver"]["hours"] = json!(n);
    p["instances"] = json!([
        {"instance_type": "m6i.large", "pricing": "reserved_1y", "count": 8, "hourly_price": 0.0625, "instance_hours": 8.0 * n as f64, "cost": 0.5 * n as f64},
        {"instance_type": "m6i.large", "pricing": "on_demand", "hourly_counts": vec![2; n], "hourly_price": 0.096, "instance_hours": 2.0 * n as f64, "cost": 0.192 * n as f64},
    ]);
    let docs = vec![save(dir.path(), "p.json", &p)];
    let s = &reports::build(&docs, &opts(dir.path(), Format::Html)).unwrap()[0];
    let budget = s.tables.iter().find(|t| t.id == "budget").unwrap();
    assert_eq!(budget.numbers("plan"), [730.0, 230.0]);
    assert_eq!(budget.numbers("all on-demand baseline"), [1460.0, 460.0]);
    assert_eq!(budget.numbers("commitments"), [365.0, 115.0]);
    assert_eq!(budget.numbers("commitment utilisation %"), [50.0, 50.0]);
    let od = budget.numbers("on-demand");
    assert!((od[0] - 730.0 * 0.192).abs() < 1e-9, "{od:?}");
    let rec = s.tables.iter().find(|t| t.id == "reconciliation").unwrap();
    assert_eq!(rec.numbers("over the horizon"), [146.0, 73.0, 72.5]);
    let next = s.next.join("\n");
    assert!(
        next.contains("costed for the horizon's 960 hours only; the term runs 8760 hours"),
        "{next}"
    );
    assert!(next.contains("AWS, APPROXIMATE prices"), "{next}");
}

/// `--export` writes the run second by second too (not on the page), and
/// counts as integers, strings as strings (issue 18).
#[test]
fn the_export_has_the_series_with_integer_counts() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let docs = vec![save(dir.path(), "r.json", &run_json("r", 50.0, 0.01))];
    let mut o = opts(&dir.path().join("out"), Format::Html);
    o.export_parquet = true;
    let w = write(&docs, &o).unwrap();
    let series = dir.path().join("out/run_series.parquet");
    assert!(w.tables.contains(&series), "{:?}", w.tables);
    let df = ParquetReader::new(std::fs::File::open(&series).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), 30);
    assert_eq!(df.column("requests").unwrap().dtype(), &DataType::UInt64);
    assert_eq!(df.column("timeout").unwrap().dtype(), &DataType::UInt64);
    assert_eq!(df.column("p95_ms").unwrap().dtype(), &DataType::Float64);
    let outcomes = ParquetReader::new(
        std::fs::File::open(dir.path().join("out/run_outcomes.parquet")).unwrap(),
    )
    .finish()
    .unwrap();
    assert_eq!(
        outcomes.column("requests").unwrap().dtype(),
        &DataType::UInt64
    );
    assert_eq!(
        outcomes.column("outcome").unwrap().dtype(),
        &DataType::String
    );
    let html = std::fs::read_to_string(&w.page).unwrap();
    assert!(!html.contains("The run, second by second"));
}
