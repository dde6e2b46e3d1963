//! Where a request's time goes (issue 18): the TCP connect and TLS
//! handshake of each new connection, and every response's time to first
//! byte, against the built-in target over http and https.

mod common;

use assert_cmd::prelude::*;
use common::{loadtest, serial, serve};

#[test]
fn connect_handshake_and_first_byte_are_timed() {
    let _g = serial();
    for tls in [false, true] {
        let mut args = vec!["--service-time", "const:20ms"];
        if tls {
            args.push("--tls");
        }
        let s = serve(&args);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.json");
        loadtest()
            .args([
                "run",
                "--url",
                &s.url,
                "--connections",
                "2",
                "--duration",
                "1s",
            ])
            .args(["--insecure", "--quiet", "--json"])
            .arg(&out)
            .assert()
            .success();
        let r: contracts::RunResult =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let p = r.phases.expect("phases");
        assert!(r.requests > 0);
        // Every connection opened was timed; every response to its first byte.
        assert_eq!(p.new_connections, r.connections.opened, "tls {tls}");
        assert_eq!(p.responses, r.requests, "tls {tls}");
        assert_eq!(p.tls_handshake_ms.is_some(), tls);
        assert!(p.connect_ms.max > 0.0);
        // The server holds each request 20 ms before its first byte, and the
        // first byte comes no later than the last.
        assert!(p.ttfb_ms.p50 >= 20.0, "{:?}", p.ttfb_ms);
        assert!(
            p.ttfb_ms.p50 <= r.latency_uncorrected_ms.p50 + 0.01,
            "{p:?}"
        );
    }
}
