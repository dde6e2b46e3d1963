//! `loadtest run`: flags over scenario into a [`loadgen::RunPlan`], then
//! the run with its live line, CSV and HdrHistogram sinks written as the
//! seconds arrive (so an interrupted run keeps what it measured), the
//! summary, the JSON and the exit code.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriter, IntervalLogWriterBuilder};
use loadgen::stats::{Counts, Interval, Outcome as Class, latency_histogram};
use loadgen::{
    Load, RequestSpec, RunPlan, RunResult, Schedule, SecondRow, StopHandle, TargetSpec, Threshold,
};

use crate::Outcome;
use crate::cli::RunArgs;
use crate::scenario::{Scenario, expand_env};
use crate::serve_cmd::Background;

/// A checked run: the plan plus what the binary does around it.
pub struct Settings {
    pub name: String,
    pub plan: RunPlan,
    pub thresholds: Vec<Threshold>,
    pub abort_on_fail: bool,
    pub abort_delay: Duration,
}

pub fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let scenario = match &args.scenario {
        Some(p) => Scenario::load(p)?,
        None => Scenario::default(),
    };
    let builtin = builtin_target(&args, &scenario)?;
    let mut settings = resolve(&args, &scenario, builtin.as_ref().map(|b| b.url.as_str()))?;
    if builtin.is_some() {
        settings.name = format!("{} (built-in target)", settings.name)
            .trim()
            .to_string();
    }
    raise_fd_limit();
    let stop = StopHandle::default();
    stop_on_ctrl_c(stop.clone());
    let result = execute(&settings, &args, &stop)?;
    let mut out = std::io::stdout().lock();
    out.write_all(render_summary(&result).as_bytes())?;
    out.flush()?;
    if result.dropped > 0 {
        eprintln!(
            "loadtest: warning: {} scheduled requests were dropped (every connection busy for longer than the timeout); raise --max-connections or --timeout",
            result.dropped
        );
    }
    if let Some(reason) = &result.stopped {
        eprintln!("loadtest: run stopped early ({reason}); results are partial");
    }
    Ok(if result.passed() && result.stopped.is_none() {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}

/// Runs a checked plan, writing the sinks the flags ask for.
pub fn execute(s: &Settings, args: &RunArgs, stop: &StopHandle) -> anyhow::Result<RunResult> {
    let started = SystemTime::now();
    let mut csv = args.csv.as_deref().map(CsvSink::create).transpose()?;
    let mut hdr_file = args.hdr.as_deref().map(create).transpose()?;
    let mut serializer = V2DeflateSerializer::new();
    let mut hdr: Option<IntervalLogWriter<'_, '_, _, _>> = match hdr_file.as_mut() {
        Some(f) => Some(
            IntervalLogWriterBuilder::new()
                .add_comment(
                    "loadtest run: corrected latency in microseconds, one interval per second",
                )
                .with_start_time(started)
                .begin_log_with(f, &mut serializer)
                .context("cannot write the HdrHistogram log")?,
        ),
        None => None,
    };
    let total = run_length(&s.plan);
    let mut live = Live::new(!args.quiet, total);
    let mut cumulative = (Counts::default(), latency_histogram());
    let mut sink_error: Option<anyhow::Error> = None;
    let outcome = loadgen::run(&s.plan, stop, |iv: &Interval, row: &SecondRow| {
        cumulative.0.merge(&iv.counts);
        let _ = cumulative.1.add(&iv.latency_us);
        live.update(iv, &cumulative.0, &cumulative.1);
        let written =
            csv.as_mut()
                .map_or(Ok(()), |c| c.row(row))
                .and_then(|()| match hdr.as_mut() {
                    Some(h) => h
                        .write_histogram(
                            &iv.latency_us,
                            Duration::from_secs(iv.second),
                            Duration::from_secs(1),
                            None,
                        )
                        .map_err(|e| anyhow::anyhow!("cannot write the HdrHistogram log: {e:?}")),
                    None => Ok(()),
                });
        if let Err(e) = written {
            sink_error = Some(e);
            return ControlFlow::Break("an output file could not be written".into());
        }
        if s.abort_on_fail
            && Duration::from_secs(iv.second + 1) >= s.abort_delay
            && let Some(lost) = lost_threshold(&s.thresholds, &cumulative.0, &cumulative.1)
        {
            return ControlFlow::Break(format!("abort_on_fail: {lost}"));
        }
        ControlFlow::Continue(())
    })?;
    live.finish();
    drop(hdr);
    if let Some(f) = hdr_file.as_mut() {
        f.flush().context("cannot write the HdrHistogram log")?;
    }
    let mut result = loadgen::summarize(&s.plan, &outcome, &s.thresholds);
    result.name = s.name.clone();
    if let Some(path) = &args.json {
        let mut f = create(path)?;
        serde_json::to_writer_pretty(&mut f, &result)?;
        writeln!(f)?;
        f.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match sink_error {
        Some(e) => Err(e),
        None => Ok(result),
    }
}

/// The first latency or error-rate threshold the data so far has lost.
/// Throughput thresholds only make sense over the whole run.
fn lost_threshold(
    ts: &[Threshold],
    counts: &Counts,
    hist: &hdrhistogram::Histogram<u64>,
) -> Option<String> {
    let judged: Vec<Threshold> = ts
        .iter()
        .filter(|t| t.metric != loadgen::spec::Metric::Rps)
        .cloned()
        .collect();
    loadgen::evaluate(&judged, counts, hist, 0.0)
        .into_iter()
        .find(|r| !r.ok)
        .map(|r| format!("{} (measured {})", r.expr, fmt_value(&r.expr, r.value)))
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::new(f))
}

/// Starts the built-in target when the flags or the scenario ask for it
/// and no URL overrides it.
fn builtin_target(a: &RunArgs, scn: &Scenario) -> anyhow::Result<Option<Background>> {
    let from_scenario = scn.target.as_ref().and_then(|t| t.builtin.clone());
    let wanted = a.builtin || (a.url.is_none() && from_scenario.is_some());
    if !wanted {
        return Ok(None);
    }
    let b = from_scenario.unwrap_or_default();
    let bg = Background::builtin(&b, a.seed.unwrap_or(1))?;
    if !a.quiet {
        eprintln!(
            "loadtest: built-in target on {} ({} workers)",
            bg.url, b.workers
        );
    }
    Ok(Some(bg))
}

/// Combines flags and scenario; flags win. `builtin_url` is the address of
/// an in-process built-in target, which takes the place of the scenario's URL.
pub fn resolve(a: &RunArgs, scn: &Scenario, builtin_url: Option<&str>) -> anyhow::Result<Settings> {
    let load = scn.load.as_ref();
    let target = scn.target.as_ref();
    let parse_dur = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<Duration>> {
        v.as_deref()
            .map(|t| loadgen::parse_duration(t).with_context(|| format!("--{flag}")))
            .transpose()
    };
    let url = a
        .url
        .clone()
        .or_else(|| builtin_url.map(str::to_string))
        .or_else(|| target.and_then(|t| t.url.clone()))
        .context(
            "no target URL: give --url http://HOST:PORT/ --builtin, or [target] url in the scenario",
        )?;
    loadgen::net::parse_url(&url).context("--url")?;
    let duration = parse_dur("duration", &a.duration)?.or(load.and_then(|l| l.duration));
    let timeout = parse_dur("timeout", &a.timeout)?
        .or(load.and_then(|l| l.timeout))
        .unwrap_or(Duration::from_secs(10));
    let think = parse_dur("think-time", &a.think_time)?
        .or(load.and_then(|l| l.think_time))
        .unwrap_or_default();
    let stages = match &a.stages {
        Some(t) => Some(loadgen::parse_stages(t).context("--stages")?),
        None => load.and_then(|l| l.stages.clone()),
    };
    let rate = a.rate.or(load.and_then(|l| l.rate));
    if let Some(r) = a.rate
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--rate must be > 0, got {r}");
    }
    let connections = a.connections.or(load.and_then(|l| l.connections));
    let max_connections = a
        .max_connections
        .or(load.and_then(|l| l.max_connections))
        .unwrap_or(10_000);
    if a.stages.is_some() && a.duration.is_some() {
        bail!("--stages and --duration both set the length of the run: drop --duration");
    }
    let open = |schedule: Schedule| {
        let peak = schedule.total() as f64 / schedule.duration().as_secs_f64().max(1e-9);
        let initial = connections.unwrap_or_else(|| ((peak / 200.0).ceil() as usize).clamp(4, 512));
        Load::Open {
            schedule,
            initial_connections: initial.min(max_connections),
            max_connections,
        }
    };
    let load_model = match (stages, rate, connections) {
        (Some(st), _, _) => open(Schedule::ramp(0.0, &st)),
        (None, Some(r), _) => open(Schedule::constant(
            r,
            duration.unwrap_or(Duration::from_secs(30)),
        )),
        (None, None, Some(c)) => Load::Closed {
            connections: c,
            think_time: think,
            duration: duration.unwrap_or(Duration::from_secs(30)),
        },
        (None, None, None) => {
            bail!(
                "no load given: use --rate RPS (open model), --stages, or --connections N (closed model)"
            )
        }
    };
    let mut thresholds = load.map(|l| l.thresholds.clone()).unwrap_or_default();
    for t in &a.thresholds {
        thresholds.push(loadgen::parse_threshold(t).context("--threshold")?);
    }
    let plan = RunPlan {
        target: TargetSpec {
            url,
            http2: a.http2 || target.is_some_and(|t| t.http2),
            insecure: a.insecure || target.is_some_and(|t| t.insecure),
        },
        requests: requests(a, scn)?,
        load: load_model,
        timeout,
        workers: a
            .workers
            .or(load.and_then(|l| l.workers))
            .unwrap_or_else(default_workers),
        seed: a.seed.or(load.and_then(|l| l.seed)).unwrap_or(1),
        coalesce: parse_dur("coalesce", &a.coalesce)?
            .or(load.and_then(|l| l.coalesce))
            .unwrap_or(loadgen::DEFAULT_COALESCE),
    };
    plan.check()?;
    Ok(Settings {
        name: scn.name.clone(),
        plan,
        thresholds,
        abort_on_fail: a.abort_on_fail || load.is_some_and(|l| l.abort_on_fail),
        abort_delay: loadgen::parse_duration(&a.abort_delay).context("--abort-delay")?,
    })
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The scenario's weighted requests, or one request from the flags; the
/// method, header and body flags apply to every request.
fn requests(a: &RunArgs, scn: &Scenario) -> anyhow::Result<Vec<RequestSpec>> {
    let env = |k: &str| std::env::var(k).ok();
    let mut flag_headers = Vec::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("bad --header `{h}`: write 'Name: value'"))?;
        flag_headers.push((
            k.trim().to_string(),
            expand_env(v.trim(), env).context("--header")?,
        ));
    }
    let flag_body = match a.body.as_deref() {
        Some(b) if b.starts_with('@') => Some(
            std::fs::read(&b[1..]).with_context(|| format!("--body: cannot read {}", &b[1..]))?,
        ),
        Some(b) => Some(b.as_bytes().to_vec()),
        None => None,
    };
    let mut reqs = Vec::new();
    for (i, r) in scn.requests.iter().enumerate() {
        let mut headers = Vec::new();
        for (k, v) in &r.headers {
            let value = expand_env(v, env)
                .with_context(|| format!("[[requests]] #{} header `{k}`", i + 1))?;
            headers.push((k.clone(), value));
        }
        reqs.push(RequestSpec {
            name: r
                .name
                .clone()
                .unwrap_or_else(|| format!("request-{}", i + 1)),
            url: r.path.clone(),
            method: r.method.clone().unwrap_or_else(|| "GET".into()),
            headers,
            body: r.body.clone().unwrap_or_default().into_bytes(),
            weight: r.weight,
        });
    }
    if reqs.is_empty() {
        reqs.push(RequestSpec::default());
    }
    for r in &mut reqs {
        if let Some(m) = &a.method {
            r.method = m.clone();
        }
        if let Some(b) = &flag_body {
            r.body = b.clone();
        }
        for (k, v) in &flag_headers {
            r.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
            r.headers.push((k.clone(), v.clone()));
        }
    }
    Ok(reqs)
}

fn run_length(plan: &RunPlan) -> Duration {
    match &plan.load {
        Load::Open { schedule, .. } => schedule.duration(),
        Load::Closed { duration, .. } => *duration,
    }
}

/// Raises the soft open-files limit to the hard one: an open-model run
/// through a stall needs a descriptor per waiting user.
pub fn raise_fd_limit() {
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
}

/// First Ctrl-C: stop sending, let in-flight requests finish, write what
/// was measured. Second: quit at once (the CSV and HDR rows already
/// written stay).
pub fn stop_on_ctrl_c(stop: StopHandle) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nloadtest: interrupted: finishing in-flight requests, then writing partial results (Ctrl-C again to quit now)");
                stop.stop();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(1);
                }
            }
        });
    });
}

struct CsvSink(BufWriter<File>);

impl CsvSink {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let mut f = create(path)?;
        writeln!(f, "{}", loadgen::csv_header())?;
        Ok(CsvSink(f))
    }

    fn row(&mut self, row: &SecondRow) -> anyhow::Result<()> {
        writeln!(self.0, "{}", loadgen::csv_row(row))?;
        // Flushed every second: a killed run keeps its rows.
        self.0.flush().context("cannot write the CSV")?;
        Ok(())
    }
}

/// The live progress line: rewritten in place on a terminal, every 10 s in a log.
struct Live {
    enabled: bool,
    tty: bool,
    total: Duration,
}

impl Live {
    fn new(enabled: bool, total: Duration) -> Self {
        Live {
            enabled,
            tty: std::io::stderr().is_terminal(),
            total,
        }
    }

    fn update(&mut self, iv: &Interval, counts: &Counts, hist: &hdrhistogram::Histogram<u64>) {
        if !self.enabled || (!self.tty && !(iv.second + 1).is_multiple_of(10)) {
            return;
        }
        let err_pct = if counts.requests() > 0 {
            100.0 * counts.errors() as f64 / counts.requests() as f64
        } else {
            0.0
        };
        let line = format!(
            "[{:>4}s/{}s] {:>7} rps  p95 {:>8.2} ms (run {:.2} ms)  errors {} ({:.2}%)",
            iv.second + 1,
            self.total.as_secs(),
            iv.counts.requests(),
            iv.latency_us.value_at_quantile(0.95) as f64 / 1e3,
            hist.value_at_quantile(0.95) as f64 / 1e3,
            counts.errors(),
            err_pct
        );
        if self.tty {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if self.enabled && self.tty {
            eprintln!();
        }
    }
}

fn fmt_value(expr: &str, v: f64) -> String {
    if expr.starts_with("error_rate") {
        format!("{:.3}%", v * 100.0)
    } else if expr.starts_with("rps") {
        format!("{v:.1} rps")
    } else {
        format!("{v:.2} ms")
    }
}

/// The end-of-run table.
pub fn render_summary(r: &RunResult) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
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
    }
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
    let _ = writeln!(
        s,
        "  achieved {:.1} rps{}",
        r.rps,
        r.target_rps
            .map(|t| format!(" of {t:.1} scheduled ({:.2}%)", 100.0 * r.rps / t))
            .unwrap_or_default()
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
    let _ = writeln!(
        s,
        "\n  latency ms          mean      p50      p90      p95      p99    p99.9      max"
    );
    for (label, l) in [
        ("from schedule", &r.latency_ms),
        ("from send", &r.latency_uncorrected_ms),
    ] {
        let _ = writeln!(
            s,
            "  {label:<15} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            l.mean, l.p50, l.p90, l.p95, l.p99, l.p999, l.max
        );
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(s, "\n  thresholds");
        for t in &r.thresholds {
            let mark = if t.ok { "PASS" } else { "FAIL" };
            let _ = writeln!(
                s,
                "  {mark}  {:<22} {}",
                t.expr,
                fmt_value(&t.expr, t.value)
            );
        }
    }
    s
}
