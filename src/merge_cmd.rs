//! `loadtest merge`: the shards of a distributed run read (from their
//! `--json` files or their pods' logs), added up by [`loadgen::merge`],
//! printed with a table of the shards, written, and judged.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use loadgen::RunResult;
use loadgen::merge::MergeError;

use crate::Outcome;
use crate::cli::MergeArgs;

pub fn merge(a: MergeArgs) -> anyhow::Result<Outcome> {
    let mut extra = Vec::new();
    for t in &a.thresholds {
        extra.push(loadgen::parse_threshold(t).context("--threshold")?);
    }
    let parts = a
        .inputs
        .iter()
        .map(|p| read_shard(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let merged = loadgen::merge::merge(&parts, &extra).map_err(|e| explain(&e, &a.inputs))?;
    if let Some(p) = &a.json {
        crate::write_json(p, &merged)?;
    }
    if let Some(p) = &a.csv {
        let mut csv = crate::run_cmd::CsvSink::create(p)?;
        for row in &merged.series {
            csv.row(row)?;
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(shard_table(&merged).as_bytes())?;
    out.write_all(crate::run_summary::render(&merged).as_bytes())?;
    out.flush()?;
    // A shard's --abort-on-fail stopped the run (and, on Kubernetes, the
    // Job): exit 3, as the single run's would. Any other early stop (a
    // shard interrupted, or terminated when the Job failed): 1.
    let aborted = merged.shards.iter().any(|s| {
        s.stopped
            .as_deref()
            .is_some_and(|w| w.starts_with("abort_on_fail"))
    });
    if let Some(why) = &merged.stopped {
        let code = if aborted { 3 } else { 1 };
        eprintln!(
            "loadtest: a shard stopped early (exit {code}): {why}; the merged result is partial"
        );
        return Ok(if aborted {
            Outcome::Aborted
        } else {
            Outcome::Failed
        });
    }
    if !merged.passed() {
        eprintln!(
            "loadtest: threshold missed on the merged run (exit 1): {}",
            crate::run_cmd::missed(&merged)
        );
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Passed)
}

/// A shard's result: a `run --json` file, or a pod's log whose last line
/// that reads as a run result is the shard's (`run --json -` prints it
/// last; lines the container runtime or kubectl added before it are
/// skipped).
fn read_shard(path: &Path) -> anyhow::Result<RunResult> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let whole = serde_json::from_str::<RunResult>(&text);
    if let Ok(r) = whole {
        return Ok(r);
    }
    let last = text
        .lines()
        .rev()
        .filter(|l| l.trim_start().starts_with('{'))
        .find_map(|l| serde_json::from_str::<RunResult>(l.trim()).ok());
    match last {
        Some(r) => Ok(r),
        None if text.trim_start().starts_with('{') => {
            let e = serde_json::from_str::<RunResult>(&text).unwrap_err();
            bail!(
                "{}: not a run result ({e}): give each shard's `run --json` file",
                path.display()
            )
        }
        None => bail!(
            "{}: no run result in it: give each shard's `run --json` file or its pod's log (`run --json -` prints the result as its last line)",
            path.display()
        ),
    }
}

/// The merge's refusal, naming the files.
fn explain(e: &MergeError, files: &[PathBuf]) -> anyhow::Error {
    let f = |at: &usize| {
        files
            .get(*at)
            .map_or_else(String::new, |p| p.display().to_string())
    };
    match e {
        MergeError::NotAShard { at } => anyhow::anyhow!(
            "{} is not a shard of a distributed run (no `shard` in it): merge the results of `run --shard J/N`",
            f(at)
        ),
        MergeError::Mismatch {
            at,
            what,
            want,
            got,
        } => anyhow::anyhow!(
            "{} is of another run than {}: its {what} is {got}, not {want}; merge the shards of one run",
            f(at),
            f(&0)
        ),
        MergeError::Duplicate {
            index,
            first,
            second,
        } => anyhow::anyhow!(
            "{} and {} are both shard {index}: give each shard once",
            f(first),
            f(second)
        ),
        MergeError::BadHistogram { at, which } => {
            anyhow::anyhow!(
                "{}: its {which} histogram does not decode (the file is damaged)",
                f(at)
            )
        }
        other => anyhow::anyhow!("{other}"),
    }
}

/// Each shard's own figures: a generator that could not keep up shows as
/// fewer requests than scheduled, drops, or a large send lag.
fn shard_table(r: &RunResult) -> String {
    let mut t = String::from(
        "shard  scheduled   requests    dropped        rps  send lag p99  start offset\n",
    );
    for s in &r.shards {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
        let offset = s
            .start_offset_ms
            .map_or_else(|| "-".into(), |ms| format!("{ms:+.1} ms"));
        t.push_str(&format!(
            "{:>5}  {:>9}  {:>9}  {:>9}  {:>9.1}  {:>9.2} ms  {:>12}{}\n",
            s.index,
            opt(s.scheduled),
            s.requests,
            s.dropped,
            s.rps,
            s.send_lag_p99_ms,
            offset,
            s.stopped
                .as_deref()
                .map_or_else(String::new, |w| format!("  stopped: {w}"))
        ));
    }
    t.push('\n');
    t
}
