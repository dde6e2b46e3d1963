//! Helpers the end-to-end test files share: the binary, one measuring
//! test at a time, and `loadtest serve` on a free loopback port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};

pub const BIN: &str = env!("CARGO_BIN_EXE_loadtest");

static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `loadtest serve` on a free port; killed when dropped.
pub struct Serve {
    pub child: Child,
    pub url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(args: &[&str]) -> Serve {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--port",
            "0",
            "--exit-after",
            "120s",
            "--threads",
            "1",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    Serve { child, url }
}

pub fn loadtest() -> Command {
    Command::new(BIN)
}

pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `loadtest run` at 100 rps for 60 s against `url`, in the background,
/// with `outputs` (flag, path), for the tests that stop it early.
pub fn long_run(url: &str, outputs: &[(&str, &Path)]) -> Child {
    let mut c = Command::new(BIN);
    c.args([
        "run",
        "--url",
        url,
        "--rate",
        "100",
        "--duration",
        "60s",
        "--quiet",
    ]);
    for (flag, path) in outputs {
        c.arg(flag).arg(path);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads a producer's file back through the report's reader and checks
/// that every value the producer wrote is in what the reader holds, equal
/// to it (floats to 1e-12 relative: a JSON round trip). A field the reader
/// dropped, renamed or defaulted fails here with its path.
pub fn assert_read_back(path: &Path) -> reports::Doc {
    let doc = reports::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let written = read_json(path);
    let read = serde_json::to_value(&doc).unwrap();
    same(&written, &read, &mut path.display().to_string());
    doc
}

fn same(a: &serde_json::Value, b: &serde_json::Value, at: &mut String) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                "{at}: written {x}, read {y}"
            );
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                let len = at.len();
                at.push('.');
                at.push_str(k);
                let Some(w) = y.get(k) else {
                    panic!("{at}: written, not read")
                };
                same(v, w, at);
                at.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: length");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                let len = at.len();
                at.push_str(&format!("[{i}]"));
                same(v, w, at);
                at.truncate(len);
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}
