//! PNG scatter plots of 2-D samples (the first two coordinates of `[N, D]`).
//!
//! Rendered with plotters' bitmap backend; text uses a bundled DejaVu Sans through
//! `ab_glyph`, so no fontconfig or system font is needed. Files are written atomically.
//!
//! ```no_run
//! use candle_core::{Device, Tensor};
//! use sbdm_runtime::plot::{scatter_png, Mark, ScatterConfig, Series};
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let x = Tensor::randn(0f32, 1.0, (1000, 2), &Device::Cpu)?;            // [N, 2]
//! let series = [Series::from_tensor("samples", &x, Mark::Dot, 20_000)?];
//! let cfg = ScatterConfig { title: "N(0, I)".into(), ..Default::default() };
//! scatter_png("samples.png", &series, &cfg)?;
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Once;

use candle_core::{DType, Tensor};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{invalid, Error, Result};

/// DejaVu Sans from Debian's fonts-dejavu-core; license in `assets/DejaVuSans-LICENSE.txt`.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The bundled file is a valid TTF; a failure would only lose the text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// How a series' points are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Small translucent dots, for many samples.
    Dot,
    /// Large crosses, for a few reference points (e.g. mixture means).
    Cross,
}

/// One labelled set of 2-D points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend entry.
    pub label: String,
    /// The points.
    pub points: Vec<[f64; 2]>,
    /// How they are drawn.
    pub mark: Mark,
}

impl Series {
    /// The first two coordinates of (at most `max_points` leading) rows of a `[N, D]`
    /// tensor, `D ≥ 2`.
    pub fn from_tensor(label: &str, x: &Tensor, mark: Mark, max_points: usize) -> Result<Series> {
        if x.rank() != 2 || x.dim(1)? < 2 {
            return Err(invalid!(
                "a scatter plot needs samples of shape [N, D] with D >= 2, got {:?}",
                x.dims()
            ));
        }
        let n = x.dim(0)?.min(max_points);
        let rows: Vec<Vec<f64>> = x
            .narrow(0, 0, n)?
            .narrow(1, 0, 2)?
            .to_dtype(DType::F64)?
            .to_vec2()?;
        Ok(Series {
            label: label.to_string(),
            points: rows.into_iter().map(|r| [r[0], r[1]]).collect(),
            mark,
        })
    }
}

/// Size and text of a scatter plot.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterConfig {
    /// The caption.
    pub title: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The x-axis label.
    pub x_label: String,
    /// The y-axis label.
    pub y_label: String,
}

impl Default for ScatterConfig {
    fn default() -> Self {
        ScatterConfig {
            title: String::new(),
            width: 800,
            height: 800,
            x_label: "x1".into(),
            y_label: "x2".into(),
        }
    }
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// The `q`-quantile of `v` (sorted in place).
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
}

/// A square view, equal scales on both axes, holding the central 99% of the points of
/// every series (a few outliers do not shrink the picture).
fn view(series: &[Series]) -> Option<(f64, f64, f64)> {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for s in series {
        for p in s
            .points
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite())
        {
            xs.push(p[0]);
            ys.push(p[1]);
        }
    }
    if xs.is_empty() {
        return None;
    }
    let (x0, x1) = (quantile(&mut xs, 0.005), quantile(&mut xs, 0.995));
    let (y0, y1) = (quantile(&mut ys, 0.005), quantile(&mut ys, 0.995));
    let half = (0.5 * (x1 - x0).max(y1 - y0) * 1.15).max(1e-6);
    Some((0.5 * (x0 + x1), 0.5 * (y0 + y1), half))
}

/// Renders a scatter plot straight to `path` (a `.png`); see [`scatter_png`] for the
/// atomic version.
pub fn draw_scatter(path: &Path, series: &[Series], cfg: &ScatterConfig) -> Result<()> {
    register_font();
    let (cx, cy, half) =
        view(series).ok_or_else(|| invalid!("a scatter plot needs at least one finite point"))?;
    let err = |e: &dyn std::fmt::Display| Error::Format {
        path: path.display().to_string(),
        message: format!("plotting failed: {e}"),
    };
    let root = BitMapBackend::new(path, (cfg.width, cfg.height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&cfg.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((cx - half)..(cx + half), (cy - half)..(cy + half))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(cfg.x_label.as_str())
        .y_desc(cfg.y_label.as_str())
        .label_style(("sans-serif", 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let label = format!("{} ({})", s.label, s.points.len());
        let drawn = match s.mark {
            Mark::Dot => {
                // Fainter dots for more points, so dense regions still show structure.
                let alpha = (2000.0 / s.points.len().max(1) as f64).clamp(0.08, 0.6);
                let style = color.mix(alpha).filled();
                chart
                    .draw_series(s.points.iter().map(|p| Circle::new((p[0], p[1]), 2, style)))
                    .map_err(|e| err(&e))?
            }
            Mark::Cross => chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|p| Cross::new((p[0], p[1]), 7, color.stroke_width(3))),
                )
                .map_err(|e| err(&e))?,
        };
        let mark = s.mark;
        drawn.label(label).legend(move |(x, y)| match mark {
            Mark::Dot => Circle::new((x + 8, y), 4, color.filled()).into_dyn(),
            Mark::Cross => Cross::new((x + 8, y), 5, color.stroke_width(2)).into_dyn(),
        });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Renders a scatter plot to `dest` (a `.png`), atomically.
pub fn scatter_png(dest: impl AsRef<Path>, series: &[Series], cfg: &ScatterConfig) -> Result<()> {
    crate::io::write_atomic(dest, |tmp| draw_scatter(tmp, series, cfg))
}
