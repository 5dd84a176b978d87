//! `linear-vs-relu`: the basic results of paper §2 ("Demonstrating Superposition").
//!
//! n = 20 features of importance 0.7^i in m = 5 dimensions; a linear model and a ReLU-output
//! model at each feature density 1−S in {1, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001} (the figure's
//! tick values are not readable in any copy of the paper; this ladder is the one two
//! independent replications use, and the one the paper's §8 captions give). Notebook training
//! settings. The linear model learns the top m features at every density (PCA); the ReLU
//! model does the same when dense, and represents more and more features in superposition,
//! the least important first, as sparsity grows.

use super::{Experiment, Profile, Work};
use crate::analysis::metrics::gram;
use crate::analysis::verdict::{fmt_list, Check, Verdict};
use crate::analysis::REPRESENTED_NORM;
use crate::config::{
    Axis, DataConfig, ImportanceSpec, ModelConfig, PerFeature, SweepConfig, TrainConfig,
    TrainSettings,
};
use crate::model::ModelKind;
use crate::output::plots::Figure;
use crate::output::records::InstanceRecord;
use crate::pipeline::{bars_figure, gram_figure, loss_figure, RunResult};

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "linear-vs-relu",
    section: "§2 Basic results",
    summary:
        "n=20, m=5: linear model = top-5 PCA at any sparsity; ReLU model superposes more as S grows",
    claim: "The linear model always learns exactly the top m = 5 features (WᵀW a projection). The \
            ReLU model matches it when dense; as sparsity grows it represents more features, in \
            superposition, starting with the least important.",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

/// Feature densities 1−S of the sweep.
pub const DENSITIES: [f64; 7] = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001];

const HIDDEN: usize = 5;

fn config(_profile: Profile) -> TrainConfig {
    TrainConfig {
        name: "linear-vs-relu".into(),
        model: ModelConfig {
            kind: ModelKind::ReluOutput,
            features: 20,
            hidden: HIDDEN,
        },
        train: TrainSettings::default(),
        data: DataConfig {
            feature_probability: PerFeature::All(1.0),
            importance: ImportanceSpec::Decay { decay: 0.7 },
            ..DataConfig::default()
        },
        sweep: Some(SweepConfig {
            kind: Some(vec![ModelKind::Linear, ModelKind::ReluOutput]),
            feature_probability: Some(Axis::Values(DENSITIES.to_vec())),
            ..SweepConfig::default()
        }),
        instances: Vec::new(),
    }
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let mut figs = vec![
        ("wtw".to_string(), gram_figure(run)),
        ("norms".to_string(), bars_figure(run)),
    ];
    if let Some(f) = loss_figure(run) {
        figs.push(("loss".to_string(), f));
    }
    figs
}

fn is_kind(r: &InstanceRecord, kind: ModelKind) -> bool {
    r.kind.as_deref() == Some(kind.name())
}

/// Whether exactly the `k` most important features (0..k) have norm > 0.5.
fn top_k_only(r: &InstanceRecord, k: usize) -> bool {
    r.feature_norms
        .iter()
        .enumerate()
        .all(|(i, &x)| (x > REPRESENTED_NORM) == (i < k))
}

/// Features in superposition: represented, with interference Σ_{j≠i}(Ŵ_i·W_j)² > 0.1.
fn superposed(r: &InstanceRecord) -> Vec<usize> {
    (0..r.feature_norms.len())
        .filter(|&i| r.feature_norms[i] > REPRESENTED_NORM && r.interference[i] > 0.1)
        .collect()
}

fn verdict(run: &RunResult) -> Verdict {
    let n = run.weights.features;
    let selected = run.selected();
    let linear: Vec<&InstanceRecord> = selected
        .iter()
        .copied()
        .filter(|r| is_kind(r, ModelKind::Linear))
        .collect();
    let mut relu: Vec<&InstanceRecord> = selected
        .iter()
        .copied()
        .filter(|r| is_kind(r, ModelKind::ReluOutput))
        .collect();
    relu.sort_by(|a, b| b.density().total_cmp(&a.density()));
    let mut checks = Vec::new();

    let linear_ok: Vec<String> = linear
        .iter()
        .filter(|r| !top_k_only(r, HIDDEN))
        .map(|r| format!("{:.3}", r.density()))
        .collect();
    checks.push(Check {
        name: "linear model: exactly the top 5 features are represented at every density".into(),
        passed: !linear.is_empty() && linear_ok.is_empty(),
        measured: if linear_ok.is_empty() {
            format!("top 5 only at all {} densities", linear.len())
        } else {
            format!("not so at 1−S = {}", linear_ok.join(", "))
        },
        expected: "‖W_i‖ > 0.5 exactly for i < 5".into(),
    });
    let worst = linear
        .iter()
        .map(|r| {
            let g = gram(run.w(r), n, HIDDEN);
            let mut dev: f64 = 0.0;
            for i in 0..n {
                for j in 0..n {
                    let target = if i == j && i < HIDDEN { 1.0 } else { 0.0 };
                    dev = dev.max((g[i * n + j] - target).abs());
                }
            }
            dev
        })
        .fold(0.0f64, f64::max);
    checks.push(Check {
        name: "linear model: WᵀW is the projection onto the top 5 features".into(),
        passed: !linear.is_empty() && worst < 0.15,
        measured: format!("max |WᵀW − diag(1,1,1,1,1,0,…)| = {worst:.3}"),
        expected: "below 0.15 at every density".into(),
    });
    if let Some(dense) = relu.first() {
        checks.push(Check {
            name: "ReLU model, dense (S = 0): the same top 5 features as the linear model".into(),
            passed: top_k_only(dense, HIDDEN),
            measured: format!("norms {}", fmt_list(&dense.feature_norms, 2)),
            expected: "‖W_i‖ > 0.5 exactly for i < 5".into(),
        });
    }
    let counts: Vec<f64> = relu.iter().map(|r| r.represented as f64).collect();
    let last = counts.last().copied().unwrap_or(0.0);
    checks.push(Check {
        name: "ReLU model: more features represented as sparsity grows".into(),
        passed: counts.len() >= 2 && last >= 2.0 * HIDDEN as f64 && last > counts[0],
        measured: format!(
            "represented at 1−S = {}: {}",
            fmt_list(&relu.iter().map(|r| r.density()).collect::<Vec<_>>(), 3),
            fmt_list(&counts, 0)
        ),
        expected: "rising from 5 to at least 10 (twice m) at the sparsest".into(),
    });
    // Where superposition first appears, it involves the less important features.
    let first = relu.iter().find(|r| !superposed(r).is_empty());
    if let Some(r) = first {
        let sup = superposed(r);
        let dedicated: Vec<usize> = (0..n)
            .filter(|&i| r.feature_norms[i] > REPRESENTED_NORM && !sup.contains(&i))
            .collect();
        let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
        checks.push(Check {
            name: "ReLU model: superposition starts with the less important features".into(),
            passed: dedicated.is_empty() || mean(&sup) > mean(&dedicated),
            measured: format!(
                "at 1−S = {:.3}: superposed features {:?}, dedicated {:?}",
                r.density(),
                sup,
                dedicated
            ),
            expected:
                "superposed features have higher indices (lower importance) than dedicated ones"
                    .into(),
        });
    } else {
        checks.push(Check {
            name: "ReLU model: superposition starts with the less important features".into(),
            passed: false,
            measured: "no ReLU instance shows superposition".into(),
            expected: "superposition at some density".into(),
        });
    }
    Verdict::from_checks(checks)
}
