//! `double-descent`: memorization and generalization on a fixed dataset (Henighan et al. 2023,
//! "Superposition, Memorization, and Double Descent"; catalog F1).
//!
//! The ReLU-output toy model (I_i = 1, m = 2) trained on a fixed set of T examples, each
//! scaled to unit norm, full batch, AdamW (wd 1e-2) with a linear warm-up then cosine decay to
//! 0, for a log grid of T and several dataset seeds per T. The paper: at small T the model
//! memorizes, the training points' hidden vectors h = Wx form a regular T-gon (data-point
//! dimensionality D_X = m/T); at large T it learns features, five of them in a pentagon, and
//! the points' D_X is small; in between, the test loss rises above both ends (double descent,
//! averaged over dataset seeds) and ‖W‖_F peaks.
//!
//! Our choices: the quick profile is the recommended CPU-scale variant (n = 1,000, S = 0.99,
//! about ten active features per example) with T from 3 to 1,600, 3 dataset seeds per T and
//! 10,000 steps (warm-up 500); `paper` is the paper's n = 10,000, S = 0.999, 50,000 steps
//! (warm-up 2,500), T from 3 to 20,000, 4 seeds (hours on 2 cores; the datasets take about
//! 6 GB, held dense as well as sparse). Restarts are the dataset
//! seeds (each instance draws its own dataset); every restart is used, not only the kept one.
//! Xavier init per instance (std √(2/(n + m))), the sparse kernel. The loss reported is the
//! paper's: summed over features, averaged over examples (the run's loss × n).
//!
//! Verdict: at the smallest T every seed's points have a mean D_X within 10 % of m/T and each
//! its own direction (every angular gap at least half of 360°/T); at the largest T most seeds
//! have exactly five features with ‖W_i‖ > 0.5 at regular angles (gaps 72° ± 10°) — about one
//! model in 14 at T = 1,600 ends with a sixth feature (a hexagon, or a weaker second feature on
//! a vertex of the pentagon; the paper keeps the lowest-loss of several fits) — and every seed
//! a mean D_X below 0.1; the mean test loss over seeds peaks between the ends at least 10 %
//! above both; the mean ‖W‖_F peaks between the ends at least twice both. Seed 0 (quick): a
//! triangle of points at T = 3, pentagons from T = 800, the test loss peaks at T = 200 (1.47×
//! the larger end), ‖W‖_F at T = 200 (≈ 25 against 2.2–2.5 at the ends).

use super::{Experiment, Profile, Stages, Work};
use crate::analysis::metrics::{data_dimensionality, hidden_vectors, REPRESENTED_NORM};
use crate::analysis::verdict::{Check, Verdict};
use crate::config::{
    Axis, DataConfig, DatasetConfig, InitScheme, KernelChoice, ModelConfig, PerFeature, Schedule,
    SweepConfig, TrainConfig, TrainSettings,
};
use crate::data::DataSource;
use crate::model::{ModelKind, ROW_CHUNK};
use crate::output::plots::{ArrowPanel, Figure, Series, SeriesStyle};
use crate::pipeline::{loss_figure, RunResult};
use serde::{Deserialize, Serialize};

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "double-descent",
    section: "Follow-up: memorization and double descent",
    summary: "fixed datasets of T unit-norm examples (n=1000, m=2): T-gon of points at small T, \
              pentagon of features at large T, a test-loss bump between",
    claim: "Trained on T examples, a toy model memorizes at small T (the training points' hidden \
            vectors form a regular T-gon, D_X = m/T) and learns features at large T (five in a \
            pentagon); in between the test loss rises above both regimes (double descent) and \
            the weights' norm peaks.",
    work: Work::Train {
        config,
        after: Some(record_points),
    },
    figures,
    verdict,
};

/// Hidden dimensions.
const HIDDEN: usize = 2;
/// Mean D_X at the smallest T within this share of m/T (Σ D_X = m: the points share the
/// hidden dimensions fully).
const TGON_TOLERANCE: f64 = 0.10;
/// Every point in its own direction: gaps at least this share of the regular 360°/T (the
/// memorizing solutions are T-gons with unequal radii and angles, as in the paper's figure).
const POLYGON_GAP: f64 = 0.5;
/// Angular gaps of a regular polygon within this many degrees.
const GAP_TOLERANCE: f64 = 10.0;
/// Features of the generalizing solution.
const PENTAGON: usize = 5;
/// The generalizing solution's mean D_X is below this.
const SMALL_DX: f64 = 0.1;
/// The test-loss peak exceeds both ends by this factor.
const LOSS_BUMP: f64 = 1.1;
/// The ‖W‖_F peak exceeds both ends by this factor.
const NORM_PEAK: f64 = 2.0;
/// Points and features drawn per panel.
const DRAWN_POINTS: usize = 400;
const DRAWN_FEATURES: usize = 40;

/// Sizes of a profile: features, density, steps, warm-up, the T grid and dataset seeds.
struct Sizes {
    features: usize,
    density: f64,
    steps: u64,
    warmup: u64,
    rows: &'static [f64],
    seeds: usize,
}

fn sizes(profile: Profile) -> Sizes {
    match profile {
        Profile::Quick => Sizes {
            features: 1_000,
            density: 0.01,
            steps: 10_000,
            warmup: 500,
            rows: &[
                3.0, 6.0, 12.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0,
            ],
            seeds: 3,
        },
        Profile::Paper => Sizes {
            features: 10_000,
            density: 0.001,
            steps: 50_000,
            warmup: 2_500,
            rows: &[
                3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0,
                10_000.0, 20_000.0,
            ],
            seeds: 4,
        },
    }
}

/// The experiment's config (public for tests and benchmarks).
pub fn config(profile: Profile) -> TrainConfig {
    let s = sizes(profile);
    let largest = s.rows.iter().fold(0.0, |a: f64, &b| a.max(b)) as usize;
    TrainConfig {
        name: "double-descent".into(),
        model: ModelConfig {
            kind: ModelKind::ReluOutput,
            features: s.features,
            hidden: HIDDEN,
        },
        train: TrainSettings {
            steps: s.steps,
            // Full batch: every step sees all T examples.
            batch_size: largest,
            schedule: Schedule::CosineAnnealing,
            warmup: s.warmup,
            weight_decay: 1e-2,
            init: InitScheme::PerInstance,
            kernel: KernelChoice::Sparse,
            // The test loss bump is 10 % or more; 2^15 fresh rows measure it to ~0.2 %.
            eval_rows: 1 << 15,
            ..TrainSettings::default()
        },
        data: DataConfig {
            feature_probability: PerFeature::All(s.density),
            dataset: Some(DatasetConfig {
                rows: s.rows[0] as usize,
                normalize: true,
            }),
            ..DataConfig::default()
        },
        sweep: Some(SweepConfig {
            dataset_rows: Some(Axis::Values(s.rows.to_vec())),
            restarts: s.seeds,
            ..SweepConfig::default()
        }),
        instances: Vec::new(),
    }
}

/// One trained model: its dataset size, seed and measurements.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Model {
    /// Instance index.
    pub index: usize,
    /// Training examples T.
    pub rows: usize,
    /// Dataset seed (the restart number).
    pub seed: usize,
    /// Test loss, summed over features (the paper's), on fresh examples.
    pub test_loss: f64,
    /// The same on the training examples.
    pub train_loss: f64,
    /// ‖W‖_F.
    pub w_norm: f64,
    /// ‖b‖.
    pub b_norm: f64,
    /// D_X of every training point.
    pub data_dimensionality: Vec<f64>,
    /// Hidden vectors h = Wx of the training points (`[T][2]`).
    #[serde(skip)]
    pub hidden: Vec<f32>,
    /// Feature indices with ‖W_i‖ > 0.5.
    pub represented: Vec<usize>,
}

impl Model {
    fn mean_dx(&self) -> f64 {
        mean(&self.data_dimensionality)
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Every instance's measurements, recomputed from the weights and the config (the datasets
/// are drawn again from the seed). Empty without a config or biases.
pub fn models(run: &RunResult) -> Vec<Model> {
    let Some(config) = run.config.as_ref() else {
        return Vec::new();
    };
    let Ok(specs) = config.resolve() else {
        return Vec::new();
    };
    let (n, m) = (run.weights.features, run.weights.hidden);
    let mut out = Vec::new();
    for r in &run.records {
        let Some(spec) = specs.iter().find(|s| s.index == r.index) else {
            continue;
        };
        let Some(dataset) = spec.data.dataset else {
            continue;
        };
        let w = run.w(r);
        let b = run.weights.instance_b(r.position).unwrap_or(&[]);
        let source = DataSource::training(
            &spec.data,
            &spec.feature_probability,
            config.train.seed,
            spec.index,
            ROW_CHUNK,
        );
        let Some(d) = source.dataset() else { continue };
        let hidden = hidden_vectors(w, d.x(), n, m, d.rows());
        let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        out.push(Model {
            index: r.index,
            rows: dataset.rows,
            seed: r.restart,
            test_loss: r.final_loss.unwrap_or(f64::NAN) * n as f64,
            train_loss: r.train_set_loss.unwrap_or(f64::NAN) * n as f64,
            w_norm: norm(w),
            b_norm: norm(b),
            data_dimensionality: data_dimensionality(&hidden, d.rows(), m),
            hidden,
            represented: (0..n)
                .filter(|&i| norm(&w[i * m..(i + 1) * m]) > REPRESENTED_NORM)
                .collect(),
        });
    }
    out
}

/// After training: the measurements into `metrics.json` (`results.models`).
fn record_points(_: &mut Stages<'_>, run: &mut RunResult) -> anyhow::Result<()> {
    let models = models(run);
    run.results = Some(serde_json::json!({ "models": models }));
    Ok(())
}

/// The dataset sizes, ascending, and the mean of `f` over the seeds of each.
fn per_rows(models: &[Model], f: impl Fn(&Model) -> f64) -> Vec<(f64, f64)> {
    let mut rows: Vec<usize> = models.iter().map(|m| m.rows).collect();
    rows.sort_unstable();
    rows.dedup();
    rows.iter()
        .map(|&t| {
            let vals: Vec<f64> = models.iter().filter(|m| m.rows == t).map(&f).collect();
            (t as f64, mean(&vals))
        })
        .collect()
}

/// Angles (degrees, ascending) of 2-D vectors longer than `min_norm`, and the gaps between
/// neighbours around the circle.
fn gaps(vectors: &[f32], min_norm: f64) -> Vec<f64> {
    let mut angles: Vec<f64> = vectors
        .chunks_exact(2)
        .filter(|v| ((v[0] as f64).powi(2) + (v[1] as f64).powi(2)).sqrt() > min_norm)
        .map(|v| {
            (v[1] as f64)
                .atan2(v[0] as f64)
                .to_degrees()
                .rem_euclid(360.0)
        })
        .collect();
    angles.sort_by(f64::total_cmp);
    let k = angles.len();
    (0..k)
        .map(|j| {
            if k == 1 {
                360.0
            } else {
                (angles[(j + 1) % k] - angles[j]).rem_euclid(360.0)
            }
        })
        .collect()
}

/// Whether `gaps` are those of a regular k-gon, k = gaps.len(), within [`GAP_TOLERANCE`].
fn regular(gaps: &[f64], k: usize) -> bool {
    gaps.len() == k
        && gaps
            .iter()
            .all(|g| (g - 360.0 / k as f64).abs() <= GAP_TOLERANCE)
}

/// The 2-D directions of the given features of `w`.
fn directions(w: &[f32], features: &[usize]) -> Vec<f32> {
    features
        .iter()
        .flat_map(|&i| [w[2 * i], w[2 * i + 1]])
        .collect()
}

fn verdict(run: &RunResult) -> Verdict {
    let models = models(run);
    let w_of = |model: &Model| {
        run.records
            .iter()
            .find(|r| r.index == model.index)
            .map(|r| run.w(r))
    };
    judge(&models, w_of)
}

/// The verdict on measured models; `w_of` gives a model's `W`.
fn judge<'a>(models: &[Model], w_of: impl Fn(&Model) -> Option<&'a [f32]>) -> Verdict {
    if models.is_empty() || run_is_not_planar(models) {
        return Verdict::from_checks(vec![Check {
            name: "models with a fixed dataset and m = 2".into(),
            passed: false,
            measured: format!("{} models", models.len()),
            expected: "a run of this experiment's config".into(),
        }]);
    }
    let smallest = models.iter().map(|m| m.rows).min().unwrap_or(0);
    let largest = models.iter().map(|m| m.rows).max().unwrap_or(0);
    let at = |t: usize| models.iter().filter(move |m| m.rows == t);

    // Memorization: a T-gon of points, each in its own direction, sharing the m dimensions.
    let target = HIDDEN as f64 / smallest as f64;
    let mut worst_dx: f64 = 0.0;
    let mut narrowest: f64 = 360.0;
    for m in at(smallest) {
        worst_dx = worst_dx.max((m.mean_dx() - target).abs() / target);
        let g = gaps(&m.hidden, 1e-3);
        narrowest = narrowest.min(if g.len() == smallest {
            g.iter().fold(360.0, |a: f64, &b| a.min(b))
        } else {
            0.0
        });
    }
    let regular_gap = 360.0 / smallest as f64;
    let memorized = Check {
        name: format!("at T = {smallest}, the training points form a {smallest}-gon"),
        passed: worst_dx <= TGON_TOLERANCE && narrowest >= POLYGON_GAP * regular_gap,
        measured: format!(
            "mean D_X at most {:.1} % from m/T = {target:.3}; narrowest gap between points {narrowest:.0}°",
            100.0 * worst_dx
        ),
        expected: format!(
            "in every seed, mean D_X within {:.0} % of m/T and every gap ≥ {:.0}° ({POLYGON_GAP} × 360°/T)",
            100.0 * TGON_TOLERANCE,
            POLYGON_GAP * regular_gap
        ),
    };

    // Generalization: a pentagon of features, small D_X.
    let mut pentagons = 0;
    let mut counts = Vec::new();
    let mut dx = Vec::new();
    for m in at(largest) {
        counts.push(m.represented.len() as f64);
        dx.push(m.mean_dx());
        let pentagon = w_of(m).is_some_and(|w| {
            m.represented.len() == PENTAGON
                && regular(&gaps(&directions(w, &m.represented), 0.0), PENTAGON)
        });
        pentagons += pentagon as usize;
    }
    let seeds_large = at(largest).count();
    let max_dx = dx.iter().fold(0.0f64, |a, &b| a.max(b));
    let generalized = Check {
        name: format!("at T = {largest}, five features form a pentagon and D_X is small"),
        passed: 2 * pentagons > seeds_large && max_dx < SMALL_DX,
        measured: format!(
            "pentagon in {pentagons}/{seeds_large} seeds (features with ‖W_i‖ > 0.5: {}); mean D_X {}",
            crate::analysis::verdict::fmt_list(&counts, 0),
            crate::analysis::verdict::fmt_list(&dx, 3)
        ),
        expected: format!(
            "5 features at 72° ± {GAP_TOLERANCE}° in most seeds, mean D_X < {SMALL_DX} in every seed"
        ),
    };

    // Double descent: the mean test loss peaks between the ends.
    let loss = per_rows(models, |m| m.test_loss);
    let bump = interior_peak(&loss);
    let descent = Check {
        name:
            "the test loss (mean over dataset seeds) peaks between memorization and generalization"
                .into(),
        passed: bump.is_some_and(|(_, ratio)| ratio >= LOSS_BUMP),
        measured: match bump {
            Some((t, ratio)) => format!("peak at T = {t}, {ratio:.2}× the larger end"),
            None => "no interior T".into(),
        },
        expected: format!(
            "an interior peak ≥ {LOSS_BUMP}× the loss at both the smallest and largest T"
        ),
    };

    // The weights' norm peaks between the regimes.
    let norms = per_rows(models, |m| m.w_norm);
    let peak = interior_peak(&norms);
    let norm = Check {
        name: "‖W‖_F (mean over dataset seeds) peaks between the regimes".into(),
        passed: peak.is_some_and(|(_, ratio)| ratio >= NORM_PEAK),
        measured: match peak {
            Some((t, ratio)) => format!("peak at T = {t}, {ratio:.1}× the larger end"),
            None => "no interior T".into(),
        },
        expected: format!("an interior peak ≥ {NORM_PEAK}× both ends"),
    };
    Verdict::from_checks(vec![memorized, generalized, descent, norm])
}

fn run_is_not_planar(models: &[Model]) -> bool {
    models.iter().any(|m| m.hidden.len() != 2 * m.rows)
}

/// The largest value strictly between the first and last point, and its ratio to the larger
/// end; `None` with fewer than three points.
fn interior_peak(curve: &[(f64, f64)]) -> Option<(f64, f64)> {
    if curve.len() < 3 {
        return None;
    }
    let ends = curve[0].1.max(curve[curve.len() - 1].1);
    curve[1..curve.len() - 1]
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|&(t, v)| (t, v / ends))
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let models = models(run);
    let mut figs = Vec::new();
    if models.is_empty() {
        return figs;
    }
    // The paper's grid: points and features per T, dataset seed 0.
    let first: Vec<&Model> = {
        let mut v: Vec<&Model> = models.iter().filter(|m| m.seed == 0).collect();
        v.sort_by_key(|m| m.rows);
        v
    };
    let points = first
        .iter()
        .map(|m| ArrowPanel {
            title: format!("T = {}: hidden vectors of the points", m.rows),
            vectors: m
                .hidden
                .chunks_exact(2)
                .take(DRAWN_POINTS)
                .map(|v| [v[0] as f64, v[1] as f64])
                .collect(),
            shade: vec![1.0; m.rows.min(DRAWN_POINTS)],
        })
        .collect();
    figs.push((
        "points".to_string(),
        Figure::FeatureArrows {
            panels: points,
            columns: 5,
        },
    ));
    let features = first
        .iter()
        .filter_map(|m| {
            let r = run.records.iter().find(|r| r.index == m.index)?;
            let w = run.w(r);
            let mut order: Vec<usize> = (0..run.weights.features).collect();
            let norm = |i: usize| (w[2 * i] as f64).hypot(w[2 * i + 1] as f64);
            order.sort_by(|&a, &b| norm(b).total_cmp(&norm(a)));
            order.truncate(DRAWN_FEATURES);
            Some(ArrowPanel {
                title: format!("T = {}: the {} longest W_i", m.rows, order.len()),
                vectors: order
                    .iter()
                    .map(|&i| [w[2 * i] as f64, w[2 * i + 1] as f64])
                    .collect(),
                shade: vec![1.0; order.len()],
            })
        })
        .collect();
    figs.push((
        "features".to_string(),
        Figure::FeatureArrows {
            panels: features,
            columns: 5,
        },
    ));
    let dots = |f: &dyn Fn(&Model) -> f64| -> Vec<(f64, f64)> {
        models.iter().map(|m| (m.rows as f64, f(m))).collect()
    };
    figs.push((
        "test-loss".to_string(),
        Figure::Chart {
            title: "Test loss against the number of training examples".into(),
            x_label: "training examples T".into(),
            y_label: "test loss (summed over features, per example)".into(),
            log_x: true,
            log_y: false,
            series: vec![
                Series {
                    label: "one dataset seed".into(),
                    points: dots(&|m| m.test_loss),
                    style: SeriesStyle::Dots,
                    colour: 0,
                },
                Series {
                    label: "mean over seeds".into(),
                    points: per_rows(&models, |m| m.test_loss),
                    style: SeriesStyle::Line,
                    colour: 0,
                },
                Series {
                    label: "training loss, mean".into(),
                    points: per_rows(&models, |m| m.train_loss),
                    style: SeriesStyle::Line,
                    colour: 1,
                },
            ],
            marks: Vec::new(),
        },
    ));
    let mut point_dims = Vec::new();
    for m in &models {
        point_dims.extend(m.data_dimensionality.iter().map(|&d| (m.rows as f64, d)));
    }
    let feature_dims: Vec<(f64, f64)> = run
        .records
        .iter()
        .filter_map(|r| {
            let m = models.iter().find(|m| m.index == r.index)?;
            Some(
                m.represented
                    .iter()
                    .map(|&i| (m.rows as f64, r.fractional_dimensionality[i]))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect();
    figs.push((
        "dimensionality".to_string(),
        Figure::Chart {
            title: "Data-point dimensionality D_X and feature dimensionality D_i".into(),
            x_label: "training examples T".into(),
            y_label: "dimensionality".into(),
            log_x: true,
            log_y: true,
            series: vec![
                Series {
                    label: "D_X of each training point".into(),
                    points: point_dims,
                    style: SeriesStyle::Dots,
                    colour: 0,
                },
                Series {
                    label: "D_i of each feature with ‖W_i‖ > 0.5".into(),
                    points: feature_dims,
                    style: SeriesStyle::Dots,
                    colour: 1,
                },
                Series {
                    label: "m/T (a regular T-gon of points)".into(),
                    points: per_rows(&models, |m| HIDDEN as f64 / m.rows as f64),
                    style: SeriesStyle::Line,
                    colour: 2,
                },
            ],
            marks: Vec::new(),
        },
    ));
    figs.push((
        "norms".to_string(),
        Figure::Chart {
            title: "Weight and bias norms against T (mean over dataset seeds)".into(),
            x_label: "training examples T".into(),
            y_label: "norm".into(),
            log_x: true,
            log_y: true,
            series: vec![
                Series {
                    label: "‖W‖_F".into(),
                    points: per_rows(&models, |m| m.w_norm),
                    style: SeriesStyle::Line,
                    colour: 0,
                },
                Series {
                    label: "‖b‖".into(),
                    points: per_rows(&models, |m| m.b_norm),
                    style: SeriesStyle::Line,
                    colour: 1,
                },
            ],
            marks: Vec::new(),
        },
    ));
    if let Some(f) = loss_figure(run) {
        figs.push(("loss".to_string(), f));
    }
    figs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polygon(k: usize, radius: f32, turn: f64) -> Vec<f32> {
        (0..k)
            .flat_map(|j| {
                let a = turn + 2.0 * std::f64::consts::PI * j as f64 / k as f64;
                [radius * a.cos() as f32, radius * a.sin() as f32]
            })
            .collect()
    }

    /// A model of T points (`hidden`), its test loss and norm; W (`[n][2]`) beside it.
    fn model(
        index: usize,
        rows: usize,
        seed: usize,
        hidden: Vec<f32>,
        loss: f64,
        w_norm: f64,
        w: &[f32],
    ) -> Model {
        let dx = data_dimensionality(&hidden, rows, 2);
        let n = w.len() / 2;
        Model {
            index,
            rows,
            seed,
            test_loss: loss,
            train_loss: loss / 2.0,
            w_norm,
            b_norm: 0.1,
            data_dimensionality: dx,
            hidden,
            represented: (0..n)
                .filter(|&i| (w[2 * i] as f64).hypot(w[2 * i + 1] as f64) > 0.5)
                .collect(),
        }
    }

    /// The paper's picture: T-gon of points at T = 3, a pentagon of features with points on
    /// its five directions at T = 400, a loss and norm bump at T = 20.
    fn paper_like(pentagon_features: usize, bump: f64) -> (Vec<Model>, Vec<Vec<f32>>) {
        paper_like_seeds(&[pentagon_features; 2], bump)
    }

    /// As [`paper_like`], with one entry per dataset seed: the features of its generalizing
    /// polygon.
    fn paper_like_seeds(vertices: &[usize], bump: f64) -> (Vec<Model>, Vec<Vec<f32>>) {
        let n = 8;
        let mut ws = Vec::new();
        let mut models = Vec::new();
        for &(rows, loss, norm) in &[(3, 1.0, 2.0), (20, bump, 20.0), (400, 0.99, 2.3)] {
            for (seed, &pentagon_features) in vertices.iter().enumerate() {
                let mut w = vec![0.0f32; 2 * n];
                let hidden = if rows == 3 {
                    polygon(3, 1.0, 0.3 * seed as f64)
                } else {
                    let dirs = polygon(pentagon_features, 1.0, 0.1);
                    w[..dirs.len()].copy_from_slice(&dirs);
                    // Each point lies on one feature direction (or at 0).
                    (0..rows)
                        .flat_map(|r| {
                            if r % 3 == 0 {
                                let f = r % pentagon_features;
                                [0.5 * dirs[2 * f], 0.5 * dirs[2 * f + 1]]
                            } else {
                                [0.0, 0.0]
                            }
                        })
                        .collect()
                };
                models.push(model(ws.len(), rows, seed, hidden, loss, norm, &w));
                ws.push(w);
            }
        }
        (models, ws)
    }

    fn judged(models: &[Model], ws: &[Vec<f32>]) -> Verdict {
        judge(models, |m| ws.get(m.index).map(|w| w.as_slice()))
    }

    #[test]
    fn the_papers_picture_reproduces() {
        let (models, ws) = paper_like(5, 1.5);
        let v = judged(&models, &ws);
        assert!(v.reproduced, "{:#?}", v.checks);
    }

    #[test]
    fn a_hexagon_of_features_fails() {
        let (models, ws) = paper_like(6, 1.5);
        let v = judged(&models, &ws);
        assert!(!v.reproduced);
        assert!(!v.checks[1].passed, "{:#?}", v.checks[1]);
    }

    #[test]
    fn most_seeds_need_the_pentagon() {
        let (models, ws) = paper_like_seeds(&[5, 6, 5], 1.5);
        assert!(judged(&models, &ws).reproduced);
        let (models, ws) = paper_like_seeds(&[5, 6, 6], 1.5);
        assert!(!judged(&models, &ws).checks[1].passed);
    }

    #[test]
    fn a_monotone_test_loss_fails() {
        let (models, ws) = paper_like(5, 0.995);
        let v = judged(&models, &ws);
        assert!(!v.checks[2].passed, "{:#?}", v.checks[2]);
        assert!(v.checks[3].passed);
    }

    #[test]
    fn points_that_are_not_a_polygon_fail() {
        let (mut models, ws) = paper_like(5, 1.5);
        // Two of the three points of a seed nearly share one direction.
        let hidden = vec![1.0, 0.0, 0.9, 0.3, -1.0, 0.0];
        models[1] = model(1, 3, 1, hidden, 1.0, 2.0, &ws[1]);
        let v = judged(&models, &ws);
        assert!(!v.checks[0].passed, "{:#?}", v.checks[0]);
    }

    #[test]
    fn no_norm_peak_fails() {
        let (mut models, ws) = paper_like(5, 1.5);
        for m in &mut models {
            m.w_norm = 2.0;
        }
        let v = judged(&models, &ws);
        assert!(!v.checks[3].passed);
    }

    #[test]
    fn the_quick_config_sweeps_t_with_full_batches() {
        let c = config(Profile::Quick);
        let specs = c.resolve().unwrap();
        assert_eq!(specs.len(), 30);
        let rows: Vec<usize> = specs.iter().map(|s| s.data.dataset.unwrap().rows).collect();
        assert_eq!(rows[0], 3);
        assert_eq!(rows[29], 1600);
        assert!(specs.iter().all(|s| s.data.dataset.unwrap().normalize));
        assert_eq!(c.train.batch_size, 1600);
        let paper = config(Profile::Paper);
        assert_eq!(paper.resolve().unwrap().len(), 13 * 4);
        assert_eq!(paper.train.steps, 50_000);
    }
}
