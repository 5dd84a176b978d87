//! `metrics.json` and `loss.csv`: the machine-readable part of a run folder.

use serde::{Deserialize, Serialize};

use crate::analysis::Verdict;

/// The content of `metrics.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsFile {
    /// Experiment name (`intro`, ...), the config's name for `tms train`, `analyze` for
    /// `tms analyze`.
    pub experiment: String,
    /// Model kind, when known.
    pub model: Option<String>,
    /// Features per instance.
    pub features: usize,
    /// Hidden dimensions per instance.
    pub hidden: usize,
    /// How the weights were trained, when this run trained them.
    pub training: Option<TrainingRecord>,
    /// One record per instance, in order.
    pub instances: Vec<InstanceRecord>,
    /// Whether the paper's result was reproduced (experiments only; null otherwise).
    pub verdict: Option<Verdict>,
    /// Figures of the run folder, by file stem (`NAME.svg` and `NAME.png`).
    #[serde(default)]
    pub figures: Vec<String>,
    /// The paper's claim this run checks (experiments only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<PaperClaim>,
    /// Later stages of the run, each a run folder of its own under `stages/NAME/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<String>,
    /// Steps of the weights in `snapshots.safetensors` (empty when none were taken).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshot_steps: Vec<u64>,
    /// Numbers of an experiment that trains no toy model, in its own structure (e.g.
    /// `orthogonal`'s packings and capacities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<serde_json::Value>,
}

/// Where an experiment is in the paper and what it claims, as the report shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaperClaim {
    /// Section of the paper.
    pub section: String,
    /// One line: what the experiment shows.
    pub summary: String,
    /// The paper's result.
    pub claim: String,
    /// Position in paper order (the report sorts by it).
    pub order: usize,
}

/// Settings and speed of the training that produced the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// Optimiser, spelled out (e.g. `AdamW(lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)`).
    pub optimizer: String,
    /// Learning-rate schedule.
    pub schedule: String,
    /// Steps.
    pub steps: u64,
    /// Batch size.
    pub batch_size: usize,
    /// Seed.
    pub seed: u64,
    /// Initialisation convention.
    pub init: String,
    /// Wall time of the training loop in seconds.
    pub seconds: f64,
    /// Steps per second (all instances advance together).
    pub steps_per_second: f64,
    /// Compiled kernel that ran (`portable` or `avx2+fma`).
    pub kernel: String,
}

/// Metrics of one instance (`feature_*` lists have one value per feature).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Instance index in its config (also selects its random streams).
    pub index: usize,
    /// Position of this instance in the weights file (differs from `index` for subset runs).
    #[serde(skip)]
    pub position: usize,
    /// Model kind, when known.
    pub kind: Option<String>,
    /// Restart number within its sweep point.
    pub restart: usize,
    /// λ of the hidden L1 penalty it was trained with (0, and left out of the file, for none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hidden_l1: f32,
    /// Adversarial training radius it was trained with, a share of the input norm (0, and left
    /// out of the file, for none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub adversarial_radius: f32,
    /// Whether this restart is the lowest-loss one of its sweep point (used by figures and
    /// verdicts).
    pub selected: bool,
    /// p_i, when known.
    pub feature_probability: Option<Vec<f32>>,
    /// I_i, when known.
    pub importance: Option<Vec<f32>>,
    /// Loss of the final weights on fresh evaluation batches, when known (for a fixed
    /// dataset: the test loss).
    pub final_loss: Option<f64>,
    /// Loss of the final weights on the fixed training dataset, when the run used one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_set_loss: Option<f64>,
    /// ‖W_i‖.
    pub feature_norms: Vec<f64>,
    /// Σ_{j≠i} (Ŵ_i·W_j)².
    pub interference: Vec<f64>,
    /// D* = m / ‖W‖_F².
    pub dimensions_per_feature: f64,
    /// D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)².
    pub fractional_dimensionality: Vec<f64>,
    /// Features with ‖W_i‖ > 0.5.
    pub represented: usize,
    /// Short description of the arrangement.
    pub geometry: String,
    /// On the kept restart of a sweep point with several restarts: the geometries every
    /// restart reached, lowest loss first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_outcomes: Vec<RestartOutcome>,
    /// Groups of represented features that interfere (|cos| > 0.3, the analysis's
    /// `INTERFERENCE_COS`), as polytopes.
    #[serde(default)]
    pub structures: Vec<StructureRecord>,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

impl InstanceRecord {
    /// Mean feature probability p over features (1 when unknown).
    pub fn density(&self) -> f64 {
        match self.feature_probability.as_deref() {
            Some(p) if !p.is_empty() => p.iter().map(|&v| v as f64).sum::<f64>() / p.len() as f64,
            _ => 1.0,
        }
    }

    /// The sparsity S = 1 - p when every feature shares one p.
    pub fn common_sparsity(&self) -> Option<f64> {
        let p = self.feature_probability.as_ref()?;
        let first = *p.first()?;
        p.iter().all(|&v| v == first).then_some(1.0 - first as f64)
    }
}

/// What some of a sweep point's restarts reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestartOutcome {
    /// The geometry (as `geometry` describes it).
    pub geometry: String,
    /// How many restarts reached it.
    pub count: usize,
    /// The lowest final loss among them.
    pub best_loss: Option<f64>,
    /// Whether the kept restart is one of them.
    pub kept: bool,
}

/// Outcomes named one by one in [`describe_outcomes`]' line.
pub const OUTCOMES_LISTED: usize = 6;

/// One line: `pentagon 3/5 (1.48e-3), 2 antipodal pairs 2/5 (2.41e-3); kept: pentagon`.
/// At most [`OUTCOMES_LISTED`] outcomes are named (in the order given, lowest loss first); the
/// rest are counted (`metrics.json` keeps them all).
pub fn describe_outcomes(outcomes: &[RestartOutcome]) -> String {
    let total: usize = outcomes.iter().map(|o| o.count).sum();
    let mut parts: Vec<String> = outcomes
        .iter()
        .take(OUTCOMES_LISTED)
        .map(|o| {
            let loss = o.best_loss.map_or(String::new(), |l| format!(" ({l:.3e})"));
            format!("{} {}/{total}{loss}", o.geometry, o.count)
        })
        .collect();
    if let Some(rest) = outcomes.get(OUTCOMES_LISTED..).filter(|r| !r.is_empty()) {
        let restarts: usize = rest.iter().map(|o| o.count).sum();
        parts.push(format!(
            "{} other geometries {restarts}/{total}",
            rest.len()
        ));
    }
    let kept = outcomes
        .iter()
        .find(|o| o.kept)
        .map_or("-", |o| o.geometry.as_str());
    format!("{}; kept: {kept}", parts.join(", "))
}

/// One group of interfering features (a tegum factor), named as a polytope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StructureRecord {
    /// Polytope name (`digon`, `triangle`, `pentagon`, `tetrahedron`, ... or `k in d dims`).
    pub name: String,
    /// Feature indices.
    pub features: Vec<usize>,
    /// Dimension of the subspace they span.
    pub span: usize,
    /// d / k, the fractional dimensionality of a uniform polytope of this size and span.
    pub ideal_dimensionality: f64,
    /// Mean D_i of its features.
    pub mean_dimensionality: f64,
}

/// `loss.csv`: `step,instance_0,instance_1,...`, one row per logged block.
pub fn loss_csv(steps: &[u64], loss: &[Vec<f64>], instance_indices: &[usize]) -> String {
    let mut out = String::from("step");
    for k in instance_indices {
        out.push_str(&format!(",instance_{k}"));
    }
    out.push('\n');
    for (s, row) in steps.iter().zip(loss) {
        out.push_str(&s.to_string());
        for v in row {
            out.push_str(&format!(",{v:.6e}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_header_and_a_row_per_step() {
        let csv = loss_csv(&[10, 20], &[vec![1.0, 2.0], vec![0.5, 0.25]], &[0, 1]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "step,instance_0,instance_1");
        assert_eq!(lines.len(), 3);
        assert!(lines[2].starts_with("20,5.000000e-1,"));
    }

    #[test]
    fn many_outcomes_are_named_up_to_the_limit_and_the_rest_counted() {
        let outcomes: Vec<RestartOutcome> = (0..OUTCOMES_LISTED + 3)
            .map(|k| RestartOutcome {
                geometry: format!("g{k}"),
                count: 2,
                best_loss: None,
                kept: k == 0,
            })
            .collect();
        let line = describe_outcomes(&outcomes);
        let total = 2 * outcomes.len();
        assert!(
            line.starts_with(&format!("g0 2/{total}, g1 2/{total}")),
            "{line}"
        );
        assert!(!line.contains(&format!("g{OUTCOMES_LISTED} ")), "{line}");
        assert!(
            line.ends_with(&format!("3 other geometries 6/{total}; kept: g0")),
            "{line}"
        );
    }
}
