//! A mutation fuzzer over every file a user hands loadtest: the shipped
//! scenarios (`validate`, `simulate`), demand and catalog CSVs
//! (`optimize`), and the JSON and CSV outputs (`report`). Each mutated
//! file goes to the binary as a user would run it, under a memory limit
//! and a time bound, and must come out as a result (exit 0, or 1 for a
//! threshold, an infeasible plan or a regression) or as bad input: exit 2
//! with a one-line error that names the file. Never a panic, a signal, a
//! hang past the bound or memory past the limit.
//!
//! `cargo test` runs a bounded sample (`FUZZ_CASES`, default 200 per
//! command); `scripts/fuzz.sh` runs the large one on the release build.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// splitmix64: a fixed stream per seed, so every failure can be replayed
/// (`FUZZ_SEED`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break arithmetic, put where a value was.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "-0",
    "1e308",
    "-1e308",
    "1e-308",
    "5e-324",
    "nan",
    "inf",
    "-inf",
    "1e9",
    "0.5",
    "99999999",
    "18446744073709551616",
    "4294967296",
    "\"\"",
    "\"x\"",
    "true",
    "\"0s\"",
    "\"1e308s\"",
    "\"-5m\"",
    "\"99999d\"",
    "[]",
    "{}",
    // Ordinary values too, so that many cases run the engines.
    "1",
    "2",
    "3",
    "10",
    "100",
    "0.1",
    "0.01",
    "0.9",
    "\"1m\"",
    "\"30s\"",
];

/// Bytes that break parsers, put anywhere.
const STRUCTURE: &[&str] = &[
    "[", "]", "{", "}", "=", ",", "\n", "\"", "#", ":", "[[", "\u{0}", "\u{feff}", "ü",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    // Mostly one change, so that most cases still parse and reach the
    // checks and the engines behind them.
    let changes = if rng.below(10) < 7 { 1 } else { 2 };
    for _ in 0..changes {
        let at = rng.below(v.len() + 1);
        match rng.below(20) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 | 2 if !v.is_empty() => {
                let end = (at + 1 + rng.below(24)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 | 4 if !v.is_empty() => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                let span: Vec<u8> = v[at.min(end)..end].to_vec();
                v.splice(at..at, span);
            }
            5 | 6 => {
                let t = STRUCTURE[rng.below(STRUCTURE.len())].as_bytes();
                v.splice(at..at, t.iter().copied());
            }
            7 => v.truncate(at),
            8 => {
                // A huge value: messages must not echo it whole.
                v.splice(at..at, std::iter::repeat_n(b'7', 100_000));
            }
            9 => {
                // Not UTF-8.
                v.insert(at, 0xff);
            }
            10..=15 => {
                // Swap the value after an `=` (or a CSV field) for another.
                let t = VALUES[rng.below(VALUES.len())].as_bytes();
                let starts: Vec<usize> = (0..v.len())
                    .filter(|&i| v[i] == b'=' || v[i] == b',')
                    .map(|i| {
                        if v.get(i + 1) == Some(&b' ') {
                            i + 2
                        } else {
                            i + 1
                        }
                    })
                    .collect();
                if starts.is_empty() {
                    continue;
                }
                let s = starts[rng.below(starts.len())].min(v.len());
                let mut e = s;
                while e < v.len() && !b" ,}]\n#".contains(&v[e]) {
                    e += 1;
                }
                v.splice(s..e, t.iter().copied());
            }
            _ => {
                // Swap the number or word at a random place for a value.
                let t = VALUES[rng.below(VALUES.len())].as_bytes();
                let is_word = |b: u8| b.is_ascii_alphanumeric() || b"._-+\"".contains(&b);
                let (mut s, mut e) = (at.min(v.len()), at.min(v.len()));
                while s > 0 && is_word(v[s - 1]) {
                    s -= 1;
                }
                while e < v.len() && is_word(v[e]) {
                    e += 1;
                }
                v.splice(s..e, t.iter().copied());
            }
        }
    }
    v
}

/// How one case ended.
enum Verdict {
    /// Its exit code.
    Fine(i32),
    Bad(String),
}

/// Runs `args` with the case's file, under 4 GiB of address space and
/// `bound` of wall time, and judges the outcome.
fn judge(args: &[&str], file: &Path, bound: Duration, ok_codes: &[i32]) -> Verdict {
    let mut cmd = if Path::new("/usr/bin/prlimit").exists() {
        let mut c = Command::new("/usr/bin/prlimit");
        c.args(["--as=4294967296", "--", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let mut child = cmd
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            return Verdict::Bad(format!("still running after {bound:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let err = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    if std::env::var_os("FUZZ_VERBOSE").is_some() {
        eprintln!(
            "{:?} {}",
            status.code(),
            cut(err.trim_end().lines().last().unwrap_or(""))
        );
    }
    if err.contains("panicked") {
        return Verdict::Bad(format!("panic: {}", cut(&err)));
    }
    let Some(code) = status.code() else {
        return Verdict::Bad(format!("killed by a signal ({status}): {}", cut(&err)));
    };
    if code == 2 {
        let last = err.trim_end().lines().last().unwrap_or("");
        let name = file.file_name().unwrap().to_string_lossy();
        if !last.starts_with("loadtest: ") || !err.contains(name.as_ref()) {
            return Verdict::Bad(format!("exit 2 without the file's name: {}", cut(&err)));
        }
        if err.len() > 4000 {
            return Verdict::Bad(format!("{} bytes of error", err.len()));
        }
        return Verdict::Fine(2);
    }
    if !ok_codes.contains(&code) {
        return Verdict::Bad(format!("exit {code}: {}", cut(&err)));
    }
    Verdict::Fine(code)
}

fn cut(s: &str) -> String {
    s.chars().take(300).collect()
}

/// A command's fuzz: mutations of `seeds`, each run as `args(file)`.
struct Target<'a> {
    name: &'a str,
    seeds: Vec<(String, Vec<u8>)>,
    args: &'a dyn Fn(&Path, &Path) -> Vec<String>,
    ok_codes: &'a [i32],
    bound: Duration,
}

fn cases() -> usize {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Cases run, how many exited 0, 1 and 2, and the failures.
fn fuzz(t: &Target<'_>, dir: &Path) -> (usize, [usize; 3], Vec<String>) {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // Each command its own stream (FNV-1a of its name).
    let name_hash = t.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = Rng(seed ^ name_hash);
    let mut failures = Vec::new();
    let mut codes = [0; 3];
    let n = cases();
    for i in 0..n {
        let (name, text) = &t.seeds[i % t.seeds.len()];
        let file = dir.join(format!("case-{i}-{name}"));
        std::fs::write(&file, mutate(&mut rng, text)).unwrap();
        let out = dir.join(format!("out-{i}"));
        let args = (t.args)(&file, &out);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match judge(&args, &file, t.bound, t.ok_codes) {
            Verdict::Fine(code) => codes[code.clamp(0, 2) as usize] += 1,
            Verdict::Bad(why) => {
                let kept = dir.join(format!("failed-{i}-{name}"));
                let _ = std::fs::copy(&file, &kept);
                failures.push(format!("{} case {i} ({name}): {why}", t.name));
            }
        }
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_file(&out);
    }
    (n, codes, failures)
}

fn read(p: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// The outputs `report` reads, made by the real producers.
fn outputs(dir: &Path, demand: &Path) -> Vec<(String, Vec<u8>)> {
    let run = dir.join("run.json");
    let csv = dir.join("run.csv");
    let ok = Command::new(BIN)
        .args([
            "run",
            "--builtin",
            "--rate",
            "50",
            "--duration",
            "1s",
            "--quiet",
        ])
        .args(["--json", &s(&run), "--csv", &s(&csv)])
        .status()
        .unwrap();
    assert!(ok.success());
    let forecast = dir.join("forecast.json");
    let plan = dir.join("plan.json");
    let scn = dir.join("small.toml");
    std::fs::write(&scn, SMALL).unwrap();
    let ok = Command::new(BIN)
        .args(["simulate", &s(&scn), "--json", &s(&forecast)])
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new(BIN)
        .args(["optimize", "--demand", &s(demand)])
        .args([
            "--catalog",
            "scenarios/catalog/aws-us-east-1.csv",
            "--spot-max-share",
            "0.3",
        ])
        .args(["--json", &s(&plan)])
        .status()
        .unwrap();
    assert!(ok.success(), "optimize");
    vec![
        ("run.json".into(), read(&run)),
        ("run.csv".into(), read(&csv)),
        ("forecast.json".into(), read(&forecast)),
        ("plan.json".into(), read(&plan)),
    ]
}

const SMALL: &str = r#"name = "small"
[traffic]
rate = 200.0
daily_peak_to_trough = 2.0
[service]
replicas = 2
workers_per_replica = 4
service_time = { dist = "lognormal", mean_ms = 10.0, p95_ms = 25.0 }
queue_limit = 100
[autoscaling]
policy = "hpa"
min = 1
max = 6
target_cpu = 0.5
behavior = { scale_down_percent = 50.0 }
[cost]
replica_hourly = 0.2
[slo]
p95_ms = 200.0
[simulation]
duration = "10m"
warmup = "90s"
seed = 5
replications = 2
"#;

#[test]
fn mutated_inputs_never_panic_hang_or_lose_their_place() {
    let dir = tempfile::tempdir().unwrap();
    // Scenarios name their catalog relative to themselves.
    std::fs::create_dir(dir.path().join("catalog")).unwrap();
    for e in std::fs::read_dir("scenarios/catalog").unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join("catalog").join(p.file_name().unwrap())).unwrap();
    }
    let shipped: Vec<(String, Vec<u8>)> = std::fs::read_dir("scenarios")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(&p),
            )
        })
        .collect();
    assert!(shipped.len() >= 5);
    let catalogs: Vec<(String, Vec<u8>)> = std::fs::read_dir("scenarios/catalog")
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(&p),
            )
        })
        .collect();
    let mut demand = String::from("hour,vcpu,memory_gib\n");
    for h in 0..48 {
        let v = 40.0 + 25.0 * (h as f64 / 24.0 * std::f64::consts::TAU).sin();
        demand.push_str(&format!("{h},{v:.1},{:.1}\n", v * 3.5));
    }
    let demand_seed = vec![("demand.csv".to_string(), demand.into_bytes())];
    let fixed_demand = dir.path().join("fixed-demand.csv");
    std::fs::write(&fixed_demand, &demand_seed[0].1).unwrap();
    let outputs = outputs(dir.path(), &fixed_demand);
    let demand_path = s(&fixed_demand);

    let validate = |f: &Path, _: &Path| vec!["validate".into(), s(f)];
    let simulate = |f: &Path, o: &Path| vec!["simulate".into(), s(f), "--json".into(), s(o)];
    let optimize_demand = |f: &Path, o: &Path| {
        vec![
            "optimize".into(),
            "--demand".into(),
            s(f),
            "--catalog".into(),
            "scenarios/catalog/aws-us-east-1.csv".into(),
            "--spot-max-share".into(),
            "0.3".into(),
            "--time-limit".into(),
            "10s".into(),
            "--json".into(),
            s(o),
        ]
    };
    let optimize_catalog = |f: &Path, o: &Path| {
        vec![
            "optimize".into(),
            "--demand".into(),
            demand_path.clone(),
            "--catalog".into(),
            s(f),
            "--time-limit".into(),
            "10s".into(),
            "--json".into(),
            s(o),
        ]
    };
    let report = |f: &Path, o: &Path| vec!["report".into(), s(f), "--out".into(), s(o)];
    let small = vec![("small.toml".to_string(), SMALL.as_bytes().to_vec())];
    let targets = [
        Target {
            name: "validate",
            seeds: shipped,
            args: &validate,
            ok_codes: &[0],
            bound: Duration::from_secs(30),
        },
        Target {
            name: "simulate",
            seeds: small,
            args: &simulate,
            ok_codes: &[0, 1],
            bound: Duration::from_secs(120),
        },
        Target {
            name: "optimize --demand",
            seeds: demand_seed,
            args: &optimize_demand,
            ok_codes: &[0, 1],
            bound: Duration::from_secs(60),
        },
        Target {
            name: "optimize --catalog",
            seeds: catalogs,
            args: &optimize_catalog,
            ok_codes: &[0, 1],
            bound: Duration::from_secs(60),
        },
        Target {
            name: "report",
            seeds: outputs,
            args: &report,
            ok_codes: &[0, 1],
            bound: Duration::from_secs(60),
        },
    ];
    let mut all = Vec::new();
    for t in &targets {
        let started = Instant::now();
        let (n, codes, failures) = fuzz(t, dir.path());
        eprintln!(
            "fuzz {}: {n} cases (exit 0: {}, 1: {}, 2: {}), {} failures, {:.1} s",
            t.name,
            codes[0],
            codes[1],
            codes[2],
            failures.len(),
            started.elapsed().as_secs_f64()
        );
        all.extend(failures);
    }
    if !all.is_empty() {
        let kept: PathBuf = dir.keep();
        panic!(
            "{} failing cases (files kept in {}):\n{}",
            all.len(),
            kept.display(),
            all.join("\n")
        );
    }
}
