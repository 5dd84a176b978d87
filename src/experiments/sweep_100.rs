//! `sweep-100`: the notebook's "visualizing features across varying sparsity" (paper §2 at
//! the notebook's scale).
//!
//! n = 100 features of importance 100^(−i/99) (1 down to 0.01) in m = 20 dimensions,
//! ReLU-output model, 20 instances with feature density 20^(−t), t in linspace(0, 1, 20)
//! (1 down to 0.05). The number of represented features grows with sparsity, and the
//! features in superposition are the less important ones. `paper` profile: the notebook's
//! 10,000 steps; `quick`: 5,000 (the trend is already there).

use super::{Experiment, Profile, Work};
use crate::analysis::verdict::{fmt_list, Check, Verdict};
use crate::analysis::REPRESENTED_NORM;
use crate::config::{
    Axis, DataConfig, ImportanceSpec, ModelConfig, PerFeature, SweepConfig, TrainConfig,
    TrainSettings,
};
use crate::model::ModelKind;
use crate::output::plots::Figure;
use crate::output::records::InstanceRecord;
use crate::pipeline::{bars_figure, loss_figure, RunResult};

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "sweep-100",
    section: "§2 (notebook scale)",
    summary: "n=100, m=20, 20 sparsities: more features represented as S grows, the unimportant ones superposed",
    claim: "The number of represented features grows with sparsity; the features in superposition \
            are the less important ones.",
    work: Work::Train {
        config,
        after: None,
    },
    figures,
    verdict,
};

const HIDDEN: usize = 20;

fn config(profile: Profile) -> TrainConfig {
    let steps = match profile {
        Profile::Quick => 5_000,
        Profile::Paper => 10_000,
    };
    TrainConfig {
        name: "sweep-100".into(),
        model: ModelConfig {
            kind: ModelKind::ReluOutput,
            features: 100,
            hidden: HIDDEN,
        },
        train: TrainSettings {
            steps,
            ..TrainSettings::default()
        },
        data: DataConfig {
            feature_probability: PerFeature::All(1.0),
            // 100^(-i/99): I_0 = 1, I_99 = 0.01.
            importance: ImportanceSpec::Decay {
                decay: 100f64.powf(-1.0 / 99.0),
            },
            ..DataConfig::default()
        },
        sweep: Some(SweepConfig {
            feature_probability: Some(Axis::LogRange {
                from: 1.0,
                to: 0.05,
                count: 20,
            }),
            ..SweepConfig::default()
        }),
        instances: Vec::new(),
    }
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let mut figs = vec![("norms".to_string(), bars_figure(run))];
    if let Some(f) = loss_figure(run) {
        figs.push(("loss".to_string(), f));
    }
    figs
}

/// Mean index (lower = more important) of represented features with and without superposition.
fn mean_indices(r: &InstanceRecord) -> Option<(f64, f64)> {
    let (mut sup, mut ded) = (Vec::new(), Vec::new());
    for (i, (&norm, &interf)) in r.feature_norms.iter().zip(&r.interference).enumerate() {
        if norm > REPRESENTED_NORM {
            if interf > 0.1 {
                sup.push(i as f64);
            } else {
                ded.push(i as f64);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    (!sup.is_empty() && !ded.is_empty()).then(|| (mean(&sup), mean(&ded)))
}

fn verdict(run: &RunResult) -> Verdict {
    let mut sel = run.selected();
    sel.sort_by(|a, b| b.density().total_cmp(&a.density()));
    let counts: Vec<f64> = sel.iter().map(|r| r.represented as f64).collect();
    let (first, last) = (
        counts.first().copied().unwrap_or(0.0),
        counts.last().copied().unwrap_or(0.0),
    );
    let half = counts.len() / 2;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut checks = vec![Check {
        name: "more features are represented as sparsity grows".into(),
        passed: counts.len() >= 4 && last > first && mean(&counts[half..]) > mean(&counts[..half]),
        measured: format!("represented, densest to sparsest: {}", fmt_list(&counts, 0)),
        expected:
            "the sparser half represents more on average, and the sparsest more than the densest"
                .into(),
    }];
    if let Some(dense) = sel.first() {
        checks.push(Check {
            name: "dense data: about m = 20 features, the most important ones".into(),
            passed: dense.represented <= HIDDEN + 2
                && dense.feature_norms[..HIDDEN / 2]
                    .iter()
                    .all(|&x| x > REPRESENTED_NORM),
            measured: format!(
                "{} represented at 1−S = {:.2}; norms of the 10 most important {}",
                dense.represented,
                dense.density(),
                fmt_list(&dense.feature_norms[..HIDDEN / 2], 2)
            ),
            expected: "at most m + 2 represented, including the 10 most important".into(),
        });
    }
    let pairs: Vec<(f64, f64, f64)> = sel
        .iter()
        .filter_map(|r| mean_indices(r).map(|(s, d)| (r.density(), s, d)))
        .collect();
    let holds = pairs.iter().filter(|(_, s, d)| s > d).count();
    checks.push(Check {
        name: "the superposed features are the less important ones".into(),
        passed: !pairs.is_empty() && holds * 4 >= pairs.len() * 3,
        measured: format!(
            "superposed features have the higher mean index (lower importance) in {holds} of {} instances with both kinds",
            pairs.len()
        ),
        expected: "in at least 75% of those instances".into(),
    });
    Verdict::from_checks(checks)
}
