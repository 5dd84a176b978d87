//! `intro`: the paper's opening figure (§1; notebook cells 6–9).
//!
//! Five features of importance 0.9^i in two hidden dimensions, ReLU-output model, 10
//! instances with feature probability p = 20^(-t), t in linspace(0, 1, 10) (p from 1 to
//! 0.05), AdamW lr 1e-3, batch 1024, 10,000 steps: the notebook's settings exactly. The
//! paper's panels: dense data gives the two most important features orthogonal dimensions;
//! medium sparsity (S = 0.8) four features as two antipodal pairs; S ≥ 0.9 all five as a
//! pentagon.
//!
//! Restarts: at S = 0.95 a single model ends as two antipodal pairs with the fifth feature
//! dropped (a local minimum, loss ≈ 2.4e-3 against the pentagon's 1.5e-3) about 3 times in 10,
//! in our runs and in our PyTorch reference alike. Both profiles train 5 restarts per point and
//! keep the lowest-loss one, so a seed misses the pentagon with probability ≈ 0.3⁵ ≈ 0.2%
//! (measured: 20 of seeds 1..20 reproduce; `bench/seeds.sh intro`).

use super::{Experiment, Profile, Work};
use crate::analysis::geometry::{cosine, PlaneGeometry};
use crate::analysis::verdict::{fmt_list, Check, Verdict};
use crate::analysis::REPRESENTED_NORM;
use crate::config::{
    Axis, DataConfig, ImportanceSpec, ModelConfig, PerFeature, SweepConfig, TrainConfig,
    TrainSettings,
};
use crate::model::ModelKind;
use crate::output::records::InstanceRecord;
use crate::pipeline::{standard_figures, RunResult};

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "intro",
    section: "§1 Introduction",
    summary:
        "5 features in 2 dimensions: orthogonal pair → antipodal pairs → pentagon as sparsity grows",
    claim: "Dense: the 2 most important features get orthogonal dimensions, the rest are dropped. \
            Medium sparsity: 4 features as 2 antipodal pairs. High sparsity: all 5 as a pentagon.",
    work: Work::Train {
        config,
        after: None,
    },
    figures: standard_figures,
    verdict,
};

fn config(_profile: Profile) -> TrainConfig {
    TrainConfig {
        name: "intro".into(),
        model: ModelConfig {
            kind: ModelKind::ReluOutput,
            features: 5,
            hidden: 2,
        },
        train: TrainSettings::default(),
        data: DataConfig {
            feature_probability: PerFeature::All(1.0),
            importance: ImportanceSpec::Decay { decay: 0.9 },
            ..DataConfig::default()
        },
        sweep: Some(SweepConfig {
            feature_probability: Some(Axis::LogRange {
                from: 1.0,
                to: 0.05,
                count: 10,
            }),
            restarts: 5,
            ..SweepConfig::default()
        }),
        instances: Vec::new(),
    }
}

fn verdict(run: &RunResult) -> Verdict {
    let selected = run.selected();
    let by_p = |a: &&&InstanceRecord, b: &&&InstanceRecord| a.density().total_cmp(&b.density());
    let (Some(dense), Some(sparse)) = (
        selected.iter().max_by(by_p).copied(),
        selected.iter().min_by(by_p).copied(),
    ) else {
        return Verdict::from_checks(vec![]);
    };
    let n = run.weights.features;
    let mut checks = Vec::new();

    // Densest: exactly features 0 and 1 represented, orthogonal.
    let norms = &dense.feature_norms;
    let top_two_only = (0..n).all(|i| (norms[i] > REPRESENTED_NORM) == (i < 2));
    checks.push(Check {
        name: format!(
            "densest instance (S = {:.2}): exactly the two most important features have norm > 0.5",
            1.0 - dense.density()
        ),
        passed: top_two_only,
        measured: format!("norms {}", fmt_list(norms, 2)),
        expected: "norms of features 0, 1 > 0.5; features 2–4 ≤ 0.5".into(),
    });
    let w = run.w(dense);
    let cos = cosine(&w[0..2], &w[2..4]);
    checks.push(Check {
        name: "densest instance: those two features are orthogonal".into(),
        passed: cos.abs() < 0.1,
        measured: format!("|cos(W_0, W_1)| = {:.3}", cos.abs()),
        expected: "|cos| < 0.1".into(),
    });

    // Medium sparsity: some instance in between shows two antipodal pairs (paper: S = 0.8).
    let middle: Vec<String> = selected
        .iter()
        .filter(|r| r.index != dense.index && r.index != sparse.index)
        .filter(|r| {
            let g = PlaneGeometry::of(run.w(r), n);
            g.features.len() == 4 && g.antipodal_pairs.len() == 2
        })
        .map(|r| format!("{:.2}", 1.0 - r.density()))
        .collect();
    checks.push(Check {
        name: "an intermediate sparsity stores four features as two antipodal pairs".into(),
        passed: !middle.is_empty(),
        measured: if middle.is_empty() {
            "no intermediate instance has two antipodal pairs".into()
        } else {
            format!("two antipodal pairs at S = {}", middle.join(", "))
        },
        expected: "at least one instance between the densest and sparsest (paper: S = 0.8)".into(),
    });

    // Sparsest: all five represented, as a regular pentagon.
    let norms = &sparse.feature_norms;
    checks.push(Check {
        name: format!(
            "sparsest instance (S = {:.2}): all five features have norm > 0.5",
            1.0 - sparse.density()
        ),
        passed: norms.iter().all(|&x| x > REPRESENTED_NORM),
        measured: format!("norms {}", fmt_list(norms, 2)),
        expected: "all norms > 0.5".into(),
    });
    let g = PlaneGeometry::of(run.w(sparse), n);
    checks.push(Check {
        name: "sparsest instance: neighbouring features are 72° apart (a pentagon)".into(),
        passed: g.features.len() == 5 && g.is_regular_polygon(10.0),
        measured: format!("angles between neighbours {} degrees", fmt_list(&g.gaps, 1)),
        expected: "five gaps of 72° ± 10°".into(),
    });
    Verdict::from_checks(checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::output::weights::Weights;
    use crate::pipeline::instance_records;

    /// Hand-made weights for three instances (dense, medium, sparse) judged by the verdict.
    fn judge(sparse_angles: &[f64]) -> Verdict {
        let at = |deg: &[f64]| -> Vec<f32> {
            deg.iter()
                .flat_map(|d| [d.to_radians().cos() as f32, d.to_radians().sin() as f32])
                .collect()
        };
        let mut w = at(&[0.0, 90.0]);
        w.extend([0.0; 6]);
        w.extend(at(&[0.0, 180.0, 90.0, 270.0]));
        w.extend([0.0; 2]);
        let mut sparse = at(sparse_angles);
        sparse.resize(10, 0.0);
        w.extend(sparse);
        let mut cfg: TrainConfig = config(Profile::Quick);
        let sweep = cfg.sweep.as_mut().unwrap();
        sweep.feature_probability = Some(Axis::Values(vec![1.0, 0.2, 0.05]));
        sweep.restarts = 1;
        let specs = cfg.resolve().unwrap();
        let weights = Weights::w_only(5, 2, w);
        let records = instance_records(&weights, Some(&specs), None);
        let run = RunResult::analysed("intro", None, weights, records);
        verdict(&run)
    }

    #[test]
    fn a_pentagon_passes() {
        let v = judge(&[10.0, 82.0, 154.0, 226.0, 298.0]);
        assert!(v.reproduced, "{v:#?}");
    }

    #[test]
    fn two_digons_at_the_sparsest_fail() {
        let v = judge(&[0.0, 180.0, 90.0, 270.0]);
        assert!(!v.reproduced);
        assert!(!v.checks[3].passed && !v.checks[4].passed);
        assert!(v.checks[..3].iter().all(|c| c.passed));
    }
}
