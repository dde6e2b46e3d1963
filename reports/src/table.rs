//! Tables behind the charts, as polars DataFrames, rendered to HTML,
//! Markdown and CSV.
use polars::prelude::*;

use crate::escape;

/// Columns past which a table is set in a smaller type (the per-request
/// table has one per error class).
pub const WIDE_COLUMNS: usize = 10;

/// A titled table.
#[derive(Debug, Clone)]
pub struct Table {
    /// File stem for the export.
    pub id: String,
    /// Title.
    pub title: String,
    /// The data.
    pub df: DataFrame,
    /// Shown on the page; false for tables only exported (a run's every
    /// second).
    pub on_page: bool,
}

/// A column of text.
pub fn text(name: &str, v: Vec<String>) -> Column {
    Column::new(name.into(), v)
}

/// A column of numbers.
pub fn num(name: &str, v: Vec<f64>) -> Column {
    Column::new(name.into(), v)
}

/// A column of counts: integers in every export, not doubles.
pub fn count(name: &str, v: Vec<u64>) -> Column {
    Column::new(name.into(), v)
}

impl Table {
    /// A table from columns of equal length.
    pub fn new(id: &str, title: &str, cols: Vec<Column>) -> Table {
        let df = DataFrame::new_infer_height(cols).unwrap_or_else(|_| DataFrame::empty());
        Table {
            id: id.into(),
            title: title.into(),
            df,
            on_page: true,
        }
    }

    /// A table written only with `--export` (too long for the page).
    pub fn export_only(mut self) -> Table {
        self.on_page = false;
        self
    }

    /// Rows × columns of display strings.
    pub fn cells(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let cols = self.df.columns();
        let head = cols.iter().map(|c| c.name().to_string()).collect();
        let rows = (0..self.df.height())
            .map(|i| {
                cols.iter()
                    .map(|c| cell(c.get(i).unwrap_or(AnyValue::Null)))
                    .collect()
            })
            .collect();
        (head, rows)
    }

    /// The column's values as f64 (for checks and totals).
    pub fn numbers(&self, name: &str) -> Vec<f64> {
        let Ok(c) = self.df.column(name) else {
            return vec![];
        };
        (0..c.len())
            .map(|i| match c.get(i) {
                Ok(AnyValue::Float64(v)) => v,
                Ok(AnyValue::UInt64(v)) => v as f64,
                _ => f64::NAN,
            })
            .collect()
    }

    /// HTML `<table>`, every cell escaped, in a box that scrolls sideways
    /// rather than spill past the page; a table of more than
    /// [`WIDE_COLUMNS`] columns is set smaller.
    pub fn html(&self) -> String {
        let (head, rows) = self.cells();
        let class = if head.len() > WIDE_COLUMNS {
            " class=\"wide\""
        } else {
            ""
        };
        let mut s = format!(
            "<div class=\"tbl\"><table{class}><caption>{}</caption><thead><tr>",
            escape(&self.title)
        );
        for h in head {
            s.push_str(&format!("<th>{}</th>", escape(&h)));
        }
        s.push_str("</tr></thead><tbody>");
        for r in rows {
            s.push_str("<tr>");
            for c in r {
                s.push_str(&format!("<td>{}</td>", escape(&c)));
            }
            s.push_str("</tr>");
        }
        s.push_str("</tbody></table></div>\n");
        s
    }

    /// Markdown table.
    pub fn markdown(&self) -> String {
        let (head, rows) = self.cells();
        // Inline HTML renders in Markdown: escape it, and the cell bars.
        let esc = |s: &str| escape(s).replace('|', "\\|");
        let mut s = format!(
            "**{}**\n\n| {} |\n|{}|\n",
            esc(&self.title),
            head.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | "),
            vec!["---"; head.len()].join("|")
        );
        for r in rows {
            s.push_str(&format!(
                "| {} |\n",
                r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            ));
        }
        s.push('\n');
        s
    }

    /// Writes the table as a Parquet file.
    pub fn parquet(&self, path: &std::path::Path) -> Result<(), crate::Error> {
        let err =
            |e: &dyn std::fmt::Display| crate::Error::Render(format!("{}: {e}", path.display()));
        let f = std::fs::File::create(path).map_err(|e| err(&e))?;
        let mut df = self.df.clone();
        ParquetWriter::new(f).finish(&mut df).map_err(|e| err(&e))?;
        Ok(())
    }

    /// CSV with full-precision numbers.
    pub fn csv(&self) -> String {
        let cols = self.df.columns();
        let q = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut s = cols
            .iter()
            .map(|c| q(c.name()))
            .collect::<Vec<_>>()
            .join(",");
        s.push('\n');
        for i in 0..self.df.height() {
            let row: Vec<String> = cols
                .iter()
                .map(|c| match c.get(i).unwrap_or(AnyValue::Null) {
                    AnyValue::Float64(v) => format!("{v}"),
                    AnyValue::UInt64(v) => format!("{v}"),
                    AnyValue::Null => String::new(),
                    v => q(&cell(v)),
                })
                .collect();
            s.push_str(&row.join(","));
            s.push('\n');
        }
        s
    }
}

fn cell(v: AnyValue) -> String {
    match v {
        AnyValue::Null => String::new(),
        AnyValue::Float64(x) if x.is_nan() => "–".into(),
        AnyValue::Float64(x) => {
            let a = x.abs();
            if a >= 1000.0 || (x.fract() == 0.0 && a < 1e15) {
                group(x)
            } else if a >= 10.0 {
                format!("{x:.1}")
            } else if a >= 0.1 {
                format!("{x:.3}")
            } else if a == 0.0 {
                "0".into()
            } else {
                format!("{x:.4}")
            }
        }
        AnyValue::UInt64(x) => group(x as f64),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// 1234567.8 → "1,234,568".
fn group(x: f64) -> String {
    let neg = x < 0.0;
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if neg { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table scrolls in its own box rather than spill past the page,
    /// and one with many columns is set smaller.
    #[test]
    fn wide_tables_are_set_smaller_in_a_scrolling_box() {
        let cols = |n: usize| (0..n).map(|i| count(&format!("c{i}"), vec![1])).collect();
        let narrow = Table::new("n", "narrow", cols(WIDE_COLUMNS)).html();
        let wide = Table::new("w", "wide", cols(WIDE_COLUMNS + 1)).html();
        assert!(
            narrow.starts_with("<div class=\"tbl\"><table><caption>"),
            "{narrow}"
        );
        assert!(
            wide.starts_with("<div class=\"tbl\"><table class=\"wide\">"),
            "{wide}"
        );
        assert!(wide.trim_end().ends_with("</table></div>"));
    }

    #[test]
    fn parquet_round_trips_the_table() {
        let t = Table::new(
            "t",
            "a table",
            vec![
                text("type", vec!["m6i.large".into(), "c7g.xlarge".into()]),
                num("cost", vec![12.5, 0.0625]),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        t.parquet(&p).unwrap();
        let back = ParquetReader::new(std::fs::File::open(&p).unwrap())
            .finish()
            .unwrap();
        assert!(back.equals(&t.df), "{back:?}");
        assert_eq!(t.csv(), "type,cost\nm6i.large,12.5\nc7g.xlarge,0.0625\n");
    }
}
