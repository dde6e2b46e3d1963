//! Flags as the user types them. Checking and combining them with a
//! scenario file happens in the command modules.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A duration flag, in the one grammar every file and flag uses.
fn duration(text: &str) -> Result<Duration, contracts::units::UnitError> {
    contracts::units::parse_duration(text)
}

/// `--check-status`: the list as written, and its set.
fn status_set(text: &str) -> Result<(String, loadgen::check::StatusSet), String> {
    loadgen::check::StatusSet::parse(text).map(|s| (text.trim().to_string(), s))
}

/// `--check-json`.
fn json_check(text: &str) -> Result<loadgen::check::JsonCheck, String> {
    loadgen::check::JsonCheck::parse_flag(text)
}

/// `--shard J/N`.
fn shard(text: &str) -> Result<loadgen::Shard, String> {
    loadgen::Shard::parse(text)
}

/// `--start-at`: an RFC 3339 time (UTC `Z` or an offset).
fn start_at(text: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(text.trim())
        .map_err(|_| format!("`{text}` is not an RFC 3339 time: write e.g. 2027-01-05T10:00:00Z"))
}

/// `report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PageFormat {
    /// `index.html`, charts inline as SVG.
    Html,
    /// `index.md`, charts as PNG links.
    #[value(alias = "markdown")]
    Md,
}

/// `report --export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Export {
    /// CSV, full-precision numbers.
    Csv,
    /// Apache Parquet.
    Parquet,
}

/// Capacity planning, load testing and cloud cost optimization.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load-test an HTTP service and check thresholds (exit 1 when one fails).
    Run(Box<RunArgs>),
    /// Start the built-in target service on loopback.
    Serve(ServeArgs),
    /// Forecast latency, replicas and cost under growth and autoscaling.
    Simulate(SimulateArgs),
    /// The cheapest instance mix and reserved / on-demand / spot split for a demand.
    Optimize(Box<OptimizeArgs>),
    /// Charted HTML (or Markdown) reports from run, simulate and optimize outputs.
    Report(ReportArgs),
    /// Measure → calibrate → forecast → optimize → report, in one go.
    Plan(PlanArgs),
    /// Check a scenario for every stage and print every problem, without running anything.
    Validate(ValidateArgs),
    /// Add up the shards of a distributed run (`run --shard J/N`) into one result.
    Merge(MergeArgs),
    /// Kubernetes manifests for a distributed run.
    #[command(subcommand)]
    K8s(K8sCommand),
}

#[derive(Debug, Args)]
#[command(after_help = "\
INPUTS: each shard's `run --json` file, or a saved `kubectl logs` of its pod (the
        result is the last line that is a run result). Every shard of the run, once.

EXIT CODES: 0 every threshold held on the merged result, 1 one failed (or a shard
            stopped early), 2 bad input: shards of different runs, seeds, N or start
            times, a shard missing or given twice, 3 a shard's --abort-on-fail stopped
            the run")]
pub struct MergeArgs {
    /// Shard results (or pod logs), one per shard.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Write the merged result as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the merged per-second rows as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Another pass/fail criterion, on the merged result (repeatable); the
    /// shards' own are evaluated again too.
    #[arg(long = "threshold")]
    pub thresholds: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Print a ConfigMap and an Indexed Job that run SCENARIO on N pods, to
    /// pipe into `kubectl apply -f -`.
    Render(K8sRenderArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
EACH POD: runs `loadtest run /scenario/scenario.toml --shard $JOB_COMPLETION_INDEX/N
          --start-at T --json -`: it warms up (DNS, connections), waits for T on its
          clock, sends its share of the schedule, and prints its result as the last
          line of its log. A threshold missed on one shard exits 0 (the merge
          decides); --abort-on-fail (exit 3), a late start (5) or bad input (2)
          fails the whole Job, so every pod stops.

THEN:     kubectl wait --for=condition=complete job/NAME -n NS --timeout=...
          for p in $(kubectl get pods -n NS -l job-name=NAME -o name); do
            kubectl logs -n NS \"$p\" > \"${p#pod/}.log\"; done
          loadtest merge *.log --json run.json")]
pub struct K8sRenderArgs {
    /// Scenario file; its [target] url must be reachable from the pods.
    pub scenario: PathBuf,
    /// Pods (shards) running at once.
    #[arg(long)]
    pub parallelism: u32,
    /// Container image with `loadtest` on its PATH.
    #[arg(long)]
    pub image: String,
    /// Namespace of the Job and the ConfigMap.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Name of the Job and the ConfigMap [default: the scenario's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Start this long after rendering: time to pull the image and start
    /// every pod.
    #[arg(long, default_value = "2m", value_parser = duration)]
    pub start_in: Duration,
    /// The start itself (RFC 3339), instead of --start-in.
    #[arg(long, value_parser = start_at, conflicts_with = "start_in")]
    pub start_at: Option<std::time::SystemTime>,
    /// CPUs per pod, requested and limited alike (Guaranteed QoS): also its
    /// worker threads.
    #[arg(long, default_value_t = 2)]
    pub cpu: u32,
    /// Memory per pod, requested and limited alike.
    #[arg(long, default_value = "1Gi")]
    pub memory: String,
    /// How late a pod may be ready and still run.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub start_tolerance: Duration,
}

#[derive(Debug, Args)]
#[command(after_help = "\
STAGES: 1 start the target (the built-in one set up as [service], unless [target] url)
        and find its capacity: a closed-model concurrency sweep to the saturation
        throughput, then open-model steps at 20%..110% of it (never above --max-rate);
        2 fit the service model to the steps; 3 forecast [traffic] under [autoscaling];
        4 optimize against [optimize] catalog; 5 write the reports. Every stage's file
        stays in --out: capacity.json, run_step*.json, forecast.json/.csv, plan.json,
        verify.json, index.html.

VERIFY: the fit chooses its model on the 20-60% steps; the 80% step and the steps
        past 90% are predicted and compared (p95 within 15%, goodput within 5%; past
        90%: saturated where the measurement is, within one step). Two replicas are
        predicted from the one-replica fit and measured: two built-in targets, the
        --replica-url list (the load split evenly), or --verify-url, a load balancer
        in front of --verify-replicas replicas.

EXIT CODES: 0 done, 1 no plan meets the constraints, no model fits the measurements, or
            the target failed the search's first step past its error limit, 2 bad input,
            4 --verify found a prediction outside its tolerance, 130 interrupted
            (what was measured is in --out)")]
pub struct PlanArgs {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Directory for every stage's output and the report.
    #[arg(long)]
    pub out: PathBuf,
    /// Length of each rate step of the capacity search.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub step: Duration,
    /// Length of each concurrency probe of the capacity search.
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub probe: Duration,
    /// Uncounted warm-up before each rate step.
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub warmup: Duration,
    /// Never send faster than this, requests/s (staging safety).
    #[arg(long, default_value_t = 5000.0)]
    pub max_rate: f64,
    /// Also check the calibrated model against steps it was not fitted
    /// on, and against two replicas (exit 4 on a miss).
    #[arg(long)]
    pub verify: bool,
    /// With --verify and a URL: one replica's URL (repeat for each); the
    /// multi-replica case sends each its share of the load.
    #[arg(long = "replica-url")]
    pub replica_urls: Vec<String>,
    /// With --verify and a URL: a load balancer in front of --verify-replicas replicas.
    #[arg(long, conflicts_with = "replica_urls")]
    pub verify_url: Option<String>,
    /// Replicas behind --verify-url.
    #[arg(long, default_value_t = 2)]
    pub verify_replicas: u32,
    /// Rates of the multi-replica check, as fractions of its capacity (replicas × one replica's).
    #[arg(long, default_value = "0.4,0.8")]
    pub verify_levels: String,
    /// Forecast even when no model fits the measurements within 15% p95 / 5% goodput.
    #[arg(long)]
    pub allow_bad_fit: bool,
    /// Calendar date of day 0 of the forecast (YYYY-MM-DD), to date the crossings.
    #[arg(long)]
    pub start_date: Option<String>,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario file.
    pub scenario: PathBuf,
}

#[derive(Debug, Args)]
#[command(after_help = "\
INPUTS: any mix of `run --json` (or a run's --csv), `simulate --json` and `optimize --json`
        files. Two or more runs also get a baseline (first) vs current (last) comparison.

EXIT CODES: 0 written, 1 the comparison found a regression, 2 bad input")]
pub struct ReportArgs {
    /// Output files of run, simulate or optimize.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Directory to write index.html (or index.md), the charts and tables to.
    #[arg(long)]
    pub out: PathBuf,
    /// Page format: html or md.
    #[arg(long, value_enum, default_value_t = PageFormat::Html)]
    pub format: PageFormat,
    /// Also write the tables behind the charts: csv or parquet.
    #[arg(long, value_enum)]
    pub export: Option<Export>,
    /// A p95 increase over the baseline run above this is a regression, e.g. 10%.
    #[arg(long, default_value = "10%")]
    pub regression: String,
    /// Calendar date of a forecast's day 0 (YYYY-MM-DD), to date the crossings.
    #[arg(long)]
    pub start_date: Option<String>,
    /// Page title.
    #[arg(long, default_value = "loadtest report")]
    pub title: String,
}

#[derive(Debug, Args)]
#[command(after_help = "\
DEMAND: --demand CSV (hour,vcpu,memory_gib, one row per hour) or --forecast JSON from
        `loadtest simulate` (repeatable, one per service; each hour's replicas + 1 spare,
        times --replica-vcpu / --replica-memory-gib).

EXIT CODES: 0 a plan was found, 1 no plan meets the constraints (the message names the
            constraint and the hour), 2 bad input")]
pub struct OptimizeArgs {
    /// Hourly demand CSV: hour,vcpu,memory_gib.
    #[arg(long, conflicts_with = "forecast")]
    pub demand: Option<PathBuf>,
    /// Forecast JSON from `loadtest simulate --json` (repeatable: one per service).
    #[arg(long)]
    pub forecast: Vec<PathBuf>,
    /// Price catalog CSV (see scenarios/catalog/).
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Take defaults for the flags below from this scenario's [optimize] section.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// vCPU each replica requests (with --forecast).
    #[arg(long)]
    pub replica_vcpu: Option<f64>,
    /// Memory each replica requests, GiB (with --forecast).
    #[arg(long)]
    pub replica_memory_gib: Option<f64>,
    /// Largest share of each hour's vCPU that may run on spot (0 to 1).
    #[arg(long)]
    pub spot_max_share: Option<f64>,
    /// Losing the largest spot pool must still leave the demand covered.
    #[arg(long)]
    pub survive_spot_loss: bool,
    /// At most this many instance types over the horizon.
    #[arg(long)]
    pub max_types: Option<usize>,
    /// Buy demand × (1 + headroom), e.g. 0.2 for 20%.
    #[arg(long)]
    pub headroom: Option<f64>,
    /// Account vCPU quota in any hour.
    #[arg(long)]
    pub max_vcpu: Option<f64>,
    /// At most this many instances of one type in any hour (capacity limits).
    #[arg(long)]
    pub max_per_type: Option<u32>,
    /// Do not buy 3-year reservations.
    #[arg(long)]
    pub no_3y: bool,
    /// Relative gap the MILP solves stop at.
    #[arg(long, default_value_t = optimizer::Constraints::default().gap)]
    pub gap: f64,
    /// CPU architecture of the types to plan with: x86_64, arm64 or any
    /// (arm64 only when the service ships arm64 images) [default: x86_64,
    /// or [optimize] arch].
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Instance types never to use, comma-separated (m5.large,c5.xlarge)
    /// [default: none, or [optimize] exclude].
    #[arg(long, value_name = "TYPE,...", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Only these instance families, comma-separated (m6i,c6i; n2; Dsv5)
    /// [default: all, or [optimize] families].
    #[arg(long, value_name = "FAMILY,...", value_delimiter = ',')]
    pub families: Vec<String>,
    /// Wall-time limit of each solve, e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub time_limit: Duration,
    /// Write the plan as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Scenario file with [traffic] and [service] (and [autoscaling], [cost], [slo], [simulation]).
    pub scenario: PathBuf,
    /// Write the forecast as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the time series (per window and minute) as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Fit the service model to `loadtest run` results (--json or --hdr; repeatable): the
    /// lowest-load one gives the service time, a saturated one the workers per replica.
    #[arg(long)]
    pub calibrate: Vec<PathBuf>,
    /// Override [simulation] replications.
    #[arg(long)]
    pub replications: Option<u32>,
    /// Override [simulation] seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Exit 1 when any minute misses the p95 target.
    #[arg(long)]
    pub fail_on_slo: bool,
}

#[derive(Debug, Default, Args)]
#[command(after_help = "\
MODELS:
  --rate R or --stages   open model: requests arrive on schedule whatever the server does;
                         latency counts from each request's scheduled time
  --connections N        closed model (without a rate): N connections loop as fast as answered

THRESHOLDS (repeatable):  p50|p90|p95|p99|p99.9|max|mean <|<= DURATION,
                          error_rate<1%, rps>=1000

DISTRIBUTED: --shard J/N sends the requests whose index i has i mod N = J, at the due
             times of the whole run counted from --start-at (the connections of a
             closed model split N ways; --max-connections is each shard's); merge
             the shards' --json files with `loadtest merge`

EXIT CODES: 0 all thresholds held, 1 a threshold failed, 2 bad input (before any load),
            3 --abort-on-fail stopped it, 130 interrupted (partial results written),
            5 ready only after --start-at + --start-tolerance (nothing sent); with
            --shard a missed threshold exits 0: the merge decides
            --find-capacity: 0 a knee was found, 1 no rate step held, 2 bad input or the
            first step failed, 130 interrupted (capacity.json keeps the steps so far)")]
pub struct RunArgs {
    /// Scenario file (TOML); flags override it.
    pub scenario: Option<PathBuf>,
    /// Target URL, e.g. http://127.0.0.1:8080/.
    #[arg(long)]
    pub url: Option<String>,
    /// Run against the built-in target, started in-process on a free loopback port.
    #[arg(long, conflicts_with = "url")]
    pub builtin: bool,
    /// HTTP method [default: GET, or each [[requests]]' own].
    #[arg(long)]
    pub method: Option<String>,
    /// Header 'Name: value' (repeatable); ${VAR} is expanded from the environment.
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Request body, or @FILE to read it from a file.
    #[arg(long)]
    pub body: Option<String>,
    /// Response check: the statuses that count as ok, e.g. 200, 2xx,304 or
    /// 200-204; any other is a `check` error (a 4xx/5xx keeps its class)
    /// [default: 1xx-3xx, or each [[requests]]' check.status].
    #[arg(long, value_name = "LIST", value_parser = status_set)]
    pub check_status: Option<(String, loadgen::check::StatusSet)>,
    /// Response check: text the body must contain [default: none].
    #[arg(long, value_name = "TEXT")]
    pub check_body: Option<String>,
    /// Response check: a JSON field the body must have, optionally with a
    /// value: data.items.0.id or status=ok (the value read as JSON when it
    /// parses, else as text) [default: none].
    #[arg(long, value_name = "PATH[=VALUE]", value_parser = json_check)]
    pub check_json: Option<loadgen::check::JsonCheck>,
    /// Open model: requests per second.
    #[arg(long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Open model with a ramp: DURATION:RPS,... (k6 ramping arrival rate).
    #[arg(long)]
    pub stages: Option<String>,
    /// Closed model: concurrent connections (with --rate: connections opened up front).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Open model: most connections at once (new ones open while all are busy) [default: 10000].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Closed model: pause after each response [default: 0s].
    #[arg(long, value_parser = duration)]
    pub think_time: Option<Duration>,
    /// How long to run, e.g. 30s, 2m [default: 30s].
    #[arg(long, value_parser = duration)]
    pub duration: Option<Duration>,
    /// Warm the service up first for this long, at the run's mean rate (or
    /// its connections)
    /// (caches, pools, JIT); not counted in any result. [default: 0s]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub warmup: Option<Duration>,
    /// Pass/fail criterion (repeatable).
    #[arg(long = "threshold")]
    pub thresholds: Vec<String>,
    /// Stop as soon as a latency or error-rate threshold is lost.
    #[arg(long)]
    pub abort_on_fail: bool,
    /// With --abort-on-fail: evaluate only after this long.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub abort_delay: Duration,
    /// Per-request timeout [default: 10s].
    #[arg(long, value_parser = duration)]
    pub timeout: Option<Duration>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Idle wait before a busy worker sleeps, so that it wakes once per
    /// batch of responses (less CPU per request). Applies with 16+ requests
    /// in flight on plain-HTTP/1.1 connections, whose responses are timed
    /// by the kernel's receive timestamps, so latencies are unchanged.
    /// 0 turns it off. [default: 50us]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub coalesce: Option<Duration>,
    /// HTTP/2 (h2c prior knowledge for http://, ALPN for https://).
    #[arg(long)]
    pub http2: bool,
    /// Accept any TLS certificate (self-signed staging).
    #[arg(long)]
    pub insecure: bool,
    /// Seed for choosing among weighted requests [default: 1].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the summary as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write one row per second as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write the HdrHistogram interval log.
    #[arg(long)]
    pub hdr: Option<PathBuf>,
    /// No live progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Find the service's capacity instead of one run (a breakpoint test):
    /// a closed-model concurrency sweep to the saturation throughput, then
    /// open-model steps at 20%..110% of it (--duration each, after
    /// --warmup), judged by the p95 and error-rate thresholds. --json
    /// writes capacity.json. Exit 0 when a knee was found.
    #[arg(long)]
    pub find_capacity: bool,
    /// With --find-capacity: never send faster than this, requests/s.
    #[arg(long, default_value_t = 5000.0)]
    pub max_rate: f64,
    /// With --find-capacity: length of each concurrency probe.
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub probe: Duration,
    /// Distributed runs: send shard J of N (0-based) of the schedule.
    #[arg(long, value_name = "J/N", value_parser = shard)]
    pub shard: Option<loadgen::Shard>,
    /// Distributed runs: warm up, then start the schedule at this time (RFC
    /// 3339, e.g. 2027-01-05T10:00:00Z) on the real-time clock.
    #[arg(long, value_name = "TIME", value_parser = start_at)]
    pub start_at: Option<std::time::SystemTime>,
    /// With --start-at: how late this process may be ready and still run
    /// (late requests go out at once, timed from their due times).
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub start_tolerance: Duration,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind: loopback only.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Requests served at once; the rest queue.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Service time: exp:20ms, const:5ms or lognormal:MEAN,P95.
    #[arg(long, default_value = "exp:20ms")]
    pub service_time: String,
    /// Probability of answering 500.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Periodic stall LENGTH/PERIOD, e.g. 1s/5s.
    #[arg(long)]
    pub stall: Option<String>,
    /// Serve HTTPS (and h2 by ALPN) with a self-signed certificate.
    #[arg(long)]
    pub tls: bool,
    /// Seed of the service-time and error draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runtime threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Stop by itself after this long (tests and scripts).
    #[arg(long, value_parser = duration)]
    pub exit_after: Option<Duration>,
}
