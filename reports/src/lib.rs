//! The `report` stage: run results, forecasts and plans in; a self-contained
//! HTML report (or Markdown with PNGs), each chart as SVG and PNG, and the
//! tables behind the charts out.
//!
//! Tables are polars DataFrames built from the inputs; charts are drawn
//! with plotters ([`charts`]). Everything that came from an input file is
//! HTML-escaped before it reaches the page.
#![deny(missing_docs)]

pub mod charts;
pub mod docs;
mod page;
pub mod sections;
mod table;

use std::path::{Path, PathBuf};

pub use docs::{Doc, load};
pub use sections::Section;
pub use table::Table;

/// Errors: bad input (exit 2) or a chart that could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file that is not what the report reads.
    #[error("{0}")]
    Input(String),
    /// Drawing failed.
    #[error("render: {0}")]
    Render(String),
    /// A file of the report could not be written.
    #[error("{}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Output format of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `index.html`, charts inline as SVG.
    Html,
    /// `index.md`, charts as PNG links.
    Markdown,
}

/// How the report is written.
#[derive(Debug, Clone)]
pub struct Options {
    /// Output directory.
    pub out: PathBuf,
    /// Page format.
    pub format: Format,
    /// Write the tables as CSV too.
    pub export_csv: bool,
    /// Write the tables as Parquet too.
    pub export_parquet: bool,
    /// A current run whose p95 exceeds the baseline's by more than this
    /// fraction is a regression.
    pub regression: f64,
    /// Calendar date of day 0 of a forecast (`YYYY-MM-DD`), for crossing dates.
    pub start_date: Option<String>,
    /// Title of the page.
    pub title: String,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// The page.
    pub page: PathBuf,
    /// Chart files (SVG and PNG).
    pub charts: Vec<PathBuf>,
    /// Exported tables.
    pub tables: Vec<PathBuf>,
    /// Regression verdict when two runs were compared: true = regressed.
    pub regressed: Option<bool>,
    /// Every section's warnings, for the terminal.
    pub warnings: Vec<String>,
    /// The comparison's deltas in one line, when two runs were compared.
    pub deltas: Option<String>,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Builds the report's sections from the inputs.
pub fn build(docs: &[Doc], opts: &Options) -> Result<Vec<Section>, Error> {
    sections::build(docs, opts)
}

/// Writes the report: the page, every chart as SVG and PNG, and the tables
/// as CSV when asked.
pub fn write(docs: &[Doc], opts: &Options) -> Result<Written, Error> {
    let sections = build(docs, opts)?;
    std::fs::create_dir_all(&opts.out).map_err(|source| Error::Write {
        path: opts.out.clone(),
        source,
    })?;
    let mut w = Written::default();
    let io = |p: &Path, source: std::io::Error| Error::Write {
        path: p.to_path_buf(),
        source,
    };
    let mut svgs = Vec::new();
    for s in &sections {
        let mut per = Vec::new();
        for c in &s.charts {
            let svg = c.svg()?;
            let p = opts.out.join(format!("{}.svg", c.id));
            std::fs::write(&p, &svg).map_err(|e| io(&p, e))?;
            w.charts.push(p);
            let p = opts.out.join(format!("{}.png", c.id));
            c.png(&p)?;
            w.charts.push(p);
            per.push(svg);
        }
        svgs.push(per);
        for t in &s.tables {
            if opts.export_csv {
                let p = opts.out.join(format!("{}.csv", t.id));
                std::fs::write(&p, t.csv()).map_err(|e| io(&p, e))?;
                w.tables.push(p);
            }
            if opts.export_parquet {
                let p = opts.out.join(format!("{}.parquet", t.id));
                t.parquet(&p)?;
                w.tables.push(p);
            }
        }
        if s.regressed.is_some() {
            w.regressed = s.regressed;
        }
        if s.deltas.is_some() {
            w.deltas = s.deltas.clone();
        }
        w.warnings.extend(s.warnings.iter().cloned());
    }
    let (name, text) = match opts.format {
        Format::Html => ("index.html", page::html(&sections, &svgs, opts)),
        Format::Markdown => ("index.md", page::markdown(&sections, opts)),
    };
    let p = opts.out.join(name);
    std::fs::write(&p, text).map_err(|e| io(&p, e))?;
    w.page = p;
    Ok(w)
}
