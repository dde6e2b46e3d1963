//! The end-of-run table `loadtest run` prints: the target and what was
//! sent, counts, rates and classes, responses and bytes, latency, each kind
//! of request, and the thresholds.

use loadgen::RunResult;
use loadgen::stats::Class;

/// The end-of-run table.
pub fn render(r: &RunResult) -> String {
    let mut s = String::new();
    summary_head(&mut s, r);
    summary_counts(&mut s, r);
    summary_traffic(&mut s, r);
    summary_latency(&mut s, r);
    summary_requests(&mut s, r);
    summary_checks(&mut s, r);
    summary_thresholds(&mut s, r);
    s
}

/// The target, the model, and each kind of request sent.
fn summary_head(s: &mut String, r: &RunResult) {
    use std::fmt::Write as _;
    let target = r
        .target_rps
        .map(|t| format!(", target {t:.1} rps"))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "\n{} ({} model{target}, {:.1} s, seed {})",
        r.url, r.mode, r.duration_s, r.seed
    );
    for q in &r.requests_sent {
        let h = if q.headers.is_empty() {
            String::new()
        } else {
            format!("  [{}]", q.headers.join("; "))
        };
        let _ = writeln!(s, "  {:<6} {} (weight {}){h}", q.method, q.url, q.weight);
        if !q.checks.is_empty() {
            let _ = writeln!(s, "         checks: {}", q.checks.join("; "));
        }
    }
}

/// Requests by outcome, rates, error classes, connections.
fn summary_counts(s: &mut String, r: &RunResult) {
    use std::fmt::Write as _;
    let pct = |n: u64| {
        if r.requests > 0 {
            100.0 * n as f64 / r.requests as f64
        } else {
            0.0
        }
    };
    let errors: u64 = r.errors.values().sum();
    let _ = writeln!(
        s,
        "  requests {}   ok {}   errors {} ({:.3}%)   dropped {}",
        r.requests,
        r.ok,
        errors,
        pct(errors),
        r.dropped
    );
    if r.retried > 0 {
        let _ = writeln!(
            s,
            "  retried {} on a fresh connection (the server had closed an idle keep-alive connection)",
            r.retried
        );
    }
    let _ = writeln!(
        s,
        "  achieved {:.1} rps{}; goodput {:.1} rps (ok responses per second of the {:.1} s window)",
        r.rps,
        r.offered_rps
            .map(|t| format!(" of {t:.1} scheduled ({:.2}%)", 100.0 * r.rps / t))
            .unwrap_or_default(),
        r.goodput_rps,
        r.window_s
    );
    let by_class: Vec<String> = Class::ERRORS
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c.name(),
                r.errors.get(c.name()).copied().unwrap_or(0)
            )
        })
        .collect();
    let _ = writeln!(s, "  errors by class: {}", by_class.join(", "));
}

/// Responses by status code, bytes each way, connections.
fn summary_traffic(s: &mut String, r: &RunResult) {
    use std::fmt::Write as _;
    let codes: Vec<String> = r
        .status_codes
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    let _ = writeln!(
        s,
        "  status codes: {}   received {}, sent {}",
        if codes.is_empty() {
            "none".to_string()
        } else {
            codes.join(", ")
        },
        contracts::units::bytes(r.bytes_received),
        contracts::units::bytes(r.bytes_sent)
    );
    let _ = writeln!(
        s,
        "  connections opened {}, peak in use {}{}",
        r.connections.opened,
        r.connections.peak,
        r.connections
            .max
            .map(|m| format!(" (max {m})"))
            .unwrap_or_default()
    );
}

/// Latency from the schedule and from the send.
fn summary_latency(s: &mut String, r: &RunResult) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "\n  latency ms          mean      p50      p90      p95      p99    p99.9      max"
    );
    let mut rows = vec![
        ("from schedule", &r.latency_ms),
        ("from send", &r.latency_uncorrected_ms),
    ];
    // Where the time goes: first byte for every response, connecting and
    // the TLS handshake for each new connection ("connections opened"
    // above says how many).
    if let Some(p) = r.phases.as_ref().filter(|p| p.responses > 0) {
        rows.push(("  first byte", &p.ttfb_ms));
    }
    if let Some(p) = r.phases.as_ref().filter(|p| p.new_connections > 0) {
        rows.push(("  tcp connect", &p.connect_ms));
        if let Some(t) = &p.tls_handshake_ms {
            rows.push(("  tls handshake", t));
        }
    }
    for (label, l) in rows {
        let _ = writeln!(
            s,
            "  {label:<15} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            l.mean, l.p50, l.p90, l.p95, l.p99, l.p999, l.max
        );
    }
}

/// One line per kind of request, when there are several.
fn summary_requests(s: &mut String, r: &RunResult) {
    use std::fmt::Write as _;
    if r.by_request.len() < 2 {
        return;
    }
    let _ = writeln!(
        s,
        "\n  {:<24} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8}",
        "request", "requests", "errors", "error %", "rps", "p50 ms", "p95 ms", "p99 ms"
    );
    for q in &r.by_request {
        let _ = writeln!(
            s,
            "  {:<24} {:>9} {:>9} {:>7.3}% {:>9.1} {:>8.2} {:>8.2} {:>8.2}",
            crate::cut(&q.name, 24),
            q.requests,
            q.requests - q.ok,
            100.0 * q.error_rate,
            q.rps,
            q.latency_ms.p50,
            q.latency_ms.p95,
            q.latency_ms.p99
        );
    }
}

/// Each response check: how many responses passed and failed it (k6's
/// `checks`).
fn summary_checks(s: &mut String, r: &RunResult) {
    use std::fmt::Write as _;
    if r.checks.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n  {:<44} {:>9} {:>9} {:>9}",
        "check", "passed", "failed", "failed %"
    );
    for c in &r.checks {
        let judged = c.passed + c.failed;
        let pct = if judged > 0 {
            100.0 * c.failed as f64 / judged as f64
        } else {
            0.0
        };
        let mark = if c.failed == 0 { "ok  " } else { "FAIL" };
        let what = format!("{}: {}", c.request, c.check);
        let _ = writeln!(
            s,
            "  {mark} {:<39} {:>9} {:>9} {:>8.3}%",
            crate::cut(&what, 38),
            c.passed,
            c.failed,
            pct
        );
    }
}

/// Each threshold and its verdict.
fn summary_thresholds(s: &mut String, r: &RunResult) {
    use std::fmt::Write as _;
    if !r.thresholds.is_empty() {
        let _ = writeln!(s, "\n  thresholds");
        for t in &r.thresholds {
            let mark = if t.ok { "PASS" } else { "FAIL" };
            let _ = writeln!(s, "  {mark}  {:<22} {}", t.expr, t.measured());
        }
    }
}
