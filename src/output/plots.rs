//! Figures, drawn once and written as both SVG and PNG.
//!
//! A [`Figure`] is plain data (what to draw); [`render_svg`] and [`render_png`] draw it with
//! plotters. PNG text uses the DejaVu Sans font bundled in `assets/`, so figures look the same
//! on a machine without desktop fonts.

use crate::analysis::theory::Phase;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::Once;

/// One panel of arrows from the origin (features in a 2-D hidden space).
#[derive(Clone, Debug)]
pub struct ArrowPanel {
    /// Panel title.
    pub title: String,
    /// One 2-D vector per feature.
    pub vectors: Vec<[f64; 2]>,
    /// Colour value per feature in [0, 1] (importance relative to the largest).
    pub shade: Vec<f64>,
}

/// One panel of feature-norm bars coloured by interference.
#[derive(Clone, Debug)]
pub struct BarPanel {
    /// Panel title.
    pub title: String,
    /// ‖W_i‖ per feature.
    pub norms: Vec<f64>,
    /// Σ_{j≠i}(Ŵ_i·W_j)² per feature (colour; clamped to [0, 1]).
    pub interference: Vec<f64>,
}

/// One panel of WᵀW with the bias as an extra column.
#[derive(Clone, Debug)]
pub struct GramPanel {
    /// Panel title.
    pub title: String,
    /// n x n, row-major.
    pub gram: Vec<f64>,
    /// Bias per feature (drawn as the last column), if known.
    pub bias: Option<Vec<f64>>,
    /// Feature indices where a new group (e.g. a correlated set) starts, drawn as lines
    /// across the matrix; empty for none.
    pub boundaries: Vec<usize>,
}

/// One panel of per-neuron stacked bars: each neuron's incoming weights, one block per
/// feature, positive weights stacked up from the axis and negative ones down.
#[derive(Clone, Debug)]
pub struct NeuronPanel {
    /// Panel title.
    pub title: String,
    /// Incoming weights per neuron, in drawing order: `weights[k][i]` is feature i's weight
    /// on the k-th neuron drawn.
    pub weights: Vec<Vec<f64>>,
    /// Label under each neuron's bar (its index in the model).
    pub labels: Vec<String>,
    /// Colour value per feature in [0, 1] (e.g. importance relative to the largest).
    pub shade: Vec<f64>,
}

/// One panel of a matrix heatmap (e.g. W₁ of the |x| model), coloured on [−scale, scale].
#[derive(Clone, Debug)]
pub struct MatrixPanel {
    /// Panel title.
    pub title: String,
    /// Number of rows.
    pub rows: usize,
    /// Row-major values, `rows × cols`.
    pub values: Vec<f64>,
    /// The value drawn in full colour (values beyond it are clamped).
    pub scale: f64,
    /// What the rows are (left axis label).
    pub row_label: String,
    /// What the columns are (bottom axis label).
    pub col_label: String,
    /// Names of the rows, top to bottom (empty: their indices).
    pub row_names: Vec<String>,
    /// Names of the columns, left to right (empty: their indices).
    pub col_names: Vec<String>,
}

/// One phase diagram: a grid of cells over two log axes, coloured by phase.
#[derive(Clone, Debug)]
pub struct PhasePanel {
    /// Panel title.
    pub title: String,
    /// Cell centres on the x axis (log-spaced, increasing).
    pub xs: Vec<f64>,
    /// Cell centres on the y axis (log-spaced, increasing).
    pub ys: Vec<f64>,
    /// Phases, row-major: `cells[iy * xs.len() + ix]`.
    pub cells: Vec<Phase>,
}

/// A horizontal reference line with its label (e.g. 1/2 for antipodal pairs).
#[derive(Clone, Debug)]
pub struct Reference {
    /// y value.
    pub y: f64,
    /// Label drawn at the right end.
    pub label: String,
}

/// How a [`Series`] is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesStyle {
    /// Small translucent dots (e.g. every restart).
    Dots,
    /// A line with markers (e.g. the best restart per point).
    Line,
    /// A thin line without markers, for many long series (e.g. a value over training).
    Trace,
}

/// One labelled set of points of a [`Figure::Chart`].
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label (empty: not in the legend).
    pub label: String,
    /// (x, y) points; points a log axis cannot show (≤ 0, not finite) are skipped.
    pub points: Vec<(f64, f64)>,
    /// Dots or line.
    pub style: SeriesStyle,
    /// Index into the chart palette: series with the same colour belong together.
    pub colour: usize,
}

/// A labelled vertical line of a [`Figure::Chart`] (e.g. a measured crossover).
#[derive(Clone, Debug)]
pub struct Mark {
    /// x value.
    pub x: f64,
    /// Label drawn at the top.
    pub label: String,
}

/// One bar of a stacked bar chart: counts per category.
#[derive(Clone, Debug)]
pub struct StackedBar {
    /// Label under the bar.
    pub label: String,
    /// One count per category, in the order of the chart's categories.
    pub counts: Vec<f64>,
}

/// What to draw.
#[derive(Clone, Debug)]
pub enum Figure {
    /// Points (and optionally a line) against a log x axis, with labelled horizontal
    /// reference lines: D* or D_i against 1/(1−S).
    LogX {
        /// Title above the plot.
        title: String,
        /// x axis label.
        x_label: String,
        /// y axis label.
        y_label: String,
        /// Scatter points (x, y), drawn small.
        points: Vec<(f64, f64)>,
        /// A line through (x, y) with markers, drawn over the points (empty for none).
        line: Vec<(f64, f64)>,
        /// Label of the line in the legend.
        line_label: String,
        /// Horizontal reference lines.
        references: Vec<Reference>,
    },
    /// Stacked bars: how many features sit in each kind of structure, one bar per instance.
    StackedBars {
        /// Title above the plot.
        title: String,
        /// y axis label (what is counted).
        y_label: String,
        /// Category names, bottom to top.
        categories: Vec<String>,
        /// Bars, left to right.
        bars: Vec<StackedBar>,
    },
    /// Phase diagrams side by side (e.g. empirical and theoretical).
    PhaseDiagrams {
        /// Panels, left to right.
        panels: Vec<PhasePanel>,
        /// x axis label.
        x_label: String,
        /// y axis label.
        y_label: String,
    },
    /// Feature directions in the plane (m = 2), one panel per instance.
    FeatureArrows {
        /// Panels, in order.
        panels: Vec<ArrowPanel>,
        /// Panels per row.
        columns: usize,
    },
    /// Norm bars coloured by interference, one panel per instance.
    NormBars {
        /// Panels, in order.
        panels: Vec<BarPanel>,
        /// Panels per row.
        columns: usize,
    },
    /// WᵀW heatmaps (and b), one panel per instance.
    GramHeatmaps {
        /// Panels, in order.
        panels: Vec<GramPanel>,
        /// Panels per row.
        columns: usize,
    },
    /// Per-neuron stacked bars of incoming weights, one panel per instance.
    NeuronBars {
        /// Panels, in order.
        panels: Vec<NeuronPanel>,
        /// Panels per row.
        columns: usize,
    },
    /// Matrix heatmaps with the values written in small matrices, one panel each.
    Matrices {
        /// Panels, in order.
        panels: Vec<MatrixPanel>,
        /// Panels per row.
        columns: usize,
    },
    /// Labelled series of points or lines on linear or log axes, with vertical marks.
    Chart {
        /// Title above the plot.
        title: String,
        /// x axis label.
        x_label: String,
        /// y axis label.
        y_label: String,
        /// Log-scaled x axis.
        log_x: bool,
        /// Log-scaled y axis.
        log_y: bool,
        /// Series, drawn in order.
        series: Vec<Series>,
        /// Vertical lines.
        marks: Vec<Mark>,
    },
    /// Training loss against step, log scale, one line per instance.
    LossCurves {
        /// x values.
        steps: Vec<u64>,
        /// (label, y values) per line.
        series: Vec<(String, Vec<f64>)>,
    },
}

impl Figure {
    /// Pixel size of the figure.
    pub fn size(&self) -> (u32, u32) {
        let grid = |count: usize, columns: usize, w: u32, h: u32| {
            let cols = columns.clamp(1, count.max(1));
            let rows = count.div_ceil(cols).max(1);
            (w * cols as u32, h * rows as u32)
        };
        match self {
            Figure::FeatureArrows { panels, columns } => grid(panels.len(), *columns, 240, 260),
            Figure::NormBars { panels, columns } => grid(panels.len(), *columns, 320, 240),
            Figure::GramHeatmaps { panels, columns } => grid(panels.len(), *columns, 280, 300),
            Figure::NeuronBars { panels, columns } => {
                let neurons = panels.iter().map(|p| p.weights.len()).max().unwrap_or(1);
                let width = (120 + 14 * neurons as u32).clamp(260, 760);
                grid(panels.len(), *columns, width, 280)
            }
            Figure::Matrices { panels, columns } => grid(panels.len(), *columns, 340, 260),
            Figure::LossCurves { .. } | Figure::LogX { .. } | Figure::Chart { .. } => (800, 480),
            Figure::StackedBars { bars, .. } => ((300 + 40 * bars.len() as u32).max(700), 480),
            Figure::PhaseDiagrams { panels, .. } => (420 * panels.len().max(1) as u32, 440),
        }
    }
}

/// Perceptually uniform dark-blue → yellow scale (viridis anchor colours), `t` in [0, 1].
pub fn viridis(t: f64) -> RGBColor {
    const ANCHORS: [(u8, u8, u8); 5] = [
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ];
    interpolate(&ANCHORS, t)
}

/// Diverging blue → light grey → red scale for values in [-1, 1].
pub fn diverging(v: f64) -> RGBColor {
    const ANCHORS: [(u8, u8, u8); 3] = [(59, 76, 192), (221, 221, 221), (180, 4, 38)];
    interpolate(&ANCHORS, (v.clamp(-1.0, 1.0) + 1.0) / 2.0)
}

fn interpolate(anchors: &[(u8, u8, u8)], t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (anchors.len() - 1) as f64;
    let k = (x.floor() as usize).min(anchors.len() - 2);
    let f = x - k as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (anchors[k], anchors[k + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

static FONT: Once = Once::new();

fn ensure_font() {
    FONT.call_once(|| {
        // The bundled font is a valid TTF; a failure here would be a packaging bug.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSans.ttf"),
        );
    });
}

/// Draw `figure` as an SVG document.
pub fn render_svg(figure: &Figure) -> anyhow::Result<String> {
    ensure_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, figure.size()).into_drawing_area();
        draw(figure, &root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Draw `figure` into a PNG file at `path`.
pub fn render_png(figure: &Figure, path: &Path) -> anyhow::Result<()> {
    ensure_font();
    let root = BitMapBackend::new(path, figure.size()).into_drawing_area();
    draw(figure, &root)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing failed: {e:?}")
}

fn grid<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    count: usize,
    columns: usize,
) -> Vec<DrawingArea<DB, Shift>> {
    let cols = columns.clamp(1, count.max(1));
    let rows = count.div_ceil(cols).max(1);
    root.split_evenly((rows, cols))
}

fn draw<DB: DrawingBackend>(figure: &Figure, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(plot_error)?;
    match figure {
        Figure::FeatureArrows { panels, columns } => {
            for (area, p) in grid(root, panels.len(), *columns).iter().zip(panels) {
                draw_arrows(area, p)?;
            }
        }
        Figure::NormBars { panels, columns } => {
            for (area, p) in grid(root, panels.len(), *columns).iter().zip(panels) {
                draw_bars(area, p)?;
            }
        }
        Figure::GramHeatmaps { panels, columns } => {
            for (area, p) in grid(root, panels.len(), *columns).iter().zip(panels) {
                draw_gram(area, p)?;
            }
        }
        Figure::NeuronBars { panels, columns } => {
            for (area, p) in grid(root, panels.len(), *columns).iter().zip(panels) {
                draw_neurons(area, p)?;
            }
        }
        Figure::Matrices { panels, columns } => {
            for (area, p) in grid(root, panels.len(), *columns).iter().zip(panels) {
                draw_matrix(area, p)?;
            }
        }
        Figure::LossCurves { steps, series } => draw_loss(root, steps, series)?,
        Figure::LogX {
            title,
            x_label,
            y_label,
            points,
            line,
            line_label,
            references,
        } => draw_log_x(
            root,
            (title, x_label, y_label),
            points,
            (line, line_label),
            references,
        )?,
        Figure::StackedBars {
            title,
            y_label,
            categories,
            bars,
        } => draw_stacked(root, (title, y_label), categories, bars)?,
        Figure::Chart {
            title,
            x_label,
            y_label,
            log_x,
            log_y,
            series,
            marks,
        } => draw_chart(
            root,
            (title, x_label, y_label),
            (*log_x, *log_y),
            series,
            marks,
        )?,
        Figure::PhaseDiagrams {
            panels,
            x_label,
            y_label,
        } => {
            for (area, p) in grid(root, panels.len(), panels.len()).iter().zip(panels) {
                draw_phase(area, p, x_label, y_label)?;
            }
        }
    }
    Ok(())
}

fn draw_arrows<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &ArrowPanel,
) -> anyhow::Result<()> {
    let lim = p
        .vectors
        .iter()
        .map(|v| v[0].abs().max(v[1].abs()))
        .fold(1.5f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(22)
        .y_label_area_size(30)
        .build_cartesian_2d(-lim..lim, -lim..lim)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_labels(5)
        .y_labels(5)
        .light_line_style(WHITE)
        .label_style(("sans-serif", 10))
        .draw()
        .map_err(plot_error)?;
    for (v, &s) in p.vectors.iter().zip(&p.shade) {
        let color = viridis(s);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (v[0], v[1])],
                color.stroke_width(2),
            )))
            .map_err(plot_error)?;
        chart
            .draw_series(std::iter::once(Circle::new(
                (v[0], v[1]),
                4,
                color.filled(),
            )))
            .map_err(plot_error)?;
    }
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &BarPanel,
) -> anyhow::Result<()> {
    let n = p.norms.len();
    let top = p.norms.iter().cloned().fold(1.2f64, f64::max) * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 13))
        .margin(8)
        .x_label_area_size(22)
        .y_label_area_size(34)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("feature")
        .y_desc("‖W_i‖")
        .x_labels(n.min(10))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 10))
        .axis_desc_style(("sans-serif", 11))
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(
            p.norms
                .iter()
                .zip(&p.interference)
                .enumerate()
                .map(|(i, (&h, &s))| {
                    Rectangle::new(
                        [(i as f64 - 0.4, 0.0), (i as f64 + 0.4, h)],
                        viridis(s).filled(),
                    )
                }),
        )
        .map_err(plot_error)?;
    Ok(())
}

fn draw_gram<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &GramPanel,
) -> anyhow::Result<()> {
    let n = (p.gram.len() as f64).sqrt().round() as usize;
    let cols = n + usize::from(p.bias.is_some()) * 2;
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 13))
        .margin(8)
        .build_cartesian_2d(0f64..cols as f64, n as f64..0f64)
        .map_err(plot_error)?;
    chart
        .draw_series((0..n * n).map(|k| {
            let (i, j) = (k / n, k % n);
            Rectangle::new(
                [(j as f64, i as f64), (j as f64 + 1.0, i as f64 + 1.0)],
                diverging(p.gram[k]).filled(),
            )
        }))
        .map_err(plot_error)?;
    // Group boundaries: a horizontal and a vertical line across the n x n block each.
    let edge = n as f64;
    for &k in p.boundaries.iter().filter(|&&k| k > 0 && k < n) {
        let at = k as f64;
        chart
            .draw_series([
                PathElement::new(vec![(0.0, at), (edge, at)], BLACK.stroke_width(2)),
                PathElement::new(vec![(at, 0.0), (at, edge)], BLACK.stroke_width(2)),
            ])
            .map_err(plot_error)?;
    }
    if let Some(b) = &p.bias {
        let x = (n + 1) as f64;
        chart
            .draw_series(b.iter().enumerate().map(|(i, &v)| {
                Rectangle::new(
                    [(x, i as f64), (x + 1.0, i as f64 + 1.0)],
                    diverging(v).filled(),
                )
            }))
            .map_err(plot_error)?;
    }
    Ok(())
}

fn draw_neurons<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &NeuronPanel,
) -> anyhow::Result<()> {
    let k = p.weights.len().max(1);
    let up = |w: &[f64]| w.iter().filter(|v| **v > 0.0).sum::<f64>();
    let down = |w: &[f64]| w.iter().filter(|v| **v < 0.0).map(|v| -v).sum::<f64>();
    let top = p.weights.iter().map(|w| up(w)).fold(0.5f64, f64::max) * 1.08;
    let bottom = p.weights.iter().map(|w| down(w)).fold(0.0f64, f64::max) * 1.08;
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 13))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(38)
        .build_cartesian_2d(-0.5..k as f64 - 0.5, -bottom..top)
        .map_err(plot_error)?;
    // Bar j is centred on x = j, so whole-number ticks carry the neuron labels.
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(0)
        .x_desc("neuron")
        .y_desc("weight")
        .x_labels(k.min(40))
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() > 1e-6 || *x < 0.0 {
                return String::new();
            }
            p.labels
                .get(x.round() as usize)
                .cloned()
                .unwrap_or_default()
        })
        .label_style(("sans-serif", 10))
        .axis_desc_style(("sans-serif", 11))
        .draw()
        .map_err(plot_error)?;
    let mut blocks = Vec::new();
    for (j, w) in p.weights.iter().enumerate() {
        let (mut above, mut below) = (0.0f64, 0.0f64);
        let x = j as f64 - 0.5;
        for (i, &v) in w.iter().enumerate() {
            let colour = viridis(p.shade.get(i).copied().unwrap_or(0.0));
            let (from, to) = if v >= 0.0 {
                above += v;
                (above - v, above)
            } else {
                below += v;
                (below - v, below)
            };
            if from != to {
                blocks.push(Rectangle::new(
                    [(x + 0.12, from), (x + 0.88, to)],
                    colour.filled(),
                ));
            }
        }
    }
    chart.draw_series(blocks).map_err(plot_error)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(-0.5, 0.0), (k as f64 - 0.5, 0.0)],
            BLACK.stroke_width(1),
        )))
        .map_err(plot_error)?;
    Ok(())
}

fn draw_matrix<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &MatrixPanel,
) -> anyhow::Result<()> {
    let rows = p.rows.max(1);
    let cols = (p.values.len() / rows).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 13))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(if p.row_names.is_empty() { 30 } else { 44 })
        .build_cartesian_2d(-0.5..cols as f64 - 0.5, rows as f64 - 0.5..-0.5)
        .map_err(plot_error)?;
    // Cell (i, j) is centred on (j, i), so whole-number ticks name rows and columns.
    let tick = |names: &[String], v: f64| {
        if (v - v.round()).abs() >= 1e-6 || v < -0.5 {
            return String::new();
        }
        let i = v.round() as usize;
        match names.get(i) {
            Some(name) => name.clone(),
            None if names.is_empty() => format!("{i}"),
            None => String::new(),
        }
    };
    let col_tick = |v: &f64| tick(&p.col_names, *v);
    let row_tick = |v: &f64| tick(&p.row_names, *v);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(p.col_label.as_str())
        .y_desc(p.row_label.as_str())
        .x_labels(cols.min(20))
        .y_labels(rows.min(20))
        .x_label_formatter(&col_tick)
        .y_label_formatter(&row_tick)
        .label_style(("sans-serif", 10))
        .axis_desc_style(("sans-serif", 11))
        .draw()
        .map_err(plot_error)?;
    let scale = if p.scale > 0.0 { p.scale } else { 1.0 };
    chart
        .draw_series(p.values.iter().enumerate().map(|(k, &v)| {
            let (i, j) = ((k / cols) as f64, (k % cols) as f64);
            Rectangle::new(
                [(j - 0.5, i - 0.5), (j + 0.5, i + 0.5)],
                diverging(v / scale).filled(),
            )
        }))
        .map_err(plot_error)?;
    // Small matrices get their values written in the cells.
    if p.values.len() <= 64 {
        let font = TextStyle::from(("sans-serif", 11).into_font())
            .pos(Pos::new(HPos::Center, VPos::Center));
        chart
            .draw_series(p.values.iter().enumerate().map(|(k, &v)| {
                let (i, j) = ((k / cols) as f64, (k % cols) as f64);
                Text::new(format!("{v:.2}"), (j, i), font.clone())
            }))
            .map_err(plot_error)?;
    }
    Ok(())
}

/// Colour of a phase (grey: not represented, blue: dedicated, red: superposition).
pub fn phase_colour(p: Phase) -> RGBColor {
    match p {
        Phase::NotRepresented => RGBColor(221, 221, 221),
        Phase::Dedicated => RGBColor(34, 85, 187),
        Phase::Superposition => RGBColor(221, 68, 68),
    }
}

/// Edges of log-spaced cells around their centres (geometric midpoints).
fn log_edges(centres: &[f64]) -> Vec<f64> {
    let k = centres.len();
    if k == 1 {
        return vec![centres[0] / 1.5, centres[0] * 1.5];
    }
    let mut edges = Vec::with_capacity(k + 1);
    edges.push(centres[0] * (centres[0] / centres[1]).sqrt());
    for w in centres.windows(2) {
        edges.push((w[0] * w[1]).sqrt());
    }
    edges.push(centres[k - 1] * (centres[k - 1] / centres[k - 2]).sqrt());
    edges
}

fn draw_phase<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &PhasePanel,
    x_label: &str,
    y_label: &str,
) -> anyhow::Result<()> {
    let (xe, ye) = (log_edges(&p.xs), log_edges(&p.ys));
    let (x0, x1) = (xe[0], xe[xe.len() - 1]);
    let (y0, y1) = (ye[0], ye[ye.len() - 1]);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 14))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(plot_error)?;
    chart
        .draw_series(p.cells.iter().enumerate().map(|(k, &phase)| {
            let (iy, ix) = (k / p.xs.len(), k % p.xs.len());
            Rectangle::new(
                [(xe[ix], ye[iy]), (xe[ix + 1], ye[iy + 1])],
                phase_colour(phase).filled(),
            )
        }))
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|v| format!("{v:.2}"))
        .y_label_formatter(&|v| format!("{v:.2}"))
        .label_style(("sans-serif", 11))
        .axis_desc_style(("sans-serif", 12))
        .draw()
        .map_err(plot_error)?;
    for phase in Phase::ALL {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(plot_error)?
            .label(phase.label())
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], phase_colour(phase).filled())
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 11))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn draw_loss<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    steps: &[u64],
    series: &[(String, Vec<f64>)],
) -> anyhow::Result<()> {
    let positive = series
        .iter()
        .flat_map(|s| s.1.iter().cloned())
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = positive.fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo * 0.8, hi * 1.25)
    } else {
        (1e-6, 1.0)
    };
    let last = steps.last().copied().unwrap_or(1).max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(
            "training loss (mean over batch and features, importance-weighted)",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .right_y_label_area_size(0)
        .build_cartesian_2d(0f64..last, (lo..hi).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(plot_error)?;
    let k = series.len().max(2) - 1;
    for (idx, (label, ys)) in series.iter().enumerate() {
        let color = viridis(idx as f64 / k as f64);
        chart
            .draw_series(LineSeries::new(
                steps
                    .iter()
                    .zip(ys)
                    .filter(|(_, y)| y.is_finite() && **y > 0.0)
                    .map(|(&s, &y)| (s as f64, y)),
                color.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    if series.len() <= 20 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 10))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}

fn draw_log_x<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (title, x_label, y_label): (&str, &str, &str),
    points: &[(f64, f64)],
    (line, line_label): (&[(f64, f64)], &str),
    references: &[Reference],
) -> anyhow::Result<()> {
    let xs = points.iter().chain(line).map(|p| p.0).filter(|x| *x > 0.0);
    let (lo, hi) = xs.fold((f64::INFINITY, 0f64), |(a, b), x| (a.min(x), b.max(x)));
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo / 1.2, hi * 1.2)
    } else {
        (0.8, 10.0)
    };
    let top = points
        .iter()
        .chain(line)
        .map(|p| p.1)
        .filter(|y| y.is_finite())
        .fold(1.05f64, f64::max)
        .min(1.6);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .right_y_label_area_size(40)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .light_line_style(WHITE)
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(plot_error)?;
    let grey = RGBColor(150, 150, 150);
    for r in references {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(lo, r.y), (hi, r.y)],
                grey.stroke_width(1),
            )))
            .map_err(plot_error)?;
        chart
            .draw_series(std::iter::once(Text::new(
                r.label.clone(),
                (hi / 1.15, r.y + 0.01 * top),
                ("sans-serif", 11).into_font().color(&grey),
            )))
            .map_err(plot_error)?;
    }
    let dot = RGBColor(33, 145, 140);
    chart
        .draw_series(
            points
                .iter()
                .filter(|p| p.0 > 0.0 && p.1.is_finite())
                .map(|&p| Circle::new(p, 2, dot.mix(0.5).filled())),
        )
        .map_err(plot_error)?;
    if !line.is_empty() {
        let ink = RGBColor(68, 1, 84);
        chart
            .draw_series(LineSeries::new(line.iter().copied(), ink.stroke_width(2)))
            .map_err(plot_error)?
            .label(line_label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], ink.stroke_width(2)));
        chart
            .draw_series(line.iter().map(|&p| Circle::new(p, 3, ink.filled())))
            .map_err(plot_error)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}

/// Colours of [`Figure::Chart`] series (distinguishable, print- and colour-blind-friendly).
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
];

/// The range an axis shows: the data's, padded, and positive on a log axis.
fn axis_range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return if log { (0.1, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo / 2.0, hi * 2.0)
        };
        (lo / 1.15, hi * 1.15)
    } else {
        let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
        (lo - pad, hi + pad)
    }
}

fn draw_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    labels: (&str, &str, &str),
    (log_x, log_y): (bool, bool),
    series: &[Series],
    marks: &[Mark],
) -> anyhow::Result<()> {
    let points = || series.iter().flat_map(|s| s.points.iter().copied());
    let (x0, x1) = axis_range(
        points().map(|p| p.0).chain(marks.iter().map(|m| m.x)),
        log_x,
    );
    let (y0, y1) = axis_range(points().map(|p| p.1), log_y);
    let data = ChartData {
        labels,
        logs: (log_x, log_y),
        series,
        marks,
        ranges: ((x0, x1), (y0, y1)),
    };
    // plotters gives linear and log axes different types: one generic body, four axis kinds.
    let builder = || chart_builder(root, labels.0);
    match (log_x, log_y) {
        (false, false) => chart_body(builder().build_cartesian_2d(x0..x1, y0..y1), &data),
        (true, false) => chart_body(
            builder().build_cartesian_2d((x0..x1).log_scale(), y0..y1),
            &data,
        ),
        (false, true) => chart_body(
            builder().build_cartesian_2d(x0..x1, (y0..y1).log_scale()),
            &data,
        ),
        (true, true) => chart_body(
            builder().build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()),
            &data,
        ),
    }
}

/// What [`chart_body`] draws, whatever the axis types.
struct ChartData<'a> {
    labels: (&'a str, &'a str, &'a str),
    logs: (bool, bool),
    series: &'a [Series],
    marks: &'a [Mark],
    ranges: ((f64, f64), (f64, f64)),
}

/// A tick label with at most three significant digits ("0.3", not "0.30000000000000004").
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || !a.is_finite() {
        return format!("{v}");
    }
    if !(1e-2..1e4).contains(&a) {
        return format!("{v:.0e}");
    }
    let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn chart_builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64);
    b
}

fn chart_body<'a, DB, X, Y, E>(
    chart: Result<ChartContext<'a, DB, Cartesian2d<X, Y>>, E>,
    data: &ChartData<'_>,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    E: std::fmt::Debug,
{
    let ChartData {
        labels: (_, x_label, y_label),
        logs: (log_x, log_y),
        series,
        marks,
        ranges: (x_range, (y0, y1)),
    } = *data;
    let mut chart = chart.map_err(plot_error)?;
    let fmt = |v: &f64| tick_label(*v);
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(6)
        .y_labels(8)
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .light_line_style(WHITE)
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(plot_error)?;
    let shown = |p: &&(f64, f64)| {
        p.0.is_finite() && p.1.is_finite() && (!log_x || p.0 > 0.0) && (!log_y || p.1 > 0.0)
    };
    let grey = RGBColor(120, 120, 120);
    for m in marks
        .iter()
        .filter(|m| m.x.is_finite() && (!log_x || m.x > 0.0))
    {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(m.x, y0), (m.x, y1)],
                grey.stroke_width(1),
            )))
            .map_err(plot_error)?;
        chart
            .draw_series(std::iter::once(Text::new(
                m.label.clone(),
                (m.x, y1),
                ("sans-serif", 11).into_font().color(&grey),
            )))
            .map_err(plot_error)?;
    }
    for s in series {
        let colour = PALETTE[s.colour % PALETTE.len()];
        let points: Vec<(f64, f64)> = s.points.iter().filter(shown).copied().collect();
        let drawn = match s.style {
            SeriesStyle::Dots => chart
                .draw_series(
                    points
                        .iter()
                        .map(|&p| Circle::new(p, 2, colour.mix(0.45).filled())),
                )
                .map_err(plot_error)?,
            SeriesStyle::Line => {
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                    .map_err(plot_error)?;
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        colour.stroke_width(2),
                    ))
                    .map_err(plot_error)?
            }
            SeriesStyle::Trace => chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.mix(0.7).stroke_width(1),
                ))
                .map_err(plot_error)?,
        };
        if s.label.is_empty() {
            continue;
        }
        let style = s.style;
        drawn.label(s.label.clone()).legend(move |(x, y)| {
            let element: DynElement<'static, _, _> = match style {
                SeriesStyle::Dots => Circle::new((x + 8, y), 3, colour.filled()).into_dyn(),
                SeriesStyle::Line | SeriesStyle::Trace => {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)).into_dyn()
                }
            };
            element
        });
    }
    // The legend goes in the upper corner with fewer points under it.
    let fraction = |v: f64, (lo, hi): (f64, f64), log: bool| {
        if log {
            (v.ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (v - lo) / (hi - lo)
        }
    };
    let mut upper = [0usize; 2];
    for p in series.iter().flat_map(|s| s.points.iter()).filter(shown) {
        if fraction(p.1, (y0, y1), log_y) > 0.5 {
            upper[usize::from(fraction(p.0, x_range, log_x) >= 0.5)] += 1;
        }
    }
    let place = if upper[0] < upper[1] {
        SeriesLabelPosition::UpperLeft
    } else {
        SeriesLabelPosition::UpperRight
    };
    if series.iter().any(|s| !s.label.is_empty()) {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .position(place)
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}

/// Up to this many bars are labelled above the bar; more, along the axis.
const LABELS_ABOVE: usize = 8;

fn draw_stacked<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (title, y_label): (&str, &str),
    categories: &[String],
    bars: &[StackedBar],
) -> anyhow::Result<()> {
    let tallest = bars
        .iter()
        .map(|b| b.counts.iter().sum::<f64>())
        .fold(1.0f64, f64::max);
    // Room above the bars for the legend and the labels.
    let top = tallest * (1.1 + 0.06 * categories.len() as f64);
    let count = bars.len().max(1);
    let above = bars.len() <= LABELS_ABOVE;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..count as f64, 0f64..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(if above { 0 } else { count })
        .x_label_formatter(&|x| {
            let k = x.floor() as usize;
            bars.get(k).map(|b| b.label.clone()).unwrap_or_default()
        })
        .y_desc(y_label)
        .label_style(("sans-serif", 10))
        .draw()
        .map_err(plot_error)?;
    let k = categories.len().max(2) - 1;
    for (c, name) in categories.iter().enumerate() {
        let color = viridis(c as f64 / k as f64);
        let rects: Vec<Rectangle<(f64, f64)>> = bars
            .iter()
            .enumerate()
            .map(|(b, bar)| {
                let below: f64 = bar.counts[..c].iter().sum();
                let here = bar.counts.get(c).copied().unwrap_or(0.0);
                let x = b as f64;
                Rectangle::new(
                    [(x + 0.15, below), (x + 0.85, below + here)],
                    color.filled(),
                )
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(plot_error)?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    if above {
        let font = TextStyle::from(("sans-serif", 12).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for (b, bar) in bars.iter().enumerate() {
            let height: f64 = bar.counts.iter().sum();
            chart
                .draw_series(std::iter::once(Text::new(
                    bar.label.clone(),
                    (b as f64 + 0.5, height + 0.01 * top),
                    font.clone(),
                )))
                .map_err(plot_error)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 11))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(0.07), "0.07");
        assert_eq!(tick_label(2.0), "2");
        assert_eq!(tick_label(1234.6), "1235");
        assert_eq!(tick_label(0.0015), "2e-3");
        assert_eq!(tick_label(-0.25), "-0.25");
        assert_eq!(tick_label(0.0), "0");
    }

    #[test]
    fn colour_scales_hit_their_anchors() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(f64::NAN), RGBColor(68, 1, 84));
        assert_eq!(diverging(0.0), RGBColor(221, 221, 221));
        assert_eq!(diverging(-5.0), RGBColor(59, 76, 192));
    }

    #[test]
    fn every_figure_kind_renders_to_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let figures = [
            Figure::FeatureArrows {
                panels: vec![ArrowPanel {
                    title: "S = 0.9".into(),
                    vectors: vec![[1.0, 0.0], [0.0, -1.0]],
                    shade: vec![1.0, 0.0],
                }],
                columns: 5,
            },
            Figure::NormBars {
                panels: vec![BarPanel {
                    title: "bars".into(),
                    norms: vec![1.0, 0.5, 0.0],
                    interference: vec![0.0, 1.0, 0.2],
                }],
                columns: 2,
            },
            Figure::GramHeatmaps {
                panels: vec![GramPanel {
                    title: "WᵀW".into(),
                    gram: vec![1.0, -1.0, -1.0, 1.0],
                    bias: Some(vec![0.1, -0.1]),
                    boundaries: vec![1],
                }],
                columns: 2,
            },
            Figure::LossCurves {
                steps: vec![1, 2, 3],
                series: vec![("a".into(), vec![1.0, 0.5, 0.1])],
            },
            Figure::LogX {
                title: "D*".into(),
                x_label: "1/(1−S)".into(),
                y_label: "m/‖W‖²".into(),
                points: vec![(1.0, 1.0), (10.0, 0.5)],
                line: vec![(1.0, 1.0), (10.0, 0.5), (100.0, 0.3)],
                line_label: "D*".into(),
                references: vec![Reference {
                    y: 0.5,
                    label: "1/2".into(),
                }],
            },
            Figure::Chart {
                title: "loss per geometry".into(),
                x_label: "relative density".into(),
                y_label: "loss".into(),
                log_x: true,
                log_y: true,
                series: vec![
                    Series {
                        label: "every restart".into(),
                        points: vec![(0.5, 1e-3), (1.0, 2e-3), (-1.0, 0.0)],
                        style: SeriesStyle::Dots,
                        colour: 0,
                    },
                    Series {
                        label: "best".into(),
                        points: vec![(0.5, 1e-3), (1.0, 1.5e-3)],
                        style: SeriesStyle::Line,
                        colour: 1,
                    },
                ],
                marks: vec![Mark {
                    x: 0.7,
                    label: "crossover".into(),
                }],
            },
            Figure::Chart {
                title: "linear, empty series".into(),
                x_label: "x".into(),
                y_label: "y".into(),
                log_x: false,
                log_y: false,
                series: vec![Series {
                    label: "nothing".into(),
                    points: vec![],
                    style: SeriesStyle::Line,
                    colour: 7,
                }],
                marks: vec![],
            },
            Figure::StackedBars {
                title: "structures".into(),
                y_label: "features".into(),
                categories: vec!["digon".into(), "pentagon".into()],
                bars: vec![StackedBar {
                    label: "S=0.9".into(),
                    counts: vec![20.0, 5.0],
                }],
            },
            Figure::NeuronBars {
                panels: vec![NeuronPanel {
                    title: "neurons".into(),
                    weights: vec![vec![1.0, -0.5, 0.0], vec![0.7, 0.7, -1.2]],
                    labels: vec!["3".into(), "0".into()],
                    shade: vec![1.0, 0.5, 0.0],
                }],
                columns: 2,
            },
            Figure::Matrices {
                panels: vec![MatrixPanel {
                    title: "W₁".into(),
                    rows: 2,
                    values: vec![1.0, -1.0, 0.0, 0.5, 0.25, -0.3],
                    scale: 1.0,
                    row_label: "neuron".into(),
                    col_label: "feature".into(),
                    row_names: Vec::new(),
                    col_names: Vec::new(),
                }],
                columns: 1,
            },
            Figure::PhaseDiagrams {
                panels: vec![PhasePanel {
                    title: "theory".into(),
                    xs: vec![0.1, 1.0, 10.0],
                    ys: vec![0.01, 1.0],
                    cells: vec![Phase::Superposition; 6],
                }],
                x_label: "r".into(),
                y_label: "p".into(),
            },
        ];
        for (k, f) in figures.iter().enumerate() {
            let svg = render_svg(f).unwrap();
            assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
            let path = dir.path().join(format!("{k}.png"));
            render_png(f, &path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(&bytes[1..4], b"PNG");
        }
    }
}
