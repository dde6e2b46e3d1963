//! The report's sections: load test and comparison ([`run`]), capacity
//! plan ([`forecast`]), FinOps cost review ([`plan`]) and forecast
//! verification ([`verify`]); each a verdict, next steps, charts and
//! tables. The page around them is [`crate::page`].
use crate::charts::{Body, Chart, Line, short};
use crate::docs::{
    Case as VerifyCase, Doc, ERROR_CLASSES, Estimate, Forecast as ForecastDoc, Plan as PlanDoc,
    Role, RunResult as RunDoc, SecondRow, ThresholdResult, Verify as VerifyDoc, WindowSummary,
};
use crate::table::{Table, count, num, text};
use crate::{Error, Options};

mod dates;
mod forecast;
mod plan;
mod run;
mod verify;

use dates::civil;
pub use dates::days_from_civil;
use forecast::forecast_section;
pub use forecast::{ServersNeeded, USER_MARKS, servers_needed};
use plan::plan_section;
use run::{compare_section, run_section};
use verify::verify_section;

/// One part of the report.
#[derive(Debug, Clone)]
pub struct Section {
    /// Anchor id.
    pub id: String,
    /// Heading.
    pub title: String,
    /// One-line verdict.
    pub verdict: String,
    /// Whether the verdict is good news.
    pub ok: bool,
    /// Headline figures: (label, value).
    pub figures: Vec<(String, String)>,
    /// What to do next.
    pub next: Vec<String>,
    /// Charts.
    pub charts: Vec<Chart>,
    /// Lines of text in place of charts that would show nothing.
    pub notes: Vec<String>,
    /// Tables.
    pub tables: Vec<Table>,
    /// Comparison: whether the current run regressed.
    pub regressed: Option<bool>,
    /// What makes the section's figures less trustworthy than they look
    /// (e.g. two runs that are not comparable), shown above its verdict.
    pub warnings: Vec<String>,
    /// Comparison: the deltas in one line, for the terminal.
    pub deltas: Option<String>,
}

impl Section {
    fn new(id: &str, title: String) -> Section {
        Section {
            id: id.into(),
            title,
            verdict: String::new(),
            ok: true,
            figures: vec![],
            next: vec![],
            charts: vec![],
            notes: vec![],
            tables: vec![],
            regressed: None,
            warnings: vec![],
            deltas: None,
        }
    }
}

/// The sections for the inputs, in order: runs, comparison, forecasts, plans, checks.
pub fn build(docs: &[Doc], opts: &Options) -> Result<Vec<Section>, Error> {
    if docs.is_empty() {
        return Err(Error::Input(
            "no inputs: give run, simulate or optimize output files".into(),
        ));
    }
    let runs: Vec<&RunDoc> = docs
        .iter()
        .filter_map(|d| {
            if let Doc::Run(r) = d {
                Some(&**r)
            } else {
                None
            }
        })
        .collect();
    let forecasts: Vec<&ForecastDoc> = docs
        .iter()
        .filter_map(|d| {
            if let Doc::Forecast(f) = d {
                Some(&**f)
            } else {
                None
            }
        })
        .collect();
    let mut out = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        out.push(run_section(r, i, runs.len()));
    }
    if runs.len() >= 2 {
        out.push(compare_section(
            runs[0],
            runs[runs.len() - 1],
            opts.regression,
        ));
    }
    for (i, f) in forecasts.iter().enumerate() {
        out.push(forecast_section(f, i, opts));
    }
    let mut plans = 0;
    for d in docs {
        match d {
            Doc::Plan(p) => {
                out.push(plan_section(p, plans, forecasts.first().copied()));
                plans += 1;
            }
            Doc::Verify(v) => out.push(verify_section(v)),
            _ => {}
        }
    }
    Ok(out)
}

/// Which document a heading is about: `, started 2026-12-01T16:12:24Z`
/// (and the tool's version), or nothing for a file without its start.
pub(crate) fn provenance(started_at: &str, version: &str) -> String {
    match (started_at.is_empty(), version.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!(", started {started_at}"),
        (false, false) => format!(", started {started_at} (loadtest {version})"),
    }
}

pub(crate) fn suffix(i: usize, n: usize) -> String {
    if n > 1 {
        format!("_{}", i + 1)
    } else {
        String::new()
    }
}

pub(crate) fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// Hourly plan charts switch to daily means beyond this many hours.
pub(crate) const DAILY_AFTER_HOURS: usize = 24 * 31;

pub(crate) fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}
