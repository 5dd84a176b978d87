//! `privileged-basis`: superposition in a privileged basis (paper, "Superposition in a
//! Privileged Basis").
//!
//! h = ReLU(Wx), x′ = ReLU(Wᵀh + b): the hidden ReLU makes the neurons a privileged basis, so
//! one can ask whether each neuron carries one feature or several. n = 10 features of
//! importance 0.75^i, m = 5 neurons, densities 0.75, 0.35, 0.15, 0.1, 0.06, 0.02, 0.01 (ARENA's
//! list for the paper's figure). The paper keeps the lowest-loss of 1,000 models per density:
//! dense, the five most important features each own a neuron (monosemantic); as sparsity grows
//! neurons turn polysemantic; at the sparsest, each feature is carried by a pair of neurons,
//! the ten features on the C(5, 2) = 10 distinct pairs.
//!
//! Our choices: the notebook's optimiser, init, batch and 10,000 steps; `paper`: 1,000
//! restarts, `quick`: 100. Seed 0: the kept fits show 5, 3, 2, 0, 0, 0, 0 monosemantic
//! neurons, and the ten pairs at 0.01, reached by 11 of the 100 restarts (at 5,000 steps only 7,
//! and for seed 1 only 2, none of them the lowest-loss fit). A neuron is monosemantic when one weight carries
//! ≥ 90 % of its squared incoming weight; a feature drives a neuron when its weight there is
//! positive and at least half its largest positive weight (negative weights inhibit).

use super::{density_sweep_config, Experiment, Profile, Work};
use crate::analysis::neurons::{driven_neurons, neurons};
use crate::analysis::verdict::{fmt_list, Check, Verdict};
use crate::config::TrainConfig;
use crate::model::ModelKind;
use crate::output::plots::{Figure, MatrixPanel, NeuronPanel};
use crate::output::records::InstanceRecord;
use crate::pipeline::RunResult;

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "privileged-basis",
    section: "§6 Superposition in a privileged basis",
    summary: "h=ReLU(Wx), n=10, m=5: monosemantic neurons when dense, every feature on a pair of neurons when sparse",
    claim: "With a ReLU hidden layer the neurons are a privileged basis. Dense, the five most \
            important features each get a monosemantic neuron; as sparsity grows the neurons \
            become polysemantic; at 1−S = 0.01 every feature is carried by a pair of neurons, \
            the ten features on the ten distinct pairs of the five neurons.",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

/// Features.
const FEATURES: usize = 10;
/// Neurons.
const HIDDEN: usize = 5;
/// Feature densities, densest first.
const DENSITIES: [f64; 7] = [0.75, 0.35, 0.15, 0.1, 0.06, 0.02, 0.01];
/// A feature whose largest positive weight is below this drives no neuron (not represented).
const DRIVE_FLOOR: f64 = 0.2;

fn config(profile: Profile) -> TrainConfig {
    let restarts = match profile {
        Profile::Quick => 100,
        Profile::Paper => 1_000,
    };
    density_sweep_config(
        "privileged-basis",
        (ModelKind::ReluHidden, FEATURES, HIDDEN),
        0.75,
        &DENSITIES,
        (10_000, restarts),
    )
}

/// The kept fits, densest first.
fn kept(run: &RunResult) -> Vec<&InstanceRecord> {
    let mut sel = run.selected();
    sel.sort_by(|a, b| b.density().total_cmp(&a.density()));
    sel
}

/// Neurons in drawing order: by the most important feature driving them (the feature with
/// the largest positive weight), then by that weight, largest first; unused neurons last.
fn neuron_order(w: &[f32], n: usize, m: usize) -> Vec<usize> {
    let top_driver = |j: usize| {
        (0..n)
            .map(|i| (i, w[i * m + j]))
            .filter(|&(_, v)| v > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or((n, 0.0), |(i, v)| (i, v))
    };
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| {
        let (fa, va) = top_driver(a);
        let (fb, vb) = top_driver(b);
        fa.cmp(&fb).then(vb.total_cmp(&va)).then(a.cmp(&b))
    });
    order
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let (n, m) = (run.weights.features, run.weights.hidden);
    let (mut bars, mut matrices) = (Vec::new(), Vec::new());
    for r in kept(run) {
        let w = run.w(r);
        let order = neuron_order(w, n, m);
        let imp = r.importance.clone().unwrap_or_else(|| vec![1.0; n]);
        let top = imp.iter().cloned().fold(f32::MIN, f32::max).max(1e-12);
        let mono = neurons(w, n, m).iter().filter(|x| x.monosemantic()).count();
        let title = format!("1−S = {:.2}: {mono} monosemantic", r.density());
        bars.push(NeuronPanel {
            title: title.clone(),
            weights: order
                .iter()
                .map(|&j| (0..n).map(|i| w[i * m + j] as f64).collect())
                .collect(),
            labels: order.iter().map(|j| j.to_string()).collect(),
            shade: imp.iter().map(|&i| (i / top) as f64).collect(),
        });
        let values: Vec<f64> = order
            .iter()
            .flat_map(|&j| (0..n).map(move |i| w[i * m + j] as f64))
            .collect();
        matrices.push(MatrixPanel {
            title,
            rows: m,
            scale: values.iter().map(|v| v.abs()).fold(0.0, f64::max),
            values,
            row_label: "neuron (drawing order)".into(),
            col_label: "feature".into(),
            row_names: Vec::new(),
            col_names: Vec::new(),
        });
    }
    vec![
        (
            "neurons".to_string(),
            Figure::NeuronBars {
                panels: bars,
                columns: 4,
            },
        ),
        (
            "weights".to_string(),
            Figure::Matrices {
                panels: matrices,
                columns: 4,
            },
        ),
    ]
}

fn verdict(run: &RunResult) -> Verdict {
    let (n, m) = (run.weights.features, run.weights.hidden);
    let sel = kept(run);
    // (feature, neuron) of every monosemantic neuron, per kept fit.
    let mono: Vec<Vec<(usize, usize)>> = sel
        .iter()
        .map(|r| {
            neurons(run.w(r), n, m)
                .iter()
                .filter(|x| x.monosemantic())
                .map(|x| (x.primary, x.index))
                .collect()
        })
        .collect();
    let counts: Vec<f64> = mono.iter().map(|v| v.len() as f64).collect();
    let mut checks = Vec::new();
    if let (Some(dense), Some(primaries)) = (sel.first(), mono.first()) {
        let w = run.w(dense);
        let mut features: Vec<usize> = primaries.iter().map(|&(i, _)| i).collect();
        features.sort_unstable();
        // The feature must drive its neuron (a lone negative weight never fires it).
        let driving = primaries.iter().all(|&(i, j)| w[i * m + j] > 0.5);
        let want: Vec<usize> = (0..m).collect();
        checks.push(Check {
            name: "dense: the five most important features each own a neuron".into(),
            passed: features == want && driving,
            measured: format!(
                "at 1−S = {:.2}: monosemantic neurons carry features {features:?}",
                dense.density()
            ),
            expected: format!("{m} monosemantic neurons, for features {want:?}"),
        });
    }
    if let Some(sparse) = sel.last() {
        let driven = driven_neurons(run.w(sparse), n, m, DRIVE_FLOOR);
        let mut pairs: Vec<&Vec<usize>> = driven.iter().filter(|d| d.len() == 2).collect();
        let all_pairs = pairs.len() == n;
        pairs.sort();
        pairs.dedup();
        let shown: Vec<String> = driven
            .iter()
            .enumerate()
            .map(|(i, d)| format!("{i}→{d:?}"))
            .collect();
        checks.push(Check {
            name: "sparse: every feature on a pair of neurons, ten distinct pairs".into(),
            passed: all_pairs && pairs.len() == n,
            measured: format!(
                "at 1−S = {:.2}: {} distinct pairs; {}",
                sparse.density(),
                pairs.len(),
                shown.join(" ")
            ),
            expected: format!(
                "each of the {n} features drives exactly two neurons, all pairs distinct"
            ),
        });
    }
    let falling = counts.windows(2).all(|w| w[1] <= w[0]);
    checks.push(Check {
        name: "monosemantic neurons decrease as sparsity grows".into(),
        passed: counts.len() >= 3 && falling && counts.last() < counts.first(),
        measured: format!(
            "monosemantic neurons, 1−S = {}: {}",
            fmt_list(&sel.iter().map(|r| r.density()).collect::<Vec<_>>(), 2),
            fmt_list(&counts, 0)
        ),
        expected: "never more than at the next denser point, and fewer at the sparsest than at the densest".into(),
    });
    Verdict::from_checks(checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::weights::Weights;
    use crate::pipeline::instance_records;

    /// Judge one kept model per density: `w_of(level)` is the `[n][m]` W at DENSITIES[level].
    fn judge(w_of: impl Fn(usize) -> Vec<f32>) -> Verdict {
        let mut cfg = config(Profile::Quick);
        cfg.sweep.as_mut().unwrap().restarts = 1;
        let specs = cfg.resolve().unwrap();
        let w: Vec<f32> = specs
            .iter()
            .flat_map(|s| {
                let level = DENSITIES
                    .iter()
                    .position(|&p| (p as f32) == s.feature_probability[0])
                    .unwrap();
                w_of(level)
            })
            .collect();
        let weights = Weights::w_only(FEATURES, HIDDEN, w);
        let weights = Weights {
            kind: Some(ModelKind::ReluHidden),
            ..weights
        };
        let records = instance_records(&weights, Some(&specs), None);
        verdict(&RunResult::analysed(
            "privileged-basis",
            Some(cfg),
            weights,
            records,
        ))
    }

    /// Features 0..k on their own neurons (k ≤ 5), the rest unrepresented.
    fn monosemantic(k: usize) -> Vec<f32> {
        let mut w = vec![0.0; FEATURES * HIDDEN];
        for i in 0..k {
            w[i * HIDDEN + i] = 1.0;
        }
        w
    }

    /// Feature i on the i-th pair of neurons (weights 0.7), −0.7 on the other three.
    fn pairs() -> Vec<f32> {
        let all: Vec<(usize, usize)> = (0..HIDDEN)
            .flat_map(|a| (a + 1..HIDDEN).map(move |b| (a, b)))
            .collect();
        let mut w = vec![-0.7; FEATURES * HIDDEN];
        for (i, &(a, b)) in all.iter().enumerate() {
            w[i * HIDDEN + a] = 0.7;
            w[i * HIDDEN + b] = 0.7;
        }
        w
    }

    /// Mono neurons 5, 3, 2, 1, 0, then pairs at the two sparsest points.
    fn paper_like(level: usize) -> Vec<f32> {
        match level {
            0 => monosemantic(5),
            1 => {
                let mut w = monosemantic(3);
                // features 3, 4, 5 in a binary code on neurons 3 and 4.
                w[3 * HIDDEN + 3] = 0.8;
                w[3 * HIDDEN + 4] = 0.8;
                w[4 * HIDDEN + 3] = 0.8;
                w[4 * HIDDEN + 4] = -0.8;
                w[5 * HIDDEN + 3] = -0.8;
                w[5 * HIDDEN + 4] = 0.8;
                w
            }
            2..=4 => {
                let keep = 4 - level; // 2, 1, 0 monosemantic
                let mut w = pairs();
                for i in 0..keep {
                    for j in 0..HIDDEN {
                        w[i * HIDDEN + j] = 0.0;
                    }
                    for f in 0..FEATURES {
                        w[f * HIDDEN + i] = 0.0;
                    }
                    w[i * HIDDEN + i] = 1.0;
                }
                w
            }
            _ => pairs(),
        }
    }

    #[test]
    fn the_paper_sequence_passes() {
        let v = judge(paper_like);
        assert!(v.reproduced, "{v:#?}");
    }

    #[test]
    fn monosemantic_at_every_density_fails() {
        let v = judge(|_| monosemantic(5));
        assert!(!v.reproduced);
        assert!(
            v.checks[0].passed && !v.checks[1].passed && !v.checks[2].passed,
            "{v:#?}"
        );
    }

    #[test]
    fn less_important_features_on_the_dense_neurons_fail() {
        let v = judge(|level| {
            if level == 0 {
                let mut w = vec![0.0; FEATURES * HIDDEN];
                for j in 0..HIDDEN {
                    w[(FEATURES - 1 - j) * HIDDEN + j] = 1.0;
                }
                w
            } else {
                paper_like(level)
            }
        });
        assert!(!v.reproduced && !v.checks[0].passed, "{v:#?}");
    }

    #[test]
    fn repeated_pairs_fail() {
        let v = judge(|level| {
            if level == DENSITIES.len() - 1 {
                let mut w = pairs();
                // Feature 9 takes feature 0's pair.
                w.copy_within(..HIDDEN, 9 * HIDDEN);
                w
            } else {
                paper_like(level)
            }
        });
        assert!(!v.reproduced && !v.checks[1].passed, "{v:#?}");
    }

    #[test]
    fn monosemanticity_returning_with_sparsity_fails() {
        let v = judge(|level| {
            if level == 5 {
                monosemantic(4)
            } else {
                paper_like(level)
            }
        });
        assert!(!v.reproduced && !v.checks[2].passed, "{v:#?}");
    }

    #[test]
    fn neuron_order_follows_the_most_important_driver() {
        // neuron 0 driven by feature 2, neuron 1 by feature 0, neuron 2 unused.
        let w = [0.0f32, 1.0, 0.0, 0.0, 0.0, 0.0, 0.9, -2.0, 0.0];
        assert_eq!(neuron_order(&w, 3, 3), vec![1, 0, 2]);
    }
}
