//! `adversarial-training`: training against the analytic attack reduces superposition (paper,
//! "Relationship to Adversarial Robustness").
//!
//! The ReLU-output model, n = 20 features of importance 0.7^i in m = 5 dimensions at feature
//! density 1−S = 0.03 (the `hidden-l1` model, where the plain model stores about twice as
//! many features as dimensions), trained with `[train].adversarial_radius`: every step the
//! batch's inputs, not its targets, are shifted by the paper's analytic attack on one random
//! feature i, δ = ε(WᵀW)_i/‖(WᵀW)_i‖, with ε a share of the root-mean-square input norm
//! (radius 0 to 1.6). The paper: adversarial training reduces superposition, but attacks of
//! about 80 % of the input norm are needed to remove it.
//!
//! Our choices, where the paper is silent: the model and density (the paper does not say
//! which model it trained adversarially), one attacked feature per step for the whole batch
//! (the attack is a constant shift of the inputs), no gradient through δ, the RMS norm as the
//! input norm, the radius ladder, 10,000 steps and 3 restarts per radius (paper profile 10),
//! the restart with the lowest clean loss kept. Losses are clean reconstruction losses on
//! fresh data. Superposition is judged by the represented features (‖W_i‖ > 0.5) against m.
//! Seed 0: 10, 10, 10, 9, 6, 5 and 5 features represented from radius 0 to 1.6: superposition
//! is gone from radius 1.2 on, the clean loss 11× the plain model's.

use super::hidden_l1::{superposed_model_config, DENSITY, FEATURES, HIDDEN};
use super::{Experiment, Profile, Work};
use crate::analysis::verdict::{fmt_list, Check, Verdict};
use crate::config::{Axis, SweepConfig, TrainConfig};
use crate::output::plots::{Figure, Mark, Series, SeriesStyle};
use crate::output::records::InstanceRecord;
use crate::pipeline::{bars_figure, gram_figure, RunResult};

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "adversarial-training",
    section: "§5 Adversarial robustness",
    summary: "n=20, m=5 at 1−S=0.03 trained against the analytic attack: superposition falls as the radius grows",
    claim: "Training against the analytic attack (each step, the optimal L2 attack on a random \
            feature, of radius ε) reduces superposition: as ε grows the model stores fewer \
            features in its m dimensions, and attacks of about 80 % of the input norm are \
            needed to remove superposition.",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

/// Attack radii as shares of the RMS input norm, the plain model first.
const RADII: [f64; 7] = [0.0, 0.1, 0.2, 0.4, 0.8, 1.2, 1.6];
/// "Falls": the represented features may rise by at most this between neighbouring radii
/// (restart noise).
const SLACK: usize = 1;
/// "Large attacks are needed": superposition survives attacks below this radius.
const SMALL_RADIUS: f32 = 0.4;

fn config(profile: Profile) -> TrainConfig {
    let sweep = SweepConfig {
        adversarial_radius: Some(Axis::Values(RADII.to_vec())),
        ..SweepConfig::default()
    };
    superposed_model_config("adversarial-training", sweep, profile)
}

/// What the verdict and the figures read from the kept model at one radius.
#[derive(Clone, Debug)]
struct Point {
    /// ε as a share of the input norm, as trained.
    radius: f32,
    represented: usize,
    features_per_dimension: f64,
    loss: f64,
}

/// The kept restart of every radius, smallest first.
fn points(run: &RunResult) -> Vec<Point> {
    let mut sel: Vec<&InstanceRecord> = run.selected();
    sel.sort_by(|a, b| a.adversarial_radius.total_cmp(&b.adversarial_radius));
    sel.into_iter()
        .map(|r| Point {
            radius: r.adversarial_radius,
            represented: r.represented,
            features_per_dimension: 1.0 / r.dimensions_per_feature,
            loss: r.final_loss.unwrap_or(f64::NAN),
        })
        .collect()
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let pts = points(run);
    let series = |label: &str, colour: usize, f: fn(&Point) -> f64| Series {
        label: label.into(),
        points: pts.iter().map(|p| (p.radius as f64, f(p))).collect(),
        style: SeriesStyle::Line,
        colour,
    };
    vec![
        (
            "superposition".to_string(),
            Figure::Chart {
                title: format!(
                    "Superposition against the adversarial training radius (n = {FEATURES}, m = {HIDDEN}, 1−S = {DENSITY})"
                ),
                x_label: "attack radius ε / RMS input norm".into(),
                y_label: "features".into(),
                log_x: false,
                log_y: false,
                series: vec![
                    series("represented (‖W_i‖ > 0.5)", 0, |p| p.represented as f64),
                    series("features per dimension 1/D*", 2, |p| {
                        p.features_per_dimension
                    }),
                ],
                marks: vec![Mark {
                    x: 0.8,
                    label: "paper: ~80 % removes it".into(),
                }],
            },
        ),
        (
            "loss".to_string(),
            Figure::Chart {
                title: "Clean reconstruction loss against the training radius".into(),
                x_label: "attack radius ε / RMS input norm".into(),
                y_label: "loss on fresh data".into(),
                log_x: false,
                log_y: true,
                series: vec![series("kept restart", 0, |p| p.loss)],
                marks: Vec::new(),
            },
        ),
        ("norms".to_string(), bars_figure(run)),
        ("wtw".to_string(), gram_figure(run)),
    ]
}

fn verdict(run: &RunResult) -> Verdict {
    let pts = points(run);
    let radii: Vec<f64> = pts.iter().map(|p| p.radius as f64).collect();
    let shown: Vec<usize> = pts.iter().map(|p| p.represented).collect();
    let mut checks = Vec::new();

    let plain = pts.first().filter(|p| p.radius == 0.0);
    checks.push(Check {
        name: "without attacks the model superposes".into(),
        passed: plain.is_some_and(|p| p.represented > HIDDEN && p.features_per_dimension > 1.0),
        measured: plain.map_or("no radius-0 model".into(), |p| {
            format!(
                "{} features represented in {HIDDEN} dimensions, 1/D* = {:.2}",
                p.represented, p.features_per_dimension
            )
        }),
        expected: format!("more than {HIDDEN} represented, 1/D* > 1"),
    });

    // Represented features rather than 1/D* = ‖W‖²/m: small attacks make the model lengthen
    // its features (1/D* rises from 2.0 to 2.3 by radius 0.4 for seed 0) while it stores fewer.
    let falls = shown.windows(2).all(|w| w[1] <= w[0] + SLACK);
    checks.push(Check {
        name: "represented features fall as the radius grows".into(),
        passed: pts.len() >= 3 && falls && shown.last() < shown.first(),
        measured: format!(
            "represented at radius {}: {:?} (1/D*: {})",
            fmt_list(&radii, 1),
            shown,
            fmt_list(
                &pts.iter()
                    .map(|p| p.features_per_dimension)
                    .collect::<Vec<_>>(),
                2
            )
        ),
        expected: format!(
            "never rising by more than {SLACK} to the next radius, fewer at the largest than without attacks"
        ),
    });

    // The smallest radius from which on every model keeps no more features than dimensions.
    let removed = (0..pts.len()).find(|&k| {
        pts[k].radius > 0.0
            && pts[k].represented >= 1
            && pts[k..].iter().all(|p| p.represented <= HIDDEN)
    });
    checks.push(Check {
        name: "only large attacks remove superposition".into(),
        passed: removed.is_some_and(|k| pts[k].radius >= SMALL_RADIUS),
        measured: match removed {
            Some(k) => format!(
                "from radius {}: {} features represented",
                pts[k].radius, pts[k].represented
            ),
            None => format!("no radius from which on at most {HIDDEN} features stay, 1 or more at it"),
        },
        expected: format!(
            "from some radius on at most {HIDDEN} features, at that radius at least 1 (the paper: about 0.8); not below {SMALL_RADIUS}"
        ),
    });
    Verdict::from_checks(checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::hidden_l1::tests::on_axes;
    use crate::model::ModelKind;
    use crate::output::weights::Weights;
    use crate::pipeline::instance_records;

    const N: usize = FEATURES;
    const M: usize = HIDDEN;

    /// Judge hand-made models: `count(level)` features on the axes at RADII[level].
    fn judge(count: impl Fn(usize) -> usize) -> Verdict {
        let cfg = config(Profile::Quick);
        let specs = cfg.resolve().unwrap();
        let level = |s: &crate::config::InstanceSpec| {
            RADII
                .iter()
                .position(|&r| (r as f32) == s.adversarial_radius)
                .unwrap()
        };
        let w: Vec<f32> = specs
            .iter()
            .flat_map(|s| on_axes(count(level(s))))
            .collect();
        let losses: Vec<f64> = specs.iter().map(|s| 1e-4 * (1 + level(s)) as f64).collect();
        let weights = Weights {
            b: Some(vec![0.0; N * specs.len()]),
            kind: Some(ModelKind::ReluOutput),
            ..Weights::w_only(N, M, w)
        };
        let records = instance_records(&weights, Some(&specs), Some(&losses));
        verdict(&RunResult::analysed(
            "adversarial-training",
            Some(cfg),
            weights,
            records,
        ))
    }

    #[test]
    fn superposition_falling_with_the_radius_passes() {
        let v = judge(|level| [10, 10, 9, 8, 5, 5, 4][level]);
        assert!(v.reproduced, "{v:#?}");
    }

    /// Attacks that change nothing.
    #[test]
    fn attacks_without_effect_fail() {
        let v = judge(|_| 10);
        assert!(
            !v.reproduced && !v.checks[1].passed && !v.checks[2].passed,
            "{v:#?}"
        );
    }

    /// Superposition gone at one radius but back at larger ones is not removed.
    #[test]
    fn superposition_coming_back_fails() {
        let v = judge(|level| [10, 10, 9, 5, 6, 7, 6][level]);
        assert!(!v.reproduced && !v.checks[2].passed, "{v:#?}");
    }

    /// A plain model without superposition has nothing to remove.
    #[test]
    fn no_superposition_without_attacks_fails() {
        let v = judge(|level| [5, 5, 5, 4, 4, 3, 3][level]);
        assert!(!v.reproduced && !v.checks[0].passed, "{v:#?}");
    }

    /// Superposition gone at the smallest attack: not the paper's "needs about 80 %".
    #[test]
    fn removal_by_tiny_attacks_fails() {
        let v = judge(|level| [10, 5, 5, 5, 4, 4, 3][level]);
        assert!(!v.reproduced && !v.checks[2].passed, "{v:#?}");
    }

    /// More superposition with larger attacks is the opposite of the paper's result.
    #[test]
    fn superposition_growing_with_the_radius_fails() {
        let v = judge(|level| [6, 6, 7, 8, 9, 10, 10][level]);
        assert!(!v.reproduced && !v.checks[1].passed, "{v:#?}");
    }

    #[test]
    fn config_sweeps_the_radius_on_a_tied_model() {
        let specs = config(Profile::Quick).resolve().unwrap();
        assert_eq!(specs.len(), RADII.len() * 3);
        assert_eq!(specs[0].adversarial_radius, 0.0);
        assert_eq!(specs.last().unwrap().adversarial_radius, 1.6);
        assert!(specs.iter().all(|s| s.kind == ModelKind::ReluOutput));
    }
}
