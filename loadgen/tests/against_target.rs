//! The generator against the built-in target on 127.0.0.1:0: latency,
//! counts and classes checked against what the target itself saw.
//! Load tests take a lock so that two never share the two cores.

use std::io::{Read, Write};
use std::net::TcpListener as StdListener;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use loadgen::spec::Dist;
use loadgen::stats::Class;
use loadgen::target::{Stall, TargetConfig, TargetStats};
use loadgen::{Load, RequestSpec, RunPlan, RunResult, Schedule, StopHandle, TargetSpec};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A target on its own runtime; stops when dropped.
struct Target {
    url: String,
    stats: Arc<TargetStats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(cfg: TargetConfig) -> Target {
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let stats = Arc::new(TargetStats::default());
            let scheme = if cfg.tls { "https" } else { "http" };
            tx.send((
                format!("{scheme}://{}/", listener.local_addr().unwrap()),
                stats.clone(),
            ))
            .unwrap();
            let _ = loadgen::target::serve(listener, cfg, stats, async {
                let _ = stop_rx.await;
            })
            .await;
        });
    });
    let (url, stats) = rx.recv().unwrap();
    Target {
        url,
        stats,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

fn open_plan(url: &str, rate: f64, secs: u64) -> RunPlan {
    RunPlan {
        target: TargetSpec {
            url: url.into(),
            ..TargetSpec::default()
        },
        requests: vec![RequestSpec::default()],
        load: Load::Open {
            schedule: Schedule::constant(rate, Duration::from_secs(secs)),
            initial_connections: 8,
            max_connections: 10_000,
        },
        timeout: Duration::from_secs(5),
        workers: 1,
        seed: 7,
        coalesce: loadgen::DEFAULT_COALESCE,
        shard: loadgen::Shard::WHOLE,
        start: None,
    }
}

fn run(plan: &RunPlan) -> RunResult {
    let out = loadgen::run(plan, &StopHandle::default(), |_, _| {
        ControlFlow::Continue(())
    })
    .unwrap();
    loadgen::summarize(plan, &out, &[])
}

fn constant(ms: f64) -> Dist {
    Dist::Constant { ms }
}

#[test]
fn stalls_are_measured_from_the_schedule_and_arrivals_keep_coming() {
    let _g = serial();
    let cfg = TargetConfig {
        workers: 16,
        service_time: constant(1.0),
        stall: Some(Stall::parse("1s/5s").unwrap()),
        ..TargetConfig::default()
    };
    let t = start(cfg);
    let r = run(&open_plan(&t.url, 500.0, 20));
    assert_eq!(r.requests, 10_000);
    assert_eq!(r.ok, 10_000);
    assert_eq!(r.dropped, 0);
    // A fifth of the requests arrive during a stall and wait U(0, 1 s) for
    // its end: p90, p95 and p99 sit at its 50th, 75th and 95th percentiles.
    let l = &r.latency_ms;
    assert!((l.p90 - 500.0).abs() < 40.0, "p90 {}", l.p90);
    assert!((l.p95 - 750.0).abs() < 40.0, "p95 {}", l.p95);
    assert!((l.p99 - 950.0).abs() < 40.0, "p99 {}", l.p99);
    // New connections keep users arriving while the open ones wait.
    assert!(
        r.connections.peak >= 400,
        "peak connections {}",
        r.connections.peak
    );
    let arrivals = t.stats.arrivals_per_second();
    for stalled_second in [4usize, 9, 14, 19] {
        let n = arrivals[stalled_second];
        assert!(
            (450..=550).contains(&n),
            "second {stalled_second}: {n} arrivals ({arrivals:?})"
        );
    }
    assert_eq!(t.stats.served(), r.requests);
}

#[test]
fn without_stalls_p99_is_the_service_time_and_the_rate_holds() {
    let _g = serial();
    let t = start(TargetConfig {
        workers: 16,
        service_time: constant(5.0),
        ..TargetConfig::default()
    });
    let r = run(&open_plan(&t.url, 1000.0, 5));
    assert_eq!(r.requests, 5000);
    assert_eq!(t.stats.served(), 5000);
    assert!(r.latency_ms.p50 >= 5.0, "p50 {}", r.latency_ms.p50);
    // At 31% load on 16 workers with a constant 5 ms nothing queues: the
    // tail is the service time, tokio's 1 ms timer, and the scheduler's
    // wake-ups on both sides, each at most a few ms on a busy machine
    // (two CPU hogs on 2 cores: p99 9.5 ms). A queue or a stall counted
    // from its schedule puts it in the hundreds (the stall test: 950 ms).
    assert!(r.latency_ms.p99 < 30.0, "p99 {}", r.latency_ms.p99);
    let target = r.target_rps.unwrap();
    assert!(
        (r.rps - target).abs() / target < 0.01,
        "achieved {} of {}",
        r.rps,
        target
    );
    let series_total: u64 = r.series.iter().map(|s| s.requests).sum();
    assert_eq!(series_total, r.requests);
}

#[test]
fn injected_errors_are_counted_as_5xx() {
    let _g = serial();
    let t = start(TargetConfig {
        service_time: constant(0.0),
        error_rate: 0.1,
        ..TargetConfig::default()
    });
    let r = run(&open_plan(&t.url, 1000.0, 3));
    let e5 = r.errors["http_5xx"];
    assert_eq!(r.requests, r.ok + r.errors.values().sum::<u64>());
    assert_eq!(e5, t.stats.errors());
    assert_eq!(r.ok, t.stats.served());
    let share = e5 as f64 / r.requests as f64;
    assert!((share - 0.1).abs() < 0.02, "5xx share {share}");
    // Every response by its status code (issue 18).
    assert_eq!(r.status_codes["200"], r.ok);
    assert_eq!(r.status_codes["500"], e5);
    assert_eq!(r.status_codes.len(), 2, "{:?}", r.status_codes);
}

/// Bytes each way (issue 18): every byte of every response read, and the
/// same request's bytes for each send.
#[test]
fn bytes_sent_and_received_are_counted() {
    let _g = serial();
    const REPLY: &[u8] =
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\nconnection: close\r\n\r\nnope\n";
    let url = raw_peer(REPLY);
    let r = run(&open_plan(&url, 20.0, 1));
    assert_eq!(r.requests, 20);
    assert_eq!(r.status_codes["404"], 20);
    assert_eq!(r.bytes_received, 20 * REPLY.len() as u64);
    // One kind of request, never retried: 20 equal sends of a GET with
    // its request line and headers.
    assert_eq!(r.retried, 0);
    assert_eq!(r.bytes_sent % 20, 0, "{}", r.bytes_sent);
    assert!(
        (20 * 30..=20 * 400).contains(&r.bytes_sent),
        "{}",
        r.bytes_sent
    );
}

#[test]
fn ramp_sends_the_integral_of_the_stages() {
    let _g = serial();
    let t = start(TargetConfig {
        service_time: constant(1.0),
        ..TargetConfig::default()
    });
    let mut plan = open_plan(&t.url, 1.0, 1);
    let stages = loadgen::parse_stages("2s:400,1s:400").unwrap();
    let schedule = Schedule::ramp(0.0, &stages);
    plan.load = Load::Open {
        schedule,
        initial_connections: 4,
        max_connections: 1000,
    };
    let r = run(&plan);
    assert_eq!(r.requests, 400 + 400);
    // The first second of the ramp carries a quarter of its requests.
    assert!(
        (r.series[0].requests as i64 - 100).abs() <= 5,
        "{:?}",
        r.series[0]
    );
    assert_eq!(t.stats.served(), 800);
}

#[test]
fn closed_model_loops_its_connections() {
    let _g = serial();
    let t = start(TargetConfig {
        workers: 4,
        service_time: constant(10.0),
        ..TargetConfig::default()
    });
    let mut plan = open_plan(&t.url, 1.0, 1);
    plan.load = Load::Closed {
        connections: 4,
        think_time: Duration::ZERO,
        duration: Duration::from_secs(2),
    };
    let r = run(&plan);
    assert_eq!(r.target_rps, None);
    assert_eq!(r.mode, "closed");
    // 4 connections × ~11 ms per exchange × 2 s ≈ 720 requests.
    assert!((500..=800).contains(&r.requests), "{} requests", r.requests);
    assert_eq!(t.stats.served(), r.requests);
    assert_eq!(r.connections.opened, 4);
}

/// With many requests in flight the worker waits (here the longest
/// allowed, 1 ms) before it sleeps, so that it wakes once per batch of
/// responses; with few in flight, or with the wait turned off, it never
/// does. Either way every request is counted, and the kernel's receive
/// timestamps keep the wait out of the latencies. A kernel that gives no
/// timestamps (gVisor) gets no wait: it would show in the latencies.
#[test]
fn the_idle_wait_applies_only_with_many_requests_in_flight() {
    let _g = serial();
    let t = start(TargetConfig {
        workers: 64,
        service_time: constant(3.0),
        ..TargetConfig::default()
    });
    for (connections, coalesce, many) in [(32, 1000, true), (32, 0, false), (4, 1000, false)] {
        let mut plan = open_plan(&t.url, 1.0, 1);
        plan.load = Load::Closed {
            connections,
            think_time: Duration::ZERO,
            duration: Duration::from_secs(1),
        };
        plan.coalesce = Duration::from_micros(coalesce);
        let served = t.stats.served();
        let out = loadgen::run(&plan, &StopHandle::default(), |_, _| {
            ControlFlow::Continue(())
        })
        .unwrap();
        let r = loadgen::summarize(&plan, &out, &[]);
        let case = format!("{connections} connections, wait {coalesce} µs");
        // No response is kernel-timed where the kernel never stamps one.
        let stamps = out.kernel_timed > 0;
        assert!(out.kernel_timed <= r.requests, "{case}");
        assert_eq!(
            out.idle_waits > 0,
            many && stamps,
            "{case}: {} waits",
            out.idle_waits
        );
        assert_eq!(r.errors.values().sum::<u64>(), 0, "{case}: {:?}", r.errors);
        assert_eq!(t.stats.served() - served, r.requests, "{case}");
        // The target sleeps 3 ms on a 1 ms timer wheel: 3-4 ms, plus its
        // own scheduling. A wait counted in the latency would add ~0.5 ms.
        let p50 = r.latency_uncorrected_ms.p50;
        assert!((3.0..5.5).contains(&p50), "{case}: p50 {p50} ms");
    }
}

#[test]
fn a_cap_on_connections_drops_what_cannot_be_sent_in_time() {
    let _g = serial();
    let t = start(TargetConfig {
        workers: 64,
        service_time: constant(300.0),
        ..TargetConfig::default()
    });
    let mut plan = open_plan(&t.url, 200.0, 2);
    plan.timeout = Duration::from_millis(500);
    plan.load = Load::Open {
        schedule: Schedule::constant(200.0, Duration::from_secs(2)),
        initial_connections: 2,
        max_connections: 10,
    };
    let r = run(&plan);
    // 10 connections × 1/0.3 s carry ~33 rps of the 200 scheduled.
    assert!(r.dropped > 0);
    assert_eq!(r.requests + r.dropped, 400);
    assert!(r.connections.peak <= 10);
    // What was sent waited for a connection, and that wait is in the latency.
    assert!(
        r.latency_ms.p50 > r.latency_uncorrected_ms.p50 + 100.0,
        "{:?}",
        r.latency_ms
    );
}

/// Ten million requests a second, far past what one generator sends: the
/// run still ends with its schedule plus the timeout (the slots it could
/// not send count as dropped, all at once, not one by one), and every
/// scheduled request is accounted for.
#[test]
fn a_rate_past_the_generator_ends_with_its_schedule() {
    let _g = serial();
    let t = start(TargetConfig {
        workers: 64,
        service_time: constant(1.0),
        ..TargetConfig::default()
    });
    let mut plan = open_plan(&t.url, loadgen::MAX_RATE_RPS, 4);
    plan.timeout = Duration::from_millis(200);
    plan.load = Load::Open {
        schedule: Schedule::constant(loadgen::MAX_RATE_RPS, Duration::from_secs(4)),
        initial_connections: 8,
        max_connections: 64,
    };
    let started = std::time::Instant::now();
    let out = loadgen::run(&plan, &StopHandle::default(), |_, _| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let took = started.elapsed();
    let r = loadgen::summarize(&plan, &out, &[]);
    assert_eq!(r.requests + r.dropped, 40_000_000);
    assert!(r.dropped > 39_000_000, "{} dropped", r.dropped);
    // The run ends once every slot left is more than the timeout late:
    // 4.2 s, plus the last exchanges (1 ms each here) and a busy machine's
    // timer lateness. Dropping 40M stale slots one by one as they are
    // handed out takes 2.5 s more on an idle machine, and longer on a busy one.
    assert!(took < Duration::from_millis(5500), "the run took {took:?}");
}

#[test]
fn timeouts_are_their_own_class() {
    let _g = serial();
    let t = start(TargetConfig {
        service_time: constant(2000.0),
        ..TargetConfig::default()
    });
    let mut plan = open_plan(&t.url, 20.0, 1);
    plan.timeout = Duration::from_millis(200);
    let r = run(&plan);
    assert_eq!(r.errors["timeout"], 20);
    assert_eq!(r.ok, 0);
}

/// A raw TCP peer that answers every connection with `reply` and closes.
fn raw_peer(reply: &'static [u8]) -> String {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming().take(200) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(reply);
        }
    });
    url
}

/// A keep-alive peer that answers `per_conn` requests on each connection
/// and then closes it without a word (as a server's requests-per-connection
/// limit or keep-alive timeout does). Returns its URL and how many requests
/// it answered. It stops by itself after `conns` connections.
fn closing_peer(per_conn: usize, conns: usize) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    let answered = Arc::new(AtomicU64::new(0));
    let count = answered.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(conns) {
            let Ok(mut s) = s else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let (mut buf, mut served) = (Vec::new(), 0);
                let mut chunk = [0u8; 4096];
                while served < per_conn {
                    let Ok(n) = s.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .is_err()
                        {
                            return;
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                        served += 1;
                    }
                }
                // Closed while idle: no `connection: close` was sent.
            });
        }
    });
    (url, answered)
}

/// A request that fails on a keep-alive connection the server closed while
/// it was idle, with no byte of a response, never reached the server: an
/// idempotent one is sent again, once, on a fresh connection, and counted
/// once; a POST is not (it might have been processed).
#[test]
fn a_request_on_a_connection_closed_while_idle_is_retried_once() {
    use std::sync::atomic::Ordering;
    let _g = serial();
    let (url, answered) = closing_peer(5, 1000);
    let r = run(&open_plan(&url, 200.0, 2));
    assert_eq!(r.requests, 400);
    assert_eq!(r.errors.values().sum::<u64>(), 0, "{:?}", r.errors);
    assert_eq!(r.ok, answered.load(Ordering::Relaxed));
    // Every connection is closed after its 5th answer: most of them carry
    // a 6th request that must be retried.
    assert!(r.retried >= 400 / 6 / 2, "{} retried", r.retried);
    assert!(r.retried < r.requests, "{} retried", r.retried);

    let (url, answered) = closing_peer(5, 1000);
    let mut plan = open_plan(&url, 200.0, 2);
    plan.requests[0].method = "POST".into();
    let r = run(&plan);
    assert_eq!(r.retried, 0);
    assert_eq!(r.ok, answered.load(Ordering::Relaxed));
    assert_eq!(r.ok + r.errors["reset"], 400, "{:?}", r.errors);
    assert!(r.errors["reset"] > 0);
}

#[test]
fn resets_protocol_errors_and_4xx_are_classified() {
    let _g = serial();
    for (reply, class) in [
        (&b""[..], Class::Reset),
        (&b"SPDY/9 banana\r\n\r\n"[..], Class::Protocol),
        (
            &b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"[..],
            Class::Http4xx,
        ),
    ] {
        let url = raw_peer(reply);
        let r = run(&open_plan(&url, 20.0, 1));
        assert_eq!(r.requests, 20, "{class:?}");
        assert_eq!(r.errors[class.name()], 20, "{class:?}: {:?}", r.errors);
    }
}

#[test]
fn an_unreachable_target_is_an_error_before_any_load() {
    let port = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plan = open_plan(&format!("http://127.0.0.1:{port}/"), 10.0, 1);
    let err = loadgen::run(&plan, &StopHandle::default(), |_, _| {
        ControlFlow::Continue(())
    })
    .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[test]
fn http2_prior_knowledge_and_alpn_over_tls() {
    let _g = serial();
    let t = start(TargetConfig {
        service_time: constant(1.0),
        ..TargetConfig::default()
    });
    let mut plan = open_plan(&t.url, 200.0, 1);
    plan.target.http2 = true;
    let r = run(&plan);
    assert_eq!(r.ok, 200);
    // Every stream rides one connection.
    assert_eq!(r.connections.opened, 1);

    let tls = start(TargetConfig {
        service_time: constant(1.0),
        tls: true,
        ..TargetConfig::default()
    });
    for http2 in [false, true] {
        let mut plan = open_plan(&tls.url, 100.0, 1);
        plan.target = TargetSpec {
            url: tls.url.clone(),
            http2,
            insecure: true,
        };
        let r = run(&plan);
        assert_eq!(r.ok, 100, "http2={http2}: {:?}", r.errors);
        if http2 {
            assert_eq!(r.connections.opened, 1);
        }
    }
    // Without --insecure a self-signed certificate is refused before any
    // load is sent, and the error says why and what to do.
    let mut plan = open_plan(&tls.url, 10.0, 1);
    plan.target.insecure = false;
    let served = tls.stats.served();
    let e = loadgen::run(&plan, &StopHandle::default(), |_, _| {
        ControlFlow::Continue(())
    })
    .expect_err("an untrusted certificate is refused")
    .to_string();
    assert!(
        e.contains("certificate is not trusted") && e.contains("--insecure"),
        "{e}"
    );
    assert_eq!(tls.stats.served(), served);
}

#[test]
fn stopping_keeps_what_was_measured() {
    let _g = serial();
    let t = start(TargetConfig {
        service_time: constant(1.0),
        ..TargetConfig::default()
    });
    let plan = open_plan(&t.url, 200.0, 30);
    let stop = StopHandle::default();
    let s2 = stop.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        s2.stop();
    });
    let started = std::time::Instant::now();
    let out = loadgen::run(&plan, &stop, |_, _| ControlFlow::Continue(())).unwrap();
    stopper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let r = loadgen::summarize(&plan, &out, &[]);
    assert_eq!(r.stopped.as_deref(), Some("interrupted"));
    assert!((250..=350).contains(&r.requests), "{} requests", r.requests);
    assert_eq!(t.stats.served(), r.requests);
}
