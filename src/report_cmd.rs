//! `loadtest report`: any mix of run, simulate and optimize outputs into a
//! self-contained HTML page (or Markdown), charts as SVG and PNG, and the
//! tables behind them as CSV.

use anyhow::Context;

use crate::Outcome;
use crate::cli::{Export, PageFormat, ReportArgs};

/// Report options from the flags.
pub fn options(a: &ReportArgs) -> anyhow::Result<reports::Options> {
    let format = match a.format {
        PageFormat::Html => reports::Format::Html,
        PageFormat::Md => reports::Format::Markdown,
    };
    let export_csv = a.export == Some(Export::Csv);
    let export_parquet = a.export == Some(Export::Parquet);
    let regression = a
        .regression
        .trim()
        .strip_suffix('%')
        .and_then(|x| x.trim().parse::<f64>().ok())
        .filter(|x| x.is_finite() && *x >= 0.0)
        .with_context(|| {
            format!(
                "--regression {}: give a percentage such as 10%",
                a.regression
            )
        })?
        / 100.0;
    if let Some(d) = &a.start_date
        && reports::sections::days_from_civil(d).is_none()
    {
        anyhow::bail!("--start-date {d}: give a date as YYYY-MM-DD");
    }
    Ok(reports::Options {
        out: a.out.clone(),
        format,
        export_csv,
        export_parquet,
        regression,
        start_date: a.start_date.clone(),
        title: a.title.clone(),
    })
}

pub fn report(a: ReportArgs) -> anyhow::Result<Outcome> {
    let opts = options(&a)?;
    let docs = a
        .inputs
        .iter()
        .map(|p| reports::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let w = reports::write(&docs, &opts)?;
    println!(
        "wrote {} ({} charts as SVG and PNG{})",
        w.page.display(),
        w.charts.len() / 2,
        if w.tables.is_empty() {
            String::new()
        } else {
            format!(
                ", {} tables as {}",
                w.tables.len(),
                if opts.export_parquet {
                    "Parquet"
                } else {
                    "CSV"
                }
            )
        }
    );
    for warning in &w.warnings {
        eprintln!("loadtest: warning: {warning}");
    }
    let deltas = w.deltas.as_deref().unwrap_or_default();
    Ok(match w.regressed {
        Some(true) => {
            eprintln!(
                "loadtest: regression (exit 1): the current run's p95 is above the baseline's by more than --regression {}: {deltas}",
                a.regression
            );
            Outcome::Failed
        }
        Some(false) => {
            eprintln!("loadtest: no regression: {deltas}");
            Outcome::Passed
        }
        None => Outcome::Passed,
    })
}
