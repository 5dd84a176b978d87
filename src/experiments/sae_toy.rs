//! `sae-toy`: sparse autoencoders on a toy model's hidden activations (the tie-in of
//! paper-catalog F2, as in ARENA's "SAEs in toy models").
//!
//! A ReLU-output toy model with n = 64 features in m = 16 dimensions, importance 1, trained at
//! four densities; at the sparse end it represents far more features than it has dimensions.
//! Then L1 SAEs are trained on h = Wx of each density's model, and each SAE's decoder is
//! scored against the ground truth: the normalised directions W_i of the represented features
//! (‖W_i‖ > 0.5). The claim: dictionary learning takes the superposition apart — a good SAE
//! recovers (cosine > 0.9) at least 90 % of the represented features, more than m.

use super::{Experiment, Profile, Stages, Work};
use crate::analysis::verdict::{Check, Verdict};
use crate::config::TrainConfig;
use crate::model::ModelKind;
use crate::output::plots::Figure;
use crate::pipeline::{loss_figure, RunResult};
use crate::sae::config::{ActivationsConfig, GridConfig, KindName, SaeConfig, SaeTrainConfig};
use crate::sae::run::SaeResults;

/// The registry entry.
pub const EXPERIMENT: Experiment = Experiment {
    name: "sae-toy",
    section: "Follow-up: sparse autoencoders",
    summary: "L1 SAEs on the hidden activations of a superposed toy model recover its features (> m of them)",
    claim: "A sparse autoencoder trained on the hidden activations of a toy model in \
            superposition recovers the model's features: at the sparsest density, where the \
            model represents more features than it has dimensions, the best SAE finds at least \
            90 % of the represented directions with cosine > 0.9 — more features than m.",
    work: Work::Train {
        config,
        after: Some(train_saes),
    },
    figures,
    verdict,
};

/// Toy model features.
const FEATURES: usize = 64;
/// Toy model hidden dimensions.
const HIDDEN: usize = 16;
/// Feature densities 1 − S of the toy models, densest first.
const DENSITIES: [f64; 4] = [0.3, 0.1, 0.03, 0.01];
/// Share of the represented features the best SAE must recover at the sparsest density.
const RECOVERED_SHARE: f64 = 0.9;
/// The stage holding the SAEs.
const STAGE: &str = "saes";

fn config(profile: Profile) -> TrainConfig {
    let (steps, restarts) = match profile {
        Profile::Quick => (10_000, 1),
        Profile::Paper => (20_000, 3),
    };
    super::density_sweep_config(
        "sae-toy",
        (ModelKind::ReluOutput, FEATURES, HIDDEN),
        1.0,
        &DENSITIES,
        (steps, restarts),
    )
}

/// The SAE grid trained on each toy model (also `tms sae --activations`'s defaults).
pub fn sae_config(profile: Profile) -> SaeConfig {
    let (penalties, steps) = match profile {
        Profile::Quick => (vec![0.1, 0.3, 1.0], 4000),
        Profile::Paper => (vec![0.03, 0.1, 0.3, 1.0, 3.0], 8000),
    };
    SaeConfig {
        name: Some("sae-toy".into()),
        ground_truth: None,
        activations: None,
        sae: GridConfig {
            kind: KindName::L1,
            latents: vec![2 * FEATURES],
            penalties,
            k: Vec::new(),
        },
        train: SaeTrainConfig {
            steps,
            batch: 256,
            ..SaeTrainConfig::default()
        },
    }
}

/// Train the SAEs on the activations of every density's lowest-loss model.
fn train_saes(stages: &mut Stages<'_>, run: &mut RunResult) -> anyhow::Result<()> {
    let mut config = sae_config(stages.options().profile);
    if let Some(seed) = stages.options().seed {
        config.train.seed = seed;
    }
    config.activations = Some(ActivationsConfig {
        run: "(this run)".into(),
        instances: run.selected().iter().map(|r| r.position).collect(),
        represented: 0.5,
    });
    let mut weights = run.weights.clone();
    weights.config = run.config.clone();
    let trained = crate::sae::run::run_with(
        &config,
        Some(&weights),
        None,
        Default::default(),
        stages.progress(),
    )?;
    let mut stage = crate::sae::output::run_result(&trained, STAGE)?;
    stage.figures = crate::sae::output::figures(&trained.results);
    run.stages.push(stage);
    Ok(())
}

/// The SAE results of a run.
pub fn results(run: &RunResult) -> Option<SaeResults> {
    let stage = run.stages.iter().find(|s| s.experiment == STAGE)?;
    serde_json::from_value(stage.results.clone()?).ok()
}

fn figures(run: &RunResult) -> Vec<(String, Figure)> {
    let mut out: Vec<(String, Figure)> = results(run)
        .map(|r| crate::sae::output::figures(&r))
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| name == "recovered" || name == "grid")
        .collect();
    if let Some(f) = loss_figure(run) {
        out.push(("toy-loss".into(), f));
    }
    out
}

fn verdict(run: &RunResult) -> Verdict {
    match results(run) {
        Some(r) => judge(&r),
        None => Verdict::from_checks(vec![Check {
            name: "the SAE stage's results are present".into(),
            passed: false,
            measured: "no results".into(),
            expected: "a stage `saes` with results".into(),
        }]),
    }
}

/// The claim, checked on `r`.
pub fn judge(r: &SaeResults) -> Verdict {
    // The sparsest toy model: the one in the most superposition.
    let sparsest = r
        .inputs
        .iter()
        .enumerate()
        .filter_map(|(i, info)| info.toy.as_ref().map(|t| (i, info, t.density)))
        .min_by(|a, b| a.2.total_cmp(&b.2));
    let Some((input, info, density)) = sparsest else {
        return Verdict::from_checks(vec![Check {
            name: "the SAEs were trained on toy-model activations".into(),
            passed: false,
            measured: "no toy-model input".into(),
            expected: "inputs from the toy models".into(),
        }]);
    };
    let (g, m) = (info.features, info.dim);
    let best = r
        .saes
        .iter()
        .filter(|s| s.input == input)
        .max_by(|a, b| a.metrics.recovered.total_cmp(&b.metrics.recovered));
    let (share, label) = best.map_or((0.0, String::new()), |s| {
        (s.metrics.recovered, s.name.clone())
    });
    let recovered = (share * g as f64).round() as usize;
    let checks = vec![
        Check {
            name: format!(
                "the toy model at density {density:.3} represents more features than its {m} dimensions"
            ),
            passed: g > m,
            measured: format!("{g} features with ‖W_i‖ > 0.5"),
            expected: format!("more than m = {m}"),
        },
        Check {
            name: "the best SAE recovers at least 90 % of them (cosine > 0.9), more than m".into(),
            passed: share >= RECOVERED_SHARE && recovered > m,
            measured: format!(
                "{recovered} of {g} ({:.0} %) by {label}",
                100.0 * share
            ),
            expected: format!(
                "≥ {:.0} % and more than m = {m}",
                100.0 * RECOVERED_SHARE
            ),
        },
    ];
    Verdict::from_checks(checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sae::run::{InputInfo, SaeMetrics, SaeResult, ToyInfo};

    fn results(represented: usize, recovered: f64) -> SaeResults {
        let input = |i: usize, density: f64| InputInfo {
            label: format!("instance {i}"),
            features: represented,
            dim: HIDDEN,
            mean_active: 1.0,
            toy: Some(ToyInfo {
                instance: i,
                features: FEATURES,
                represented: (0..represented).collect(),
                density,
            }),
        };
        let sae = |i: usize, recovered: f64| SaeResult {
            name: format!("in{i}"),
            input: i,
            kind: KindName::L1,
            latents: 128,
            penalty: Some(0.3),
            k: None,
            final_loss: 0.1,
            metrics: SaeMetrics {
                mmcs: 0.95,
                mcc: 0.95,
                uniqueness: 0.5,
                recovered,
                precision: 1.0,
                recall: 1.0,
                l0: 1.0,
                dead_fraction: 0.0,
                mse: 0.01,
                variance_explained: 0.9,
                shrinkage: 0.9,
                mmcs_to_larger: None,
            },
        };
        SaeResults {
            inputs: vec![input(0, 0.3), input(1, 0.01)],
            // The dense model's SAE recovers everything; only the sparse one is judged.
            saes: vec![sae(0, 1.0), sae(1, recovered)],
            curve_steps: Vec::new(),
            curves: Vec::new(),
            seconds: 1.0,
            sae_steps_per_second: 1.0,
        }
    }

    #[test]
    fn the_verdict_follows_the_sparsest_model() {
        assert!(judge(&results(64, 1.0)).reproduced);
        // Too few recovered, or a model not in superposition, fail.
        assert!(!judge(&results(64, 0.5)).reproduced);
        assert!(!judge(&results(12, 1.0)).reproduced);
        let no_toy = SaeResults {
            inputs: Vec::new(),
            ..results(64, 1.0)
        };
        assert!(!judge(&no_toy).reproduced);
    }
}
