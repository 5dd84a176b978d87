//! `computation`: computing |x| with a hidden ReLU layer (paper, "Computation in
//! Superposition").
//!
//! n = 3 dense features with values U[−1, 1], m = 6 neurons, h = ReLU(W₁x), y′ = ReLU(W₂h + b),
//! target |x|, importance 1. The paper: with as many neurons as |x_i| = ReLU(x_i) + ReLU(−x_i)
//! needs, every feature gets one neuron for ReLU(x_i) and one for ReLU(−x_i) (opposite signs
//! in W₁, both adding into y′_i through W₂), and every other weight is near 0.
//!
//! Our choices, where the paper is silent: the notebook's optimiser and init, 10,000 steps,
//! batch 1,024, and 10 restarts with the lowest-loss one kept (the paper shows one model).
//! Seed 0: 7 of 10 restarts reach a loss near 1e-9 with the six neurons; the other three give
//! one feature a single neuron (loss 0.03–0.11, a third of that feature's |x| lost). The
//! verdict asks for a +/− pair of neurons per feature, each carrying ≥ 98 % of its squared
//! incoming weight on that feature, adding into the feature's output, and for a loss below
//! 1 % of the zero output's (E[x²] = 1/3).

use super::{Experiment, Profile, Work};
use crate::analysis::neurons::{neurons, Neuron};
use crate::analysis::verdict::{Check, Verdict};
use crate::config::{DataConfig, ModelConfig, SweepConfig, TrainConfig, TrainSettings};
use crate::model::ModelKind;
use crate::output::plots::{Figure, MatrixPanel};
use crate::pipeline::{loss_figure, RunResult};

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "computation",
    section: "§7 Computation in superposition",
    summary: "|x| with n=3, m=6 ReLU neurons: one neuron for ReLU(x_i), one for ReLU(−x_i)",
    claim: "A model computing |x| (h = ReLU(W₁x), y′ = ReLU(W₂h + b)) with m = 2n neurons \
            gives every feature one neuron for ReLU(x_i) and one for ReLU(−x_i): incoming \
            weights of opposite sign, both adding into the output of x_i, other weights near 0.",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

/// Features.
const FEATURES: usize = 3;
/// Neurons.
const HIDDEN: usize = 6;
/// "Other weights near 0": the feature's weight carries at least this share of the
/// neuron's squared incoming weight.
const OWN_SHARE: f64 = 0.98;
/// Loss of predicting 0 for dense U[−1, 1] inputs: E[x²] = 1/3 per feature.
const ZERO_OUTPUT_LOSS: f64 = 1.0 / 3.0;
/// The model computes |x|: loss below this share of the zero output's.
const LOSS_SHARE: f64 = 0.01;

fn config(profile: Profile) -> TrainConfig {
    let restarts = match profile {
        Profile::Quick => 10,
        Profile::Paper => 20,
    };
    TrainConfig {
        name: "computation".into(),
        model: ModelConfig {
            kind: ModelKind::Abs,
            features: FEATURES,
            hidden: HIDDEN,
        },
        train: TrainSettings::default(),
        // Dense, importance 1; values U[−1, 1] (the default for `abs`).
        data: DataConfig::default(),
        sweep: Some(SweepConfig {
            restarts,
            ..SweepConfig::default()
        }),
        instances: Vec::new(),
    }
}

/// W₁ (`[m][n]`, neuron rows) and W₂ (`[n][m]`) after the paper's rescaling (footnote 15):
/// each neuron's largest |W₁| weight becomes 1 and its W₂ column is multiplied to match, which
/// leaves the function unchanged. Neurons are ordered by the feature they carry, the neuron
/// with the positive weight first.
pub fn rescaled(w: &[f32], w_dec: &[f32], n: usize, m: usize) -> (Vec<f64>, Vec<f64>) {
    let ns = neurons(w, n, m);
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| {
        let negative = |j: usize| w[ns[j].primary * m + j] < 0.0;
        (!ns[a].alive, ns[a].primary, negative(a)).cmp(&(!ns[b].alive, ns[b].primary, negative(b)))
    });
    let mut w1 = vec![0.0; m * n];
    let mut w2 = vec![0.0; n * m];
    for (row, &j) in order.iter().enumerate() {
        let alpha = (0..n)
            .map(|i| (w[i * m + j] as f64).abs())
            .fold(0.0, f64::max);
        let alpha = if alpha > 0.0 { alpha } else { 1.0 };
        for i in 0..n {
            w1[row * n + i] = w[i * m + j] as f64 / alpha;
            w2[i * m + row] = w_dec[i * m + j] as f64 * alpha;
        }
    }
    (w1, w2)
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let mut figs = Vec::new();
    if let Some(r) = run.selected().first() {
        if let Some(w_dec) = run.w_dec(r) {
            let (n, m) = (run.weights.features, run.weights.hidden);
            let (w1, w2) = rescaled(run.w(r), w_dec, n, m);
            let scale = |v: &[f64]| v.iter().map(|x| x.abs()).fold(0.0, f64::max);
            figs.push((
                "weights".to_string(),
                Figure::Matrices {
                    panels: vec![
                        MatrixPanel {
                            title: "W₁ (rescaled: each neuron's largest |weight| = 1)".into(),
                            rows: m,
                            scale: scale(&w1),
                            values: w1,
                            row_label: "neuron".into(),
                            col_label: "feature".into(),
                            row_names: Vec::new(),
                            col_names: Vec::new(),
                        },
                        MatrixPanel {
                            title: "W₂ (rescaled to match)".into(),
                            rows: n,
                            scale: scale(&w2),
                            values: w2,
                            row_label: "output".into(),
                            col_label: "neuron".into(),
                            row_names: Vec::new(),
                            col_names: Vec::new(),
                        },
                    ],
                    columns: 2,
                },
            ));
        }
    }
    if let Some(f) = loss_figure(run) {
        figs.push(("loss".to_string(), f));
    }
    figs
}

/// Feature `i`'s neuron of sign `sign` (+1 or −1): of the neurons whose primary feature is `i`
/// with that sign of W₁ weight, the one with the largest share (the caller checks the share),
/// with whether its W₂ weight adds into y′_i.
fn signed_neuron<'a>(
    ns: &'a [Neuron],
    (w, w_dec): (&[f32], &[f32]),
    m: usize,
    i: usize,
    sign: f32,
) -> Option<(&'a Neuron, bool)> {
    ns.iter()
        .filter(|nr| nr.alive && nr.primary == i && w[i * m + nr.index] * sign > 0.0)
        .max_by(|a, b| a.primary_share.total_cmp(&b.primary_share))
        .map(|nr| (nr, w_dec[i * m + nr.index] > 0.0))
}

fn verdict(run: &RunResult) -> Verdict {
    let missing = |what: &str| {
        Verdict::from_checks(vec![Check {
            name: "the |x| model's weights".into(),
            passed: false,
            measured: what.into(),
            expected: "a trained abs model with W₁ and W₂".into(),
        }])
    };
    let Some(r) = run.selected().first().copied() else {
        return missing("no model");
    };
    let (n, m) = (run.weights.features, run.weights.hidden);
    let w = run.w(r);
    let Some(w_dec) = run.w_dec(r) else {
        return missing("no W_dec (W₂) in the weights");
    };
    let ns = neurons(w, n, m);
    let mut found = Vec::new();
    let mut all = true;
    for i in 0..n {
        let mut parts = Vec::new();
        for (sign, name) in [(1.0, "+"), (-1.0, "−")] {
            match signed_neuron(&ns, (w, w_dec), m, i, sign) {
                Some((nr, adds)) => {
                    all &= nr.primary_share >= OWN_SHARE && adds;
                    parts.push(format!(
                        "{name}: neuron {} ({:.0} %{})",
                        nr.index,
                        100.0 * nr.primary_share,
                        if adds { "" } else { ", W₂ ≤ 0" }
                    ));
                }
                None => {
                    all = false;
                    parts.push(format!("{name}: none"));
                }
            }
        }
        found.push(format!("x{i}: {}", parts.join(", ")));
    }
    let loss_check = Check {
        name: "the neurons compute |x|".into(),
        passed: r
            .final_loss
            .is_some_and(|l| l < LOSS_SHARE * ZERO_OUTPUT_LOSS),
        measured: match r.final_loss {
            Some(l) => format!("loss {l:.2e} (zero output: {ZERO_OUTPUT_LOSS:.3})"),
            None => "no loss recorded".into(),
        },
        expected: format!("below {:.0} % of the zero output's", 100.0 * LOSS_SHARE),
    };
    Verdict::from_checks(vec![
        Check {
            name: "every feature: one neuron for ReLU(x_i), one for ReLU(−x_i)".into(),
            passed: all && n * 2 <= m,
            measured: found.join("; "),
            expected: format!(
                "per feature a neuron with a positive and one with a negative W₁ weight, each \
                 carrying ≥ {:.0} % of the neuron's squared weight, with W₂ > 0 into the feature",
                100.0 * OWN_SHARE
            ),
        },
        loss_check,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::weights::Weights;
    use crate::pipeline::instance_records;

    /// Judge one model (`w`, `w_dec` as `[n][m]`) as the kept fit, with its loss.
    fn judge(w: Vec<f32>, w_dec: Vec<f32>, loss: f64) -> Verdict {
        let mut cfg = config(Profile::Quick);
        cfg.sweep.as_mut().unwrap().restarts = 1;
        let specs = cfg.resolve().unwrap();
        let weights = Weights {
            instances: 1,
            features: FEATURES,
            hidden: HIDDEN,
            w,
            b: Some(vec![0.0; FEATURES]),
            w_dec: Some(w_dec),
            kind: Some(ModelKind::Abs),
            kinds: None,
            config: None,
        };
        let records = instance_records(&weights, Some(&specs), Some(&[loss]));
        verdict(&RunResult::analysed(
            "computation",
            Some(cfg),
            weights,
            records,
        ))
    }

    /// The paper's solution: feature i on neurons 2i (+) and 2i+1 (−), scaled by `scale`.
    fn abs_solution(scale: f32) -> (Vec<f32>, Vec<f32>) {
        let mut w = vec![0.0; FEATURES * HIDDEN];
        let mut d = vec![0.0; FEATURES * HIDDEN];
        for i in 0..FEATURES {
            w[i * HIDDEN + 2 * i] = scale;
            w[i * HIDDEN + 2 * i + 1] = -scale;
            d[i * HIDDEN + 2 * i] = 1.0 / scale;
            d[i * HIDDEN + 2 * i + 1] = 1.0 / scale;
        }
        (w, d)
    }

    #[test]
    fn one_neuron_per_sign_passes() {
        let (w, d) = abs_solution(1.3);
        let v = judge(w, d, 1e-9);
        assert!(v.reproduced, "{v:#?}");
    }

    #[test]
    fn a_feature_with_one_neuron_fails() {
        let (mut w, d) = abs_solution(1.0);
        // Feature 2's negative neuron carries feature 1 instead.
        w[2 * HIDDEN + 5] = 0.0;
        w[HIDDEN + 5] = -1.0;
        let v = judge(w, d, 0.03);
        assert!(!v.reproduced);
        assert!(!v.checks[0].passed && !v.checks[1].passed, "{v:#?}");
    }

    #[test]
    fn neurons_mixing_features_fail() {
        let (mut w, d) = abs_solution(1.0);
        for j in 0..HIDDEN {
            w[(j / 2 + 1) % FEATURES * HIDDEN + j] = 0.4;
        }
        let v = judge(w, d, 1e-9);
        assert!(!v.checks[0].passed, "{v:#?}");
    }

    #[test]
    fn a_negative_output_weight_fails() {
        let (w, mut d) = abs_solution(1.0);
        d[1] = -1.0; // feature 0's ReLU(−x) neuron subtracts
        let v = judge(w, d, 1e-9);
        assert!(!v.reproduced && !v.checks[0].passed, "{v:#?}");
    }

    #[test]
    fn rescaling_keeps_the_function_and_sets_the_largest_weight_to_one() {
        let (w, d) = abs_solution(2.5);
        let (w1, w2) = rescaled(&w, &d, FEATURES, HIDDEN);
        for row in w1.chunks(FEATURES) {
            let top = row.iter().map(|x| x.abs()).fold(0.0, f64::max);
            assert!((top - 1.0).abs() < 1e-9);
        }
        // Neuron order: feature 0 (+, −), feature 1 (+, −), ...: W₂ entries 1.0 in place.
        for i in 0..FEATURES {
            assert!((w2[i * HIDDEN + 2 * i] - 1.0).abs() < 1e-6);
            assert!((w2[i * HIDDEN + 2 * i + 1] - 1.0).abs() < 1e-6);
            assert!((w1[2 * i * FEATURES + i] - 1.0).abs() < 1e-9);
            assert!((w1[(2 * i + 1) * FEATURES + i] + 1.0).abs() < 1e-9);
        }
    }
}
