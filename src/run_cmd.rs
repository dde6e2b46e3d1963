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
use loadgen::stats::{Counts, Interval, latency_histogram};
use loadgen::{
    Load, RequestSpec, RunPlan, RunResult, Schedule, SecondRow, StopHandle, TargetSpec, Threshold,
};

use crate::Outcome;
use crate::cli::RunArgs;
use crate::scenario::{LoadSection, Scenario, expand_env};
use crate::serve_cmd::Background;

/// A checked run: the plan plus what the binary does around it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub plan: RunPlan,
    pub thresholds: Vec<Threshold>,
    pub abort_on_fail: bool,
    pub abort_delay: Duration,
    /// Load sent before the measured run and not counted.
    pub warmup: Duration,
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
    if args.find_capacity {
        return find_capacity(&args, settings, &stop);
    }
    let result = execute(&settings, &Sinks::of(&args), &stop)?;
    let json_to_stdout = args.json.as_deref().is_some_and(is_stdout);
    let summary = crate::run_summary::render(&result);
    // With the result on standard output, the summary goes to standard
    // error, so that the output is the result alone.
    if json_to_stdout {
        eprint!("{summary}");
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(summary.as_bytes())?;
        out.flush()?;
    }
    if result.dropped > 0 {
        eprintln!(
            "loadtest: warning: {} scheduled requests were dropped (every connection busy for longer than the timeout); raise --max-connections or --timeout",
            result.dropped
        );
    }
    let outcome = say_outcome(&result, settings.plan.shard, &Sinks::of(&args).written());
    if json_to_stdout {
        // One line, last: `kubectl logs` of a shard's pod ends with it.
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &result)?;
        writeln!(out)?;
        out.flush()?;
    }
    Ok(outcome)
}

/// `--json -`: the result goes to standard output.
fn is_stdout(p: &Path) -> bool {
    p == Path::new("-")
}

/// The thresholds a result missed, as written.
pub fn missed(result: &RunResult) -> String {
    result
        .thresholds
        .iter()
        .filter(|t| !t.ok)
        .map(|t| t.expr.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The run's exit, said in one line on the terminal: with `--shard`, a
/// missed threshold is the merge's to judge, so it exits 0.
fn say_outcome(result: &RunResult, shard: loadgen::Shard, written: &str) -> Outcome {
    let mut outcome = run_outcome(result);
    match (outcome, &result.stopped) {
        (Outcome::Failed, None) if shard.is_sharded() => {
            eprintln!(
                "loadtest: shard {shard}: threshold missed on this shard alone ({}); exit 0: `loadtest merge` judges the whole run",
                missed(result)
            );
            outcome = Outcome::Passed;
        }
        (Outcome::Interrupted, _) => eprintln!(
            "loadtest: interrupted (exit 130): {} requests measured{written}",
            result.requests
        ),
        (Outcome::Aborted, Some(reason)) => {
            eprintln!("loadtest: aborted early (exit 3): {reason}; results are partial{written}")
        }
        (_, Some(reason)) => {
            eprintln!(
                "loadtest: run stopped early (exit 1): {reason}; results are partial{written}"
            )
        }
        (Outcome::Failed, None) => {
            eprintln!("loadtest: threshold missed (exit 1): {}", missed(result))
        }
        _ => {}
    }
    outcome
}

/// How a finished run comes out: Ctrl-C (130), `--abort-on-fail` (3), a
/// missed threshold or any other early stop (1), or passed (0).
fn run_outcome(r: &RunResult) -> Outcome {
    match r.stopped.as_deref() {
        Some("interrupted") => Outcome::Interrupted,
        Some(reason) if reason.starts_with("abort_on_fail") => Outcome::Aborted,
        Some(_) => Outcome::Failed,
        None if r.passed() => Outcome::Passed,
        None => Outcome::Failed,
    }
}

/// The search's bounds from the flags and thresholds: the p95 SLO and the
/// error limit come from `p95<…` and `error_rate<…` thresholds (else 200 ms
/// and 1%), each step's length from --duration (else 10 s), the warm-up
/// from --warmup (else 2 s).
pub fn search_limits(
    step: Option<Duration>,
    warmup: Option<Duration>,
    s: &Settings,
    max_rate: f64,
    probe: Duration,
) -> anyhow::Result<crate::capacity::Limits> {
    use loadgen::spec::Metric;
    if !(max_rate.is_finite() && max_rate >= 1.0) {
        bail!("--max-rate must be at least 1 request/s, got {max_rate}");
    }
    let limit =
        |m: fn(&Metric) -> bool| s.thresholds.iter().find(|t| m(&t.metric)).map(|t| t.limit);
    let step = step.unwrap_or(Duration::from_secs(10));
    let warmup = warmup.unwrap_or(Duration::from_secs(2));
    if probe.is_zero() || step.is_zero() {
        bail!("--probe and --duration must be > 0, e.g. 3s and 10s");
    }
    let max_connections = match &s.plan.load {
        Load::Open {
            max_connections, ..
        } => (*max_connections).min(1024),
        Load::Closed { .. } => 1024,
    };
    Ok(crate::capacity::Limits {
        max_rate_rps: max_rate,
        p95_slo_ms: limit(|m| *m == Metric::Percentile(95.0)).unwrap_or(200.0),
        error_limit: limit(|m| *m == Metric::ErrorRate).unwrap_or(0.01),
        probe,
        step,
        warmup,
        max_connections,
        levels: crate::capacity::RATE_LEVELS.to_vec(),
    })
}

/// `run --find-capacity`.
fn find_capacity(a: &RunArgs, s: Settings, stop: &StopHandle) -> anyhow::Result<Outcome> {
    if a.csv.is_some() || a.hdr.is_some() {
        bail!("--csv and --hdr record one run; with --find-capacity use --json for capacity.json");
    }
    let l = search_limits(a.duration, a.warmup, &s, a.max_rate, a.probe)?;
    if let Some(p) = &a.json {
        create(p)?;
    }
    if !a.quiet {
        eprintln!(
            "loadtest: finding the capacity of {} (at most {:.0} rps; p95 < {} ms, errors < {}%)",
            loadgen::redact_url(&s.plan.target.url),
            l.max_rate_rps,
            l.p95_slo_ms,
            100.0 * l.error_limit
        );
    }
    let json = a.json.clone();
    let (found, _) = crate::capacity::search(&s, &l, stop, a.quiet, |f, _| match &json {
        Some(p) => crate::write_json(p, f),
        None => Ok(()),
    })?;
    if let Some(p) = &a.json {
        crate::write_json(p, &found)?;
    }
    print!("{}", crate::capacity::render(&found));
    if stop.is_stopped() {
        eprintln!(
            "loadtest: interrupted: the steps measured so far are above{}",
            a.json
                .as_ref()
                .map(|p| format!(" and in {}", p.display()))
                .unwrap_or_default()
        );
        return Ok(Outcome::Interrupted);
    }
    Ok(if found.knee_rps.is_some() {
        Outcome::Passed
    } else {
        eprintln!("loadtest: no rate step held its thresholds: exit 1");
        Outcome::Failed
    })
}

/// Where a run writes what it measured, and whether it shows progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sinks<'a> {
    pub json: Option<&'a Path>,
    pub csv: Option<&'a Path>,
    pub hdr: Option<&'a Path>,
    pub quiet: bool,
}

impl<'a> Sinks<'a> {
    pub fn of(a: &'a RunArgs) -> Self {
        Sinks {
            json: a.json.as_deref(),
            csv: a.csv.as_deref(),
            hdr: a.hdr.as_deref(),
            quiet: a.quiet,
        }
    }

    /// ", written to a, b" naming the files, or "" when there are none.
    pub fn written(&self) -> String {
        let files: Vec<String> = [self.json, self.csv, self.hdr]
            .into_iter()
            .flatten()
            .map(|p| match is_stdout(p) {
                true => "standard output".to_string(),
                false => p.display().to_string(),
            })
            .collect();
        if files.is_empty() {
            String::new()
        } else {
            format!(", written to {}", files.join(", "))
        }
    }
}

/// Runs a checked plan, writing the sinks asked for.
pub fn execute(s: &Settings, args: &Sinks<'_>, stop: &StopHandle) -> anyhow::Result<RunResult> {
    execute_with(s, args, stop, |_| ControlFlow::Continue(()))
}

/// [`execute`], with one more check of each second that may stop the run.
pub fn execute_with(
    s: &Settings,
    args: &Sinks<'_>,
    stop: &StopHandle,
    mut check: impl FnMut(&SecondRow) -> ControlFlow<String>,
) -> anyhow::Result<RunResult> {
    // Every output is opened before the first request: a path that cannot
    // be written is bad input, not a lost run.
    // `--json -`: the binary prints the result last, after the summary.
    let mut json = args
        .json
        .filter(|p| !is_stdout(p))
        .map(create)
        .transpose()?;
    let mut csv = args.csv.map(CsvSink::create).transpose()?;
    // Unbuffered: each second's interval is on disk once it is written, so
    // a run killed outright keeps every second before it.
    let mut hdr_file = args
        .hdr
        .map(|p| File::create(p).with_context(|| format!("cannot create {}", p.display())))
        .transpose()?;
    warm_up(s, args.quiet, stop)?;
    let started = start_time(s, args.quiet);
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
        // The log before the CSV: a run killed between the two still has
        // in the log every second the CSV shows.
        let written = match hdr.as_mut() {
            Some(h) => h
                .write_histogram(
                    &iv.latency_us,
                    Duration::from_secs(iv.second),
                    Duration::from_secs(1),
                    None,
                )
                .map_err(|e| anyhow::anyhow!("cannot write the HdrHistogram log: {e:?}")),
            None => Ok(()),
        }
        .and_then(|()| csv.as_mut().map_or(Ok(()), |c| c.row(row)));
        if let Err(e) = written {
            sink_error = Some(e);
            return ControlFlow::Break("an output file could not be written".into());
        }
        check(row)?;
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
    let mut result = loadgen::summarize(&s.plan, &outcome, &s.thresholds);
    result.name = s.name.clone();
    result.started_at = humantime::format_rfc3339_seconds(started).to_string();
    result.version = crate::VERSION.into();
    if let (Some(path), Some(f)) = (args.json, json.as_mut()) {
        serde_json::to_writer_pretty(&mut *f, &result)?;
        writeln!(f)?;
        f.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match sink_error {
        Some(e) => Err(e),
        None => Ok(result),
    }
}

/// When the measured run starts: now, or a distributed run's agreed time
/// (now, when that passed within the tolerance), which it announces.
fn start_time(s: &Settings, quiet: bool) -> SystemTime {
    let Some(start) = s.plan.start else {
        return SystemTime::now();
    };
    if !quiet {
        let wait = start
            .at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        eprintln!(
            "loadtest: shard {} ready; starting at {} (in {:.1} s)",
            s.plan.shard,
            humantime::format_rfc3339_millis(start.at),
            wait.as_secs_f64()
        );
    }
    start.at.max(SystemTime::now())
}

/// Sends the run's starting load for `s.warmup` and discards what it
/// measured: right after a restart a service is slower (cold caches,
/// connection pools, JIT), and that is not its capacity.
fn warm_up(s: &Settings, quiet: bool, stop: &StopHandle) -> anyhow::Result<()> {
    if s.warmup.is_zero() {
        return Ok(());
    }
    let mut plan = s.plan.clone();
    // A distributed run's warm-up goes first, then its shards wait for the start.
    plan.start = None;
    plan.load = match &plan.load {
        Load::Open {
            schedule,
            initial_connections,
            max_connections,
        } => Load::Open {
            schedule: Schedule::constant(schedule.mean_rps().max(1.0), s.warmup),
            initial_connections: *initial_connections,
            max_connections: *max_connections,
        },
        Load::Closed {
            connections,
            think_time,
            ..
        } => Load::Closed {
            connections: *connections,
            think_time: *think_time,
            duration: s.warmup,
        },
    };
    let out = loadgen::run(&plan, stop, |_, _| ControlFlow::Continue(()))?;
    if !quiet {
        let c = &out.totals.counts;
        eprintln!(
            "loadtest: warm-up {:.1} s: {} requests, {} errors (not counted)",
            s.warmup.as_secs_f64(),
            c.requests(),
            c.errors()
        );
    }
    Ok(())
}

/// The first latency or error-rate threshold the data so far has lost.
/// Throughput thresholds only make sense over the whole run.
fn lost_threshold(
    ts: &[Threshold],
    counts: &Counts,
    hist: &hdrhistogram::Histogram<u64>,
) -> Option<String> {
    // The rate, and a kind of request's own figures, are judged at the end.
    let judged: Vec<Threshold> = ts
        .iter()
        .filter(|t| t.metric != loadgen::spec::Metric::Rps && t.request.is_none())
        .cloned()
        .collect();
    loadgen::evaluate(&judged, counts, hist, 0.0)
        .into_iter()
        .find(|r| !r.ok)
        .map(|r| format!("{} (measured {})", r.expr, r.measured()))
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
    let url = a
        .url
        .clone()
        .or_else(|| builtin_url.map(str::to_string))
        .or_else(|| target.and_then(|t| t.url.clone()))
        .context(
            "no target URL: give --url http://HOST:PORT/ --builtin, or [target] url in the scenario",
        )?;
    loadgen::net::parse_url(&url).context("--url")?;
    let timeout = a
        .timeout
        .or(load.and_then(|l| l.timeout))
        .unwrap_or(Duration::from_secs(10));
    let load_model = load_model(a, load)?;
    let mut thresholds = load.map(|l| l.thresholds.clone()).unwrap_or_default();
    for t in &a.thresholds {
        thresholds.push(loadgen::parse_threshold(t).context("--threshold")?);
    }
    let mut requests = requests(a, scn)?;
    name_by_method_and_path(&mut requests, &url);
    for t in &thresholds {
        if let Some(name) = &t.request
            && !requests.iter().any(|r| &r.name == name)
        {
            let names: Vec<&str> = requests.iter().map(|r| r.name.as_str()).collect();
            bail!(
                "threshold `{}`: no request is named `{name}`; the requests are {}",
                t.expr,
                names.join(", ")
            );
        }
    }
    let plan = RunPlan {
        target: TargetSpec {
            url,
            http2: a.http2 || target.is_some_and(|t| t.http2),
            insecure: a.insecure || target.is_some_and(|t| t.insecure),
        },
        requests,
        load: load_model,
        timeout,
        workers: a
            .workers
            .or(load.and_then(|l| l.workers))
            .unwrap_or_else(default_workers),
        seed: a.seed.or(load.and_then(|l| l.seed)).unwrap_or(1),
        coalesce: a
            .coalesce
            .or(load.and_then(|l| l.coalesce))
            .unwrap_or(loadgen::DEFAULT_COALESCE),
        shard: a.shard.unwrap_or_default(),
        start: start(a)?,
    };
    plan.check()?;
    Ok(Settings {
        name: scn.name.clone(),
        plan,
        thresholds,
        abort_on_fail: a.abort_on_fail || load.is_some_and(|l| l.abort_on_fail),
        abort_delay: a.abort_delay,
        warmup: a.warmup.or(load.and_then(|l| l.warmup)).unwrap_or_default(),
    })
}

/// `--start-at` with its tolerance, refused when it has already passed by
/// more than the tolerance (a start in the past is a typo or a pod
/// scheduled too late, never a schedule to shift).
fn start(a: &RunArgs) -> anyhow::Result<Option<loadgen::StartAt>> {
    if a.find_capacity && (a.shard.is_some() || a.start_at.is_some()) {
        bail!("--shard and --start-at are for one run of a distributed test, not --find-capacity");
    }
    let Some(at) = a.start_at else {
        return Ok(None);
    };
    if let Err(e) = at.duration_since(SystemTime::now())
        && e.duration() > a.start_tolerance
    {
        bail!(
            "--start-at {} is {:.1} s in the past: give a time in the future (or render the Job again with a longer --start-in)",
            humantime::format_rfc3339_seconds(at),
            e.duration().as_secs_f64()
        );
    }
    Ok(Some(loadgen::StartAt {
        at,
        tolerance: a.start_tolerance,
    }))
}

/// The load from the flags over the scenario's `[load]`: a ramp
/// (`stages`), a constant rate (open model) or connections (closed).
fn load_model(a: &RunArgs, load: Option<&LoadSection>) -> anyhow::Result<Load> {
    let duration = a.duration.or(load.and_then(|l| l.duration));
    let think = a
        .think_time
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
    Ok(match (stages, rate, connections) {
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
        // The capacity search sets each step's load itself.
        (None, None, None) if a.find_capacity => {
            open(Schedule::constant(1.0, Duration::from_secs(1)))
        }
        (None, None, None) => {
            bail!(
                "no load given: use --rate RPS (open model), --stages, or --connections N (closed model)"
            )
        }
    })
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `--check-status`, `--check-body` and `--check-json` over a request's own checks.
fn apply_check_flags(a: &RunArgs, c: &mut loadgen::check::Check) {
    if let Some(s) = &a.check_status {
        c.status = Some(s.clone());
    }
    if let Some(b) = &a.check_body {
        c.body_contains = Some(b.clone());
    }
    if let Some(j) = &a.check_json {
        c.json = Some(j.clone());
    }
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
            v.contains("${"),
        ));
    }
    let flag_body = match a.body.as_deref() {
        Some(b) if b.starts_with('@') => Some(
            std::fs::read(&b[1..]).with_context(|| format!("--body: cannot read {}", &b[1..]))?,
        ),
        Some(b) => Some(b.as_bytes().to_vec()),
        None => None,
    };
    if a.check_body.as_deref() == Some("") {
        bail!("--check-body is empty: give the text the body must contain, or leave the flag out");
    }
    let mut reqs = Vec::new();
    for (i, r) in scn.requests.iter().enumerate() {
        let (mut headers, mut secret_headers) = (Vec::new(), Vec::new());
        for (k, v) in &r.headers {
            let value = expand_env(v, env)
                .with_context(|| format!("[[requests]] #{} header `{k}`", i + 1))?;
            headers.push((k.clone(), value));
            if v.contains("${") {
                secret_headers.push(k.clone());
            }
        }
        reqs.push(RequestSpec {
            // Unnamed ones are named by method and path below.
            name: r.name.clone().unwrap_or_default(),
            url: r.path.clone(),
            method: r.method.clone().unwrap_or_else(|| "GET".into()),
            headers,
            secret_headers,
            body: r.body.clone().unwrap_or_default().into_bytes(),
            weight: r.weight,
            check: r.check.clone().map(|c| c.0).unwrap_or_default(),
        });
    }
    if reqs.is_empty() {
        reqs.push(RequestSpec {
            name: String::new(),
            ..RequestSpec::default()
        });
    }
    for r in &mut reqs {
        if let Some(m) = &a.method {
            r.method = m.clone();
        }
        if let Some(b) = &flag_body {
            r.body = b.clone();
        }
        apply_check_flags(a, &mut r.check);
        for (k, v, from_env) in &flag_headers {
            r.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
            r.secret_headers.retain(|n| !n.eq_ignore_ascii_case(k));
            r.headers.push((k.clone(), v.clone()));
            if *from_env {
                r.secret_headers.push(k.clone());
            }
        }
    }
    Ok(reqs)
}

/// Requests without a name are named by method and path (`GET /cart`),
/// as k6 tags them; a second of the same gets ` #2`.
fn name_by_method_and_path(reqs: &mut [RequestSpec], target_url: &str) {
    for i in 0..reqs.len() {
        if !reqs[i].name.is_empty() {
            continue;
        }
        let u = reqs[i].url.as_deref().unwrap_or(target_url);
        let path = loadgen::net::parse_url(u)
            .ok()
            .and_then(|uri| uri.path_and_query().map(|p| p.as_str().to_string()))
            .unwrap_or_else(|| u.to_string());
        let base = format!("{} {path}", reqs[i].method.to_ascii_uppercase());
        let mut name = base.clone();
        let mut n = 1;
        while reqs.iter().any(|r| r.name == name) {
            n += 1;
            name = format!("{base} #{n}");
        }
        reqs[i].name = name;
    }
}

/// How long a plan's run lasts: its schedule, or the closed model's duration.
pub fn run_length(plan: &RunPlan) -> Duration {
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

/// First Ctrl-C (or SIGTERM, as Kubernetes stops a pod): stop sending, let
/// in-flight requests finish, write what was measured. Second Ctrl-C: quit
/// at once (the CSV and HDR rows already written stay).
pub fn stop_on_ctrl_c(stop: StopHandle) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => s.recv().await,
                    Err(_) => std::future::pending().await,
                }
            };
            let first = tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                _ = term => true,
            };
            if first {
                eprintln!("\nloadtest: interrupted: finishing in-flight requests, then writing partial results (Ctrl-C again to quit now)");
                stop.stop();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(1);
                }
            }
        });
    });
}

/// The per-second CSV: a run's, written as the seconds arrive, or a
/// merged run's.
pub struct CsvSink(BufWriter<File>);

impl CsvSink {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let mut f = create(path)?;
        writeln!(f, "{}", loadgen::csv_header())?;
        Ok(CsvSink(f))
    }

    pub fn row(&mut self, row: &SecondRow) -> anyhow::Result<()> {
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
