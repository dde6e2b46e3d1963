//! Charts with plotters, each drawn twice from one description: to an SVG
//! string (inlined in the HTML and written as `.svg`) and to a PNG. Text in
//! PNGs uses the DejaVu Sans font embedded in this crate (Bitstream Vera
//! licence, `fonts/LICENSE-DejaVu.txt`), so rendering needs no system fonts.
//!
//! Lines differ in dash pattern and width as well as colour, and the
//! palette's luminances are far apart, so charts still read in greyscale.
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::Error;

static FONT: Once = Once::new();
static DEJAVU: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

fn register_font() {
    FONT.call_once(|| {
        // The bytes are a valid TTF shipped with the crate; a failure here
        // would show as missing PNG text, which the tests check.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, DEJAVU);
    });
}

/// Colour, dash and width per series index: dark blue solid, orange
/// dashed, grey dotted, black dash-dot (luminance ≈ 0.1, 0.5, 0.65, 0).
const STYLES: [(RGBColor, u32, u32); 5] = [
    (RGBColor(31, 60, 136), 0, 3),
    (RGBColor(230, 120, 20), 8, 2),
    (RGBColor(150, 150, 150), 3, 3),
    (RGBColor(0, 0, 0), 12, 1),
    (RGBColor(120, 40, 140), 5, 2),
];

/// A line (with an optional confidence band).
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// Legend text.
    pub name: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// (x, low, high) of a band around the line.
    pub band: Vec<(f64, f64, f64)>,
    /// Draw points as markers (sparse data).
    pub markers: bool,
    /// The palette colour to draw it in (index into the styles), when
    /// related lines must share one; its own index's otherwise.
    pub colour: Option<usize>,
    /// Dash length instead of its style's (0: solid).
    pub dash: Option<u32>,
}

impl Line {
    /// Colour, dash and width of the line drawn `i`th.
    fn style(&self, i: usize) -> (RGBColor, u32, u32) {
        let (colour, dash, width) = STYLES[self.colour.unwrap_or(i) % STYLES.len()];
        (colour, self.dash.unwrap_or(dash), width)
    }
}

/// What is drawn.
#[derive(Debug, Clone)]
pub enum Body {
    /// Lines over a numeric x.
    Lines(Vec<Line>),
    /// Named bars, one series (values in y units).
    Bars(Vec<(String, f64)>),
}

/// A chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File stem, e.g. `latency_over_time`.
    pub id: String,
    /// Title.
    pub title: String,
    /// X-axis title with unit.
    pub x_label: String,
    /// Y-axis title with unit.
    pub y_label: String,
    /// The data.
    pub body: Body,
    /// X axis is `-log10(1 - q)`: ticks are labelled as percentiles.
    pub percentile_x: bool,
    /// Start the y axis at zero.
    pub y_from_zero: bool,
}

/// Pixel size of every chart.
pub const SIZE: (u32, u32) = (900, 420);

impl Chart {
    /// The chart as an SVG document.
    pub fn svg(&self) -> Result<String, Error> {
        register_font();
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, SIZE).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(|e| Error::Render(e.to_string()))?;
        }
        Ok(s)
    }

    /// Writes the chart as a PNG.
    pub fn png(&self, path: &Path) -> Result<(), Error> {
        register_font();
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        self.draw(&root)?;
        root.present()
            .map_err(|e| Error::Render(format!("{}: {e}", path.display())))?;
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), Error>
    where
        DB::ErrorType: 'static,
    {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| Error::Render(e.to_string());
        root.fill(&WHITE).map_err(err)?;
        match &self.body {
            Body::Lines(lines) => self.draw_lines(root, lines),
            Body::Bars(bars) => self.draw_bars(root, bars),
        }
    }

    fn draw_lines<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        lines: &[Line],
    ) -> Result<(), Error>
    where
        DB::ErrorType: 'static,
    {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| Error::Render(e.to_string());
        let (x0, x1, y0, y1) = self.ranges(lines);
        // The legend gets its own strip below the plot, so it never covers
        // a line.
        let rows = legend_rows(lines, root.dim_in_pixel().0);
        let strip = if rows.is_empty() {
            0
        } else {
            LEGEND_ROW * rows.len() as u32 + 8
        };
        let (plot, legend) = root.split_vertically(root.dim_in_pixel().1.saturating_sub(strip));
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(46)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let pct = |v: &f64| {
            let q = 100.0 * (1.0 - 10f64.powf(-*v));
            let t = format!("{q:.4}");
            format!("{}%", t.trim_end_matches('0').trim_end_matches('.'))
        };
        let fmt_num = |v: &f64| short(*v);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .light_line_style(RGBColor(235, 235, 235))
            .y_label_formatter(&fmt_num);
        if self.percentile_x {
            mesh.x_label_formatter(&pct)
                .x_labels((x1.ceil() as usize + 1).max(2));
        } else {
            mesh.x_label_formatter(&fmt_num);
        }
        mesh.draw().map_err(err)?;
        for (i, l) in lines.iter().enumerate() {
            draw_line(&mut chart, l, l.style(i))?;
        }
        for (r, row) in rows.iter().enumerate() {
            let y = (LEGEND_ROW * r as u32 + LEGEND_ROW / 2 + 4) as i32;
            for &(i, x) in row {
                let (color, dash, width) = lines[i].style(i);
                let style = ShapeStyle {
                    color: color.to_rgba(),
                    filled: false,
                    stroke_width: width + 1,
                };
                // A dashed line's sample is dashed too.
                let pieces: &[(i32, i32)] = if dash == 0 {
                    &[(0, 24)]
                } else {
                    &[(0, 7), (10, 14), (17, 24)]
                };
                for &(a, b) in pieces {
                    legend
                        .draw(&PathElement::new(vec![(x + a, y), (x + b, y)], style))
                        .map_err(err)?;
                }
                legend
                    .draw(&Text::new(
                        lines[i].name.as_str(),
                        (x + 30, y - 7),
                        ("sans-serif", 14).into_font(),
                    ))
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    fn draw_bars<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        bars: &[(String, f64)],
    ) -> Result<(), Error>
    where
        DB::ErrorType: 'static,
    {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| Error::Render(e.to_string());
        let n = bars.len().max(1);
        let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9) * 1.15;
        let min = bars.iter().map(|b| b.1).fold(0.0, f64::min) * 1.15;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(46)
            .y_label_area_size(72)
            .build_cartesian_2d((0..n - 1).into_segmented(), min..max)
            .map_err(err)?;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .x_labels(n)
            .x_label_formatter(&label)
            .y_label_formatter(&|v| short(*v))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let (color, _, _) = STYLES[i % STYLES.len()];
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), b.1),
                    ],
                    color.filled(),
                );
                r.set_margin(0, 0, 18, 18);
                r
            }))
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let style = TextStyle::from(("sans-serif", 14).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                Text::new(short(b.1), (SegmentValue::CenterOf(i), b.1.max(0.0)), style)
            }))
            .map_err(err)?;
        Ok(())
    }
}

/// Short numbers for axes and labels: 1234567 → 1.23M.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

impl Chart {
    /// The axes' ranges: every point and band, padded above (and below,
    /// unless the y axis starts at zero); 0..1 when there is nothing.
    fn ranges(&self, lines: &[Line]) -> (f64, f64, f64, f64) {
        let pts = || {
            lines.iter().flat_map(|l| {
                l.points
                    .iter()
                    .copied()
                    .chain(l.band.iter().flat_map(|b| [(b.0, b.1), (b.0, b.2)]))
            })
        };
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for (x, y) in pts().filter(|p| p.0.is_finite() && p.1.is_finite()) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if self.y_from_zero {
            y0 = y0.min(0.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        let pad = (y1 - y0) * 0.08;
        let y1 = y1 + pad;
        let y0 = if self.y_from_zero { y0 } else { y0 - pad };
        (x0, x1, y0, y1)
    }
}

/// Height of one row of the legend, px.
const LEGEND_ROW: u32 = 20;

/// The named lines' legend entries laid out in rows across `width` px:
/// (line index, x) per entry, wrapping before an entry that would not fit.
fn legend_rows(lines: &[Line], width: u32) -> Vec<Vec<(usize, i32)>> {
    let (left, right) = (84, width as i32 - 12);
    let mut rows: Vec<Vec<(usize, i32)>> = Vec::new();
    let mut x = left;
    for (i, l) in lines.iter().enumerate().filter(|(_, l)| !l.name.is_empty()) {
        // The sample line, a gap, and the name at ~7.5 px a character.
        let w = 30 + (7.5 * l.name.chars().count() as f64) as i32 + 18;
        if rows.is_empty() || (x + w > right && x > left) {
            rows.push(Vec::new());
            x = left;
        }
        rows.last_mut().expect("a row").push((i, x));
        x += w;
    }
    rows
}

/// One line: its band, the line (dashed per its style), its legend entry
/// and its markers.
fn draw_line<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    l: &Line,
    (color, dash, width): (RGBColor, u32, u32),
) -> Result<(), Error>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| Error::Render(e.to_string());
    if !l.band.is_empty() {
        let mut poly: Vec<(f64, f64)> = l.band.iter().map(|b| (b.0, b.2)).collect();
        poly.extend(l.band.iter().rev().map(|b| (b.0, b.1)));
        chart
            .draw_series(std::iter::once(Polygon::new(poly, color.mix(0.18))))
            .map_err(err)?;
    }
    let style = ShapeStyle {
        color: color.to_rgba(),
        filled: false,
        stroke_width: width,
    };
    if dash == 0 {
        chart
            .draw_series(LineSeries::new(l.points.iter().copied(), style))
            .map_err(err)?;
    } else {
        chart
            .draw_series(DashedLineSeries::new(
                l.points.iter().copied(),
                dash,
                dash / 2 + 2,
                style,
            ))
            .map_err(err)?;
    }
    if l.markers {
        chart
            .draw_series(l.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    Ok(())
}
