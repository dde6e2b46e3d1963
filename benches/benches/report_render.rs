//! `loadtest report` on issue #5's size: a 30-minute run's per-second CSV
//! (1,800 rows) and a 24-month forecast, rendered to HTML with every chart
//! as inline SVG, SVG and PNG files, and the tables exported as CSV.
use criterion::{Criterion, criterion_group, criterion_main};

fn inputs(dir: &std::path::Path) -> Vec<reports::Doc> {
    let mut csv = String::from(
        "t_s,requests,ok,errors,rps,p50_ms,p95_ms,p99_ms,dropped,target_rps,connect,timeout,reset,http_4xx,http_5xx,protocol\n",
    );
    for t in 0..1800 {
        let wobble = ((t as f64) / 60.0).sin();
        csv.push_str(&format!(
            "{t},1000,998,2,1000,{:.3},{:.3},{:.3},0,1000,0,1,0,0,1,0\n",
            20.0 + 2.0 * wobble,
            80.0 + 10.0 * wobble,
            150.0 + 20.0 * wobble
        ));
    }
    let run = dir.join("run.csv");
    std::fs::write(&run, csv).unwrap();
    let windows: Vec<serde_json::Value> = (0..24)
        .map(|m| {
            let users = 1000.0 * 1.25f64.powi(m);
            serde_json::json!({"label": format!("month {}", m + 1), "day": m as f64 * 30.4, "users": users, "offered_rps": users * 0.02,
                "p95_ms": {"mean": 90.0 + m as f64 * 5.0, "ci95": 4.0}, "p99_ms": {"mean": 150.0, "ci95": 5.0},
                "replicas": {"mean": 2.0 + m as f64 * 1.8, "ci95": 0.4}, "replicas_max": 3 + 2 * m,
                "utilization": {"mean": 0.55, "ci95": 0.02}, "error_rate": {"mean": 0.0, "ci95": 0.0},
                "violation_minutes": {"mean": 0.0, "ci95": 0.0}, "cost_per_hour": {"mean": 0.192 * (2.0 + m as f64 * 1.8), "ci95": 0.05},
                "fluid_replicas": 2.0 + m as f64 * 1.8})
        })
        .collect();
    let hours = 17_280;
    let f = serde_json::json!({"kind": "forecast", "name": "growth", "simulated": "24 monthly windows", "replications": 4,
        "slo": {"p95_target_ms": 200.0, "violation_minutes": {"mean": 0.0, "ci95": 0.0}, "minutes": 4320},
        "windows": windows, "crossings": [],
        "hourly": {"note": "", "replicas": vec![10; hours], "rps": vec![100.0; hours], "users": vec![5000.0; hours]}});
    let fp = dir.join("forecast.json");
    std::fs::write(&fp, f.to_string()).unwrap();
    vec![reports::load(&run).unwrap(), reports::load(&fp).unwrap()]
}

fn render(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let docs = inputs(dir.path());
    let opts = reports::Options {
        out: dir.path().join("out"),
        format: reports::Format::Html,
        export_csv: true,
        export_parquet: false,
        regression: 0.1,
        start_date: None,
        title: "bench".into(),
    };
    let mut g = c.benchmark_group("report");
    g.sample_size(10);
    g.bench_function("run_30min_plus_forecast_24_months", |b| {
        b.iter(|| reports::write(&docs, &opts).unwrap())
    });
    g.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
