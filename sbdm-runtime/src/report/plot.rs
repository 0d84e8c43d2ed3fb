//! PNG plots: scatter plots of 2-D samples (the first two coordinates of `[N, D]`), line
//! plots (training-loss curves) and grids of such panels in one image.
//!
//! Rendered with plotters' bitmap backend; text uses a bundled DejaVu Sans through
//! `ab_glyph`, so no fontconfig or system font is needed. Files are written atomically.
//!
//! ```no_run
//! use candle_core::{Device, Tensor};
//! use sbdm_runtime::report::plot::{scatter_png, Mark, ScatterConfig, Series};
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let x = Tensor::randn(0f32, 1.0, (1000, 2), &Device::Cpu)?;            // [N, 2]
//! let series = [Series::from_tensor("samples", &x, Mark::Dot, 20_000)?];
//! let cfg = ScatterConfig { title: "N(0, I)".into(), ..Default::default() };
//! scatter_png("samples.png", &series, &cfg)?;
//! # Ok(()) }
//! ```
//!
//! A loss curve with its smoothed trend, and a grid comparing samples with the data:
//!
//! ```no_run
//! use sbdm_runtime::report::plot::{line_png, panels_png, smooth, LineSeries, Mark, Panel, Series};
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let loss: Vec<(f64, f64)> = (0..1000).map(|s| (s as f64, 1.0 / (1.0 + s as f64))).collect();
//! let curve = vec![
//!     LineSeries { label: "loss".into(), points: loss.clone(), color: (160, 190, 230) },
//!     LineSeries { label: "EMA".into(), points: smooth(&loss, 0.05), color: (20, 60, 140) },
//! ];
//! line_png("loss.png", "training", "step", "loss", &curve, true)?;
//! let cloud = |label: &str| Series { label: label.into(), points: vec![[0.0, 0.0]], mark: Mark::Dot };
//! let panels = [
//!     Panel::Scatter { title: "data".into(), series: vec![cloud("data")], range: None },
//!     Panel::Scatter { title: "euler".into(), series: vec![cloud("euler")], range: None },
//!     Panel::Lines {
//!         title: "loss".into(),
//!         x_label: "step".into(),
//!         y_label: "loss".into(),
//!         series: curve,
//!         log_y: true,
//!     },
//! ];
//! panels_png("compare.png", &panels, 3, 400)?;
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Once;

use candle_core::{DType, Tensor};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{invalid, Error, Result};

/// DejaVu Sans from Debian's fonts-dejavu-core; license in `assets/DejaVuSans-LICENSE.txt`.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
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

/// One labelled polyline of a line plot, e.g. the training loss per step.
#[derive(Clone, Debug, PartialEq)]
pub struct LineSeries {
    /// The legend entry (none when empty; the legend is drawn when two series have one).
    pub label: String,
    /// The `(x, y)` vertices, in drawing order (normally increasing x). Points with a
    /// non-finite coordinate, or with `y <= 0` on a log-scale y axis, are skipped.
    pub points: Vec<(f64, f64)>,
    /// The line's colour as `(red, green, blue)`; e.g. light for raw values and dark for
    /// their [`smooth`]ed trend drawn after them.
    pub color: (u8, u8, u8),
}

/// One cell of a [`panels_png`] grid.
#[derive(Clone, Debug, PartialEq)]
pub enum Panel {
    /// A scatter plot of 2-D points.
    Scatter {
        /// The caption.
        title: String,
        /// The point sets, coloured in turn; a legend is drawn when there are several.
        series: Vec<Series>,
        /// The visible `((x_min, x_max), (y_min, y_max))`. `None` shares one square range
        /// among all scatter panels without a range of their own, holding the central 99%
        /// of all their points, so panels compare at a glance.
        range: Option<((f64, f64), (f64, f64))>,
    },
    /// A line plot, as [`line_png`] draws it.
    Lines {
        /// The caption.
        title: String,
        /// The x-axis label.
        x_label: String,
        /// The y-axis label.
        y_label: String,
        /// The polylines, drawn in order.
        series: Vec<LineSeries>,
        /// Whether the y axis is logarithmic.
        log_y: bool,
    },
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// A visible `((x_min, x_max), (y_min, y_max))`.
type Bounds = ((f64, f64), (f64, f64));

/// The drawing surface every plot here is rendered onto (a file or an RGB buffer).
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A chart with axes of types `X` and `Y` on an [`Area`].
type Chart<'a, X, Y> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>;

/// A plotting failure's message, so drawing code can use `?` on any plotters error.
/// (Deliberately not `std::error::Error`, which keeps the blanket `From` coherent.)
struct DrawError(String);

impl<E: std::error::Error> From<E> for DrawError {
    fn from(e: E) -> Self {
        DrawError(e.to_string())
    }
}

/// The outcome of drawing onto an [`Area`].
type Drawn = std::result::Result<(), DrawError>;

/// Sizes of text, margins and marks, in pixels.
#[derive(Clone, Copy, Debug)]
struct Look {
    caption: u32,
    label: u32,
    margin: u32,
    x_area: u32,
    y_area: u32,
    /// The radius of a [`Mark::Dot`].
    dot: u32,
    /// The stroke width of a line.
    line: u32,
    /// Light grid lines between two labelled ones (at most).
    light: usize,
}

impl Look {
    /// A plot of its own (the sizes `scatter_png` has always used).
    const FULL: Look = Look {
        caption: 22,
        label: 15,
        margin: 16,
        x_area: 44,
        y_area: 56,
        dot: 2,
        line: 2,
        light: 10,
    };

    /// One `px`-square panel of a grid: text shrinks with the panel (but stays legible),
    /// marks are 1 px so clouds of thousands of points keep their structure.
    fn panel(px: u32) -> Look {
        let s = (f64::from(px) / 800.0).sqrt();
        let size = |full: u32, min: f64| (f64::from(full) * s).max(min).round() as u32;
        let full = Look::FULL;
        Look {
            caption: size(full.caption, 11.0),
            label: size(full.label, 9.0),
            margin: size(full.margin, 4.0),
            x_area: size(full.x_area, 24.0),
            y_area: size(full.y_area, 42.0),
            dot: 1,
            line: 1,
            light: 4,
        }
    }
}

/// The texts around a chart.
struct Labels<'a> {
    title: &'a str,
    x: &'a str,
    y: &'a str,
}

/// A tick label: a few significant digits, exponent notation for very small or large values.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        return format!("{v:.0e}");
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Tick values for a log axis over `lo..hi` (`0 < lo < hi`): the labelled ones (powers of
/// ten, or 1, 2, 5 times them, or every integer multiple, whichever first gives three; at
/// most about ten) and the grid lines (every integer multiple, or the powers of ten when
/// the axis spans many decades).
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let at = |multiples: &[u32]| -> Vec<f64> {
        (k0..=k1)
            .flat_map(|k| multiples.iter().map(move |&m| f64::from(m) * 10f64.powi(k)))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    let decades = at(&[1]);
    let every = at(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let labelled = if decades.len() >= 3 {
        let stride = decades.len().div_ceil(10);
        decades.iter().copied().step_by(stride).collect()
    } else {
        Some(at(&[1, 2, 5]))
            .filter(|v| v.len() >= 3)
            .unwrap_or_else(|| every.clone())
    };
    let grid = if decades.len() > 6 { decades } else { every };
    (labelled, grid)
}

/// The `q`-quantile of `v` (sorted in place).
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
}

/// A square view, equal scales on both axes, holding the central 99% of the points of
/// every series (a few outliers do not shrink the picture), padded equally on all sides.
fn view<'a>(series: impl IntoIterator<Item = &'a Series>) -> Option<Bounds> {
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
    let (cx, cy) = (0.5 * (x0 + x1), 0.5 * (y0 + y1));
    Some(((cx - half, cx + half), (cy - half, cy + half)))
}

/// Checks an explicit scatter range: finite, with positive extent on both axes.
fn check_bounds(what: &str, b: Bounds) -> Result<Bounds> {
    let ((x0, x1), (y0, y1)) = b;
    if [x0, x1, y0, y1].iter().all(|v| v.is_finite()) && x0 < x1 && y0 < y1 {
        Ok(b)
    } else {
        Err(invalid!(
            "{what}: the range must be finite with min < max on both axes, got {b:?}"
        ))
    }
}

/// Runs `draw` on a white `area` and flushes it; a failure names `target`.
fn render(area: Area, target: &str, draw: impl FnOnce(&Area) -> Drawn) -> Result<()> {
    register_font();
    let drawn = (|| {
        area.fill(&WHITE)?;
        draw(&area)?;
        area.present()?;
        Ok(())
    })();
    drawn.map_err(|DrawError(message)| Error::Format {
        path: target.to_string(),
        message: format!("plotting failed: {message}"),
    })
}

/// Renders a `size` image straight to `path` (a `.png`).
fn render_file(path: &Path, size: (u32, u32), draw: impl FnOnce(&Area) -> Drawn) -> Result<()> {
    let area = BitMapBackend::new(path, size).into_drawing_area();
    render(area, &path.display().to_string(), draw)
}

/// Renders a `size` image to RGB bytes, row-major, 3 per pixel.
fn render_rgb(size: (u32, u32), draw: impl FnOnce(&Area) -> Drawn) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    let area = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
    render(area, "(in-memory image)", draw)?;
    Ok(buf)
}

/// A chart on `area` with caption, axis descriptions and a light grid.
fn chart<'a, X, Y>(
    area: &Area<'a>,
    text: &Labels,
    look: Look,
    x: X,
    y: Y,
) -> std::result::Result<Chart<'a, X::CoordDescType, Y::CoordDescType>, DrawError>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(text.title, ("sans-serif", look.caption))
        .margin(look.margin)
        .x_label_area_size(look.x_area)
        .y_label_area_size(look.y_area)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(text.x)
        .y_desc(text.y)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style(("sans-serif", look.label))
        .light_line_style(RGBColor(235, 235, 235))
        .max_light_lines(look.light)
        .draw()?;
    Ok(chart)
}

/// Draws the legend of a chart's labelled series.
fn legend<'a, X: Ranged, Y: Ranged>(chart: &mut Chart<'a, X, Y>, look: Look) -> Drawn {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", look.label))
        .draw()?;
    Ok(())
}

/// Draws a scatter chart of `series` showing `bounds`; points outside are left out.
fn draw_scatter_on(
    area: &Area,
    text: &Labels,
    series: &[Series],
    bounds: Bounds,
    look: Look,
    with_legend: bool,
) -> Drawn {
    let ((x0, x1), (y0, y1)) = bounds;
    let mut chart = chart(area, text, look, x0..x1, y0..y1)?;
    let inside = |p: &&[f64; 2]| (x0..=x1).contains(&p[0]) && (y0..=y1).contains(&p[1]);
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let label = format!("{} ({})", s.label, s.points.len());
        let points = s.points.iter().filter(inside);
        let drawn = match s.mark {
            Mark::Dot => {
                // Fainter dots for more points, so dense regions still show structure.
                let alpha = (2000.0 / s.points.len().max(1) as f64).clamp(0.08, 0.6);
                let style = color.mix(alpha).filled();
                chart.draw_series(points.map(|p| Circle::new((p[0], p[1]), look.dot, style)))?
            }
            Mark::Cross => chart
                .draw_series(points.map(|p| Cross::new((p[0], p[1]), 7, color.stroke_width(3))))?,
        };
        let mark = s.mark;
        drawn.label(label).legend(move |(x, y)| match mark {
            Mark::Dot => Circle::new((x + 8, y), 4, color.filled()).into_dyn(),
            Mark::Cross => Cross::new((x + 8, y), 5, color.stroke_width(2)).into_dyn(),
        });
    }
    if with_legend {
        legend(&mut chart, look)?;
    }
    Ok(())
}

/// Renders a scatter plot straight to `path` (a `.png`); see [`scatter_png`] for the
/// atomic version.
pub fn draw_scatter(path: &Path, series: &[Series], cfg: &ScatterConfig) -> Result<()> {
    let bounds =
        view(series).ok_or_else(|| invalid!("a scatter plot needs at least one finite point"))?;
    let text = Labels {
        title: &cfg.title,
        x: &cfg.x_label,
        y: &cfg.y_label,
    };
    render_file(path, (cfg.width, cfg.height), |area| {
        draw_scatter_on(area, &text, series, bounds, Look::FULL, true)
    })
}

/// Renders a scatter plot to `dest` (a `.png`), atomically.
pub fn scatter_png(dest: impl AsRef<Path>, series: &[Series], cfg: &ScatterConfig) -> Result<()> {
    crate::io::write_atomic(dest, |tmp| draw_scatter(tmp, series, cfg))
}

/// The exponential moving average of the `y` values of `points`, bias-corrected (as in
/// Adam), so the curve starts at the first value rather than at zero:
/// `m_t = (1 - alpha) m_{t-1} + alpha y_t`, output `m_t / (1 - (1 - alpha)^t)`.
///
/// `alpha` in `(0, 1]` is the weight of each new value: `1` returns the input, `0.01`
/// averages over roughly the last 100 points. It is clamped into that interval (NaN
/// means `1`). Points with a non-finite coordinate are left out (a NaN step does not
/// poison the rest); the `x` values of the others are kept.
pub fn smooth(points: &[(f64, f64)], alpha: f64) -> Vec<(f64, f64)> {
    let a = if alpha.is_nan() {
        1.0
    } else {
        alpha.clamp(f64::MIN_POSITIVE, 1.0)
    };
    // `w` is `1 - (1 - a)^t`, the weight the zero start has lost, kept by recursion.
    let (mut m, mut w) = (0.0, 0.0);
    points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|&(x, y)| {
            m = (1.0 - a) * m + a * y;
            w = (1.0 - a) * w + a;
            (x, m / w)
        })
        .collect()
}

/// The drawable part of a line plot: each series' kept points and the axis ranges.
struct LinePlan<'a> {
    series: Vec<(&'a LineSeries, Vec<(f64, f64)>)>,
    x: (f64, f64),
    y: (f64, f64),
    log_y: bool,
}

/// Keeps the plottable points of `series` and sets the axis ranges; `what` names the plot
/// in the error when nothing is left to draw.
fn plan_lines<'a>(what: &str, series: &'a [LineSeries], log_y: bool) -> Result<LinePlan<'a>> {
    let keep = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let series: Vec<_> = series
        .iter()
        .map(|s| (s, s.points.iter().copied().filter(keep).collect::<Vec<_>>()))
        .collect();
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let span = |v: &mut dyn Iterator<Item = f64>| {
        v.fold(None, |r: Option<(f64, f64)>, v| {
            Some(r.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        })
    };
    let (Some((x0, x1)), Some((y0, y1))) =
        (span(&mut all().map(|p| p.0)), span(&mut all().map(|p| p.1)))
    else {
        return Err(invalid!(
            "{what}: no points to plot (every point is missing or non-finite{})",
            if log_y {
                ", or not positive on the log-scale y axis"
            } else {
                ""
            }
        ));
    };
    // A little room around the data; a flat extent (equal up to rounding) gets a fixed one.
    let pad = |lo: f64, hi: f64, flat: f64| {
        let wide = hi - lo > 1e-9 * lo.abs().max(hi.abs());
        let d = if wide { 0.05 * (hi - lo) } else { flat };
        (lo - d, hi + d)
    };
    let x = pad(x0, x1, 0.5 * x0.abs().max(1.0));
    let y = if log_y {
        let (l0, l1) = pad(y0.log10(), y1.log10(), 0.3);
        (10f64.powf(l0).max(f64::MIN_POSITIVE), 10f64.powf(l1))
    } else {
        pad(y0, y1, 0.5 * y0.abs().max(1e-3))
    };
    if !(x.1 - x.0).is_finite() || !(y.1 - y.0).is_finite() || y.1 <= y.0 {
        return Err(invalid!("{what}: the values span too wide a range to plot"));
    }
    Ok(LinePlan {
        series,
        x,
        y,
        log_y,
    })
}

/// Draws a planned line chart.
fn draw_lines_on(area: &Area, text: &Labels, plan: &LinePlan, look: Look) -> Drawn {
    let (y0, y1) = plan.y;
    if plan.log_y {
        // plotters labels a log axis only from its first power of ten up; label it here.
        let (labelled, grid) = log_ticks(y0, y1);
        let y = (y0..y1).log_scale().with_key_points(labelled);
        lines_with_y(area, text, plan, look, y.with_light_points(grid))
    } else {
        lines_with_y(area, text, plan, look, y0..y1)
    }
}

/// [`draw_lines_on`] for one kind of y axis.
fn lines_with_y<Y>(area: &Area, text: &Labels, plan: &LinePlan, look: Look, y: Y) -> Drawn
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let (x0, x1) = plan.x;
    let mut chart = chart(area, text, look, x0..x1, y)?;
    let mut labelled = 0;
    for (s, points) in &plan.series {
        let (r, g, b) = s.color;
        let color = RGBColor(r, g, b);
        let style = color.stroke_width(look.line);
        // Thick polylines are drawn a segment at a time: plotters joins thick segments with
        // miters, which spike far past the data where a noisy curve zigzags.
        let drawn = match points.as_slice() {
            [p] => chart.draw_series([Circle::new(*p, look.line + 1, color.filled())])?,
            _ if look.line > 1 => chart.draw_series(
                points
                    .windows(2)
                    .map(|w| PathElement::new([w[0], w[1]], style)),
            )?,
            _ => chart.draw_series([PathElement::new(points.as_slice(), style)])?,
        };
        if !s.label.is_empty() {
            labelled += 1;
            drawn.label(s.label.as_str()).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
            });
        }
    }
    // One curve needs no legend: the caption and the axis label name it.
    if labelled > 1 {
        legend(&mut chart, look)?;
    }
    Ok(())
}

/// Renders a line plot (e.g. training loss per step, raw and [`smooth`]ed) to `dest` (a
/// `.png`, 800 × 600), atomically. The series are drawn in order, so put the one that
/// should stay visible (the trend) last. Points with a non-finite coordinate, and with
/// `log_y` those with `y <= 0`, are skipped; an error if none is left.
pub fn line_png(
    dest: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[LineSeries],
    log_y: bool,
) -> Result<()> {
    let what = if title.is_empty() {
        "line plot".to_string()
    } else {
        format!("line plot '{title}'")
    };
    let plan = plan_lines(&what, series, log_y)?;
    let text = Labels {
        title,
        x: x_label,
        y: y_label,
    };
    crate::io::write_atomic(dest, |tmp| {
        render_file(tmp, (800, 600), |area| {
            draw_lines_on(area, &text, &plan, Look::FULL)
        })
    })
}

/// A validated panel, ready to draw.
enum PanelPlan<'a> {
    Scatter {
        title: &'a str,
        series: &'a [Series],
        bounds: Bounds,
    },
    Lines {
        text: Labels<'a>,
        plan: LinePlan<'a>,
    },
}

/// Validates a grid and computes its panels' ranges; returns the plans and the image size.
fn plan_panels(
    panels: &[Panel],
    cols: usize,
    panel_px: u32,
) -> Result<(Vec<PanelPlan<'_>>, (u32, u32))> {
    if panels.is_empty() || cols == 0 {
        return Err(invalid!(
            "a panel grid needs at least one panel and one column, got {} panels in {cols} columns",
            panels.len()
        ));
    }
    if panel_px < 64 {
        return Err(invalid!(
            "a panel must be at least 64 pixels wide, got {panel_px}"
        ));
    }
    let rows = panels.len().div_ceil(cols);
    let side = |n: usize| {
        u32::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(panel_px))
            .filter(|&px| px <= 1 << 15)
    };
    let (Some(width), Some(height)) = (side(cols), side(rows)) else {
        return Err(invalid!(
            "a panel grid of {cols} × {rows} panels of {panel_px} px exceeds 32768 px a side"
        ));
    };
    // The scatter panels without a range of their own share one.
    let shared = panels.iter().filter_map(|p| match p {
        Panel::Scatter {
            series,
            range: None,
            ..
        } => Some(series.iter()),
        _ => None,
    });
    let shared = view(shared.flatten());
    let plans = panels
        .iter()
        .map(|p| match p {
            Panel::Scatter { title, series, range } => {
                let what = format!("scatter panel '{title}'");
                let bounds = match range {
                    Some(b) => check_bounds(&what, *b)?,
                    None => shared.ok_or_else(|| {
                        invalid!("{what}: the scatter panels have no finite point to set their common range")
                    })?,
                };
                Ok(PanelPlan::Scatter { title, series, bounds })
            }
            Panel::Lines { title, x_label, y_label, series, log_y } => Ok(PanelPlan::Lines {
                text: Labels { title, x: x_label, y: y_label },
                plan: plan_lines(&format!("line panel '{title}'"), series, *log_y)?,
            }),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((plans, (width, height)))
}

/// Draws the planned panels into a grid of `cols` columns filling `root`.
fn draw_panels(root: &Area, plans: &[PanelPlan], cols: usize, look: Look) -> Drawn {
    let rows = plans.len().div_ceil(cols);
    for (cell, plan) in root.split_evenly((rows, cols)).iter().zip(plans) {
        match plan {
            PanelPlan::Scatter {
                title,
                series,
                bounds,
            } => {
                let text = Labels {
                    title,
                    x: "",
                    y: "",
                };
                draw_scatter_on(cell, &text, series, *bounds, look, series.len() > 1)?
            }
            PanelPlan::Lines { text, plan } => draw_lines_on(cell, text, plan, look)?,
        }
    }
    Ok(())
}

/// Renders `panels` as one PNG at `dest`, atomically: a grid of `cols` columns (filled row
/// by row) of `panel_px`-square panels, so the image is `cols * panel_px` wide and
/// `ceil(panels.len() / cols) * panel_px` high. Scatter panels without a range share one
/// square range (see [`Panel::Scatter`]); dots are small (radius 1 px) and translucent,
/// so clouds of thousands of points keep their structure. Errors on an empty grid, `cols == 0`,
/// `panel_px < 64`, a side over 32768 px, a line panel with nothing to plot, or scatter
/// panels with no finite point to set the shared range from (a scatter panel whose own
/// points are all non-finite is drawn empty).
pub fn panels_png(
    dest: impl AsRef<Path>,
    panels: &[Panel],
    cols: usize,
    panel_px: u32,
) -> Result<()> {
    let (plans, size) = plan_panels(panels, cols, panel_px)?;
    crate::io::write_atomic(dest, |tmp| {
        render_file(tmp, size, |root| {
            draw_panels(root, &plans, cols, Look::panel(panel_px))
        })
    })
}

/// The image [`panels_png`] writes, as `(width, height, pixels)` with the pixels as RGB
/// bytes, row-major, 3 per pixel (white background), for embedding elsewhere or checking.
pub fn panels_rgb(panels: &[Panel], cols: usize, panel_px: u32) -> Result<(u32, u32, Vec<u8>)> {
    let (plans, size) = plan_panels(panels, cols, panel_px)?;
    let pixels = render_rgb(size, |root| {
        draw_panels(root, &plans, cols, Look::panel(panel_px))
    })?;
    Ok((size.0, size.1, pixels))
}
