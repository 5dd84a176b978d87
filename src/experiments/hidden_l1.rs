//! `hidden-l1`: an L1 penalty on the hidden activations removes superposition, at a cost in
//! loss (paper, "Strategic Picture", approach 1: models without superposition).
//!
//! The ReLU-output model, n = 20 features of importance 0.7^i in m = 5 dimensions (the §2
//! model), at feature density 1−S = 0.03, where the plain model stores about twice as many
//! features as it has dimensions. Training adds λ·‖h‖₁ per row (averaged over the batch, see
//! `[train].hidden_l1`) for λ from 0 to 0.03. The paper states the effect without a figure;
//! our choices: the density, the λ ladder, 10,000 steps and 3 restarts per λ (paper profile
//! 10), the restart with the lowest reconstruction loss kept. Losses are reconstruction losses
//! on fresh data, without the penalty.
//!
//! Superposition is measured as the paper's features per dimension 1/D* = ‖W‖²_F/m and as
//! represented features (‖W_i‖ > 0.5) beyond m. Seed 0: 10 features in 5 dimensions at λ = 0
//! (1/D* = 2.0, five antipodal pairs); at λ = 0.004 five features, 1/D* = 0.93, the loss 4.2×;
//! at 0.03 one feature. The penalty does not remove every shared dimension: an antipodal pair
//! on one axis costs no more L1 than one feature there, and for some seeds a pair survives
//! while the less important features go (reported as "in superposition": represented with
//! D_i < 0.9).

use super::{Experiment, Profile, Work};
use crate::analysis::verdict::{fmt_list, Check, Verdict};
use crate::analysis::REPRESENTED_NORM;
use crate::config::{
    Axis, DataConfig, ImportanceSpec, ModelConfig, PerFeature, SweepConfig, TrainConfig,
    TrainSettings,
};
use crate::model::ModelKind;
use crate::output::plots::{Figure, Mark, Series, SeriesStyle};
use crate::output::records::InstanceRecord;
use crate::pipeline::{bars_figure, gram_figure, RunResult};

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "hidden-l1",
    section: "§8 Strategic picture: models without superposition",
    summary:
        "n=20, m=5 at 1−S=0.03, L1 penalty λ‖h‖₁: superposition falls as λ grows, the loss rises",
    claim: "Adding an L1 penalty λ‖h‖₁ on the hidden activations to the loss makes the model \
            give up superposition: as λ grows it stores fewer features per dimension, until it \
            keeps no more features than dimensions, and its loss rises.",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

/// Features, hidden dimensions, importance decay, feature density (shared with
/// `adversarial-training`).
pub(super) const FEATURES: usize = 20;
pub(super) const HIDDEN: usize = 5;
const DECAY: f64 = 0.7;
pub(super) const DENSITY: f64 = 0.03;
/// The penalties λ, the plain model first.
const PENALTIES: [f64; 7] = [0.0, 3e-4, 1e-3, 2e-3, 4e-3, 1e-2, 3e-2];
/// A represented feature with a smaller fractional dimensionality shares its dimension.
const ALONE_DIMENSIONALITY: f64 = 0.9;
/// "Falls": 1/D* may rise by at most this between neighbouring λ (restart noise).
const SLACK: f64 = 0.1;
/// "Rises": the loss may fall by at most this share between neighbouring λ.
const LOSS_SLACK: f64 = 0.05;

fn config(profile: Profile) -> TrainConfig {
    let sweep = SweepConfig {
        hidden_l1: Some(Axis::Values(PENALTIES.to_vec())),
        ..SweepConfig::default()
    };
    superposed_model_config("hidden-l1", sweep, profile)
}

/// The ReLU-output model of this file at its density, over the axis of `sweep`, with 3
/// restarts per point (paper profile 10).
pub(super) fn superposed_model_config(
    name: &str,
    sweep: SweepConfig,
    profile: Profile,
) -> TrainConfig {
    let restarts = match profile {
        Profile::Quick => 3,
        Profile::Paper => 10,
    };
    TrainConfig {
        name: name.into(),
        model: ModelConfig {
            kind: ModelKind::ReluOutput,
            features: FEATURES,
            hidden: HIDDEN,
        },
        train: TrainSettings::default(),
        data: DataConfig {
            feature_probability: PerFeature::All(DENSITY),
            importance: ImportanceSpec::Decay { decay: DECAY },
            ..DataConfig::default()
        },
        sweep: Some(SweepConfig { restarts, ..sweep }),
        instances: Vec::new(),
    }
}

/// What the verdict and the figures read from the kept model at one λ.
#[derive(Clone, Debug)]
struct Point {
    /// λ as trained (f32, so that it prints as configured).
    penalty: f32,
    represented: usize,
    /// Represented features that share their dimension.
    superposed: usize,
    features_per_dimension: f64,
    loss: f64,
}

/// The kept restart of every λ, smallest λ first.
fn points(run: &RunResult) -> Vec<Point> {
    let mut sel: Vec<&InstanceRecord> = run.selected();
    sel.sort_by(|a, b| a.hidden_l1.total_cmp(&b.hidden_l1));
    sel.into_iter()
        .map(|r| {
            let shown = |i: usize| r.feature_norms[i] > REPRESENTED_NORM;
            Point {
                penalty: r.hidden_l1,
                represented: r.represented,
                superposed: (0..r.feature_norms.len())
                    .filter(|&i| shown(i) && r.fractional_dimensionality[i] < ALONE_DIMENSIONALITY)
                    .count(),
                features_per_dimension: 1.0 / r.dimensions_per_feature,
                loss: r.final_loss.unwrap_or(f64::NAN),
            }
        })
        .collect()
}

/// Where the plain model (λ = 0) goes on the log λ axis: a decade left of the smallest λ.
fn plotted(pts: &[Point]) -> Vec<f64> {
    let smallest = pts
        .iter()
        .map(|p| p.penalty as f64)
        .filter(|&l| l > 0.0)
        .fold(f64::INFINITY, f64::min);
    let zero_at = if smallest.is_finite() {
        smallest / 10.0
    } else {
        1e-4
    };
    pts.iter()
        .map(|p| {
            if p.penalty > 0.0 {
                p.penalty as f64
            } else {
                zero_at
            }
        })
        .collect()
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let pts = points(run);
    let xs = plotted(&pts);
    let series = |label: &str, colour: usize, f: fn(&Point) -> f64| Series {
        label: label.into(),
        points: xs.iter().zip(&pts).map(|(&x, p)| (x, f(p))).collect(),
        style: SeriesStyle::Line,
        colour,
    };
    let zero_mark = || {
        pts.iter()
            .zip(&xs)
            .find(|(p, _)| p.penalty == 0.0)
            .map(|(_, &x)| Mark {
                x,
                label: "λ = 0".into(),
            })
            .into_iter()
            .collect::<Vec<_>>()
    };
    vec![
        (
            "superposition".to_string(),
            Figure::Chart {
                title: format!(
                    "Superposition against the L1 penalty (n = {FEATURES}, m = {HIDDEN}, 1−S = {DENSITY})"
                ),
                x_label: "λ (hidden L1 penalty)".into(),
                y_label: "features".into(),
                log_x: true,
                log_y: false,
                series: vec![
                    series("represented (‖W_i‖ > 0.5)", 0, |p| p.represented as f64),
                    series("in superposition (D_i < 0.9)", 1, |p| p.superposed as f64),
                    series("features per dimension 1/D*", 2, |p| {
                        p.features_per_dimension
                    }),
                ],
                marks: zero_mark(),
            },
        ),
        (
            "loss".to_string(),
            Figure::Chart {
                title: "Reconstruction loss (without the penalty) against λ".into(),
                x_label: "λ (hidden L1 penalty)".into(),
                y_label: "loss on fresh data".into(),
                log_x: true,
                log_y: true,
                series: vec![series("kept restart", 0, |p| p.loss)],
                marks: zero_mark(),
            },
        ),
        ("norms".to_string(), bars_figure(run)),
        ("wtw".to_string(), gram_figure(run)),
    ]
}

fn verdict(run: &RunResult) -> Verdict {
    let pts = points(run);
    let lambdas: Vec<f64> = pts.iter().map(|p| p.penalty as f64).collect();
    let fpd: Vec<f64> = pts.iter().map(|p| p.features_per_dimension).collect();
    let losses: Vec<f64> = pts.iter().map(|p| p.loss).collect();
    let mut checks = Vec::new();

    let plain = pts.first().filter(|p| p.penalty == 0.0);
    checks.push(Check {
        name: "without the penalty the model superposes".into(),
        passed: plain.is_some_and(|p| p.represented > HIDDEN && p.superposed > 0),
        measured: plain.map_or("no λ = 0 model".into(), |p| {
            format!(
                "{} features represented in {HIDDEN} dimensions, {} of them sharing a dimension",
                p.represented, p.superposed
            )
        }),
        expected: format!("more than {HIDDEN} represented, some sharing a dimension"),
    });

    let falls = fpd.windows(2).all(|w| w[1] <= w[0] + SLACK);
    checks.push(Check {
        name: "features per dimension fall as λ grows".into(),
        passed: pts.len() >= 3 && falls && fpd.last() < fpd.first().map(|f| f / 2.0).as_ref(),
        measured: format!(
            "1/D* at λ = {}: {}",
            fmt_list(&lambdas, 4),
            fmt_list(&fpd, 2)
        ),
        expected: format!(
            "never rising by more than {SLACK} to the next λ, at the largest λ under half the plain model's"
        ),
    });

    // The smallest λ whose model keeps features, but no more than it has dimensions.
    let cleared = pts
        .iter()
        .position(|p| p.penalty > 0.0 && p.represented >= 2 && p.represented <= HIDDEN);
    checks.push(Check {
        name: "some λ leaves no more features than dimensions, but keeps features".into(),
        passed: cleared.is_some(),
        measured: match cleared {
            Some(k) => format!(
                "at λ = {}: {} features represented, {} of them sharing a dimension",
                pts[k].penalty, pts[k].represented, pts[k].superposed
            ),
            None => format!(
                "(represented, in superposition) at λ = {}: {}",
                fmt_list(&lambdas, 4),
                pts.iter()
                    .map(|p| format!("({}, {})", p.represented, p.superposed))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        expected: format!("a λ > 0 whose model represents 2 to {HIDDEN} features"),
    });

    let rises = losses.windows(2).all(|w| w[1] >= w[0] * (1.0 - LOSS_SLACK));
    let higher = match (cleared, plain) {
        (Some(k), Some(p)) => pts[k].loss > p.loss,
        _ => false,
    };
    checks.push(Check {
        name: "the loss rises with λ".into(),
        passed: pts.len() >= 3 && rises && higher,
        measured: format!(
            "reconstruction loss at λ = {}: {}",
            fmt_list(&lambdas, 4),
            losses
                .iter()
                .map(|l| format!("{l:.2e}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        expected: format!(
            "never falling by more than {:.0} % to the next λ; higher at that λ than without the penalty",
            100.0 * LOSS_SLACK
        ),
    });
    Verdict::from_checks(checks)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::output::weights::Weights;
    use crate::pipeline::instance_records;

    const N: usize = FEATURES;
    const M: usize = HIDDEN;

    /// `count` features on the axes: feature i on axis i mod m, pointing +, then −, so that
    /// more than m features form antipodal pairs (superposition).
    pub(in crate::experiments) fn on_axes(count: usize) -> Vec<f32> {
        let mut w = vec![0.0; N * M];
        for i in 0..count.min(2 * M) {
            w[i * M + i % M] = if i < M { 1.0 } else { -1.0 };
        }
        w
    }

    /// Judge hand-made models: `model(level)` gives `(W, loss)` at PENALTIES[level]; every
    /// restart gets the same.
    fn judge(model: impl Fn(usize) -> (Vec<f32>, f64)) -> Verdict {
        let cfg = config(Profile::Quick);
        let specs = cfg.resolve().unwrap();
        let level = |s: &crate::config::InstanceSpec| {
            PENALTIES
                .iter()
                .position(|&l| (l as f32) == s.hidden_l1)
                .unwrap()
        };
        let w: Vec<f32> = specs.iter().flat_map(|s| model(level(s)).0).collect();
        let losses: Vec<f64> = specs.iter().map(|s| model(level(s)).1).collect();
        let weights = Weights {
            b: Some(vec![0.0; N * specs.len()]),
            kind: Some(ModelKind::ReluOutput),
            ..Weights::w_only(N, M, w)
        };
        let records = instance_records(&weights, Some(&specs), Some(&losses));
        verdict(&RunResult::analysed(
            "hidden-l1",
            Some(cfg),
            weights,
            records,
        ))
    }

    /// Ten features in antipodal pairs, then fewer and fewer, then none.
    fn paper_like(level: usize) -> (Vec<f32>, f64) {
        let count = [10, 9, 7, 6, 5, 2, 0][level];
        (
            on_axes(count),
            [1.0, 1.2, 1.5, 2.0, 2.5, 4.0, 5.0][level] * 1e-4,
        )
    }

    #[test]
    fn superposition_falling_with_the_penalty_passes() {
        let v = judge(paper_like);
        assert!(v.reproduced, "{v:#?}");
    }

    /// The plain model's weights at every λ: the penalty did nothing.
    #[test]
    fn a_penalty_without_effect_fails() {
        let v = judge(|level| (on_axes(10), paper_like(level).1));
        assert!(
            !v.reproduced && !v.checks[1].passed && !v.checks[2].passed,
            "{v:#?}"
        );
    }

    /// A plain model without superposition has nothing to remove.
    #[test]
    fn no_superposition_to_begin_with_fails() {
        let v = judge(|level| {
            if level == 0 {
                (on_axes(5), 1e-4)
            } else {
                paper_like(level)
            }
        });
        assert!(!v.reproduced && !v.checks[0].passed, "{v:#?}");
    }

    /// Superposition removed for free (the loss falls) is not the paper's trade-off.
    #[test]
    fn a_falling_loss_fails() {
        let v = judge(|level| (paper_like(level).0, 1e-4 / (1.0 + level as f64)));
        assert!(!v.reproduced && !v.checks[3].passed, "{v:#?}");
    }

    /// Jumping from superposition straight to an empty model never shows a model without
    /// superposition that still stores features.
    #[test]
    fn dropping_everything_at_once_fails() {
        let v = judge(|level| {
            let (w, loss) = paper_like(level);
            if level == 0 {
                (w, loss)
            } else {
                (on_axes(0), loss)
            }
        });
        assert!(!v.reproduced && !v.checks[2].passed, "{v:#?}");
    }

    /// The config trains the ladder at one density, the plain model included.
    #[test]
    fn config_sweeps_the_penalty_at_one_density() {
        let specs = config(Profile::Quick).resolve().unwrap();
        assert_eq!(specs.len(), PENALTIES.len() * 3);
        assert!(specs
            .iter()
            .all(|s| s.feature_probability.iter().all(|&p| p == DENSITY as f32)));
        assert_eq!(specs[0].hidden_l1, 0.0);
        assert_eq!(specs.last().unwrap().hidden_l1, 0.03);
    }
}
