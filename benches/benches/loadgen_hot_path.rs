//! The generator's per-request work that is not the kernel's: recording a
//! result (two histograms and counters), merging a worker's interval into the
//! collector's, and finding the next due time on the schedule.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use loadgen::Schedule;
use loadgen::stats::{Class, Interval, Recorder};

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000 results", |b| {
        let mut rec = Recorder::default();
        // Fixed latencies between 200 µs and 2 s, spread over the buckets.
        let lat: Vec<u64> = (0..1000u64)
            .map(|i| 200 + (i * i * 2003) % 2_000_000)
            .collect();
        b.iter(|| {
            for &us in &lat {
                rec.record(Class::Ok, black_box(us), black_box(us - us / 10));
            }
        })
    });
    g.finish();
}

fn merge(c: &mut Criterion) {
    let mut worker = Interval::empty(0);
    for i in 0..10_000u64 {
        let _ = worker.latency_us.record(100 + i * 37 % 500_000);
        worker.counts.add(Class::Ok);
    }
    c.bench_function("merge one worker-second into the collector", |b| {
        let mut total = Interval::empty(0);
        b.iter(|| total.merge(black_box(&worker)))
    });
}

fn schedule(c: &mut Criterion) {
    let s = Schedule::ramp(
        0.0,
        &loadgen::parse_stages("30s:20000,1m:40000,30s:0").unwrap(),
    );
    let mut g = c.benchmark_group("schedule");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("10k due times in order", |b| {
        b.iter(|| {
            let mut cur = s.cursor();
            let mut acc = 0u64;
            for i in (0..10_000u64).map(|k| k * 200) {
                acc = acc.wrapping_add(cur.due_ns(i).unwrap_or(0));
            }
            acc
        })
    });
    g.finish();
}

criterion_group!(benches, record, merge, schedule);
criterion_main!(benches);
