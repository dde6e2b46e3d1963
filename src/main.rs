//! `loadtest`: the command line. It owns files, the terminal, signals and
//! exit codes, and the order of the pipeline's stages; the stage crates
//! take data and return data.

mod capacity;
mod cli;
mod k8s_cmd;
mod merge_cmd;
mod optimize_cmd;
mod plan_cmd;
mod report_cmd;
mod run_cmd;
mod run_summary;
mod scenario;
mod serve_cmd;
mod simulate_cmd;
mod verify;

use std::process::ExitCode;

use clap::Parser;

// The generator's hot path allocates a request and its response head per
// exchange; mimalloc's thread-local free lists make that measurably cheaper
// than glibc's malloc (benches/compare.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How a command that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything held.
    Passed,
    /// A threshold was missed, a run stopped early other than by Ctrl-C or
    /// `--abort-on-fail`, or a plan is infeasible.
    Failed,
    /// `--abort-on-fail` stopped the run early.
    Aborted,
    /// `--verify` found a prediction outside its tolerance.
    VerifyMiss,
    /// Ctrl-C: what was measured so far was written.
    Interrupted,
}

impl Outcome {
    fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Passed => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
            Outcome::Aborted => ExitCode::from(3),
            Outcome::VerifyMiss => ExitCode::from(4),
            Outcome::Interrupted => ExitCode::from(130),
        }
    }
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A flag's value that does not parse: one line naming the flag
            // and the fix, as every other bad input.
            if let Some(line) = bad_value(&e) {
                eprintln!("loadtest: {line}");
                return ExitCode::from(2);
            }
            // --help and --version are not errors.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if is_late_start(&e) => {
            eprintln!("loadtest: late start (exit 5): {}", one_line(&e));
            ExitCode::from(5)
        }
        Err(e) => {
            eprintln!("loadtest: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// `--flag: why` for a flag's value that clap rejected (its parser's error,
/// or the values it takes); None for every other parse error.
fn bad_value(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split_whitespace().next().unwrap_or(arg);
    if let Some(why) = std::error::Error::source(e) {
        return Some(format!("{flag}: {why}"));
    }
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => cut(v, 100),
        _ => String::new(),
    };
    let valid = match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(v)) => v.join(", "),
        _ => return None,
    };
    Some(format!("{flag}: `{value}` is not one of {valid}"))
}

/// The tool's version, in every result it writes.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// When a stage started: the UTC time every result carries, and the wall
/// clock its duration is measured by.
pub struct Started {
    /// UTC, RFC 3339 to the second.
    pub at: String,
    clock: std::time::Instant,
}

/// The current time, UTC, RFC 3339 to the second.
pub fn utc_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Started {
    pub fn now() -> Self {
        Started {
            at: utc_now(),
            clock: std::time::Instant::now(),
        }
    }

    /// Seconds since, to the millisecond.
    pub fn seconds(&self) -> f64 {
        (self.clock.elapsed().as_secs_f64() * 1e3).round() / 1e3
    }
}

/// Writes `v` as pretty JSON with a final newline: every output file.
pub fn write_json<T: serde::Serialize + ?Sized>(
    path: &std::path::Path,
    v: &T,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn run(cli: cli::Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        cli::Command::Run(args) => run_cmd::run(*args),
        cli::Command::Serve(args) => serve_cmd::serve(args),
        cli::Command::Simulate(args) => simulate_cmd::simulate(args),
        cli::Command::Optimize(args) => optimize_cmd::optimize(*args),
        cli::Command::Report(args) => report_cmd::report(args),
        cli::Command::Plan(args) => plan_cmd::plan(args),
        cli::Command::Validate(args) => plan_cmd::validate(args),
        cli::Command::Merge(args) => merge_cmd::merge(args),
        cli::Command::K8s(cli::K8sCommand::Render(args)) => k8s_cmd::render(&args),
    }
}

pub use contracts::cut;

/// The error chain on one line, without repeating a cause the context
/// already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cut(&cause.to_string().replace('\n', " "), 400);
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text.trim());
    }
    out
}

/// A distributed run's shard that was ready only after its start.
fn is_late_start(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<loadgen::LoadgenError>(),
            Some(loadgen::LoadgenError::LateStart { .. })
        )
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
