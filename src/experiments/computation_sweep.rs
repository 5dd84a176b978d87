//! `computation-sweep`: computing |x| in superposition as sparsity grows (paper,
//! "Superposition vs Sparsity").
//!
//! n = 100 features of importance 0.8^i, values U[−1, 1], m = 40 neurons, the |x| model
//! (h = ReLU(W₁x), y′ = ReLU(W₂h + b)), densities 1, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001 (the
//! paper's captions). The paper: dense, every neuron is monosemantic; as sparsity grows more
//! neurons become polysemantic, the neurons of the most important features staying
//! monosemantic longest; at 0.001 all neurons are highly polysemantic.
//!
//! Our choices: one model per density (as the paper), the notebook's optimiser, init, batch
//! and 10,000 steps in both profiles (at 5,000, seeds 7, 8, 17 and 19 of 1..20 failed the
//! dense check with a neuron or more still mixing two features; at 10,000 all four pass). A
//! neuron is monosemantic when its largest |W₁| weight carries ≥ 90 % of its squared incoming
//! weight. Seed 0: 0, 5, 5, 50, 100, 100, 100 % of the neurons polysemantic.

use super::{density_sweep_config, Experiment, Profile, Work};
use crate::analysis::neurons::{display_order, neurons, polysemantic_share, Neuron};
use crate::analysis::verdict::{fmt_list, Check, Verdict};
use crate::config::TrainConfig;
use crate::model::ModelKind;
use crate::output::plots::{Figure, NeuronPanel};
use crate::output::records::InstanceRecord;
use crate::pipeline::{loss_figure, RunResult};

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "computation-sweep",
    section: "§7 Superposition vs sparsity",
    summary: "|x| with n=100, m=40 over 7 densities: monosemantic neurons when dense, polysemantic when sparse",
    claim: "Computing |x| with n = 100 features and m = 40 neurons: at density 1 every neuron \
            is monosemantic; as sparsity grows more neurons become polysemantic, the neurons \
            of the most important features staying monosemantic longest; at 1−S = 0.001 most \
            neurons are polysemantic.",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

/// Feature densities, densest first.
const DENSITIES: [f64; 7] = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001];
/// "Most neurons polysemantic" at the sparsest density: more than this share.
const SPARSE_POLY_SHARE: f64 = 0.5;
/// At density 1, this share of the used neurons may still mix two features at the end of
/// training (one of 40: seeds 10 and 14 of 1..20 keep one such neuron; every other seed none).
const STRAGGLERS: f64 = 0.025;
/// The share of polysemantic neurons may dip by at most this between neighbouring densities.
const DIP: f64 = 0.1;

pub(super) fn config(profile: Profile) -> TrainConfig {
    // Both profiles train the paper's 10,000 steps: at 5,000 the dense model of 4 seeds in
    // 20 still had a neuron or more mixing two features.
    let _ = profile;
    density_sweep_config(
        "computation-sweep",
        (ModelKind::Abs, 100, 40),
        0.8,
        &DENSITIES,
        (10_000, 1),
    )
}

/// The kept fits, densest first, with their neurons.
fn kept(run: &RunResult) -> Vec<(&InstanceRecord, Vec<Neuron>)> {
    let (n, m) = (run.weights.features, run.weights.hidden);
    let mut sel = run.selected();
    sel.sort_by(|a, b| b.density().total_cmp(&a.density()));
    sel.into_iter()
        .map(|r| (r, neurons(run.w(r), n, m)))
        .collect()
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let (n, m) = (run.weights.features, run.weights.hidden);
    let panels = kept(run)
        .into_iter()
        .map(|(r, ns)| {
            let w = run.w(r);
            let order = display_order(&ns);
            let imp = r.importance.clone().unwrap_or_else(|| vec![1.0; n]);
            let top = imp.iter().cloned().fold(f32::MIN, f32::max).max(1e-12);
            NeuronPanel {
                title: format!(
                    "1−S = {:.3}: {:.0} % of the neurons polysemantic",
                    r.density(),
                    100.0 * polysemantic_share(&ns)
                ),
                weights: order
                    .iter()
                    .map(|&j| (0..n).map(|i| (w[i * m + j] as f64).abs()).collect())
                    .collect(),
                labels: order.iter().map(|j| j.to_string()).collect(),
                shade: imp.iter().map(|&i| (i / top) as f64).collect(),
            }
        })
        .collect();
    let mut figs = vec![(
        "neurons".to_string(),
        Figure::NeuronBars { panels, columns: 2 },
    )];
    if let Some(f) = loss_figure(run) {
        figs.push(("loss".to_string(), f));
    }
    figs
}

/// Mean index (lower = more important) of the features that own a monosemantic neuron, and of
/// the other features that are some alive neuron's primary, when both exist.
fn mono_vs_poly_features(ns: &[Neuron]) -> Option<(f64, f64)> {
    let mut mono: Vec<usize> = ns
        .iter()
        .filter(|x| x.monosemantic())
        .map(|x| x.primary)
        .collect();
    mono.sort_unstable();
    mono.dedup();
    let mut rest: Vec<usize> = ns
        .iter()
        .filter(|x| x.alive && !mono.contains(&x.primary))
        .map(|x| x.primary)
        .collect();
    rest.sort_unstable();
    rest.dedup();
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
    (!mono.is_empty() && !rest.is_empty()).then(|| (mean(&mono), mean(&rest)))
}

fn verdict(run: &RunResult) -> Verdict {
    let sel = kept(run);
    let shares: Vec<f64> = sel.iter().map(|(_, ns)| polysemantic_share(ns)).collect();
    let densities: Vec<f64> = sel.iter().map(|(r, _)| r.density()).collect();
    let mut checks = Vec::new();
    if let Some((dense, ns)) = sel.first() {
        let alive = ns.iter().filter(|x| x.alive).count();
        let mono = ns.iter().filter(|x| x.monosemantic()).count();
        let stragglers = (STRAGGLERS * ns.len() as f64).floor() as usize;
        checks.push(Check {
            name: "dense: every neuron monosemantic (one straggler in 40 allowed)".into(),
            passed: alive * 2 >= ns.len() && mono + stragglers >= alive,
            measured: format!(
                "at 1−S = {:.3}: {mono} of {alive} used neurons monosemantic",
                dense.density()
            ),
            expected: format!(
                "all used neurons but at most {stragglers} still mixing (at least half of them used)"
            ),
        });
    }
    if let Some((sparse, _)) = sel.last() {
        let share = shares.last().copied().unwrap_or(0.0);
        checks.push(Check {
            name: "sparsest: most neurons polysemantic".into(),
            passed: share > SPARSE_POLY_SHARE,
            measured: format!(
                "at 1−S = {:.3}: {:.0} % polysemantic",
                sparse.density(),
                100.0 * share
            ),
            expected: format!("more than {:.0} %", 100.0 * SPARSE_POLY_SHARE),
        });
    }
    let rising = shares.windows(2).all(|w| w[1] >= w[0] - DIP);
    checks.push(Check {
        name: "the share of polysemantic neurons rises with sparsity".into(),
        passed: shares.len() >= 3 && rising && shares.last() > shares.first(),
        measured: format!(
            "polysemantic share at 1−S = {}: {}",
            fmt_list(&densities, 3),
            fmt_list(&shares, 2)
        ),
        expected: format!(
            "higher at the sparsest than at the densest, never falling by more than {DIP} to the next sparser point"
        ),
    });
    let compared: Vec<(f64, f64, f64)> = sel
        .iter()
        .filter_map(|(r, ns)| mono_vs_poly_features(ns).map(|(a, b)| (r.density(), a, b)))
        .collect();
    let holds = compared.iter().filter(|(_, a, b)| a < b).count();
    let shown: Vec<String> = compared
        .iter()
        .map(|(p, a, b)| format!("1−S = {p:.3}: {a:.1} vs {b:.1}"))
        .collect();
    checks.push(Check {
        name: "the most important features keep monosemantic neurons longest".into(),
        passed: !compared.is_empty() && holds == compared.len(),
        measured: format!(
            "mean index of features owning a monosemantic neuron vs features with only polysemantic ones: {}",
            if shown.is_empty() { "no density has both".into() } else { shown.join("; ") }
        ),
        expected: "lower (more important) at every density that has both, and at least one such density".into(),
    });
    Verdict::from_checks(checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::weights::Weights;
    use crate::pipeline::instance_records;

    const N: usize = 100;
    const M: usize = 40;

    /// Judge one model per density: `w_of(level)` is the `[n][m]` W₁ᵀ at DENSITIES[level].
    fn judge(w_of: impl Fn(usize) -> Vec<f32>) -> Verdict {
        let cfg = config(Profile::Quick);
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
        let weights = Weights {
            w_dec: Some(w.clone()),
            b: Some(vec![0.0; N * DENSITIES.len()]),
            kind: Some(ModelKind::Abs),
            ..Weights::w_only(N, M, w)
        };
        let records = instance_records(&weights, Some(&specs), None);
        verdict(&RunResult::analysed(
            "computation-sweep",
            Some(cfg),
            weights,
            records,
        ))
    }

    /// Neurons 0..mono monosemantic (feature j/2, ±), the rest each mixing `spread` features
    /// starting at feature `first + j`.
    fn model(mono: usize, spread: usize, first: usize) -> Vec<f32> {
        let mut w = vec![0.0; N * M];
        for j in 0..M {
            let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
            if j < mono {
                w[(j / 2) * M + j] = sign;
            } else {
                for t in 0..spread {
                    w[((first + j + t) % N) * M + j] = sign * if t == 0 { 1.0 } else { 0.6 };
                }
            }
        }
        w
    }

    /// Mono neurons from 40 down to 0, the polysemantic ones on less important features.
    fn paper_like(level: usize) -> Vec<f32> {
        let mono = [40, 36, 30, 20, 10, 0, 0][level];
        model(mono, 3, 20)
    }

    #[test]
    fn growing_polysemanticity_passes() {
        let v = judge(paper_like);
        assert!(v.reproduced, "{v:#?}");
    }

    #[test]
    fn monosemantic_everywhere_fails() {
        let v = judge(|_| model(M, 1, 0));
        assert!(!v.reproduced);
        assert!(
            v.checks[0].passed && !v.checks[1].passed && !v.checks[2].passed,
            "{v:#?}"
        );
    }

    #[test]
    fn a_polysemantic_dense_model_fails() {
        let v = judge(|level| {
            if level == 0 {
                model(0, 3, 0)
            } else {
                paper_like(level)
            }
        });
        assert!(!v.reproduced && !v.checks[0].passed, "{v:#?}");
    }

    /// One dense neuron in 40 still mixing two features is allowed, two are not.
    #[test]
    fn one_dense_straggler_passes_two_fail() {
        let with_mixed = |mixed: usize| {
            move |level: usize| {
                if level == 0 {
                    let mut w = model(M, 1, 0);
                    for j in 0..mixed {
                        w[(30 + j) * M + j] = 0.8; // neuron j also reads feature 30 + j
                    }
                    w
                } else {
                    paper_like(level)
                }
            }
        };
        assert!(judge(with_mixed(1)).checks[0].passed);
        let v = judge(with_mixed(2));
        assert!(!v.reproduced && !v.checks[0].passed, "{v:#?}");
    }

    #[test]
    fn the_sweep_reversed_fails() {
        let v = judge(|level| paper_like(DENSITIES.len() - 1 - level));
        assert!(!v.reproduced && !v.checks[2].passed, "{v:#?}");
    }

    /// The monosemantic neurons carry the least important of the represented features.
    #[test]
    fn unimportant_features_staying_monosemantic_fail() {
        let v = judge(|level| {
            if level == 3 {
                let mut w = vec![0.0; N * M];
                for j in 0..M {
                    if j < 20 {
                        w[(60 + j) * M + j] = 1.0; // features 60..80 alone
                    } else {
                        w[(j - 20) * M + j] = 1.0; // features 0..20 mixed
                        w[(j - 19) * M + j] = 0.8;
                    }
                }
                w
            } else {
                paper_like(level)
            }
        });
        assert!(!v.reproduced && !v.checks[3].passed, "{v:#?}");
    }
}
