//! `loadtest merge` at issue #16's size: 100 shard results of a 10-minute
//! run each (1,000 rps per shard, 100,000 rps in all: 600 seconds × 1,000
//! requests per shard), merged. `merge` is the merge of parsed results;
//! `parse_and_merge` adds reading the 100 JSON documents, as the command
//! does.
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use loadgen::stats::{Class, Recorder};
use loadgen::{Load, RequestSpec, RunOutcome, RunPlan, Schedule, Shard, StartAt, TargetSpec};

const SHARDS: u32 = 100;
const SECS: u64 = 600;
const PER_SHARD_RPS: u64 = 1000;

fn plan(index: u32) -> RunPlan {
    RunPlan {
        target: TargetSpec {
            url: "http://127.0.0.1:8080/".into(),
            ..TargetSpec::default()
        },
        requests: vec![RequestSpec::default()],
        load: Load::Open {
            schedule: Schedule::constant(
                (PER_SHARD_RPS * u64::from(SHARDS)) as f64,
                Duration::from_secs(SECS),
            ),
            initial_connections: 64,
            max_connections: 10_000,
        },
        timeout: Duration::from_secs(5),
        workers: 2,
        seed: 1,
        coalesce: loadgen::DEFAULT_COALESCE,
        shard: Shard {
            index,
            count: SHARDS,
        },
        start: Some(StartAt {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            tolerance: Duration::from_secs(1),
        }),
    }
}

/// A shard's result: each second 1,000 latencies around 20 ms with a long
/// right tail (a log-normal-like spread of two decades), as a real
/// service's are, so each second's histogram holds hundreds of buckets.
fn shard(index: u32) -> loadgen::RunResult {
    let p = plan(index);
    let mut rec = Recorder::default();
    let (mut series, mut seconds) = (Vec::new(), Vec::new());
    let mut x = u64::from(index) * 0x9E37_79B9 + 1;
    for s in 0..SECS {
        for _ in 0..PER_SHARD_RPS {
            // xorshift, then the sum of two uniforms for a peaked spread.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (u, v) = (
                (x & 0xFFFF) as f64 / 65536.0,
                ((x >> 16) & 0xFFFF) as f64 / 65536.0,
            );
            let us = (20_000.0 * (4.0 * (u + v - 1.0)).exp()) as u64 + 1;
            rec.record(Class::Ok, us, us * 9 / 10);
        }
        let iv = rec.take_interval(s + 1);
        series.push(loadgen::second_row(&iv, Some(PER_SHARD_RPS as f64)));
        seconds.push(loadgen::histogram_to_base64_plain(&iv.latency_us));
    }
    let out = RunOutcome {
        totals: rec,
        series,
        elapsed: Duration::from_secs(SECS),
        sending: Duration::from_secs(SECS),
        connections_opened: 64,
        peak_connections: 64,
        idle_waits: 0,
        kernel_timed: 0,
        stopped: None,
        start_offset_ms: Some(0.3),
        second_histograms: seconds,
    };
    let thresholds = [loadgen::parse_threshold("p95<200ms").unwrap()];
    loadgen::summarize(&p, &out, &thresholds)
}

fn merge(c: &mut Criterion) {
    let parts: Vec<loadgen::RunResult> = (0..SHARDS).map(shard).collect();
    let texts: Vec<String> = parts
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    eprintln!(
        "{SHARDS} shards, {:.1} MB of JSON ({:.0} kB each)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e3 / f64::from(SHARDS)
    );
    let merged = loadgen::merge::merge(&parts, &[]).unwrap();
    assert_eq!(merged.requests, u64::from(SHARDS) * SECS * PER_SHARD_RPS);
    let mut g = c.benchmark_group("merge_100_shards_10min");
    g.sample_size(10);
    g.bench_function("merge", |b| {
        b.iter(|| loadgen::merge::merge(&parts, &[]).unwrap())
    });
    g.bench_function("parse_and_merge", |b| {
        b.iter(|| {
            let parts: Vec<loadgen::RunResult> = texts
                .iter()
                .map(|t| serde_json::from_str(t).unwrap())
                .collect();
            loadgen::merge::merge(&parts, &[]).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, merge);
criterion_main!(benches);
